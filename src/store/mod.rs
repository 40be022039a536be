//! The durable state: webhook secrets, the job queue and the invitations ledger, on SQLite (the
//! embedded default) or PostgreSQL (several replicas). Both speak the same SQL where they can:
//! a statement is written once (`conn::Sql`) and runs on a connection the backend lends. A write is
//! plain data (`conn::Write`) that [`Store::write`] hands to SQLite's group-commit writer or runs on
//! a PostgreSQL connection.
//!
//! Where things happen: `jobs` enqueues, claims (`ClaimDueJobs`) and settles jobs after an
//! attempt (`SettleJob`: done, due again later, or failed; `RetryFailedJobs` for `jobs retry`);
//! `invitations` reserves (`ReserveInvitation`) and confirms an invitation; `grants` does the same
//! for room shares (`ReserveGrant`, `ConfirmGrant`); `rooms` maps projects to DocSpace rooms and
//! holds the one creator of a project's room (`ClaimRoomCreation`); `tasks` keeps every task a
//! job read; `webhooks` keeps
//! secrets and registrations; `status` holds the status page's indexed reads and `admin_sessions`
//! its sign-ins; `retention` deletes old finished jobs; `schema` compares the
//! store's migrations with this binary's.
//!
//! Opening a store does not change it: only [`Store::open_for_service`] (`serve`) and
//! [`Store::open_and_migrate`] (`migrate`) create a missing SQLite file or apply migrations.

/// `TryFrom<String>` for an enum stored by its strum name (`EnumString`): a value this binary does
/// not know means the store is corrupt, named by `what`.
macro_rules! stored_enum {
    ($type:ty, $what:literal) => {
        impl TryFrom<String> for $type {
            type Error = StoreError;
            fn try_from(stored: String) -> StoreResult<$type> {
                stored.parse().map_err(|_| {
                    StoreError::Corrupt(format!(concat!("unknown ", $what, " {:?}"), stored))
                })
            }
        }
    };
}

mod admin_sessions;
mod conn;
mod grants;
mod invitations;
#[macro_use]
mod jobs;
mod reconcile;
mod repairs;
mod retention;
mod revocations;
mod rooms;
mod schema;
mod sqlite_writer;
mod status;
mod tasks;
mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use conn::{Conn, Row, Sql, Write};
pub(crate) use sqlite_writer::Durability;
use sqlite_writer::SqliteWriter;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite};

pub use admin_sessions::AdminSession;
pub use grants::{GrantRecord, GrantRequest, GrantReservation, GrantState};
pub use invitations::{InvitationState, Reservation};
pub use jobs::{
    ClaimedJob, Confirmations, EnqueueOutcome, JobRecord, JobStatus, LeaseOwner, NewJob, Outcome,
    QueueCounts, RetryRequest, Settlement,
};
pub use reconcile::{ClaimOutcome, ReconcileCandidate, ReconcileClaim, ReconcileState};
pub use repairs::{RepairClaim, RepairRequest, WebhookRepair};
pub use revocations::{
    LogEntry, LogFilter, NEED_SWEEP_EVERY, NeedEnd, PlanRow, RemovalReservation, RevocationEnd,
    RevocationRecord, RevocationState, RevocationWork,
};
pub use rooms::{
    Claimant, CreationClaim, CreationState, KnownProject, LinkOutcome, NewProjectRoom, ProjectRoom,
    RoomCreation,
};
pub use schema::{AppliedMigration, SchemaError};
pub use status::{QUEUE_SUBSELECTS, QueueOverview, RoomPerson, WebhookOverview};
pub use tasks::{TaskProject, TaskRead, TaskRecord};
pub use webhooks::{
    HandshakeOutcome, RegisteredWebhook, RegistrationOpening, RegistrationWindow, SecretLookup,
    UsableWebhook, WebhookRecord,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database commit failed: {0}")]
    Commit(String),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Schema(SchemaError),
    /// `open` never creates a store: a mistyped path must not yield an empty one.
    #[error("there is no SQLite store at {path}: run `serve` (or `migrate`) first to create it")]
    Missing { path: String },
    /// Only the URL's scheme: the rest may hold a password.
    #[error("the database url (scheme {0:?}) is neither sqlite:// nor postgres://")]
    UnsupportedUrl(String),
    #[error("could not create the database folder {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("could not create the database file {path}: {source}")]
    CreateFile {
        path: String,
        source: std::io::Error,
    },
    #[error("backup failed: {0}")]
    Backup(String),
    #[error("unexpected value in the database: {0}")]
    Corrupt(String),
    /// The SQLite writer's queue is full: the caller should retry shortly.
    #[error("too many writes are waiting for the database")]
    Busy,
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
enum Backend {
    /// One writer (SQLite allows one at a time) that commits writes in groups, and several
    /// readers, which WAL lets run beside it.
    Sqlite {
        writer: SqliteWriter,
        reader: SqlitePool,
    },
    Postgres {
        pool: PgPool,
    },
}

/// A connection borrowed from a pool until dropped.
enum Pooled {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl Pooled {
    fn conn(&mut self) -> Conn<'_> {
        match self {
            Pooled::Sqlite(conn) => Conn::Sqlite(conn),
            Pooled::Postgres(conn) => Conn::Postgres(conn),
        }
    }
}

/// Pool sizes and timeouts.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// SQLite: how many writes may wait for the writer before requests are refused.
    pub max_queued_writes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            max_queued_writes: 1024,
        }
    }
}

#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.kind())
            .finish()
    }
}

/// Whether opening may create a missing SQLite file (and its folder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Create {
    IfMissing,
    Never,
}

impl Store {
    /// The store as every command but `serve` and `migrate` opens it: it must exist and have
    /// exactly this binary's schema. Changes nothing, creates nothing.
    pub async fn open(url: &str, options: &StoreOptions) -> StoreResult<Store> {
        let store = Store::connect(url, options, Create::Never).await?;
        if let Err(err) = store.require_current_schema().await {
            store.close().await;
            return Err(err);
        }
        Ok(store)
    }

    /// An existing store whatever its schema (for `backup`, which copies it as it is).
    pub async fn open_as_is(url: &str, options: &StoreOptions) -> StoreResult<Store> {
        Store::connect(url, options, Create::Never).await
    }

    /// Opens the store, creating a missing SQLite file, and applies the migrations it lacks
    /// (PostgreSQL: under the advisory lock, so replicas starting together are safe). Returns
    /// what it applied. A newer schema is refused.
    pub async fn open_and_migrate(
        url: &str,
        options: &StoreOptions,
    ) -> StoreResult<(Store, Vec<AppliedMigration>)> {
        let store = Store::connect(url, options, Create::IfMissing).await?;
        match store.apply_migrations().await {
            Ok(applied) => Ok((store, applied)),
            Err(err) => {
                store.close().await;
                Err(err)
            }
        }
    }

    /// [`Store::open_and_migrate`] without the list: for tests, the demo and the benchmarks.
    pub async fn open_migrated(url: &str, options: &StoreOptions) -> StoreResult<Store> {
        Ok(Store::open_and_migrate(url, options).await?.0)
    }

    /// The store as `serve` opens it: created and migrated, and on SQLite, which one process
    /// owns, whatever the previous process left running is due again.
    pub async fn open_for_service(url: &str, options: &StoreOptions) -> StoreResult<Store> {
        let (store, applied) = Store::open_and_migrate(url, options).await?;
        for migration in &applied {
            tracing::info!(
                version = migration.version,
                description = %migration.description,
                "applied a migration"
            );
        }
        if let Backend::Sqlite { .. } = store.backend {
            let requeued = store.requeue_abandoned_jobs().await?;
            if requeued > 0 {
                tracing::info!(
                    jobs = requeued,
                    "jobs interrupted by the previous run are due again"
                );
            }
        }
        Ok(store)
    }

    async fn connect(url: &str, options: &StoreOptions, create: Create) -> StoreResult<Store> {
        if url.starts_with("sqlite:") {
            Store::connect_sqlite(url, options, create).await
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Store::connect_postgres(url, options).await
        } else {
            Err(StoreError::UnsupportedUrl(url_scheme(url).to_string()))
        }
    }

    async fn connect_sqlite(
        url: &str,
        options: &StoreOptions,
        create: Create,
    ) -> StoreResult<Store> {
        let connect = SqliteConnectOptions::from_str(url)?
            .create_if_missing(create == Create::IfMissing)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before the delivery is acknowledged.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let file = connect.get_filename();
        if !is_in_memory(url) {
            match create {
                Create::IfMissing => {
                    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                        create_private_dir(parent)?;
                    }
                    // SQLite gives its -wal and -shm files the database file's mode: 0600
                    // covers all three.
                    create_private_file(file).map_err(|source| StoreError::CreateFile {
                        path: file.display().to_string(),
                        source,
                    })?;
                }
                Create::Never => {
                    if !file.is_file() {
                        return Err(StoreError::Missing {
                            path: file.display().to_string(),
                        });
                    }
                }
            }
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await?;
        let writer = SqliteWriter::start(writer, options.max_queued_writes);
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.read_only(true).create_if_missing(false))
            .await?;
        Ok(Store {
            backend: Backend::Sqlite { writer, reader },
        })
    }

    async fn connect_postgres(url: &str, options: &StoreOptions) -> StoreResult<Store> {
        let connect = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        Ok(Store {
            backend: Backend::Postgres { pool },
        })
    }

    pub fn kind(&self) -> BackendKind {
        match self.backend {
            Backend::Sqlite { .. } => BackendKind::Sqlite,
            Backend::Postgres { .. } => BackendKind::Postgres,
        }
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> StoreResult<()> {
        let _: (i64,) = self.fetch_one(Sql::new("SELECT CAST(1 AS BIGINT)")).await?;
        Ok(())
    }

    /// Runs `write` on the writer's connection (SQLite, in the next group commit) or on one from
    /// the pool (PostgreSQL), and returns once it committed.
    pub(crate) async fn write<W: Write>(&self, write: W) -> StoreResult<W::Output> {
        match &self.backend {
            Backend::Sqlite { writer, .. } => writer.run(write).await,
            Backend::Postgres { pool } => {
                let mut conn = Pooled::Postgres(pool.acquire().await?);
                Ok(write.run(&mut conn.conn()).await?)
            }
        }
    }

    /// Lends a reader connection (one from the pool, on either backend).
    async fn reader(&self) -> StoreResult<Pooled> {
        Ok(match &self.backend {
            Backend::Sqlite { reader, .. } => Pooled::Sqlite(reader.acquire().await?),
            Backend::Postgres { pool } => Pooled::Postgres(pool.acquire().await?),
        })
    }

    /// Reads one row, or none.
    pub(crate) async fn fetch_optional<T: Row>(&self, sql: Sql<'_>) -> StoreResult<Option<T>> {
        Ok(self.reader().await?.conn().fetch_optional(sql).await?)
    }

    /// Reads every row.
    pub(crate) async fn fetch_all<T: Row>(&self, sql: Sql<'_>) -> StoreResult<Vec<T>> {
        Ok(self.reader().await?.conn().fetch_all(sql).await?)
    }

    /// Reads exactly one row.
    pub(crate) async fn fetch_one<T: Row>(&self, sql: Sql<'_>) -> StoreResult<T> {
        Ok(self.reader().await?.conn().fetch_one(sql).await?)
    }

    /// Writes a consistent snapshot of a SQLite store to `path` (a new file) while it is in use.
    /// PostgreSQL has its own tools (`pg_dump`) for that.
    pub async fn backup_to(&self, path: &Path) -> StoreResult<()> {
        match &self.backend {
            Backend::Sqlite { reader, .. } => {
                let target = path.to_str().ok_or_else(|| {
                    StoreError::Backup(format!("{} is not a UTF-8 path", path.display()))
                })?;
                // VACUUM INTO fills an empty file: creating it first, owner-only, keeps the copy
                // as private as the store, and refuses to overwrite anything.
                let mut create = std::fs::OpenOptions::new();
                create.write(true).create_new(true);
                owner_only(&mut create);
                create.open(path).map_err(|err| match err.kind() {
                    std::io::ErrorKind::AlreadyExists => {
                        StoreError::Backup(format!("{} exists already", path.display()))
                    }
                    _ => StoreError::Backup(format!("could not create {}: {err}", path.display())),
                })?;
                let copied = sqlx::query("VACUUM INTO $1")
                    .bind(target)
                    .execute(reader)
                    .await;
                if let Err(err) = copied {
                    let _ = std::fs::remove_file(path);
                    return Err(err.into());
                }
                Ok(())
            }
            Backend::Postgres { .. } => Err(StoreError::Backup(
                "the store is PostgreSQL: back it up with pg_dump".into(),
            )),
        }
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
            Backend::Postgres { pool } => pool.close().await,
        }
    }
}

/// Creates the database's folder (and missing parents) readable by the owner only.
fn create_private_dir(path: &Path) -> StoreResult<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(path)
        .map_err(|source| StoreError::CreateDir {
            path: path.display().to_string(),
            source,
        })
}

/// Creates the database file readable by the owner only, unless it exists already (its mode
/// is then the operator's to keep).
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut create = std::fs::OpenOptions::new();
    create.write(true).create_new(true);
    owner_only(&mut create);
    match create.open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

fn owner_only(options: &mut std::fs::OpenOptions) {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(options, 0o600);
    #[cfg(not(unix))]
    let _ = options;
}

/// `sqlite::memory:` or `mode=memory`: no file to create.
fn is_in_memory(url: &str) -> bool {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    database == ":memory:" || params.split('&').any(|p| p == "mode=memory")
}

/// The scheme of a URL, for messages that must not show the rest of it.
fn url_scheme(url: &str) -> &str {
    match url.split_once(':') {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme.len() <= 16
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
        {
            scheme
        }
        _ => "not shown",
    }
}

/// Milliseconds since the Unix epoch: how every time is stored.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A stored time as RFC 3339 in UTC, to the second (for people); before the epoch: the epoch.
pub fn rfc3339_seconds(ms: i64) -> String {
    humantime::format_rfc3339_seconds(as_system_time(ms)).to_string()
}

/// A stored time as RFC 3339 in UTC, to the millisecond (Asana's query times).
pub fn rfc3339_millis(ms: i64) -> String {
    humantime::format_rfc3339_millis(as_system_time(ms)).to_string()
}

fn as_system_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339_seconds(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(
            rfc3339_millis(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(rfc3339_millis(-5), "1970-01-01T00:00:00.000Z");
    }
}
