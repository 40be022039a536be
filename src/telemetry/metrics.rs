//! Prometheus metrics: their names in one place, the recorder, and `/metrics`.
//!
//! Counters and histograms are recorded where things happen; gauges that describe the store
//! (queue depth, oldest pending job) are read from it when `/metrics` is scraped, at most every
//! few seconds. No label value comes from an unauthenticated request: webhook names label only
//! deliveries whose signature was verified.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store::{JobStatus, Store, StoreResult, now_ms};

pub const DELIVERIES: &str = "bridge_deliveries_total";
pub const EVENTS: &str = "bridge_events_total";
pub const JOBS: &str = "bridge_jobs_total";
pub const JOB_ATTEMPTS: &str = "bridge_job_attempts_total";
pub const QUEUE_DEPTH: &str = "bridge_queue_depth";
pub const OLDEST_PENDING_AGE: &str = "bridge_oldest_pending_job_age_seconds";
pub const UPSTREAM_REQUESTS: &str = "bridge_upstream_requests_total";
pub const UPSTREAM_DURATION: &str = "bridge_upstream_request_duration_seconds";
pub const LAST_DELIVERY: &str = "bridge_webhook_last_delivery_timestamp_seconds";
pub const JOBS_DELETED: &str = "bridge_jobs_deleted_total";

/// How a delivery (or handshake) was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryResult {
    Accepted,
    BadSignature,
    UnknownWebhook,
    Malformed,
    TooLarge,
    BadRequest,
    HandshakeAccepted,
    HandshakeRefused,
    StoreUnavailable,
    Overloaded,
}

impl DeliveryResult {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryResult::Accepted => "accepted",
            DeliveryResult::BadSignature => "bad_signature",
            DeliveryResult::UnknownWebhook => "unknown_webhook",
            DeliveryResult::Malformed => "malformed",
            DeliveryResult::TooLarge => "too_large",
            DeliveryResult::BadRequest => "bad_request",
            DeliveryResult::HandshakeAccepted => "handshake_accepted",
            DeliveryResult::HandshakeRefused => "handshake_refused",
            DeliveryResult::StoreUnavailable => "store_unavailable",
            DeliveryResult::Overloaded => "overloaded",
        }
    }
}

/// The process-wide recorder; installed once, shared by every `Application` in the process.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(UPSTREAM_DURATION.to_string()),
                &[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ],
            )
            .expect("valid buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (an embedding program's): then ours stays
        // empty but `/metrics` still answers.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(DELIVERIES, "Webhook requests by how they were answered");
    describe_counter!(EVENTS, "Events in verified deliveries, by kind");
    describe_counter!(JOBS, "Finished jobs by outcome");
    describe_counter!(JOB_ATTEMPTS, "Job attempts by result (done, retry, failed)");
    describe_gauge!(QUEUE_DEPTH, "Jobs in the store by status");
    describe_gauge!(
        OLDEST_PENDING_AGE,
        Unit::Seconds,
        "Age of the oldest pending job"
    );
    describe_counter!(
        UPSTREAM_REQUESTS,
        "Requests to Asana and DocSpace by service and status"
    );
    describe_counter!(JOBS_DELETED, "Done jobs deleted by retention");
    describe_histogram!(UPSTREAM_DURATION, Unit::Seconds, "Upstream request latency");
    describe_gauge!(
        LAST_DELIVERY,
        Unit::Seconds,
        "Unix time of the last verified delivery per webhook"
    );
}

pub fn delivery(result: DeliveryResult) {
    counter!(DELIVERIES, "result" => result.as_str()).increment(1);
}

pub fn events(kind: &'static str, count: u64) {
    if count > 0 {
        counter!(EVENTS, "kind" => kind).increment(count);
    }
}

pub fn job_finished(outcome: &'static str) {
    counter!(JOBS, "outcome" => outcome).increment(1);
}

/// Also with 0, so that the counter shows from the first sweep on.
pub fn jobs_deleted(count: u64) {
    counter!(JOBS_DELETED).increment(count);
}

pub fn job_attempt(result: &'static str) {
    counter!(JOB_ATTEMPTS, "result" => result).increment(1);
}

/// One upstream call: `status` is the HTTP status, or `timeout` / `error` when none came back.
pub fn upstream(service: &'static str, operation: &'static str, status: &str, elapsed: Duration) {
    counter!(UPSTREAM_REQUESTS, "service" => service, "status" => status.to_string()).increment(1);
    histogram!(UPSTREAM_DURATION, "service" => service, "operation" => operation)
        .record(elapsed.as_secs_f64());
}

pub fn last_delivery(name: &str, at_ms: i64) {
    gauge!(LAST_DELIVERY, "webhook" => name.to_string()).set(at_ms as f64 / 1000.0);
}

/// How long store-derived gauges are reused: a scrape flood costs one `COUNT(*)` over the jobs
/// table per period, not one per scrape.
pub const STORE_GAUGES_TTL: Duration = Duration::from_secs(5);

/// When the store-derived gauges were last read, and the oldest pending job's creation then
/// (its age is computed at every scrape).
#[derive(Debug, Default)]
pub struct StoreGauges {
    last_read: tokio::sync::Mutex<Option<(Instant, Option<i64>)>>,
}

impl StoreGauges {
    /// Reads the queue counts from the store unless they were read within [`STORE_GAUGES_TTL`];
    /// concurrent scrapes wait for one read.
    async fn refresh(&self, store: &Store) -> StoreResult<()> {
        let mut last_read = self.last_read.lock().await;
        let oldest_pending = match *last_read {
            Some((at, oldest)) if at.elapsed() < STORE_GAUGES_TTL => oldest,
            _ => {
                let counts = store.queue_counts().await?;
                for (status, count) in [
                    (JobStatus::Pending, counts.pending),
                    (JobStatus::Running, counts.running),
                    (JobStatus::Done, counts.done),
                    (JobStatus::Failed, counts.failed),
                ] {
                    gauge!(QUEUE_DEPTH, "status" => status.as_str()).set(count as f64);
                }
                let oldest = store.oldest_pending_job_created_at().await?;
                *last_read = Some((Instant::now(), oldest));
                oldest
            }
        };
        let age = match oldest_pending {
            Some(created) => (now_ms() - created).max(0) as f64 / 1000.0,
            None => 0.0,
        };
        gauge!(OLDEST_PENDING_AGE).set(age);
        Ok(())
    }
}

/// Refreshes the store-derived gauges, then renders everything in the Prometheus text format.
pub async fn render(store: &Store, gauges: &StoreGauges) -> StoreResult<String> {
    gauges.refresh(store).await?;
    let handle = handle();
    handle.run_upkeep();
    Ok(handle.render())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    #[tokio::test]
    async fn scrapes_within_the_period_do_not_read_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("bridge.db").display());
        let store = Store::open_migrated(&url, &StoreOptions::default())
            .await
            .unwrap();
        let gauges = StoreGauges::default();
        render(&store, &gauges)
            .await
            .expect("the first scrape reads");
        store.close().await;
        render(&store, &gauges)
            .await
            .expect("the next scrape uses what the first one read");
    }
}
