//! The status page's sign-in sessions (issue 14, migration 0009): one row per session, keyed by a
//! hash of the cookie's id and the admin token, so the store never holds a usable cookie and a new
//! token ends every session. Expired rows are deleted whenever a session is created.

use super::{Store, StoreResult};

/// A live session, as the page needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSession {
    /// Sent back in every form of the page; compared with what a POST carries.
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
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
        let _ = (id_hash, csrf_token, now, expires_at);
        todo!("slice A")
    }

    /// The session `id_hash` names, unless it expired by `now`.
    pub async fn admin_session(
        &self,
        id_hash: &str,
        now: i64,
    ) -> StoreResult<Option<AdminSession>> {
        let _ = (id_hash, now);
        todo!("slice A")
    }

    /// Ends session `id_hash` (sign-out). True when there was one.
    pub async fn end_admin_session(&self, id_hash: &str) -> StoreResult<bool> {
        let _ = id_hash;
        todo!("slice A")
    }
}
