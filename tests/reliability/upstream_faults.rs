//! Asana and DocSpace failing 30% of the time in every way a real network fails: every invitation
//! still goes out once, and nothing is retried after a permanent 4xx.

use asana_docspace_bridge::store::JobStatus;
use std::collections::HashMap;
use std::time::Duration;

use asana_docspace_fakes::{Fault, assignment_delivery};
use rstest::rstest;
use serde_json::json;

use crate::helpers::{Backend, BridgeProcess, Env, WAIT, eventually};

const PEOPLE: usize = 100;
const DISABLED: usize = 10;

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invitation_goes_out_once_through_30_percent_faults(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__WORKER__REQUEST_TIMEOUT_MS", "400");
    env.set("BRIDGE__WORKER__LEASE_MS", "3000");
    env.set("BRIDGE__WORKER__MAX_ATTEMPTS", "60");
    env.set("BRIDGE__WORKER__BACKOFF_BASE_MS", "10");
    env.set("BRIDGE__WORKER__BACKOFF_MAX_MS", "200");
    env.set("BRIDGE__WORKER__CONCURRENCY", "8");
    env.set("BRIDGE__ASANA__REQUESTS_PER_MINUTE", "1000000");
    let faults = vec![
        Fault::html(500),
        Fault::html(502),
        Fault::html(503),
        Fault::json(
            503,
            json!({"errors": [{"message": "Server Error", "phrase": "6 sad squid snuggle softly"}]}),
        ),
        Fault::rate_limited(Some("1")),
        Fault::rate_limited(None),
        Fault::Delay(Duration::from_millis(1200)),
        Fault::Drop,
    ];
    env.asana.set_random_faults(0.3, faults.clone());
    env.docspace.set_random_faults(0.3, faults);
    let total = PEOPLE + DISABLED;
    for i in 0..total {
        env.assign(
            &format!("{}", 300_000 + i),
            &format!("{}", 400_000 + i),
            &format!("fault{i}@example.com"),
        );
    }
    for i in PEOPLE..total {
        env.docspace.disable(&format!("fault{i}@example.com"));
    }
    let process = BridgeProcess::start(&env).await;
    let secret = process.bridge.register("proj").await;
    for chunk in (0..total).collect::<Vec<_>>().chunks(10) {
        let events: Vec<_> = chunk
            .iter()
            .map(|i| assignment_delivery(&format!("{}", 300_000 + i), &format!("{}", 400_000 + i))["events"][0].clone())
            .collect();
        assert_eq!(
            process
                .bridge
                .deliver("proj", &secret, &json!({ "events": events }))
                .await
                .status(),
            200
        );
    }

    let store = env.store().await;
    let jobs = eventually("every job to finish", WAIT * 9, || async {
        let jobs = store.list_jobs(None, 1000).await.unwrap();
        (jobs.len() == total
            && jobs
                .iter()
                .all(|j| j.status == JobStatus::Done || j.status == JobStatus::Failed))
        .then_some(jobs)
    })
    .await;
    env.asana.clear_faults();
    env.docspace.clear_faults();

    let mut sent: HashMap<String, usize> = HashMap::new();
    for invitation in env.docspace.sent_invitations() {
        *sent.entry(invitation.email).or_default() += 1;
    }
    for i in 0..PEOPLE {
        let email = format!("fault{i}@example.com");
        assert_eq!(sent.get(&email).copied(), Some(1), "{email} invited once");
        let job = jobs
            .iter()
            .find(|j| j.email.as_deref() == Some(email.as_str()))
            .expect("its job");
        assert_eq!(job.outcome.as_deref(), Some("invited"), "{job:?}");
    }
    for i in PEOPLE..total {
        let email = format!("fault{i}@example.com");
        let job = jobs
            .iter()
            .find(|j| j.email.as_deref() == Some(email.as_str()))
            .expect("its job");
        assert_eq!(job.status, JobStatus::Failed);
        // Failed by the 400 itself, at the first one the bridge received: a retried permanent
        // error would have run into max_attempts ("gave up after 60 attempts").
        let error = job.last_error.as_deref().unwrap_or("");
        assert!(
            error.starts_with("DocSpace answered 400: User disabled"),
            "{job:?}"
        );
        assert!(job.attempts < 60, "{job:?}");
        // Refusals the bridge never saw (answered after it timed out) are the only extra ones.
        let refusals = env.docspace.refusals(&email) as i64;
        assert!(
            refusals >= 1 && refusals <= job.attempts,
            "{refusals} refusals, {} attempts",
            job.attempts
        );
    }
    let retried = jobs.iter().filter(|j| j.attempts > 1).count();
    assert!(retried > 0, "the faults made some jobs retry");
    assert_eq!(process.terminate().await.code(), Some(0));
}
