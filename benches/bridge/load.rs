//! The load generator: closed-loop clients sending signed webhook deliveries, and what they saw.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use asana_docspace_fakes::{assignment_delivery, sign};
use hdrhistogram::Histogram;

/// A request to send: body and signature.
pub type MakeRequest = Arc<dyn Fn(u64) -> (String, String) + Send + Sync>;

/// A delivery with no events, as Asana sends to keep a webhook alive.
pub fn heartbeat(secret: &str) -> (String, String) {
    let body = r#"{"events":[]}"#.to_string();
    let signature = sign(secret, body.as_bytes());
    (body, signature)
}

/// The `n`th of a series of assignments, each of its own task to its own person.
pub fn distinct_assignment(secret: &str, n: u64) -> (String, String) {
    let body = assignment_delivery(&format!("{}", 3_000_000 + n), &format!("{}", 7_000_000 + n))
        .to_string();
    let signature = sign(secret, body.as_bytes());
    (body, signature)
}

pub struct LoadStats {
    pub count: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl LoadStats {
    pub fn rps(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
}

/// `concurrency` clients, each sending its next request when the previous one is answered.
pub async fn load(
    url: &str,
    concurrency: usize,
    duration: Duration,
    make: MakeRequest,
) -> LoadStats {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let stop = Arc::new(AtomicBool::new(false));
    let sequence = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, stop, make, sequence) = (
            client.clone(),
            url.to_string(),
            stop.clone(),
            make.clone(),
            sequence.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new(3).expect("histogram");
            let (mut count, mut errors) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let (body, signature) = make(sequence.fetch_add(1, Ordering::Relaxed));
                let sent = Instant::now();
                let result = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-hook-signature", signature)
                    .body(body)
                    .send()
                    .await;
                let ok = match result {
                    Ok(response) => {
                        let status = response.status();
                        let _ = response.bytes().await;
                        status.is_success()
                    }
                    Err(_) => false,
                };
                histogram
                    .record(sent.elapsed().as_micros() as u64)
                    .expect("in range");
                if ok { count += 1 } else { errors += 1 }
            }
            (histogram, count, errors)
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut histogram = Histogram::<u64>::new(3).expect("histogram");
    let (mut count, mut errors) = (0, 0);
    for task in tasks {
        let (h, c, e) = task.await.expect("load task");
        histogram.add(h).expect("same bounds");
        count += c;
        errors += e;
    }
    let elapsed = started.elapsed();
    LoadStats {
        count,
        errors,
        elapsed,
        p50: Duration::from_micros(histogram.value_at_quantile(0.5)),
        p99: Duration::from_micros(histogram.value_at_quantile(0.99)),
        max: Duration::from_micros(histogram.max()),
    }
}
