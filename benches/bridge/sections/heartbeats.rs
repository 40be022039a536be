//! Heartbeats (signed deliveries with no events) against the bridge on SQLite, and its start-up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use asana_docspace_test_support::TestDatabase;

use crate::load::{heartbeat, load};
use crate::process::BenchEnv;
use crate::report::{Report, fmt_rps, ms, ratio};
use crate::{CONCURRENCIES, Settings};

pub async fn run(
    env: &BenchEnv,
    settings: &Settings,
    ceiling_rps: &HashMap<usize, f64>,
    report: &mut Report,
    max_rss_kib: &mut u64,
) {
    let database = TestDatabase::sqlite();
    let bridge = env.start_bridge(database.url(), &[]).await;
    report.note(format!(
        "start-up to a 200 from /healthz: {} ms; idle RSS {:.1} MiB",
        bridge.startup.as_millis(),
        bridge.idle_rss_kib as f64 / 1024.0
    ));
    let startup_ok = bridge.startup < Duration::from_millis(200);
    report.target(
        "start-up < 200 ms",
        format!("{} ms", bridge.startup.as_millis()),
        startup_ok,
    );
    let secret = bridge.register("bench").await;
    let mut heartbeat_ratio_64 = 0.0;
    for &c in &CONCURRENCIES {
        bridge.reset_peak();
        let secret = secret.clone();
        let stats = load(
            &bridge.webhook_url("bench"),
            c,
            settings.load,
            Arc::new(move |_| heartbeat(&secret)),
        )
        .await;
        let resources = bridge.sample();
        *max_rss_kib = (*max_rss_kib).max(resources.peak_rss_kib);
        let ceiling = ceiling_rps.get(&c).copied();
        if c == 64 {
            heartbeat_ratio_64 = stats.rps() / ceiling.unwrap_or(f64::NAN);
        }
        report.row([
            &format!("heartbeats, c={c}"),
            &fmt_rps(stats.rps()),
            &ratio(stats.rps(), ceiling),
            &ms(stats.p50),
            &ms(stats.p99),
            &ms(stats.max),
            &resources.rss(),
            &resources.cpu(),
        ]);
        assert_eq!(stats.errors, 0, "heartbeats answered with errors");
    }
    report.target(
        "heartbeats ≥ 50% of the ceiling (c=64)",
        format!("{:.0}%", heartbeat_ratio_64 * 100.0),
        heartbeat_ratio_64 >= 0.5,
    );
}
