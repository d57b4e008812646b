//! Observation of the Kubernetes side of a cluster: turns its StatefulSet, pods and
//! PVCs into the driver's [`WorkloadState`]. The driver adds each node's own
//! `GET /cluster` and `GET /readyz`, reached at the advertised pod DNS name.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use seshat_control::driver::{WorkloadSlot, WorkloadState};

use crate::naming::{Names, REVISION_LABEL};

/// The template revision every up-to-date pod must run, when the StatefulSet
/// controller has caught up with the latest spec. `None` means "unknown": the planner
/// then restarts nothing, because it cannot tell which pods are outdated.
pub fn desired_revision(sts: Option<&StatefulSet>) -> Option<String> {
    let sts = sts?;
    let status = sts.status.as_ref()?;
    if status.observed_generation? < sts.metadata.generation? {
        return None;
    }
    status.update_revision.clone().filter(|r| !r.is_empty())
}

/// True when the pod's `Ready` condition is `True`.
fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Inputs of [`build`], all read in one reconcile.
pub struct Snapshot<'a> {
    /// Object names of the cluster.
    pub names: &'a Names,
    /// Current StatefulSet `.spec.replicas`.
    pub workload_replicas: u32,
    /// Desired replicas from the spec (slots below it are always listed).
    pub target: u32,
    /// Revision pods must run (see [`desired_revision`]).
    pub revision: Option<&'a str>,
    /// The cluster's pods.
    pub pods: &'a [Pod],
    /// The cluster's PVCs.
    pub pvcs: &'a [PersistentVolumeClaim],
    /// The cluster was formed before (see `naming::INITIALIZED_ANNOTATION`).
    pub initialized_before: bool,
}

/// Builds the workload view: one slot per ordinal that has a pod, a volume, or is
/// below the workload or target size.
pub fn build(s: &Snapshot<'_>) -> WorkloadState {
    let sts = s.names.statefulset();
    let pvc_prefix = format!("{}-{sts}", crate::naming::DATA_VOLUME);
    let pods: BTreeMap<u32, &Pod> =
        s.pods.iter().filter_map(|p| Some((s.names.ordinal_of(&sts, &p.name_any())?, p))).collect();
    // A PVC being deleted (held by pvc-protection until its pod is gone) already
    // counts as gone, so its deletion is not planned twice.
    let volumes: BTreeSet<u32> = s
        .pvcs
        .iter()
        .filter(|v| v.metadata.deletion_timestamp.is_none())
        .filter_map(|v| s.names.ordinal_of(&pvc_prefix, &v.name_any()))
        .collect();
    let upper = s.workload_replicas.max(s.target);
    let ordinals: BTreeSet<u32> = (0..upper).chain(pods.keys().copied()).chain(volumes.iter().copied()).collect();
    let slots = ordinals
        .into_iter()
        .map(|ordinal| {
            let pod = pods.get(&ordinal);
            WorkloadSlot {
                ordinal,
                addr: s.names.node_addr(ordinal),
                exists: pod.is_some(),
                terminating: pod.is_some_and(|p| p.metadata.deletion_timestamp.is_some()),
                volume: volumes.contains(&ordinal),
                // Only comparable when the desired revision is known (see `desired_revision`).
                version: pod.and_then(|p| s.revision.and(p.labels().get(REVISION_LABEL).cloned())),
                // The Pod's Ready condition: what Services and a PDB go by, so the planner
                // never takes a second pod down while the first is not Ready again.
                workload_ready: pod.copied().map(pod_ready),
            }
        })
        .collect();
    WorkloadState { replicas: s.workload_replicas, slots, initialized_before: s.initialized_before }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, ip: Option<&str>, ready: bool, rev: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(BTreeMap::from([(REVISION_LABEL.to_string(), rev.to_string())])),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(PodStatus {
                pod_ip: ip.map(Into::into),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
        }
    }

    fn pvc(name: &str) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
            ..PersistentVolumeClaim::default()
        }
    }

    #[test]
    fn slots_cover_pods_volumes_and_target() {
        let names = Names::new("kv", "ns", "cluster.local");
        let pods = [pod("kv-0", Some("10.0.0.1"), true, "r1"), pod("kv-1", None, false, "r0")];
        let pvcs = [pvc("data-kv-0"), pvc("data-kv-1"), pvc("data-kv-4")];
        let o = build(&Snapshot {
            names: &names,
            workload_replicas: 2,
            target: 3,
            revision: Some("r1"),
            pods: &pods,
            pvcs: &pvcs,
            initialized_before: true,
        });
        let ords: Vec<u32> = o.slots.iter().map(|s| s.ordinal).collect();
        assert_eq!(ords, [0, 1, 2, 4]);
        assert!(o.slots[0].exists && !o.slots[0].terminating && o.slots[0].volume);
        assert_eq!(o.slots[0].version.as_deref(), Some("r1"));
        assert_eq!(o.slots[1].version.as_deref(), Some("r0"));
        assert!(!o.slots[2].exists && !o.slots[2].volume);
        assert!(!o.slots[3].exists && o.slots[3].volume);
        assert_eq!(o.slots[3].addr, names.node_addr(4));
        assert!(o.initialized_before);
    }

    #[test]
    fn unknown_revision_hides_versions() {
        let names = Names::new("kv", "ns", "cluster.local");
        let pods = [pod("kv-0", Some("10.0.0.1"), true, "r1")];
        let o = build(&Snapshot {
            names: &names,
            workload_replicas: 1,
            target: 1,
            revision: None,
            pods: &pods,
            pvcs: &[],
            initialized_before: false,
        });
        assert_eq!(o.slots[0].version, None);
    }
}
