//! Databases of a test's own: a SQLite file in a temporary folder, or a PostgreSQL database
//! created on the server `BRIDGE_TEST_DATABASE_URL` names; either is gone when the value drops.

use sqlx::Connection as _;

/// The variable naming the PostgreSQL server tests create their databases on.
pub const TEST_DATABASE_VAR: &str = "BRIDGE_TEST_DATABASE_URL";

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// As reports name it: `SQLite`, `PostgreSQL`.
    pub fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// A database of the test's own, removed when this value drops.
pub struct TestDatabase {
    url: String,
    place: Place,
}

enum Place {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    /// On `backend`; `None` when it is PostgreSQL and `BRIDGE_TEST_DATABASE_URL` is unset.
    pub async fn create(backend: Backend) -> Option<TestDatabase> {
        match backend {
            Backend::Sqlite => Some(TestDatabase::sqlite()),
            Backend::Postgres => TestDatabase::postgres().await,
        }
    }

    /// `data/bridge.db` in a temporary folder of its own. Neither exists yet: the bridge creates
    /// them when it starts.
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("create a temporary folder");
        let url = format!(
            "sqlite://{}",
            dir.path().join("data").join("bridge.db").display()
        );
        TestDatabase {
            url,
            place: Place::Sqlite { _dir: dir },
        }
    }

    /// A new, empty database on the server `BRIDGE_TEST_DATABASE_URL` names; `None` when it is
    /// unset or empty.
    pub async fn postgres() -> Option<TestDatabase> {
        let admin_url = std::env::var(TEST_DATABASE_VAR)
            .ok()
            .filter(|v| !v.is_empty())?;
        let name = format!("bridge_test_{}", hex::encode(rand::random::<[u8; 6]>()));
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|err| panic!("cannot connect to {TEST_DATABASE_VAR}: {err}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        let _ = admin.close().await;
        let mut url = url::Url::parse(&admin_url)
            .unwrap_or_else(|err| panic!("{TEST_DATABASE_VAR} is not a URL: {err}"));
        url.set_path(&name);
        Some(TestDatabase {
            url: url.to_string(),
            place: Place::Postgres { admin_url, name },
        })
    }

    /// What the bridge's `database.url` setting takes.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn backend(&self) -> Backend {
        match self.place {
            Place::Sqlite { .. } => Backend::Sqlite,
            Place::Postgres { .. } => Backend::Postgres,
        }
    }

    /// A connection of its own to the database (to hold a lock, or run many statements). The
    /// database must exist: on SQLite, the bridge has run on it.
    pub async fn connect(&self) -> TestConnection {
        match self.backend() {
            Backend::Sqlite => TestConnection::Sqlite(
                sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("open the test database"),
            ),
            Backend::Postgres => TestConnection::Postgres(
                sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("open the test database"),
            ),
        }
    }

    /// Runs `statement` on a connection of its own (to age rows, say) and returns the number of
    /// rows it changed.
    pub async fn execute(&self, statement: &str) -> u64 {
        let mut conn = self.connect().await;
        let changed = conn.execute(statement).await;
        conn.close().await;
        changed
    }

    /// Makes `project_gid` a known project of a migrated store, as `webhooks create --project`
    /// leaves it once Asana confirmed the webhook: a confirmed webhook row named `webhook` for the
    /// project, and the project's row with its `name` (the title of the room `auto` mode creates).
    pub async fn add_known_project(&self, webhook: &str, project_gid: &str, name: &str) {
        let quoted = |value: &str| format!("'{}'", value.replace('\'', "''"));
        let mut conn = self.connect().await;
        conn.execute(&format!(
            "INSERT INTO webhooks (name, secret, created_at, project_gid) VALUES ({}, 'secret', 1, {})",
            quoted(webhook),
            quoted(project_gid)
        ))
        .await;
        conn.execute(&format!(
            "INSERT INTO projects (gid, name, created_at, updated_at) VALUES ({}, {}, 1, 1)",
            quoted(project_gid),
            quoted(name)
        ))
        .await;
        conn.close().await;
    }

    /// The first column of the first row `query` returns, an integer (a `COUNT(*)`, say).
    pub async fn fetch_i64(&self, query: &str) -> i64 {
        let mut conn = self.connect().await;
        let value = conn.fetch_i64(query).await;
        conn.close().await;
        value
    }
}

/// A connection to a [`TestDatabase`]; statements that fail panic, naming the statement.
pub enum TestConnection {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl TestConnection {
    /// Runs `statement` and returns the number of rows it changed.
    pub async fn execute(&mut self, statement: &str) -> u64 {
        let sql = || sqlx::AssertSqlSafe(statement.to_string());
        let result = match self {
            TestConnection::Sqlite(conn) => sqlx::query(sql())
                .execute(conn)
                .await
                .map(|r| r.rows_affected()),
            TestConnection::Postgres(conn) => sqlx::query(sql())
                .execute(conn)
                .await
                .map(|r| r.rows_affected()),
        };
        result.unwrap_or_else(|err| panic!("`{statement}` failed: {err}"))
    }

    /// The first column of the first row `query` returns, an integer.
    pub async fn fetch_i64(&mut self, query: &str) -> i64 {
        let sql = || sqlx::AssertSqlSafe(query.to_string());
        let value = match self {
            TestConnection::Sqlite(conn) => sqlx::query_scalar(sql()).fetch_one(conn).await,
            TestConnection::Postgres(conn) => sqlx::query_scalar(sql()).fetch_one(conn).await,
        };
        value.unwrap_or_else(|err| panic!("`{query}` failed: {err}"))
    }

    pub async fn close(self) {
        let _ = match self {
            TestConnection::Sqlite(conn) => conn.close().await,
            TestConnection::Postgres(conn) => conn.close().await,
        };
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Place::Postgres { admin_url, name } = &self.place else {
            return;
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop may run inside a test's runtime, which cannot be blocked on: do the async clean-up
        // on a thread of its own, and wait for it.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sqlite_database_is_a_file_in_a_folder_removed_on_drop() {
        let database = TestDatabase::sqlite();
        assert_eq!(database.backend(), Backend::Sqlite);
        let path = database
            .url()
            .strip_prefix("sqlite://")
            .expect("a SQLite URL");
        let folder = std::path::Path::new(path)
            .parent()
            .expect("a folder")
            .to_path_buf();
        std::fs::create_dir_all(&folder).expect("create the folder");
        std::fs::File::create(path).expect("create the file");
        database.execute("CREATE TABLE t (n INTEGER)").await;
        assert_eq!(database.execute("INSERT INTO t VALUES (1), (2)").await, 2);
        assert_eq!(database.fetch_i64("SELECT COUNT(*) FROM t").await, 2);
        drop(database);
        assert!(!folder.exists(), "{} is removed", folder.display());
    }

    #[tokio::test]
    async fn a_postgres_database_is_created_and_dropped() {
        let Some(database) = TestDatabase::postgres().await else {
            eprintln!("skipped: set {TEST_DATABASE_VAR} to run this test on PostgreSQL");
            return;
        };
        assert_eq!(database.backend(), Backend::Postgres);
        database.execute("CREATE TABLE t (n BIGINT)").await;
        assert_eq!(database.execute("INSERT INTO t VALUES (1), (2)").await, 2);
        assert_eq!(database.fetch_i64("SELECT COUNT(*) FROM t").await, 2);
        let name = url::Url::parse(database.url()).expect("a URL").path()[1..].to_string();
        drop(database);
        let admin = std::env::var(TEST_DATABASE_VAR).expect("set");
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect");
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .expect("query");
        assert_eq!(left, 0, "database {name} is dropped");
    }
}
