//! Shared helpers for the multi-process cluster tests: start a real cluster of
//! `seshat-node` processes on free loopback ports, bootstrap it with the same
//! planner/driver as `seshat local`, and talk to it with the `redis` crate and
//! the admin client.

#![allow(dead_code)]

pub mod redis_diff;

use std::future::Future;
use std::time::Duration;

use seshat_control::api::{ClusterStatus, Role};
use seshat_control::client::AdminClient;
use seshat_control::driver::Driver;
use seshat_control::local::{binary_identity, free_port_bases, LocalCluster, LocalConfig};
use seshat_control::planner::Desired;
use tokio::time::Instant;

/// The server binary shared by every test of this crate.
pub const BIN: &str = env!("CARGO_BIN_EXE_seshat-node");

/// A running test cluster; every process is killed when it is dropped.
pub struct Harness {
    pub driver: Driver<LocalCluster>,
    pub dir: tempfile::TempDir,
    pub version: String,
    pub token: Option<String>,
}

/// Polls `check` until it returns `Some`, or panics with `what` at the deadline.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Harness {
    /// Starts `n` nodes and bootstraps them into one cluster.
    pub async fn start(n: u32, extra_args: &[&str]) -> Harness {
        Self::start_with(n, extra_args, None).await
    }

    /// Like [`Harness::start`], with an admin token.
    pub async fn start_with(n: u32, extra_args: &[&str], token: Option<&str>) -> Harness {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        let dir = tempfile::tempdir().expect("tempdir");
        let (resp, http, raft) = free_port_bases("127.0.0.1", 9).expect("free ports");
        let mut cfg = LocalConfig::new(BIN, n);
        cfg.data_dir = dir.path().to_path_buf();
        cfg.resp_port = resp;
        cfg.http_port = http;
        cfg.raft_port = raft;
        cfg.admin_token = token.map(str::to_string);
        cfg.stop_grace = Duration::from_secs(5);
        cfg.extra_args = extra_args.iter().map(|s| s.to_string()).collect();
        let cluster = LocalCluster::new(cfg).expect("local cluster");
        let client = AdminClient::new(cluster.addr(0).http_addr, token.map(str::to_string));
        let driver = Driver::new(cluster, client);
        let version = binary_identity(std::path::Path::new(BIN)).expect("binary identity");
        let h = Harness { driver, dir, version, token: token.map(str::to_string) };
        h.reconcile(n).await;
        h
    }

    /// Drives the cluster to `n` voters.
    pub async fn reconcile(&self, n: u32) {
        let desired = Desired::new(n, self.version.clone());
        self.driver
            .reconcile_until_done(&desired, Instant::now() + Duration::from_secs(90))
            .await
            .unwrap_or_else(|e| panic!("cluster did not converge to {n} voters: {e}"));
    }

    /// The cluster's processes.
    pub fn cluster(&self) -> &LocalCluster {
        self.driver.workload()
    }

    /// Admin client for node `i`.
    pub fn admin(&self, i: u32) -> AdminClient {
        AdminClient::new(self.cluster().addr(i).http_addr, self.token.clone())
    }

    /// `host:port` of node `i`'s RESP listener.
    pub fn resp_addr(&self, i: u32) -> String {
        self.cluster().addr(i).resp_addr
    }

    /// A client connection to node `i`.
    pub async fn redis(&self, i: u32) -> redis::aio::MultiplexedConnection {
        let url = format!("redis://{}/", self.resp_addr(i));
        let client = redis::Client::open(url).expect("redis url");
        client.get_multiplexed_async_connection().await.expect("connect to node")
    }

    /// Node `i`'s view of the cluster, if it answers.
    pub async fn status(&self, i: u32) -> Option<ClusterStatus> {
        self.admin(i).cluster().await.ok()
    }

    /// Waits until some node in `among` is leader and every one of them agrees; returns its index.
    pub async fn leader_among(&self, among: &[u32]) -> u32 {
        eventually(Duration::from_secs(30), "a leader all live nodes agree on", || async {
            let mut leader = None;
            for &i in among {
                let s = self.status(i).await?;
                let l = s.leader_id?;
                if leader.is_some_and(|x| x != l) {
                    return None;
                }
                leader = Some(l);
            }
            let leader = leader?;
            for &i in among {
                if self.status(i).await.is_some_and(|s| s.node_id == leader && s.role == Role::Leader) {
                    return Some(i);
                }
            }
            None
        })
        .await
    }

    /// Waits until node `i` has applied at least `index`.
    pub async fn wait_applied(&self, i: u32, index: u64) {
        eventually(Duration::from_secs(60), &format!("node {i} applies index {index}"), || async {
            let s = self.status(i).await?;
            (s.last_applied? >= index).then_some(())
        })
        .await
    }
}
