//! String command tests through parse → execute_read / Store::apply, with the
//! replies Redis 7 gives for the same commands.

use bytes::Bytes;

use super::*;
use crate::resp::Frame;
use crate::store::{Operation, Store};

/// A single-node stand-in for the server: parse, then read or apply at `now`.
pub(super) struct Harness {
    pub store: Store,
    pub now: u64,
    pub limits: Limits,
}

impl Harness {
    pub fn new() -> Self {
        Harness { store: Store::new(), now: 1_700_000_000_000, limits: Limits::default() }
    }

    pub fn run(&mut self, args: &[&str]) -> Frame {
        let args: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
        match parse(&args, &self.limits, self.now) {
            Err(err) => err.to_frame(),
            Ok(Parsed::Read(cmd)) => execute_read(&cmd, &self.store, self.now),
            Ok(Parsed::Write(cmd)) => self.store.apply(&Operation { at_ms: self.now, cmd }),
            Ok(Parsed::Connection(spec)) => Frame::simple(format!("connection {}", spec.name)),
        }
    }
}

pub(super) fn ok() -> Frame {
    Frame::ok()
}

pub(super) fn int(n: i64) -> Frame {
    Frame::Integer(n)
}

pub(super) fn bulk(text: &str) -> Frame {
    Frame::bulk_copy(text.as_bytes())
}

pub(super) fn err(text: &str) -> Frame {
    Frame::error(text)
}

pub(super) const NIL: Frame = Frame::Null;

#[test]
fn get_set_basics() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["GET", "k"]), NIL);
    assert_eq!(h.run(&["SET", "k", "v"]), ok());
    assert_eq!(h.run(&["get", "k"]), bulk("v"));
    assert_eq!(h.run(&["SET", "k", ""]), ok());
    assert_eq!(h.run(&["GET", "k"]), bulk(""));
}

#[test]
fn arity_and_unknown_commands() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["GET"]), err("ERR wrong number of arguments for 'get' command"));
    assert_eq!(h.run(&["GET", "a", "b"]), err("ERR wrong number of arguments for 'get' command"));
    assert_eq!(h.run(&["SET", "k"]), err("ERR wrong number of arguments for 'set' command"));
    assert_eq!(h.run(&["MSET", "a"]), err("ERR wrong number of arguments for 'mset' command"));
    assert_eq!(h.run(&["MSET", "a", "1", "b"]), err("ERR wrong number of arguments for 'mset' command"));
    assert_eq!(h.run(&["foo", "a", "b"]), err("ERR unknown command 'foo', with args beginning with: 'a' 'b' "));
    assert_eq!(h.run(&["PING"]), Frame::simple("connection ping"));
    assert_eq!(h.run(&["CLIENT", "SETNAME", "x"]), Frame::simple("connection client"));
    assert_eq!(h.run(&["CLIENT", "SETNAME"]), err("ERR wrong number of arguments for 'client|setname' command"));
    assert_eq!(h.run(&["client", "bogus"]), err("ERR unknown subcommand 'bogus'. Try CLIENT HELP."));
    assert_eq!(h.run(&["CLIENT"]), err("ERR wrong number of arguments for 'client' command"));
}

#[test]
fn key_and_value_limits() {
    let mut h = Harness::new();
    let key = "k".repeat(257);
    let value = "v".repeat(65537);
    assert_eq!(h.run(&["SET", &key, "v"]), err("ERR key too large: 257 bytes (max 256)"));
    assert_eq!(h.run(&["GET", &key]), err("ERR key too large: 257 bytes (max 256)"));
    assert_eq!(h.run(&["MGET", "a", &key]), err("ERR key too large: 257 bytes (max 256)"));
    assert_eq!(h.run(&["SET", &"k".repeat(256), "v"]), ok());
    assert_eq!(h.run(&["SET", "k", &value]), err("ERR value too large: 65537 bytes (max 65536)"));
    assert_eq!(h.run(&["MSET", "a", "1", "b", &value]), err("ERR value too large: 65537 bytes (max 65536)"));
    assert_eq!(h.run(&["SET", "k", &"v".repeat(65536)]), ok());
    assert_eq!(h.run(&["APPEND", "k", "x"]), err("ERR value too large: 65537 bytes (max 65536)"));
    assert_eq!(h.run(&["SETRANGE", "k", "65536", "x"]), err("ERR value too large: 65537 bytes (max 65536)"));
    assert_eq!(h.run(&["STRLEN", "k"]), int(65536));
    assert_eq!(h.run(&["DBSIZE"]), int(2));
}

#[test]
fn set_conditions_and_get() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["SET", "k", "1", "XX"]), NIL);
    assert_eq!(h.run(&["SET", "k", "1", "NX"]), ok());
    assert_eq!(h.run(&["SET", "k", "2", "NX"]), NIL);
    assert_eq!(h.run(&["SET", "k", "2", "XX", "GET"]), bulk("1"));
    assert_eq!(h.run(&["SET", "k", "3", "NX", "GET"]), bulk("2"), "NX + GET: old value, no write");
    assert_eq!(h.run(&["GET", "k"]), bulk("2"));
    assert_eq!(h.run(&["SET", "new", "x", "GET"]), NIL);
    assert_eq!(h.run(&["GETSET", "new", "y"]), bulk("x"));
    assert_eq!(h.run(&["SETNX", "new", "z"]), int(0));
    assert_eq!(h.run(&["SETNX", "fresh", "z"]), int(1));
}

#[test]
fn set_option_syntax() {
    let mut h = Harness::new();
    for bad in [
        &["SET", "k", "v", "NX", "XX"][..],
        &["SET", "k", "v", "XX", "NX"],
        &["SET", "k", "v", "KEEPTTL", "EX", "5"],
        &["SET", "k", "v", "EX", "5", "KEEPTTL"],
        &["SET", "k", "v", "EX", "5", "PX", "5"],
        &["SET", "k", "v", "EXAT", "5", "PXAT", "5"],
        &["SET", "k", "v", "EX"],
        &["SET", "k", "v", "FOO"],
    ] {
        assert_eq!(h.run(bad), err("ERR syntax error"), "{bad:?}");
    }
    assert_eq!(h.run(&["SET", "k", "v", "EX", "0"]), err("ERR invalid expire time in 'set' command"));
    assert_eq!(h.run(&["SET", "k", "v", "PX", "-1"]), err("ERR invalid expire time in 'set' command"));
    assert_eq!(h.run(&["SET", "k", "v", "EX", "abc"]), err("ERR value is not an integer or out of range"));
    assert_eq!(h.run(&["SET", "k", "v", "EX", "9223372036854775"]), err("ERR invalid expire time in 'set' command"));
    assert_eq!(h.run(&["SET", "k", "v", "PX", "9223372036854775807"]), err("ERR invalid expire time in 'set' command"));
    assert_eq!(h.run(&["SET", "k", "v", "EX", "1", "EX", "2"]), ok(), "a repeated form: the last wins");
    assert_eq!(h.run(&["PTTL", "k"]), int(2000));
    assert_eq!(h.run(&["SET", "k", "v", "nx", "get", "keepttl"]), bulk("v"));
}

#[test]
fn set_ttl_forms() {
    let mut h = Harness::new();
    let now = h.now;
    h.run(&["SET", "k", "v", "PX", "1500"]);
    assert_eq!(h.run(&["PTTL", "k"]), int(1500));
    assert_eq!(h.run(&["TTL", "k"]), int(2), "rounded like Redis");
    h.run(&["SET", "k", "v", "KEEPTTL"]);
    assert_eq!(h.run(&["PTTL", "k"]), int(1500));
    h.run(&["SET", "k", "v"]);
    assert_eq!(h.run(&["TTL", "k"]), int(-1), "plain SET clears the TTL");
    h.run(&["SET", "k", "v", "PXAT", &(now + 10).to_string()]);
    assert_eq!(h.run(&["PEXPIRETIME", "k"]), int(now as i64 + 10));
    h.run(&["SET", "k", "v", "EXAT", "1"]);
    assert_eq!(h.run(&["GET", "k"]), NIL, "a past EXAT: the key is gone");
    assert_eq!(h.run(&["SETEX", "k", "10", "v"]), ok());
    assert_eq!(h.run(&["TTL", "k"]), int(10));
    assert_eq!(h.run(&["SETEX", "k", "0", "v"]), err("ERR invalid expire time in 'setex' command"));
    assert_eq!(h.run(&["PSETEX", "k", "-1", "v"]), err("ERR invalid expire time in 'psetex' command"));
    assert_eq!(h.run(&["PSETEX", "k", "100", "v"]), ok());
    h.now += 100;
    assert_eq!(h.run(&["GET", "k"]), NIL, "expired exactly at the deadline");
    assert_eq!(h.run(&["GETSET", "k", "x"]), NIL);
}

#[test]
fn getdel_and_getex() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["GETDEL", "k"]), NIL);
    h.run(&["SET", "k", "v"]);
    assert_eq!(h.run(&["GETDEL", "k"]), bulk("v"));
    assert_eq!(h.run(&["EXISTS", "k"]), int(0));
    h.run(&["SET", "k", "v"]);
    assert_eq!(h.run(&["GETEX", "k"]), bulk("v"));
    assert_eq!(h.run(&["GETEX", "k", "EX", "100"]), bulk("v"));
    assert_eq!(h.run(&["TTL", "k"]), int(100));
    assert_eq!(h.run(&["GETEX", "k", "PERSIST"]), bulk("v"));
    assert_eq!(h.run(&["TTL", "k"]), int(-1));
    assert_eq!(h.run(&["GETEX", "k", "NX"]), err("ERR syntax error"));
    assert_eq!(h.run(&["GETEX", "k", "PERSIST", "EX", "5"]), err("ERR syntax error"));
    assert_eq!(h.run(&["GETEX", "k", "EX", "5", "PX", "5"]), err("ERR syntax error"));
    assert_eq!(h.run(&["GETEX", "k", "EX", "0"]), err("ERR invalid expire time in 'getex' command"));
    assert_eq!(h.run(&["GETEX", "k", "PXAT", "1"]), bulk("v"));
    assert_eq!(h.run(&["GET", "k"]), NIL, "a past PXAT deletes");
    assert_eq!(h.run(&["GETEX", "missing", "EX", "5"]), NIL);
    assert_eq!(h.run(&["GETEX", "missing", "EX", "x"]), NIL, "Redis checks the TTL after the lookup");
    assert_eq!(h.run(&["GETEX", "missing", "EX", "5", "NX"]), err("ERR syntax error"));
    assert!(matches!(parse(&[Bytes::from("getex"), Bytes::from("k")], &Limits::default(), 0), Ok(Parsed::Read(_))));
}

#[test]
fn mget_mset_msetnx() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["MSET", "a", "1", "b", "2", "a", "3"]), ok());
    assert_eq!(h.run(&["MGET", "a", "b", "c"]), Frame::Array(vec![bulk("3"), bulk("2"), NIL]));
    assert_eq!(h.run(&["MSETNX", "c", "1", "a", "9"]), int(0));
    assert_eq!(h.run(&["EXISTS", "c"]), int(0), "MSETNX is all or nothing");
    assert_eq!(h.run(&["MSETNX", "c", "1", "d", "2"]), int(1));
    h.run(&["SET", "t", "v", "EX", "10"]);
    h.run(&["MSET", "t", "w"]);
    assert_eq!(h.run(&["TTL", "t"]), int(-1), "MSET clears TTLs");
}

#[test]
fn incr_family() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["INCR", "n"]), int(1));
    assert_eq!(h.run(&["INCRBY", "n", "10"]), int(11));
    assert_eq!(h.run(&["DECR", "n"]), int(10));
    assert_eq!(h.run(&["DECRBY", "n", "-5"]), int(15));
    assert_eq!(h.run(&["GET", "n"]), bulk("15"));
    assert_eq!(h.run(&["INCRBY", "n", "x"]), err("ERR value is not an integer or out of range"));
    assert_eq!(h.run(&["DECRBY", "n", "-9223372036854775808"]), err("ERR decrement would overflow"));
    h.run(&["SET", "n", "01"]);
    assert_eq!(h.run(&["INCR", "n"]), err("ERR value is not an integer or out of range"));
    h.run(&["SET", "n", " 1"]);
    assert_eq!(h.run(&["INCR", "n"]), err("ERR value is not an integer or out of range"));
    h.run(&["SET", "n", "9223372036854775807"]);
    assert_eq!(h.run(&["INCR", "n"]), err("ERR increment or decrement would overflow"));
    assert_eq!(h.run(&["GET", "n"]), bulk("9223372036854775807"), "failed INCR changes nothing");
    h.run(&["SET", "n", "-9223372036854775808"]);
    assert_eq!(h.run(&["DECR", "n"]), err("ERR increment or decrement would overflow"));
    h.run(&["SET", "t", "5", "EX", "100"]);
    h.run(&["INCR", "t"]);
    assert_eq!(h.run(&["TTL", "t"]), int(100), "INCR keeps the TTL");
}

#[test]
fn incrbyfloat() {
    let mut h = Harness::new();
    h.run(&["SET", "f", "10.50"]);
    assert_eq!(h.run(&["INCRBYFLOAT", "f", "0.1"]), bulk("10.6"));
    assert_eq!(h.run(&["INCRBYFLOAT", "f", "-5"]), bulk("5.6"));
    h.run(&["SET", "f", "5.0e3"]);
    assert_eq!(h.run(&["INCRBYFLOAT", "f", "2.0e2"]), bulk("5200"));
    assert_eq!(h.run(&["INCRBYFLOAT", "new", "3"]), bulk("3"));
    assert_eq!(h.run(&["INCRBYFLOAT", "f", "abc"]), err("ERR value is not a valid float"));
    assert_eq!(h.run(&["INCRBYFLOAT", "f", "inf"]), err("ERR increment would produce NaN or Infinity"));
    h.run(&["SET", "s", "hello"]);
    assert_eq!(h.run(&["INCRBYFLOAT", "s", "1"]), err("ERR value is not a valid float"));
}

#[test]
fn append_strlen_getrange_setrange() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["APPEND", "s", "Hello"]), int(5));
    assert_eq!(h.run(&["APPEND", "s", " World"]), int(11));
    assert_eq!(h.run(&["STRLEN", "s"]), int(11));
    assert_eq!(h.run(&["STRLEN", "none"]), int(0));
    assert_eq!(h.run(&["GETRANGE", "s", "0", "4"]), bulk("Hello"));
    assert_eq!(h.run(&["GETRANGE", "s", "-5", "-1"]), bulk("World"));
    assert_eq!(h.run(&["SUBSTR", "s", "0", "-1"]), bulk("Hello World"));
    assert_eq!(h.run(&["GETRANGE", "s", "-1", "-5"]), bulk(""));
    assert_eq!(h.run(&["GETRANGE", "none", "0", "1"]), bulk(""));
    assert_eq!(h.run(&["GETRANGE", "s", "a", "1"]), err("ERR value is not an integer or out of range"));
    assert_eq!(h.run(&["SETRANGE", "s", "6", "Redis"]), int(11));
    assert_eq!(h.run(&["GET", "s"]), bulk("Hello Redis"));
    assert_eq!(h.run(&["SETRANGE", "p", "3", "ab"]), int(5));
    assert_eq!(h.run(&["GET", "p"]), Frame::bulk_copy(b"\0\0\0ab"));
    assert_eq!(h.run(&["SETRANGE", "p", "7", "c"]), int(8));
    assert_eq!(h.run(&["GET", "p"]), Frame::bulk_copy(b"\0\0\0ab\0\0c"));
    assert_eq!(h.run(&["SETRANGE", "p", "4", "XYZ"]), int(8));
    assert_eq!(h.run(&["GET", "p"]), Frame::bulk_copy(b"\0\0\0aXYZc"));
    assert_eq!(h.run(&["SETRANGE", "empty", "5", ""]), int(0));
    assert_eq!(h.run(&["EXISTS", "empty"]), int(0), "an empty SETRANGE creates nothing");
    assert_eq!(h.run(&["SETRANGE", "s", "-1", "x"]), err("ERR offset is out of range"));
    assert_eq!(h.run(&["SETRANGE", "s", "99999999999", ""]), int(11));
    h.run(&["SET", "t", "abc", "EX", "50"]);
    h.run(&["APPEND", "t", "d"]);
    h.run(&["SETRANGE", "t", "10", "e"]);
    assert_eq!(h.run(&["TTL", "t"]), int(50), "APPEND and SETRANGE keep the TTL");
}

/// Hot path: values move from the request buffer into the command, uncopied.
#[test]
fn parse_does_not_copy_values() {
    let args = vec![Bytes::from("SET"), Bytes::from("key"), Bytes::from(vec![b'v'; 1000])];
    let Ok(Parsed::Write(WriteCmd::Set { key, value, .. })) = parse(&args, &Limits::default(), 0) else { panic!() };
    assert_eq!(value.as_ptr(), args[2].as_ptr());
    assert_eq!(key.as_ptr(), args[1].as_ptr());
}
