//! The job queue: one row per relevant event, claimed with a lease so a job never runs twice at
//! once and a job whose process died is taken again once its lease runs out. A task has at most
//! one job that has not started yet: it reads the task's current state when it runs, so further
//! events for that task are duplicates until it is claimed.

use std::time::Duration;

use sqlx::Connection as _;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::{
    Backend, BackendKind, Durability, Store, StoreError, StoreResult, duration_ms, now_ms, on_db,
    write_db,
};

/// A job to create; `dedupe_key` makes creating it twice a no-op, and so does a job for the same
/// task that has not started yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub dedupe_key: String,
    pub task_gid: String,
    pub kind: String,
    /// The project the job is restricted to: its webhook's, when that was registered for one.
    pub project_gid: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnqueueOutcome {
    pub created: u64,
    pub duplicates: u64,
}

/// A job this worker holds the lease on.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClaimedJob {
    pub id: i64,
    pub task_gid: String,
    #[sqlx(rename = "event_kind")]
    pub kind: String,
    pub source: String,
    /// Including this one.
    pub attempts: i64,
    /// Acts only on tasks in this project (or their subtasks); `None`: on any task.
    pub project_gid: Option<String>,
}

/// A job as stored, for operators and tests.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JobRecord {
    pub id: i64,
    pub source: String,
    pub task_gid: String,
    pub event_kind: String,
    pub status: String,
    pub attempts: i64,
    pub run_at: i64,
    pub outcome: Option<String>,
    pub email: Option<String>,
    pub last_error: Option<String>,
    /// The worker holding the job's lease, while it runs.
    pub lease_owner: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl JobRecord {
    pub fn status(&self) -> StoreResult<JobStatus> {
        JobStatus::parse(&self.status)
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

    fn parse(stored: &str) -> StoreResult<JobStatus> {
        stored
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("unknown job status {stored:?}")))
    }
}

/// How a finished job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::Display, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Outcome {
    Invited,
    AlreadyMember,
    AlreadyInvited,
    NoAssignee,
    NoEmail,
    DomainNotAllowed,
    /// The task is not in its webhook's project, nor a subtask of a task in it.
    NotInProject,
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

/// Rows per INSERT on SQLite: 9 parameters each, well under its limit of 32,766.
const INSERT_CHUNK: usize = 1000;

/// Inserts `jobs` in one statement; returns how many were new (neither the same event nor a task
/// with a job that has not started yet).
async fn insert_jobs(
    conn: &mut SqliteConnection,
    source: &str,
    jobs: &[NewJob],
    now: i64,
) -> Result<u64, sqlx::Error> {
    let mut insert = QueryBuilder::<Sqlite>::new(
        "INSERT INTO jobs (dedupe_key, source, task_gid, event_kind, status, run_at, created_at, \
         updated_at, unstarted_task_gid, project_gid) ",
    );
    insert.push_values(jobs, |mut row, job| {
        row.push_bind(job.dedupe_key.clone())
            .push_bind(source.to_owned())
            .push_bind(job.task_gid.clone())
            .push_bind(job.kind.clone())
            .push("'pending'")
            .push_bind(now)
            .push_bind(now)
            .push_bind(now)
            .push_bind(job.task_gid.clone())
            .push_bind(job.project_gid.clone());
    });
    insert.push(" ON CONFLICT DO NOTHING");
    Ok(insert.build().execute(conn).await?.rows_affected())
}

const CLAIM_SQLITE: &str = "UPDATE jobs SET status = 'running', attempts = attempts + 1, \
     lease_owner = $1, lease_until = $2, updated_at = $3, unstarted_task_gid = NULL \
     WHERE id IN (SELECT id FROM jobs \
        WHERE (status = 'pending' AND run_at <= $3) OR (status = 'running' AND lease_until < $3) \
        ORDER BY run_at, id LIMIT $4) \
     RETURNING id, task_gid, event_kind, source, attempts, project_gid";

const CLAIM_POSTGRES: &str = "UPDATE jobs SET status = 'running', attempts = attempts + 1, \
     lease_owner = $1, lease_until = $2, updated_at = $3, unstarted_task_gid = NULL \
     WHERE id IN (SELECT id FROM jobs \
        WHERE (status = 'pending' AND run_at <= $3) OR (status = 'running' AND lease_until < $3) \
        ORDER BY run_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
     RETURNING id, task_gid, event_kind, source, attempts, project_gid";

const JOB_COLUMNS: &str = "id, source, task_gid, event_kind, status, attempts, run_at, outcome, \
     email, last_error, lease_owner, created_at, updated_at";

impl Store {
    /// Records `jobs` from `source` (a webhook name, or a command) in one transaction. Jobs whose
    /// dedupe key exists, or whose task has a job that has not started yet, are counted as
    /// duplicates and not created.
    pub async fn enqueue(&self, source: &str, jobs: &[NewJob]) -> StoreResult<EnqueueOutcome> {
        if jobs.is_empty() {
            return Ok(EnqueueOutcome::default());
        }
        let now = now_ms();
        let count = jobs.len() as u64;
        let created =
            match &self.backend {
                // One statement, one round trip, whatever the number of events. Rows go in task order
                // so that deliveries racing over the same tasks wait for each other, never deadlock.
                Backend::Postgres { pool } => {
                    let column =
                        |f: fn(&NewJob) -> &String| jobs.iter().map(f).cloned().collect::<Vec<_>>();
                    sqlx::query(
                    "INSERT INTO jobs (dedupe_key, source, task_gid, event_kind, status, run_at, \
                     created_at, updated_at, unstarted_task_gid, project_gid) \
                     SELECT key, $2, task, kind, 'pending', $5, $5, $5, task, project \
                     FROM UNNEST($1::text[], $3::text[], $4::text[], $6::text[]) \
                       AS new(key, task, kind, project) \
                     ORDER BY task, key \
                     ON CONFLICT DO NOTHING",
                )
                .bind(column(|j| &j.dedupe_key))
                .bind(source)
                .bind(column(|j| &j.task_gid))
                .bind(column(|j| &j.kind))
                .bind(now)
                .bind(jobs.iter().map(|j| j.project_gid.clone()).collect::<Vec<_>>())
                .execute(pool)
                .await?
                .rows_affected()
                }
                // One multi-row statement per delivery (in chunks, for SQLite's limit on bound
                // parameters), inside the group commit's transaction.
                Backend::Sqlite { writer, .. } => {
                    let source = source.to_owned();
                    let jobs = jobs.to_vec();
                    writer
                        .run(Durability::Synced, move |conn| {
                            Box::pin(async move {
                                if jobs.len() <= INSERT_CHUNK {
                                    return insert_jobs(conn, &source, &jobs, now).await;
                                }
                                let mut tx = conn.begin().await?;
                                let mut created = 0;
                                for chunk in jobs.chunks(INSERT_CHUNK) {
                                    created += insert_jobs(&mut tx, &source, chunk, now).await?;
                                }
                                tx.commit().await?;
                                Ok(created)
                            })
                        })
                        .await?
                }
            };
        Ok(EnqueueOutcome {
            created,
            duplicates: count - created,
        })
    }

    /// Leases up to `limit` due jobs to `owner`: pending ones whose time has come, and running
    /// ones whose lease expired (their worker died).
    pub async fn claim_due_jobs(
        &self,
        owner: &str,
        limit: usize,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimedJob>> {
        let now = now_ms();
        let lease_until = now.saturating_add(duration_ms(lease));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = match self.kind() {
            BackendKind::Sqlite => CLAIM_SQLITE,
            BackendKind::Postgres => CLAIM_POSTGRES,
        };
        let owner = owner.to_owned();
        let jobs = write_db!(self, relaxed, |pool| {
            sqlx::query_as(sql)
                .bind(&owner)
                .bind(lease_until)
                .bind(now)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        Ok(jobs)
    }

    /// Extends the lease of every job `owner` is running.
    pub async fn renew_leases(&self, owner: &str, lease: Duration) -> StoreResult<u64> {
        let owner = owner.to_owned();
        let now = now_ms();
        let renewed = write_db!(self, relaxed, |pool| {
            sqlx::query(
                "UPDATE jobs SET lease_until = $1 WHERE lease_owner = $2 AND status = 'running'",
            )
            .bind(now.saturating_add(duration_ms(lease)))
            .bind(&owner)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(renewed)
    }

    /// Marks a job `owner` holds as done. Returns false when the lease was lost meanwhile.
    pub async fn finish_job(
        &self,
        id: i64,
        owner: &str,
        outcome: Outcome,
        email: Option<&str>,
        note: Option<&str>,
    ) -> StoreResult<bool> {
        let owner = owner.to_owned();
        let email = email.map(str::to_owned);
        let note = note.map(str::to_owned);
        let result = write_db!(self, relaxed, |pool| {
            sqlx::query(
                "UPDATE jobs SET status = 'done', outcome = $1, email = $2, last_error = $3, \
                 lease_owner = NULL, lease_until = NULL, updated_at = $4 \
                 WHERE id = $5 AND lease_owner = $6 AND status = 'running'",
            )
            .bind(outcome.as_str())
            .bind(&email)
            .bind(&note)
            .bind(now_ms())
            .bind(id)
            .bind(&owner)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(result == 1)
    }

    /// Puts a job back in the queue, due at `run_at_ms`, remembering why.
    pub async fn retry_job_later(
        &self,
        id: i64,
        owner: &str,
        run_at_ms: i64,
        error: &str,
        email: Option<&str>,
    ) -> StoreResult<bool> {
        let owner = owner.to_owned();
        let error = error.to_owned();
        let email = email.map(str::to_owned);
        let result = write_db!(self, relaxed, |pool| {
            sqlx::query(
                "UPDATE jobs SET status = 'pending', run_at = $1, last_error = $2, \
                 email = COALESCE($3, email), lease_owner = NULL, lease_until = NULL, updated_at = $4 \
                 WHERE id = $5 AND lease_owner = $6 AND status = 'running'",
            )
            .bind(run_at_ms)
            .bind(&error)
            .bind(&email)
            .bind(now_ms())
            .bind(id)
            .bind(&owner)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(result == 1)
    }

    /// Marks a job `failed` for good and gives up any invitation it had reserved but not
    /// confirmed, so a later job may try that person again.
    pub async fn fail_job(
        &self,
        id: i64,
        owner: &str,
        error: &str,
        email: Option<&str>,
    ) -> StoreResult<bool> {
        let owner = owner.to_owned();
        let error = error.to_owned();
        let email = email.map(str::to_owned);
        let now = now_ms();
        let updated = write_db!(self, relaxed, |pool| {
            let mut tx = pool.begin().await?;
            let updated = sqlx::query(
                "UPDATE jobs SET status = 'failed', outcome = 'failed', last_error = $1, \
                 email = COALESCE($2, email), lease_owner = NULL, lease_until = NULL, updated_at = $3 \
                 WHERE id = $4 AND lease_owner = $5 AND status = 'running'",
            )
            .bind(&error)
            .bind(&email)
            .bind(now)
            .bind(id)
            .bind(&owner)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 1 {
                sqlx::query("DELETE FROM invitations WHERE job_id = $1 AND state = 'sending'")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<bool, sqlx::Error>(updated == 1)
        })?;
        Ok(updated)
    }

    /// Hands back every job `owner` still runs (at shutdown): they are due again at once, and
    /// the interrupted attempt does not count.
    pub async fn release_leases(&self, owner: &str) -> StoreResult<u64> {
        let owner = owner.to_owned();
        let now = now_ms();
        let released = write_db!(self, relaxed, |pool| {
            sqlx::query(
                "UPDATE jobs SET status = 'pending', run_at = $1, lease_owner = NULL, \
                 lease_until = NULL, attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
                 updated_at = $1 WHERE lease_owner = $2 AND status = 'running'",
            )
            .bind(now)
            .bind(&owner)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(released)
    }

    /// Makes jobs a previous process left running due again. Only for a store no other process
    /// works on (SQLite): with shared stores, leases decide.
    pub async fn requeue_abandoned_jobs(&self) -> StoreResult<u64> {
        let now = now_ms();
        let requeued = write_db!(self, relaxed, |pool| {
            sqlx::query(
                "UPDATE jobs SET status = 'pending', run_at = $1, lease_owner = NULL, \
                 lease_until = NULL, updated_at = $1 WHERE status = 'running'",
            )
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(requeued)
    }

    /// Creates a job already leased to `owner` (for a command that runs it at once): no worker
    /// can take it first. A job with the same dedupe key is not created twice.
    pub async fn create_leased_job(
        &self,
        source: &str,
        job: &NewJob,
        owner: &str,
        lease: Duration,
    ) -> StoreResult<Option<ClaimedJob>> {
        let source = source.to_owned();
        let job = job.clone();
        let owner = owner.to_owned();
        let now = now_ms();
        let claimed = write_db!(self, |pool| {
            sqlx::query_as(
                "INSERT INTO jobs (dedupe_key, source, task_gid, event_kind, status, attempts, run_at, \
                 lease_owner, lease_until, created_at, updated_at, project_gid) \
                 VALUES ($1, $2, $3, $4, 'running', 1, $5, $6, $7, $5, $5, $8) \
                 ON CONFLICT (dedupe_key) DO NOTHING \
                 RETURNING id, task_gid, event_kind, source, attempts, project_gid",
            )
            .bind(&job.dedupe_key)
            .bind(&source)
            .bind(&job.task_gid)
            .bind(&job.kind)
            .bind(now)
            .bind(&owner)
            .bind(now.saturating_add(duration_ms(lease)))
            .bind(&job.project_gid)
            .fetch_optional(pool)
            .await
        })?;
        Ok(claimed)
    }

    /// Makes failed job `id` due again with a fresh set of attempts. Returns the job's status when
    /// it was not failed (nothing changes), or `None` when there is no such job.
    pub async fn retry_failed_job(&self, id: i64) -> StoreResult<RetryRequest> {
        let now = now_ms();
        let updated = write_db!(self, |pool| {
            sqlx::query(
                "UPDATE jobs SET status = 'pending', attempts = 0, run_at = $1, outcome = NULL, \
                 updated_at = $1 WHERE id = $2 AND status = 'failed'",
            )
            .bind(now)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        if updated == 1 {
            return Ok(RetryRequest::Retried);
        }
        Ok(match self.job(id).await? {
            Some(job) => RetryRequest::NotFailed(job.status()?),
            None => RetryRequest::NoSuchJob,
        })
    }

    /// Makes every failed job due again; returns how many.
    pub async fn retry_all_failed_jobs(&self) -> StoreResult<u64> {
        let now = now_ms();
        let updated = write_db!(self, |pool| {
            sqlx::query(
                "UPDATE jobs SET status = 'pending', attempts = 0, run_at = $1, outcome = NULL, \
                 updated_at = $1 WHERE status = 'failed'",
            )
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(updated)
    }

    pub async fn job(&self, id: i64) -> StoreResult<Option<JobRecord>> {
        let job = on_db!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await
        })?;
        Ok(job)
    }

    /// The newest jobs first, optionally only those with `status`.
    pub async fn list_jobs(
        &self,
        status: Option<JobStatus>,
        limit: usize,
    ) -> StoreResult<Vec<JobRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let jobs = on_db!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE ($1 IS NULL OR status = $1) \
                 ORDER BY id DESC LIMIT $2"
            )))
            .bind(status.map(JobStatus::as_str))
            .bind(limit)
            .fetch_all(pool)
            .await
        })?;
        Ok(jobs)
    }

    /// When the oldest pending job was created: how far behind the queue is.
    pub async fn oldest_pending_job_created_at(&self) -> StoreResult<Option<i64>> {
        let oldest = on_db!(self, read, |pool| {
            sqlx::query_scalar("SELECT MIN(created_at) FROM jobs WHERE status = 'pending'")
                .fetch_one(pool)
                .await
        })?;
        Ok(oldest)
    }

    pub async fn queue_counts(&self) -> StoreResult<QueueCounts> {
        let rows: Vec<(String, i64)> = on_db!(self, read, |pool| {
            sqlx::query_as("SELECT status, COUNT(*) FROM jobs GROUP BY status")
                .fetch_all(pool)
                .await
        })?;
        let mut counts = QueueCounts::default();
        for (status, count) in rows {
            match JobStatus::parse(&status)? {
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
        assert_eq!(JobStatus::parse("failed").unwrap(), JobStatus::Failed);
        assert!(JobStatus::parse("lost").is_err());
        assert_eq!(Outcome::AlreadyMember.as_str(), "already_member");
        assert_eq!(Outcome::DomainNotAllowed.to_string(), "domain_not_allowed");
        assert_eq!(Outcome::NotInProject.as_str(), "not_in_project");
    }
}
