//! `seshat local`: a real multi-node cluster on this machine, no Kubernetes.
//!
//! It starts N `seshat serve` processes (this same binary) on loopback,
//! bootstraps them through the admin API with the same planner the operator
//! uses (`seshat_control`), supervises them, and stops them all on Ctrl-C.

use std::path::PathBuf;

use clap::Args;
use seshat_control::local::{run_local, LocalConfig};

/// `seshat local` flags.
#[derive(Debug, Args)]
pub struct LocalArgs {
    /// Number of nodes (1–9).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    nodes: u32,
    /// Node i keeps its data in DATA_DIR/node-i.
    #[arg(long, default_value = "./seshat-data")]
    data_dir: PathBuf,
    /// Listen and advertised host of every node.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Node i serves RESP on RESP_PORT + i.
    #[arg(long, default_value_t = 7001)]
    resp_port: u16,
    /// Node i serves HTTP on HTTP_PORT + i.
    #[arg(long, default_value_t = 8001)]
    http_port: u16,
    /// Node i serves Raft on RAFT_PORT + i.
    #[arg(long, default_value_t = 9001)]
    raft_port: u16,
    /// Async runtime threads of each node [default: the machine's cores
    /// divided among the nodes, at least 1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads_per_node: Option<u32>,
    /// Admin bearer token for every node.
    #[arg(long, env = "SESHAT_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Extra flags passed to every `seshat serve`, e.g. `-- --follower-mode redirect`.
    #[arg(last = true)]
    serve_args: Vec<String>,
}

/// Runs the local cluster until Ctrl-C.
pub async fn run(args: LocalArgs) -> anyhow::Result<()> {
    let binary = std::env::current_exe()?;
    let mut cfg = LocalConfig::new(binary, args.nodes);
    cfg.data_dir = args.data_dir;
    cfg.host = args.host;
    cfg.resp_port = args.resp_port;
    cfg.http_port = args.http_port;
    cfg.raft_port = args.raft_port;
    cfg.admin_token = args.admin_token;
    cfg.extra_args = args.serve_args;
    if let Some(threads) = args.threads_per_node {
        cfg.threads_per_node = threads as usize;
    }
    run_local(cfg, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
