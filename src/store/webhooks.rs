//! Webhook secrets, one per webhook name, and the registration windows that admit a handshake.
//! A stored secret is never overwritten. A secret stored through a window verifies nothing until
//! `webhooks create` confirms it, and is deleted once the window's deadline has passed.

use sqlx::Connection as _;
use std::time::Duration;

use secrecy::SecretString;

use super::{Store, StoreResult, duration_ms, now_ms, on_db, write_db};

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
#[derive(Debug, Clone, Copy)]
pub struct RegisteredWebhook<'a> {
    pub webhook_gid: &'a str,
    pub project_gid: &'a str,
    pub target: &'a str,
}

/// A webhook name with a secret, and what Asana knows it by when `webhooks create` made it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WebhookRecord {
    pub name: String,
    pub created_at: i64,
    pub last_delivery_at: Option<i64>,
    pub webhook_gid: Option<String>,
    pub project_gid: Option<String>,
    pub target: Option<String>,
    pub registered_at: Option<i64>,
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

/// What a delivery to a usable webhook needs: the secret to verify it with, and the project its
/// jobs are restricted to (`webhooks create --project`; none for `first-use` names).
#[derive(Debug, Clone)]
pub struct UsableWebhook {
    pub secret: SecretString,
    pub project_gid: Option<String>,
}

const WEBHOOK_COLUMNS: &str =
    "name, created_at, last_delivery_at, webhook_gid, project_gid, target, registered_at";

impl Store {
    /// The secret deliveries to `name` are verified with, if its handshake happened (and, for a
    /// registration, `webhooks create` confirmed it).
    pub async fn webhook_secret(&self, name: &str) -> StoreResult<Option<SecretString>> {
        Ok(match self.lookup_secret(name).await? {
            SecretLookup::Usable(webhook) => Some(webhook.secret),
            SecretLookup::Unconfirmed | SecretLookup::Unknown => None,
        })
    }

    /// What ingress needs to know of `name`: its usable secret, or whether a registration of it
    /// is under way (its secret may become usable any moment, from another process).
    pub async fn lookup_secret(&self, name: &str) -> StoreResult<SecretLookup> {
        let row: Option<(String, Option<i64>, Option<String>)> = on_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT secret, unconfirmed_until, project_gid FROM webhooks WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(pool)
            .await
        })?;
        Ok(match row {
            Some((secret, None, project_gid)) => SecretLookup::Usable(UsableWebhook {
                secret: SecretString::from(secret),
                project_gid,
            }),
            Some((_, Some(_), _)) => SecretLookup::Unconfirmed,
            None => SecretLookup::Unknown,
        })
    }

    /// `first-use` handshakes: stores `secret` for `name` unless one is already there.
    pub async fn store_secret_if_absent(
        &self,
        name: &str,
        secret: &str,
    ) -> StoreResult<HandshakeOutcome> {
        let name = name.to_owned();
        let secret = secret.to_owned();
        let inserted = write_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO webhooks (name, secret, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(&name)
            .bind(&secret)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(if inserted == 1 {
            HandshakeOutcome::Stored
        } else {
            HandshakeOutcome::AlreadyHasSecret
        })
    }

    /// The registration window open for `name`, if any: one read, so a forged handshake costs no
    /// write.
    pub async fn registration_window(&self, name: &str) -> StoreResult<Option<RegistrationWindow>> {
        let window = on_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT opened_at, nonce_hash FROM pending_registrations WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(pool)
            .await
        })?;
        Ok(window)
    }

    /// `registration` handshakes: stores `secret` only if the window for `name` with this nonce
    /// was opened within `window` and no secret is stored. The window closes as the secret is
    /// stored; the secret stays unusable until [`Store::confirm_registration`] and dies with the
    /// window's deadline.
    pub async fn store_secret_in_window(
        &self,
        name: &str,
        secret: &str,
        nonce_hash: &str,
        window: Duration,
    ) -> StoreResult<HandshakeOutcome> {
        let name = name.to_owned();
        let secret = secret.to_owned();
        let nonce_hash = nonce_hash.to_owned();
        let now = now_ms();
        let window = duration_ms(window);
        let outcome = write_db!(self, |pool| async {
            let mut tx = pool.begin().await?;
            let has_secret: Option<String> =
                sqlx::query_scalar("SELECT name FROM webhooks WHERE name = $1")
                    .bind(&name)
                    .fetch_optional(&mut *tx)
                    .await?;
            if has_secret.is_some() {
                return Ok::<_, sqlx::Error>(HandshakeOutcome::AlreadyHasSecret);
            }
            let opened_at: Option<i64> = sqlx::query_scalar(
                "DELETE FROM pending_registrations \
                 WHERE name = $1 AND nonce_hash = $2 AND opened_at >= $3 RETURNING opened_at",
            )
            .bind(&name)
            .bind(&nonce_hash)
            .bind(now - window)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(opened_at) = opened_at else {
                return Ok(HandshakeOutcome::NoRegistrationWindow);
            };
            sqlx::query(
                "INSERT INTO webhooks \
                 (name, secret, created_at, registration_nonce_hash, unconfirmed_until) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&name)
            .bind(&secret)
            .bind(now)
            .bind(&nonce_hash)
            .bind(opened_at.saturating_add(window))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(HandshakeOutcome::Stored)
        }
        .await)?;
        Ok(outcome)
    }

    /// Opens the registration window for `name`, bound to the nonce whose hash is `nonce_hash`,
    /// unless the name has a secret or a live window. Windows and unconfirmed secrets whose time
    /// has passed (left by a command that died) are deleted first, whatever their name.
    pub async fn open_registration(
        &self,
        name: &str,
        nonce_hash: &str,
        window: Duration,
    ) -> StoreResult<RegistrationOpening> {
        let name = name.to_owned();
        let nonce_hash = nonce_hash.to_owned();
        let now = now_ms();
        let earliest = now - duration_ms(window);
        write_db!(self, |pool| async {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM webhooks WHERE unconfirmed_until < $1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM pending_registrations WHERE opened_at < $1")
                .bind(earliest)
                .execute(&mut *tx)
                .await?;
            let existing: Option<Option<i64>> =
                sqlx::query_scalar("SELECT unconfirmed_until FROM webhooks WHERE name = $1")
                    .bind(&name)
                    .fetch_optional(&mut *tx)
                    .await?;
            let opening = match existing {
                Some(None) => RegistrationOpening::HasSecret,
                Some(Some(_)) => RegistrationOpening::InProgress,
                None => {
                    let inserted = sqlx::query(
                        "INSERT INTO pending_registrations (name, opened_at, nonce_hash) \
                         VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(&name)
                    .bind(now)
                    .bind(&nonce_hash)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if inserted == 1 {
                        RegistrationOpening::Opened
                    } else {
                        RegistrationOpening::InProgress
                    }
                }
            };
            tx.commit().await?;
            Ok::<_, sqlx::Error>(opening)
        }
        .await)
    }

    /// The secret the handshake of this registration stored, before it is confirmed.
    pub async fn unconfirmed_secret(
        &self,
        name: &str,
        nonce_hash: &str,
    ) -> StoreResult<Option<SecretString>> {
        let secret: Option<String> = on_db!(self, read, |pool| {
            sqlx::query_scalar(
                "SELECT secret FROM webhooks WHERE name = $1 AND registration_nonce_hash = $2 \
                 AND unconfirmed_until IS NOT NULL",
            )
            .bind(name)
            .bind(nonce_hash)
            .fetch_optional(pool)
            .await
        })?;
        Ok(secret.map(SecretString::from))
    }

    /// Makes the secret this registration stored usable, and remembers what Asana knows the
    /// webhook by. False when there is nothing to confirm: the window's deadline passed first.
    pub async fn confirm_registration(
        &self,
        name: &str,
        nonce_hash: &str,
        registered: &RegisteredWebhook<'_>,
    ) -> StoreResult<bool> {
        let name = name.to_owned();
        let nonce_hash = nonce_hash.to_owned();
        let webhook_gid = registered.webhook_gid.to_owned();
        let project_gid = registered.project_gid.to_owned();
        let target = registered.target.to_owned();
        let now = now_ms();
        let confirmed = write_db!(self, |pool| {
            sqlx::query(
                "UPDATE webhooks SET webhook_gid = $1, project_gid = $2, target = $3, registered_at = $4, \
                 registration_nonce_hash = NULL, unconfirmed_until = NULL \
                 WHERE name = $5 AND registration_nonce_hash = $6 AND unconfirmed_until >= $4",
            )
            .bind(&webhook_gid)
            .bind(&project_gid)
            .bind(&target)
            .bind(now)
            .bind(&name)
            .bind(&nonce_hash)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(confirmed == 1)
    }

    /// Closes this registration's window and deletes the secret its handshake stored, if it was
    /// not confirmed; anything another registration stored is left alone. True when a secret went.
    pub async fn abandon_registration(&self, name: &str, nonce_hash: &str) -> StoreResult<bool> {
        let name = name.to_owned();
        let nonce_hash = nonce_hash.to_owned();
        let deleted = write_db!(self, |pool| async {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM pending_registrations WHERE name = $1 AND nonce_hash = $2")
                .bind(&name)
                .bind(&nonce_hash)
                .execute(&mut *tx)
                .await?;
            let deleted = sqlx::query(
                "DELETE FROM webhooks WHERE name = $1 AND registration_nonce_hash = $2 \
                 AND unconfirmed_until IS NOT NULL",
            )
            .bind(&name)
            .bind(&nonce_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok::<_, sqlx::Error>(deleted)
        }
        .await)?;
        Ok(deleted == 1)
    }

    /// Every webhook name with a usable secret.
    pub async fn webhooks(&self) -> StoreResult<Vec<WebhookRecord>> {
        let rows = on_db!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE unconfirmed_until IS NULL ORDER BY name"
            )))
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }

    /// The webhook called `key` here (confirmed or not), or known to Asana by the gid `key`.
    pub async fn find_webhook(&self, key: &str) -> StoreResult<Option<WebhookRecord>> {
        let row = on_db!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE name = $1 OR webhook_gid = $1 \
                 ORDER BY CASE WHEN name = $1 THEN 0 ELSE 1 END LIMIT 1"
            )))
            .bind(key)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row)
    }

    /// Forgets the webhook `name` and its secret.
    pub async fn forget_webhook(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_owned();
        let deleted = write_db!(self, |pool| {
            let mut tx = pool.begin().await?;
            let deleted = sqlx::query("DELETE FROM webhooks WHERE name = $1")
                .bind(&name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM pending_registrations WHERE name = $1")
                .bind(&name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(deleted)
        })?;
        Ok(deleted == 1)
    }

    /// Records verified deliveries (name, time in ms); a time never moves backwards.
    pub async fn record_deliveries(&self, deliveries: &[(String, i64)]) -> StoreResult<()> {
        let deliveries = deliveries.to_vec();
        if deliveries.is_empty() {
            return Ok(());
        }
        write_db!(self, relaxed, |pool| {
            let mut tx = pool.begin().await?;
            for (name, at) in deliveries {
                sqlx::query(
                    "UPDATE webhooks SET last_delivery_at = $1 \
                     WHERE name = $2 AND (last_delivery_at IS NULL OR last_delivery_at < $1)",
                )
                .bind(at)
                .bind(&name)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        })?;
        Ok(())
    }
}
