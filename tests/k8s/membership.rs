//! Watches the Raft membership itself (the leader's `GET /cluster`) while the operator
//! changes it, to check the operator's central safety promise: the voter set changes
//! by one voter at a time.
//!
//! Every distinct config (voters and learners) goes into the timeline. The check is on
//! voters only: between two consecutive observations (polled every 25 ms) at most one
//! voter may join or leave. Learner changes are not checked this way because adding a
//! learner can follow a promotion within milliseconds — two single-member steps the
//! poller may see as one; the operator's Events show those steps one by one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::cluster::Cluster;
use super::timeline::Timeline;

/// Where a node id stands in one observed config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Votes.
    Voter,
    /// Replicates without voting.
    Learner,
}

/// One observed membership config: node id → standing.
pub type Config = BTreeMap<u64, Standing>;

/// Node ids that are voters in exactly one of `a` and `b`.
pub fn changed_voters(a: &Config, b: &Config) -> Vec<u64> {
    let voter = |c: &Config, id: &u64| c.get(id) == Some(&Standing::Voter);
    let mut ids: Vec<u64> = a.keys().chain(b.keys()).copied().collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter().filter(|id| voter(a, id) != voter(b, id)).collect()
}

/// A running membership poller; stops when dropped.
pub struct MembershipWatch {
    task: JoinHandle<()>,
    seen: Arc<Mutex<Vec<Config>>>,
}

impl MembershipWatch {
    /// Polls ordinals `0..max` of `cluster` for the leader's config.
    pub fn start(cluster: &Cluster, max: u32, tl: &Timeline) -> Self {
        let seen: Arc<Mutex<Vec<Config>>> = Arc::new(Mutex::new(Vec::new()));
        let (c, tl, out) = (cluster.clone(), tl.clone(), seen.clone());
        let task = tokio::spawn(async move {
            let mut hint = 0;
            loop {
                if let Some((leader, st)) = c.raft_leader_from(hint, max).await {
                    hint = leader;
                    let m = &st.membership;
                    let mut cfg: Config = m.voters.iter().map(|v| (v.id, Standing::Voter)).collect();
                    cfg.extend(m.learners.iter().map(|l| (l.id, Standing::Learner)));
                    let mut seen = out.lock().unwrap_or_else(|p| p.into_inner());
                    if seen.last() != Some(&cfg) {
                        let show = |s: Standing| {
                            cfg.iter().filter(|(_, v)| **v == s).map(|(k, _)| k.to_string()).collect::<Vec<_>>()
                        };
                        tl.note(format!(
                            "raft membership: voters [{}] learners [{}]{}",
                            show(Standing::Voter).join(" "),
                            show(Standing::Learner).join(" "),
                            if m.joint { " (joint)" } else { "" }
                        ));
                        seen.push(cfg);
                    }
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        });
        Self { task, seen }
    }

    /// Every distinct config observed, in order.
    pub fn configs(&self) -> Vec<Config> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Checks the one-voter-at-a-time rule; returns the number of observed steps, or
    /// `Err` naming the offending one.
    pub fn check_one_at_a_time(&self) -> anyhow::Result<usize> {
        let configs = self.configs();
        for pair in configs.windows(2) {
            let changed = changed_voters(&pair[0], &pair[1]);
            anyhow::ensure!(
                changed.len() <= 1,
                "{} voters changed at once: {:?} -> {:?}",
                changed.len(),
                pair[0],
                pair[1]
            );
        }
        Ok(configs.len().saturating_sub(1))
    }
}

impl Drop for MembershipWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voter_changes() {
        let a: Config = [(1, Standing::Voter), (2, Standing::Learner)].into();
        let b: Config = [(1, Standing::Voter), (2, Standing::Voter), (3, Standing::Learner)].into();
        let c: Config = [(1, Standing::Voter)].into();
        assert_eq!(changed_voters(&a, &b), [2]);
        assert_eq!(changed_voters(&b, &c), [2]);
        let d: Config = [(3, Standing::Voter)].into();
        assert_eq!(changed_voters(&c, &d), [1, 3]);
    }
}
