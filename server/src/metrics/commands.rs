//! Per-command counters and latency histograms that the request path updates
//! without taking a lock.
//!
//! prometheus-client's `Family` finds a label set's metric by hashing it
//! under a read lock, and its `Histogram` takes a write lock on every
//! observation. Every command of every connection went through three such
//! locks, so on a multi-threaded runtime all connections serialised on the
//! histogram of their command. Here each command name owns a fixed slot of
//! atomics, allocated once; the scrape turns the slots into the same
//! exposition the `Family`s gave.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hashbrown::HashTable;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::commands;

/// Names observed besides the command table's: a request naming no known
/// command, and the marker a follower sends ahead of forwarded commands.
const EXTRA_NAMES: [&str; 2] = ["seshat.forwarded", "unknown"];

/// Upper bound of the first latency bucket; each next one doubles it.
const FIRST_BUCKET_NANOS: u64 = 50_000;
/// Finite latency buckets: 50 µs up to 50 µs × 2^17 ≈ 6.6 s. One more counts
/// everything above.
const FINITE_BUCKETS: usize = 18;

/// One command name's outcomes and latencies.
#[derive(Debug)]
struct Slot {
    name: &'static str,
    ok: AtomicU64,
    errors: AtomicU64,
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; FINITE_BUCKETS + 1],
    /// Total latency, in nanoseconds (wraps after 584 years).
    sum_nanos: AtomicU64,
}

impl Slot {
    fn new(name: &'static str) -> Self {
        Slot {
            name,
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

/// The bucket a latency falls in: the first whose upper bound is at least
/// `nanos` (Prometheus's `le`), or the last, `+Inf`.
fn bucket_of(nanos: u64) -> usize {
    // Bucket i holds (50 µs × 2^(i-1), 50 µs × 2^i]; for nanos in it,
    // (nanos - 1) / 50 µs has exactly i significant bits.
    let multiples = nanos.saturating_sub(1) / FIRST_BUCKET_NANOS;
    ((u64::BITS - multiples.leading_zeros()) as usize).min(FINITE_BUCKETS)
}

/// Spreads a name's address over the table (Fibonacci hashing: the low bits
/// of nearby addresses differ little).
fn address_hash(address: usize) -> u64 {
    (address as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Upper bound of finite bucket `i`, in seconds.
fn bucket_bound_secs(i: usize) -> f64 {
    (FIRST_BUCKET_NANOS << i) as f64 / 1e9
}

/// Counters and latency histograms for every command name, by name.
#[derive(Debug)]
pub struct CommandStats {
    /// Sorted by name, so that a name can be binary-searched.
    slots: Box<[Slot]>,
    /// Slot index by the address of the name's bytes. Connections report
    /// the command table's own `&'static str`s, so the slot is found with a
    /// multiply and a probe. A binary search by content, which alone costs
    /// about what the replaced locks did (~50 ns), is left for other copies
    /// of a name, such as a string literal elsewhere.
    by_address: HashTable<(usize, usize)>,
}

impl Default for CommandStats {
    fn default() -> Self {
        Self::new()
    }
}

impl CommandStats {
    /// A zeroed slot for every top-level command, for `unknown` (a request
    /// naming no command) and for `seshat.forwarded` (a follower's marker).
    pub fn new() -> Self {
        let mut names: Vec<&'static str> = commands::table().iter().map(|spec| spec.name).collect();
        names.extend(EXTRA_NAMES);
        names.sort_unstable();
        names.dedup();
        let slots: Box<[Slot]> = names.into_iter().map(Slot::new).collect();
        let mut by_address = HashTable::with_capacity(slots.len());
        for (i, slot) in slots.iter().enumerate() {
            let address = slot.name.as_ptr() as usize;
            by_address.insert_unique(address_hash(address), (address, i), |&(a, _)| address_hash(a));
        }
        CommandStats { slots, by_address }
    }

    fn slot(&self, name: &str) -> Option<&Slot> {
        let address = name.as_ptr() as usize;
        let index = match self.by_address.find(address_hash(address), |&(a, _)| a == address) {
            // The same address and length is the same name. The length
            // check matters if the compiler laid a name out as the prefix of
            // another ("get" inside "getex"): both then share an address.
            Some(&(_, i)) if self.slots[i].name.len() == name.len() => Some(i),
            _ => self.slots.binary_search_by(|slot| slot.name.cmp(name)).ok(),
        };
        index.map(|i| &self.slots[i])
    }

    /// Records one command's outcome and latency. `name` is a command
    /// table name, `unknown` or `seshat.forwarded`; any other is counted as
    /// `unknown`.
    pub fn observe(&self, name: &str, ok: bool, elapsed: Duration) {
        debug_assert!(self.slot(name).is_some(), "no metrics slot for command {name:?}");
        let Some(slot) = self.slot(name).or_else(|| self.slot("unknown")) else { return };
        let outcome = if ok { &slot.ok } else { &slot.errors };
        outcome.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        slot.buckets[bucket_of(nanos)].fetch_add(1, Ordering::Relaxed);
        slot.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Commands observed so far, of every name and outcome (`INFO`'s
    /// `total_commands_processed`).
    pub fn total(&self) -> u64 {
        self.slots.iter().map(|s| s.ok.load(Ordering::Relaxed) + s.errors.load(Ordering::Relaxed)).sum()
    }
}

/// `cmd` and `outcome` labels of `seshat_commands_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    cmd: &'static str,
    outcome: &'static str,
}

/// `cmd` label of `seshat_command_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CmdLabel {
    cmd: &'static str,
}

/// A histogram's values as read at scrape time.
struct HistogramSnapshot {
    sum_secs: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl EncodeMetric for HistogramSnapshot {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum_secs, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Exposes the slots as `commands_total{cmd,outcome}` and
/// `command_duration_seconds{cmd}`, each label set only once it has been
/// observed (as a `Family` would).
impl Collector for CommandStats {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut counters = encoder.encode_descriptor(
            "commands",
            "Commands processed, by name and outcome",
            None,
            MetricType::Counter,
        )?;
        for slot in self.slots.iter() {
            for (outcome, value) in [("ok", &slot.ok), ("error", &slot.errors)] {
                let value = value.load(Ordering::Relaxed);
                if value > 0 {
                    let labels = CommandLabels { cmd: slot.name, outcome };
                    counters.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&value, None)?;
                }
            }
        }
        let mut histograms = encoder.encode_descriptor(
            "command_duration_seconds",
            "Command latency as seen by this node",
            None,
            MetricType::Histogram,
        )?;
        for slot in self.slots.iter() {
            let counts: Vec<u64> = slot.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
            let count: u64 = counts.iter().sum();
            if count == 0 {
                continue;
            }
            let buckets = counts
                .iter()
                .enumerate()
                .map(|(i, &n)| (if i < FINITE_BUCKETS { bucket_bound_secs(i) } else { f64::MAX }, n))
                .collect();
            let snapshot =
                HistogramSnapshot { sum_secs: slot.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9, count, buckets };
            snapshot.encode(histograms.encode_family(&CmdLabel { cmd: slot.name })?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_prometheus_le() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(50_000), 0);
        assert_eq!(bucket_of(50_001), 1);
        assert_eq!(bucket_of(100_000), 1);
        assert_eq!(bucket_of(100_001), 2);
        assert_eq!(bucket_of(200_000), 2);
        assert_eq!(bucket_of(FIRST_BUCKET_NANOS << 17), 17);
        assert_eq!(bucket_of((FIRST_BUCKET_NANOS << 17) + 1), FINITE_BUCKETS);
        assert_eq!(bucket_of(u64::MAX), FINITE_BUCKETS);
        for i in 0..FINITE_BUCKETS {
            let bound = FIRST_BUCKET_NANOS << i;
            assert_eq!(bucket_of(bound), i, "bound of bucket {i}");
            assert!((bucket_bound_secs(i) - bound as f64 / 1e9).abs() < 1e-12);
        }
    }

    #[test]
    fn every_name_the_connection_reports_has_a_slot() {
        let stats = CommandStats::new();
        for spec in commands::table() {
            assert!(stats.slot(spec.name).is_some(), "{}", spec.name);
        }
        for name in EXTRA_NAMES {
            assert!(stats.slot(name).is_some(), "{name}");
        }
    }

    #[test]
    fn a_name_is_found_by_content_as_well_as_by_address() {
        let stats = CommandStats::new();
        let copy = String::from("getex");
        assert_eq!(stats.slot(&copy).unwrap().name, "getex");
        // A prefix of a table name: same address, other name.
        let getex = commands::table().iter().find(|s| s.name == "getex").unwrap().name;
        assert_eq!(stats.slot(&getex[..3]).unwrap().name, "get");
        assert!(stats.slot("nosuchcommand").is_none());
    }

    #[test]
    fn totals_count_every_outcome() {
        let stats = CommandStats::new();
        stats.observe("set", true, Duration::from_micros(70));
        stats.observe("set", false, Duration::from_micros(70));
        stats.observe("get", true, Duration::from_secs(30));
        assert_eq!(stats.total(), 3);
        let set = stats.slot("set").unwrap();
        assert_eq!(set.buckets[1].load(Ordering::Relaxed), 2);
        assert_eq!(set.sum_nanos.load(Ordering::Relaxed), 140_000);
        assert_eq!(stats.slot("get").unwrap().buckets[FINITE_BUCKETS].load(Ordering::Relaxed), 1);
    }

    #[test]
    fn exposition_matches_a_prometheus_family() {
        let stats = std::sync::Arc::new(CommandStats::new());
        stats.observe("set", true, Duration::from_micros(70));
        stats.observe("set", false, Duration::from_millis(1));
        let mut registry = prometheus_client::registry::Registry::with_prefix("seshat");
        registry.register_collector(Box::new(stats));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "# TYPE seshat_commands counter",
            r#"seshat_commands_total{cmd="set",outcome="ok"} 1"#,
            r#"seshat_commands_total{cmd="set",outcome="error"} 1"#,
            "# TYPE seshat_command_duration_seconds histogram",
            r#"seshat_command_duration_seconds_sum{cmd="set"} 0.00107"#,
            r#"seshat_command_duration_seconds_count{cmd="set"} 2"#,
            r#"seshat_command_duration_seconds_bucket{le="0.00005",cmd="set"} 0"#,
            r#"seshat_command_duration_seconds_bucket{le="0.0001",cmd="set"} 1"#,
            r#"seshat_command_duration_seconds_bucket{le="0.0016",cmd="set"} 2"#,
            r#"seshat_command_duration_seconds_bucket{le="6.5536",cmd="set"} 2"#,
            r#"seshat_command_duration_seconds_bucket{le="+Inf",cmd="set"} 2"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
        assert!(!text.contains(r#"cmd="get""#), "unobserved commands are left out:\n{text}");
    }
}
