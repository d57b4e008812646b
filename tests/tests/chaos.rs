//! The bounded chaos suite run by CI: every nemesis at least once against a
//! real 3-node cluster under concurrent load, then a verdict that must show
//! 0 linearizability violations and 0 lost acknowledged writes.
//!
//! Partitions need network namespaces (root + `ip` + `iptables`); CI has them.
//! Elsewhere the partition faults are skipped with a message and the rest
//! runs on loopback. The long mode is `cargo run -p seshat-tests --bin chaos`.

use std::time::Duration;

use seshat_tests::chaos::{self, ChaosConfig};
use seshat_tests::cluster::{ClusterOptions, Network};
use seshat_tests::linearizability::Limits;
use seshat_tests::nemesis::{FaultBudget, FaultKind, NemesisConfig};
use seshat_tests::netns::NetLab;
use seshat_tests::workload::WorkloadConfig;

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_test_writer()
        .try_init();
}

fn network() -> Network {
    match NetLab::available() {
        Ok(()) => Network::Namespaces,
        Err(e) => {
            eprintln!("SKIP partition faults: {e}; running the other faults on loopback");
            Network::Loopback
        }
    }
}

fn config(network: Network, kinds: Vec<FaultKind>, seed: u64) -> ChaosConfig {
    let binary = env!("CARGO_BIN_EXE_seshat-node");
    ChaosConfig {
        cluster: ClusterOptions { network, ..ClusterOptions::new(binary, 3) },
        workload: WorkloadConfig { clients: 10, key_prefix: format!("ci{seed}"), seed, ..WorkloadConfig::default() },
        budget: FaultBudget::Count(2 * kinds.len()),
        nemesis: NemesisConfig {
            kinds,
            quiet: Duration::from_millis(1500),
            hold: Duration::from_secs(4),
            recovery_timeout: Duration::from_secs(30),
            seed,
        },
        limits: Limits { max_states: 2_000_000, timeout: Duration::from_secs(60) },
    }
}

/// Two rounds through every fault kind, each kind once per round in a seeded
/// random order, so every fault also lands on a cluster shaped by another.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_nemesis_once_no_violations_no_lost_writes() {
    init_tracing();
    let network = network();
    let kinds = FaultKind::all_for(network);
    let cfg = config(network, kinds.clone(), 11);
    let report = chaos::run(&cfg).await.expect("chaos run");
    println!("{report}");
    assert!(report.missing_kinds(&kinds).is_empty(), "faults not injected: {:?}", report.missing_kinds(&kinds));
    assert!(report.stats.ok > 500, "too few acknowledged operations to mean anything: {:?}", report.stats);
    assert!(
        report.stats.tx_swaps > 0 && report.stats.watch_applied > 0,
        "transactions were not exercised: {:?}",
        report.stats
    );
    assert_eq!(report.check.violations().count(), 0, "linearizability violations:\n{report}");
    assert_eq!(report.check.undecided().count(), 0, "undecided keys:\n{report}");
    assert!(report.lost.is_clean(), "lost or phantom writes:\n{report}");
    assert_eq!(report.unrecovered(), 0, "cluster did not recover from every fault:\n{report}");
}
