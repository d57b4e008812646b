//! Issue 2's cluster behaviour on real processes: forwarding, leader failure,
//! full restart, snapshot catch-up, and membership changes through the admin API.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use redis::AsyncCommands;
use seshat_control::api::{AddLearnerRequest, SetMembershipRequest};
use seshat_control::client::ClientError;
use support::{eventually, Harness};

/// Writes `count` keys `prefix:i` = `v-i` and returns them (all acknowledged).
async fn write_keys(
    con: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    count: usize,
) -> BTreeMap<String, String> {
    let mut acked = BTreeMap::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(100) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.set(format!("{prefix}:{i}"), format!("v-{i}")).ignore();
        }
        // A leader change mid-test answers CLUSTERDOWN/TRYAGAIN; SET is
        // idempotent, so retrying the batch until it is acknowledged is safe.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match pipe.query_async::<()>(con).await {
                Ok(()) => break,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(error = %e, "batch not acknowledged; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("pipelined SETs not acknowledged within 30 s: {e}"),
            }
        }
        for i in chunk {
            acked.insert(format!("{prefix}:{i}"), format!("v-{i}"));
        }
    }
    acked
}

async fn assert_all_present(con: &mut redis::aio::MultiplexedConnection, acked: &BTreeMap<String, String>) {
    let keys: Vec<&String> = acked.keys().collect();
    for chunk in keys.chunks(200) {
        let values: Vec<Option<String>> = con.mget(chunk).await.expect("MGET");
        for (k, v) in chunk.iter().zip(values) {
            assert_eq!(v.as_deref(), Some(acked[*k].as_str()), "acknowledged key {k} lost");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_on_follower_is_forwarded_and_readable_everywhere() {
    let h = Harness::start(3, &[]).await;
    let leader = h.leader_among(&[0, 1, 2]).await;
    let follower = (leader + 1) % 3;
    let mut con = h.redis(follower).await;
    let () = con.set("greeting", "hello").await.expect("SET through a follower");
    let leader_status = h.status(leader).await.expect("leader status");
    let committed = leader_status.committed.expect("a commit index");
    for i in 0..3 {
        let mut c = h.redis(i).await;
        let v: Option<String> = c.get("greeting").await.expect("GET");
        assert_eq!(v.as_deref(), Some("hello"), "node {i}");
        // Every replica has applied the write itself, not only the leader.
        h.wait_applied(i, committed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_loses_no_acknowledged_write() {
    let h = Harness::start(3, &[]).await;
    let leader = h.leader_among(&[0, 1, 2]).await;
    let survivor = (leader + 1) % 3;
    let mut con = h.redis(survivor).await;
    let mut acked = write_keys(&mut con, "before", 300).await;

    h.cluster().kill_node(leader).await.expect("kill -9 the leader");
    let others: Vec<u32> = (0..3).filter(|i| *i != leader).collect();
    let new_leader = h.leader_among(&others).await;
    assert_ne!(new_leader, leader);

    let mut con = eventually(Duration::from_secs(20), "writes accepted by the new leader", || async {
        let mut c = h.redis(survivor).await;
        let r: redis::RedisResult<()> = c.set("after-failover", "yes").await;
        r.ok().map(|()| c)
    })
    .await;
    acked.extend(write_keys(&mut con, "after", 100).await);
    assert_all_present(&mut con, &acked).await;

    // The old leader comes back as a follower and catches up.
    h.cluster().start_node(leader).await.expect("restart old leader");
    let commit = h.status(new_leader).await.and_then(|s| s.committed).expect("commit index");
    h.wait_applied(leader, commit).await;
    let mut con = h.redis(leader).await;
    assert_all_present(&mut con, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_and_restarting_every_node_keeps_all_data() {
    let h = Harness::start(3, &[]).await;
    let mut con = h.redis(0).await;
    let mut acked = write_keys(&mut con, "k", 500).await;
    let () = con.set_ex("with-ttl", "x", 3600).await.expect("SET EX");
    acked.insert("with-ttl".into(), "x".into());
    drop(con);

    h.cluster().stop_all().await;
    for i in 0..3 {
        h.cluster().start_node(i).await.expect("start again");
    }
    h.leader_among(&[0, 1, 2]).await;
    let mut con = eventually(Duration::from_secs(20), "reads after the restart", || async {
        let mut c = h.redis(1).await;
        let r: redis::RedisResult<Option<String>> = c.get("k:0").await;
        matches!(r, Ok(Some(_))).then_some(c)
    })
    .await;
    assert_all_present(&mut con, &acked).await;
    let ttl: i64 = con.ttl("with-ttl").await.expect("TTL");
    assert!(ttl > 3500 && ttl <= 3600, "TTL survived the restart: {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_rejoins_through_a_snapshot() {
    let h = Harness::start(3, &[]).await;
    let leader = h.leader_among(&[0, 1, 2]).await;
    let lagging = (leader + 1) % 3;
    h.cluster().stop_node(lagging).await.expect("stop a follower");

    let mut con = h.redis(leader).await;
    let mut acked = write_keys(&mut con, "bulk", 10_000).await;
    // A pipeline is one log entry, and the leader keeps the last 1,000
    // entries behind a snapshot: unpipelined writes make the log long enough
    // for the snapshot to purge entries the lagging follower needs.
    for i in 0..1_100 {
        let (key, value) = (format!("single:{i}"), format!("v-{i}"));
        let () = con.set(&key, &value).await.expect("unpipelined SET");
        acked.insert(key, value);
    }
    h.admin(leader).snapshot().await.expect("snapshot on the leader");
    // Purging runs after the snapshot is built, asynchronously.
    let purged = eventually(Duration::from_secs(30), "the log behind the snapshot is purged", || async {
        let purged = h.status(leader).await?.purged_index?;
        // The stopped follower holds only the first few entries.
        (purged > 100).then_some(purged)
    })
    .await;

    h.cluster().start_node(lagging).await.expect("restart the follower");
    let commit = h.status(leader).await.and_then(|s| s.committed).expect("commit");
    h.wait_applied(lagging, commit).await;
    let s = h.status(lagging).await.expect("follower status");
    assert!(s.snapshot_index.unwrap_or(0) >= purged, "follower installed the leader's snapshot: {s:?}");
    let metrics = metrics_text(&h, lagging).await;
    assert!(
        metrics.lines().any(|l| l.starts_with("seshat_snapshots_installed ") && !l.ends_with(" 0")),
        "snapshot install counted in /metrics"
    );
    let mut con = h.redis(lagging).await;
    assert_all_present(&mut con, &acked).await;
}

/// A node's `/metrics` page.
async fn metrics_text(h: &Harness, i: u32) -> String {
    let page = reqwest::get(format!("http://{}/metrics", h.cluster().addr(i).http_addr)).await.expect("metrics");
    page.text().await.expect("metrics text")
}

/// One value from a node's `/metrics`.
async fn metric(h: &Harness, i: u32, name: &str) -> u64 {
    metrics_text(h, i)
        .await
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

/// ReadIndex rounds are confirmed by asking followers directly (not through
/// openraft's heartbeats), by whichever follower still answers, and a
/// leader left without a quorum serves no read at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_index_rounds_need_a_quorum_and_take_any_one() {
    let h = Harness::start(3, &[]).await;
    let leader = h.leader_among(&[0, 1, 2]).await;
    let followers: Vec<u32> = (0..3).filter(|i| *i != leader).collect();
    let mut con = h.redis(leader).await;
    let () = con.set("k", "v").await.expect("SET");
    let get = |mut con: redis::aio::MultiplexedConnection| async move {
        let v: redis::RedisResult<Option<String>> = con.get("k").await;
        v
    };

    let by_openraft = metric(&h, leader, "seshat_read_rounds_by_openraft").await;
    let rounds = metric(&h, leader, "seshat_read_barrier_rounds").await;
    for _ in 0..20 {
        assert_eq!(get(con.clone()).await.expect("GET").as_deref(), Some("v"));
    }
    assert!(metric(&h, leader, "seshat_read_barrier_rounds").await >= rounds + 20, "one round per sequential GET");
    assert_eq!(
        metric(&h, leader, "seshat_read_rounds_by_openraft").await,
        by_openraft,
        "a healthy cluster confirms every round directly"
    );

    // Either follower makes a quorum with the leader.
    h.cluster().kill_node(followers[0]).await.expect("kill a follower");
    for _ in 0..20 {
        assert_eq!(get(con.clone()).await.expect("GET with one follower down").as_deref(), Some("v"));
    }

    // None left: no confirmation, and openraft's own check fails too.
    h.cluster().kill_node(followers[1]).await.expect("kill the other follower");
    let refused = get(con.clone()).await;
    assert!(refused.is_err(), "a leader without a quorum must not serve a linearizable read: {refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_adds_a_learner_promotes_it_and_removes_a_voter() {
    let token = "s3cret";
    let h = Harness::start_with(3, &[], Some(token)).await;
    let leader = h.leader_among(&[0, 1, 2]).await;

    // Without the token the admin API refuses.
    let anonymous = seshat_control::client::AdminClient::new(h.cluster().addr(leader).http_addr, None);
    assert!(matches!(anonymous.snapshot().await, Err(ClientError::Unauthorized { .. })), "401 without token");

    // A 4th process, uninitialized until added.
    h.cluster().scale_to(4).await.expect("start a 4th node");
    let fourth = eventually(Duration::from_secs(20), "the 4th node answers", || h.status(3)).await;
    let admin = h.admin(leader);
    admin
        .add_learner(&AddLearnerRequest { node_id: fourth.node_id, addr: fourth.addr.clone(), blocking: true })
        .await
        .expect("add learner");
    let before = h.status(leader).await.expect("status");
    assert!(before.membership.learners.iter().any(|m| m.id == fourth.node_id));
    let mut voters: Vec<u64> = before.membership.voters.iter().map(|m| m.id).collect();
    voters.push(fourth.node_id);
    admin
        .set_membership(&SetMembershipRequest { voters: voters.clone(), retain: false, remove_learners: vec![] })
        .await
        .expect("promote");
    let after = h.status(leader).await.expect("status");
    assert_eq!(after.membership.voters.len(), 4);

    // Remove a voter that is not the leader.
    let leader_id = after.node_id;
    let removed = voters.iter().copied().find(|v| *v != leader_id && *v != fourth.node_id).unwrap();
    let remaining: Vec<u64> = voters.iter().copied().filter(|v| *v != removed).collect();
    admin
        .set_membership(&SetMembershipRequest { voters: remaining, retain: false, remove_learners: vec![] })
        .await
        .expect("remove voter");
    let last = h.status(leader).await.expect("status");
    assert_eq!(last.membership.voters.len(), 3);
    assert!(last.membership.voters.iter().all(|m| m.id != removed));
    assert!(last.membership.learners.iter().all(|m| m.id != removed));

    // The cluster keeps accepting writes, and the promoted node has them.
    let mut con = h.redis(leader).await;
    let () = con.set("after-membership-change", "1").await.expect("write");
    let commit = h.status(leader).await.and_then(|s| s.committed).unwrap();
    h.wait_applied(3, commit).await;
}
