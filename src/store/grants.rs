//! The grants ledger: at most one live row per (email, room), so at most one share of a room per
//! person, whatever the number of jobs, workers or replicas racing for it.
//!
//! As with invitations, a job reserves the pair (`sending`) immediately before it asks DocSpace to
//! share the room, and confirms it (`granted`) once DocSpace answered; a person found in the room
//! already is recorded as `had_access` (never ours to take back). Reserving, confirming and
//! recording happen only while the asking worker holds the job's lease, checked in the same
//! transaction (on PostgreSQL with a lock on the job's row). A job that fails for good gives up
//! its unconfirmed reservations; a `sending` row left by a job that finished anyway is taken over
//! by the next job that needs the pair.

use super::conn::{Conn, Sql, Write};
use super::rooms::lease_held;
use super::{Durability, LeaseOwner, Store, StoreError, StoreResult, now_ms};
use crate::domain::{Email, Gid};

/// A ledger row's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum GrantState {
    /// Reserved by a job that has asked, or is about to ask, DocSpace to share the room.
    Sending,
    /// DocSpace shared the room with the person at the job's request.
    Granted,
    /// The person was in the room already: not ours.
    HadAccess,
}

impl GrantState {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

stored_enum!(GrantState, "grant state");

/// What the ledger says about a (person, room), as seen by the job reserving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantReservation {
    /// This job holds the pair (`sending`): it may share (and may have, in an earlier attempt).
    Mine,
    /// Another job holds the pair and may be sharing now.
    Theirs { job_id: i64 },
    /// Settled: granted by job `job_id`, or found in the room already.
    AlreadyGranted { job_id: i64, state: GrantState },
    /// Revoke job `job_id` is taking this access back (and may have asked DocSpace): a new grant
    /// waits until it is settled (issue 13).
    Revoking { job_id: i64 },
}

/// A (person, room) pair a job works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRequest {
    pub email: Email,
    pub room_id: i64,
    pub project_gid: Gid,
    pub docspace_user_id: String,
    /// The FileShare integer sent (`sending`) or seen (`had_access`).
    pub access: i64,
    pub task_gid: Gid,
}

/// A live ledger row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GrantRecord {
    pub email: String,
    pub room_id: i64,
    pub project_gid: String,
    pub docspace_user_id: String,
    pub access: i64,
    #[sqlx(try_from = "String")]
    pub state: GrantState,
    pub job_id: i64,
    pub task_gid: String,
    pub created_at: i64,
    pub granted_at: Option<i64>,
    /// The revoke job taking this access back, while it may be asking DocSpace (issue 13).
    pub revoking_job_id: Option<i64>,
}

/// `SELECT` of a live [`GrantRecord`], followed by the rest of the condition.
macro_rules! select_live_grants {
    ($rest:literal) => {
        concat!(
            "SELECT email, room_id, project_gid, docspace_user_id, access, state, job_id, \
             task_gid, created_at, granted_at, revoking_job_id FROM room_grants \
             WHERE ended_at IS NULL ",
            $rest
        )
    };
}

/// What made a grant, from job `$job`'s row: `'<event kind> from <source>'` (`room_grants.cause`,
/// kept because retention deletes done jobs).
macro_rules! job_cause {
    ($job:literal) => {
        concat!(
            "(SELECT j.event_kind || ' from ' || j.source FROM jobs j WHERE j.id = ",
            $job,
            ")"
        )
    };
}

/// Reserves a (person, room) for a job whose lease the asker holds. Output: `None` when the lease
/// is not held (nothing is reserved).
struct ReserveGrant {
    job_id: i64,
    owner: LeaseOwner,
    grant: GrantRequest,
}

impl ReserveGrant {
    async fn live_row(&self, conn: &mut Conn<'_>) -> sqlx::Result<Option<LiveRow>> {
        conn.fetch_optional(
            Sql::new(
                "SELECT state, job_id, revoking_job_id FROM room_grants \
                 WHERE email = $1 AND room_id = $2 AND ended_at IS NULL",
            )
            .bind(self.grant.email.as_str())
            .bind(self.grant.room_id),
        )
        .await
    }
}

impl Write for ReserveGrant {
    type Output = Option<LiveRow>;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<Option<LiveRow>> {
        let now = now_ms();
        let grant = &self.grant;
        let mut tx = conn.begin().await?;
        if !lease_held(&mut tx.conn(), self.job_id, &self.owner, now).await? {
            return Ok(None);
        }
        let inserted = tx
            .conn()
            .execute(
                Sql::new(concat!(
                    "INSERT INTO room_grants (email, room_id, project_gid, docspace_user_id, \
                     access, state, job_id, task_gid, created_at, cause) \
                     VALUES ($1, $2, $3, $4, $5, 'sending', $6, $7, $8, ",
                    job_cause!("$6"),
                    ") ON CONFLICT (email, room_id) WHERE ended_at IS NULL DO NOTHING",
                ))
                .bind(grant.email.as_str())
                .bind(grant.room_id)
                .bind(grant.project_gid.as_str())
                .bind(grant.docspace_user_id.as_str())
                .bind(grant.access)
                .bind(self.job_id)
                .bind(grant.task_gid.as_str())
                .bind(now),
            )
            .await?;
        if inserted == 0 {
            // A `sending` row whose job is neither waiting nor running will never be confirmed
            // by it: this job takes it over (and reads the room's members before sharing).
            tx.conn()
                .execute(
                    Sql::new(concat!(
                        "UPDATE room_grants SET job_id = $1, task_gid = $2, project_gid = $3, \
                         docspace_user_id = $4, access = $5, created_at = $6, cause = ",
                        job_cause!("$1"),
                        " WHERE email = $7 AND room_id = $8 AND ended_at IS NULL \
                         AND state = 'sending' AND job_id <> $1 \
                         AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = room_grants.job_id \
                            AND jobs.status IN ('pending', 'running'))",
                    ))
                    .bind(self.job_id)
                    .bind(grant.task_gid.as_str())
                    .bind(grant.project_gid.as_str())
                    .bind(grant.docspace_user_id.as_str())
                    .bind(grant.access)
                    .bind(now)
                    .bind(grant.email.as_str())
                    .bind(grant.room_id),
                )
                .await?;
        }
        let row = self.live_row(&mut tx.conn()).await?;
        tx.commit().await?;
        Ok(row)
    }
}

/// Records that DocSpace shared the room: this job's `sending` row becomes `granted`. Output:
/// false, changing nothing, when the lease is not held or the job holds no such row.
struct ConfirmGrant {
    job_id: i64,
    owner: LeaseOwner,
    email: Email,
    room_id: i64,
}

impl Write for ConfirmGrant {
    type Output = bool;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let now = now_ms();
        let mut tx = conn.begin().await?;
        if !lease_held(&mut tx.conn(), self.job_id, &self.owner, now).await? {
            return Ok(false);
        }
        let confirmed =
            confirm_grant(&mut tx.conn(), self.job_id, &self.email, self.room_id, now).await?;
        tx.commit().await?;
        Ok(confirmed)
    }
}

/// `sending → granted` for job `job_id`'s row of (email, room); for use inside a transaction that
/// checked the lease (a job's settlement).
pub(crate) async fn confirm_grant(
    conn: &mut Conn<'_>,
    job_id: i64,
    email: &Email,
    room_id: i64,
    now: i64,
) -> sqlx::Result<bool> {
    let changed = conn
        .execute(
            Sql::new(
                "UPDATE room_grants SET state = 'granted', granted_at = $1 \
                 WHERE job_id = $2 AND email = $3 AND room_id = $4 AND state = 'sending' \
                 AND ended_at IS NULL",
            )
            .bind(now)
            .bind(job_id)
            .bind(email.as_str())
            .bind(room_id),
        )
        .await?;
    Ok(changed == 1)
}

/// Records that the person was in the room already, with the access seen: a new live row, or this
/// job's own `sending` row (the share it reserved was not needed). Another job's row stays as it
/// is. Output: false, changing nothing, when the lease is not held.
struct RecordHadAccess {
    job_id: i64,
    owner: LeaseOwner,
    grant: GrantRequest,
}

impl Write for RecordHadAccess {
    type Output = bool;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let now = now_ms();
        let mut tx = conn.begin().await?;
        if !lease_held(&mut tx.conn(), self.job_id, &self.owner, now).await? {
            return Ok(false);
        }
        insert_had_access(&mut tx.conn(), self.job_id, &self.grant, now).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Records `seen` as `had_access` for job `job_id`: a new live row, or the job's own `sending`
/// row; another job's row stays. For use inside a transaction that checked the lease.
pub(crate) async fn insert_had_access(
    conn: &mut Conn<'_>,
    job_id: i64,
    seen: &GrantRequest,
    now: i64,
) -> sqlx::Result<()> {
    conn.execute(
        Sql::new(concat!(
            "INSERT INTO room_grants (email, room_id, project_gid, docspace_user_id, \
             access, state, job_id, task_gid, created_at, cause) \
             VALUES ($1, $2, $3, $4, $5, 'had_access', $6, $7, $8, ",
            job_cause!("$6"),
            ") ON CONFLICT (email, room_id) WHERE ended_at IS NULL DO UPDATE \
             SET state = 'had_access', access = excluded.access, \
             docspace_user_id = excluded.docspace_user_id, cause = excluded.cause \
             WHERE room_grants.state = 'sending' AND room_grants.job_id = excluded.job_id",
        ))
        .bind(seen.email.as_str())
        .bind(seen.room_id)
        .bind(seen.project_gid.as_str())
        .bind(seen.docspace_user_id.as_str())
        .bind(seen.access)
        .bind(job_id)
        .bind(seen.task_gid.as_str())
        .bind(now),
    )
    .await?;
    Ok(())
}

/// Gives up job `job_id`'s unconfirmed reservations (it failed for good), so a later job may
/// share those rooms; for use inside the transaction that fails the job.
pub(crate) async fn release_unconfirmed_grants(
    conn: &mut Conn<'_>,
    job_id: i64,
) -> sqlx::Result<u64> {
    conn.execute(
        Sql::new("DELETE FROM room_grants WHERE job_id = $1 AND state = 'sending'").bind(job_id),
    )
    .await
}

impl Store {
    /// Reserves (email, room) for job `job_id` unless another job holds it or it is settled.
    /// `None` when `owner` no longer holds the job's lease: nothing is reserved, and the job must
    /// not call DocSpace.
    pub async fn reserve_grant(
        &self,
        job_id: i64,
        owner: &LeaseOwner,
        grant: GrantRequest,
    ) -> StoreResult<Option<GrantReservation>> {
        let row = self
            .write(ReserveGrant {
                job_id,
                owner: owner.clone(),
                grant,
            })
            .await?;
        row.map(|row| to_reservation(row, job_id)).transpose()
    }

    /// Records that DocSpace shared `room_id` with `email` for job `job_id`. False, changing
    /// nothing, when `owner` lost the lease or the job holds no reservation of the pair.
    pub async fn confirm_grant(
        &self,
        job_id: i64,
        owner: &LeaseOwner,
        email: &Email,
        room_id: i64,
    ) -> StoreResult<bool> {
        self.write(ConfirmGrant {
            job_id,
            owner: owner.clone(),
            email: email.clone(),
            room_id,
        })
        .await
    }

    /// Records that the person was in the room already with `grant.access`. False, changing
    /// nothing, when `owner` lost the lease.
    pub async fn record_had_access(
        &self,
        job_id: i64,
        owner: &LeaseOwner,
        grant: GrantRequest,
    ) -> StoreResult<bool> {
        self.write(RecordHadAccess {
            job_id,
            owner: owner.clone(),
            grant,
        })
        .await
    }

    /// The live ledger rows of `email`, by room: what a job knows before any DocSpace call.
    pub async fn live_grants_of(&self, email: &Email) -> StoreResult<Vec<GrantRecord>> {
        self.fetch_all(
            Sql::new(select_live_grants!("AND email = $1 ORDER BY room_id")).bind(email.as_str()),
        )
        .await
    }

    /// Every live ledger row, by room then email (`rooms list`).
    pub async fn list_grants(&self) -> StoreResult<Vec<GrantRecord>> {
        self.fetch_all(Sql::new(select_live_grants!("ORDER BY room_id, email")))
            .await
    }

    /// How many people this service granted each room to (live `granted` rows), by room.
    pub async fn granted_counts(&self) -> StoreResult<Vec<(i64, i64)>> {
        self.fetch_all(Sql::new(
            "SELECT room_id, COUNT(*) FROM room_grants \
             WHERE state = 'granted' AND ended_at IS NULL GROUP BY room_id ORDER BY room_id",
        ))
        .await
    }
}

/// A live row as a reservation reads it: state, holder, and the revoke job taking it back.
type LiveRow = (String, i64, Option<i64>);

fn to_reservation(
    (state, holder, revoking): LiveRow,
    job_id: i64,
) -> StoreResult<GrantReservation> {
    let state = GrantState::try_from(state)?;
    if let Some(revoking) = revoking {
        return Ok(GrantReservation::Revoking { job_id: revoking });
    }
    Ok(match state {
        GrantState::Sending if holder == job_id => GrantReservation::Mine,
        GrantState::Sending => GrantReservation::Theirs { job_id: holder },
        state => GrantReservation::AlreadyGranted {
            job_id: holder,
            state,
        },
    })
}
