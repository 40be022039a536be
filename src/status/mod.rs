//! What the operator's status page and its JSON API show (issue 14, `docs/design/status-page.md`
//! §6): one [`StatusReport`], gathered from the store and the webhook watcher's memory with a few
//! indexed reads (never a scan of every job), and rendered as HTML (`http::admin::pages`) and as
//! JSON (`http::admin::api`) from the same struct, so the two cannot disagree. No upstream call:
//! opening the page costs Asana and DocSpace nothing.

pub mod access;
mod jobs_text;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

pub use jobs_text::room_results_text;

use crate::rooms::RoomsMode;
use crate::store::{
    JobRecord, JobStatus, KnownProject, LogFilter, ReconcileState, RoomPerson, Store, StoreResult,
    WebhookOverview, rfc3339_seconds,
};
use crate::webhook::repair::repair_note;
use crate::webhook::watch::{self, WebhookHealth};
use crate::worker::linked_gone_message;

/// Recent jobs shown: failed ones first (newest first), then the newest others.
pub const RECENT_JOBS: i64 = 50;
/// People listed per room; the rest are counted (`more`).
pub const PEOPLE_PER_ROOM: i64 = 25;
/// Pending revocations and latest access events shown.
pub const PENDING_REVOCATIONS: usize = 50;
pub const ACCESS_EVENTS: i64 = 20;
/// The window of the queue's "done" count: the count of every done job would read them all.
pub const DONE_WINDOW_MS: i64 = 24 * 3600 * 1000;

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
    /// Reads everything the page shows: a few indexed reads of the store, run side by side, and
    /// the watcher's memory; nothing from Asana or DocSpace.
    pub async fn gather(sources: &StatusSources<'_>) -> StoreResult<StatusReport> {
        let store = sources.store;
        let now = sources.now;
        let (problems, queue, webhooks, jobs, rooms, access) = tokio::try_join!(
            problems(sources),
            async {
                let overview = store.queue_overview(now, now - DONE_WINDOW_MS).await?;
                Ok(queue_summary(overview, now))
            },
            webhooks(sources),
            async {
                let jobs = store.recent_jobs(sources.job_filter, RECENT_JOBS).await?;
                Ok(jobs.into_iter().map(job_row).collect())
            },
            rooms(sources),
            access_section(sources),
        )?;
        Ok(StatusReport {
            api_version: 1,
            generated_at: rfc3339_seconds(now),
            problems,
            queue,
            webhooks,
            jobs,
            job_filter: sources.job_filter.map(|status| status.to_string()),
            rooms,
            access,
        })
    }
}

/// What `/readyz` reports as degraded: webhooks, and in `linked` mode the rooms found gone.
async fn problems(
    sources: &StatusSources<'_>,
) -> StoreResult<BTreeMap<String, BTreeMap<String, String>>> {
    let mut problems = BTreeMap::new();
    let degraded = sources.health.degraded(sources.store).await?;
    if !degraded.is_empty() {
        problems.insert("webhooks".to_string(), degraded);
    }
    if sources.rooms_mode == RoomsMode::Linked {
        let gone = gone_linked_rooms(sources.store).await?;
        if !gone.is_empty() {
            problems.insert("rooms".to_string(), gone);
        }
    }
    Ok(problems)
}

/// Rooms found deleted or archived, by project: in `linked` mode their jobs fail until an operator
/// links another room or unlinks the project (`/readyz` and the page both report them).
pub(crate) async fn gone_linked_rooms(store: &Store) -> StoreResult<BTreeMap<String, String>> {
    Ok(store
        .gone_rooms()
        .await?
        .into_iter()
        .map(|room| {
            let reason = linked_gone_message(
                &room.project_gid,
                room.project_name.as_deref(),
                room.room_id,
                room.gone_reason.as_deref().unwrap_or("deleted"),
            );
            (room.project_gid.to_string(), reason)
        })
        .collect())
}

async fn webhooks(sources: &StatusSources<'_>) -> StoreResult<Vec<WebhookRow>> {
    let store = sources.store;
    let (hooks, repairs, reconcile) = tokio::try_join!(
        store.webhook_overview(),
        store.webhook_repairs(),
        store.reconcile_states()
    )?;
    let extras = WebhookExtras {
        seen_here: sources
            .health
            .last_deliveries()
            .into_iter()
            .map(|(name, at)| (name.to_string(), at))
            .collect(),
        asana: sources.health.asana_views(),
        repairs: repairs
            .iter()
            .map(|repair| (repair.old_name.to_string(), repair_note(repair)))
            .collect(),
        reconcile: reconcile
            .into_iter()
            .map(|state| (state.gid.to_string(), state))
            .collect(),
    };
    Ok(webhook_rows(hooks, &extras, sources.now))
}

async fn rooms(sources: &StatusSources<'_>) -> StoreResult<Option<RoomsSection>> {
    if sources.rooms_mode == RoomsMode::Off {
        return Ok(None);
    }
    let (projects, people) = tokio::try_join!(
        sources.store.known_projects(),
        sources.store.room_people(PEOPLE_PER_ROOM)
    )?;
    Ok(Some(rooms_section(sources.rooms_mode, projects, people)))
}

async fn access_section(sources: &StatusSources<'_>) -> StoreResult<Option<AccessSection>> {
    if !sources.revoke_on {
        return Ok(None);
    }
    let everyone = LogFilter::default();
    let (plan, (latest, _)) = tokio::try_join!(
        sources.store.revocation_plan(None),
        sources.store.access_log(&everyone, ACCESS_EVENTS)
    )?;
    Ok(Some(AccessSection {
        pending: access::pending_revocations(plan, sources.now, PENDING_REVOCATIONS),
        latest: latest.into_iter().map(access::access_event).collect(),
    }))
}

/// The queue's counts, with the oldest pending job's age at `now`.
fn queue_summary(overview: crate::store::QueueOverview, now: i64) -> QueueSummary {
    QueueSummary {
        pending: overview.pending,
        running: overview.running,
        running_lease_lapsed: overview.running_lease_lapsed,
        failed: overview.failed,
        done_last_24h: overview.done_recent,
        oldest_pending_age_secs: overview
            .oldest_pending_created_at
            .map(|created| (now - created).max(0) / 1000),
    }
}

/// What the page adds to the stored webhooks, by webhook name (project gid for `reconcile`).
#[derive(Default)]
struct WebhookExtras {
    /// Verified deliveries this process saw and may not have written yet.
    seen_here: HashMap<String, i64>,
    asana: BTreeMap<String, watch::AsanaView>,
    /// Pending repairs, in words, by the name of the webhook they replace.
    repairs: HashMap<String, String>,
    reconcile: HashMap<String, ReconcileState>,
}

fn webhook_rows(hooks: Vec<WebhookOverview>, extras: &WebhookExtras, now: i64) -> Vec<WebhookRow> {
    hooks
        .into_iter()
        .map(|hook| {
            let name = hook.name.to_string();
            let last_delivery = [hook.last_delivery_at, extras.seen_here.get(&name).copied()]
                .into_iter()
                .flatten()
                .max();
            let reconcile = hook
                .project_gid
                .as_ref()
                .and_then(|gid| extras.reconcile.get(gid.as_str()))
                .map(|state| reconcile_view(state, now));
            WebhookRow {
                resource_type: hook.resource_type,
                project: hook.project_gid.map(|gid| ProjectRef {
                    gid: gid.to_string(),
                    name: hook.project_name,
                }),
                workspace_gid: hook.workspace_gid.map(|gid| gid.to_string()),
                webhook_gid: hook.webhook_gid.map(|gid| gid.to_string()),
                last_delivery_at: last_delivery.map(rfc3339_seconds),
                replaces: hook.replaced_name,
                asana: extras.asana.get(&name).map(asana_view),
                repair: extras.repairs.get(&name).cloned(),
                reconcile,
                name,
            }
        })
        .collect()
}

fn asana_view(view: &watch::AsanaView) -> AsanaView {
    AsanaView {
        checked_at: rfc3339_seconds(view.checked_at),
        active: view.active,
        last_failure_at: view.last_failure_at.clone(),
        last_failure: view.last_failure_content.clone(),
        deleted: view.deleted,
    }
}

fn reconcile_view(state: &ReconcileState, now: i64) -> ReconcileView {
    ReconcileView {
        last_pass_at: state.reconcile_passed_at.map(rfc3339_seconds),
        failures: state.reconcile_failures,
        last_error: state.reconcile_last_error.clone(),
        lag_secs: state
            .reconcile_cursor
            .map(|cursor| (now - cursor).max(0) / 1000),
    }
}

fn job_row(job: JobRecord) -> JobRow {
    JobRow {
        id: job.id,
        status: job.status.to_string(),
        updated_at: rfc3339_seconds(job.updated_at),
        kind: job.event_kind.to_string(),
        source: job.source.to_string(),
        task_gid: job.task_gid.to_string(),
        email: job.email,
        outcome: job.outcome,
        attempts: job.attempts,
        rooms: room_results_text(job.room_results.as_deref()),
        last_error: job.last_error,
        next_attempt_at: (job.status == JobStatus::Pending).then(|| rfc3339_seconds(job.run_at)),
    }
}

/// Each known project with its room and the newest people granted it.
fn rooms_section(
    mode: RoomsMode,
    projects: Vec<KnownProject>,
    people: Vec<RoomPerson>,
) -> RoomsSection {
    let mut by_room: HashMap<i64, Vec<RoomPerson>> = HashMap::new();
    for person in people {
        by_room.entry(person.room_id).or_default().push(person);
    }
    let projects = projects
        .into_iter()
        .map(|project| {
            let people = project
                .room_id
                .and_then(|id| by_room.remove(&id))
                .unwrap_or_default();
            let live = people.first().map_or(0, |p| p.live_in_room);
            let more = live - i64::try_from(people.len()).unwrap_or(0);
            ProjectRooms {
                gid: project.project_gid.to_string(),
                name: project.project_name,
                room: project.room_id.map(|id| RoomView {
                    id,
                    title: project.room_title,
                    state: project.state,
                    how: project.how,
                }),
                granted: people
                    .into_iter()
                    .map(|person| PersonGrant {
                        email: person.email,
                        access: access::access_name(person.access),
                        state: person.state,
                        task_gid: person.task_gid,
                        job_id: person.job_id,
                        granted_at: person.granted_at.map(rfc3339_seconds),
                    })
                    .collect(),
                more: more.max(0),
            }
        })
        .collect();
    RoomsSection {
        mode: mode.to_string(),
        projects,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overview(
        name: &str,
        project: Option<&str>,
        last_delivery_at: Option<i64>,
    ) -> WebhookOverview {
        WebhookOverview {
            name: name.parse().unwrap(),
            resource_type: "project".into(),
            project_gid: project.map(|gid| gid.parse().unwrap()),
            project_name: project.map(|_| "Website".into()),
            workspace_gid: None,
            webhook_gid: Some("1200000000000123".parse().unwrap()),
            last_delivery_at,
            registered_at: Some(1),
            created_at: 1,
            replaced_name: None,
        }
    }

    #[test]
    fn a_webhook_row_joins_the_watchers_memory_repairs_and_reconcile_passes() {
        let now = 1_700_000_000_000;
        let project = "1200000000000100";
        let extras = WebhookExtras {
            seen_here: HashMap::from([("wh-a".to_string(), now - 1_000)]),
            asana: BTreeMap::from([(
                "wh-a".to_string(),
                watch::AsanaView {
                    checked_at: now - 60_000,
                    active: false,
                    last_failure_at: Some("2023-11-14T20:00:00.000Z".into()),
                    last_failure_content: Some("<script>502</script>".into()),
                    deleted: false,
                },
            )]),
            repairs: HashMap::from([("wh-a".to_string(), "re-registering".to_string())]),
            reconcile: HashMap::from([(
                project.to_string(),
                ReconcileState {
                    gid: project.parse().unwrap(),
                    name: None,
                    created_at: 1,
                    reconcile_cursor: Some(now - 310_000),
                    reconcile_since: None,
                    reconcile_due_at: None,
                    reconcile_claimed_until: None,
                    reconcile_passed_at: Some(now - 300_000),
                    reconcile_failures: 2,
                    reconcile_last_error: Some("Asana 503".into()),
                },
            )]),
        };
        let rows = webhook_rows(
            vec![
                overview("wh-a", Some(project), Some(now - 5_000)),
                overview("wh-b", None, Some(now - 5_000)),
            ],
            &extras,
            now,
        );
        let a = &rows[0];
        assert_eq!(
            a.last_delivery_at,
            Some(rfc3339_seconds(now - 1_000)),
            "the later one"
        );
        let asana = a.asana.as_ref().expect("checked");
        assert!(!asana.active);
        assert_eq!(asana.checked_at, rfc3339_seconds(now - 60_000));
        assert_eq!(asana.last_failure.as_deref(), Some("<script>502</script>"));
        assert_eq!(a.repair.as_deref(), Some("re-registering"));
        let reconcile = a.reconcile.as_ref().expect("a project webhook");
        assert_eq!(reconcile.lag_secs, Some(310));
        assert_eq!(reconcile.failures, 2);
        assert_eq!(reconcile.last_pass_at, Some(rfc3339_seconds(now - 300_000)));

        let b = &rows[1];
        assert_eq!(b.last_delivery_at, Some(rfc3339_seconds(now - 5_000)));
        assert!(
            b.asana.is_none() && b.repair.is_none() && b.reconcile.is_none() && b.project.is_none()
        );
    }

    #[test]
    fn the_oldest_pending_age_is_in_whole_seconds_and_never_negative() {
        let queue = queue_summary(
            crate::store::QueueOverview {
                pending: 1,
                oldest_pending_created_at: Some(10_000),
                ..Default::default()
            },
            52_999,
        );
        assert_eq!(queue.oldest_pending_age_secs, Some(42));
        let clock_behind = queue_summary(
            crate::store::QueueOverview {
                oldest_pending_created_at: Some(60_000),
                ..Default::default()
            },
            1_000,
        );
        assert_eq!(clock_behind.oldest_pending_age_secs, Some(0));
    }
}
