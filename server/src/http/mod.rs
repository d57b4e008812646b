//! The HTTP API (axum, one port): health, readiness, leader, cluster status,
//! Prometheus metrics, and the token-protected admin endpoints that change
//! membership. The wire types are `seshat_control::api`.

mod admin;
mod status;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use seshat_control::api::ApiError;

use crate::metrics::SharedMetrics;
use crate::raft::RaftNode;

/// Shared state of the HTTP handlers.
#[derive(Debug)]
pub struct HttpState {
    /// The Raft node.
    pub node: Arc<RaftNode>,
    /// Metrics registry.
    pub metrics: SharedMetrics,
    /// Bearer token required on `/admin/*`, if set.
    pub admin_token: Option<String>,
    /// Serialises membership changes: a second concurrent one gets 409.
    membership_lock: tokio::sync::Mutex<()>,
}

impl HttpState {
    /// State for `node`.
    pub fn new(node: Arc<RaftNode>, metrics: SharedMetrics, admin_token: Option<String>) -> Self {
        HttpState { node, metrics, admin_token, membership_lock: tokio::sync::Mutex::new(()) }
    }
}

/// An error reply: status code plus [`ApiError`] body (boxed: error paths
/// are rare and the body is large).
#[derive(Debug)]
pub struct HttpError(pub StatusCode, pub Box<ApiError>);

impl HttpError {
    /// An error with `code` and `message`.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        HttpError(status, Box::new(ApiError { code: code.to_string(), message: message.into(), leader: None }))
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.0, Json(*self.1)).into_response()
    }
}

/// Builds the router.
pub fn router(state: Arc<HttpState>) -> Router {
    let admin = Router::new()
        .route("/admin/init", post(admin::init))
        .route("/admin/learners", post(admin::add_learner))
        .route("/admin/membership", post(admin::set_membership))
        .route("/admin/transfer-leader", post(admin::transfer_leader))
        .route("/admin/snapshot", post(admin::snapshot))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(status::readyz))
        .route("/leader", get(status::leader))
        .route("/cluster", get(status::cluster))
        .route("/metrics", get(metrics))
        .merge(admin)
        .with_state(state)
}

async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    let body = state.metrics.render(&state.node);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

async fn require_token(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    if let Some(expected) = &state.admin_token {
        let given =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        // Compare in constant time: the token guards membership changes.
        let ok = given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes()));
        if !ok {
            return HttpError::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing or wrong admin bearer token")
                .into_response();
        }
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
