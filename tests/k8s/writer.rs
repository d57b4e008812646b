//! The client writing through the cluster during a scenario: the register workload of
//! `seshat_tests` (concurrent clients, unique values, every call recorded), connected to
//! the pods by their DNS names — i.e. straight to pod IPs, as there is no kube-proxy —
//! where followers forward writes to the leader. At the end, every key is read back
//! from every live pod, and the history is judged twice: the direct lost-write check
//! (an acknowledged write missing from the final state) and the linearizability checker.

use std::time::Duration;

use seshat_tests::checker::check_history;
use seshat_tests::history::{Clock, History};
use seshat_tests::linearizability::Limits;
use seshat_tests::verify::{check_lost_writes, final_reads};
use seshat_tests::workload::{self, RunningWorkload, WorkloadConfig};

use super::timeline::Timeline;

/// A workload running against a cluster.
pub struct Writer {
    cfg: WorkloadConfig,
    clock: Clock,
    running: RunningWorkload,
}

/// The verdict of one scenario's writes.
#[derive(Debug, Clone)]
pub struct WriteReport {
    /// Operations recorded.
    pub ops: usize,
    /// Acknowledged operations.
    pub ok: usize,
    /// Acknowledged writes whose effect the final reads must show.
    pub acked_writes: usize,
    /// Lost acknowledged writes and phantom values (must be empty).
    pub lost: Vec<String>,
    /// The linearizability checker's verdict, one line.
    pub linearizable: String,
    /// True when the checker found a violation (undecided keys are not violations).
    pub violation: bool,
}

impl WriteReport {
    /// One line for timelines and the summary.
    pub fn summary(&self) -> String {
        format!(
            "{} ops, {} acknowledged, {} acknowledged writes checked, {} lost; {}",
            self.ops,
            self.ok,
            self.acked_writes,
            self.lost.len(),
            self.linearizable
        )
    }
}

impl Writer {
    /// Starts `clients` clients on keys prefixed `prefix`, spreading over `targets`
    /// (RESP `host:port`s).
    pub fn start(prefix: &str, targets: &[String], clients: usize) -> Self {
        let cfg = WorkloadConfig {
            clients,
            key_prefix: prefix.to_owned(),
            // Pods restart under the clients: a refused connection is retried elsewhere.
            connect_timeout: Duration::from_secs(1),
            think: Duration::from_millis(20),
            error_backoff: Duration::from_millis(200),
            ..WorkloadConfig::default()
        };
        let clock = Clock::new();
        let running = workload::start(&cfg, targets, clock);
        Self { cfg, clock, running }
    }

    /// Acknowledged operations so far.
    pub fn acked(&self) -> u64 {
        self.running.progress().ok.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the clients, reads every key back from `final_targets` (the pods alive
    /// now), and judges the history.
    pub async fn finish(self, final_targets: &[String], tl: &Timeline) -> anyhow::Result<WriteReport> {
        self.stop().await.verify(final_targets, tl).await
    }

    /// Stops the clients; the history is judged later by [`Stopped::verify`].
    pub async fn stop(self) -> Stopped {
        let history = self.running.stop().await;
        Stopped { cfg: self.cfg, clock: self.clock, history }
    }
}

/// A finished workload whose history awaits its final reads.
pub struct Stopped {
    cfg: WorkloadConfig,
    clock: Clock,
    history: History,
}

impl Stopped {
    /// Reads every key back from `final_targets` and judges the history.
    pub async fn verify(self, final_targets: &[String], tl: &Timeline) -> anyhow::Result<WriteReport> {
        let Stopped { cfg, clock, mut history } = self;
        let stats = history.stats();
        let finals = final_reads(&cfg, final_targets, clock, &mut history, Duration::from_secs(60)).await?;
        let lost = check_lost_writes(&history, &finals);
        let limits = Limits { timeout: Duration::from_secs(30), ..Limits::default() };
        let check = tokio::task::spawn_blocking(move || check_history(&history, limits)).await?;
        let violation = !check.is_linearizable() && check.violations().next().is_some();
        let undecided = check.undecided().count();
        let linearizable = if violation {
            format!("NOT linearizable: {check}")
        } else if undecided > 0 {
            format!("linearizable on decided keys ({undecided} undecided within limits)")
        } else {
            "linearizable".to_string()
        };
        let mut lines = lost.lost.clone();
        lines.extend(lost.phantom.iter().cloned());
        let report = WriteReport {
            ops: stats.ok + stats.fail + stats.unknown,
            ok: stats.ok,
            acked_writes: lost.acked,
            lost: lines,
            linearizable,
            violation,
        };
        tl.note(format!("writes: {}", report.summary()));
        Ok(report)
    }
}
