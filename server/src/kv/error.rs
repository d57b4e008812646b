//! [`KvServiceError`]: every way a KV request can fail, and the RESP error a
//! client sees for each.

use std::time::Duration;

use crate::commands::CommandError;
use crate::raft::{NodeAddr, NodeId, RaftNodeError};
use crate::resp::Frame;

/// Errors of [`KvService`](super::KvService), typed at the edge.
#[derive(Debug, thiserror::Error)]
pub enum KvServiceError {
    /// The command is malformed, too large, or has the wrong arity/type
    /// (`KeyTooLarge` / `ValueTooLarge` of the seed spec live here).
    #[error(transparent)]
    Command(#[from] CommandError),
    /// This node is not the leader; nothing was written.
    #[error("not leader, redirect to node {leader_id:?}")]
    NotLeader {
        /// The leader, when known.
        leader_id: Option<NodeId>,
        /// Its addresses, when known.
        leader: Option<NodeAddr>,
    },
    /// The leader could not reach a quorum in time (reads).
    #[error("no quorum available: {0}")]
    NoQuorum(String),
    /// The write was not acknowledged in time; it may still be applied.
    #[error("write not acknowledged within {0:?}")]
    WriteTimeout(Duration),
    /// The leader changed mid-write; the write may or may not be applied.
    #[error("leader changed mid-write")]
    Indeterminate,
    /// A restarted node has not yet re-applied the committed state; local reads would be stale.
    #[error("recovering committed state")]
    Recovering,
    /// This node's disk is full; writes are refused until space returns.
    #[error("disk full")]
    DiskFull,
    /// The Raft core has stopped.
    #[error("raft stopped: {0}")]
    Fatal(String),
}

impl From<RaftNodeError> for KvServiceError {
    fn from(e: RaftNodeError) -> Self {
        match e {
            RaftNodeError::NotLeader { leader_id, leader } => KvServiceError::NotLeader { leader_id, leader },
            RaftNodeError::NoQuorum(m) => KvServiceError::NoQuorum(m),
            RaftNodeError::Indeterminate => KvServiceError::Indeterminate,
            other => KvServiceError::Fatal(other.to_string()),
        }
    }
}

impl KvServiceError {
    /// The RESP error reply. Prefixes follow Redis where it has one
    /// (`CLUSTERDOWN`, `MISCONF`, `TRYAGAIN`) so clients' retry logic applies.
    pub fn to_frame(&self) -> Frame {
        match self {
            KvServiceError::Command(e) => e.to_frame(),
            KvServiceError::NotLeader { leader_id: None, .. } => {
                Frame::Error("CLUSTERDOWN no leader: the cluster is electing one, retry shortly".into())
            }
            KvServiceError::NotLeader { leader_id: Some(id), .. } => {
                Frame::Error(format!("CLUSTERDOWN not the leader; node {id} is"))
            }
            KvServiceError::NoQuorum(m) => Frame::Error(format!("CLUSTERDOWN no quorum: {m}")),
            KvServiceError::WriteTimeout(d) => Frame::Error(format!(
                "TRYAGAIN write not acknowledged by a quorum within {}ms; it may or may not have been applied",
                d.as_millis()
            )),
            KvServiceError::Indeterminate => Frame::Error(
                "TRYAGAIN leader changed before the write was acknowledged; it may or may not have been applied".into(),
            ),
            KvServiceError::Recovering => {
                Frame::Error("LOADING this node is re-applying the committed log after a restart; retry shortly".into())
            }
            KvServiceError::DiskFull => {
                Frame::Error("MISCONF disk full on this node: writes are refused until space is freed".into())
            }
            KvServiceError::Fatal(m) => Frame::Error(format!("ERR internal error: {m}")),
        }
    }
}
