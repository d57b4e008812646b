//! `seshat-operator`: runs Seshat clusters on Kubernetes.
//!
//! One `SeshatCluster` becomes a ConfigMap, three Services, a PodDisruptionBudget and
//! a StatefulSet (all server-side applied under one field manager, all owned by the
//! cluster), and its Raft membership is changed one member at a time by
//! `seshat-control`'s planner and driver — the same ones `seshat local` uses.
//!
//! - [`crd`]: the `SeshatCluster` resource and the generated CRD.
//! - [`naming`]: names, labels and advertised addresses of every owned object.
//! - [`resources`]: builders of the owned objects.
//! - [`secret`]: the admin token Secret.
//! - [`apply`]: server-side apply helpers.
//! - [`observe`]: Kubernetes objects → the driver's workload view.
//! - [`workload`]: the driver's `Workload` implemented on a StatefulSet.
//! - [`status`]: the status subresource built from an observation and a plan.
//! - [`reconciler`]: one reconcile (apply, observe, plan, act, report).
//! - [`controller`]: the kube-rs `Controller` wiring (watches).
//! - [`leader_election`]: Lease-based leader election among operator replicas.
//! - [`metrics`], [`http`], [`telemetry`]: `/metrics`, `/healthz`, logging.

#![warn(missing_docs)]

pub mod apply;
pub mod controller;
pub mod crd;
pub mod http;
pub mod leader_election;
pub mod metrics;
pub mod naming;
pub mod observe;
pub mod reconciler;
pub mod resources;
pub mod secret;
pub mod status;
pub mod telemetry;
pub mod workload;
