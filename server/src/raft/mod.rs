//! Raft replication on openraft: type config, durable log store, state machine,
//! snapshots and the peer transport.
//!
//! - [`log_store`]: the Raft log and vote on disk (segmented WAL, group commit).
//! - [`state_machine`]: applies [`Operation`]s to the in-memory [`Store`] and
//!   builds / installs snapshots.
//! - [`snapshot`]: snapshot files (build → fsync → rename).
//! - [`network`]: the peer transport (persistent TCP connections, length-prefixed
//!   bincode frames, node-id checked on every RPC).
//! - [`node`]: [`RaftNode`], which wires them together and is what the rest of
//!   the server talks to.
//!
//! [`Store`]: crate::store::Store

pub mod codec;
pub mod log_store;
pub mod network;
pub mod node;
mod read_batch;
pub mod snapshot;
pub mod state_machine;

use std::fmt;

pub use node::{RaftNode, RaftNodeConfig, RaftNodeError};
pub use seshat_control::api::{NodeAddr, NodeId};

use crate::resp::Frame;
use crate::store::Operation;

openraft::declare_raft_types!(
    /// Seshat's openraft type configuration: log entries carry [`Operation`]s,
    /// applying one yields the RESP [`Frame`] to send back to the client, and
    /// every member is identified by a `u64` and described by its [`NodeAddr`].
    pub TypeConfig:
        D = Operation,
        R = Frame,
        NodeId = NodeId,
        Node = NodeAddr,
);

/// The openraft handle for this type config.
pub type Raft = openraft::Raft<TypeConfig, state_machine::StateMachine>;
/// A log entry.
pub type Entry = openraft::Entry<
    <<TypeConfig as openraft::RaftTypeConfig>::LeaderId as openraft::vote::RaftLeaderId>::Committed,
    openraft::EntryPayload<Operation, NodeId, NodeAddr>,
>;
/// A log id (term/leader + index).
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
/// A persisted vote.
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
/// Membership as stored in the log / state machine.
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Log lines must not dump user keys or values.
        write!(f, "{}@{}ms", self.cmd.name(), self.at_ms)
    }
}
