//! The stores the bridge runs on during the benchmark: throwaway databases, a store prefilled
//! with finished jobs, and how far a backlog has drained.

use std::time::{Duration, Instant};

use asana_docspace_test_support::{Backend, TestConnection, TestDatabase};

/// Finished jobs the `prefilled` section puts in the store, unless `BRIDGE_BENCH_PREFILL` says
/// otherwise (a smaller figure, for a check of the section itself).
pub const PREFILL_JOBS: u64 = 1_000_000;
pub const PREFILL_VAR: &str = "BRIDGE_BENCH_PREFILL";
/// Jobs per `INSERT`: big enough that the prefill takes seconds, small enough that one statement
/// holds no lock for long.
const PREFILL_BATCH: u64 = 100_000;

/// How many jobs to prefill: `BRIDGE_BENCH_PREFILL`, else [`PREFILL_JOBS`].
pub fn prefill_size() -> u64 {
    match std::env::var(PREFILL_VAR) {
        Ok(value) => value
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{PREFILL_VAR} is not a number of jobs: {value:?}")),
        Err(_) => PREFILL_JOBS,
    }
}

/// Adds `jobs` finished (`done`) jobs to a migrated store, the way months of service leave it:
/// nine in ten queued by a webhook (`webhook:<name>`), one in ten by `backfill`
/// (`command:backfill`), finished over the last few days (so no retention deletes them during the
/// run), half of them invitations with their ledger rows, the rest already members. Returns how
/// long it took.
pub async fn prefill(database: &TestDatabase, jobs: u64, webhook: &str, project: &str) -> Duration {
    let began = Instant::now();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    let mut conn = database.connect().await;
    let mut first = 1;
    while first <= jobs {
        let last = (first + PREFILL_BATCH - 1).min(jobs);
        let before = conn
            .fetch_i64("SELECT COALESCE(MAX(id), 0) FROM jobs")
            .await;
        // One statement for both databases: a recursive CTE numbers the rows.
        let inserted = conn
            .execute(&format!(
                "INSERT INTO jobs (dedupe_key, source, task_gid, event_kind, status, attempts, \
                    run_at, outcome, email, project_gid, created_at, updated_at) \
                 WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
                 SELECT 'prefill:' || CAST(i AS TEXT), \
                    CASE WHEN i % 10 = 0 THEN 'command:backfill' ELSE 'webhook:{webhook}' END, \
                    CAST(20000000000 + i AS TEXT), \
                    CASE WHEN i % 10 = 0 THEN 'backfill' ELSE 'assignee_changed' END, \
                    'done', 1, {now} - CAST(i AS BIGINT) * 500, \
                    CASE WHEN i % 2 = 0 THEN 'invited' ELSE 'already_member' END, \
                    'prefill' || CAST(i AS TEXT) || '@example.com', \
                    CASE WHEN i % 10 = 0 THEN NULL ELSE '{project}' END, \
                    {now} - CAST(i AS BIGINT) * 500, {now} - CAST(i AS BIGINT) * 500 + 200 \
                 FROM n"
            ))
            .await;
        assert_eq!(
            inserted,
            last - first + 1,
            "prefilled jobs {first}..={last}"
        );
        conn.execute(&format!(
            "INSERT INTO invitations (email, state, job_id, task_gid, invite_type, created_at, sent_at) \
             SELECT email, 'sent', id, task_gid, 'User', updated_at - 100, updated_at \
             FROM jobs WHERE id > {before} AND outcome = 'invited'"
        ))
        .await;
        first = last + 1;
    }
    if database.backend() == Backend::Postgres {
        // A store that grew over months has been analysed by autovacuum long since.
        conn.execute("ANALYZE jobs").await;
        conn.execute("ANALYZE invitations").await;
    }
    conn.close().await;
    began.elapsed()
}

/// Removes the jobs that have not finished (those a measurement queued while the worker was held
/// back), so the next measurement starts from the finished ones alone.
pub async fn forget_unfinished_jobs(database: &TestDatabase) {
    database
        .execute("DELETE FROM jobs WHERE status IN ('pending', 'running')")
        .await;
}

/// Counts a store's jobs through one connection kept open between reads.
pub struct JobCounter(TestConnection);

impl JobCounter {
    pub async fn open(database: &TestDatabase) -> JobCounter {
        JobCounter(database.connect().await)
    }

    /// Jobs with `status`: cheap at any store size (`jobs_status` is an index on it).
    pub async fn with_status(&mut self, status: &str) -> u64 {
        let count = self
            .0
            .fetch_i64(&format!(
                "SELECT COUNT(*) FROM jobs WHERE status = '{status}'"
            ))
            .await;
        u64::try_from(count).expect("a count")
    }

    /// Jobs not finished yet: pending or running.
    pub async fn unfinished(&mut self) -> u64 {
        self.with_status("pending").await + self.with_status("running").await
    }

    pub async fn all(&mut self) -> u64 {
        let count = self.0.fetch_i64("SELECT COUNT(*) FROM jobs").await;
        u64::try_from(count).expect("a count")
    }

    pub async fn close(self) {
        self.0.close().await;
    }
}
