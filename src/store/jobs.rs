//! The job queue: one row per relevant event, claimed with a lease so a job never runs twice at
//! once and a job whose process died is taken again once its lease runs out. A task has at most
//! one job that has not started yet: it reads the task's current state when it runs, so further
//! events for that task are duplicates until it is claimed.
//!
//! Each write is a struct below (`EnqueueJobs`, `ClaimDueJobs`, `SettleJob`,
//! `RetryFailedJobs`, ...) holding what it writes, next to its SQL.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{QueryBuilder, Sqlite};

use super::conn::{Conn, Sql, Write};
use super::grants::{GrantRequest, confirm_grant, insert_had_access, release_unconfirmed_grants};
use super::revocations::{apply_need_changes, release_failed_revocations, settle_revocation};
use super::rooms::upsert_project_sql;
use super::tasks::{TaskRead, mark_task_deleted_sql, refresh_task_sql, task_state};
use super::{Durability, Store, StoreError, StoreResult, duration_ms, now_ms};
use crate::access::need::TaskState;
use crate::domain::{Email, Gid, JobKind, JobSource};

/// A job to create; `dedupe_key` makes creating it twice a no-op, and so does a job for the same
/// task that has not started yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub dedupe_key: String,
    pub task_gid: Gid,
    pub kind: JobKind,
    /// The project the job is restricted to: its webhook's, when that was registered for one.
    pub project_gid: Option<Gid>,
    /// The assignee the event, backfill or pass named; with the task, what a reconcile pass
    /// checks before queueing the same assignment again.
    pub assignee_gid: Option<Gid>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnqueueOutcome {
    pub created: u64,
    pub duplicates: u64,
}

/// Who holds a job's lease: one worker (or command) process. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseOwner(Arc<str>);

impl LeaseOwner {
    pub fn new(id: impl Into<Arc<str>>) -> LeaseOwner {
        LeaseOwner(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LeaseOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A job this worker holds the lease on.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClaimedJob {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub task_gid: Gid,
    #[sqlx(rename = "event_kind", try_from = "String")]
    pub kind: JobKind,
    #[sqlx(try_from = "String")]
    pub source: JobSource,
    /// Including this one.
    pub attempts: i64,
    /// Acts only on tasks in this project (or their subtasks); `None`: on any task.
    #[sqlx(try_from = "OptionalGid")]
    pub project_gid: Option<Gid>,
}

/// A job as stored, for operators and tests.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JobRecord {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub source: JobSource,
    #[sqlx(try_from = "String")]
    pub task_gid: Gid,
    #[sqlx(try_from = "String")]
    pub event_kind: JobKind,
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    pub attempts: i64,
    pub run_at: i64,
    pub outcome: Option<String>,
    pub email: Option<String>,
    pub last_error: Option<String>,
    /// The worker holding the job's lease, while it runs.
    pub lease_owner: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// What the job did per room, as JSON (`[{"room":45,"result":"granted",…}]`); `None` before
    /// a settlement recorded any.
    pub room_results: Option<String>,
}

/// A nullable gid column, decoded as `Option<Gid>` (sqlx's `try_from` needs a named type).
#[derive(sqlx::Type)]
#[sqlx(transparent)]
pub(crate) struct OptionalGid(Option<String>);

impl TryFrom<OptionalGid> for Option<Gid> {
    type Error = crate::domain::ParseError;
    fn try_from(value: OptionalGid) -> Result<Option<Gid>, Self::Error> {
        value.0.map(Gid::try_from).transpose()
    }
}

/// Where a job is: waiting (`pending`), leased to a worker (`running`), or finished.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::Display, strum::IntoStaticStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum JobStatus {
    Pending,
    Running,
    Done,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

stored_enum!(JobStatus, "job status");

/// How a finished job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::Display, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Outcome {
    Invited,
    /// This job shared a room with someone DocSpace knew already (or another job invited).
    Granted,
    AlreadyMember,
    AlreadyInvited,
    NoAssignee,
    NoEmail,
    DomainNotAllowed,
    /// The task is not in its webhook's project, nor a subtask of a task in it.
    NotInProject,
    /// A new project (`project_added`) got its own webhook here.
    Watched,
    /// A new project had a webhook here already: nothing was registered.
    AlreadyWatched,
    /// A new project Asana no longer knows (deleted since, or hidden from the token).
    ProjectGone,
    /// Asana answered 404 for the job's own task (deleted, or hidden from the token).
    TaskGone,
    /// A revoke job removed the person's room access (issue 13).
    Revoked,
    /// A revoke job kept the access: changed by hand, not granted by the bridge, or the person
    /// had left the room already (the revocation's state says which).
    Kept,
    /// The person needs the room again (a new open task): nothing was removed.
    NeededAgain,
    /// The revocation was settled already, its grant ended, or its room is no longer the project's.
    NothingToRevoke,
    /// `access.revoke` was turned off before the revocation was due: nothing was removed.
    RevokeOff,
    /// The project's room is gone from DocSpace: the grant ended with it.
    RoomGone,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What `retry_failed_job` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryRequest {
    Retried,
    NotFailed(JobStatus),
    NoSuchJob,
}

/// Jobs per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub pending: i64,
    pub running: i64,
    pub done: i64,
    pub failed: i64,
}

/// Records jobs from one source in one transaction. Jobs whose dedupe key exists, or whose task
/// has a job that has not started yet, are not created. Output: how many were.
struct EnqueueJobs {
    source: JobSource,
    jobs: Vec<NewJob>,
    now: i64,
}

/// Rows per INSERT on SQLite: 11 parameters each, well under its limit of 32,766.
const INSERT_CHUNK: usize = 1000;

impl Write for EnqueueJobs {
    type Output = u64;
    const DURABILITY: Durability = Durability::Synced;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<u64> {
        let source = self.source.to_stored();
        match conn {
            // One statement, one round trip, whatever the number of events. Rows go in task order
            // so that deliveries racing over the same tasks wait for each other, never deadlock.
            Conn::Postgres(conn) => {
                let column =
                    |f: fn(&NewJob) -> &str| self.jobs.iter().map(f).collect::<Vec<&str>>();
                let projects: Vec<Option<&str>> = self
                    .jobs
                    .iter()
                    .map(|j| j.project_gid.as_ref().map(Gid::as_str))
                    .collect();
                Ok(sqlx::query(
                    "INSERT INTO jobs (dedupe_key, source, task_gid, event_kind, status, run_at, \
                     created_at, updated_at, unstarted_task_gid, project_gid, assignee_gid) \
                     SELECT key, $2, task, kind, 'pending', $5, $5, $5, task, project, assignee \
                     FROM UNNEST($1::text[], $3::text[], $4::text[], $6::text[], $7::text[]) \
                       AS new(key, task, kind, project, assignee) \
                     ORDER BY task, key \
                     ON CONFLICT DO NOTHING",
                )
                .bind(column(|j| &j.dedupe_key))
                .bind(&source)
                .bind(column(|j| j.task_gid.as_str()))
                .bind(column(|j| j.kind.as_str()))
                .bind(self.now)
                .bind(projects)
                .bind(
                    self.jobs
                        .iter()
                        .map(|j| j.assignee_gid.as_ref().map(Gid::as_str))
                        .collect::<Vec<Option<&str>>>(),
                )
                .execute(&mut **conn)
                .await?
                .rows_affected())
            }
            // One multi-row statement per chunk (SQLite limits bound parameters), inside the
            // group commit's transaction.
            Conn::Sqlite(conn) => {
                if self.jobs.len() <= INSERT_CHUNK {
                    return insert_jobs(conn, &source, &self.jobs, self.now).await;
                }
                let mut tx = sqlx::Connection::begin(&mut **conn).await?;
                let mut created = 0;
                for chunk in self.jobs.chunks(INSERT_CHUNK) {
                    created += insert_jobs(&mut tx, &source, chunk, self.now).await?;
                }
                tx.commit().await?;
                Ok(created)
            }
        }
    }
}

async fn insert_jobs(
    conn: &mut sqlx::SqliteConnection,
    source: &str,
    jobs: &[NewJob],
    now: i64,
) -> sqlx::Result<u64> {
    let mut insert = QueryBuilder::<Sqlite>::new(
        "INSERT INTO jobs (dedupe_key, source, task_gid, event_kind, status, run_at, created_at, \
         updated_at, unstarted_task_gid, project_gid, assignee_gid) ",
    );
    insert.push_values(jobs, |mut row, job| {
        row.push_bind(job.dedupe_key.as_str())
            .push_bind(source)
            .push_bind(job.task_gid.as_str())
            .push_bind(job.kind.as_str())
            .push("'pending'")
            .push_bind(now)
            .push_bind(now)
            .push_bind(now)
            .push_bind(job.task_gid.as_str())
            .push_bind(job.project_gid.as_ref().map(Gid::as_str))
            .push_bind(job.assignee_gid.as_ref().map(Gid::as_str));
    });
    insert.push(" ON CONFLICT DO NOTHING");
    Ok(insert.build().execute(conn).await?.rows_affected())
}

/// Leases up to `limit` due jobs to `owner`: pending ones whose time has come, and running ones
/// whose lease expired (their worker died).
struct ClaimDueJobs {
    owner: LeaseOwner,
    lease_until: i64,
    now: i64,
    limit: i64,
}

const CLAIM_SQLITE: &str = "UPDATE jobs SET status = 'running', attempts = attempts + 1, \
     lease_owner = $1, lease_until = $2, updated_at = $3, unstarted_task_gid = NULL \
     WHERE id IN (SELECT id FROM jobs \
        WHERE (status = 'pending' AND run_at <= $3) OR (status = 'running' AND lease_until < $3) \
        ORDER BY run_at, id LIMIT $4) \
     RETURNING id, task_gid, event_kind, source, attempts, project_gid";

/// As on SQLite, but passing by rows another replica is claiming.
const CLAIM_POSTGRES: &str = "UPDATE jobs SET status = 'running', attempts = attempts + 1, \
     lease_owner = $1, lease_until = $2, updated_at = $3, unstarted_task_gid = NULL \
     WHERE id IN (SELECT id FROM jobs \
        WHERE (status = 'pending' AND run_at <= $3) OR (status = 'running' AND lease_until < $3) \
        ORDER BY run_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
     RETURNING id, task_gid, event_kind, source, attempts, project_gid";

impl Write for ClaimDueJobs {
    type Output = Vec<ClaimedJob>;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<Vec<ClaimedJob>> {
        let sql = match conn {
            Conn::Sqlite(_) => CLAIM_SQLITE,
            Conn::Postgres(_) => CLAIM_POSTGRES,
        };
        conn.fetch_all(
            Sql::new(sql)
                .bind(self.owner.as_str())
                .bind(self.lease_until)
                .bind(self.now)
                .bind(self.limit),
        )
        .await
    }
}

/// Extends the lease of every job `owner` is running.
struct RenewLeases {
    owner: LeaseOwner,
    lease_until: i64,
}

impl Write for RenewLeases {
    type Output = u64;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<u64> {
        conn.execute(
            Sql::new(
                "UPDATE jobs SET lease_until = $1 WHERE lease_owner = $2 AND status = 'running'",
            )
            .bind(self.lease_until)
            .bind(self.owner.as_str()),
        )
        .await
    }
}

/// How an attempt at a leased job ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Finished for good: `done` with its outcome and an optional note.
    Done {
        outcome: Outcome,
        note: Option<String>,
    },
    /// Back in the queue, due at `run_at`, with the error that sent it back.
    RetryAt { run_at: i64, error: String },
    /// `failed` for good; any invitation or room share it reserved but did not confirm is given
    /// up, so a later job may try that person again.
    Failed { error: String },
}

/// What an attempt learnt, recorded in the transaction that settles its job, so all of it stands
/// or none does (none when the lease was lost: the job's next holder reads it all again).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Confirmations {
    /// DocSpace accepted this job's invitation of this email: its reservation becomes `sent`.
    pub invitation_sent: Option<Email>,
    /// Rooms DocSpace shared at this job's request: its `sending` rows of (email, room) become
    /// `granted`.
    pub grants: Vec<(Email, i64)>,
    /// People found in a room already, with the access seen (`had_access`).
    pub had_access: Vec<GrantRequest>,
    /// The task as this attempt read it, with the projects it counts toward.
    pub task: Option<TaskRead>,
    /// Project names the task read showed.
    pub project_names: Vec<(Gid, String)>,
    /// What the job did per room (JSON), for `jobs list`.
    pub room_results: Option<String>,
    /// `Some(grace)` when `access.revoke` is on: the task read above (or `task_gone`) may end or
    /// renew people's need of project rooms, and the settlement schedules or cancels their
    /// revocations in the same transaction (issue 13).
    pub lifecycle: Option<Duration>,
    /// Asana answered 404 for the job's task: its row is marked deleted (it counts toward nobody's
    /// need).
    pub task_gone: Option<Gid>,
    /// How a revoke job ended its revocation (id, end).
    pub revocation: Option<(i64, super::RevocationEnd)>,
}

impl Confirmations {
    fn is_empty(&self) -> bool {
        *self == Confirmations::default()
    }
}

/// Settles a job `owner` holds. Output: false when the lease was lost meanwhile (then nothing
/// changes). A retry or a failure keeps the email an earlier attempt recorded when this one
/// read none; `done` records exactly what this attempt found.
struct SettleJob {
    id: i64,
    owner: LeaseOwner,
    email: Option<Email>,
    settlement: Settlement,
    confirmations: Confirmations,
}

impl SettleJob {
    async fn update(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let (status, outcome, run_at, message) = match &self.settlement {
            Settlement::Done { outcome, note } => (
                JobStatus::Done,
                Some(outcome.as_str()),
                None,
                note.as_deref(),
            ),
            Settlement::RetryAt { run_at, error } => (
                JobStatus::Pending,
                None,
                Some(*run_at),
                Some(error.as_str()),
            ),
            Settlement::Failed { error } => (
                JobStatus::Failed,
                Some(Outcome::Failed.as_str()),
                None,
                Some(error.as_str()),
            ),
        };
        let updated = conn
            .execute(
                Sql::new(
                    "UPDATE jobs SET status = $1, outcome = $2, run_at = COALESCE($3, run_at), \
                     last_error = $4, email = CASE WHEN $5 = 1 THEN $6 ELSE COALESCE($6, email) END, \
                     lease_owner = NULL, lease_until = NULL, updated_at = $7, \
                     room_results = COALESCE($10, room_results) \
                     WHERE id = $8 AND lease_owner = $9 AND status = 'running'",
                )
                .bind(status.as_str())
                .bind(outcome)
                .bind(run_at)
                .bind(message)
                .bind(i64::from(status == JobStatus::Done))
                .bind(self.email.as_ref().map(Email::as_str))
                .bind(now_ms())
                .bind(self.id)
                .bind(self.owner.as_str())
                .bind(self.confirmations.room_results.as_deref()),
            )
            .await?;
        Ok(updated == 1)
    }
}

impl Write for SettleJob {
    type Output = bool;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let failed = matches!(self.settlement, Settlement::Failed { .. });
        if !failed && self.confirmations.is_empty() {
            return self.update(conn).await;
        }
        let mut tx = conn.begin().await?;
        if !self.update(&mut tx.conn()).await? {
            return Ok(false);
        }
        let now = now_ms();
        let found = &self.confirmations;
        if let Some(email) = &found.invitation_sent {
            tx.conn()
                .execute(
                    Sql::new(
                        "UPDATE invitations SET state = 'sent', sent_at = $1 \
                         WHERE email = $2 AND job_id = $3",
                    )
                    .bind(now)
                    .bind(email.as_str())
                    .bind(self.id),
                )
                .await?;
        }
        for (email, room_id) in &found.grants {
            confirm_grant(&mut tx.conn(), self.id, email, *room_id, now).await?;
        }
        for seen in &found.had_access {
            insert_had_access(&mut tx.conn(), self.id, seen, now).await?;
        }
        // The task as stored before this read: whose need the read may end.
        let lifecycle_task = found.lifecycle.and(
            found
                .task
                .as_ref()
                .map(|t| &t.gid)
                .or(found.task_gone.as_ref()),
        );
        let before = match lifecycle_task {
            Some(gid) => task_state(&mut tx.conn(), gid).await?,
            None => None,
        };
        // What the task read showed, in one round trip.
        let mut seen: Vec<Sql<'_>> = found
            .project_names
            .iter()
            .map(|(gid, name)| upsert_project_sql(gid, Some(name), now))
            .collect();
        if let Some(task) = &found.task {
            seen.extend(refresh_task_sql(task, Some(self.id), now));
        }
        if let Some(gone) = &found.task_gone {
            seen.push(mark_task_deleted_sql(gone, now));
        }
        tx.conn().execute_all(seen).await?;
        if let (Some(grace), Some(gid)) = (found.lifecycle, lifecycle_task) {
            let after = match (&found.task, &before) {
                (Some(task), _) => Some(task.state()),
                (None, Some(before)) => Some(TaskState {
                    deleted: true,
                    ..before.clone()
                }),
                (None, None) => None,
            };
            if let Some(after) = after {
                apply_need_changes(
                    &mut tx.conn(),
                    self.id,
                    gid,
                    before.as_ref(),
                    &after,
                    grace,
                    now,
                )
                .await?;
            }
        }
        if let Some((revocation, end)) = &found.revocation {
            settle_revocation(&mut tx.conn(), self.id, *revocation, end, now).await?;
        }
        if let Settlement::Failed { error } = &self.settlement {
            release_failed_revocations(&mut tx.conn(), self.id, error, now).await?;
        }
        if failed {
            tx.conn()
                .execute(
                    Sql::new("DELETE FROM invitations WHERE job_id = $1 AND state = 'sending'")
                        .bind(self.id),
                )
                .await?;
            release_unconfirmed_grants(&mut tx.conn(), self.id).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// Hands back every job `owner` still runs (at shutdown): they are due again at once, and the
/// interrupted attempt does not count.
struct ReleaseLeases {
    owner: LeaseOwner,
}

impl Write for ReleaseLeases {
    type Output = u64;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<u64> {
        conn.execute(
            Sql::new(
                "UPDATE jobs SET status = 'pending', run_at = $1, lease_owner = NULL, \
                 lease_until = NULL, \
                 attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
                 updated_at = $1 WHERE lease_owner = $2 AND status = 'running'",
            )
            .bind(now_ms())
            .bind(self.owner.as_str()),
        )
        .await
    }
}

/// Makes every job a previous process left running due again.
struct RequeueAbandonedJobs;

impl Write for RequeueAbandonedJobs {
    type Output = u64;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<u64> {
        conn.execute(
            Sql::new(
                "UPDATE jobs SET status = 'pending', run_at = $1, lease_owner = NULL, \
                 lease_until = NULL, updated_at = $1 WHERE status = 'running'",
            )
            .bind(now_ms()),
        )
        .await
    }
}

/// Creates a job already leased to `owner`; nothing when its dedupe key exists.
struct CreateLeasedJob {
    source: JobSource,
    job: NewJob,
    owner: LeaseOwner,
    lease_until: i64,
}

impl Write for CreateLeasedJob {
    type Output = Option<ClaimedJob>;
    const DURABILITY: Durability = Durability::Synced;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<Option<ClaimedJob>> {
        let source = self.source.to_stored();
        conn.fetch_optional(
            Sql::new(
                "INSERT INTO jobs (dedupe_key, source, task_gid, event_kind, status, attempts, \
                 run_at, lease_owner, lease_until, created_at, updated_at, project_gid) \
                 VALUES ($1, $2, $3, $4, 'running', 1, $5, $6, $7, $5, $5, $8) \
                 ON CONFLICT (dedupe_key) DO NOTHING \
                 RETURNING id, task_gid, event_kind, source, attempts, project_gid",
            )
            .bind(self.job.dedupe_key.as_str())
            .bind(source.as_str())
            .bind(self.job.task_gid.as_str())
            .bind(self.job.kind.as_str())
            .bind(now_ms())
            .bind(self.owner.as_str())
            .bind(self.lease_until)
            .bind(self.job.project_gid.as_ref().map(Gid::as_str)),
        )
        .await
    }
}

/// Makes failed jobs due again with a fresh set of attempts: job `id`, or every failed one.
struct RetryFailedJobs {
    id: Option<i64>,
}

impl Write for RetryFailedJobs {
    type Output = u64;
    const DURABILITY: Durability = Durability::Synced;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<u64> {
        conn.execute(
            Sql::new(
                "UPDATE jobs SET status = 'pending', attempts = 0, run_at = $1, outcome = NULL, \
                 updated_at = $1 WHERE status = 'failed' AND ($2 IS NULL OR id = $2)",
            )
            .bind(now_ms())
            .bind(self.id),
        )
        .await
    }
}

/// `SELECT` of a [`JobRecord`], followed by the rest of the statement.
macro_rules! select_jobs {
    ($rest:literal) => {
        concat!(
            "SELECT id, source, task_gid, event_kind, status, attempts, run_at, outcome, email, \
             last_error, lease_owner, created_at, updated_at, room_results FROM jobs ",
            $rest
        )
    };
}

impl Store {
    /// Records `jobs` from `source` in one transaction (synced: a delivery is acknowledged only
    /// after this). Jobs whose dedupe key exists, or whose task has a job that has not started
    /// yet, are counted as duplicates and not created.
    pub async fn enqueue(
        &self,
        source: JobSource,
        jobs: Vec<NewJob>,
    ) -> StoreResult<EnqueueOutcome> {
        if jobs.is_empty() {
            return Ok(EnqueueOutcome::default());
        }
        let count = jobs.len() as u64;
        let created = self
            .write(EnqueueJobs {
                source,
                jobs,
                now: now_ms(),
            })
            .await?;
        Ok(EnqueueOutcome {
            created,
            duplicates: count - created,
        })
    }

    /// Leases up to `limit` due jobs to `owner`.
    pub async fn claim_due_jobs(
        &self,
        owner: &LeaseOwner,
        limit: usize,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimedJob>> {
        let now = now_ms();
        self.write(ClaimDueJobs {
            owner: owner.clone(),
            lease_until: now.saturating_add(duration_ms(lease)),
            now,
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
        })
        .await
    }

    /// Extends the lease of every job `owner` is running; returns how many.
    pub async fn renew_leases(&self, owner: &LeaseOwner, lease: Duration) -> StoreResult<u64> {
        self.write(RenewLeases {
            owner: owner.clone(),
            lease_until: now_ms().saturating_add(duration_ms(lease)),
        })
        .await
    }

    /// Marks a job `owner` holds as done. Returns false when the lease was lost meanwhile.
    pub async fn finish_job(
        &self,
        id: i64,
        owner: &LeaseOwner,
        outcome: Outcome,
        email: Option<Email>,
        note: Option<String>,
    ) -> StoreResult<bool> {
        self.write(SettleJob {
            id,
            owner: owner.clone(),
            email,
            settlement: Settlement::Done { outcome, note },
            confirmations: Confirmations::default(),
        })
        .await
    }

    /// Settles a job `owner` holds and records what its attempt learnt, in one transaction.
    /// Returns false, recording nothing, when the lease was lost meanwhile.
    pub async fn settle_job(
        &self,
        id: i64,
        owner: &LeaseOwner,
        email: Option<Email>,
        settlement: Settlement,
        confirmations: Confirmations,
    ) -> StoreResult<bool> {
        self.write(SettleJob {
            id,
            owner: owner.clone(),
            email,
            settlement,
            confirmations,
        })
        .await
    }

    /// Puts a job back in the queue, due at `run_at_ms`, remembering why. Returns false when the
    /// lease was lost meanwhile.
    pub async fn retry_job_later(
        &self,
        id: i64,
        owner: &LeaseOwner,
        run_at_ms: i64,
        error: String,
        email: Option<Email>,
    ) -> StoreResult<bool> {
        self.write(SettleJob {
            id,
            owner: owner.clone(),
            email,
            settlement: Settlement::RetryAt {
                run_at: run_at_ms,
                error,
            },
            confirmations: Confirmations::default(),
        })
        .await
    }

    /// Marks a job `failed` for good (see [`Settlement::Failed`]). Returns false when the lease was lost.
    pub async fn fail_job(
        &self,
        id: i64,
        owner: &LeaseOwner,
        error: String,
        email: Option<Email>,
    ) -> StoreResult<bool> {
        self.write(SettleJob {
            id,
            owner: owner.clone(),
            email,
            settlement: Settlement::Failed { error },
            confirmations: Confirmations::default(),
        })
        .await
    }

    /// Hands back every job `owner` still runs (at shutdown); returns how many.
    pub async fn release_leases(&self, owner: &LeaseOwner) -> StoreResult<u64> {
        self.write(ReleaseLeases {
            owner: owner.clone(),
        })
        .await
    }

    /// Makes jobs a previous process left running due again. Only for a store no other process
    /// works on (SQLite): with shared stores, leases decide.
    pub(super) async fn requeue_abandoned_jobs(&self) -> StoreResult<u64> {
        self.write(RequeueAbandonedJobs).await
    }

    /// Creates a job already leased to `owner` (for a command that runs it at once): no worker
    /// can take it first. A job with the same dedupe key is not created twice.
    pub async fn create_leased_job(
        &self,
        source: JobSource,
        job: NewJob,
        owner: &LeaseOwner,
        lease: Duration,
    ) -> StoreResult<Option<ClaimedJob>> {
        self.write(CreateLeasedJob {
            source,
            job,
            owner: owner.clone(),
            lease_until: now_ms().saturating_add(duration_ms(lease)),
        })
        .await
    }

    /// Makes failed job `id` due again with a fresh set of attempts. Returns the job's status when
    /// it was not failed (nothing changes), or `NoSuchJob`.
    pub async fn retry_failed_job(&self, id: i64) -> StoreResult<RetryRequest> {
        if self.write(RetryFailedJobs { id: Some(id) }).await? == 1 {
            return Ok(RetryRequest::Retried);
        }
        Ok(match self.job(id).await? {
            Some(job) => RetryRequest::NotFailed(job.status),
            None => RetryRequest::NoSuchJob,
        })
    }

    /// Makes every failed job due again; returns how many.
    pub async fn retry_all_failed_jobs(&self) -> StoreResult<u64> {
        self.write(RetryFailedJobs { id: None }).await
    }

    pub async fn job(&self, id: i64) -> StoreResult<Option<JobRecord>> {
        self.fetch_optional(Sql::new(select_jobs!("WHERE id = $1")).bind(id))
            .await
    }

    /// The newest jobs first, optionally only those with `status`.
    pub async fn list_jobs(
        &self,
        status: Option<JobStatus>,
        limit: usize,
    ) -> StoreResult<Vec<JobRecord>> {
        self.fetch_all(
            Sql::new(select_jobs!(
                "WHERE ($1 IS NULL OR status = $1) ORDER BY id DESC LIMIT $2"
            ))
            .bind(status.map(JobStatus::as_str))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX)),
        )
        .await
    }

    /// When the oldest pending job was created: how far behind the queue is.
    pub async fn oldest_pending_job_created_at(&self) -> StoreResult<Option<i64>> {
        let (oldest,): (Option<i64>,) = self
            .fetch_one(Sql::new(
                "SELECT MIN(created_at) FROM jobs WHERE status = 'pending'",
            ))
            .await?;
        Ok(oldest)
    }

    pub async fn queue_counts(&self) -> StoreResult<QueueCounts> {
        let rows: Vec<(String, i64)> = self
            .fetch_all(Sql::new(
                "SELECT status, COUNT(*) FROM jobs GROUP BY status",
            ))
            .await?;
        let mut counts = QueueCounts::default();
        for (status, count) in rows {
            match JobStatus::try_from(status)? {
                JobStatus::Pending => counts.pending = count,
                JobStatus::Running => counts.running = count,
                JobStatus::Done => counts.done = count,
                JobStatus::Failed => counts.failed = count,
            }
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_stored_and_printed_ones() {
        assert_eq!(JobStatus::Pending.as_str(), "pending");
        assert_eq!(
            JobStatus::try_from("failed".to_string()).unwrap(),
            JobStatus::Failed
        );
        assert!(JobStatus::try_from("lost".to_string()).is_err());
        assert_eq!(Outcome::AlreadyMember.as_str(), "already_member");
        assert_eq!(Outcome::DomainNotAllowed.to_string(), "domain_not_allowed");
        assert_eq!(Outcome::NotInProject.as_str(), "not_in_project");
    }
}
