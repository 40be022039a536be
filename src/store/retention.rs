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

impl Write for DeleteExpiredDoneJobs {
    type Output = u64;
    // Losing a deletion to a power failure only means deleting it again.
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<u64> {
        conn.execute(
            Sql::new(
                "DELETE FROM jobs WHERE id IN (\
                   SELECT id FROM jobs WHERE status = 'done' AND updated_at < $1 \
                   AND NOT EXISTS (SELECT 1 FROM invitations \
                     WHERE invitations.job_id = jobs.id AND invitations.state = 'sending') \
                   ORDER BY updated_at LIMIT $2)",
            )
            .bind(self.updated_before)
            .bind(self.limit),
        )
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
