//! Webhook secrets, one per webhook name. A stored secret is never overwritten.

use secrecy::SecretString;

use super::{Store, StoreResult, now_ms, on_db};

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

    /// Stores `secret` for `name` unless one is already there. Returns whether it was stored.
    pub async fn store_secret_if_absent(&self, name: &str, secret: &str) -> StoreResult<bool> {
        let result = on_db!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO webhooks (name, secret, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(secret)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(result == 1)
    }
}
