//! Builders of the objects the operator owns, one module per kind.
//!
//! Every builder is a pure function of the `SeshatCluster` (and a few observed
//! values passed in explicitly), returning the complete object the operator
//! server-side-applies. Fields newer than Kubernetes 1.20 are never set: 1.20's
//! beta server-side apply rejects fields it does not know.

pub mod configmap;
pub mod pdb;
pub mod services;
pub mod statefulset;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::crd::SeshatCluster;
use crate::naming::Names;

/// A cluster with what every builder needs: its names and its controller reference.
#[derive(Debug, Clone)]
pub struct Owner<'a> {
    /// The cluster.
    pub cluster: &'a SeshatCluster,
    /// Its object names.
    pub names: Names,
    /// Controller owner reference pointing at `cluster` (garbage collection).
    pub owner_ref: OwnerReference,
}

impl<'a> Owner<'a> {
    /// Builds names and owner reference for `cluster` under DNS `domain`.
    ///
    /// Returns `None` when the object lacks a name, namespace or uid (never for objects
    /// read from the API server).
    pub fn new(cluster: &'a SeshatCluster, domain: &str) -> Option<Self> {
        let owner_ref = cluster.controller_owner_ref(&())?;
        let names = Names::new(&cluster.name_any(), &cluster.namespace()?, domain);
        Some(Self { cluster, names, owner_ref })
    }

    /// Metadata of an owned object called `name`.
    pub fn meta(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.names.namespace.clone()),
            labels: Some(self.names.labels()),
            owner_references: Some(vec![self.owner_ref.clone()]),
            ..ObjectMeta::default()
        }
    }
}
