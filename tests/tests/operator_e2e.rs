//! Operator end-to-end suite on a real Kubernetes control plane, pods run as processes.
//!
//! Enabled by `SESHAT_K8S_E2E=1` with `KUBECONFIG` naming the cluster (admin
//! credentials: the suite installs the CRD and RBAC, registers a Node, and runs the
//! operator with the chart's ServiceAccount token). `scripts/e2e-k8s` starts the local
//! v1.20 control plane and runs this. See `tests/k8s/mod.rs` for the machinery.

#[path = "../k8s/mod.rs"]
mod k8s;

use std::path::Path;

use k8s::suite::{Suite, ENABLE_VAR};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_end_to_end() {
    if std::env::var(ENABLE_VAR).as_deref() != Ok("1") {
        eprintln!("skipped: set {ENABLE_VAR}=1 and KUBECONFIG (scripts/e2e-k8s does both)");
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let suite = Suite::setup(repo, Path::new(env!("CARGO_BIN_EXE_seshat-node"))).await.expect("suite setup");
    suite.tl.begin("scenario 0: node agent on a hand-written StatefulSet");
    let r0 = k8s::scenario_agent::run(&suite).await;
    suite.teardown().await;
    r0.expect("scenario 0");
}
