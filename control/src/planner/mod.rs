//! The membership planner: a pure function from (desired, observed) to the next step.
//!
//! [`plan`] looks at what the user asked for ([`Desired`]) and at one consistent-enough
//! snapshot of the world ([`Observed`]: every slot's workload state and its own
//! `GET /cluster` view) and returns exactly **one** [`Action`]. The caller (the
//! operator's reconciler or `seshat local`'s driver) performs it, observes again, and
//! calls [`plan`] again. Being level-triggered this way, a crash of the caller between
//! two steps loses nothing: the next observation shows what was done.
//!
//! The planner does no I/O, reads no clock and draws no random number, so every
//! decision is reproducible from its inputs and tested exhaustively without processes
//! or Kubernetes (table tests in `tests.rs`, model checking against a simulated
//! cluster in `model.rs` / `sim.rs`).
//!
//! # Vocabulary
//! - *slot* / *ordinal*: position `i` of the workload (StatefulSet pod `name-i`, local
//!   process `node-i`). A slot keeps its addresses across restarts; its *node id* lives
//!   in its data dir and changes when the volume is replaced.
//! - *member*: a node id in the leader's Raft membership (voter or learner).
//! - *healthy* voter: the leader itself, or a voter whose slot answers with that very
//!   node id and whose replication is within [`Desired::max_lag`] of the leader's log.
//!
//! # Safety invariants (each one named where it is enforced in `decide.rs`)
//! - **S1 one change at a time**: every membership action adds or removes exactly one
//!   node, and none is planned while the config is joint or uncommitted.
//! - **S2 quorum preserved**: a voter-set change is planned only when the healthy
//!   voters are a majority of both the old and the new voter set (joint consensus
//!   needs both), so no change can strand the cluster or remove a majority at once.
//! - **S3 caught-up promotion**: a learner is promoted only when its matched index is
//!   within `max_lag` of the leader's last log index and its slot answers with its id.
//! - **S4 no re-bootstrap**: `Bootstrap` only when every slot that exists answered and
//!   none holds Raft state, and the caller never saw the cluster initialized.
//! - **S5 leader last**: the leader is never removed or restarted while it leads;
//!   leadership is transferred to a healthy, ready voter first.
//! - **S6 shrink after removal**: the workload shrinks only once no member lives on a
//!   removed ordinal; volumes are deleted only for ordinals without a pod.
//! - **S7 no leader, no action**: without a leader (or with quorum lost) the planner only
//!   grows the workload (never destructive) or reports `Wait` / `Degraded`.
//! - **S8 rolling restarts**: at most one restart at a time, only when every target
//!   slot is ready, followers before the leader.

mod decide;
mod view;

#[cfg(test)]
mod model;
#[cfg(test)]
pub(crate) mod sim;
#[cfg(test)]
mod tests;

use crate::api::{ClusterStatus, NodeAddr, NodeId};

pub use decide::plan;
pub use view::{majority, ClusterView, LeaderRef, MemberView};

/// Largest supported number of replicas (mirrors the CRD's validation).
pub const MAX_REPLICAS: u32 = 9;

/// Default for [`Desired::max_lag`]: how many log entries a learner may trail the
/// leader's last index and still be promoted (and a voter still count as healthy).
///
/// Small enough that promotion cannot create a voter that would stall commits while it
/// catches up, large enough that a steady stream of client writes does not block it
/// forever.
pub const DEFAULT_MAX_LAG: u64 = 256;

/// What to do with the volume (PVC / data dir) of an ordinal removed by a scale-down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VolumePolicy {
    /// Keep the volume: a later scale-up finds the old data (and old node id) again.
    #[default]
    Retain,
    /// Delete the volume once the ordinal's pod is gone and it left the membership.
    Delete,
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// Number of voters (and slots) wanted, `1..=MAX_REPLICAS`.
    pub replicas: u32,
    /// Target version: opaque to the planner and compared for equality only. The
    /// operator uses the container image, `seshat local` the binary's identity.
    pub version: String,
    /// Volume handling for ordinals removed by a scale-down.
    pub volume_policy: VolumePolicy,
    /// Replication lag (entries) tolerated for promotion and for counting a voter as
    /// healthy. See [`DEFAULT_MAX_LAG`].
    pub max_lag: u64,
}

impl Desired {
    /// `replicas` nodes running `version`, volumes retained, default lag.
    pub fn new(replicas: u32, version: impl Into<String>) -> Self {
        Self { replicas, version: version.into(), volume_policy: VolumePolicy::Retain, max_lag: DEFAULT_MAX_LAG }
    }
}

/// One slot (ordinal) as observed: the workload side plus the node's own view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The ordinal (pod `name-<ordinal>`, local `node-<ordinal>`).
    pub ordinal: u32,
    /// The addresses this ordinal advertises (known from the workload's naming scheme,
    /// even while no pod runs). Members are mapped to slots by these addresses.
    pub addr: NodeAddr,
    /// A pod / process exists for this ordinal (it may not be running yet).
    pub exists: bool,
    /// The pod is being deleted (a restart is in progress): never act on it again yet.
    pub terminating: bool,
    /// A volume (PVC / data dir) exists for this ordinal.
    pub volume: bool,
    /// The version the pod / process runs (`None` when unknown or no pod).
    pub version: Option<String>,
    /// Its `GET /readyz` said ready.
    pub ready: bool,
    /// Its `GET /cluster`, or `None` when it did not answer (down, starting, partitioned).
    pub status: Option<ClusterStatus>,
}

impl Slot {
    /// A slot with no pod, no volume and no answer, at `addr`.
    pub fn absent(ordinal: u32, addr: NodeAddr) -> Self {
        Self {
            ordinal,
            addr,
            exists: false,
            terminating: false,
            volume: false,
            version: None,
            ready: false,
            status: None,
        }
    }

    /// The node answered `GET /cluster`.
    pub fn reachable(&self) -> bool {
        self.status.is_some()
    }

    /// The node id it reported, when it answered.
    pub fn node_id(&self) -> Option<NodeId> {
        self.status.as_ref().map(|s| s.node_id)
    }
}

/// Everything the planner may look at: one observation of the workload and the nodes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// Current size of the workload (StatefulSet `.spec.replicas`, local process count).
    pub workload_replicas: u32,
    /// Every ordinal that has a pod, a volume, or may host a member, indexed by
    /// position (`slots[i].ordinal == i` is not required; the planner uses `ordinal`).
    pub slots: Vec<Slot>,
    /// The caller has seen this cluster initialized before (e.g. recorded in the
    /// `SeshatCluster` status). When true the planner never bootstraps, even if every
    /// data dir came back empty: that is a disaster to report, not to paper over.
    pub initialized_before: bool,
}

impl Observed {
    /// The slot with this ordinal.
    pub fn slot(&self, ordinal: u32) -> Option<&Slot> {
        self.slots.iter().find(|s| s.ordinal == ordinal)
    }
}

/// One step for the caller to perform.
///
/// Membership actions carry the complete voter set to send (`POST /admin/membership`),
/// computed by the planner so that the driver performs no arithmetic of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Grow or shrink the workload to `replicas` pods / processes. Growing happens
    /// before members are added; shrinking only once no member lives on a removed ordinal.
    ScaleWorkload {
        /// New workload size.
        replicas: u32,
    },
    /// `POST /admin/init` (alone) on this ordinal: creates a brand-new one-node cluster.
    Bootstrap {
        /// Ordinal to initialize (always the lowest existing one, normally 0).
        ordinal: u32,
    },
    /// `POST /admin/learners` on the leader (blocking until caught up).
    AddLearner {
        /// Ordinal of the new learner.
        ordinal: u32,
        /// Its node id, as it reported in `GET /cluster`.
        node_id: NodeId,
        /// Its advertised addresses, as it reported them.
        addr: NodeAddr,
    },
    /// `POST /admin/membership` making a caught-up learner a voter.
    Promote {
        /// The learner being promoted.
        node_id: NodeId,
        /// Complete new voter set (old voters plus `node_id`).
        voters: Vec<NodeId>,
    },
    /// `POST /admin/transfer-leader` on the leader.
    TransferLeader {
        /// Current leader.
        from: NodeId,
        /// Target voter (healthy, ready, staying in the cluster).
        to: NodeId,
    },
    /// `POST /admin/membership` removing one member (voter or learner) on scale-down.
    RemoveMember {
        /// The member leaving.
        node_id: NodeId,
        /// Complete new voter set (unchanged when `node_id` is a learner).
        voters: Vec<NodeId>,
    },
    /// `POST /admin/membership` removing a member whose slot came back with another id
    /// (its volume was replaced) or that no slot can host any more.
    RemoveStaleMember {
        /// The stale member id.
        node_id: NodeId,
        /// Complete new voter set (unchanged when `node_id` is a learner).
        voters: Vec<NodeId>,
    },
    /// Delete the volume of an ordinal that no longer has a pod or a member.
    DeleteVolume {
        /// Ordinal whose volume goes.
        ordinal: u32,
    },
    /// Restart this ordinal's pod / process so it runs the desired version.
    RestartMember {
        /// Ordinal to restart.
        ordinal: u32,
    },
    /// Nothing safe to do now; observe again later.
    Wait {
        /// Why (for logs, events and status).
        reason: String,
    },
    /// Quorum is lost or the cluster is in a state the planner refuses to touch.
    /// Nothing destructive is planned until it heals.
    Degraded {
        /// Why (for logs, events and status).
        reason: String,
    },
    /// Desired state reached.
    Done,
}

impl Action {
    /// True for actions that change the Raft membership (exactly one node each).
    pub fn is_membership_change(&self) -> bool {
        matches!(
            self,
            Action::AddLearner { .. }
                | Action::Promote { .. }
                | Action::RemoveMember { .. }
                | Action::RemoveStaleMember { .. }
        )
    }

    /// A short, stable name for metrics and events (`"add_learner"`, `"wait"`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Action::ScaleWorkload { .. } => "scale_workload",
            Action::Bootstrap { .. } => "bootstrap",
            Action::AddLearner { .. } => "add_learner",
            Action::Promote { .. } => "promote",
            Action::TransferLeader { .. } => "transfer_leader",
            Action::RemoveMember { .. } => "remove_member",
            Action::RemoveStaleMember { .. } => "remove_stale_member",
            Action::DeleteVolume { .. } => "delete_volume",
            Action::RestartMember { .. } => "restart_member",
            Action::Wait { .. } => "wait",
            Action::Degraded { .. } => "degraded",
            Action::Done => "done",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::ScaleWorkload { replicas } => write!(f, "scale workload to {replicas}"),
            Action::Bootstrap { ordinal } => write!(f, "bootstrap ordinal {ordinal} alone"),
            Action::AddLearner { ordinal, node_id, .. } => {
                write!(f, "add ordinal {ordinal} (node {node_id}) as learner")
            }
            Action::Promote { node_id, voters } => {
                write!(f, "promote node {node_id} (voters {voters:?})")
            }
            Action::TransferLeader { from, to } => {
                write!(f, "transfer leadership from node {from} to node {to}")
            }
            Action::RemoveMember { node_id, voters } => {
                write!(f, "remove node {node_id} (voters {voters:?})")
            }
            Action::RemoveStaleMember { node_id, voters } => {
                write!(f, "remove stale node {node_id} (voters {voters:?})")
            }
            Action::DeleteVolume { ordinal } => write!(f, "delete volume of ordinal {ordinal}"),
            Action::RestartMember { ordinal } => write!(f, "restart ordinal {ordinal}"),
            Action::Wait { reason } => write!(f, "wait: {reason}"),
            Action::Degraded { reason } => write!(f, "degraded: {reason}"),
            Action::Done => write!(f, "done"),
        }
    }
}

/// Coarse phase of the cluster, for status reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// No cluster exists yet (pods being created, bootstrap pending).
    Creating,
    /// Membership or workload size is changing.
    Scaling,
    /// A rolling restart to a new version is in progress.
    Upgrading,
    /// Desired state reached.
    Running,
    /// Quorum lost or refusing to act.
    Degraded,
}

/// The planner's answer: the next action plus what it concluded about the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The single next step.
    pub action: Action,
    /// Coarse phase, for status.
    pub phase: Phase,
    /// The planner's reading of the observation (leader, members and their health).
    pub view: ClusterView,
}
