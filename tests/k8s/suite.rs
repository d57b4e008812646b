//! The suite's fixture: an admin client from `KUBECONFIG`, the node agent, the installed
//! operator (two replicas, as the chart runs it), the namespace the scenarios use, and
//! the work directory with every log. [`Suite::teardown`] undoes all of it; dropping
//! the suite without it still kills every process and restores `/etc/hosts`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams};
use kube::Client;
use serde_json::json;

use super::agent::{self, AgentConfig, NodeAgent, NODE_KEY};
use super::cluster::Cluster;
use super::operator::{self, Installation, OperatorProcess};
use super::timeline::Timeline;
use seshat_tests::wait::poll;

/// Environment variable that enables the suite (it changes `/etc/hosts`, adds
/// addresses to `lo` and registers a Node: never by accident).
pub const ENABLE_VAR: &str = "SESHAT_K8S_E2E";
/// StorageClass of the scenarios' PVCs (bound by the agent).
pub const STORAGE_CLASS: &str = "seshat-e2e-local";
/// Helm release name of the operator under test (distinct from a user's install, so
/// its cluster-scoped RBAC and Lease never collide with one).
pub const RELEASE: &str = "seshat-e2e";
/// Release namespace (ServiceAccount, Lease).
pub const RELEASE_NS: &str = "seshat-e2e-system";
/// Namespace of the scenarios' clusters.
pub const TEST_NS: &str = "seshat-e2e";
/// Name of the SeshatCluster every scenario works on.
pub const CLUSTER: &str = "kv";

/// Everything the scenarios share.
pub struct Suite {
    /// Admin client (the test's own credentials; the operator never uses them).
    pub client: Client,
    /// The shared timeline.
    pub tl: Timeline,
    /// The node agent.
    pub agent: Option<NodeAgent>,
    /// The operator installation.
    pub install: Installation,
    /// Running operator replicas.
    pub operators: Vec<OperatorProcess>,
    /// The operator binary.
    pub operator_bin: PathBuf,
    /// Logs and state.
    pub work: PathBuf,
    /// Probe/metrics HTTP client.
    pub http: reqwest::Client,
    /// The scenarios' cluster.
    pub cluster: Cluster,
    next_identity: u32,
}

/// Path of the `seshat-operator` binary: `$SESHAT_OPERATOR_BIN`, else next to this test's
/// target directory (`target/<profile>/seshat-operator`, built by `scripts/e2e-k8s`).
fn operator_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("SESHAT_OPERATOR_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().and_then(Path::parent).context("test binary outside target/<profile>/deps")?;
    let bin = profile_dir.join("seshat-operator");
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: run `cargo build -p seshat-operator` (scripts/e2e-k8s does)",
        bin.display()
    );
    Ok(bin)
}

impl Suite {
    /// Sets everything up on the cluster `KUBECONFIG` points at.
    pub async fn setup(repo: &Path, node_binary: &Path) -> anyhow::Result<Self> {
        let tl = Timeline::new();
        tl.begin("setup");
        let client = Client::try_default().await.context("a client from KUBECONFIG")?;
        let node = agent::node_name();
        let work = std::env::var_os("SESHAT_E2E_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join(format!("seshat-e2e-{}", std::process::id())));
        std::fs::create_dir_all(&work)?;
        tl.note(format!("work dir {} (operator and pod logs)", work.display()));
        let operator_bin = operator_binary()?;
        let agent = NodeAgent::start(
            client.clone(),
            AgentConfig {
                node: node.clone(),
                binary: node_binary.to_owned(),
                state_dir: work.join("node"),
                storage_class: STORAGE_CLASS.into(),
                domain: "cluster.local".into(),
                hosts_file: PathBuf::from(std::env::var("SESHAT_E2E_HOSTS").unwrap_or_else(|_| "/etc/hosts".into())),
                namespaces: vec![TEST_NS.into()],
            },
            tl.clone(),
        )
        .await?;
        let installed = async {
            let install = operator::install(&client, repo, RELEASE, RELEASE_NS, &work, &tl).await?;
            operator::ensure_namespace(&client, TEST_NS).await?;
            anyhow::Ok(install)
        }
        .await;
        let install = match installed {
            Ok(i) => i,
            Err(e) => {
                agent.shutdown().await;
                return Err(e);
            }
        };
        let mut suite = Self {
            cluster: Cluster::new(client.clone(), TEST_NS, CLUSTER),
            client,
            tl,
            agent: Some(agent),
            install,
            operators: Vec::new(),
            operator_bin,
            work,
            http: reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(3)).build()?,
            next_identity: 0,
        };
        for _ in 0..2 {
            if let Err(e) = suite.spawn_operator() {
                suite.teardown().await;
                return Err(e);
            }
        }
        Ok(suite)
    }

    /// Starts one more operator replica (`op-a`, `op-b`, ...).
    pub fn spawn_operator(&mut self) -> anyhow::Result<String> {
        let identity = format!("op-{}", char::from(b'a' + (self.next_identity % 26) as u8));
        self.next_identity += 1;
        let p = OperatorProcess::spawn(&self.operator_bin, &self.install, &identity, &self.work)?;
        self.tl.note(format!(
            "operator {identity} started as ServiceAccount {}/{} (pid {:?}, metrics {}, log {})",
            self.install.namespace,
            self.install.service_account,
            p.pid(),
            p.metrics_addr,
            p.log.display()
        ));
        self.operators.push(p);
        Ok(identity)
    }

    /// The node agent.
    pub fn agent(&self) -> &NodeAgent {
        self.agent.as_ref().expect("agent runs until teardown")
    }

    /// The holder of the operator's leader-election Lease.
    pub async fn lease_holder(&self) -> anyhow::Result<Option<String>> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), &self.install.namespace);
        let lease_name = self
            .install
            .args
            .iter()
            .find_map(|a| a.strip_prefix("--lease-name="))
            .unwrap_or("seshat-operator")
            .to_owned();
        Ok(leases.get_opt(&lease_name).await?.and_then(|l| l.spec?.holder_identity).filter(|h| !h.is_empty()))
    }

    /// The spec every scenario's cluster starts from: scheduled onto the agent's node
    /// (its selector and taint), PVCs of the agent's StorageClass, PDB off (1.20 has no
    /// policy/v1; the operator would fall back to v1beta1, which the brief keeps out).
    pub fn cluster_spec(&self, replicas: u32, image: &str) -> serde_json::Value {
        let node = self.agent().node().to_owned();
        json!({
            "replicas": replicas,
            "image": image,
            "storage": { "size": "1Gi", "storageClassName": STORAGE_CLASS },
            "podDisruptionBudget": { "enabled": false },
            "podTemplate": {
                "nodeSelector": { NODE_KEY: node },
                "tolerations": [ { "key": NODE_KEY, "operator": "Equal", "value": node, "effect": "NoSchedule" } ],
            },
        })
    }

    /// Deletes what the suite created, each step while what it depends on still runs:
    /// the cluster while the operators can run its finalizer, the namespaces while the
    /// agent can finalize their pods; then stops the operators and the agent. A
    /// finalizer still pending after a bound is removed, so no namespace hangs forever.
    pub async fn teardown(mut self) {
        self.tl.begin("teardown");
        if self.cluster.get().await.ok().flatten().is_some() {
            let _ = self.cluster.delete().await;
            let gone = poll(Duration::from_secs(60), "the cluster's finalizer", || async {
                self.cluster.get().await.ok()?.is_none().then_some(())
            });
            if gone.await.is_err() {
                self.tl.note("the SeshatCluster finalizer did not finish in 60s: removing it");
                let _ = self.cluster.clear_finalizers().await;
            }
        }
        self.operators.clear();
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        for ns in [TEST_NS, RELEASE_NS] {
            let _ = namespaces.delete(ns, &DeleteParams::default()).await;
        }
        let gone = poll(Duration::from_secs(90), "the suite's namespaces deleted", || async {
            for ns in [TEST_NS, RELEASE_NS] {
                namespaces.get_opt(ns).await.ok()?.is_none().then_some(())?;
            }
            Some(())
        });
        if let Err(e) = gone.await {
            self.tl.note(format!("{e} (continuing)"));
        }
        if let Some(agent) = self.agent.take() {
            agent.shutdown().await;
        }
        // Cluster-scoped leftovers (on a shared cluster): the release's RBAC and the class.
        let selector = format!("app.kubernetes.io/instance={RELEASE}");
        let _ = operator::kubectl(
            &["delete", "clusterrole,clusterrolebinding", "-l", &selector, "--ignore-not-found"],
            None,
        );
        let _ = operator::kubectl(&["delete", "storageclass", STORAGE_CLASS, "--ignore-not-found"], None);
        self.tl.note("operators stopped, namespaces deleted, node agent stopped, RBAC and StorageClass removed");
    }
}
