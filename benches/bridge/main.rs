//! The benchmark: the bridge (release build, as a process of its own) against a bare axum server
//! on the same machine, with the Asana and DocSpace fakes on loopback.
//!
//!     cargo bench --bench bridge                 # everything, about 8 minutes
//!     cargo bench --bench bridge -- --quick      # shorter runs, for a smoke check
//!     cargo bench --bench bridge -- --only drain # one section, printed, not written
//!
//! Sections: `ceiling`, `heartbeats`, `assignments`, `e2e`, `drain`, `prefilled` (ingest and
//! drain with a million finished jobs in the store; `BRIDGE_BENCH_PREFILL=10000` prefills fewer),
//! `rooms` (a backlog over 50 projects drained with rooms `auto`, and what each job costs upstream),
//! `reconcile` (a pass over a 10,000-task project with 100 changed, and its first pass), `status`
//! (the status page's data over a million done jobs, against a `GROUP BY status`).
//! PostgreSQL figures need `BRIDGE_TEST_DATABASE_URL` (a database is created and dropped).
//! Results are printed and written to BENCHMARKS.md.

mod database;
mod load;
mod process;
mod report;
mod sections;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use process::BenchEnv;
use report::Report;

const PROJECT: &str = "1200000000000100";
const CONCURRENCIES: [usize; 3] = [1, 16, 64];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--serve-ceiling") {
        process::serve_ceiling();
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(quick, only));
}

/// How long each measurement runs, and the backlog the drains start from.
pub struct Settings {
    load: Duration,
    e2e: Duration,
    drain_window: Duration,
    backlog: usize,
}

impl Settings {
    fn new(quick: bool) -> Settings {
        if quick {
            Settings {
                load: Duration::from_secs(2),
                e2e: Duration::from_secs(5),
                drain_window: Duration::from_secs(5),
                backlog: 2_000,
            }
        } else {
            Settings {
                load: Duration::from_secs(5),
                e2e: Duration::from_secs(30),
                drain_window: Duration::from_secs(30),
                backlog: 10_000,
            }
        }
    }
}

async fn run(quick: bool, only: Option<String>) {
    let wants = |section: &str| only.as_deref().is_none_or(|o| o == section);
    let settings = Settings::new(quick);
    let mut report = Report::default();
    let started = Instant::now();

    // Requests per second of the ceiling, by concurrency: what the other rows are compared with.
    let ceiling_rps: HashMap<usize, f64> =
        if wants("ceiling") || wants("heartbeats") || wants("assignments") {
            sections::ceiling::run(&settings, &mut report).await
        } else {
            HashMap::new()
        };

    let env = BenchEnv::new().await;
    let mut max_rss_kib = 0;
    if wants("heartbeats") {
        sections::heartbeats::run(&env, &settings, &ceiling_rps, &mut report, &mut max_rss_kib)
            .await;
    }
    if wants("assignments") {
        sections::assignments::run(&env, &settings, &ceiling_rps, &mut report, &mut max_rss_kib)
            .await;
    }
    if wants("e2e") {
        sections::e2e::run(&env, &settings, &mut report, &mut max_rss_kib).await;
    }
    if wants("drain") {
        sections::drain::run(&env, &settings, &mut report, &mut max_rss_kib).await;
    }
    if wants("prefilled") {
        sections::prefilled::run(&env, &settings, &ceiling_rps, &mut report, &mut max_rss_kib)
            .await;
    }
    if wants("rooms") {
        sections::rooms::run(&settings, &mut report, &mut max_rss_kib).await;
    }
    if wants("reconcile") {
        sections::reconcile::run(&settings, &mut report).await;
    }
    if wants("status") {
        sections::status::run(&settings, &mut report).await;
    }

    report.target(
        "RSS < 50 MB under load",
        format!("peak {:.1} MiB", max_rss_kib as f64 / 1024.0),
        max_rss_kib < 50 * 1024,
    );
    report.note(format!(
        "total benchmark time {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    if only.is_none() {
        report.write_markdown(quick);
    }
}
