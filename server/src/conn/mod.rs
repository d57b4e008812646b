//! The RESP front end: accepts client connections and runs each one's
//! request/reply loop.
//!
//! - `connection`: the per-connection loop (pipelining, ordering, routing to
//!   the leader).
//! - `session`: per-connection state and the connection-level commands
//!   (HELLO, AUTH, SELECT, INFO, CONFIG, …).
//! - `client_command`: `CLIENT` and its subcommands.
//! - `kill_switch`: how `CLIENT KILL` and shutdown close a connection.
//! - `forward`: a follower's connection to the leader for forwarded commands.
//! - `info`: the `INFO` text.
//! - `transaction`: MULTI / EXEC / DISCARD / WATCH state.

mod client_command;
mod connection;
mod forward;
mod info;
mod kill_switch;
mod session;
mod transaction;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::kv::KvService;
use crate::metrics::{IdGen, SharedMetrics};
use crate::resp::DecoderLimits;

pub use session::ClientInfo;

/// What a follower does with a command that needs the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FollowerMode {
    /// Forward it to the leader and relay the reply (transparent to clients).
    #[default]
    Forward,
    /// Answer `-MOVED 0 <leader-host>:<port>`, which `redis-cli -c` follows.
    Redirect,
}

/// Everything a connection needs, shared by all connections.
#[derive(Debug)]
pub struct ConnContext {
    /// The KV service.
    pub kv: KvService,
    /// Follower behaviour.
    pub follower_mode: FollowerMode,
    /// Password required by `AUTH`, if any.
    pub requirepass: Option<String>,
    /// Metrics.
    pub metrics: SharedMetrics,
    /// Limits of the request decoder.
    pub decoder_limits: DecoderLimits,
    /// Most simultaneous client connections.
    pub max_clients: usize,
    /// Port of the RESP listener (for `INFO`).
    pub resp_port: u16,
    /// Process start time.
    pub started: Instant,
    ids: IdGen,
    clients: Mutex<HashMap<u64, ClientInfo>>,
}

impl ConnContext {
    /// A context for connections served by `kv`.
    pub fn new(
        kv: KvService,
        follower_mode: FollowerMode,
        requirepass: Option<String>,
        metrics: SharedMetrics,
        decoder_limits: DecoderLimits,
        resp_port: u16,
    ) -> Self {
        ConnContext {
            kv,
            follower_mode,
            requirepass,
            metrics,
            decoder_limits,
            max_clients: 10_000,
            resp_port,
            started: Instant::now(),
            ids: IdGen::default(),
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<u64, ClientInfo>> {
        self.clients.lock().expect("client registry poisoned")
    }
}

/// Accepts RESP connections on `listener` until `shutdown` is cancelled.
pub async fn serve_resp(listener: TcpListener, ctx: Arc<ConnContext>, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => {
                // Invariant: the token is cancelled before this sweep, and a
                // connection checks it after registering, so each one is
                // either killed here or sees the token (see `connection::run`).
                for client in ctx.clients().values() {
                    client.kill.kill();
                }
                return;
            }
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let ctx = ctx.clone();
        tokio::spawn(connection::run(ctx, stream, peer, shutdown.clone()));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_util::sync::CancellationToken;

    use super::{serve_resp, ConnContext, FollowerMode};
    use crate::kv::{KvConfig, KvService};
    use crate::metrics::Metrics;
    use crate::raft::tests::single_node;
    use crate::resp::DecoderLimits;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_closes_open_connections() {
        let dir = tempfile::tempdir().unwrap();
        let node = single_node(dir.path()).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let kv = KvService::new(node.clone(), KvConfig::default());
        let ctx = ConnContext::new(
            kv,
            FollowerMode::Forward,
            None,
            Arc::new(Metrics::new()),
            DecoderLimits::default(),
            addr.port(),
        );
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve_resp(listener, Arc::new(ctx), shutdown.clone()));

        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"PING\r\n").await.unwrap();
        let mut reply = [0u8; 7];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"+PONG\r\n");

        shutdown.cancel();
        server.await.unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0))), "the connection is closed, with nothing more sent: {read:?}");
        node.shutdown().await;
    }
}
