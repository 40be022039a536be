//! Start-up, shutdown, restarts and crashes.

use asana_docspace_bridge::store::JobStatus;
use std::time::Duration;

use asana_docspace_fakes::Fault;
use rstest::rstest;

use crate::helpers::{
    Backend, BridgeProcess, Env, TestApp, WAIT, binary, job_with_status, settled_jobs,
};

#[tokio::test]
async fn missing_settings_are_all_named_and_nothing_is_bound() {
    let output = tokio::process::Command::new(binary())
        .arg("serve")
        .env_clear()
        .env("BRIDGE__DOCSPACE__API_KEY", "")
        .env("BRIDGE__SERVER__PORT", "1")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in [
        "asana.token",
        "BRIDGE__ASANA__TOKEN",
        "docspace.base_url",
        "BRIDGE__DOCSPACE__BASE_URL",
        "docspace.api_key",
        "BRIDGE__DOCSPACE__API_KEY",
    ] {
        assert!(stderr.contains(needle), "{needle} not in: {stderr}");
    }
    // Port 1 cannot be bound by a test user: failing on settings, not on binding, proves the order.
    assert!(!stderr.contains("binding"), "{stderr}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_invite_type_is_refused_at_start(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__DOCSPACE__INVITE_TYPE", "Guest");
    let output = env.vars.command(binary()).output().await.unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot be Guest"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_is_layered_between_defaults_and_environment(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bridge.toml");
    std::fs::write(&file, "[worker]\nconcurrency = 7\nmax_attempts = 5\n").unwrap();
    env.set("BRIDGE__WORKER__MAX_ATTEMPTS", "9");
    let settings =
        asana_docspace_bridge::Settings::load_from(asana_docspace_bridge::settings::Sources {
            file: Some(&file),
            env: Some(env.vars.to_map()),
        })
        .unwrap();
    assert_eq!(settings.worker.concurrency, 7, "from the file");
    assert_eq!(settings.worker.max_attempts, 9, "the environment wins");
    assert_eq!(settings.worker.backoff_max_ms, 200, "the environment");
    assert_eq!(
        settings.server.max_body_bytes, 1_048_576,
        "the compiled-in default"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_job_survives_a_restart(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    env.assign("501", "601", "jane@example.com");
    // DocSpace is down long enough for the job to wait in the queue across the restart.
    for _ in 0..3 {
        env.docspace.push_fault("find_user", Fault::status(503));
    }
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;
    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;
    assert!(
        env.docspace
            .wait_for_requests(WAIT, |r| !r.is_empty())
            .await,
        "the first attempt reached DocSpace"
    );
    app.stop().await.expect("a clean stop");
    let store = env.store().await;
    let job = store.job(1).await.unwrap().unwrap();
    assert_ne!(
        job.status,
        JobStatus::Done,
        "not finished before the restart"
    );

    let _app = TestApp::spawn(&env).await;

    let job = job_with_status(&store, 1, JobStatus::Done).await;
    assert_eq!(job.outcome.as_deref(), Some("invited"));
    assert_eq!(env.docspace.sent_invitations().len(), 1);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_docspace_accepted_does_not_invite_twice(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    env.assign("501", "601", "jane@example.com");
    // DocSpace takes the invitation, then the answer never comes: the bridge dies waiting.
    env.docspace.push_fault("invite", Fault::HangAfterWork);
    let process = BridgeProcess::start(&env).await;
    let secret = process.bridge.register("proj").await;
    process
        .bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;
    assert!(env.docspace.wait_for_sent(1, WAIT).await);
    process.kill9().await;

    let store = env.store().await;
    assert_eq!(
        store.job(1).await.unwrap().unwrap().status,
        JobStatus::Running,
        "killed mid-job"
    );

    let process = BridgeProcess::start(&env).await;
    let job = job_with_status(&store, 1, JobStatus::Done).await;
    assert_eq!(job.outcome.as_deref(), Some("invited"));
    assert_eq!(env.docspace.sent_invitations().len(), 1);
    assert_eq!(
        env.docspace.invite_requests().len(),
        1,
        "no second POST after the restart"
    );
    assert_eq!(process.terminate().await.code(), Some(0));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_acknowledging_loses_nothing(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    for i in 0..20 {
        env.assign(
            &format!("5{i:02}"),
            &format!("6{i:02}"),
            &format!("user{i}@example.com"),
        );
    }
    // Nobody gets invited before the crash: the first lookups hang.
    env.docspace.set_latency(Duration::from_secs(30));
    let process = BridgeProcess::start(&env).await;
    let secret = process.bridge.register("proj").await;
    for i in 0..20 {
        process
            .bridge
            .deliver_assignment("proj", &secret, &format!("5{i:02}"), &format!("6{i:02}"))
            .await;
    }
    process.kill9().await;
    env.docspace.set_latency(Duration::ZERO);

    let _bridge = BridgeProcess::start(&env).await;

    let jobs = settled_jobs(&env.store().await).await;
    assert_eq!(jobs.len(), 20);
    assert!(jobs.iter().all(|j| j.outcome.as_deref() == Some("invited")));
    assert_eq!(env.docspace.sent_invitations().len(), 20);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_cleanly_and_leaves_unfinished_jobs_due(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__WORKER__SHUTDOWN_GRACE_MS", "200");
    env.assign("501", "601", "jane@example.com");
    env.docspace.set_latency(Duration::from_secs(30));
    let process = BridgeProcess::start(&env).await;
    let secret = process.bridge.register("proj").await;
    process
        .bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;
    assert!(
        env.docspace
            .wait_for_requests(WAIT, |r| !r.is_empty())
            .await,
        "the job is in flight"
    );

    let started = std::time::Instant::now();
    let status = process.terminate().await;

    assert_eq!(status.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the grace period"
    );
    let job = env.store().await.job(1).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Pending, "handed back to the queue");
    assert_eq!(job.attempts, 0, "the interrupted attempt does not count");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_jobs_a_dead_process_left_running_are_due_again_at_start() {
    let mut env = Env::on(Backend::Sqlite).await.unwrap();
    // A lease far longer than the test may wait: its expiry cannot be what frees the job.
    env.set("BRIDGE__WORKER__LEASE_MS", "600000");
    env.assign("501", "601", "jane@example.com");
    env.docspace.set_latency(Duration::from_secs(600));
    let process = BridgeProcess::start(&env).await;
    let secret = process.bridge.register("proj").await;
    process
        .bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;
    assert!(
        env.docspace
            .wait_for_requests(WAIT, |r| !r.is_empty())
            .await,
        "the job is in flight"
    );
    process.kill9().await;
    let store = env.store().await;
    let job = store.job(1).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Running);
    assert!(
        job.lease_owner.is_some(),
        "still leased to the dead process"
    );
    env.docspace.set_latency(Duration::ZERO);

    let started = std::time::Instant::now();
    let _bridge = BridgeProcess::start(&env).await;

    let job = job_with_status(&store, 1, JobStatus::Done).await;
    assert_eq!(job.outcome.as_deref(), Some("invited"));
    assert!(
        started.elapsed() < WAIT,
        "well before the lease would expire"
    );
}
