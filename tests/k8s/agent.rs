//! The node agent: a Node that runs its pods as local processes.
//!
//! It registers a Node (Ready, with capacity, a `NoSchedule` taint of its own so only
//! pods that tolerate it land here, even on a shared real cluster), renews the Node's
//! Lease in `kube-node-lease` every 10 s and its Ready heartbeat every minute (without
//! them the node lifecycle controller would mark it NotReady after 40 s and evict), binds
//! PVCs of its StorageClass (`volumes`), and runs every pod the real scheduler binds to
//! it (`pod_runner`).
//!
//! Invariant: at most one runner per pod uid. The runner gets every later version of
//! its pod through a watch channel, and `None` when the object is gone — including
//! deletions missed while the watch was down (detected at the re-list).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::hosts::HostsFile;
use super::netif::{self, IpPool};
use super::pod_runner::{self, Shared};
use super::timeline::Timeline;
use super::volumes::VolumeBinder;

/// Node label and taint key identifying the agent's node.
pub const NODE_KEY: &str = "seshat.io/e2e-node";
/// Lease renewal period (a kubelet's default).
const LEASE_RENEW: Duration = Duration::from_secs(10);
/// Ready-condition heartbeat period.
const STATUS_HEARTBEAT: Duration = Duration::from_secs(60);

/// How to run the agent.
pub struct AgentConfig {
    /// Node name (also its `kubernetes.io/hostname`).
    pub node: String,
    /// Program run for every container (`seshat-node`).
    pub binary: PathBuf,
    /// Pod directories, logs and volumes go under here.
    pub state_dir: PathBuf,
    /// StorageClass whose claims the agent binds.
    pub storage_class: String,
    /// Cluster DNS domain of pod names.
    pub domain: String,
    /// Hosts file to manage (`/etc/hosts`).
    pub hosts_file: PathBuf,
    /// Only pods of these namespaces are run. On a shared cluster, DaemonSets that
    /// tolerate every taint still land on the node; their pods are left Pending.
    pub namespaces: Vec<String>,
}

/// A running node agent; [`NodeAgent::shutdown`] stops it (dropping it also kills every
/// process and restores the hosts file, but cannot delete API objects).
pub struct NodeAgent {
    shared: Arc<Shared>,
    binder: VolumeBinder,
    tasks: Vec<JoinHandle<()>>,
    node: String,
}

impl NodeAgent {
    /// Registers the node and starts watching pods and claims.
    pub async fn start(client: Client, cfg: AgentConfig, timeline: Timeline) -> anyhow::Result<Self> {
        netif::preflight().context("pod IPs need root (CAP_NET_ADMIN) to add addresses to lo")?;
        for sub in ["pods", "logs", "volumes"] {
            std::fs::create_dir_all(cfg.state_dir.join(sub))?;
        }
        let hosts = HostsFile::open(&cfg.hosts_file, &cfg.node)
            .with_context(|| format!("{} must be writable (run as root)", cfg.hosts_file.display()))?;
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared {
            client: client.clone(),
            binary: cfg.binary.clone(),
            host_ip: "127.0.0.1".into(),
            domain: cfg.domain.clone(),
            state_dir: cfg.state_dir.clone(),
            hosts,
            ips: IpPool::new(10, cfg.state_dir.join("pod-ips")),
            timeline: timeline.clone(),
            wipe: Mutex::new(HashSet::new()),
            http: reqwest::Client::builder().no_proxy().build()?,
            cancel: cancel.clone(),
        });
        register_node(&client, &cfg.node).await?;
        let binder = VolumeBinder::new(
            client.clone(),
            &cfg.storage_class,
            &cfg.node,
            &cfg.state_dir.join("volumes"),
            timeline.clone(),
        );
        binder.ensure_storage_class().await?;
        let tasks = vec![
            tokio::spawn(heartbeat(client.clone(), cfg.node.clone(), cancel.clone(), timeline.clone())),
            tokio::spawn(binder.clone().run(cancel.clone())),
            tokio::spawn(watch_pods(shared.clone(), cfg.node.clone(), cfg.namespaces.clone())),
        ];
        timeline.note(format!("agent: node {} registered (state in {})", cfg.node, cfg.state_dir.display()));
        Ok(Self { shared, binder, tasks, node: cfg.node })
    }

    /// The node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Empties the volume of claim `claim` in `namespace` right before the next container
    /// that mounts it starts — a pod coming back on a replaced, empty disk.
    pub fn wipe_before_next_start(&self, namespace: &str, claim: &str) {
        self.shared.wipe.lock().unwrap_or_else(|p| p.into_inner()).insert((namespace.into(), claim.into()));
    }

    /// Stops every process (SIGTERM, short grace), removes pod IPs and DNS entries,
    /// deletes the PVs it created and the Node.
    pub async fn shutdown(mut self) {
        self.shared.cancel.cancel();
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
        self.binder.delete_all_pvs().await;
        let nodes: Api<Node> = Api::all(self.shared.client.clone());
        let _ = nodes.delete(&self.node, &DeleteParams::default()).await;
        let leases: Api<Lease> = Api::namespaced(self.shared.client.clone(), "kube-node-lease");
        let _ = leases.delete(&self.node, &DeleteParams::default()).await;
        let _ = self.shared.hosts.restore();
    }
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        // Runner tasks own the processes (kill_on_drop); cancelling lets them stop
        // gracefully if the runtime keeps running, and aborting the watch drops the rest.
        self.shared.cancel.cancel();
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn now_time() -> serde_json::Value {
    serde_json::to_value(Time(Timestamp::now())).unwrap_or_default()
}

fn node_status() -> serde_json::Value {
    let now = now_time();
    let cond = |type_: &str, status: &str, reason: &str| {
        json!({ "type": type_, "status": status, "reason": reason, "message": "seshat e2e node agent",
                "lastHeartbeatTime": now, "lastTransitionTime": now })
    };
    let capacity = json!({ "cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi" });
    json!({
        "capacity": capacity, "allocatable": capacity,
        "conditions": [
            cond("Ready", "True", "KubeletReady"),
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID"),
        ],
        "addresses": [ { "type": "InternalIP", "address": "127.0.0.1" }, { "type": "Hostname", "address": "localhost" } ],
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "", "osImage": "seshat e2e",
            "containerRuntimeVersion": "seshat-e2e://1", "kubeletVersion": "v1.20.2-seshat-e2e",
            "kubeProxyVersion": "none", "operatingSystem": "linux", "architecture": "amd64",
        },
    })
}

async fn register_node(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": { "name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", NODE_KEY: name,
        } },
        "spec": { "taints": [ { "key": NODE_KEY, "value": name, "effect": "NoSchedule" } ] },
    }))?;
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.is_already_exists() => {}
        Err(e) => return Err(e).context("registering the Node"),
    }
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({ "status": node_status() })))
        .await
        .context("posting the Node status")?;
    renew_lease(client, name).await.context("creating the node Lease")
}

async fn renew_lease(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": { "holderIdentity": name, "leaseDurationSeconds": 40,
                  "renewTime": serde_json::to_value(MicroTime(Timestamp::now()))? },
    }))?;
    match api.get_opt(name).await? {
        None => {
            api.create(&PostParams::default(), &lease).await?;
        }
        Some(_) => {
            api.patch(name, &PatchParams::default(), &Patch::Merge(&lease)).await?;
        }
    }
    Ok(())
}

/// Lease renewals and Ready heartbeats until cancelled.
async fn heartbeat(client: Client, node: String, cancel: CancellationToken, timeline: Timeline) {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut since_status = Duration::ZERO;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(LEASE_RENEW) => {}
        }
        if let Err(e) = renew_lease(&client, &node).await {
            timeline.note(format!("agent: lease renewal failed: {e:#}"));
        }
        since_status += LEASE_RENEW;
        if since_status >= STATUS_HEARTBEAT {
            since_status = Duration::ZERO;
            let patch = Patch::Merge(json!({ "status": node_status() }));
            if let Err(e) = nodes.patch_status(&node, &PatchParams::default(), &patch).await {
                timeline.note(format!("agent: node status heartbeat failed: {e}"));
            }
        }
    }
}

/// A runner and the channel feeding it its pod.
struct RunnerHandle {
    tx: watch::Sender<Option<Pod>>,
    task: JoinHandle<()>,
}

/// Watches the pods bound to `node` and keeps one runner per pod uid.
async fn watch_pods(shared: Arc<Shared>, node: String, namespaces: Vec<String>) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut stream = watcher(api, cfg).boxed();
    let mut runners: HashMap<String, RunnerHandle> = HashMap::new();
    let mut listed: BTreeSet<String> = BTreeSet::new();
    // Uids whose runner ended: a late event about them must not start a second runner.
    let mut done: HashSet<String> = HashSet::new();
    loop {
        let ev = tokio::select! {
            _ = shared.cancel.cancelled() => break,
            ev = stream.next() => match ev { Some(ev) => ev, None => break },
        };
        runners.retain(|uid, r| {
            let finished = r.task.is_finished();
            if finished {
                done.insert(uid.clone());
            }
            !finished
        });
        let ours = |p: &Pod| p.namespace().is_some_and(|ns| namespaces.contains(&ns));
        match ev {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) if !ours(&pod) => {}
            Ok(watcher::Event::Apply(pod)) => dispatch(&shared, &mut runners, &done, pod),
            Ok(watcher::Event::InitApply(pod)) => {
                listed.insert(pod.uid().unwrap_or_default());
                dispatch(&shared, &mut runners, &done, pod);
            }
            Ok(watcher::Event::Delete(pod)) => {
                if let Some(r) = runners.get(&pod.uid().unwrap_or_default()) {
                    r.tx.send_replace(None);
                }
            }
            Ok(watcher::Event::Init) => listed.clear(),
            Ok(watcher::Event::InitDone) => {
                // Pods deleted while the watch was down: their runners learn it now.
                for (uid, r) in &runners {
                    if !listed.contains(uid) {
                        r.tx.send_replace(None);
                    }
                }
            }
            Err(e) => {
                shared.timeline.note(format!("agent: pod watch error (re-listing): {e}"));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    // Shutdown: every runner stops its process (they watch the same cancel token).
    for (_, r) in runners.drain() {
        let _ = tokio::time::timeout(Duration::from_secs(10), r.task).await;
    }
}

fn dispatch(shared: &Arc<Shared>, runners: &mut HashMap<String, RunnerHandle>, done: &HashSet<String>, pod: Pod) {
    let uid = pod.uid().unwrap_or_default();
    if done.contains(&uid) {
        return;
    }
    if let Some(r) = runners.get(&uid) {
        r.tx.send_replace(Some(pod));
        return;
    }
    let (tx, rx) = watch::channel(Some(pod));
    let task = tokio::spawn(pod_runner::run_pod(shared.clone(), rx));
    runners.insert(uid, RunnerHandle { tx, task });
}

/// The node name: `$SESHAT_E2E_NODE` (set by `scripts/e2e-k8s`, which strips this
/// run's `/etc/hosts` block by it), else one unique to this process.
pub fn node_name() -> String {
    std::env::var("SESHAT_E2E_NODE").unwrap_or_else(|_| format!("seshat-e2e-{}", std::process::id()))
}
