//! The Raft side of a [`TestCluster`]: bootstrap, leader discovery,
//! convergence, membership changes and leader transfer, all through the
//! admin HTTP API (as `seshat local` and the operator drive it).

use std::time::Duration;

use seshat_control::api::{
    AddLearnerRequest, ClusterStatus, InitRequest, NodeId, Role, SetMembershipRequest, TransferLeaderRequest,
};
use seshat_control::client::{AdminClient, ClientError};

use super::{ClusterError, TestCluster};
use crate::wait::poll;

impl TestCluster {
    /// Wait until node `i` answers `/healthz` and record its Raft id.
    pub async fn wait_up(&mut self, i: usize, timeout: Duration) -> Result<NodeId, ClusterError> {
        let admin = self.admin(i);
        let status = poll(timeout, &format!("node {i} /cluster"), || async { admin.cluster().await.ok() }).await?;
        self.nodes[i].node_id = Some(status.node_id);
        Ok(status.node_id)
    }

    /// Init node 0 alone, add every other node as a learner, promote all.
    pub async fn bootstrap(&mut self) -> Result<(), ClusterError> {
        for i in 0..self.nodes.len() {
            self.wait_up(i, Duration::from_secs(30)).await?;
        }
        self.admin(0).init(&InitRequest::default()).await?;
        self.wait_for_leader(Duration::from_secs(30)).await?;
        let others: Vec<usize> = (1..self.nodes.len()).collect();
        for i in others {
            self.add_learner(i).await?;
        }
        let voters: Vec<usize> = (0..self.nodes.len()).collect();
        self.set_voters(&voters).await?;
        self.wait_converged(Duration::from_secs(30)).await
    }

    /// `GET /cluster` of every running, unpaused node (unreachable ones omitted).
    pub async fn statuses(&self) -> Vec<(usize, ClusterStatus)> {
        let futs = self.nodes.iter().filter(|n| n.is_running() && !n.is_paused()).map(|n| {
            let a = self.admin(n.index);
            let i = n.index;
            async move { (i, a.cluster().await) }
        });
        futures::future::join_all(futs).await.into_iter().filter_map(|(i, r)| r.ok().map(|s| (i, s))).collect()
    }

    /// The node that reports itself leader with the highest term, if any.
    pub async fn leader(&self) -> Option<usize> {
        self.statuses()
            .await
            .into_iter()
            .filter(|(_, s)| s.role == Role::Leader)
            .max_by_key(|(_, s)| s.term)
            .map(|(i, _)| i)
    }

    /// Wait until some node is leader.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<usize, ClusterError> {
        Ok(poll(timeout, "a leader", || self.leader()).await?)
    }

    /// Wait until every running member agrees on one leader, has the same
    /// membership, and has applied everything the leader had committed when
    /// first asked (so reads on any node see all acknowledged writes).
    pub async fn wait_converged(&self, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let st = self.statuses().await;
            let running = self.nodes.iter().filter(|n| n.is_running() && !n.is_paused()).count();
            if let Some((_, leader)) = st.iter().find(|(_, s)| s.role == Role::Leader) {
                let ok = st.len() == running
                    && st.iter().all(|(_, s)| {
                        s.leader_id == Some(leader.node_id)
                            && s.membership.voters == leader.membership.voters
                            && !s.membership.joint
                            && s.last_applied >= leader.committed
                    });
                if ok {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > deadline {
                // Say what did not converge: one line per node.
                let view: Vec<String> = st
                    .iter()
                    .map(|(i, s)| {
                        format!(
                            "node {i}: id {} {:?} term {} leader {:?} applied {:?} committed {:?} voters {:?}{}",
                            s.node_id,
                            s.role,
                            s.term,
                            s.leader_id,
                            s.last_applied,
                            s.committed,
                            s.membership.voters.iter().map(|m| m.id).collect::<Vec<_>>(),
                            if s.membership.joint { " (joint)" } else { "" }
                        )
                    })
                    .collect();
                return Err(ClusterError::Timeout(format!(
                    "cluster convergence after {timeout:?} ({} of {running} running nodes answered):\n  {}",
                    st.len(),
                    view.join("\n  ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Index of the node whose Raft id is `id`.
    pub fn index_of(&self, id: NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| n.node_id == Some(id))
    }

    /// Run an admin call against the current leader, following `NotLeader`
    /// hints and retrying transient errors until `timeout`.
    async fn on_leader<T, F, Fut>(&self, what: &str, f: F) -> Result<T, ClusterError>
    where
        F: Fn(AdminClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let err = match self.leader().await {
                Some(l) => match f(self.admin(l)).await {
                    Ok(v) => return Ok(v),
                    Err(e @ (ClientError::Unauthorized { .. } | ClientError::Decode { .. })) => return Err(e.into()),
                    Err(e) => e.to_string(),
                },
                None => "no leader".into(),
            };
            if tokio::time::Instant::now() > deadline {
                return Err(ClusterError::Timeout(format!("{what}: last error: {err}")));
            }
            tracing::debug!(what, err, "admin call retry");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Add node `i` (running, uninitialized) as a learner; blocks until caught up.
    pub async fn add_learner(&mut self, i: usize) -> Result<(), ClusterError> {
        let id = match self.nodes[i].node_id {
            Some(id) => id,
            None => self.wait_up(i, Duration::from_secs(30)).await?,
        };
        let req = AddLearnerRequest { node_id: id, addr: self.nodes[i].addr.clone(), blocking: true };
        self.on_leader("add learner", |a| {
            let req = req.clone();
            async move { a.add_learner(&req).await }
        })
        .await?;
        Ok(())
    }

    /// Make exactly the nodes `voters` (by index) the voter set; others leave.
    pub async fn set_voters(&self, voters: &[usize]) -> Result<(), ClusterError> {
        let ids: Vec<NodeId> = voters.iter().map(|&i| self.nodes[i].node_id.expect("voter has a known id")).collect();
        let req = SetMembershipRequest { voters: ids, retain: false, remove_learners: Vec::new() };
        self.on_leader("set membership", |a| {
            let req = req.clone();
            async move { a.set_membership(&req).await }
        })
        .await?;
        Ok(())
    }

    /// Current voters (indices), as the leader sees them.
    pub async fn voters(&self) -> Result<Vec<usize>, ClusterError> {
        let l = self.wait_for_leader(Duration::from_secs(30)).await?;
        let st = self.admin(l).cluster().await?;
        Ok(st.membership.voters.iter().filter_map(|m| self.index_of(m.id)).collect())
    }

    /// Ask the leader to hand leadership to node `to` (or any, when `None`).
    pub async fn transfer_leader(&self, to: Option<usize>) -> Result<(), ClusterError> {
        let req = TransferLeaderRequest { to: to.and_then(|i| self.nodes[i].node_id) };
        self.on_leader("transfer leader", |a| {
            let req = req.clone();
            async move { a.transfer_leader(&req).await }
        })
        .await?;
        Ok(())
    }
}
