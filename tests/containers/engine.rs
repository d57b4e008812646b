//! The Docker engine, driven through its CLI: every call bounded by a
//! deadline, every resource the tests create labelled with its owner so a
//! later run can sweep what a killed run left behind.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};

/// Label on every container, network, volume and image the tests create.
pub const LABEL: &str = "seshat.test=containers";
/// Label key holding the pid of the test process that owns the resource.
pub const OWNER_KEY: &str = "seshat.test.owner";

/// Deadline of an ordinary engine call (create, start, kill, connect...).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A handle on the local Docker engine.
#[derive(Debug, Clone)]
pub struct Docker {
    bin: String,
}

impl Docker {
    /// Check that the `docker` CLI (or `$SESHAT_DOCKER`) exists and its daemon
    /// answers; the error says which of the two is missing.
    pub async fn connect() -> anyhow::Result<Self> {
        let docker = Self { bin: std::env::var("SESHAT_DOCKER").unwrap_or_else(|_| "docker".into()) };
        let version = docker
            .run_for(Duration::from_secs(20), &["version", "--format", "{{.Server.Version}}"])
            .await
            .context("`docker version` found no usable engine")?;
        tracing::info!(server = version.trim(), "docker engine");
        Ok(docker)
    }

    /// The `--label` arguments every created resource carries.
    pub fn labels() -> [String; 4] {
        ["--label".into(), LABEL.into(), "--label".into(), format!("{OWNER_KEY}={}", std::process::id())]
    }

    /// Run `docker ARGS` and return its stdout; a non-zero exit is an error
    /// carrying stderr.
    pub async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        self.run_for(CALL_TIMEOUT, args).await
    }

    /// [`Docker::run`] with an explicit deadline (the child is killed when it passes).
    pub async fn run_for(&self, timeout: Duration, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
        let out = match tokio::time::timeout(timeout, cmd.output()).await {
            Err(_) => bail!("`docker {}` did not finish within {timeout:?}", args.join(" ")),
            Ok(r) => r.with_context(|| format!("cannot run `{}` (is the Docker CLI installed?)", self.bin))?,
        };
        if !out.status.success() {
            bail!(
                "`docker {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Run `docker ARGS` and return stdout and stderr together (for `docker logs`).
    pub async fn run_combined(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
        let out = tokio::time::timeout(CALL_TIMEOUT, cmd.output())
            .await
            .with_context(|| format!("`docker {}` timed out", args.join(" ")))??;
        Ok(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }

    /// Blocking best-effort call for cleanup paths (`Drop` cannot await);
    /// failures are returned as text for a warning, never raised.
    pub fn run_blocking(&self, args: &[&str]) -> Result<(), String> {
        let out = std::process::Command::new(&self.bin)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// Remove labelled resources whose owning test process is gone (a run
    /// that was SIGKILLed never reached its `Drop`). Resources of live
    /// owners — e.g. a concurrent run — are left alone.
    pub async fn sweep_stale(&self) {
        struct Kind {
            list: &'static [&'static str],
            id: &'static str,
            inspect: &'static [&'static str],
            labels: &'static str,
            remove: &'static [&'static str],
        }
        // Containers first: networks and volumes in use cannot be removed.
        let kinds = [
            Kind {
                list: &["ps", "-a"],
                id: ".ID",
                inspect: &["container", "inspect"],
                labels: ".Config.Labels",
                remove: &["rm", "-f", "-v"],
            },
            Kind {
                list: &["network", "ls"],
                id: ".ID",
                inspect: &["network", "inspect"],
                labels: ".Labels",
                remove: &["network", "rm"],
            },
            Kind {
                list: &["volume", "ls"],
                id: ".Name",
                inspect: &["volume", "inspect"],
                labels: ".Labels",
                remove: &["volume", "rm", "-f"],
            },
            Kind {
                list: &["images"],
                id: ".ID",
                inspect: &["image", "inspect"],
                labels: ".Config.Labels",
                remove: &["rmi", "-f"],
            },
        ];
        let filter = format!("label={LABEL}");
        for kind in kinds {
            let id_fmt = format!("{{{{{}}}}}", kind.id);
            let mut list = kind.list.to_vec();
            list.extend(["--filter", &filter, "--format", &id_fmt]);
            let Ok(ids) = self.run(&list).await else { continue };
            let owner_fmt = format!("{{{{index {} \"{OWNER_KEY}\"}}}}", kind.labels);
            for id in ids.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let mut inspect = kind.inspect.to_vec();
                inspect.extend(["--format", &owner_fmt, id]);
                let owner = self.run(&inspect).await.ok().and_then(|o| o.trim().parse::<u32>().ok());
                if owner.is_some_and(pid_alive) {
                    continue;
                }
                let mut rm = kind.remove.to_vec();
                rm.push(id);
                match self.run(&rm).await {
                    Ok(_) => tracing::info!(id, kind = kind.list[0], "removed stale test resource"),
                    Err(e) => tracing::warn!(id, "cannot remove stale test resource: {e:#}"),
                }
            }
        }
    }
}

/// True when a process with this pid exists on this host.
fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}
