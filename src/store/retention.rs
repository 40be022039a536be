//! Deleting finished jobs: one batch of `done` jobs last updated before a cutoff. Failed, pending
//! and running jobs are never deleted, nor the invitations ledger, nor a job an invitation still
//! in `sending` names (its outcome is not settled yet). When to delete, and how often, is
//! `crate::retention`'s to decide.

use super::conn::{Conn, Sql, Write};
use super::{Durability, Store, StoreResult};

/// Deletes up to `limit` `done` jobs whose `updated_at` is before `updated_before`, oldest first.
/// Output: how many.
struct DeleteExpiredDoneJobs {
    updated_before: i64,
    limit: i64,
}

/// The batch, oldest first, through the partial index on done jobs' `updated_at` (migration 5):
/// a sweep reads only what it deletes, however many done jobs are kept. Jobs an invitation in
/// `sending` names (few at any time) are read once per statement.
const DELETE_POSTGRES: &str = "DELETE FROM jobs WHERE id IN (\
       SELECT id FROM jobs WHERE status = 'done' AND updated_at < $1 \
       AND id NOT IN (SELECT job_id FROM invitations WHERE state = 'sending') \
       ORDER BY updated_at LIMIT $2)";

/// As on PostgreSQL, naming the index: without statistics SQLite's planner would take the
/// `(status, id)` index and sort every done job to find the oldest.
const DELETE_SQLITE: &str = "DELETE FROM jobs WHERE id IN (\
       SELECT id FROM jobs INDEXED BY jobs_done_updated WHERE status = 'done' AND updated_at < $1 \
       AND id NOT IN (SELECT job_id FROM invitations WHERE state = 'sending') \
       ORDER BY updated_at LIMIT $2)";

impl Write for DeleteExpiredDoneJobs {
    type Output = u64;
    // Losing a deletion to a power failure only means deleting it again.
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<u64> {
        let sql = match conn {
            Conn::Sqlite(_) => DELETE_SQLITE,
            Conn::Postgres(_) => DELETE_POSTGRES,
        };
        conn.execute(Sql::new(sql).bind(self.updated_before).bind(self.limit))
            .await
    }
}

impl Store {
    /// Deletes one batch of at most `batch` `done` jobs last updated before `updated_before_ms`
    /// (ms since the epoch), oldest first; returns how many. Jobs in any other state, jobs an
    /// invitation in `sending` names, and the invitations ledger are kept.
    pub async fn delete_expired_done_jobs(
        &self,
        updated_before_ms: i64,
        batch: usize,
    ) -> StoreResult<u64> {
        self.write(DeleteExpiredDoneJobs {
            updated_before: updated_before_ms,
            limit: i64::try_from(batch).unwrap_or(i64::MAX),
        })
        .await
    }
}
