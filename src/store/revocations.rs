//! The revocations ledger (issue 13, `docs/design/revocation.md` §1–§3): when a person stops
//! needing a project's room, one row per live grant of that room notes the time, why, and when the
//! access may go; a `revoke` job (due then) reads the room's members and removes the access only
//! if the bridge granted it and it is still what was granted. The need itself is never stored: a
//! person needs project P's room while the `tasks` rows show them the assignee of an incomplete,
//! undeleted task counting toward P (`task_projects`, subtasks through their parents).
//!
//! Revocations are scheduled and cancelled inside the settlement of the job that read the task
//! (`Confirmations::lifecycle`), so the task row and the ledger change together.

use std::collections::HashSet;
use std::time::Duration;

use super::conn::{Conn, Sql, Write};
use super::rooms::lease_held;
use super::{
    Durability, GrantState, LeaseOwner, Outcome, Store, StoreError, StoreResult, duration_ms,
    now_ms,
};
use crate::access::need::{TaskState, ended, needed};
use crate::domain::{Email, Gid, JobKind, JobSource};

/// Why a person's need of a project's room ended.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumString, strum::Display, strum::IntoStaticStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum NeedEnd {
    /// Their task lost its assignee.
    Unassigned,
    /// Their task went to someone else.
    Reassigned,
    /// Their task was completed.
    Completed,
    /// Their task left the project.
    Removed,
    /// Their task was deleted (Asana answers 404).
    Deleted,
    /// A need sweep found a live grant without any open task behind it.
    NoOpenTask,
}

stored_enum!(NeedEnd, "need end");

/// A revocation's state (`room_revocations.state`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumString, strum::Display, strum::IntoStaticStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum RevocationState {
    /// Inside the grace period; its revoke job is due at `due_at`.
    Waiting,
    /// The revoke job decided to remove the access and may have asked DocSpace.
    Removing,
    Revoked,
    KeptChangedByHand,
    KeptNotGranted,
    /// The person was no longer in the room when the bridge came to remove them.
    Left,
    NeededAgain,
    RoomGone,
    /// `access.revoke` was turned off before it was due.
    Cancelled,
    Failed,
}

stored_enum!(RevocationState, "revocation state");

/// What a revoke job reads before deciding: the revocation, its grant, and whether the grant's
/// room is still its project's active room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationWork {
    pub id: i64,
    pub state: RevocationState,
    pub email: Email,
    pub room_id: i64,
    pub project_gid: Gid,
    pub need_ended_at: i64,
    pub due_at: i64,
    /// Set by the first reservation: DocSpace may have been asked since.
    pub decided_at: Option<i64>,
    pub why: NeedEnd,
    pub why_task_gid: Gid,
    pub grant_id: i64,
    pub grant_state: GrantState,
    /// The FileShare integer the grant sent (or saw, for `had_access`).
    pub grant_access: i64,
    pub docspace_user_id: String,
    /// The grant has ended (revoked, left, room gone) since the revocation was scheduled.
    pub grant_ended: bool,
    /// The grant's room is still its project's active room.
    pub room_active: bool,
}

/// What reserving a removal found (the revoke job's lease held).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalReservation {
    /// The revocation is `removing` and the grant carries this job as `revoking_job_id`: the job
    /// may ask DocSpace.
    Mine,
    /// The person has an open task in the project again: the revocation is `needed_again`,
    /// nothing may be removed (the job settles `needed_again`).
    NeededAgain,
    /// The grant ended, changed state, or another revoke job holds it: nothing to remove.
    Gone,
}

/// How a revoke job ends its revocation, recorded in its job's settlement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationEnd {
    /// DocSpace removed the access: the grant ends (`end_reason = 'revoked'`).
    Revoked,
    /// Not in the room any more when the bridge came (removed by hand): the grant ends
    /// (`end_reason = 'left'`).
    Left,
    /// The access is not the one granted, the person owns the room, or DocSpace says it cannot be
    /// revoked: kept; the note says which. The grant stays live.
    KeptChangedByHand(String),
    /// The ledger row is `had_access`: never the bridge's to take back.
    KeptNotGranted,
    /// The room is gone from DocSpace: the grant ends (`end_reason = 'room_gone'`).
    RoomGone,
    /// The person needs the room again.
    NeededAgain,
    /// `access.revoke` is off now; nothing was removed.
    Cancelled(String),
    /// The removal failed for good (the grant stays live: the access may still be there).
    Failed(String),
}

/// A row of `access plan`: a live grant whose need ended (or, with no revocation yet, whose person
/// has no open task in the project: `revocation_id` is `None`, found by the next sweep).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRow {
    pub email: String,
    pub project_gid: String,
    pub project_name: Option<String>,
    pub room_id: i64,
    pub access: i64,
    pub grant_state: GrantState,
    pub grant_job_id: i64,
    pub revocation_id: Option<i64>,
    pub state: Option<RevocationState>,
    pub need_ended_at: Option<i64>,
    pub due_at: Option<i64>,
    pub job_id: Option<i64>,
    pub why: Option<NeedEnd>,
    pub why_task_gid: Option<String>,
    pub why_source: Option<String>,
}

/// Filters of `access log`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    pub email: Option<Email>,
    pub project: Option<Gid>,
}

/// One entry of `access log`: a grant (or `had_access` row) or a settled revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub at: i64,
    /// `granted`, `had access`, `revoked`, `kept: changed by hand`, `kept: not granted`,
    /// `left the room`, `needed again`, `room gone`, `cancelled`, `failed`, `removing`.
    pub action: String,
    pub email: String,
    pub project_gid: String,
    pub room_id: i64,
    pub access: i64,
    /// The task or event that caused it, in words.
    pub cause: String,
}

/// A revocation as stored, for tests and inspection.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RevocationRecord {
    pub id: i64,
    pub grant_id: i64,
    pub email: String,
    pub room_id: i64,
    pub project_gid: String,
    pub need_ended_at: i64,
    pub why_task_gid: String,
    #[sqlx(try_from = "String")]
    pub why: NeedEnd,
    pub why_source: Option<String>,
    pub due_at: i64,
    #[sqlx(try_from = "String")]
    pub state: RevocationState,
    pub job_id: Option<i64>,
    pub decided_at: Option<i64>,
    pub seen_access: Option<i64>,
    pub done_at: Option<i64>,
    pub note: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// "Does person `$e` still need project `$p`'s room": the assignee of an open task counting
/// toward it (a subtask's row counts toward its ancestors' projects through `task_projects`).
macro_rules! needs {
    ($e:literal, $p:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM tasks t JOIN task_projects tp ON tp.task_gid = t.gid \
             WHERE t.assignee_email = ",
            $e,
            " AND t.completed = 0 AND t.deleted_at IS NULL AND tp.project_gid = ",
            $p,
            ")"
        )
    };
}

/// One waiting revocation per live grant of the project's active room whose person no longer
/// needs it and has no open revocation for it; `$1` now, `$2` the due time. The rest names the
/// task, why and source (`$3`…) and which grants.
macro_rules! schedule_revocations {
    ($task:literal, $why:literal, $source:literal, $which:literal) => {
        concat!(
            "INSERT INTO room_revocations (grant_id, email, room_id, project_gid, need_ended_at, \
             why_task_gid, why, why_source, due_at, state, created_at, updated_at) \
             SELECT g.id, g.email, g.room_id, g.project_gid, $1, ",
            $task,
            ", ",
            $why,
            ", ",
            $source,
            ", $2, 'waiting', $1, $1 \
             FROM room_grants g JOIN project_rooms pr ON pr.project_gid = g.project_gid \
               AND pr.room_id = g.room_id AND pr.state = 'active' \
             WHERE g.ended_at IS NULL AND g.state IN ('granted', 'had_access') AND ",
            $which,
            " AND NOT ",
            needs!("g.email", "g.project_gid"),
            " ON CONFLICT (grant_id) WHERE state IN ('waiting', 'removing') DO NOTHING \
             RETURNING id, due_at, why_task_gid, project_gid"
        )
    };
}

/// Scheduled by a job that saw the need end: `$3` task, `$4` why, `$5` the job, `$6` email,
/// `$7` project.
const SCHEDULE_ENDED: &str = schedule_revocations!(
    "$3",
    "$4",
    "(SELECT j.source FROM jobs j WHERE j.id = $5)",
    "g.email = $6 AND g.project_gid = $7"
);

/// Scheduled by a need sweep for grants nobody saw end: `$3` the sweep's source, `$4` project.
const SCHEDULE_ORPHANS: &str =
    schedule_revocations!("g.task_gid", "'no_open_task'", "$3", "g.project_gid = $4");

/// A revocation just scheduled.
#[derive(sqlx::FromRow)]
struct Scheduled {
    id: i64,
    due_at: i64,
    why_task_gid: String,
    project_gid: String,
}

/// Queues the revoke job of each revocation just scheduled (due at its `due_at`; no
/// `unstarted_task_gid`, which would hold back every other job of the task until then) and
/// records it on the revocation.
async fn queue_revoke_jobs(
    conn: &mut Conn<'_>,
    scheduled: &[Scheduled],
    now: i64,
) -> sqlx::Result<()> {
    let source = JobSource::Access.to_stored();
    let keys: Vec<String> = scheduled
        .iter()
        .map(|r| format!("revoke:{}", r.id))
        .collect();
    let mut statements = Vec::with_capacity(scheduled.len() * 2);
    for (revocation, key) in scheduled.iter().zip(&keys) {
        statements.push(
            Sql::new(
                "INSERT INTO jobs (dedupe_key, source, task_gid, event_kind, status, run_at, \
                 created_at, updated_at, project_gid) \
                 VALUES ($1, $2, $3, $4, 'pending', $5, $6, $6, $7) ON CONFLICT DO NOTHING",
            )
            .bind(key)
            .bind(&source)
            .bind(revocation.why_task_gid.as_str())
            .bind(JobKind::Revoke.as_str())
            .bind(revocation.due_at)
            .bind(now)
            .bind(revocation.project_gid.as_str()),
        );
        statements.push(
            Sql::new(
                "UPDATE room_revocations SET job_id = (SELECT id FROM jobs WHERE dedupe_key = $1) \
                 WHERE id = $2",
            )
            .bind(key)
            .bind(revocation.id),
        );
    }
    conn.execute_all(statements).await
}

/// Inside the settlement of job `job_id`, which read task `task` (from `before` to `after`):
/// schedules a revocation (and its revoke job, due after `grace`) for each person whose need of
/// a project's room the change ended, unless another open task keeps it; and cancels the waiting
/// revocations of each person the task makes need a room again (their pending revoke jobs end
/// `needed_again`). A `removing` revocation is never cancelled here: DocSpace may have been asked,
/// and a new grant waits for it (`GrantReservation::Revoking`).
pub(crate) async fn apply_need_changes(
    conn: &mut Conn<'_>,
    job_id: i64,
    task: &Gid,
    before: Option<&TaskState>,
    after: &TaskState,
    grace: Duration,
    now: i64,
) -> sqlx::Result<()> {
    let due = now.saturating_add(duration_ms(grace));
    for (person, project, why) in ended(before, after) {
        let why: &'static str = why.into();
        let scheduled: Vec<Scheduled> = conn
            .fetch_all(
                Sql::new(SCHEDULE_ENDED)
                    .bind(now)
                    .bind(due)
                    .bind(task.as_str())
                    .bind(why)
                    .bind(job_id)
                    .bind(person.as_str())
                    .bind(project.as_str()),
            )
            .await?;
        queue_revoke_jobs(conn, &scheduled, now).await?;
    }
    let renewed = needed(after);
    let mut cancels = Vec::with_capacity(renewed.len() * 2);
    for (person, project) in &renewed {
        cancels.push(
            Sql::new(
                "UPDATE jobs SET status = 'done', outcome = $1, run_at = $2, updated_at = $2 \
                 WHERE status = 'pending' AND id IN (SELECT r.job_id FROM room_revocations r \
                    WHERE r.email = $3 AND r.project_gid = $4 AND r.state = 'waiting' \
                    AND r.job_id IS NOT NULL)",
            )
            .bind(Outcome::NeededAgain.as_str())
            .bind(now)
            .bind(person.as_str())
            .bind(project.as_str()),
        );
        cancels.push(
            Sql::new(
                "UPDATE room_revocations SET state = 'needed_again', done_at = $1, \
                 updated_at = $1, note = (SELECT 'task ' || j.task_gid || ' ' || j.event_kind \
                    || ' (' || j.source || ')' FROM jobs j WHERE j.id = $2) \
                 WHERE email = $3 AND project_gid = $4 AND state = 'waiting'",
            )
            .bind(now)
            .bind(job_id)
            .bind(person.as_str())
            .bind(project.as_str()),
        );
    }
    conn.execute_all(cancels).await
}

impl RevocationEnd {
    fn state(&self) -> RevocationState {
        match self {
            RevocationEnd::Revoked => RevocationState::Revoked,
            RevocationEnd::Left => RevocationState::Left,
            RevocationEnd::KeptChangedByHand(_) => RevocationState::KeptChangedByHand,
            RevocationEnd::KeptNotGranted => RevocationState::KeptNotGranted,
            RevocationEnd::RoomGone => RevocationState::RoomGone,
            RevocationEnd::NeededAgain => RevocationState::NeededAgain,
            RevocationEnd::Cancelled(_) => RevocationState::Cancelled,
            RevocationEnd::Failed(_) => RevocationState::Failed,
        }
    }

    fn note(&self) -> Option<&str> {
        match self {
            RevocationEnd::Left => Some("no longer in the room"),
            RevocationEnd::KeptChangedByHand(note)
            | RevocationEnd::Cancelled(note)
            | RevocationEnd::Failed(note) => Some(note),
            RevocationEnd::Revoked
            | RevocationEnd::KeptNotGranted
            | RevocationEnd::RoomGone
            | RevocationEnd::NeededAgain => None,
        }
    }

    /// How the grant ends with it (`end_reason`), if it does.
    fn ends_grant(&self) -> Option<&'static str> {
        match self {
            RevocationEnd::Revoked => Some("revoked"),
            RevocationEnd::Left => Some("left"),
            RevocationEnd::RoomGone => Some("room_gone"),
            _ => None,
        }
    }
}

/// Records how revoke job `job_id` ended revocation `id`, inside the job's settlement: the
/// revocation's final state, and its grant ended (revoked, left, room gone) or released (kept,
/// needed again, cancelled, failed: the grant stays live and no longer waits for this job).
pub(crate) async fn settle_revocation(
    conn: &mut Conn<'_>,
    job_id: i64,
    id: i64,
    end: &RevocationEnd,
    now: i64,
) -> sqlx::Result<()> {
    let state: &'static str = end.state().into();
    let revocation = Sql::new(
        "UPDATE room_revocations SET state = $1, note = COALESCE($2, note), done_at = $3, \
         updated_at = $3 WHERE id = $4",
    )
    .bind(state)
    .bind(end.note())
    .bind(now)
    .bind(id);
    let grant = match end.ends_grant() {
        Some(reason) => Sql::new(
            "UPDATE room_grants SET ended_at = $1, end_reason = $2, revoking_job_id = NULL \
             WHERE id = (SELECT grant_id FROM room_revocations WHERE id = $3) \
             AND ended_at IS NULL",
        )
        .bind(now)
        .bind(reason)
        .bind(id),
        None => Sql::new(
            "UPDATE room_grants SET revoking_job_id = NULL \
             WHERE id = (SELECT grant_id FROM room_revocations WHERE id = $1) \
             AND revoking_job_id = $2",
        )
        .bind(id)
        .bind(job_id),
    };
    conn.execute_all(vec![revocation, grant]).await
}

/// Revoke job `job_id` failed for good: its open revocation becomes `failed` (with the error)
/// and its grant no longer waits for it (the access may still be there: the grant stays live).
/// `jobs retry` makes the job due again, and `reserve_removal` takes a `failed` revocation.
pub(crate) async fn release_failed_revocations(
    conn: &mut Conn<'_>,
    job_id: i64,
    error: &str,
    now: i64,
) -> sqlx::Result<()> {
    conn.execute_all(vec![
        Sql::new(
            "UPDATE room_revocations SET state = 'failed', note = $1, done_at = $2, \
             updated_at = $2 WHERE job_id = $3 AND state IN ('waiting', 'removing')",
        )
        .bind(error)
        .bind(now)
        .bind(job_id),
        Sql::new("UPDATE room_grants SET revoking_job_id = NULL WHERE revoking_job_id = $1")
            .bind(job_id),
    ])
    .await
}

/// Whether `email` needs `project`'s room; inside a transaction.
async fn needs_in(conn: &mut Conn<'_>, email: &str, project: &str) -> sqlx::Result<bool> {
    let (count,): (i64,) = conn
        .fetch_one(
            Sql::new(
                "SELECT COUNT(*) FROM tasks t JOIN task_projects tp ON tp.task_gid = t.gid \
                 WHERE t.assignee_email = $1 AND t.completed = 0 AND t.deleted_at IS NULL \
                 AND tp.project_gid = $2",
            )
            .bind(email)
            .bind(project),
        )
        .await?;
    Ok(count > 0)
}

/// See [`Store::reserve_removal`].
struct ReserveRemoval {
    job_id: i64,
    owner: LeaseOwner,
    revocation_id: i64,
    seen_access: i64,
}

/// A revocation's row as reserving it reads it.
#[derive(sqlx::FromRow)]
struct Reserving {
    grant_id: i64,
    email: String,
    project_gid: String,
    state: String,
}

impl Write for ReserveRemoval {
    type Output = Option<RemovalReservation>;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<Option<RemovalReservation>> {
        let now = now_ms();
        let mut tx = conn.begin().await?;
        if !lease_held(&mut tx.conn(), self.job_id, &self.owner, now).await? {
            return Ok(None);
        }
        let row: Option<Reserving> = tx
            .conn()
            .fetch_optional(
                Sql::new(
                    "SELECT grant_id, email, project_gid, state FROM room_revocations \
                     WHERE id = $1",
                )
                .bind(self.revocation_id),
            )
            .await?;
        let Some(row) = row else {
            return Ok(Some(RemovalReservation::Gone));
        };
        match row.state.parse::<RevocationState>() {
            Ok(RevocationState::NeededAgain) => return Ok(Some(RemovalReservation::NeededAgain)),
            Ok(RevocationState::Waiting | RevocationState::Removing | RevocationState::Failed) => {}
            _ => return Ok(Some(RemovalReservation::Gone)),
        }
        // The row first (its lock orders this against a settlement cancelling it), then the need.
        let marked = tx
            .conn()
            .execute(
                Sql::new(
                    "UPDATE room_revocations SET state = 'removing', \
                     decided_at = COALESCE(decided_at, $1), seen_access = $2, updated_at = $1, \
                     done_at = NULL WHERE id = $3 \
                     AND state IN ('waiting', 'removing', 'failed') \
                     AND NOT EXISTS (SELECT 1 FROM room_revocations o \
                        WHERE o.grant_id = room_revocations.grant_id \
                        AND o.id <> room_revocations.id AND o.state IN ('waiting', 'removing'))",
                )
                .bind(now)
                .bind(self.seen_access)
                .bind(self.revocation_id),
            )
            .await?;
        if marked == 0 {
            return Ok(Some(RemovalReservation::Gone));
        }
        if needs_in(&mut tx.conn(), &row.email, &row.project_gid).await? {
            tx.conn()
                .execute_all(vec![
                    Sql::new(
                        "UPDATE room_revocations SET state = 'needed_again', done_at = $1, \
                         updated_at = $1, note = 'an open task in the project again' \
                         WHERE id = $2",
                    )
                    .bind(now)
                    .bind(self.revocation_id),
                    Sql::new(
                        "UPDATE room_grants SET revoking_job_id = NULL \
                         WHERE id = $1 AND revoking_job_id = $2",
                    )
                    .bind(row.grant_id)
                    .bind(self.job_id),
                ])
                .await?;
            tx.commit().await?;
            return Ok(Some(RemovalReservation::NeededAgain));
        }
        let held = tx
            .conn()
            .execute(
                Sql::new(
                    "UPDATE room_grants SET revoking_job_id = $1 WHERE id = $2 \
                     AND ended_at IS NULL AND state = 'granted' \
                     AND (revoking_job_id IS NULL OR revoking_job_id = $1)",
                )
                .bind(self.job_id)
                .bind(row.grant_id),
            )
            .await?;
        if held == 0 {
            // Dropping the transaction undoes the mark: nothing of ours to remove.
            return Ok(Some(RemovalReservation::Gone));
        }
        tx.commit().await?;
        Ok(Some(RemovalReservation::Mine))
    }
}

/// See [`Store::reschedule_waiting`].
struct RescheduleWaiting {
    grace_ms: i64,
    now: i64,
}

impl Write for RescheduleWaiting {
    type Output = u64;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<u64> {
        let mut tx = conn.begin().await?;
        tx.conn()
            .execute(
                Sql::new(
                    "UPDATE jobs SET run_at = (SELECT r.need_ended_at + $1 FROM room_revocations r \
                        WHERE r.job_id = jobs.id AND r.state = 'waiting'), updated_at = $2 \
                     WHERE status = 'pending' AND event_kind = $3 AND id IN \
                        (SELECT r.job_id FROM room_revocations r WHERE r.state = 'waiting' \
                         AND r.job_id IS NOT NULL AND r.due_at <> r.need_ended_at + $1)",
                )
                .bind(self.grace_ms)
                .bind(self.now)
                .bind(JobKind::Revoke.as_str()),
            )
            .await?;
        let changed = tx
            .conn()
            .execute(
                Sql::new(
                    "UPDATE room_revocations SET due_at = need_ended_at + $1, updated_at = $2 \
                     WHERE state = 'waiting' AND due_at <> need_ended_at + $1",
                )
                .bind(self.grace_ms)
                .bind(self.now),
            )
            .await?;
        tx.commit().await?;
        Ok(changed)
    }
}

/// See [`Store::orphan_grants`].
struct OrphanGrants {
    project: Gid,
    grace_ms: i64,
    now: i64,
}

impl Write for OrphanGrants {
    type Output = u64;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<u64> {
        let mut tx = conn.begin().await?;
        let source = JobSource::Reconcile.to_stored();
        let scheduled: Vec<Scheduled> = tx
            .conn()
            .fetch_all(
                Sql::new(SCHEDULE_ORPHANS)
                    .bind(self.now)
                    .bind(self.now.saturating_add(self.grace_ms))
                    .bind(&source)
                    .bind(self.project.as_str()),
            )
            .await?;
        queue_revoke_jobs(&mut tx.conn(), &scheduled, self.now).await?;
        tx.commit().await?;
        Ok(scheduled.len() as u64)
    }
}

/// Marks a project need-swept at `at`.
struct MarkNeedSwept {
    project: Gid,
    at: i64,
}

impl Write for MarkNeedSwept {
    type Output = u64;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<u64> {
        conn.execute(
            Sql::new("UPDATE projects SET need_swept_at = $1 WHERE gid = $2")
                .bind(self.at)
                .bind(self.project.as_str()),
        )
        .await
    }
}

/// How often a watched project's need is swept.
pub const NEED_SWEEP_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(sqlx::FromRow)]
struct WorkRow {
    id: i64,
    state: String,
    email: String,
    room_id: i64,
    project_gid: String,
    need_ended_at: i64,
    due_at: i64,
    decided_at: Option<i64>,
    why: String,
    why_task_gid: String,
    grant_id: i64,
    grant_state: String,
    grant_access: i64,
    docspace_user_id: String,
    grant_ended: i64,
    room_active: i64,
}

impl TryFrom<WorkRow> for RevocationWork {
    type Error = StoreError;
    fn try_from(row: WorkRow) -> StoreResult<RevocationWork> {
        let corrupt = |e: crate::domain::ParseError| StoreError::Corrupt(e.to_string());
        Ok(RevocationWork {
            id: row.id,
            state: row.state.try_into()?,
            email: Email::try_from(row.email).map_err(corrupt)?,
            room_id: row.room_id,
            project_gid: Gid::try_from(row.project_gid).map_err(corrupt)?,
            need_ended_at: row.need_ended_at,
            due_at: row.due_at,
            decided_at: row.decided_at,
            why: row.why.try_into()?,
            why_task_gid: Gid::try_from(row.why_task_gid).map_err(corrupt)?,
            grant_id: row.grant_id,
            grant_state: row.grant_state.try_into()?,
            grant_access: row.grant_access,
            docspace_user_id: row.docspace_user_id,
            grant_ended: row.grant_ended != 0,
            room_active: row.room_active != 0,
        })
    }
}

#[derive(sqlx::FromRow)]
struct PlanRaw {
    email: String,
    project_gid: String,
    project_name: Option<String>,
    room_id: i64,
    access: i64,
    grant_state: String,
    grant_job_id: i64,
    revocation_id: Option<i64>,
    state: Option<String>,
    need_ended_at: Option<i64>,
    due_at: Option<i64>,
    job_id: Option<i64>,
    why: Option<String>,
    why_task_gid: Option<String>,
    why_source: Option<String>,
}

impl TryFrom<PlanRaw> for PlanRow {
    type Error = StoreError;
    fn try_from(row: PlanRaw) -> StoreResult<PlanRow> {
        Ok(PlanRow {
            email: row.email,
            project_gid: row.project_gid,
            project_name: row.project_name,
            room_id: row.room_id,
            access: row.access,
            grant_state: row.grant_state.try_into()?,
            grant_job_id: row.grant_job_id,
            revocation_id: row.revocation_id,
            state: row.state.map(RevocationState::try_from).transpose()?,
            need_ended_at: row.need_ended_at,
            due_at: row.due_at,
            job_id: row.job_id,
            why: row.why.map(NeedEnd::try_from).transpose()?,
            why_task_gid: row.why_task_gid,
            why_source: row.why_source,
        })
    }
}

/// One row of the `access log` union: a grant (`entry = 'grant'`) or a revocation.
#[derive(sqlx::FromRow)]
struct LogRaw {
    entry: String,
    at: i64,
    state: String,
    email: String,
    project_gid: String,
    room_id: i64,
    access: i64,
    task_gid: String,
    /// A grant's `cause`; a revocation's `why`.
    cause: Option<String>,
    source: Option<String>,
    job_id: Option<i64>,
    note: Option<String>,
    need_ended_at: Option<i64>,
}

impl TryFrom<LogRaw> for LogEntry {
    type Error = StoreError;
    fn try_from(row: LogRaw) -> StoreResult<LogEntry> {
        let job = row
            .job_id
            .map_or_else(String::new, |id| format!("; job {id}"));
        let (action, cause) = if row.entry == "grant" {
            let state = GrantState::try_from(row.state)?;
            match (state, row.cause) {
                (GrantState::HadAccess, _) => (
                    "had access",
                    format!("task {}{job} (found in the room, never ours)", row.task_gid),
                ),
                (_, Some(cause)) => ("granted", format!("task {} {cause}{job}", row.task_gid)),
                (_, None) => (
                    "granted",
                    format!(
                        "task {}{job} (cause unknown: job deleted by retention)",
                        row.task_gid
                    ),
                ),
            }
        } else {
            let state = RevocationState::try_from(row.state)?;
            let action = match state {
                RevocationState::Waiting => "waiting",
                RevocationState::Removing => "removing",
                RevocationState::Revoked => "revoked",
                RevocationState::KeptChangedByHand => "kept: changed by hand",
                RevocationState::KeptNotGranted => "kept: not granted",
                RevocationState::Left => "left the room",
                RevocationState::NeededAgain => "needed again",
                RevocationState::RoomGone => "room gone",
                RevocationState::Cancelled => "cancelled",
                RevocationState::Failed => "failed",
            };
            let why = row.cause.unwrap_or_default().replace('_', " ");
            let source = row.source.map_or_else(String::new, |s| format!(" ({s})"));
            let since = row.need_ended_at.map_or_else(String::new, |t| {
                format!(" at {}", super::rfc3339_seconds(t))
            });
            let cause = match (state, row.note) {
                // What made the person need the room again.
                (RevocationState::NeededAgain, Some(note)) => note,
                (_, Some(note)) => {
                    format!("task {} {why}{source}{since}{job}: {note}", row.task_gid)
                }
                (_, None) => format!("task {} {why}{source}{since}{job}", row.task_gid),
            };
            (action, cause)
        };
        Ok(LogEntry {
            at: row.at,
            action: action.to_string(),
            email: row.email,
            project_gid: row.project_gid,
            room_id: row.room_id,
            access: row.access,
            cause,
        })
    }
}

/// The `access log` union, newest first; `$1` email, `$2` project (either `NULL`: any).
macro_rules! access_log {
    ($rest:literal) => {
        concat!(
            "SELECT entry, at, state, email, project_gid, room_id, access, task_gid, cause, source, \
                job_id, note, need_ended_at, seq FROM ( \
             SELECT 'grant' AS entry, COALESCE(g.granted_at, g.created_at) AS at, g.state AS state, \
                g.email AS email, g.project_gid AS project_gid, g.room_id AS room_id, \
                g.access AS access, g.task_gid AS task_gid, g.cause AS cause, \
                CAST(NULL AS TEXT) AS source, g.job_id AS job_id, CAST(NULL AS TEXT) AS note, \
                CAST(NULL AS BIGINT) AS need_ended_at, g.id AS seq \
             FROM room_grants g WHERE g.state IN ('granted', 'had_access') \
                AND ($1 IS NULL OR g.email = $1) AND ($2 IS NULL OR g.project_gid = $2) \
             UNION ALL \
             SELECT 'revocation', COALESCE(r.done_at, r.decided_at, r.updated_at), r.state, \
                r.email, r.project_gid, r.room_id, g.access, r.why_task_gid, r.why, \
                r.why_source, r.job_id, r.note, r.need_ended_at, r.id \
             FROM room_revocations r JOIN room_grants g ON g.id = r.grant_id \
             WHERE r.state <> 'waiting' \
                AND ($1 IS NULL OR r.email = $1) AND ($2 IS NULL OR r.project_gid = $2) \
             ) AS e ",
            $rest
        )
    };
}

impl Store {
    /// Whether `email` is the assignee of an incomplete, undeleted task counting toward `project`.
    pub async fn needs_room(&self, email: &Email, project: &Gid) -> StoreResult<bool> {
        let (count,): (i64,) = self
            .fetch_one(
                Sql::new(
                    "SELECT COUNT(*) FROM tasks t JOIN task_projects tp ON tp.task_gid = t.gid \
                     WHERE t.assignee_email = $1 AND t.completed = 0 AND t.deleted_at IS NULL \
                     AND tp.project_gid = $2",
                )
                .bind(email.as_str())
                .bind(project.as_str()),
            )
            .await?;
        Ok(count > 0)
    }

    /// The revocation whose revoke job is `job_id`, with its grant.
    pub async fn revocation_for_job(&self, job_id: i64) -> StoreResult<Option<RevocationWork>> {
        let row: Option<WorkRow> = self
            .fetch_optional(
                Sql::new(
                    "SELECT r.id, r.state, r.email, r.room_id, r.project_gid, r.need_ended_at, \
                     r.due_at, r.decided_at, r.why, r.why_task_gid, r.grant_id, \
                     g.state AS grant_state, g.access AS grant_access, g.docspace_user_id, \
                     CAST(CASE WHEN g.ended_at IS NULL THEN 0 ELSE 1 END AS BIGINT) AS grant_ended, \
                     CAST(CASE WHEN EXISTS (SELECT 1 FROM project_rooms pr \
                        WHERE pr.project_gid = r.project_gid AND pr.room_id = r.room_id \
                        AND pr.state = 'active') THEN 1 ELSE 0 END AS BIGINT) AS room_active \
                     FROM room_revocations r JOIN room_grants g ON g.id = r.grant_id \
                     WHERE r.job_id = $1 ORDER BY r.id DESC LIMIT 1",
                )
                .bind(job_id),
            )
            .await?;
        row.map(RevocationWork::try_from).transpose()
    }

    /// Marks revocation `revocation_id` `removing` (first time: `decided_at`), checks the need
    /// once more, and sets the grant's `revoking_job_id` to `job_id`, all while `owner` holds the
    /// job's lease. `None` when it does not (nothing changes; DocSpace must not be asked).
    /// `NeededAgain` records the revocation `needed_again`; `Gone` changes nothing.
    pub async fn reserve_removal(
        &self,
        job_id: i64,
        owner: &LeaseOwner,
        revocation_id: i64,
        seen_access: i64,
    ) -> StoreResult<Option<RemovalReservation>> {
        self.write(ReserveRemoval {
            job_id,
            owner: owner.clone(),
            revocation_id,
            seen_access,
        })
        .await
    }

    /// At start-up: waiting revocations (and their pending revoke jobs) become due at
    /// `need_ended_at + grace`, so a changed `access.revoke_grace_secs` applies to them. Output:
    /// how many revocations changed.
    pub async fn reschedule_waiting(&self, grace: Duration) -> StoreResult<u64> {
        self.write(RescheduleWaiting {
            grace_ms: duration_ms(grace),
            now: now_ms(),
        })
        .await
    }

    /// The need sweep's last step: every live grant of `project`'s active room whose person has no
    /// open task in it and no open revocation gets one (`no_open_task`, a full grace from now) and
    /// its revoke job. Output: how many were scheduled.
    pub async fn orphan_grants(&self, project: &Gid, grace: Duration) -> StoreResult<u64> {
        self.write(OrphanGrants {
            project: project.clone(),
            grace_ms: duration_ms(grace),
            now: now_ms(),
        })
        .await
    }

    /// The open, assigned task rows directly in `project` (`via_task_gid` = the task) that are
    /// not among `listed` (a sweep's list of the project's incomplete tasks): removed, deleted or
    /// completed without the bridge seeing it. By gid.
    pub async fn open_tasks_not_listed(
        &self,
        project: &Gid,
        listed: &[Gid],
    ) -> StoreResult<Vec<Gid>> {
        let open: Vec<(String,)> = self
            .fetch_all(
                Sql::new(
                    "SELECT t.gid FROM tasks t JOIN task_projects tp ON tp.task_gid = t.gid \
                     WHERE tp.project_gid = $1 AND tp.via_task_gid = t.gid \
                     AND t.completed = 0 AND t.deleted_at IS NULL \
                     AND t.assignee_email IS NOT NULL ORDER BY t.gid",
                )
                .bind(project.as_str()),
            )
            .await?;
        let listed: HashSet<&str> = listed.iter().map(Gid::as_str).collect();
        open.into_iter()
            .filter(|(gid,)| !listed.contains(gid.as_str()))
            .map(|(gid,)| Gid::try_from(gid).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }

    /// Whether `project` is due a need sweep at `now`: never swept, or last swept
    /// [`NEED_SWEEP_EVERY`] ago or more.
    pub async fn need_sweep_due(&self, project: &Gid, now: i64) -> StoreResult<bool> {
        let (count,): (i64,) = self
            .fetch_one(
                Sql::new(
                    "SELECT COUNT(*) FROM projects WHERE gid = $1 \
                     AND (need_swept_at IS NULL OR need_swept_at <= $2)",
                )
                .bind(project.as_str())
                .bind(now.saturating_sub(duration_ms(NEED_SWEEP_EVERY))),
            )
            .await?;
        Ok(count > 0)
    }

    /// Records that `project`'s need sweep that started at `at` completed.
    pub async fn mark_need_swept(&self, project: &Gid, at: i64) -> StoreResult<()> {
        self.write(MarkNeedSwept {
            project: project.clone(),
            at,
        })
        .await?;
        Ok(())
    }

    /// `access plan`: the open revocations of live grants in their projects' active rooms, and
    /// the live grants there whose person has no open task in the project and no revocation yet
    /// (the next sweep schedules them), by email then project.
    pub async fn revocation_plan(&self, project: Option<&Gid>) -> StoreResult<Vec<PlanRow>> {
        let rows: Vec<PlanRaw> = self
            .fetch_all(
                Sql::new(concat!(
                    "SELECT g.email, g.project_gid, p.name AS project_name, g.room_id, g.access, \
                     g.state AS grant_state, g.job_id AS grant_job_id, r.id AS revocation_id, \
                     r.state, r.need_ended_at, r.due_at, r.job_id, r.why, r.why_task_gid, \
                     r.why_source \
                     FROM room_grants g JOIN project_rooms pr ON pr.project_gid = g.project_gid \
                        AND pr.room_id = g.room_id AND pr.state = 'active' \
                     LEFT JOIN projects p ON p.gid = g.project_gid \
                     LEFT JOIN room_revocations r ON r.grant_id = g.id \
                        AND r.state IN ('waiting', 'removing') \
                     WHERE g.ended_at IS NULL AND g.state IN ('granted', 'had_access') \
                     AND ($1 IS NULL OR g.project_gid = $1) \
                     AND (r.id IS NOT NULL OR NOT ",
                    needs!("g.email", "g.project_gid"),
                    ") ORDER BY g.email, g.project_gid"
                ))
                .bind(project.map(Gid::as_str)),
            )
            .await?;
        rows.into_iter().map(PlanRow::try_from).collect()
    }

    /// `access log`: grants and settled (or removing) revocations, newest first, at most `limit`;
    /// and how many entries match in all.
    pub async fn access_log(
        &self,
        filter: &LogFilter,
        limit: i64,
    ) -> StoreResult<(Vec<LogEntry>, i64)> {
        let email = filter.email.as_ref().map(Email::as_str);
        let project = filter.project.as_ref().map(Gid::as_str);
        let rows: Vec<LogRaw> = self
            .fetch_all(
                Sql::new(access_log!(
                    "ORDER BY at DESC, entry DESC, seq DESC LIMIT $3"
                ))
                .bind(email)
                .bind(project)
                .bind(limit),
            )
            .await?;
        let (total,): (i64,) = self
            .fetch_one(
                Sql::new(concat!(
                    "SELECT COUNT(*) FROM (",
                    access_log!(""),
                    ") AS matching"
                ))
                .bind(email)
                .bind(project),
            )
            .await?;
        let entries = rows
            .into_iter()
            .map(LogEntry::try_from)
            .collect::<StoreResult<_>>()?;
        Ok((entries, total))
    }

    /// Open (waiting or removing) revocations: the `bridge_room_revocations_waiting` gauge.
    pub async fn open_revocations(&self) -> StoreResult<i64> {
        let (count,): (i64,) = self
            .fetch_one(Sql::new(
                "SELECT COUNT(*) FROM room_revocations WHERE state IN ('waiting', 'removing')",
            ))
            .await?;
        Ok(count)
    }

    /// Every revocation, by id (tests, inspection).
    pub async fn revocations(&self) -> StoreResult<Vec<RevocationRecord>> {
        self.fetch_all(Sql::new(
            "SELECT id, grant_id, email, room_id, project_gid, need_ended_at, why_task_gid, why, \
             why_source, due_at, state, job_id, decided_at, seen_access, done_at, note, \
             created_at, updated_at FROM room_revocations ORDER BY id",
        ))
        .await
    }
}
