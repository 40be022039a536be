//! The store's schema version: the migrations embedded in this binary (`migrations/sqlite`,
//! `migrations/postgres`) against those sqlx recorded in the store's `_sqlx_migrations` table.
//!
//! Only `serve` and `migrate` apply migrations ([`Store::apply_migrations`]); every other command
//! opens a store whose schema is exactly this binary's, and refuses an older or a newer one
//! ([`Store::require_current_schema`]) without changing anything.

use std::collections::HashMap;

use sqlx::migrate::{Migrate, Migration, Migrator};

use super::conn::{Conn, Sql};
use super::{Backend, Pooled, Store, StoreError, StoreResult};

static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

/// Where sqlx records applied migrations.
const TABLE: &str = "_sqlx_migrations";

/// Why a store's schema cannot be used by this binary as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("the store has no schema yet: run `serve` (or `migrate`) first")]
    Empty,
    #[error(
        "the store's schema is at version {store}, older than this binary's {binary}: run `serve` (or `migrate`) first"
    )]
    Older { store: i64, binary: i64 },
    #[error(
        "the store's schema is at version {store}, newer than this binary's {binary}: use the release that migrated it, or a newer one"
    )]
    Newer { store: i64, binary: i64 },
    #[error("migration {0} did not complete on this store: restore a backup or repair it by hand")]
    Incomplete(i64),
    #[error(
        "migration {0} in the store differs from this binary's: it was edited after it was applied"
    )]
    Modified(i64),
}

/// A migration `migrate` (or `serve`) applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    pub version: i64,
    pub description: String,
}

/// One row of `_sqlx_migrations`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
struct Recorded {
    version: i64,
    checksum: Vec<u8>,
    success: bool,
}

/// The embedded migrations the store lacks, in order; or why the store's schema is not one this
/// binary can bring up to date.
fn pending<'m>(
    migrator: &'m Migrator,
    recorded: &[Recorded],
) -> Result<Vec<&'m Migration>, SchemaError> {
    if let Some(failed) = recorded.iter().find(|r| !r.success) {
        return Err(SchemaError::Incomplete(failed.version));
    }
    let embedded: HashMap<i64, &Migration> = migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| (m.version, m))
        .collect();
    let binary = latest(migrator);
    if let Some(store) = recorded
        .iter()
        .map(|r| r.version)
        .filter(|v| !embedded.contains_key(v))
        .max()
    {
        return Err(SchemaError::Newer {
            store: recorded_version(recorded).unwrap_or(store),
            binary,
        });
    }
    if let Some(changed) = recorded
        .iter()
        .find(|r| embedded[&r.version].checksum.as_ref() != r.checksum.as_slice())
    {
        return Err(SchemaError::Modified(changed.version));
    }
    let mut missing: Vec<&Migration> = embedded
        .into_values()
        .filter(|m| !recorded.iter().any(|r| r.version == m.version))
        .collect();
    missing.sort_by_key(|m| m.version);
    Ok(missing)
}

/// Refuses a store that lacks any embedded migration, or has one this binary does not know.
fn require_current(migrator: &Migrator, recorded: &[Recorded]) -> Result<i64, SchemaError> {
    let binary = latest(migrator);
    if pending(migrator, recorded)?.is_empty() {
        return Ok(binary);
    }
    Err(match recorded_version(recorded) {
        None => SchemaError::Empty,
        Some(store) => SchemaError::Older { store, binary },
    })
}

/// The newest migration this binary embeds.
fn latest(migrator: &Migrator) -> i64 {
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The newest migration the store recorded.
fn recorded_version(recorded: &[Recorded]) -> Option<i64> {
    recorded.iter().map(|r| r.version).max()
}

/// Reads `_sqlx_migrations`; a store without that table has none.
async fn read_recorded(conn: &mut Conn<'_>) -> sqlx::Result<Vec<Recorded>> {
    let exists = match conn {
        Conn::Sqlite(_) => Sql::new(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        ),
        Conn::Postgres(_) => Sql::new(
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'",
        ),
    };
    let (tables,): (i64,) = conn.fetch_one(exists).await?;
    if tables == 0 {
        return Ok(Vec::new());
    }
    conn.fetch_all(Sql::new(
        "SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version",
    ))
    .await
}

/// Applies `migrator`'s pending migrations on `conn`, holding the migration lock (PostgreSQL's
/// advisory lock; SQLite has a single writer anyway) from the check to the last one, so replicas
/// starting together apply each migration once and each reports what it applied itself.
async fn apply<C>(conn: &mut C, migrator: &Migrator) -> StoreResult<Vec<AppliedMigration>>
where
    C: Migrate,
    for<'c> &'c mut C: Into<Conn<'c>>,
{
    conn.lock().await?;
    let applied = apply_locked(conn, migrator).await;
    // A session-level lock would stay with the pooled connection: release it whatever happened.
    let unlocked = conn.unlock().await;
    let applied = applied?;
    unlocked?;
    Ok(applied)
}

async fn apply_locked<C>(conn: &mut C, migrator: &Migrator) -> StoreResult<Vec<AppliedMigration>>
where
    C: Migrate,
    for<'c> &'c mut C: Into<Conn<'c>>,
{
    let recorded = read_recorded(&mut (&mut *conn).into()).await?;
    let pending = pending(migrator, &recorded)?;
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    conn.ensure_migrations_table(TABLE).await?;
    let mut applied = Vec::with_capacity(pending.len());
    for migration in pending {
        conn.apply(TABLE, migration).await?;
        applied.push(AppliedMigration {
            version: migration.version,
            description: migration.description.to_string(),
        });
    }
    Ok(applied)
}

impl<'c> From<&'c mut sqlx::SqliteConnection> for Conn<'c> {
    fn from(conn: &'c mut sqlx::SqliteConnection) -> Conn<'c> {
        Conn::Sqlite(conn)
    }
}

impl<'c> From<&'c mut sqlx::PgConnection> for Conn<'c> {
    fn from(conn: &'c mut sqlx::PgConnection) -> Conn<'c> {
        Conn::Postgres(conn)
    }
}

impl Store {
    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Sqlite { .. } => &SQLITE,
            Backend::Postgres { .. } => &POSTGRES,
        }
    }

    /// Applies the migrations the store lacks and returns them, oldest first. A store with a
    /// migration this binary does not know (a newer release's) is refused and left as it is.
    pub async fn apply_migrations(&self) -> StoreResult<Vec<AppliedMigration>> {
        let migrator = self.migrator();
        match &self.backend {
            Backend::Sqlite { writer, .. } => {
                let mut conn = writer.pool().acquire().await?;
                apply(&mut *conn, migrator).await
            }
            Backend::Postgres { pool } => {
                let mut conn = pool.acquire().await?;
                apply(&mut *conn, migrator).await
            }
        }
    }

    /// Refuses a store whose schema is not exactly this binary's; returns its version otherwise.
    /// Reads only.
    pub async fn require_current_schema(&self) -> StoreResult<i64> {
        let mut reader: Pooled = self.reader().await?;
        let recorded = read_recorded(&mut reader.conn()).await?;
        Ok(require_current(self.migrator(), &recorded)?)
    }
}

impl From<SchemaError> for StoreError {
    fn from(err: SchemaError) -> StoreError {
        StoreError::Schema(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(versions: &[i64]) -> Vec<Recorded> {
        versions
            .iter()
            .map(|&version| Recorded {
                version,
                checksum: SQLITE
                    .iter()
                    .find(|m| m.version == version)
                    .map(|m| m.checksum.to_vec())
                    .unwrap_or_default(),
                success: true,
            })
            .collect()
    }

    fn all() -> Vec<i64> {
        SQLITE.iter().map(|m| m.version).collect()
    }

    #[test]
    fn a_store_with_every_migration_is_current() {
        assert_eq!(
            require_current(&SQLITE, &recorded(&all())),
            Ok(latest(&SQLITE))
        );
        assert!(pending(&SQLITE, &recorded(&all())).unwrap().is_empty());
    }

    #[test]
    fn an_empty_store_lacks_every_migration() {
        assert_eq!(require_current(&SQLITE, &[]), Err(SchemaError::Empty));
        assert_eq!(pending(&SQLITE, &[]).unwrap().len(), SQLITE.iter().count());
    }

    #[test]
    fn a_store_without_the_last_migration_is_older() {
        let mut versions = all();
        let last = versions.pop().unwrap();
        let store = *versions.last().unwrap();
        let err = require_current(&SQLITE, &recorded(&versions)).unwrap_err();
        assert_eq!(
            err,
            SchemaError::Older {
                store,
                binary: last
            }
        );
        assert!(
            err.to_string().contains("run `serve` (or `migrate`) first"),
            "{err}"
        );
        let missing: Vec<i64> = pending(&SQLITE, &recorded(&versions))
            .unwrap()
            .iter()
            .map(|m| m.version)
            .collect();
        assert_eq!(missing, vec![last]);
    }

    #[test]
    fn a_store_with_an_unknown_migration_is_newer() {
        let mut versions = all();
        versions.push(9999);
        let err = pending(&SQLITE, &recorded(&versions)).unwrap_err();
        assert_eq!(
            err,
            SchemaError::Newer {
                store: 9999,
                binary: latest(&SQLITE)
            }
        );
        assert_eq!(require_current(&SQLITE, &recorded(&versions)), Err(err));
    }

    #[test]
    fn an_incomplete_or_edited_migration_is_refused() {
        let mut rows = recorded(&all());
        rows[0].checksum = vec![0; 48];
        assert_eq!(
            pending(&SQLITE, &rows).unwrap_err(),
            SchemaError::Modified(rows[0].version)
        );
        rows[0] = recorded(&all()).remove(0);
        rows[1].success = false;
        assert_eq!(
            pending(&SQLITE, &rows).unwrap_err(),
            SchemaError::Incomplete(rows[1].version)
        );
    }
}
