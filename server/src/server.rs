//! `seshat serve`: binds the listeners, starts the Raft node, and runs the
//! RESP, HTTP and Raft servers plus background maintenance until SIGINT or
//! SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::commands::Limits;
use crate::conn::{serve_resp, ConnContext, FollowerMode};
use crate::http::{router, HttpState};
use crate::kv::{now_ms, KvConfig, KvService, ReadConsistency};
use crate::metrics::Metrics;
use crate::raft::{NodeAddr, NodeId, RaftNode, RaftNodeConfig};
use crate::resp::DecoderLimits;
use crate::store::WriteCmd;

/// Largest single request a client may send (all arguments together).
const MAX_REQUEST_BYTES: usize = 64 << 20;
/// How often the leader looks for expired keys to delete.
const EXPIRY_SWEEP_INTERVAL: Duration = Duration::from_millis(100);
/// Keys deleted per sweep entry (bounds one log entry's size).
const EXPIRY_SWEEP_BATCH: usize = 512;
/// A snapshot is forced once the log held in memory exceeds both this and a
/// quarter of the last snapshot's size, whatever the entry count. Entry count
/// alone cannot bound memory: one pipelined batch entry may hold hundreds of
/// writes. Relative to the snapshot, a snapshot's cost stays proportional to
/// the log it retires (as Redis's AOF rewrite is triggered by growth).
const SNAPSHOT_LOG_MIN_BYTES: u64 = 8 << 20;
/// Longest the size trigger waits for the snapshot it asked for.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(60);

/// Settings of one server process (see `seshat serve --help`).
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Pinned node id.
    pub node_id: Option<NodeId>,
    /// RESP listen address.
    pub resp_addr: SocketAddr,
    /// HTTP listen address.
    pub http_addr: SocketAddr,
    /// Raft listen address.
    pub raft_addr: SocketAddr,
    /// Host advertised to peers and clients.
    pub advertise_host: String,
    /// Admin bearer token.
    pub admin_token: Option<String>,
    /// Follower behaviour.
    pub follower_mode: FollowerMode,
    /// Read consistency.
    pub read_consistency: ReadConsistency,
    /// Size limits.
    pub limits: Limits,
    /// Password for AUTH.
    pub requirepass: Option<String>,
    /// Raft heartbeat interval.
    pub heartbeat: Duration,
    /// Raft minimum election timeout.
    pub election_timeout: Duration,
    /// Snapshot after this many entries.
    pub snapshot_every_entries: u64,
    /// Least time between two rounds of entries to a follower the commits
    /// do not need (zero: no pacing).
    pub spare_follower_interval: Duration,
    /// Write timeout.
    pub write_timeout: Duration,
    /// Most client connections.
    pub max_clients: usize,
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen for {what} on {addr}"))
}

/// Runs a server until SIGINT/SIGTERM.
pub async fn run(cfg: ServeConfig) -> anyhow::Result<()> {
    raise_fd_limit(cfg.max_clients);
    let resp_listener = bind(cfg.resp_addr, "RESP").await?;
    let http_listener = bind(cfg.http_addr, "HTTP").await?;
    let raft_listener = bind(cfg.raft_addr, "Raft").await?;
    let port = |l: &TcpListener| l.local_addr().map(|a| a.port());
    let advertise = NodeAddr {
        raft_addr: format!("{}:{}", cfg.advertise_host, port(&raft_listener)?),
        resp_addr: format!("{}:{}", cfg.advertise_host, port(&resp_listener)?),
        http_addr: format!("{}:{}", cfg.advertise_host, port(&http_listener)?),
    };

    let mut raft_cfg = RaftNodeConfig::new(cfg.data_dir.clone(), advertise.clone());
    raft_cfg.node_id = cfg.node_id;
    raft_cfg.heartbeat = cfg.heartbeat;
    raft_cfg.election_timeout = cfg.election_timeout;
    raft_cfg.snapshot_every_entries = cfg.snapshot_every_entries;
    raft_cfg.spare_follower_interval = cfg.spare_follower_interval;
    let node = RaftNode::start(raft_cfg, raft_listener).await.context("starting the raft node")?;

    let kv = KvService::new(
        node.clone(),
        KvConfig {
            limits: cfg.limits,
            read_consistency: cfg.read_consistency,
            write_timeout: cfg.write_timeout,
            read_timeout: cfg.write_timeout,
        },
    );
    let metrics = Arc::new(Metrics::new());
    let decoder_limits = DecoderLimits {
        // A request holds at most one value plus the key and command name;
        // MSET-style commands hold many, bounded by the multibulk limit.
        max_bulk_len: cfg.limits.max_value_bytes.max(cfg.limits.max_key_bytes).max(64 << 10) + 1024,
        // One request (e.g. a huge MSET) may buffer at most this much; it
        // bounds what a slow or hostile client can make the server hold.
        max_request_bytes: MAX_REQUEST_BYTES,
        ..DecoderLimits::default()
    };
    let mut ctx = ConnContext::new(
        kv.clone(),
        cfg.follower_mode,
        cfg.requirepass.clone(),
        metrics.clone(),
        decoder_limits,
        port(&resp_listener)?,
    );
    ctx.max_clients = cfg.max_clients;
    let shutdown = CancellationToken::new();

    tokio::spawn(serve_resp(resp_listener, Arc::new(ctx), shutdown.clone()));
    let http_state = Arc::new(HttpState::new(node.clone(), metrics, cfg.admin_token.clone()));
    let http = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let app = router(http_state);
            if let Err(e) = axum::serve(http_listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await {
                tracing::error!(error = %e, "HTTP server failed");
            }
        })
    };
    tokio::spawn(expiry_sweeper(kv.clone(), shutdown.clone()));
    tokio::spawn(snapshot_by_size(node.clone(), shutdown.clone()));

    tracing::info!(
        node_id = node.id(),
        resp = %advertise.resp_addr,
        http = %advertise.http_addr,
        raft = %advertise.raft_addr,
        data_dir = %cfg.data_dir.display(),
        "seshat is serving"
    );
    let failure = tokio::select! {
        _ = wait_for_signal() => None,
        reason = node.fatal_error() => Some(reason),
    };
    match &failure {
        None => tracing::info!("shutting down"),
        Some(reason) => tracing::error!(%reason, "raft core stopped; exiting so that a supervisor restarts this node"),
    }
    shutdown.cancel();
    node.shutdown().await;
    let _ = http.await;
    match failure {
        None => Ok(()),
        Some(reason) => Err(anyhow::anyhow!("raft core stopped: {reason}")),
    }
}

/// Raises the soft open-files limit towards the hard one: every client
/// connection is a descriptor, and the common default soft limit (1024) is far
/// below `--max-clients`.
fn raise_fd_limit(max_clients: usize) {
    let wanted = (max_clients as u64).saturating_add(1024);
    match rlimit::increase_nofile_limit(wanted) {
        Ok(got) if got < wanted => {
            tracing::warn!(
                limit = got,
                wanted,
                "open-files limit is below --max-clients; raise the hard limit (ulimit -Hn)"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not raise the open-files limit"),
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The leader's active expiry: proposes deletion of keys whose TTL passed.
/// Deletion goes through the log so every replica removes the same keys at
/// the same log position (lazy expiry on read hides them meanwhile).
async fn expiry_sweeper(kv: KvService, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(EXPIRY_SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !kv.node().is_leader() {
            continue;
        }
        let now = now_ms();
        let keys = kv.node().state_machine().read().store.expired_keys(now, EXPIRY_SWEEP_BATCH);
        if keys.is_empty() {
            continue;
        }
        if let Err(e) = kv.write(WriteCmd::ExpireKeys { keys }, now).await {
            tracing::debug!(error = %e, "expiry sweep write failed");
        }
    }
}

async fn snapshot_by_size(node: Arc<RaftNode>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // What a snapshot could not retire: the entries kept behind it for slow
    // followers. Growth is measured past it, or a log whose kept tail alone
    // exceeds the threshold (large pipelined batches) would snapshot forever.
    let mut baseline: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let stats = node.state_machine().stats();
        let threshold = SNAPSHOT_LOG_MIN_BYTES.max(stats.last_size_bytes.load(Ordering::Relaxed) / 4);
        let held = node.log_held_bytes() as u64;
        // Other snapshots (every N entries, by the admin API) purge too.
        baseline = baseline.min(held);
        if held <= baseline.saturating_add(threshold) {
            continue;
        }
        tracing::info!(held, threshold, "log held in memory outgrew the snapshot; building a snapshot");
        let built_before = stats.built.load(Ordering::Relaxed);
        if let Err(e) = node.snapshot().await {
            tracing::warn!(error = %e, "snapshot by size failed");
        }
        // The request only starts the build; wait for it before measuring again.
        let deadline = tokio::time::Instant::now() + SNAPSHOT_WAIT;
        while stats.built.load(Ordering::Relaxed) == built_before && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        // Purging follows the build; give it a tick before measuring what stayed.
        tick.tick().await;
        baseline = node.log_held_bytes() as u64;
    }
}
