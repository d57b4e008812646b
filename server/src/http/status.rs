//! Read-only endpoints: `/readyz`, `/leader`, `/cluster`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use openraft::ServerState;
use seshat_control::api::{ClusterStatus, LeaderInfo, Member, Membership, Readiness, Role};

use super::HttpState;
use crate::raft::{RaftNode, StoredMembership};

/// A node whose applied index trails the commit index by more than this is
/// not ready: it would serve stale reads in `stale` mode and slow the leader's
/// ReadIndex waits.
const READY_MAX_APPLY_LAG: u64 = 1_000;

/// This node's role from its Raft state and membership.
pub fn role_of(node: &RaftNode) -> Role {
    let m = node.metrics();
    let membership = m.membership_config.membership();
    let in_config = membership.get_node(&node.id()).is_some();
    match m.state {
        ServerState::Leader => Role::Leader,
        ServerState::Candidate => Role::Candidate,
        ServerState::Shutdown => Role::Shutdown,
        ServerState::Learner if in_config => Role::Learner,
        ServerState::Follower if in_config => {
            if membership.voter_ids().any(|v| v == node.id()) {
                Role::Follower
            } else {
                Role::Learner
            }
        }
        _ => Role::Uninitialized,
    }
}

/// The membership as the API shows it.
pub fn membership_view(stored: &StoredMembership) -> Membership {
    let m = stored.membership();
    let member = |id: u64| Member { id, addr: m.get_node(&id).cloned().unwrap_or_default() };
    let mut voters: Vec<Member> = m.voter_ids().map(member).collect();
    let mut learners: Vec<Member> = m.learner_ids().map(member).collect();
    voters.sort_by_key(|v| v.id);
    learners.sort_by_key(|v| v.id);
    Membership { voters, learners, log_index: stored.log_id().map(|l| l.index), joint: m.get_joint_config().len() > 1 }
}

/// `GET /leader`.
pub async fn leader(State(state): State<Arc<HttpState>>) -> Json<LeaderInfo> {
    Json(leader_info(&state.node))
}

/// The leader as this node knows it.
pub fn leader_info(node: &RaftNode) -> LeaderInfo {
    let term = node.metrics().current_term;
    match node.leader() {
        Some((id, addr)) => LeaderInfo {
            leader_id: Some(id),
            leader_resp_addr: addr.as_ref().map(|a| a.resp_addr.clone()),
            leader_http_addr: addr.as_ref().map(|a| a.http_addr.clone()),
            term,
        },
        None => LeaderInfo { leader_id: None, leader_resp_addr: None, leader_http_addr: None, term },
    }
}

/// `GET /cluster`.
pub async fn cluster(State(state): State<Arc<HttpState>>) -> Json<ClusterStatus> {
    let node = &state.node;
    let m = node.metrics();
    let replication: BTreeMap<u64, Option<u64>> = m
        .replication
        .as_ref()
        .map(|r| r.iter().map(|(id, l)| (*id, l.as_ref().map(|l| l.index))).collect())
        .unwrap_or_default();
    Json(ClusterStatus {
        node_id: node.id(),
        addr: node.addr().clone(),
        role: role_of(node),
        term: m.current_term,
        leader_id: m.current_leader,
        last_log_index: m.last_log_index,
        last_applied: m.last_applied.map(|l| l.index),
        committed: m.local_committed.map(|l| l.index),
        snapshot_index: m.snapshot.map(|l| l.index),
        purged_index: m.purged.map(|l| l.index),
        membership: membership_view(&m.membership_config),
        replication,
        version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

/// `GET /readyz`: 200 only for a member with a known leader whose state
/// machine has caught up with the commit index.
pub async fn readyz(State(state): State<Arc<HttpState>>) -> (StatusCode, Json<Readiness>) {
    let reason = not_ready_reason(&state.node);
    let ready = reason.is_none();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Readiness { ready, reason: reason.unwrap_or_default() }))
}

fn not_ready_reason(node: &RaftNode) -> Option<String> {
    let role = role_of(node);
    if matches!(role, Role::Uninitialized | Role::Shutdown) {
        return Some(format!("node is {role:?}: not a member of a cluster"));
    }
    let m = node.metrics();
    if m.current_leader.is_none() {
        return Some("no known leader".into());
    }
    let applied = m.last_applied.map_or(0, |l| l.index);
    let committed = m.local_committed.map_or(0, |l| l.index);
    if committed > applied + READY_MAX_APPLY_LAG {
        return Some(format!("applied index {applied} trails commit index {committed}"));
    }
    if !node.is_recovered() {
        return Some("re-applying the committed log after a restart".into());
    }
    if node.log_status().disk_full.load(std::sync::atomic::Ordering::Relaxed) {
        return Some("disk full".into());
    }
    None
}
