//! Logging set-up, and the masking that keeps personal data out of logs.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

use crate::settings::LogFormat;

/// Who the logs are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// The service: stdout, `info` unless `RUST_LOG` says otherwise.
    Service,
    /// An operator command: stderr (stdout is the command's output), `warn` by default.
    Command,
}

/// Installs the global subscriber; `RUST_LOG` overrides the default level. Safe to call more
/// than once; later calls do nothing.
pub fn init_logging(format: LogFormat, target: LogTarget) {
    let default_level = match target {
        LogTarget::Service => "info",
        LogTarget::Command => "warn",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let registry = tracing_subscriber::registry().with(filter);
    let to_stderr = target == LogTarget::Command;
    let writer = move || -> Box<dyn std::io::Write> {
        if to_stderr {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        }
    };
    let _ = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(fmt::layer().with_target(false).with_writer(writer))
            .try_init(),
    };
}

/// `alice@example.com` → `a***@example.com`: enough to tell people apart in a log, not to mail them.
pub fn mask_email(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_the_local_part() {
        assert_eq!(mask_email("alice@example.com"), "a***@example.com");
        assert_eq!(mask_email("a@example.com"), "a***@example.com");
        assert_eq!(mask_email("@example.com"), "***@example.com");
        assert_eq!(mask_email("nobody"), "***");
        assert_eq!(mask_email("élodie@exemple.fr"), "é***@exemple.fr");
    }
}
