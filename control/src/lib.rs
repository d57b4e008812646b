//! Seshat control plane pieces shared by `seshat local` and `seshat-operator`.
//!
//! This crate knows how to *change* a Seshat cluster safely, and nothing about
//! how a server stores or replicates data: it pulls in neither openraft nor kube.
//!
//! - [`api`]: the JSON types of the server's HTTP admin/status API (the wire contract).

pub mod api;
