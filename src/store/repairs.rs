//! Webhooks the watcher found deleted or inactive at Asana, until a new one replaces them: one row
//! per watched resource (however many replicas find the same webhook gone), claimed by one
//! repairer at a time, retried with backoff. Completing a repair forgets the old webhook and its
//! secret and asks the project's catch-up pass, in one transaction.

use std::collections::HashMap;
use std::time::Duration;

use super::conn::{Conn, Sql, Write};
use super::reconcile::catch_up_sql;
use super::{Durability, Store, StoreError, StoreResult, duration_ms, now_ms};
use crate::domain::{Gid, WatchedResource, WebhookName};

/// A webhook found gone at Asana: what the watcher asks to be repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairRequest {
    /// The webhook's name here; its row says what it watches.
    pub old_name: WebhookName,
    /// `deleted at Asana (404)` or `inactive at Asana: <last failure>`.
    pub found: String,
    /// The old webhook's last verified delivery (else its registration): where the catch-up starts.
    pub since: i64,
}

/// A pending repair, as `/readyz`, `webhooks list` and the repairer see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRepair {
    pub resource: WatchedResource,
    pub old_name: WebhookName,
    pub old_webhook_gid: Gid,
    pub found: String,
    pub since: i64,
    /// Failed attempts so far.
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
}

/// A repair this process holds the claim on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairClaim {
    pub repair: WebhookRepair,
    pub token: String,
}

#[derive(sqlx::FromRow)]
struct RepairRow {
    resource_gid: String,
    resource_type: String,
    old_name: String,
    old_webhook_gid: String,
    found: String,
    since: i64,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    created_at: i64,
}

impl TryFrom<RepairRow> for WebhookRepair {
    type Error = StoreError;

    fn try_from(row: RepairRow) -> StoreResult<WebhookRepair> {
        let corrupt = |err: crate::domain::ParseError| {
            StoreError::Corrupt(format!("webhook repair of {}: {err}", row.old_name))
        };
        let gid = Gid::try_from(row.resource_gid.clone()).map_err(corrupt)?;
        Ok(WebhookRepair {
            resource: WatchedResource::from_stored(&row.resource_type, gid).map_err(corrupt)?,
            old_name: WebhookName::try_from(row.old_name.clone()).map_err(corrupt)?,
            old_webhook_gid: Gid::try_from(row.old_webhook_gid.clone()).map_err(corrupt)?,
            found: row.found,
            since: row.since,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            last_error: row.last_error,
            created_at: row.created_at,
        })
    }
}

/// Inserts the repair of the webhook `old_name` (what it watches is read from its row), unless
/// its resource has one already. Output: whether a repair of `old_name` is pending now.
struct RequestRepair {
    request: RepairRequest,
    now: i64,
}

impl Write for RequestRepair {
    type Output = bool;
    const DURABILITY: Durability = Durability::Synced;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let mut tx = conn.begin().await?;
        tx.conn()
            .execute(
                Sql::new(
                    "INSERT INTO webhook_repairs (resource_gid, resource_type, old_name, \
                     old_webhook_gid, found, since, next_attempt_at, created_at, updated_at) \
                     SELECT COALESCE(w.project_gid, w.workspace_gid), w.resource_type, w.name, \
                        w.webhook_gid, $2, $3, $4, $4, $4 \
                     FROM webhooks w \
                     WHERE w.name = $1 AND w.webhook_gid IS NOT NULL \
                       AND w.unconfirmed_until IS NULL \
                       AND COALESCE(w.project_gid, w.workspace_gid) IS NOT NULL \
                     ON CONFLICT (resource_gid) DO NOTHING",
                )
                .bind(self.request.old_name.as_str())
                .bind(self.request.found.as_str())
                .bind(self.request.since)
                .bind(self.now),
            )
            .await?;
        let pending: Option<(String,)> = tx
            .conn()
            .fetch_optional(
                Sql::new("SELECT old_name FROM webhook_repairs WHERE old_name = $1")
                    .bind(self.request.old_name.as_str()),
            )
            .await?;
        tx.commit().await?;
        Ok(pending.is_some())
    }
}

/// Claims the repair due first that nobody holds.
struct ClaimDueRepair {
    token: String,
    claimed_until: i64,
    now: i64,
}

/// The claim of the due repair; `$lock` is what PostgreSQL adds to pass by a row another replica
/// is claiming (SQLite has one writer).
macro_rules! claim_repair {
    ($lock:literal) => {
        concat!(
            "UPDATE webhook_repairs SET claim_token = $1, claimed_until = $2, updated_at = $3 \
             WHERE resource_gid = (SELECT resource_gid FROM webhook_repairs \
                WHERE next_attempt_at <= $3 AND (claimed_until IS NULL OR claimed_until < $3) \
                ORDER BY next_attempt_at, resource_gid LIMIT 1",
            $lock,
            ") RETURNING resource_gid, resource_type, old_name, old_webhook_gid, found, since, \
                attempts, next_attempt_at, last_error, created_at"
        )
    };
}
const CLAIM_REPAIR_SQLITE: &str = claim_repair!("");
const CLAIM_REPAIR_POSTGRES: &str = claim_repair!(" FOR UPDATE SKIP LOCKED");

impl Write for ClaimDueRepair {
    type Output = Option<RepairRow>;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<Option<RepairRow>> {
        let sql = match conn {
            Conn::Sqlite(_) => CLAIM_REPAIR_SQLITE,
            Conn::Postgres(_) => CLAIM_REPAIR_POSTGRES,
        };
        conn.fetch_optional(
            Sql::new(sql)
                .bind(self.token.as_str())
                .bind(self.claimed_until)
                .bind(self.now),
        )
        .await
    }
}

/// Counts a failed attempt, schedules the next one and releases the claim.
struct FailRepair {
    resource_gid: Gid,
    token: String,
    error: String,
    next_attempt_at: i64,
    now: i64,
}

impl Write for FailRepair {
    type Output = bool;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let updated = conn
            .execute(
                Sql::new(
                    "UPDATE webhook_repairs SET attempts = attempts + 1, last_error = $1, \
                     next_attempt_at = $2, claim_token = NULL, claimed_until = NULL, \
                     updated_at = $3 \
                     WHERE resource_gid = $4 AND claim_token = $5",
                )
                .bind(self.error.as_str())
                .bind(self.next_attempt_at)
                .bind(self.now)
                .bind(self.resource_gid.as_str())
                .bind(self.token.as_str()),
            )
            .await?;
        Ok(updated == 1)
    }
}

/// Deletes a claimed repair (its old webhook is gone here already).
struct DropRepair {
    resource_gid: Gid,
    token: String,
}

impl Write for DropRepair {
    type Output = bool;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let deleted = conn
            .execute(
                Sql::new(
                    "DELETE FROM webhook_repairs WHERE resource_gid = $1 AND claim_token = $2",
                )
                .bind(self.resource_gid.as_str())
                .bind(self.token.as_str()),
            )
            .await?;
        Ok(deleted == 1)
    }
}

/// The end of a repair, all or nothing, under its claim: the repair row goes, the old webhook and
/// any window for its name go (its secret verifies nothing from then on), the new webhook
/// records whom it replaced, and a project's catch-up pass is asked for from `since`.
struct CompleteRepair {
    claim: RepairClaim,
    new_name: WebhookName,
    now: i64,
}

impl Write for CompleteRepair {
    type Output = bool;
    const DURABILITY: Durability = Durability::Synced;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let repair = &self.claim.repair;
        let old = repair.old_name.as_str();
        let mut tx = conn.begin().await?;
        let claimed = tx
            .conn()
            .execute(
                Sql::new(
                    "DELETE FROM webhook_repairs WHERE resource_gid = $1 AND claim_token = $2",
                )
                .bind(repair.resource.gid().as_str())
                .bind(self.claim.token.as_str()),
            )
            .await?;
        if claimed != 1 {
            return Ok(false);
        }
        tx.conn()
            .execute(Sql::new("DELETE FROM webhooks WHERE name = $1").bind(old))
            .await?;
        tx.conn()
            .execute(Sql::new("DELETE FROM pending_registrations WHERE name = $1").bind(old))
            .await?;
        tx.conn()
            .execute(
                Sql::new("UPDATE webhooks SET replaced_name = $1 WHERE name = $2")
                    .bind(old)
                    .bind(self.new_name.as_str()),
            )
            .await?;
        if let WatchedResource::Project(project) = &repair.resource {
            let mut conn = tx.conn();
            let catch_up = catch_up_sql(&conn, project, repair.since, self.now);
            conn.execute(catch_up).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

impl Store {
    /// Asks for the webhook `old_name` to be registered again. With many replicas finding the
    /// same webhook gone, one row per resource. True when a repair of `old_name` is pending (asked
    /// now or before); false for a name without a confirmed registration (no gid, no resource),
    /// or when another webhook of its resource is being repaired.
    pub async fn request_webhook_repair(&self, request: &RepairRequest) -> StoreResult<bool> {
        self.write(RequestRepair {
            request: request.clone(),
            now: now_ms(),
        })
        .await
    }

    /// Claims the repair due first that nobody holds, under `token`, for `hold`.
    pub async fn claim_due_repair(
        &self,
        token: &str,
        hold: Duration,
    ) -> StoreResult<Option<RepairClaim>> {
        let now = now_ms();
        let row = self
            .write(ClaimDueRepair {
                token: token.to_string(),
                claimed_until: now.saturating_add(duration_ms(hold)),
                now,
            })
            .await?;
        row.map(|row| {
            Ok(RepairClaim {
                repair: WebhookRepair::try_from(row)?,
                token: token.to_string(),
            })
        })
        .transpose()
    }

    /// Counts a failed attempt with its `error`, makes the repair due again after `retry_in`
    /// and releases the claim. False when the claim was lost (nothing written).
    pub async fn fail_repair(
        &self,
        claim: &RepairClaim,
        error: &str,
        retry_in: Duration,
    ) -> StoreResult<bool> {
        let now = now_ms();
        self.write(FailRepair {
            resource_gid: claim.repair.resource.gid().clone(),
            token: claim.token.clone(),
            error: error.to_string(),
            next_attempt_at: now.saturating_add(duration_ms(retry_in)),
            now,
        })
        .await
    }

    /// Forgets a claimed repair whose old webhook is no longer registered here (an operator
    /// deleted it). False when the claim was lost.
    pub async fn drop_webhook_repair(&self, claim: &RepairClaim) -> StoreResult<bool> {
        self.write(DropRepair {
            resource_gid: claim.repair.resource.gid().clone(),
            token: claim.token.clone(),
        })
        .await
    }

    /// Ends a claimed repair now that `new_name` replaces the old webhook: see [`CompleteRepair`].
    /// False, with nothing written, when the claim was lost.
    pub async fn complete_webhook_repair(
        &self,
        claim: &RepairClaim,
        new_name: &WebhookName,
    ) -> StoreResult<bool> {
        self.write(CompleteRepair {
            claim: claim.clone(),
            new_name: new_name.clone(),
            now: now_ms(),
        })
        .await
    }

    /// The confirmed webhook of `resource`, other than `old_name`, registered after `after` (the
    /// dead webhook's registration): one that a repair confirmed before it died, or that replaced
    /// another dead webhook of the same resource.
    pub async fn replacement_webhook(
        &self,
        resource: &WatchedResource,
        old_name: &WebhookName,
        after: i64,
    ) -> StoreResult<Option<WebhookName>> {
        let row: Option<(String,)> = self
            .fetch_optional(
                Sql::new(
                    "SELECT name FROM webhooks \
                     WHERE resource_type = $1 AND COALESCE(project_gid, workspace_gid) = $2 \
                       AND name <> $3 AND unconfirmed_until IS NULL AND registered_at > $4 \
                     ORDER BY registered_at DESC LIMIT 1",
                )
                .bind(resource.resource_type())
                .bind(resource.gid().as_str())
                .bind(old_name.as_str())
                .bind(after),
            )
            .await?;
        row.map(|(name,)| {
            WebhookName::try_from(name).map_err(|err| StoreError::Corrupt(err.to_string()))
        })
        .transpose()
    }

    /// Every pending repair, by old name.
    pub async fn webhook_repairs(&self) -> StoreResult<Vec<WebhookRepair>> {
        let rows: Vec<RepairRow> = self
            .fetch_all(Sql::new(
                "SELECT resource_gid, resource_type, old_name, old_webhook_gid, found, since, \
                 attempts, next_attempt_at, last_error, created_at FROM webhook_repairs \
                 ORDER BY old_name",
            ))
            .await?;
        rows.into_iter().map(WebhookRepair::try_from).collect()
    }

    /// Webhooks the service registered in place of another: new name → old name.
    pub async fn replaced_names(&self) -> StoreResult<HashMap<String, String>> {
        let rows: Vec<(String, String)> = self
            .fetch_all(Sql::new(
                "SELECT name, replaced_name FROM webhooks WHERE replaced_name IS NOT NULL",
            ))
            .await?;
        Ok(rows.into_iter().collect())
    }
}
