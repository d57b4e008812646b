//! Prometheus metrics for `GET /metrics`.
//!
//! Command counters and latency histograms are updated on the hot path,
//! without a lock ([`CommandStats`]); Raft and storage gauges are refreshed from
//! the node's own state at scrape time, so they cost nothing between scrapes.

mod commands;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use self::commands::CommandStats;
use crate::raft::RaftNode;

/// Labels of the per-command counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    /// Command name (lowercase), or `unknown`.
    pub cmd: &'static str,
    /// `ok` or `error`.
    pub outcome: &'static str,
}

/// Labels of the per-command latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CmdLabel {
    /// Command name (lowercase), or `unknown`.
    pub cmd: &'static str,
}

/// All server metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Per-command counters and latencies; their sum is `INFO`'s
    /// `total_commands_processed`.
    pub commands: Arc<CommandStats>,
    /// Open client connections.
    pub connections: Gauge,
    /// Client connections accepted since start.
    pub connections_total: Counter,
    /// Commands forwarded from this follower to the leader.
    pub forwarded: Counter,
    raft: RaftGauges,
}

#[derive(Default)]
struct RaftGauges {
    term: Gauge,
    is_leader: Gauge,
    last_log_index: Gauge,
    committed_index: Gauge,
    applied_index: Gauge,
    snapshot_index: Gauge,
    purged_index: Gauge,
    replication_lag: Family<PeerLabel, Gauge>,
    snapshot_size_bytes: Gauge,
    snapshot_build_seconds: Gauge<f64, AtomicU64>,
    snapshots_built: Gauge,
    snapshots_installed: Gauge,
    log_fsyncs: Gauge,
    log_entries_synced: Gauge,
    write_entries_proposed: Gauge,
    writes_proposed: Gauge,
    replication_rounds_paced: Gauge,
    read_barrier_rounds: Gauge,
    reads_barriered: Gauge,
    read_rounds_by_openraft: Gauge,
    log_disk_bytes: Gauge,
    disk_full: Gauge,
    keys: Gauge,
}

/// Label naming a peer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabel {
    /// Peer node id.
    pub peer: String,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("seshat");
        let commands = Arc::new(CommandStats::new());
        let connections = Gauge::default();
        let connections_total = Counter::default();
        let forwarded = Counter::default();
        registry.register_collector(Box::new(commands.clone()));
        registry.register("connected_clients", "Open client connections", connections.clone());
        registry.register("connections", "Client connections accepted", connections_total.clone());
        registry.register(
            "forwarded_commands",
            "Commands forwarded from this follower to the leader",
            forwarded.clone(),
        );
        let raft = RaftGauges::default();
        let r = &mut registry;
        r.register("raft_term", "Current Raft term", raft.term.clone());
        r.register("raft_is_leader", "1 when this node is the leader", raft.is_leader.clone());
        r.register("raft_last_log_index", "Index of the last log entry", raft.last_log_index.clone());
        r.register("raft_committed_index", "Highest index known committed", raft.committed_index.clone());
        r.register("raft_applied_index", "Highest index applied to the state machine", raft.applied_index.clone());
        r.register("raft_snapshot_index", "Index covered by the latest snapshot", raft.snapshot_index.clone());
        r.register("raft_purged_index", "Index up to which the log is purged", raft.purged_index.clone());
        r.register(
            "raft_replication_lag_entries",
            "Leader only: entries a peer is behind the leader's last log index",
            raft.replication_lag.clone(),
        );
        r.register("snapshot_size_bytes", "Size of the latest snapshot file", raft.snapshot_size_bytes.clone());
        r.register(
            "snapshot_build_seconds",
            "Duration of the latest snapshot build",
            raft.snapshot_build_seconds.clone(),
        );
        r.register("snapshots_built", "Snapshots built by this node", raft.snapshots_built.clone());
        r.register("snapshots_installed", "Snapshots installed from a leader", raft.snapshots_installed.clone());
        r.register(
            "log_fsyncs",
            "Fsyncs issued for log appends (group commit: fewer than entries)",
            raft.log_fsyncs.clone(),
        );
        r.register("log_entries_synced", "Log entries made durable", raft.log_entries_synced.clone());
        r.register(
            "write_entries_proposed",
            "Log entries proposed for client writes (coalescing: fewer than writes)",
            raft.write_entries_proposed.clone(),
        );
        r.register("writes_proposed", "Client writes proposed", raft.writes_proposed.clone());
        r.register(
            "replication_rounds_paced",
            "AppendEntries rounds held back from followers the commits did not need",
            raft.replication_rounds_paced.clone(),
        );
        r.register(
            "read_barrier_rounds",
            "Read-barrier rounds run (sharing: fewer than reads)",
            raft.read_barrier_rounds.clone(),
        );
        r.register("reads_barriered", "Reads answered by read-barrier rounds", raft.reads_barriered.clone());
        r.register(
            "read_rounds_by_openraft",
            "Read-barrier rounds decided by openraft: lease rounds, and ReadIndex rounds that asking a quorum directly could not decide",
            raft.read_rounds_by_openraft.clone(),
        );
        r.register("log_disk_bytes", "Bytes of WAL on disk", raft.log_disk_bytes.clone());
        r.register("disk_full", "1 while log writes fail for lack of space", raft.disk_full.clone());
        r.register("keys", "Keys in the applied state", raft.keys.clone());
        Metrics { registry: Mutex::new(registry), commands, connections, connections_total, forwarded, raft }
    }

    /// Records one command's outcome and latency.
    pub fn observe_command(&self, cmd: &'static str, ok: bool, elapsed: Duration) {
        self.commands.observe(cmd, ok, elapsed);
    }

    /// Renders the Prometheus text format, refreshing Raft gauges from `node`.
    pub fn render(&self, node: &RaftNode) -> String {
        self.refresh(node);
        let mut out = String::new();
        let registry = self.registry.lock().expect("metrics registry poisoned");
        if let Err(e) = encode(&mut out, &registry) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }

    fn refresh(&self, node: &RaftNode) {
        let m = node.metrics();
        let g = &self.raft;
        let idx = |l: Option<u64>| l.map_or(-1, |i| i as i64);
        g.term.set(m.current_term as i64);
        g.is_leader.set(i64::from(m.state.is_leader()));
        g.last_log_index.set(idx(m.last_log_index));
        g.committed_index.set(idx(m.local_committed.map(|l| l.index)));
        g.applied_index.set(idx(m.last_applied.map(|l| l.index)));
        g.snapshot_index.set(idx(m.snapshot.map(|l| l.index)));
        g.purged_index.set(idx(m.purged.map(|l| l.index)));
        g.replication_lag.clear();
        if let (Some(repl), Some(last)) = (&m.replication, m.last_log_index) {
            for (peer, matched) in repl.iter() {
                let matched = matched.as_ref().map_or(0, |l| l.index);
                g.replication_lag
                    .get_or_create(&PeerLabel { peer: peer.to_string() })
                    .set(last.saturating_sub(matched) as i64);
            }
        }
        let stats = node.state_machine().stats();
        g.snapshot_size_bytes.set(stats.last_size_bytes.load(Ordering::Relaxed) as i64);
        g.snapshot_build_seconds.set(stats.last_build_millis.load(Ordering::Relaxed) as f64 / 1000.0);
        g.snapshots_built.set(stats.built.load(Ordering::Relaxed) as i64);
        g.snapshots_installed.set(stats.installed.load(Ordering::Relaxed) as i64);
        let log = node.log_status();
        g.log_fsyncs.set(log.fsyncs.load(Ordering::Relaxed) as i64);
        g.log_entries_synced.set(log.entries_synced.load(Ordering::Relaxed) as i64);
        g.log_disk_bytes.set(log.disk_bytes.load(Ordering::Relaxed) as i64);
        let writes = node.write_batching();
        g.write_entries_proposed.set(writes.rounds.load(Ordering::Relaxed) as i64);
        g.writes_proposed.set(writes.requests.load(Ordering::Relaxed) as i64);
        g.replication_rounds_paced.set(node.replication_pacer().held() as i64);
        let reads = node.read_batching();
        g.read_barrier_rounds.set(reads.iter().map(|c| c.rounds.load(Ordering::Relaxed) as i64).sum());
        g.reads_barriered.set(reads.iter().map(|c| c.requests.load(Ordering::Relaxed) as i64).sum());
        g.read_rounds_by_openraft.set(node.read_rounds_by_openraft() as i64);
        g.disk_full.set(i64::from(log.disk_full.load(Ordering::Relaxed)));
        g.keys.set(node.state_machine().read().store.len() as i64);
    }
}

/// Connection ids, shared by `CLIENT ID` and `CLIENT LIST`.
#[derive(Debug, Default)]
pub struct IdGen(AtomicU64);

impl IdGen {
    /// The next id (starting at 1).
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Shared handle.
pub type SharedMetrics = Arc<Metrics>;
