//! Bitmap commands and COPY through parse and apply (replies as Redis 7.0
//! gives them; `tests/tests/compat.rs` compares them with a real Redis).

use super::tests_strings::{bulk, err, int, ok, Harness};
use crate::resp::Frame;

#[test]
fn setbit_getbit_and_their_argument_errors() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["SETBIT", "b", "9", "1"]), int(0));
    assert_eq!(h.run(&["GETBIT", "b", "9"]), int(1));
    assert_eq!(h.run(&["GETBIT", "b", "8"]), int(0));
    assert_eq!(h.run(&["GETBIT", "b", "4294967295"]), int(0), "past the end reads 0");
    assert_eq!(h.run(&["GETBIT", "nokey", "0"]), int(0));
    let bit = err("ERR bit is not an integer or out of range");
    assert_eq!(h.run(&["SETBIT", "b", "1", "01"]), bit, "no leading zeros, as string2l");
    assert_eq!(h.run(&["SETBIT", "b", "1", "1"]), int(0));
    assert_eq!(h.run(&["GET", "b"]), bulk("\u{40}\u{40}"));
    let offset = err("ERR bit offset is not an integer or out of range");
    assert_eq!(h.run(&["SETBIT", "b", "-1", "1"]), offset);
    assert_eq!(h.run(&["SETBIT", "b", "4294967296", "1"]), offset);
    assert_eq!(h.run(&["GETBIT", "b", "x"]), offset);
    assert_eq!(h.run(&["SETBIT", "b", "1", "2"]), bit);
    h.run(&["SET", "s", "v"]);
    assert_eq!(h.run(&["SETBIT", "b", "x", "2"]), offset, "the offset is checked first");
}

#[test]
fn setbit_past_the_value_limit_is_refused_after_the_type_check() {
    let mut h = Harness::new();
    h.limits.max_value_bytes = 4;
    assert_eq!(h.run(&["SETBIT", "b", "31", "1"]), int(0));
    assert_eq!(h.run(&["SETBIT", "b", "32", "1"]), err("ERR value too large: 5 bytes (max 4)"));
    assert_eq!(h.run(&["STRLEN", "b"]), int(4));
}

#[test]
fn bitcount_and_bitpos_report_range_errors_only_for_an_existing_string() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["BITCOUNT", "nokey", "a", "b"]), int(0));
    assert_eq!(h.run(&["BITCOUNT", "nokey", "1"]), int(0));
    assert_eq!(h.run(&["BITPOS", "nokey", "0", "x"]), int(0));
    assert_eq!(h.run(&["BITPOS", "nokey", "1"]), int(-1));
    assert_eq!(h.run(&["BITPOS", "nokey", "2"]), err("ERR The bit argument must be 1 or 0."));
    h.run(&["SET", "s", "foobar"]);
    assert_eq!(h.run(&["BITCOUNT", "s"]), int(26));
    assert_eq!(h.run(&["BITCOUNT", "s", "1", "1", "BIT"]), int(1));
    assert_eq!(h.run(&["BITCOUNT", "s", "a", "b"]), err("ERR value is not an integer or out of range"));
    assert_eq!(h.run(&["BITCOUNT", "s", "1"]), err("ERR syntax error"));
    assert_eq!(h.run(&["BITCOUNT", "s", "-1", "-5", "nounit"]), int(0), "Redis answers before the unit");
    assert_eq!(h.run(&["BITPOS", "s", "1", "2", "-1", "BYTE"]), int(17));
    assert_eq!(h.run(&["BITPOS", "s", "1", "0", "x", "nounit"]), err("ERR syntax error"), "unit before end");
    h.run(&["INCR", "n"]);
    assert_eq!(h.run(&["BITCOUNT", "n", "0", "-1"]), int(3), "an integer counts as its digits");
    h.run(&["SETBIT", "b", "0", "1"]);
    assert_eq!(h.run(&["BITPOS", "b", "0"]), int(1));
}

#[test]
fn bitop_stores_without_ttl_and_an_empty_result_deletes() {
    let mut h = Harness::new();
    h.run(&["SET", "a", "ab"]);
    h.run(&["SET", "d", "x", "EX", "100"]);
    assert_eq!(h.run(&["BITOP", "OR", "d", "a", "nokey"]), int(2));
    assert_eq!(h.run(&["TTL", "d"]), int(-1));
    assert_eq!(h.run(&["BITOP", "AND", "d", "nokey"]), int(0));
    assert_eq!(h.run(&["EXISTS", "d"]), int(0));
    assert_eq!(h.run(&["BITOP", "NOT", "d", "a", "a"]), err("ERR BITOP NOT must be called with a single source key."));
    assert_eq!(h.run(&["BITOP", "NAND", "d", "a"]), err("ERR syntax error"));
    h.run(&["SET", "d", "keep"]);
    assert_eq!(h.run(&["BITOP", "OR", "d", "a", "d", "nokey"]), int(4));
    assert_eq!(h.run(&["GET", "d"]), bulk("\u{6b}\u{67}ep"));
}

#[test]
fn copy_options_and_errors() {
    let mut h = Harness::new();
    h.run(&["SET", "a", "1"]);
    assert_eq!(h.run(&["COPY", "a", "b"]), int(1));
    assert_eq!(h.run(&["COPY", "a", "b"]), int(0));
    assert_eq!(h.run(&["COPY", "a", "b", "DB", "0", "REPLACE"]), int(1));
    assert_eq!(h.run(&["COPY", "a", "a"]), err("ERR source and destination objects are the same"));
    // One database: any other is out of range, as for SELECT.
    assert_eq!(h.run(&["COPY", "a", "c", "DB", "1"]), err("ERR DB index is out of range"));
    assert_eq!(
        h.run(&["COPY", "a", "c", "DB", "99999999999"]),
        err("ERR value is out of range, value must between -2147483648 and 2147483647")
    );
    assert_eq!(h.run(&["COPY", "a", "c", "DB"]), err("ERR syntax error"));
    assert_eq!(h.run(&["EXISTS", "c"]), int(0));
    assert_eq!(h.run(&["TOUCH", "a", "a", "c"]), int(2));
    assert_eq!(h.run(&["GET", "b"]), bulk("1"));
    assert_eq!(h.run(&["SET", "b", "2"]), ok());
    assert_eq!(h.run(&["TYPE", "b"]), Frame::simple("string"));
}
