//! Raft nodes in one process on loopback: behaviour that needs real peers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;

use super::{NodeAddr, NodeId, RaftNode, RaftNodeConfig};
use crate::store::{Operation, WriteCmd};

/// Starts node `id` with its data under `dir` on a loopback port.
pub(crate) async fn start(
    id: NodeId,
    dir: &std::path::Path,
    append_budget_bytes: Option<usize>,
) -> (Arc<RaftNode>, NodeAddr) {
    start_with(id, dir, |cfg| cfg.append_budget_bytes = append_budget_bytes).await
}

/// Starts node `id` as [`start`] does, with `configure` applied to its settings.
pub(crate) async fn start_with(
    id: NodeId,
    dir: &std::path::Path,
    configure: impl FnOnce(&mut RaftNodeConfig),
) -> (Arc<RaftNode>, NodeAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let raft_addr = listener.local_addr().unwrap().to_string();
    let addr = NodeAddr { raft_addr, resp_addr: "127.0.0.1:1".into(), http_addr: "127.0.0.1:1".into() };
    let mut cfg = RaftNodeConfig::new(dir.join(id.to_string()), addr.clone());
    cfg.node_id = Some(id);
    configure(&mut cfg);
    (RaftNode::start(cfg, listener).await.unwrap(), addr)
}

/// Waits until `node` accepts writes as leader: its leadership vote is
/// flushed (what `RaftNode::submit` checks), not merely reported.
pub(crate) async fn wait_writable_leader(node: &RaftNode) {
    let id = node.id();
    node.raft()
        .wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.current_leader == Some(id) && m.vote.is_committed(), "leader with a flushed vote")
        .await
        .expect("leader");
}

/// A single-node cluster, leader once this returns.
pub(crate) async fn single_node(dir: &std::path::Path) -> Arc<RaftNode> {
    let (node, addr) = start(1, dir, None).await;
    node.initialize(BTreeMap::from([(1, addr)])).await.unwrap();
    wait_writable_leader(&node).await;
    node
}

/// `INCR key` at time 1.
pub(crate) fn incr(key: &str) -> Operation {
    Operation { at_ms: 1, cmd: WriteCmd::IncrBy { key: Bytes::copy_from_slice(key.as_bytes()), delta: 1 } }
}

/// With a one-byte frame budget every AppendEntries of several entries is
/// cut to its first entry and reported as a partial success; a learner that
/// joins late must still catch up on the whole log that way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_catches_up_through_split_append_requests() {
    let dir = tempfile::tempdir().unwrap();
    let budget = Some(1);
    let (leader, leader_addr) = start(1, dir.path(), budget).await;
    leader.initialize(BTreeMap::from([(1, leader_addr)])).await.unwrap();
    wait_writable_leader(&leader).await;
    // One entry per write: each waits for the previous one to commit.
    for _ in 0..120 {
        leader.propose(incr("n")).await.unwrap();
    }
    // The state machine, not the metrics: a write's reply is sent after its
    // entry is applied, but the metrics watch may not show that entry yet,
    // and the learner would then be checked one write short (seen in CI).
    let last = leader.state_machine().read().last_applied.unwrap().index;
    assert!(last >= 120, "expected an entry per write, got {last} entries");

    let (learner, learner_addr) = start(2, dir.path(), budget).await;
    leader.add_learner(2, learner_addr, true).await.unwrap();
    learner
        .raft()
        .wait(Some(Duration::from_secs(30)))
        .applied_index_at_least(Some(last), "learner applied the whole log")
        .await
        .unwrap();
    let value = {
        let sm = learner.state_machine().read();
        sm.store.get(b"n", 1).and_then(|e| e.as_string().map(<[u8]>::to_vec))
    };
    assert_eq!(value.as_deref(), Some(&b"120"[..]));
    learner.shutdown().await;
    leader.shutdown().await;
}

/// Three nodes under concurrent writes: exactly one follower is spare and is
/// held. When the other follower stops, the spare one becomes the one the
/// commits need, is no longer held, and writes go on. (Which of the pacer's
/// rules frees it depends on timing: the stopped follower's last, slow reply
/// can rank it behind, or its silence can outlast the health window; the
/// unit tests in `network::pacing` check each rule alone.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spare_follower_takes_over_when_the_needed_one_stops() {
    let dir = tempfile::tempdir().unwrap();
    // A long interval, so that rounds are held even on a slow, busy machine.
    let paced = |cfg: &mut RaftNodeConfig| cfg.spare_follower_interval = Duration::from_millis(20);
    let mut nodes = BTreeMap::new();
    let mut members = BTreeMap::new();
    for id in 1..=3 {
        let (node, addr) = start_with(id, dir.path(), paced).await;
        nodes.insert(id, node);
        members.insert(id, addr);
    }
    nodes[&1].initialize(members).await.unwrap();
    let leader_id = nodes[&1]
        .raft()
        .wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.current_leader.is_some(), "a leader")
        .await
        .unwrap()
        .current_leader
        .unwrap();
    let leader = nodes[&leader_id].clone();
    wait_writable_leader(&leader).await;
    // Right after an election a write may still be refused as `NotLeader`.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while leader.propose(incr("n")).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "no write accepted within 10 s of the election");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let spare = loop {
        write_until(&leader, "one follower spare and held", |l| {
            l.replication_pacer().held() > 0 && l.replication_pacer().spare_followers().len() == 1
        })
        .await;
        // Read again: a decision may have changed the set since the check.
        if let [spare] = leader.replication_pacer().spare_followers()[..] {
            break spare;
        }
    };
    let needed = (1..=3).find(|id| *id != leader_id && *id != spare).unwrap();

    nodes[&needed].shutdown().await;
    // Every write now needs the formerly spare follower, which soon stops
    // being held.
    write_until(&leader, "the follower left is no longer spare", |l| {
        !l.replication_pacer().spare_followers().contains(&spare)
    })
    .await;
    for (id, node) in &nodes {
        if *id != needed {
            node.shutdown().await;
        }
    }
}

/// Rounds of 16 concurrent writes to `leader` until `done` holds; fails at a
/// 60 s deadline, or on any write not acknowledged.
async fn write_until(leader: &RaftNode, what: &str, done: impl Fn(&RaftNode) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done(leader) {
        assert!(tokio::time::Instant::now() < deadline, "not within 60 s of writes: {what}");
        let pending: Vec<_> = (0..16).map(|_| leader.submit(incr("n")).unwrap()).collect();
        for p in pending {
            RaftNode::finish(p).await.unwrap();
        }
    }
}
