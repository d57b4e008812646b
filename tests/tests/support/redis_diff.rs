//! Differential testing against a real Redis: the same pipelined script, sent
//! as raw RESP to Debian's `redis-server` and to Seshat, must get the same
//! replies.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::eventually;

/// A `redis-server` with no persistence on a free port, killed on drop.
pub struct RedisServer {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a `redis-server` (no persistence) on a free port.
pub async fn start_redis() -> RedisServer {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().unwrap().port();
    let dir = tempfile::tempdir().expect("tempdir");
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is needed (apt-get install -y redis-server; .ci/run installs it)");
    let server = RedisServer { child, addr: format!("127.0.0.1:{port}"), _dir: dir };
    eventually(Duration::from_secs(10), "redis-server answers", || async {
        TcpStream::connect(&server.addr).await.ok().map(|_| ())
    })
    .await;
    server
}

/// One reply, flattened to text: `+OK`, `:1`, `$2 hi`, `$-1`, `*2[...]`.
fn read_reply<'a, R: AsyncBufRead + Unpin + Send>(
    r: &'a mut R,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send + 'a>> {
    Box::pin(async move {
        let mut line = String::new();
        r.read_line(&mut line).await.expect("read reply");
        let line = line.trim_end().to_string();
        let (kind, rest) = line.split_at(1);
        match kind {
            "$" if rest != "-1" => {
                let mut body = vec![0; rest.parse::<usize>().unwrap() + 2];
                r.read_exact(&mut body).await.expect("bulk body");
                format!("${}", String::from_utf8_lossy(&body[..body.len() - 2]))
            }
            "*" if rest != "-1" => {
                let mut items = Vec::new();
                for _ in 0..rest.parse::<usize>().unwrap() {
                    items.push(read_reply(r).await);
                }
                format!("*[{}]", items.join(", "))
            }
            _ => line,
        }
    })
}

/// One raw RESP connection that stays open between scripts.
pub struct RawConn {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
}

impl RawConn {
    /// Connects to `addr`.
    pub async fn connect(addr: &str) -> RawConn {
        let (rd, wr) = TcpStream::connect(addr).await.expect("connect").into_split();
        RawConn { rd: BufReader::new(rd), wr }
    }

    /// True when the server closes the connection within 10 s (end of file
    /// or a reset); false when it stays open. Any data is a failure: nothing
    /// was asked.
    pub async fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_secs(10), self.rd.read(&mut byte)).await {
            Ok(Ok(0) | Err(_)) => true,
            Ok(Ok(_)) => panic!("unexpected data {:?} on a connection expected to close", byte[0] as char),
            Err(_) => false,
        }
    }

    /// Sends `script` pipelined (arguments split on spaces); one flattened
    /// reply per command.
    pub async fn run(&mut self, script: &[&str]) -> Vec<String> {
        let mut request = Vec::new();
        for line in script {
            let args: Vec<&str> = line.split(' ').collect();
            request.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for arg in args {
                request.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
            }
        }
        self.wr.write_all(&request).await.expect("send");
        let mut replies = Vec::new();
        for _ in script {
            replies.push(tokio::time::timeout(Duration::from_secs(20), read_reply(&mut self.rd)).await.expect("reply"));
        }
        replies
    }
}

/// Sends `script` pipelined on a new connection; one flattened reply per command.
pub async fn run_script(addr: &str, script: &[&str]) -> Vec<String> {
    RawConn::connect(addr).await.run(script).await
}
