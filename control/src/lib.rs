//! Seshat control plane pieces shared by `seshat local` and `seshat-operator`.
//!
//! This crate knows how to *change* a Seshat cluster safely, and nothing about
//! how a server stores or replicates data: it pulls in neither openraft nor kube.
//!
//! - [`api`]: the JSON types of the server's HTTP admin/status API (the wire contract).
//! - [`client`]: a typed async client for one node's HTTP API.
//! - [`planner`]: the pure membership planner (desired + observed → one next action).
//! - [`driver`]: observes nodes and a [`driver::Workload`], executes planned actions.
//! - [`local`]: the local-process backend and `seshat local`'s [`local::run_local`].

#![warn(missing_docs)]

pub mod api;
pub mod client;
pub mod driver;
pub mod local;
pub mod planner;
