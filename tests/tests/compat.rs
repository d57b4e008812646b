//! Redis compatibility, differentially: the same scripts, sent as raw RESP,
//! get the same replies from Debian's `redis-server` and from Seshat.
//!
//! Each script starts with `FLUSHALL`, so both start empty. Deviations that
//! are Seshat's by design (one database, the value size limit) are tested in
//! the server's unit tests instead. `CLIENT LIST`, whose ids and addresses
//! differ by nature, is checked field by field.

mod support;

use support::redis_diff::{run_script, start_redis, RawConn};
use support::Harness;

/// Scripts whose every reply Redis defines exactly (no timing, no server details).
const SCRIPTS: &[&[&str]] = &[
    // SETBIT / GETBIT: growth, old values, argument errors in Redis's order.
    &[
        "FLUSHALL",
        "SETBIT b 7 1",
        "SETBIT b 7 1",
        "SETBIT b 7 0",
        "GETBIT b 7",
        "SETBIT b 100 1",
        "STRLEN b",
        "GETBIT b 100",
        "GETBIT b 4294967295",
        "GETBIT nokey 5",
        "SETBIT b -1 1",
        "SETBIT b 4294967296 1",
        "SETBIT b 1 2",
        "SETBIT b 1 01",
        "SETBIT b x 2",
        "GETBIT b x",
        "SET n 7",
        "INCR n",
        "SETBIT n 6 1",
        "GET n",
    ],
    // BITCOUNT: byte and bit ranges, negative indices, errors only for an existing key.
    &[
        "FLUSHALL",
        "SET s foobar",
        "BITCOUNT s",
        "BITCOUNT s 0 0",
        "BITCOUNT s 1 1 BIT",
        "BITCOUNT s 5 30 BIT",
        "BITCOUNT s -2 -1",
        "BITCOUNT s -1 -5",
        "BITCOUNT s -1 -5 nounit",
        "BITCOUNT s 1 2 nounit",
        "BITCOUNT s 1",
        "BITCOUNT s 1 2 3 4",
        "BITCOUNT s a b",
        "BITCOUNT s 0 a",
        "BITCOUNT s -100 100",
        "BITCOUNT s -100 -50",
        "BITCOUNT s -5 -10 BIT",
        "BITCOUNT s 0 -1 bit",
        "BITCOUNT s 3 1",
        "BITCOUNT s 46 46 BIT",
        "BITCOUNT nokey a b",
        "BITCOUNT nokey 1",
    ],
    // BITPOS: defaults, ranges, the zero padding past the end, errors.
    &[
        "FLUSHALL",
        "SET s foobar",
        "BITPOS s 1",
        "BITPOS s 0",
        "BITPOS s 2",
        "BITPOS s x",
        "BITPOS nokey 1",
        "BITPOS nokey 0",
        "BITPOS nokey 0 x",
        "BITPOS s 1 2",
        "BITPOS s 1 2 -1",
        "BITPOS s 1 2 -1 BYTE",
        "BITPOS s 1 7 15 BIT",
        "BITPOS s 0 7 15 BIT",
        "BITPOS s 0 1 1 BIT",
        "BITPOS s 1 x",
        "BITPOS s 1 0 x",
        "BITPOS s 1 0 1 x",
        "BITPOS s 1 0 x x",
        "BITPOS s 1 0 1 BIT 5",
        "BITPOS s 1 -1 -5",
        "BITPOS s 0 -100 100",
        "BITPOS s 1 100",
        "SETBIT ones 0 1",
        "SETBIT ones 1 1",
        "SETBIT ones 2 1",
        "SETBIT ones 3 1",
        "SETBIT ones 4 1",
        "SETBIT ones 5 1",
        "SETBIT ones 6 1",
        "SETBIT ones 7 1",
        "BITPOS ones 0",
        "BITPOS ones 0 0",
        "BITPOS ones 0 0 -1",
        "BITPOS ones 0 3 5 BIT",
        "BITPOS ones 0 3 BIT",
        "SETBIT z 20 0",
        "BITPOS z 1",
        "BITPOS z 0 1",
        "BITPOS z 1 -1 -1 BIT",
    ],
    // MEMORY: argument errors in Redis's order (options before the key), nil
    // for a missing key, and the command table's entries. The byte counts of
    // existing keys differ by design (another allocator layout).
    &[
        "FLUSHALL",
        "SET k v",
        "MEMORY USAGE nokey",
        "MEMORY USAGE nokey SAMPLES 3",
        "MEMORY USAGE nokey SAMPLES -1",
        "MEMORY USAGE k SAMPLES x",
        "MEMORY USAGE k SAMPLES",
        "MEMORY USAGE k FOO 1",
        "MEMORY USAGE",
        "MEMORY NOSUCH",
        "MEMORY",
        "MEMORY HELP x",
        "COMMAND INFO memory|usage memory|help",
    ],
    // CLIENT KILL's argument errors and the filters that match nobody.
    &[
        "CLIENT KILL 1.2.3.4:5",
        "CLIENT KILL ID 0",
        "CLIENT KILL ID x",
        "CLIENT KILL ID 999999",
        "CLIENT KILL TYPE foo",
        "CLIENT KILL TYPE master",
        "CLIENT KILL USER bob",
        "CLIENT KILL USER default ID 999999",
        "CLIENT KILL SKIPME maybe",
        "CLIENT KILL FOO bar",
        "CLIENT KILL ID 5 SKIPME",
        "CLIENT KILL",
        "CLIENT KILL ADDR 1.2.3.4:5 LADDR 1.2.3.4:6",
        "COMMAND INFO client|kill",
    ],
    // CLIENT LIST's filters (the lists themselves differ: ids and addresses).
    &[
        "CLIENT LIST TYPE master",
        "CLIENT LIST TYPE replica",
        "CLIENT LIST TYPE pubsub",
        "CLIENT LIST TYPE foo",
        "CLIENT LIST TYPE",
        "CLIENT LIST ID",
        "CLIENT LIST ID x",
        "CLIENT LIST ID 999999 -1",
        "CLIENT LIST FOO",
    ],
    // BITOP: zero padding, NOT's one source, an empty result deletes, no TTL kept.
    &[
        "FLUSHALL",
        "SET a foobar",
        "SET b abcdef",
        "SET c xy",
        "BITOP AND dest a b",
        "GET dest",
        "BITOP OR dest a b c",
        "GET dest",
        "BITOP XOR dest a c",
        "GET dest",
        "BITOP NOT dest c",
        "STRLEN dest",
        "BITOP NOT dest a b",
        "BITOP FOO dest a",
        "BITOP and dest nokey",
        "EXISTS dest",
        "SET dest2 x EX 100",
        "BITOP OR dest2 a",
        "TTL dest2",
        "BITOP AND dest3 a nokey",
        "BITCOUNT dest3",
        "SET n 12",
        "BITOP OR dest4 n",
        "GET dest4",
        "BITOP XOR dest5 nokey nokey2",
        "EXISTS dest5",
        "BITOP OR a a c",
        "GET a",
    ],
    // COPY keeps the value and the TTL, REPLACE overwrites; TOUCH counts repeats.
    &[
        "FLUSHALL",
        "SET s v",
        "COPY s s2",
        "GET s2",
        "COPY s s2",
        "SET s w",
        "COPY s s2 REPLACE",
        "GET s2",
        "COPY s s",
        "COPY s s2 DB 0 REPLACE",
        "COPY s s3 DB x",
        "COPY s s3 DB 99999999999",
        "COPY s s3 DB",
        "COPY s s3 FOO",
        "COPY nokey s4",
        "SET ex v EX 1000",
        "COPY ex ex2",
        "TTL ex2",
        "TOUCH s s s nokey",
        "TOUCH nokey",
        "EXISTS s3 s4",
    ],
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_get_the_replies_redis_gives() {
    let redis = start_redis().await;
    let h = Harness::start(1, &[]).await;
    let node = h.leader_among(&[0]).await;
    for (i, script) in SCRIPTS.iter().enumerate() {
        let expected = run_script(&redis.addr, script).await;
        let got = run_script(&h.resp_addr(node), script).await;
        for (line, (want, got)) in script.iter().zip(expected.iter().zip(&got)) {
            assert_eq!(got, want, "script {i}: {line}");
        }
    }
}

/// The `CLIENT LIST` fields (from its flattened `$…` reply) of the connection with id `id`.
fn client_fields(list: &str, id: &str) -> Vec<(String, String)> {
    let line = list
        .trim_start_matches('$')
        .lines()
        .find(|line| line.split(' ').any(|field| field == format!("id={id}")))
        .unwrap_or_else(|| panic!("client {id} not in {list}"));
    line.split(' ').filter_map(|f| f.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_list_shows_each_connection_s_last_command_and_transaction() {
    let h = Harness::start(1, &[]).await;
    let node = h.leader_among(&[0]).await;
    let addr = h.resp_addr(node);
    let mut busy = RawConn::connect(&addr).await;
    // What redis-py and go-redis send on connect, and what Redis 7.2 refuses.
    let setinfo = busy
        .run(&[
            "CLIENT SETINFO lib-name redis-py",
            "CLIENT SETINFO LIB-VER 5.0.1",
            "CLIENT SETINFO lib-name café",
            "CLIENT SETINFO lib-os linux",
            "CLIENT SETINFO lib-name",
        ])
        .await;
    assert_eq!(
        setinfo,
        [
            "+OK",
            "+OK",
            "-ERR lib-name cannot contain spaces, newlines or special characters.",
            "-ERR Unrecognized option 'lib-os'",
            "-ERR wrong number of arguments for 'client|setinfo' command",
        ]
    );
    let help = busy.run(&["CLIENT HELP"]).await.remove(0);
    assert!(help.starts_with('*') && help.contains("SETINFO <option> <value>"), "{help}");
    let help = busy.run(&["memory help"]).await.remove(0);
    assert!(help.starts_with('*') && help.contains("USAGE <key> [SAMPLES <count>]"), "{help}");
    let id = busy.run(&["CLIENT ID", "WATCH a b", "WATCH b", "MULTI", "SET a 1", "GET b"]).await[0]
        .trim_start_matches(':')
        .to_string();
    let mut observer = RawConn::connect(&addr).await;
    let list = observer.run(&["CLIENT LIST"]).await.remove(0);
    let fields = client_fields(&list, &id);
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap();
    assert_eq!(field("cmd"), "get", "{list}");
    assert_eq!(field("flags"), "x", "in MULTI: {list}");
    assert_eq!(field("multi"), "2", "two commands queued: {list}");
    assert_eq!(field("watch"), "2", "a key watched twice counts once: {list}");
    assert_eq!(field("laddr"), addr, "{list}");
    assert_eq!((field("lib-name"), field("lib-ver")), ("redis-py", "5.0.1"), "{list}");
    assert_ne!(field("fd"), "0", "{list}");
    // Filters: by id (in the order asked, unknown ids skipped) and by type.
    let only = observer.run(&[&format!("CLIENT LIST ID 999999 {id} {id}")]).await.remove(0);
    assert_eq!(only.matches(&format!("id={id} ")).count(), 2, "{only}");
    assert_eq!(only.lines().filter(|l| l.contains("id=")).count(), 2, "{only}");
    let normal = observer.run(&["CLIENT LIST TYPE normal"]).await.remove(0);
    assert_eq!(normal.lines().filter(|l| l.contains("id=")).count(), 2, "busy and observer: {normal}");
    busy.run(&["EXEC"]).await;
    let list = observer.run(&["CLIENT LIST"]).await.remove(0);
    let fields = client_fields(&list, &id);
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap();
    assert_eq!((field("cmd"), field("flags"), field("multi"), field("watch")), ("exec", "N", "-1", "0"), "{list}");
    let own = observer.run(&["CLIENT INFO"]).await.remove(0);
    assert!(own.contains(" cmd=client|info "), "{own}");
}

/// `CLIENT KILL` closes the clients it names, by id, by address (new and old
/// forms) or by local address, never the caller unless `SKIPME no`, in which
/// case the caller gets its reply first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_kill_closes_the_named_connections() {
    let h = Harness::start(1, &[]).await;
    let addr = h.resp_addr(h.leader_among(&[0]).await);
    let mut admin = RawConn::connect(&addr).await;
    let mut victims = Vec::new();
    for _ in 0..3 {
        let mut conn = RawConn::connect(&addr).await;
        let id = conn.run(&["CLIENT ID"]).await.remove(0).trim_start_matches(':').to_string();
        let info = conn.run(&["CLIENT INFO"]).await.remove(0);
        let peer = info.split(' ').find_map(|f| f.strip_prefix("addr=")).expect("addr field").to_string();
        victims.push((conn, id, peer));
    }
    let (mut by_id, mut by_addr, mut by_old_form) = (victims.remove(0), victims.remove(0), victims.remove(0));
    assert_eq!(admin.run(&[&format!("CLIENT KILL ID {} SKIPME yes", by_id.1)]).await, [":1"]);
    assert_eq!(admin.run(&[&format!("CLIENT KILL ADDR {} LADDR {addr}", by_addr.2)]).await, [":1"]);
    assert_eq!(admin.run(&[&format!("CLIENT KILL {}", by_old_form.2)]).await, ["+OK"]);
    for (conn, id, _) in [&mut by_id, &mut by_addr, &mut by_old_form] {
        assert!(conn.is_closed().await, "client {id} was not closed");
    }
    // The caller is spared by default, and closed after its reply with SKIPME no.
    let own = admin.run(&["CLIENT ID"]).await.remove(0).trim_start_matches(':').to_string();
    assert_eq!(admin.run(&[&format!("CLIENT KILL ID {own}")]).await, [":0"]);
    assert_eq!(admin.run(&[&format!("CLIENT KILL ID {own} SKIPME no")]).await, [":1"]);
    assert!(admin.is_closed().await, "the caller was not closed after its reply");
}
