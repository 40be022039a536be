//! Webhook secrets, one per webhook name, and the registration windows that admit a handshake.
//! A stored secret is never overwritten.

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

const WEBHOOK_COLUMNS: &str =
    "name, created_at, last_delivery_at, webhook_gid, project_gid, target, registered_at";

impl Store {
    /// The secret for `name`, if its handshake happened.
    pub async fn webhook_secret(&self, name: &str) -> StoreResult<Option<SecretString>> {
        let secret: Option<String> = on_db!(self, read, |pool| {
            sqlx::query_scalar("SELECT secret FROM webhooks WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await
        })?;
        Ok(secret.map(SecretString::from))
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

    /// `registration` handshakes: stores `secret` only if a window for `name` was opened within
    /// `window` and no secret is stored; the window closes as the secret is stored.
    pub async fn store_secret_in_window(
        &self,
        name: &str,
        secret: &str,
        window: Duration,
    ) -> StoreResult<HandshakeOutcome> {
        let name = name.to_owned();
        let secret = secret.to_owned();
        let now = now_ms();
        let earliest = now - duration_ms(window);
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
            let closed = sqlx::query(
                "DELETE FROM pending_registrations WHERE name = $1 AND opened_at >= $2",
            )
            .bind(&name)
            .bind(earliest)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if closed == 0 {
                return Ok(HandshakeOutcome::NoRegistrationWindow);
            }
            let inserted = sqlx::query(
                "INSERT INTO webhooks (name, secret, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(&name)
            .bind(&secret)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(if inserted == 1 {
                HandshakeOutcome::Stored
            } else {
                HandshakeOutcome::AlreadyHasSecret
            })
        }
        .await)?;
        Ok(outcome)
    }

    /// Opens (or reopens) the registration window for `name`.
    pub async fn open_registration(&self, name: &str) -> StoreResult<()> {
        let name = name.to_owned();
        write_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO pending_registrations (name, opened_at) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET opened_at = excluded.opened_at",
            )
            .bind(&name)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    pub async fn close_registration(&self, name: &str) -> StoreResult<()> {
        let name = name.to_owned();
        write_db!(self, |pool| {
            sqlx::query("DELETE FROM pending_registrations WHERE name = $1")
                .bind(&name)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Remembers what Asana knows the webhook `name` by.
    pub async fn record_registration(
        &self,
        name: &str,
        webhook_gid: &str,
        project_gid: &str,
        target: &str,
    ) -> StoreResult<()> {
        let name = name.to_owned();
        let webhook_gid = webhook_gid.to_owned();
        let project_gid = project_gid.to_owned();
        let target = target.to_owned();
        write_db!(self, |pool| {
            sqlx::query(
                "UPDATE webhooks SET webhook_gid = $1, project_gid = $2, target = $3, registered_at = $4 \
                 WHERE name = $5",
            )
            .bind(&webhook_gid)
            .bind(&project_gid)
            .bind(&target)
            .bind(now_ms())
            .bind(&name)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Every webhook name with a secret.
    pub async fn webhooks(&self) -> StoreResult<Vec<WebhookRecord>> {
        let rows = on_db!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY name"
            )))
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }

    /// The webhook called `key` here, or known to Asana by the gid `key`.
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

    /// The project `webhooks create` registered the webhook `name` for; `None` for a name
    /// without one (a `first-use` handshake) or without a webhook.
    pub async fn webhook_project(&self, name: &str) -> StoreResult<Option<String>> {
        let project: Option<Option<String>> = on_db!(self, read, |pool| {
            sqlx::query_scalar("SELECT project_gid FROM webhooks WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await
        })?;
        Ok(project.flatten())
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
