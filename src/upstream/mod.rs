//! Clients for the two upstream APIs, built once per process ([`Upstreams`]), and the error type
//! that tells the worker whether a failed call is worth retrying. The HTTP and JSON plumbing both
//! clients share is in `json_api.rs`.

pub mod asana;
pub mod docspace;
mod json_api;
pub mod pacing;

use std::fmt;
use std::time::Duration;

use crate::settings::Settings;

pub use asana::AsanaClient;
pub use docspace::DocSpaceClient;
pub use json_api::{DEFAULT_MAX_RETRY_AFTER, MAX_RESPONSE_BYTES, http_client, parse_retry_after};

/// The process's upstream clients. Build them once and share clones: Asana's rate limit is per
/// token, and every clone of the Asana client waits for the same pacer, so the worker, the
/// webhook watcher and a command together stay under `asana.requests_per_minute`.
#[derive(Debug, Clone)]
pub struct Upstreams {
    pub asana: AsanaClient,
    /// `asana` for reconcile passes: at most `reconcile.rate_share` of its rate.
    pub asana_reconcile: AsanaClient,
    pub docspace: DocSpaceClient,
}

impl Upstreams {
    /// Both clients as the settings describe them.
    pub fn from_settings(settings: &Settings) -> Result<Upstreams, BadBaseUrl> {
        let asana = AsanaClient::from_settings(settings)?;
        Ok(Upstreams {
            asana_reconcile: asana.with_rate_share(settings.reconcile.rate_share),
            asana,
            docspace: DocSpaceClient::from_settings(settings)?,
        })
    }
}

/// An upstream's base URL that does not parse (settings validation normally refuses it first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting} is not a URL: {problem}")]
pub struct BadBaseUrl {
    setting: &'static str,
    problem: url::ParseError,
}

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

    /// The setting that holds the service's base URL.
    fn base_url_setting(self) -> &'static str {
        match self {
            Service::Asana => "asana.base_url",
            Service::DocSpace => "docspace.base_url",
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

    /// The HTTP status of an answer that was not a success (a 429 included).
    pub fn status(&self) -> Option<u16> {
        match self {
            UpstreamError::RateLimited { .. } => Some(429),
            UpstreamError::Status { status, .. } => Some(*status),
            _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;

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
        // DocSpace's refusals on rooms: quota, rights, gone; all final.
        for permanent in [402, 403, 404] {
            assert!(!status(permanent).is_transient(), "{permanent}");
        }
    }

    #[test]
    fn status_is_the_answers_http_status() {
        let refused = UpstreamError::Status {
            service: Service::DocSpace,
            status: 402,
            message: "The room limit of your tariff has been reached".into(),
        };
        assert_eq!(refused.status(), Some(402));
        let limited = UpstreamError::RateLimited {
            service: Service::DocSpace,
            retry_after: None,
        };
        assert_eq!(limited.status(), Some(429));
        let transport = UpstreamError::Transport {
            service: Service::DocSpace,
            message: "timed out".into(),
        };
        assert_eq!(transport.status(), None);
    }
}
