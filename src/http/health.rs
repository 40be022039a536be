//! `/healthz` (the process answers) and `/readyz` (the store answers and the worker runs; webhook
//! trouble, and in `linked` mode a deleted or archived room, make it `degraded`).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;
use crate::rooms::RoomsMode;
use crate::status::gone_linked_rooms;
use crate::store::StoreError;

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
        // Webhook and room trouble does not stop this replica from serving: report it, stay ready.
        let mut degraded = serde_json::Map::new();
        let webhooks = checked(app.health.degraded(&app.store).await);
        if !webhooks.is_empty() {
            degraded.insert("webhooks".into(), json!(webhooks));
        }
        if app.rooms_mode == RoomsMode::Linked {
            let rooms = checked(gone_linked_rooms(&app.store).await);
            if !rooms.is_empty() {
                degraded.insert("rooms".into(), json!(rooms));
            }
        }
        if degraded.is_empty() {
            Json(json!({ "status": "ready", "checks": checks })).into_response()
        } else {
            Json(json!({ "status": "degraded", "checks": checks, "degraded": degraded }))
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

/// Problems by key, or one saying they could not be read.
fn checked(problems: Result<BTreeMap<String, String>, StoreError>) -> BTreeMap<String, String> {
    problems.unwrap_or_else(|err| {
        BTreeMap::from([("*".to_string(), format!("could not check: {err}"))])
    })
}
