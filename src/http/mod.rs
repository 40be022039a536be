//! HTTP ingress: the router, its shared state, and the layers every request goes through.

pub mod error;
mod health;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::MatchedPath;
use axum::http::{HeaderName, Request};
use tokio::sync::Notify;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::settings::HandshakeMode;
use crate::store::Store;
use crate::webhook_health::WebhookHealth;
use crate::worker::WorkerStatus;
use error::ApiError;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub handshake: HandshakeMode,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// Nudges the worker when new jobs are queued.
    pub wake_worker: Arc<Notify>,
    pub worker: Arc<WorkerStatus>,
    pub health: Arc<WebhookHealth>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(webhooks::router())
        .merge(health::router())
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("method not allowed on this endpoint".into())
        })
        .with_state(state)
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map(MatchedPath::as_str)
                    .unwrap_or("unmatched");
                let request_id = request
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %request.method(), route, request_id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}
