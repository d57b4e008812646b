//! MULTI / EXEC / DISCARD / WATCH on real processes.
//!
//! - The same scripts, sent as raw RESP, get the same replies from Debian's
//!   `redis-server` and from Seshat, on the leader and through a follower.
//! - A client library's atomic pipeline is one transaction.
//! - WATCH is optimistic concurrency that holds: clients racing to increment
//!   one counter through WATCH / GET / MULTI / SET / EXEC, on the leader and
//!   through followers, lose no increment.

mod support;

use redis::AsyncCommands;
use support::redis_diff::{run_script, start_redis};
use support::Harness;

/// Scripts whose every reply Redis defines exactly (no timing, no server
/// details). Each starts from its own keys.
const SCRIPTS: &[&[&str]] = &[
    // Runs in order, atomically; replies in an array.
    &["MULTI", "SET t1 1", "INCR t1", "GET t1", "EXEC", "GET t1"],
    // Unknown command or wrong arity while queueing: EXEC refuses it all.
    &["SET t2 keep", "MULTI", "SET t2 lost", "NOSUCH x", "GET", "EXEC", "GET t2"],
    // Errors found when running are that command's reply; the rest runs.
    &["MULTI", "SET t3 abc", "INCR t3", "SET t3b 1 EX nope", "APPEND t3 d", "GET t3", "EXEC"],
    // DISCARD drops the queue; EXEC / DISCARD outside MULTI are errors.
    &["MULTI", "SET t4 1", "DISCARD", "GET t4", "DISCARD", "EXEC"],
    // Nesting and WATCH inside MULTI are errors that do not abort; UNWATCH
    // and connection commands are queued like any other.
    &["MULTI", "MULTI", "WATCH t5", "PING", "ECHO hi", "UNWATCH", "SET t5 v", "EXEC", "MULTI", "EXEC"],
    // WATCH: the watcher's own write aborts; an untouched key (even a
    // missing one) lets EXEC run; EXEC and UNWATCH forget the watch.
    &[
        "WATCH t6",
        "SET t6 1",
        "MULTI",
        "GET t6",
        "EXEC",
        "WATCH t6 t6missing",
        "MULTI",
        "SET t6 2",
        "SET t6missing x",
        "EXEC",
        "SET t6 3",
        "MULTI",
        "GET t6",
        "EXEC",
        "WATCH t6",
        "UNWATCH",
        "SET t6 4",
        "MULTI",
        "GET t6",
        "EXEC",
    ],
    // Multi-key commands and deletes inside a transaction.
    &["MSET t7a 1 t7b 2", "MULTI", "DEL t7a", "EXISTS t7a t7b", "RENAME t7b t7c", "MGET t7a t7b t7c", "EXEC"],
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_reply_as_redis_does_on_the_leader_and_through_a_follower() {
    let redis = start_redis().await;
    let h = Harness::start(3, &[]).await;
    let leader = h.leader_among(&[0, 1, 2]).await;
    let follower = (leader + 1) % 3;
    for (i, script) in SCRIPTS.iter().enumerate() {
        let expected = run_script(&redis.addr, script).await;
        assert_eq!(run_script(&h.resp_addr(leader), script).await, expected, "script {i} on the leader");
        // Through a follower: Redis runs the script a second time too, so
        // both hold the same data before each run.
        let expected = run_script(&redis.addr, script).await;
        assert_eq!(run_script(&h.resp_addr(follower), script).await, expected, "script {i} through a follower");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_library_atomic_pipeline_is_one_transaction() {
    let h = Harness::start(3, &[]).await;
    let leader = h.leader_among(&[0, 1, 2]).await;
    for node in [leader, (leader + 1) % 3] {
        let mut con = h.redis(node).await;
        let key = format!("lib:{node}");
        let (set, incr, get): (String, i64, String) = redis::pipe()
            .atomic()
            .set(&key, 41)
            .incr(&key, 1)
            .get(&key)
            .query_async(&mut con)
            .await
            .expect("MULTI/EXEC pipeline");
        assert_eq!((set.as_str(), incr, get.as_str()), ("OK", 42, "42"));
    }
    // Another client's write between WATCH and EXEC aborts it (nil).
    let mut watcher = h.redis((leader + 1) % 3).await;
    let mut other = h.redis(leader).await;
    redis::cmd("WATCH").arg("lib:watched").query_async::<()>(&mut watcher).await.expect("WATCH");
    let () = other.set("lib:watched", "changed").await.expect("SET");
    let aborted: Option<(String,)> =
        redis::pipe().atomic().set("lib:watched", "mine").query_async(&mut watcher).await.expect("EXEC");
    assert_eq!(aborted, None, "EXEC after a watched key changed must not run");
    let value: String = other.get("lib:watched").await.expect("GET");
    assert_eq!(value, "changed");
}

/// One client's optimistic increment: WATCH, GET, MULTI/SET/EXEC, retried
/// until EXEC runs. Returns how many tries it took.
async fn optimistic_incr(con: &mut redis::aio::MultiplexedConnection, key: &str) -> u32 {
    for tries in 1.. {
        redis::cmd("WATCH").arg(key).query_async::<()>(con).await.expect("WATCH");
        let current: Option<i64> = con.get(key).await.expect("GET");
        let next = current.unwrap_or(0) + 1;
        let done: Option<(String,)> = redis::pipe().atomic().set(key, next).query_async(con).await.expect("EXEC");
        if done.is_some() {
            return tries;
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_watch_increments_lose_nothing() {
    const CLIENTS: u32 = 6;
    const EACH: u32 = 20;
    let h = Harness::start(3, &[]).await;
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        // Clients on every node: followers forward WATCH and the transaction.
        let mut con = h.redis(client % 3).await;
        tasks.push(tokio::spawn(async move {
            let mut tries = 0;
            for _ in 0..EACH {
                tries += optimistic_incr(&mut con, "race:counter").await;
            }
            tries
        }));
    }
    let mut tries = 0;
    for task in tasks {
        tries += task.await.expect("client task");
    }
    let mut con = h.redis(0).await;
    let total: u32 = con.get("race:counter").await.expect("GET");
    assert_eq!(total, CLIENTS * EACH, "every EXEC that ran added one, and only those");
    assert!(tries > CLIENTS * EACH, "the clients never collided ({tries} tries): the race was not exercised");
}
