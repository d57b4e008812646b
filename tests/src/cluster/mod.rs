//! A cluster of real `seshat serve` processes for fault tests, on loopback or
//! on a [`NetLab`] of network namespaces (one host per node, so partitions
//! are real), bootstrapped through the admin API exactly as `seshat local`
//! and the operator do: init the first node alone, add each other node as a
//! learner, then promote all of them in one membership change.
//!
//! Every fault a nemesis needs is a method here: SIGKILL, SIGSTOP/SIGCONT,
//! restart, wipe, partitions, leader transfer, membership changes. Node
//! addresses never change across restarts (a node's address is its identity
//! for clients; its Raft id lives in its data dir).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use seshat_control::api::{NodeAddr, NodeId};
use seshat_control::client::{AdminClient, ClientError};

use crate::netns::{NetLab, NetnsError};
use crate::process::{tail, NodeProcess};
use crate::wait::TimedOut;

mod raft;

/// Where the nodes live on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// 127.0.0.1 with free ports: no partitions possible.
    Loopback,
    /// One network namespace per node on a private bridge: partitions possible.
    Namespaces,
}

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Number of nodes (voters after bootstrap).
    pub nodes: usize,
    /// Network mode.
    pub network: Network,
    /// The server binary (`env!("CARGO_BIN_EXE_seshat-node")` in tests).
    pub binary: PathBuf,
    /// Admin token passed to every node and used by the admin client.
    pub admin_token: Option<String>,
    /// Extra `seshat serve` arguments for every node.
    pub extra_args: Vec<String>,
}

impl ClusterOptions {
    /// `nodes` nodes on loopback with an admin token.
    pub fn new(binary: impl Into<PathBuf>, nodes: usize) -> Self {
        Self {
            nodes,
            network: Network::Loopback,
            binary: binary.into(),
            admin_token: Some("seshat-test-token".into()),
            extra_args: Vec::new(),
        }
    }

    /// The same, in network namespaces.
    pub fn namespaces(mut self) -> Self {
        self.network = Network::Namespaces;
        self
    }
}

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Spawning or signalling a process failed.
    #[error("process: {0}")]
    Process(#[from] std::io::Error),
    /// An admin/status request failed (boxed: it is large and rare).
    #[error("admin API: {0}")]
    Admin(Box<ClientError>),
    /// The network lab failed.
    #[error("network: {0}")]
    Net(#[from] NetnsError),
    /// A condition was not reached in time.
    #[error("{0}")]
    TimedOut(#[from] TimedOut),
    /// An operation kept failing until its deadline.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The operation needs something this cluster lacks (e.g. partitions on loopback).
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl From<ClientError> for ClusterError {
    fn from(e: ClientError) -> Self {
        ClusterError::Admin(Box::new(e))
    }
}

/// One node: its fixed addresses, data dir, and process (if running).
#[derive(Debug)]
pub struct Node {
    /// Index in the cluster (stable; never reused).
    pub index: usize,
    /// Advertised addresses.
    pub addr: NodeAddr,
    /// The node's data directory.
    pub data_dir: PathBuf,
    /// Raft id, learned from `GET /cluster` (changes when the data dir is wiped).
    pub node_id: Option<NodeId>,
    /// Listen addresses: (resp, http, raft).
    listen: (String, String, String),
    log: PathBuf,
    process: Option<NodeProcess>,
    /// Removed from the cluster for good: never restarted by [`TestCluster::heal_all`].
    retired: bool,
}

impl Node {
    /// True when a process is running (possibly paused).
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// True once the node was retired (removed for good).
    pub fn is_retired(&self) -> bool {
        self.retired
    }

    /// True when the process is SIGSTOPped.
    pub fn is_paused(&self) -> bool {
        self.process.as_ref().is_some_and(|p| p.is_paused())
    }

    /// The process id, when running.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid())
    }

    /// The node's log file (all incarnations appended).
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

/// A running test cluster. Dropping it kills every process, then removes the
/// network lab, then the temporary directory (field order is drop order) —
/// except while a test is panicking: then the data dirs and logs are kept for
/// the post-mortem and their location is printed.
pub struct TestCluster {
    nodes: Vec<Node>,
    lab: Option<NetLab>,
    admin: AdminClient,
    opts: ClusterOptions,
    dir: tempfile::TempDir,
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let dir = self.keep_dir();
            eprintln!("test failed: cluster data and node logs kept in {}", dir.display());
        }
    }
}

/// Three distinct free ports on 127.0.0.1. Held listeners guarantee
/// distinctness; a race with another process between drop and the server's
/// bind is possible but needs a port-0 allocation to land on the same port.
fn free_ports() -> std::io::Result<[u16; 3]> {
    let ls = [
        std::net::TcpListener::bind("127.0.0.1:0")?,
        std::net::TcpListener::bind("127.0.0.1:0")?,
        std::net::TcpListener::bind("127.0.0.1:0")?,
    ];
    Ok([ls[0].local_addr()?.port(), ls[1].local_addr()?.port(), ls[2].local_addr()?.port()])
}

impl TestCluster {
    /// Start `opts.nodes` processes and bootstrap them into one cluster with a
    /// leader and every node a voter.
    pub async fn start(opts: ClusterOptions) -> Result<Self, ClusterError> {
        let mut c = Self::launch(opts)?;
        c.bootstrap().await?;
        Ok(c)
    }

    /// Start `opts.nodes` uninitialized processes (no bootstrap).
    pub fn launch(opts: ClusterOptions) -> Result<Self, ClusterError> {
        let mut c = Self::prepare(opts)?;
        c.spawn_all()?;
        Ok(c)
    }

    /// Allocate `opts.nodes` nodes (addresses, data dirs) without starting
    /// them, e.g. to mount a small filesystem on a data dir first.
    pub fn prepare(opts: ClusterOptions) -> Result<Self, ClusterError> {
        let lab = match opts.network {
            Network::Loopback => None,
            Network::Namespaces => Some(NetLab::create(0)?),
        };
        let dir = tempfile::Builder::new().prefix("seshat-cluster-").tempdir()?;
        let admin = AdminClient::new("127.0.0.1:1", opts.admin_token.clone())
            .with_timeouts(Duration::from_secs(2), Duration::from_secs(30));
        let mut c = Self { nodes: Vec::new(), lab, admin, opts, dir };
        for _ in 0..c.opts.nodes {
            c.add_node_slot()?;
        }
        Ok(c)
    }

    /// Start every node that is not running.
    pub fn spawn_all(&mut self) -> Result<(), ClusterError> {
        for i in 0..self.nodes.len() {
            if !self.nodes[i].is_running() && !self.nodes[i].retired {
                self.spawn(i)?;
            }
        }
        Ok(())
    }

    /// Start one more (uninitialized) node; returns its index. It joins the
    /// cluster only through [`Self::add_learner`] and [`Self::set_voters`].
    pub fn add_node(&mut self) -> Result<usize, ClusterError> {
        let i = self.add_node_slot()?;
        self.spawn(i)?;
        Ok(i)
    }

    /// Kill node `i` for good (after it left the membership): heal and
    /// restart paths skip it from now on.
    pub fn retire(&mut self, i: usize) -> Result<(), ClusterError> {
        self.kill(i)?;
        self.nodes[i].retired = true;
        Ok(())
    }

    /// Allocate addresses and a data dir for a new node (not started).
    fn add_node_slot(&mut self) -> Result<usize, ClusterError> {
        let index = self.nodes.len();
        let (listen, host) = match &mut self.lab {
            None => {
                let [r, h, t] = free_ports()?;
                let l = |p| format!("127.0.0.1:{p}");
                ((l(r), l(h), l(t)), "127.0.0.1".to_owned())
            }
            Some(lab) => {
                let h = lab.add_host()?;
                let ip = lab.host(h).ip;
                let l = |p| format!("{ip}:{p}");
                ((l(6379), l(8080), l(7379)), ip.to_string())
            }
        };
        let port = |a: &str| a.rsplit(':').next().unwrap_or_default().to_owned();
        let addr = NodeAddr {
            resp_addr: format!("{host}:{}", port(&listen.0)),
            http_addr: format!("{host}:{}", port(&listen.1)),
            raft_addr: format!("{host}:{}", port(&listen.2)),
        };
        let data_dir = self.dir.path().join(format!("node-{index}"));
        std::fs::create_dir_all(&data_dir)?;
        let log = self.dir.path().join(format!("node-{index}.log"));
        self.nodes.push(Node { index, addr, data_dir, node_id: None, listen, log, process: None, retired: false });
        Ok(index)
    }

    /// Start node `i`'s process (it must not be running).
    pub fn spawn(&mut self, i: usize) -> Result<(), ClusterError> {
        let node = &self.nodes[i];
        assert!(node.process.is_none(), "node {i} already running");
        let mut cmd = match &self.lab {
            None => Command::new(&self.opts.binary),
            Some(lab) => lab.command(i, &self.opts.binary),
        };
        let host = node.addr.resp_addr.rsplit_once(':').map(|(h, _)| h).unwrap_or_default();
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--resp-addr", &node.listen.0])
            .args(["--http-addr", &node.listen.1])
            .args(["--raft-addr", &node.listen.2])
            .args(["--advertise-host", host])
            .args(&self.opts.extra_args)
            .env("RUST_LOG", std::env::var("SESHAT_NODE_LOG").unwrap_or_else(|_| "info".into()));
        if let Some(t) = &self.opts.admin_token {
            cmd.args(["--admin-token", t]);
        }
        let p = NodeProcess::spawn(cmd, &node.log)?;
        tracing::debug!(node = i, pid = p.pid(), "spawned");
        self.nodes[i].process = Some(p);
        Ok(())
    }

    /// All nodes, by index.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// Number of node slots (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the cluster has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// RESP addresses of every node.
    pub fn resp_addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.resp_addr.clone()).collect()
    }

    /// The network lab, when in namespace mode.
    pub fn lab(&self) -> Option<&NetLab> {
        self.lab.as_ref()
    }

    /// An admin client for node `i`.
    pub fn admin(&self, i: usize) -> AdminClient {
        self.admin.for_addr(self.nodes[i].addr.http_addr.clone())
    }

    /// The temporary directory holding data dirs and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// SIGKILL node `i` (no-op when not running).
    pub fn kill(&mut self, i: usize) -> Result<(), ClusterError> {
        if let Some(p) = self.nodes[i].process.take() {
            p.kill9()?;
        }
        Ok(())
    }

    /// SIGSTOP node `i`.
    pub fn pause(&mut self, i: usize) -> Result<(), ClusterError> {
        match self.nodes[i].process.as_mut() {
            Some(p) => Ok(p.pause()?),
            None => Err(ClusterError::Unsupported(format!("node {i} not running"))),
        }
    }

    /// SIGCONT node `i`.
    pub fn resume(&mut self, i: usize) -> Result<(), ClusterError> {
        match self.nodes[i].process.as_mut() {
            Some(p) => Ok(p.resume()?),
            None => Err(ClusterError::Unsupported(format!("node {i} not running"))),
        }
    }

    /// Wait until node `i` answers HTTP (`Ok(None)`) or its process exits
    /// (`Ok(Some(status))`), e.g. because it refused to start on a damaged log.
    pub async fn wait_up_or_exit(
        &mut self,
        i: usize,
        timeout: Duration,
    ) -> Result<Option<std::process::ExitStatus>, ClusterError> {
        let admin = self.admin(i);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.nodes[i].process.as_mut().and_then(|p| p.try_exit()) {
                self.nodes[i].process = None;
                return Ok(Some(status));
            }
            if let Ok(st) = admin.cluster().await {
                self.nodes[i].node_id = Some(st.node_id);
                return Ok(None);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ClusterError::Timeout(format!("node {i} neither up nor exited")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Start node `i` again on its data dir and wait until it answers HTTP.
    pub async fn restart(&mut self, i: usize) -> Result<(), ClusterError> {
        self.kill(i)?;
        self.spawn(i)?;
        self.wait_up(i, Duration::from_secs(30)).await?;
        Ok(())
    }

    /// Kill node `i` and delete its data dir (it comes back with a new Raft id).
    pub fn wipe(&mut self, i: usize) -> Result<(), ClusterError> {
        self.kill(i)?;
        let d = &self.nodes[i].data_dir;
        std::fs::remove_dir_all(d)?;
        std::fs::create_dir_all(d)?;
        self.nodes[i].node_id = None;
        Ok(())
    }

    /// Partition the nodes into `groups` (indices). Namespace mode only.
    pub fn partition(&self, groups: &[Vec<usize>]) -> Result<(), ClusterError> {
        match &self.lab {
            Some(lab) => Ok(lab.partition(groups)?),
            None => Err(ClusterError::Unsupported("partitions need Network::Namespaces".into())),
        }
    }

    /// Remove every partition.
    pub fn heal(&self) -> Result<(), ClusterError> {
        match &self.lab {
            Some(lab) => Ok(lab.heal()?),
            None => Ok(()),
        }
    }

    /// SIGCONT paused nodes, restart stopped ones, heal the network.
    pub async fn heal_all(&mut self) -> Result<(), ClusterError> {
        self.heal()?;
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_paused() {
                self.resume(i)?;
            }
        }
        for i in 0..self.nodes.len() {
            if !self.nodes[i].is_running() && !self.nodes[i].retired {
                self.restart(i).await?;
            }
        }
        Ok(())
    }

    /// The last `lines` lines of every node's log, for failure reports.
    pub fn log_tails(&self, lines: usize) -> String {
        self.nodes
            .iter()
            .map(|n| format!("==== node {} ({}) ====\n{}\n", n.index, n.addr.resp_addr, tail(&n.log, lines)))
            .collect()
    }

    /// Keep the data and logs after drop (for post-mortems); returns the path.
    pub fn keep_dir(&mut self) -> PathBuf {
        self.dir.disable_cleanup(true);
        self.dir.path().to_owned()
    }
}
