//! The ceiling: what a bare axum server on this machine answers, at each concurrency.

use std::collections::HashMap;
use std::sync::Arc;

use asana_docspace_fakes::random_secret;

use crate::load::{heartbeat, load};
use crate::process::CeilingProcess;
use crate::report::{Report, fmt_rps, ms};
use crate::{CONCURRENCIES, Settings};

/// Returns the ceiling's requests per second by concurrency.
pub async fn run(settings: &Settings, report: &mut Report) -> HashMap<usize, f64> {
    let mut ceiling_rps = HashMap::new();
    let ceiling = CeilingProcess::start();
    for &c in &CONCURRENCIES {
        let secret = random_secret();
        let stats = load(
            &ceiling.url(),
            c,
            settings.load,
            Arc::new(move |_| heartbeat(&secret)),
        )
        .await;
        ceiling_rps.insert(c, stats.rps());
        let resources = ceiling.sample();
        report.row([
            &format!("ceiling (bare axum), c={c}"),
            &fmt_rps(stats.rps()),
            "1.00",
            &ms(stats.p50),
            &ms(stats.p99),
            &ms(stats.max),
            &resources.rss(),
            &resources.cpu(),
        ]);
    }
    ceiling_rps
}
