//! The status page's sign-in sessions (issue 14, migration 0009): one row per session, keyed by a
//! hash of the cookie's id and the admin token, so the store never holds a usable cookie and a new
//! token ends every session. Expired rows are deleted whenever a session is created.

use super::conn::{Conn, Sql, Write};
use super::{Durability, Store, StoreResult};

/// A live session, as the page needs it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AdminSession {
    /// Sent back in every form of the page; compared with what a POST carries.
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Sweeps the expired sessions and records a new one, in one transaction: the table stays as
/// small as the live sessions without a retention job of its own.
struct CreateAdminSession {
    id_hash: String,
    csrf_token: String,
    now: i64,
    expires_at: i64,
}

impl Write for CreateAdminSession {
    type Output = ();
    // Synced: the cookie is sent after this, and any replica must find the row.
    const DURABILITY: Durability = Durability::Synced;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<()> {
        let mut tx = conn.begin().await?;
        tx.conn()
            .execute(Sql::new("DELETE FROM admin_sessions WHERE expires_at <= $1").bind(self.now))
            .await?;
        tx.conn()
            .execute(
                Sql::new(
                    "INSERT INTO admin_sessions (id_hash, csrf_token, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(self.id_hash.as_str())
                .bind(self.csrf_token.as_str())
                .bind(self.now)
                .bind(self.expires_at),
            )
            .await?;
        tx.commit().await
    }
}

/// Deletes one session (sign-out). Output: whether it existed.
struct EndAdminSession {
    id_hash: String,
}

impl Write for EndAdminSession {
    type Output = bool;
    // Synced: a signed-out cookie must not work on another replica a moment later.
    const DURABILITY: Durability = Durability::Synced;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let deleted = conn
            .execute(
                Sql::new("DELETE FROM admin_sessions WHERE id_hash = $1")
                    .bind(self.id_hash.as_str()),
            )
            .await?;
        Ok(deleted > 0)
    }
}

impl Store {
    /// Records a new session (and deletes the expired ones), durably: a sign-in that answered
    /// with a cookie works on every replica.
    pub async fn create_admin_session(
        &self,
        id_hash: &str,
        csrf_token: &str,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        self.write(CreateAdminSession {
            id_hash: id_hash.to_string(),
            csrf_token: csrf_token.to_string(),
            now,
            expires_at,
        })
        .await
    }

    /// The session `id_hash` names, unless it expired by `now` (a primary key probe).
    pub async fn admin_session(
        &self,
        id_hash: &str,
        now: i64,
    ) -> StoreResult<Option<AdminSession>> {
        self.fetch_optional(
            Sql::new(
                "SELECT csrf_token, created_at, expires_at FROM admin_sessions \
                 WHERE id_hash = $1 AND expires_at > $2",
            )
            .bind(id_hash)
            .bind(now),
        )
        .await
    }

    /// Ends session `id_hash` (sign-out). True when there was one.
    pub async fn end_admin_session(&self, id_hash: &str) -> StoreResult<bool> {
        self.write(EndAdminSession {
            id_hash: id_hash.to_string(),
        })
        .await
    }
}
