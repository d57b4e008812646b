//! The quorum-safe PodDisruptionBudget.
//!
//! Built as JSON because the API version depends on the server: `policy/v1` from
//! Kubernetes 1.21, `policy/v1beta1` before (1.20, the e2e control plane). The spec
//! fields used here mean the same in both.

use serde_json::{json, Value};

use super::Owner;

/// Which PodDisruptionBudget API the API server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PdbApi {
    /// `policy/v1` (Kubernetes >= 1.21).
    V1,
    /// `policy/v1beta1` (Kubernetes <= 1.24).
    V1Beta1,
    /// Neither: PDBs are skipped (with a warning Event when enabled).
    Unavailable,
}

impl PdbApi {
    /// `group/version`, when served.
    pub fn api_version(self) -> Option<&'static str> {
        match self {
            PdbApi::V1 => Some("policy/v1"),
            PdbApi::V1Beta1 => Some("policy/v1beta1"),
            PdbApi::Unavailable => None,
        }
    }
}

/// Voluntary disruptions that still leave a majority: `replicas - (replicas/2 + 1)`.
///
/// With 1 or 2 replicas this is 0: every pod is needed for quorum, so node drains
/// block until the user scales up or disables the PDB — the safe failure.
pub fn max_unavailable(replicas: i32) -> i32 {
    let replicas = replicas.max(1);
    replicas - (replicas / 2 + 1)
}

/// The PDB `<name>` for `api_version`.
pub fn build(owner: &Owner<'_>, api_version: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": "PodDisruptionBudget",
        "metadata": owner.meta(owner.names.pdb()),
        "spec": {
            "maxUnavailable": max_unavailable(owner.cluster.spec.replicas),
            "selector": { "matchLabels": owner.names.selector_labels() },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::max_unavailable;

    #[test]
    fn never_allows_losing_quorum() {
        let cases = [(1, 0), (2, 0), (3, 1), (4, 1), (5, 2), (6, 2), (7, 3), (9, 4)];
        for (replicas, want) in cases {
            assert_eq!(max_unavailable(replicas), want, "replicas {replicas}");
            let left = replicas - want;
            assert!(left > replicas / 2, "a majority stays up with {replicas}");
        }
    }
}
