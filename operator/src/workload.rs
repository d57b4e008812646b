//! [`KubeWorkload`]: the Kubernetes implementation of the driver's [`Workload`]
//! (observe the StatefulSet, its pods and PVCs; size the StatefulSet; restart a pod;
//! delete a PVC).

use std::sync::Mutex;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::{Client, ResourceExt};
use seshat_control::driver::{Workload, WorkloadError, WorkloadState};

use crate::apply::{apply, delete_ignore_missing};
use crate::observe::{self, Snapshot};
use crate::resources::statefulset::{self, TokenSource};
use crate::resources::Owner;

/// Workload operations on one cluster's StatefulSet, pods and PVCs, for one reconcile.
pub struct KubeWorkload<'a> {
    client: Client,
    owner: &'a Owner<'a>,
    token: &'a TokenSource,
    /// The StatefulSet as last applied (carries its status: size and revisions).
    sts: StatefulSet,
    initialized_before: bool,
    /// Pods of the last observation: restarts delete exactly these (uid precondition)
    /// and the reconciler moves the leader label among them.
    pods: Mutex<Vec<Pod>>,
}

impl<'a> KubeWorkload<'a> {
    /// Operations on `owner`'s objects. `sts` is the StatefulSet just applied;
    /// `initialized_before` whether the cluster carries the initialized annotation.
    pub fn new(
        client: Client,
        owner: &'a Owner<'a>,
        token: &'a TokenSource,
        sts: StatefulSet,
        initialized_before: bool,
    ) -> Self {
        Self { client, owner, token, sts, initialized_before, pods: Mutex::new(Vec::new()) }
    }

    /// Applies the StatefulSet with `replicas` pods. The whole object is applied, not
    /// just the count: with server-side apply, a partial apply under the same field
    /// manager would drop every field it leaves out.
    pub async fn apply_statefulset(
        client: &Client,
        owner: &Owner<'_>,
        token: &TokenSource,
        replicas: u32,
    ) -> Result<StatefulSet, kube::Error> {
        let replicas = i32::try_from(replicas).unwrap_or(i32::MAX);
        let api: Api<StatefulSet> = Api::namespaced(client.clone(), &owner.names.namespace);
        apply(&api, &statefulset::build(owner, replicas, token)).await
    }

    /// The pods seen by the last [`Workload::observe`].
    pub fn observed_pods(&self) -> Vec<Pod> {
        self.lock_pods().clone()
    }

    fn lock_pods(&self) -> std::sync::MutexGuard<'_, Vec<Pod>> {
        // Only ever replaced wholesale: a panic elsewhere cannot leave it half-written.
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ns(&self) -> &str {
        &self.owner.names.namespace
    }

    async fn observe_k8s(&self) -> Result<WorkloadState, kube::Error> {
        let names = &self.owner.names;
        let selector = ListParams::default().labels(&names.selector_string());
        let pods = Api::<Pod>::namespaced(self.client.clone(), self.ns()).list(&selector).await?.items;
        let pvcs =
            Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), self.ns()).list(&selector).await?.items;
        let revision = observe::desired_revision(Some(&self.sts));
        let replicas = self.sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let state = observe::build(&Snapshot {
            names,
            workload_replicas: u32::try_from(replicas).unwrap_or(0),
            target: u32::try_from(self.owner.cluster.spec.replicas).unwrap_or(0),
            revision: revision.as_deref(),
            pods: &pods,
            pvcs: &pvcs,
            initialized_before: self.initialized_before,
        });
        *self.lock_pods() = pods;
        Ok(state)
    }

    async fn delete_pod(&self, ordinal: u32) -> Result<(), kube::Error> {
        let name = self.owner.names.pod(ordinal);
        let uid = self.lock_pods().iter().find(|p| p.name_any() == name).and_then(|p| p.uid());
        let params = DeleteParams {
            preconditions: uid.map(|uid| Preconditions { uid: Some(uid), resource_version: None }),
            ..DeleteParams::default()
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), self.ns());
        match api.delete(&name, &params).await {
            Ok(_) => Ok(()),
            // Gone already, or already replaced (uid precondition failed): either way
            // the restart the planner asked for has happened.
            Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Workload for KubeWorkload<'_> {
    async fn observe(&self) -> Result<WorkloadState, WorkloadError> {
        self.observe_k8s().await.map_err(WorkloadError::new)
    }

    async fn scale(&self, replicas: u32) -> Result<(), WorkloadError> {
        Self::apply_statefulset(&self.client, self.owner, self.token, replicas).await.map_err(WorkloadError::new)?;
        Ok(())
    }

    /// Deletes the pod; the StatefulSet controller recreates it from the current
    /// template (this is how `OnDelete` updates are rolled). The uid precondition
    /// makes sure only the observed pod is deleted, never its replacement.
    async fn restart(&self, ordinal: u32) -> Result<(), WorkloadError> {
        self.delete_pod(ordinal).await.map_err(WorkloadError::new)
    }

    async fn delete_volume(&self, ordinal: u32) -> Result<(), WorkloadError> {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), self.ns());
        delete_ignore_missing(&api, &self.owner.names.pvc(ordinal)).await.map_err(WorkloadError::new)?;
        Ok(())
    }
}
