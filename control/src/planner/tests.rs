//! Table tests of the planner: one case per transition, and one per unsafe step it
//! must refuse. States come from the simulator ([`super::sim`]) or are edited
//! observations where the simulator cannot produce them (joint configs, lagging learners).

use super::sim::{addr, Sim};
use super::*;
use crate::api::Role;

fn d(n: u32) -> Desired {
    Desired::new(n, "v1")
}

fn act(desired: &Desired, observed: &Observed) -> Action {
    plan(desired, observed).action
}

/// Runs the sim-produced observation through the planner.
fn next(sim: &Sim, desired: &Desired) -> Action {
    act(desired, &sim.observe())
}

fn is_wait(a: &Action) -> bool {
    matches!(a, Action::Wait { .. })
}

fn is_degraded(a: &Action) -> bool {
    matches!(a, Action::Degraded { .. })
}

fn id(sim: &Sim, o: u32) -> NodeId {
    sim.id_at(o).unwrap()
}

// ---------------------------------------------------------------- creation

#[test]
fn create_grows_workload_first() {
    let p = plan(&d(3), &Sim::empty("v1").observe());
    assert_eq!(p.action, Action::ScaleWorkload { replicas: 3 });
    assert_eq!(p.phase, Phase::Creating);
}

#[test]
fn create_bootstraps_ordinal_zero_alone_when_every_node_is_blank() {
    let mut sim = Sim::empty("v1");
    sim.apply(&Action::ScaleWorkload { replicas: 3 }).unwrap();
    assert_eq!(next(&sim, &d(3)), Action::Bootstrap { ordinal: 0 });
}

#[test]
fn create_waits_for_every_pod_to_answer_before_bootstrap() {
    let mut sim = Sim::empty("v1");
    sim.apply(&Action::ScaleWorkload { replicas: 3 }).unwrap();
    sim.crash(2);
    let a = next(&sim, &d(3));
    assert!(is_wait(&a), "{a}");
}

#[test]
fn never_bootstraps_when_any_node_holds_state() {
    // Ordinal 0 came back blank, the others hold state but are down: an old cluster.
    let mut sim = Sim::running(3, 0, "v1");
    sim.initialized_before = false;
    sim.wipe(0);
    sim.crash(1);
    sim.crash(2);
    sim.leader = None;
    let a = next(&sim, &d(3));
    assert!(!matches!(a, Action::Bootstrap { .. }), "{a}");
    // Even when only a non-member answers with state (removed earlier).
    let mut obs = Sim::empty("v1").observe();
    obs.workload_replicas = 3;
    for o in 0..3 {
        let mut s = Sim::running(3, 0, "v1").observe().slots[o as usize].clone();
        if o != 1 {
            let st = s.status.as_mut().unwrap();
            st.role = Role::Uninitialized;
            st.membership = Default::default();
        }
        obs.slots[o as usize] = s;
    }
    let obs1 = obs.slots[1].status.as_mut().unwrap();
    obs1.role = Role::Follower;
    let a = act(&d(3), &obs);
    assert!(!matches!(a, Action::Bootstrap { .. }), "{a}");
}

#[test]
fn never_rebootstraps_a_cluster_seen_initialized() {
    let mut sim = Sim::empty("v1");
    sim.apply(&Action::ScaleWorkload { replicas: 3 }).unwrap();
    sim.initialized_before = true;
    let a = next(&sim, &d(3));
    assert!(is_degraded(&a), "{a}");
}

#[test]
fn after_bootstrap_adds_next_ordinal_as_learner() {
    let mut sim = Sim::empty("v1");
    sim.apply(&Action::ScaleWorkload { replicas: 3 }).unwrap();
    sim.apply(&Action::Bootstrap { ordinal: 0 }).unwrap();
    sim.tick();
    assert_eq!(next(&sim, &d(3)), Action::AddLearner { ordinal: 1, node_id: id(&sim, 1), addr: addr(1) });
}

#[test]
fn promotes_caught_up_learner() {
    let mut sim = Sim::running(1, 0, "v1");
    sim.apply(&Action::ScaleWorkload { replicas: 2 }).unwrap();
    let n1 = id(&sim, 1);
    sim.apply(&Action::AddLearner { ordinal: 1, node_id: n1, addr: addr(1) }).unwrap();
    let mut voters = vec![id(&sim, 0), n1];
    voters.sort_unstable();
    assert_eq!(next(&sim, &d(2)), Action::Promote { node_id: n1, voters });
}

#[test]
fn refuses_to_promote_lagging_learner() {
    let mut sim = Sim::running(1, 0, "v1");
    sim.apply(&Action::ScaleWorkload { replicas: 2 }).unwrap();
    let n1 = id(&sim, 1);
    sim.apply(&Action::AddLearner { ordinal: 1, node_id: n1, addr: addr(1) }).unwrap();
    let mut obs = sim.observe();
    let leader = obs.slots[0].status.as_mut().unwrap();
    leader.last_log_index = Some(10_000);
    leader.replication.insert(n1, Some(10_000 - DEFAULT_MAX_LAG - 1));
    let a = act(&d(2), &obs);
    assert!(is_wait(&a), "{a}");
    // Unknown progress is lagging too.
    obs.slots[0].status.as_mut().unwrap().replication.insert(n1, None);
    assert!(is_wait(&act(&d(2), &obs)));
    // Within the lag: promoted.
    obs.slots[0].status.as_mut().unwrap().replication.insert(n1, Some(10_000 - DEFAULT_MAX_LAG));
    assert!(matches!(act(&d(2), &obs), Action::Promote { .. }));
}

#[test]
fn refuses_to_promote_unreachable_learner() {
    let mut sim = Sim::running(1, 0, "v1");
    sim.apply(&Action::ScaleWorkload { replicas: 2 }).unwrap();
    let n1 = id(&sim, 1);
    sim.apply(&Action::AddLearner { ordinal: 1, node_id: n1, addr: addr(1) }).unwrap();
    sim.crash(1);
    let a = next(&sim, &d(2));
    assert!(is_wait(&a), "{a}");
}

// ---------------------------------------------------------------- scale up / down

#[test]
fn scale_up_grows_then_adds_lowest_new_ordinal() {
    let mut sim = Sim::running(3, 1, "v1");
    assert_eq!(next(&sim, &d(5)), Action::ScaleWorkload { replicas: 5 });
    sim.apply(&Action::ScaleWorkload { replicas: 5 }).unwrap();
    assert!(matches!(next(&sim, &d(5)), Action::AddLearner { ordinal: 3, .. }));
}

#[test]
fn scale_up_promotes_a_learner_before_adding_another() {
    // Ordinal 3 started answering late, after ordinal 4 had already joined as a
    // learner: 4 is promoted first, so at most one learner is in flight.
    let mut sim = Sim::running(3, 0, "v1");
    sim.apply(&Action::ScaleWorkload { replicas: 5 }).unwrap();
    let n4 = id(&sim, 4);
    sim.apply(&Action::AddLearner { ordinal: 4, node_id: n4, addr: addr(4) }).unwrap();
    assert!(matches!(next(&sim, &d(5)), Action::Promote { node_id, .. } if node_id == n4));
}

#[test]
fn scale_down_removes_highest_ordinal_first_then_shrinks() {
    let mut sim = Sim::running(5, 0, "v1");
    let n4 = id(&sim, 4);
    let want: Vec<NodeId> = sim.voters.iter().copied().filter(|i| *i != n4).collect();
    assert_eq!(next(&sim, &d(3)), Action::RemoveMember { node_id: n4, voters: want.clone() });
    sim.apply(&Action::RemoveMember { node_id: n4, voters: want }).unwrap();
    assert!(matches!(next(&sim, &d(3)), Action::RemoveMember { .. }));
    let n3 = id(&sim, 3);
    let want: Vec<NodeId> = sim.voters.iter().copied().filter(|i| *i != n3).collect();
    sim.apply(&Action::RemoveMember { node_id: n3, voters: want }).unwrap();
    assert_eq!(next(&sim, &d(3)), Action::ScaleWorkload { replicas: 3 });
    sim.apply(&Action::ScaleWorkload { replicas: 3 }).unwrap();
    assert_eq!(next(&sim, &d(3)), Action::Done);
}

#[test]
fn scale_down_transfers_leadership_off_the_departing_leader() {
    let sim = Sim::running(3, 2, "v1");
    assert_eq!(next(&sim, &d(1)), Action::TransferLeader { from: id(&sim, 2), to: id(&sim, 0) });
}

#[test]
fn scale_down_never_shrinks_while_a_member_lives_on_a_removed_ordinal() {
    let mut sim = Sim::running(3, 0, "v1");
    // Ordinal 2 is down: still a member, so no shrink before it is removed.
    sim.crash(2);
    let a = next(&sim, &d(2));
    assert!(matches!(a, Action::RemoveMember { node_id, .. } if node_id == id(&sim, 2)), "{a}");
}

#[test]
fn scale_down_removes_excess_learner_keeping_voters() {
    let mut sim = Sim::running(3, 0, "v1");
    sim.apply(&Action::ScaleWorkload { replicas: 4 }).unwrap();
    let n3 = id(&sim, 3);
    sim.apply(&Action::AddLearner { ordinal: 3, node_id: n3, addr: addr(3) }).unwrap();
    assert_eq!(next(&sim, &d(3)), Action::RemoveMember { node_id: n3, voters: sim.voters.clone() });
}

#[test]
fn refuses_removal_that_would_leave_no_healthy_majority() {
    // 5 voters, ordinals 0 and 1 down: 3 of 5 healthy. Removing healthy ordinal 4
    // leaves 2 healthy of 4 (majority 3): must refuse.
    let mut sim = Sim::running(5, 2, "v1");
    sim.crash(0);
    sim.crash(1);
    sim.writes_per_tick = 1000;
    sim.tick(); // the dead ones fall behind
    let a = next(&sim, &d(3));
    assert!(is_wait(&a), "{a}");
}

#[test]
fn scale_down_deletes_volumes_per_policy_only_after_pods_are_gone() {
    let mut sim = Sim::running(3, 0, "v1");
    for o in [2, 1] {
        let n = id(&sim, o);
        let want: Vec<NodeId> = sim.voters.iter().copied().filter(|i| *i != n).collect();
        sim.apply(&Action::RemoveMember { node_id: n, voters: want }).unwrap();
    }
    let mut desired = d(1);
    desired.volume_policy = VolumePolicy::Delete;
    assert_eq!(next(&sim, &desired), Action::ScaleWorkload { replicas: 1 });
    // Pod of ordinal 1 still exists (terminating): wait rather than delete its volume.
    let mut obs = sim.observe();
    obs.workload_replicas = 1;
    obs.slots[2].exists = false;
    let a = act(&desired, &obs);
    assert!(is_wait(&a), "{a}");
    sim.apply(&Action::ScaleWorkload { replicas: 1 }).unwrap();
    assert_eq!(next(&sim, &desired), Action::DeleteVolume { ordinal: 1 });
    sim.apply(&Action::DeleteVolume { ordinal: 1 }).unwrap();
    assert_eq!(next(&sim, &desired), Action::DeleteVolume { ordinal: 2 });
    sim.apply(&Action::DeleteVolume { ordinal: 2 }).unwrap();
    assert_eq!(next(&sim, &desired), Action::Done);
    // Retain keeps them.
    let mut sim2 = sim.clone();
    sim2.slots[1].volume = Some(sim.slots[0].volume.clone().unwrap());
    sim2.slots[1].volume.as_mut().unwrap().id = 999;
    assert_eq!(next(&sim2, &d(1)), Action::Done);
}

// ---------------------------------------------------------------- replaced volumes

#[test]
fn replaced_volume_removes_old_id_then_adds_new_id() {
    let mut sim = Sim::running(3, 0, "v1");
    let old = id(&sim, 1);
    sim.wipe(1);
    let new = id(&sim, 1);
    let want: Vec<NodeId> = sim.voters.iter().copied().filter(|i| *i != old).collect();
    assert_eq!(next(&sim, &d(3)), Action::RemoveStaleMember { node_id: old, voters: want.clone() });
    sim.apply(&Action::RemoveStaleMember { node_id: old, voters: want }).unwrap();
    assert_eq!(next(&sim, &d(3)), Action::AddLearner { ordinal: 1, node_id: new, addr: addr(1) });
}

#[test]
fn replaced_volume_without_quorum_is_degraded_not_removed() {
    let mut sim = Sim::running(3, 0, "v1");
    sim.wipe(1);
    sim.crash(2);
    sim.writes_per_tick = 1000;
    sim.tick();
    let a = next(&sim, &d(3));
    assert!(is_degraded(&a), "{a}");
}

#[test]
fn down_member_is_waited_for_never_replaced() {
    let mut sim = Sim::running(3, 0, "v1");
    sim.crash(1);
    let a = next(&sim, &d(3));
    assert!(is_wait(&a), "{a}");
}

#[test]
fn stale_learner_is_removed_without_touching_voters() {
    let mut sim = Sim::running(2, 0, "v1");
    sim.apply(&Action::ScaleWorkload { replicas: 3 }).unwrap();
    let n2 = id(&sim, 2);
    sim.apply(&Action::AddLearner { ordinal: 2, node_id: n2, addr: addr(2) }).unwrap();
    sim.wipe(2);
    assert_eq!(next(&sim, &d(3)), Action::RemoveStaleMember { node_id: n2, voters: sim.voters.clone() });
}

#[test]
fn refuses_to_add_a_node_from_another_cluster() {
    let mut sim = Sim::running(3, 0, "v1");
    sim.apply(&Action::ScaleWorkload { replicas: 4 }).unwrap();
    let mut obs = sim.observe();
    let st = obs.slots[3].status.as_mut().unwrap();
    // A leader of its own one-node cluster (in an older term than ours).
    st.role = Role::Leader;
    st.term = 0;
    st.membership.voters = vec![crate::api::Member { id: st.node_id, addr: addr(3) }];
    let a = act(&d(4), &obs);
    assert!(is_degraded(&a), "{a}");
    // A follower whose config shares no member with ours.
    obs.slots[3].status.as_mut().unwrap().role = Role::Follower;
    let a = act(&d(4), &obs);
    assert!(is_degraded(&a), "{a}");
}

// ---------------------------------------------------------------- no leader / quorum

#[test]
fn no_leader_with_live_majority_waits() {
    let mut sim = Sim::running(3, 0, "v1");
    sim.crash(0);
    sim.leader = None;
    let a = next(&sim, &d(3));
    assert!(is_wait(&a), "{a}");
}

#[test]
fn quorum_lost_is_degraded_and_nothing_destructive_happens() {
    for desired in [d(1), d(3), Desired::new(3, "v2")] {
        let mut sim = Sim::running(3, 2, "v1");
        sim.crash(0);
        sim.crash(1);
        sim.writes_per_tick = 1000;
        sim.tick();
        // The old leader still claims leadership but has no healthy majority.
        let a = next(&sim, &desired);
        assert!(is_degraded(&a), "{a}");
        sim.leader = None;
        let a = next(&sim, &desired);
        assert!(is_degraded(&a), "{a}");
    }
}

#[test]
fn growing_is_allowed_while_degraded() {
    let mut sim = Sim::running(3, 0, "v1");
    sim.crash(1);
    sim.crash(2);
    sim.leader = None;
    assert_eq!(next(&sim, &d(5)), Action::ScaleWorkload { replicas: 5 });
}

#[test]
fn joint_or_uncommitted_config_waits() {
    let sim = Sim::running(3, 0, "v1");
    let mut obs = sim.observe();
    obs.slots[0].status.as_mut().unwrap().membership.joint = true;
    assert!(is_wait(&act(&d(3), &obs)));
    let mut obs = sim.observe();
    let st = obs.slots[0].status.as_mut().unwrap();
    st.membership.log_index = Some(50);
    st.committed = Some(49);
    assert!(is_wait(&act(&d(3), &obs)));
}

#[test]
fn highest_term_leader_wins_conflicting_claims() {
    let sim = Sim::running(3, 0, "v1");
    let mut obs = sim.observe();
    let replication = obs.slots[0].status.as_ref().unwrap().replication.clone();
    let st = obs.slots[2].status.as_mut().unwrap();
    st.role = Role::Leader;
    st.term = 99;
    st.replication = replication;
    let p = plan(&d(3), &obs);
    assert_eq!(p.view.leader.as_ref().map(|l| l.ordinal), Some(2));
    // Same term: ambiguous, no leader.
    obs.slots[2].status.as_mut().unwrap().term = 1;
    assert_eq!(plan(&d(3), &obs).view.leader, None);
}

// ---------------------------------------------------------------- upgrade

#[test]
fn upgrade_restarts_followers_first_one_at_a_time() {
    let mut sim = Sim::running(3, 0, "v1");
    sim.template_version = "v2".into();
    let v2 = Desired::new(3, "v2");
    assert_eq!(next(&sim, &v2), Action::RestartMember { ordinal: 1 });
    sim.apply(&Action::RestartMember { ordinal: 1 }).unwrap();
    // Ordinal 1 not ready yet: wait, never restart a second one.
    let a = next(&sim, &v2);
    assert!(is_wait(&a), "{a}");
    sim.tick();
    sim.tick();
    assert_eq!(next(&sim, &v2), Action::RestartMember { ordinal: 2 });
    sim.apply(&Action::RestartMember { ordinal: 2 }).unwrap();
    sim.tick();
    sim.tick();
    // Only the leader is left: transfer first.
    assert_eq!(next(&sim, &v2), Action::TransferLeader { from: id(&sim, 0), to: id(&sim, 1) });
    sim.apply(&Action::TransferLeader { from: id(&sim, 0), to: id(&sim, 1) }).unwrap();
    assert_eq!(next(&sim, &v2), Action::RestartMember { ordinal: 0 });
}

#[test]
fn upgrade_of_a_single_node_restarts_it() {
    let mut sim = Sim::running(1, 0, "v1");
    sim.template_version = "v2".into();
    assert_eq!(next(&sim, &Desired::new(1, "v2")), Action::RestartMember { ordinal: 0 });
}

#[test]
fn upgrade_waits_for_terminating_pods() {
    let mut sim = Sim::running(3, 0, "v1");
    sim.template_version = "v2".into();
    let mut obs = sim.observe();
    obs.slots[1].terminating = true;
    let a = act(&Desired::new(3, "v2"), &obs);
    assert!(is_wait(&a), "{a}");
}

#[test]
fn unknown_versions_are_not_restarted() {
    let sim = Sim::running(3, 0, "v1");
    let mut obs = sim.observe();
    for s in &mut obs.slots {
        s.version = None;
    }
    assert_eq!(act(&Desired::new(3, "v2"), &obs), Action::Done);
}

// ---------------------------------------------------------------- validation

#[test]
fn rejects_out_of_range_replicas() {
    let sim = Sim::running(3, 0, "v1");
    assert!(is_degraded(&next(&sim, &d(0))));
    assert!(is_degraded(&next(&sim, &d(MAX_REPLICAS + 1))));
}

#[test]
fn refuses_when_a_node_advertises_an_unexpected_address() {
    let sim = Sim::running(3, 0, "v1");
    let mut obs = sim.observe();
    obs.slots[1].status.as_mut().unwrap().addr.raft_addr = "elsewhere:1".into();
    assert!(is_degraded(&act(&d(3), &obs)));
}

#[test]
fn steady_state_is_done_and_running() {
    let p = plan(&d(3), &Sim::running(3, 1, "v1").observe());
    assert_eq!(p.action, Action::Done);
    assert_eq!(p.phase, Phase::Running);
    assert!(p.view.has_quorum());
    assert_eq!(p.view.members.len(), 3);
}

#[test]
fn two_voters_with_one_replaced_volume_is_degraded_forever() {
    // {a, b} with b's volume replaced: no majority of the old config can commit the
    // removal of b, so the planner must report instead of acting.
    let mut sim = Sim::running(2, 0, "v1");
    sim.wipe(1);
    sim.tick();
    let a = next(&sim, &d(2));
    assert!(is_degraded(&a), "{a}");
}

#[test]
fn fresh_leader_without_progress_waits_instead_of_reporting_degraded() {
    let sim = Sim::running(3, 0, "v1");
    let mut obs = sim.observe();
    for v in obs.slots[0].status.as_mut().unwrap().replication.values_mut() {
        *v = None;
    }
    let a = act(&d(5), &obs);
    // Growing is still planned first; with the size right, it waits.
    assert_eq!(a, Action::ScaleWorkload { replicas: 5 });
    let a = act(&d(3), &obs);
    assert!(is_wait(&a), "{a}");
}
