//! Long-mode chaos: `cargo run -p seshat-tests --bin chaos -- --minutes N`.
//!
//! Runs back-to-back chaos experiments (each a fresh cluster, one history of
//! at most `--run-minutes`) until `--minutes` have passed, checks each
//! history, and prints a summary: histories checked, operations, faults
//! injected, violations, lost acknowledged writes. Exits non-zero on any
//! violation, undecided history, lost write, or unrecovered fault.
//!
//! The history of every key that was not proven linearizable is saved as
//! JSON lines under `--save-dir` (one operation per line), and
//! `chaos check FILE...` checks saved histories again, with other search
//! limits if asked: a violation or an undecided key can be studied without
//! rerunning the faults.
//!
//! The binary doubles as the server: `chaos serve ...` runs
//! `seshat_server::cli::main()`, so the cluster it starts needs no other
//! binary to have been built first.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use seshat_tests::chaos::{self, ChaosConfig};
use seshat_tests::checker::check_history;
use seshat_tests::cluster::{ClusterOptions, Network};
use seshat_tests::history::{History, Operation};
use seshat_tests::linearizability::Limits;
use seshat_tests::nemesis::{FaultBudget, FaultKind, NemesisConfig};
use seshat_tests::netns::NetLab;
use seshat_tests::workload::WorkloadConfig;

/// Long-running chaos against a local Seshat cluster.
#[derive(Debug, Parser)]
#[command(name = "chaos")]
struct Args {
    /// Total time to run, in minutes.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Length of one experiment (one history), in minutes.
    #[arg(long, default_value_t = 5.0)]
    run_minutes: f64,
    /// Nodes per cluster.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 12)]
    clients: usize,
    /// Use loopback instead of network namespaces (no partition faults).
    #[arg(long)]
    loopback: bool,
    /// Seconds a fault is held (upper bound; each hold is random in [h/2, h]).
    #[arg(long, default_value_t = 5.0)]
    hold_secs: f64,
    /// Calm seconds between faults.
    #[arg(long, default_value_t = 2.0)]
    quiet_secs: f64,
    /// Seed of the first experiment (then +1 per experiment).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where the histories of keys not proven linearizable are saved.
    #[arg(long, default_value = "chaos-histories")]
    save_dir: PathBuf,
    /// Search bounds per key.
    #[command(flatten)]
    limits: LimitArgs,
}

/// `chaos check FILE...`: check saved key histories again.
#[derive(Debug, Parser)]
#[command(name = "chaos check")]
struct CheckArgs {
    /// Files written by a chaos run (JSON lines, one operation each).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Search bounds per key.
    #[command(flatten)]
    limits: LimitArgs,
}

/// The linearizability search's bounds per key.
#[derive(Debug, clap::Args)]
struct LimitArgs {
    /// Give up on a key after memoising this many configurations.
    #[arg(long, default_value_t = Limits::default().max_states)]
    max_states: usize,
    /// Give up on a key after this many seconds.
    #[arg(long, default_value_t = Limits::default().timeout.as_secs_f64())]
    search_secs: f64,
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        Limits { max_states: self.max_states, timeout: Duration::from_secs_f64(self.search_secs) }
    }
}

fn main() -> anyhow::Result<ExitCode> {
    match std::env::args().nth(1).as_deref() {
        Some("serve") => return Ok(seshat_server::cli::main()),
        Some("check") => return check_saved(CheckArgs::parse_from(std::env::args().skip(1))),
        _ => {}
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let binary = std::env::current_exe().context("locating own executable")?;
    let network = if args.loopback {
        Network::Loopback
    } else if let Err(e) = NetLab::available() {
        println!("network namespaces unavailable ({e}): running on loopback without partitions");
        Network::Loopback
    } else {
        Network::Namespaces
    };
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let per_run = Duration::from_secs_f64(args.run_minutes * 60.0).min(total);
    let started = Instant::now();
    let (mut histories, mut ops, mut violations, mut undecided, mut lost, mut unrecovered) = (0, 0, 0, 0, 0, 0);
    let mut faults: BTreeMap<String, usize> = BTreeMap::new();
    let mut seed = args.seed;
    while started.elapsed() < total {
        let remaining = total.saturating_sub(started.elapsed());
        let cfg = ChaosConfig {
            cluster: ClusterOptions { network, nodes: args.nodes, ..ClusterOptions::new(&binary, args.nodes) },
            workload: WorkloadConfig {
                clients: args.clients,
                key_prefix: format!("chaos{seed}"),
                seed,
                ..WorkloadConfig::default()
            },
            nemesis: NemesisConfig {
                kinds: FaultKind::all_for(network),
                hold: Duration::from_secs_f64(args.hold_secs),
                quiet: Duration::from_secs_f64(args.quiet_secs),
                seed,
                ..NemesisConfig::default()
            },
            budget: FaultBudget::Time(per_run.min(remaining)),
            limits: args.limits.limits(),
        };
        let report = chaos::run(&cfg).await.context("chaos experiment")?;
        println!("=== experiment {} (seed {seed}) ===\n{report}", histories + 1);
        for key in report.check.keys.iter().filter(|k| !k.history.is_empty()) {
            let path = args.save_dir.join(format!("{}.jsonl", key.key.replace(':', "-")));
            save_history(&path, &key.history)?;
            println!("saved the history of {} to {} (`chaos check {}`)", key.key, path.display(), path.display());
        }
        histories += 1;
        ops += report.stats.ok + report.stats.fail + report.stats.unknown;
        violations += report.check.violations().count();
        undecided += report.check.undecided().count();
        lost += report.lost.lost.len() + report.lost.phantom.len();
        unrecovered += report.unrecovered();
        for (k, n) in report.faults_by_kind() {
            *faults.entry(k).or_insert(0) += n;
        }
        seed += 1;
    }
    let total_faults: usize = faults.values().sum();
    println!("=== summary ({:.1} min, {network:?}, {} nodes) ===", started.elapsed().as_secs_f64() / 60.0, args.nodes);
    println!("histories checked:        {histories}");
    println!("operations:               {ops}");
    println!("faults injected:          {total_faults} {faults:?}");
    println!("linearizability violations: {violations} (undecided keys: {undecided})");
    println!("lost/phantom writes:      {lost}");
    println!("faults without recovery:  {unrecovered}");
    let clean = violations == 0 && undecided == 0 && lost == 0 && unrecovered == 0;
    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn save_history(path: &Path, ops: &[Operation]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut out = std::io::BufWriter::new(File::create(path).with_context(|| format!("creating {}", path.display()))?);
    for op in ops {
        serde_json::to_writer(&mut out, op)?;
        out.write_all(b"\n")?;
    }
    out.flush().with_context(|| format!("writing {}", path.display()))
}

fn load_history(path: &Path) -> anyhow::Result<Vec<Operation>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut ops = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        let op =
            serde_json::from_str(&line).with_context(|| format!("{}:{}: not an operation", path.display(), n + 1))?;
        ops.push(op);
    }
    Ok(ops)
}

/// Checks saved histories; exits non-zero unless every key is proven linearizable.
fn check_saved(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let mut history = History::new();
    for path in &args.files {
        history.extend(load_history(path)?);
    }
    let report = check_history(&history, args.limits.limits());
    print!("{report}");
    for key in &report.keys {
        println!("  key {}: {} ops ({} unknown) in {:.2?}", key.key, key.ops, key.unknown, key.elapsed);
    }
    Ok(if report.is_linearizable() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
