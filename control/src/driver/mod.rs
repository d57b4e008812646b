//! The driver: observes a cluster through its nodes' HTTP APIs and a [`Workload`],
//! asks the [`planner`] for the next step, and performs it.
//!
//! The driver holds no state between steps: every step starts from a fresh
//! observation, so a crash (or a leader change) between two steps only costs a
//! re-observation. Admin calls go to the leader the observation found; if it
//! stepped down meanwhile the call fails with `NotLeader` and the next step retries
//! on the new one.

#[cfg(test)]
mod tests;
mod workload;

use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::api::{AddLearnerRequest, InitRequest, Role, SetMembershipRequest, TransferLeaderRequest};
use crate::client::{AdminClient, ClientError};
use crate::planner::{self, Action, Desired, Observed, Plan, Slot};

pub use workload::{Workload, WorkloadError, WorkloadSlot, WorkloadState};

/// Why a driver step failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// An HTTP call to a node failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A workload operation failed.
    #[error("workload: {0}")]
    Workload(#[from] WorkloadError),
    /// The action needs the leader but the observation had none.
    #[error("action {0} needs a leader but none was observed")]
    NoLeader(String),
    /// The action names an ordinal the observation does not have.
    #[error("ordinal {0} not in the observation")]
    UnknownOrdinal(u32),
    /// `reconcile_until_done` ran out of time.
    #[error("not done before the deadline; last plan: {last}")]
    Deadline {
        /// The last action planned.
        last: String,
    },
}

/// What [`Driver::step`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    /// The plan that was computed (and, unless it was `Wait`/`Degraded`/`Done`, executed).
    pub plan: Plan,
    /// The observation it was computed from.
    pub observed: Observed,
}

/// Observes, plans and executes, one step at a time, for one cluster.
#[derive(Debug, Clone)]
pub struct Driver<W> {
    workload: W,
    client: AdminClient,
}

impl<W: Workload> Driver<W> {
    /// A driver for the cluster run by `workload`. `client` provides the admin token,
    /// timeouts and connection pool; its own address is not used.
    pub fn new(workload: W, client: AdminClient) -> Self {
        Self { workload, client }
    }

    /// The workload.
    pub fn workload(&self) -> &W {
        &self.workload
    }

    /// A client for the node at `http_addr`.
    pub fn client_for(&self, http_addr: &str) -> AdminClient {
        self.client.for_addr(http_addr)
    }

    /// Builds an [`Observed`]: the workload's view, plus `GET /cluster` and
    /// `GET /readyz` of every existing, non-terminating slot, queried concurrently
    /// (each bounded by the client's status timeout). A node that does not answer is
    /// recorded as unreachable, never as an error: that is an observation too.
    pub async fn observe(&self) -> Result<Observed, DriverError> {
        let ws = self.workload.observe().await?;
        let mut probes = JoinSet::new();
        for s in ws.slots.iter().filter(|s| s.exists && !s.terminating) {
            let client = self.client.for_addr(s.addr.http_addr.clone());
            let ordinal = s.ordinal;
            probes.spawn(async move {
                let status = client.cluster().await;
                let ready = match &status {
                    Ok(_) => client.ready().await.map(|r| r.ready).unwrap_or(false),
                    Err(_) => false,
                };
                (ordinal, status, ready)
            });
        }
        let mut slots: Vec<Slot> = ws
            .slots
            .iter()
            .map(|w| Slot {
                ordinal: w.ordinal,
                addr: w.addr.clone(),
                exists: w.exists,
                terminating: w.terminating,
                volume: w.volume,
                version: w.version.clone(),
                ready: false,
                status: None,
            })
            .collect();
        while let Some(joined) = probes.join_next().await {
            // A panicking probe task is a bug in reqwest/serde, not an observation.
            let (ordinal, status, ready) = joined.expect("probe task panicked");
            // `slots` was built from `ws.slots` in order: zip pairs each with its source.
            if let Some((slot, w)) = slots.iter_mut().zip(&ws.slots).find(|(s, _)| s.ordinal == ordinal) {
                match status {
                    Ok(st) => {
                        slot.status = Some(st);
                        slot.ready = ready && w.workload_ready.unwrap_or(true);
                    }
                    Err(e) => tracing::debug!(ordinal, error = %e, "node did not answer"),
                }
            }
        }
        slots.sort_by_key(|s| s.ordinal);
        Ok(Observed { workload_replicas: ws.replicas, slots, initialized_before: ws.initialized_before })
    }

    /// Performs one planned action against the nodes / workload of `observed`.
    /// `Wait`, `Degraded` and `Done` do nothing.
    pub async fn execute(&self, plan: &Plan, observed: &Observed) -> Result<(), DriverError> {
        let action = &plan.action;
        let leader = || -> Result<AdminClient, DriverError> {
            let l = plan.view.leader.as_ref().ok_or_else(|| DriverError::NoLeader(action.to_string()))?;
            let slot = observed.slot(l.ordinal).ok_or(DriverError::UnknownOrdinal(l.ordinal))?;
            Ok(self.client.for_addr(slot.addr.http_addr.clone()))
        };
        match action {
            Action::ScaleWorkload { replicas } => self.workload.scale(*replicas).await?,
            Action::Bootstrap { ordinal } => {
                let slot = observed.slot(*ordinal).ok_or(DriverError::UnknownOrdinal(*ordinal))?;
                let node = self.client.for_addr(slot.addr.http_addr.clone());
                match node.init(&InitRequest::default()).await {
                    Ok(_) => {}
                    // A retried init after a lost reply: the node is initialized.
                    Err(ClientError::Conflict { error, .. }) if error.code == "already_initialized" => {}
                    Err(e) => return Err(e.into()),
                }
                // Let the node show its new state before the next observation, so
                // the planner does not see "uninitialized" and plan the init again.
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline {
                    match node.cluster().await {
                        Ok(st) if st.role != Role::Uninitialized => break,
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }
            Action::AddLearner { node_id, addr, .. } => {
                leader()?
                    .add_learner(&AddLearnerRequest { node_id: *node_id, addr: addr.clone(), blocking: true })
                    .await?;
            }
            Action::Promote { voters, .. } => {
                leader()?
                    .set_membership(&SetMembershipRequest {
                        voters: voters.clone(),
                        retain: false,
                        remove_learners: vec![],
                    })
                    .await?;
            }
            Action::RemoveMember { node_id, voters } | Action::RemoveStaleMember { node_id, voters } => {
                // A voter leaves by not being in `voters` (retain=false drops it
                // entirely); a learner must be named explicitly.
                let was_voter = plan.view.member(*node_id).is_some_and(|m| m.voter);
                leader()?
                    .set_membership(&SetMembershipRequest {
                        voters: voters.clone(),
                        retain: false,
                        remove_learners: if was_voter { vec![] } else { vec![*node_id] },
                    })
                    .await?;
            }
            Action::TransferLeader { to, .. } => {
                leader()?.transfer_leader(&TransferLeaderRequest { to: Some(*to) }).await?;
                self.await_leader(observed, *to, Duration::from_secs(10)).await;
            }
            Action::DeleteVolume { ordinal } => self.workload.delete_volume(*ordinal).await?,
            Action::RestartMember { ordinal } => self.workload.restart(*ordinal).await?,
            Action::Wait { .. } | Action::Degraded { .. } | Action::Done => {}
        }
        Ok(())
    }

    /// After a transfer, gives the target a moment to win its election so the next
    /// observation does not plan the same transfer again. Best effort: on timeout the
    /// next step simply observes whatever happened.
    async fn await_leader(&self, observed: &Observed, to: u64, within: Duration) {
        let deadline = Instant::now() + within;
        let addrs: Vec<String> =
            observed.slots.iter().filter(|s| s.reachable()).map(|s| s.addr.http_addr.clone()).collect();
        while Instant::now() < deadline {
            for addr in &addrs {
                if let Ok(l) = self.client.for_addr(addr.clone()).leader().await {
                    if l.leader_id == Some(to) {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Observe → plan → execute, once.
    pub async fn step(&self, desired: &Desired) -> Result<StepOutcome, DriverError> {
        let observed = self.observe().await?;
        let plan = planner::plan(desired, &observed);
        match &plan.action {
            Action::Wait { reason } => tracing::debug!(%reason, "planner waits"),
            Action::Degraded { reason } => tracing::warn!(%reason, "cluster degraded"),
            Action::Done => {}
            action => tracing::info!(%action, "executing"),
        }
        self.execute(&plan, &observed).await?;
        Ok(StepOutcome { plan, observed })
    }

    /// Steps until the planner says `Done`, or fails at `deadline`.
    ///
    /// Executed actions are followed immediately by the next observation; `Wait`,
    /// `Degraded` and failed steps by a short poll delay growing to `max_poll`, so the
    /// loop converges as fast as the cluster does without spinning. Step errors are
    /// logged and retried (a node restarting or a leader change mid-call are normal);
    /// only the deadline ends the loop with an error.
    pub async fn reconcile_until_done(&self, desired: &Desired, deadline: Instant) -> Result<Observed, DriverError> {
        const MIN_POLL: Duration = Duration::from_millis(50);
        const MAX_POLL: Duration = Duration::from_millis(500);
        let mut poll = MIN_POLL;
        let mut last = String::from("(none)");
        while Instant::now() < deadline {
            match self.step(desired).await {
                Ok(StepOutcome { plan, observed }) => {
                    last = plan.action.to_string();
                    match plan.action {
                        Action::Done => return Ok(observed),
                        Action::Wait { .. } | Action::Degraded { .. } => {}
                        _ => {
                            poll = MIN_POLL;
                            continue;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reconcile step failed; retrying");
                    last = format!("error: {e}");
                }
            }
            let now = Instant::now();
            tokio::time::sleep(poll.min(deadline.saturating_duration_since(now))).await;
            poll = (poll * 2).min(MAX_POLL);
        }
        Err(DriverError::Deadline { last })
    }
}
