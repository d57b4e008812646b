//! The RESP front end: accepts client connections and runs each one's
//! request/reply loop.
//!
//! - `connection`: the per-connection loop (pipelining, ordering, routing to
//!   the leader).
//! - `session`: per-connection state and the connection-level commands
//!   (HELLO, AUTH, SELECT, INFO, CONFIG, …).
//! - `client_command`: `CLIENT` and its subcommands.
//! - `forward`: a follower's connection to the leader for forwarded commands.
//! - `info`: the `INFO` text.
//! - `transaction`: MULTI / EXEC / DISCARD / WATCH state.

mod client_command;
mod connection;
mod forward;
mod info;
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
            _ = shutdown.cancelled() => return,
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
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = connection::run(ctx, stream, peer) => {}
            }
        });
    }
}
