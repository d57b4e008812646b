//! What recording one command's metrics costs on the request path: the
//! lock-free slots `Metrics::observe_command` uses now, against the
//! prometheus-client `Family` + `Histogram` pair it used before, on one
//! thread and on two threads recording the same command at once.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use seshat_server::metrics::Metrics;

const LATENCY: Duration = Duration::from_micros(70);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    cmd: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CmdLabel {
    cmd: &'static str,
}

/// The previous implementation: two labelled families, a total counter.
struct FamilyMetrics {
    commands: Family<OutcomeLabels, Counter>,
    latency: Family<CmdLabel, Histogram>,
    total: Counter,
}

impl FamilyMetrics {
    fn new() -> Self {
        FamilyMetrics {
            commands: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_05, 2.0, 18))),
            total: Counter::default(),
        }
    }

    fn observe(&self, cmd: &'static str, ok: bool, elapsed: Duration) {
        self.commands.get_or_create(&OutcomeLabels { cmd, outcome: if ok { "ok" } else { "error" } }).inc();
        self.total.inc();
        self.latency.get_or_create(&CmdLabel { cmd }).observe(elapsed.as_secs_f64());
    }
}

/// Wall time of `iters` observations split over `threads` threads.
fn run_threads(threads: u64, iters: u64, observe: &(dyn Fn() + Sync)) -> Duration {
    let per_thread = iters.div_ceil(threads);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| (0..per_thread).for_each(|_| observe()));
        }
    });
    start.elapsed()
}

fn observe(c: &mut Criterion) {
    // The connection reports the command table's own name, as here.
    let set = seshat_server::commands::lookup(b"set").expect("set is a command").name;
    let slots = Metrics::new();
    let families = FamilyMetrics::new();
    let mut group = c.benchmark_group("observe_command");
    for threads in [1, 2] {
        group.bench_function(format!("slots_{threads}_threads"), |b| {
            b.iter_custom(|iters| run_threads(threads, iters, &|| slots.observe_command(black_box(set), true, LATENCY)))
        });
        group.bench_function(format!("prometheus_family_{threads}_threads"), |b| {
            b.iter_custom(|iters| run_threads(threads, iters, &|| families.observe(black_box(set), true, LATENCY)))
        });
    }
    group.finish();
}

criterion_group!(benches, observe);
criterion_main!(benches);
