//! The `seshat` command line: `seshat serve` runs one server, `seshat local`
//! runs a whole cluster of real server processes on this machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands::Limits;
use crate::conn::FollowerMode;
use crate::kv::ReadConsistency;
use crate::raft::network::DEFAULT_SPARE_INTERVAL;
use crate::server::{self, ServeConfig};

/// Seshat: a Redis-compatible key-value store replicated by Raft.
#[derive(Debug, Parser)]
#[command(name = "seshat", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one server process (one Raft member).
    Serve(ServeArgs),
    /// Run a local cluster of N server processes on loopback.
    Local(crate::local::LocalArgs),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `seshat serve` flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data directory (node identity, Raft log, snapshots).
    #[arg(long, env = "SESHAT_DATA_DIR", default_value = "./seshat-data")]
    data_dir: PathBuf,
    /// Pin the node id (must match the data dir's id if it has one).
    #[arg(long, env = "SESHAT_NODE_ID")]
    node_id: Option<u64>,
    /// RESP (Redis protocol) listen address.
    #[arg(long, env = "SESHAT_RESP_ADDR", default_value = "0.0.0.0:6379")]
    resp_addr: SocketAddr,
    /// HTTP listen address (health, metrics, admin).
    #[arg(long, env = "SESHAT_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    /// Raft peer transport listen address.
    #[arg(long, env = "SESHAT_RAFT_ADDR", default_value = "0.0.0.0:7379")]
    raft_addr: SocketAddr,
    /// Host advertised to peers and clients [default: the listen host, or the hostname when listening on all interfaces].
    #[arg(long, env = "SESHAT_ADVERTISE_HOST")]
    advertise_host: Option<String>,
    /// Bearer token required by /admin/* endpoints.
    #[arg(long, env = "SESHAT_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// What a follower does with commands that need the leader.
    #[arg(long, value_enum, default_value_t = FollowerMode::Forward)]
    follower_mode: FollowerMode,
    /// Read consistency.
    #[arg(long, value_enum, default_value_t = ReadConsistency::Linearizable)]
    read_consistency: ReadConsistency,
    /// Largest key in bytes.
    #[arg(long, default_value_t = 256)]
    max_key_bytes: usize,
    /// Largest value in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    max_value_bytes: usize,
    /// Require AUTH with this password.
    #[arg(long, env = "SESHAT_PASSWORD", hide_env_values = true)]
    requirepass: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Raft heartbeat interval in milliseconds.
    #[arg(long, default_value_t = 60)]
    heartbeat_ms: u64,
    /// Raft minimum election timeout in milliseconds (the maximum is 4/3 of it).
    #[arg(long, default_value_t = 300)]
    election_timeout_ms: u64,
    /// Build a snapshot after this many log entries.
    #[arg(long, default_value_t = 100_000)]
    snapshot_entries: u64,
    /// The leader sends a follower its commits do not need (the slower one of
    /// two, in a 3-node cluster) at most one round of entries per this many
    /// milliseconds, so that it writes and fsyncs fewer, larger rounds; 0
    /// replicates to every follower as fast as it answers.
    #[arg(long, default_value_t = DEFAULT_SPARE_INTERVAL.as_millis() as u64)]
    spare_follower_interval_ms: u64,
    /// How long a write may wait for a quorum before the client gets an error.
    #[arg(long, default_value_t = 5_000)]
    write_timeout_ms: u64,
    /// Most simultaneous client connections.
    #[arg(long, default_value_t = 10_000)]
    max_clients: usize,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

impl ServeArgs {
    fn into_config(self) -> ServeConfig {
        let advertise_host = self.advertise_host.unwrap_or_else(|| {
            let ip = self.resp_addr.ip();
            if ip.is_unspecified() {
                hostname()
            } else {
                ip.to_string()
            }
        });
        ServeConfig {
            data_dir: self.data_dir,
            node_id: self.node_id,
            resp_addr: self.resp_addr,
            http_addr: self.http_addr,
            raft_addr: self.raft_addr,
            advertise_host,
            admin_token: self.admin_token.filter(|t| !t.is_empty()),
            follower_mode: self.follower_mode,
            read_consistency: self.read_consistency,
            limits: Limits { max_key_bytes: self.max_key_bytes, max_value_bytes: self.max_value_bytes },
            requirepass: self.requirepass.filter(|p| !p.is_empty()),
            heartbeat: Duration::from_millis(self.heartbeat_ms),
            election_timeout: Duration::from_millis(self.election_timeout_ms),
            snapshot_every_entries: self.snapshot_entries,
            spare_follower_interval: Duration::from_millis(self.spare_follower_interval_ms),
            write_timeout: Duration::from_millis(self.write_timeout_ms),
            max_clients: self.max_clients,
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    crate::malloc::limit_arenas();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("seshat: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(args) => {
            init_logging(args.log_format);
            runtime.block_on(server::run(args.into_config()))
        }
        Command::Local(args) => {
            init_logging(LogFormat::Text);
            runtime.block_on(crate::local::run(args))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seshat: {e:#}");
            ExitCode::FAILURE
        }
    }
}
