//! Scenario 0: the node agent itself, on a hand-written StatefulSet of `seshat serve`
//! pods — before any operator scenario relies on it.
//!
//! Checks every kubelet duty the operator scenarios depend on: the real scheduler binds
//! the pods to the agent's node; PVCs get bound PVs; env from the downward API, a
//! Secret and a ConfigMap reaches the process (`$(VAR)` expansion included); each pod
//! listens on its own IP; pod DNS names resolve (FQDN and short form); readiness
//! follows the pod's probe; the endpoints controller accepts the pod IPs; a deleted pod
//! is stopped and re-created by the StatefulSet controller at a new IP with its data;
//! a deleted PVC loses its data.

use std::time::Duration;

use anyhow::{ensure, Context as _};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, PersistentVolumeClaim, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::json;
use seshat_control::api::InitRequest;
use seshat_control::client::AdminClient;
use seshat_tests::kv::Kv;
use seshat_tests::wait::poll;

use super::agent::NODE_KEY;
use super::suite::{Suite, STORAGE_CLASS, TEST_NS};
use super::volumes;

const NAME: &str = "probe";
const TOKEN: &str = "agent-check-token";

fn fqdn(i: u32) -> String {
    format!("{NAME}-{i}.{NAME}-headless.{TEST_NS}.svc.cluster.local")
}

async fn create<K>(api: &Api<K>, value: serde_json::Value) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(value)?;
    api.create(&PostParams::default(), &obj).await?;
    Ok(())
}

fn statefulset(node: &str) -> serde_json::Value {
    let field = |name: &str, path: &str| json!({ "name": name, "valueFrom": { "fieldRef": { "fieldPath": path } } });
    json!({
        "metadata": { "name": NAME },
        "spec": {
            "replicas": 2, "serviceName": format!("{NAME}-headless"), "podManagementPolicy": "Parallel",
            "selector": { "matchLabels": { "app": NAME } },
            "template": {
                "metadata": { "labels": { "app": NAME } },
                "spec": {
                    "nodeSelector": { NODE_KEY: node },
                    "tolerations": [ { "key": NODE_KEY, "operator": "Exists", "effect": "NoSchedule" } ],
                    "terminationGracePeriodSeconds": 10,
                    "containers": [ {
                        "name": "seshat", "image": "seshat:agent-check",
                        "args": [
                            "serve", "--data-dir=/data/d", "--resp-addr=0.0.0.0:6379", "--http-addr=0.0.0.0:8080",
                            "--raft-addr=0.0.0.0:7379",
                            "--advertise-host=$(POD_NAME).probe-headless.$(POD_NAMESPACE).svc.cluster.local",
                            "--follower-mode=$(MODE)",
                        ],
                        "env": [
                            field("POD_NAME", "metadata.name"), field("POD_NAMESPACE", "metadata.namespace"),
                            field("POD_IP", "status.podIP"),
                            { "name": "SESHAT_ADMIN_TOKEN", "valueFrom": { "secretKeyRef": { "name": NAME, "key": "token" } } },
                            { "name": "MODE", "valueFrom": { "configMapKeyRef": { "name": NAME, "key": "mode" } } },
                        ],
                        "ports": [ { "name": "resp", "containerPort": 6379 }, { "name": "http", "containerPort": 8080 } ],
                        "readinessProbe": { "httpGet": { "path": "/healthz", "port": "http" }, "periodSeconds": 1 },
                        "volumeMounts": [ { "name": "data", "mountPath": "/data" } ],
                    } ],
                },
            },
            "volumeClaimTemplates": [ {
                "metadata": { "name": "data" },
                "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": STORAGE_CLASS,
                          "resources": { "requests": { "storage": "64Mi" } } },
            } ],
        },
    })
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until pod `name` exists with a uid other than `not_uid`, Running and Ready.
async fn ready_pod(pods: &Api<Pod>, name: &str, not_uid: Option<&str>) -> anyhow::Result<Pod> {
    Ok(poll(Duration::from_secs(60), &format!("pod {name} ready"), || async {
        let p = pods.get_opt(name).await.ok()??;
        (ready(&p) && p.uid().as_deref() != not_uid && p.metadata.deletion_timestamp.is_none()).then_some(p)
    })
    .await?)
}

fn pod_ip(p: &Pod) -> String {
    p.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default()
}

/// Runs scenario 0.
pub async fn run(s: &Suite) -> anyhow::Result<()> {
    let tl = &s.tl;
    let c = &s.client;
    let (pods, sts): (Api<Pod>, Api<StatefulSet>) =
        (Api::namespaced(c.clone(), TEST_NS), Api::namespaced(c.clone(), TEST_NS));
    create(
        &Api::<Secret>::namespaced(c.clone(), TEST_NS),
        json!({ "metadata": { "name": NAME }, "stringData": { "token": TOKEN } }),
    )
    .await?;
    create(
        &Api::<ConfigMap>::namespaced(c.clone(), TEST_NS),
        json!({ "metadata": { "name": NAME }, "data": { "mode": "forward" } }),
    )
    .await?;
    create(
        &Api::<Service>::namespaced(c.clone(), TEST_NS),
        json!({
            "metadata": { "name": format!("{NAME}-headless") },
            "spec": { "clusterIP": "None", "publishNotReadyAddresses": true, "selector": { "app": NAME },
                      "ports": [ { "name": "http", "port": 8080 } ] },
        }),
    )
    .await?;
    create(&sts, statefulset(s.agent().node())).await?;
    tl.note("StatefulSet probe (2 replicas) created");

    let p0 = ready_pod(&pods, "probe-0", None).await?;
    let p1 = ready_pod(&pods, "probe-1", None).await?;
    let (ip0, ip1) = (pod_ip(&p0), pod_ip(&p1));
    tl.note(format!("both pods Ready: probe-0 at {ip0}, probe-1 at {ip1}"));
    ensure!(ip0 != ip1 && ip0.starts_with("198.1"), "pod IPs must be distinct and from the pool");
    for (name, want) in [(fqdn(0), &ip0), ("probe-1.probe-headless".to_string(), &ip1)] {
        let got: Vec<_> = tokio::net::lookup_host((name.as_str(), 8080)).await?.map(|a| a.ip().to_string()).collect();
        ensure!(got.contains(want), "{name} resolves to {got:?}, not {want}");
    }
    tl.note("pod DNS names resolve to the pod IPs (FQDN and short form)");
    let eps: Api<Endpoints> = Api::namespaced(c.clone(), TEST_NS);
    poll(Duration::from_secs(30), "headless Endpoints with both pod IPs", || async {
        let ep = eps.get_opt("probe-headless").await.ok()??;
        let ips: Vec<String> =
            ep.subsets?.into_iter().flat_map(|s| s.addresses.unwrap_or_default()).map(|a| a.ip).collect();
        (ips.contains(&ip0) && ips.contains(&ip1)).then_some(())
    })
    .await?;
    tl.note("the endpoints controller published both pod IPs");

    // Env: the advertised address comes from fieldRefs, the admin token from the Secret.
    let admin = AdminClient::new(format!("{}:8080", fqdn(0)), Some(TOKEN.into()));
    let st = admin.cluster().await.context("GET /cluster on probe-0")?;
    ensure!(st.addr.http_addr == format!("{}:8080", fqdn(0)), "advertised {:?}", st.addr);
    admin.init(&InitRequest::default()).await.context("POST /admin/init with the Secret's token")?;
    let node_id = st.node_id;
    poll(Duration::from_secs(20), "a write on the initialized probe-0", || async {
        let mut kv = Kv::connect(&format!("{}:6379", fqdn(0)), Duration::from_secs(2)).await.ok()?;
        kv.set("agent-check", "kept").await.ok()
    })
    .await?;
    tl.note(format!("probe-0 (node {node_id}) initialized with the Secret's token; key written"));

    // A deleted pod: stopped, re-created at a new IP, with its data.
    let data0 = volumes::host_dir_of_claim(c, TEST_NS, "data-probe-0").await?.context("data-probe-0 bound")?;
    pods.delete("probe-0", &DeleteParams::default()).await?;
    let p0b = ready_pod(&pods, "probe-0", p0.uid().as_deref()).await?;
    let st2 = poll(Duration::from_secs(20), "probe-0 answering again", || async { admin.cluster().await.ok() }).await?;
    ensure!(st2.node_id == node_id, "probe-0 came back as node {} instead of {node_id}", st2.node_id);
    let value = poll(Duration::from_secs(30), "the key read back", || async {
        let mut kv = Kv::connect(&format!("{}:6379", fqdn(0)), Duration::from_secs(2)).await.ok()?;
        kv.get("agent-check").await.ok()?
    })
    .await?;
    ensure!(value == b"kept", "read back {value:?}");
    tl.note(format!("probe-0 re-created at {} with its data (node {node_id}, key kept)", pod_ip(&p0b)));

    // A deleted PVC loses its data.
    sts.patch(NAME, &PatchParams::default(), &Patch::Merge(json!({ "spec": { "replicas": 1 } }))).await?;
    poll(Duration::from_secs(30), "probe-1 gone", || async {
        pods.get_opt("probe-1").await.ok()?.is_none().then_some(())
    })
    .await?;
    let data1 = volumes::host_dir_of_claim(c, TEST_NS, "data-probe-1").await?.context("data-probe-1 bound")?;
    ensure!(data1.join("d").exists(), "probe-1's data dir {} missing", data1.display());
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(c.clone(), TEST_NS);
    pvcs.delete("data-probe-1", &DeleteParams::default()).await?;
    poll(Duration::from_secs(30), "data-probe-1's directory removed", || async { (!data1.exists()).then_some(()) })
        .await?;
    tl.note("scaled to 1 and deleted pvc/data-probe-1: its directory is gone");

    sts.delete(NAME, &DeleteParams::foreground()).await?;
    poll(Duration::from_secs(30), "probe pods gone", || async {
        pods.list(&Default::default())
            .await
            .ok()?
            .items
            .iter()
            .all(|p| !p.name_any().starts_with("probe-"))
            .then_some(())
    })
    .await?;
    pvcs.delete("data-probe-0", &DeleteParams::default()).await?;
    poll(Duration::from_secs(30), "data-probe-0's directory removed", || async { (!data0.exists()).then_some(()) })
        .await?;
    Api::<Service>::namespaced(c.clone(), TEST_NS).delete("probe-headless", &DeleteParams::default()).await?;
    tl.note("StatefulSet, Service and PVCs deleted: no process, no data left");
    Ok(())
}
