//! `run_local`: the body of `seshat local` — start, bootstrap, print, supervise, stop.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{LocalCluster, LocalConfig, LocalError};
use crate::client::AdminClient;
use crate::driver::Driver;
use crate::planner::{Desired, Observed, VolumePolicy, MAX_REPLICAS};

/// How long the initial bootstrap may take before `seshat local` gives up.
const STARTUP_DEADLINE: Duration = Duration::from_secs(120);
/// How often supervision looks for exited processes.
const SUPERVISE_EVERY: Duration = Duration::from_millis(250);
/// How often supervision re-runs the planner (heals membership after restarts).
const RECONCILE_EVERY: Duration = Duration::from_secs(5);
/// Restart backoff bounds for a crashing node.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Runs a local cluster until `shutdown` completes: starts `cfg.nodes` processes,
/// bootstraps them through the planner and driver (the same ones the operator uses),
/// prints how to connect, restarts nodes that exit unexpectedly (with exponential
/// backoff), and finally stops every node (SIGTERM, then SIGKILL after the grace period).
///
/// Data dirs from an earlier run are reused: nodes that hold state are never
/// re-bootstrapped, and if the earlier run had more nodes than `cfg.nodes`, those are
/// started too, removed one at a time by the planner, and their dirs deleted.
pub async fn run_local(cfg: LocalConfig, shutdown: impl Future<Output = ()>) -> Result<(), LocalError> {
    let cluster = Arc::new(LocalCluster::new(cfg.clone())?);
    let driver = Driver::new(cluster.clone(), AdminClient::new(String::new(), cfg.admin_token.clone()));
    let (_, version) = cluster.template().await;
    let mut desired = Desired::new(cfg.nodes, version);
    // Nodes removed by a smaller `--nodes` left the membership: their dirs would only
    // be started again (and shrunk away again) by the next run.
    desired.volume_policy = VolumePolicy::Delete;
    let initial = cfg.nodes.max(previous_nodes(&cfg));
    tokio::pin!(shutdown);

    println!("Starting {} Seshat node(s) in {} ...", initial, cfg.data_dir.display());
    cluster.scale_to(initial).await?;
    let observed = tokio::select! {
        r = driver.reconcile_until_done(&desired, Instant::now() + STARTUP_DEADLINE) => match r {
            Ok(o) => o,
            Err(e) => {
                cluster.stop_all().await;
                return Err(e.into());
            }
        },
        _ = &mut shutdown => {
            println!("Interrupted; stopping nodes ...");
            cluster.stop_all().await;
            return Ok(());
        }
        // A node dying while the cluster forms (port taken, bad flag, bad data dir)
        // will not get better by waiting: fail fast and point at its log.
        (node, status) = first_exit(&cluster) => {
            cluster.stop_all().await;
            return Err(LocalError::State {
                node,
                reason: format!(
                    "exited during startup ({}); see {}",
                    describe(status),
                    cfg.node_dir(node).join("server.log").display()
                ),
            });
        }
    };
    cluster.mark_initialized().await;
    print_banner(&cfg, &observed);

    let mut backoff: BTreeMap<u32, (Duration, Instant)> = BTreeMap::new();
    let mut tick = tokio::time::interval(SUPERVISE_EVERY);
    let mut next_reconcile = Instant::now() + RECONCILE_EVERY;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {}
        }
        for (i, status) in cluster.reap().await {
            tracing::warn!(node = i, ?status, "node exited unexpectedly");
            println!("node {i} exited unexpectedly ({}); restarting", describe(status));
        }
        let now = Instant::now();
        for i in cluster.exited_nodes().await {
            let (delay, not_before) = backoff.entry(i).or_insert((BACKOFF_MIN, now));
            if now < *not_before {
                continue;
            }
            if let Err(e) = cluster.start_node(i).await {
                tracing::error!(node = i, error = %e, "restart failed");
            }
            *not_before = now + *delay;
            *delay = (*delay * 2).min(BACKOFF_MAX);
        }
        // A node that stayed up for a full backoff ceiling earns a fresh backoff.
        backoff.retain(|_, (_, not_before)| now < *not_before + BACKOFF_MAX);
        if now >= next_reconcile {
            next_reconcile = now + RECONCILE_EVERY;
            if let Err(e) = driver.step(&desired).await {
                tracing::warn!(error = %e, "reconcile step failed");
            }
        }
    }
    println!("Stopping {} node(s) ...", cluster.size().await);
    cluster.stop_all().await;
    println!("Stopped.");
    Ok(())
}

fn describe(status: Option<std::process::ExitStatus>) -> String {
    status.map_or_else(|| "unknown status".into(), |s| s.to_string())
}

/// Resolves with the first node found exited.
async fn first_exit(cluster: &LocalCluster) -> (u32, Option<std::process::ExitStatus>) {
    loop {
        if let Some(first) = cluster.reap().await.into_iter().next() {
            return first;
        }
        tokio::time::sleep(SUPERVISE_EVERY).await;
    }
}

/// Number of consecutive `node-<i>` dirs holding more than a log: nodes of an earlier
/// run that may be members and must be started to keep (or safely shrink) the quorum.
fn previous_nodes(cfg: &LocalConfig) -> u32 {
    (0..MAX_REPLICAS)
        .take_while(|i| {
            std::fs::read_dir(cfg.node_dir(*i))
                .map(|entries| entries.filter_map(Result::ok).any(|e| e.file_name() != "server.log"))
                .unwrap_or(false)
        })
        .count() as u32
}

fn print_banner(cfg: &LocalConfig, observed: &Observed) {
    let leader = observed
        .slots
        .iter()
        .find_map(|s| s.status.as_ref().filter(|st| st.leader_id == Some(st.node_id)))
        .map(|st| st.node_id);
    println!();
    println!("Seshat local cluster is up: {} node(s).", cfg.nodes);
    for s in observed.slots.iter().filter(|s| s.ordinal < cfg.nodes) {
        let id = s.status.as_ref().map(|st| st.node_id);
        let tag = if id.is_some() && id == leader { " (leader)" } else { "" };
        println!(
            "  node {}: RESP {}  HTTP http://{}  id {}{}  data {}",
            s.ordinal,
            s.addr.resp_addr,
            s.addr.http_addr,
            id.map(|i| i.to_string()).unwrap_or_else(|| "?".into()),
            tag,
            cfg.node_dir(s.ordinal).display(),
        );
    }
    let host_flag =
        if cfg.host == "127.0.0.1" || cfg.host == "localhost" { String::new() } else { format!("-h {} ", cfg.host) };
    println!();
    println!("Connect with:  redis-cli {host_flag}-p {}", cfg.resp_port);
    println!("Cluster view:  curl http://{}:{}/cluster", cfg.host, cfg.http_port);
    println!("Logs:          {}/node-*/server.log", cfg.data_dir.display());
    println!("Press Ctrl-C to stop.");
}
