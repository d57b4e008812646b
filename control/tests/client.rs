//! `AdminClient` against a scripted fake HTTP server: decoding, bearer token,
//! error classification and timeouts.

use std::collections::BTreeMap;
use std::time::Duration;

use seshat_control::api::*;
use seshat_control::client::{AdminClient, ClientError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// One recorded request: request line and raw headers + body.
#[derive(Debug)]
struct Seen {
    head: String,
    body: String,
}

/// Serves `reply(path) -> Option<(status, body)>` (`None`: never answer) on loopback.
async fn fake(
    reply: impl Fn(&str) -> Option<(u16, String)> + Send + Sync + 'static,
) -> (String, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    let reply = std::sync::Arc::new(reply);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let head = text[..end].to_string();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break (head, text[end + 4..end + 4 + len].to_string());
                        }
                    }
                };
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let _ = tx.send(Seen { head, body });
                let Some((status, body)) = reply(&path) else {
                    // Hold the connection open without answering.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return;
                };
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (addr, rx)
}

fn status_json() -> String {
    let st = ClusterStatus {
        node_id: 7,
        addr: NodeAddr { raft_addr: "h:1".into(), resp_addr: "h:2".into(), http_addr: "h:3".into() },
        role: Role::Leader,
        term: 3,
        leader_id: Some(7),
        last_log_index: Some(10),
        last_applied: Some(10),
        committed: Some(10),
        snapshot_index: None,
        purged_index: None,
        membership: Membership::default(),
        replication: BTreeMap::from([(8, Some(9)), (9, None)]),
        version: "0.1.0".into(),
    };
    serde_json::to_string(&st).unwrap()
}

#[tokio::test]
async fn decodes_status_and_readiness() {
    let (addr, _rx) = fake(|path| match path {
        "/cluster" => Some((200, status_json())),
        "/readyz" => Some((503, r#"{"ready":false,"reason":"no leader"}"#.into())),
        "/healthz" => Some((200, "ok".into())),
        _ => Some((404, String::new())),
    })
    .await;
    let c = AdminClient::new(addr, None);
    let st = c.cluster().await.unwrap();
    assert_eq!(st.node_id, 7);
    assert_eq!(st.replication.get(&8), Some(&Some(9)));
    let r = c.ready().await.unwrap();
    assert!(!r.ready);
    assert_eq!(r.reason, "no leader");
    c.health().await.unwrap();
}

#[tokio::test]
async fn admin_calls_send_bearer_token_and_json_body() {
    let (addr, mut rx) = fake(|_| Some((200, r#"{"ok":true,"log_index":5}"#.into()))).await;
    let c = AdminClient::new(addr, Some("s3cret".into()));
    let ok = c
        .set_membership(&SetMembershipRequest { voters: vec![1, 2], retain: false, remove_learners: vec![4] })
        .await
        .unwrap();
    assert_eq!(ok.log_index, Some(5));
    let seen = rx.recv().await.unwrap();
    assert!(seen.head.starts_with("POST /admin/membership"), "{}", seen.head);
    assert!(seen.head.to_ascii_lowercase().contains("authorization: bearer s3cret"), "{}", seen.head);
    let body: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(body["voters"], serde_json::json!([1, 2]));
    assert_eq!(body["remove_learners"], serde_json::json!([4]));
    // Status reads never carry the token.
    let _ = c.leader().await;
    let seen = rx.recv().await.unwrap();
    assert!(!seen.head.to_ascii_lowercase().contains("authorization"));
}

#[tokio::test]
async fn classifies_errors() {
    let (addr, _rx) = fake(|path| match path {
        "/admin/init" => Some((401, r#"{"code":"unauthorized","message":"no"}"#.into())),
        "/admin/learners" => Some((
            421,
            r#"{"code":"not_leader","message":"go away","leader":{"leader_id":3,"leader_resp_addr":"a:1","leader_http_addr":"a:2","term":4}}"#.into(),
        )),
        "/admin/membership" => Some((409, r#"{"code":"conflict","message":"busy"}"#.into())),
        "/admin/snapshot" => Some((500, "boom".into())),
        "/cluster" => Some((200, "{not json".into())),
        _ => None,
    })
    .await;
    let c = AdminClient::new(addr, None).with_timeouts(Duration::from_millis(300), Duration::from_millis(300));
    assert!(matches!(c.init(&InitRequest::default()).await, Err(ClientError::Unauthorized { .. })));
    match c.add_learner(&AddLearnerRequest { node_id: 1, addr: NodeAddr::default(), blocking: true }).await {
        Err(ClientError::NotLeader { leader: Some(l), .. }) => assert_eq!(l.leader_id, Some(3)),
        other => panic!("{other:?}"),
    }
    match c.set_membership(&SetMembershipRequest { voters: vec![1], retain: false, remove_learners: vec![] }).await {
        Err(ClientError::Conflict { error, .. }) => assert_eq!(error.message, "busy"),
        other => panic!("{other:?}"),
    }
    match c.snapshot().await {
        Err(ClientError::Api { status, error, .. }) => {
            assert_eq!(status, 500);
            assert_eq!(error.code, "http_500");
            assert_eq!(error.message, "boom");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(c.cluster().await, Err(ClientError::Decode { .. })));
    // `/leader` is never answered: the short timeout fires.
    let err = c.leader().await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn refused_connection_is_unreachable() {
    // Bind then drop: the port is very likely closed for the next instant.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    let err = AdminClient::new(addr, None).cluster().await.unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient());
}

#[test]
fn wire_defaults_stay_compatible() {
    // Old clients omit `remove_learners`; `blocking` defaults to true.
    let m: SetMembershipRequest = serde_json::from_str(r#"{"voters":[1]}"#).unwrap();
    assert!(m.remove_learners.is_empty() && !m.retain);
    let s = serde_json::to_string(&m).unwrap();
    assert!(!s.contains("remove_learners"), "{s}");
    let a: AddLearnerRequest =
        serde_json::from_str(r#"{"node_id":1,"addr":{"raft_addr":"a","resp_addr":"b","http_addr":"c"}}"#).unwrap();
    assert!(a.blocking);
}
