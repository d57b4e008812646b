//! `LocalCluster` process management with stand-in server binaries (shell scripts),
//! so it is tested without building the real server: arguments, logs, data dirs,
//! stop / kill / pause / wipe / restart, supervision bookkeeping, cleanup on drop.
//! The real server under the same code is exercised by `tests/tests/control_local.rs`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use seshat_control::driver::Workload;
use seshat_control::local::{binary_identity, free_port_bases, LocalCluster, LocalConfig, NodeState};

/// A fake `seshat`: logs its arguments, exits 0 on SIGTERM (or ignores it).
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

const POLITE: &str = "echo \"args: $@\"\ntrap 'echo got-term; exit 0' TERM\nwhile true; do sleep 0.05; done";
const STUBBORN: &str = "trap '' TERM\necho ready\nwhile true; do sleep 0.05; done";

fn cluster(dir: &Path, binary: PathBuf) -> LocalCluster {
    let (resp, http, raft) = free_port_bases("127.0.0.1", 9).unwrap();
    let mut cfg = LocalConfig::new(binary, 3);
    cfg.data_dir = dir.join("data");
    cfg.resp_port = resp;
    cfg.http_port = http;
    cfg.raft_port = raft;
    cfg.admin_token = Some("tok".into());
    cfg.extra_args = vec!["--follower-mode".into(), "redirect".into()];
    cfg.stop_grace = Duration::from_millis(300);
    LocalCluster::new(cfg).unwrap()
}

/// The process state letter from `/proc/<pid>/stat` (`None` once gone).
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

fn alive(pid: u32) -> bool {
    proc_state(pid).is_some_and(|s| s != 'Z')
}

/// Polls `f` for up to 10 s.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn log_of(c: &LocalCluster, i: u32) -> String {
    std::fs::read_to_string(c.config().node_dir(i).join("server.log")).unwrap_or_default()
}

#[tokio::test]
async fn spawns_nodes_with_the_serve_contract_and_observes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = script(tmp.path(), "seshat", POLITE);
    let c = cluster(tmp.path(), bin.clone());
    c.scale_to(3).await.unwrap();
    for i in 0..3 {
        eventually("args logged", || log_of(&c, i).contains("args:")).await;
        let log = log_of(&c, i);
        let a = c.addr(i);
        for want in [
            "serve".to_string(),
            format!("--data-dir {}", c.config().node_dir(i).display()),
            format!("--resp-addr {}", a.resp_addr),
            format!("--http-addr {}", a.http_addr),
            format!("--raft-addr {}", a.raft_addr),
            "--advertise-host 127.0.0.1".into(),
            "--admin-token tok".into(),
            "--follower-mode redirect".into(),
        ] {
            assert!(log.contains(&want), "node {i} log {log:?} lacks {want:?}");
        }
    }
    let ws = c.observe().await.unwrap();
    assert_eq!(ws.replicas, 3);
    assert_eq!(ws.slots.len(), 9);
    let version = binary_identity(&bin).unwrap();
    for s in &ws.slots {
        let wanted = s.ordinal < 3;
        assert_eq!(s.exists, wanted);
        assert_eq!(s.volume, wanted);
        assert_eq!(s.version.as_deref(), wanted.then_some(version.as_str()));
        assert_eq!(s.addr, c.addr(s.ordinal));
    }
    // Ports are base + ordinal.
    let base: u16 = c.addr(0).http_addr.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(c.addr(2).http_addr, format!("127.0.0.1:{}", base + 2));

    // Scale down stops the removed ordinals gracefully.
    let pid2 = c.pid(2).await.unwrap();
    c.scale_to(2).await.unwrap();
    assert!(!alive(pid2));
    assert_eq!(c.state(2).await, Some(NodeState::Stopped));
    assert!(log_of(&c, 2).contains("got-term"));
    c.stop_all().await;
}

#[tokio::test]
async fn stop_kill_pause_restart_wipe_and_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cluster(tmp.path(), script(tmp.path(), "seshat", POLITE));
    c.scale_to(3).await.unwrap();

    // SIGSTOP / SIGCONT.
    let pid = c.pid(1).await.unwrap();
    c.pause_node(1).await.unwrap();
    eventually("stopped state", || proc_state(pid) == Some('T')).await;
    c.resume_node(1).await.unwrap();
    eventually("running again", || proc_state(pid) != Some('T')).await;

    // A paused node still stops (SIGCONT follows SIGTERM).
    c.pause_node(1).await.unwrap();
    c.stop_node(1).await.unwrap();
    assert!(!alive(pid));

    // kill -9 is a crash: Exited, reported for supervision, restartable.
    let pid0 = c.pid(0).await.unwrap();
    c.kill_node(0).await.unwrap();
    assert!(!alive(pid0));
    assert!(matches!(c.state(0).await, Some(NodeState::Exited(_))));
    assert_eq!(c.exited_nodes().await, vec![0]);
    c.start_node(0).await.unwrap();
    assert_eq!(c.state(0).await, Some(NodeState::Running));
    assert!(c.exited_nodes().await.is_empty());

    // Wipe: refused while running; keeps only the log.
    assert!(c.wipe_node(0).await.is_err());
    let dir1 = c.config().node_dir(1);
    std::fs::write(dir1.join("node_id"), "42").unwrap();
    std::fs::create_dir_all(dir1.join("raft/log")).unwrap();
    c.wipe_node(1).await.unwrap();
    let left: Vec<_> =
        std::fs::read_dir(&dir1).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(left, vec!["server.log".to_string()]);

    // Restart on a new binary: new version in the observation.
    let v2 = c.set_binary(script(tmp.path(), "seshat-v2", POLITE)).await.unwrap();
    c.restart_node(2).await.unwrap();
    let ws = c.observe().await.unwrap();
    assert_eq!(ws.slots[2].version.as_deref(), Some(v2.as_str()));
    assert_ne!(ws.slots[0].version, ws.slots[2].version);

    // Delete a volume: refused while running, fine once stopped.
    assert!(c.delete_volume(2).await.is_err());
    c.stop_node(2).await.unwrap();
    c.delete_volume(2).await.unwrap();
    assert!(!c.config().node_dir(2).exists());
    c.stop_all().await;
}

#[tokio::test]
async fn sigterm_ignored_escalates_to_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cluster(tmp.path(), script(tmp.path(), "seshat", STUBBORN));
    c.scale_to(1).await.unwrap();
    let pid = c.pid(0).await.unwrap();
    // Only once the trap is installed does SIGTERM get ignored.
    eventually("trap installed", || log_of(&c, 0).contains("ready")).await;
    let started = std::time::Instant::now();
    c.stop_node(0).await.unwrap();
    assert!(!alive(pid));
    assert!(started.elapsed() >= Duration::from_millis(300), "grace respected");
}

#[tokio::test]
async fn reap_reports_nodes_that_exit_on_their_own() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cluster(tmp.path(), script(tmp.path(), "seshat", "exit 3"));
    c.scale_to(2).await.unwrap();
    let mut reaped = vec![];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while reaped.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "reaped {reaped:?}");
        reaped.extend(c.reap().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reaped.iter().all(|(_, s)| s.and_then(|s| s.code()) == Some(3)));
    assert_eq!(c.exited_nodes().await, vec![0, 1]);
}

#[tokio::test]
async fn drop_kills_every_child() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cluster(tmp.path(), script(tmp.path(), "seshat", STUBBORN));
    c.scale_to(3).await.unwrap();
    let mut pids = vec![];
    for i in 0..3 {
        pids.push(c.pid(i).await.unwrap());
    }
    drop(c);
    eventually("children gone", || pids.iter().all(|p| !alive(*p))).await;
}

#[test]
fn rejects_bad_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = script(tmp.path(), "seshat", POLITE);
    let mut cfg = LocalConfig::new(&bin, 0);
    cfg.data_dir = tmp.path().join("d");
    assert!(LocalCluster::new(cfg.clone()).is_err());
    cfg.nodes = 3;
    cfg.http_port = 65_530;
    assert!(LocalCluster::new(cfg.clone()).is_err());
    cfg.http_port = 8001;
    cfg.binary = tmp.path().join("missing");
    assert!(LocalCluster::new(cfg).is_err());
}
