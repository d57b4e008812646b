//! The harness judged against servers whose behaviour is known: a tiny
//! in-process RESP server that is linearizable by construction (one mutex),
//! and broken variants of it (stale reads, lost writes). The real workload
//! and checker must pass the first and catch each of the others, over real
//! sockets, so that a green chaos run against Seshat means something.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seshat_tests::checker::check_history;
use seshat_tests::history::Clock;
use seshat_tests::linearizability::Limits;
use seshat_tests::verify::{check_lost_writes, final_reads};
use seshat_tests::workload::{self, WorkloadConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How the fake server misbehaves.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// Correct: every command runs atomically on one map.
    None,
    /// GETs read a copy of the map refreshed only every 50 ms (a lagging replica).
    StaleReads,
    /// One plain SET in 50 is acknowledged but not applied.
    LoseWrites,
    /// One command in 30 is applied, then the connection is dropped without a
    /// reply: the client sees an unknown outcome, which is still correct.
    DropReplies,
}

struct Db {
    live: HashMap<Vec<u8>, Vec<u8>>,
    stale: HashMap<Vec<u8>, Vec<u8>>,
}

async fn read_request(r: &mut BufReader<TcpStream>) -> Option<Vec<Vec<u8>>> {
    let mut line = String::new();
    r.read_line(&mut line).await.ok()?;
    let n: usize = line.trim().strip_prefix('*')?.parse().ok()?;
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        line.clear();
        r.read_line(&mut line).await.ok()?;
        let len: usize = line.trim().strip_prefix('$')?.parse().ok()?;
        let mut buf = vec![0; len + 2];
        r.read_exact(&mut buf).await.ok()?;
        buf.truncate(len);
        args.push(buf);
    }
    Some(args)
}

fn bulk(v: Option<&Vec<u8>>) -> Vec<u8> {
    match v {
        None => b"$-1\r\n".to_vec(),
        Some(v) => {
            let mut out = format!("${}\r\n", v.len()).into_bytes();
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
            out
        }
    }
}

/// Execute one command; `None` means "drop the connection without replying".
fn execute(db: &Mutex<Db>, fault: Fault, counter: &AtomicU64, args: &[Vec<u8>]) -> Option<Vec<u8>> {
    let n = counter.fetch_add(1, Ordering::Relaxed);
    let mut db = db.lock().unwrap();
    let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
    let key = args.get(1).cloned().unwrap_or_default();
    let reply = match name.as_str() {
        "GET" if fault == Fault::StaleReads => bulk(db.stale.get(&key)),
        "GET" => bulk(db.live.get(&key)),
        "SET" => {
            let value = args[2].clone();
            let opts: Vec<String> = args[3..].iter().map(|a| String::from_utf8_lossy(a).to_ascii_uppercase()).collect();
            let exists = db.live.contains_key(&key);
            let allowed = !(opts.contains(&"NX".into()) && exists || opts.contains(&"XX".into()) && !exists);
            let old = db.live.get(&key).cloned();
            let lose = fault == Fault::LoseWrites && opts.is_empty() && n % 50 == 0;
            if allowed && !lose {
                db.live.insert(key, value);
            }
            if opts.contains(&"GET".into()) {
                bulk(old.as_ref())
            } else if allowed {
                b"+OK\r\n".to_vec()
            } else {
                b"$-1\r\n".to_vec()
            }
        }
        "INCR" => {
            let cur: i64 = db.live.get(&key).map_or(0, |v| String::from_utf8_lossy(v).parse().unwrap());
            db.live.insert(key, (cur + 1).to_string().into_bytes());
            format!(":{}\r\n", cur + 1).into_bytes()
        }
        "DEL" => format!(":{}\r\n", db.live.remove(&key).is_some() as i64).into_bytes(),
        _ => b"-ERR unknown command\r\n".to_vec(),
    };
    if fault == Fault::DropReplies && n % 30 == 29 {
        return None;
    }
    Some(reply)
}

/// Start the fake server; returns its address.
async fn fake_server(fault: Fault) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let db = Arc::new(Mutex::new(Db { live: HashMap::new(), stale: HashMap::new() }));
    let refresher = db.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut db = refresher.lock().unwrap();
            db.stale = db.live.clone();
        }
    });
    let counter = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let (db, counter) = (db.clone(), counter.clone());
            tokio::spawn(async move {
                let mut r = BufReader::new(s);
                while let Some(args) = read_request(&mut r).await {
                    match execute(&db, fault, &counter, &args) {
                        Some(reply) => {
                            if r.get_mut().write_all(&reply).await.is_err() {
                                return;
                            }
                        }
                        None => return,
                    }
                }
            });
        }
    });
    addr
}

/// Run the real workload against a fake server and check the result.
async fn judge(fault: Fault) -> (bool, bool) {
    let addr = fake_server(fault).await;
    let cfg = WorkloadConfig {
        clients: 8,
        registers: 2,
        conditionals: 1,
        counters: 1,
        key_prefix: format!("{fault:?}"),
        op_timeout: Duration::from_secs(1),
        think: Duration::from_millis(2),
        error_backoff: Duration::from_millis(10),
        ..WorkloadConfig::default()
    };
    let clock = Clock::new();
    let targets = vec![addr];
    let wl = workload::start(&cfg, &targets, clock);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut history = wl.stop().await;
    let finals = final_reads(&cfg, &targets, clock, &mut history, Duration::from_secs(5)).await.unwrap();
    let stats = history.stats();
    assert!(stats.ok > 500, "{fault:?}: too few operations: {stats:?}");
    let lost = check_lost_writes(&history, &finals);
    let report = check_history(&history, Limits::default());
    println!("{fault:?}: {stats:?}\n{report}lost: {} phantom: {}", lost.lost.len(), lost.phantom.len());
    assert_eq!(report.undecided().count(), 0, "{fault:?}: checker undecided\n{report}");
    (report.is_linearizable(), lost.is_clean())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_linearizable_server_passes() {
    assert_eq!(judge(Fault::None).await, (true, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_replies_are_unknown_not_violations() {
    assert_eq!(judge(Fault::DropReplies).await, (true, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_reads_are_caught() {
    let (linearizable, _) = judge(Fault::StaleReads).await;
    assert!(!linearizable, "the checker missed stale reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_writes_are_caught() {
    let (linearizable, clean) = judge(Fault::LoseWrites).await;
    assert!(!linearizable, "the checker missed acknowledged-but-lost writes");
    // Whether the *final* value exposes a loss depends on which write was
    // lost last; the linearizability check is the one that must fire.
    let _ = clean;
}
