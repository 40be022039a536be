//! `/healthz` (the process answers) and `/readyz` (the store answers and the worker runs).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;

const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(app): State<AppState>) -> Response {
    let mut down = Vec::new();
    let store = match tokio::time::timeout(STORE_CHECK_TIMEOUT, app.store.ping()).await {
        Ok(Ok(())) => "ok".to_string(),
        Ok(Err(err)) => {
            down.push("store");
            format!("down: {err}")
        }
        Err(_) => {
            down.push("store");
            format!("down: no answer within {}s", STORE_CHECK_TIMEOUT.as_secs())
        }
    };
    let worker = if app.worker.is_running() {
        "ok"
    } else {
        down.push("worker");
        "down: not running"
    };
    let checks = json!({ "store": store, "worker": worker });
    if down.is_empty() {
        // Webhook trouble does not stop this replica from serving: report it, stay ready.
        let degraded = match app.health.degraded(&app.store).await {
            Ok(degraded) => degraded,
            Err(err) => BTreeMap::from([("*".to_string(), format!("could not check: {err}"))]),
        };
        if degraded.is_empty() {
            Json(json!({ "status": "ready", "checks": checks })).into_response()
        } else {
            Json(json!({ "status": "degraded", "checks": checks, "degraded": { "webhooks": degraded } }))
                .into_response()
        }
    } else {
        let body = json!({
            "status": "unavailable",
            "error": format!("not ready: {} down", down.join(" and ")),
            "checks": checks,
        });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}
