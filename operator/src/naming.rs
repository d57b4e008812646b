//! Names, labels and addresses of everything the operator owns for one cluster.
//!
//! Invariant: every name and address here is a pure function of the cluster's
//! name, namespace and the cluster DNS domain, so the planner can map Raft members
//! to StatefulSet ordinals by address even while a pod does not exist.

use std::collections::BTreeMap;

use seshat_control::api::NodeAddr;

/// Field manager of every server-side apply, and the Event reporter name.
pub const MANAGER: &str = "seshat-operator";
/// Finalizer on `SeshatCluster` objects (runs PVC cleanup on delete).
pub const FINALIZER: &str = "seshat.io/cleanup";
/// Pod label the operator keeps on exactly the Raft leader (selector of `<name>-leader`).
pub const ROLE_LABEL: &str = "seshat.io/role";
/// Value of [`ROLE_LABEL`] on the leader.
pub const ROLE_LEADER: &str = "leader";
/// Annotation set on a `SeshatCluster` once a Raft cluster was formed for it. While it is
/// present the operator never bootstraps again (a cluster whose every volume came back
/// empty is a disaster to report, not a new cluster to create silently). It lives in
/// metadata rather than status because status is not preserved by backup/restore tools.
pub const INITIALIZED_ANNOTATION: &str = "seshat.io/initialized";
/// Pod template annotation carrying a hash of the ConfigMap, so a config change rolls.
pub const CONFIG_HASH_ANNOTATION: &str = "seshat.io/config-hash";
/// Label the StatefulSet controller puts on each pod: the template revision it runs.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// RESP (Redis protocol) container port.
pub const RESP_PORT: i32 = 6379;
/// HTTP (health, metrics, admin) container port.
pub const HTTP_PORT: i32 = 8080;
/// Raft transport container port.
pub const RAFT_PORT: i32 = 7379;
/// Mount point of the PVC; the data dir is a subdirectory so `lost+found` stays out of it.
pub const DATA_MOUNT: &str = "/var/lib/seshat";
/// `--data-dir` of every server.
pub const DATA_DIR: &str = "/var/lib/seshat/data";
/// Name of the volume claim template (PVCs are `data-<name>-<ordinal>`).
pub const DATA_VOLUME: &str = "data";
/// Key of the admin token in the operator-generated Secret.
pub const TOKEN_KEY: &str = "token";

/// The names of one cluster's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// `SeshatCluster` name.
    pub cluster: String,
    /// Its namespace.
    pub namespace: String,
    /// Cluster DNS domain (`cluster.local`).
    pub domain: String,
}

impl Names {
    /// Names for cluster `cluster` in `namespace` under DNS `domain`.
    pub fn new(cluster: &str, namespace: &str, domain: &str) -> Self {
        Self { cluster: cluster.into(), namespace: namespace.into(), domain: domain.into() }
    }

    /// StatefulSet (and pod prefix).
    pub fn statefulset(&self) -> String {
        self.cluster.clone()
    }
    /// Client Service: ready pods, any role.
    pub fn client_service(&self) -> String {
        self.cluster.clone()
    }
    /// Headless Service giving each pod a stable DNS name.
    pub fn headless_service(&self) -> String {
        format!("{}-headless", self.cluster)
    }
    /// Service selecting only the leader pod.
    pub fn leader_service(&self) -> String {
        format!("{}-leader", self.cluster)
    }
    /// ConfigMap of server settings.
    pub fn config_map(&self) -> String {
        format!("{}-config", self.cluster)
    }
    /// PodDisruptionBudget.
    pub fn pdb(&self) -> String {
        self.cluster.clone()
    }
    /// Operator-generated admin token Secret.
    pub fn admin_secret(&self) -> String {
        format!("{}-admin", self.cluster)
    }
    /// Pod of an ordinal.
    pub fn pod(&self, ordinal: u32) -> String {
        format!("{}-{ordinal}", self.cluster)
    }
    /// PVC of an ordinal (the StatefulSet controller's naming).
    pub fn pvc(&self, ordinal: u32) -> String {
        format!("{DATA_VOLUME}-{}-{ordinal}", self.statefulset())
    }
    /// Fully qualified DNS name of an ordinal's pod via the headless Service.
    pub fn pod_fqdn(&self, ordinal: u32) -> String {
        format!("{}.{}", self.pod(ordinal), self.pod_dns_suffix())
    }
    /// `<headless>.<ns>.svc.<domain>`: appended to `$(POD_NAME)` for `--advertise-host`.
    pub fn pod_dns_suffix(&self) -> String {
        format!("{}.{}.svc.{}", self.headless_service(), self.namespace, self.domain)
    }
    /// What the server on `ordinal` advertises: `--advertise-host` plus each listener port.
    pub fn node_addr(&self, ordinal: u32) -> NodeAddr {
        let host = self.pod_fqdn(ordinal);
        NodeAddr {
            raft_addr: format!("{host}:{RAFT_PORT}"),
            resp_addr: format!("{host}:{RESP_PORT}"),
            http_addr: format!("{host}:{HTTP_PORT}"),
        }
    }
    /// Ordinal of a pod or PVC name of this cluster (`<prefix>-<n>`).
    pub fn ordinal_of(&self, prefix: &str, name: &str) -> Option<u32> {
        name.strip_prefix(prefix)?.strip_prefix('-')?.parse().ok()
    }

    /// Labels selecting this cluster's pods. Immutable once the StatefulSet exists.
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), "seshat".to_string()),
            ("app.kubernetes.io/instance".to_string(), self.cluster.clone()),
        ])
    }
    /// Label selector string of [`Self::selector_labels`].
    pub fn selector_string(&self) -> String {
        self.selector_labels().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
    }
    /// Labels of every owned object and pod.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut l = self.selector_labels();
        l.insert("app.kubernetes.io/component".into(), "server".into());
        l.insert("app.kubernetes.io/managed-by".into(), MANAGER.into());
        l
    }
}

/// FNV-1a 64: a hash that stays the same across Rust releases, unlike `DefaultHasher`,
/// so an operator upgrade does not roll every pod by changing the config hash.
pub fn stable_hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_the_headless_service() {
        let n = Names::new("kv", "prod", "cluster.local");
        assert_eq!(n.pod_fqdn(2), "kv-2.kv-headless.prod.svc.cluster.local");
        assert_eq!(n.node_addr(0).raft_addr, "kv-0.kv-headless.prod.svc.cluster.local:7379");
        assert_eq!(n.pvc(1), "data-kv-1");
        assert_eq!(n.ordinal_of("kv", "kv-12"), Some(12));
        assert_eq!(n.ordinal_of("kv", "kv-leader"), None);
        assert_eq!(n.ordinal_of("data-kv", "data-kv-3"), Some(3));
    }

    #[test]
    fn stable_hash_is_stable() {
        assert_eq!(stable_hash(b""), "cbf29ce484222325");
        assert_eq!(stable_hash(b"a"), "af63dc4c8601ec8c");
    }
}
