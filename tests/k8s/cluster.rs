//! A `SeshatCluster` seen from outside, as a user sees it: the custom resource (read
//! as untyped JSON — the suite tests the documented contract, not the operator's Rust
//! types), the names of the objects the operator promises to own, and the servers'
//! own view of the Raft membership through their HTTP API.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Endpoints, PersistentVolumeClaim, Pod};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Client, ResourceExt};
use serde::Deserialize;
use serde_json::{json, Value};
use seshat_control::api::{ClusterStatus, Role};
use seshat_control::client::AdminClient;
use seshat_tests::wait::poll;

/// Pod label the operator keeps on the Raft leader.
pub const ROLE_LABEL: &str = "seshat.io/role";
/// Label selecting one cluster's pods (with `app.kubernetes.io/name=seshat`).
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// `status` of a SeshatCluster (the fields the suite checks).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Status {
    /// Lifecycle phase.
    pub phase: Option<String>,
    /// `ready/desired`.
    pub ready: Option<String>,
    /// Ready pods.
    pub ready_replicas: i64,
    /// The leader.
    pub leader: Option<LeaderRef>,
    /// One entry per pod.
    pub members: Vec<MemberStatus>,
    /// Generation the status describes.
    pub observed_generation: Option<i64>,
}

/// `status.leader`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct LeaderRef {
    /// Leader pod.
    pub pod: String,
    /// Its Raft node id.
    pub node_id: String,
}

/// `status.members[]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct MemberStatus {
    /// Pod.
    pub pod: String,
    /// Raft node id.
    pub node_id: Option<String>,
    /// `leader`, `follower`, `learner`, ...
    pub role: String,
    /// Ready and a healthy member.
    pub healthy: bool,
}

impl Status {
    /// Members voting (leader or follower) and healthy.
    pub fn healthy_voters(&self) -> usize {
        self.members.iter().filter(|m| m.healthy && (m.role == "leader" || m.role == "follower")).count()
    }

    /// Running, `ready` is `n/n`, `n` healthy voters and a leader.
    pub fn settled(&self, n: usize) -> bool {
        self.phase.as_deref() == Some("Running")
            && self.ready.as_deref() == Some(format!("{n}/{n}").as_str())
            && self.healthy_voters() == n
            && self.members.len() == n
            && self.leader.is_some()
    }

    /// One line for timelines.
    pub fn summary(&self) -> String {
        let roles: Vec<String> = self.members.iter().map(|m| format!("{}={}", m.pod, m.role)).collect();
        format!(
            "phase={} ready={} leader={} members=[{}]",
            self.phase.as_deref().unwrap_or("-"),
            self.ready.as_deref().unwrap_or("-"),
            self.leader.as_ref().map_or("-", |l| l.pod.as_str()),
            roles.join(" ")
        )
    }
}

/// The API resource of `SeshatCluster`.
pub fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("seshat.io", "v1alpha1", "SeshatCluster"),
        "seshatclusters",
    )
}

/// One SeshatCluster and its objects.
#[derive(Clone)]
pub struct Cluster {
    /// API client (admin: the test's own credentials).
    pub client: Client,
    /// Namespace.
    pub ns: String,
    /// Name.
    pub name: String,
    /// Cluster DNS domain.
    pub domain: String,
    api: Api<DynamicObject>,
}

impl Cluster {
    /// The cluster `name` in `ns`.
    pub fn new(client: Client, ns: &str, name: &str) -> Self {
        let api = Api::namespaced_with(client.clone(), ns, &resource());
        Self { client, ns: ns.into(), name: name.into(), domain: "cluster.local".into(), api }
    }

    /// Pod of ordinal `i`.
    pub fn pod(&self, i: u32) -> String {
        format!("{}-{i}", self.name)
    }
    /// PVC of ordinal `i`.
    pub fn pvc(&self, i: u32) -> String {
        format!("data-{}-{i}", self.name)
    }
    /// The leader Service.
    pub fn leader_service(&self) -> String {
        format!("{}-leader", self.name)
    }
    /// Stable DNS name of ordinal `i`'s pod.
    pub fn fqdn(&self, i: u32) -> String {
        format!("{}.{}-headless.{}.svc.{}", self.pod(i), self.name, self.ns, self.domain)
    }
    /// RESP addresses of ordinals `0..n`, by DNS name.
    pub fn resp_addrs(&self, n: u32) -> Vec<String> {
        (0..n).map(|i| format!("{}:6379", self.fqdn(i))).collect()
    }
    /// Ordinal of one of this cluster's pod names.
    pub fn ordinal(&self, pod: &str) -> Option<u32> {
        pod.strip_prefix(&self.name)?.strip_prefix('-')?.parse().ok()
    }

    /// Creates the cluster with `spec`.
    pub async fn create(&self, spec: Value) -> anyhow::Result<()> {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "seshat.io/v1alpha1", "kind": "SeshatCluster",
            "metadata": { "name": self.name, "namespace": self.ns }, "spec": spec,
        }))?;
        self.api.create(&PostParams::default(), &obj).await.context("creating the SeshatCluster")?;
        Ok(())
    }

    /// Merge-patches `spec`.
    pub async fn patch_spec(&self, spec: Value) -> anyhow::Result<()> {
        self.api.patch(&self.name, &PatchParams::default(), &Patch::Merge(json!({ "spec": spec }))).await?;
        Ok(())
    }

    /// Deletes the cluster (background propagation, as `kubectl delete` does).
    pub async fn delete(&self) -> anyhow::Result<()> {
        self.api.delete(&self.name, &DeleteParams::background()).await?;
        Ok(())
    }

    /// Removes every finalizer (test cleanup when the operator could not run them).
    pub async fn clear_finalizers(&self) -> anyhow::Result<()> {
        let patch = json!({ "metadata": { "finalizers": null } });
        self.api.patch(&self.name, &PatchParams::default(), &Patch::Merge(patch)).await?;
        Ok(())
    }

    /// The object, if it exists.
    pub async fn get(&self) -> anyhow::Result<Option<DynamicObject>> {
        Ok(self.api.get_opt(&self.name).await?)
    }

    /// Its status (default when unset or absent).
    pub async fn status(&self) -> anyhow::Result<Status> {
        let Some(obj) = self.get().await? else { return Ok(Status::default()) };
        Ok(serde_json::from_value(obj.data.get("status").cloned().unwrap_or(Value::Null)).unwrap_or_default())
    }

    /// Its status and `metadata.generation`.
    pub async fn status_and_generation(&self) -> anyhow::Result<(Status, Option<i64>)> {
        let Some(obj) = self.get().await? else { return Ok((Status::default(), None)) };
        let status = serde_json::from_value(obj.data.get("status").cloned().unwrap_or(Value::Null)).unwrap_or_default();
        Ok((status, obj.metadata.generation))
    }

    /// Polls the status until `pred` holds.
    pub async fn wait_status(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Status) -> bool,
    ) -> anyhow::Result<Status> {
        let last = std::sync::Mutex::new(Status::default());
        let res = poll(timeout, what, || async {
            let st = self.status().await.ok()?;
            *last.lock().unwrap_or_else(|p| p.into_inner()) = st.clone();
            pred(&st).then_some(st)
        })
        .await;
        res.map_err(|e| {
            anyhow::anyhow!("{e}; last status: {}", last.into_inner().unwrap_or_else(|p| p.into_inner()).summary())
        })
    }

    /// The cluster's pods.
    pub async fn pods(&self) -> anyhow::Result<Vec<Pod>> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        Ok(api.list(&ListParams::default().labels(&format!("{INSTANCE_LABEL}={}", self.name))).await?.items)
    }

    /// Names of the pods labelled leader.
    pub async fn labelled_leaders(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .pods()
            .await?
            .iter()
            .filter(|p| p.labels().get(ROLE_LABEL).map(String::as_str) == Some("leader"))
            .map(ResourceExt::name_any)
            .collect())
    }

    /// Names of the cluster's PVCs that exist and are not being deleted.
    pub async fn pvcs(&self) -> anyhow::Result<BTreeSet<String>> {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &self.ns);
        let prefix = format!("data-{}-", self.name);
        Ok(api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| p.name_any())
            .filter(|n| n.starts_with(&prefix))
            .collect())
    }

    /// `(pod name, ip)` of every address in the leader Service's Endpoints.
    pub async fn leader_endpoints(&self) -> anyhow::Result<Vec<(String, String)>> {
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), &self.ns);
        let Some(ep) = api.get_opt(&self.leader_service()).await? else { return Ok(vec![]) };
        Ok(ep
            .subsets
            .unwrap_or_default()
            .into_iter()
            .flat_map(|s| s.addresses.unwrap_or_default())
            .map(|a| (a.target_ref.and_then(|t| t.name).unwrap_or_default(), a.ip))
            .collect())
    }

    /// `GET /cluster` of ordinal `i`'s server. A fresh client each time: a pooled
    /// connection could outlive the pod incarnation (and IP) it was made to.
    pub async fn node_status(&self, i: u32) -> Option<ClusterStatus> {
        let client = AdminClient::new(format!("{}:8080", self.fqdn(i)), None)
            .with_timeouts(Duration::from_secs(1), Duration::from_secs(1));
        client.cluster().await.ok()
    }

    /// The Raft leader's view among ordinals `0..n` (asking `first`, the last known
    /// leader, first): its ordinal and status, if one answers as leader.
    pub async fn raft_leader_from(&self, first: u32, n: u32) -> Option<(u32, ClusterStatus)> {
        for i in std::iter::once(first).chain((0..n).filter(|i| *i != first)) {
            if let Some(st) = self.node_status(i).await {
                if st.role == Role::Leader {
                    return Some((i, st));
                }
            }
        }
        None
    }
}

/// `kubectl get seshat <name> -n <ns>` as the user sees it: `(header, row)`.
pub fn kubectl_get_seshat(c: &Cluster) -> anyhow::Result<(String, String)> {
    let out = super::operator::kubectl(&["get", "seshat", &c.name, "-n", &c.ns], None)?;
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default().to_owned();
    let row = lines.next().unwrap_or_default().to_owned();
    Ok((header, row))
}
