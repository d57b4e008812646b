//! The workload side of a cluster: whatever runs the server processes (a StatefulSet
//! for the operator, child processes for `seshat local`).

use std::future::Future;
use std::sync::Arc;

use crate::api::NodeAddr;

/// Error of a workload operation (opaque to the driver, which only reports it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WorkloadError(pub Box<dyn std::error::Error + Send + Sync>);

impl WorkloadError {
    /// Wraps any error (or message).
    pub fn new(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(e.into())
    }
}

/// One ordinal as the workload sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadSlot {
    /// The ordinal.
    pub ordinal: u32,
    /// Addresses the node on this ordinal advertises (and where the driver reaches its
    /// HTTP API): fixed by the workload's naming scheme, known even without a pod.
    pub addr: NodeAddr,
    /// A pod / process exists (it may be crashed or starting).
    pub exists: bool,
    /// It is being deleted (restart in progress).
    pub terminating: bool,
    /// A volume (PVC / data dir) exists.
    pub volume: bool,
    /// The version it runs (image, binary identity), when there is a pod.
    pub version: Option<String>,
    /// The workload's own readiness verdict (Kubernetes: the Pod's Ready condition), for
    /// workloads that have one. A slot is ready only when this and the node's `/readyz`
    /// agree; `None` leaves `/readyz` alone in charge (local processes).
    pub workload_ready: Option<bool>,
}

/// What the workload looks like now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkloadState {
    /// Current size (StatefulSet replicas, wanted process count).
    pub replicas: u32,
    /// Every ordinal that may matter: at least `0..max(replicas, desired)` and any
    /// ordinal with a volume. Listing all `0..MAX_REPLICAS` is fine.
    pub slots: Vec<WorkloadSlot>,
    /// The controller has seen this cluster initialized (see
    /// [`crate::planner::Observed::initialized_before`]).
    pub initialized_before: bool,
}

/// Runs and changes the server processes of one cluster.
///
/// The methods return `impl Future + Send` (native async-in-trait) rather than using
/// `async-trait`: no boxing, no extra dependency, and the `Send` bound is spelled out
/// so that a driver can run inside `tokio::spawn`. The price is that the trait is not
/// object-safe, which is fine: the driver is generic over its one workload.
pub trait Workload: Send + Sync {
    /// Observes the workload (size, pods, volumes, versions).
    fn observe(&self) -> impl Future<Output = Result<WorkloadState, WorkloadError>> + Send;

    /// Sets the number of pods / processes (ordinals `0..replicas`).
    fn scale(&self, replicas: u32) -> impl Future<Output = Result<(), WorkloadError>> + Send;

    /// Restarts one ordinal on the workload's current template (new version). Returns
    /// once the restart is under way; the driver observes readiness itself.
    fn restart(&self, ordinal: u32) -> impl Future<Output = Result<(), WorkloadError>> + Send;

    /// Deletes the volume of an ordinal that has no pod.
    fn delete_volume(&self, ordinal: u32) -> impl Future<Output = Result<(), WorkloadError>> + Send;
}

impl<W: Workload> Workload for Arc<W> {
    fn observe(&self) -> impl Future<Output = Result<WorkloadState, WorkloadError>> + Send {
        (**self).observe()
    }

    fn scale(&self, replicas: u32) -> impl Future<Output = Result<(), WorkloadError>> + Send {
        (**self).scale(replicas)
    }

    fn restart(&self, ordinal: u32) -> impl Future<Output = Result<(), WorkloadError>> + Send {
        (**self).restart(ordinal)
    }

    fn delete_volume(&self, ordinal: u32) -> impl Future<Output = Result<(), WorkloadError>> + Send {
        (**self).delete_volume(ordinal)
    }
}
