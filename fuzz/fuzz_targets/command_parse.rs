//! Command parsing and the state machine on arbitrary argument vectors
//! (see `props::command_parse`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| seshat_fuzz::props::command_parse(data));
