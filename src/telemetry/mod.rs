//! Logging set-up, metrics, and the masking that keeps personal data out of logs.

pub mod metrics;

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
                    .with_span_list(true)
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

/// Masks every email address in free text (upstream error messages may quote one).
pub fn mask_emails_in(text: &str) -> String {
    let is_local = |c: char| c.is_alphanumeric() || "._%+-'".contains(c);
    let is_domain = |c: char| c.is_alphanumeric() || c == '.' || c == '-';
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '@' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let local_len = chars[..i]
            .iter()
            .rev()
            .take_while(|c| is_local(**c))
            .count();
        let domain_len = chars[i + 1..].iter().take_while(|c| is_domain(**c)).count();
        if local_len == 0 || domain_len == 0 {
            out.push('@');
            i += 1;
            continue;
        }
        // The local part is already in `out`: keep its first character only.
        let keep = out.chars().count() - local_len + 1;
        out = out.chars().take(keep).collect();
        out.push_str("***@");
        out.extend(&chars[i + 1..i + 1 + domain_len]);
        i += 1 + domain_len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_address_in_text() {
        assert_eq!(
            mask_emails_in(
                "DocSpace answered 400: User disabled: jane.doe@example.com (and bob@corp.io)"
            ),
            "DocSpace answered 400: User disabled: j***@example.com (and b***@corp.io)"
        );
        assert_eq!(
            mask_emails_in("no address @ here, a@ or @b"),
            "no address @ here, a@ or @b"
        );
        assert_eq!(mask_emails_in("élodie@exemple.fr"), "é***@exemple.fr");
    }

    #[test]
    fn masks_the_local_part() {
        assert_eq!(mask_email("alice@example.com"), "a***@example.com");
        assert_eq!(mask_email("a@example.com"), "a***@example.com");
        assert_eq!(mask_email("@example.com"), "***@example.com");
        assert_eq!(mask_email("nobody"), "***");
        assert_eq!(mask_email("élodie@exemple.fr"), "é***@exemple.fr");
    }
}
