//! Hostile clients against a real server process: huge declared lengths,
//! protocol garbage, slow-loris, thousands of idle connections, a client that
//! never reads. In every case the server's memory (VmRSS) stays bounded and
//! well-behaved clients keep being served.

use std::time::Duration;

use seshat_tests::cluster::{ClusterOptions, TestCluster};
use seshat_tests::kv::Kv;
use seshat_tests::process::rss_kib;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_seshat-node");
const T: Duration = Duration::from_secs(5);

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn one_node() -> TestCluster {
    TestCluster::start(ClusterOptions::new(BIN, 1)).await.expect("cluster")
}

fn rss(c: &TestCluster) -> u64 {
    rss_kib(c.node(0).pid().expect("running")).expect("rss")
}

/// A well-behaved client still gets answers (and its writes land).
async fn assert_served(c: &TestCluster, tag: &str) {
    let mut kv = Kv::connect(&c.node(0).addr.resp_addr, T).await.expect("connect");
    assert!(kv.ping().await, "PING failed ({tag})");
    kv.set(tag, "v").await.expect("SET");
    assert_eq!(kv.get(tag).await.expect("GET").as_deref(), Some(&b"v"[..]));
}

/// Read whatever the server sends until it closes or goes quiet for `quiet`.
async fn read_until_close(s: &mut TcpStream, quiet: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(quiet, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn huge_declared_lengths_get_errors_and_cost_nothing() {
    let _serial = SERIAL.lock().await;
    let c = one_node().await;
    let addr = c.node(0).addr.resp_addr.clone();
    let before = rss(&c);

    // 1 GiB declared bulk: over the 512 MiB protocol limit.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1073741824\r\n").await.unwrap();
    let (reply, closed) = read_until_close(&mut s, T).await;
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("-ERR Protocol error"), "reply: {text:?}");
    assert!(closed, "an unframeable stream must be closed");

    // 1 GiB declared multibulk count, and a declared length of 500 MB that is
    // only trickled: the server must not reserve what it has not received.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"*1073741824\r\n").await.unwrap();
    let (reply, _) = read_until_close(&mut s, T).await;
    assert!(String::from_utf8_lossy(&reply).starts_with("-ERR Protocol error"), "{reply:?}");
    let mut trickle = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$500000000\r\n").await.unwrap();
        s.write_all(&vec![b'x'; 64 * 1024]).await.unwrap();
        trickle.push(s);
    }
    assert_served(&c, "after-huge").await;
    let after = rss(&c);
    println!("RSS {before} KiB -> {after} KiB with 20 clients each declaring 500 MB");
    assert!(after < before + 128 * 1024, "RSS grew from {before} to {after} KiB");
    drop(trickle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deep_nesting_and_garbage_are_refused() {
    let _serial = SERIAL.lock().await;
    let c = one_node().await;
    let addr = c.node(0).addr.resp_addr.clone();
    let before = rss(&c);
    // Requests are flat arrays of bulk strings: a nested header is an error.
    let nested = b"*1\r\n".repeat(200_000);
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let _ = s.write_all(&nested).await;
    let (reply, closed) = read_until_close(&mut s, T).await;
    assert!(String::from_utf8_lossy(&reply).starts_with("-ERR Protocol error"), "{reply:?}");
    assert!(closed);
    // RESP3 aggregates nested a million deep, sent as a "request".
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let _ = s.write_all(&b"%1\r\n".repeat(250_000)).await;
    let _ = read_until_close(&mut s, T).await;
    // An inline request without end: must hit the inline length limit.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let _ = s.write_all(&vec![b'a'; 1 << 20]).await;
    let (reply, closed) = read_until_close(&mut s, T).await;
    assert!(String::from_utf8_lossy(&reply).contains("too big inline request"), "{reply:?}");
    assert!(closed);
    // Random bytes from many clients at once.
    let mut garbage = Vec::new();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for _ in 0..64 * 1024 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        garbage.push(x as u8);
    }
    for chunk in garbage.chunks(4096) {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let _ = s.write_all(chunk).await;
        let _ = read_until_close(&mut s, Duration::from_millis(200)).await;
    }
    assert_served(&c, "after-garbage").await;
    let after = rss(&c);
    assert!(after < before + 64 * 1024, "RSS grew from {before} to {after} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_loris_clients_do_not_starve_others() {
    let _serial = SERIAL.lock().await;
    let c = one_node().await;
    let addr = c.node(0).addr.resp_addr.clone();
    let request = b"*3\r\n$3\r\nSET\r\n$5\r\nloris\r\n$5\r\nslow!\r\n";
    let mut lorises = Vec::new();
    for _ in 0..200 {
        lorises.push(TcpStream::connect(&addr).await.unwrap());
    }
    // Every loris sends one byte per round; between rounds, a normal client
    // must be served. No timing assertion: "served" = within the 5 s timeout.
    for (round, byte) in request.iter().enumerate() {
        for s in &mut lorises {
            s.write_all(&[*byte]).await.unwrap();
        }
        if round % 8 == 0 {
            assert_served(&c, &format!("loris-round-{round}")).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Their requests complete normally.
    for s in &mut lorises {
        let mut buf = [0u8; 5];
        tokio::time::timeout(T, s.read_exact(&mut buf)).await.expect("reply").unwrap();
        assert_eq!(&buf, b"+OK\r\n");
    }
}

fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: get/setrlimit with a valid pointer to a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = want.min(lim.rlim_max);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_thousand_idle_connections() {
    let _serial = SERIAL.lock().await;
    // The server inherits this limit: raise it before it starts.
    let limit = raise_nofile(16_384);
    assert!(limit >= 11_000, "RLIMIT_NOFILE hard limit too low: {limit}");
    let c = one_node().await;
    let addr = c.node(0).addr.resp_addr.clone();
    let before = rss(&c);
    let mut idle = Vec::with_capacity(5000);
    for i in 0..5000 {
        let s = tokio::time::timeout(T, TcpStream::connect(&addr))
            .await
            .unwrap_or_else(|_| panic!("connect #{i} timed out"))
            .unwrap_or_else(|e| panic!("connect #{i}: {e}"));
        idle.push(s);
    }
    assert_served(&c, "with-5000-idle").await;
    // Idle connections are alive, not silently dropped: sample a few.
    for s in idle.iter_mut().step_by(500) {
        s.write_all(b"PING\r\n").await.unwrap();
        let mut buf = [0u8; 7];
        tokio::time::timeout(T, s.read_exact(&mut buf)).await.expect("PONG").unwrap();
        assert_eq!(&buf, b"+PONG\r\n");
    }
    let after = rss(&c);
    let per_conn = (after.saturating_sub(before)) * 1024 / 5000;
    println!("RSS {before} KiB -> {after} KiB with 5000 idle connections ({per_conn} B each)");
    assert!(per_conn < 64 * 1024, "{per_conn} bytes per idle connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_that_never_reads_replies_is_bounded() {
    let _serial = SERIAL.lock().await;
    let c = one_node().await;
    let addr = c.node(0).addr.resp_addr.clone();
    let mut kv = Kv::connect(&addr, T).await.unwrap();
    kv.set("big", "y".repeat(60 * 1024)).await.unwrap();
    let before = rss(&c);
    // Pipeline GETs of a 60 KiB value and never read: 400,000 of them would be
    // 24 GB of replies. The server must stop reading (backpressure) or drop us.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let req = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(100);
    let mut sent = 0usize;
    let mut peak = before;
    while sent < 400_000 {
        match tokio::time::timeout(Duration::from_secs(2), s.write_all(&req)).await {
            Ok(Ok(())) => sent += 100,
            Ok(Err(_)) => break, // disconnected by the server: also bounded
            Err(_) => break,     // the server stopped reading: backpressure
        }
        peak = peak.max(rss(&c));
    }
    assert_served(&c, "while-a-client-never-reads").await;
    peak = peak.max(rss(&c));
    println!("sent {sent} GETs without reading; RSS {before} KiB -> peak {peak} KiB");
    assert!(peak < before + 256 * 1024, "RSS grew from {before} to {peak} KiB");
}
