//! The ConfigMap of server settings, read by the pods as environment variables.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::Owner;
use crate::naming::stable_hash;

/// ConfigMap key: `--read-consistency`.
pub const READ_CONSISTENCY: &str = "SESHAT_READ_CONSISTENCY";
/// ConfigMap key: `--follower-mode`.
pub const FOLLOWER_MODE: &str = "SESHAT_FOLLOWER_MODE";
/// ConfigMap key: `--log-format`.
pub const LOG_FORMAT: &str = "SESHAT_LOG_FORMAT";

/// Settings every server of the cluster shares.
pub fn data(owner: &Owner<'_>) -> BTreeMap<String, String> {
    BTreeMap::from([
        (READ_CONSISTENCY.to_string(), owner.cluster.spec.read_consistency.as_str().to_string()),
        // Clients reach any pod through the client Service; forwarding keeps that transparent.
        (FOLLOWER_MODE.to_string(), "forward".to_string()),
        (LOG_FORMAT.to_string(), "json".to_string()),
    ])
}

/// The ConfigMap `<name>-config`.
pub fn build(owner: &Owner<'_>) -> ConfigMap {
    ConfigMap { metadata: owner.meta(owner.names.config_map()), data: Some(data(owner)), ..ConfigMap::default() }
}

/// Hash of the settings, put on the pod template so a change produces a new
/// StatefulSet revision (and thus a rolling restart driven by the planner).
pub fn hash(owner: &Owner<'_>) -> String {
    let data = data(owner);
    let flat: Vec<String> = data.iter().map(|(k, v)| format!("{k}={v}")).collect();
    stable_hash(flat.join("\n").as_bytes())
}
