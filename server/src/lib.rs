//! Seshat server: RESP front end, KvService, RaftNode (openraft), storage and HTTP.

pub mod commands;
pub mod resp;
pub mod store;
