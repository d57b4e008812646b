//! The reconciler against kube-rs's mock API service (`tower-test`): every request it
//! sends for a new cluster, a cluster being created, and a cluster being deleted, in
//! order, with the fields that matter asserted.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};
use kube::Client;
use serde_json::{json, Value};
use seshat_operator::crd::{SeshatCluster, SeshatClusterSpec};
use seshat_operator::metrics::Metrics;
use seshat_operator::reconciler::{reconcile, Config, Context};
use tower_test::mock::{self, Handle, SendResponse};

const NS: &str = "prod";
const UID: &str = "0b5b9f0c-2d3e-4b6f-9c1a-1f2e3d4c5b6a";

type ApiHandle = Handle<Request<Body>, Response<Body>>;

/// One request the operator sent, decoded.
struct Seen {
    method: Method,
    path: String,
    query: String,
    body: Value,
    send: SendResponse<Response<Body>>,
}

impl Seen {
    fn reply(self, code: StatusCode, body: &Value) {
        let bytes = serde_json::to_vec(body).expect("json");
        self.send.send_response(Response::builder().status(code).body(Body::from(bytes)).expect("response"));
    }
    /// Answers with the object that was sent (what an apply or create returns).
    fn echo(self) {
        let body = self.body.clone();
        self.reply(StatusCode::OK, &body);
    }
    fn not_found(self) {
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "not found", "reason": "NotFound", "code": 404});
        self.reply(StatusCode::NOT_FOUND, &status);
    }
}

async fn next(handle: &mut ApiHandle, method: Method, path: &str) -> Seen {
    let (req, send) = tokio::time::timeout(Duration::from_secs(10), handle.next_request())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {method} {path}"))
        .unwrap_or_else(|| panic!("client gone before {method} {path}"));
    let (parts, body) = req.into_parts();
    let bytes = body.collect_bytes().await.expect("request body");
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
    let seen = Seen {
        method: parts.method.clone(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        body,
        send,
    };
    assert_eq!((&seen.method, seen.path.as_str()), (&method, path), "unexpected request (query {})", seen.query);
    seen
}

fn cluster(finalizer: bool, deleting: bool, spec: Value) -> SeshatCluster {
    let mut meta = json!({"name": "demo", "namespace": NS, "uid": UID, "generation": 1, "resourceVersion": "7"});
    if finalizer {
        meta["finalizers"] = json!(["seshat.io/cleanup"]);
    }
    if deleting {
        meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    serde_json::from_value(
        json!({"apiVersion": "seshat.io/v1alpha1", "kind": "SeshatCluster", "metadata": meta, "spec": spec}),
    )
    .expect("valid SeshatCluster")
}

fn context() -> (Arc<Context>, ApiHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let recorder =
        Recorder::new(client.clone(), Reporter { controller: "seshat-operator".into(), instance: Some("op-0".into()) });
    // Pods in these tests have unresolvable DNS names: fail their probes fast.
    let config = Config { node_timeout: Duration::from_millis(300), ..Config::default() };
    let ctx = Context::new(client, recorder, Arc::new(Metrics::new()), config);
    (Arc::new(ctx), handle)
}

/// The reconcile's result; a reconcile blocked on a request nobody answers fails
/// here instead of hanging the test.
async fn finish<T>(run: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), run).await.expect("reconcile ends").expect("join")
}

fn assert_owned(obj: &Value) {
    let refs = obj["metadata"]["ownerReferences"].as_array().expect("owner references");
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0]["uid"], UID);
    assert_eq!(refs[0]["kind"], "SeshatCluster");
    assert_eq!(refs[0]["controller"], true);
    assert_eq!(obj["metadata"]["labels"]["app.kubernetes.io/managed-by"], "seshat-operator");
}

fn assert_applied(seen: &Seen) {
    assert!(seen.query.contains("fieldManager=seshat-operator"), "field manager in {}", seen.query);
    assert!(seen.query.contains("force=true"), "forced apply in {}", seen.query);
    assert_owned(&seen.body);
}

#[tokio::test]
async fn new_cluster_gets_the_finalizer_first() {
    let (ctx, mut api) = context();
    let obj = Arc::new(cluster(false, false, json!({"image": "seshat:1"})));
    let run = tokio::spawn(reconcile(obj, ctx.clone()));

    let seen = next(&mut api, Method::PATCH, "/apis/seshat.io/v1alpha1/namespaces/prod/seshatclusters/demo").await;
    let ops = seen.body.as_array().expect("JSON patch");
    assert!(ops.iter().any(|op| op["op"] == "add" && op["value"] == json!(["seshat.io/cleanup"])), "{ops:?}");
    let patched = serde_json::to_value(cluster(true, false, json!({"image": "seshat:1"}))).unwrap();
    seen.reply(StatusCode::OK, &patched);

    finish(run).await.expect("reconcile succeeds");
}

#[tokio::test]
async fn creating_cluster_applies_every_object_scales_and_reports() {
    let (ctx, mut api) = context();
    let spec = json!({"image": "seshat:1", "replicas": 3});
    let run = tokio::spawn(reconcile(Arc::new(cluster(true, false, spec)), ctx.clone()));

    // Admin token: generated once.
    next(&mut api, Method::GET, "/api/v1/namespaces/prod/secrets/demo-admin").await.not_found();
    let seen = next(&mut api, Method::POST, "/api/v1/namespaces/prod/secrets").await;
    assert_owned(&seen.body);
    assert_eq!(seen.body["metadata"]["name"], "demo-admin");
    assert!(seen.body["data"]["token"].as_str().is_some_and(|t| !t.is_empty()));
    seen.echo();

    let seen = next(&mut api, Method::PATCH, "/api/v1/namespaces/prod/configmaps/demo-config").await;
    assert_applied(&seen);
    assert_eq!(seen.body["data"]["SESHAT_READ_CONSISTENCY"], "linearizable");
    seen.echo();

    let seen = next(&mut api, Method::PATCH, "/api/v1/namespaces/prod/services/demo-headless").await;
    assert_applied(&seen);
    assert_eq!(seen.body["spec"]["clusterIP"], "None");
    assert_eq!(seen.body["spec"]["publishNotReadyAddresses"], true);
    let ports: Vec<_> = seen.body["spec"]["ports"].as_array().unwrap().iter().map(|p| p["port"].clone()).collect();
    assert_eq!(ports, [json!(6379), json!(8080), json!(7379)]);
    seen.echo();

    let seen = next(&mut api, Method::PATCH, "/api/v1/namespaces/prod/services/demo").await;
    assert_applied(&seen);
    assert_eq!(seen.body["spec"]["type"], "ClusterIP");
    assert!(seen.body["spec"]["selector"].get("seshat.io/role").is_none());
    assert!(seen.body["spec"].get("publishNotReadyAddresses").is_none(), "client Service: ready pods only");
    seen.echo();

    let seen = next(&mut api, Method::PATCH, "/api/v1/namespaces/prod/services/demo-leader").await;
    assert_applied(&seen);
    assert_eq!(seen.body["spec"]["selector"]["seshat.io/role"], "leader");
    assert_eq!(seen.body["spec"]["selector"]["app.kubernetes.io/instance"], "demo");
    seen.echo();

    let seen = next(&mut api, Method::PATCH, "/apis/policy/v1/namespaces/prod/poddisruptionbudgets/demo").await;
    assert_applied(&seen);
    assert_eq!(seen.body["spec"]["maxUnavailable"], 1, "3 voters tolerate 1 disruption");
    seen.echo();

    next(&mut api, Method::GET, "/apis/apps/v1/namespaces/prod/statefulsets/demo").await.not_found();
    // First apply: the template, at the size the planner last set (none yet: 0).
    let seen = next(&mut api, Method::PATCH, "/apis/apps/v1/namespaces/prod/statefulsets/demo").await;
    assert_applied(&seen);
    let sts = &seen.body["spec"];
    assert_eq!(sts["replicas"], 0);
    assert_eq!(sts["podManagementPolicy"], "Parallel");
    assert_eq!(sts["updateStrategy"]["type"], "OnDelete");
    assert_eq!(sts["serviceName"], "demo-headless");
    assert!(sts.get("persistentVolumeClaimRetentionPolicy").is_none(), "unknown to Kubernetes 1.20");
    let pod = &sts["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "seshat:1");
    let args: Vec<&str> = c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(args[0], "serve");
    assert!(args.contains(&"--advertise-host=$(POD_NAME).demo-headless.prod.svc.cluster.local"), "{args:?}");
    assert!(args.contains(&"--data-dir=/var/lib/seshat/data"), "{args:?}");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    let env = c["env"].as_array().unwrap();
    let token = env.iter().find(|e| e["name"] == "SESHAT_ADMIN_TOKEN").expect("token env");
    assert_eq!(token["valueFrom"]["secretKeyRef"], json!({"name": "demo-admin", "key": "token"}));
    let pod_name = env.iter().position(|e| e["name"] == "POD_NAME").expect("POD_NAME env");
    assert_eq!(env[pod_name]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name");
    let ports: Vec<_> =
        c["ports"].as_array().unwrap().iter().map(|p| (p["name"].clone(), p["containerPort"].clone())).collect();
    assert_eq!(ports, [(json!("resp"), json!(6379)), (json!("http"), json!(8080)), (json!("raft"), json!(7379))]);
    assert_eq!(sts["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"], "1Gi");
    seen.echo();

    // Observation: no pods, no volumes yet.
    let seen = next(&mut api, Method::GET, "/api/v1/namespaces/prod/pods").await;
    assert!(seen.query.contains("labelSelector="), "{}", seen.query);
    seen.reply(StatusCode::OK, &json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []}));
    let seen = next(&mut api, Method::GET, "/api/v1/namespaces/prod/persistentvolumeclaims").await;
    seen.reply(
        StatusCode::OK,
        &json!({"apiVersion": "v1", "kind": "PersistentVolumeClaimList", "metadata": {}, "items": []}),
    );

    // The planner's one step: grow the workload, with an Event.
    let seen = next(&mut api, Method::PATCH, "/apis/apps/v1/namespaces/prod/statefulsets/demo").await;
    assert_applied(&seen);
    assert_eq!(seen.body["spec"]["replicas"], 3);
    seen.echo();
    let seen = next(&mut api, Method::POST, "/apis/events.k8s.io/v1/namespaces/prod/events").await;
    assert_eq!(seen.body["reason"], "ScaleWorkload");
    assert_eq!(seen.body["type"], "Normal");
    assert_eq!(seen.body["regarding"]["name"], "demo");
    assert_eq!(seen.body["regarding"]["kind"], "SeshatCluster");
    assert_eq!(seen.body["reportingController"], "seshat-operator");
    assert!(seen.body["note"].as_str().unwrap().contains("scale workload to 3"));
    seen.echo();

    // Status.
    let seen =
        next(&mut api, Method::PATCH, "/apis/seshat.io/v1alpha1/namespaces/prod/seshatclusters/demo/status").await;
    let status = &seen.body["status"];
    assert_eq!(status["phase"], "Pending");
    assert_eq!(status["ready"], "0/3");
    assert_eq!(status["readyReplicas"], 0);
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["leader"], Value::Null, "no leader yet: field removed by the merge patch");
    let types: Vec<_> =
        status["conditions"].as_array().unwrap().iter().map(|c| (c["type"].clone(), c["status"].clone())).collect();
    assert_eq!(
        types,
        [
            (json!("Available"), json!("False")),
            (json!("Progressing"), json!("True")),
            (json!("Degraded"), json!("False"))
        ]
    );
    let mut echoed = serde_json::to_value(cluster(true, false, json!({"image": "seshat:1"}))).unwrap();
    echoed["status"] = status.clone();
    seen.reply(StatusCode::OK, &echoed);

    let action = finish(run).await.expect("reconcile succeeds");
    assert_eq!(action, kube::runtime::controller::Action::requeue(Duration::from_secs(2)));
    assert!(ctx.metrics.render().contains("seshat_operator_actions_total{action=\"scale_workload\",result=\"ok\"} 1"));
}

#[tokio::test]
async fn disabled_pdb_is_not_applied() {
    let (ctx, mut api) = context();
    let spec = json!({"image": "seshat:1", "podDisruptionBudget": {"enabled": false}, "auth": {"secretRef": {"name": "mine"}}});
    let run = tokio::spawn(reconcile(Arc::new(cluster(true, false, spec)), ctx));

    // The user's Secret is read, never created.
    let seen = next(&mut api, Method::GET, "/api/v1/namespaces/prod/secrets/mine").await;
    seen.reply(
        StatusCode::OK,
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mine"}, "data": {"token": "czNjcjN0"}}),
    );
    for path in ["configmaps/demo-config", "services/demo-headless", "services/demo", "services/demo-leader"] {
        next(&mut api, Method::PATCH, &format!("/api/v1/namespaces/prod/{path}")).await.echo();
    }
    // Disabled: only an owned PDB would be deleted; there is none.
    next(&mut api, Method::GET, "/apis/policy/v1/namespaces/prod/poddisruptionbudgets/demo").await.not_found();
    let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "demo", "namespace": NS}, "spec": {"replicas": 3}});
    next(&mut api, Method::GET, "/apis/apps/v1/namespaces/prod/statefulsets/demo").await.reply(StatusCode::OK, &sts);
    let seen = next(&mut api, Method::PATCH, "/apis/apps/v1/namespaces/prod/statefulsets/demo").await;
    assert_eq!(seen.body["spec"]["replicas"], 3, "the existing size is kept");
    let env = seen.body["spec"]["template"]["spec"]["containers"][0]["env"].clone();
    let token = env.as_array().unwrap().iter().find(|e| e["name"] == "SESHAT_ADMIN_TOKEN").unwrap().clone();
    assert_eq!(token["valueFrom"]["secretKeyRef"], json!({"name": "mine", "key": "token"}));
    seen.echo();
    // Pods exist but have not started: the planner waits (no Event, no action).
    let pods: Vec<Value> = (0..3)
        .map(|i| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("demo-{i}"), "namespace": NS, "uid": format!("u{i}")}}))
        .collect();
    next(&mut api, Method::GET, "/api/v1/namespaces/prod/pods")
        .await
        .reply(StatusCode::OK, &json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods}));
    next(&mut api, Method::GET, "/api/v1/namespaces/prod/persistentvolumeclaims").await.reply(
        StatusCode::OK,
        &json!({"apiVersion": "v1", "kind": "PersistentVolumeClaimList", "metadata": {}, "items": []}),
    );
    // The pods' DNS names do not resolve here: they are unreachable, so the planner waits.
    let seen =
        next(&mut api, Method::PATCH, "/apis/seshat.io/v1alpha1/namespaces/prod/seshatclusters/demo/status").await;
    assert_eq!(seen.body["status"]["phase"], "Pending");
    assert_eq!(seen.body["status"]["replicas"], 3);
    let members = seen.body["status"]["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|m| m["role"] == "unknown" && m["healthy"] == false));
    let mut echoed = serde_json::to_value(cluster(true, false, json!({"image": "seshat:1"}))).unwrap();
    echoed["status"] = seen.body["status"].clone();
    seen.reply(StatusCode::OK, &echoed);
    let action = finish(run).await.expect("reconcile succeeds");
    assert_eq!(action, kube::runtime::controller::Action::requeue(Duration::from_secs(5)));
}

#[tokio::test]
async fn deleting_cluster_deletes_pvcs_and_removes_the_finalizer() {
    let (ctx, mut api) = context();
    let spec = json!({"image": "seshat:1", "pvcRetention": {"whenDeleted": "Delete"}});
    let run = tokio::spawn(reconcile(Arc::new(cluster(true, true, spec)), ctx));

    let pvcs: Vec<Value> = (0..2)
        .map(|i| json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": format!("data-demo-{i}"), "namespace": NS}}))
        .collect();
    let seen = next(&mut api, Method::GET, "/api/v1/namespaces/prod/persistentvolumeclaims").await;
    assert!(
        seen.query.contains("app.kubernetes.io%2Finstance%3Ddemo")
            || seen.query.contains("app.kubernetes.io/instance=demo"),
        "{}",
        seen.query
    );
    seen.reply(
        StatusCode::OK,
        &json!({"apiVersion": "v1", "kind": "PersistentVolumeClaimList", "metadata": {}, "items": pvcs}),
    );
    for i in 0..2 {
        let seen =
            next(&mut api, Method::DELETE, &format!("/api/v1/namespaces/prod/persistentvolumeclaims/data-demo-{i}"))
                .await;
        let gone = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": format!("data-demo-{i}")}});
        seen.reply(StatusCode::OK, &gone);
    }
    let seen = next(&mut api, Method::POST, "/apis/events.k8s.io/v1/namespaces/prod/events").await;
    assert_eq!(seen.body["reason"], "Cleanup");
    assert!(seen.body["note"].as_str().unwrap().contains("data-demo-1"));
    seen.echo();

    let seen = next(&mut api, Method::PATCH, "/apis/seshat.io/v1alpha1/namespaces/prod/seshatclusters/demo").await;
    let ops = seen.body.as_array().expect("JSON patch");
    assert!(
        ops.iter().any(|op| op["op"] == "test"
            && op["path"] == "/metadata/finalizers/0"
            && op["value"] == "seshat.io/cleanup"),
        "{ops:?}"
    );
    assert!(ops.iter().any(|op| op["op"] == "remove" && op["path"] == "/metadata/finalizers/0"), "{ops:?}");
    let done = serde_json::to_value(cluster(false, true, json!({"image": "seshat:1"}))).unwrap();
    seen.reply(StatusCode::OK, &done);

    finish(run).await.expect("cleanup succeeds");
}

#[tokio::test]
async fn retained_pvcs_are_left_alone_on_delete() {
    let (ctx, mut api) = context();
    let run = tokio::spawn(reconcile(Arc::new(cluster(true, true, json!({"image": "seshat:1"}))), ctx));
    let seen = next(&mut api, Method::POST, "/apis/events.k8s.io/v1/namespaces/prod/events").await;
    assert!(seen.body["note"].as_str().unwrap().contains("Retain"));
    seen.echo();
    let seen = next(&mut api, Method::PATCH, "/apis/seshat.io/v1alpha1/namespaces/prod/seshatclusters/demo").await;
    let done = serde_json::to_value(cluster(false, true, json!({"image": "seshat:1"}))).unwrap();
    seen.reply(StatusCode::OK, &done);
    finish(run).await.expect("cleanup succeeds");
}

#[test]
fn spec_defaults_match_the_example() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/examples/seshat-cluster.yaml"))
            .unwrap();
    let obj: SeshatCluster = serde_norway::from_str(&example).expect("example parses as a SeshatCluster");
    let spec: &SeshatClusterSpec = &obj.spec;
    assert_eq!(spec.replicas, 3);
    assert!(spec.pod_disruption_budget.enabled);
}
