//! One pod's life on the test node, as a kubelet lives it: sandbox (a pod IP and DNS
//! names), container config (volumes, env), the process, probes, status, and teardown.
//!
//! Lifecycle and its invariants:
//! 1. a fresh IP per pod incarnation, and DNS names mapping the pod's stable name to it,
//!    exist before the process starts and are removed only after it exited;
//! 2. until the container config resolves (an unbound PVC, a missing Secret key), the
//!    pod reports `Waiting` and the runner retries — as a kubelet does;
//! 3. readiness comes only from the pod's own readiness probe, run against the pod IP;
//!    a failing liveness probe restarts the process; a process that exits by itself is
//!    restarted with a backoff (1 s doubling to 10 s — shorter than a kubelet's 10 s to
//!    5 min, to keep the suite fast), counting `restartCount`;
//! 4. on `deletionTimestamp` the process gets SIGTERM, SIGKILL after the pod's grace
//!    period, and only once it is gone is the pod object deleted (grace 0, uid
//!    precondition), which lets the StatefulSet controller create the replacement.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio::time::{Instant, Interval};
use tokio_util::sync::CancellationToken;

use super::container::{ContainerProcess, Terminated};
use super::hosts::{self, HostsFile};
use super::launch::{self, Launch};
use super::netif::IpPool;
use super::podspec::{probe_spec, ProbeSpec, ProbeTarget};
use super::podstatus::{self, PodView, State};
use super::timeline::Timeline;

/// Longest pause before restarting a container that exited by itself.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Grace period cap when the agent itself shuts down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// State every pod runner of one agent shares.
pub struct Shared {
    /// API client.
    pub client: Client,
    /// Program run for every container.
    pub binary: PathBuf,
    /// The node's IP (`status.hostIP`).
    pub host_ip: String,
    /// Cluster DNS domain of the pod names.
    pub domain: String,
    /// Root of pod directories and logs.
    pub state_dir: PathBuf,
    /// The `/etc/hosts` block.
    pub hosts: HostsFile,
    /// Pod IPs.
    pub ips: IpPool,
    /// Where process-level events go.
    pub timeline: Timeline,
    /// `(namespace, claim)`s whose data is wiped before the next container start.
    pub wipe: Mutex<HashSet<(String, String)>>,
    /// Probe client.
    pub http: reqwest::Client,
    /// Cancelled when the agent shuts down.
    pub cancel: CancellationToken,
}

/// Why the main loop ended.
enum Exit {
    /// `deletionTimestamp` set: graceful termination, then finalize the object.
    Deleted,
    /// The object vanished (force-deleted): terminate, nothing to finalize.
    Gone,
    /// The agent is shutting down.
    Shutdown,
}

fn deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Runs the pod first seen as `rx`'s value until it is deleted or the agent stops.
/// `rx` carries every later version of the pod, `None` once the object is gone.
pub async fn run_pod(shared: Arc<Shared>, rx: watch::Receiver<Option<Pod>>) {
    let Some(pod) = rx.borrow().clone() else { return };
    let mut runner = Runner::new(shared, pod);
    runner.run(rx).await;
}

struct Runner {
    shared: Arc<Shared>,
    api: Api<Pod>,
    pod: Pod,
    label: String,
    ip: Option<Ipv4Addr>,
    view: PodView,
    last_patch: Option<serde_json::Value>,
}

impl Runner {
    fn new(shared: Arc<Shared>, pod: Pod) -> Self {
        let ns = pod.namespace().unwrap_or_default();
        let container = pod.spec.as_ref().and_then(|s| s.containers.first()).cloned().unwrap_or_default();
        let view = PodView {
            uid: pod.uid().unwrap_or_default(),
            phase: "Pending",
            pod_ip: None,
            host_ip: shared.host_ip.clone(),
            start_time: Timestamp::now(),
            ready: false,
            ready_changed: Timestamp::now(),
            container: container.name.clone(),
            image: container.image.clone().unwrap_or_default(),
            state: State::Waiting { reason: "ContainerCreating".into(), message: String::new() },
            last_terminated: None,
            restart_count: 0,
            container_id: None,
        };
        Self {
            api: Api::namespaced(shared.client.clone(), &ns),
            label: format!("{ns}/{}", pod.name_any()),
            shared,
            pod,
            ip: None,
            view,
            last_patch: None,
        }
    }

    fn pod_dir(&self) -> PathBuf {
        self.shared.state_dir.join("pods").join(&self.view.uid)
    }

    fn log_path(&self) -> PathBuf {
        let uid = &self.view.uid[..self.view.uid.len().min(8)];
        self.shared.state_dir.join("logs").join(format!("{}-{uid}.log", self.label.replace('/', "_")))
    }

    async fn patch_status(&mut self) {
        let patch = podstatus::patch(&self.view);
        if self.last_patch.as_ref() == Some(&patch) {
            return;
        }
        match self.api.patch_status(&self.pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => self.last_patch = Some(patch),
            // Gone, or the name belongs to a newer pod now (uid precondition): nothing to report.
            Err(kube::Error::Api(s)) if s.is_not_found() || s.code == 409 || s.code == 422 => {}
            Err(e) => self.shared.timeline.note(format!("agent: {}: status patch failed: {e}", self.label)),
        }
    }

    fn set_ready(&mut self, ready: bool) {
        if self.view.ready != ready {
            self.view.ready = ready;
            self.view.ready_changed = Timestamp::now();
        }
    }

    /// Waits up to `pause` for a pod change; `Some(exit)` when the pod must go.
    async fn wait_change(&mut self, rx: &mut watch::Receiver<Option<Pod>>, pause: Duration) -> Option<Exit> {
        tokio::select! {
            _ = self.shared.cancel.cancelled() => Some(Exit::Shutdown),
            _ = tokio::time::sleep(pause) => None,
            changed = rx.changed() => self.on_change(changed.is_ok(), rx),
        }
    }

    fn on_change(&mut self, sender_alive: bool, rx: &mut watch::Receiver<Option<Pod>>) -> Option<Exit> {
        if !sender_alive {
            return Some(Exit::Shutdown);
        }
        let latest = rx.borrow_and_update().clone();
        match latest {
            None => Some(Exit::Gone),
            Some(p) => {
                self.pod = p;
                deleting(&self.pod).then_some(Exit::Deleted)
            }
        }
    }

    async fn run(&mut self, mut rx: watch::Receiver<Option<Pod>>) {
        let (exit, proc) = self.live(&mut rx).await;
        self.teardown(proc, exit).await;
    }

    /// Sandbox and config, then the container loop. Returns why the pod must go, with
    /// the process still running, if any.
    async fn live(&mut self, rx: &mut watch::Receiver<Option<Pod>>) -> (Exit, Option<ContainerProcess>) {
        if deleting(&self.pod) {
            return (Exit::Deleted, None);
        }
        // 1. Sandbox: the pod IP and its DNS names.
        let ip = loop {
            match self.shared.ips.allocate() {
                Ok(ip) => break ip,
                Err(e) => {
                    self.view.state = State::Waiting { reason: "SandboxCreating".into(), message: e.to_string() };
                    self.patch_status().await;
                    if let Some(exit) = self.wait_change(rx, Duration::from_secs(1)).await {
                        return (exit, None);
                    }
                }
            }
        };
        self.ip = Some(ip);
        self.view.pod_ip = Some(ip.to_string());
        let spec = self.pod.spec.clone().unwrap_or_default();
        if let (Some(h), Some(sub)) = (&spec.hostname, &spec.subdomain) {
            let names = hosts::pod_names(h, sub, &self.pod.namespace().unwrap_or_default(), &self.shared.domain);
            if let Err(e) = self.shared.hosts.set(&self.view.uid, ip.into(), names) {
                self.shared.timeline.note(format!("agent: {}: /etc/hosts update failed: {e}", self.label));
            }
        }
        // 2. Container config, retried until it resolves.
        let launch = loop {
            let pod_dir = self.pod_dir();
            let ip_text = ip.to_string();
            let host = launch::Host {
                client: &self.shared.client,
                binary: &self.shared.binary,
                pod_dir: &pod_dir,
                pod_ip: &ip_text,
                host_ip: &self.shared.host_ip,
            };
            match launch::prepare(&self.pod, &host).await {
                Ok(l) => break l,
                Err(e) => {
                    let message = format!("{e:#}");
                    let reason =
                        if message.contains("not bound") { "ContainerCreating" } else { "CreateContainerConfigError" };
                    self.view.state = State::Waiting { reason: reason.into(), message };
                    self.patch_status().await;
                    if let Some(exit) = self.wait_change(rx, Duration::from_secs(1)).await {
                        return (exit, None);
                    }
                }
            }
        };
        self.wipe_requested(&launch);
        self.containers(rx, &launch).await
    }

    /// Wipes the data of claims the test asked to lose (a replaced disk).
    fn wipe_requested(&self, launch: &Launch) {
        let ns = self.pod.namespace().unwrap_or_default();
        for (claim, dir) in &launch.claims {
            let requested =
                self.shared.wipe.lock().unwrap_or_else(|p| p.into_inner()).remove(&(ns.clone(), claim.clone()));
            if requested {
                let result = std::fs::remove_dir_all(dir).and_then(|()| std::fs::create_dir_all(dir));
                let outcome = match result {
                    Ok(()) => "emptied".to_string(),
                    Err(e) => format!("could not be emptied: {e}"),
                };
                self.shared.timeline.note(format!("agent: {}: volume of pvc/{claim} {outcome}", self.label));
            }
        }
    }

    fn start(&mut self, launch: &Launch) -> Option<ContainerProcess> {
        let hostname = self.pod.spec.as_ref().and_then(|s| s.hostname.clone()).unwrap_or_else(|| self.pod.name_any());
        match ContainerProcess::spawn(launch, &hostname, &self.log_path()) {
            Ok(p) => {
                super::container::record(&self.shared.state_dir.join("pids"), p.pid());
                self.shared.timeline.note(format!(
                    "agent: {} started (pid {}, ip {})",
                    self.label,
                    p.pid(),
                    self.view.pod_ip.as_deref().unwrap_or("-")
                ));
                self.view.phase = "Running";
                self.view.state = State::Running { started: p.started };
                self.view.container_id = Some(format!("seshat-e2e://{}", p.pid()));
                Some(p)
            }
            Err(e) => {
                self.view.state = State::Waiting { reason: "RunContainerError".into(), message: e.to_string() };
                None
            }
        }
    }

    /// The container loop: process, probes, restarts, until the pod must go.
    async fn containers(
        &mut self,
        rx: &mut watch::Receiver<Option<Pod>>,
        launch: &Launch,
    ) -> (Exit, Option<ContainerProcess>) {
        let c = &launch.container;
        let readiness = c.readiness_probe.as_ref().and_then(|p| probe_spec(c, p));
        let liveness = c.liveness_probe.as_ref().and_then(|p| probe_spec(c, p));
        let grace = self.grace();
        let mut proc = self.start(launch);
        let mut backoff = Duration::from_secs(1);
        let mut restart_at = proc.is_none().then(|| Instant::now() + backoff);
        let (mut ready_tick, mut live_tick) = (ticker(readiness.as_ref()), ticker(liveness.as_ref()));
        let (mut ok_streak, mut fail_streak, mut live_fails) = (0u32, 0u32, 0u32);
        self.set_ready(proc.is_some() && readiness.is_none());
        self.patch_status().await;
        let exit = loop {
            tokio::select! {
                _ = self.shared.cancel.cancelled() => break Exit::Shutdown,
                changed = rx.changed() => if let Some(exit) = self.on_change(changed.is_ok(), rx) { break exit },
                t = wait_opt(&mut proc) => {
                    self.shared.timeline.note(format!("agent: {} exited by itself ({} {})", self.label, t.reason, t.exit_code));
                    proc = None;
                    // A run that lasted resets the backoff, as a kubelet's does.
                    if t.finished.duration_since(t.started).as_secs() >= 10 {
                        backoff = Duration::from_secs(1);
                    }
                    self.view.state = State::Waiting { reason: "CrashLoopBackOff".into(), message: format!("back-off {backoff:?}") };
                    self.view.last_terminated = Some(t);
                    self.set_ready(false);
                    restart_at = Some(Instant::now() + backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    self.patch_status().await;
                }
                _ = sleep_opt(restart_at) => {
                    restart_at = None;
                    proc = self.start(launch);
                    if proc.is_none() {
                        restart_at = Some(Instant::now() + backoff);
                    }
                    self.view.restart_count += 1;
                    (ok_streak, fail_streak, live_fails) = (0, 0, 0);
                    self.set_ready(proc.is_some() && readiness.is_none());
                    self.patch_status().await;
                }
                _ = tick_opt(&mut ready_tick) => if let (Some(spec), true) = (&readiness, proc.is_some()) {
                    if self.probe(spec).await { ok_streak += 1; fail_streak = 0 } else { fail_streak += 1; ok_streak = 0 }
                    if ok_streak >= spec.success_threshold { self.set_ready(true) }
                    if fail_streak >= spec.failure_threshold { self.set_ready(false) }
                    self.patch_status().await;
                },
                _ = tick_opt(&mut live_tick) => if let (Some(spec), true) = (&liveness, proc.is_some()) {
                    live_fails = if self.probe(spec).await { 0 } else { live_fails + 1 };
                    if live_fails >= spec.failure_threshold {
                        self.shared.timeline.note(format!("agent: {} liveness failed {live_fails} times: restarting", self.label));
                        if let Some(p) = proc.take() {
                            let (t, _) = p.stop(grace).await;
                            self.view.last_terminated = Some(t);
                        }
                        restart_at = Some(Instant::now());
                        live_fails = 0;
                    }
                },
            }
        };
        (exit, proc)
    }

    fn grace(&self) -> Duration {
        let secs = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| self.pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30);
        Duration::from_secs(u64::try_from(secs).unwrap_or(0))
    }

    /// Stops the process (if any), removes the sandbox, and finalizes the deletion.
    async fn teardown(&mut self, proc: Option<ContainerProcess>, exit: Exit) {
        if let Some(p) = proc {
            let grace = match exit {
                Exit::Shutdown => self.grace().min(SHUTDOWN_GRACE),
                _ => self.grace(),
            };
            let pid = p.pid();
            let (t, took) = p.stop(grace).await;
            self.shared.timeline.note(format!(
                "agent: {} SIGTERM (grace {}s) → pid {pid} ended in {:.1}s ({})",
                self.label,
                grace.as_secs(),
                took.as_secs_f64(),
                t.reason
            ));
            self.view.state = State::Terminated(t);
        }
        self.set_ready(false);
        let _ = self.shared.hosts.remove(&self.view.uid);
        if let Some(ip) = self.ip.take() {
            if let Err(e) = self.shared.ips.release(ip) {
                self.shared.timeline.note(format!("agent: {}: {e}", self.label));
            }
        }
        let _ = std::fs::remove_dir_all(self.pod_dir());
        if matches!(exit, Exit::Deleted) {
            self.patch_status().await;
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions { uid: Some(self.view.uid.clone()), resource_version: None }),
                ..DeleteParams::default()
            };
            match self.api.delete(&self.pod.name_any(), &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.is_not_found() || s.code == 409 => {}
                Err(e) => self.shared.timeline.note(format!("agent: {}: final delete failed: {e}", self.label)),
            }
        }
    }

    /// One probe attempt against the pod IP.
    async fn probe(&self, spec: &ProbeSpec) -> bool {
        let Some(ip) = self.view.pod_ip.as_deref() else { return false };
        let timeout = Duration::from_secs(spec.timeout_s);
        match &spec.target {
            ProbeTarget::Http { port, path } => {
                let url = format!("http://{ip}:{port}{path}");
                match self.shared.http.get(&url).timeout(timeout).send().await {
                    Ok(r) => (200..400).contains(&r.status().as_u16()),
                    Err(_) => false,
                }
            }
            ProbeTarget::Tcp { port } => {
                matches!(tokio::time::timeout(timeout, tokio::net::TcpStream::connect((ip, *port))).await, Ok(Ok(_)))
            }
        }
    }
}

fn ticker(spec: Option<&ProbeSpec>) -> Option<Interval> {
    let spec = spec?;
    let start = Instant::now() + Duration::from_secs(spec.initial_delay_s);
    let mut i = tokio::time::interval_at(start, Duration::from_secs(spec.period_s));
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Some(i)
}

async fn tick_opt(i: &mut Option<Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn wait_opt(p: &mut Option<ContainerProcess>) -> Terminated {
    match p {
        Some(p) => p.wait().await,
        None => std::future::pending().await,
    }
}
