//! One chaos run end to end: start a cluster, run the workload while the
//! nemesis injects faults, heal, read everything back, check the history.
//!
//! Used by the CI suite (`tests/tests/chaos.rs`) and the long-running
//! `chaos` binary; both print [`ChaosReport`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use crate::checker::{check_history, CheckReport};
use crate::cluster::{ClusterError, ClusterOptions, TestCluster};
use crate::history::{Clock, HistoryStats};
use crate::linearizability::Limits;
use crate::nemesis::{FaultBudget, FaultKind, FaultRecord, Nemesis, NemesisConfig};
use crate::verify::{check_lost_writes, final_reads, LostWrites};
use crate::workload::{self, WorkloadConfig};

/// Everything a chaos run needs.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// The cluster to start.
    pub cluster: ClusterOptions,
    /// The clients.
    pub workload: WorkloadConfig,
    /// The faults.
    pub nemesis: NemesisConfig,
    /// How many faults the nemesis injects.
    pub budget: FaultBudget,
    /// Bounds of the linearizability search per key.
    pub limits: Limits,
}

/// The outcome of one chaos run.
#[derive(Debug)]
pub struct ChaosReport {
    /// Operation outcome counts (final reads included).
    pub stats: HistoryStats,
    /// Per-key linearizability verdicts.
    pub check: CheckReport,
    /// The lost-acknowledged-write check.
    pub lost: LostWrites,
    /// Every fault injected, in order.
    pub faults: Vec<FaultRecord>,
    /// Wall time of the run (cluster start to verdict).
    pub elapsed: Duration,
    /// Log tails of the nodes, filled only when the run found a problem.
    pub logs: String,
}

impl ChaosReport {
    /// True when there were no violations, nothing undecided, no lost or
    /// phantom writes, and the cluster recovered from every fault.
    pub fn is_clean(&self) -> bool {
        self.check.is_linearizable() && self.lost.is_clean() && self.unrecovered() == 0
    }

    /// Faults after which no leader came back in time (or that errored).
    pub fn unrecovered(&self) -> usize {
        self.faults.iter().filter(|f| f.recovery.is_none() || f.error.is_some()).count()
    }

    /// Faults injected, by kind.
    pub fn faults_by_kind(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for f in &self.faults {
            *m.entry(f.kind.to_string()).or_insert(0) += 1;
        }
        m
    }

    /// Kinds of `wanted` that were never injected.
    pub fn missing_kinds(&self, wanted: &[FaultKind]) -> Vec<FaultKind> {
        wanted.iter().copied().filter(|k| !self.faults.iter().any(|f| f.kind == *k)).collect()
    }
}

impl fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        writeln!(f, "chaos run: {:.1?}", self.elapsed)?;
        writeln!(
            f,
            "  operations: {} ({} ok, {} failed, {} unknown)",
            s.ok + s.fail + s.unknown,
            s.ok,
            s.fail,
            s.unknown
        )?;
        writeln!(
            f,
            "  transactions: {} MULTI/EXEC swaps; WATCH increments {} run, {} refused by EXEC",
            s.tx_swaps, s.watch_applied, s.watch_refused
        )?;
        writeln!(f, "  faults injected: {} {:?}", self.faults.len(), self.faults_by_kind())?;
        for r in &self.faults {
            writeln!(f, "    {r}")?;
        }
        write!(f, "  linearizability: {}", self.check)?;
        writeln!(
            f,
            "  acknowledged writes: {} over {} keys; lost: {}, phantom: {}",
            self.lost.acked,
            self.lost.keys,
            self.lost.lost.len(),
            self.lost.phantom.len()
        )?;
        for l in self.lost.lost.iter().chain(&self.lost.phantom).take(20) {
            writeln!(f, "    {l}")?;
        }
        writeln!(f, "  faults without recovery: {}", self.unrecovered())?;
        if !self.logs.is_empty() {
            writeln!(f, "{}", self.logs)?;
        }
        Ok(())
    }
}

/// A chaos run that could not reach a verdict (the cluster did not start,
/// never converged after the faults, or final reads failed), with the nodes'
/// log tails for the post-mortem.
#[derive(Debug, thiserror::Error)]
#[error("{error}\n{logs}")]
pub struct ChaosError {
    /// What failed.
    pub error: ClusterError,
    /// Where the data and logs were kept, and their tails.
    pub logs: String,
}

/// Run one chaos experiment.
pub async fn run(cfg: &ChaosConfig) -> Result<ChaosReport, ChaosError> {
    let started = Instant::now();
    let mut cluster =
        TestCluster::launch(cfg.cluster.clone()).map_err(|error| ChaosError { error, logs: String::new() })?;
    match experiment(cfg, &mut cluster, started).await {
        Ok(report) => Ok(report),
        Err(error) => {
            let dir = cluster.keep_dir();
            Err(ChaosError {
                error,
                logs: format!("data and logs kept in {}\n{}", dir.display(), cluster.log_tails(60)),
            })
        }
    }
}

async fn experiment(
    cfg: &ChaosConfig,
    cluster: &mut TestCluster,
    started: Instant,
) -> Result<ChaosReport, ClusterError> {
    cluster.bootstrap().await?;
    let clock = Clock::new();
    let targets = cluster.resp_addrs();
    let wl = workload::start(&cfg.workload, &targets, clock);
    let mut nemesis = Nemesis::new(cfg.nemesis.clone(), clock);
    let faults = nemesis.run(cluster, cfg.budget).await;
    // Let the clients run on a healed cluster for a moment, so that writes
    // acknowledged after the last fault are part of the history too.
    cluster.heal_all().await?;
    cluster.wait_converged(Duration::from_secs(60)).await?;
    tokio::time::sleep(cfg.nemesis.quiet).await;
    let mut history = wl.stop().await;
    let finals = final_reads(&cfg.workload, &targets, clock, &mut history, Duration::from_secs(30)).await?;
    let stats = history.stats();
    let lost = check_lost_writes(&history, &finals);
    let limits = cfg.limits;
    let check = tokio::task::spawn_blocking(move || check_history(&history, limits)).await.expect("checker panicked");
    let mut report = ChaosReport { stats, check, lost, faults, elapsed: started.elapsed(), logs: String::new() };
    if !report.is_clean() {
        let dir = cluster.keep_dir();
        report.logs = format!("node data and logs kept in {}\n{}", dir.display(), cluster.log_tails(40));
    }
    Ok(report)
}
