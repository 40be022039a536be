//! Projects and their DocSpace rooms: the mapping (`project_rooms`, one room per project, a room
//! serves one project) and the one creator of a project's room (`room_creations`).
//!
//! A room is created only under a claim no other claimant can hold at the same time: the claim is
//! one row per project, taken by an upsert that succeeds only when the row is free, expired, or
//! already the claimant's own (a job's retry). A job claims only while it holds its lease, checked
//! in the same transaction (on PostgreSQL with a lock on the job's row, which orders it against a
//! claim of the job).

use std::time::Duration;

use super::conn::{Conn, Sql, Write};
use super::{Durability, LeaseOwner, Store, StoreError, StoreResult, duration_ms, now_ms};
use crate::domain::Gid;

/// `SELECT` of project `$1`'s [`RoomCreation`].
macro_rules! select_creation {
    () => {
        "SELECT claim_token, job_id, state, claimed_until, last_error FROM room_creations \
         WHERE project_gid = $1"
    };
}

/// `SELECT` of [`KnownProject`]s from `k` (a relation of project gids named `gid`), followed by
/// the rest of the statement; unknown projects are left out.
macro_rules! select_known {
    ($from:literal, $rest:literal) => {
        concat!(
            "SELECT k.gid AS project_gid, p.name AS project_name, \
             (SELECT COUNT(*) FROM webhooks w WHERE w.project_gid = k.gid \
                AND w.unconfirmed_until IS NULL) AS confirmed_webhooks, \
             r.room_id, r.room_title, r.room_type, r.access, r.how, r.state, r.gone_reason, \
             (SELECT COUNT(*) FROM room_grants g WHERE g.room_id = r.room_id \
                AND g.state = 'granted' AND g.ended_at IS NULL) AS granted \
             FROM ",
            $from,
            " k LEFT JOIN projects p ON p.gid = k.gid \
             LEFT JOIN project_rooms r ON r.project_gid = k.gid \
             WHERE (r.project_gid IS NOT NULL OR EXISTS (SELECT 1 FROM webhooks w \
                WHERE w.project_gid = k.gid AND w.unconfirmed_until IS NULL)) ",
            $rest
        )
    };
}

/// `SELECT` of a [`ProjectRoom`], followed by the rest of the statement.
macro_rules! select_rooms {
    ($rest:literal) => {
        concat!(
            "SELECT r.project_gid, p.name AS project_name, r.room_id, r.room_title, r.room_type, \
             r.access, r.how, r.state, r.gone_reason \
             FROM project_rooms r JOIN projects p ON p.gid = r.project_gid ",
            $rest
        )
    };
}

/// A project's room, as mapped.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProjectRoom {
    #[sqlx(try_from = "String")]
    pub project_gid: Gid,
    pub project_name: Option<String>,
    pub room_id: i64,
    pub room_title: String,
    pub room_type: i64,
    /// The FileShare integer this project's assignees get.
    pub access: i64,
    /// `linked` (by `rooms link`) or `created` (made or adopted, tagged `asana-project:<gid>`).
    pub how: String,
    /// `active` or `gone`.
    pub state: String,
    pub gone_reason: Option<String>,
}

/// A project the bridge knows: one with a confirmed webhook, or with a room mapped. Its room
/// fields are `None` when it has no room.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KnownProject {
    #[sqlx(try_from = "String")]
    pub project_gid: Gid,
    pub project_name: Option<String>,
    /// Confirmed webhooks registered for the project.
    pub confirmed_webhooks: i64,
    pub room_id: Option<i64>,
    pub room_title: Option<String>,
    pub room_type: Option<i64>,
    pub access: Option<i64>,
    /// `linked` or `created`.
    pub how: Option<String>,
    /// `active` or `gone`.
    pub state: Option<String>,
    pub gone_reason: Option<String>,
    /// Live grants this service made in the room.
    pub granted: i64,
}

/// A room to map to a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProjectRoom {
    pub project_gid: Gid,
    pub room_id: i64,
    pub room_title: String,
    pub room_type: i64,
    pub access: i64,
}

/// What `link_project_room` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    Linked,
    /// The room serves another project already; nothing changed.
    RoomTaken {
        project_gid: String,
    },
}

/// Who claims a room's creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimant {
    /// A job, while `owner` holds its lease; its token is `job:<id>`, so its retry re-claims.
    Job { id: i64, owner: LeaseOwner },
    /// A command (`rooms create`, `webhooks create`): `command:<pid>-<random>`.
    Command { token: String },
}

impl Claimant {
    pub fn token(&self) -> String {
        match self {
            Claimant::Job { id, .. } => format!("job:{id}"),
            Claimant::Command { token } => token.clone(),
        }
    }

    fn job_id(&self) -> Option<i64> {
        match self {
            Claimant::Job { id, .. } => Some(*id),
            Claimant::Command { .. } => None,
        }
    }
}

/// What claiming a room's creation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreationClaim {
    /// The claimant holds the claim until `until`: it may search by tag and create.
    Claimed { token: String, until: i64 },
    /// Another claimant holds a live claim.
    HeldBy {
        token: String,
        job_id: Option<i64>,
        until: i64,
    },
    /// A creation failed for good recently; nobody creates before `until` unless forced.
    CoolingDown { error: Option<String>, until: i64 },
    /// The job's lease is no longer the claimant's: nothing was claimed.
    LeaseLost,
}

/// Whether `owner` holds job `job_id`'s lease now; on PostgreSQL the job's row stays locked until
/// the transaction ends, so a claim of the job waits for it (and one that came first is seen).
pub(crate) async fn lease_held(
    conn: &mut Conn<'_>,
    job_id: i64,
    owner: &LeaseOwner,
    now: i64,
) -> sqlx::Result<bool> {
    let sql = match conn {
        Conn::Sqlite(_) => {
            "SELECT id FROM jobs WHERE id = $1 AND lease_owner = $2 AND status = 'running' \
             AND lease_until >= $3"
        }
        Conn::Postgres(_) => {
            "SELECT id FROM jobs WHERE id = $1 AND lease_owner = $2 AND status = 'running' \
             AND lease_until >= $3 FOR UPDATE"
        }
    };
    let row: Option<(i64,)> = conn
        .fetch_optional(Sql::new(sql).bind(job_id).bind(owner.as_str()).bind(now))
        .await?;
    Ok(row.is_some())
}

/// Records a project by gid, and its name when one is known (a known name is never erased).
pub(crate) async fn upsert_project(
    conn: &mut Conn<'_>,
    gid: &Gid,
    name: Option<&str>,
    now: i64,
) -> sqlx::Result<()> {
    conn.execute(upsert_project_sql(gid, name, now)).await?;
    Ok(())
}

/// The statement of [`upsert_project`], to run with others.
pub(crate) fn upsert_project_sql<'a>(gid: &'a Gid, name: Option<&'a str>, now: i64) -> Sql<'a> {
    Sql::new(
        "INSERT INTO projects (gid, name, created_at, updated_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (gid) DO UPDATE SET name = COALESCE(excluded.name, projects.name), \
         updated_at = excluded.updated_at",
    )
    .bind(gid.as_str())
    .bind(name)
    .bind(now)
}

struct UpsertProject {
    gid: Gid,
    name: Option<String>,
}

impl Write for UpsertProject {
    type Output = ();
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<()> {
        upsert_project(conn, &self.gid, self.name.as_deref(), now_ms()).await
    }
}

/// Maps a room to a project by hand (`rooms link`): active, `linked`; any creation claim of the
/// project goes. Refused when the room serves another project.
struct LinkProjectRoom {
    room: NewProjectRoom,
    project_name: Option<String>,
}

impl Write for LinkProjectRoom {
    type Output = LinkOutcome;
    const DURABILITY: Durability = Durability::Synced;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<LinkOutcome> {
        let now = now_ms();
        let room = &self.room;
        let mut tx = conn.begin().await?;
        let other: Option<(String,)> = tx
            .conn()
            .fetch_optional(
                Sql::new("SELECT project_gid FROM project_rooms WHERE room_id = $1 AND project_gid <> $2")
                    .bind(room.room_id)
                    .bind(room.project_gid.as_str()),
            )
            .await?;
        if let Some((project_gid,)) = other {
            return Ok(LinkOutcome::RoomTaken { project_gid });
        }
        upsert_project(
            &mut tx.conn(),
            &room.project_gid,
            self.project_name.as_deref(),
            now,
        )
        .await?;
        tx.conn()
            .execute(
                Sql::new(
                    "INSERT INTO project_rooms (project_gid, room_id, room_title, room_type, access, \
                     how, state, gone_reason, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 'linked', 'active', NULL, $6, $6) \
                     ON CONFLICT (project_gid) DO UPDATE SET room_id = excluded.room_id, \
                     room_title = excluded.room_title, room_type = excluded.room_type, \
                     access = excluded.access, how = 'linked', state = 'active', \
                     gone_reason = NULL, updated_at = excluded.updated_at",
                )
                .bind(room.project_gid.as_str())
                .bind(room.room_id)
                .bind(room.room_title.as_str())
                .bind(room.room_type)
                .bind(room.access)
                .bind(now),
            )
            .await?;
        tx.conn()
            .execute(
                Sql::new("DELETE FROM room_creations WHERE project_gid = $1")
                    .bind(room.project_gid.as_str()),
            )
            .await?;
        tx.commit().await?;
        Ok(LinkOutcome::Linked)
    }
}

/// Forgets a project's room and any creation claim (`rooms unlink`). Output: whether it had one.
struct UnlinkProjectRoom {
    project_gid: Gid,
}

impl Write for UnlinkProjectRoom {
    type Output = bool;
    const DURABILITY: Durability = Durability::Synced;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let mut tx = conn.begin().await?;
        let removed = tx
            .conn()
            .execute(
                Sql::new("DELETE FROM project_rooms WHERE project_gid = $1")
                    .bind(self.project_gid.as_str()),
            )
            .await?;
        tx.conn()
            .execute(
                Sql::new("DELETE FROM room_creations WHERE project_gid = $1")
                    .bind(self.project_gid.as_str()),
            )
            .await?;
        tx.commit().await?;
        Ok(removed == 1)
    }
}

/// Takes the creation claim of a project when it is free, expired, the claimant's own live claim,
/// or cooling down after a failure and `force` (a command's `rooms create`). A live claim is never
/// taken over: its holder may be creating the room right now.
struct ClaimRoomCreation {
    project_gid: Gid,
    claimant: Claimant,
    hold_ms: i64,
    replacing_room_id: Option<i64>,
    force: bool,
}

impl Write for ClaimRoomCreation {
    type Output = CreationClaim;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<CreationClaim> {
        let now = now_ms();
        let until = now.saturating_add(self.hold_ms);
        let token = self.claimant.token();
        let mut tx = conn.begin().await?;
        if let Claimant::Job { id, owner } = &self.claimant
            && !lease_held(&mut tx.conn(), *id, owner, now).await?
        {
            return Ok(CreationClaim::LeaseLost);
        }
        let claimed: Option<(String,)> = tx
            .conn()
            .fetch_optional(
                Sql::new(
                    "INSERT INTO room_creations (project_gid, claim_token, job_id, state, \
                     claimed_until, replacing_room_id, last_error, updated_at) \
                     VALUES ($1, $2, $3, 'claimed', $4, $5, NULL, $6) \
                     ON CONFLICT (project_gid) DO UPDATE SET claim_token = excluded.claim_token, \
                     job_id = excluded.job_id, state = 'claimed', \
                     claimed_until = excluded.claimed_until, \
                     replacing_room_id = excluded.replacing_room_id, last_error = NULL, \
                     updated_at = excluded.updated_at \
                     WHERE room_creations.claimed_until < $6 \
                        OR (room_creations.claim_token = excluded.claim_token \
                            AND room_creations.state = 'claimed') \
                        OR ($7 = 1 AND room_creations.state = 'failed') \
                     RETURNING claim_token",
                )
                .bind(self.project_gid.as_str())
                .bind(token.as_str())
                .bind(self.claimant.job_id())
                .bind(until)
                .bind(self.replacing_room_id)
                .bind(now)
                .bind(i64::from(self.force)),
            )
            .await?;
        let outcome = if claimed.is_some() {
            CreationClaim::Claimed { token, until }
        } else {
            let row: RoomCreation = tx
                .conn()
                .fetch_one(Sql::new(select_creation!()).bind(self.project_gid.as_str()))
                .await?;
            match row.state {
                CreationState::Failed => CreationClaim::CoolingDown {
                    error: row.last_error,
                    until: row.until,
                },
                CreationState::Claimed => CreationClaim::HeldBy {
                    token: row.token,
                    job_id: row.job_id,
                    until: row.until,
                },
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }
}

/// Changes a live claim the token holds: extends it, gives it up, or marks it failed. Output:
/// whether the token held a live claim (nothing changes otherwise).
struct SettleRoomCreation {
    project_gid: Gid,
    token: String,
    action: ClaimAction,
}

enum ClaimAction {
    Extend { until: i64 },
    Release,
    Fail { error: String, until: i64 },
}

impl Write for SettleRoomCreation {
    type Output = bool;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let now = now_ms();
        let changed = match &self.action {
            ClaimAction::Extend { until } => {
                conn.execute(
                    Sql::new(
                        "UPDATE room_creations SET claimed_until = $1, updated_at = $2 \
                         WHERE project_gid = $3 AND claim_token = $4 AND state = 'claimed' \
                         AND claimed_until >= $2",
                    )
                    .bind(*until)
                    .bind(now)
                    .bind(self.project_gid.as_str())
                    .bind(self.token.as_str()),
                )
                .await?
            }
            ClaimAction::Release => {
                conn.execute(
                    Sql::new(
                        "DELETE FROM room_creations WHERE project_gid = $1 AND claim_token = $2 \
                         AND state = 'claimed'",
                    )
                    .bind(self.project_gid.as_str())
                    .bind(self.token.as_str()),
                )
                .await?
            }
            ClaimAction::Fail { error, until } => {
                conn.execute(
                    Sql::new(
                        "UPDATE room_creations SET state = 'failed', last_error = $1, \
                         claimed_until = $2, updated_at = $3 \
                         WHERE project_gid = $4 AND claim_token = $5 AND state = 'claimed'",
                    )
                    .bind(error.as_str())
                    .bind(*until)
                    .bind(now)
                    .bind(self.project_gid.as_str())
                    .bind(self.token.as_str()),
                )
                .await?
            }
        };
        Ok(changed == 1)
    }
}

/// Records the room a claimant created or adopted (tagged `asana-project:<gid>`, `how = created`),
/// and drops its claim, in one transaction. Only while the token holds a live claim; when
/// `replacing` is set, only over that (gone) room's mapping. Output: false, changing nothing,
/// otherwise.
struct RecordCreatedRoom {
    room: NewProjectRoom,
    project_name: Option<String>,
    token: String,
    replacing: Option<i64>,
}

impl Write for RecordCreatedRoom {
    type Output = bool;
    const DURABILITY: Durability = Durability::Synced;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let now = now_ms();
        let room = &self.room;
        let mut tx = conn.begin().await?;
        let claimed = tx
            .conn()
            .execute(
                Sql::new(
                    "DELETE FROM room_creations WHERE project_gid = $1 AND claim_token = $2 \
                     AND state = 'claimed' AND claimed_until >= $3",
                )
                .bind(room.project_gid.as_str())
                .bind(self.token.as_str())
                .bind(now),
            )
            .await?;
        if claimed != 1 {
            return Ok(false);
        }
        upsert_project(
            &mut tx.conn(),
            &room.project_gid,
            self.project_name.as_deref(),
            now,
        )
        .await?;
        let mapped = tx
            .conn()
            .execute(
                Sql::new(
                    "INSERT INTO project_rooms (project_gid, room_id, room_title, room_type, access, \
                     how, state, gone_reason, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 'created', 'active', NULL, $6, $6) \
                     ON CONFLICT (project_gid) DO UPDATE SET room_id = excluded.room_id, \
                     room_title = excluded.room_title, room_type = excluded.room_type, \
                     access = excluded.access, how = 'created', state = 'active', \
                     gone_reason = NULL, updated_at = excluded.updated_at \
                     WHERE project_rooms.room_id = $7",
                )
                .bind(room.project_gid.as_str())
                .bind(room.room_id)
                .bind(room.room_title.as_str())
                .bind(room.room_type)
                .bind(room.access)
                .bind(now)
                .bind(self.replacing),
            )
            .await?;
        if mapped != 1 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// Marks a project's room gone (deleted or archived in DocSpace), if it is still that room.
struct MarkRoomGone {
    project_gid: Gid,
    room_id: i64,
    reason: String,
}

impl Write for MarkRoomGone {
    type Output = bool;
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<bool> {
        let changed = conn
            .execute(
                Sql::new(
                    "UPDATE project_rooms SET state = 'gone', gone_reason = $1, updated_at = $2 \
                     WHERE project_gid = $3 AND room_id = $4",
                )
                .bind(self.reason.as_str())
                .bind(now_ms())
                .bind(self.project_gid.as_str())
                .bind(self.room_id),
            )
            .await?;
        Ok(changed == 1)
    }
}

impl Store {
    /// Records project `gid`, with its name when known (a known name is kept otherwise).
    pub async fn upsert_project(&self, gid: &Gid, name: Option<&str>) -> StoreResult<()> {
        self.write(UpsertProject {
            gid: gid.clone(),
            name: name.map(str::to_string),
        })
        .await
    }

    /// The name recorded for project `gid`: `None` when the project is unknown, `Some(None)` when
    /// it is known without a name.
    pub async fn project_name(&self, gid: &Gid) -> StoreResult<Option<Option<String>>> {
        let row: Option<(Option<String>,)> = self
            .fetch_optional(Sql::new("SELECT name FROM projects WHERE gid = $1").bind(gid.as_str()))
            .await?;
        Ok(row.map(|(name,)| name))
    }

    /// Maps `room` to its project by hand (`rooms link`), dropping any creation claim; refused
    /// when the room serves another project.
    pub async fn link_project_room(
        &self,
        room: NewProjectRoom,
        project_name: Option<&str>,
    ) -> StoreResult<LinkOutcome> {
        self.write(LinkProjectRoom {
            room,
            project_name: project_name.map(str::to_string),
        })
        .await
    }

    /// Forgets project `gid`'s room and any creation claim; grants stay. False when it had none.
    pub async fn unlink_project_room(&self, gid: &Gid) -> StoreResult<bool> {
        self.write(UnlinkProjectRoom {
            project_gid: gid.clone(),
        })
        .await
    }

    /// Project `gid`'s room, active or gone.
    pub async fn project_room(&self, gid: &Gid) -> StoreResult<Option<ProjectRoom>> {
        self.fetch_optional(Sql::new(select_rooms!("WHERE r.project_gid = $1")).bind(gid.as_str()))
            .await
    }

    /// Project `gid` with its room, if the bridge knows it (a confirmed webhook or a room): one
    /// point read, what a job asks per effective project.
    pub async fn project_room_view(&self, gid: &Gid) -> StoreResult<Option<KnownProject>> {
        self.fetch_optional(
            Sql::new(select_known!("(SELECT CAST($1 AS TEXT) AS gid)", "")).bind(gid.as_str()),
        )
        .await
    }

    /// Every known project with its room if any, by project (`rooms list`).
    pub async fn known_projects(&self) -> StoreResult<Vec<KnownProject>> {
        self.fetch_all(Sql::new(select_known!(
            "(SELECT gid FROM projects UNION SELECT project_gid AS gid FROM webhooks \
              WHERE project_gid IS NOT NULL AND unconfirmed_until IS NULL \
              UNION SELECT project_gid AS gid FROM project_rooms)",
            "ORDER BY k.gid"
        )))
        .await
    }

    /// Every mapped room, by project.
    pub async fn list_project_rooms(&self) -> StoreResult<Vec<ProjectRoom>> {
        self.fetch_all(Sql::new(select_rooms!("ORDER BY r.project_gid")))
            .await
    }

    /// Rooms found deleted or archived, by project.
    pub async fn gone_rooms(&self) -> StoreResult<Vec<ProjectRoom>> {
        self.fetch_all(Sql::new(select_rooms!(
            "WHERE r.state = 'gone' ORDER BY r.project_gid"
        )))
        .await
    }

    /// Claims the creation of project `gid`'s room for `hold` (see [`CreationClaim`]). `force`
    /// ends a failed creation's cool-down (a command's `rooms create`); a live claim stays.
    pub async fn claim_room_creation(
        &self,
        gid: &Gid,
        claimant: &Claimant,
        hold: Duration,
        replacing_room_id: Option<i64>,
        force: bool,
    ) -> StoreResult<CreationClaim> {
        self.write(ClaimRoomCreation {
            project_gid: gid.clone(),
            claimant: claimant.clone(),
            hold_ms: duration_ms(hold),
            replacing_room_id,
            force,
        })
        .await
    }

    /// Extends a live claim `token` holds by `hold` from now; false (no POST then) when it does
    /// not hold one any more.
    pub async fn extend_room_creation(
        &self,
        gid: &Gid,
        token: &str,
        hold: Duration,
    ) -> StoreResult<bool> {
        self.write(SettleRoomCreation {
            project_gid: gid.clone(),
            token: token.to_string(),
            action: ClaimAction::Extend {
                until: now_ms().saturating_add(duration_ms(hold)),
            },
        })
        .await
    }

    /// Gives up the claim `token` holds (a transient failure): the next claimant searches again.
    pub async fn release_room_creation(&self, gid: &Gid, token: &str) -> StoreResult<bool> {
        self.write(SettleRoomCreation {
            project_gid: gid.clone(),
            token: token.to_string(),
            action: ClaimAction::Release,
        })
        .await
    }

    /// Records that creating the room failed for good with DocSpace's `error`: nobody creates it
    /// for `cool_down` unless forced.
    pub async fn fail_room_creation(
        &self,
        gid: &Gid,
        token: &str,
        error: String,
        cool_down: Duration,
    ) -> StoreResult<bool> {
        self.write(SettleRoomCreation {
            project_gid: gid.clone(),
            token: token.to_string(),
            action: ClaimAction::Fail {
                error,
                until: now_ms().saturating_add(duration_ms(cool_down)),
            },
        })
        .await
    }

    /// Records the room `token`'s claimant created or adopted, replacing the mapping of the gone
    /// room `replacing` if set, and drops the claim. False, changing nothing, when `token` no
    /// longer holds a live claim or the mapping is not the one to replace.
    pub async fn record_created_room(
        &self,
        room: NewProjectRoom,
        project_name: Option<&str>,
        token: &str,
        replacing: Option<i64>,
    ) -> StoreResult<bool> {
        self.write(RecordCreatedRoom {
            room,
            project_name: project_name.map(str::to_string),
            token: token.to_string(),
            replacing,
        })
        .await
    }

    /// Marks project `gid`'s room `room_id` gone (`deleted` or `archived`), if still mapped.
    pub async fn mark_room_gone(&self, gid: &Gid, room_id: i64, reason: &str) -> StoreResult<bool> {
        self.write(MarkRoomGone {
            project_gid: gid.clone(),
            room_id,
            reason: reason.to_string(),
        })
        .await
    }

    /// The creation claim of project `gid`, if any.
    pub async fn room_creation(&self, gid: &Gid) -> StoreResult<Option<RoomCreation>> {
        self.fetch_optional(Sql::new(select_creation!()).bind(gid.as_str()))
            .await
    }
}

impl TryFrom<String> for CreationState {
    type Error = StoreError;
    fn try_from(stored: String) -> StoreResult<CreationState> {
        match stored.as_str() {
            "claimed" => Ok(CreationState::Claimed),
            "failed" => Ok(CreationState::Failed),
            other => Err(StoreError::Corrupt(format!(
                "unknown room creation state {other:?}"
            ))),
        }
    }
}

/// A creation claim's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreationState {
    Claimed,
    Failed,
}

/// A project's creation claim, as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RoomCreation {
    #[sqlx(rename = "claim_token")]
    pub token: String,
    pub job_id: Option<i64>,
    #[sqlx(try_from = "String")]
    pub state: CreationState,
    #[sqlx(rename = "claimed_until")]
    /// Claimed: when the claim runs out; failed: when the cool-down ends.
    pub until: i64,
    pub last_error: Option<String>,
}
