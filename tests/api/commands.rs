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

/// `access plan` / `access log` data, written as the bridge would have (times fixed, except the
/// waiting revocation's due time, `due`): four people granted rooms in two projects, one of
/// whom (Frank) still has an open task.
async fn access_ledger(env: &Env, due: i64) {
    for statement in [
        "INSERT INTO projects (gid, name, created_at, updated_at) VALUES \
         ('1200000000000100', 'Website', 1, 1), ('1200000000000200', 'Intranet', 1, 1)",
        "INSERT INTO project_rooms (project_gid, room_id, room_title, room_type, access, how, \
         created_at, updated_at) VALUES ('1200000000000100', 45, 'Website', 2, 10, 'linked', 1, 1), \
         ('1200000000000200', 46, 'Intranet', 2, 10, 'linked', 1, 1)",
        // 2025-12-01T09:12:44Z, 2025-11-20T16:02:10Z, 2025-11-02T07:00:00Z, 2025-11-30T08:00:00Z.
        "INSERT INTO room_grants (id, email, room_id, project_gid, docspace_user_id, access, state, \
         job_id, task_gid, created_at, granted_at, cause) VALUES \
         (1, 'bob@example.com', 45, '1200000000000100', 'u-bob', 10, 'granted', 812, \
            '1200000000000501', 1764580364000, 1764580364000, 'assignee_changed from webhook:wh-3f0c'), \
         (2, 'carl@example.com', 45, '1200000000000100', 'u-carl', 10, 'granted', 813, \
            '1200000000000502', 1764580364000, 1764580364000, 'reconcile from reconcile'), \
         (3, 'dana@example.com', 45, '1200000000000100', 'u-dana', 2, 'had_access', 640, \
            '1200000000000503', 1763654530000, NULL, 'task_added from webhook:wh-3f0c'), \
         (4, 'erin@example.com', 46, '1200000000000200', 'u-erin', 10, 'granted', 77, \
            '1200000000000610', 1762066800000, 1762066800000, NULL), \
         (5, 'frank@example.com', 46, '1200000000000200', 'u-frank', 10, 'granted', 78, \
            '1200000000000611', 1764489600000, 1764489600000, 'backfill from command:backfill')",
        "INSERT INTO tasks (gid, assignee_gid, assignee_email, completed, read_at) VALUES \
         ('1200000000000611', '7', 'frank@example.com', 0, 1)",
        "INSERT INTO task_projects (task_gid, project_gid, via_task_gid) VALUES \
         ('1200000000000611', '1200000000000200', '1200000000000611')",
    ] {
        env.execute_sql(statement).await;
    }
    // Bob: waiting (reassigned 2025-12-03T10:00:00Z); Carl: due (completed 2025-12-02T08:00:00Z);
    // Dana: found in the room (removed 2025-12-03T11:30:00Z); Bob's earlier one: needed again.
    env.execute_sql(&format!(
        "INSERT INTO room_revocations (id, grant_id, email, room_id, project_gid, need_ended_at, \
         why_task_gid, why, why_source, due_at, state, job_id, done_at, note, created_at, \
         updated_at) VALUES \
         (1, 1, 'bob@example.com', 45, '1200000000000100', 1764669600000, '1200000000000501', \
            'unassigned', 'webhook:wh-3f0c', 1764756000000, 'needed_again', 900, 1764669605000, \
            'task 1200000000000507 assignee_changed (webhook:wh-3f0c)', 1, 1764669605000), \
         (2, 1, 'bob@example.com', 45, '1200000000000100', 1764756000000, '1200000000000501', \
            'reassigned', 'webhook:wh-3f0c', {due}, 'waiting', 913, NULL, NULL, 1, 1), \
         (3, 2, 'carl@example.com', 45, '1200000000000100', 1764662400000, '1200000000000502', \
            'completed', 'reconcile', 1764748800000, 'waiting', 914, NULL, NULL, 1, 1), \
         (4, 3, 'dana@example.com', 45, '1200000000000100', 1764761400000, '1200000000000503', \
            'removed', 'webhook:wh-3f0c', 1764847800000, 'waiting', 915, NULL, NULL, 1, 1)"
    ))
    .await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_plan_shows_who_loses_which_room_when_and_why(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.store().await.close().await;
    let due = asana_docspace_bridge::store::now_ms() + 21 * 3_600_000 + 30_000;
    access_ledger(&env, due).await;
    env.set("BRIDGE__ROOMS__MODE", "linked")
        .set("BRIDGE__ACCESS__REVOKE", "on");

    let plan = env.run(&["access", "plan"]).await;
    plan.expect_code(0);
    let lines: Vec<&str> = plan.stdout.lines().map(str::trim_end).collect();
    let removal = format!(
        "{} (in 21h)",
        asana_docspace_bridge::store::rfc3339_seconds(due)
    );
    let expected = [
        vec![
            "EMAIL",
            "PROJECT",
            "NAME",
            "ROOM",
            "ACCESS",
            "NEED ENDED",
            "REMOVAL",
            "WHY",
        ],
        vec![
            "bob@example.com",
            "1200000000000100",
            "Website",
            "45",
            "Editing",
            "2025-12-03T10:00:00Z",
            &removal,
            "task 1200000000000501 reassigned (webhook:wh-3f0c)",
        ],
        vec![
            "carl@example.com",
            "1200000000000100",
            "Website",
            "45",
            "Editing",
            "2025-12-02T08:00:00Z",
            "due now (job 914)",
            "task 1200000000000502 completed (reconcile)",
        ],
        vec![
            "dana@example.com",
            "1200000000000100",
            "Website",
            "45",
            "Read",
            "2025-12-03T11:30:00Z",
            "kept: not granted by us",
            "task 1200000000000503 removed (webhook:wh-3f0c)",
        ],
        vec![
            "erin@example.com",
            "1200000000000200",
            "Intranet",
            "46",
            "Editing",
            "-",
            "at the next sweep",
            "no open task (grant by job 77)",
        ],
    ];
    assert_eq!(lines.len(), expected.len() + 2, "{}", plan.stdout);
    for (line, cells) in lines.iter().zip(&expected) {
        assert_eq!(columns(line, cells), *cells, "{}", plan.stdout);
    }
    assert_eq!(
        lines[5],
        "4 people: 1 within the grace period, 1 due now, 1 kept, 1 found without an open task \
         (scheduled by the next daily sweep)."
    );
    assert_eq!(
        lines[6],
        "Each removal first reads the room's members: access changed by hand, owners and managers \
         we did not make are kept."
    );

    let only = env
        .run(&["access", "plan", "--project", "1200000000000200"])
        .await;
    only.expect_code(0);
    assert_eq!(only.stdout.lines().count(), 4, "{}", only.stdout);
    assert!(only.stdout.contains("erin@example.com"));
    let malformed = env.run(&["access", "plan", "--project", "web"]).await;
    malformed.expect_code(2);

    env.set("BRIDGE__ACCESS__REVOKE", "off");
    let off = env.run(&["access", "plan"]).await;
    off.expect_code(0);
    let lines: Vec<&str> = off.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "access.revoke (BRIDGE__ACCESS__REVOKE) is off: nothing is taken back; with it on, this is \
         what the first sweep would schedule (nothing goes before one grace period):"
    );
    assert_eq!(lines.len(), 5, "{}", off.stdout);
    assert!(
        lines[2].trim_start().starts_with("erin@example.com"),
        "{}",
        off.stdout
    );
    assert!(lines[3].starts_with("1 person: 0 within the grace period"));

    env.execute_sql("DELETE FROM room_revocations").await;
    env.execute_sql("DELETE FROM room_grants WHERE email <> 'frank@example.com'")
        .await;
    env.set("BRIDGE__ACCESS__REVOKE", "on");
    let nobody = env.run(&["access", "plan"]).await;
    nobody.expect_code(0);
    assert_eq!(
        nobody.stdout,
        "Nobody loses room access: every person granted a room still has an open task in its \
         project.\n"
    );
}

/// `line` split at `cells`, each expected in turn: the table's columns, whatever their padding.
fn columns<'a>(line: &'a str, cells: &[&str]) -> Vec<&'a str> {
    let mut rest = line.trim_start();
    let mut found = Vec::new();
    for cell in cells {
        let Some(at) = rest.find(cell) else {
            return found;
        };
        found.push(&rest[at..at + cell.len()]);
        assert!(
            rest[..at].trim().is_empty(),
            "unexpected {:?} before {cell:?} in {line:?}",
            &rest[..at]
        );
        rest = &rest[at + cell.len()..];
    }
    found
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lists_every_grant_and_revocation_newest_first(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    env.store().await.close().await;
    access_ledger(&env, 1764842400000).await;
    env.execute_sql(
        "UPDATE room_revocations SET state = 'revoked', decided_at = 1764842401000, \
         done_at = 1764842403000 WHERE id = 2",
    )
    .await;

    let log = env.run(&["access", "log"]).await;
    log.expect_code(0);
    let lines: Vec<&str> = log.stdout.lines().map(str::trim_end).collect();
    let expected: [&[&str]; 8] = [
        &[
            "TIME", "ACTION", "EMAIL", "PROJECT", "ROOM", "ACCESS", "CAUSE",
        ],
        &[
            "2025-12-04T10:00:03Z",
            "revoked",
            "bob@example.com",
            "1200000000000100",
            "45",
            "Editing",
            "task 1200000000000501 reassigned (webhook:wh-3f0c) at 2025-12-03T10:00:00Z; job 913",
        ],
        &[
            "2025-12-02T10:00:05Z",
            "needed again",
            "bob@example.com",
            "1200000000000100",
            "45",
            "Editing",
            "task 1200000000000507 assignee_changed (webhook:wh-3f0c)",
        ],
        &[
            "2025-12-01T09:12:44Z",
            "granted",
            "carl@example.com",
            "1200000000000100",
            "45",
            "Editing",
            "task 1200000000000502 reconcile from reconcile; job 813",
        ],
        &[
            "2025-12-01T09:12:44Z",
            "granted",
            "bob@example.com",
            "1200000000000100",
            "45",
            "Editing",
            "task 1200000000000501 assignee_changed from webhook:wh-3f0c; job 812",
        ],
        &[
            "2025-11-30T08:00:00Z",
            "granted",
            "frank@example.com",
            "1200000000000200",
            "46",
            "Editing",
            "task 1200000000000611 backfill from command:backfill; job 78",
        ],
        &[
            "2025-11-20T16:02:10Z",
            "had access",
            "dana@example.com",
            "1200000000000100",
            "45",
            "Read",
            "task 1200000000000503; job 640 (found in the room, never ours)",
        ],
        &[
            "2025-11-02T07:00:00Z",
            "granted",
            "erin@example.com",
            "1200000000000200",
            "46",
            "Editing",
            "task 1200000000000610; job 77 (cause unknown: job deleted by retention)",
        ],
    ];
    assert_eq!(lines.len(), expected.len() + 1, "{}", log.stdout);
    for (line, cells) in lines.iter().zip(expected) {
        assert_eq!(columns(line, cells), cells, "{}", log.stdout);
    }
    assert_eq!(lines[8], "7 entries (of 7).");

    let bob = env
        .run(&[
            "access",
            "log",
            "--email",
            "Bob@Example.com",
            "--limit",
            "1",
        ])
        .await;
    bob.expect_code(0);
    let lines: Vec<&str> = bob.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", bob.stdout);
    assert!(lines[1].contains("revoked"));
    assert_eq!(lines[2], "1 entry (of 3).");

    let intranet = env
        .run(&["access", "log", "--project", "1200000000000200"])
        .await;
    intranet.expect_code(0);
    assert!(
        intranet.stdout.ends_with("2 entries (of 2).\n"),
        "{}",
        intranet.stdout
    );

    let nobody = env
        .run(&["access", "log", "--email", "zoe@example.com"])
        .await;
    nobody.expect_code(0);
    assert_eq!(
        nobody.stdout,
        "No room access granted or taken back matches these filters.\n"
    );
    let malformed = env.run(&["access", "log", "--email", "not-an-email"]).await;
    malformed.expect_code(2);
    assert!(
        malformed
            .stderr
            .starts_with("error: invalid value 'not-an-email' for '--email <EMAIL>'"),
        "{}",
        malformed.stderr
    );
    env.run(&["access", "log", "--limit", "0"])
        .await
        .expect_code(2);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_names_the_grace_when_revocation_is_on(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.store().await.close().await;
    env.set("BRIDGE__ROOMS__MODE", "linked")
        .set("BRIDGE__ACCESS__REVOKE", "on")
        .set("BRIDGE__ACCESS__REVOKE_GRACE_SECS", "7200");
    let checked = env.run(&["check-config"]).await;
    assert!(
        checked
            .stdout
            .lines()
            .any(|l| l == "ok   access: revoke on, grace 2h (7200 s)"),
        "{}",
        checked.stdout
    );
}
