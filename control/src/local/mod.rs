//! The local-process backend: a Seshat cluster of real `seshat serve` processes on
//! one machine, driven by the same planner and driver as the Kubernetes operator.
//!
//! - [`LocalCluster`]: spawns, stops, kills, pauses, wipes and restarts the processes,
//!   and implements [`Workload`](crate::driver::Workload) for the driver.
//! - [`run_local`]: what `seshat local` runs: start, bootstrap, print how to connect,
//!   supervise, stop on shutdown.

mod cluster;
mod run;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use cluster::{LocalCluster, NodeState};
pub use run::run_local;

use crate::driver::DriverError;

/// Configuration of a local cluster; the fields mirror `seshat local`'s flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    /// The server binary to run (`seshat local` passes `std::env::current_exe()`).
    pub binary: PathBuf,
    /// `--nodes`: number of nodes (1..=9).
    pub nodes: u32,
    /// `--data-dir`: node `i` keeps its data (and `server.log`) in `DATA_DIR/node-<i>`.
    pub data_dir: PathBuf,
    /// `--host`: listen and advertised host of every node.
    pub host: String,
    /// `--resp-port`: node `i` serves RESP on `resp_port + i`.
    pub resp_port: u16,
    /// `--http-port`: node `i` serves HTTP on `http_port + i`.
    pub http_port: u16,
    /// `--raft-port`: node `i` serves Raft on `raft_port + i`.
    pub raft_port: u16,
    /// `--admin-token`: passed to every node and used by the driver.
    pub admin_token: Option<String>,
    /// Extra arguments appended to every `seshat serve` (e.g. `--follower-mode redirect`).
    pub extra_args: Vec<String>,
    /// `--threads-per-node`: each node's async runtime threads (its
    /// `TOKIO_WORKER_THREADS`). See [`default_threads_per_node`].
    pub threads_per_node: usize,
    /// How long a node may take to exit after SIGTERM before it gets SIGKILL.
    pub stop_grace: Duration,
}

impl LocalConfig {
    /// `seshat local`'s defaults: `nodes` nodes on 127.0.0.1, RESP 7001+, HTTP 8001+,
    /// Raft 9001+, data in `./seshat-data`, no admin token.
    pub fn new(binary: impl Into<PathBuf>, nodes: u32) -> Self {
        Self {
            binary: binary.into(),
            nodes,
            data_dir: PathBuf::from("./seshat-data"),
            host: "127.0.0.1".into(),
            resp_port: 7001,
            http_port: 8001,
            raft_port: 9001,
            admin_token: None,
            extra_args: vec![],
            threads_per_node: default_threads_per_node(nodes),
            stop_grace: Duration::from_secs(10),
        }
    }

    /// The data dir of node `i`.
    pub fn node_dir(&self, i: u32) -> PathBuf {
        self.data_dir.join(format!("node-{i}"))
    }
}

/// The machine's cores shared out among `nodes` (at least one each).
///
/// Why not tokio's default of one thread per core in every node: the nodes
/// of a local cluster share one machine, so with three nodes on two cores
/// six runtime threads took turns on two, and every hand-off between a
/// sleeping thread and a running one was a context switch. With one thread
/// per node there, `redis-benchmark -c 50` against `seshat local --nodes 3`
/// did 3–15% more SETs per second in 7 of 8 interleaved pairs (−3% in one)
/// and 1–42% more GETs in all 8, at less CPU per request. Not free: in the
/// benchmark harness, GETs right after a heavy write phase were slower with a
/// higher p99 (README "Benchmarks" has both).
pub fn default_threads_per_node(nodes: u32) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / nodes.max(1) as usize).max(1)
}

/// Errors of the local backend.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// Invalid configuration (ports overflow, node count out of range, ...).
    #[error("invalid local configuration: {0}")]
    Config(String),
    /// A filesystem operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was attempted.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A signal could not be delivered.
    #[error("signal {signal} to node {node} (pid {pid}): {source}")]
    Signal {
        /// Node ordinal.
        node: u32,
        /// Its pid.
        pid: u32,
        /// Signal number.
        signal: i32,
        /// The error.
        source: std::io::Error,
    },
    /// The operation needs the node stopped (or running) and it is not.
    #[error("node {node}: {reason}")]
    State {
        /// Node ordinal.
        node: u32,
        /// What is wrong.
        reason: String,
    },
    /// Bootstrapping or reconciling failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
}

/// A stable identity of a binary for the planner's version comparison: its path,
/// size and modification time. Replacing the file (a new build) changes it.
pub fn binary_identity(path: &Path) -> Result<String, LocalError> {
    let meta = std::fs::metadata(path).map_err(|source| LocalError::Io {
        action: "stat",
        path: path.to_path_buf(),
        source,
    })?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok(format!("{}:{}:{}", path.display(), meta.len(), mtime))
}

/// Picks base ports for a local cluster of up to `count` nodes on `host` so that
/// `base + i` is free for every listener kind (RESP, HTTP, Raft) — for tests that
/// run clusters in parallel. Returns `(resp, http, raft)` bases.
///
/// Bases are drawn from the process id and a counter over the ephemeral-free range
/// and probed by binding; a race with another process grabbing a port between the
/// probe and the server's bind stays possible but unlikely.
pub fn free_port_bases(host: &str, count: u16) -> Result<(u16, u16, u16), LocalError> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let stride = u32::from(count) * 3;
    // 20000..32000 lies below Linux's default ephemeral range (32768..), so outgoing
    // connections do not take these ports.
    let slots = 12_000 / stride.max(1);
    for _ in 0..200 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed) + std::process::id() * 7919;
        let base = 20_000 + (n % slots) * stride;
        let all_free = (0..stride).all(|p| std::net::TcpListener::bind((host, (base + p) as u16)).is_ok());
        if all_free {
            let b = base as u16;
            return Ok((b, b + count, b + 2 * count));
        }
    }
    Err(LocalError::Config(format!("no free port range for {count} nodes on {host}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_per_node_share_the_cores_and_never_drop_to_zero() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for nodes in 0..=9 {
            let threads = default_threads_per_node(nodes);
            assert!(threads >= 1, "{nodes} nodes: {threads} threads");
            assert!(threads * nodes.max(1) as usize <= cores.max(nodes as usize), "{nodes} nodes oversubscribe");
        }
        assert_eq!(LocalConfig::new("seshat", 1).threads_per_node, cores);
    }
}
