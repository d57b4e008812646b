//! The checked-in CRD files are exactly `seshat-operator crd`'s output.
//!
//! Regenerate with `SESHAT_UPDATE_GENERATED=1 cargo test -p seshat-operator --test crd_drift`.

use std::path::PathBuf;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("operator/ has a parent").to_path_buf()
}

#[test]
fn checked_in_crds_match_generated() {
    let want = seshat_operator::crd::crd_yaml();
    let update = std::env::var_os("SESHAT_UPDATE_GENERATED").is_some();
    let mut stale = Vec::new();
    for rel in ["manifests/crd.yaml", "charts/seshat-operator/crds/seshatclusters.seshat.io.yaml"] {
        let path = repo_root().join(rel);
        if update {
            std::fs::write(&path, &want).unwrap_or_else(|e| panic!("writing {rel}: {e}"));
            continue;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            stale.push(rel);
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from `seshat-operator crd`; regenerate with \
         `SESHAT_UPDATE_GENERATED=1 cargo test -p seshat-operator --test crd_drift`"
    );
}

#[test]
fn crd_yaml_round_trips() {
    let yaml = seshat_operator::crd::crd_yaml();
    let parsed: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_norway::from_str(&yaml).expect("generated YAML parses as a CRD");
    assert_eq!(parsed.metadata.name.as_deref(), Some("seshatclusters.seshat.io"));
}
