//! Operator commands: jobs, invite-task, backfill, check-config and healthcheck.

use asana_docspace_bridge::store::JobStatus;
use std::time::Duration;

use asana_docspace_fakes::{FakeTask, FakeUser, Fault};
use rstest::rstest;
use serde_json::json;

use crate::helpers::{Backend, Env, PROJECT, TestApp, job_with_status, name, settled_jobs};

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_list_shows_what_happened_and_retry_makes_failed_jobs_due(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    env.assign("501", "601", "jane@example.com");
    env.assign("502", "602", "bob@example.com");
    for _ in 0..2 {
        env.docspace.push_fault(
            "invite",
            Fault::json(
                402,
                json!({"error": {"message": "The number of admins exceeds the limit"}}),
            ),
        );
    }
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;
    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;
    app.bridge
        .deliver_assignment("proj", &secret, "502", "602")
        .await;
    let store = env.store().await;
    job_with_status(&store, 1, JobStatus::Failed).await;
    job_with_status(&store, 2, JobStatus::Failed).await;

    let listed = env.run(&["jobs", "list", "--status", "failed"]).await;
    listed.expect_code(0);
    let row = listed
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .expect("job 1 listed");
    for needle in [
        "failed",
        "501",
        "jane@example.com",
        "402",
        "admins exceeds the limit",
    ] {
        assert!(row.contains(needle), "{needle} not in {row}");
    }
    assert!(
        !env.run(&["jobs", "list", "--status", "done"])
            .await
            .stdout
            .contains("jane@example.com")
    );

    env.run(&["jobs", "retry", "1"]).await.expect_code(0);
    let job = job_with_status(&store, 1, JobStatus::Done).await;
    assert_eq!(job.outcome.as_deref(), Some("invited"));
    assert_eq!(
        store.job(2).await.unwrap().unwrap().status,
        JobStatus::Failed,
        "only job 1 was retried"
    );

    let again = env.run(&["jobs", "retry", "1"]).await;
    again.expect_code(1);
    assert!(
        again.stderr.contains("job 1 is done, not failed"),
        "{}",
        again.stderr
    );
    env.run(&["jobs", "retry", "999"]).await.expect_code(1);

    env.run(&["jobs", "retry", "--failed"]).await.expect_code(0);
    job_with_status(&store, 2, JobStatus::Done).await;
    assert_eq!(env.docspace.sent_invitations().len(), 2);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_task_invites_now_and_applies_the_same_rules(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    // Only `serve` and `migrate` create the store.
    env.run(&["migrate"]).await.expect_code(0);
    env.set("BRIDGE__INVITE__ALLOWED_DOMAINS", "example.com");
    env.assign("501", "601", "Jane@Example.com");
    env.assign("502", "602", "eve@elsewhere.org");
    env.asana.assign("503", PROJECT, None);

    let invited = env.run(&["invite-task", "501"]).await;
    invited.expect_code(0);
    assert!(
        invited.stdout.contains("invited") && invited.stdout.contains("jane@example.com"),
        "{}",
        invited.stdout
    );
    assert_eq!(env.docspace.sent_invitations().len(), 1);

    let again = env.run(&["invite-task", "501"]).await;
    again.expect_code(0);
    assert!(again.stdout.contains("already_invited"), "{}", again.stdout);

    let other_domain = env.run(&["invite-task", "502"]).await;
    other_domain.expect_code(0);
    assert!(
        other_domain.stdout.contains("domain_not_allowed"),
        "{}",
        other_domain.stdout
    );

    let nobody = env.run(&["invite-task", "503"]).await;
    nobody.expect_code(0);
    assert!(nobody.stdout.contains("no_assignee"), "{}", nobody.stdout);

    assert_eq!(env.docspace.invite_requests().len(), 1);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_task_exits_1_on_failure(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    // Only `serve` and `migrate` create the store.
    env.run(&["migrate"]).await.expect_code(0);
    env.assign("501", "601", "jane@example.com");
    env.docspace.push_fault(
        "invite",
        Fault::json(400, json!({"error": {"message": "Incorrect email"}})),
    );

    let failed = env.run(&["invite-task", "501"]).await;

    failed.expect_code(1);
    assert!(
        failed.stderr.contains("Incorrect email"),
        "{}",
        failed.stderr
    );
    let missing = env.run(&["invite-task", "999"]).await;
    missing.expect_code(1);
    assert!(missing.stderr.contains("404"), "{}", missing.stderr);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_queues_every_assigned_incomplete_task_across_pages(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    // Only `serve` and `migrate` create the store.
    env.run(&["migrate"]).await.expect_code(0);
    // 250 tasks: every 10th completed, every 7th unassigned, assignees shared by 5 tasks each.
    let mut expected_tasks = 0;
    let mut expected_people = std::collections::BTreeSet::new();
    for i in 0..250 {
        let completed = i % 10 == 0;
        let assignee = (i % 7 != 0).then(|| {
            FakeUser::new(
                &format!("6{}", i / 5),
                &format!("person{}@example.com", i / 5),
            )
        });
        if !completed && let Some(user) = &assignee {
            expected_tasks += 1;
            expected_people.insert(user.email.clone().unwrap());
        }
        env.asana.put_task(FakeTask {
            gid: format!("{}", 10_000 + i),
            name: format!("Task {i}"),
            assignee,
            completed,
            projects: vec![PROJECT.to_string()],
            parent: None,
        });
    }
    env.asana.assign(
        "99999",
        "1200000000000999",
        Some(FakeUser::new("7", "other-project@example.com")),
    );

    // One of them already has a DocSpace account: the dry run says so and would not invite them.
    assert!(expected_people.contains("person2@example.com"));
    env.docspace.add_member("person2@example.com");

    let dry = env
        .run(&["backfill", "--project", PROJECT, "--dry-run"])
        .await;
    dry.expect_code(0);
    assert!(
        dry.stdout.contains(&format!(
            "{} of {} people would be invited",
            expected_people.len() - 1,
            expected_people.len()
        )),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout
            .lines()
            .any(|l| l.contains("person2@example.com") && l.contains("already a DocSpace member")),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("person1@example.com"));
    assert!(!dry.stdout.contains("other-project@example.com"));
    let store = env.store().await;
    assert!(
        store.list_jobs(None, 10).await.unwrap().is_empty(),
        "a dry run queues nothing"
    );

    let queued = env.run(&["backfill", "--project", PROJECT]).await;
    queued.expect_code(0);
    assert!(
        queued
            .stdout
            .contains(&format!("queued {expected_tasks} job(s)")),
        "{}",
        queued.stdout
    );

    let pages = env.asana.requests_to("/tasks");
    assert_eq!(pages.len(), 6, "three pages of 100, twice");
    for page in &pages {
        assert_eq!(page.query_param("project").as_deref(), Some(PROJECT));
        assert_eq!(page.query_param("limit").as_deref(), Some("100"));
        let since = page.query_param("completed_since").unwrap();
        assert!(
            humantime::parse_rfc3339(&since).is_ok(),
            "RFC 3339, not {since:?}"
        );
        // The spec's enum for GET /tasks has no assignee.email; the dry run reads users.
        let fields = page.query_param("opt_fields").unwrap();
        assert!(fields.split(',').any(|f| f == "assignee"), "{fields}");
        assert!(!fields.contains("assignee.email"), "{fields}");
    }
    assert_eq!(pages[1].query_param("offset").as_deref(), Some("off-100"));
    assert_eq!(pages[2].query_param("offset").as_deref(), Some("off-200"));

    let rerun = env.run(&["backfill", "--project", PROJECT]).await;
    assert!(rerun.stdout.contains("queued 0 job(s)"), "{}", rerun.stdout);

    let _app = TestApp::spawn(&env).await;
    let jobs = settled_jobs(&store).await;
    assert_eq!(jobs.len(), expected_tasks);
    let sent = env.docspace.sent_emails();
    let newcomers: Vec<_> = expected_people
        .into_iter()
        .filter(|e| e != "person2@example.com")
        .collect();
    assert_eq!(
        sent, newcomers,
        "everyone but the existing member is invited"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_passes_with_good_credentials(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    // Only `serve` and `migrate` create the store.
    env.run(&["migrate"]).await.expect_code(0);
    let out = env.run(&["check-config"]).await;
    out.expect_code(0);
    assert!(out.stdout.contains("ok   asana token"), "{}", out.stdout);
    assert!(out.stdout.contains("ok   docspace key"), "{}", out.stdout);
    assert!(out.stdout.contains("ok   database"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("warn invite type"),
        "User takes no paid seat: {}",
        out.stdout
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_warns_that_first_use_lets_anyone_plant_a_secret(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    // Only `serve` and `migrate` create the store.
    env.run(&["migrate"]).await.expect_code(0);
    let out = env.run(&["check-config"]).await;
    out.expect_code(0);
    let warning = out
        .stdout
        .lines()
        .find(|l| l.starts_with("warn webhooks.handshake = first-use"))
        .unwrap_or_else(|| panic!("a first-use warning: {}", out.stdout));
    assert!(
        warning.contains("anyone who can reach /webhooks/asana/<name> can plant a webhook secret"),
        "{warning}"
    );
    assert!(
        warning.contains("set BRIDGE__WEBHOOKS__HANDSHAKE=registration (the default)")
            && warning.contains("`webhooks create`"),
        "says how to avoid it: {warning}"
    );

    env.set("BRIDGE__WEBHOOKS__HANDSHAKE", "registration");
    let out = env.run(&["check-config"]).await;
    out.expect_code(0);
    assert!(!out.stdout.contains("first-use"), "{}", out.stdout);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_fails_on_bad_credentials_and_warns_about_paid_seats(
    #[case] backend: Backend,
) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__ASANA__TOKEN", "1/wrong");
    env.set("BRIDGE__DOCSPACE__API_KEY", "sk-wrong");
    env.set("BRIDGE__DOCSPACE__INVITE_TYPE", "All");
    let out = env.run(&["check-config"]).await;
    out.expect_code(1);
    assert!(
        out.stdout.contains("FAIL asana token: Asana answered 401"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("FAIL docspace key: DocSpace answered 401"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("warn invite type All"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("1/wrong") && !out.stdout.contains("sk-wrong"),
        "no secrets: {}",
        out.stdout
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_reports_invalid_settings_line_by_line(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__ASANA__TOKEN", "");
    env.set("BRIDGE__DOCSPACE__INVITE_TYPE", "Guest");
    let out = env.run(&["check-config"]).await;
    out.expect_code(1);
    assert!(
        out.stdout.contains(
            "FAIL settings: missing required settings: asana.token (BRIDGE__ASANA__TOKEN)"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("FAIL settings: docspace.invite_type"),
        "{}",
        out.stdout
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_0_when_the_service_answers_and_1_when_not(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;

    env.run(&["healthcheck", "--url", &app.bridge.address])
        .await
        .expect_code(0);

    let port = app.bridge.address.rsplit(':').next().unwrap().to_string();
    env.set("BRIDGE__SERVER__PORT", &port);
    env.run(&["healthcheck"]).await.expect_code(0);

    app.stop().await.unwrap();
    let down = env
        .run(&["healthcheck", "--url", &format!("http://127.0.0.1:{port}")])
        .await;
    down.expect_code(1);
    assert!(down.stderr.contains("unhealthy"), "{}", down.stderr);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_needs_no_credentials(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let port = app.bridge.address.rsplit(':').next().unwrap().to_string();
    let out = tokio::process::Command::new(crate::helpers::binary())
        .arg("healthcheck")
        .env_clear()
        .env("BRIDGE__SERVER__PORT", &port)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_writes_a_consistent_copy_of_a_sqlite_store(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    env.assign("501", "601", "jane@example.com");
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;
    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;
    settled_jobs(&env.store().await).await;
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");

    let out = env.run(&["backup", copy.to_str().unwrap()]).await;

    match env.database.backend() {
        Backend::Sqlite => {
            out.expect_code(0);
            let restored = asana_docspace_bridge::store::Store::open(
                &format!("sqlite://{}", copy.display()),
                &Default::default(),
            )
            .await
            .unwrap();
            assert!(
                restored
                    .webhook_secret(&name("proj"))
                    .await
                    .unwrap()
                    .is_some()
            );
            assert_eq!(
                restored.sent_invitations().await.unwrap(),
                ["jane@example.com"]
            );
            let again = env.run(&["backup", copy.to_str().unwrap()]).await;
            again.expect_code(1);
            assert!(again.stderr.contains("exists already"), "{}", again.stderr);
        }
        Backend::Postgres => {
            out.expect_code(1);
            assert!(out.stderr.contains("pg_dump"), "{}", out.stderr);
        }
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_task_keeps_its_lease_while_upstreams_are_slow(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    // Each call answers within the request timeout, but the job as a whole (three calls) outlasts
    // its lease, while a worker polls for jobs whose lease ran out. The renewals (every 500 ms)
    // have a second of slack, so a busy machine does not lose the lease for them.
    env.set("BRIDGE__WORKER__LEASE_MS", "1500");
    env.set("BRIDGE__WORKER__REQUEST_TIMEOUT_MS", "1200");
    env.assign("501", "601", "jane@example.com");
    env.asana.set_latency(Duration::from_millis(900));
    env.docspace.set_latency(Duration::from_millis(900));
    let _app = TestApp::spawn(&env).await;

    let out = env.run(&["invite-task", "501"]).await;

    out.expect_code(0);
    assert!(out.stdout.contains("task 501: invited"), "{}", out.stdout);
    assert_eq!(
        env.asana.requests_to("/tasks/501").len(),
        1,
        "no worker took the job and read the task again"
    );
    assert_eq!(env.docspace.invite_requests().len(), 1);
    let jobs = settled_jobs(&env.store().await).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].attempts, 1);
    assert_eq!(jobs[0].outcome.as_deref(), Some("invited"));
}
