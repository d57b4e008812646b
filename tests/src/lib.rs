//! Cross-component test harness for Seshat: real server processes, real
//! clients, real faults, and a linearizability checker to judge the result.
//!
//! - [`history`]: the recorded operations of a run (invocation, completion, outcome).
//! - [`linearizability`]: the generic Wing–Gong/Lowe search with memoisation.
//! - [`register`]: the sequential model of one Redis string key.
//! - [`checker`]: per-key checking of a whole [`history::History`] with explanations.
//! - [`netns`]: private networks of namespaced test hosts, for real partitions.
//! - [`process`]: one server process (SIGKILL, SIGSTOP/SIGCONT, RSS, logs).
//! - [`cluster`]: a bootstrapped cluster of server processes and its faults.
//! - [`wait`]: polling a condition with a deadline.
//! - [`kv`]: a small RESP client with timeouts for scenario tests.
//! - [`workload`]: concurrent register clients recording a history.
//! - [`verify`]: final reads and the lost-acknowledged-write check.
//! - [`nemesis`]: fault injection (kills, pauses, partitions, leader transfer, membership).
//! - [`chaos`]: one complete run: cluster, workload, nemesis, verdict.

#![warn(missing_docs)]

pub mod chaos;
pub mod checker;
pub mod cluster;
pub mod history;
pub mod kv;
pub mod linearizability;
pub mod nemesis;
pub mod netns;
pub mod process;
pub mod register;
pub mod verify;
pub mod wait;
pub mod workload;
