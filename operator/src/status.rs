//! Builds `SeshatCluster.status` from one observation and the planner's verdict.
//!
//! Pure: the reconciler patches whatever this returns, so every field is testable
//! without an API server.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use seshat_control::api::Role;
use seshat_control::planner::{Action, Observed, Phase as PlanPhase, Plan};

use crate::crd::{LeaderStatus, MemberStatus, Phase, SeshatCluster, SeshatClusterStatus};
use crate::naming::Names;

/// Condition type: the cluster serves (a leader with quorum).
pub const AVAILABLE: &str = "Available";
/// Condition type: the operator is still working towards the spec.
pub const PROGRESSING: &str = "Progressing";
/// Condition type: quorum or a member is lost, or the operator refuses to act.
pub const DEGRADED: &str = "Degraded";

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Uninitialized => "uninitialized",
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::Learner => "learner",
        Role::Shutdown => "shutdown",
    }
}

/// The status for `cluster` after planning `plan` on `observed`.
///
/// `action_error`, when set, is why executing the planned action failed; it turns
/// the cluster Degraded in the status but does not change the membership picture.
pub fn build(
    cluster: &SeshatCluster,
    names: &Names,
    observed: &Observed,
    plan: &Plan,
    action_error: Option<&str>,
    now: Timestamp,
) -> SeshatClusterStatus {
    let previous = cluster.status.clone().unwrap_or_default();
    let view = &plan.view;
    let existing: Vec<_> = observed.slots.iter().filter(|s| s.exists).collect();
    let ready = existing.iter().filter(|s| s.ready).count() as i32;

    let members = existing
        .iter()
        .map(|slot| {
            let st = slot.status.as_ref();
            let member = st.and_then(|st| view.members.iter().find(|m| m.node_id == st.node_id));
            MemberStatus {
                pod: names.pod(slot.ordinal),
                node_id: st.map(|st| st.node_id.to_string()),
                role: st.map_or("unknown", |st| role_name(st.role)).to_string(),
                healthy: slot.ready && st.is_some() && member.is_some_and(|m| m.healthy),
                applied_index: st.and_then(|st| st.last_applied).and_then(|i| i64::try_from(i).ok()),
            }
        })
        .collect();

    let leader = view.leader.as_ref().map(|l| LeaderStatus { pod: names.pod(l.ordinal), node_id: l.node_id.to_string() });

    let phase = match plan.phase {
        _ if action_error.is_some() => Phase::Degraded,
        PlanPhase::Creating if !observed.slots.iter().any(|s| s.reachable()) => Phase::Pending,
        PlanPhase::Creating => Phase::Bootstrapping,
        PlanPhase::Scaling => Phase::Scaling,
        PlanPhase::Upgrading => Phase::Upgrading,
        PlanPhase::Running => Phase::Running,
        PlanPhase::Degraded => Phase::Degraded,
    };

    let generation = cluster.metadata.generation;
    let explain = match (&plan.action, action_error) {
        (_, Some(err)) => format!("{}: {err}", plan.action),
        (Action::Done, None) => "desired state reached".to_string(),
        (action, None) => action.to_string(),
    };
    let available = leader.is_some() && plan.phase != PlanPhase::Degraded;
    let progressing = plan.action != Action::Done;
    let degraded = phase == Phase::Degraded;
    let conditions = vec![
        condition(&previous, AVAILABLE, available, if available { "LeaderElected" } else { "NoLeader" }, &explain, generation, now),
        condition(&previous, PROGRESSING, progressing, plan.action_reason(), &explain, generation, now),
        condition(&previous, DEGRADED, degraded, if degraded { "Degraded" } else { "Healthy" }, &explain, generation, now),
    ];

    SeshatClusterStatus {
        phase: Some(phase),
        replicas: existing.len() as i32,
        ready_replicas: ready,
        ready: Some(format!("{ready}/{}", cluster.spec.replicas)),
        leader,
        members,
        observed_generation: generation,
        conditions,
    }
}

/// A condition keeping its `lastTransitionTime` unless its status flips.
fn condition(
    previous: &SeshatClusterStatus,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let last_transition_time = previous
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message: message.chars().take(1024).collect(),
        observed_generation: generation,
        last_transition_time,
    }
}

/// CamelCase reason of the planner's action, for conditions and Events.
pub trait ActionReason {
    /// `AddLearner`, `Promote`, `Wait`, ...
    fn action_reason(&self) -> &'static str;
}

impl ActionReason for Action {
    fn action_reason(&self) -> &'static str {
        match self {
            Action::ScaleWorkload { .. } => "ScaleWorkload",
            Action::Bootstrap { .. } => "Bootstrap",
            Action::AddLearner { .. } => "AddLearner",
            Action::Promote { .. } => "Promote",
            Action::TransferLeader { .. } => "TransferLeader",
            Action::RemoveMember { .. } => "RemoveMember",
            Action::RemoveStaleMember { .. } => "RemoveStaleMember",
            Action::DeleteVolume { .. } => "DeleteVolume",
            Action::RestartMember { .. } => "RestartMember",
            Action::Wait { .. } => "Waiting",
            Action::Degraded { .. } => "Degraded",
            Action::Done => "Reconciled",
        }
    }
}

impl ActionReason for Plan {
    fn action_reason(&self) -> &'static str {
        self.action.action_reason()
    }
}
