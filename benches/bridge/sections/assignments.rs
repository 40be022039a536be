//! Assignments, each durably queued before it is acknowledged, on SQLite and on PostgreSQL.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use asana_docspace_test_support::TestDatabase;

use crate::database::JobCounter;
use crate::load::{LoadStats, distinct_assignment, load};
use crate::process::{BenchEnv, BridgeUnderTest};
use crate::report::{Report, fmt_rps, ms, ratio};
use crate::{CONCURRENCIES, Settings};

pub async fn run(
    env: &BenchEnv,
    settings: &Settings,
    ceiling_rps: &HashMap<usize, f64>,
    report: &mut Report,
    max_rss_kib: &mut u64,
) {
    // The worker would compete for the CPU: point it at an Asana that never answers.
    env.asana.set_latency(Duration::from_secs(3600));
    let next = Arc::new(AtomicU64::new(0));
    let sqlite = TestDatabase::sqlite();
    let best = on_store(
        env,
        &sqlite,
        settings,
        ceiling_rps,
        &next,
        report,
        max_rss_kib,
    )
    .await;
    report.target(
        "queued assignments ≥ 5,000/s on SQLite",
        format!("{}/s", fmt_rps(best)),
        best >= 5000.0,
    );
    match TestDatabase::postgres().await {
        Some(pg) => {
            let best = on_store(env, &pg, settings, ceiling_rps, &next, report, max_rss_kib).await;
            report.target(
                "queued assignments ≥ 3,000/s on PostgreSQL",
                format!("{}/s", fmt_rps(best)),
                best >= 3000.0,
            );
        }
        None => report.note("PostgreSQL skipped: BRIDGE_TEST_DATABASE_URL is not set".to_string()),
    }
    env.asana.set_latency(Duration::ZERO);
}

/// Distinct signed assignments at each concurrency against a bridge on `database`; checks that
/// every acknowledged one is in the store and returns the best rate.
async fn on_store(
    env: &BenchEnv,
    database: &TestDatabase,
    settings: &Settings,
    ceiling_rps: &HashMap<usize, f64>,
    next: &Arc<AtomicU64>,
    report: &mut Report,
    max_rss_kib: &mut u64,
) -> f64 {
    let store = database.backend().label();
    let bridge = env.start_bridge(database.url(), &[]).await;
    let secret = bridge.register("bench").await;
    let (mut best, mut acknowledged) = (0.0, 0);
    for &c in &CONCURRENCIES {
        bridge.reset_peak();
        let stats = send_assignments(&bridge, &secret, c, settings.load, next).await;
        acknowledged += stats.count;
        let resources = bridge.sample();
        *max_rss_kib = (*max_rss_kib).max(resources.peak_rss_kib);
        best = f64::max(best, stats.rps());
        report.row([
            &format!("assignments, {store}, c={c}"),
            &fmt_rps(stats.rps()),
            &ratio(stats.rps(), ceiling_rps.get(&c).copied()),
            &ms(stats.p50),
            &ms(stats.p99),
            &ms(stats.max),
            &resources.rss(),
            &resources.cpu(),
        ]);
    }
    let mut counter = JobCounter::open(database).await;
    let queued = counter.all().await;
    counter.close().await;
    report.note(format!(
        "{store}: {acknowledged} assignments acknowledged, {queued} jobs in the store afterwards"
    ));
    assert!(
        queued >= acknowledged,
        "every acknowledged assignment is in the store"
    );
    best
}

/// `concurrency` clients sending assignments (webhook `bench`, signed with `secret`), each of a
/// task and a person of its own (numbered by `next`), for `duration`.
pub async fn send_assignments(
    bridge: &BridgeUnderTest,
    secret: &str,
    concurrency: usize,
    duration: Duration,
    next: &Arc<AtomicU64>,
) -> LoadStats {
    let (secret, next) = (secret.to_string(), next.clone());
    load(
        &bridge.webhook_url("bench"),
        concurrency,
        duration,
        Arc::new(move |_| distinct_assignment(&secret, next.fetch_add(1, Ordering::Relaxed))),
    )
    .await
}
