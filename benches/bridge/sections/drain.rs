//! Backlog drain: instant fakes, 50 ms fakes, and the Asana limiter.

use std::time::{Duration, Instant};

use asana_docspace_fakes::{FakeUser, assignment_delivery, sign};
use asana_docspace_test_support::TestDatabase;

use crate::database::JobCounter;
use crate::process::{BenchEnv, Resources};
use crate::report::Report;
use crate::{PROJECT, Settings};

pub async fn run(env: &BenchEnv, settings: &Settings, report: &mut Report, max_rss_kib: &mut u64) {
    let database = TestDatabase::sqlite();
    let instant = drain(env, settings, &database, Duration::ZERO, None, max_rss_kib).await;
    report.row([
        &format!(
            "drain {} jobs, instant fakes, concurrency 4",
            settings.backlog
        ),
        &format!("{:.0} jobs/s", instant.rate),
        "-",
        "-",
        "-",
        "-",
        &instant.resources.rss(),
        &instant.resources.cpu(),
    ]);
    report.target(
        "backlog drain ≥ 1,000 jobs/s with instant fakes",
        format!("{:.0} jobs/s", instant.rate),
        instant.rate >= 1000.0,
    );
    let database = TestDatabase::sqlite();
    let slow = drain(
        env,
        settings,
        &database,
        Duration::from_millis(50),
        None,
        max_rss_kib,
    )
    .await;
    report.row([
        &format!("drain {} jobs, fakes answer after 50 ms", settings.backlog),
        &format!("{:.1} jobs/s", slow.rate),
        "-",
        "-",
        "-",
        "-",
        &slow.resources.rss(),
        &slow.resources.cpu(),
    ]);
    report.note(format!(
        "with 50 ms fakes a job makes 3 sequential upstream calls (≥ 150 ms), so 4 workers cannot exceed ~26.7 jobs/s: measured {:.1} jobs/s ({} jobs in {:.0} s)",
        slow.rate,
        slow.done,
        slow.elapsed.as_secs_f64()
    ));
    let database = TestDatabase::sqlite();
    let paced = drain(
        env,
        settings,
        &database,
        Duration::ZERO,
        Some(600),
        max_rss_kib,
    )
    .await;
    report.row([
        "drain with asana.requests_per_minute = 600",
        &format!("{:.1} jobs/s", paced.rate),
        "-",
        "-",
        "-",
        "-",
        &paced.resources.rss(),
        &paced.resources.cpu(),
    ]);
    report.target(
        "a backlog drains at the configured Asana rate (600/min = 10/s, after a one-second burst)",
        format!("{:.1} jobs/s", paced.rate),
        (9.0..=10.5).contains(&paced.rate),
    );
}

pub struct Drain {
    pub rate: f64,
    pub done: usize,
    pub elapsed: Duration,
    pub resources: Resources,
}

/// Queues `settings.backlog` jobs on `database` (webhook `drain`) while the worker is held back,
/// restarts the bridge with the fakes answering after `latency`, and measures how fast the
/// backlog drains (over the whole backlog, or the first `settings.drain_window` when that is
/// shorter). Jobs the store had finished before are not counted: `database` holds no unfinished
/// job of its own.
pub async fn drain(
    env: &BenchEnv,
    settings: &Settings,
    database: &TestDatabase,
    latency: Duration,
    asana_per_minute: Option<u32>,
    max_rss_kib: &mut u64,
) -> Drain {
    let offset = 10_000_000 + rand::random::<u32>() as usize % 1_000_000 * 100;
    let assignments: Vec<(String, String)> = (0..settings.backlog)
        .map(|i| (format!("{}", offset + i), format!("{}", offset + i)))
        .collect();
    for (task, user) in &assignments {
        env.asana.assign(
            task,
            PROJECT,
            Some(FakeUser::new(user, &format!("drain{user}@example.com"))),
        );
    }
    queue_backlog(env, database, "drain", &assignments).await;
    env.asana.set_latency(latency);
    env.docspace.set_latency(latency);
    let per_minute = asana_per_minute.unwrap_or(1_000_000).to_string();
    let bridge = env
        .start_bridge(
            database.url(),
            &[("BRIDGE__ASANA__REQUESTS_PER_MINUTE", &per_minute)],
        )
        .await;
    bridge.reset_peak();
    let mut jobs = JobCounter::open(database).await;
    let began = Instant::now();
    let window = if asana_per_minute.is_some() {
        Duration::from_secs(20).min(settings.drain_window * 2)
    } else {
        settings.drain_window.max(Duration::from_secs(5))
    };
    // The limiter lets a second's worth through at once: measure the steady rate after it.
    let warm_up = if asana_per_minute.is_some() {
        Duration::from_secs(2)
    } else {
        Duration::ZERO
    };
    let mut at_warm_up: Option<(usize, Instant)> = warm_up.is_zero().then_some((0, began));
    let done = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let unfinished = jobs.unfinished().await as usize;
        let done = settings.backlog.saturating_sub(unfinished);
        if at_warm_up.is_none() && began.elapsed() >= warm_up {
            at_warm_up = Some((done, Instant::now()));
        }
        if done >= settings.backlog || began.elapsed() >= window {
            break done;
        }
    };
    let (done_before, measured_from) = at_warm_up.unwrap_or((0, began));
    let elapsed = measured_from.elapsed();
    let resources = bridge.sample();
    *max_rss_kib = (*max_rss_kib).max(resources.peak_rss_kib);
    env.asana.set_latency(Duration::ZERO);
    env.docspace.set_latency(Duration::ZERO);
    let failed = jobs.with_status("failed").await;
    jobs.close().await;
    assert_eq!(failed, 0, "no job failed");
    Drain {
        rate: (done - done_before) as f64 / elapsed.as_secs_f64(),
        done,
        elapsed,
        resources,
    }
}

/// Queues a job for each (task gid, assignee gid) of `assignments` on `database`, through webhook
/// `webhook` in deliveries of 500 events, while Asana never answers so that nothing drains yet;
/// the bridge is stopped afterwards and Asana answers again.
pub async fn queue_backlog(
    env: &BenchEnv,
    database: &TestDatabase,
    webhook: &str,
    assignments: &[(String, String)],
) {
    env.asana.set_latency(Duration::from_secs(3600));
    let bridge = env.start_bridge(database.url(), &[]).await;
    let secret = bridge.register(webhook).await;
    for chunk in assignments.chunks(500) {
        let events: Vec<_> = chunk
            .iter()
            .map(|(task, user)| assignment_delivery(task, user)["events"][0].clone())
            .collect();
        let body = serde_json::json!({ "events": events }).to_string();
        let signature = sign(&secret, body.as_bytes());
        let response = bridge
            .client
            .post(bridge.webhook_url(webhook))
            .header("x-hook-signature", signature)
            .body(body)
            .send()
            .await
            .expect("queued");
        assert!(response.status().is_success());
    }
    drop(bridge);
    env.asana.set_latency(Duration::ZERO);
}
