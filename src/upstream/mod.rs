//! Clients for the two upstream APIs, and the error type that tells the worker whether a failed
//! call is worth retrying.

pub mod asana;
pub mod docspace;
pub mod pacing;

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::telemetry::metrics;

pub use asana::AsanaClient;
pub use docspace::DocSpaceClient;

/// The largest body read from an upstream: every answer we ask for is a few KiB.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// The longest `Retry-After` a client honours unless told otherwise (`worker.backoff_max_ms`'s default).
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// An upstream: displayed by name ("DocSpace"), labelled in metrics in lowercase ("docspace").
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum Service {
    Asana,
    DocSpace,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Asana => "Asana",
            Service::DocSpace => "DocSpace",
        })
    }
}

/// A failed upstream call. Messages never contain credentials or request URLs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("{service} rate limit (429){}", retry_after_text(.retry_after))]
    RateLimited {
        service: Service,
        retry_after: Option<Duration>,
    },
    #[error("{service} answered {status}: {message}")]
    Status {
        service: Service,
        status: u16,
        message: String,
    },
    #[error("{service} request failed: {message}")]
    Transport { service: Service, message: String },
    #[error("{service} sent an unexpected response: {message}")]
    InvalidResponse { service: Service, message: String },
    #[error("{service} sent a response too large (over {} MiB)", MAX_RESPONSE_BYTES >> 20)]
    TooLarge { service: Service },
}

fn retry_after_text(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(", retry after {}s", d.as_secs_f64().ceil()),
        None => String::new(),
    }
}

impl UpstreamError {
    /// Worth another attempt: rate limits, server errors, timeouts and connection failures.
    /// Any other 4xx is the request's own fault and will fail the same way again.
    pub fn is_transient(&self) -> bool {
        match self {
            UpstreamError::RateLimited { .. } | UpstreamError::Transport { .. } => true,
            UpstreamError::Status { status, .. } => *status >= 500 || *status == 408,
            // A 2xx body we could not read: most likely a proxy or a deploy in progress.
            UpstreamError::InvalidResponse { .. } | UpstreamError::TooLarge { .. } => true,
        }
    }

    /// The minimum wait the upstream asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            UpstreamError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn transport(service: Service, err: reqwest::Error) -> UpstreamError {
        // Without the URL: it may carry an email address in its query.
        let err = err.without_url();
        let message = if err.is_timeout() {
            "timed out".to_string()
        } else if err.is_connect() {
            format!("could not connect ({})", error_chain(&err))
        } else {
            error_chain(&err)
        };
        UpstreamError::Transport { service, message }
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Reads `Retry-After` as whole or fractional seconds or an HTTP date, and waits at most `max`:
/// an upstream does not get to park us for longer than our own backoff would.
pub fn parse_retry_after(headers: &HeaderMap, max: Duration) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else if let Ok(seconds) = value.parse::<f64>()
        && seconds >= 0.0
    {
        // Infinite or beyond `Duration`: as long as it gets.
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
    } else {
        let when = httpdate::parse_http_date(value).ok()?;
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    };
    Some(wait.min(max))
}

/// Reads a whole body of at most [`MAX_RESPONSE_BYTES`], chunk by chunk: a larger one (declared,
/// or found while counting) is read no further.
pub(crate) async fn read_body(
    service: Service,
    mut response: reqwest::Response,
) -> Result<Vec<u8>, UpstreamError> {
    let declared = response.content_length().unwrap_or(0);
    if declared > MAX_RESPONSE_BYTES as u64 {
        return Err(UpstreamError::TooLarge { service });
    }
    let mut body = Vec::with_capacity(declared as usize);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| UpstreamError::transport(service, e))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(UpstreamError::TooLarge { service });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Turns a non-success response into an error, using `extract_message` to pull the upstream's
/// own explanation out of its JSON error body; a 429's `Retry-After` counts up to `max_retry_after`.
pub(crate) async fn error_from_response(
    service: Service,
    response: reqwest::Response,
    extract_message: fn(&serde_json::Value) -> Option<String>,
    max_retry_after: Duration,
) -> UpstreamError {
    let status = response.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return UpstreamError::RateLimited {
            service,
            retry_after: parse_retry_after(response.headers(), max_retry_after),
        };
    }
    let body = match read_body(service, response).await {
        Ok(body) => body,
        Err(too_large @ UpstreamError::TooLarge { .. }) => return too_large,
        Err(_) => Vec::new(),
    };
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| extract_message(&v))
        .unwrap_or_else(|| describe_body(status, &body));
    UpstreamError::Status {
        service,
        status: status.as_u16(),
        message,
    }
}

/// A short, printable summary of a body that carried no readable error (HTML from a proxy, say).
fn describe_body(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let looks_html = text.trim_start().starts_with('<');
    let reason = status.canonical_reason().unwrap_or("error").to_string();
    if body.is_empty() {
        reason
    } else if looks_html {
        format!("{reason} (HTML page)")
    } else {
        let snippet: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
        format!("{reason}: {snippet}")
    }
}

/// Sends `request`, counting it and timing it for the metrics.
pub(crate) async fn send_observed(
    service: Service,
    operation: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, UpstreamError> {
    let started = Instant::now();
    let result = request.send().await;
    let status = match &result {
        Ok(response) => response.status().as_str().to_string(),
        Err(err) if err.is_timeout() => "timeout".to_string(),
        Err(_) => "error".to_string(),
    };
    metrics::upstream(service.as_str(), operation, &status, started.elapsed());
    result.map_err(|e| UpstreamError::transport(service, e))
}

/// A `reqwest::Client` whose every request times out.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("asana-docspace-bridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the TLS backend initialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use reqwest::header::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        h
    }

    const CAP: Duration = Duration::from_secs(60);

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        let parse = |value: &str| parse_retry_after(&headers(value), CAP);
        assert_eq!(parse("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse("1.5"), Some(Duration::from_millis(1500)));
        let later = SystemTime::now() + Duration::from_secs(20);
        let parsed = parse(&httpdate::fmt_http_date(later)).unwrap();
        assert!(parsed > Duration::from_secs(10) && parsed <= Duration::from_secs(20));
        assert_eq!(parse("Thu, 01 Jan 1970 00:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse("soon"), None);
        assert_eq!(parse("-1"), None);
        assert_eq!(parse("NaN"), None);
        assert_eq!(parse_retry_after(&HeaderMap::new(), CAP), None);
    }

    #[test]
    fn retry_after_waits_at_most_the_cap() {
        for value in [
            "61",
            "18446744073709551615",
            "18446744073709551616",
            "1e300",
            "inf",
            "86400.5",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            assert_eq!(
                parse_retry_after(&headers(value), CAP),
                Some(CAP),
                "{value}"
            );
        }
    }

    /// Seconds, fractions, dates and plain noise.
    fn retry_after_values() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            any::<u64>().prop_map(|n| n.to_string().into_bytes()),
            any::<f64>().prop_map(|x| x.to_string().into_bytes()),
            "[0-9]{1,40}(\\.[0-9]{0,20})?([eE][+-]?[0-9]{1,4})?".prop_map(String::into_bytes),
            any::<u64>().prop_map(|secs| {
                let when =
                    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs % 253_402_300_800));
                httpdate::fmt_http_date(when.unwrap_or(SystemTime::UNIX_EPOCH)).into_bytes()
            }),
            proptest::collection::vec(any::<u8>(), 0..64),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn any_retry_after_never_panics_and_waits_at_most_the_cap(
            value in retry_after_values(),
            cap_ms in 0u64..=u64::MAX,
        ) {
            // Bytes no header may carry (CR, LF, NUL...) never reach the parser.
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                let mut map = HeaderMap::new();
                map.insert(RETRY_AFTER, value);
                let cap = Duration::from_millis(cap_ms);
                if let Some(wait) = parse_retry_after(&map, cap) {
                    prop_assert!(wait <= cap);
                }
            }
        }
    }

    #[test]
    fn transient_errors_are_told_apart_from_permanent_ones() {
        let status = |status| UpstreamError::Status {
            service: Service::DocSpace,
            status,
            message: String::new(),
        };
        assert!(status(500).is_transient());
        assert!(status(503).is_transient());
        assert!(!status(400).is_transient());
        assert!(!status(403).is_transient());
        assert!(!status(404).is_transient());
        assert!(
            UpstreamError::RateLimited {
                service: Service::Asana,
                retry_after: None
            }
            .is_transient()
        );
    }

    #[test]
    fn html_bodies_are_summarised() {
        let text = describe_body(StatusCode::BAD_GATEWAY, b"<html><body>nginx</body></html>");
        assert_eq!(text, "Bad Gateway (HTML page)");
        assert_eq!(describe_body(StatusCode::UNAUTHORIZED, b""), "Unauthorized");
    }
}
