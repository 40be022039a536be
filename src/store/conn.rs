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

/// Several statements as one SQLite text: each statement's `$n` becomes `$(n + the arguments of
/// the statements before it)`.
struct Script<'a> {
    text: String,
    args: Vec<Arg<'a>>,
}

impl<'a> Script<'a> {
    fn of(statements: Vec<Sql<'a>>) -> Option<Script<'a>> {
        if statements.is_empty() {
            return None;
        }
        let mut text = String::new();
        let mut args = Vec::new();
        for statement in statements {
            let offset = args.len();
            let mut chars = statement.text.chars().peekable();
            while let Some(c) = chars.next() {
                text.push(c);
                if c != '$' {
                    continue;
                }
                let mut digits = String::new();
                while let Some(d) = chars.next_if(char::is_ascii_digit) {
                    digits.push(d);
                }
                match digits.parse::<usize>() {
                    Ok(n) => text.push_str(&(n + offset).to_string()),
                    Err(_) => text.push_str(&digits),
                }
            }
            text.push_str(";\n");
            args.extend(statement.args);
        }
        Some(Script { text, args })
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

    /// Runs `statements` in order, as one round trip on SQLite (one text, its `$n` renumbered
    /// into one argument list: sqlx hands each statement its own numbers); one after the other
    /// on PostgreSQL, whose extended protocol takes one statement at a time. For writes whose
    /// statements need no answer from each other (a settlement's bookkeeping): each statement's
    /// round trip to SQLite's connection thread costs more than the statement.
    pub(crate) async fn execute_all(&mut self, statements: Vec<Sql<'_>>) -> sqlx::Result<()> {
        match self {
            Conn::Sqlite(conn) => {
                let Some(script) = Script::of(statements) else {
                    return Ok(());
                };
                let mut arguments = sqlx::sqlite::SqliteArguments::default();
                for arg in &script.args {
                    match *arg {
                        Arg::Int(value) => arguments.add(value),
                        Arg::Text(value) => arguments.add(value),
                    }
                    .map_err(sqlx::Error::Encode)?;
                }
                sqlx::query_with(sqlx::AssertSqlSafe(script.text), arguments)
                    .execute(&mut **conn)
                    .await?;
            }
            Conn::Postgres(_) => {
                for statement in statements {
                    self.execute(statement).await?;
                }
            }
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_numbers_each_statements_arguments_after_the_ones_before() {
        let script = Script::of(vec![
            Sql::new("INSERT INTO t (a, b) VALUES ($1, $2) ON CONFLICT (a) DO UPDATE SET b = $2")
                .bind(1)
                .bind("x"),
            Sql::new("DELETE FROM u WHERE a = $1").bind(1),
            Sql::new("INSERT INTO u (a, c) VALUES ($1, $10)")
                .bind(2)
                .bind(3),
        ])
        .unwrap();
        assert_eq!(
            script.text,
            "INSERT INTO t (a, b) VALUES ($1, $2) ON CONFLICT (a) DO UPDATE SET b = $2;\n\
             DELETE FROM u WHERE a = $3;\n\
             INSERT INTO u (a, c) VALUES ($4, $13);\n"
        );
        assert_eq!(script.args.len(), 5);
        assert!(Script::of(Vec::new()).is_none());
    }
}
