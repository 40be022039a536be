//! Configuration: compiled-in defaults (`config/default.toml`), then an optional file, then
//! `BRIDGE__<SECTION>__<KEY>` environment variables; validated once, at start-up.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");
const ENV_PREFIX: &str = "BRIDGE";
const ENV_SEPARATOR: &str = "__";

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub asana: AsanaSettings,
    pub docspace: DocSpaceSettings,
    pub database: DatabaseSettings,
    pub worker: WorkerSettings,
    pub invite: InviteSettings,
    pub webhooks: WebhookSettings,
    pub retention: RetentionSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub public_url: String,
    pub max_body_bytes: usize,
    pub request_timeout_ms: u64,
    /// Serve `/metrics` on this port instead of the main one (0: on the main port).
    pub metrics_port: u16,
    /// Open connections beyond this are answered `503` and closed.
    pub max_connections: usize,
    /// Requests handled at once (webhooks and `/metrics`); more are answered `503` at once.
    pub max_concurrent_requests: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AsanaSettings {
    pub base_url: String,
    pub token: SecretString,
    pub requests_per_minute: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DocSpaceSettings {
    pub base_url: String,
    pub api_key: SecretString,
    pub invite_type: InviteType,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    /// SQLite: writes that may wait for the single writer; past that, deliveries get `503`.
    pub max_queued_writes: usize,
}

impl DatabaseSettings {
    pub fn store_options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            max_connections: self.max_connections,
            acquire_timeout: Duration::from_millis(self.acquire_timeout_ms),
            max_queued_writes: self.max_queued_writes,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkerSettings {
    pub concurrency: usize,
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    pub request_timeout_ms: u64,
    pub lease_ms: u64,
    pub poll_interval_ms: u64,
    pub shutdown_grace_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InviteSettings {
    #[serde(default, deserialize_with = "list_or_comma_separated")]
    pub allowed_domains: Vec<String>,
}

/// A TOML array, or a comma-separated string (as environment variables give it).
fn list_or_comma_separated<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        String(String),
    }
    Ok(match ListOrString::deserialize(d)? {
        ListOrString::List(list) => list,
        ListOrString::String(s) => s.split(',').map(str::to_string).collect(),
    })
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    pub handshake: HandshakeMode,
    /// How often registered webhooks are checked at Asana.
    pub watch_interval_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RetentionSettings {
    /// Days a `done` job is kept (never less than 48 hours); 0 keeps them forever.
    pub done_days: u32,
}

/// The longest `retention.done_days` accepted: a century is "forever" enough, and keeps the
/// cutoff's arithmetic far from overflow.
pub const MAX_DONE_DAYS: u32 = 36_500;

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
}

/// DocSpace's EmployeeType, sent by name as the published 3.7.0 spec types it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, strum::IntoStaticStr)]
pub enum InviteType {
    All,
    RoomAdmin,
    User,
    DocSpaceAdmin,
    Guest,
}

impl InviteType {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether an invitation of this type occupies a paid admin seat in DocSpace.
    pub fn takes_paid_seat(self) -> bool {
        matches!(
            self,
            InviteType::All | InviteType::RoomAdmin | InviteType::DocSpaceAdmin
        )
    }
}

impl fmt::Display for InviteType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HandshakeMode {
    /// Only a handshake for a name that `webhooks create` opened a registration for, in the last
    /// 60 seconds, is accepted.
    Registration,
    /// The first handshake on a name without a secret is accepted (webhooks created by hand).
    FirstUse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("could not read settings: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid settings:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

/// Where settings come from besides the compiled-in defaults.
#[derive(Debug, Default, Clone)]
pub struct Sources<'a> {
    pub file: Option<&'a Path>,
    /// Environment variables to read instead of the process environment (tests use this).
    pub env: Option<HashMap<String, String>>,
}

impl Settings {
    /// Defaults, then `file`, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        Settings::load_from(Sources { file, env: None })
    }

    pub fn load_from(sources: Sources<'_>) -> Result<Settings, SettingsError> {
        Settings::load_unvalidated(sources)?.validated()
    }

    /// The layered settings without the checks: for commands that need only a few keys (the
    /// container health check must work even where, say, the API keys are not set).
    pub fn load_unvalidated(sources: Sources<'_>) -> Result<Settings, SettingsError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = sources.file {
            builder = builder.add_source(File::from(path).required(true));
        }
        // No `try_parsing`: it would turn a key like "007" into the number 7. Typed fields parse
        // their strings themselves; lists accept a comma-separated string.
        let env = Environment::with_prefix(ENV_PREFIX)
            .separator(ENV_SEPARATOR)
            .source(sources.env);
        Ok(builder.add_source(env).build()?.try_deserialize()?)
    }

    fn validated(mut self) -> Result<Settings, SettingsError> {
        let mut problems = Vec::new();
        let required: [(&str, bool); 4] = [
            (
                "asana.token",
                self.asana.token.expose_secret().trim().is_empty(),
            ),
            (
                "docspace.base_url",
                self.docspace.base_url.trim().is_empty(),
            ),
            (
                "docspace.api_key",
                self.docspace.api_key.expose_secret().trim().is_empty(),
            ),
            ("database.url", self.database.url.trim().is_empty()),
        ];
        let missing: Vec<String> = required
            .iter()
            .filter(|(_, missing)| *missing)
            .map(|(key, _)| format!("{key} ({})", env_var_name(key)))
            .collect();
        if !missing.is_empty() {
            problems.push(format!("missing required settings: {}", missing.join(", ")));
        }

        if self.docspace.invite_type == InviteType::Guest {
            problems.push(format!(
                "docspace.invite_type ({}) cannot be Guest: DocSpace's invite endpoint refuses it; use User, RoomAdmin, DocSpaceAdmin or All",
                env_var_name("docspace.invite_type")
            ));
        }
        for (key, value) in [
            ("asana.base_url", &mut self.asana.base_url),
            ("docspace.base_url", &mut self.docspace.base_url),
        ] {
            *value = value.trim().trim_end_matches('/').to_string();
            if !value.is_empty()
                && let Err(problem) = check_http_url(value)
            {
                problems.push(format!("{key} ({}): {problem}", env_var_name(key)));
            }
        }
        self.server.public_url = self.server.public_url.trim().trim_end_matches('/').into();
        if !self.server.public_url.is_empty()
            && let Err(problem) = check_http_url(&self.server.public_url)
        {
            problems.push(format!(
                "server.public_url ({}): {problem}",
                env_var_name("server.public_url")
            ));
        }
        for (key, value) in [
            ("server.max_body_bytes", self.server.max_body_bytes as u64),
            ("server.request_timeout_ms", self.server.request_timeout_ms),
            ("server.max_connections", self.server.max_connections as u64),
            (
                "server.max_concurrent_requests",
                self.server.max_concurrent_requests as u64,
            ),
            (
                "asana.requests_per_minute",
                u64::from(self.asana.requests_per_minute),
            ),
            (
                "database.max_connections",
                u64::from(self.database.max_connections),
            ),
            (
                "database.acquire_timeout_ms",
                self.database.acquire_timeout_ms,
            ),
            (
                "database.max_queued_writes",
                self.database.max_queued_writes as u64,
            ),
            ("worker.concurrency", self.worker.concurrency as u64),
            ("worker.max_attempts", u64::from(self.worker.max_attempts)),
            ("worker.backoff_base_ms", self.worker.backoff_base_ms),
            ("worker.request_timeout_ms", self.worker.request_timeout_ms),
            ("worker.lease_ms", self.worker.lease_ms),
            ("worker.poll_interval_ms", self.worker.poll_interval_ms),
            (
                "webhooks.watch_interval_secs",
                self.webhooks.watch_interval_secs,
            ),
        ] {
            if value == 0 {
                problems.push(format!(
                    "{key} ({}) must be greater than 0",
                    env_var_name(key)
                ));
            }
        }
        if self.worker.backoff_max_ms < self.worker.backoff_base_ms {
            problems.push(format!(
                "worker.backoff_max_ms ({}) must be at least worker.backoff_base_ms",
                env_var_name("worker.backoff_max_ms")
            ));
        }
        if self.worker.lease_ms <= self.worker.request_timeout_ms {
            problems.push(format!(
                "worker.lease_ms ({}) must be longer than worker.request_timeout_ms, or jobs would lose their lease mid-request",
                env_var_name("worker.lease_ms")
            ));
        }
        if self.retention.done_days > MAX_DONE_DAYS {
            problems.push(format!(
                "retention.done_days ({}) must be at most {MAX_DONE_DAYS}; 0 keeps done jobs forever",
                env_var_name("retention.done_days")
            ));
        }
        self.invite.allowed_domains = normalize_domains(&self.invite.allowed_domains);

        if problems.is_empty() {
            Ok(self)
        } else {
            Err(SettingsError::Invalid(problems))
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.worker.request_timeout_ms)
    }
}

/// `asana.token` → `BRIDGE__ASANA__TOKEN`.
pub fn env_var_name(key: &str) -> String {
    let mut name = String::from(ENV_PREFIX);
    for part in key.split('.') {
        name.push_str(ENV_SEPARATOR);
        name.push_str(&part.to_ascii_uppercase());
    }
    name
}

fn check_http_url(value: &str) -> Result<(), String> {
    let url = url::Url::parse(value).map_err(|e| format!("not a URL ({e})"))?;
    match url.scheme() {
        "http" | "https" => Ok(()),
        other => Err(format!("scheme must be http or https, not {other}")),
    }
}

fn normalize_domains(domains: &[String]) -> Vec<String> {
    let mut out: Vec<String> = domains
        .iter()
        .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn complete() -> Vec<(&'static str, &'static str)> {
        vec![
            ("BRIDGE__ASANA__TOKEN", "1/abc"),
            ("BRIDGE__DOCSPACE__BASE_URL", "https://x.onlyoffice.com/"),
            ("BRIDGE__DOCSPACE__API_KEY", "sk-123"),
        ]
    }

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::load_from(Sources {
            file: None,
            env: Some(env(pairs)),
        })
    }

    #[test]
    fn defaults_apply_and_env_overrides() {
        let mut pairs = complete();
        pairs.push(("BRIDGE__WORKER__CONCURRENCY", "9"));
        pairs.push(("BRIDGE__INVITE__ALLOWED_DOMAINS", "Example.com, @corp.io"));
        let s = load(&pairs).unwrap();
        assert_eq!(s.server.port, 8080);
        assert_eq!(s.server.max_body_bytes, 1_048_576);
        assert_eq!(s.asana.base_url, "https://app.asana.com/api/1.0");
        assert_eq!(s.docspace.base_url, "https://x.onlyoffice.com");
        assert_eq!(s.docspace.invite_type, InviteType::All);
        assert_eq!(s.worker.concurrency, 9);
        assert_eq!(s.worker.max_attempts, 12);
        assert_eq!(s.database.url, "sqlite://data/bridge.db");
        assert_eq!(s.invite.allowed_domains, vec!["corp.io", "example.com"]);
        assert_eq!(s.webhooks.handshake, HandshakeMode::Registration);
        assert_eq!(s.retention.done_days, 30);
    }

    #[test]
    fn retention_keeps_done_jobs_forever_at_0_and_refuses_more_than_a_century() {
        let mut pairs = complete();
        pairs.push(("BRIDGE__RETENTION__DONE_DAYS", "0"));
        assert_eq!(load(&pairs).unwrap().retention.done_days, 0);
        pairs.pop();
        pairs.push(("BRIDGE__RETENTION__DONE_DAYS", "36501"));
        let err = load(&pairs).unwrap_err().to_string();
        assert!(err.contains("BRIDGE__RETENTION__DONE_DAYS"), "{err}");
        assert!(err.contains("at most 36500"), "{err}");
        pairs.pop();
        pairs.push(("BRIDGE__RETENTION__DONE_DAYS", "-1"));
        assert!(load(&pairs).is_err());
    }

    #[test]
    fn every_missing_key_is_named_with_its_variable() {
        let err = load(&[("BRIDGE__DOCSPACE__API_KEY", "  ")]).unwrap_err();
        let text = err.to_string();
        for needle in [
            "asana.token",
            "BRIDGE__ASANA__TOKEN",
            "docspace.base_url",
            "BRIDGE__DOCSPACE__BASE_URL",
            "docspace.api_key",
            "BRIDGE__DOCSPACE__API_KEY",
        ] {
            assert!(text.contains(needle), "{needle} missing from: {text}");
        }
    }

    #[test]
    fn guest_invite_type_is_refused() {
        let mut pairs = complete();
        pairs.push(("BRIDGE__DOCSPACE__INVITE_TYPE", "Guest"));
        let err = load(&pairs).unwrap_err().to_string();
        assert!(err.contains("cannot be Guest"), "{err}");
    }

    #[test]
    fn unknown_invite_type_is_refused() {
        let mut pairs = complete();
        pairs.push(("BRIDGE__DOCSPACE__INVITE_TYPE", "Owner"));
        assert!(load(&pairs).is_err());
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let s = load(&complete()).unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("1/abc"), "{debug}");
        assert!(!debug.contains("sk-123"), "{debug}");
    }

    #[test]
    fn numeric_looking_values_stay_strings() {
        let s = load(&[
            ("BRIDGE__ASANA__TOKEN", "12345"),
            ("BRIDGE__DOCSPACE__BASE_URL", "http://127.0.0.1:9"),
            ("BRIDGE__DOCSPACE__API_KEY", "007"),
        ])
        .unwrap();
        assert_eq!(s.asana.token.expose_secret(), "12345");
        assert_eq!(s.docspace.api_key.expose_secret(), "007");
    }

    #[test]
    fn env_var_names_follow_the_prefix_scheme() {
        assert_eq!(
            env_var_name("server.public_url"),
            "BRIDGE__SERVER__PUBLIC_URL"
        );
    }
}
