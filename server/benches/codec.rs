//! RESP codec micro-benchmarks: decoding a pipelined batch of SET/GET requests
//! (as `redis-benchmark -P 16` sends them) and encoding their replies.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use seshat_server::resp::{encode, DecoderLimits, Frame, Protocol, RequestDecoder};
use tokio_util::codec::Decoder;

const BATCH: usize = 64;

/// `BATCH` requests alternating SET key value / GET key (16-byte keys, 32-byte values).
fn pipeline() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..BATCH {
        let key = format!("key:{i:012}");
        if i % 2 == 0 {
            let value = format!("{i:032}");
            out.extend_from_slice(format!("*3\r\n$3\r\nSET\r\n$16\r\n{key}\r\n$32\r\n{value}\r\n").as_bytes());
        } else {
            out.extend_from_slice(format!("*2\r\n$3\r\nGET\r\n$16\r\n{key}\r\n").as_bytes());
        }
    }
    out
}

fn decode(c: &mut Criterion) {
    let wire = pipeline();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("pipelined_set_get", |b| {
        b.iter_batched_ref(
            || (RequestDecoder::new(DecoderLimits::default()), BytesMut::from(&wire[..])),
            |(decoder, buf)| {
                let mut n = 0;
                while let Some(args) = decoder.decode(buf).expect("valid input") {
                    n += args.len();
                }
                n
            },
            BatchSize::SmallInput,
        )
    });
    // The same batch arriving in 7-byte reads: exercises the resumable state.
    group.bench_function("pipelined_set_get_7_byte_reads", |b| {
        b.iter_batched_ref(
            || RequestDecoder::new(DecoderLimits::default()),
            |decoder| {
                let mut buf = BytesMut::with_capacity(wire.len());
                let mut n = 0;
                for chunk in wire.chunks(7) {
                    buf.extend_from_slice(chunk);
                    while let Some(args) = decoder.decode(&mut buf).expect("valid input") {
                        n += args.len();
                    }
                }
                n
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn encode_replies(c: &mut Criterion) {
    let value = Bytes::from(vec![b'v'; 32]);
    let replies: Vec<Frame> =
        (0..BATCH).map(|i| if i % 2 == 0 { Frame::ok() } else { Frame::Bulk(value.clone()) }).collect();
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(BATCH as u64));
    for proto in [Protocol::Resp2, Protocol::Resp3] {
        group.bench_function(format!("ok_and_bulk_{proto:?}"), |b| {
            let mut out = BytesMut::with_capacity(4096);
            b.iter(|| {
                out.clear();
                for reply in &replies {
                    encode(reply, proto, &mut out);
                }
                out.len()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    targets = decode, encode_replies
}
criterion_main!(benches);
