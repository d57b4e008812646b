//! `etcd-load`: drives etcd the way `redis-benchmark` drives a RESP server, so the
//! two are comparable in one table.
//!
//! C clients, each with exactly one request outstanding, share K HTTP/2
//! connections and issue N requests in total (`Put` or a linearizable `Range`)
//! on random 16-byte keys `key:%012d` from a key space, with fixed-size values.
//! Like `redis-benchmark` it runs on one thread (a current-thread Tokio runtime),
//! so both clients take at most one core from the servers on this machine.
//! It prints one JSON line: requests/s and the latency percentiles.
//!
//! It speaks etcd's native gRPC API (the one etcd's own `benchmark` tool and every
//! etcd client use). Only the two request messages are declared, with the field
//! numbers of etcd's `rpc.proto`; replies are decoded into an empty message (prost
//! skips unknown fields), because only the status matters here.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use http::uri::PathAndQuery;
use tonic::client::Grpc;
use tonic::codec::ProstCodec;
use tonic::transport::{Channel, Endpoint};

/// `etcdserverpb.PutRequest` (fields 1 and 2 of etcd's rpc.proto; the rest default).
#[derive(Clone, PartialEq, prost::Message)]
struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `etcdserverpb.RangeRequest` with only `key`: a single-key, linearizable read
/// (`serializable` left false), as Seshat's default GET.
#[derive(Clone, PartialEq, prost::Message)]
struct RangeRequest {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
}

/// Any reply: its fields are skipped, only the gRPC status is checked.
#[derive(Clone, PartialEq, prost::Message)]
struct Ignored {}

/// The operation under load.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Op {
    /// `KV/Put`, the counterpart of SET.
    Put,
    /// `KV/Range` on one key, the counterpart of GET.
    Get,
}

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// etcd client endpoints, comma-separated host:port; connections go round-robin.
    #[arg(long, value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    /// put or get.
    #[arg(long, value_enum)]
    op: Op,
    /// Concurrent clients, each with one request in flight (redis-benchmark -c).
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// HTTP/2 connections the clients share. gRPC multiplexes requests on a
    /// connection, and etcd clients use one per endpoint; measured here, one
    /// connection gives etcd more throughput than one per client.
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Total requests (redis-benchmark -n).
    #[arg(short = 'n', long, default_value_t = 100_000)]
    requests: u64,
    /// Keys are key:%012d with a random number below this (redis-benchmark -r).
    #[arg(long, default_value_t = 100_000)]
    keyspace: u64,
    /// Value size in bytes (redis-benchmark -d).
    #[arg(long, default_value_t = 32)]
    value_size: usize,
    /// Keys in order key:0, key:1, ... instead of random (to load a key space fully).
    #[arg(long)]
    sequential: bool,
    /// Per-request timeout in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
}

/// What the clients share on the one thread: the request budget and the results.
#[derive(Default)]
struct Tally {
    remaining: u64,
    latencies_ns: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

/// xorshift64*: a few instructions per key, so the client spends its time on I/O.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    let (tally, elapsed) = local.block_on(&rt, run(&args))?;
    let mut lat = tally.latencies_ns;
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        match lat.len() {
            0 => f64::NAN,
            n => lat[((p / 100.0 * n as f64) as usize).min(n - 1)] as f64 / 1e6,
        }
    };
    println!(
        "{{\"rps\": {:.2}, \"p50_ms\": {:.3}, \"p99_ms\": {:.3}, \"requests\": {}, \"errors\": {}, \"seconds\": {:.3}}}",
        lat.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        pct(50.0),
        pct(99.0),
        lat.len(),
        tally.errors,
        elapsed.as_secs_f64(),
    );
    if let Some(e) = tally.first_error {
        eprintln!("etcd-load: {} request(s) failed; first error: {e}", tally.errors);
        std::process::exit(1);
    }
    Ok(())
}

async fn run(args: &Args) -> Result<(Tally, Duration), Box<dyn std::error::Error>> {
    let conns = args.conns.max(1);
    let mut channels = Vec::with_capacity(conns);
    for i in 0..conns {
        let ep = &args.endpoints[i % args.endpoints.len()];
        let channel: Channel = Endpoint::from_shared(format!("http://{ep}"))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await?;
        channels.push(channel);
    }
    let tally = Rc::new(RefCell::new(Tally {
        remaining: args.requests,
        latencies_ns: Vec::with_capacity(args.requests as usize),
        ..Tally::default()
    }));
    let value = vec![b'x'; args.value_size];
    let timeout = Duration::from_millis(args.timeout_ms);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(args.clients);
    for c in 0..args.clients {
        let grpc = Grpc::new(channels[c % conns].clone());
        let tally = tally.clone();
        let value = value.clone();
        let keys = Keys {
            space: args.keyspace.max(1),
            sequential: args.sequential,
            total: args.requests,
            rng: Rng(0x9E37_79B9_7F4A_7C15 ^ (c as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9)),
        };
        let op = args.op;
        tasks.push(tokio::task::spawn_local(async move { client(grpc, op, keys, value, timeout, tally).await }));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = start.elapsed();
    let tally = Rc::try_unwrap(tally).map_err(|_| "a client task outlived the run")?.into_inner();
    Ok((tally, elapsed))
}

/// How a client picks its keys.
struct Keys {
    space: u64,
    sequential: bool,
    total: u64,
    rng: Rng,
}

impl Keys {
    /// `key:%012d` (16 bytes, as redis-benchmark's `key:__rand_int__`) for the
    /// request that leaves `remaining` requests in the budget.
    fn next(&mut self, remaining: u64) -> Vec<u8> {
        let n = if self.sequential { (self.total - remaining - 1) % self.space } else { self.rng.below(self.space) };
        format!("key:{n:012}").into_bytes()
    }
}

/// One client: takes a request from the shared budget, sends it, waits for the
/// reply, records the latency; repeats until the budget is spent.
async fn client(
    mut grpc: Grpc<Channel>,
    op: Op,
    mut keys: Keys,
    value: Vec<u8>,
    timeout: Duration,
    tally: Rc<RefCell<Tally>>,
) {
    loop {
        let key = {
            let mut t = tally.borrow_mut();
            if t.remaining == 0 {
                return;
            }
            t.remaining -= 1;
            keys.next(t.remaining)
        };
        let t0 = Instant::now();
        let result = match grpc.ready().await {
            Err(e) => Err(e.to_string()),
            Ok(()) => match op {
                Op::Put => {
                    let mut req = tonic::Request::new(PutRequest { key, value: value.clone() });
                    req.set_timeout(timeout);
                    grpc.unary(
                        req,
                        PathAndQuery::from_static("/etcdserverpb.KV/Put"),
                        ProstCodec::<PutRequest, Ignored>::default(),
                    )
                    .await
                    .map(drop)
                    .map_err(|s| s.to_string())
                }
                Op::Get => {
                    let mut req = tonic::Request::new(RangeRequest { key });
                    req.set_timeout(timeout);
                    grpc.unary(
                        req,
                        PathAndQuery::from_static("/etcdserverpb.KV/Range"),
                        ProstCodec::<RangeRequest, Ignored>::default(),
                    )
                    .await
                    .map(drop)
                    .map_err(|s| s.to_string())
                }
            },
        };
        let mut t = tally.borrow_mut();
        match result {
            Ok(()) => t.latencies_ns.push(t0.elapsed().as_nanos() as u64),
            Err(e) => {
                t.errors += 1;
                t.first_error.get_or_insert(e);
            }
        }
    }
}
