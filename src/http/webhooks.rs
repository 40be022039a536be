//! Asana webhook ingress: handshakes store a secret, deliveries are verified on their raw bytes,
//! parsed, and recorded as jobs before they are acknowledged. No upstream call happens here.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody, PathRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, RawQuery, Request as HttpRequest, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::AppState;
use super::ingress_error::IngressError;
use crate::domain::{JobKind, JobSource, WebhookName};
use crate::settings::HandshakeMode;
use crate::store::{HandshakeOutcome, NewJob, now_ms};
use crate::telemetry::metrics::{self, DeliveryResult};
use crate::webhook::register::REGISTRATION_WINDOW;
use crate::webhook::{
    SignatureError, nonce_in_query, nonce_matches, parse_delivery, verify_signature,
};

pub const HOOK_SECRET: HeaderName = HeaderName::from_static("x-hook-secret");
pub const HOOK_SIGNATURE: HeaderName = HeaderName::from_static("x-hook-signature");

/// The webhook name used by `POST /webhooks/asana`.
pub const DEFAULT_NAME: &str = "default";

/// The webhook routes; bodies are limited to `max_body_bytes` and must arrive within
/// `request_timeout`.
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/webhooks/asana", post(receive_default))
        .route("/webhooks/asana/{name}", post(receive_named))
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
}

async fn receive_default(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: HttpRequest,
) -> Response {
    let request = Request {
        headers,
        nonce: nonce_in_query(query.as_deref()),
    };
    receive(app, Ok(DEFAULT_NAME.to_string()), request, body).await
}

async fn receive_named(
    State(app): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: HttpRequest,
) -> Response {
    let name = name
        .map(|Path(name)| name)
        .map_err(|e| bad_request(format!("invalid webhook name: {e}")));
    let request = Request {
        headers,
        nonce: nonce_in_query(query.as_deref()),
    };
    receive(app, name, request, body).await
}

/// What a webhook request carries besides its body: headers, and the registration nonce of the
/// target URL (`?r=…`), which only handshakes use.
struct Request {
    headers: HeaderMap,
    nonce: Option<String>,
}

fn bad_request(message: impl Into<String>) -> IngressError {
    IngressError::BadRequest(message.into())
}

#[tracing::instrument(name = "webhook", skip_all, fields(webhook = tracing::field::Empty))]
async fn receive(
    app: AppState,
    name: Result<String, IngressError>,
    request: Request,
    body: HttpRequest,
) -> Response {
    let name = name.and_then(|name| {
        name.parse::<WebhookName>().map_err(|_| {
            bad_request("invalid webhook name: use 1 to 64 letters, digits, '-' or '_'")
        })
    });
    let handled = match name {
        Ok(name) => {
            tracing::Span::current().record("webhook", name.as_str());
            let handled = handle(&app, &name, &request, body).await;
            if matches!(handled, Ok((DeliveryResult::HandshakeAccepted, _))) {
                // It may be cached as unknown: deliveries follow the registration at once.
                app.secrets.forget(&name);
            }
            handled
        }
        Err(refusal) => Err(refusal),
    };
    let (result, response) = match handled {
        Ok(answer) => answer,
        Err(refusal) => (refusal.result(), refusal.into_response()),
    };
    metrics::delivery(result);
    response
}

async fn handle(
    app: &AppState,
    name: &WebhookName,
    request: &Request,
    body: HttpRequest,
) -> Result<(DeliveryResult, Response), IngressError> {
    let headers = &request.headers;
    let secret = single_header(headers, &HOOK_SECRET)?
        .map(|value| {
            value
                .to_str()
                .map(str::trim)
                .map_err(|_| bad_request("X-Hook-Secret must be printable ASCII"))
        })
        .transpose()?;
    // Raw bytes: a signature that is not even ASCII is as wrong as one that is not hex.
    let signature = single_header(headers, &HOOK_SIGNATURE)?.map(HeaderValue::as_bytes);
    let body = read_body(app, headers, body).await?;
    match (secret, signature) {
        (Some(secret), _) => handshake(app, name, secret, request.nonce.as_deref()).await,
        (None, Some(signature)) => deliver(app, name, signature, &body).await,
        (None, None) => {
            // A name with a secret expects deliveries: the signature is what is missing.
            if app.secrets.get(&app.store, name).await?.is_some() {
                Err(IngressError::BadSignature("missing X-Hook-Signature"))
            } else {
                Err(bad_request(
                    "expected an X-Hook-Secret header (handshake) or an X-Hook-Signature header (delivery)",
                ))
            }
        }
    }
}

async fn handshake(
    app: &AppState,
    name: &WebhookName,
    secret: &str,
    nonce: Option<&str>,
) -> Result<(DeliveryResult, Response), IngressError> {
    if secret.is_empty() || secret.len() > 256 || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad_request(
            "X-Hook-Secret must be 1 to 256 printable ASCII characters",
        ));
    }
    // Decided on a read: a refused handshake writes nothing.
    let window = app
        .store
        .registration_window(name)
        .await?
        .filter(|window| window.is_open(now_ms(), REGISTRATION_WINDOW));
    let outcome = match (window, app.handshake) {
        // An open window binds the name to its own registration, in either mode.
        (Some(window), _) => {
            if !nonce.is_some_and(|nonce| nonce_matches(nonce, &window.nonce_hash)) {
                return Err(wrong_nonce(name));
            }
            app.store
                .store_secret_in_window(
                    name,
                    SecretString::from(secret),
                    window.nonce_hash,
                    REGISTRATION_WINDOW,
                )
                .await?
        }
        (None, HandshakeMode::Registration) => HandshakeOutcome::NoRegistrationWindow,
        (None, HandshakeMode::FirstUse) => {
            app.store
                .store_secret_if_absent(name, SecretString::from(secret))
                .await?
        }
    };
    match outcome {
        HandshakeOutcome::Stored => {
            tracing::info!("handshake accepted; webhook secret stored");
            let echo =
                HeaderValue::from_str(secret).map_err(|_| bad_request("invalid X-Hook-Secret"))?;
            let mut response = (
                StatusCode::OK,
                Json(json!({ "status": "handshake accepted" })),
            )
                .into_response();
            response.headers_mut().insert(HOOK_SECRET, echo);
            Ok((DeliveryResult::HandshakeAccepted, response))
        }
        HandshakeOutcome::AlreadyHasSecret => {
            tracing::warn!(
                "refused a handshake for webhook {name:?}: it already has a secret, which is kept. \
                 If you re-created this webhook at Asana, run `asana-docspace-bridge webhooks delete {name}` \
                 first, or register the new webhook under another name"
            );
            Err(IngressError::SecretKept(name.clone()))
        }
        HandshakeOutcome::NoRegistrationWindow => {
            tracing::warn!(
                "refused a handshake for webhook {name:?}: no registration is open for it. Create webhooks with \
                 `asana-docspace-bridge webhooks create --project <GID>`, or set webhooks.handshake = \"first-use\" \
                 for webhooks created by hand"
            );
            Err(IngressError::NotRegistering(format!(
                "no registration is open for webhook {name:?}; handshakes are accepted only within 60 seconds of `webhooks create`"
            )))
        }
    }
}

fn wrong_nonce(name: &WebhookName) -> IngressError {
    tracing::warn!(
        "refused a handshake for webhook {name:?}: a registration is open for it, but the handshake \
         does not carry its nonce (only the target URL `webhooks create` gave Asana does)"
    );
    IngressError::NotRegistering(format!(
        "the handshake for webhook {name:?} does not carry the nonce of its registration: \
         only Asana, called by `webhooks create`, knows the target URL that does"
    ))
}

async fn deliver(
    app: &AppState,
    name: &WebhookName,
    signature: &[u8],
    body: &[u8],
) -> Result<(DeliveryResult, Response), IngressError> {
    let Some(webhook) = app.secrets.get(&app.store, name).await? else {
        return Err(IngressError::UnknownWebhook(name.clone()));
    };
    verify_signature(webhook.secret.expose_secret().as_bytes(), body, signature).map_err(
        |err| {
            let message = match err {
                SignatureError::NotHex => "X-Hook-Signature is not hex",
                SignatureError::Mismatch => "X-Hook-Signature does not match the body",
            };
            IngressError::BadSignature(message)
        },
    )?;
    app.health.record_delivery(name);
    // A workspace's webhook brings new projects, a project's brings its tasks' events (and, with
    // access revocation on, the events that may end someone's need of the room).
    let subscription = webhook.subscription.with_lifecycle(app.access_lifecycle);
    let delivery =
        parse_delivery(body, subscription).map_err(|e| IngressError::Malformed(e.to_string()))?;
    let by_kind = [
        JobKind::AssigneeChanged,
        JobKind::TaskAdded,
        JobKind::ProjectAdded,
        JobKind::TaskUnassigned,
        JobKind::CompletionChanged,
        JobKind::TaskRemoved,
        JobKind::TaskDeleted,
    ]
    .map(|kind| {
        let count = delivery.relevant.iter().filter(|e| e.kind == kind).count();
        (kind, count as u64)
    });
    let jobs: Vec<NewJob> = delivery
        .relevant
        .into_iter()
        .map(|event| NewJob {
            dedupe_key: event.dedupe_key,
            task_gid: event.task_gid,
            kind: event.kind,
            project_gid: webhook.project_gid.clone(),
            assignee_gid: event.assignee_gid,
        })
        .collect();
    let relevant = jobs.len();
    let queued = app
        .store
        .enqueue(JobSource::Webhook(name.clone()), jobs)
        .await?;
    if queued.created > 0 {
        app.wake_worker.notify_one();
    }
    // Counted once the events are durable: a delivery answered 503 is sent again by Asana.
    for (kind, count) in by_kind {
        metrics::events(kind.as_str(), count);
    }
    metrics::events("ignored", delivery.ignored as u64);
    if relevant == 0 {
        // Heartbeats and ignored events: routine, and at most a few a day per webhook.
        tracing::debug!(ignored = delivery.ignored, "delivery accepted");
    } else {
        tracing::info!(
            relevant,
            queued = queued.created,
            duplicates = queued.duplicates,
            ignored = delivery.ignored,
            "delivery accepted"
        );
    }
    let response = Json(json!({
        "status": "accepted",
        "queued": queued.created,
        "duplicates": queued.duplicates,
        "ignored": delivery.ignored,
    }))
    .into_response();
    Ok((DeliveryResult::Accepted, response))
}

/// A header that must appear at most once; a repeated one is ambiguous and refused.
fn single_header<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'h HeaderValue>, IngressError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(bad_request(format!("{name} must appear only once")));
    }
    Ok(Some(first))
}

/// The raw body, within `http.max_body_bytes` (axum's limit; a request that declares more is
/// refused before a byte is read) and within the request timeout. The timeout wraps the read
/// itself rather than every request's body (tower-http's `RequestBodyDeadlineLayer` cost 15% of
/// the heartbeat throughput in the benchmark).
async fn read_body(
    app: &AppState,
    headers: &HeaderMap,
    request: HttpRequest,
) -> Result<Bytes, IngressError> {
    let limit = app.max_body_bytes;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(IngressError::TooLarge(limit));
    }
    let read = tokio::time::timeout(app.request_timeout, Bytes::from_request(request, &()));
    match read.await {
        Err(_) => Err(IngressError::BodyTimeout(app.request_timeout.as_millis())),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)))) => {
            Err(IngressError::TooLarge(limit))
        }
        Ok(Err(other)) => Err(bad_request(format!("could not read the body: {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_headers_are_refused() {
        let mut headers = HeaderMap::new();
        headers.append(HOOK_SIGNATURE, HeaderValue::from_static("aa"));
        assert_eq!(
            single_header(&headers, &HOOK_SIGNATURE).unwrap(),
            Some(&HeaderValue::from_static("aa"))
        );
        headers.append(HOOK_SIGNATURE, HeaderValue::from_static("bb"));
        assert!(single_header(&headers, &HOOK_SIGNATURE).is_err());
        assert_eq!(single_header(&headers, &HOOK_SECRET).unwrap(), None);
    }
}
