//! Group commit for SQLite. SQLite has one writer at a time and every durable commit costs an
//! fsync (0.2 to 2 ms on this machine's disk), so committing each write on its own caps the service
//! at a few hundred to a few thousand writes a second. Here every write is an operation sent to one
//! writer task, which runs all operations waiting at that moment in a single transaction (a
//! failing operation does not undo the others) and commits once; a lone operation runs as it is. Nobody gets an answer before that commit is on disk: an acknowledged
//! delivery is as durable as with one transaction per write.
//!
//! Writes are `Synced` (the commit waits for fsync: deliveries, webhook secrets, registrations,
//! operator actions) or `Relaxed` (the worker's bookkeeping: claims, leases, outcomes, the
//! invitations ledger). A batch with any synced write commits with `synchronous = FULL`; a batch
//! of relaxed writes only with `NORMAL`, which WAL keeps safe across a crash of the process but
//! may roll back after a power failure. Losing such a write there is safe by design: the job runs
//! again, and DocSpace, asked before every invitation, already knows whoever was invited. A later
//! synced commit makes every earlier one durable too (the WAL is written in order).
//!
//! The queue is bounded: a synced write (a request's) that finds it full fails at once with
//! [`StoreError::Busy`], answered `503` so the sender retries, instead of memory growing under a
//! flood. A relaxed write (the worker's, few by construction) waits for room.

use std::future::Future;
use std::pin::Pin;

use sqlx::pool::PoolConnection;
use sqlx::{Connection, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::conn::{Conn, Write};
use super::{StoreError, StoreResult};

/// The most operations one transaction carries.
const MAX_BATCH: usize = 512;

/// How durable a write must be before its caller hears back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    Synced,
    Relaxed,
}

/// A write waiting for its batch: it runs, then learns whether its batch committed.
trait Operation: Send {
    fn durability(&self) -> Durability;
    fn run<'c>(
        &'c mut self,
        conn: &'c mut SqliteConnection,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'c>>;
    fn settle(self: Box<Self>, committed: Result<(), String>);
}

struct Op<W: Write> {
    write: W,
    outcome: Option<Result<W::Output, sqlx::Error>>,
    reply: oneshot::Sender<StoreResult<W::Output>>,
}

impl<W: Write> Operation for Op<W> {
    fn durability(&self) -> Durability {
        W::DURABILITY
    }

    fn run<'c>(
        &'c mut self,
        conn: &'c mut SqliteConnection,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'c>> {
        Box::pin(async move {
            let outcome = self.write.run(&mut Conn::Sqlite(conn)).await;
            let ok = outcome.is_ok();
            self.outcome = Some(outcome);
            ok
        })
    }

    fn settle(self: Box<Self>, committed: Result<(), String>) {
        let result = match (self.outcome, committed) {
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Err(err)), _) => Err(StoreError::Database(err)),
            (Some(Ok(_)), Err(why)) | (None, Err(why)) => Err(StoreError::Commit(why)),
            (None, Ok(())) => Err(StoreError::Commit("the operation did not run".into())),
        };
        // The caller may have gone away (a request that timed out); the write stands regardless.
        let _ = self.reply.send(result);
    }
}

/// The handle every write goes through.
#[derive(Clone)]
pub(crate) struct SqliteWriter {
    queue: mpsc::Sender<Box<dyn Operation>>,
    pool: SqlitePool,
    closing: CancellationToken,
}

impl SqliteWriter {
    /// Starts the writer task on `pool`, whose single connection it uses; at most `max_queued`
    /// writes wait for it.
    pub(crate) fn start(pool: SqlitePool, max_queued: usize) -> SqliteWriter {
        let (queue, operations) = mpsc::channel(max_queued.max(1));
        let closing = CancellationToken::new();
        tokio::spawn(write_batches(pool.clone(), operations, closing.clone()));
        SqliteWriter {
            queue,
            pool,
            closing,
        }
    }

    /// Stops the writer (it gives its connection back) and closes the pool.
    pub(crate) async fn close(&self) {
        self.closing.cancel();
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Runs `write` in the next batch and returns its result once the batch committed.
    pub(crate) async fn run<W: Write>(&self, write: W) -> StoreResult<W::Output> {
        let (reply, answer) = oneshot::channel();
        let op = Box::new(Op {
            write,
            outcome: None,
            reply,
        });
        let closed = || StoreError::Commit("the store is closed".into());
        match W::DURABILITY {
            Durability::Synced => self.queue.try_send(op).map_err(|err| match err {
                TrySendError::Full(_) => StoreError::Busy,
                TrySendError::Closed(_) => closed(),
            })?,
            Durability::Relaxed => self.queue.send(op).await.map_err(|_| closed())?,
        }
        answer
            .await
            .map_err(|_| StoreError::Commit("the writer stopped before answering".into()))?
    }
}

async fn write_batches(
    pool: SqlitePool,
    mut operations: mpsc::Receiver<Box<dyn Operation>>,
    closing: CancellationToken,
) {
    let mut batch: Vec<Box<dyn Operation>> = Vec::with_capacity(MAX_BATCH);
    // The connection is kept between batches, with the synchronous mode last set on it; both are
    // forgotten after an error (the pool may hand out a new connection).
    let mut held: Option<(PoolConnection<Sqlite>, Option<Durability>)> = None;
    loop {
        let received = tokio::select! {
            received = operations.recv_many(&mut batch, MAX_BATCH) => received,
            _ = closing.cancelled() => 0,
        };
        if received == 0 {
            break;
        }
        let connection = match held.take() {
            Some(held) => Ok(held),
            None => pool
                .acquire()
                .await
                .map(|conn| (conn, None))
                .map_err(|e| e.to_string()),
        };
        let committed = match connection {
            Ok((mut conn, mode)) => run_batch(&mut conn, mode, &mut batch)
                .await
                .map(|mode| held = Some((conn, Some(mode)))),
            Err(err) => Err(err),
        };
        for op in batch.drain(..) {
            op.settle(committed.clone());
        }
    }
}

/// Runs the batch and commits it; returns the synchronous mode the connection is left in.
///
/// A single operation runs on its own (its statements, or its own transaction, commit as it
/// goes); several run in one transaction, each in a savepoint so a failed one rolls back alone.
async fn run_batch(
    conn: &mut SqliteConnection,
    mode: Option<Durability>,
    batch: &mut [Box<dyn Operation>],
) -> Result<Durability, String> {
    let wanted = if batch.iter().any(|op| op.durability() == Durability::Synced) {
        Durability::Synced
    } else {
        Durability::Relaxed
    };
    if mode != Some(wanted) {
        let pragma = match wanted {
            Durability::Synced => "PRAGMA synchronous = FULL",
            Durability::Relaxed => "PRAGMA synchronous = NORMAL",
        };
        sqlx::query(pragma)
            .execute(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
    }
    if let [op] = batch {
        op.run(conn).await;
        return Ok(wanted);
    }
    // No savepoint per operation: an operation of several statements has its own transaction,
    // which is a savepoint here, and a failed single statement is undone by SQLite itself; either
    // way a failing operation leaves the others' writes alone.
    let mut tx = conn.begin().await.map_err(|e| e.to_string())?;
    for op in batch.iter_mut() {
        op.run(&mut tx).await;
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use sqlx::sqlite::SqlitePoolOptions;
    use tokio::sync::Semaphore;

    use super::*;

    async fn writer(max_queued: usize) -> SqliteWriter {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .expect("in-memory database");
        SqliteWriter::start(pool, max_queued)
    }

    /// A write that holds the writer, once running (it says so on `started`), until `gate` opens.
    struct Blocking {
        started: Arc<Semaphore>,
        gate: Arc<Semaphore>,
    }

    impl Write for Blocking {
        type Output = ();
        const DURABILITY: Durability = Durability::Synced;
        async fn run(&self, _conn: &mut Conn<'_>) -> sqlx::Result<()> {
            self.started.add_permits(1);
            let _permit = self.gate.acquire().await;
            Ok(())
        }
    }

    struct Noop;

    impl Write for Noop {
        type Output = ();
        const DURABILITY: Durability = Durability::Synced;
        async fn run(&self, _conn: &mut Conn<'_>) -> sqlx::Result<()> {
            Ok(())
        }
    }

    fn blocking_write(
        writer: &SqliteWriter,
        started: Arc<Semaphore>,
        gate: Arc<Semaphore>,
    ) -> tokio::task::JoinHandle<StoreResult<()>> {
        let writer = writer.clone();
        tokio::spawn(async move { writer.run(Blocking { started, gate }).await })
    }

    fn noop_write(writer: &SqliteWriter) -> tokio::task::JoinHandle<StoreResult<()>> {
        let writer = writer.clone();
        tokio::spawn(async move { writer.run(Noop).await })
    }

    #[tokio::test]
    async fn a_full_queue_refuses_synced_writes_at_once() {
        let writer = writer(2).await;
        let (started, gate) = (Arc::new(Semaphore::new(0)), Arc::new(Semaphore::new(0)));
        let running = blocking_write(&writer, started.clone(), gate.clone());
        let _ = started.acquire().await.expect("the blocking write runs");
        let queued = [noop_write(&writer), noop_write(&writer)];
        while writer.queue.capacity() > 0 {
            tokio::task::yield_now().await;
        }
        let refused = tokio::time::timeout(Duration::from_secs(2), writer.run(Noop))
            .await
            .expect("a full queue answers at once");
        assert!(matches!(refused, Err(StoreError::Busy)), "{refused:?}");

        gate.add_permits(1);
        running.await.unwrap().expect("the blocking write commits");
        for write in queued {
            write.await.unwrap().expect("queued writes commit");
        }
        writer
            .run(Noop)
            .await
            .expect("room again once the queue drained");
    }
}
