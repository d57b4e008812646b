//! `seshat-operator`: `crd` prints the CRD, `run` runs the operator.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::events::{Recorder, Reporter};
use kube::{Api, Client};
use seshat_operator::leader_election::{ElectionConfig, LeaderElector};
use seshat_operator::metrics::Metrics;
use seshat_operator::naming::MANAGER;
use seshat_operator::reconciler::{Config, Context};
use seshat_operator::resources::pdb::PdbApi;
use seshat_operator::telemetry::{self, LogFormat};
use seshat_operator::{controller, crd, http};
use tokio::sync::watch;

#[derive(Parser, Debug)]
#[command(name = "seshat-operator", version, about = "Kubernetes operator for Seshat clusters")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the SeshatCluster CRD as YAML.
    Crd {
        /// Leave out the CEL rules (`x-kubernetes-validations`) for Kubernetes < 1.25,
        /// whose OpenAPI rejects the field in `kubectl apply` and server-side apply.
        #[arg(long)]
        without_cel: bool,
    },
    /// Run the operator.
    Run(RunArgs),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Address of /healthz and /metrics.
    #[arg(long, env = "SESHAT_OPERATOR_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Cluster DNS domain used in the pods' advertised names.
    #[arg(long, env = "CLUSTER_DOMAIN", default_value = "cluster.local")]
    cluster_domain: String,
    /// Elect a leader among replicas through a Lease; only the holder reconciles.
    #[arg(long, env = "SESHAT_OPERATOR_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, default_value = "seshat-operator")]
    lease_name: String,
    /// Namespace of the Lease (default: this pod's namespace, else the kubeconfig's).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// This replica's identity in the Lease (default: the pod name, else hostname).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Lease duration in seconds.
    #[arg(long, default_value_t = 15)]
    lease_duration_secs: u64,
    /// Renewal interval in seconds.
    #[arg(long, default_value_t = 5)]
    lease_renew_secs: u64,
    /// Give leadership up after this many seconds without a successful renewal.
    #[arg(long, default_value_t = 10)]
    lease_renew_deadline_secs: u64,
    /// Timeout of status requests to pods, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    node_timeout_ms: u64,
    /// Timeout of admin requests that wait on Raft, in seconds.
    #[arg(long, default_value_t = 60)]
    admin_timeout_secs: u64,
    /// Log format.
    #[arg(long, env = "SESHAT_OPERATOR_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd { without_cel } => {
            print!("{}", if without_cel { crd::crd_yaml_without_cel() } else { crd::crd_yaml() });
            Ok(())
        }
        Command::Run(args) => run(args).await,
    }
}

/// Which PodDisruptionBudget API the server has (v1 since 1.21, v1beta1 until 1.24).
async fn detect_pdb_api(client: &Client) -> anyhow::Result<PdbApi> {
    for (gv, api) in [("policy/v1", PdbApi::V1), ("policy/v1beta1", PdbApi::V1Beta1)] {
        match client.list_api_group_resources(gv).await {
            Ok(list) if list.resources.iter().any(|r| r.name == "poddisruptionbudgets") => return Ok(api),
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(e).with_context(|| format!("discovering {gv}")),
        }
    }
    Ok(PdbApi::Unavailable)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format);
    let client = Client::try_default().await.context("building the Kubernetes client")?;
    let pdb_api = detect_pdb_api(&client).await?;
    tracing::info!(?pdb_api, "PodDisruptionBudget API");
    let metrics = Arc::new(Metrics::new());
    let identity = args.identity.clone().unwrap_or_else(default_identity);

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let server = tokio::spawn(http::serve(args.metrics_addr, metrics.clone(), stopped()));

    let recorder =
        Recorder::new(client.clone(), Reporter { controller: MANAGER.into(), instance: Some(identity.clone()) });
    let config = Config {
        cluster_domain: args.cluster_domain.clone(),
        pdb_api,
        node_timeout: Duration::from_millis(args.node_timeout_ms),
        admin_timeout: Duration::from_secs(args.admin_timeout_secs),
    };
    let ctx = Arc::new(Context::new(client.clone(), recorder, metrics.clone(), config));

    let (lead_tx, mut lead_rx) = watch::channel(!args.leader_elect);
    let elector = if args.leader_elect {
        let ns = args.lease_namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
        let mut cfg = ElectionConfig::new(&args.lease_name, &identity);
        cfg.lease_duration = Duration::from_secs(args.lease_duration_secs);
        cfg.renew_interval = Duration::from_secs(args.lease_renew_secs);
        cfg.renew_deadline = Duration::from_secs(args.lease_renew_deadline_secs);
        anyhow::ensure!(cfg.renew_deadline < cfg.lease_duration, "the renew deadline must be shorter than the lease");
        tracing::info!(%identity, lease = %args.lease_name, namespace = %ns, "leader election enabled");
        let elector = LeaderElector::new(Api::<Lease>::namespaced(client.clone(), &ns), cfg);
        Some(tokio::spawn(elector.run(lead_tx)))
    } else {
        drop(lead_tx);
        None
    };

    let mut shutdown = Box::pin(shutdown_signal());
    'outer: loop {
        // Standby until this replica leads.
        while !*lead_rx.borrow_and_update() {
            tokio::select! {
                _ = &mut shutdown => break 'outer,
                changed = lead_rx.changed() => if changed.is_err() { anyhow::bail!("leader elector stopped") },
            }
        }
        metrics.leader.set(1);
        let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
        let mut task = tokio::spawn(controller::run(ctx.clone(), args.watch_namespace.clone(), async move {
            let _ = lost_rx.await;
        }));
        tracing::info!("leading: controller started");
        let keep_running = loop {
            tokio::select! {
                _ = &mut shutdown => break false,
                // Without leader election nothing is ever published: lead until shutdown.
                changed = lead_rx.changed(), if args.leader_elect => match changed {
                    Ok(()) if !*lead_rx.borrow() => break true,
                    Ok(()) => {}
                    Err(_) => break false,
                },
                res = &mut task => {
                    res.context("controller task")?;
                    anyhow::bail!("controller stopped unexpectedly");
                }
            }
        };
        // Stop reconciling *now*: another replica may already hold the Lease.
        let _ = lost_tx.send(());
        if tokio::time::timeout(Duration::from_secs(2), &mut task).await.is_err() {
            task.abort();
        }
        metrics.leader.set(0);
        tracing::warn!("controller stopped (leadership lost or shutting down)");
        if !keep_running {
            break;
        }
    }
    drop(lead_rx);
    if let Some(elector) = elector {
        // Dropping the receiver makes the elector release the Lease and return.
        let _ = tokio::time::timeout(Duration::from_secs(5), elector).await;
    }
    let _ = stop_tx.send(true);
    let _ = server.await;
    Ok(())
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let suffix: u32 = rand::random();
    format!("{}-{suffix:08x}", if host.is_empty() { "seshat-operator" } else { &host })
}
