//! Seshat server: a Redis-compatible key-value store replicated by Raft.
//!
//! Layers, each its own module with one job:
//!
//! 1. [`resp`] — RESP2/RESP3 codec: pipelining, inline commands, limits.
//! 2. [`commands`] — command table, parsing into typed operations, replies.
//! 3. [`kv`] — KvService: leadership contract, validation, read consistency.
//! 4. [`raft`] — RaftNode over openraft: log store, state machine, snapshots, transport.
//! 5. [`http`] — health, leader, cluster, metrics, admin API.
//! 6. [`local`] — `seshat local`, the embedded multi-process runner.
//!
//! [`conn`] runs client connections over these, [`server`] assembles one
//! process, and [`store`] is the in-memory data the state machine owns.

#![warn(missing_docs)]

pub mod cli;
pub mod commands;
pub mod conn;
pub mod http;
pub mod kv;
pub mod local;
mod malloc;
pub mod metrics;
pub mod raft;
pub mod resp;
pub mod server;
pub mod store;
