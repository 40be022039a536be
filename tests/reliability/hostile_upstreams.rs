//! Upstreams that answer to hurt: a `Retry-After` of 2^64-1 seconds and task answers of 100 MiB.
//! The bridge process neither panics nor stalls, and never holds such a body in memory.

use asana_docspace_bridge::store::JobStatus;
use std::time::Duration;

use asana_docspace_fakes::Fault;
use rstest::rstest;

use crate::bad_input::peak_rss_mib;
use crate::helpers::{Backend, BridgeProcess, Env, job_with_status};

const HUGE: u64 = 100 << 20;

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_retry_after_and_huge_bodies_neither_panic_nor_stall_nor_buffer(
    #[case] backend: Backend,
) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__WORKER__MAX_ATTEMPTS", "3");
    env.set("BRIDGE__WORKER__BACKOFF_MAX_MS", "1000");
    // Room to read 100 MiB, and no lease expiry to hide a panicked attempt.
    env.set("BRIDGE__WORKER__REQUEST_TIMEOUT_MS", "10000");
    env.set("BRIDGE__WORKER__LEASE_MS", "60000");
    env.assign("501", "601", "jane@example.com");
    env.asana.push_fault(
        "get_task",
        Fault::rate_limited(Some("18446744073709551615")),
    );
    env.asana.push_fault(
        "get_task",
        Fault::HugeBody {
            bytes: HUGE,
            declared: true,
        },
    );
    env.asana.push_fault(
        "get_task",
        Fault::HugeBody {
            bytes: HUGE,
            declared: false,
        },
    );
    let process = BridgeProcess::start(&env).await;
    let secret = process.bridge.register("proj").await;

    process
        .bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    let job = job_with_status(&env.store().await, 1, JobStatus::Failed).await;
    assert_eq!(job.attempts, 3);
    let error = job.last_error.unwrap_or_default();
    assert_eq!(
        error,
        "gave up after 3 attempts: Asana sent a response too large (over 4 MiB)"
    );
    let reads = env.asana.requests_to("/tasks/501");
    let waited = reads[1].at.duration_since(reads[0].at);
    assert!(
        waited < Duration::from_secs(3),
        "the 429 held the job {waited:?}"
    );
    let logs = process.logs.lock().unwrap().join("\n");
    assert!(!logs.contains("panicked"), "{logs}");
    let peak = peak_rss_mib(&process);
    assert!(
        peak < 64,
        "peak RSS {peak} MiB after two {} MiB answers",
        HUGE >> 20
    );
    assert_eq!(process.terminate().await.code(), Some(0));
}
