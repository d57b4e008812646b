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

    let leader =
        view.leader.as_ref().map(|l| LeaderStatus { pod: names.pod(l.ordinal), node_id: l.node_id.to_string() });

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
        condition(
            &previous,
            AVAILABLE,
            available,
            if available { "LeaderElected" } else { "NoLeader" },
            &explain,
            generation,
            now,
        ),
        condition(&previous, PROGRESSING, progressing, plan.action_reason(), &explain, generation, now),
        condition(
            &previous,
            DEGRADED,
            degraded,
            if degraded { "Degraded" } else { "Healthy" },
            &explain,
            generation,
            now,
        ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use seshat_control::api::{ClusterStatus, Member, Membership};
    use seshat_control::planner::{plan, Desired, Slot};

    const IDS: [u64; 3] = [11, 22, 33];

    fn names() -> Names {
        Names::new("demo", "prod", "cluster.local")
    }

    fn node(ordinal: u32, leader: u32) -> ClusterStatus {
        let n = names();
        let membership = Membership {
            voters: (0..3).map(|o| Member { id: IDS[o as usize], addr: n.node_addr(o) }).collect(),
            learners: vec![],
            log_index: Some(3),
            joint: false,
        };
        let is_leader = ordinal == leader;
        ClusterStatus {
            node_id: IDS[ordinal as usize],
            addr: n.node_addr(ordinal),
            role: if is_leader { Role::Leader } else { Role::Follower },
            term: 2,
            leader_id: Some(IDS[leader as usize]),
            last_log_index: Some(40),
            last_applied: Some(40),
            committed: Some(40),
            snapshot_index: None,
            purged_index: None,
            membership,
            replication: if is_leader { IDS.iter().map(|id| (*id, Some(40))).collect() } else { Default::default() },
            version: "0.1.0".into(),
        }
    }

    fn cluster() -> SeshatCluster {
        let mut c: SeshatCluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "seshat.io/v1alpha1", "kind": "SeshatCluster",
            "metadata": {"name": "demo", "namespace": "prod", "generation": 4},
            "spec": {"image": "seshat:1", "replicas": 3}
        }))
        .unwrap();
        c.status = None;
        c
    }

    fn observed(reachable: &[u32]) -> Observed {
        let n = names();
        let slots = (0..3)
            .map(|o| {
                let mut s = Slot::absent(o, n.node_addr(o));
                s.exists = true;
                s.volume = true;
                s.version = Some("rev".into());
                if reachable.contains(&o) {
                    s.ready = true;
                    s.status = Some(node(o, 1));
                }
                s
            })
            .collect();
        Observed { workload_replicas: 3, slots, initialized_before: true }
    }

    #[test]
    fn healthy_cluster_is_running_with_its_leader() {
        let o = observed(&[0, 1, 2]);
        let p = plan(&Desired::new(3, "rev"), &o);
        assert_eq!(p.action, Action::Done);
        let s = build(&cluster(), &names(), &o, &p, None, Timestamp::UNIX_EPOCH);
        assert_eq!(s.phase, Some(Phase::Running));
        assert_eq!(s.ready.as_deref(), Some("3/3"));
        assert_eq!(s.leader, Some(LeaderStatus { pod: "demo-1".into(), node_id: "22".into() }));
        assert_eq!(s.members.len(), 3);
        assert!(s.members.iter().all(|m| m.healthy && m.applied_index == Some(40)));
        assert_eq!(s.members[1].role, "leader");
        assert_eq!(s.observed_generation, Some(4));
        let by_type = |t: &str| s.conditions.iter().find(|c| c.type_ == t).unwrap().status.clone();
        assert_eq!(
            (by_type(AVAILABLE), by_type(PROGRESSING), by_type(DEGRADED)),
            ("True".into(), "False".into(), "False".into())
        );
    }

    #[test]
    fn failed_action_degrades_and_transition_times_are_kept() {
        let o = observed(&[0, 1, 2]);
        let p = plan(&Desired::new(3, "rev"), &o);
        let mut c = cluster();
        let first = build(&c, &names(), &o, &p, None, Timestamp::UNIX_EPOCH);
        c.status = Some(first.clone());
        let later = Timestamp::UNIX_EPOCH.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(60)).unwrap();
        let same = build(&c, &names(), &o, &p, None, later);
        assert_eq!(same.conditions, first.conditions, "unchanged conditions keep their transition time");
        let failed = build(&c, &names(), &o, &p, Some("boom"), later);
        assert_eq!(failed.phase, Some(Phase::Degraded));
        let degraded = failed.conditions.iter().find(|c| c.type_ == DEGRADED).unwrap();
        assert_eq!((degraded.status.as_str(), degraded.last_transition_time.0), ("True", later));
        assert!(degraded.message.contains("boom"));
    }

    #[test]
    fn unreachable_member_is_unhealthy_and_unknown() {
        let o = observed(&[0, 1]);
        let p = plan(&Desired::new(3, "rev"), &o);
        let s = build(&cluster(), &names(), &o, &p, None, Timestamp::UNIX_EPOCH);
        assert_eq!(s.ready.as_deref(), Some("2/3"));
        assert_eq!(s.members[2].role, "unknown");
        assert!(!s.members[2].healthy);
        assert_eq!(s.members[2].node_id, None);
    }
}
