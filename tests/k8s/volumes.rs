//! Persistent volumes without a provisioner: one `hostPath` PV per PVC, pre-bound.
//!
//! The StatefulSet controller creates a PVC per pod from the volume claim template; the
//! scheduler will not place a pod whose (immediate-binding) PVC is unbound, and nothing
//! here provisions. So the binder watches PVCs of its StorageClass and creates, for each,
//! a PV whose `claimRef` names it (the real PV controller then binds the pair), whose
//! `hostPath` is a fresh directory, and whose node affinity pins it to the agent's Node.
//! The pod runner later "mounts" the PVC by reading that PV's `hostPath`, as a kubelet
//! would. The StorageClass uses `kubernetes.io/no-provisioner`, the static local-volume
//! pattern, so on a real cluster no provisioner competes for these claims.
//!
//! Invariants:
//! - a directory belongs to exactly one PVC *uid*: a PVC deleted and re-created under
//!   the same name gets a new, empty directory (a deleted PVC loses its data);
//! - the directory outlives every pod that used it, and is removed (with its PV) only
//!   when its PVC object is gone from the API.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::timeline::Timeline;

/// Label on every PV the binder creates: the agent's node name.
pub const PV_LABEL: &str = "seshat.io/e2e-node";

/// Creates PVs for the claims of one StorageClass and deletes them with their claims.
#[derive(Clone)]
pub struct VolumeBinder {
    client: Client,
    class: String,
    node: String,
    root: PathBuf,
    timeline: Timeline,
}

/// Name of the PV backing the PVC with `uid`.
pub fn pv_name(uid: &str) -> String {
    format!("seshat-e2e-{uid}")
}

/// Turns a kube-client error into an anyhow error with context.
fn ctx(what: impl Into<String>) -> impl FnOnce(kube::Error) -> anyhow::Error {
    let what = what.into();
    move |e| anyhow::anyhow!("{what}: {e}")
}

impl VolumeBinder {
    /// A binder for claims of StorageClass `class`, PVs on `node`, directories under `root`.
    pub fn new(client: Client, class: &str, node: &str, root: &Path, timeline: Timeline) -> Self {
        Self { client, class: class.into(), node: node.into(), root: root.into(), timeline }
    }

    /// Creates the StorageClass (no provisioner, immediate binding) unless it exists.
    pub async fn ensure_storage_class(&self) -> anyhow::Result<()> {
        let api: Api<StorageClass> = Api::all(self.client.clone());
        if api.get_opt(&self.class).await.map_err(ctx("reading the StorageClass"))?.is_some() {
            return Ok(());
        }
        let sc: StorageClass = serde_json::from_value(json!({
            "metadata": { "name": self.class, "labels": { PV_LABEL: self.node } },
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "Immediate",
            "reclaimPolicy": "Retain",
        }))?;
        match api.create(&PostParams::default(), &sc).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(()),
            Err(e) => Err(ctx("creating the StorageClass")(e)),
        }
    }

    fn dir_for(&self, pvc: &PersistentVolumeClaim) -> PathBuf {
        let uid = pvc.uid().unwrap_or_default();
        let short = &uid[..uid.len().min(8)];
        self.root.join(pvc.namespace().unwrap_or_default()).join(format!("{}-{short}", pvc.name_any()))
    }

    fn is_ours(&self, pvc: &PersistentVolumeClaim) -> bool {
        pvc.spec.as_ref().and_then(|s| s.storage_class_name.as_deref()) == Some(self.class.as_str())
    }

    /// Creates the PV pre-bound to `pvc` (idempotent).
    async fn bind(&self, pvc: &PersistentVolumeClaim) -> anyhow::Result<()> {
        let spec = pvc.spec.clone().unwrap_or_default();
        if spec.volume_name.is_some() || pvc.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let uid = pvc.uid().unwrap_or_default();
        let dir = self.dir_for(pvc);
        std::fs::create_dir_all(&dir)?;
        let size = spec
            .resources
            .and_then(|r| r.requests)
            .and_then(|r| r.get("storage").cloned())
            .map_or_else(|| "1Gi".to_string(), |q| q.0);
        let pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": { "name": pv_name(&uid), "labels": { PV_LABEL: self.node } },
            "spec": {
                "capacity": { "storage": size },
                "accessModes": spec.access_modes.unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
                "storageClassName": self.class,
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": { "path": dir.display().to_string(), "type": "DirectoryOrCreate" },
                "claimRef": {
                    "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "namespace": pvc.namespace(), "name": pvc.name_any(), "uid": uid,
                },
                "nodeAffinity": { "required": { "nodeSelectorTerms": [ { "matchExpressions": [
                    { "key": "kubernetes.io/hostname", "operator": "In", "values": [self.node] }
                ] } ] } },
            },
        }))?;
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        match api.create(&PostParams::default(), &pv).await {
            Ok(_) => {
                self.timeline.note(format!(
                    "binder: PV for pvc/{} at {}",
                    pvc.name_any(),
                    dir.strip_prefix(&self.root).unwrap_or(&dir).display()
                ));
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(()),
            Err(e) => Err(ctx(format!("creating the PV of pvc/{}", pvc.name_any()))(e)),
        }
    }

    /// Deletes the PV and the directory of a PVC that is gone.
    async fn release(&self, pvc: &PersistentVolumeClaim) -> anyhow::Result<()> {
        let uid = pvc.uid().unwrap_or_default();
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        match api.delete(&pv_name(&uid), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(ctx("deleting a PV")(e)),
        }
        let dir = self.dir_for(pvc);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
            self.timeline.note(format!("binder: pvc/{} deleted, its data removed", pvc.name_any()));
        }
        Ok(())
    }

    /// After a (re)list: PVs of ours whose claim no longer exists are released.
    async fn collect_orphans(&self, live: &BTreeSet<String>) -> anyhow::Result<()> {
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        let pvs = api.list(&ListParams::default().labels(&format!("{PV_LABEL}={}", self.node))).await?;
        for pv in pvs {
            let Some(claim) = pv.spec.as_ref().and_then(|s| s.claim_ref.clone()) else { continue };
            if claim.uid.as_ref().is_some_and(|u| !live.contains(u)) {
                let gone = PersistentVolumeClaim {
                    metadata: kube::api::ObjectMeta {
                        name: claim.name.clone(),
                        namespace: claim.namespace.clone(),
                        uid: claim.uid.clone(),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                self.release(&gone).await?;
            }
        }
        Ok(())
    }

    /// Watches PVCs until `cancel`: binds new claims of the class, releases deleted ones.
    pub async fn run(self, cancel: CancellationToken) {
        let api: Api<PersistentVolumeClaim> = Api::all(self.client.clone());
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        let mut relisted: BTreeSet<String> = BTreeSet::new();
        loop {
            let ev = tokio::select! {
                _ = cancel.cancelled() => return,
                ev = stream.next() => match ev { Some(ev) => ev, None => return },
            };
            let result = match ev {
                Ok(watcher::Event::Apply(pvc)) if self.is_ours(&pvc) => self.bind(&pvc).await,
                Ok(watcher::Event::InitApply(pvc)) if self.is_ours(&pvc) => {
                    relisted.insert(pvc.uid().unwrap_or_default());
                    self.bind(&pvc).await
                }
                Ok(watcher::Event::Delete(pvc)) if self.is_ours(&pvc) => self.release(&pvc).await,
                Ok(watcher::Event::Init) => {
                    relisted.clear();
                    Ok(())
                }
                Ok(watcher::Event::InitDone) => self.collect_orphans(&relisted).await,
                Ok(_) => Ok(()),
                Err(e) => {
                    // The watcher re-lists by itself; pause so errors cannot spin.
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    Err(anyhow::anyhow!("PVC watch: {e}"))
                }
            };
            if let Err(e) = result {
                self.timeline.note(format!("binder: error: {e:#}"));
            }
        }
    }

    /// Deletes every PV this binder created (the directories are left to the caller's
    /// state dir cleanup). Best effort: used when the agent shuts down.
    pub async fn delete_all_pvs(&self) {
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        let selector = ListParams::default().labels(&format!("{PV_LABEL}={}", self.node));
        let _ = api.delete_collection(&DeleteParams::default(), &selector).await;
    }
}

/// The host directory backing PVC `claim` in `namespace`: its bound PV's `hostPath`.
/// `Ok(None)` while the claim is not bound yet.
pub async fn host_dir_of_claim(client: &Client, namespace: &str, claim: &str) -> anyhow::Result<Option<PathBuf>> {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let Some(pvc) = pvcs.get_opt(claim).await? else { return Ok(None) };
    let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let Some(volume) = pvc.spec.and_then(|s| s.volume_name).filter(|_| bound) else { return Ok(None) };
    let pv = Api::<PersistentVolume>::all(client.clone()).get(&volume).await?;
    let path = pv.spec.and_then(|s| s.host_path).map(|h| PathBuf::from(h.path));
    anyhow::ensure!(path.is_some(), "PV {volume} of pvc/{claim} has no hostPath (not one of ours)");
    Ok(path)
}
