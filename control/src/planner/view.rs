//! The planner's reading of an observation: who leads, which membership is in
//! force, which slot hosts each member, and which members are healthy.
//!
//! Kept apart from the decision rules so both the rules and the operator's status
//! reporting read the same interpretation of the world.

use crate::api::{ClusterStatus, Member, NodeId, Role};

use super::{Desired, Observed, Slot};

/// The leader as identified in an observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderRef {
    /// Leader's node id.
    pub node_id: NodeId,
    /// Ordinal of the slot it runs on.
    pub ordinal: u32,
    /// Its term.
    pub term: u64,
}

/// One Raft member as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// Node id.
    pub node_id: NodeId,
    /// Voter (true) or learner (false).
    pub voter: bool,
    /// Ordinal of the slot hosting it: the slot that reports this id, else the slot
    /// whose advertised addresses match the member's. `None`: no slot can host it.
    pub ordinal: Option<u32>,
    /// A slot answered `GET /cluster` with this very node id.
    pub live: bool,
    /// Highest log index the leader knows replicated to it (the leader: its last index).
    pub matched: Option<u64>,
    /// Within `max_lag` of the leader's last log index (only known with a leader).
    pub caught_up: bool,
    /// Live and caught up (without a leader: live). The leader is always healthy.
    pub healthy: bool,
    /// Its slot answers with a *different* node id: the volume was replaced and this id
    /// can never come back.
    pub stale: bool,
}

/// The whole interpretation of one observation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterView {
    /// The leader, when one is observed.
    pub leader: Option<LeaderRef>,
    /// The membership in force: the leader's, else the newest any node reported.
    pub members: Vec<MemberView>,
    /// The membership config is joint (a change is in flight).
    pub joint: bool,
    /// The leader's membership config is not yet committed.
    pub uncommitted: bool,
    /// Leader's last log index (0 without a leader).
    pub last_index: u64,
    /// Some reachable node holds Raft state (is initialized or knows a membership).
    pub any_state: bool,
}

impl ClusterView {
    /// Interprets `observed` under `desired`'s lag tolerance.
    pub fn new(desired: &Desired, observed: &Observed) -> Self {
        let reachable: Vec<(&Slot, &ClusterStatus)> =
            observed.slots.iter().filter_map(|s| s.status.as_ref().map(|st| (s, st))).collect();
        let any_state = reachable.iter().any(|(_, st)| has_state(st));
        let leader = find_leader(&reachable);

        // The membership in force: the leader's is authoritative; without one, the
        // newest config any node reports (highest config log index, then term) is the
        // best estimate of what an election would have to satisfy.
        let source: Option<&ClusterStatus> = match &leader {
            Some(l) => reachable.iter().find(|(s, _)| s.ordinal == l.ordinal).map(|(_, st)| *st),
            None => reachable
                .iter()
                .filter(|(_, st)| has_state(st))
                .max_by_key(|(_, st)| (st.membership.log_index, st.term))
                .map(|(_, st)| *st),
        };
        let Some(source) = source else {
            return Self { any_state, ..Self::default() };
        };

        let last_index = if leader.is_some() { source.last_log_index.unwrap_or(0) } else { 0 };
        let mut members = Vec::new();
        for (voter, list) in [(true, &source.membership.voters), (false, &source.membership.learners)] {
            for m in list {
                members.push(member_view(desired, observed, &leader, source, last_index, voter, m));
            }
        }
        let uncommitted = leader.is_some()
            && match (source.membership.log_index, source.committed) {
                (Some(cfg), Some(c)) => cfg > c,
                (Some(_), None) => true,
                (None, _) => false,
            };
        Self { leader, members, joint: source.membership.joint, uncommitted, last_index, any_state }
    }

    /// Voter ids, sorted.
    pub fn voters(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.members.iter().filter(|m| m.voter).map(|m| m.node_id).collect();
        v.sort_unstable();
        v
    }

    /// The member with this id.
    pub fn member(&self, id: NodeId) -> Option<&MemberView> {
        self.members.iter().find(|m| m.node_id == id)
    }

    /// The member hosted on this ordinal that is live there (reports its id), if any.
    pub fn live_member_at(&self, ordinal: u32) -> Option<&MemberView> {
        self.members.iter().find(|m| m.live && m.ordinal == Some(ordinal))
    }

    /// Number of healthy voters among `voters`.
    pub fn healthy_count(&self, voters: &[NodeId]) -> usize {
        voters.iter().filter(|id| self.member(**id).is_some_and(|m| m.healthy)).count()
    }

    /// True when the healthy voters form a majority of the current voter set.
    pub fn has_quorum(&self) -> bool {
        let voters = self.voters();
        !voters.is_empty() && self.healthy_count(&voters) >= majority(voters.len())
    }
}

/// Votes needed for a majority of `n` voters.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// A node holds Raft state when it left the uninitialized role or knows any voter.
fn has_state(st: &ClusterStatus) -> bool {
    st.role != Role::Uninitialized || !st.membership.voters.is_empty()
}

/// The leader: a node that says it leads and is a voter of its own config. If several
/// claim it (a deposed leader that has not heard the news), the highest term wins; a
/// tie in the same term cannot happen in Raft, so it is treated as "no leader".
fn find_leader(reachable: &[(&Slot, &ClusterStatus)]) -> Option<LeaderRef> {
    let mut claims: Vec<LeaderRef> = reachable
        .iter()
        .filter(|(_, st)| st.role == Role::Leader && st.membership.voters.iter().any(|m| m.id == st.node_id))
        .map(|(s, st)| LeaderRef { node_id: st.node_id, ordinal: s.ordinal, term: st.term })
        .collect();
    claims.sort_by_key(|l| std::cmp::Reverse(l.term));
    match claims.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        [a, b, ..] if a.term > b.term => Some(a.clone()),
        _ => None,
    }
}

fn member_view(
    desired: &Desired,
    observed: &Observed,
    leader: &Option<LeaderRef>,
    source: &ClusterStatus,
    last_index: u64,
    voter: bool,
    m: &Member,
) -> MemberView {
    let by_id = observed.slots.iter().find(|s| s.node_id() == Some(m.id)).map(|s| s.ordinal);
    let by_addr = observed
        .slots
        .iter()
        .find(|s| {
            (!m.addr.raft_addr.is_empty() && s.addr.raft_addr == m.addr.raft_addr)
                || (!m.addr.http_addr.is_empty() && s.addr.http_addr == m.addr.http_addr)
        })
        .map(|s| s.ordinal);
    let live = by_id.is_some();
    let ordinal = by_id.or(by_addr);
    // Stale: the slot at the member's address answers, with another id. The old id
    // lived in the replaced volume and can never answer again.
    let stale = !live && by_addr.and_then(|o| observed.slot(o)).and_then(|s| s.node_id()).is_some_and(|id| id != m.id);
    let (matched, caught_up) = match leader {
        Some(l) if l.node_id == m.id => (Some(last_index), true),
        Some(_) => {
            let matched = source.replication.get(&m.id).copied().flatten();
            let caught_up = matched.is_some_and(|x| last_index.saturating_sub(x) <= desired.max_lag);
            (matched, caught_up)
        }
        None => (None, false),
    };
    let healthy = match leader {
        Some(l) if l.node_id == m.id => true,
        Some(_) => live && caught_up,
        None => live,
    };
    MemberView { node_id: m.id, voter, ordinal, live, matched, caught_up, healthy, stale }
}
