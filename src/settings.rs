//! Configuration: compiled-in defaults (`config/default.toml`), then an optional file, then
//! `BRIDGE__<SECTION>__<KEY>` environment variables; validated once, at start-up.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::rooms::access::or_list;
pub use crate::rooms::{RoomAccess, RoomType, RoomsMode, TitleTemplate};

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
    pub reconcile: ReconcileSettings,
    pub admin: AdminSettings,
    pub log: LogSettings,
    /// `[rooms]` as written; [`Settings::rooms`] is what it means, once validated.
    #[serde(rename = "rooms")]
    rooms_raw: RawRooms,
    /// Parsed from `[rooms]` by validation (`off` and the defaults before it).
    #[serde(skip)]
    pub rooms: RoomsSettings,
    /// `[access]` as written; [`Settings::access`] is what it means, once validated.
    #[serde(rename = "access")]
    access_raw: RawAccess,
    /// Parsed from `[access]` by validation (revocation off before it).
    #[serde(skip)]
    pub access: AccessSettings,
}

/// `[access]` as written: `revoke` as a string, so a bad value is reported naming its variable.
#[derive(Debug, Clone, Deserialize)]
struct RawAccess {
    revoke: String,
    revoke_grace_secs: u64,
}

/// Taking back room access nobody needs any more (issue 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessSettings {
    pub revoke: RevokeMode,
    /// How long a person must have had no open task in a project before its room access goes.
    pub revoke_grace: Duration,
}

impl Default for AccessSettings {
    fn default() -> AccessSettings {
        AccessSettings {
            revoke: RevokeMode::Off,
            revoke_grace: Duration::from_secs(86_400),
        }
    }
}

impl AccessSettings {
    /// The grace period when revocation is on; `None` when it is off.
    pub fn lifecycle(&self) -> Option<Duration> {
        (self.revoke == RevokeMode::On).then_some(self.revoke_grace)
    }
}

/// `access.revoke`: `on` or `off` (`true` and `false` are read too, like the other switches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::Display, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum RevokeMode {
    Off,
    On,
}

impl std::str::FromStr for RevokeMode {
    type Err = ();
    fn from_str(value: &str) -> Result<RevokeMode, ()> {
        match value.trim().to_ascii_lowercase().as_str() {
            "off" | "false" => Ok(RevokeMode::Off),
            "on" | "true" => Ok(RevokeMode::On),
            _ => Err(()),
        }
    }
}

/// The longest `access.revoke_grace_secs` accepted: a year.
pub const MAX_REVOKE_GRACE_SECS: u64 = 31_536_000;

/// `[rooms]` as strings, so that a bad value is reported naming its variable.
#[derive(Debug, Clone, Deserialize)]
struct RawRooms {
    mode: String,
    access: String,
    room_type: String,
    notify: bool,
    title: String,
}

/// Room access for assignees (issue 11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomsSettings {
    pub mode: RoomsMode,
    /// What assignees get in a project's room.
    pub access: RoomAccess,
    /// The type of rooms created in `auto` mode.
    pub room_type: RoomType,
    /// Whether DocSpace notifies people added to a room.
    pub notify: bool,
    /// The title of created rooms.
    pub title: TitleTemplate,
}

impl Default for RoomsSettings {
    fn default() -> RoomsSettings {
        RoomsSettings {
            mode: RoomsMode::Off,
            access: RoomAccess::Editing,
            room_type: RoomType::Collaboration,
            notify: true,
            title: TitleTemplate::default(),
        }
    }
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
    /// Serve the status page (`/admin*`) on this port instead of the main one (0: on the main
    /// port). Needs `admin.token`.
    pub admin_port: u16,
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
    /// Register a webhook Asana deleted or deactivated again, and catch up on the gap.
    pub auto_recreate: bool,
}

/// Reconcile passes (issue 12): the fallback poll Asana recommends beside its webhooks.
#[derive(Debug, Clone, Deserialize)]
pub struct ReconcileSettings {
    /// A pass per watched project this often; 0: none (a repaired webhook's catch-up still runs).
    pub interval_secs: u64,
    /// At most this share of `asana.requests_per_minute` goes to passes; jobs keep the rest.
    pub rate_share: f64,
}

impl ReconcileSettings {
    /// `None` when passes are off.
    pub fn interval(&self) -> Option<Duration> {
        (self.interval_secs > 0).then(|| Duration::from_secs(self.interval_secs))
    }
}

/// The operator's status page (issue 14).
#[derive(Debug, Clone, Deserialize)]
pub struct AdminSettings {
    /// Signs operators in to `/admin` and authorizes `/admin/api/status`; empty: neither exists.
    /// A secret: `Debug` shows `[REDACTED]`, never logged.
    pub token: SecretString,
}

/// The shortest `admin.token` accepted.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

impl AdminSettings {
    /// The token, when the status page is on.
    pub fn token(&self) -> Option<&SecretString> {
        (!self.token.expose_secret().trim().is_empty()).then_some(&self.token)
    }
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
        if !(self.reconcile.rate_share > 0.0 && self.reconcile.rate_share <= 1.0) {
            problems.push(format!(
                "reconcile.rate_share ({}) must be more than 0 and at most 1 (a share of asana.requests_per_minute), not {}",
                env_var_name("reconcile.rate_share"),
                self.reconcile.rate_share
            ));
        }
        let admin_token = self.admin.token.expose_secret().trim();
        if !admin_token.is_empty() && admin_token.chars().count() < MIN_ADMIN_TOKEN_CHARS {
            problems.push(format!(
                "admin.token ({}) must be at least {MIN_ADMIN_TOKEN_CHARS} characters (e.g. the output of `openssl rand -hex 32`); it signs operators in and retries jobs",
                env_var_name("admin.token")
            ));
        }
        if self.server.admin_port != 0 {
            if admin_token.is_empty() {
                problems.push(format!(
                    "server.admin_port ({}) is set but admin.token ({}) is empty: there is no status page to serve",
                    env_var_name("server.admin_port"),
                    env_var_name("admin.token")
                ));
            }
            if self.server.admin_port == self.server.port
                || self.server.admin_port == self.server.metrics_port
            {
                problems.push(format!(
                    "server.admin_port ({}) must differ from server.port and server.metrics_port",
                    env_var_name("server.admin_port")
                ));
            }
        }
        self.invite.allowed_domains = normalize_domains(&self.invite.allowed_domains);
        match parse_rooms(&self.rooms_raw, self.docspace.invite_type) {
            Ok(rooms) => self.rooms = rooms,
            Err(mut rooms_problems) => problems.append(&mut rooms_problems),
        }
        match parse_access(&self.access_raw, self.rooms.mode) {
            Ok(access) => self.access = access,
            Err(mut access_problems) => problems.append(&mut access_problems),
        }

        if problems.is_empty() {
            Ok(self)
        } else {
            Err(SettingsError::Invalid(problems))
        }
    }

    /// A warning for settings that are valid but cannot do all they ask (start-up log and
    /// `check-config`).
    pub fn auto_recreate_warning(&self) -> Option<String> {
        (self.webhooks.auto_recreate && self.server.public_url.is_empty()).then(|| {
            format!(
                "webhooks.auto_recreate is on but server.public_url ({}) is empty: a webhook Asana deletes cannot be registered again",
                env_var_name("server.public_url")
            )
        })
    }

    /// A warning when the status page is on but its session cookie cannot be `Secure`.
    pub fn admin_cookie_warning(&self) -> Option<String> {
        (self.admin.token().is_some() && !self.server.public_url.starts_with("https://")).then(|| {
            format!(
                "the status page's session cookie is sent without Secure: serve /admin over TLS (server.public_url ({}) is not https://)",
                env_var_name("server.public_url")
            )
        })
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.worker.request_timeout_ms)
    }
}

/// `[rooms]` parsed, or every problem with it, each naming its variable.
fn parse_rooms(raw: &RawRooms, invite_type: InviteType) -> Result<RoomsSettings, Vec<String>> {
    fn named<T: std::str::FromStr>(
        key: &str,
        value: &str,
        expected: &str,
        accept: impl Fn(&T) -> bool,
    ) -> Result<T, String> {
        value
            .trim()
            .parse::<T>()
            .ok()
            .filter(accept)
            .ok_or_else(|| {
                format!(
                    "{key} ({}): unknown value {value:?}; expected {expected}",
                    env_var_name(key)
                )
            })
    }
    let mut problems = Vec::new();
    let mode = named::<RoomsMode>(
        "rooms.mode",
        &raw.mode,
        &or_list(&[RoomsMode::Off, RoomsMode::Linked, RoomsMode::Auto]),
        |_| true,
    );
    let access_names: Vec<RoomAccess> = <RoomAccess as strum::IntoEnumIterator>::iter().collect();
    let access = named::<RoomAccess>("rooms.access", &raw.access, &or_list(&access_names), |_| {
        true
    });
    let room_type = named::<RoomType>(
        "rooms.room_type",
        &raw.room_type,
        &or_list(&RoomType::CREATABLE),
        |t| t.creatable(),
    );
    let title = TitleTemplate::parse(&raw.title).map_err(|problem| {
        let key = "rooms.title";
        match problem {
            crate::rooms::access::TitleError::Empty => {
                format!("{key} ({}) {problem}", env_var_name(key))
            }
            _ => format!("{key} ({}): {problem}", env_var_name(key)),
        }
    });
    for result in [
        mode.as_ref().err(),
        access.as_ref().err(),
        room_type.as_ref().err(),
        title.as_ref().err(),
    ]
    .into_iter()
    .flatten()
    {
        problems.push(result.clone());
    }
    if let (Ok(mode), Ok(access), Ok(room_type)) = (&mode, &access, &room_type) {
        if *mode == RoomsMode::Auto && !room_type.allows(*access) {
            problems.push(format!(
                "rooms.access ({}) {access} is not available in {room_type} rooms (rooms.room_type, {}); they allow {}",
                env_var_name("rooms.access"),
                env_var_name("rooms.room_type"),
                or_list(crate::rooms::allowed(*room_type)),
            ));
        }
        if *mode != RoomsMode::Off
            && *access == RoomAccess::RoomManager
            && invite_type == InviteType::User
        {
            problems.push(format!(
                "rooms.access ({}) cannot be RoomManager with docspace.invite_type ({}) User: DocSpace refuses room managers of the User type; choose ContentCreator or another access",
                env_var_name("rooms.access"),
                env_var_name("docspace.invite_type"),
            ));
        }
    }
    match (mode, access, room_type, title) {
        (Ok(mode), Ok(access), Ok(room_type), Ok(title)) if problems.is_empty() => {
            Ok(RoomsSettings {
                mode,
                access,
                room_type,
                notify: raw.notify,
                title,
            })
        }
        _ => Err(problems),
    }
}

/// `[access]` parsed, or every problem with it, each naming its variables. `rooms_mode` is the
/// parsed `rooms.mode` (`off` when it was itself invalid, which is reported already).
fn parse_access(raw: &RawAccess, rooms_mode: RoomsMode) -> Result<AccessSettings, Vec<String>> {
    let mut problems = Vec::new();
    let revoke = raw.revoke.parse::<RevokeMode>().ok();
    match revoke {
        None => problems.push(format!(
            "access.revoke ({}): unknown value {:?}; expected on or off",
            env_var_name("access.revoke"),
            raw.revoke
        )),
        Some(RevokeMode::On) if rooms_mode == RoomsMode::Off => problems.push(format!(
            "access.revoke ({}) is on but rooms.mode ({}) is off: the bridge grants no room access to take back; set rooms.mode to linked or auto, or access.revoke to off",
            env_var_name("access.revoke"),
            env_var_name("rooms.mode"),
        )),
        Some(_) => {}
    }
    if raw.revoke_grace_secs > MAX_REVOKE_GRACE_SECS {
        problems.push(format!(
            "access.revoke_grace_secs ({}) must be at most {MAX_REVOKE_GRACE_SECS} (a year), not {}",
            env_var_name("access.revoke_grace_secs"),
            raw.revoke_grace_secs
        ));
    }
    match revoke {
        Some(revoke) if problems.is_empty() => Ok(AccessSettings {
            revoke,
            revoke_grace: Duration::from_secs(raw.revoke_grace_secs),
        }),
        _ => Err(problems),
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
        assert_eq!(s.reconcile.interval(), Some(Duration::from_secs(3600)));
        assert_eq!(s.reconcile.rate_share, 0.2);
        assert!(s.webhooks.auto_recreate);
    }

    fn problems(pairs: &[(&str, &str)]) -> Vec<String> {
        match load(pairs) {
            Err(SettingsError::Invalid(problems)) => problems,
            other => panic!("expected invalid settings, got {other:?}"),
        }
    }

    #[test]
    fn the_status_page_is_off_without_a_token_and_needs_a_long_one() {
        let s = load(&complete()).unwrap();
        assert!(s.admin.token().is_none());
        assert_eq!(s.server.admin_port, 0);
        assert_eq!(s.admin_cookie_warning(), None);

        let mut short = complete();
        short.push(("BRIDGE__ADMIN__TOKEN", "too-short"));
        assert_eq!(
            problems(&short),
            vec![
                "admin.token (BRIDGE__ADMIN__TOKEN) must be at least 32 characters (e.g. the output of `openssl rand -hex 32`); it signs operators in and retries jobs"
            ]
        );

        let token = "0123456789abcdef0123456789abcdef";
        let mut on = complete();
        on.push(("BRIDGE__ADMIN__TOKEN", token));
        let s = load(&on).unwrap();
        assert!(s.admin.token().is_some());
        assert!(
            !format!("{s:?}").contains(token),
            "Debug shows the admin token"
        );
        let warning = s.admin_cookie_warning().expect("public_url is not https");
        assert!(warning.contains("BRIDGE__SERVER__PUBLIC_URL"), "{warning}");
        on.push(("BRIDGE__SERVER__PUBLIC_URL", "https://bridge.example.com"));
        assert_eq!(load(&on).unwrap().admin_cookie_warning(), None);
    }

    #[test]
    fn the_admin_port_needs_the_page_and_a_port_of_its_own() {
        let mut without_token = complete();
        without_token.push(("BRIDGE__SERVER__ADMIN_PORT", "9091"));
        assert_eq!(
            problems(&without_token),
            vec![
                "server.admin_port (BRIDGE__SERVER__ADMIN_PORT) is set but admin.token (BRIDGE__ADMIN__TOKEN) is empty: there is no status page to serve"
            ]
        );
        let mut clash = complete();
        clash.push(("BRIDGE__ADMIN__TOKEN", "0123456789abcdef0123456789abcdef"));
        clash.push(("BRIDGE__SERVER__ADMIN_PORT", "9090"));
        clash.push(("BRIDGE__SERVER__METRICS_PORT", "9090"));
        assert_eq!(
            problems(&clash),
            vec![
                "server.admin_port (BRIDGE__SERVER__ADMIN_PORT) must differ from server.port and server.metrics_port"
            ]
        );
    }

    #[test]
    fn reconcile_settings_are_checked() {
        let mut off = complete();
        off.push(("BRIDGE__RECONCILE__INTERVAL_SECS", "0"));
        assert_eq!(load(&off).unwrap().reconcile.interval(), None);
        for bad in ["0", "1.5", "-0.1", "NaN"] {
            let mut pairs = complete();
            pairs.push(("BRIDGE__RECONCILE__RATE_SHARE", bad));
            let err = load(&pairs).unwrap_err().to_string();
            assert!(
                err.contains("reconcile.rate_share (BRIDGE__RECONCILE__RATE_SHARE) must be more than 0 and at most 1"),
                "{bad}: {err}"
            );
        }
        let s = load(&complete()).unwrap();
        let warning = s.auto_recreate_warning().expect("no public URL by default");
        assert!(warning.contains("BRIDGE__SERVER__PUBLIC_URL"), "{warning}");
        let mut with_url = complete();
        with_url.push(("BRIDGE__SERVER__PUBLIC_URL", "https://bridge.example.com"));
        assert_eq!(load(&with_url).unwrap().auto_recreate_warning(), None);
        let mut off = complete();
        off.push(("BRIDGE__WEBHOOKS__AUTO_RECREATE", "false"));
        assert_eq!(load(&off).unwrap().auto_recreate_warning(), None);
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
    fn rooms_default_to_off_editing_collaboration_notify_and_the_project_name() {
        let s = load(&complete()).unwrap();
        assert_eq!(s.rooms, RoomsSettings::default());
        assert_eq!(s.rooms.mode, RoomsMode::Off);
        assert_eq!(s.rooms.access, RoomAccess::Editing);
        assert_eq!(s.rooms.room_type, RoomType::Collaboration);
        assert!(s.rooms.notify);
        assert_eq!(s.rooms.title.as_str(), "{project}");
    }

    #[test]
    fn rooms_settings_parse_from_the_environment() {
        let mut pairs = complete();
        pairs.push(("BRIDGE__ROOMS__MODE", "Auto"));
        pairs.push(("BRIDGE__ROOMS__ACCESS", "Review"));
        pairs.push(("BRIDGE__ROOMS__ROOM_TYPE", "Custom"));
        pairs.push(("BRIDGE__ROOMS__NOTIFY", "false"));
        pairs.push(("BRIDGE__ROOMS__TITLE", "Asana: {project}"));
        let s = load(&pairs).unwrap();
        assert_eq!(s.rooms.mode, RoomsMode::Auto);
        assert_eq!(s.rooms.access, RoomAccess::Review);
        assert_eq!(s.rooms.room_type, RoomType::Custom);
        assert!(!s.rooms.notify);
        assert_eq!(s.rooms.title.render("Website", "1"), "Asana: Website");
    }

    fn rooms_error(extra: &[(&'static str, &'static str)]) -> String {
        let mut pairs = complete();
        pairs.extend_from_slice(extra);
        load(&pairs).unwrap_err().to_string()
    }

    #[test]
    fn unknown_room_names_are_refused_naming_their_variables() {
        let err = rooms_error(&[
            ("BRIDGE__ROOMS__MODE", "sometimes"),
            ("BRIDGE__ROOMS__ACCESS", "Write"),
            ("BRIDGE__ROOMS__ROOM_TYPE", "Ai"),
        ]);
        for line in [
            r#"rooms.mode (BRIDGE__ROOMS__MODE): unknown value "sometimes"; expected off, linked or auto"#,
            r#"rooms.access (BRIDGE__ROOMS__ACCESS): unknown value "Write"; expected Editing, Review, Comment, Read, FillForms, ContentCreator or RoomManager"#,
            r#"rooms.room_type (BRIDGE__ROOMS__ROOM_TYPE): unknown value "Ai"; expected Collaboration, Custom, Public, FillingForms or VirtualData"#,
        ] {
            assert!(
                err.lines().any(|l| l == line),
                "{line}\nmissing from:\n{err}"
            );
        }
    }

    #[test]
    fn an_access_the_room_type_does_not_allow_is_refused_in_auto_mode() {
        let err = rooms_error(&[
            ("BRIDGE__ROOMS__MODE", "auto"),
            ("BRIDGE__ROOMS__ACCESS", "Review"),
        ]);
        let line = "rooms.access (BRIDGE__ROOMS__ACCESS) Review is not available in Collaboration rooms (rooms.room_type, BRIDGE__ROOMS__ROOM_TYPE); they allow RoomManager, ContentCreator, Editing or Read";
        assert!(err.lines().any(|l| l == line), "{err}");
        // In linked mode each link is checked against its room's real type instead.
        let mut pairs = complete();
        pairs.push(("BRIDGE__ROOMS__MODE", "linked"));
        pairs.push(("BRIDGE__ROOMS__ACCESS", "Review"));
        assert_eq!(load(&pairs).unwrap().rooms.access, RoomAccess::Review);
    }

    #[test]
    fn room_manager_is_refused_for_user_invitations_unless_rooms_are_off() {
        let err = rooms_error(&[
            ("BRIDGE__ROOMS__MODE", "linked"),
            ("BRIDGE__ROOMS__ACCESS", "RoomManager"),
            ("BRIDGE__DOCSPACE__INVITE_TYPE", "User"),
        ]);
        let line = "rooms.access (BRIDGE__ROOMS__ACCESS) cannot be RoomManager with docspace.invite_type (BRIDGE__DOCSPACE__INVITE_TYPE) User: DocSpace refuses room managers of the User type; choose ContentCreator or another access";
        assert!(err.lines().any(|l| l == line), "{err}");
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = complete();
            pairs.push(("BRIDGE__ROOMS__ACCESS", "RoomManager"));
            pairs.extend_from_slice(extra);
            load(&pairs).unwrap().rooms
        };
        let off = with(&[("BRIDGE__DOCSPACE__INVITE_TYPE", "User")]);
        assert_eq!(off.mode, RoomsMode::Off);
        let room_admins = with(&[
            ("BRIDGE__DOCSPACE__INVITE_TYPE", "RoomAdmin"),
            ("BRIDGE__ROOMS__MODE", "auto"),
        ]);
        assert_eq!(room_admins.access, RoomAccess::RoomManager);
    }

    #[test]
    fn room_titles_must_be_non_empty_with_only_the_project_placeholder() {
        let err = rooms_error(&[("BRIDGE__ROOMS__TITLE", "  ")]);
        assert!(
            err.lines()
                .any(|l| l == "rooms.title (BRIDGE__ROOMS__TITLE) must not be empty"),
            "{err}"
        );
        let err = rooms_error(&[("BRIDGE__ROOMS__TITLE", "{name} room")]);
        assert!(
            err.lines().any(|l| l
                == "rooms.title (BRIDGE__ROOMS__TITLE): unknown placeholder {name}; only {project} is replaced"),
            "{err}"
        );
    }

    #[test]
    fn rooms_notify_must_be_a_bool() {
        let mut pairs = complete();
        pairs.push(("BRIDGE__ROOMS__NOTIFY", "sometimes"));
        let err = load(&pairs).unwrap_err().to_string();
        assert!(err.contains("notify"), "{err}");
    }

    #[test]
    fn env_var_names_follow_the_prefix_scheme() {
        assert_eq!(
            env_var_name("server.public_url"),
            "BRIDGE__SERVER__PUBLIC_URL"
        );
    }
}
