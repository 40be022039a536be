//! What the operator's status page and its JSON API show (issue 14, `docs/design/status-page.md`
//! §6): one [`StatusReport`], gathered from the store and the webhook watcher's memory with a few
//! indexed reads (never a scan of every job), and rendered as HTML (`http::admin::pages`) and as
//! JSON (`http::admin::api`) from the same struct, so the two cannot disagree. No upstream call:
//! opening the page costs Asana and DocSpace nothing.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::rooms::RoomsMode;
use crate::store::{JobStatus, Store, StoreResult};
use crate::webhook::watch::WebhookHealth;

/// Recent jobs shown: failed ones first (newest first), then the newest others.
pub const RECENT_JOBS: i64 = 50;
/// People listed per room; the rest are counted (`more`).
pub const PEOPLE_PER_ROOM: i64 = 25;
/// Pending revocations and latest access events shown.
pub const PENDING_REVOCATIONS: usize = 50;
pub const ACCESS_EVENTS: i64 = 20;

/// Where the report's data comes from, and the page's filter.
pub struct StatusSources<'a> {
    pub store: &'a Store,
    pub health: &'a WebhookHealth,
    pub rooms_mode: RoomsMode,
    /// `access.revoke` on: the access section is gathered.
    pub revoke_on: bool,
    /// Now, in ms (the tests fix it).
    pub now: i64,
    /// `?status=`: only jobs of this status (at most [`RECENT_JOBS`]).
    pub job_filter: Option<JobStatus>,
}

/// Everything the page shows. Times are RFC 3339 UTC strings; no field holds a secret (no
/// webhook secret, token, target URL with its nonce, or session id is ever read into it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    /// `1`: bumped when a field changes meaning or goes.
    pub api_version: u32,
    pub generated_at: String,
    /// What `/readyz` reports as degraded, by part (`webhooks`, `rooms`) then by name.
    pub problems: BTreeMap<String, BTreeMap<String, String>>,
    pub queue: QueueSummary,
    pub webhooks: Vec<WebhookRow>,
    pub jobs: Vec<JobRow>,
    /// The filter the jobs were read with (`None`: failed first, then the newest).
    pub job_filter: Option<String>,
    /// `None` when `rooms.mode = off`.
    pub rooms: Option<RoomsSection>,
    /// `None` unless `access.revoke = on`.
    pub access: Option<AccessSection>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueSummary {
    pub pending: i64,
    pub running: i64,
    /// Running jobs whose lease ran out (their worker died): taken over soon.
    pub running_lease_lapsed: i64,
    pub failed: i64,
    pub done_last_24h: i64,
    /// Age of the oldest pending job (by creation), `None` when none is pending.
    pub oldest_pending_age_secs: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookRow {
    pub name: String,
    /// `project` or `workspace`.
    pub resource_type: String,
    pub project: Option<ProjectRef>,
    pub workspace_gid: Option<String>,
    pub webhook_gid: Option<String>,
    /// The later of the stored and this process's last verified delivery.
    pub last_delivery_at: Option<String>,
    /// The webhook this one replaced (re-registered by the repairer).
    pub replaces: Option<String>,
    /// What the watcher last learnt from Asana (`None`: not checked since this process started).
    pub asana: Option<AsanaView>,
    /// A repair under way or given up, in words.
    pub repair: Option<String>,
    pub reconcile: Option<ReconcileView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectRef {
    pub gid: String,
    pub name: Option<String>,
}

/// Asana's view of a webhook, as the watcher last read it (`GET /webhooks/{gid}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AsanaView {
    pub checked_at: String,
    pub active: bool,
    pub last_failure_at: Option<String>,
    pub last_failure: Option<String>,
    /// Asana answered 404: the webhook is gone.
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconcileView {
    pub last_pass_at: Option<String>,
    pub failures: i64,
    pub last_error: Option<String>,
    /// Age of the reconcile cursor.
    pub lag_secs: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRow {
    pub id: i64,
    /// `pending`, `running`, `done` or `failed`.
    pub status: String,
    pub updated_at: String,
    pub kind: String,
    pub source: String,
    pub task_gid: String,
    pub email: Option<String>,
    pub outcome: Option<String>,
    pub attempts: i64,
    /// What the job did per room, in words (`45 granted (created)`).
    pub rooms: Option<String>,
    pub last_error: Option<String>,
    /// A pending job's next attempt.
    pub next_attempt_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomsSection {
    /// `linked` or `auto`.
    pub mode: String,
    pub projects: Vec<ProjectRooms>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectRooms {
    pub gid: String,
    pub name: Option<String>,
    pub room: Option<RoomView>,
    pub granted: Vec<PersonGrant>,
    /// Live grants beyond the [`PEOPLE_PER_ROOM`] listed.
    pub more: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomView {
    pub id: i64,
    pub title: Option<String>,
    /// `active` or `gone`.
    pub state: Option<String>,
    /// `linked` or `created`.
    pub how: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonGrant {
    pub email: String,
    /// The access name (`Editing`), or the FileShare number when it has none.
    pub access: String,
    /// `granted`, `sending` or `had_access` (found in the room: not the bridge's).
    pub state: String,
    pub task_gid: String,
    pub job_id: i64,
    pub granted_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessSection {
    /// What `access plan` shows, nearest first.
    pub pending: Vec<PendingRevocation>,
    /// What `access log` shows, newest first.
    pub latest: Vec<AccessEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingRevocation {
    pub email: String,
    pub project: String,
    pub room_id: i64,
    pub access: String,
    /// `in the grace period`, `due now`, `removing`, `kept: not granted by us`, `at the next sweep`.
    pub state: String,
    pub due_at: Option<String>,
    pub because: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessEvent {
    pub at: String,
    pub action: String,
    pub email: String,
    pub project: String,
    pub room_id: i64,
    pub access: String,
    pub because: String,
}

impl StatusReport {
    /// Reads everything the page shows.
    pub async fn gather(sources: &StatusSources<'_>) -> StoreResult<StatusReport> {
        let _ = sources;
        todo!("slice A")
    }
}
