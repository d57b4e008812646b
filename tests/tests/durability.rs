//! Durability on real processes and real files:
//! - every acknowledged write survives kill -9 of all nodes at once;
//! - a torn or corrupted log tail is detected and handled without serving wrong data;
//! - a full disk turns writes into errors and the node recovers when space returns.

use std::path::{Path, PathBuf};
use std::time::Duration;

use seshat_tests::checker::check_history;
use seshat_tests::cluster::{ClusterOptions, TestCluster};
use seshat_tests::history::Clock;
use seshat_tests::kv::{Kv, KvError};
use seshat_tests::linearizability::Limits;
use seshat_tests::verify::{check_lost_writes, final_reads};
use seshat_tests::wait::poll;
use seshat_tests::workload::{self, WorkloadConfig};

const BIN: &str = env!("CARGO_BIN_EXE_seshat-node");
const T: Duration = Duration::from_secs(5);

/// These tests each run whole clusters: one at a time keeps two CPUs honest.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_test_writer()
        .try_init();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acked_writes_survive_kill_9_of_all_nodes_at_once() {
    let _serial = SERIAL.lock().await;
    init_tracing();
    let mut c = TestCluster::start(ClusterOptions::new(BIN, 3)).await.expect("cluster");
    let clock = Clock::new();
    let cfg = WorkloadConfig { clients: 8, key_prefix: "killall".into(), ..WorkloadConfig::default() };
    let targets = c.resp_addrs();
    let wl = workload::start(&cfg, &targets, clock);
    for round in 0..5 {
        // Let acknowledged writes accumulate, then pull the plug on everyone.
        let before = wl.progress().ok.load(std::sync::atomic::Ordering::Relaxed);
        poll(Duration::from_secs(30), "acknowledged writes", || async {
            let now = wl.progress().ok.load(std::sync::atomic::Ordering::Relaxed);
            (now >= before + 600).then_some(())
        })
        .await
        .expect("workload makes progress");
        for i in 0..c.len() {
            c.kill(i).expect("kill");
        }
        tracing::info!(round, "killed all nodes");
        for i in 0..c.len() {
            c.spawn(i).expect("spawn");
        }
        for i in 0..c.len() {
            c.wait_up(i, Duration::from_secs(30)).await.expect("node back");
        }
        c.wait_converged(Duration::from_secs(60)).await.expect("converged after restart");
    }
    let mut history = wl.stop().await;
    let finals = final_reads(&cfg, &targets, clock, &mut history, Duration::from_secs(30)).await.expect("final reads");
    let lost = check_lost_writes(&history, &finals);
    let report = check_history(&history, Limits::default());
    println!("{:?}\n{report}\nlost: {lost:?}", history.stats());
    if !(lost.is_clean() && report.is_linearizable()) {
        let dir = c.keep_dir();
        println!("data and logs kept in {}\n{}", dir.display(), c.log_tails(30));
    }
    assert!(lost.acked > 1000, "too few acknowledged writes: {}", lost.acked);
    assert!(lost.is_clean(), "lost acknowledged writes after kill -9 of all nodes: {lost:#?}");
    assert!(report.is_linearizable(), "{report}");
}

/// Every `wal-*.log` under `dir`, oldest first (names carry the first index).
fn wal_segments(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "log")
                && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("wal-"))
            {
                out.push(p);
            }
        }
    }
    out.sort_by_key(|p| p.file_name().map(|n| n.to_owned()));
    out
}

fn newest_segment(dir: &Path) -> PathBuf {
    wal_segments(dir).pop().unwrap_or_else(|| panic!("no wal-*.log under {}", dir.display()))
}

/// Where a segment's records end: the WAL reserves zeroed space past them,
/// so the file's length is not the end of the log. (A record ending in zero
/// bytes makes this a few bytes short, which is still inside that record.)
fn records_end(path: &Path) -> u64 {
    let bytes = std::fs::read(path).expect("read segment");
    bytes.iter().rposition(|b| *b != 0).map_or(0, |p| p as u64 + 1)
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).expect("read segment");
    let i = offset as usize;
    bytes[i] ^= 0x5a;
    std::fs::write(path, bytes).expect("write segment");
}

async fn write_keys(addr: &str, prefix: &str, n: usize) {
    let mut kv = Kv::connect(addr, T).await.expect("connect");
    for i in 0..n {
        kv.set(&format!("{prefix}{i}"), format!("value-{i}")).await.expect("acked SET");
    }
}

/// Read keys `prefix0..n` through `addr`; `Ok(values)`.
async fn read_keys(addr: &str, prefix: &str, n: usize) -> Result<Vec<Option<String>>, KvError> {
    let mut kv = Kv::connect(addr, T).await?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(kv.get(&format!("{prefix}{i}")).await?.map(|b| String::from_utf8_lossy(&b).into_owned()));
    }
    Ok(out)
}

/// Make node `i` the leader and read every key there, so that what is
/// checked is node `i`'s own state machine.
async fn assert_node_serves_all(c: &TestCluster, i: usize, prefix: &str, n: usize) {
    poll(Duration::from_secs(30), "leadership on the repaired node", || async {
        let _ = c.transfer_leader(Some(i)).await;
        (c.leader().await == Some(i)).then_some(())
    })
    .await
    .expect("repaired node becomes leader");
    let values = read_keys(&c.node(i).addr.resp_addr, prefix, n).await.expect("reads");
    for (k, v) in values.iter().enumerate() {
        assert_eq!(v.as_deref(), Some(format!("value-{k}").as_str()), "key {prefix}{k} on node {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn damaged_follower_log_is_detected_and_never_serves_wrong_data() {
    let _serial = SERIAL.lock().await;
    init_tracing();
    let mut c = TestCluster::start(ClusterOptions::new(BIN, 3)).await.expect("cluster");
    let n = 300;
    write_keys(&c.node(0).addr.resp_addr, "d:", n).await;
    c.wait_converged(Duration::from_secs(30)).await.expect("converged");
    let leader = c.leader().await.expect("leader");
    let f = (leader + 1) % c.len();

    // 1. Torn tail: the last bytes of the newest segment are gone.
    c.kill(f).unwrap();
    let seg = newest_segment(&c.node(f).data_dir);
    let len = records_end(&seg);
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(len - 5).unwrap();
    c.spawn(f).unwrap();
    let exit = c.wait_up_or_exit(f, Duration::from_secs(30)).await.expect("up or exit");
    assert!(exit.is_none(), "a torn tail must be cut off, not refuse to start: {exit:?}\n{}", c.log_tails(30));
    c.wait_converged(Duration::from_secs(60)).await.expect("converged after torn tail");
    assert_node_serves_all(&c, f, "d:", n).await;

    // 2. A flipped byte in the middle of the log: not a torn write.
    let leader = c.leader().await.expect("leader");
    let f = (leader + 1) % c.len();
    c.kill(f).unwrap();
    let seg = wal_segments(&c.node(f).data_dir).remove(0);
    let len = records_end(&seg);
    flip_byte(&seg, len / 2);
    c.spawn(f).unwrap();
    match c.wait_up_or_exit(f, Duration::from_secs(30)).await.expect("up or exit") {
        Some(status) => {
            // Detected: refused to start. The others keep serving everything.
            assert!(!status.success(), "refusal must be an error exit");
            println!("node {f} refused its corrupted log: {status}");
            let values = read_keys(&c.node(leader).addr.resp_addr, "d:", n).await.expect("reads");
            assert!(values.iter().enumerate().all(|(k, v)| v.as_deref() == Some(format!("value-{k}").as_str())));
            // The operator's repair: a new identity on an empty volume.
            c.wipe(f).unwrap();
            let voters: Vec<usize> = c.voters().await.unwrap().into_iter().filter(|&i| i != f).collect();
            c.set_voters(&voters).await.expect("remove damaged member");
            c.spawn(f).unwrap();
            c.add_learner(f).await.expect("re-add as learner");
            c.set_voters(&(0..c.len()).collect::<Vec<_>>()).await.expect("promote");
        }
        None => println!("node {f} came up despite mid-log damage; checking its data"),
    }
    c.wait_converged(Duration::from_secs(60)).await.expect("converged after repair");
    assert_node_serves_all(&c, f, "d:", n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_node_damaged_tail_serves_a_clean_prefix() {
    let _serial = SERIAL.lock().await;
    init_tracing();
    let mut c = TestCluster::start(ClusterOptions::new(BIN, 1)).await.expect("cluster");
    let n = 200;
    let addr = c.node(0).addr.resp_addr.clone();
    write_keys(&addr, "s:", n).await;
    c.kill(0).unwrap();
    // Damage inside the last record (its payload ends the file).
    let seg = newest_segment(&c.node(0).data_dir);
    let len = records_end(&seg);
    flip_byte(&seg, len - 3);
    c.spawn(0).unwrap();
    if let Some(status) = c.wait_up_or_exit(0, Duration::from_secs(30)).await.expect("up or exit") {
        // Refusing is a safe answer too; it must say so with an error exit.
        assert!(!status.success());
        println!("refused to start on a damaged tail: {status}\n{}", c.log_tails(10));
        return;
    }
    c.wait_for_leader(Duration::from_secs(30)).await.expect("leader");
    let values =
        poll(Duration::from_secs(30), "reads after restart", || async { read_keys(&addr, "s:", n).await.ok() })
            .await
            .unwrap();
    // No wrong value ever; missing keys only at the end (a prefix survived).
    let present = values.iter().take_while(|v| v.is_some()).count();
    for (k, v) in values.iter().enumerate() {
        match v {
            Some(v) => assert_eq!(v, &format!("value-{k}"), "wrong data for s:{k}"),
            None => assert!(k >= present, "hole at s:{k}"),
        }
    }
    assert!(values[present..].iter().all(Option::is_none), "not a prefix: {values:?}");
    println!("{present}/{n} keys survived a damaged last record");
}

/// A tmpfs mounted on a directory for the test's lifetime.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_owned()))
    }

    fn free_bytes(&self) -> u64 {
        let out = std::process::Command::new("df").args(["-B1", "--output=avail"]).arg(&self.0).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_disk_turns_writes_into_errors_and_recovers() {
    let _serial = SERIAL.lock().await;
    init_tracing();
    let mut c = TestCluster::prepare(ClusterOptions::new(BIN, 1)).expect("prepare");
    let Some(fs) = Tmpfs::mount(&c.node(0).data_dir, "64m") else {
        eprintln!("SKIP: cannot mount a tmpfs (not root?)");
        return;
    };
    c.spawn_all().unwrap();
    c.bootstrap().await.expect("bootstrap");
    let addr = c.node(0).addr.resp_addr.clone();
    write_keys(&addr, "f:", 50).await;

    // Leave ~1 MiB free, then write 16 KiB values until the disk is full.
    let ballast = c.node(0).data_dir.join("ballast");
    let fill = fs.free_bytes().saturating_sub(1 << 20);
    std::fs::write(&ballast, vec![0u8; fill as usize]).expect("ballast");
    // The write that hits ENOSPC may stay pending (it is appended once space
    // returns) and end with an indeterminate TRYAGAIN after the server's write
    // timeout; the writes after it must be refused outright (MISCONF). The
    // client waits longer than the server's timeout so that a hang shows up
    // as a client-side timeout, never as a server error.
    let mut kv = Kv::connect(&addr, Duration::from_secs(15)).await.unwrap();
    let big = "x".repeat(16 * 1024);
    let mut acked = Vec::new();
    let mut errors = Vec::new();
    for i in 0..2000 {
        match kv.set(&format!("big:{i}"), &big).await {
            Ok(()) => acked.push(i),
            Err(e) => {
                let refused = matches!(&e, KvError::Redis(r) if r.code() == Some("MISCONF"));
                assert!(!matches!(e, KvError::Timeout(_)), "a full disk must produce an error reply, not a hang: {e}");
                errors.push(e.to_string());
                if refused || errors.len() >= 5 {
                    break;
                }
            }
        }
    }
    println!("after {} acked 16 KiB writes: {errors:?}", acked.len());
    assert!(
        errors.last().is_some_and(|e| e.contains("MISCONF")),
        "writes must be refused with MISCONF once the disk is full: {errors:?}"
    );
    // Reads keep working and the process is alive.
    let mut kv = Kv::connect(&addr, T).await.expect("still accepting connections");
    assert_eq!(kv.get("f:7").await.unwrap().as_deref(), Some(&b"value-7"[..]));
    assert!(c.node(0).is_running());

    // Space returns: writes work again without a restart.
    std::fs::remove_file(&ballast).unwrap();
    poll(Duration::from_secs(30), "writes to succeed again", || async {
        let mut kv = Kv::connect(&addr, T).await.ok()?;
        kv.set("after-full", "ok").await.ok()
    })
    .await
    .expect("node recovers when space returns");

    // Everything acknowledged before, during and after is intact, also after a crash.
    c.kill(0).unwrap();
    c.spawn(0).unwrap();
    c.wait_up(0, Duration::from_secs(30)).await.unwrap();
    c.wait_for_leader(Duration::from_secs(30)).await.unwrap();
    let values =
        poll(Duration::from_secs(30), "reads after restart", || async { read_keys(&addr, "f:", 50).await.ok() })
            .await
            .unwrap();
    assert!(values.iter().enumerate().all(|(k, v)| v.as_deref() == Some(format!("value-{k}").as_str())));
    let mut kv = Kv::connect(&addr, T).await.unwrap();
    for i in acked {
        assert_eq!(kv.get(&format!("big:{i}")).await.unwrap().map(|b| b.len()), Some(big.len()), "big:{i}");
    }
    assert_eq!(kv.get("after-full").await.unwrap().as_deref(), Some(&b"ok"[..]));
    // Unmount before the cluster removes its directory (a mountpoint cannot be removed).
    c.kill(0).unwrap();
    drop(fs);
    drop(c);
}
