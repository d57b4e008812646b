//! `AdminClient`: a typed async HTTP client for one node's status and admin API.
//!
//! Every request has a timeout (short for status reads, long for the admin calls that
//! wait on Raft, such as adding a learner that must catch up first), so a hung or
//! partitioned node can never stall a reconcile loop. Errors are classified so that
//! callers can react to the cases that matter ([`ClientError::NotLeader`] carries the
//! leader to retry on, [`ClientError::Conflict`] means "another change is in flight").

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::{
    AddLearnerRequest, AdminOk, ApiError, ClusterStatus, InitRequest, LeaderInfo, Readiness, SetMembershipRequest,
    TransferLeaderRequest,
};

/// Default timeout of status requests (`/healthz`, `/readyz`, `/cluster`, `/leader`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Default timeout of admin requests that wait on Raft (learner catch-up, joint
/// consensus, snapshots).
pub const DEFAULT_LONG_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The node could not be reached (connection refused, reset, DNS failure).
    #[error("{addr} unreachable: {detail}")]
    Unreachable {
        /// The node's HTTP address.
        addr: String,
        /// The transport error.
        detail: String,
    },
    /// No complete reply within the request's timeout.
    #[error("{addr}: no reply within {timeout:?}")]
    Timeout {
        /// The node's HTTP address.
        addr: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// 401: missing or wrong admin token.
    #[error("{addr}: unauthorized (admin token missing or wrong)")]
    Unauthorized {
        /// The node's HTTP address.
        addr: String,
    },
    /// 421 / `not_leader`: the call must go to the leader.
    #[error("{addr}: not the leader (leader: {leader:?})")]
    NotLeader {
        /// The node's HTTP address.
        addr: String,
        /// The leader, when the node knows it.
        leader: Option<LeaderInfo>,
    },
    /// 409: another membership change is in flight, or the request conflicts with
    /// the node's state (e.g. `already_initialized`).
    #[error("{addr}: conflict: {error:?}")]
    Conflict {
        /// The node's HTTP address.
        addr: String,
        /// The server's error body (boxed: keeps `Result<_, ClientError>` small).
        error: Box<ApiError>,
    },
    /// Any other non-success status.
    #[error("{addr}: HTTP {status}: {} ({})", error.message, error.code)]
    Api {
        /// The node's HTTP address.
        addr: String,
        /// The HTTP status code.
        status: u16,
        /// The server's error body (synthesized when the body was not JSON).
        error: Box<ApiError>,
    },
    /// The reply did not decode as the expected JSON.
    #[error("{addr}: undecodable reply: {detail}")]
    Decode {
        /// The node's HTTP address.
        addr: String,
        /// The decoding error.
        detail: String,
    },
}

impl ClientError {
    /// True for errors that say nothing about the node's state (it may just be down
    /// or slow): the caller should observe again rather than conclude anything.
    pub fn is_transient(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. } | ClientError::Timeout { .. })
    }
}

/// Client for one node's HTTP API.
///
/// Cheap to clone; [`AdminClient::for_addr`] makes a client for another node that
/// shares the connection pool, token and timeouts.
#[derive(Debug, Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    addr: String,
    token: Option<String>,
    timeout: Duration,
    long_timeout: Duration,
}

impl AdminClient {
    /// A client for the node whose HTTP API listens at `addr` (`host:port`), sending
    /// `token` as bearer token on admin calls when given.
    pub fn new(addr: impl Into<String>, token: Option<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            addr: addr.into(),
            token,
            timeout: DEFAULT_TIMEOUT,
            long_timeout: DEFAULT_LONG_TIMEOUT,
        }
    }

    /// Sets the timeouts of status requests (`short`) and of admin requests that wait
    /// on Raft (`long`).
    pub fn with_timeouts(mut self, short: Duration, long: Duration) -> Self {
        self.timeout = short;
        self.long_timeout = long;
        self
    }

    /// A client for another node, sharing pool, token and timeouts.
    pub fn for_addr(&self, addr: impl Into<String>) -> Self {
        Self { addr: addr.into(), ..self.clone() }
    }

    /// The `host:port` this client talks to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `GET /healthz`: Ok while the process serves HTTP.
    pub async fn health(&self) -> Result<(), ClientError> {
        let resp = self.send(Method::GET, "/healthz", None::<&()>, false).await?;
        let resp = self.check(resp).await?;
        // Drain the body so the connection returns to the pool.
        resp.bytes().await.map_err(|e| self.transport(e, false))?;
        Ok(())
    }

    /// `GET /readyz`. Both 200 and 503 carry a [`Readiness`]; only other statuses fail.
    pub async fn ready(&self) -> Result<Readiness, ClientError> {
        let resp = self.send(Method::GET, "/readyz", None::<&()>, false).await?;
        if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
            return self.decode(resp).await;
        }
        let resp = self.check(resp).await?;
        self.decode(resp).await
    }

    /// `GET /cluster`: the node's own view of the cluster.
    pub async fn cluster(&self) -> Result<ClusterStatus, ClientError> {
        self.call(Method::GET, "/cluster", None::<&()>, false).await
    }

    /// `GET /leader`.
    pub async fn leader(&self) -> Result<LeaderInfo, ClientError> {
        self.call(Method::GET, "/leader", None::<&()>, false).await
    }

    /// `POST /admin/init`: bootstrap a new cluster on this node.
    pub async fn init(&self, req: &InitRequest) -> Result<AdminOk, ClientError> {
        self.call(Method::POST, "/admin/init", Some(req), true).await
    }

    /// `POST /admin/learners` (on the leader). Uses the long timeout: with
    /// `blocking: true` the server replies only once the learner caught up.
    pub async fn add_learner(&self, req: &AddLearnerRequest) -> Result<AdminOk, ClientError> {
        self.call(Method::POST, "/admin/learners", Some(req), true).await
    }

    /// `POST /admin/membership` (on the leader): set the voter set. Long timeout: the
    /// joint config must commit on both majorities.
    pub async fn set_membership(&self, req: &SetMembershipRequest) -> Result<AdminOk, ClientError> {
        self.call(Method::POST, "/admin/membership", Some(req), true).await
    }

    /// `POST /admin/transfer-leader` (on the leader).
    pub async fn transfer_leader(&self, req: &TransferLeaderRequest) -> Result<AdminOk, ClientError> {
        self.call(Method::POST, "/admin/transfer-leader", Some(req), true).await
    }

    /// `POST /admin/snapshot`: build a snapshot now (long timeout).
    pub async fn snapshot(&self) -> Result<AdminOk, ClientError> {
        self.call(Method::POST, "/admin/snapshot", None::<&()>, true).await
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        admin: bool,
    ) -> Result<T, ClientError> {
        let resp = self.send(method, path, body, admin).await?;
        let resp = self.check(resp).await?;
        self.decode(resp).await
    }

    /// Admin calls are the ones that wait on Raft: they get the long timeout.
    async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        admin: bool,
    ) -> Result<reqwest::Response, ClientError> {
        let timeout = if admin { self.long_timeout } else { self.timeout };
        let mut req = self.http.request(method, format!("http://{}{}", self.addr, path)).timeout(timeout);
        if admin {
            if let Some(token) = &self.token {
                req = req.bearer_auth(token);
            }
            // The server's admin endpoints take JSON; an empty object is the
            // neutral body for those without parameters (snapshot).
            req = match body {
                Some(b) => req.json(b),
                None => req.json(&serde_json::json!({})),
            };
        } else if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await.map_err(|e| self.transport(e, admin))
    }

    fn transport(&self, e: reqwest::Error, admin: bool) -> ClientError {
        if e.is_timeout() {
            ClientError::Timeout {
                addr: self.addr.clone(),
                timeout: if admin { self.long_timeout } else { self.timeout },
            }
        } else {
            ClientError::Unreachable { addr: self.addr.clone(), detail: error_chain(&e) }
        }
    }

    /// Maps a non-success status to the typed error.
    async fn check(&self, resp: reqwest::Response) -> Result<reqwest::Response, ClientError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let error = serde_json::from_str::<ApiError>(&text).unwrap_or_else(|_| ApiError {
            code: format!("http_{}", status.as_u16()),
            message: text.trim().to_string(),
            leader: None,
        });
        let addr = self.addr.clone();
        Err(match status {
            StatusCode::UNAUTHORIZED => ClientError::Unauthorized { addr },
            StatusCode::MISDIRECTED_REQUEST => ClientError::NotLeader { addr, leader: error.leader },
            _ if error.code == "not_leader" => ClientError::NotLeader { addr, leader: error.leader },
            StatusCode::CONFLICT => ClientError::Conflict { addr, error: Box::new(error) },
            _ => ClientError::Api { addr, status: status.as_u16(), error: Box::new(error) },
        })
    }

    async fn decode<T: DeserializeOwned>(&self, resp: reqwest::Response) -> Result<T, ClientError> {
        let bytes = resp.bytes().await.map_err(|e| self.transport(e, false))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            addr: self.addr.clone(),
            detail: format!("{e}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(200)])),
        })
    }
}

/// `reqwest`'s top-level message hides the cause ("error sending request"): join the chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
