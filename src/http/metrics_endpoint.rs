//! `GET /metrics`: Prometheus text format, on the main port or on `server.metrics_port`.

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::error::ApiError;
use crate::telemetry::metrics;

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(app): State<AppState>) -> Result<Response, ApiError> {
    let text = metrics::render(&app.store, &app.store_gauges).await?;
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response())
}
