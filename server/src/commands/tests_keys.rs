//! Keyspace command tests (replies as Redis 7 gives them).

use std::collections::BTreeSet;

use super::tests_strings::{bulk, err, int, ok, Harness, NIL};
use crate::resp::Frame;

fn sorted_keys(frame: Frame) -> Vec<String> {
    let Frame::Array(items) = frame else { panic!("not an array: {frame:?}") };
    let mut keys: Vec<String> =
        items.iter().map(|f| String::from_utf8(f.as_bytes().unwrap().to_vec()).unwrap()).collect();
    keys.sort();
    keys
}

#[test]
fn del_exists_type() {
    let mut h = Harness::new();
    h.run(&["MSET", "a", "1", "b", "2"]);
    assert_eq!(h.run(&["EXISTS", "a", "a", "b", "c"]), int(3), "repeats count");
    assert_eq!(h.run(&["TYPE", "a"]), Frame::simple("string"));
    assert_eq!(h.run(&["TYPE", "c"]), Frame::simple("none"));
    assert_eq!(h.run(&["DEL", "a", "a", "c"]), int(1), "a repeated key is deleted once");
    assert_eq!(h.run(&["UNLINK", "b"]), int(1));
    assert_eq!(h.run(&["DBSIZE"]), int(0));
    assert_eq!(h.run(&["DEL"]), err("ERR wrong number of arguments for 'del' command"));
}

#[test]
fn expire_family_and_ttl_queries() {
    let mut h = Harness::new();
    let now = h.now as i64;
    assert_eq!(h.run(&["EXPIRE", "k", "10"]), int(0), "missing key");
    assert_eq!(h.run(&["TTL", "k"]), int(-2));
    assert_eq!(h.run(&["PTTL", "k"]), int(-2));
    h.run(&["SET", "k", "v"]);
    assert_eq!(h.run(&["TTL", "k"]), int(-1));
    assert_eq!(h.run(&["EXPIRETIME", "k"]), int(-1));
    assert_eq!(h.run(&["EXPIRE", "k", "10"]), int(1));
    assert_eq!(h.run(&["PTTL", "k"]), int(10_000));
    assert_eq!(h.run(&["PEXPIRE", "k", "2500"]), int(1));
    assert_eq!(h.run(&["TTL", "k"]), int(3));
    assert_eq!(h.run(&["EXPIREAT", "k", &(now / 1000 + 100).to_string()]), int(1));
    assert_eq!(h.run(&["EXPIRETIME", "k"]), int(now / 1000 + 100));
    assert_eq!(h.run(&["PEXPIREAT", "k", &(now + 1234).to_string()]), int(1));
    assert_eq!(h.run(&["PEXPIRETIME", "k"]), int(now + 1234));
    assert_eq!(h.run(&["PERSIST", "k"]), int(1));
    assert_eq!(h.run(&["PERSIST", "k"]), int(0));
    assert_eq!(h.run(&["PERSIST", "missing"]), int(0));
    assert_eq!(h.run(&["EXPIRE", "k", "0"]), int(1), "zero TTL deletes");
    assert_eq!(h.run(&["EXISTS", "k"]), int(0));
    h.run(&["SET", "k", "v"]);
    assert_eq!(h.run(&["EXPIRE", "k", "-10"]), int(1), "negative TTL deletes");
    assert_eq!(h.run(&["EXISTS", "k"]), int(0));
    h.run(&["SET", "k", "v"]);
    h.run(&["PEXPIRE", "k", "100"]);
    h.now += 99;
    assert_eq!(h.run(&["PTTL", "k"]), int(1));
    h.now += 1;
    assert_eq!(h.run(&["PTTL", "k"]), int(-2), "lazy expiry at the deadline");
}

#[test]
fn expire_options() {
    let mut h = Harness::new();
    h.run(&["SET", "k", "v"]);
    assert_eq!(h.run(&["EXPIRE", "k", "100", "XX"]), int(0));
    assert_eq!(h.run(&["EXPIRE", "k", "100", "GT"]), int(0), "no TTL counts as infinite");
    assert_eq!(h.run(&["EXPIRE", "k", "100", "LT"]), int(1));
    assert_eq!(h.run(&["EXPIRE", "k", "50", "NX"]), int(0));
    assert_eq!(h.run(&["EXPIRE", "k", "200", "GT"]), int(1));
    assert_eq!(h.run(&["EXPIRE", "k", "300", "LT"]), int(0));
    assert_eq!(h.run(&["EXPIRE", "k", "150", "XX", "LT"]), int(1));
    assert_eq!(h.run(&["TTL", "k"]), int(150));
    assert_eq!(
        h.run(&["EXPIRE", "k", "10", "NX", "XX"]),
        err("ERR NX and XX, GT or LT options at the same time are not compatible")
    );
    assert_eq!(
        h.run(&["EXPIRE", "k", "10", "GT", "LT"]),
        err("ERR GT and LT options at the same time are not compatible")
    );
    assert_eq!(h.run(&["EXPIRE", "k", "10", "FOO"]), err("ERR Unsupported option FOO"));
    assert_eq!(h.run(&["EXPIRE", "k", "x"]), err("ERR value is not an integer or out of range"));
    assert_eq!(h.run(&["EXPIRE", "k", "x", "FOO"]), err("ERR Unsupported option FOO"), "options are checked first");
    assert_eq!(h.run(&["EXPIRE", "k", "9223372036854775807"]), err("ERR invalid expire time in 'expire' command"));
    assert_eq!(h.run(&["EXPIREAT", "k", "9223372036854775807"]), err("ERR invalid expire time in 'expireat' command"));
    assert_eq!(h.run(&["PEXPIRE", "k", "9223372036854775807"]), err("ERR invalid expire time in 'pexpire' command"));
    assert_eq!(h.run(&["PEXPIREAT", "k", "9223372036854775807"]), int(1), "no base time: no overflow");
}

#[test]
fn keys_glob() {
    let mut h = Harness::new();
    h.run(&["MSET", "hello", "1", "hallo", "2", "hxllo", "3", "hllo", "4", "heeeello", "5", "other", "6"]);
    assert_eq!(sorted_keys(h.run(&["KEYS", "h?llo"])), ["hallo", "hello", "hxllo"]);
    assert_eq!(sorted_keys(h.run(&["KEYS", "h*llo"])), ["hallo", "heeeello", "hello", "hllo", "hxllo"]);
    assert_eq!(sorted_keys(h.run(&["KEYS", "h[ae]llo"])), ["hallo", "hello"]);
    assert_eq!(sorted_keys(h.run(&["KEYS", "h[^e]llo"])), ["hallo", "hxllo"]);
    assert_eq!(sorted_keys(h.run(&["KEYS", "*"])).len(), 6);
    h.run(&["PEXPIRE", "other", "1"]);
    h.now += 1;
    assert_eq!(sorted_keys(h.run(&["KEYS", "o*"])), Vec::<String>::new(), "expired keys are not listed");
}

#[test]
fn scan_walks_everything() {
    let mut h = Harness::new();
    for i in 0..300 {
        h.run(&["SET", &format!("key:{i}"), "v"]);
    }
    let mut seen = BTreeSet::new();
    let mut cursor = "0".to_owned();
    loop {
        let Frame::Array(reply) = h.run(&["SCAN", &cursor, "MATCH", "key:1*", "COUNT", "7"]) else { panic!() };
        let Frame::Bulk(next) = &reply[0] else { panic!() };
        for key in sorted_keys(reply[1].clone()) {
            assert!(seen.insert(key));
        }
        cursor = String::from_utf8(next.to_vec()).unwrap();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 111); // key:1, key:10..19, key:100..199
    let Frame::Array(reply) = h.run(&["SCAN", "0", "COUNT", "1000", "TYPE", "string"]) else { panic!() };
    assert_eq!(reply[0], bulk("0"));
    assert_eq!(sorted_keys(reply[1].clone()).len(), 300);
    let Frame::Array(reply) = h.run(&["SCAN", "0", "COUNT", "1000", "TYPE", "hash"]) else { panic!() };
    assert_eq!(reply[1], Frame::Array(vec![]));
}

#[test]
fn scan_errors() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["SCAN", "abc"]), err("ERR invalid cursor"));
    assert_eq!(h.run(&["SCAN", "-1"]), err("ERR invalid cursor"));
    assert_eq!(h.run(&["SCAN", "0", "COUNT", "0"]), err("ERR syntax error"));
    assert_eq!(h.run(&["SCAN", "0", "COUNT", "x"]), err("ERR value is not an integer or out of range"));
    assert_eq!(h.run(&["SCAN", "0", "MATCH"]), err("ERR syntax error"));
    assert_eq!(h.run(&["SCAN", "0", "FOO", "bar"]), err("ERR syntax error"));
    assert_eq!(h.run(&["SCAN", "18446744073709551615"]), Frame::Array(vec![bulk("0"), Frame::Array(vec![])]));
}

#[test]
fn rename_and_renamenx() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["RENAME", "a", "b"]), err("ERR no such key"));
    assert_eq!(h.run(&["RENAMENX", "a", "b"]), err("ERR no such key"));
    assert_eq!(h.run(&["RENAME", "a", "a"]), err("ERR no such key"));
    h.run(&["SET", "a", "1", "EX", "100"]);
    assert_eq!(h.run(&["RENAME", "a", "a"]), ok());
    assert_eq!(h.run(&["RENAMENX", "a", "a"]), int(0));
    h.run(&["SET", "b", "2"]);
    assert_eq!(h.run(&["RENAMENX", "a", "b"]), int(0));
    assert_eq!(h.run(&["RENAME", "a", "b"]), ok());
    assert_eq!((h.run(&["GET", "a"]), h.run(&["GET", "b"]), h.run(&["TTL", "b"])), (NIL, bulk("1"), int(100)));
    assert_eq!(h.run(&["RENAMENX", "b", "c"]), int(1));
    assert_eq!(h.run(&["TTL", "c"]), int(100), "the TTL moves with the key");
    assert_eq!(h.run(&["DBSIZE"]), int(1));
}

#[test]
fn randomkey_dbsize_flush() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["RANDOMKEY"]), NIL);
    h.run(&["MSET", "a", "1", "b", "2"]);
    let key = h.run(&["RANDOMKEY"]);
    assert!(key == bulk("a") || key == bulk("b"));
    assert_eq!(h.run(&["DBSIZE"]), int(2));
    assert_eq!(h.run(&["FLUSHDB", "FOO"]), err("ERR syntax error"));
    assert_eq!(h.run(&["FLUSHALL", "ASYNC", "SYNC"]), err("ERR syntax error"));
    assert_eq!(h.run(&["FLUSHDB", "sync"]), ok());
    assert_eq!(h.run(&["DBSIZE"]), int(0));
    h.run(&["SET", "a", "1"]);
    assert_eq!(h.run(&["FLUSHALL"]), ok());
    assert_eq!(h.run(&["DBSIZE"]), int(0));
}

#[test]
fn commands_reported_by_command_match_the_parsers() {
    let mut h = Harness::new();
    // Every read and write in the table parses with a minimal valid argument list.
    for spec in super::table() {
        let argc = spec.arity.unsigned_abs() as usize;
        let mut args: Vec<String> = vec![spec.name.to_owned()];
        args.extend((1..argc).map(|i| if i == 1 && spec.name == "scan" { "0".to_owned() } else { "1".to_owned() }));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let reply = h.run(&args);
        assert!(
            !matches!(&reply, Frame::Error(e) if e.contains("wrong number") || e.contains("unknown command")),
            "{}: {reply:?}",
            spec.name
        );
    }
}

#[test]
fn memory_usage_counts_the_allocation_and_grows_with_the_value() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["MEMORY", "USAGE", "k"]), NIL);
    h.run(&["SET", "k", "v"]);
    let Frame::Integer(small) = h.run(&["MEMORY", "USAGE", "k"]) else { panic!("not an integer") };
    // One 32-byte malloc chunk and the 8-byte table slot.
    assert_eq!(small, 40);
    h.run(&["SET", "k", &"v".repeat(1000)]);
    let Frame::Integer(large) = h.run(&["MEMORY", "USAGE", "k", "SAMPLES", "0"]) else { panic!("not an integer") };
    assert!((1000..1100).contains(&large), "{large}");
    h.run(&["SET", "t", "v", "EX", "100"]);
    let Frame::Integer(with_ttl) = h.run(&["MEMORY", "USAGE", "t"]) else { panic!("not an integer") };
    assert!(with_ttl > small, "the expiry index entry counts: {with_ttl}");
}

#[test]
fn memory_arguments_are_checked_in_redis_order() {
    let mut h = Harness::new();
    // Options are validated before the key is looked up.
    assert_eq!(h.run(&["MEMORY", "USAGE", "nokey", "SAMPLES", "-1"]), err("ERR syntax error"));
    assert_eq!(h.run(&["MEMORY", "USAGE", "k", "SAMPLES", "x"]), err("ERR value is not an integer or out of range"));
    assert_eq!(h.run(&["MEMORY", "USAGE", "k", "SAMPLES"]), err("ERR syntax error"));
    assert_eq!(h.run(&["MEMORY", "USAGE", "k", "FOO", "1"]), err("ERR syntax error"));
    assert_eq!(h.run(&["MEMORY", "USAGE"]), err("ERR wrong number of arguments for 'memory|usage' command"));
    assert_eq!(h.run(&["MEMORY", "PURGE"]), err("ERR unknown subcommand 'PURGE'. Try MEMORY HELP."));
    assert_eq!(h.run(&["MEMORY"]), err("ERR wrong number of arguments for 'memory' command"));
    assert_eq!(h.run(&["memory", "help"]), Frame::simple("connection memory"), "the connection layer answers it");
    let key = "k".repeat(257);
    assert!(matches!(h.run(&["MEMORY", "USAGE", &key]), Frame::Error(e) if e.contains("key")));
}
