//! `LocalCluster`: the child processes of a local cluster and the faults tests inject.
//!
//! Invariant: every child is owned by exactly one [`Proc`] inside the mutex, spawned
//! with `kill_on_drop` (and, on Linux, a parent-death signal), and [`Drop`] SIGKILLs
//! whatever is still running — a test that panics never leaks a server.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};

use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use super::{binary_identity, LocalConfig, LocalError};
use crate::api::NodeAddr;
use crate::driver::{Workload, WorkloadError, WorkloadSlot, WorkloadState};
use crate::planner::MAX_REPLICAS;

/// What a node's process is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Running (or SIGSTOPped) child.
    Running,
    /// Stopped on purpose (`stop`): not restarted by supervision.
    Stopped,
    /// Exited on its own or was killed (`kill`): supervision restarts it.
    Exited(Option<ExitStatus>),
}

/// One ordinal's process.
#[derive(Debug)]
struct Proc {
    child: Option<Child>,
    state: NodeState,
    /// Version (binary identity) it was started with.
    version: String,
}

#[derive(Debug)]
struct Inner {
    /// Ordinals `0..size` are wanted (the workload's "replicas").
    size: u32,
    procs: BTreeMap<u32, Proc>,
    /// Binary and version that new / restarted processes run.
    binary: PathBuf,
    version: String,
    initialized_before: bool,
}

/// A local cluster of `seshat serve` processes on loopback.
#[derive(Debug)]
pub struct LocalCluster {
    cfg: LocalConfig,
    inner: Mutex<Inner>,
}

fn io_err(action: &'static str, path: PathBuf) -> impl FnOnce(std::io::Error) -> LocalError {
    move |source| LocalError::Io { action, path, source }
}

impl LocalCluster {
    /// A cluster with no process yet. Validates the configuration (ports must not
    /// overflow for `MAX_REPLICAS` nodes) and creates the data dir.
    pub fn new(cfg: LocalConfig) -> Result<Self, LocalError> {
        if !(1..=MAX_REPLICAS).contains(&cfg.nodes) {
            return Err(LocalError::Config(format!("--nodes must be 1..={MAX_REPLICAS}, got {}", cfg.nodes)));
        }
        for (name, port) in [("resp", cfg.resp_port), ("http", cfg.http_port), ("raft", cfg.raft_port)] {
            if port == 0 || u32::from(port) + MAX_REPLICAS > 65_535 {
                return Err(LocalError::Config(format!("bad {name} base port {port}")));
            }
        }
        std::fs::create_dir_all(&cfg.data_dir).map_err(io_err("create", cfg.data_dir.clone()))?;
        let version = binary_identity(&cfg.binary)?;
        Ok(Self {
            inner: Mutex::new(Inner {
                size: 0,
                procs: BTreeMap::new(),
                binary: cfg.binary.clone(),
                version,
                initialized_before: false,
            }),
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LocalConfig {
        &self.cfg
    }

    /// Advertised addresses of node `i`.
    pub fn addr(&self, i: u32) -> NodeAddr {
        let h = &self.cfg.host;
        NodeAddr {
            raft_addr: format!("{h}:{}", u32::from(self.cfg.raft_port) + i),
            resp_addr: format!("{h}:{}", u32::from(self.cfg.resp_port) + i),
            http_addr: format!("{h}:{}", u32::from(self.cfg.http_port) + i),
        }
    }

    /// The binary new and restarted processes run, and its version.
    pub async fn template(&self) -> (PathBuf, String) {
        let inner = self.inner.lock().await;
        (inner.binary.clone(), inner.version.clone())
    }

    /// Changes the binary that new and restarted processes run (an "upgrade": the
    /// planner then restarts nodes one at a time). Returns its version identity.
    pub async fn set_binary(&self, binary: PathBuf) -> Result<String, LocalError> {
        let version = binary_identity(&binary)?;
        let mut inner = self.inner.lock().await;
        inner.binary = binary;
        inner.version = version.clone();
        Ok(version)
    }

    /// Records that the cluster was initialized (so the planner never bootstraps it
    /// again, even if every data dir vanished).
    pub async fn mark_initialized(&self) {
        self.inner.lock().await.initialized_before = true;
    }

    /// Number of wanted processes (ordinals `0..size`).
    pub async fn size(&self) -> u32 {
        self.inner.lock().await.size
    }

    /// State of node `i` (`None`: never started).
    pub async fn state(&self, i: u32) -> Option<NodeState> {
        self.inner.lock().await.procs.get(&i).map(|p| p.state)
    }

    /// Process id of node `i` while it runs.
    pub async fn pid(&self, i: u32) -> Option<u32> {
        let inner = self.inner.lock().await;
        inner.procs.get(&i)?.child.as_ref()?.id()
    }

    /// Starts (or restarts, if not running) node `i` on the current template binary.
    pub async fn start_node(&self, i: u32) -> Result<(), LocalError> {
        let mut inner = self.inner.lock().await;
        self.spawn_locked(&mut inner, i)
    }

    fn spawn_locked(&self, inner: &mut Inner, i: u32) -> Result<(), LocalError> {
        if let Some(p) = inner.procs.get(&i) {
            if p.state == NodeState::Running {
                return Ok(());
            }
        }
        let dir = self.cfg.node_dir(i);
        std::fs::create_dir_all(&dir).map_err(io_err("create", dir.clone()))?;
        let log_path = dir.join("server.log");
        let log =
            OpenOptions::new().create(true).append(true).open(&log_path).map_err(io_err("open", log_path.clone()))?;
        let log2 = log.try_clone().map_err(io_err("dup", log_path))?;
        // Each node listens exactly where it advertises (`--host`, loopback by default).
        let a = self.addr(i);
        let mut cmd = Command::new(&inner.binary);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&dir)
            .args(["--resp-addr", &a.resp_addr])
            .args(["--http-addr", &a.http_addr])
            .args(["--raft-addr", &a.raft_addr])
            .args(["--advertise-host", &self.cfg.host]);
        if let Some(t) = &self.cfg.admin_token {
            cmd.args(["--admin-token", t]);
        }
        cmd.args(&self.cfg.extra_args).stdin(Stdio::null()).stdout(log).stderr(log2).kill_on_drop(true);
        cmd.env("TOKIO_WORKER_THREADS", self.cfg.threads_per_node.max(1).to_string());
        // Own process group: a Ctrl-C in the terminal reaches only `seshat local`,
        // which then stops the nodes in order, instead of every node at once.
        cmd.process_group(0);
        #[cfg(target_os = "linux")]
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory
        // of the parent; it makes the child die with us even if we are SIGKILLed.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(io_err("spawn", inner.binary.clone()))?;
        tracing::info!(node = i, pid = child.id(), http = %a.http_addr, "started node");
        let version = inner.version.clone();
        inner.procs.insert(i, Proc { child: Some(child), state: NodeState::Running, version });
        Ok(())
    }

    /// Stops node `i`: SIGTERM (and SIGCONT, in case it is paused), then SIGKILL
    /// after the grace period. The node stays stopped (supervision leaves it alone).
    pub async fn stop_node(&self, i: u32) -> Result<(), LocalError> {
        let child = {
            let mut inner = self.inner.lock().await;
            let Some(p) = inner.procs.get_mut(&i) else {
                return Ok(());
            };
            p.state = NodeState::Stopped;
            p.child.take()
        };
        if let Some(child) = child {
            self.terminate(i, child).await;
        }
        Ok(())
    }

    async fn terminate(&self, i: u32, mut child: Child) {
        if let Some(pid) = child.id() {
            // Errors mean the process is already gone, which is the goal.
            let _ = signal(i, pid, libc::SIGTERM);
            let _ = signal(i, pid, libc::SIGCONT);
        }
        match tokio::time::timeout(self.cfg.stop_grace, child.wait()).await {
            Ok(status) => tracing::info!(node = i, ?status, "node stopped"),
            Err(_) => {
                tracing::warn!(node = i, grace = ?self.cfg.stop_grace, "no exit after SIGTERM; SIGKILL");
                let _ = child.kill().await;
            }
        }
    }

    /// SIGKILLs node `i` (a crash: supervision in `run_local` would restart it; tests
    /// restart it with [`LocalCluster::start_node`]).
    pub async fn kill_node(&self, i: u32) -> Result<(), LocalError> {
        let mut inner = self.inner.lock().await;
        let Some(p) = inner.procs.get_mut(&i) else {
            return Ok(());
        };
        if let Some(mut child) = p.child.take() {
            let _ = child.kill().await;
            p.state = NodeState::Exited(child.try_wait().ok().flatten());
        }
        Ok(())
    }

    /// SIGSTOPs node `i` (it stays "running" but answers nothing: a hung node).
    /// Returns once every thread of the process is stopped (on Linux), so that no
    /// request sent afterwards is still served.
    pub async fn pause_node(&self, i: u32) -> Result<(), LocalError> {
        self.signal_running(i, libc::SIGSTOP).await?;
        if let Some(pid) = self.pid(i).await {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
            while !all_threads_stopped(pid) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        Ok(())
    }

    /// SIGCONTs a paused node `i`.
    pub async fn resume_node(&self, i: u32) -> Result<(), LocalError> {
        self.signal_running(i, libc::SIGCONT).await
    }

    async fn signal_running(&self, i: u32, sig: i32) -> Result<(), LocalError> {
        let pid = self.pid(i).await.ok_or_else(|| LocalError::State { node: i, reason: "not running".into() })?;
        signal(i, pid, sig)
    }

    /// Restarts node `i` on the current template binary (graceful stop, then start).
    pub async fn restart_node(&self, i: u32) -> Result<(), LocalError> {
        self.stop_node(i).await?;
        self.start_node(i).await
    }

    /// Replaces node `i`'s data with an empty dir (a new node id on next start), keeping
    /// its `server.log`. The node must not be running.
    pub async fn wipe_node(&self, i: u32) -> Result<(), LocalError> {
        self.require_not_running(i).await?;
        let dir = self.cfg.node_dir(i);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("read", dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("read", dir.clone()))?;
            if entry.file_name() == "server.log" {
                continue;
            }
            let path = entry.path();
            let res = if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            res.map_err(io_err("remove", path))?;
        }
        Ok(())
    }

    async fn require_not_running(&self, i: u32) -> Result<(), LocalError> {
        if self.state(i).await == Some(NodeState::Running) {
            return Err(LocalError::State { node: i, reason: "must be stopped first".into() });
        }
        Ok(())
    }

    /// Sets the number of wanted nodes: starts `size..n`, or stops `n..size`.
    pub async fn scale_to(&self, n: u32) -> Result<(), LocalError> {
        if n > MAX_REPLICAS {
            return Err(LocalError::Config(format!("at most {MAX_REPLICAS} nodes")));
        }
        let old = {
            let mut inner = self.inner.lock().await;
            let old = inner.size;
            for i in old..n {
                self.spawn_locked(&mut inner, i)?;
            }
            inner.size = n;
            old
        };
        for i in n..old {
            self.stop_node(i).await?;
        }
        Ok(())
    }

    /// Finds processes that exited on their own since the last call; they become
    /// [`NodeState::Exited`] and are returned (supervision restarts them).
    pub async fn reap(&self) -> Vec<(u32, Option<ExitStatus>)> {
        let mut inner = self.inner.lock().await;
        let mut exited = vec![];
        for (i, p) in inner.procs.iter_mut() {
            let Some(child) = p.child.as_mut() else {
                continue;
            };
            if let Ok(Some(status)) = child.try_wait() {
                p.child = None;
                p.state = NodeState::Exited(Some(status));
                exited.push((*i, Some(status)));
            }
        }
        exited
    }

    /// Ordinals that are wanted but exited (crashed or killed).
    pub async fn exited_nodes(&self) -> Vec<u32> {
        let inner = self.inner.lock().await;
        inner
            .procs
            .iter()
            .filter(|(i, p)| **i < inner.size && matches!(p.state, NodeState::Exited(_)))
            .map(|(i, _)| *i)
            .collect()
    }

    /// Gracefully stops every node (concurrently) and forgets the wanted size.
    pub async fn stop_all(&self) {
        let children: Vec<(u32, Child)> = {
            let mut inner = self.inner.lock().await;
            inner.size = 0;
            inner
                .procs
                .iter_mut()
                .filter_map(|(i, p)| {
                    p.state = NodeState::Stopped;
                    p.child.take().map(|c| (*i, c))
                })
                .collect()
        };
        let stops = children.into_iter().map(|(i, child)| self.terminate(i, child));
        futures_join_all(stops).await;
    }
}

/// Awaits all futures concurrently (avoids a `futures` dependency for one call).
async fn futures_join_all<F: std::future::Future<Output = ()>>(futs: impl Iterator<Item = F>) {
    let futs: Vec<_> = futs.map(Box::pin).collect();
    let mut futs = futs;
    std::future::poll_fn(|cx| {
        futs.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if futs.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

/// Every thread of `pid` is in the stopped state ('T' in `/proc/<pid>/task/*/stat`).
/// Where `/proc` is unavailable this answers true: the signal was sent, that is all
/// that can be known.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.filter_map(Result::ok).all(|t| {
        std::fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|stat| {
                let state = stat.rsplit(')').next()?.trim_start().chars().next()?;
                Some(state == 'T' || state == 't')
            })
            // A thread that vanished meanwhile does not run either.
            .unwrap_or(true)
    })
}

fn signal(node: u32, pid: u32, sig: i32) -> Result<(), LocalError> {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return Err(LocalError::State { node, reason: format!("pid {pid} out of range") });
    };
    // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped, so the pid
    // cannot have been reused by another process).
    let rc = unsafe { libc::kill(raw, sig) };
    if rc != 0 {
        return Err(LocalError::Signal { node, pid, signal: sig, source: std::io::Error::last_os_error() });
    }
    Ok(())
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // No await in drop: SIGKILL synchronously; tokio reaps the zombies.
        for p in self.inner.get_mut().procs.values_mut() {
            if let Some(child) = p.child.as_mut() {
                let _ = child.start_kill();
            }
        }
    }
}

impl Workload for LocalCluster {
    async fn observe(&self) -> Result<WorkloadState, WorkloadError> {
        let inner = self.inner.lock().await;
        let slots = (0..MAX_REPLICAS)
            .map(|i| {
                let exists = i < inner.size;
                WorkloadSlot {
                    ordinal: i,
                    addr: self.addr(i),
                    exists,
                    terminating: false,
                    volume: self.cfg.node_dir(i).exists(),
                    version: if exists { inner.procs.get(&i).map(|p| p.version.clone()) } else { None },
                    workload_ready: None,
                }
            })
            .collect();
        Ok(WorkloadState { replicas: inner.size, slots, initialized_before: inner.initialized_before })
    }

    async fn scale(&self, replicas: u32) -> Result<(), WorkloadError> {
        self.scale_to(replicas).await.map_err(WorkloadError::new)
    }

    async fn restart(&self, ordinal: u32) -> Result<(), WorkloadError> {
        self.restart_node(ordinal).await.map_err(WorkloadError::new)
    }

    async fn delete_volume(&self, ordinal: u32) -> Result<(), WorkloadError> {
        self.require_not_running(ordinal).await.map_err(WorkloadError::new)?;
        let dir = self.cfg.node_dir(ordinal);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(WorkloadError::new(io_err("remove", dir)(e))),
        }
    }
}
