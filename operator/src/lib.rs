//! `seshat-operator`: runs Seshat clusters on Kubernetes.
//!
//! - [`crd`]: the `SeshatCluster` resource and the generated CRD.

pub mod crd;
pub mod naming;
pub mod resources;
pub mod http;
pub mod leader_election;
pub mod metrics;
pub mod telemetry;
pub mod apply;
pub mod secret;
pub mod observe;
pub mod status;
pub mod workload;
pub mod reconciler;
pub mod controller;
