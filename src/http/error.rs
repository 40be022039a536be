//! The one error type handlers return: a status and `{"error": "..."}`. Client mistakes say what
//! was wrong; internal failures are logged with their cause and answered without it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::refusal_log::log_refusal;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The store could not be reached: the sender should retry (Asana does).
    #[error("the job store is unavailable; retry later")]
    StoreUnavailable(#[source] StoreError),
    /// Too much work at once (requests, connections or queued writes): retry shortly.
    #[error("{0}")]
    Overloaded(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::StoreUnavailable(_) | ApiError::Overloaded(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Busy => ApiError::Overloaded(format!("{err}; retry later")),
            err => ApiError::StoreUnavailable(err),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let cause = match &self {
            ApiError::StoreUnavailable(cause) => Some(cause),
            _ => None,
        };
        json_error(self.status(), &self, cause)
    }
}

/// `{"error": message}` with `status`. A refusal is logged (at most a few a second); a store that
/// failed is logged with its cause, which the answer does not show.
pub(super) fn json_error(
    status: StatusCode,
    message: &dyn std::fmt::Display,
    store_failure: Option<&StoreError>,
) -> Response {
    match store_failure {
        Some(StoreError::Busy) | None => log_refusal(
            |suppressed| tracing::info!(status = status.as_u16(), error = %message, suppressed, "request refused"),
        ),
        Some(cause) => tracing::error!(error = %cause, "store unavailable"),
    }
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_busy_store_is_a_503_with_a_json_reason() {
        let response = ApiError::from(StoreError::Busy).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("retry later"),
            "{body}"
        );
    }
}
