//! The Helm chart renders and lints with Helm's own engine, and every YAML the project
//! ships validates strictly against the Kubernetes OpenAPI schemas, offline.
//!
//! The work is done by `validate_yaml.py` (Python: `helm-python-sdk` is Helm v4's Go
//! SDK as a Python module, `kubernetes-validate` bundles the schemas). A missing
//! package fails this test with the `pip install` line to run; it never passes silently.

use std::process::Command;

#[test]
fn chart_and_manifests_validate() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/validate_yaml.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python).arg(script).output().unwrap_or_else(|e| {
        panic!("cannot run {python} ({e}); install Python 3, then: pip install helm-python-sdk kubernetes-validate")
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(out.status.success(), "YAML validation failed (exit {:?}):\n{stdout}\n{stderr}", out.status.code());
    assert!(stdout.contains("all YAML checks passed"), "validator did not finish:\n{stdout}");
}
