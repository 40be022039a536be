//! Reconcile passes' state on `projects`: which pass holds a project (a claim with an expiry, so
//! one pass per project runs at a time across replicas and `reconcile run`), where the last
//! complete pass started (the cursor), an earlier start a webhook repair asked for (`since`), and
//! when the next pass is due. And the pass's one write per page: the jobs for assignments no job
//! has handled, deduped inside the insert.
//!
//! A project is watched when a confirmed webhook of type `project` is registered on it; only
//! watched projects are claimed.

use sqlx::{QueryBuilder, Sqlite};

use super::conn::{Conn, Sql, Write};
use super::{Durability, Store, StoreResult, duration_ms, now_ms};
use crate::domain::{Gid, JobKind, JobSource};

/// A task a pass read: its assignee (`None`: unassigned), whether it is completed, and the job's
/// dedupe key. Unassigned and completed tasks are candidates only while access revocation is on
/// (issue 13): they end a need the stored task row still shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileCandidate {
    pub task_gid: Gid,
    pub assignee_gid: Option<Gid>,
    pub completed: bool,
    pub dedupe_key: String,
}

/// A project a pass holds, with where that pass starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileClaim {
    pub project: Gid,
    pub token: String,
    /// The start of the last complete pass; `None`: no pass completed yet.
    pub cursor: Option<i64>,
    /// An earlier start a catch-up asked for.
    pub since: Option<i64>,
    /// Passes that failed in a row before this one.
    pub failures: i64,
}

/// What claiming one named project found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    Claimed(ReconcileClaim),
    /// Another pass holds it until then (ms).
    HeldUntil(i64),
    /// No confirmed project webhook is registered on it.
    NotWatched,
}

/// A watched project's reconcile state, for `reconcile run` and the lag gauge.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ReconcileState {
    #[sqlx(try_from = "String")]
    pub gid: Gid,
    pub name: Option<String>,
    pub created_at: i64,
    pub reconcile_cursor: Option<i64>,
    pub reconcile_since: Option<i64>,
    pub reconcile_due_at: Option<i64>,
    pub reconcile_claimed_until: Option<i64>,
    pub reconcile_passed_at: Option<i64>,
    pub reconcile_failures: i64,
    pub reconcile_last_error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    #[sqlx(try_from = "String")]
    gid: Gid,
    reconcile_cursor: Option<i64>,
    reconcile_since: Option<i64>,
    reconcile_failures: i64,
}

impl ClaimedRow {
    fn into_claim(self, token: &str) -> ReconcileClaim {
        ReconcileClaim {
            project: self.gid,
            token: token.to_string(),
            cursor: self.reconcile_cursor,
            since: self.reconcile_since,
            failures: self.reconcile_failures,
        }
    }
}

/// A confirmed project webhook on `p`.
macro_rules! watched {
    () => {
        "EXISTS (SELECT 1 FROM webhooks w WHERE w.project_gid = p.gid \
         AND w.resource_type = 'project' AND w.unconfirmed_until IS NULL)"
    };
}

/// Queues a reconcile job per candidate unless the task needs no read. An assigned open candidate
/// needs one unless the assignment was handled: a job read the task open with that assignee (its
/// `tasks` row), a job naming that assignee was created since the task's last read, or the task
/// has a job that has not started (it reads the task anyway). An unassigned or completed one
/// (issue 13) needs one only when it contradicts an open stored row with an assignee (a need the
/// bridge still counts) and no job was created for the task since that row was read. Output: the
/// tasks queued.
struct EnqueueReconcileJobs {
    project: Gid,
    candidates: Vec<ReconcileCandidate>,
    now: i64,
}

const RECONCILE_HANDLED: &str = "WHERE CASE WHEN c.assignee IS NOT NULL AND c.completed = 0 THEN \
        NOT EXISTS (SELECT 1 FROM tasks t WHERE t.gid = c.task AND t.assignee_gid = c.assignee \
            AND t.completed = 0 AND t.deleted_at IS NULL) \
        AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.task_gid = c.task \
            AND j.assignee_gid = c.assignee \
            AND j.created_at >= COALESCE((SELECT t.read_at FROM tasks t WHERE t.gid = c.task), 0)) \
     ELSE EXISTS (SELECT 1 FROM tasks t WHERE t.gid = c.task AND t.completed = 0 \
            AND t.deleted_at IS NULL AND t.assignee_gid IS NOT NULL \
            AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.task_gid = c.task \
                AND j.created_at > t.read_at)) \
     END \
     ORDER BY c.task ON CONFLICT DO NOTHING RETURNING task_gid";

impl Write for EnqueueReconcileJobs {
    type Output = Vec<String>;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<Vec<String>> {
        let source = JobSource::Reconcile.to_stored();
        let kind = JobKind::Reconcile.as_str();
        match conn {
            Conn::Postgres(conn) => {
                let column = |f: fn(&ReconcileCandidate) -> &str| {
                    self.candidates.iter().map(f).collect::<Vec<&str>>()
                };
                let text = format!(
                    "INSERT INTO jobs (dedupe_key, source, task_gid, event_kind, status, run_at, \
                     created_at, updated_at, unstarted_task_gid, project_gid, assignee_gid) \
                     SELECT c.key, $4, c.task, $5, 'pending', $6, $6, $6, c.task, $7, c.assignee \
                     FROM UNNEST($1::text[], $2::text[], $3::text[], $8::int8[]) \
                       AS c(task, assignee, key, completed) \
                     {RECONCILE_HANDLED}"
                );
                sqlx::query_scalar(sqlx::AssertSqlSafe(text))
                    .bind(column(|c| c.task_gid.as_str()))
                    .bind(
                        self.candidates
                            .iter()
                            .map(|c| c.assignee_gid.as_ref().map(Gid::as_str))
                            .collect::<Vec<Option<&str>>>(),
                    )
                    .bind(column(|c| c.dedupe_key.as_str()))
                    .bind(&source)
                    .bind(kind)
                    .bind(self.now)
                    .bind(self.project.as_str())
                    .bind(
                        self.candidates
                            .iter()
                            .map(|c| i64::from(c.completed))
                            .collect::<Vec<i64>>(),
                    )
                    .fetch_all(&mut **conn)
                    .await
            }
            Conn::Sqlite(conn) => {
                let mut insert =
                    QueryBuilder::<Sqlite>::new("WITH c(task, assignee, key, completed) AS (");
                insert.push_values(&self.candidates, |mut row, c| {
                    row.push_bind(c.task_gid.as_str())
                        .push_bind(c.assignee_gid.as_ref().map(Gid::as_str))
                        .push_bind(c.dedupe_key.as_str())
                        .push_bind(i64::from(c.completed));
                });
                insert
                    .push(
                        ") INSERT INTO jobs (dedupe_key, source, task_gid, event_kind, status, \
                         run_at, created_at, updated_at, unstarted_task_gid, project_gid, \
                         assignee_gid) SELECT c.key, ",
                    )
                    .push_bind(source.as_str())
                    .push(", c.task, ")
                    .push_bind(kind)
                    .push(", 'pending', ")
                    .push_bind(self.now)
                    .push(", ")
                    .push_bind(self.now)
                    .push(", ")
                    .push_bind(self.now)
                    .push(", c.task, ")
                    .push_bind(self.project.as_str())
                    .push(", c.assignee FROM c ")
                    .push(RECONCILE_HANDLED);
                insert.build_query_scalar().fetch_all(&mut **conn).await
            }
        }
    }
}

/// Claims the watched project whose pass is due first.
struct ClaimDueProject {
    token: String,
    until: i64,
    now: i64,
    passes_on: bool,
}

/// The claim of the due project; `$lock` is what PostgreSQL adds to pass by a project another
/// replica is claiming (SQLite has one writer).
macro_rules! claim_due_project {
    ($lock:literal) => {
        concat!(
            "UPDATE projects SET reconcile_claim = $1, reconcile_claimed_until = $2 \
             WHERE gid = (SELECT p.gid FROM projects p WHERE ",
            watched!(),
            " AND (p.reconcile_claimed_until IS NULL OR p.reconcile_claimed_until < $3) \
               AND (p.reconcile_due_at <= $3 OR (p.reconcile_due_at IS NULL AND $4 = 1)) \
               ORDER BY COALESCE(p.reconcile_due_at, 0), p.gid LIMIT 1",
            $lock,
            ") AND (reconcile_claimed_until IS NULL OR reconcile_claimed_until < $3) \
             RETURNING gid, reconcile_cursor, reconcile_since, reconcile_failures"
        )
    };
}
const CLAIM_DUE_SQLITE: &str = claim_due_project!("");
const CLAIM_DUE_POSTGRES: &str = claim_due_project!(" FOR UPDATE SKIP LOCKED");

impl Write for ClaimDueProject {
    type Output = Option<ReconcileClaim>;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<Option<ReconcileClaim>> {
        let sql = match conn {
            Conn::Sqlite(_) => CLAIM_DUE_SQLITE,
            Conn::Postgres(_) => CLAIM_DUE_POSTGRES,
        };
        let row: Option<ClaimedRow> = conn
            .fetch_optional(
                Sql::new(sql)
                    .bind(self.token.as_str())
                    .bind(self.until)
                    .bind(self.now)
                    .bind(i64::from(self.passes_on)),
            )
            .await?;
        Ok(row.map(|r| r.into_claim(&self.token)))
    }
}

/// Claims project `gid` whenever its pass is due, unless another pass holds it.
struct ClaimProject {
    gid: Gid,
    token: String,
    until: i64,
    now: i64,
}

impl Write for ClaimProject {
    type Output = ClaimOutcome;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<ClaimOutcome> {
        let claimed: Option<ClaimedRow> = conn
            .fetch_optional(
                Sql::new(concat!(
                    "UPDATE projects SET reconcile_claim = $1, reconcile_claimed_until = $2 \
                     WHERE gid = $4 AND (reconcile_claimed_until IS NULL \
                        OR reconcile_claimed_until < $3) \
                     AND EXISTS (SELECT 1 FROM projects p WHERE p.gid = $4 AND ",
                    watched!(),
                    ") RETURNING gid, reconcile_cursor, reconcile_since, reconcile_failures"
                ))
                .bind(self.token.as_str())
                .bind(self.until)
                .bind(self.now)
                .bind(self.gid.as_str()),
            )
            .await?;
        if let Some(row) = claimed {
            return Ok(ClaimOutcome::Claimed(row.into_claim(&self.token)));
        }
        let held: Option<(Option<i64>,)> = conn
            .fetch_optional(
                Sql::new(concat!(
                    "SELECT p.reconcile_claimed_until FROM projects p WHERE p.gid = $1 AND ",
                    watched!()
                ))
                .bind(self.gid.as_str()),
            )
            .await?;
        Ok(match held {
            None => ClaimOutcome::NotWatched,
            // In this write's transaction the claim can only have failed on a live hold.
            Some((until,)) => ClaimOutcome::HeldUntil(until.unwrap_or(self.now)),
        })
    }
}

/// Extends a claim; false when it was lost.
struct RenewClaim {
    gid: Gid,
    token: String,
    until: i64,
}

impl Write for RenewClaim {
    type Output = bool;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let renewed = conn
            .execute(
                Sql::new(
                    "UPDATE projects SET reconcile_claimed_until = $3 \
                     WHERE gid = $1 AND reconcile_claim = $2",
                )
                .bind(self.gid.as_str())
                .bind(self.token.as_str())
                .bind(self.until),
            )
            .await?;
        Ok(renewed == 1)
    }
}

/// Hands a claim back unchanged otherwise (a pass stopped by shutdown).
struct ReleaseClaim {
    gid: Gid,
    token: String,
}

impl Write for ReleaseClaim {
    type Output = bool;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let released = conn
            .execute(
                Sql::new(
                    "UPDATE projects SET reconcile_claim = NULL, reconcile_claimed_until = NULL \
                     WHERE gid = $1 AND reconcile_claim = $2",
                )
                .bind(self.gid.as_str())
                .bind(self.token.as_str()),
            )
            .await?;
        Ok(released == 1)
    }
}

/// Ends a complete pass: the cursor becomes the pass's start; the `since` it honoured is cleared.
/// A catch-up asked for while the pass ran (due at or after its start; an earlier or a later
/// `since`, folded into one) stays, and keeps the project due: the pass may have read its pages
/// before the new webhook existed.
struct FinishPass {
    gid: Gid,
    token: String,
    started: i64,
    honoured_since: Option<i64>,
    next_due: Option<i64>,
    now: i64,
}

impl Write for FinishPass {
    type Output = bool;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let finished = conn
            .execute(
                Sql::new(
                    "UPDATE projects SET reconcile_cursor = $2, reconcile_passed_at = $3, \
                     reconcile_failures = 0, reconcile_last_error = NULL, \
                     reconcile_claim = NULL, reconcile_claimed_until = NULL, \
                     reconcile_since = CASE WHEN COALESCE(reconcile_since, -1) = COALESCE($4, -1) \
                        AND COALESCE(reconcile_due_at, 0) < $2 \
                        THEN NULL ELSE reconcile_since END, \
                     reconcile_due_at = CASE WHEN COALESCE(reconcile_since, -1) = COALESCE($4, -1) \
                        AND COALESCE(reconcile_due_at, 0) < $2 \
                        THEN $5 ELSE reconcile_due_at END \
                     WHERE gid = $1 AND reconcile_claim = $6",
                )
                .bind(self.gid.as_str())
                .bind(self.started)
                .bind(self.now)
                .bind(self.honoured_since)
                .bind(self.next_due)
                .bind(self.token.as_str()),
            )
            .await?;
        Ok(finished == 1)
    }
}

/// Ends a failed pass: counted, due again at `due_at`, the cursor untouched.
struct FailPass {
    gid: Gid,
    token: String,
    error: String,
    due_at: i64,
    now: i64,
}

impl Write for FailPass {
    type Output = bool;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let failed = conn
            .execute(
                Sql::new(
                    "UPDATE projects SET reconcile_failures = reconcile_failures + 1, \
                     reconcile_last_error = $2, reconcile_passed_at = $3, reconcile_due_at = $4, \
                     reconcile_claim = NULL, reconcile_claimed_until = NULL \
                     WHERE gid = $1 AND reconcile_claim = $5",
                )
                .bind(self.gid.as_str())
                .bind(self.error.as_str())
                .bind(self.now)
                .bind(self.due_at)
                .bind(self.token.as_str()),
            )
            .await?;
        Ok(failed == 1)
    }
}

/// Asks for a pass from `since` (the earliest asked wins), due now.
struct RequestCatchUp {
    gid: Gid,
    since: i64,
    now: i64,
}

impl Write for RequestCatchUp {
    type Output = bool;
    const DURABILITY: Durability = Durability::Synced;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let asked = conn
            .execute(catch_up_sql(conn, &self.gid, self.since, self.now))
            .await?;
        Ok(asked == 1)
    }
}

/// Asks `project`'s pass to read from `since` (the earliest asked wins), due at `now`. Also run
/// inside a webhook repair's completion.
pub(super) fn catch_up_sql<'q>(conn: &Conn<'_>, project: &'q Gid, since: i64, now: i64) -> Sql<'q> {
    // The one statement that differs: SQLite's scalar MIN is PostgreSQL's LEAST.
    let sql = match conn {
        Conn::Sqlite(_) => {
            "UPDATE projects SET reconcile_since = MIN(COALESCE(reconcile_since, $2), $2), \
             reconcile_due_at = $3 WHERE gid = $1"
        }
        Conn::Postgres(_) => {
            "UPDATE projects SET reconcile_since = LEAST(COALESCE(reconcile_since, $2), $2), \
             reconcile_due_at = $3 WHERE gid = $1"
        }
    };
    Sql::new(sql).bind(project.as_str()).bind(since).bind(now)
}

impl Store {
    /// Queues the candidates no job has handled (see the module docs), as jobs of source
    /// `reconcile` restricted to `project`. Returns the tasks queued.
    pub async fn enqueue_reconcile_jobs(
        &self,
        project: &Gid,
        candidates: Vec<ReconcileCandidate>,
    ) -> StoreResult<Vec<Gid>> {
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let queued = self
            .write(EnqueueReconcileJobs {
                project: project.clone(),
                candidates,
                now: now_ms(),
            })
            .await?;
        queued
            .into_iter()
            .map(|gid| Gid::try_from(gid).map_err(|e| super::StoreError::Corrupt(e.to_string())))
            .collect()
    }

    /// Claims the watched project whose pass is due first, for `hold`. With passes off
    /// (`passes_on` false) only projects a catch-up made due are claimed.
    pub async fn claim_due_reconcile(
        &self,
        token: &str,
        hold: std::time::Duration,
        passes_on: bool,
    ) -> StoreResult<Option<ReconcileClaim>> {
        let now = now_ms();
        self.write(ClaimDueProject {
            token: token.to_string(),
            until: now.saturating_add(duration_ms(hold)),
            now,
            passes_on,
        })
        .await
    }

    /// Claims project `gid` for `hold`, due or not (`reconcile run --project`).
    pub async fn claim_project_reconcile(
        &self,
        gid: &Gid,
        token: &str,
        hold: std::time::Duration,
    ) -> StoreResult<ClaimOutcome> {
        let now = now_ms();
        self.write(ClaimProject {
            gid: gid.clone(),
            token: token.to_string(),
            until: now.saturating_add(duration_ms(hold)),
            now,
        })
        .await
    }

    /// Extends `claim` by `hold` from now; false when it was lost (expired and taken).
    pub async fn renew_reconcile_claim(
        &self,
        claim: &ReconcileClaim,
        hold: std::time::Duration,
    ) -> StoreResult<bool> {
        self.write(RenewClaim {
            gid: claim.project.clone(),
            token: claim.token.clone(),
            until: now_ms().saturating_add(duration_ms(hold)),
        })
        .await
    }

    /// Gives `claim` back without ending a pass (shutdown): the project is due as it was.
    pub async fn release_reconcile_claim(&self, claim: &ReconcileClaim) -> StoreResult<bool> {
        self.write(ReleaseClaim {
            gid: claim.project.clone(),
            token: claim.token.clone(),
        })
        .await
    }

    /// Ends `claim`'s pass as complete: the cursor becomes `started`, the next pass is due at
    /// `next_due` (`None`: only when asked). False when the claim was lost (nothing changes).
    pub async fn finish_reconcile_pass(
        &self,
        claim: &ReconcileClaim,
        started: i64,
        next_due: Option<i64>,
    ) -> StoreResult<bool> {
        self.write(FinishPass {
            gid: claim.project.clone(),
            token: claim.token.clone(),
            started,
            honoured_since: claim.since,
            next_due,
            now: now_ms(),
        })
        .await
    }

    /// Ends `claim`'s pass as failed with `error`, due again at `due_at`; the cursor stays.
    pub async fn fail_reconcile_pass(
        &self,
        claim: &ReconcileClaim,
        error: &str,
        due_at: i64,
    ) -> StoreResult<bool> {
        self.write(FailPass {
            gid: claim.project.clone(),
            token: claim.token.clone(),
            error: error.to_string(),
            due_at,
            now: now_ms(),
        })
        .await
    }

    /// Asks for a pass of `project` reading from `since_ms` (the earliest asked wins), due now,
    /// even with passes off. False when the project is not known here.
    pub async fn request_catch_up(&self, project: &Gid, since_ms: i64) -> StoreResult<bool> {
        self.write(RequestCatchUp {
            gid: project.clone(),
            since: since_ms,
            now: now_ms(),
        })
        .await
    }

    /// Every watched project's reconcile state, by gid.
    pub async fn reconcile_states(&self) -> StoreResult<Vec<ReconcileState>> {
        self.fetch_all(Sql::new(concat!(
            "SELECT p.gid, p.name, p.created_at, p.reconcile_cursor, p.reconcile_since, \
             p.reconcile_due_at, p.reconcile_claimed_until, p.reconcile_passed_at, \
             p.reconcile_failures, p.reconcile_last_error FROM projects p WHERE ",
            watched!(),
            " ORDER BY p.gid"
        )))
        .await
    }
}
