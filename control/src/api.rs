//! Wire types of the server's HTTP API (`seshat serve --http-addr`).
//!
//! These are the single source of truth for the JSON that the server emits and
//! that the operator and `seshat local` consume. Every field is documented
//! because external tooling (dashboards, scripts) reads them too.
//!
//! Endpoints (all JSON unless noted):
//!
//! | method | path                      | body                      | reply                      |
//! |--------|---------------------------|---------------------------|----------------------------|
//! | GET    | `/healthz`                | –                         | `200 ok` (text)            |
//! | GET    | `/readyz`                 | –                         | [`Readiness`] (200 or 503) |
//! | GET    | `/leader`                 | –                         | [`LeaderInfo`]             |
//! | GET    | `/cluster`                | –                         | [`ClusterStatus`]          |
//! | GET    | `/metrics`                | –                         | Prometheus text            |
//! | POST   | `/admin/init`             | [`InitRequest`]           | [`AdminOk`]                |
//! | POST   | `/admin/learners`         | [`AddLearnerRequest`]     | [`AdminOk`]                |
//! | POST   | `/admin/membership`       | [`SetMembershipRequest`]  | [`AdminOk`]                |
//! | POST   | `/admin/transfer-leader`  | [`TransferLeaderRequest`] | [`AdminOk`]                |
//! | POST   | `/admin/snapshot`         | –                         | [`AdminOk`]                |
//!
//! Admin endpoints require `Authorization: Bearer <token>` when the server was
//! started with `--admin-token`; without it they answer 401 with [`ApiError`].
//! A membership change while another is in flight answers 409.
//! Any admin endpoint that must run on the leader answers 421 (misdirected)
//! with [`ApiError::leader`] filled when called on a follower.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A Raft node id. Generated randomly when a data dir is first created, never reused.
pub type NodeId = u64;

/// The addresses a node advertises to its peers and clients.
///
/// This is also openraft's `Node` type inside the server, so it is what the
/// Raft membership config stores for every member.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct NodeAddr {
    /// `host:port` of the Raft transport (`--raft-addr`, advertised form).
    pub raft_addr: String,
    /// `host:port` of the RESP (Redis protocol) listener.
    pub resp_addr: String,
    /// `host:port` of the HTTP listener (health, metrics, admin).
    pub http_addr: String,
}

/// The role of a node as seen by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Not yet part of any cluster (fresh data dir, not initialized, not added).
    Uninitialized,
    /// A voter that is the current leader.
    Leader,
    /// A voter following a leader.
    Follower,
    /// A voter campaigning for leadership.
    Candidate,
    /// A non-voting member receiving the log.
    Learner,
    /// The node has stopped its Raft core (fatal error or shutting down).
    Shutdown,
}

/// One member as listed in [`Membership`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Raft node id.
    pub id: NodeId,
    /// Advertised addresses.
    #[serde(flatten)]
    pub addr: NodeAddr,
}

/// The effective Raft membership config as seen by a node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Membership {
    /// Voting members, sorted by id.
    pub voters: Vec<Member>,
    /// Non-voting members, sorted by id.
    pub learners: Vec<Member>,
    /// Log index at which this config was proposed, if any.
    pub log_index: Option<u64>,
    /// True when this config is a joint config (a change is in flight).
    pub joint: bool,
}

/// Reply of `GET /cluster`: this node's view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// This node's id.
    pub node_id: NodeId,
    /// This node's advertised addresses.
    pub addr: NodeAddr,
    /// This node's role.
    pub role: Role,
    /// Current term.
    pub term: u64,
    /// Known leader, if any.
    pub leader_id: Option<NodeId>,
    /// Index of the last log entry this node holds.
    pub last_log_index: Option<u64>,
    /// Index of the last entry applied to the state machine.
    pub last_applied: Option<u64>,
    /// Highest index known committed (leader: its commit index; follower: what the leader told it).
    pub committed: Option<u64>,
    /// Index covered by the latest snapshot.
    pub snapshot_index: Option<u64>,
    /// Index up to which the log has been purged.
    pub purged_index: Option<u64>,
    /// The effective membership.
    pub membership: Membership,
    /// Only on the leader: per member, the highest log index known replicated there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replication: BTreeMap<NodeId, Option<u64>>,
    /// Server version (crate version).
    pub version: String,
}

/// Reply of `GET /leader`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderInfo {
    /// Current leader id, `null` while there is none.
    pub leader_id: Option<NodeId>,
    /// Leader's RESP address, `null` while there is no leader.
    pub leader_resp_addr: Option<String>,
    /// Leader's HTTP address, `null` while there is no leader.
    pub leader_http_addr: Option<String>,
    /// Current term.
    pub term: u64,
}

/// Reply of `GET /readyz` (200 when `ready`, 503 otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    /// True when the node is a member with a known leader and has applied up to the commit index (within a small lag).
    pub ready: bool,
    /// Why the node is not ready (empty when ready).
    pub reason: String,
}

/// Body of `POST /admin/init`: bootstrap a brand-new cluster.
///
/// An empty `members` map means "this node alone", which is what both the
/// operator and `seshat local` use: the first node is initialized alone and
/// every other node joins as a learner and is then promoted.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InitRequest {
    /// Initial voters. Empty: this node alone.
    #[serde(default)]
    pub members: BTreeMap<NodeId, NodeAddr>,
}

/// Body of `POST /admin/learners`: add (or update) a non-voting member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddLearnerRequest {
    /// The new node's id (read it from the node's own `GET /cluster`).
    pub node_id: NodeId,
    /// The new node's advertised addresses.
    pub addr: NodeAddr,
    /// When true (the default), reply only once the learner has caught up with the leader's log.
    #[serde(default = "default_true")]
    pub blocking: bool,
}

/// Body of `POST /admin/membership`: set the voter set.
///
/// Raft applies it as a joint-consensus change. Voters must already be members
/// (learners or voters). Voters removed here become learners when `retain` is
/// true, and leave the cluster entirely otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetMembershipRequest {
    /// The complete new voter set.
    pub voters: Vec<NodeId>,
    /// Keep removed voters as learners.
    #[serde(default)]
    pub retain: bool,
    /// Learners to remove from the cluster in the same change (e.g. a learner whose
    /// volume was replaced, or one on an ordinal being scaled away). Voters listed here
    /// are ignored. Absent in older clients: nothing extra is removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_learners: Vec<NodeId>,
}

/// Body of `POST /admin/transfer-leader`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TransferLeaderRequest {
    /// Target voter. `None`: the most up-to-date other voter.
    #[serde(default)]
    pub to: Option<NodeId>,
}

/// Successful reply of an admin endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AdminOk {
    /// Always true.
    pub ok: bool,
    /// Log index of the entry the change was committed at, when there is one.
    #[serde(default)]
    pub log_index: Option<u64>,
    /// Human-readable detail.
    #[serde(default)]
    pub message: String,
}

/// Error body of any endpoint (4xx/5xx).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Machine-readable code: `unauthorized`, `not_leader`, `conflict`,
    /// `bad_request`, `not_initialized`, `already_initialized`, `timeout`, `no_quorum`, `internal`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// For `not_leader`: the current leader, when known.
    #[serde(default)]
    pub leader: Option<LeaderInfo>,
}

fn default_true() -> bool {
    true
}
