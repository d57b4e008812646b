//! Nemeses: the faults a chaos run injects, alone or mixed, each one with an
//! inject → hold → heal → recover cycle and a record of what it did.
//!
//! Faults are injected while the workload runs, so every fault lands on
//! in-flight client operations. After healing, the nemesis waits for a leader
//! again (bounded): a cluster that does not recover is reported, not hidden.

use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::cluster::{ClusterError, Network, TestCluster};
use crate::history::{Clock, Timestamp};

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// SIGKILL a random node, restart it after the hold.
    KillRandom,
    /// SIGKILL the leader, restart it after the hold.
    KillLeader,
    /// SIGSTOP the leader for longer than an election, then SIGCONT: the old
    /// leader wakes up believing it still leads (stale-leader reads/writes).
    PauseLeader,
    /// Ask the leader to hand leadership to another voter.
    TransferLeader,
    /// Remove a follower from the voters, wipe it, bring it back with a new
    /// Raft id as a learner and promote it again, all under load.
    MembershipChange,
    /// Add a brand-new node (learner, then voter), then remove it again and
    /// retire it: the voter set grows and shrinks under load.
    AddRemoveNode,
    /// SIGKILL every node at once, restart them all after the hold.
    KillAll,
    /// Split the nodes into a random majority and minority (namespaces only).
    PartitionHalves,
    /// Cut the leader off from every other node (namespaces only).
    IsolateLeader,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 9] = [
        FaultKind::KillRandom,
        FaultKind::KillLeader,
        FaultKind::PauseLeader,
        FaultKind::TransferLeader,
        FaultKind::MembershipChange,
        FaultKind::AddRemoveNode,
        FaultKind::KillAll,
        FaultKind::PartitionHalves,
        FaultKind::IsolateLeader,
    ];

    /// True when the fault needs real network partitions.
    pub fn needs_namespaces(&self) -> bool {
        matches!(self, FaultKind::PartitionHalves | FaultKind::IsolateLeader)
    }

    /// Every kind usable on `network`.
    pub fn all_for(network: Network) -> Vec<FaultKind> {
        Self::ALL.into_iter().filter(|k| network == Network::Namespaces || !k.needs_namespaces()).collect()
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What one fault did.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    /// The kind.
    pub kind: FaultKind,
    /// Which nodes, in words.
    pub detail: String,
    /// When it was injected (history clock).
    pub injected: Timestamp,
    /// When it was healed (history clock).
    pub healed: Timestamp,
    /// How long until a leader was available again after healing, if it was.
    pub recovery: Option<Duration>,
    /// An error while injecting or healing, if any.
    pub error: Option<String>,
}

impl fmt::Display for FaultRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |t: Timestamp| t as f64 / 1e9;
        write!(
            f,
            "{:>7.2}s..{:>7.2}s {:<16} {}",
            secs(self.injected),
            secs(self.healed),
            self.kind.to_string(),
            self.detail
        )?;
        match (&self.recovery, &self.error) {
            (_, Some(e)) => write!(f, " ERROR: {e}"),
            (Some(d), None) => write!(f, " (leader again after {d:.1?})"),
            (None, None) => write!(f, " (NO LEADER after healing)"),
        }
    }
}

/// How a nemesis schedules faults.
#[derive(Debug, Clone)]
pub struct NemesisConfig {
    /// Kinds to draw from. Each appears at least once per round of
    /// `kinds.len()` faults (shuffled rounds), so a short run covers them all.
    pub kinds: Vec<FaultKind>,
    /// Calm time between a recovery and the next fault.
    pub quiet: Duration,
    /// How long a fault stays in place (random in `hold/2 ..= hold`).
    pub hold: Duration,
    /// Bound on waiting for a leader after healing.
    pub recovery_timeout: Duration,
    /// Seed of the random choices.
    pub seed: u64,
}

impl Default for NemesisConfig {
    fn default() -> Self {
        Self {
            kinds: FaultKind::ALL.to_vec(),
            quiet: Duration::from_secs(2),
            hold: Duration::from_secs(4),
            recovery_timeout: Duration::from_secs(30),
            seed: 7,
        }
    }
}

/// Attach a fault's description to an error, for its [`FaultRecord`].
fn ctx<T>(detail: &str, r: Result<T, ClusterError>) -> Result<T, (String, ClusterError)> {
    r.map_err(|e| (detail.to_owned(), e))
}

/// How many faults a run injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultBudget {
    /// Keep starting faults until this much time has passed.
    Time(Duration),
    /// Exactly this many faults (`kinds.len()` = every kind once).
    Count(usize),
}

/// Injects faults into a cluster.
pub struct Nemesis {
    cfg: NemesisConfig,
    rng: StdRng,
    round: Vec<FaultKind>,
    clock: Clock,
}

impl Nemesis {
    /// A nemesis timing its records with `clock` (the workload's clock).
    pub fn new(cfg: NemesisConfig, clock: Clock) -> Self {
        let rng = StdRng::seed_from_u64(cfg.seed);
        Self { cfg, rng, round: Vec::new(), clock }
    }

    /// Inject faults one after another until the budget is spent (a fault in
    /// progress is always healed and recovered before returning).
    pub async fn run(&mut self, cluster: &mut TestCluster, budget: FaultBudget) -> Vec<FaultRecord> {
        let deadline = match budget {
            FaultBudget::Time(d) => Some(tokio::time::Instant::now() + d),
            FaultBudget::Count(_) => None,
        };
        let mut records = Vec::new();
        loop {
            let more = match (budget, deadline) {
                (FaultBudget::Count(n), _) => records.len() < n,
                (_, Some(d)) => tokio::time::Instant::now() < d,
                _ => false,
            };
            if !more {
                break;
            }
            tokio::time::sleep(self.cfg.quiet).await;
            let kind = self.next_kind();
            let record = self.one(cluster, kind).await;
            tracing::info!("nemesis: {record}");
            records.push(record);
        }
        records
    }

    /// The next kind: a fresh shuffled round whenever the last one is used up.
    fn next_kind(&mut self) -> FaultKind {
        if self.round.is_empty() {
            self.round = self.cfg.kinds.clone();
            self.round.shuffle(&mut self.rng);
        }
        self.round.pop().expect("at least one fault kind")
    }

    fn hold(&mut self) -> Duration {
        let h = self.cfg.hold;
        h / 2 + h.mul_f64(self.rng.random::<f64>() / 2.0)
    }

    /// Inject one fault, hold it, heal it, wait for recovery.
    pub async fn one(&mut self, cluster: &mut TestCluster, kind: FaultKind) -> FaultRecord {
        let injected = self.clock.now();
        let hold = self.hold();
        let result = self.inject_hold_heal(cluster, kind, hold).await;
        let healed = self.clock.now();
        let (detail, error) = match result {
            Ok(d) => (d, None),
            Err((d, e)) => (d, Some(e.to_string())),
        };
        // Whatever happened, leave no fault behind.
        let cleanup = cluster.heal_all().await.err().map(|e| e.to_string());
        let started = tokio::time::Instant::now();
        let recovery = cluster.wait_for_leader(self.cfg.recovery_timeout).await.ok().map(|_| started.elapsed());
        FaultRecord { kind, detail, injected, healed, recovery, error: error.or(cleanup) }
    }

    async fn inject_hold_heal(
        &mut self,
        c: &mut TestCluster,
        kind: FaultKind,
        hold: Duration,
    ) -> Result<String, (String, ClusterError)> {
        let leader = c
            .wait_for_leader(self.cfg.recovery_timeout)
            .await
            .map_err(|e| ("no leader before fault".to_string(), e))?;
        let running: Vec<usize> = (0..c.len()).filter(|&i| c.node(i).is_running() && !c.node(i).is_retired()).collect();
        match kind {
            FaultKind::KillRandom | FaultKind::KillLeader => {
                let victim = if kind == FaultKind::KillLeader {
                    leader
                } else {
                    running[self.rng.random_range(0..running.len())]
                };
                let d = format!("kill -9 node {victim} for {hold:.1?}");
                ctx(&d, c.kill(victim))?;
                tokio::time::sleep(hold).await;
                ctx(&d, c.restart(victim).await)?;
                Ok(d)
            }
            FaultKind::PauseLeader => {
                let d = format!("SIGSTOP leader node {leader} for {hold:.1?}");
                ctx(&d, c.pause(leader))?;
                tokio::time::sleep(hold).await;
                ctx(&d, c.resume(leader))?;
                Ok(d)
            }
            FaultKind::TransferLeader => {
                let others: Vec<usize> = running.iter().copied().filter(|&i| i != leader).collect();
                let to = others[self.rng.random_range(0..others.len())];
                let d = format!("transfer leadership {leader} -> {to}");
                ctx(&d, c.transfer_leader(Some(to)).await)?;
                Ok(d)
            }
            FaultKind::MembershipChange => {
                let voters = ctx("membership", c.voters().await)?;
                let followers: Vec<usize> = voters.iter().copied().filter(|&i| i != leader).collect();
                let v = followers[self.rng.random_range(0..followers.len())];
                let d = format!("remove node {v}, wipe it, re-add it as a new member");
                let rest: Vec<usize> = voters.iter().copied().filter(|&i| i != v).collect();
                ctx(&d, c.set_voters(&rest).await)?;
                ctx(&d, c.wipe(v))?;
                ctx(&d, c.spawn(v))?;
                ctx(&d, c.add_learner(v).await)?;
                ctx(&d, c.set_voters(&voters).await)?;
                Ok(d)
            }
            FaultKind::AddRemoveNode => {
                let voters = ctx("membership", c.voters().await)?;
                let d = "add a node, promote it, remove it".to_string();
                let new = ctx(&d, c.add_node())?;
                ctx(&d, c.add_learner(new).await)?;
                let mut grown = voters.clone();
                grown.push(new);
                ctx(&d, c.set_voters(&grown).await)?;
                tokio::time::sleep(hold / 2).await;
                ctx(&d, c.set_voters(&voters).await)?;
                ctx(&d, c.retire(new))?;
                Ok(format!("node {new} added as learner, promoted to voter, removed, retired"))
            }
            FaultKind::KillAll => {
                let d = format!("kill -9 all {} nodes for {hold:.1?}", running.len());
                for &i in &running {
                    ctx(&d, c.kill(i))?;
                }
                tokio::time::sleep(hold).await;
                for &i in &running {
                    ctx(&d, c.spawn(i))?;
                }
                Ok(d)
            }
            FaultKind::PartitionHalves => {
                let mut nodes = running.clone();
                nodes.shuffle(&mut self.rng);
                let minority = nodes.split_off(nodes.len() / 2 + 1);
                let d = format!("partition {nodes:?} | {minority:?} for {hold:.1?}");
                ctx(&d, c.partition(&[nodes.clone(), minority.clone()]))?;
                tokio::time::sleep(hold).await;
                ctx(&d, c.heal())?;
                Ok(d)
            }
            FaultKind::IsolateLeader => {
                let others: Vec<usize> = running.iter().copied().filter(|&i| i != leader).collect();
                let d = format!("isolate leader node {leader} for {hold:.1?}");
                ctx(&d, c.partition(&[vec![leader], others]))?;
                tokio::time::sleep(hold).await;
                ctx(&d, c.heal())?;
                Ok(d)
            }
        }
    }
}
