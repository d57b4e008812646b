//! The decision rules: given the [`ClusterView`], pick the single next [`Action`].
//!
//! Rules run in a fixed priority order; the first that has something to do wins:
//!
//! 1. validate the spec; grow the workload (never destructive, allowed even when degraded);
//! 2. no cluster anywhere → bootstrap (S4);
//! 3. no leader / joint or uncommitted config / quorum lost → wait or report degraded (S1, S7);
//! 4. remove stale members (replaced volumes, unplaceable ids) (S2);
//! 5. add / promote the members of the target ordinals, lowest first (S1, S3);
//! 6. move leadership off, then remove, members of removed ordinals, highest first (S2, S5);
//! 7. shrink the workload, then delete volumes per policy (S6);
//! 8. rolling restart to the desired version (S5, S8);
//! 9. done.

use crate::api::{NodeId, Role};

use super::view::{majority, ClusterView, LeaderRef, MemberView};
use super::{Action, Desired, Observed, Phase, Plan, Slot, VolumePolicy, MAX_REPLICAS};

/// Decides the next step. Pure: same inputs, same plan.
pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let view = ClusterView::new(desired, observed);
    let (action, phase) = decide(desired, observed, &view);
    Plan { action, phase, view }
}

fn wait(reason: impl Into<String>, phase: Phase) -> (Action, Phase) {
    (Action::Wait { reason: reason.into() }, phase)
}

fn degraded(reason: impl Into<String>) -> (Action, Phase) {
    (Action::Degraded { reason: reason.into() }, Phase::Degraded)
}

fn decide(d: &Desired, o: &Observed, v: &ClusterView) -> (Action, Phase) {
    if !(1..=MAX_REPLICAS).contains(&d.replicas) {
        return degraded(format!("desired replicas {} outside 1..={MAX_REPLICAS}", d.replicas));
    }
    let target = d.replicas;
    let creating = !v.any_state;

    // 1. Growing the workload only starts pods; it can never lose data.
    if o.workload_replicas < target {
        let phase = if creating { Phase::Creating } else { Phase::Scaling };
        return (Action::ScaleWorkload { replicas: target }, phase);
    }
    // Members are mapped to slots by address: a node advertising something else than
    // its slot expects would be mistaken for a stranger, so refuse to go on.
    if let Some(s) = o.slots.iter().find(|s| s.status.as_ref().is_some_and(|st| st.addr != s.addr)) {
        let st = s.status.as_ref().map(|st| &st.addr);
        return degraded(format!("ordinal {} advertises {:?} but the workload expects {:?}", s.ordinal, st, s.addr));
    }

    // 2. S4: bootstrap only a world with no Raft state at all.
    if creating {
        return bootstrap(o, target);
    }

    // 3. S7 / S1: act only through a leader, on a settled config, with quorum.
    let Some(leader) = &v.leader else {
        return no_leader(v);
    };
    if v.joint {
        return wait("membership change in flight (joint config)", Phase::Scaling);
    }
    if v.uncommitted {
        return wait("membership config not committed yet", Phase::Scaling);
    }
    let voters = v.voters();
    if !v.has_quorum() {
        // A fresh leader knows no follower's progress until its first round of
        // replication: that is not a lost quorum, only an unknown one.
        if v.members.iter().any(|m| m.voter && m.live && m.matched.is_none()) {
            return wait("new leader: replication progress not known yet", Phase::Scaling);
        }
        return degraded(format!("quorum lost: {} of {} voters healthy", v.healthy_count(&voters), voters.len()));
    }

    // 4..6: membership, one change at a time.
    if let Some(step) = remove_stale(v, &voters) {
        return step;
    }
    let pending = match add_members(d, o, v, &voters) {
        Ok(step) => return step,
        Err(pending) => pending,
    };
    if let Some(step) = remove_excess(o, v, leader, &voters, target) {
        return step;
    }
    if let Some(reason) = pending {
        return wait(reason, Phase::Scaling);
    }

    // 7. S6: shrink and clean up only once membership left the removed ordinals.
    if o.workload_replicas > target {
        return (Action::ScaleWorkload { replicas: target }, Phase::Scaling);
    }
    if d.volume_policy == VolumePolicy::Delete {
        if let Some(step) = delete_volumes(o, v, target) {
            return step;
        }
    }

    // 8. Rolling restart.
    if let Some(step) = upgrade(d, o, v, leader, &voters, target) {
        return step;
    }
    (Action::Done, Phase::Running)
}

/// S4: every target slot exists, answered, and holds no state; nobody remembers an
/// earlier cluster. Then the lowest ordinal starts a cluster alone.
fn bootstrap(o: &Observed, target: u32) -> (Action, Phase) {
    if let Some(s) = o.slots.iter().find(|s| s.exists && !s.reachable()) {
        return wait(format!("ordinal {} exists but does not answer yet", s.ordinal), Phase::Creating);
    }
    for ordinal in 0..target {
        match o.slot(ordinal) {
            Some(s) if s.exists && s.reachable() => {}
            _ => return wait(format!("waiting for ordinal {ordinal} to start"), Phase::Creating),
        }
    }
    if o.initialized_before {
        return degraded(
            "this cluster was initialized before but no node holds Raft state any more; \
             refusing to bootstrap a new, empty cluster over it",
        );
    }
    (Action::Bootstrap { ordinal: 0 }, Phase::Creating)
}

/// S7: no leader. Tell an election in progress apart from a lost quorum.
fn no_leader(v: &ClusterView) -> (Action, Phase) {
    let voters = v.voters();
    if voters.is_empty() {
        return wait("nodes hold Raft state but none reports a membership yet", Phase::Scaling);
    }
    let live = v.healthy_count(&voters);
    if live < majority(voters.len()) {
        return degraded(format!("quorum lost: no leader and only {live} of {} voters answer", voters.len()));
    }
    wait(format!("no leader yet ({live} of {} voters answer; election in progress)", voters.len()), Phase::Scaling)
}

/// S2 for a voter-set change `old → new`: healthy voters must be a majority of both
/// (joint consensus commits only with both), and the change touches exactly one node.
fn change_is_safe(v: &ClusterView, old: &[NodeId], new: &[NodeId]) -> Result<(), String> {
    let added = new.iter().filter(|id| !old.contains(id)).count();
    let removed = old.iter().filter(|id| !new.contains(id)).count();
    if added + removed > 1 {
        return Err(format!("refusing to change more than one voter at once ({old:?} -> {new:?})"));
    }
    if new.is_empty() {
        return Err("refusing to remove the last voter".into());
    }
    for (name, set) in [("current", old), ("new", new)] {
        let healthy = v.healthy_count(set);
        if healthy < majority(set.len()) {
            return Err(format!(
                "{name} voter set {set:?} would have only {healthy} healthy of {} (majority {})",
                set.len(),
                majority(set.len())
            ));
        }
    }
    Ok(())
}

fn without(voters: &[NodeId], id: NodeId) -> Vec<NodeId> {
    voters.iter().copied().filter(|v| *v != id).collect()
}

/// Step 4: a member whose slot now answers with another id (its volume was replaced),
/// or which no slot can host, can never vote again: remove it while quorum allows.
fn remove_stale(v: &ClusterView, voters: &[NodeId]) -> Option<(Action, Phase)> {
    let stale = v
        .members
        .iter()
        .filter(|m| m.stale || (m.ordinal.is_none() && !m.live))
        // Voters first: a dead voter weighs on quorum, a dead learner does not.
        .min_by_key(|m| (!m.voter, m.node_id))?;
    let new = if stale.voter { without(voters, stale.node_id) } else { voters.to_vec() };
    if stale.voter {
        if let Err(why) = change_is_safe(v, voters, &new) {
            return Some(degraded(format!("cannot remove stale node {}: {why}", stale.node_id)));
        }
    }
    Some((Action::RemoveStaleMember { node_id: stale.node_id, voters: new }, Phase::Scaling))
}

/// Step 5: every target ordinal must host a voter. Lowest ordinal first; returns the
/// first step to take, or (as `Err`) why some ordinal is not ready to be worked on.
///
/// One learner at a time: a learner already on a target ordinal is promoted (or
/// waited for) before any other node joins, even one on a lower ordinal that only
/// started answering after the learner was added.
fn add_members(
    d: &Desired,
    o: &Observed,
    v: &ClusterView,
    voters: &[NodeId],
) -> Result<(Action, Phase), Option<String>> {
    let learner = v
        .members
        .iter()
        .filter(|m| !m.voter && m.ordinal.is_some_and(|ord| ord < d.replicas))
        .min_by_key(|m| m.ordinal);
    if let Some(m) = learner {
        return promote(v, voters, m).map_err(Some);
    }
    let mut pending = None;
    for ordinal in 0..d.replicas {
        let slot = match o.slot(ordinal) {
            Some(s) if s.exists && !s.terminating => s,
            _ => {
                pending.get_or_insert(format!("waiting for ordinal {ordinal} to exist"));
                continue;
            }
        };
        let Some(st) = &slot.status else {
            // A down member may come back with its data: never replace it just for
            // not answering (that is the stale rule's job once another id answers).
            pending.get_or_insert(format!("waiting for ordinal {ordinal} to answer"));
            continue;
        };
        if v.member(st.node_id).is_some() {
            // A voter: a learner hosted on a target ordinal was handled above.
            continue;
        }
        if let Some(why) = foreign_state(v, slot) {
            return Ok(degraded(why));
        }
        return Ok((Action::AddLearner { ordinal, node_id: st.node_id, addr: st.addr.clone() }, Phase::Scaling));
    }
    Err(pending)
}

/// S3: promote only a live learner within `max_lag` of the leader's log.
fn promote(v: &ClusterView, voters: &[NodeId], m: &MemberView) -> Result<(Action, Phase), String> {
    if !(m.live && m.caught_up) {
        return Err(format!(
            "learner {} is catching up (matched {:?}, leader at {})",
            m.node_id, m.matched, v.last_index
        ));
    }
    let mut new = voters.to_vec();
    new.push(m.node_id);
    new.sort_unstable();
    change_is_safe(v, voters, &new)?;
    Ok((Action::Promote { node_id: m.node_id, voters: new }, Phase::Scaling))
}

/// A slot that is not a member may join as a learner only if it is blank, or its own
/// (stale) view of the membership shares a voter with ours — i.e. it was removed from
/// this very cluster earlier and its log is a prefix of ours. A node bootstrapped into a
/// cluster of its own would have a conflicting log: adding it could corrupt both.
fn foreign_state(v: &ClusterView, slot: &Slot) -> Option<String> {
    let st = slot.status.as_ref()?;
    if st.role == Role::Uninitialized && st.membership.voters.is_empty() {
        return None;
    }
    let shares = st.membership.voters.iter().chain(st.membership.learners.iter()).any(|m| v.member(m.id).is_some());
    if shares && st.role != Role::Leader {
        None
    } else {
        Some(format!(
            "ordinal {} (node {}) holds Raft state sharing no member with this cluster; \
             refusing to add it (delete its volume to let it join blank)",
            slot.ordinal, st.node_id
        ))
    }
}

/// Step 6: members living on ordinals at or above the target leave, highest ordinal
/// first; the leader hands over leadership before it is removed (S5).
fn remove_excess(
    o: &Observed,
    v: &ClusterView,
    leader: &LeaderRef,
    voters: &[NodeId],
    target: u32,
) -> Option<(Action, Phase)> {
    let m = v
        .members
        .iter()
        .filter(|m| m.ordinal.is_some_and(|ord| ord >= target))
        .max_by_key(|m| (m.ordinal, m.node_id))?;
    if m.node_id == leader.node_id {
        return Some(match transfer_target(o, v, target, None) {
            Some(to) => (Action::TransferLeader { from: leader.node_id, to }, Phase::Scaling),
            None => wait("leader must leave but no healthy, ready voter can take over", Phase::Scaling),
        });
    }
    let new = if m.voter { without(voters, m.node_id) } else { voters.to_vec() };
    if m.voter {
        if let Err(why) = change_is_safe(v, voters, &new) {
            return Some(wait(format!("cannot remove node {} yet: {why}", m.node_id), Phase::Scaling));
        }
    }
    Some((Action::RemoveMember { node_id: m.node_id, voters: new }, Phase::Scaling))
}

/// A voter that can take over leadership: healthy, on a kept ordinal, its slot ready
/// and not terminating. Prefers one already on `version`, then the lowest ordinal.
fn transfer_target(o: &Observed, v: &ClusterView, target: u32, version: Option<&str>) -> Option<NodeId> {
    v.members
        .iter()
        .filter(|m| m.voter && m.healthy && Some(m.node_id) != v.leader.as_ref().map(|l| l.node_id))
        .filter_map(|m| {
            let ordinal = m.ordinal.filter(|ord| *ord < target)?;
            let slot = o.slot(ordinal)?;
            (slot.ready && !slot.terminating).then_some((m.node_id, ordinal, slot))
        })
        .min_by_key(|(_, ordinal, slot)| {
            let stale_version = version.is_some_and(|want| slot.version.as_deref() != Some(want));
            (stale_version, *ordinal)
        })
        .map(|(id, _, _)| id)
}

/// Step 7, second half: volumes of ordinals without a pod and without a member go.
fn delete_volumes(o: &Observed, v: &ClusterView, target: u32) -> Option<(Action, Phase)> {
    let s = o
        .slots
        .iter()
        .filter(|s| s.ordinal >= target && s.volume)
        .filter(|s| !v.members.iter().any(|m| m.ordinal == Some(s.ordinal)))
        .min_by_key(|s| s.ordinal)?;
    if s.exists {
        return Some(wait(format!("ordinal {} still has a pod; its volume goes after it", s.ordinal), Phase::Scaling));
    }
    Some((Action::DeleteVolume { ordinal: s.ordinal }, Phase::Scaling))
}

/// Step 8 (S8, S5): restart one slot at a time onto the desired version, only while
/// every target slot is ready; followers first, the leader last after a transfer.
fn upgrade(
    d: &Desired,
    o: &Observed,
    v: &ClusterView,
    leader: &LeaderRef,
    voters: &[NodeId],
    target: u32,
) -> Option<(Action, Phase)> {
    // Unknown versions (`None`) are left alone: restarting is disruptive and the
    // planner cannot tell that it would help.
    let outdated = |s: &Slot| s.version.as_deref().is_some_and(|have| have != d.version);
    let slots: Vec<&Slot> = (0..target).filter_map(|ord| o.slot(ord)).collect();
    if !slots.iter().any(|s| outdated(s)) {
        return None;
    }
    if let Some(s) = slots.iter().find(|s| !s.exists || s.terminating || !s.ready) {
        return Some(wait(format!("rolling restart: waiting for ordinal {} to be ready", s.ordinal), Phase::Upgrading));
    }
    if let Some(s) = slots.iter().find(|s| outdated(s) && s.ordinal != leader.ordinal) {
        // Restart only a fully healthy cluster: from 3 voters on, one member down
        // still leaves a healthy majority. With 2 voters (like 1) any restart is a
        // brief, unavoidable loss of quorum, not of data: the node keeps its volume.
        if v.healthy_count(voters) < voters.len() {
            return Some(wait("rolling restart: waiting for every voter to be healthy", Phase::Upgrading));
        }
        return Some((Action::RestartMember { ordinal: s.ordinal }, Phase::Upgrading));
    }
    // Only the leader is left on the old version.
    if voters.len() == 1 {
        // A one-node cluster cannot hand over: the restart is the (brief) outage.
        return Some((Action::RestartMember { ordinal: leader.ordinal }, Phase::Upgrading));
    }
    Some(match transfer_target(o, v, target, Some(d.version.as_str())) {
        Some(to) => (Action::TransferLeader { from: leader.node_id, to }, Phase::Upgrading),
        None => wait("rolling restart: no healthy, ready voter can take over leadership", Phase::Upgrading),
    })
}
