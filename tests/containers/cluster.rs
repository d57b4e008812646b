//! A Seshat cluster of containers on private Docker networks.
//!
//! Every node sits on two internal networks:
//! - the *peer* network carries Raft traffic: nodes advertise their peer IP
//!   (`--advertise-host`), so the membership config, replication and
//!   follower-to-leader forwarding all use it;
//! - the *client* network carries the tests' RESP and HTTP traffic.
//!
//! A partition is `docker network disconnect` from the peer network only:
//! the node is cut off from its peers, yet its clients still reach it. That
//! is what makes "a deposed leader's clients get errors, not stale answers"
//! a real check — with one network, they would merely time out.
//!
//! Nodes run as uid 65534 with a read-only root filesystem, no capabilities,
//! and the data dir on a named volume that outlives the container process, so
//! a SIGKILLed node restarts on its own data with its own identity.

use std::cell::RefCell;
use std::time::Duration;

use anyhow::{bail, Context as _};
use seshat_control::api::{AddLearnerRequest, ClusterStatus, InitRequest, NodeId, Role, SetMembershipRequest};
use seshat_control::client::AdminClient;
use seshat_tests::wait::poll;

use super::engine::Docker;
use super::image::Image;
use super::network::{self, Network};

/// Data dir mount point inside the image (owned by uid 65534 there).
const DATA_MOUNT: &str = "/var/lib/seshat";

/// One node: container, volume and addresses (fixed for the cluster's life).
#[derive(Debug, Clone)]
pub struct Node {
    /// Container name.
    pub name: String,
    /// Named volume holding the data dir.
    pub volume: String,
    /// Advertised address (peer network).
    pub peer_ip: std::net::Ipv4Addr,
    /// Address the tests use (client network).
    pub client_ip: std::net::Ipv4Addr,
    /// Raft id, from the node's `GET /cluster`.
    pub node_id: Option<NodeId>,
    /// False after [`DockerCluster::kill`] until [`DockerCluster::start_node`].
    pub running: bool,
}

impl Node {
    /// RESP address on the client network.
    pub fn resp_addr(&self) -> String {
        format!("{}:6379", self.client_ip)
    }

    /// HTTP address on the client network.
    pub fn http_addr(&self) -> String {
        format!("{}:8080", self.client_ip)
    }
}

/// What `docker inspect` says about a container.
#[derive(Debug, Clone)]
pub struct ContainerState {
    /// Host pid of the container's init process (0 when stopped).
    pub pid: u32,
    /// Whether it runs.
    pub running: bool,
    /// Exit code of the last run (137 after SIGKILL).
    pub exit_code: i64,
    /// `--user`.
    pub user: String,
    /// `--read-only`.
    pub read_only: bool,
}

/// Everything created, by name; removed on drop whatever happened, so an
/// error or panic half-way through setup or a scenario leaks nothing.
struct Resources {
    docker: Docker,
    containers: Vec<String>,
    volumes: Vec<String>,
    networks: Vec<String>,
}

impl Drop for Resources {
    fn drop(&mut self) {
        let mut steps: Vec<Vec<&str>> = Vec::new();
        if !self.containers.is_empty() {
            // -v: anonymous volumes too; named ones go below.
            let mut rm = vec!["rm", "-f", "-v"];
            rm.extend(self.containers.iter().map(String::as_str));
            steps.push(rm);
        }
        steps.extend(self.volumes.iter().map(|v| vec!["volume", "rm", "-f", v.as_str()]));
        steps.extend(self.networks.iter().map(|n| vec!["network", "rm", n.as_str()]));
        for args in steps {
            if let Err(e) = self.docker.run_blocking(&args) {
                if !e.contains("No such") && !e.contains("not found") {
                    eprintln!("warning: cleanup `docker {}` failed: {e}", args.join(" "));
                }
            }
        }
    }
}

/// A running container cluster; dropping it removes its containers, volumes
/// and networks.
pub struct DockerCluster {
    docker: Docker,
    nodes: Vec<Node>,
    peer: Network,
    admin: AdminClient,
    _resources: Resources,
}

impl DockerCluster {
    /// Create networks, volumes and `n` containers of `image`, and start them
    /// (uninitialized: see [`DockerCluster::bootstrap`]).
    pub async fn start(docker: &Docker, image: &Image, n: usize, token: &str) -> anyhow::Result<Self> {
        let run = format!("seshat-ct-{}-{:x}", std::process::id(), rand::random::<u32>());
        let mut res =
            Resources { docker: docker.clone(), containers: Vec::new(), volumes: Vec::new(), networks: Vec::new() };
        let peer = network::create(docker, &format!("{run}-peer"), &mut res.networks).await?;
        let client = network::create(docker, &format!("{run}-client"), &mut res.networks).await?;
        let labels = Docker::labels();
        let mut nodes = Vec::new();
        for i in 0..n {
            let node = Node {
                name: format!("{run}-n{i}"),
                volume: format!("{run}-v{i}"),
                peer_ip: peer.ip(10 + i as u8),
                client_ip: client.ip(10 + i as u8),
                node_id: None,
                running: false,
            };
            res.volumes.push(node.volume.clone());
            let mut args = vec!["volume", "create"];
            args.extend(labels.iter().map(String::as_str));
            args.push(&node.volume);
            docker.run(&args).await?;
            res.containers.push(node.name.clone());
            let (peer_ip, mount) = (node.peer_ip.to_string(), format!("{}:{DATA_MOUNT}", node.volume));
            let data_dir = format!("{DATA_MOUNT}/data");
            let mut args = vec!["create", "--name", &node.name, "--hostname", &node.name];
            args.extend(["--network", &peer.name, "--ip", &peer_ip]);
            args.extend(["--user", "65534:65534", "--read-only", "--cap-drop", "ALL"]);
            args.extend(["--security-opt", "no-new-privileges", "--volume", &mount]);
            args.extend(["--env", "RUST_LOG=info", "--env", "NO_COLOR=1"]);
            args.extend(labels.iter().map(String::as_str));
            args.extend([image.tag.as_str(), "serve", "--data-dir", &data_dir]);
            args.extend(["--advertise-host", &peer_ip, "--admin-token", token, "--log-format", "text"]);
            docker.run(&args).await?;
            let client_ip = node.client_ip.to_string();
            docker.run(&["network", "connect", "--ip", &client_ip, &client.name, &node.name]).await?;
            docker.run(&["start", &node.name]).await?;
            nodes.push(Node { running: true, ..node });
        }
        let admin = AdminClient::new("unset:0", Some(token.to_owned()))
            .with_timeouts(Duration::from_secs(1), Duration::from_secs(30));
        Ok(Self { docker: docker.clone(), nodes, peer, admin, _resources: res })
    }

    /// All nodes, by index.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// RESP addresses (client network) of every node.
    pub fn resp_addrs(&self) -> Vec<String> {
        self.nodes.iter().map(Node::resp_addr).collect()
    }

    /// An admin client for node `i` (client network).
    pub fn admin(&self, i: usize) -> AdminClient {
        self.admin.for_addr(self.nodes[i].http_addr())
    }

    /// Wait until node `i` answers `GET /cluster`; records and returns its Raft id.
    pub async fn wait_up(&mut self, i: usize, timeout: Duration) -> anyhow::Result<NodeId> {
        let admin = self.admin(i);
        let what = format!(
            "{} to answer on {} (the host must reach container IPs: local daemon?)",
            self.nodes[i].name,
            admin.addr()
        );
        let st = poll(timeout, &what, || async { admin.cluster().await.ok() }).await?;
        self.nodes[i].node_id = Some(st.node_id);
        Ok(st.node_id)
    }

    /// Init node 0 alone, add the others as learners (blocking until caught
    /// up), then make all of them voters — as `seshat local` and the operator do.
    pub async fn bootstrap(&mut self) -> anyhow::Result<()> {
        for i in 0..self.nodes.len() {
            self.wait_up(i, Duration::from_secs(30)).await?;
        }
        self.admin(0).init(&InitRequest::default()).await.context("POST /admin/init")?;
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        self.wait_for_leader(&all, 0, Duration::from_secs(30)).await?;
        for i in 1..self.nodes.len() {
            let st = self.admin(i).cluster().await?;
            let req = AddLearnerRequest { node_id: st.node_id, addr: st.addr, blocking: true };
            self.on_leader("add learner", |a| {
                let req = req.clone();
                async move { a.add_learner(&req).await.map(|_| ()) }
            })
            .await?;
        }
        let voters = self.nodes.iter().map(|n| n.node_id.expect("known after wait_up")).collect();
        let req = SetMembershipRequest { voters, retain: false, remove_learners: Vec::new() };
        self.on_leader("set membership", |a| {
            let req = req.clone();
            async move { a.set_membership(&req).await.map(|_| ()) }
        })
        .await?;
        self.wait_converged(Duration::from_secs(30)).await
    }

    /// Run an admin call on whichever node leads, retrying until a deadline
    /// (leadership can move between finding the leader and calling it).
    async fn on_leader<F, Fut>(&self, what: &str, f: F) -> anyhow::Result<()>
    where
        F: Fn(AdminClient) -> Fut,
        Fut: std::future::Future<Output = Result<(), seshat_control::client::ClientError>>,
    {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        let last = RefCell::new(String::from("no leader"));
        let done = poll(Duration::from_secs(60), what, || async {
            let (l, _) = self.leader(&all).await?;
            f(self.admin(l)).await.map_err(|e| *last.borrow_mut() = e.to_string()).ok()
        })
        .await;
        done.with_context(|| format!("{what}: last error: {}", last.borrow()))
    }

    /// `GET /cluster` of the running nodes among `among` that answer.
    pub async fn statuses(&self, among: &[usize]) -> Vec<(usize, ClusterStatus)> {
        let futs = among.iter().filter(|&&i| self.nodes[i].running).map(|&i| {
            let a = self.admin(i);
            async move { (i, a.cluster().await) }
        });
        futures::future::join_all(futs).await.into_iter().filter_map(|(i, r)| r.ok().map(|s| (i, s))).collect()
    }

    /// The node among `among` claiming leadership with the highest term.
    pub async fn leader(&self, among: &[usize]) -> Option<(usize, ClusterStatus)> {
        self.statuses(among).await.into_iter().filter(|(_, s)| s.role == Role::Leader).max_by_key(|(_, s)| s.term)
    }

    /// Wait until a node among `among` leads in a term above `above_term`.
    pub async fn wait_for_leader(
        &self,
        among: &[usize],
        above_term: u64,
        timeout: Duration,
    ) -> anyhow::Result<(usize, ClusterStatus)> {
        let what = format!("a leader among nodes {among:?} in a term above {above_term}");
        Ok(poll(timeout, &what, || async { self.leader(among).await.filter(|(_, s)| s.term > above_term) }).await?)
    }

    /// Wait until every node runs, agrees on one leader and one voter set,
    /// and has applied everything the leader had committed.
    pub async fn wait_converged(&self, timeout: Duration) -> anyhow::Result<()> {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        let view = RefCell::new(Vec::new());
        let done = poll(timeout, "cluster convergence", || async {
            let st = self.statuses(&all).await;
            *view.borrow_mut() = st.iter().map(|(i, s)| describe(*i, s)).collect();
            let (_, leader) = st.iter().find(|(_, s)| s.role == Role::Leader)?;
            // Invariant checked: one leader for everyone, one voter set, no
            // joint config, and nothing committed left unapplied anywhere.
            let ok = st.len() == self.nodes.len()
                && st.iter().all(|(_, s)| {
                    s.leader_id == Some(leader.node_id)
                        && s.membership.voters == leader.membership.voters
                        && !s.membership.joint
                        && s.last_applied >= leader.committed
                });
            ok.then_some(())
        })
        .await;
        done.with_context(|| format!("nodes' last view:\n  {}", view.borrow().join("\n  ")))
    }

    /// Cut node `i` off its peers: disconnect it from the peer network.
    pub async fn isolate(&mut self, i: usize) -> anyhow::Result<()> {
        self.docker.run(&["network", "disconnect", &self.peer.name, &self.nodes[i].name]).await?;
        Ok(())
    }

    /// Reconnect node `i` to the peer network with its old address.
    pub async fn reconnect(&mut self, i: usize) -> anyhow::Result<()> {
        let ip = self.nodes[i].peer_ip.to_string();
        self.docker.run(&["network", "connect", "--ip", &ip, &self.peer.name, &self.nodes[i].name]).await?;
        Ok(())
    }

    /// SIGKILL node `i`'s server (`docker kill`) and wait until the engine
    /// reports the container stopped; returns its state then.
    pub async fn kill(&mut self, i: usize) -> anyhow::Result<ContainerState> {
        self.docker.run(&["kill", "--signal", "KILL", &self.nodes[i].name]).await?;
        self.nodes[i].running = false;
        let what = format!("{} to stop after SIGKILL", self.nodes[i].name);
        let state =
            poll(Duration::from_secs(20), &what, || async { self.inspect(i).await.ok().filter(|s| !s.running) })
                .await?;
        Ok(state)
    }

    /// Start node `i`'s container again: same volume, same addresses.
    pub async fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        self.docker.run(&["start", &self.nodes[i].name]).await?;
        self.nodes[i].running = true;
        Ok(())
    }

    /// `docker inspect` of node `i`'s container.
    pub async fn inspect(&self, i: usize) -> anyhow::Result<ContainerState> {
        let out = self.docker.run(&["inspect", "--format", "{{json .}}", &self.nodes[i].name]).await?;
        let v: serde_json::Value = serde_json::from_str(out.trim())?;
        let state = ContainerState {
            pid: v["State"]["Pid"].as_u64().unwrap_or(0) as u32,
            running: v["State"]["Running"].as_bool().unwrap_or(false),
            exit_code: v["State"]["ExitCode"].as_i64().unwrap_or(-1),
            user: v["Config"]["User"].as_str().unwrap_or_default().to_owned(),
            read_only: v["HostConfig"]["ReadonlyRootfs"].as_bool().unwrap_or(false),
        };
        if state.user.is_empty() {
            bail!("unexpected inspect output for {}", self.nodes[i].name);
        }
        Ok(state)
    }

    /// The last `lines` log lines of every container, for failure reports.
    pub async fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        let n = lines.to_string();
        for node in &self.nodes {
            // The server logs to stderr, which `docker logs` replays on its own stderr.
            let text = match self.docker.run_combined(&["logs", "--tail", &n, &node.name]).await {
                Ok(t) => t,
                Err(e) => format!("(docker logs failed: {e:#})"),
            };
            out.push_str(&format!("==== {} ({}) ====\n{text}\n", node.name, node.peer_ip));
        }
        out
    }
}

/// One line describing a node's view, for convergence failures.
fn describe(i: usize, s: &ClusterStatus) -> String {
    format!(
        "node {i}: id {} {:?} term {} leader {:?} applied {:?} committed {:?} voters {:?}{}",
        s.node_id,
        s.role,
        s.term,
        s.leader_id,
        s.last_applied,
        s.committed,
        s.membership.voters.iter().map(|m| m.id).collect::<Vec<_>>(),
        if s.membership.joint { " (joint)" } else { "" }
    )
}
