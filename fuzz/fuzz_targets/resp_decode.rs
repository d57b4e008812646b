//! RESP request and reply decoders on arbitrary bytes (see `props::resp_decode`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| seshat_fuzz::props::resp_decode(data));
