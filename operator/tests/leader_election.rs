//! Lease leader election against the mock API service: create, respect a live
//! holder, renew with the read resourceVersion, take over an expired Lease, lose a
//! race on 409.

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::coordination::v1::Lease;
use kube::client::Body;
use kube::{Api, Client};
use serde_json::{json, Value};
use seshat_operator::leader_election::{ElectionConfig, LeaderElector};
use tower_test::mock::{self, Handle};

type ApiHandle = Handle<Request<Body>, Response<Body>>;
const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases";

fn elector() -> (LeaderElector, ApiHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "ops");
    let api: Api<Lease> = Api::namespaced(client, "ops");
    (LeaderElector::new(api, ElectionConfig::new("seshat-operator", "me")), handle)
}

async fn expect(handle: &mut ApiHandle, method: Method, path: &str, code: StatusCode, reply: Value) -> Value {
    let (req, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("request in time")
        .expect("a request");
    assert_eq!((req.method(), req.uri().path()), (&method, path));
    let bytes = req.into_body().collect_bytes().await.unwrap();
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
    let reply = if reply == json!("echo") { body.clone() } else { reply };
    send.send_response(Response::builder().status(code).body(Body::from(serde_json::to_vec(&reply).unwrap())).unwrap());
    body
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "metadata": {}})
}

fn lease(holder: &str, duration: i32, rv: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "seshat-operator", "namespace": "ops", "resourceVersion": rv},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration,
                 "renewTime": "2026-01-01T00:00:00.000000Z", "leaseTransitions": 3}})
}

#[tokio::test]
async fn creates_the_lease_when_absent() {
    let (mut e, mut api) = elector();
    let run = tokio::spawn(async move { e.try_acquire_or_renew().await.unwrap() });
    expect(&mut api, Method::GET, &format!("{LEASE}/seshat-operator"), StatusCode::NOT_FOUND, not_found()).await;
    let body = expect(&mut api, Method::POST, LEASE, StatusCode::CREATED, json!("echo")).await;
    assert_eq!(body["spec"]["holderIdentity"], "me");
    assert_eq!(body["spec"]["leaseDurationSeconds"], 15);
    assert!(run.await.unwrap(), "creator leads");
}

#[tokio::test]
async fn lost_create_race_is_not_leadership() {
    let (mut e, mut api) = elector();
    let run = tokio::spawn(async move { e.try_acquire_or_renew().await.unwrap() });
    expect(&mut api, Method::GET, &format!("{LEASE}/seshat-operator"), StatusCode::NOT_FOUND, not_found()).await;
    let exists = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "AlreadyExists", "code": 409, "metadata": {}});
    expect(&mut api, Method::POST, LEASE, StatusCode::CONFLICT, exists).await;
    assert!(!run.await.unwrap());
}

#[tokio::test]
async fn live_holder_is_respected_then_renewal_and_takeover_use_resource_version() {
    let (mut e, mut api) = elector();
    let one = format!("{LEASE}/seshat-operator");

    // Someone else holds a 15 s lease we just saw for the first time: stand by, no write.
    let run = tokio::spawn(async move {
        let got = e.try_acquire_or_renew().await.unwrap();
        (e, got)
    });
    expect(&mut api, Method::GET, &one, StatusCode::OK, lease("other", 15, "10")).await;
    let (mut e, got) = run.await.unwrap();
    assert!(!got);

    // The holder's lease has a 0 s duration: expired by our own clock, take it over.
    let run = tokio::spawn(async move {
        let got = e.try_acquire_or_renew().await.unwrap();
        (e, got)
    });
    expect(&mut api, Method::GET, &one, StatusCode::OK, lease("other", 0, "11")).await;
    let body = expect(&mut api, Method::PUT, &one, StatusCode::OK, json!("echo")).await;
    assert_eq!(body["metadata"]["resourceVersion"], "11", "write guarded by what was read");
    assert_eq!(body["spec"]["holderIdentity"], "me");
    assert_eq!(body["spec"]["leaseTransitions"], 4);
    let (mut e, got) = run.await.unwrap();
    assert!(got);

    // Renewal of our own lease; a concurrent writer makes it fail with 409.
    let run = tokio::spawn(async move { e.try_acquire_or_renew().await.unwrap() });
    expect(&mut api, Method::GET, &one, StatusCode::OK, lease("me", 15, "12")).await;
    let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "metadata": {}});
    let body = expect(&mut api, Method::PUT, &one, StatusCode::CONFLICT, conflict).await;
    assert_eq!(body["spec"]["leaseTransitions"], 3, "renewal is not a transition");
    assert!(!run.await.unwrap(), "a lost write is not leadership");
}
