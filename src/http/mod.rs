//! HTTP ingress: the router, its shared state, and the layers every request goes through.

pub mod admin;
pub mod error;
mod health;
mod ingress_error;
mod metrics_endpoint;
mod refusal_log;
mod secret_cache;
pub mod server;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::MatchedPath;
use axum::http::{HeaderName, Request};
use tokio::sync::{Notify, Semaphore};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::{BoxError, ServiceBuilder};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::rooms::RoomsMode;
use crate::settings::HandshakeMode;
use crate::store::Store;
use crate::webhook::watch::WebhookHealth;
use crate::worker::WorkerStatus;
use error::ApiError;
pub use metrics_endpoint::StoreGauges;
pub use secret_cache::SecretCache;

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
    /// In `linked` mode a deleted or archived room degrades readiness.
    pub rooms_mode: RoomsMode,
    /// `access.revoke` on: unassignments, completions, removals and deletions become jobs.
    pub access_lifecycle: bool,
    pub secrets: SecretCache,
    pub store_gauges: Arc<StoreGauges>,
    /// Webhook and `/metrics` requests handled at once (`server.max_concurrent_requests`).
    pub request_slots: Arc<Semaphore>,
    /// The status page (`admin.token` set), with what its routes share.
    pub admin: Option<Arc<admin::AdminState>>,
}

/// Where `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsRoute {
    /// On the main router.
    Included,
    /// On a listener of its own (see [`metrics_router`]).
    Separate,
}

/// Where the status page (`/admin*`) is served, when `admin.token` turns it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRoute {
    /// On the main router (what the operator's proxy exposes).
    Included,
    /// On a listener of its own (`server.admin_port`, see [`admin_router`]).
    Separate,
}

/// The service's routes, with `/metrics` and the status page unless they have ports of their own.
pub fn router(state: AppState, metrics: MetricsRoute, admin: AdminRoute) -> Router {
    let routes = match metrics {
        MetricsRoute::Included => webhooks::router(&state).merge(metrics_endpoint::router()),
        MetricsRoute::Separate => webhooks::router(&state),
    };
    // The status page has its own concurrency limit: outside `request_slots`.
    let routes = limited(routes, &state).merge(health::router());
    let routes = match admin {
        AdminRoute::Included => routes.merge(admin::router(&state)),
        AdminRoute::Separate => routes,
    };
    with_layers(routes, state)
}

/// The status page alone, for `server.admin_port`.
pub fn admin_router(state: AppState) -> Router {
    with_layers(admin::router(&state), state)
}

/// `/metrics` alone, for `server.metrics_port`.
pub fn metrics_router(state: AppState) -> Router {
    with_layers(limited(metrics_endpoint::router(), &state), state)
}

/// Shares `state.request_slots` among `routes`: a request that finds none free is answered `503`
/// at once instead of waiting. Health probes stay outside, so a flood does not fail liveness.
fn limited(routes: Router<AppState>, state: &AppState) -> Router<AppState> {
    routes.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|_: BoxError| async {
                ApiError::Overloaded("too many requests at once; retry later".into())
            }))
            .layer(LoadShedLayer::new())
            .layer(GlobalConcurrencyLimitLayer::with_semaphore(
                state.request_slots.clone(),
            )),
    )
}

fn with_layers(routes: Router<AppState>, state: AppState) -> Router {
    routes
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
