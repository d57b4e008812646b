//! Transactions and WATCH stamps in the state machine.

use bytes::Bytes;

use super::*;
use crate::resp::Frame;

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn args(line: &str) -> Vec<Bytes> {
    line.split(' ').map(b).collect()
}

fn set(key: &str, value: &str) -> WriteCmd {
    WriteCmd::Set { key: b(key), value: b(value), cond: SetCondition::Always, ttl: SetTtl::Clear, get: false }
}

fn apply(store: &mut Store, at_ms: u64, cmd: WriteCmd) -> Frame {
    store.apply(&Operation { at_ms, cmd })
}

fn tx(steps: Vec<TxStep>, watched: Vec<WatchedKey>) -> WriteCmd {
    WriteCmd::Transaction { steps, watched }
}

fn watch(store: &Store, key: &str, now: u64) -> WatchedKey {
    WatchedKey { key: b(key), stamp: store.watch_stamp(key.as_bytes()), live: store.get(key.as_bytes(), now).is_some() }
}

#[test]
fn steps_run_in_order_and_reads_see_the_writes_before_them() {
    let mut store = Store::new();
    let steps = vec![
        TxStep::Read(args("GET k")),
        TxStep::Write(set("k", "1")),
        TxStep::Write(WriteCmd::IncrBy { key: b("k"), delta: 1 }),
        TxStep::Read(args("GET k")),
        TxStep::Write(WriteCmd::IncrBy { key: b("s"), delta: 1 }),
        TxStep::Read(args("EXISTS k s nokey")),
    ];
    let reply = apply(&mut store, 10, tx(steps, vec![]));
    assert_eq!(
        reply,
        Frame::Array(vec![
            Frame::Null,
            Frame::ok(),
            Frame::Integer(2),
            Frame::bulk_copy(b"2"),
            Frame::Integer(1),
            Frame::Integer(2),
        ])
    );
}

#[test]
fn an_error_in_one_step_does_not_stop_the_others() {
    let mut store = Store::new();
    apply(&mut store, 1, set("word", "abc"));
    let steps = vec![TxStep::Write(WriteCmd::IncrBy { key: b("word"), delta: 1 }), TxStep::Write(set("after", "x"))];
    let Frame::Array(replies) = apply(&mut store, 2, tx(steps, vec![])) else { panic!("not an array") };
    assert!(matches!(replies[0], Frame::Error(_)));
    assert_eq!(replies[1], Frame::ok());
    assert!(store.get(b"after", 2).is_some());
}

#[test]
fn a_write_to_a_watched_key_aborts_and_changes_nothing() {
    let mut store = Store::new();
    apply(&mut store, 1, set("w", "old"));
    let seen = watch(&store, "w", 1);
    apply(&mut store, 2, set("w", "same-or-not"));
    let reply = apply(&mut store, 3, tx(vec![TxStep::Write(set("other", "x"))], vec![seen]));
    assert_eq!(reply, Frame::NullArray);
    assert!(store.get(b"other", 3).is_none(), "an aborted transaction wrote");
}

#[test]
fn untouched_watched_keys_let_it_run_even_missing_ones() {
    let mut store = Store::new();
    apply(&mut store, 1, set("w", "v"));
    let watched = vec![watch(&store, "w", 1), watch(&store, "missing", 1)];
    apply(&mut store, 2, set("unrelated-key", "x"));
    let reply = apply(&mut store, 3, tx(vec![TxStep::Write(set("w", "new"))], watched));
    assert_eq!(reply, Frame::Array(vec![Frame::ok()]));
}

#[test]
fn deleting_expiring_or_flushing_a_watched_key_aborts() {
    let mut store = Store::new();
    let run = |store: &mut Store, at, watched| apply(store, at, tx(vec![TxStep::Read(args("GET w"))], vec![watched]));
    // Deleted, and created again meanwhile (same value): still a change.
    apply(&mut store, 1, set("w", "v"));
    let seen = watch(&store, "w", 1);
    apply(&mut store, 2, WriteCmd::Del { keys: vec![b("w")] });
    apply(&mut store, 3, set("w", "v"));
    assert_eq!(run(&mut store, 4, seen), Frame::NullArray);
    // Expired between WATCH and EXEC, with no write at all.
    let ttl = SetTtl::At(100);
    apply(&mut store, 5, WriteCmd::Set { key: b("w"), value: b("v"), cond: SetCondition::Always, ttl, get: false });
    let seen = watch(&store, "w", 50);
    assert_eq!(run(&mut store, 150, seen), Frame::NullArray);
    // FLUSHALL touches every key, even a missing one.
    let seen = watch(&store, "never-written", 150);
    apply(&mut store, 160, WriteCmd::FlushAll);
    assert_eq!(run(&mut store, 170, seen), Frame::NullArray);
}

#[test]
fn stamps_survive_a_snapshot_so_replicas_decide_alike() {
    let mut store = Store::new();
    apply(&mut store, 1, set("w", "v"));
    let seen = watch(&store, "w", 1);
    apply(&mut store, 2, set("w", "changed"));
    let mut bytes = Vec::new();
    store.write_snapshot(&mut bytes).unwrap();
    let mut restored = Store::read_snapshot(&bytes[..]).unwrap();
    let cmd = tx(vec![TxStep::Write(set("x", "1"))], vec![seen]);
    assert_eq!(apply(&mut store, 3, cmd.clone()), Frame::NullArray);
    assert_eq!(apply(&mut restored, 3, cmd), Frame::NullArray);
    let seen = watch(&restored, "w", 3);
    let cmd = tx(vec![TxStep::Write(set("x", "2"))], vec![seen]);
    assert_eq!(apply(&mut store, 4, cmd.clone()), apply(&mut restored, 4, cmd));
}

#[test]
fn a_version_1_snapshot_without_stamps_is_still_read() {
    let mut store = Store::new();
    apply(&mut store, 1, set("k", "v"));
    let mut v2 = Vec::new();
    store.write_snapshot(&mut v2).unwrap();
    // Version 1 is version 2 without the stamps section (counter, count, one
    // written slot of 12 bytes) before the checksum.
    let body_end = v2.len() - 4 - (8 + 4 + 12);
    let mut v1 = v2[..body_end].to_vec();
    v1[8..12].copy_from_slice(&1u32.to_le_bytes());
    let crc = crc32fast::hash(&v1);
    v1.extend_from_slice(&crc.to_le_bytes());
    let restored = Store::read_snapshot(&v1[..]).unwrap();
    assert_eq!(restored.get(b"k", 1).and_then(|e| e.as_string()), Some(&b"v"[..]));
}

#[test]
fn setbit_moves_the_watch_stamp_even_when_the_bit_is_unchanged() {
    // Redis signals SETBIT's key as modified whatever the bit was.
    let mut store = Store::new();
    apply(&mut store, 1, set("k", "a"));
    let watched = watch(&store, "k", 1);
    let same = WriteCmd::SetBit { key: b("k"), offset: 7, bit: true, max_len: 64 };
    assert_eq!(apply(&mut store, 2, same), Frame::Integer(1));
    assert_eq!(apply(&mut store, 3, tx(vec![TxStep::Read(args("GET k"))], vec![watched])), Frame::NullArray);
}
