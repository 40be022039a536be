//! Asana loses 30% of its deliveries before they reach us (it says it may drop some): reconcile
//! passes find every lost assignment, and every person is invited exactly once; also while a
//! third of Asana's answers are server errors.

use std::collections::BTreeSet;
use std::time::Duration;

use asana_docspace_bridge::store::JobStatus;
use asana_docspace_fakes::{FakeUser, Fault};
use rstest::rstest;
use serde_json::json;

use crate::helpers::{Backend, BridgeProcess, Env, eventually, sample};

const PROJECTS: [&str; 4] = [
    "1200000000000100",
    "1200000000000200",
    "1200000000000300",
    "1200000000000400",
];
const ASSIGNMENTS: usize = 300;
const DROP_RATE: f64 = 0.3;
const SEED: u64 = 12;
/// One pass interval and the drain, with room for a loaded machine.
const SETTLE: Duration = Duration::from_secs(90);

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_assignment_is_invited_once_though_30_percent_of_deliveries_are_lost(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
    #[values(false, true)] asana_faults: bool,
) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__WORKER__MAX_ATTEMPTS", "60")
        .set("BRIDGE__WEBHOOKS__HANDSHAKE", "registration")
        .set("BRIDGE__RECONCILE__INTERVAL_SECS", "5");
    let process = BridgeProcess::start(&env).await;
    env.set("BRIDGE__SERVER__PUBLIC_URL", &process.bridge.address);
    for (n, project) in PROJECTS.iter().enumerate() {
        env.run(&[
            "webhooks",
            "create",
            "--project",
            project,
            "--name",
            &format!("p{n}"),
        ])
        .await
        .expect_code(0);
    }
    let store = env.store().await;
    eventually("every project's first pass", SETTLE, || async {
        let states = store.reconcile_states().await.expect("states");
        (states.len() == PROJECTS.len() && states.iter().all(|s| s.reconcile_cursor.is_some()))
            .then_some(())
    })
    .await;

    env.asana.drop_deliveries(DROP_RATE, SEED);
    if asana_faults {
        // Passes fail a page now and then (and back off), jobs retry their task reads.
        env.asana.set_random_faults(
            0.3,
            vec![
                Fault::html(503),
                Fault::json(500, json!({"errors": [{"message": "Server Error"}]})),
            ],
        );
    }
    let mut expected = BTreeSet::new();
    for n in 0..ASSIGNMENTS {
        let email = format!("person{n}@example.com");
        let user = FakeUser::new(&format!("{}", 700_000 + n), &email);
        let project = PROJECTS[n % PROJECTS.len()];
        env.asana
            .assign_and_deliver(&format!("{}", 500_000 + n), project, user)
            .await;
        expected.insert(email);
    }
    let dropped = env.asana.dropped().len();
    assert!(
        (60..=120).contains(&dropped),
        "about 30% of {ASSIGNMENTS} dropped, not {dropped}"
    );

    let expected: Vec<String> = expected.into_iter().collect();
    eventually("every person invited", SETTLE, || async {
        (env.docspace.sent_emails() == expected).then_some(())
    })
    .await;
    assert_eq!(
        env.docspace.invite_requests().len(),
        ASSIGNMENTS,
        "one invitation per person"
    );
    let jobs = eventually("every job settled", SETTLE, || async {
        let jobs = store.list_jobs(None, 100_000).await.expect("jobs");
        jobs.iter()
            .all(|j| j.status == JobStatus::Done)
            .then_some(jobs)
    })
    .await;
    let from_passes = jobs
        .iter()
        .filter(|j| j.source.to_string() == "reconcile")
        .count();
    assert!(
        from_passes >= dropped,
        "{from_passes} jobs from passes, {dropped} dropped"
    );

    let metrics = process.bridge.metrics().await;
    let missed = sample(&metrics, "bridge_reconcile_missed_total", &[]);
    assert_eq!(missed as usize, from_passes);
    process.terminate().await;
}
