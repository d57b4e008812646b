//! Operator end-to-end suite on a real Kubernetes control plane, pods run as processes.
//!
//! Enabled by `SESHAT_K8S_E2E=1` with `KUBECONFIG` naming the cluster (admin
//! credentials: the suite installs the CRD and the chart's RBAC, registers a Node, and
//! runs the operator with the chart's ServiceAccount token, never the admin's).
//! `scripts/e2e-k8s` builds and starts the local v1.20 control plane and runs this.
//!
//! Scenarios, in order, on one `SeshatCluster` whose life they follow (each prints its
//! timeline and runs a writing client; none may lose an acknowledged write):
//! 0. the node agent on a hand-written StatefulSet (no operator involved);
//! 1. create 3 replicas; 2. scale 3 → 5 → 3; 3. lose a pod, then a pod and its data;
//! 4. upgrade the image; 5. operator failover; 6. delete the cluster.
//!
//! `SESHAT_E2E_SCENARIOS=0,1,4` runs a subset (1 always runs when a later one does:
//! it creates the cluster). After a failed scenario the next runs only if the cluster
//! is healthy again; otherwise later ones would only report the failure's consequences.

#[path = "../k8s/mod.rs"]
mod k8s;

use std::future::Future;
use std::path::Path;
use std::time::Instant;

use k8s::scenarios_lifecycle as life;
use k8s::scenarios_ops as ops;
use k8s::suite::{Suite, ENABLE_VAR};
use k8s::writer::WriteReport;

/// One scenario's outcome for the summary.
struct Outcome {
    name: &'static str,
    result: Result<Option<WriteReport>, String>,
    secs: f64,
    timeline: Vec<String>,
}

fn wanted(n: u32) -> bool {
    match std::env::var("SESHAT_E2E_SCENARIOS") {
        Err(_) => true,
        Ok(list) => {
            let chosen: Vec<u32> = list.split(',').filter_map(|s| s.trim().parse().ok()).collect();
            chosen.contains(&n) || (n == 1 && chosen.iter().any(|c| *c > 1))
        }
    }
}

/// After a failed scenario the chain goes on only if the cluster it leaves behind is
/// healthy (3/3 settled within a minute): a failed check need not spoil the next
/// scenario, a broken cluster would.
async fn may_continue(suite: &Suite, outcomes: &[Outcome]) -> bool {
    if outcomes.iter().all(|o| o.result.is_ok()) && outcomes.iter().any(|o| o.name.starts_with('1')) {
        return true;
    }
    suite.tl.begin("checking the cluster after a failure");
    life::settle_within(&suite.cluster, 3, &suite.tl, std::time::Duration::from_secs(60)).await.is_ok()
}

async fn scenario<F>(suite_tl: &k8s::timeline::Timeline, name: &'static str, f: F) -> Outcome
where
    F: Future<Output = anyhow::Result<Option<WriteReport>>>,
{
    suite_tl.begin(name);
    let started = Instant::now();
    let result = f.await.map_err(|e| format!("{e:#}"));
    if let Err(e) = &result {
        suite_tl.note(format!("FAILED: {e}"));
    }
    Outcome { name, result, secs: started.elapsed().as_secs_f64(), timeline: suite_tl.lines() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_end_to_end() {
    if std::env::var(ENABLE_VAR).as_deref() != Ok("1") {
        eprintln!("skipped: set {ENABLE_VAR}=1 and KUBECONFIG (scripts/e2e-k8s does both)");
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let mut suite = match Suite::setup(repo, Path::new(env!("CARGO_BIN_EXE_seshat-node"))).await {
        Ok(s) => s,
        Err(e) => panic!("suite setup failed: {e:#}"),
    };
    let tl = suite.tl.clone();
    let mut outcomes: Vec<Outcome> = Vec::new();

    if wanted(0) {
        outcomes
            .push(scenario(&tl, "0 node agent", async { k8s::scenario_agent::run(&suite).await.map(|()| None) }).await);
    }
    if wanted(1) {
        outcomes.push(scenario(&tl, "1 create 3 replicas", async { life::create(&suite).await.map(Some) }).await);
    }
    if wanted(2) && may_continue(&suite, &outcomes).await {
        outcomes.push(scenario(&tl, "2 scale 3-5-3", async { life::scale(&suite).await.map(Some) }).await);
    }
    if wanted(3) && may_continue(&suite, &outcomes).await {
        outcomes.push(scenario(&tl, "3 lose a pod / its data", async { life::lose_pod(&suite).await.map(Some) }).await);
    }
    if wanted(4) && may_continue(&suite, &outcomes).await {
        outcomes.push(scenario(&tl, "4 rolling upgrade", async { ops::upgrade(&suite).await.map(Some) }).await);
    }
    if wanted(5) && may_continue(&suite, &outcomes).await {
        let s = &mut suite;
        outcomes.push(scenario(&tl, "5 operator failover", async { ops::operator_failover(s).await.map(Some) }).await);
    }
    if wanted(6) && may_continue(&suite, &outcomes).await {
        outcomes.push(scenario(&tl, "6 delete the cluster", async { ops::delete(&suite).await.map(Some) }).await);
    }
    let failed = outcomes.iter().any(|o| o.result.is_err());

    let work = suite.work.clone();
    suite.teardown().await;
    println!("\n=== summary (logs in {})", work.display());
    for o in &outcomes {
        match &o.result {
            Ok(Some(w)) => println!("PASS  {:<26} {:6.1}s  writes: {}", o.name, o.secs, w.summary()),
            Ok(None) => println!("PASS  {:<26} {:6.1}s", o.name, o.secs),
            Err(e) => {
                println!("FAIL  {:<26} {:6.1}s  {e}", o.name, o.secs);
                println!("      timeline:\n        {}", o.timeline.join("\n        "));
            }
        }
    }
    assert!(!failed, "operator end-to-end scenarios failed (see the summary above)");
}
