//! The StatefulSet running the `seshat serve` pods.
//!
//! `podManagementPolicy: Parallel` so a fresh cluster's pods start together (the
//! planner, not pod ordering, decides who bootstraps), and `updateStrategy: OnDelete`
//! so a template change restarts nothing by itself: the planner restarts pods one at
//! a time, followers first, the leader last after a leadership transfer.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapKeySelector, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm,
    PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretKeySelector,
    SecretVolumeSource, SecurityContext, Volume, VolumeMount, VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{configmap, Owner};
use crate::naming::{CONFIG_HASH_ANNOTATION, DATA_DIR, DATA_MOUNT, DATA_VOLUME, HTTP_PORT, RAFT_PORT, RESP_PORT};

/// Non-root uid/gid of the server (the distroless "nonroot" convention).
pub const RUN_AS: i64 = 65532;
/// Where `spec.tls.secretRef` is mounted.
pub const TLS_MOUNT: &str = "/etc/seshat/tls";
/// Name of the server container.
pub const CONTAINER: &str = "seshat";

/// Where the pods read the admin token from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSource {
    /// Secret name.
    pub secret: String,
    /// Key in the Secret.
    pub key: String,
}

/// The StatefulSet `<name>` with `replicas` pods.
///
/// `replicas` is passed in rather than read from the spec: the workload size is
/// driven by the planner one step at a time (grow first, shrink only after the
/// removed members left the Raft membership).
pub fn build(owner: &Owner<'_>, replicas: i32, token: &TokenSource) -> StatefulSet {
    let mut template_annotations = BTreeMap::new();
    template_annotations.insert(CONFIG_HASH_ANNOTATION.to_string(), configmap::hash(owner));
    StatefulSet {
        metadata: owner.meta(owner.names.statefulset()),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(owner.names.headless_service()),
            pod_management_policy: Some("Parallel".into()),
            update_strategy: Some(StatefulSetUpdateStrategy { type_: Some("OnDelete".into()), rolling_update: None }),
            selector: LabelSelector { match_labels: Some(owner.names.selector_labels()), match_expressions: None },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(owner.names.labels()),
                    annotations: Some(template_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(owner, token)),
            },
            volume_claim_templates: Some(vec![volume_claim(owner)]),
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

fn volume_claim(owner: &Owner<'_>) -> PersistentVolumeClaim {
    let storage = &owner.cluster.spec.storage;
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.into()),
            labels: Some(owner.names.labels()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), storage.size.clone())])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

fn pod_spec(owner: &Owner<'_>, token: &TokenSource) -> PodSpec {
    let overrides = owner.cluster.spec.pod_template.clone().unwrap_or_default();
    let mut volumes =
        vec![Volume { name: "tmp".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Volume::default() }];
    if let Some(tls) = &owner.cluster.spec.tls {
        volumes.push(Volume {
            name: "tls".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(tls.secret_ref.name.clone()),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    PodSpec {
        containers: vec![container(owner, token)],
        volumes: Some(volumes),
        // The server never talks to the Kubernetes API.
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(30),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            // Makes the PVC writable by the non-root server.
            fs_group: Some(RUN_AS),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }),
            ..PodSecurityContext::default()
        }),
        affinity: Some(overrides.affinity.unwrap_or_else(|| default_affinity(owner))),
        node_selector: overrides.node_selector,
        tolerations: overrides.tolerations,
        topology_spread_constraints: overrides.topology_spread_constraints,
        ..PodSpec::default()
    }
}

/// Prefer one pod per node: losing a node then costs one member, not the quorum.
/// Soft, so a small (or single-node test) cluster still schedules every pod.
fn default_affinity(owner: &Owner<'_>) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![WeightedPodAffinityTerm {
                weight: 100,
                pod_affinity_term: PodAffinityTerm {
                    label_selector: Some(LabelSelector {
                        match_labels: Some(owner.names.selector_labels()),
                        match_expressions: None,
                    }),
                    topology_key: "kubernetes.io/hostname".into(),
                    ..PodAffinityTerm::default()
                },
            }]),
            required_during_scheduling_ignored_during_execution: None,
        }),
        ..Affinity::default()
    }
}

fn env_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), api_version: None }),
            ..EnvVarSource::default()
        }),
        value: None,
    }
}

fn env_config(owner: &Owner<'_>, key: &str) -> EnvVar {
    EnvVar {
        name: key.into(),
        value_from: Some(EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: owner.names.config_map(),
                key: key.into(),
                optional: None,
            }),
            ..EnvVarSource::default()
        }),
        value: None,
    }
}

/// The server's command line. `$(VAR)` references are expanded by the kubelet from
/// the container's env (declared before use, as Kubernetes requires).
pub fn args(owner: &Owner<'_>) -> Vec<String> {
    vec![
        "serve".into(),
        format!("--data-dir={DATA_DIR}"),
        format!("--resp-addr=0.0.0.0:{RESP_PORT}"),
        format!("--http-addr=0.0.0.0:{HTTP_PORT}"),
        format!("--raft-addr=0.0.0.0:{RAFT_PORT}"),
        // The stable per-pod DNS name: the address peers and the operator map to this ordinal.
        format!("--advertise-host=$(POD_NAME).{}", owner.names.pod_dns_suffix()),
        format!("--read-consistency=$({})", configmap::READ_CONSISTENCY),
        format!("--follower-mode=$({})", configmap::FOLLOWER_MODE),
        format!("--log-format=$({})", configmap::LOG_FORMAT),
    ]
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            scheme: Some("HTTP".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(3),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn container(owner: &Owner<'_>, token: &TokenSource) -> Container {
    let spec = &owner.cluster.spec;
    let env = vec![
        env_field("POD_NAME", "metadata.name"),
        env_field("POD_NAMESPACE", "metadata.namespace"),
        env_config(owner, configmap::READ_CONSISTENCY),
        env_config(owner, configmap::FOLLOWER_MODE),
        env_config(owner, configmap::LOG_FORMAT),
        EnvVar {
            name: "SESHAT_ADMIN_TOKEN".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: token.secret.clone(),
                    key: token.key.clone(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
            value: None,
        },
    ];
    let mut mounts = vec![
        VolumeMount { name: DATA_VOLUME.into(), mount_path: DATA_MOUNT.into(), ..VolumeMount::default() },
        VolumeMount { name: "tmp".into(), mount_path: "/tmp".into(), ..VolumeMount::default() },
    ];
    if spec.tls.is_some() {
        mounts.push(VolumeMount {
            name: "tls".into(),
            mount_path: TLS_MOUNT.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    let port = |name: &str, port: i32| ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    };
    Container {
        name: CONTAINER.into(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        args: Some(args(owner)),
        env: Some(env),
        ports: Some(vec![port("resp", RESP_PORT), port("http", HTTP_PORT), port("raft", RAFT_PORT)]),
        // Ready = member with a known leader and caught up; gates the client Service.
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        // /healthz answers while the process serves, even when not a member: a pod
        // waiting to be added must not be restarted for it.
        liveness_probe: Some(Probe { initial_delay_seconds: Some(10), ..http_probe("/healthz", 10, 6) }),
        resources: spec.resources.clone(),
        volume_mounts: Some(mounts),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}
