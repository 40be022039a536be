//! One way to run a statement on either database. A [`Sql`] is the statement's text (in the
//! `$1, $2` form both SQLite and PostgreSQL accept) with its arguments; a [`Conn`] is a connection
//! the backend lends, which runs it. Statements both databases accept are written once.
//!
//! Writes are plain data: a type implementing [`Write`] holds what the write needs (owned, so it
//! can wait in the SQLite writer's queue) and runs its statements on the connection it is lent:
//! the writer's, inside a group commit, on SQLite; one from the pool on PostgreSQL.

use std::future::Future;

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Arguments as _, Connection as _, FromRow, PgConnection, SqliteConnection};

use super::sqlite_writer::Durability;

/// One value bound to a statement.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
}

impl From<i64> for Arg<'_> {
    fn from(value: i64) -> Self {
        Arg::Int(Some(value))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(value: Option<i64>) -> Self {
        Arg::Int(value)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(value: &'a str) -> Self {
        Arg::Text(Some(value))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(value: &'a String) -> Self {
        Arg::Text(Some(value))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Arg::Text(value)
    }
}

/// A statement and its arguments, in order (`$1` is the first).
#[derive(Debug, Clone)]
pub(crate) struct Sql<'a> {
    text: &'static str,
    args: Vec<Arg<'a>>,
}

impl<'a> Sql<'a> {
    pub(crate) fn new(text: &'static str) -> Sql<'a> {
        Sql {
            text,
            args: Vec::new(),
        }
    }

    pub(crate) fn bind(mut self, value: impl Into<Arg<'a>>) -> Sql<'a> {
        self.args.push(value.into());
        self
    }

    fn arguments<DB>(&self) -> Result<DB::Arguments, sqlx::Error>
    where
        DB: sqlx::Database,
        for<'q> Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        for<'q> Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        let mut arguments = DB::Arguments::default();
        for arg in &self.args {
            match *arg {
                Arg::Int(value) => arguments.add(value),
                Arg::Text(value) => arguments.add(value),
            }
            .map_err(sqlx::Error::Encode)?;
        }
        Ok(arguments)
    }
}

/// A row type both databases can decode.
pub(crate) trait Row:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}
impl<T> Row for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{}

/// A connection lent by the backend, for the duration of one read or write.
pub(crate) enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

impl Conn<'_> {
    /// Runs `sql`; returns how many rows it changed.
    pub(crate) async fn execute(&mut self, sql: Sql<'_>) -> sqlx::Result<u64> {
        Ok(match self {
            Conn::Sqlite(conn) => sqlx::query_with(sql.text, sql.arguments::<sqlx::Sqlite>()?)
                .execute(&mut **conn)
                .await?
                .rows_affected(),
            Conn::Postgres(conn) => sqlx::query_with(sql.text, sql.arguments::<sqlx::Postgres>()?)
                .execute(&mut **conn)
                .await?
                .rows_affected(),
        })
    }

    pub(crate) async fn fetch_optional<T: Row>(&mut self, sql: Sql<'_>) -> sqlx::Result<Option<T>> {
        match self {
            Conn::Sqlite(conn) => {
                sqlx::query_as_with(sql.text, sql.arguments::<sqlx::Sqlite>()?)
                    .fetch_optional(&mut **conn)
                    .await
            }
            Conn::Postgres(conn) => {
                sqlx::query_as_with(sql.text, sql.arguments::<sqlx::Postgres>()?)
                    .fetch_optional(&mut **conn)
                    .await
            }
        }
    }

    pub(crate) async fn fetch_all<T: Row>(&mut self, sql: Sql<'_>) -> sqlx::Result<Vec<T>> {
        match self {
            Conn::Sqlite(conn) => {
                sqlx::query_as_with(sql.text, sql.arguments::<sqlx::Sqlite>()?)
                    .fetch_all(&mut **conn)
                    .await
            }
            Conn::Postgres(conn) => {
                sqlx::query_as_with(sql.text, sql.arguments::<sqlx::Postgres>()?)
                    .fetch_all(&mut **conn)
                    .await
            }
        }
    }

    pub(crate) async fn fetch_one<T: Row>(&mut self, sql: Sql<'_>) -> sqlx::Result<T> {
        self.fetch_optional(sql)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// Starts a transaction (a savepoint inside the SQLite writer's group commit): its
    /// statements all stand once it commits, or none does (dropping it rolls back).
    pub(crate) async fn begin(&mut self) -> sqlx::Result<Tx<'_>> {
        Ok(match self {
            Conn::Sqlite(conn) => Tx::Sqlite(conn.begin().await?),
            Conn::Postgres(conn) => Tx::Postgres(conn.begin().await?),
        })
    }
}

/// A transaction on a lent connection.
pub(crate) enum Tx<'c> {
    Sqlite(sqlx::Transaction<'c, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'c, sqlx::Postgres>),
}

impl Tx<'_> {
    /// The transaction's connection, to run statements in it.
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Sqlite(tx) => Conn::Sqlite(tx),
            Tx::Postgres(tx) => Conn::Postgres(tx),
        }
    }

    pub(crate) async fn commit(self) -> sqlx::Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }
}

/// A write: plain data that runs its statements on a connection the backend lends.
pub(crate) trait Write: Send + 'static {
    type Output: Send + 'static;
    /// Whether its caller waits for the commit to reach the disk (see `sqlite_writer`).
    const DURABILITY: Durability;
    fn run(&self, conn: &mut Conn<'_>) -> impl Future<Output = sqlx::Result<Self::Output>> + Send;
}
