//! The `SeshatCluster` custom resource (`seshat.io/v1alpha1`).
//!
//! The Rust types here are the single source of the CRD: `seshat-operator crd`
//! prints [`crd`], and `manifests/crd.yaml` plus the chart's `crds/` are that
//! output (a test fails when they drift).
//!
//! Compatibility: the schema targets Kubernetes >= 1.20. The CEL rules
//! (`x-kubernetes-validations`) are enforced from 1.25 on and ignored before;
//! every constraint that matters for safety is *also* expressed as plain
//! OpenAPI validation (min/max, enum, pattern), which 1.20 enforces.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration, TopologySpreadConstraint};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use serde::{Deserialize, Serialize};

/// The Kubernetes quantity grammar, as controller-gen emits it for `resource.Quantity`.
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// Desired state of a Seshat cluster.
// Clippy reads the repeated `type_ = "string"` inside separate `printcolumn(...)`
// entries of the kube attribute as duplicated attributes; they are not.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "seshat.io",
    version = "v1alpha1",
    kind = "SeshatCluster",
    plural = "seshatclusters",
    shortname = "seshat",
    category = "all",
    namespaced,
    status = "SeshatClusterStatus",
    derive = "PartialEq",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.ready",
        description = "Ready pods / desired replicas"
    ),
    printcolumn(
        name = "Leader",
        type_ = "string",
        json_path = ".status.leader.pod",
        description = "Pod holding Raft leadership"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase", description = "Lifecycle phase"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    doc = "A Redis-compatible, Raft-replicated Seshat cluster run as a StatefulSet."
)]
#[serde(rename_all = "camelCase")]
pub struct SeshatClusterSpec {
    /// Number of Raft voters (and pods). Odd numbers tolerate the most failures per pod.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 9))]
    pub replicas: i32,
    /// Container image of the `seshat` server.
    #[schemars(length(min = 1))]
    pub image: String,
    /// Image pull policy of the server container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,
    /// CPU/memory requests and limits of the server container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Persistent volume of each pod (the Raft log, snapshots and node id).
    #[serde(default)]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("storage is immutable (StatefulSet volumeClaimTemplates cannot change)"))]
    pub storage: StorageSpec,
    /// What happens to a pod's PVC when the pod is scaled away or the cluster deleted.
    #[serde(default)]
    pub pvc_retention: PvcRetention,
    /// Read consistency passed to every server (`--read-consistency`).
    #[serde(default)]
    pub read_consistency: ReadConsistency,
    /// Admin API authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    /// TLS material for the server listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Scheduling overrides merged into the pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplateOverrides>,
    /// The client Service `<name>`.
    #[serde(default)]
    pub service: ServiceSpec,
    /// The PodDisruptionBudget `<name>`.
    #[serde(default)]
    pub pod_disruption_budget: PdbSpec,
}

fn default_replicas() -> i32 {
    3
}

/// Image pull policy (the Kubernetes enum).
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImagePullPolicy {
    /// Always pull.
    Always,
    /// Pull when missing on the node.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl ImagePullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePullPolicy::Always => "Always",
            ImagePullPolicy::IfNotPresent => "IfNotPresent",
            ImagePullPolicy::Never => "Never",
        }
    }
}

/// Persistent storage of each pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Requested size of each PVC, a Kubernetes quantity (`1Gi`, `500Mi`).
    #[serde(default = "default_storage_size")]
    #[schemars(schema_with = "quantity_schema")]
    pub size: Quantity,
    /// StorageClass of the PVCs; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self { size: default_storage_size(), storage_class_name: None }
    }
}

fn default_storage_size() -> Quantity {
    Quantity("1Gi".into())
}

/// Schema of a quantity field. [`crd`] rewrites every int-or-string node into the full
/// validated form (see `rewrite_quantities`); emitting that form here would be mangled
/// by kube's structural-schema pass, which flattens `anyOf` branches.
pub fn quantity_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "x-kubernetes-int-or-string": true })
}

/// PVC retention policy, decided by the operator (not the StatefulSet field, which
/// Kubernetes < 1.23 drops).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PvcRetention {
    /// PVC of a pod removed by scaling down. Default `Delete`: a removed member's log is
    /// stale and must never be mistaken for a live replica if the ordinal comes back.
    #[serde(default = "retention_delete")]
    pub when_scaled: RetentionPolicy,
    /// PVCs when the SeshatCluster is deleted. Default `Retain`: deleting the object
    /// must not destroy the data by accident.
    #[serde(default = "retention_retain")]
    pub when_deleted: RetentionPolicy,
}

impl Default for PvcRetention {
    fn default() -> Self {
        Self { when_scaled: RetentionPolicy::Delete, when_deleted: RetentionPolicy::Retain }
    }
}

fn retention_delete() -> RetentionPolicy {
    RetentionPolicy::Delete
}
fn retention_retain() -> RetentionPolicy {
    RetentionPolicy::Retain
}

/// Keep or delete a PVC.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetentionPolicy {
    /// Keep the PVC (and its data).
    Retain,
    /// Delete the PVC.
    Delete,
}

/// Read consistency level of the servers.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReadConsistency {
    /// ReadIndex: every read confirms leadership with a quorum.
    #[default]
    Linearizable,
    /// Leader lease: no quorum round-trip, relies on bounded clock drift.
    Lease,
    /// Any replica's applied state.
    Stale,
}

impl ReadConsistency {
    /// The server flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadConsistency::Linearizable => "linearizable",
            ReadConsistency::Lease => "lease",
            ReadConsistency::Stale => "stale",
        }
    }
}

/// Reference to a key of a Secret in the cluster's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key inside the Secret.
    #[serde(default = "default_token_key")]
    pub key: String,
}

/// Default Secret key holding the admin token.
pub fn default_token_key() -> String {
    "token".into()
}

/// Admin API authentication.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Secret holding the admin token. When unset the operator generates `<name>-admin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
}

/// Reference to a Secret by name.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    /// Secret name.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// TLS settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// A `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`, optional `ca.crt`), mounted
    /// read-only at `/etc/seshat/tls` in every pod.
    pub secret_ref: SecretRef,
}

/// Scheduling overrides for the server pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateOverrides {
    /// Node labels the pods must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Affinity rules; when unset the operator adds a soft anti-affinity across nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Topology spread constraints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
}

/// Client Service settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service type.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Port of the RESP protocol on the client and leader Services.
    #[serde(default = "default_service_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        Self { type_: ServiceType::default(), port: default_service_port() }
    }
}

fn default_service_port() -> i32 {
    6379
}

/// Kubernetes Service type of the client Service.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ServiceType {
    /// Cluster-internal virtual IP.
    #[default]
    ClusterIP,
    /// Plus a port on every node.
    NodePort,
    /// Plus an external load balancer.
    LoadBalancer,
}

impl ServiceType {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

/// PodDisruptionBudget settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PdbSpec {
    /// Create a PDB allowing at most `(replicas - 1) / 2` voluntary disruptions, so an
    /// eviction never costs the quorum.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for PdbSpec {
    fn default() -> Self {
        Self { enabled: true }
    }
}

fn default_true() -> bool {
    true
}

/// Observed state, written by the operator only.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SeshatClusterStatus {
    /// Lifecycle phase.
    #[serde(default)]
    pub phase: Option<Phase>,
    /// Pods that exist.
    #[serde(default)]
    pub replicas: i32,
    /// Pods passing their readiness probe.
    #[serde(default)]
    pub ready_replicas: i32,
    /// `readyReplicas/spec.replicas`, for the READY printer column.
    #[serde(default)]
    pub ready: Option<String>,
    /// The current Raft leader.
    #[serde(default)]
    pub leader: Option<LeaderStatus>,
    /// One entry per pod.
    #[serde(default)]
    pub members: Vec<MemberStatus>,
    /// The `metadata.generation` this status describes.
    #[serde(default)]
    pub observed_generation: Option<i64>,
    /// `Available`, `Progressing`, `Degraded`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// Lifecycle phase of a cluster.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Objects created, no pod reachable yet.
    Pending,
    /// Forming the initial membership.
    Bootstrapping,
    /// Every desired member is a healthy voter.
    Running,
    /// Membership is changing towards `spec.replicas`.
    Scaling,
    /// Pods are being restarted onto a new template.
    Upgrading,
    /// Quorum or a member is lost, or the operator cannot act.
    Degraded,
    /// The SeshatCluster is being deleted.
    Deleting,
}

/// The Raft leader.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LeaderStatus {
    /// Pod name.
    pub pod: String,
    /// Raft node id, in decimal. A string because node ids are random u64s and
    /// JSON numbers above 2^53 lose precision in many clients.
    pub node_id: String,
}

/// One pod as a Raft member.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// Pod name.
    pub pod: String,
    /// Raft node id in decimal (see [`LeaderStatus::node_id`]); unset while unreachable.
    #[serde(default)]
    pub node_id: Option<String>,
    /// `leader`, `follower`, `candidate`, `learner`, `uninitialized`, `shutdown` or `unknown`.
    pub role: String,
    /// Ready and reachable.
    pub healthy: bool,
    /// Last log index applied to the state machine.
    #[serde(default)]
    pub applied_index: Option<i64>,
}

/// The CRD exactly as shipped (`seshat-operator crd`).
pub fn crd() -> CustomResourceDefinition {
    let mut value = serde_json::to_value(SeshatCluster::crd()).expect("CRD serializes");
    rewrite_quantities(&mut value);
    serde_json::from_value(value).expect("rewritten CRD deserializes")
}

/// First line of the generated YAML files.
pub const GENERATED_HEADER: &str = "# Generated by `seshat-operator crd` from operator/src/crd.rs. Do not edit.\n";

/// The CRD as YAML, as checked in at `manifests/crd.yaml` and in the chart's `crds/`.
pub fn crd_yaml() -> String {
    render_yaml(true)
}

/// The CRD without its CEL rules, for API servers older than 1.25: they drop the
/// rules anyway, but their OpenAPI does not know `x-kubernetes-validations`, so
/// `kubectl apply` (client-side validation) and server-side apply reject the file.
/// Every rule that matters for safety is also plain OpenAPI validation.
pub fn crd_yaml_without_cel() -> String {
    render_yaml(false)
}

fn render_yaml(cel: bool) -> String {
    let mut value = serde_json::to_value(crd()).expect("CRD serializes");
    if !cel {
        strip_key(&mut value, "x-kubernetes-validations");
    }
    integral_bounds(&mut value);
    let body = serde_norway::to_string(&value).expect("CRD serializes to YAML");
    format!("{GENERATED_HEADER}{body}")
}

fn strip_key(v: &mut serde_json::Value, key: &str) {
    match v {
        serde_json::Value::Object(map) => {
            map.remove(key);
            map.values_mut().for_each(|v| strip_key(v, key));
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| strip_key(v, key)),
        _ => {}
    }
}

/// JSONSchemaProps bounds are float64 (`minimum: 1.0`); print integral ones as integers.
fn integral_bounds(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            for bound in ["minimum", "maximum"] {
                if let Some(n) = map.get(bound).and_then(Value::as_f64).filter(|n| n.fract() == 0.0) {
                    map.insert(bound.into(), Value::from(n as i64));
                }
            }
            map.values_mut().for_each(integral_bounds);
        }
        Value::Array(items) => items.iter_mut().for_each(integral_bounds),
        _ => {}
    }
}

/// Every int-or-string in this CRD is a quantity (ours: `storage.size`; k8s-openapi's:
/// `resources.*`). Give each the schema controller-gen emits for `resource.Quantity`, so
/// a typo like `1GB` is rejected by the API server itself, including on 1.20.
fn rewrite_quantities(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            if map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
                // k8s-openapi's 2 KiB grammar essay is replaced by the pattern.
                let description = map
                    .get("description")
                    .filter(|d| d.as_str().is_some_and(|d| !d.starts_with("Quantity is a fixed-point")))
                    .cloned();
                let default = map.get("default").cloned();
                let mut q = serde_json::Map::new();
                q.insert("anyOf".into(), serde_json::json!([{"type": "integer"}, {"type": "string"}]));
                if let Some(d) = default {
                    q.insert("default".into(), d);
                }
                if let Some(d) = description {
                    q.insert("description".into(), d);
                }
                q.insert("pattern".into(), QUANTITY_PATTERN.into());
                q.insert("x-kubernetes-int-or-string".into(), true.into());
                *map = q;
                return;
            }
            map.values_mut().for_each(rewrite_quantities);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_quantities),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_has_required_shape() {
        let crd = crd();
        assert_eq!(crd.spec.group, "seshat.io");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.short_names, Some(vec!["seshat".to_string()]));
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(v.subresources.as_ref().unwrap().status.is_some());
        let cols: Vec<_> = v.additional_printer_columns.as_ref().unwrap().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(cols, ["Ready", "Leader", "Phase", "Age"]);
        let json = serde_json::to_string(&crd).unwrap();
        assert!(json.contains("x-kubernetes-validations"), "CEL rules present");
        assert!(!json.contains("Quantity is a fixed-point"), "quantities rewritten");
        assert!(!crd_yaml_without_cel().contains("x-kubernetes-validations"));
        assert!(crd_yaml_without_cel().contains("maximum: 9"));
    }

    #[test]
    fn replicas_bounds_are_in_schema() {
        let crd = serde_json::to_value(crd()).unwrap();
        let replicas =
            &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["replicas"];
        assert_eq!(replicas["minimum"].as_f64(), Some(1.0));
        assert_eq!(replicas["maximum"].as_f64(), Some(9.0));
        let size = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["storage"]["properties"]["size"];
        assert_eq!(size["pattern"], QUANTITY_PATTERN);
    }

    #[test]
    fn minimal_spec_gets_defaults() {
        let spec: SeshatClusterSpec = serde_json::from_value(serde_json::json!({"image": "seshat:1"})).unwrap();
        assert_eq!(spec.replicas, 3);
        assert_eq!(spec.storage.size.0, "1Gi");
        assert!(spec.pod_disruption_budget.enabled);
        assert_eq!(spec.pvc_retention, PvcRetention::default());
        assert_eq!(spec.service.port, 6379);
    }
}
