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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Asana,
    DocSpace,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Asana => "asana",
            Service::DocSpace => "docspace",
        }
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
            UpstreamError::InvalidResponse { .. } => true,
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

/// Reads `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if let Ok(seconds) = value.parse::<f64>()
        && seconds.is_finite()
        && seconds >= 0.0
    {
        return Some(Duration::from_secs_f64(seconds.min(86_400.0)));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Turns a non-success response into an error, using `extract_message` to pull the upstream's
/// own explanation out of its JSON error body.
pub(crate) async fn error_from_response(
    service: Service,
    response: reqwest::Response,
    extract_message: fn(&serde_json::Value) -> Option<String>,
) -> UpstreamError {
    let status = response.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return UpstreamError::RateLimited {
            service,
            retry_after: parse_retry_after(response.headers()),
        };
    }
    let body = response.bytes().await.unwrap_or_default();
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
    use reqwest::header::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        assert_eq!(
            parse_retry_after(&headers("30")),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after(&headers("1.5")),
            Some(Duration::from_millis(1500))
        );
        let later = SystemTime::now() + Duration::from_secs(120);
        let parsed = parse_retry_after(&headers(&httpdate::fmt_http_date(later))).unwrap();
        assert!(parsed > Duration::from_secs(100) && parsed <= Duration::from_secs(120));
        assert_eq!(parse_retry_after(&headers("soon")), None);
        assert_eq!(parse_retry_after(&HeaderMap::new()), None);
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
