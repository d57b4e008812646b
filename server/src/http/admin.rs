//! Admin endpoints: bootstrap, learners, voters, leadership, snapshots.
//!
//! Membership changes are serialised: one at a time per leader, and a second
//! one while the first is running (or while the config is still joint) gets
//! 409 instead of queueing behind it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use openraft::async_runtime::WatchReceiver;
use seshat_control::api::{AddLearnerRequest, AdminOk, InitRequest, SetMembershipRequest, TransferLeaderRequest};

use super::status::leader_info;
use super::{HttpError, HttpState};
use crate::raft::{RaftNode, RaftNodeError};

/// Longest an add-learner call waits for the learner to catch up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest a membership change waits to commit.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a leadership transfer waits for the new leader.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a snapshot request waits for the snapshot to be built.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(120);

type AdminResult = Result<Json<AdminOk>, HttpError>;

fn ok(log_index: Option<u64>, message: impl Into<String>) -> AdminResult {
    Ok(Json(AdminOk { ok: true, log_index, message: message.into() }))
}

fn map_err(node: &RaftNode, e: RaftNodeError) -> HttpError {
    match e {
        RaftNodeError::NotLeader { .. } => not_leader(node),
        RaftNodeError::NoQuorum(m) => HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "no_quorum", m),
        RaftNodeError::Membership(m) => HttpError::new(StatusCode::CONFLICT, "conflict", m),
        RaftNodeError::Initialize(m) => HttpError::new(StatusCode::CONFLICT, "already_initialized", m),
        other => HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", other.to_string()),
    }
}

fn not_leader(node: &RaftNode) -> HttpError {
    let mut e = HttpError::new(StatusCode::MISDIRECTED_REQUEST, "not_leader", "this node is not the leader");
    e.1.leader = Some(leader_info(node));
    e
}

fn timeout(what: &str, after: Duration) -> HttpError {
    HttpError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", format!("{what} did not finish within {after:?}"))
}

fn require_leader(node: &RaftNode) -> Result<(), HttpError> {
    if node.is_leader() {
        Ok(())
    } else {
        Err(not_leader(node))
    }
}

fn lock_membership(state: &HttpState) -> Result<tokio::sync::MutexGuard<'_, ()>, HttpError> {
    let guard = state
        .membership_lock
        .try_lock()
        .map_err(|_| HttpError::new(StatusCode::CONFLICT, "conflict", "another membership change is in progress"))?;
    let m = state.node.metrics();
    if m.membership_config.membership().get_joint_config().len() > 1 {
        return Err(HttpError::new(
            StatusCode::CONFLICT,
            "conflict",
            "the membership config is joint: a change is still in flight",
        ));
    }
    Ok(guard)
}

/// `POST /admin/init`.
pub async fn init(State(state): State<Arc<HttpState>>, body: Option<Json<InitRequest>>) -> AdminResult {
    let _guard = lock_membership(&state)?;
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let node = &state.node;
    if node.raft().is_initialized().await.unwrap_or(false) {
        return Err(HttpError::new(
            StatusCode::CONFLICT,
            "already_initialized",
            "this node already belongs to a cluster",
        ));
    }
    node.initialize(req.members).await.map_err(|e| map_err(node, e))?;
    tracing::info!(node_id = node.id(), "cluster initialized");
    ok(None, "initialized")
}

/// `POST /admin/learners`.
pub async fn add_learner(State(state): State<Arc<HttpState>>, Json(req): Json<AddLearnerRequest>) -> AdminResult {
    let node = &state.node;
    require_leader(node)?;
    let _guard = lock_membership(&state)?;
    let call = node.add_learner(req.node_id, req.addr.clone(), req.blocking);
    let index = tokio::time::timeout(CATCH_UP_TIMEOUT, call)
        .await
        .map_err(|_| timeout("adding the learner", CATCH_UP_TIMEOUT))?
        .map_err(|e| map_err(node, e))?;
    tracing::info!(learner = req.node_id, addr = ?req.addr, index, "learner added");
    ok(Some(index), format!("node {} is a learner", req.node_id))
}

/// `POST /admin/membership`.
pub async fn set_membership(State(state): State<Arc<HttpState>>, Json(req): Json<SetMembershipRequest>) -> AdminResult {
    let node = &state.node;
    require_leader(node)?;
    let _guard = lock_membership(&state)?;
    let voters: BTreeSet<u64> = req.voters.iter().copied().collect();
    if voters.is_empty() {
        return Err(HttpError::new(StatusCode::BAD_REQUEST, "bad_request", "the voter set cannot be empty"));
    }
    let m = node.metrics();
    let membership = m.membership_config.membership();
    if let Some(unknown) = voters.iter().find(|v| membership.get_node(v).is_none()) {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("node {unknown} is not a member: add it as a learner first"),
        ));
    }
    let index = tokio::time::timeout(
        CHANGE_TIMEOUT,
        node.change_voters(voters.clone(), req.retain, req.remove_learners.iter().copied().collect()),
    )
    .await
    .map_err(|_| timeout("the membership change", CHANGE_TIMEOUT))?
    .map_err(|e| map_err(node, e))?;
    tracing::info!(?voters, retain = req.retain, removed_learners = ?req.remove_learners, index, "voters changed");
    ok(Some(index), format!("voters are now {voters:?}"))
}

/// `POST /admin/transfer-leader`.
pub async fn transfer_leader(
    State(state): State<Arc<HttpState>>,
    body: Option<Json<TransferLeaderRequest>>,
) -> AdminResult {
    let node = &state.node;
    require_leader(node)?;
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let m = node.metrics();
    let voters: Vec<u64> = m.membership_config.membership().voter_ids().filter(|v| *v != node.id()).collect();
    let to = match req.to {
        Some(to) if to == node.id() => return ok(None, "already the leader"),
        Some(to) if voters.contains(&to) => to,
        Some(to) => {
            return Err(HttpError::new(StatusCode::BAD_REQUEST, "bad_request", format!("node {to} is not a voter")))
        }
        None => {
            // The most caught-up other voter takes over with the least delay.
            let progress =
                |id: &u64| m.replication.as_ref().and_then(|r| r.get(id).cloned().flatten()).map_or(0, |l| l.index);
            match voters.iter().max_by_key(|v| progress(v)) {
                Some(v) => *v,
                None => {
                    return Err(HttpError::new(
                        StatusCode::CONFLICT,
                        "conflict",
                        "no other voter to hand leadership to",
                    ))
                }
            }
        }
    };
    node.transfer_leader(to).await.map_err(|e| map_err(node, e))?;
    let deadline = tokio::time::Instant::now() + TRANSFER_TIMEOUT;
    loop {
        if let Some((leader, _)) = node.leader() {
            if leader == to {
                tracing::info!(to, "leadership transferred");
                return ok(None, format!("node {to} is the leader"));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(timeout("the leadership transfer", TRANSFER_TIMEOUT));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `POST /admin/snapshot`: builds a snapshot covering everything applied now.
pub async fn snapshot(State(state): State<Arc<HttpState>>) -> AdminResult {
    let node = &state.node;
    let target = node.metrics().last_applied.map(|l| l.index);
    node.snapshot().await.map_err(|e| map_err(node, e))?;
    let mut rx = node.raft().metrics();
    let wait = async {
        loop {
            let snap = rx.borrow_watched().snapshot.map(|l| l.index);
            if snap >= target {
                return snap;
            }
            if rx.changed().await.is_err() {
                return snap;
            }
        }
    };
    let index =
        tokio::time::timeout(SNAPSHOT_TIMEOUT, wait).await.map_err(|_| timeout("the snapshot", SNAPSHOT_TIMEOUT))?;
    ok(index, "snapshot built")
}
