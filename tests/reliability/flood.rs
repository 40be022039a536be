//! Six clients hammer random webhook names, forged handshakes and `/metrics` as fast as they can,
//! while Asana's real deliveries keep arriving: every real delivery is answered 200 quickly, the
//! service's memory stays small, and `/metrics` carries no label an unauthenticated client chose.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use asana_docspace_fakes::{assignment_delivery, sign};
use rstest::rstest;

use crate::helpers::{Backend, BridgeProcess, Env, WAIT, name};

const FLOODERS: usize = 6;
const DELIVERIES: usize = 150;
/// Finished jobs already in the store, so a `COUNT(*)` over them costs what it does in production.
const OLD_JOBS: usize = 200_000;
/// Bounds on the flood, whatever happens.
const FLOOD_MAX_REQUESTS: u64 = 2_000_000;
const FLOOD_MAX_TIME: Duration = Duration::from_secs(120);
const P99_LIMIT: Duration = Duration::from_millis(500);
const RSS_LIMIT_KIB: u64 = 100 * 1024;
/// Every name a flooder makes up starts so, to find it in `/metrics` if it leaked there.
const FLOOD_PREFIX: &str = "flood-";
/// What the bridge promises for logs of refused requests.
const REFUSAL_LINES_PER_SECOND: usize = 10;

#[derive(Default)]
struct FloodCounts {
    requests: AtomicU64,
    failed: AtomicU64,
    by_status: [AtomicU64; 6],
}

impl FloodCounts {
    fn record(&self, status: Option<u16>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let slot = match status {
            Some(200) => 0,
            Some(401) => 1,
            Some(403) => 2,
            Some(503) => 3,
            Some(_) => 4,
            None => 5,
        };
        if status.is_none() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.by_status[slot].fetch_add(1, Ordering::Relaxed);
    }

    fn summary(&self) -> String {
        let [ok, unauthorized, forbidden, unavailable, other, failed] =
            self.by_status.each_ref().map(|c| c.load(Ordering::Relaxed));
        format!(
            "200: {ok}, 401: {unauthorized}, 403: {forbidden}, 503: {unavailable}, other: {other}, no answer: {failed}"
        )
    }
}

fn random_name() -> String {
    format!("{FLOOD_PREFIX}{:016x}", rand::random::<u64>())
}

/// One flooder: random names with forged signatures, forged handshakes, scrapes, in turn.
async fn flood(url: String, counts: Arc<FloodCounts>, stop: Arc<AtomicBool>, seed: usize) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = Instant::now();
    let body = r#"{"events":[]}"#;
    for i in seed.. {
        if stop.load(Ordering::Relaxed)
            || started.elapsed() > FLOOD_MAX_TIME
            || counts.requests.load(Ordering::Relaxed) >= FLOOD_MAX_REQUESTS
        {
            return;
        }
        let request = match i % 3 {
            0 => client
                .post(format!("{url}/webhooks/asana/{}", random_name()))
                .header("x-hook-signature", sign("forged", body.as_bytes()))
                .body(body),
            1 => client
                .post(format!("{url}/webhooks/asana/{}", random_name()))
                .header("x-hook-secret", random_name()),
            _ => client.get(format!("{url}/metrics")),
        };
        let status = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let _ = response.bytes().await;
                Some(status)
            }
            Err(_) => None,
        };
        counts.record(status);
    }
}

/// Peak resident memory of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmHWM line")
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_deliveries_are_answered_quickly_during_an_unauthenticated_flood(
    #[case] backend: Backend,
) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__WEBHOOKS__HANDSHAKE", "registration");
    env.set("BRIDGE__ASANA__REQUESTS_PER_MINUTE", "1000000");
    let store = env.store().await;
    env.execute_sql(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {OLD_JOBS}) \
         INSERT INTO jobs (dedupe_key, source, task_gid, event_kind, status, run_at, outcome, created_at, updated_at) \
         SELECT 'old-' || i, 'webhook:proj', '9' || i, 'assignee_changed', 'done', 0, 'invited', 0, 0 FROM n"
    ))
    .await;
    let secret = "the-real-secret";
    store
        .store_secret_if_absent(&name("proj"), secret.into())
        .await
        .unwrap();
    for i in 0..DELIVERIES {
        env.assign(
            &format!("{}", 100_000 + i),
            &format!("{}", 200_000 + i),
            &format!("flood{i}@example.com"),
        );
    }
    let process = BridgeProcess::start(&env).await;
    let pid = process.child.id().expect("running");
    let url = process.bridge.url("");

    let counts = Arc::new(FloodCounts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|seed| tokio::spawn(flood(url.clone(), counts.clone(), stop.clone(), seed)))
        .collect();
    // Let the flood reach full speed first.
    crate::helpers::eventually("the flood to start", WAIT, || async {
        (counts.requests.load(Ordering::Relaxed) >= 300).then_some(())
    })
    .await;

    let flood_started = Instant::now();
    let flood_requests_before = counts.requests.load(Ordering::Relaxed);
    let mut latencies = Vec::with_capacity(DELIVERIES);
    let mut refused = Vec::new();
    for i in 0..DELIVERIES {
        let body = assignment_delivery(&format!("{}", 100_000 + i), &format!("{}", 200_000 + i))
            .to_string();
        let signature = sign(secret, body.as_bytes());
        let sent = Instant::now();
        let response = process
            .bridge
            .deliver_raw("proj", Some(&signature), body)
            .await;
        latencies.push(sent.elapsed());
        if response.status() != 200 {
            refused.push((i, response.status().as_u16()));
        }
    }
    let flood_rate = (counts.requests.load(Ordering::Relaxed) - flood_requests_before) as f64
        / flood_started.elapsed().as_secs_f64();
    let metrics = process
        .bridge
        .client
        .get(process.bridge.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    for flooder in flooders {
        flooder.await.unwrap();
    }
    let peak_kib = peak_rss_kib(pid);
    let flood_secs = flood_started.elapsed().as_secs_f64();
    let refusal_lines = process
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|line| line.contains("request refused"))
        .count();

    latencies.sort();
    let p50 = latencies[DELIVERIES / 2];
    let p99 = latencies[(DELIVERIES * 99).div_ceil(100) - 1];
    let max = latencies[DELIVERIES - 1];
    eprintln!(
        "flood: {} requests ({flood_rate:.0}/s while deliveries ran; {}); deliveries: p50 {p50:?}, p99 {p99:?}, max {max:?}; \
         process peak RSS (VmHWM) {:.1} MiB; {refusal_lines} refusals logged in {flood_secs:.1} s",
        counts.requests.load(Ordering::Relaxed),
        counts.summary(),
        peak_kib as f64 / 1024.0,
    );
    assert!(refused.is_empty(), "real deliveries refused: {refused:?}");
    assert!(p99 < P99_LIMIT, "p99 {p99:?} is over {P99_LIMIT:?}");
    assert!(peak_kib < RSS_LIMIT_KIB, "peak RSS {peak_kib} KiB");
    // The flood started before `flood_started`: allow a few seconds more of log lines.
    let allowed_lines = REFUSAL_LINES_PER_SECOND * (flood_secs as usize + 5);
    assert!(
        refusal_lines <= allowed_lines,
        "{refusal_lines} refusal log lines, more than {allowed_lines}: they are not rate-limited"
    );
    assert!(
        counts.by_status[1].load(Ordering::Relaxed) > 0,
        "the forged deliveries were refused 401"
    );
    assert!(
        !metrics.contains(FLOOD_PREFIX),
        "a name chosen by an unauthenticated client is in /metrics:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains(FLOOD_PREFIX))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        metrics.contains(r#"webhook="proj""#),
        "the real webhook's name is a label"
    );
    assert_eq!(process.terminate().await.code(), Some(0));
}
