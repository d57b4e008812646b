//! KvService: the contract between the RESP front end and the Raft node.
//!
//! It owns the rules the seed spec names: size limits are checked before a
//! write reaches the log, writes go through Raft only on the leader, and reads
//! are served only after a barrier that makes them linearizable (ReadIndex by
//! default, a leader lease with `--read-consistency lease`, none with
//! `stale`). Every wait is bounded: with no leader or no quorum a client gets
//! an error, never a hang.

mod error;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use error::KvServiceError;

use crate::commands::{self, ReadCmd};
use crate::raft::node::ReadBarrier;
use crate::raft::write_batch::PendingWrite;
use crate::raft::{RaftNode, RaftNodeError};
use crate::resp::Frame;
use crate::store::{Operation, WriteCmd};

/// How reads are made consistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ReadConsistency {
    /// ReadIndex on the leader: a quorum round trip per read batch. Linearizable.
    #[default]
    Linearizable,
    /// Leader lease: no round trip while the lease holds. Linearizable if
    /// clocks drift less than the lease margin.
    Lease,
    /// Read this node's applied state, leader or not. May be stale.
    Stale,
}

impl ReadConsistency {
    /// The name used in flags and `CONFIG GET`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadConsistency::Linearizable => "linearizable",
            ReadConsistency::Lease => "lease",
            ReadConsistency::Stale => "stale",
        }
    }
}

/// KvService settings.
#[derive(Debug, Clone)]
pub struct KvConfig {
    /// Key and value size limits.
    pub limits: commands::Limits,
    /// Read consistency.
    pub read_consistency: ReadConsistency,
    /// Longest a write waits to be committed and applied.
    pub write_timeout: Duration,
    /// Longest a read waits for its consistency barrier.
    pub read_timeout: Duration,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            limits: commands::Limits::default(),
            read_consistency: ReadConsistency::Linearizable,
            write_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
        }
    }
}

/// Milliseconds since the Unix epoch on this machine's clock.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The key-value service over one Raft node.
#[derive(Debug, Clone)]
pub struct KvService {
    node: Arc<RaftNode>,
    cfg: KvConfig,
}

/// A write handed to Raft whose reply is still to come.
#[derive(Debug)]
pub struct InFlightWrite {
    pending: PendingWrite,
    timeout: Duration,
}

impl KvService {
    /// A service over `node`.
    pub fn new(node: Arc<RaftNode>, cfg: KvConfig) -> Self {
        KvService { node, cfg }
    }

    /// The settings.
    pub fn config(&self) -> &KvConfig {
        &self.cfg
    }

    /// The Raft node.
    pub fn node(&self) -> &Arc<RaftNode> {
        &self.node
    }

    /// True when `read` must run on the leader under the configured consistency.
    pub fn reads_need_leader(&self) -> bool {
        self.cfg.read_consistency != ReadConsistency::Stale
    }

    /// Hands a validated write to Raft. The entry's timestamp `at_ms` is the
    /// one the command's relative times were resolved against, so every
    /// replica computes the same expiry.
    pub async fn submit_write(&self, cmd: WriteCmd, at_ms: u64) -> Result<InFlightWrite, KvServiceError> {
        if self.node.log_status().disk_full.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(KvServiceError::DiskFull);
        }
        let pending = self.node.submit(Operation { at_ms, cmd })?;
        Ok(InFlightWrite { pending, timeout: self.cfg.write_timeout })
    }

    /// Waits for a submitted write's reply, up to the write timeout.
    pub async fn finish_write(write: InFlightWrite) -> Result<Frame, KvServiceError> {
        match tokio::time::timeout(write.timeout, RaftNode::finish(write.pending)).await {
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(KvServiceError::WriteTimeout(write.timeout)),
        }
    }

    /// Proposes a write and waits for its reply.
    pub async fn write(&self, cmd: WriteCmd, at_ms: u64) -> Result<Frame, KvServiceError> {
        let w = self.submit_write(cmd, at_ms).await?;
        Self::finish_write(w).await
    }

    /// Executes a read under the configured consistency.
    pub async fn read(&self, cmd: &ReadCmd) -> Result<Frame, KvServiceError> {
        let barrier = match self.cfg.read_consistency {
            ReadConsistency::Linearizable => Some(ReadBarrier::ReadIndex),
            ReadConsistency::Lease => Some(ReadBarrier::Lease),
            ReadConsistency::Stale => None,
        };
        if barrier.is_none() && !self.node.is_recovered() {
            return Err(KvServiceError::Recovering);
        }
        if let Some(barrier) = barrier {
            match tokio::time::timeout(self.cfg.read_timeout, self.node.read_barrier(barrier)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => {
                    return Err(KvServiceError::from(RaftNodeError::NoQuorum(format!(
                        "read barrier not confirmed within {:?}",
                        self.cfg.read_timeout
                    ))))
                }
            }
        }
        let now = now_ms();
        let sm = self.node.state_machine().read();
        Ok(commands::execute_read(cmd, &sm.store, now))
    }
}
