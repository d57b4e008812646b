//! The driver end to end against fake nodes: every ordinal is a real HTTP listener
//! on loopback answering from the planner's simulated cluster, and admin calls are
//! translated back into simulator actions (which re-check every safety rule). This
//! tests what the planner tests cannot: that `observe` builds the right `Observed`
//! from HTTP, and that `execute` sends the right requests to the right node.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::*;
use crate::api::{
    AddLearnerRequest, AdminOk, ApiError, LeaderInfo, Readiness, SetMembershipRequest, TransferLeaderRequest,
};
use crate::planner::sim::Sim;
use crate::planner::MAX_REPLICAS;

/// The simulated world plus the safety violations the fake nodes saw.
#[derive(Default)]
struct World {
    sim: Option<Sim>,
    violations: Vec<String>,
    requests: Vec<String>,
}

type Shared = Arc<Mutex<World>>;

fn with<T>(w: &Shared, f: impl FnOnce(&mut Sim) -> T) -> T {
    f(w.lock().unwrap().sim.as_mut().unwrap())
}

/// Applies `action` to the sim, recording a violation instead of panicking in a task.
fn apply(w: &Shared, action: Action) -> (u16, String) {
    let mut world = w.lock().unwrap();
    match world.sim.as_mut().unwrap().apply(&action) {
        Ok(()) => (200, serde_json::to_string(&AdminOk { ok: true, ..Default::default() }).unwrap()),
        Err(why) => {
            world.violations.push(format!("{action}: {why}"));
            error(500, "internal", &why)
        }
    }
}

fn error(status: u16, code: &str, message: &str) -> (u16, String) {
    let e = ApiError { code: code.into(), message: message.into(), leader: None };
    (status, serde_json::to_string(&e).unwrap())
}

/// Answers one request to ordinal `o`; `None` drops the connection (node down).
fn handle(w: &Shared, o: u32, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    w.lock().unwrap().requests.push(format!("{o} {method} {path} {body}"));
    let (up, slot, leader_id) = with(w, |sim| {
        let obs = sim.observe();
        (sim.up(o), obs.slots[o as usize].clone(), sim.leader)
    });
    if !up {
        return None;
    }
    let st = slot.status.clone()?;
    let is_leader = leader_id == Some(st.node_id);
    let not_leader = || error(421, "not_leader", "not the leader");
    Some(match (method, path) {
        ("GET", "/cluster") => (200, serde_json::to_string(&st).unwrap()),
        ("GET", "/readyz") => {
            let r = Readiness { ready: slot.ready, reason: String::new() };
            (if slot.ready { 200 } else { 503 }, serde_json::to_string(&r).unwrap())
        }
        ("GET", "/leader") => {
            let l = LeaderInfo { leader_id, leader_resp_addr: None, leader_http_addr: None, term: st.term };
            (200, serde_json::to_string(&l).unwrap())
        }
        ("POST", "/admin/init") => apply(w, Action::Bootstrap { ordinal: o }),
        ("POST", "/admin/learners") if is_leader => {
            let req: AddLearnerRequest = serde_json::from_str(body).unwrap();
            assert!(req.blocking, "learners are added blocking");
            let ordinal = with(w, |sim| (0..MAX_REPLICAS).find(|x| sim.id_at(*x) == Some(req.node_id)))?;
            apply(w, Action::AddLearner { ordinal, node_id: req.node_id, addr: req.addr })
        }
        ("POST", "/admin/membership") if is_leader => {
            let req: SetMembershipRequest = serde_json::from_str(body).unwrap();
            assert!(!req.retain);
            let (old, learners) = with(w, |sim| (sim.voters.clone(), sim.learners.clone()));
            let mut new = req.voters.clone();
            new.sort_unstable();
            let added: Vec<_> = new.iter().filter(|v| !old.contains(v)).collect();
            let removed: Vec<_> = old.iter().filter(|v| !new.contains(v)).collect();
            let action = match (added.as_slice(), removed.as_slice(), req.remove_learners.as_slice()) {
                ([a], [], []) => Action::Promote { node_id: **a, voters: new },
                ([], [r], []) => Action::RemoveMember { node_id: **r, voters: new },
                ([], [], [l]) if learners.contains(l) => Action::RemoveMember { node_id: *l, voters: new },
                _ => {
                    let why = format!("unexpected membership request {req:?} (voters {old:?})");
                    w.lock().unwrap().violations.push(why.clone());
                    return Some(error(400, "bad_request", &why));
                }
            };
            apply(w, action)
        }
        ("POST", "/admin/transfer-leader") if is_leader => {
            let req: TransferLeaderRequest = serde_json::from_str(body).unwrap();
            apply(w, Action::TransferLeader { from: st.node_id, to: req.to.expect("transfer names its target") })
        }
        ("POST", _) => not_leader(),
        _ => error(404, "not_found", path),
    })
}

async fn serve_conn(w: Shared, o: u32, mut sock: TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head, body) = loop {
        let n = sock.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                break (head, text[end + 4..end + 4 + len].to_string());
            }
        }
    };
    let mut parts = head.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let Some((status, body)) = handle(&w, o, method, path, &body) else {
        return; // dropped: the client sees an unreachable node
    };
    let resp = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = sock.write_all(resp.as_bytes()).await;
}

/// A workload over the simulated pods.
struct FakeWorkload(Shared);

impl Workload for FakeWorkload {
    async fn observe(&self) -> Result<WorkloadState, WorkloadError> {
        let (obs, replicas, init) = with(&self.0, |sim| (sim.observe(), sim.workload, sim.initialized_before));
        Ok(WorkloadState {
            replicas,
            slots: obs
                .slots
                .into_iter()
                .map(|s| WorkloadSlot {
                    ordinal: s.ordinal,
                    addr: s.addr,
                    exists: s.exists,
                    terminating: false,
                    volume: s.volume,
                    version: s.version,
                    workload_ready: None,
                })
                .collect(),
            initialized_before: init,
        })
    }

    async fn scale(&self, replicas: u32) -> Result<(), WorkloadError> {
        apply_ok(&self.0, Action::ScaleWorkload { replicas })
    }

    async fn restart(&self, ordinal: u32) -> Result<(), WorkloadError> {
        apply_ok(&self.0, Action::RestartMember { ordinal })
    }

    async fn delete_volume(&self, ordinal: u32) -> Result<(), WorkloadError> {
        apply_ok(&self.0, Action::DeleteVolume { ordinal })
    }
}

fn apply_ok(w: &Shared, action: Action) -> Result<(), WorkloadError> {
    match apply(w, action) {
        (200, _) => Ok(()),
        (_, body) => Err(WorkloadError::new(body)),
    }
}

/// Starts one listener per ordinal and a ticker advancing simulated time.
async fn world() -> (Shared, Driver<FakeWorkload>) {
    let w: Shared = Arc::default();
    let mut sim = Sim::empty("v1");
    for o in 0..MAX_REPLICAS {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = l.local_addr().unwrap().to_string();
        sim.addrs[o as usize].http_addr = http;
        let w2 = w.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                tokio::spawn(serve_conn(w2.clone(), o, sock));
            }
        });
    }
    w.lock().unwrap().sim = Some(sim);
    let w2 = w.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            with(&w2, |sim| sim.tick());
        }
    });
    let client = AdminClient::new(String::new(), Some("t".into()))
        .with_timeouts(Duration::from_millis(500), Duration::from_secs(2));
    let driver = Driver::new(FakeWorkload(w.clone()), client);
    (w, driver)
}

async fn converge(w: &Shared, driver: &Driver<FakeWorkload>, desired: &Desired) {
    let r = driver.reconcile_until_done(desired, Instant::now() + Duration::from_secs(30)).await;
    let world = w.lock().unwrap();
    assert!(world.violations.is_empty(), "violations: {:#?}", world.violations);
    if let Err(e) = r {
        panic!("{e}\nhistory: {:#?}", world.sim.as_ref().unwrap().history);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_runs_the_lifecycle_over_http() {
    let (w, driver) = world().await;
    converge(&w, &driver, &Desired::new(3, "v1")).await;
    assert_eq!(with(&w, |s| s.voters.len()), 3);

    converge(&w, &driver, &Desired::new(5, "v1")).await;
    assert_eq!(with(&w, |s| s.voters.len()), 5);

    let mut three = Desired::new(3, "v1");
    three.volume_policy = crate::planner::VolumePolicy::Delete;
    converge(&w, &driver, &three).await;
    assert_eq!(with(&w, |s| (s.voters.len(), s.workload)), (3, 3));
    assert!(with(&w, |s| s.slots[4].volume.is_none()));

    // Replaced volume: old id removed, new id added as learner, then promoted.
    let old = with(&w, |s| {
        let old = s.id_at(1).unwrap();
        s.wipe(1);
        old
    });
    converge(&w, &driver, &three).await;
    let (voters, new) = with(&w, |s| (s.voters.clone(), s.id_at(1).unwrap()));
    assert!(voters.contains(&new) && !voters.contains(&old));

    // Upgrade.
    with(&w, |s| s.template_version = "v2".into());
    converge(&w, &driver, &Desired::new(3, "v2")).await;
    assert!(with(&w, |s| (0..3).all(|o| s.slots[o].version == "v2")));

    // A learner removal names the learner explicitly.
    let requests = w.lock().unwrap().requests.clone();
    assert!(requests.iter().any(|r| r.contains("/admin/membership")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excess_learner_is_removed_by_name() {
    let (w, driver) = world().await;
    converge(&w, &driver, &Desired::new(2, "v1")).await;
    // Grow by hand and add ordinal 2 as a learner only, then ask for 2 replicas.
    with(&w, |s| {
        s.apply(&Action::ScaleWorkload { replicas: 3 }).unwrap();
        let id = s.id_at(2).unwrap();
        let addr = s.addrs[2].clone();
        s.apply(&Action::AddLearner { ordinal: 2, node_id: id, addr }).unwrap();
    });
    converge(&w, &driver, &Desired::new(2, "v1")).await;
    assert!(with(&w, |s| s.learners.is_empty()));
    let requests = w.lock().unwrap().requests.clone();
    assert!(requests.iter().any(|r| r.contains("remove_learners")), "{requests:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_marks_down_nodes_unreachable() {
    let (w, driver) = world().await;
    converge(&w, &driver, &Desired::new(3, "v1")).await;
    with(&w, |s| s.crash(2));
    let observed = driver.observe().await.unwrap();
    assert!(observed.slots[2].exists && observed.slots[2].status.is_none());
    assert!(observed.slots[0].status.is_some() && observed.slots[1].status.is_some());
    let plan = planner::plan(&Desired::new(3, "v1"), &observed);
    assert!(matches!(plan.action, Action::Wait { .. }), "{}", plan.action);
}
