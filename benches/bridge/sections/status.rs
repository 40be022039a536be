//! The status page's data (issue 14) over a big store, in process: a million done jobs (fewer in
//! the quick run), 1,000 failed, 100 pending, 50 webhooks, 200 rooms of 50 people each.
//! `StatusReport::gather` must stay a few indexed reads (target < 25 ms); `queue_counts()`,
//! the `GROUP BY status` over every job that `/metrics` uses, is timed beside it for contrast.
//! A second gather turns revocation on with no grant needed any more (each of the 10,000 is in
//! `access plan`): the worst case of issue 13's plan read, which the page shows 50 rows of.

use std::time::{Duration, Instant};

use asana_docspace_bridge::rooms::RoomsMode;
use asana_docspace_bridge::status::{StatusReport, StatusSources};
use asana_docspace_bridge::store::{Store, StoreOptions, now_ms};
use asana_docspace_bridge::webhook::watch::WebhookHealth;
use asana_docspace_test_support::{Backend, TestDatabase};

use crate::database::{prefill, prefill_size};
use crate::report::{Report, ms, thousands};
use crate::{PROJECT, Settings};

const FAILED: u64 = 1_000;
const PENDING: u64 = 100;
const WEBHOOKS: u64 = 50;
const ROOMS: u64 = 200;
const PEOPLE_PER_ROOM: u64 = 50;
/// Finished jobs in the quick run.
const QUICK_PREFILL: u64 = 10_000;
/// Timed gathers per store (after one to warm the caches).
const ROUNDS: usize = 30;
const TARGET: Duration = Duration::from_millis(25);

pub async fn run(settings: &Settings, report: &mut Report) {
    let jobs = if settings.backlog < 10_000 {
        QUICK_PREFILL
    } else {
        prefill_size()
    };
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let label = backend.label();
        let Some(database) = TestDatabase::create(backend).await else {
            report.note(format!(
                "status page, {label} skipped: BRIDGE_TEST_DATABASE_URL is not set"
            ));
            continue;
        };
        let store = Store::open_migrated(database.url(), &StoreOptions::default())
            .await
            .expect("store");
        let took = seed(&database, jobs).await;
        let health = WebhookHealth::default();
        let history = format!("{} done jobs", thousands(jobs));
        let shared = &store;
        let counts = timed(|| async move {
            shared.queue_counts().await.expect("counts");
        })
        .await;
        let mut gathered = Vec::new();
        for revoke_on in [false, true] {
            let sources = StatusSources {
                store: &store,
                health: &health,
                rooms_mode: RoomsMode::Auto,
                revoke_on,
                now: now_ms(),
                job_filter: None,
            };
            let sources = &sources;
            gathered.push(
                timed(|| async move {
                    let report = StatusReport::gather(sources).await.expect("gather");
                    assert_eq!(report.queue.failed, FAILED as i64, "the seeded store");
                })
                .await,
            );
        }
        for (what, timing) in [
            ("StatusReport::gather, rooms auto", &gathered[0]),
            (
                "StatusReport::gather, rooms auto, revocation on (every grant awaits one)",
                &gathered[1],
            ),
            ("queue_counts() (GROUP BY status, for contrast)", &counts),
        ] {
            report.row([
                &format!("status page, {label}, {history}: {what}"),
                "-",
                "-",
                &ms(timing.p50),
                "-",
                &ms(timing.max),
                "-",
                "-",
            ]);
        }
        report.target(
            &format!("status page: gathering its data with {history} < 25 ms ({label}, p50)"),
            format!(
                "{} ms (queue_counts alone: {} ms)",
                ms(gathered[0].p50),
                ms(counts.p50)
            ),
            gathered[0].p50 < TARGET,
        );
        report.note(format!(
            "status page, {label}: {history}, {FAILED} failed, {PENDING} pending, {WEBHOOKS} \
             webhooks, {ROOMS} rooms × {PEOPLE_PER_ROOM} people, seeded by SQL in {:.1} s",
            took.as_secs_f64()
        ));
        store.close().await;
    }
}

struct Timing {
    p50: Duration,
    max: Duration,
}

/// Runs `f` once to warm up, then [`ROUNDS`] times.
async fn timed<F, Fut>(f: F) -> Timing
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    f().await;
    let mut took = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let began = Instant::now();
        f().await;
        took.push(began.elapsed());
    }
    took.sort_unstable();
    Timing {
        p50: took[ROUNDS / 2],
        max: took[ROUNDS - 1],
    }
}

/// Fills a migrated store; returns how long it took.
async fn seed(database: &TestDatabase, jobs: u64) -> Duration {
    let began = Instant::now();
    database
        .add_known_project("status", PROJECT, "Website")
        .await;
    prefill(database, jobs, "status", PROJECT).await;
    let now = now_ms();
    let mut conn = database.connect().await;
    for (status, n, base) in [("failed", FAILED, 1u64), ("pending", PENDING, FAILED + 1)] {
        conn.execute(&format!(
            "INSERT INTO jobs (dedupe_key, source, task_gid, event_kind, status, attempts, run_at, \
                last_error, created_at, updated_at) \
             WITH RECURSIVE n(i) AS (SELECT {base} UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
             SELECT 'status:' || CAST(i AS TEXT), 'webhook:status', \
                CAST(30000000000 + i AS TEXT), 'assignee_changed', '{status}', 1, {now}, \
                CASE WHEN '{status}' = 'failed' THEN 'DocSpace 500' ELSE NULL END, \
                {now} - CAST(i AS BIGINT) * 1000, {now} - CAST(i AS BIGINT) * 1000 FROM n",
            last = base + n - 1,
        ))
        .await;
    }
    conn.execute(&format!(
        "INSERT INTO webhooks (name, secret, created_at, project_gid, webhook_gid, registered_at, \
            last_delivery_at) \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {WEBHOOKS}) \
         SELECT 'wh-' || CAST(i AS TEXT), 'secret', 1, CAST(1300000000000000 + i AS TEXT), \
            CAST(1400000000000000 + i AS TEXT), 1, {now} FROM n"
    ))
    .await;
    conn.execute(&format!(
        "INSERT INTO projects (gid, name, created_at, updated_at) \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROOMS}) \
         SELECT CAST(1300000000000000 + i AS TEXT), 'Project ' || CAST(i AS TEXT), 1, 1 FROM n"
    ))
    .await;
    conn.execute(&format!(
        "INSERT INTO project_rooms (project_gid, room_id, room_title, room_type, access, how, \
            created_at, updated_at) \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROOMS}) \
         SELECT CAST(1300000000000000 + i AS TEXT), 1000 + i, 'Room ' || CAST(i AS TEXT), 2, 10, \
            'created', 1, 1 FROM n"
    ))
    .await;
    conn.execute(&format!(
        "INSERT INTO room_grants (email, room_id, project_gid, docspace_user_id, access, state, \
            job_id, task_gid, created_at, granted_at) \
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
         SELECT 'person' || CAST(i % {PEOPLE_PER_ROOM} AS TEXT) || '@example.com', \
            1001 + i / {PEOPLE_PER_ROOM}, CAST(1300000000000001 + i / {PEOPLE_PER_ROOM} AS TEXT), \
            'user', 10, 'granted', 1, '1500000000000001', {now} - i, {now} - i FROM n",
        last = ROOMS * PEOPLE_PER_ROOM - 1,
    ))
    .await;
    if database.backend() == Backend::Postgres {
        conn.execute("ANALYZE").await;
    }
    conn.close().await;
    began.elapsed()
}
