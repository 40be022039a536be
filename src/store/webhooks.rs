//! Webhook secrets, one per webhook name, and the registration windows that admit a handshake.
//! A stored secret is never overwritten. A secret stored through a window verifies nothing until
//! `webhooks create` confirms it, and is deleted once the window's deadline has passed.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::conn::{Conn, Sql, Write};
use super::jobs::OptionalGid;
use super::{Durability, Store, StoreError, StoreResult, duration_ms, now_ms};
use crate::domain::{Gid, WatchedResource, WebhookName};
use crate::webhook::Subscription;

/// What happened to a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeOutcome {
    Stored,
    /// The name has a secret already; it was kept.
    AlreadyHasSecret,
    /// No registration window is open for the name (registration mode only).
    NoRegistrationWindow,
}

/// Why `webhooks create` could (not) open a registration window for a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationOpening {
    Opened,
    /// The name has a secret already.
    HasSecret,
    /// Another registration of the name is under way (or died less than a window ago).
    InProgress,
}

/// A registration window as a handshake reads it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RegistrationWindow {
    pub opened_at: i64,
    /// SHA-256 (hex) of the nonce in the target URL; empty for windows older than nonces.
    pub nonce_hash: String,
}

impl RegistrationWindow {
    /// Whether the window, `window` long, is still open at `now` (ms).
    pub fn is_open(&self, now: i64, window: Duration) -> bool {
        self.opened_at >= now - duration_ms(window)
    }
}

/// What Asana knows a webhook by, recorded when `webhooks create` confirms it.
#[derive(Debug, Clone)]
pub struct RegisteredWebhook {
    pub webhook_gid: Gid,
    /// The project or workspace it watches.
    pub resource: WatchedResource,
    pub target: String,
}

/// A webhook name with a secret, and what Asana knows it by when `webhooks create` made it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WebhookRecord {
    #[sqlx(try_from = "String")]
    pub name: WebhookName,
    pub created_at: i64,
    pub last_delivery_at: Option<i64>,
    #[sqlx(try_from = "OptionalGid")]
    pub webhook_gid: Option<Gid>,
    #[sqlx(try_from = "OptionalGid")]
    pub project_gid: Option<Gid>,
    pub target: Option<String>,
    pub registered_at: Option<i64>,
    /// `project` or `workspace` (`project` for webhooks made by hand, which record neither).
    pub resource_type: String,
    /// The workspace a workspace webhook watches.
    #[sqlx(try_from = "OptionalGid")]
    pub workspace_gid: Option<Gid>,
}

impl WebhookRecord {
    /// What the webhook watches, when `webhooks create` or `watch-workspace` recorded it.
    pub fn resource(&self) -> Option<WatchedResource> {
        let gid = match self.resource_type.as_str() {
            "workspace" => self.workspace_gid.clone(),
            _ => self.project_gid.clone(),
        }?;
        WatchedResource::from_stored(&self.resource_type, gid).ok()
    }
}

/// A webhook name as ingress sees it.
#[derive(Debug)]
pub enum SecretLookup {
    /// Deliveries are verified with its secret.
    Usable(UsableWebhook),
    /// A handshake stored a secret that `webhooks create` has not confirmed (yet).
    Unconfirmed,
    /// No secret at all.
    Unknown,
}

/// What a delivery to a usable webhook needs: the secret to verify it with, the project its
/// jobs are restricted to (`webhooks create --project`; none for `first-use` names), and what its
/// events are read for (its resource type: a project's tasks, or a workspace's new projects).
#[derive(Debug, Clone)]
pub struct UsableWebhook {
    pub secret: SecretString,
    pub project_gid: Option<Gid>,
    pub subscription: Subscription,
}

/// `SELECT` of a [`WebhookRecord`], followed by the rest of the statement.
macro_rules! select_webhooks {
    ($rest:literal) => {
        concat!(
            "SELECT name, created_at, last_delivery_at, webhook_gid, project_gid, target, \
             registered_at, resource_type, workspace_gid FROM webhooks ",
            $rest
        )
    };
}

/// `first-use` handshakes: stores the secret unless the name has one. Output: whether it did.
struct StoreSecretIfAbsent {
    name: WebhookName,
    secret: SecretString,
}

impl Write for StoreSecretIfAbsent {
    type Output = bool;
    const DURABILITY: Durability = Durability::Synced;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let inserted = conn
            .execute(
                Sql::new(
                    "INSERT INTO webhooks (name, secret, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(self.name.as_str())
                .bind(self.secret.expose_secret())
                .bind(now_ms()),
            )
            .await?;
        Ok(inserted == 1)
    }
}

/// `registration` handshakes: stores the secret only through this nonce's live window, unusable
/// until confirmed, and closes the window.
struct StoreSecretInWindow {
    name: WebhookName,
    secret: SecretString,
    nonce_hash: String,
    window_ms: i64,
}

impl Write for StoreSecretInWindow {
    type Output = HandshakeOutcome;
    const DURABILITY: Durability = Durability::Synced;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<HandshakeOutcome> {
        let now = now_ms();
        let mut tx = conn.begin().await?;
        let has_secret: Option<(String,)> = tx
            .conn()
            .fetch_optional(
                Sql::new("SELECT name FROM webhooks WHERE name = $1").bind(self.name.as_str()),
            )
            .await?;
        if has_secret.is_some() {
            return Ok(HandshakeOutcome::AlreadyHasSecret);
        }
        let opened: Option<(i64,)> = tx
            .conn()
            .fetch_optional(
                Sql::new(
                    "DELETE FROM pending_registrations \
                     WHERE name = $1 AND nonce_hash = $2 AND opened_at >= $3 RETURNING opened_at",
                )
                .bind(self.name.as_str())
                .bind(self.nonce_hash.as_str())
                .bind(now - self.window_ms),
            )
            .await?;
        let Some((opened_at,)) = opened else {
            return Ok(HandshakeOutcome::NoRegistrationWindow);
        };
        tx.conn()
            .execute(
                Sql::new(
                    "INSERT INTO webhooks \
                     (name, secret, created_at, registration_nonce_hash, unconfirmed_until) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(self.name.as_str())
                .bind(self.secret.expose_secret())
                .bind(now)
                .bind(self.nonce_hash.as_str())
                .bind(opened_at.saturating_add(self.window_ms)),
            )
            .await?;
        tx.commit().await?;
        Ok(HandshakeOutcome::Stored)
    }
}

/// Opens a registration window for a name with neither a secret nor a live window, after
/// deleting windows and unconfirmed secrets whose time has passed (whatever their name).
struct OpenRegistration {
    name: WebhookName,
    nonce_hash: String,
    window_ms: i64,
}

impl Write for OpenRegistration {
    type Output = RegistrationOpening;
    const DURABILITY: Durability = Durability::Synced;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<RegistrationOpening> {
        let now = now_ms();
        let mut tx = conn.begin().await?;
        tx.conn()
            .execute(Sql::new("DELETE FROM webhooks WHERE unconfirmed_until < $1").bind(now))
            .await?;
        tx.conn()
            .execute(
                Sql::new("DELETE FROM pending_registrations WHERE opened_at < $1")
                    .bind(now - self.window_ms),
            )
            .await?;
        let existing: Option<(Option<i64>,)> = tx
            .conn()
            .fetch_optional(
                Sql::new("SELECT unconfirmed_until FROM webhooks WHERE name = $1")
                    .bind(self.name.as_str()),
            )
            .await?;
        let opening = match existing {
            Some((None,)) => RegistrationOpening::HasSecret,
            Some((Some(_),)) => RegistrationOpening::InProgress,
            None => {
                let inserted = tx
                    .conn()
                    .execute(
                        Sql::new(
                            "INSERT INTO pending_registrations (name, opened_at, nonce_hash) \
                             VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
                        )
                        .bind(self.name.as_str())
                        .bind(now)
                        .bind(self.nonce_hash.as_str()),
                    )
                    .await?;
                if inserted == 1 {
                    RegistrationOpening::Opened
                } else {
                    RegistrationOpening::InProgress
                }
            }
        };
        tx.commit().await?;
        Ok(opening)
    }
}

/// Makes the secret a registration stored usable and records what Asana knows the webhook by.
/// Output: false when the window's deadline passed first.
struct ConfirmRegistration {
    name: WebhookName,
    nonce_hash: String,
    registered: RegisteredWebhook,
}

impl Write for ConfirmRegistration {
    type Output = bool;
    const DURABILITY: Durability = Durability::Synced;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let now = now_ms();
        let resource = &self.registered.resource;
        let (project, workspace) = match resource {
            WatchedResource::Project(gid) => (Some(gid), None),
            WatchedResource::Workspace(gid) => (None, Some(gid)),
        };
        let mut tx = conn.begin().await?;
        let confirmed = tx
            .conn()
            .execute(
                Sql::new(
                    "UPDATE webhooks SET webhook_gid = $1, project_gid = $2, workspace_gid = $3, \
                     resource_type = $4, target = $5, registered_at = $6, \
                     registration_nonce_hash = NULL, unconfirmed_until = NULL \
                     WHERE name = $7 AND registration_nonce_hash = $8 AND unconfirmed_until >= $6",
                )
                .bind(self.registered.webhook_gid.as_str())
                .bind(project.map(Gid::as_str))
                .bind(workspace.map(Gid::as_str))
                .bind(resource.resource_type())
                .bind(self.registered.target.as_str())
                .bind(now)
                .bind(self.name.as_str())
                .bind(self.nonce_hash.as_str()),
            )
            .await?;
        if confirmed != 1 {
            return Ok(false);
        }
        // The webhook's project is known from now on (its room, in `auto` mode, follows); a
        // workspace is no project.
        if let Some(project) = project {
            super::rooms::upsert_project(&mut tx.conn(), project, None, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// Closes a registration's window and deletes the secret its handshake stored if unconfirmed.
/// Output: whether a secret went.
struct AbandonRegistration {
    name: WebhookName,
    nonce_hash: String,
}

impl Write for AbandonRegistration {
    type Output = bool;
    const DURABILITY: Durability = Durability::Synced;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let mut tx = conn.begin().await?;
        tx.conn()
            .execute(
                Sql::new("DELETE FROM pending_registrations WHERE name = $1 AND nonce_hash = $2")
                    .bind(self.name.as_str())
                    .bind(self.nonce_hash.as_str()),
            )
            .await?;
        let deleted = tx
            .conn()
            .execute(
                Sql::new(
                    "DELETE FROM webhooks WHERE name = $1 AND registration_nonce_hash = $2 \
                     AND unconfirmed_until IS NOT NULL",
                )
                .bind(self.name.as_str())
                .bind(self.nonce_hash.as_str()),
            )
            .await?;
        tx.commit().await?;
        Ok(deleted == 1)
    }
}

/// Forgets a webhook, its secret and any window for its name. Output: whether it existed.
struct ForgetWebhook {
    name: WebhookName,
}

impl Write for ForgetWebhook {
    type Output = bool;
    const DURABILITY: Durability = Durability::Synced;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let mut tx = conn.begin().await?;
        let deleted = tx
            .conn()
            .execute(Sql::new("DELETE FROM webhooks WHERE name = $1").bind(self.name.as_str()))
            .await?;
        tx.conn()
            .execute(
                Sql::new("DELETE FROM pending_registrations WHERE name = $1")
                    .bind(self.name.as_str()),
            )
            .await?;
        // A webhook deleted here is not registered again: its pending repair goes with it.
        tx.conn()
            .execute(
                Sql::new("DELETE FROM webhook_repairs WHERE old_name = $1")
                    .bind(self.name.as_str()),
            )
            .await?;
        tx.commit().await?;
        Ok(deleted == 1)
    }
}

/// Records verified deliveries (name, time in ms); a time never moves backwards.
struct RecordDeliveries {
    deliveries: Vec<(WebhookName, i64)>,
}

impl Write for RecordDeliveries {
    type Output = ();
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<()> {
        let mut tx = conn.begin().await?;
        for (name, at) in &self.deliveries {
            tx.conn()
                .execute(
                    Sql::new(
                        "UPDATE webhooks SET last_delivery_at = $1 \
                         WHERE name = $2 AND (last_delivery_at IS NULL OR last_delivery_at < $1)",
                    )
                    .bind(*at)
                    .bind(name.as_str()),
                )
                .await?;
        }
        tx.commit().await
    }
}

/// A project a workspace webhook reported: known from now on, with its name and the workspace.
struct RecordDiscoveredProject {
    gid: Gid,
    name: Option<String>,
    via: Option<Gid>,
}

impl Write for RecordDiscoveredProject {
    type Output = ();
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<()> {
        conn.execute(
            Sql::new(
                "INSERT INTO projects (gid, name, discovered_via, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4) \
                 ON CONFLICT (gid) DO UPDATE SET name = COALESCE(excluded.name, projects.name), \
                 discovered_via = COALESCE(projects.discovered_via, excluded.discovered_via), \
                 updated_at = excluded.updated_at",
            )
            .bind(self.gid.as_str())
            .bind(self.name.as_deref())
            .bind(self.via.as_ref().map(Gid::as_str))
            .bind(now_ms()),
        )
        .await?;
        Ok(())
    }
}

impl Store {
    /// The secret deliveries to `name` are verified with, if its handshake happened (and, for a
    /// registration, `webhooks create` confirmed it).
    pub async fn webhook_secret(&self, name: &WebhookName) -> StoreResult<Option<SecretString>> {
        Ok(match self.lookup_secret(name).await? {
            SecretLookup::Usable(webhook) => Some(webhook.secret),
            SecretLookup::Unconfirmed | SecretLookup::Unknown => None,
        })
    }

    /// What ingress needs to know of `name`: its usable secret, or whether a registration of it
    /// is under way (its secret may become usable any moment, from another process).
    pub async fn lookup_secret(&self, name: &WebhookName) -> StoreResult<SecretLookup> {
        let row: Option<(String, Option<i64>, Option<String>, String)> = self
            .fetch_optional(
                Sql::new(
                    "SELECT secret, unconfirmed_until, project_gid, resource_type FROM webhooks \
                     WHERE name = $1",
                )
                .bind(name.as_str()),
            )
            .await?;
        let corrupt = |what: String| StoreError::Corrupt(format!("webhook {name}: {what}"));
        Ok(match row {
            Some((secret, None, project_gid, resource_type)) => {
                SecretLookup::Usable(UsableWebhook {
                    secret: SecretString::from(secret),
                    project_gid: project_gid
                        .map(Gid::try_from)
                        .transpose()
                        .map_err(|err| corrupt(err.to_string()))?,
                    subscription: Subscription::for_resource_type(&resource_type).ok_or_else(
                        || corrupt(format!("unknown resource type {resource_type:?}")),
                    )?,
                })
            }
            Some((_, Some(_), _, _)) => SecretLookup::Unconfirmed,
            None => SecretLookup::Unknown,
        })
    }

    /// `first-use` handshakes: stores `secret` for `name` unless one is already there.
    pub async fn store_secret_if_absent(
        &self,
        name: &WebhookName,
        secret: SecretString,
    ) -> StoreResult<HandshakeOutcome> {
        let stored = self
            .write(StoreSecretIfAbsent {
                name: name.clone(),
                secret,
            })
            .await?;
        Ok(if stored {
            HandshakeOutcome::Stored
        } else {
            HandshakeOutcome::AlreadyHasSecret
        })
    }

    /// The registration window open for `name`, if any: one read, so a forged handshake costs no
    /// write.
    pub async fn registration_window(
        &self,
        name: &WebhookName,
    ) -> StoreResult<Option<RegistrationWindow>> {
        self.fetch_optional(
            Sql::new("SELECT opened_at, nonce_hash FROM pending_registrations WHERE name = $1")
                .bind(name.as_str()),
        )
        .await
    }

    /// `registration` handshakes: stores `secret` only if the window for `name` with this nonce
    /// was opened within `window` and no secret is stored. The window closes as the secret is
    /// stored; the secret stays unusable until [`Store::confirm_registration`] and dies with the
    /// window's deadline.
    pub async fn store_secret_in_window(
        &self,
        name: &WebhookName,
        secret: SecretString,
        nonce_hash: String,
        window: Duration,
    ) -> StoreResult<HandshakeOutcome> {
        self.write(StoreSecretInWindow {
            name: name.clone(),
            secret,
            nonce_hash,
            window_ms: duration_ms(window),
        })
        .await
    }

    /// Opens the registration window for `name`, bound to the nonce whose hash is `nonce_hash`,
    /// unless the name has a secret or a live window. Windows and unconfirmed secrets whose time
    /// has passed (left by a command that died) are deleted first, whatever their name.
    pub async fn open_registration(
        &self,
        name: &WebhookName,
        nonce_hash: String,
        window: Duration,
    ) -> StoreResult<RegistrationOpening> {
        self.write(OpenRegistration {
            name: name.clone(),
            nonce_hash,
            window_ms: duration_ms(window),
        })
        .await
    }

    /// The secret the handshake of this registration stored, before it is confirmed.
    pub async fn unconfirmed_secret(
        &self,
        name: &WebhookName,
        nonce_hash: &str,
    ) -> StoreResult<Option<SecretString>> {
        let secret: Option<(String,)> = self
            .fetch_optional(
                Sql::new(
                    "SELECT secret FROM webhooks WHERE name = $1 AND registration_nonce_hash = $2 \
                     AND unconfirmed_until IS NOT NULL",
                )
                .bind(name.as_str())
                .bind(nonce_hash),
            )
            .await?;
        Ok(secret.map(|(secret,)| SecretString::from(secret)))
    }

    /// Makes the secret this registration stored usable, and remembers what Asana knows the
    /// webhook by. False when there is nothing to confirm: the window's deadline passed first.
    pub async fn confirm_registration(
        &self,
        name: &WebhookName,
        nonce_hash: String,
        registered: RegisteredWebhook,
    ) -> StoreResult<bool> {
        self.write(ConfirmRegistration {
            name: name.clone(),
            nonce_hash,
            registered,
        })
        .await
    }

    /// Closes this registration's window and deletes the secret its handshake stored, if it was
    /// not confirmed; anything another registration stored is left alone. True when a secret went.
    pub async fn abandon_registration(
        &self,
        name: &WebhookName,
        nonce_hash: String,
    ) -> StoreResult<bool> {
        self.write(AbandonRegistration {
            name: name.clone(),
            nonce_hash,
        })
        .await
    }

    /// Every webhook name with a usable secret.
    pub async fn webhooks(&self) -> StoreResult<Vec<WebhookRecord>> {
        self.fetch_all(Sql::new(select_webhooks!(
            "WHERE unconfirmed_until IS NULL ORDER BY name"
        )))
        .await
    }

    /// The webhook called `key` here (confirmed or not), or known to Asana by the gid `key`.
    pub async fn find_webhook(&self, key: &str) -> StoreResult<Option<WebhookRecord>> {
        self.fetch_optional(
            Sql::new(select_webhooks!(
                "WHERE name = $1 OR webhook_gid = $1 \
                 ORDER BY CASE WHEN name = $1 THEN 0 ELSE 1 END LIMIT 1"
            ))
            .bind(key),
        )
        .await
    }

    /// Forgets the webhook `name` and its secret.
    pub async fn forget_webhook(&self, name: &WebhookName) -> StoreResult<bool> {
        self.write(ForgetWebhook { name: name.clone() }).await
    }

    /// Records verified deliveries (name, time in ms); a time never moves backwards.
    pub async fn record_deliveries(&self, deliveries: Vec<(WebhookName, i64)>) -> StoreResult<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        self.write(RecordDeliveries { deliveries }).await
    }

    /// The confirmed webhook that watches `resource` here, if any (the first by name).
    pub async fn webhook_watching(
        &self,
        resource: &WatchedResource,
    ) -> StoreResult<Option<WebhookName>> {
        let row: Option<(String,)> = self
            .fetch_optional(
                Sql::new(
                    "SELECT name FROM webhooks WHERE unconfirmed_until IS NULL \
                     AND resource_type = $1 AND COALESCE(project_gid, workspace_gid) = $2 \
                     ORDER BY name LIMIT 1",
                )
                .bind(resource.resource_type())
                .bind(resource.gid().as_str()),
            )
            .await?;
        row.map(|(name,)| {
            WebhookName::try_from(name).map_err(|err| StoreError::Corrupt(err.to_string()))
        })
        .transpose()
    }

    /// Records project `gid` (with its name) as reported by the webhook of workspace `via`; a
    /// project known already keeps the workspace it was first found through.
    pub async fn record_discovered_project(
        &self,
        gid: &Gid,
        name: Option<&str>,
        via: Option<&Gid>,
    ) -> StoreResult<()> {
        self.write(RecordDiscoveredProject {
            gid: gid.clone(),
            name: name.map(str::to_string),
            via: via.cloned(),
        })
        .await
    }
}
