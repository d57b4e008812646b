//! Raft replication on openraft: type config, durable log store, state machine,
//! snapshots and the peer transport.
//!
//! - [`log_store`]: the Raft log and vote on disk (segmented WAL, group commit).
//! - [`state_machine`]: applies [`Operation`]s to the in-memory [`Store`] and
//!   builds / installs snapshots.
//! - [`snapshot`]: snapshot files (build → fsync → rename).
//! - [`network`]: the peer transport (persistent TCP connections, length-prefixed
//!   bincode frames, node-id checked on every RPC).
//! - [`write_batch`]: coalesces concurrent client writes into one log entry.
//! - [`node`]: [`RaftNode`], which wires them together and is what the rest of
//!   the server talks to.
//!
//! [`Store`]: crate::store::Store

pub mod codec;
pub mod log_store;
pub mod network;
pub mod node;
mod read_batch;
mod read_index;
pub mod snapshot;
pub mod state_machine;
pub mod write_batch;

#[cfg(test)]
pub(crate) mod tests;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

pub use node::{RaftNode, RaftNodeConfig, RaftNodeError};
pub use seshat_control::api::{NodeAddr, NodeId};

use crate::resp::Frame;
use crate::store::Operation;

/// Seshat's openraft type configuration: log entries carry [`Operation`]s
/// behind an `Arc` (see [`LogOp`]),
/// applying one yields the RESP [`Frame`] to send back to the client, every
/// member is identified by a `u64` and described by its [`NodeAddr`], and
/// writes are answered through [`write_batch::WriteResponder`] (so that one
/// coalesced entry can answer many clients).
///
/// Spelled out rather than declared with `openraft::declare_raft_types!`,
/// whose syntax cannot name a generic responder; the other types are the
/// macro's defaults.
#[derive(Debug, Clone, Copy, Default, Eq, PartialEq, Ord, PartialOrd)]
pub struct TypeConfig {}

impl openraft::RaftTypeConfig for TypeConfig {
    type D = LogOp;
    type R = Frame;
    type NodeId = NodeId;
    type Node = NodeAddr;
    type Term = u64;
    type LeaderId = openraft::impls::leader_id_adv::LeaderId<Self::Term, Self::NodeId>;
    type Vote = openraft::impls::Vote<Self::LeaderId>;
    type Payload = openraft::EntryPayload<Self::D, Self::NodeId, Self::Node>;
    type Entry = openraft::Entry<<Self::LeaderId as openraft::vote::RaftLeaderId>::Committed, Self::Payload>;
    type AsyncRuntime = openraft::impls::TokioRuntime;
    type Responder<T>
        = write_batch::WriteResponder<T>
    where
        T: openraft::OptionalSend + 'static;
    type Batch<T>
        = openraft::impls::InlineBatch<T>
    where
        T: openraft::OptionalSend + 'static;
    type ErrorSource = openraft::impls::BoxedErrorSource;
}

/// The openraft handle for this type config.
pub type Raft = openraft::Raft<TypeConfig, state_machine::StateMachine>;
/// A log entry.
pub type Entry = openraft::Entry<
    <<TypeConfig as openraft::RaftTypeConfig>::LeaderId as openraft::vote::RaftLeaderId>::Committed,
    openraft::EntryPayload<LogOp, NodeId, NodeAddr>,
>;
/// A log entry's write. Shared, not copied: openraft clones an entry for
/// each follower it replicates to and again to apply it, and a coalesced
/// entry holds hundreds of writes (cloning them showed as ~7% of the
/// leader's CPU under pipelined load). Serialized exactly as the
/// [`Operation`] itself, so the WAL and wire formats do not change.
pub type LogOp = std::sync::Arc<Operation>;
/// A log id (term/leader + index).
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
/// A persisted vote.
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
/// Membership as stored in the log / state machine.
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;

/// How well requests share work: `rounds` (read-barrier rounds, or proposed
/// log entries) against the `requests` they served. Monotonic counters.
#[derive(Debug, Default)]
pub struct BatchCounters {
    /// Rounds or entries.
    pub rounds: AtomicU64,
    /// Requests served by them.
    pub requests: AtomicU64,
}

impl BatchCounters {
    fn record(&self, requests: usize) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(requests as u64, Ordering::Relaxed);
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Log lines must not dump user keys or values.
        write!(f, "{}@{}ms", self.cmd.name(), self.at_ms)
    }
}
