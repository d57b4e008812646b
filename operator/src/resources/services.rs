//! The three Services: headless (peer DNS), client (ready pods) and leader.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Owner;
use crate::naming::{HTTP_PORT, RAFT_PORT, RESP_PORT, ROLE_LABEL, ROLE_LEADER};

fn port(name: &str, port: i32, target: &str) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(target.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

/// `<name>-headless`: gives every pod the stable name
/// `<pod>.<name>-headless.<ns>.svc.<domain>` used as its advertised address.
///
/// `publishNotReadyAddresses` is essential: a fresh pod is not ready until it joined
/// the cluster, and it can only join if its peers can resolve its name.
pub fn headless(owner: &Owner<'_>) -> Service {
    Service {
        metadata: owner.meta(owner.names.headless_service()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(owner.names.selector_labels()),
            ports: Some(vec![
                port("resp", RESP_PORT, "resp"),
                port("http", HTTP_PORT, "http"),
                port("raft", RAFT_PORT, "raft"),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// `<name>`: the client entry point, ready pods only (followers forward writes).
pub fn client(owner: &Owner<'_>) -> Service {
    let svc = &owner.cluster.spec.service;
    Service {
        metadata: owner.meta(owner.names.client_service()),
        spec: Some(ServiceSpec {
            type_: Some(svc.type_.as_str().into()),
            selector: Some(owner.names.selector_labels()),
            ports: Some(vec![port("resp", svc.port, "resp")]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// `<name>-leader`: selects only the pod carrying `seshat.io/role=leader`, which the
/// operator moves whenever it observes a new leader.
pub fn leader(owner: &Owner<'_>) -> Service {
    let mut selector: BTreeMap<String, String> = owner.names.selector_labels();
    selector.insert(ROLE_LABEL.into(), ROLE_LEADER.into());
    Service {
        metadata: owner.meta(owner.names.leader_service()),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![port("resp", owner.cluster.spec.service.port, "resp"), port("http", HTTP_PORT, "http")]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
