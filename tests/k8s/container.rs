//! A container as a local process: spawn with a clean environment, SIGTERM with a
//! grace period then SIGKILL, exit status in Kubernetes terms.
//!
//! Invariant: the child is killed when its [`ContainerProcess`] is dropped
//! (`kill_on_drop`), so an aborted runner or a panicking test leaks no server.

use std::fs::OpenOptions;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use tokio::process::{Child, Command};

use super::launch::Launch;

/// One run of a container's process.
pub struct ContainerProcess {
    child: Child,
    pid: u32,
    /// When it started (for `state.running.startedAt`).
    pub started: Timestamp,
}

/// How a run ended, as `containerStatuses[].state.terminated` reports it.
#[derive(Debug, Clone)]
pub struct Terminated {
    /// Exit code (128 + signal for a signalled process, as container runtimes report).
    pub exit_code: i32,
    /// `Completed`, `Error`, or the signal (`SIGKILL`...).
    pub reason: String,
    /// Start of the run.
    pub started: Timestamp,
    /// End of the run.
    pub finished: Timestamp,
}

impl ContainerProcess {
    /// Spawns `launch` with output appended to `log`. The environment is only the pod's
    /// (plus `PATH`, `HOSTNAME`, and `RUST_LOG` when the test run sets it), as in a container.
    pub fn spawn(launch: &Launch, hostname: &str, log: &Path) -> std::io::Result<Self> {
        let out = OpenOptions::new().create(true).append(true).open(log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(&launch.argv[0]);
        cmd.args(&launch.argv[1..])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOSTNAME", hostname)
            .current_dir(&launch.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        if let Some(level) = std::env::var_os("RUST_LOG") {
            cmd.env("RUST_LOG", level);
        }
        for (k, v) in &launch.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn()?;
        let pid = child.id().unwrap_or_default();
        Ok(Self { child, pid, started: Timestamp::now() })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the process to exit by itself.
    pub async fn wait(&mut self) -> Terminated {
        let status = self.child.wait().await;
        self.terminated(status.ok())
    }

    fn terminated(&self, status: Option<ExitStatus>) -> Terminated {
        let (exit_code, reason) = match status {
            Some(s) => match (s.code(), s.signal()) {
                (Some(0), _) => (0, "Completed".to_string()),
                (Some(c), _) => (c, "Error".to_string()),
                (None, Some(sig)) => (128 + sig, signal_name(sig)),
                (None, None) => (-1, "Unknown".to_string()),
            },
            None => (-1, "Unknown".to_string()),
        };
        Terminated { exit_code, reason, started: self.started, finished: Timestamp::now() }
    }

    /// SIGTERM, then SIGKILL once `grace` has passed; returns how it ended and how long
    /// the shutdown took.
    pub async fn stop(mut self, grace: Duration) -> (Terminated, Duration) {
        let began = Instant::now();
        if let Ok(pid) = libc::pid_t::try_from(self.pid) {
            // SAFETY: kill(2) on our own unreaped child: the pid cannot have been reused.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                let _ = self.child.start_kill();
                self.child.wait().await.ok()
            }
        };
        (self.terminated(status), began.elapsed())
    }
}

/// Appends `line` to `file`: a record of pids and addresses for `scripts/e2e-k8s`,
/// which removes what a killed test run could not (its `Drop`s never ran).
pub fn record(file: &Path, line: impl std::fmt::Display) {
    use std::io::Write as _;
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(file) {
        let _ = writeln!(f, "{line}");
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        other => format!("signal {other}"),
    }
}
