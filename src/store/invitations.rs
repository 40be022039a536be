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

use super::conn::{Conn, Sql, Write};
use super::{Durability, LeaseOwner, Store, StoreError, StoreResult, now_ms};
use crate::domain::{Email, Gid};

/// Reserves an email for a job whose lease the asker holds: one statement, so the check and the
/// insert cannot be split. The no-op update on conflict makes RETURNING give the existing row.
const RESERVE_SQLITE: &str = "INSERT INTO invitations \
       (email, state, job_id, task_gid, invite_type, created_at) \
     SELECT $1, 'sending', $2, $3, $4, $5 \
     WHERE EXISTS (SELECT 1 FROM jobs WHERE id = $2 AND lease_owner = $6 \
        AND status = 'running' AND lease_until >= $5) \
     ON CONFLICT (email) DO UPDATE SET email = excluded.email \
     RETURNING state, job_id";

/// As on SQLite, and the job's row stays locked until the reservation commits: a claim
/// (`SKIP LOCKED`) passes it by, and a claim that came first is seen (the check runs again on the
/// row it committed).
const RESERVE_POSTGRES: &str = "INSERT INTO invitations \
       (email, state, job_id, task_gid, invite_type, created_at) \
     SELECT $1, 'sending', $2, $3, $4, $5 \
     WHERE EXISTS (SELECT 1 FROM jobs WHERE id = $2 AND lease_owner = $6 \
        AND status = 'running' AND lease_until >= $5 FOR UPDATE) \
     ON CONFLICT (email) DO UPDATE SET email = excluded.email \
     RETURNING state, job_id";

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

/// Reserves `email` for job `job_id` unless another job holds it. Output: the ledger row, or
/// `None` when `owner` no longer holds the job's lease (nothing is reserved).
struct ReserveInvitation {
    email: Email,
    job_id: i64,
    owner: LeaseOwner,
    task_gid: Gid,
    invite_type: &'static str,
}

impl Write for ReserveInvitation {
    type Output = Option<(String, i64)>;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<Option<(String, i64)>> {
        let sql = match conn {
            Conn::Sqlite(_) => RESERVE_SQLITE,
            Conn::Postgres(_) => RESERVE_POSTGRES,
        };
        conn.fetch_optional(
            Sql::new(sql)
                .bind(self.email.as_str())
                .bind(self.job_id)
                .bind(self.task_gid.as_str())
                .bind(self.invite_type)
                .bind(now_ms())
                .bind(self.owner.as_str()),
        )
        .await
    }
}

/// Records that DocSpace accepted the invitation and finishes the job as `invited`, in one
/// transaction. Output: false, changing nothing, when `owner` lost the job's lease meanwhile.
struct ConfirmInvitation {
    job_id: i64,
    owner: LeaseOwner,
    email: Email,
}

impl Write for ConfirmInvitation {
    type Output = bool;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let now = now_ms();
        let mut tx = conn.begin().await?;
        let finished = tx
            .conn()
            .execute(
                Sql::new(
                    "UPDATE jobs SET status = 'done', outcome = 'invited', email = $1, \
                     last_error = NULL, lease_owner = NULL, lease_until = NULL, updated_at = $2 \
                     WHERE id = $3 AND lease_owner = $4 AND status = 'running'",
                )
                .bind(self.email.as_str())
                .bind(now)
                .bind(self.job_id)
                .bind(self.owner.as_str()),
            )
            .await?;
        if finished != 1 {
            return Ok(false);
        }
        tx.conn()
            .execute(
                Sql::new(
                    "UPDATE invitations SET state = 'sent', sent_at = $1 \
                     WHERE email = $2 AND job_id = $3",
                )
                .bind(now)
                .bind(self.email.as_str())
                .bind(self.job_id),
            )
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}

impl Store {
    /// The ledger row for `email`, as seen by job `job_id`; `None` when nobody holds it.
    pub async fn invitation(&self, email: &Email, job_id: i64) -> StoreResult<Option<Reservation>> {
        let row: Option<(String, i64)> = self
            .fetch_optional(
                Sql::new("SELECT state, job_id FROM invitations WHERE email = $1")
                    .bind(email.as_str()),
            )
            .await?;
        row.map(|(state, holder)| to_reservation(&state, holder, job_id))
            .transpose()
    }

    /// Reserves `email` for job `job_id` unless another job holds it. `None` when `owner` no
    /// longer holds the job's lease: nothing is reserved, and the job must not call DocSpace.
    pub async fn reserve_invitation(
        &self,
        email: &Email,
        job_id: i64,
        owner: &LeaseOwner,
        task_gid: &Gid,
        invite_type: &'static str,
    ) -> StoreResult<Option<Reservation>> {
        let row = self
            .write(ReserveInvitation {
                email: email.clone(),
                job_id,
                owner: owner.clone(),
                task_gid: task_gid.clone(),
                invite_type,
            })
            .await?;
        row.map(|(state, holder)| to_reservation(&state, holder, job_id))
            .transpose()
    }

    /// Records that DocSpace accepted the invitation and finishes the job as `invited`, in one
    /// transaction. Returns false, changing nothing, when `owner` lost the job's lease meanwhile:
    /// the job's new holder finds the reservation, asks DocSpace, and confirms it.
    pub async fn confirm_invitation(
        &self,
        job_id: i64,
        owner: &LeaseOwner,
        email: Email,
    ) -> StoreResult<bool> {
        self.write(ConfirmInvitation {
            job_id,
            owner: owner.clone(),
            email,
        })
        .await
    }

    /// Emails this service invited, oldest first.
    pub async fn sent_invitations(&self) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = self
            .fetch_all(Sql::new(
                "SELECT email FROM invitations WHERE state = 'sent' ORDER BY sent_at, email",
            ))
            .await?;
        Ok(rows.into_iter().map(|(email,)| email).collect())
    }
}

fn to_reservation(state: &str, holder: i64, job_id: i64) -> StoreResult<Reservation> {
    let state = match state {
        "sending" => InvitationState::Sending,
        "sent" => InvitationState::Sent,
        other => {
            return Err(StoreError::Corrupt(format!(
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
