//! The status page's reads (issue 14, `docs/design/status-page.md` §6): each an index range or
//! probe, so that opening the page costs the same with ten jobs or ten million. The page also
//! reuses reads that exist (`webhook_repairs`, `reconcile_states`, `known_projects`, `list_jobs`).

use super::conn::Sql;
use super::jobs::OptionalGid;
use super::{JobRecord, JobStatus, Store, StoreResult};
use crate::domain::{Gid, WebhookName};

/// Jobs per state, from index ranges over the small states and the recent done ones only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct QueueOverview {
    pub pending: i64,
    pub running: i64,
    /// Running jobs whose lease ran out by `now`.
    pub running_lease_lapsed: i64,
    pub failed: i64,
    /// Done jobs last updated at or after `done_since`.
    pub done_recent: i64,
    /// When the oldest pending job (the lowest id) was created.
    pub oldest_pending_created_at: Option<i64>,
}

/// A confirmed webhook as the page shows it: never its secret, its target (which holds the
/// registration nonce) or the nonce's hash.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WebhookOverview {
    #[sqlx(try_from = "String")]
    pub name: WebhookName,
    /// `project` or `workspace`.
    pub resource_type: String,
    #[sqlx(try_from = "OptionalGid")]
    pub project_gid: Option<Gid>,
    pub project_name: Option<String>,
    #[sqlx(try_from = "OptionalGid")]
    pub workspace_gid: Option<Gid>,
    #[sqlx(try_from = "OptionalGid")]
    pub webhook_gid: Option<Gid>,
    pub last_delivery_at: Option<i64>,
    pub registered_at: Option<i64>,
    pub created_at: i64,
    /// The webhook this one replaced (a repair).
    pub replaced_name: Option<String>,
}

/// A live grant of a room, among the newest few of its room.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RoomPerson {
    pub room_id: i64,
    pub email: String,
    /// `sending`, `granted` or `had_access`.
    pub state: String,
    /// The FileShare integer.
    pub access: i64,
    pub task_gid: String,
    pub job_id: i64,
    pub granted_at: Option<i64>,
    /// Live grants of the room in all (listed or not).
    pub live_in_room: i64,
}

impl Store {
    /// Jobs per state in one statement of scalar sub-selects, each an index range: `jobs_status`
    /// for pending, running and failed, `jobs_running_lease` for lapsed leases, the partial
    /// `jobs_done_updated` for done jobs since `done_since`, one probe for the oldest pending.
    /// Never `GROUP BY status` over the table: done jobs are most of it.
    pub async fn queue_overview(&self, now: i64, done_since: i64) -> StoreResult<QueueOverview> {
        self.fetch_one(Sql::new(queue_overview_sql()).bind(now).bind(done_since))
            .await
    }

    /// The jobs the page lists: up to `limit` failed ones (newest first), then the newest others
    /// up to `limit` in all; with `status`, the newest `limit` of that status. Failed jobs come
    /// first because they are what needs a hand, however old.
    pub async fn recent_jobs(
        &self,
        status: Option<JobStatus>,
        limit: i64,
    ) -> StoreResult<Vec<JobRecord>> {
        let limit_usize = usize::try_from(limit).unwrap_or(0);
        if status.is_some() {
            return self.list_jobs(status, limit_usize).await;
        }
        let mut jobs: Vec<JobRecord> = self
            .fetch_all(
                Sql::new(select_jobs!(
                    "WHERE status = 'failed' ORDER BY id DESC LIMIT $1"
                ))
                .bind(limit),
            )
            .await?;
        if jobs.len() < limit_usize {
            // The newest `limit` jobs hold at least `limit - failed` others.
            let newest: Vec<JobRecord> = self
                .fetch_all(Sql::new(select_jobs!("ORDER BY id DESC LIMIT $1")).bind(limit))
                .await?;
            let room = limit_usize - jobs.len();
            jobs.extend(
                newest
                    .into_iter()
                    .filter(|job| job.status != JobStatus::Failed)
                    .take(room),
            );
        }
        Ok(jobs)
    }

    /// Every confirmed webhook with its project's name, by name.
    pub async fn webhook_overview(&self) -> StoreResult<Vec<WebhookOverview>> {
        self.fetch_all(Sql::new(
            "SELECT w.name, w.resource_type, w.project_gid, p.name AS project_name, \
             w.workspace_gid, w.webhook_gid, w.last_delivery_at, w.registered_at, w.created_at, \
             w.replaced_name \
             FROM webhooks w LEFT JOIN projects p ON p.gid = w.project_gid \
             WHERE w.unconfirmed_until IS NULL ORDER BY w.name",
        ))
        .await
    }

    /// Up to `per_room` live grants of each room (the latest first), with how many the room has.
    pub async fn room_people(&self, per_room: i64) -> StoreResult<Vec<RoomPerson>> {
        self.fetch_all(
            Sql::new(
                "SELECT room_id, email, state, access, task_gid, job_id, granted_at, live_in_room \
                 FROM (SELECT g.room_id, g.email, g.state, g.access, g.task_gid, g.job_id, \
                    g.granted_at, \
                    ROW_NUMBER() OVER (PARTITION BY g.room_id \
                        ORDER BY COALESCE(g.granted_at, g.created_at) DESC, g.id DESC) AS n, \
                    COUNT(*) OVER (PARTITION BY g.room_id) AS live_in_room \
                    FROM room_grants g WHERE g.ended_at IS NULL) t \
                 WHERE n <= $1 ORDER BY room_id, n",
            )
            .bind(per_room),
        )
        .await
    }
}

/// The queue statement's sub-selects, each on its own (for the plan checks of the tests).
pub const QUEUE_SUBSELECTS: [&str; 6] = [
    "SELECT COUNT(*) FROM jobs WHERE status = 'pending'",
    "SELECT COUNT(*) FROM jobs WHERE status = 'running'",
    "SELECT COUNT(*) FROM jobs WHERE status = 'running' AND lease_until < $1",
    "SELECT COUNT(*) FROM jobs WHERE status = 'failed'",
    "SELECT COUNT(*) FROM jobs WHERE status = 'done' AND updated_at >= $2",
    "SELECT created_at FROM jobs WHERE status = 'pending' ORDER BY id LIMIT 1",
];

/// `$1`: now; `$2`: the start of the done window.
const fn queue_overview_sql() -> &'static str {
    "SELECT \
     (SELECT COUNT(*) FROM jobs WHERE status = 'pending') AS pending, \
     (SELECT COUNT(*) FROM jobs WHERE status = 'running') AS running, \
     (SELECT COUNT(*) FROM jobs WHERE status = 'running' AND lease_until < $1) \
        AS running_lease_lapsed, \
     (SELECT COUNT(*) FROM jobs WHERE status = 'failed') AS failed, \
     (SELECT COUNT(*) FROM jobs WHERE status = 'done' AND updated_at >= $2) AS done_recent, \
     (SELECT created_at FROM jobs WHERE status = 'pending' ORDER BY id LIMIT 1) \
        AS oldest_pending_created_at"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_statement_is_made_of_the_checked_subselects() {
        let sql = queue_overview_sql();
        for sub in QUEUE_SUBSELECTS {
            assert!(sql.contains(&format!("({sub})")), "{sub} not in {sql}");
        }
    }
}
