//! A reconcile pass over a big project (SQLite, in process, instant fakes): 10,000 assigned tasks
//! of 2,000 people whose jobs ran (the `tasks` table says so), then 100 changed (50 reassigned,
//! 50 renamed). What the pass costs: Asana requests, jobs queued, wall time; the same with the
//! store full of finished jobs; and the project's first pass, the documented cost on upgrade.

use std::time::{Duration, Instant, SystemTime};

use asana_docspace_bridge::reconcile::{PassReport, PassSettings, run_pass};
use asana_docspace_bridge::store::{ClaimOutcome, Store, StoreOptions, now_ms};
use asana_docspace_bridge::upstream::AsanaClient;
use asana_docspace_fakes::FakeUser;
use asana_docspace_test_support::TestDatabase;
use secrecy::SecretString;

use crate::database::{prefill, prefill_size};
use crate::process::{BenchEnv, TOKEN};
use crate::report::{Report, thousands};
use crate::{PROJECT, Settings};

const TASKS: usize = 10_000;
const PEOPLE: usize = 2_000;
const REASSIGNED: usize = 50;
const RENAMED: usize = 50;
/// Finished jobs in the store for the second row (the quick run uses fewer).
const QUICK_PREFILL: u64 = 10_000;
/// Asana's paid-plan rate and the default share: what a first pass waits for in production.
const REQUESTS_PER_MINUTE: f64 = 1_500.0;
const RATE_SHARE: f64 = 0.2;
const HOLD: Duration = Duration::from_secs(60);

pub async fn run(settings: &Settings, report: &mut Report) {
    let env = BenchEnv::new().await;
    let database = TestDatabase::sqlite();
    let store = Store::open_migrated(database.url(), &StoreOptions::default())
        .await
        .expect("store");
    database
        .add_known_project("reconcile", PROJECT, "Big")
        .await;
    seed(&env, &database).await;
    // Unpaced: the rows measure the pass; the pacing is computed below.
    let asana = AsanaClient::new(
        &env.asana.url(),
        SecretString::from(TOKEN),
        Duration::from_secs(10),
    )
    .expect("client")
    .with_requests_per_minute(1_000_000);

    let changed = change_100(&env);
    let steady = measured_pass(&env, &store, &asana, Some(now_ms() - 60_000)).await;
    report_pass(report, "reconcile: 100 changed of 10,000 tasks", &steady);
    report.target(
        "reconcile: a pass over 100 changed tasks costs ≤ 2 Asana requests, queues the 50 reassigned, < 1 s",
        format!(
            "{} requests, {} jobs, {} ms",
            steady.requests,
            steady.report.queued,
            steady.wall.as_millis()
        ),
        steady.requests <= 2 && steady.report.queued == REASSIGNED as u64 && steady.wall < Duration::from_secs(1),
    );

    let jobs = if settings.backlog < 10_000 {
        QUICK_PREFILL
    } else {
        prefill_size()
    };
    prefill(&database, jobs, "reconcile", PROJECT).await;
    // The first 100 changed an hour ago now: the second pass reads only its own 100.
    age(&env, &changed);
    change_100(&env);
    let full = measured_pass(&env, &store, &asana, Some(now_ms() - 60_000)).await;
    report_pass(
        report,
        &format!(
            "reconcile: the same with {} finished jobs in the store",
            thousands(jobs)
        ),
        &full,
    );

    let first = measured_pass(&env, &store, &asana, None).await;
    report_pass(
        report,
        "reconcile: the project's first pass (10,000 tasks)",
        &first,
    );
    let paced = first.requests as f64 / (REQUESTS_PER_MINUTE * RATE_SHARE) * 60.0;
    report.note(format!(
        "reconcile: a first pass of 10,000 tasks is {} requests; at 1,500 requests/min × rate share 0.2 it takes about {paced:.0} s (the store's share of it: {} ms)",
        first.requests,
        first.wall.as_millis()
    ));
    store.close().await;
}

struct Measured {
    report: PassReport,
    requests: usize,
    wall: Duration,
}

/// 10,000 tasks of 2,000 people, changed an hour ago, each read by a job (its `tasks` row).
async fn seed(env: &BenchEnv, database: &TestDatabase) {
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for n in 0..TASKS {
        let task = task_gid(n);
        env.asana.assign(&task, PROJECT, Some(person(n % PEOPLE)));
        env.asana.set_modified_at(&task, hour_ago);
    }
    let read_at = now_ms() - 3_600_000;
    database
        .execute(&format!(
            "INSERT INTO tasks (gid, assignee_gid, completed, read_at) \
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {}) \
             SELECT CAST(30000000 + i AS TEXT), CAST(7000000 + i % {PEOPLE} AS TEXT), 0, {read_at} \
             FROM n",
            TASKS - 1
        ))
        .await;
}

fn task_gid(n: usize) -> String {
    format!("{}", 30_000_000 + n)
}

fn person(n: usize) -> FakeUser {
    FakeUser::new(
        &format!("{}", 7_000_000 + n),
        &format!("person{n}@example.com"),
    )
}

/// Marks `tasks` changed an hour ago.
fn age(env: &BenchEnv, tasks: &[String]) {
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for task in tasks {
        env.asana.set_modified_at(task, hour_ago);
    }
}

/// 50 tasks reassigned (to another person), 50 renamed (same assignee): all modified now.
/// Returns the tasks changed.
fn change_100(env: &BenchEnv) -> Vec<String> {
    let stamp = now_ms();
    let mut changed = Vec::new();
    for n in 0..REASSIGNED + RENAMED {
        let index = (stamp as usize + n * 97) % TASKS;
        let assignee = if n < REASSIGNED {
            person((index + 1 + (stamp as usize % 7)) % PEOPLE)
        } else {
            person(index % PEOPLE)
        };
        env.asana.assign(&task_gid(index), PROJECT, Some(assignee));
        changed.push(task_gid(index));
    }
    changed
}

/// One pass with the cursor at `cursor` (`None`: a first pass), timed, its requests counted.
async fn measured_pass(
    env: &BenchEnv,
    store: &Store,
    asana: &AsanaClient,
    cursor: Option<i64>,
) -> Measured {
    let claim = match store
        .claim_project_reconcile(&PROJECT.parse().expect("gid"), "bench", HOLD)
        .await
        .expect("claim")
    {
        ClaimOutcome::Claimed(claim) => claim,
        other => panic!("the bench project is not claimable: {other:?}"),
    };
    let claim = asana_docspace_bridge::store::ReconcileClaim { cursor, ..claim };
    let before = env.asana.requests_to("/tasks").len();
    let started = Instant::now();
    let report = run_pass(
        store,
        asana,
        &claim,
        PassSettings {
            hold: HOLD,
            interval: Some(Duration::from_secs(3600)),
            lifecycle: None,
        },
    )
    .await
    .expect("the pass");
    Measured {
        report,
        requests: env.asana.requests_to("/tasks").len() - before,
        wall: started.elapsed(),
    }
}

fn report_pass(report: &mut Report, what: &str, pass: &Measured) {
    report.row([
        what,
        &format!("{} Asana requests", pass.requests),
        &format!(
            "{} read, {} jobs queued",
            pass.report.read, pass.report.queued
        ),
        &format!("{} ms wall", pass.wall.as_millis()),
        "-",
        "-",
        "-",
        "-",
    ]);
}
