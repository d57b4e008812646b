//! State machine micro-benchmarks: `Store::apply` of SET and INCR, a batch of
//! SETs into a keyspace much larger than the CPU cache (what a pipelined
//! load applies), and the whole parse → apply / parse → read path a request
//! takes on the leader.

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use seshat_server::commands::{execute_read, parse, Limits, Parsed};
use seshat_server::store::{Operation, SetCondition, SetTtl, Store, WriteCmd};

const KEYS: usize = 10_000;
const NOW: u64 = 1_700_000_000_000;

fn key(i: usize) -> Bytes {
    Bytes::from(format!("key:{i:012}"))
}

fn set_op(i: usize) -> Operation {
    Operation {
        at_ms: NOW,
        cmd: WriteCmd::Set {
            key: key(i),
            value: Bytes::from(format!("{i:032}")),
            cond: SetCondition::Always,
            ttl: SetTtl::Clear,
            get: false,
        },
    }
}

fn loaded_store() -> Store {
    let mut store = Store::new();
    for i in 0..KEYS {
        store.apply(&set_op(i));
    }
    store
}

fn apply(c: &mut Criterion) {
    let sets: Vec<Operation> = (0..KEYS).map(set_op).collect();
    let incrs: Vec<Operation> = (0..KEYS)
        .map(|i| Operation { at_ms: NOW, cmd: WriteCmd::IncrBy { key: Bytes::from(format!("counter:{i}")), delta: 1 } })
        .collect();
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(KEYS as u64));
    group.bench_function("set_new_keys", |b| {
        b.iter_batched_ref(
            Store::new,
            |store| sets.iter().map(|op| store.apply(op)).filter(|r| r.is_error()).count(),
            BatchSize::LargeInput,
        )
    });
    let mut store = loaded_store();
    group.bench_function("set_overwrite", |b| {
        b.iter(|| sets.iter().map(|op| store.apply(op)).filter(|r| r.is_error()).count())
    });
    let mut store = Store::new();
    group
        .bench_function("incr", |b| b.iter(|| incrs.iter().map(|op| store.apply(op)).filter(|r| r.is_error()).count()));
    group.finish();
}

/// Keys in the store the batch benchmark writes into: ~100 MB of entries, so
/// nearly every lookup misses the cache, as on a loaded server.
const LARGE_KEYS: usize = 1_000_000;
/// Writes per batch: 50 clients pipelining 16 SETs each, coalesced.
const BATCH: usize = 800;

fn apply_batch(c: &mut Criterion) {
    let mut store = Store::new();
    for i in 0..LARGE_KEYS {
        store.apply(&set_op(i));
    }
    // Keys spread over the whole keyspace in a scrambled order (a fixed
    // multiplicative hash, so runs compare).
    let scrambled = |n: usize| (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) % LARGE_KEYS;
    let batches: Vec<Operation> = (0..64)
        .map(|b| {
            let ops = (0..BATCH).map(|i| set_op(scrambled(b * BATCH + i))).collect();
            Operation { at_ms: NOW, cmd: WriteCmd::Batch { ops } }
        })
        .collect();
    let mut group = c.benchmark_group("apply_batch");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut next = batches.iter().cycle();
    group.bench_function("set_800_into_1m_keys", |b| {
        b.iter(|| store.apply(next.next().expect("cycle never ends")).is_error())
    });
    group.finish();
}

fn request_path(c: &mut Criterion) {
    let limits = Limits::default();
    let set_args: Vec<Vec<Bytes>> =
        (0..KEYS).map(|i| vec![Bytes::from("SET"), key(i), Bytes::from(format!("{i:032}"))]).collect();
    let get_args: Vec<Vec<Bytes>> = (0..KEYS).map(|i| vec![Bytes::from("GET"), key(i)]).collect();
    let mut group = c.benchmark_group("request");
    group.throughput(Throughput::Elements(KEYS as u64));
    let mut store = loaded_store();
    group.bench_function("parse_apply_set", |b| {
        b.iter(|| {
            let mut errors = 0;
            for args in &set_args {
                let Ok(Parsed::Write(cmd)) = parse(args, &limits, NOW) else { panic!("SET parses") };
                errors += usize::from(store.apply(&Operation { at_ms: NOW, cmd }).is_error());
            }
            errors
        })
    });
    let store = loaded_store();
    group.bench_function("parse_execute_get", |b| {
        b.iter(|| {
            let mut found = 0;
            for args in &get_args {
                let Ok(Parsed::Read(cmd)) = parse(args, &limits, NOW) else { panic!("GET parses") };
                found += usize::from(!matches!(execute_read(&cmd, &store, NOW), seshat_server::resp::Frame::Null));
            }
            found
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(10);
    targets = apply, apply_batch, request_path
}
criterion_main!(benches);
