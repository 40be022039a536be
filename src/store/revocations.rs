//! The revocations ledger (issue 13, `docs/design/revocation.md` §1–§3): when a person stops
//! needing a project's room, one row per live grant of that room notes the time, why, and when the
//! access may go; a `revoke` job (due then) reads the room's members and removes the access only
//! if the bridge granted it and it is still what was granted. The need itself is never stored: a
//! person needs project P's room while the `tasks` rows show them the assignee of an incomplete,
//! undeleted task counting toward P (`task_projects`, subtasks through their parents).
//!
//! Revocations are scheduled and cancelled inside the settlement of the job that read the task
//! (`Confirmations::lifecycle`), so the task row and the ledger change together.

use std::time::Duration;

use super::{LeaseOwner, Store, StoreError, StoreResult};
use crate::domain::{Email, Gid};

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

impl TryFrom<String> for NeedEnd {
    type Error = StoreError;
    fn try_from(stored: String) -> StoreResult<NeedEnd> {
        stored
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("unknown need end {stored:?}")))
    }
}

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

impl TryFrom<String> for RevocationState {
    type Error = StoreError;
    fn try_from(stored: String) -> StoreResult<RevocationState> {
        stored
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("unknown revocation state {stored:?}")))
    }
}

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
    pub grant_state: super::GrantState,
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
    pub grant_state: super::GrantState,
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

impl Store {
    /// Whether `email` is the assignee of an incomplete, undeleted task counting toward `project`.
    pub async fn needs_room(&self, email: &Email, project: &Gid) -> StoreResult<bool> {
        let _ = (email, project);
        todo!("slice A")
    }

    /// The revocation whose revoke job is `job_id`, with its grant.
    pub async fn revocation_for_job(&self, job_id: i64) -> StoreResult<Option<RevocationWork>> {
        let _ = job_id;
        todo!("slice A")
    }

    /// Marks revocation `revocation_id` `removing` (first time: `decided_at`), checks the need
    /// once more, and sets the grant's `revoking_job_id` to `job_id`, all while `owner` holds the
    /// job's lease. `None` when it does not (nothing changes; DocSpace must not be asked).
    pub async fn reserve_removal(
        &self,
        job_id: i64,
        owner: &LeaseOwner,
        revocation_id: i64,
        seen_access: i64,
    ) -> StoreResult<Option<RemovalReservation>> {
        let _ = (job_id, owner, revocation_id, seen_access);
        todo!("slice A")
    }

    /// At start-up: waiting revocations (and their pending revoke jobs) become due at
    /// `need_ended_at + grace`, so a changed `access.revoke_grace_secs` applies to them.
    pub async fn reschedule_waiting(&self, grace: Duration) -> StoreResult<u64> {
        let _ = grace;
        todo!("slice A")
    }

    /// The need sweep's last step: every live grant of `project`'s active room whose person has no
    /// open task in it and no open revocation gets one (`no_open_task`, a full grace from now) and
    /// its revoke job. Output: how many were scheduled.
    pub async fn orphan_grants(&self, project: &Gid, grace: Duration) -> StoreResult<u64> {
        let _ = (project, grace);
        todo!("slice A")
    }

    /// The open task rows directly in `project` (`via_task_gid` = the task) that are not among
    /// `listed` (a sweep's list of the project's incomplete tasks): removed, deleted or completed
    /// without the bridge seeing it.
    pub async fn open_tasks_not_listed(
        &self,
        project: &Gid,
        listed: &[Gid],
    ) -> StoreResult<Vec<Gid>> {
        let _ = (project, listed);
        todo!("slice A")
    }

    /// Whether `project` is due a need sweep (never swept, or over a day ago), and marking it swept.
    pub async fn need_sweep_due(&self, project: &Gid, now: i64) -> StoreResult<bool> {
        let _ = (project, now);
        todo!("slice A")
    }

    pub async fn mark_need_swept(&self, project: &Gid, at: i64) -> StoreResult<()> {
        let _ = (project, at);
        todo!("slice A")
    }

    /// `access plan`: open revocations and live grants without a need, by email then project.
    pub async fn revocation_plan(&self, project: Option<&Gid>) -> StoreResult<Vec<PlanRow>> {
        let _ = project;
        todo!("slice A")
    }

    /// `access log`: grants and settled revocations, newest first, at most `limit`; and how many
    /// entries match in all.
    pub async fn access_log(
        &self,
        filter: &LogFilter,
        limit: i64,
    ) -> StoreResult<(Vec<LogEntry>, i64)> {
        let _ = (filter, limit);
        todo!("slice A")
    }

    /// Open (waiting or removing) revocations: the `bridge_room_revocations_waiting` gauge.
    pub async fn open_revocations(&self) -> StoreResult<i64> {
        todo!("slice A")
    }
}
