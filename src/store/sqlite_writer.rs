//! Group commit for SQLite. SQLite has one writer at a time and every durable commit costs an
//! fsync (about 2 ms on an ordinary disk), so committing each write on its own caps the service at
//! a few hundred writes a second. Here every write is an operation sent to one writer task, which
//! runs all operations waiting at that moment in a single transaction (each in a savepoint, so one
//! failing operation does not undo the others) and commits once. Nobody gets an answer before that
//! commit is on disk: an acknowledged delivery is as durable as with one transaction per write.

use std::future::Future;
use std::pin::Pin;

use sqlx::{Connection, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::{StoreError, StoreResult};

/// The most operations one transaction carries.
const MAX_BATCH: usize = 512;

pub(crate) type WriteFuture<'c, T> =
    Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'c>>;

/// A write waiting for its batch: it runs, then learns whether its batch committed.
trait Operation: Send {
    fn run<'c>(
        &'c mut self,
        conn: &'c mut SqliteConnection,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'c>>;
    fn settle(self: Box<Self>, committed: Result<(), String>);
}

struct Op<T, F> {
    op: Option<F>,
    outcome: Option<Result<T, sqlx::Error>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Operation for Op<T, F>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> WriteFuture<'c, T> + Send + 'static,
{
    fn run<'c>(
        &'c mut self,
        conn: &'c mut SqliteConnection,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'c>> {
        let op = self.op.take().expect("an operation runs once");
        Box::pin(async move {
            let outcome = op(conn).await;
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
    queue: mpsc::UnboundedSender<Box<dyn Operation>>,
    pool: SqlitePool,
}

impl SqliteWriter {
    /// Starts the writer task on `pool`, whose single connection it uses.
    pub(crate) fn start(pool: SqlitePool) -> SqliteWriter {
        let (queue, operations) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(pool.clone(), operations));
        SqliteWriter { queue, pool }
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Runs `op` in the next batch and returns its result once the batch committed.
    pub(crate) async fn run<T, F>(&self, op: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> WriteFuture<'c, T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let op = Box::new(Op {
            op: Some(op),
            outcome: None,
            reply,
        });
        self.queue
            .send(op)
            .map_err(|_| StoreError::Commit("the store is closed".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Commit("the writer stopped before answering".into()))?
    }
}

async fn write_batches(
    pool: SqlitePool,
    mut operations: mpsc::UnboundedReceiver<Box<dyn Operation>>,
) {
    let mut batch: Vec<Box<dyn Operation>> = Vec::with_capacity(MAX_BATCH);
    while operations.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let committed = run_batch(&pool, &mut batch).await;
        for op in batch.drain(..) {
            op.settle(committed.clone());
        }
    }
}

/// Runs every operation in one transaction, each in a savepoint, and commits once.
async fn run_batch(pool: &SqlitePool, batch: &mut [Box<dyn Operation>]) -> Result<(), String> {
    let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
    let mut tx = conn.begin().await.map_err(|e| e.to_string())?;
    for op in batch.iter_mut() {
        // A nested transaction is a savepoint: a failed operation rolls back alone.
        let mut savepoint = tx.begin().await.map_err(|e| e.to_string())?;
        if op.run(&mut savepoint).await {
            savepoint.commit().await.map_err(|e| e.to_string())?;
        } else {
            savepoint.rollback().await.map_err(|e| e.to_string())?;
        }
    }
    tx.commit().await.map_err(|e| e.to_string())
}
