//! The invitations ledger: at most one row per email, so at most one invitation per person,
//! whatever the number of jobs, workers or replicas racing for them.
//!
//! A job reserves the email (`sending`) before it calls DocSpace and confirms it (`sent`) in the
//! same transaction that finishes the job. A job that died between the two finds its own
//! reservation when it runs again and checks DocSpace instead of inviting twice.
//!
//! Both happen only while the job's lease is held by the worker asking, checked in the same
//! statement or transaction (on PostgreSQL with a lock on the job's row, which orders it against
//! a claim): a worker
//! whose lease ran out, and whose job may be running elsewhere already, reserves nothing and so
//! never calls DocSpace's invite, and leaves the confirmation to the job's new holder.

use sqlx::Connection as _;

use super::{BackendKind, Store, StoreResult, now_ms, on_db, write_db};

/// Reserves an email for a job whose lease the asker holds (the writer runs one statement at a
/// time on SQLite, so the check and the insert cannot be split).
macro_rules! reserve_sql {
    ($lock:literal) => {
        concat!(
            "INSERT INTO invitations (email, state, job_id, task_gid, invite_type, created_at) \
             SELECT $1, 'sending', $2, $3, $4, $5 \
             WHERE EXISTS (SELECT 1 FROM jobs WHERE id = $2 AND lease_owner = $6 \
                AND status = 'running' AND lease_until >= $5",
            $lock,
            ") ON CONFLICT (email) DO UPDATE SET email = excluded.email \
             RETURNING state, job_id"
        )
    };
}
const RESERVE_SQLITE: &str = reserve_sql!("");
/// The job's row stays locked until the reservation commits: a claim (`SKIP LOCKED`) passes it
/// by, and a claim that came first is seen (the check runs again on the row it committed).
const RESERVE_POSTGRES: &str = reserve_sql!(" FOR UPDATE");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationState {
    /// Reserved by a job that has called, or is about to call, DocSpace.
    Sending,
    /// DocSpace accepted the invitation.
    Sent,
}

/// What the ledger says about an email, as seen by one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// This job holds the email: it may invite (and may already have, if `state` is `Sending`
    /// from an earlier attempt, or `Sent`).
    Mine(InvitationState),
    /// Another job invited this email, or is inviting it.
    Theirs { job_id: i64, state: InvitationState },
}

impl Store {
    /// The ledger row for `email`, as seen by job `job_id`; `None` when nobody holds it.
    pub async fn invitation(&self, email: &str, job_id: i64) -> StoreResult<Option<Reservation>> {
        let row: Option<(String, i64)> = on_db!(self, read, |pool| {
            sqlx::query_as("SELECT state, job_id FROM invitations WHERE email = $1")
                .bind(email)
                .fetch_optional(pool)
                .await
        })?;
        row.map(|(state, holder)| to_reservation(&state, holder, job_id))
            .transpose()
    }

    /// Reserves `email` for job `job_id` unless another job holds it. `None` when `owner` no
    /// longer holds the job's lease: nothing is reserved, and the job must not call DocSpace.
    pub async fn reserve_invitation(
        &self,
        email: &str,
        job_id: i64,
        owner: &str,
        task_gid: &str,
        invite_type: &str,
    ) -> StoreResult<Option<Reservation>> {
        let email = email.to_owned();
        let owner = owner.to_owned();
        let task_gid = task_gid.to_owned();
        let invite_type = invite_type.to_owned();
        let now = now_ms();
        // One statement: nothing is reserved unless `owner` still holds an unexpired lease on the
        // job, and the no-op update on conflict makes RETURNING give the existing row.
        let sql = match self.kind() {
            BackendKind::Sqlite => RESERVE_SQLITE,
            BackendKind::Postgres => RESERVE_POSTGRES,
        };
        let row: Option<(String, i64)> = write_db!(self, relaxed, |pool| {
            sqlx::query_as(sql)
                .bind(&email)
                .bind(job_id)
                .bind(&task_gid)
                .bind(&invite_type)
                .bind(now)
                .bind(&owner)
                .fetch_optional(pool)
                .await
        })?;
        row.map(|(state, holder)| to_reservation(&state, holder, job_id))
            .transpose()
    }

    /// Records that DocSpace accepted the invitation and finishes the job as `invited`, in one
    /// transaction. Returns false, changing nothing, when `owner` lost the job's lease meanwhile:
    /// the job's new holder finds the reservation, asks DocSpace, and confirms it.
    pub async fn confirm_invitation(
        &self,
        job_id: i64,
        owner: &str,
        email: &str,
    ) -> StoreResult<bool> {
        let owner = owner.to_owned();
        let email = email.to_owned();
        let now = now_ms();
        let finished = write_db!(self, relaxed, |pool| {
            let mut tx = pool.begin().await?;
            let finished = sqlx::query(
                "UPDATE jobs SET status = 'done', outcome = 'invited', email = $1, last_error = NULL, \
                 lease_owner = NULL, lease_until = NULL, updated_at = $2 \
                 WHERE id = $3 AND lease_owner = $4 AND status = 'running'",
            )
            .bind(&email)
            .bind(now)
            .bind(job_id)
            .bind(&owner)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if finished != 1 {
                return Ok(false);
            }
            sqlx::query(
                "UPDATE invitations SET state = 'sent', sent_at = $1 WHERE email = $2 AND job_id = $3",
            )
            .bind(now)
            .bind(&email)
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<bool, sqlx::Error>(true)
        })?;
        Ok(finished)
    }

    /// Emails this service invited, oldest first.
    pub async fn sent_invitations(&self) -> StoreResult<Vec<String>> {
        let emails = on_db!(self, read, |pool| {
            sqlx::query_scalar(
                "SELECT email FROM invitations WHERE state = 'sent' ORDER BY sent_at, email",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(emails)
    }
}

fn to_reservation(state: &str, holder: i64, job_id: i64) -> StoreResult<Reservation> {
    let state = match state {
        "sending" => InvitationState::Sending,
        "sent" => InvitationState::Sent,
        other => {
            return Err(super::StoreError::Corrupt(format!(
                "unknown invitation state {other:?}"
            )));
        }
    };
    Ok(if holder == job_id {
        Reservation::Mine(state)
    } else {
        Reservation::Theirs {
            job_id: holder,
            state,
        }
    })
}
