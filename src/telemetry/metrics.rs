//! Prometheus metrics: their names in one place, the recorder, the functions that record them,
//! and the text `/metrics` serves.
//!
//! Counters and histograms are recorded where things happen; the gauges that describe the store
//! are set by `/metrics` itself (`http::metrics_endpoint`), which reads the store when scraped.
//! No label value comes from an unauthenticated request: webhook names label only deliveries
//! whose signature was verified.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

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
pub const ROOM_GRANTS: &str = "bridge_room_grants_total";
pub const ROOMS_CREATED: &str = "bridge_rooms_created_total";
pub const RECONCILE_PASSES: &str = "bridge_reconcile_passes_total";
pub const RECONCILE_MISSED: &str = "bridge_reconcile_missed_total";
pub const RECONCILE_LAG: &str = "bridge_reconcile_lag_seconds";
pub const WEBHOOKS_RECREATED: &str = "bridge_webhooks_recreated_total";
pub const ROOM_REVOCATIONS: &str = "bridge_room_revocations_total";
pub const ROOM_REVOCATIONS_OPEN: &str = "bridge_room_revocations_open";
pub const ADMIN_SIGN_INS: &str = "bridge_admin_sign_ins_total";
pub const ADMIN_RETRIES: &str = "bridge_admin_retries_total";

/// How a delivery (or handshake) was answered; its metrics label is the snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
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
        self.into()
    }
}

/// How a sign-in at the status page's form ended; its metrics label is the snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum SignInResult {
    Ok,
    WrongToken,
    /// Refused unchecked: too many wrong tokens lately.
    Throttled,
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
    describe_counter!(ROOM_GRANTS, "Room decisions of recorded jobs by result");
    describe_counter!(ROOMS_CREATED, "Rooms created in DocSpace");
    describe_counter!(JOBS_DELETED, "Done jobs deleted by retention");
    describe_counter!(
        RECONCILE_PASSES,
        "Reconcile passes of the service by result"
    );
    describe_counter!(
        RECONCILE_MISSED,
        "Assignments a reconcile pass found that no delivery had brought"
    );
    describe_gauge!(
        RECONCILE_LAG,
        Unit::Seconds,
        "Age of each watched project's reconcile cursor"
    );
    describe_counter!(
        WEBHOOKS_RECREATED,
        "Webhooks registered again after Asana deleted or deactivated them"
    );
    describe_counter!(
        ADMIN_SIGN_INS,
        "Sign-ins at the status page's form by result (ok, wrong_token, throttled)"
    );
    describe_counter!(ADMIN_RETRIES, "Failed jobs retried from the status page");
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

/// One room decision of a recorded job: `granted`, `already_in_room` or `failed`.
pub fn room_grant(result: &'static str) {
    counter!(ROOM_GRANTS, "result" => result).increment(1);
}

/// A revoke job's recorded decision: `revoked`, `kept_changed_by_hand`, `kept_not_granted`,
/// `failed` or `room_gone` (a need back, or revocation turned off, decides nothing).
pub fn room_revocation(result: &'static str) {
    counter!(ROOM_REVOCATIONS, "result" => result).increment(1);
}

/// Revocations waiting for their grace period or being removed (set when `/metrics` is scraped).
pub fn room_revocations_open(count: i64) {
    gauge!(ROOM_REVOCATIONS_OPEN).set(count as f64);
}

/// A room DocSpace created at the bridge's request.
pub fn room_created() {
    counter!(ROOMS_CREATED).increment(1);
}

/// A reconcile pass of the service ended (`ok` or `failed`).
pub fn reconcile_pass(result: &'static str) {
    counter!(RECONCILE_PASSES, "result" => result).increment(1);
}

/// Jobs a pass with a window queued: assignments no delivery had brought.
pub fn reconcile_missed(count: u64) {
    counter!(RECONCILE_MISSED).increment(count);
}

/// The age of `project`'s reconcile cursor (set when `/metrics` is scraped).
pub fn reconcile_lag(project: &str, lag: Duration) {
    gauge!(RECONCILE_LAG, "project" => project.to_string()).set(lag.as_secs_f64());
}

/// A webhook Asana deleted or deactivated was registered again.
pub fn webhook_recreated() {
    counter!(WEBHOOKS_RECREATED).increment(1);
}

/// A sign-in at the status page's form (bearer calls of its JSON API are not sign-ins).
pub fn admin_sign_in(result: SignInResult) {
    let result: &'static str = result.into();
    counter!(ADMIN_SIGN_INS, "result" => result).increment(1);
}

/// A failed job made due again by the status page's Retry button.
pub fn admin_retry() {
    counter!(ADMIN_RETRIES).increment(1);
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

/// Jobs in the store with `status`.
pub fn queue_depth(status: &'static str, count: i64) {
    gauge!(QUEUE_DEPTH, "status" => status).set(count as f64);
}

/// How long the oldest pending job has waited (zero when none is pending).
pub fn oldest_pending_age(age: Duration) {
    gauge!(OLDEST_PENDING_AGE).set(age.as_secs_f64());
}

/// Everything recorded, in the Prometheus text format.
pub fn render() -> String {
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}
