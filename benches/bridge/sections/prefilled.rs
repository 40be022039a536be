//! Durable ingest and drain with a million finished jobs already in the store, next to the same
//! measurements on an empty store taken in the same run: the store must not slow down as its
//! history grows (the gate: within 20% of the empty store's figures).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use asana_docspace_test_support::{Backend, TestDatabase};

use super::assignments::send_assignments;
use super::drain::{Drain, drain};
use crate::database::{self, JobCounter};
use crate::load::LoadStats;
use crate::process::{BenchEnv, Resources};
use crate::report::{Report, fmt_rps, ms, ratio, thousands};
use crate::{PROJECT, Settings};

/// The concurrency at which the assignments section measures its best ingest rate.
const CONCURRENCY: usize = 64;
/// A figure with history in the store must reach this share of the empty store's.
const GATE: f64 = 0.8;

pub async fn run(
    env: &BenchEnv,
    settings: &Settings,
    ceiling_rps: &HashMap<usize, f64>,
    report: &mut Report,
    max_rss_kib: &mut u64,
) {
    let jobs = database::prefill_size();
    let history = format!("{} done jobs in the store", thousands(jobs));
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let store = backend.label();
        let Some(empty) = TestDatabase::create(backend).await else {
            report.note(format!(
                "prefilled, {store} skipped: BRIDGE_TEST_DATABASE_URL is not set"
            ));
            continue;
        };
        let before = measure(env, settings, &empty, None, max_rss_kib).await;
        drop(empty);
        let prefilled = TestDatabase::create(backend)
            .await
            .expect("created once already");
        let after = measure(env, settings, &prefilled, Some(jobs), max_rss_kib).await;
        drop(prefilled);

        let ceiling = ceiling_rps.get(&CONCURRENCY).copied();
        for (figures, label) in [(&before, "empty store"), (&after, history.as_str())] {
            report.row([
                &format!("assignments, {store}, {label}, c={CONCURRENCY}"),
                &fmt_rps(figures.ingest.rps()),
                &ratio(figures.ingest.rps(), ceiling),
                &ms(figures.ingest.p50),
                &ms(figures.ingest.p99),
                &ms(figures.ingest.max),
                &figures.ingest_resources.rss(),
                &figures.ingest_resources.cpu(),
            ]);
        }
        for (figures, label) in [(&before, "empty store"), (&after, history.as_str())] {
            report.row([
                &format!(
                    "drain {} jobs, {store}, {label}, instant fakes",
                    settings.backlog
                ),
                &format!("{:.0} jobs/s", figures.drain.rate),
                "-",
                "-",
                "-",
                "-",
                &figures.drain.resources.rss(),
                &figures.drain.resources.cpu(),
            ]);
        }
        let ingest = after.ingest.rps() / before.ingest.rps();
        report.target(
            &format!(
                "queued assignments with {history} ≥ 80% of the empty store's ({store}, c={CONCURRENCY})"
            ),
            format!(
                "{:.0}% ({}/s against {}/s)",
                ingest * 100.0,
                fmt_rps(after.ingest.rps()),
                fmt_rps(before.ingest.rps())
            ),
            ingest >= GATE,
        );
        let drained = after.drain.rate / before.drain.rate;
        report.target(
            &format!("backlog drain with {history} ≥ 80% of the empty store's ({store})"),
            format!(
                "{:.0}% ({:.0} jobs/s against {:.0} jobs/s)",
                drained * 100.0,
                after.drain.rate,
                before.drain.rate
            ),
            drained >= GATE,
        );
        if let Some(took) = after.prefill {
            report.note(format!(
                "{store}: {} done jobs (nine in ten from a webhook, one in ten from `backfill`; half with an invitations ledger row) prefilled by SQL in {:.1} s",
                thousands(jobs),
                took.as_secs_f64()
            ));
        }
    }
}

/// What one store measured.
struct Figures {
    ingest: LoadStats,
    ingest_resources: Resources,
    drain: Drain,
    /// How long the prefill took, when there was one.
    prefill: Option<Duration>,
}

/// On `database`: the bridge migrates it; then, with `prefill`, that many finished jobs go in
/// (the bridge stopped meanwhile); then assignments are sent for `settings.load` while the
/// worker is held back, and checked to be in the store; those jobs are removed again, and a
/// backlog is drained with instant fakes.
async fn measure(
    env: &BenchEnv,
    settings: &Settings,
    database: &TestDatabase,
    prefill: Option<u64>,
    max_rss_kib: &mut u64,
) -> Figures {
    // The worker would compete for the CPU: point it at an Asana that never answers.
    env.asana.set_latency(Duration::from_secs(3600));
    let mut bridge = env.start_bridge(database.url(), &[]).await;
    let secret = bridge.register("bench").await;
    let prefill = match prefill {
        Some(jobs) => {
            drop(bridge);
            let took = database::prefill(database, jobs, "bench", PROJECT).await;
            bridge = env.start_bridge(database.url(), &[]).await;
            Some(took)
        }
        None => None,
    };
    bridge.reset_peak();
    let next = Arc::new(AtomicU64::new(0));
    let ingest = send_assignments(&bridge, &secret, CONCURRENCY, settings.load, &next).await;
    let ingest_resources = bridge.sample();
    *max_rss_kib = (*max_rss_kib).max(ingest_resources.peak_rss_kib);
    drop(bridge);
    env.asana.set_latency(Duration::ZERO);

    let mut jobs = JobCounter::open(database).await;
    let queued = jobs.unfinished().await;
    jobs.close().await;
    assert!(
        queued >= ingest.count,
        "every acknowledged assignment is in the store: {queued} jobs for {} acknowledgements",
        ingest.count
    );
    database::forget_unfinished_jobs(database).await;
    let drain = drain(env, settings, database, Duration::ZERO, None, max_rss_kib).await;
    Figures {
        ingest,
        ingest_resources,
        drain,
        prefill,
    }
}
