//! The operator end-to-end harness: a node agent that runs pods as local processes on a
//! real Kubernetes control plane, and the pieces the scenarios of `operator_e2e.rs` use.
//!
//! - [`agent`]: registers a Node, keeps its Lease, runs the pods bound to it;
//! - [`pod_runner`], [`launch`], [`container`], [`podstatus`], [`podspec`]: one pod as a
//!   kubelet would run it, from spec to process to status;
//! - [`volumes`]: a PV per PVC (no provisioner here), a directory that outlives pods;
//! - [`netif`], [`hosts`]: pod IPs on `lo` and pod DNS names in `/etc/hosts`;
//! - [`timeline`]: what happened when, printed per scenario.

pub mod agent;
pub mod cluster;
pub mod container;
pub mod hosts;
pub mod launch;
pub mod membership;
pub mod netif;
pub mod observe;
pub mod operator;
pub mod pod_runner;
pub mod podspec;
pub mod podstatus;
pub mod scenario_agent;
pub mod suite;
pub mod timeline;
pub mod volumes;
pub mod writer;
