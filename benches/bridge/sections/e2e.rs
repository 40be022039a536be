//! End to end at 100 assignments a second: from sending the delivery to the invitation reaching
//! the DocSpace fake.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use asana_docspace_fakes::{FakeUser, assignment_delivery, sign};
use asana_docspace_test_support::TestDatabase;
use hdrhistogram::Histogram;

use crate::process::{BenchEnv, Resources};
use crate::report::{Report, ms};
use crate::{PROJECT, Settings};

pub async fn run(env: &BenchEnv, settings: &Settings, report: &mut Report, max_rss_kib: &mut u64) {
    let e2e = end_to_end(env, settings, max_rss_kib).await;
    report.row([
        "end to end, 100/s (delivery → invitation)",
        &format!("{} sent", e2e.sent),
        "-",
        &ms(e2e.p50),
        &ms(e2e.p99),
        &ms(e2e.max),
        &e2e.resources.rss(),
        &e2e.resources.cpu(),
    ]);
    report.target(
        "end-to-end p99 < 50 ms at 100/s",
        ms(e2e.p99) + " ms",
        e2e.p99 < Duration::from_millis(50),
    );
}

struct EndToEnd {
    sent: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    resources: Resources,
}

/// 100 assignments a second (each a new person) for `settings.e2e`; latency from sending the
/// delivery to the invitation reaching the DocSpace fake.
async fn end_to_end(env: &BenchEnv, settings: &Settings, max_rss_kib: &mut u64) -> EndToEnd {
    let database = TestDatabase::sqlite();
    let bridge = env
        .start_bridge(
            database.url(),
            &[("BRIDGE__ASANA__REQUESTS_PER_MINUTE", "100000")],
        )
        .await;
    let secret = bridge.register("bench").await;
    let total = (settings.e2e.as_secs_f64() * 100.0) as usize;
    for i in 0..total {
        env.asana.assign(
            &format!("{}", 5_000_000 + i),
            PROJECT,
            Some(FakeUser::new(
                &format!("{}", 6_000_000 + i),
                &format!("e2e{i}@example.com"),
            )),
        );
    }
    bridge.reset_peak();
    let client = reqwest::Client::new();
    let mut sent_at: HashMap<String, Instant> = HashMap::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    let mut sends = Vec::new();
    for i in 0..total {
        ticker.tick().await;
        let body =
            assignment_delivery(&format!("{}", 5_000_000 + i), &format!("{}", 6_000_000 + i))
                .to_string();
        let signature = sign(&secret, body.as_bytes());
        sent_at.insert(format!("e2e{i}@example.com"), Instant::now());
        let request = client
            .post(bridge.webhook_url("bench"))
            .header("x-hook-signature", signature)
            .body(body)
            .send();
        sends.push(tokio::spawn(request));
    }
    for send in sends {
        assert!(
            send.await
                .expect("task")
                .expect("sent")
                .status()
                .is_success()
        );
    }
    assert!(
        env.docspace
            .wait_for_sent(total, Duration::from_secs(60))
            .await,
        "every invitation arrives"
    );
    let resources = bridge.sample();
    *max_rss_kib = (*max_rss_kib).max(resources.peak_rss_kib);
    let mut histogram = Histogram::<u64>::new(3).expect("histogram");
    for request in env.docspace.invite_requests() {
        let email = request.json()["invitations"][0]["email"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(sent) = sent_at.get(&email) {
            histogram
                .record(request.at.duration_since(*sent).as_micros() as u64)
                .expect("in range");
        }
    }
    EndToEnd {
        sent: total,
        p50: Duration::from_micros(histogram.value_at_quantile(0.5)),
        p99: Duration::from_micros(histogram.value_at_quantile(0.99)),
        max: Duration::from_micros(histogram.max()),
        resources,
    }
}
