//! The membership planner and driver against real `seshat-node` processes (no
//! Kubernetes): create 3, scale to 5, scale back to 3, replace a node's data dir with
//! an empty one, and upgrade by restarting one node at a time — while a client keeps
//! writing, and with every acknowledged write read back at the end. Plus the
//! `seshat local` runner (bootstrap, supervision of a killed node, shutdown) and the
//! `LocalCluster` fault controls.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use redis::aio::MultiplexedConnection;
use seshat_control::api::{AddLearnerRequest, NodeId};
use seshat_control::client::AdminClient;
use seshat_control::driver::{Driver, Workload};
use seshat_control::local::{free_port_bases, run_local, LocalCluster, LocalConfig, NodeState};
use seshat_control::planner::{self, Action, Desired};
use seshat_tests::wait::poll;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_seshat-node");
const TOKEN: &str = "control-local-test-token";
/// Bound of one reconcile phase (a learner catch-up plus elections take seconds).
const PHASE: Duration = Duration::from_secs(120);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "seshat_control=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A local cluster in a temp dir on free ports, with its driver.
struct Harness {
    _dir: tempfile::TempDir,
    cluster: Arc<LocalCluster>,
    driver: Driver<Arc<LocalCluster>>,
}

impl Harness {
    fn new() -> Result<Self> {
        init_tracing();
        let dir = tempfile::tempdir()?;
        let (resp, http, raft) = free_port_bases("127.0.0.1", 9)?;
        let mut cfg = LocalConfig::new(BIN, 3);
        cfg.data_dir = dir.path().to_path_buf();
        cfg.resp_port = resp;
        cfg.http_port = http;
        cfg.raft_port = raft;
        cfg.admin_token = Some(TOKEN.into());
        cfg.stop_grace = Duration::from_secs(5);
        let cluster = Arc::new(LocalCluster::new(cfg)?);
        let driver = Driver::new(cluster.clone(), AdminClient::new(String::new(), Some(TOKEN.into())));
        Ok(Self { _dir: dir, cluster, driver })
    }

    /// Ordinal of the current leader (the cluster must be converged).
    async fn leader_ordinal(&self, desired: &Desired) -> Result<u32> {
        let plan = planner::plan(desired, &self.driver.observe().await?);
        Ok(plan.view.leader.context("no leader")?.ordinal)
    }

    fn resp_addrs(&self, n: u32) -> Vec<String> {
        (0..n).map(|i| self.cluster.addr(i).resp_addr).collect()
    }

    /// Reconciles to `desired` step by step (observe → plan → execute, polling
    /// while the planner waits), returning the actions executed, in order.
    async fn converge(&self, desired: &Desired) -> Result<Vec<Action>> {
        let started = Instant::now();
        let deadline = started + PHASE;
        let mut done = vec![];
        let mut last = String::new();
        loop {
            ensure!(
                Instant::now() < deadline,
                "no convergence to {} replicas within {PHASE:?}; last: {last}; executed: {done:?}",
                desired.replicas
            );
            match self.driver.step(desired).await {
                Ok(out) => {
                    last = out.plan.action.to_string();
                    match out.plan.action {
                        Action::Done => break,
                        Action::Wait { .. } | Action::Degraded { .. } => {}
                        action => {
                            done.push(action);
                            continue;
                        }
                    }
                }
                // Nodes restart and leaders change under the driver: retry.
                Err(e) => last = format!("error: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "converged to {} replicas in {:?}: {}",
            desired.replicas,
            started.elapsed(),
            done.iter().map(|a| a.to_string()).collect::<Vec<_>>().join("; ")
        );
        Ok(done)
    }

    /// The voters and the id of each ordinal, from a fresh observation.
    async fn voters(&self, desired: &Desired) -> Result<(Vec<NodeId>, Vec<Option<NodeId>>)> {
        let observed = self.driver.observe().await?;
        let plan = planner::plan(desired, &observed);
        ensure!(plan.action == Action::Done, "not converged: {}", plan.action);
        let ids = observed.slots.iter().map(|s| s.node_id()).collect();
        Ok((plan.view.voters(), ids))
    }
}

/// A client writing unique keys (`SET w:<n> <n>`) through the cluster's RESP ports,
/// rotating to the next node on any error. Only writes answered `OK` count as
/// acknowledged.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    task: JoinHandle<Vec<u64>>,
}

async fn connect(addr: &str) -> Option<MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{addr}/")).ok()?;
    tokio::time::timeout(Duration::from_secs(1), client.get_multiplexed_async_connection()).await.ok()?.ok()
}

impl Writer {
    fn start(addrs: Vec<String>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let (s, a) = (stop.clone(), acked.clone());
        let task = tokio::spawn(async move {
            let mut done = vec![];
            let mut target = 0usize;
            let mut conn: Option<MultiplexedConnection> = None;
            let mut seq = 0u64;
            while !s.load(Ordering::Relaxed) {
                let Some(c) = conn.as_mut() else {
                    conn = connect(&addrs[target]).await;
                    if conn.is_none() {
                        target = (target + 1) % addrs.len();
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    continue;
                };
                seq += 1;
                let mut cmd = redis::cmd("SET");
                cmd.arg(format!("w:{seq}")).arg(seq.to_string());
                let set = cmd.query_async::<String>(c);
                match tokio::time::timeout(Duration::from_secs(3), set).await {
                    Ok(Ok(ok)) if ok == "OK" => {
                        done.push(seq);
                        a.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        conn = None;
                        target = (target + 1) % addrs.len();
                    }
                }
            }
            done
        });
        Self { stop, acked, task }
    }

    fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Waits until at least `more` further writes are acknowledged: the cluster
    /// accepts writes now.
    async fn await_progress(&self, more: u64) -> Result<()> {
        let target = self.acked() + more;
        poll(Duration::from_secs(30), "writes to make progress", || async { (self.acked() >= target).then_some(()) })
            .await?;
        Ok(())
    }

    async fn finish(self) -> Result<Vec<u64>> {
        self.stop.store(true, Ordering::Relaxed);
        Ok(self.task.await?)
    }
}

/// Reads every acknowledged key back (linearizable reads, any node) and fails on
/// the first missing or wrong one.
async fn verify_acked(addrs: &[String], acked: &[u64]) -> Result<()> {
    let mut conn = None;
    for a in addrs {
        conn = connect(a).await;
        if conn.is_some() {
            break;
        }
    }
    let mut conn = conn.context("no node accepts connections")?;
    for chunk in acked.chunks(500) {
        let keys: Vec<String> = chunk.iter().map(|s| format!("w:{s}")).collect();
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        for (seq, v) in chunk.iter().zip(values) {
            if v.as_deref() != Some(seq.to_string().as_str()) {
                bail!("acknowledged write w:{seq} lost: read {v:?}");
            }
        }
    }
    Ok(())
}

/// The actions' kinds, with consecutive repeats (a retried step) collapsed.
fn kinds(actions: &[Action]) -> Vec<&'static str> {
    let mut k: Vec<&'static str> = actions.iter().map(Action::kind).collect();
    k.dedup();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_scale_replace_upgrade_without_losing_acknowledged_writes() -> Result<()> {
    let h = Harness::new()?;
    let (_, v1) = h.cluster.template().await;

    // Create 3: grow to 3 processes, bootstrap node 0 alone, add + promote 1 and 2.
    let three = Desired::new(3, v1.clone());
    let steps = h.converge(&three).await?;
    assert_eq!(kinds(&steps), ["scale_workload", "bootstrap", "add_learner", "promote", "add_learner", "promote"]);
    assert!(matches!(steps[1], Action::Bootstrap { ordinal: 0 }));
    let (voters, ids) = h.voters(&three).await?;
    assert_eq!(voters.len(), 3);
    h.cluster.mark_initialized().await;

    // Ordinals 0..3 exist in every phase below: the writer rotates among them.
    let writer = Writer::start(h.resp_addrs(3));
    writer.await_progress(20).await?;

    // Scale to 5: grow first, then one learner at a time, each promoted.
    let five = Desired::new(5, v1.clone());
    let steps = h.converge(&five).await?;
    assert_eq!(kinds(&steps), ["scale_workload", "add_learner", "promote", "add_learner", "promote"]);
    let (voters, ids5) = h.voters(&five).await?;
    assert_eq!(voters.len(), 5);
    writer.await_progress(20).await?;

    // Back to 3: highest ordinal leaves first (leadership moved off first if it
    // was there), and only then does the workload shrink.
    let steps = h.converge(&three).await?;
    let removed: Vec<u64> = steps
        .iter()
        .filter_map(|a| match a {
            Action::RemoveMember { node_id, .. } => Some(*node_id),
            _ => None,
        })
        .collect();
    assert_eq!(removed, [ids5[4].unwrap(), ids5[3].unwrap()]);
    assert_eq!(steps.last(), Some(&Action::ScaleWorkload { replicas: 3 }));
    assert_eq!(h.voters(&three).await?.0.len(), 3);
    assert_eq!(h.cluster.size().await, 3);
    assert_eq!(h.cluster.state(4).await, Some(NodeState::Stopped));
    writer.await_progress(20).await?;

    // Replace node 1's data dir with an empty one: it comes back with a new id; the
    // planner removes the old id, adds the new one as a learner, then promotes it.
    let old_id = ids[1].context("node 1 had no id")?;
    h.cluster.stop_node(1).await?;
    h.cluster.wipe_node(1).await?;
    h.cluster.start_node(1).await?;
    let steps = h.converge(&three).await?;
    let (voters, ids) = h.voters(&three).await?;
    let new_id = ids[1].context("node 1 has no id")?;
    assert_ne!(new_id, old_id, "an empty data dir must yield a new node id");
    assert!(voters.contains(&new_id) && !voters.contains(&old_id), "{voters:?}");
    assert_eq!(kinds(&steps), ["remove_stale_member", "add_learner", "promote"]);
    assert!(matches!(steps[0], Action::RemoveStaleMember { node_id, .. } if node_id == old_id));
    assert!(matches!(steps[1], Action::AddLearner { ordinal: 1, node_id, .. } if node_id == new_id));
    writer.await_progress(20).await?;

    // Upgrade: a "new" binary (a copy: another identity), restarted one at a time,
    // followers first, the leader last after handing leadership over.
    let leader = h.leader_ordinal(&three).await?;
    let v2_path = h.cluster.config().data_dir.join("seshat-node-v2");
    std::fs::copy(BIN, &v2_path)?;
    let v2 = h.cluster.set_binary(v2_path).await?;
    assert_ne!(v1, v2);
    let upgraded = Desired::new(3, v2.clone());
    let steps = h.converge(&upgraded).await?;
    let restarts: Vec<u32> = steps
        .iter()
        .filter_map(|a| match a {
            Action::RestartMember { ordinal } => Some(*ordinal),
            _ => None,
        })
        .collect();
    assert_eq!(restarts.len(), 3, "{steps:?}");
    assert_eq!(restarts[2], leader, "leader restarted last: {steps:?}");
    let transfer =
        steps.iter().position(|a| matches!(a, Action::TransferLeader { .. })).context("no leadership transfer")?;
    let last_restart = steps.iter().rposition(|a| matches!(a, Action::RestartMember { .. })).unwrap();
    assert!(transfer < last_restart, "{steps:?}");
    let ws = h.cluster.observe().await?;
    for s in ws.slots.iter().filter(|s| s.ordinal < 3) {
        assert_eq!(s.version.as_deref(), Some(v2.as_str()), "ordinal {}", s.ordinal);
    }
    writer.await_progress(20).await?;

    let acked = writer.finish().await?;
    eprintln!("{} acknowledged writes; verifying", acked.len());
    verify_acked(&h.resp_addrs(3), &acked).await?;
    h.cluster.stop_all().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_cluster_fault_controls_and_cleanup() -> Result<()> {
    let h = Harness::new()?;
    let (_, v1) = h.cluster.template().await;
    let three = Desired::new(3, v1);
    h.converge(&three).await?;

    // SIGSTOP a node: it stops answering; the planner waits instead of acting on it.
    h.cluster.pause_node(2).await?;
    let client = AdminClient::new(h.cluster.addr(2).http_addr, None)
        .with_timeouts(Duration::from_millis(300), Duration::from_millis(300));
    assert!(client.cluster().await.unwrap_err().is_transient());
    let plan = planner::plan(&three, &h.driver.observe().await?);
    assert!(matches!(plan.action, Action::Wait { .. }), "{}", plan.action);
    h.cluster.resume_node(2).await?;
    h.converge(&three).await?;

    // kill -9 and restart: the node keeps its id and rejoins.
    let (_, ids) = h.voters(&three).await?;
    h.cluster.kill_node(0).await?;
    assert!(matches!(h.cluster.state(0).await, Some(NodeState::Exited(_))));
    assert_eq!(h.cluster.exited_nodes().await, vec![0]);
    h.cluster.start_node(0).await?;
    h.converge(&three).await?;
    let (_, ids_after) = h.voters(&three).await?;
    assert_eq!(ids[0], ids_after[0]);

    // Wiping a running node is refused.
    assert!(h.cluster.wipe_node(1).await.is_err());

    // Dropping the cluster kills every child.
    let pids: Vec<u32> = {
        let mut v = vec![];
        for i in 0..3 {
            v.extend(h.cluster.pid(i).await);
        }
        v
    };
    assert_eq!(pids.len(), 3);
    drop(h);
    poll(Duration::from_secs(10), "children to die", || async {
        pids.iter().all(|p| !process_alive(*p)).then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excess_learner_is_removed_before_the_workload_shrinks() -> Result<()> {
    let h = Harness::new()?;
    let (_, v1) = h.cluster.template().await;
    let three = Desired::new(3, v1);
    h.converge(&three).await?;

    // A fourth process joins as a learner only (as if a scale-up was interrupted).
    h.cluster.scale_to(4).await?;
    let n3 = AdminClient::new(h.cluster.addr(3).http_addr, None);
    let st = poll(PHASE, "node 3 to answer", || async { n3.cluster().await.ok() }).await?;
    let leader = h.leader_ordinal(&three).await?;
    AdminClient::new(h.cluster.addr(leader).http_addr, Some(TOKEN.into()))
        .add_learner(&AddLearnerRequest { node_id: st.node_id, addr: st.addr.clone(), blocking: true })
        .await?;

    let steps = h.converge(&three).await?;
    assert_eq!(
        steps,
        [
            Action::RemoveMember { node_id: st.node_id, voters: h.voters(&three).await?.0 },
            Action::ScaleWorkload { replicas: 3 },
        ]
    );
    let view = planner::plan(&three, &h.driver.observe().await?).view;
    assert!(view.members.iter().all(|m| m.voter), "{view:?}");
    assert_eq!(view.members.len(), 3);
    Ok(())
}

/// True while `/proc/<pid>` exists and is not a zombie.
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Children of this process whose command line mentions `needle`.
fn child_pids_with(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut out = vec![];
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rsplit(')').next() else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) != Some(me) || fields[0] == "Z" {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            out.push(pid);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_local_bootstraps_supervises_and_stops() -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    let (resp, http, raft) = free_port_bases("127.0.0.1", 9)?;
    let mut cfg = LocalConfig::new(BIN, 3);
    cfg.data_dir = dir.path().to_path_buf();
    cfg.resp_port = resp;
    cfg.http_port = http;
    cfg.raft_port = raft;
    cfg.stop_grace = Duration::from_secs(5);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(run_local(cfg.clone(), async {
        let _ = stop_rx.await;
    }));

    let admin = AdminClient::new(format!("127.0.0.1:{http}"), None);
    let three_voters = || async {
        let st = admin.cluster().await.ok()?;
        (st.membership.voters.len() == 3 && st.leader_id.is_some()).then_some(st)
    };
    poll(PHASE, "a bootstrapped 3-voter cluster", three_voters).await?;

    // Writes work through node 0.
    let mut conn = connect(&format!("127.0.0.1:{resp}")).await.context("connect")?;
    let ok: String = redis::cmd("SET").arg("k").arg("v").query_async(&mut conn).await?;
    assert_eq!(ok, "OK");

    // SIGKILL node 1's process (found by its data dir): supervision restarts it.
    let node1 = cfg.node_dir(1).display().to_string();
    let victims = child_pids_with(&node1);
    ensure!(victims.len() == 1, "node 1 processes: {victims:?}");
    kill9(victims[0]);
    poll(PHASE, "node 1 to be restarted", || async {
        let now = child_pids_with(&node1);
        (now.len() == 1 && now[0] != victims[0]).then_some(())
    })
    .await?;
    poll(PHASE, "node 1 back in the cluster", || async {
        let c = AdminClient::new(format!("127.0.0.1:{}", http + 1), None);
        c.ready().await.ok().filter(|r| r.ready)
    })
    .await?;

    // Shutdown stops every node.
    stop_tx.send(()).ok();
    tokio::time::timeout(Duration::from_secs(60), run).await???;
    assert!(child_pids_with(&dir.path().display().to_string()).is_empty());
    assert!(admin.health().await.is_err());
    Ok(())
}

/// `kill -9 <pid>` for a pid of our own child (`run_local` owns its `Child`
/// handles, so the test goes through the OS; the test crate has no `libc`).
fn kill9(pid: u32) {
    let status = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
    assert!(status.is_ok_and(|s| s.success()), "kill -9 {pid}");
}
