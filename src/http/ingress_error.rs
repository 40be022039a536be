//! Why a webhook request was refused. Each reason knows its HTTP answer (a status and
//! `{"error": "..."}`) and how it counts in `bridge_deliveries_total`, in one place.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::error::json_error;
use crate::domain::WebhookName;
use crate::store::StoreError;
use crate::telemetry::metrics::DeliveryResult;

#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    /// The request is not a handshake nor a delivery, or its headers are unusable.
    #[error("{0}")]
    BadRequest(String),
    #[error("the body did not arrive within {0} ms")]
    BodyTimeout(u128),
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    /// A verified delivery whose body is not what Asana sends.
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    BadSignature(&'static str),
    #[error("unknown webhook {0:?}: no handshake has stored a secret for it")]
    UnknownWebhook(WebhookName),
    /// A handshake for a name that has a secret: it is never overwritten.
    #[error(
        "webhook {0:?} already has a secret; it is never overwritten. Register the new webhook under another name"
    )]
    SecretKept(WebhookName),
    /// A handshake outside a registration window, or without its nonce.
    #[error("{0}")]
    NotRegistering(String),
    #[error("{}", store_message(.0))]
    Store(#[from] StoreError),
}

impl IngressError {
    pub fn status(&self) -> StatusCode {
        match self {
            IngressError::BadRequest(_) | IngressError::Malformed(_) => StatusCode::BAD_REQUEST,
            IngressError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            IngressError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            IngressError::BadSignature(_) | IngressError::UnknownWebhook(_) => {
                StatusCode::UNAUTHORIZED
            }
            IngressError::SecretKept(_) => StatusCode::CONFLICT,
            IngressError::NotRegistering(_) => StatusCode::FORBIDDEN,
            IngressError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// How the refusal counts in `bridge_deliveries_total`.
    pub fn result(&self) -> DeliveryResult {
        match self {
            IngressError::BadRequest(_) | IngressError::BodyTimeout(_) => {
                DeliveryResult::BadRequest
            }
            IngressError::TooLarge(_) => DeliveryResult::TooLarge,
            IngressError::Malformed(_) => DeliveryResult::Malformed,
            IngressError::BadSignature(_) => DeliveryResult::BadSignature,
            IngressError::UnknownWebhook(_) => DeliveryResult::UnknownWebhook,
            IngressError::SecretKept(_) | IngressError::NotRegistering(_) => {
                DeliveryResult::HandshakeRefused
            }
            IngressError::Store(StoreError::Busy) => DeliveryResult::Overloaded,
            IngressError::Store(_) => DeliveryResult::StoreUnavailable,
        }
    }
}

/// A store failure is answered without its cause (it is logged): the sender should retry.
fn store_message(err: &StoreError) -> String {
    match err {
        StoreError::Busy => format!("{err}; retry later"),
        _ => "the job store is unavailable; retry later".to_string(),
    }
}

impl IntoResponse for IngressError {
    fn into_response(self) -> Response {
        let store_failure = match &self {
            IngressError::Store(cause) => Some(cause),
            _ => None,
        };
        json_error(self.status(), &self, store_failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_failure_is_a_503_that_hides_its_cause() {
        let err = IngressError::from(StoreError::Corrupt("secret row 7".into()));
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.result(), DeliveryResult::StoreUnavailable);
        assert!(!err.to_string().contains("row 7"), "{err}");
        let busy = IngressError::from(StoreError::Busy);
        assert_eq!(busy.result(), DeliveryResult::Overloaded);
        assert!(busy.to_string().contains("retry later"), "{busy}");
    }
}
