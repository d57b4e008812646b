//! Real Redis tools against Seshat: a scripted `redis-cli` session, a
//! `redis-benchmark` run against `seshat local`, and bad input on a raw socket.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{eventually, Harness, BIN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn tool(name: &str) -> String {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().expect("sh");
    assert!(
        found.status.success(),
        "{name} is not installed: run `apt-get install -y redis-tools` (the CI script does)"
    );
    name.to_string()
}

fn redis_cli(addr: &str, script: &str) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let mut child = Command::new(tool("redis-cli"))
        .args(["-h", host, "-p", port, "--no-raw"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn redis-cli");
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().expect("redis-cli output");
    assert!(out.status.success(), "redis-cli failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_scripted_session() {
    let h = Harness::start(3, &[]).await;
    let leader = h.leader_among(&[0, 1, 2]).await;
    // Through a follower: every command is forwarded or answered locally.
    let addr = h.resp_addr((leader + 1) % 3);
    let script = "\
PING
SET greeting hello
GET greeting
APPEND greeting \", world\"
STRLEN greeting
GETRANGE greeting 0 4
INCR counter
INCRBY counter 41
DECR counter
INCRBYFLOAT f 1.5
MSET a 1 b 2 c 3
MGET a b c nope
EXISTS a b nope
DEL a b nope
SET t v EX 100
TTL t
PERSIST t
TTL t
TYPE greeting
TYPE nope
SET n 1 NX
SET n 2 XX GET
GET n
RENAME n m
GET m
GETDEL m
GET m
INCR greeting
GET
FOO bar
SELECT 1
DBSIZE
";
    let expected = "\
PONG
OK
\"hello\"
(integer) 12
(integer) 12
\"hello\"
(integer) 1
(integer) 42
(integer) 41
\"1.5\"
OK
1) \"1\"
2) \"2\"
3) \"3\"
4) (nil)
(integer) 2
(integer) 2
OK
(integer) 100
(integer) 1
(integer) -1
string
none
OK
\"1\"
\"2\"
OK
\"2\"
\"2\"
(nil)
(error) ERR value is not an integer or out of range
(error) ERR wrong number of arguments for 'get' command
(error) ERR unknown command 'FOO', with args beginning with: 'bar' 
(error) ERR DB index is out of range
(integer) 5
";
    let got = redis_cli(&addr, script);
    assert_eq!(got, expected, "redis-cli session transcript differs:\n{got}");
}

/// `redis-cli`'s keyspace and monitoring modes read real numbers: `--memkeys`
/// sizes keys with `MEMORY USAGE`, `--bigkeys` with `STRLEN`, and `--stat`
/// prints `INFO`'s `blocked_clients` and `total_commands_processed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_keyspace_and_stat_modes_see_real_numbers() {
    let h = Harness::start(1, &[]).await;
    let addr = h.resp_addr(h.leader_among(&[0]).await);
    redis_cli(&addr, &format!("SET small v\nSET large {}\nSET ttl v EX 100\n", "x".repeat(1000)));
    let (host, port) = addr.rsplit_once(':').unwrap();
    let mode = |flag: &str| {
        let out = Command::new(tool("redis-cli")).args(["-h", host, "-p", port, flag]).output().expect("redis-cli");
        assert!(out.status.success(), "redis-cli {flag}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let memkeys = mode("--memkeys");
    assert!(memkeys.contains("Biggest string found '\"large\"' has 10"), "{memkeys}");
    assert!(memkeys.contains("3 strings with 1"), "three strings, over 1000 bytes in all: {memkeys}");
    let bigkeys = mode("--bigkeys");
    assert!(bigkeys.contains("3 strings with 1002 bytes"), "{bigkeys}");

    let info = redis_cli(&addr, "INFO\n");
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("INFO has no {name}:\n{info}"))
            .trim()
            .to_string()
    };
    assert_eq!(field("blocked_clients"), "0");
    assert!(field("total_commands_processed").parse::<u64>().unwrap() >= 3, "{info}");
    assert!(field("used_memory_human").ends_with('M'), "{info}");
}

/// `seshat local` as a user runs it, then `redis-benchmark` against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_benchmark_against_seshat_local() {
    let benchmark = tool("redis-benchmark");
    let dir = tempfile::tempdir().unwrap();
    let (resp, http, raft) = seshat_control::local::free_port_bases("127.0.0.1", 9).unwrap();
    let mut local = tokio::process::Command::new(BIN)
        .args(["local", "--nodes", "3", "--data-dir"])
        .arg(dir.path())
        .args(["--resp-port", &resp.to_string(), "--http-port", &http.to_string(), "--raft-port", &raft.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn seshat local");
    let ready = |port: u16| async move {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(b"SET ready 1\r\n").await.ok()?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).await.ok()?;
        buf[..n].starts_with(b"+OK").then_some(())
    };
    eventually(Duration::from_secs(60), "seshat local accepts writes", || ready(resp)).await;

    let out = tokio::process::Command::new(benchmark)
        .args(["-h", "127.0.0.1", "-p", &resp.to_string(), "-t", "set,get,incr,mset", "-n", "20000", "-q"])
        .output()
        .await
        .expect("run redis-benchmark");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "redis-benchmark failed:\n{text}");
    for test in ["SET", "GET", "INCR", "MSET"] {
        assert!(
            text.lines().any(|l| l.contains(test) && l.contains("requests per second")),
            "no result line for {test}:\n{text}"
        );
    }
    assert!(!text.to_lowercase().contains("error"), "redis-benchmark reported errors:\n{text}");

    // Ctrl-C stops the whole cluster.
    let pid = local.id().expect("pid") as i32;
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let status = tokio::time::timeout(Duration::from_secs(30), local.wait()).await.expect("local exits").unwrap();
    assert!(status.success(), "seshat local exit status {status}");
    for port in [resp, resp + 1, resp + 2] {
        eventually(Duration::from_secs(15), "every node stopped", || async move {
            TcpStream::connect(("127.0.0.1", port)).await.is_err().then_some(())
        })
        .await;
    }
}

async fn exchange(addr: &str, request: &[u8]) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut reply = Vec::new();
    let closed = loop {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
            Ok(Ok(0)) => break true,
            Ok(Ok(n)) => reply.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => break true,
            Err(_) => break false,
        }
    };
    (reply, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_redis_errors_and_loses_nothing() {
    let h = Harness::start(1, &[]).await;
    let addr = h.resp_addr(0);
    let (r, _) = exchange(&addr, b"SET safe kept\r\n").await;
    assert_eq!(r, b"+OK\r\n");

    // Unframeable garbage: an error, then the connection is closed.
    let (r, closed) = exchange(&addr, b"*1\r\n$abc\r\n").await;
    assert_eq!(r, b"-ERR Protocol error: invalid bulk length\r\n");
    assert!(closed);
    let (r, closed) = exchange(&addr, b"*2\r\n$3\r\nSET\r\n$1000000000\r\n").await;
    assert_eq!(r, b"-ERR Protocol error: invalid bulk length\r\n", "1 GB bulk refused before reading it");
    assert!(closed);
    let (r, closed) = exchange(&addr, b"*1\r\n*1\r\n$4\r\nPING\r\n").await;
    assert!(r.starts_with(b"-ERR Protocol error: expected '$', got '*'"), "{}", String::from_utf8_lossy(&r));
    assert!(closed);

    // Framed but invalid commands: an error each, and the connection stays usable.
    let key = "k".repeat(257);
    let req = format!("SET {key} v\r\nGET\r\nNOSUCH a b\r\nINCR safe\r\nPING\r\n");
    let (r, closed) = exchange(&addr, req.as_bytes()).await;
    let text = String::from_utf8_lossy(&r);
    assert!(!closed, "connection kept open");
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines,
        vec![
            "-ERR key too large: 257 bytes (max 256)",
            "-ERR wrong number of arguments for 'get' command",
            "-ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' ",
            "-ERR value is not an integer or out of range",
            "+PONG",
        ]
    );

    // A value past what the server buffers (64 KiB plus slack): the request is
    // read and dropped, it alone fails, and the pipeline behind it is served.
    let big = "x".repeat(70_000);
    let req = format!("*3\r\n$3\r\nSET\r\n$4\r\nsafe\r\n${}\r\n{big}\r\nPING\r\n", big.len());
    let (r, closed) = exchange(&addr, req.as_bytes()).await;
    assert!(!closed, "connection kept open");
    assert_eq!(
        String::from_utf8_lossy(&r),
        "-ERR argument too large: 70000 bytes (values may be up to 65536 bytes, keys up to 256)\r\n+PONG\r\n"
    );

    // Nothing already written was lost, and another client is served.
    let (r, _) = exchange(&addr, b"GET safe\r\n").await;
    assert_eq!(r, b"$4\r\nkept\r\n");
}
