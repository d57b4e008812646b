//! The Raft peer transport.
//!
//! Each replication stream (one per target node) owns one persistent TCP
//! connection to the target's `--raft-addr`, reconnecting on failure. Messages
//! are length-prefixed bincode frames ([`wire`]). Every request names the node
//! id it is meant for, and the receiver refuses a mismatch: a pod that came
//! back at an old address with an empty volume (hence a new id) can never be
//! mistaken for the member that used to live there.
//!
//! Snapshots stream in chunks over the same connection, so a follower that
//! fell behind the purged log catches up without holding the whole snapshot
//! in memory on either side. A request of more entries than fit in a frame
//! is sent in parts (`fit`). Followers a commit does not need get their
//! entries in fewer, larger rounds (`pacing`).

mod client;
mod fit;
mod pacing;
mod server;
pub mod wire;

pub use client::{NetworkFactory, PeerClient};
pub use pacing::{ReplicationPacer, DEFAULT_SPARE_INTERVAL};
pub use server::serve_raft;
