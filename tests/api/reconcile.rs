//! Reconcile passes end to end: `reconcile run` and the service's passes find assignments no
//! delivery brought, queue nothing for those a job handled, read from the cursor, and refuse
//! what they cannot do.

use std::time::{Duration, SystemTime};

use asana_docspace_bridge::store::{JobStatus, Store};
use asana_docspace_fakes::{FakeUser, Fault, RecordedRequest};
use rstest::rstest;
use serde_json::json;

use crate::helpers::{
    Backend, BridgeProcess, Env, PROJECT, TestApp, WAIT, eventually, sample, settled_jobs,
};

const ANN: (&str, &str) = ("7001", "ann@example.com");
const BOB: (&str, &str) = ("7002", "bob@example.com");

/// A migrated store whose test project is watched (a confirmed webhook `proj`, secret `secret`),
/// with passes off in the service unless a test turns them on.
async fn watched(backend: Backend) -> Option<(Env, Store)> {
    let mut env = Env::on(backend).await?;
    env.set("BRIDGE__RECONCILE__INTERVAL_SECS", "0");
    let store = env.store().await;
    env.database
        .add_known_project("proj", PROJECT, "Website")
        .await;
    Some((env, store))
}

fn assign(env: &Env, task: &str, who: (&str, &str)) {
    env.asana
        .assign(task, PROJECT, Some(FakeUser::new(who.0, who.1)));
}

/// The reconcile page requests the fake saw (`GET /tasks` with `modified_at` asked for).
fn pass_requests(env: &Env) -> Vec<RecordedRequest> {
    env.asana
        .requests_to("/tasks")
        .into_iter()
        .filter(|r| {
            r.query
                .as_deref()
                .is_some_and(|q| q.contains("modified_at"))
        })
        .collect()
}

fn query_param(request: &RecordedRequest, name: &str) -> Option<String> {
    let query = request.query.as_deref()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The row of `reconcile run`'s table for the test project, split on whitespace.
fn row_of(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(PROJECT))
        .unwrap_or_else(|| panic!("no row for {PROJECT} in:\n{stdout}"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// `reconcile run` for every watched project, which must succeed: the jobs its summary says it
/// queued.
async fn jobs_queued_by_a_pass(env: &Env) -> u64 {
    let out = env.run(&["reconcile", "run"]).await;
    out.expect_code(0);
    out.stdout
        .lines()
        .find_map(|line| line.trim().strip_suffix(" jobs queued."))
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no summary in:\n{}", out.stdout))
}

async fn invited(env: &Env, emails: &[&str]) {
    let expected: Vec<String> = emails.iter().map(|e| e.to_string()).collect();
    eventually("the invitations", WAIT, || async {
        (env.docspace.sent_emails() == expected).then_some(())
    })
    .await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undelivered_assignment_is_found_and_invited_once(#[case] backend: Backend) {
    let Some((env, store)) = watched(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    assign(&env, "501", ANN);
    env.asana.assign("509", PROJECT, None);
    let mut done = asana_docspace_fakes::FakeTask {
        gid: "510".into(),
        name: "Done".into(),
        assignee: Some(FakeUser::new("7009", "zed@example.com")),
        completed: true,
        projects: vec![PROJECT.into()],
        parent: None,
    };
    env.asana.put_task(done.clone());

    // First pass: every incomplete task, no modified_since; the completed task is not listed.
    let first = env.run(&["reconcile", "run", "--project", PROJECT]).await;
    first.expect_code(0);
    let row = row_of(&first.stdout);
    assert_eq!(
        row[1..],
        [
            "Website",
            "all",
            "incomplete",
            "tasks",
            "2",
            "1",
            "1",
            "first",
            "pass"
        ],
        "{}",
        first.stdout
    );
    assert!(
        first
            .stdout
            .contains("1 project(s): 2 tasks read, 1 assignments found, 1 jobs queued.")
    );
    let requests = pass_requests(&env);
    assert_eq!(requests.len(), 1);
    assert_eq!(query_param(&requests[0], "modified_since"), None);
    assert_eq!(query_param(&requests[0], "limit").as_deref(), Some("100"));
    assert!(query_param(&requests[0], "completed_since").is_some());
    invited(&env, &["ann@example.com"]).await;

    // Second pass: from the cursor less 5 minutes; ann's assignment is handled, bob's is new.
    let cursor = store.reconcile_states().await.unwrap()[0]
        .reconcile_cursor
        .expect("a cursor after a complete pass");
    assign(&env, "502", BOB);
    done.name = "Renamed".into();
    env.asana.put_task(done);
    let second = env.run(&["reconcile", "run"]).await;
    second.expect_code(0);
    let row = row_of(&second.stdout);
    // QUEUED 1, NOTE "1 no delivery had brought" (the name is Asana's now: the job read it).
    assert_eq!(
        row[row.len() - 6..],
        ["1", "1", "no", "delivery", "had", "brought"],
        "{}",
        second.stdout
    );
    let requests = pass_requests(&env);
    assert_eq!(requests.len(), 2);
    let since = query_param(&requests[1], "modified_since").expect("a window");
    let since_ms = humantime::parse_rfc3339(&since)
        .unwrap()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert_eq!(since_ms, cursor - 300_000);
    invited(&env, &["ann@example.com", "bob@example.com"]).await;

    // Nothing changed: a third pass queues nothing.
    assert_eq!(jobs_queued_by_a_pass(&env).await, 0);
    let jobs = settled_jobs(&store).await;
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert_eq!(env.docspace.invite_requests().len(), 2);
    app.stop().await.unwrap();
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivered_assignment_queues_nothing_and_a_reassignment_is_followed(
    #[case] backend: Backend,
) {
    let Some((env, store)) = watched(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    assign(&env, "501", ANN);
    app.bridge
        .deliver_assignment("proj", "secret", "501", ANN.0)
        .await;
    settled_jobs(&store).await;
    assert_eq!(jobs_queued_by_a_pass(&env).await, 0);

    // Reassigned to bob, never delivered: a pass finds it.
    assign(&env, "501", BOB);
    assert_eq!(jobs_queued_by_a_pass(&env).await, 1);
    invited(&env, &["ann@example.com", "bob@example.com"]).await;
    settled_jobs(&store).await;

    // Back to ann: her job runs again (issue 13 needs it), and the ledger invites nobody twice.
    assign(&env, "501", ANN);
    assert_eq!(jobs_queued_by_a_pass(&env).await, 1);
    let jobs = settled_jobs(&store).await;
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    assert_eq!(jobs[0].outcome.as_deref(), Some("already_invited"));
    assert_eq!(env.docspace.invite_requests().len(), 2);
    app.stop().await.unwrap();
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_say_why_and_exit_non_zero(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let none = env.run(&["reconcile", "run"]).await;
    none.expect_code(0);
    assert_eq!(
        none.stdout.trim(),
        "No project has a webhook registered here: nothing to reconcile."
    );
    let malformed = env.run(&["reconcile", "run", "--project", "abc"]).await;
    malformed.expect_code(2);
    assert!(
        malformed
            .stderr
            .contains("\"abc\" is not an Asana gid (1 to 64 digits)"),
        "{}",
        malformed.stderr
    );
    let unwatched = env.run(&["reconcile", "run", "--project", PROJECT]).await;
    unwatched.expect_code(1);
    assert_eq!(
        unwatched.stderr.trim(),
        format!(
            "project {PROJECT} has no webhook registered here: nothing to reconcile (use `backfill --project {PROJECT}` once, or `webhooks create --project {PROJECT}`)"
        )
    );

    env.database
        .add_known_project("proj", PROJECT, "Website")
        .await;
    assign(&env, "501", ANN);
    env.asana.push_fault(
        "list_tasks",
        Fault::json(500, json!({"errors": [{"message": "Server Error"}]})),
    );
    let failed = env.run(&["reconcile", "run", "--project", PROJECT]).await;
    failed.expect_code(1);
    assert!(
        failed
            .stdout
            .contains("failed: Asana answered 500: Server Error; the cursor is unchanged"),
        "{}",
        failed.stdout
    );
    let state = &store.reconcile_states().await.unwrap()[0];
    assert_eq!(state.reconcile_cursor, None);
    assert_eq!(state.reconcile_failures, 1);

    assert!(matches!(
        store
            .claim_project_reconcile(
                &crate::helpers::gid(PROJECT),
                "service:elsewhere",
                Duration::from_secs(60)
            )
            .await
            .unwrap(),
        asana_docspace_bridge::store::ClaimOutcome::Claimed(_)
    ));
    let held = env.run(&["reconcile", "run"]).await;
    held.expect_code(1);
    assert!(
        held.stdout.contains("a pass is running elsewhere (until "),
        "{}",
        held.stdout
    );
    assert!(held.stdout.contains("); skipped"), "{}", held.stdout);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_that_goes_round_in_a_circle_fails_the_pass(#[case] backend: Backend) {
    let Some((env, store)) = watched(backend).await else {
        return;
    };
    // Pages a, b, then a again: round in a circle.
    for offset in ["a", "b", "a", "b"] {
        let page =
            json!({"data": [], "next_page": {"offset": offset, "path": "/tasks", "uri": ""}});
        env.asana.push_fault("list_tasks", Fault::json(200, page));
    }
    let failed = env.run(&["reconcile", "run", "--project", PROJECT]).await;
    failed.expect_code(1);
    assert!(
        failed
            .stdout
            .contains("failed: Asana gave the same next-page offset twice; the pass stopped; the cursor is unchanged"),
        "{}",
        failed.stdout
    );
    assert_eq!(
        pass_requests(&env).len(),
        3,
        "the page that repeats an offset ends it"
    );
    assert_eq!(
        store.reconcile_states().await.unwrap()[0].reconcile_cursor,
        None
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_runs_passes_and_reports_them(#[case] backend: Backend) {
    let Some((mut env, store)) = watched(backend).await else {
        return;
    };
    env.set("BRIDGE__RECONCILE__INTERVAL_SECS", "1");
    assign(&env, "501", ANN);
    let process = BridgeProcess::start(&env).await;
    invited(&env, &["ann@example.com"]).await;
    // Passes go on, one a second, each from the last one's cursor.
    eventually("three passes", WAIT, || async {
        (pass_requests(&env).len() >= 3).then_some(())
    })
    .await;
    assign(&env, "502", BOB);
    invited(&env, &["ann@example.com", "bob@example.com"]).await;

    let m = process.bridge.metrics().await;
    assert!(sample(&m, "bridge_reconcile_passes_total", &[("result", "ok")]) >= 3.0);
    assert_eq!(sample(&m, "bridge_reconcile_missed_total", &[]), 1.0);
    let lag = sample(&m, "bridge_reconcile_lag_seconds", &[("project", PROJECT)]);
    assert!((0.0..60.0).contains(&lag), "{lag}");
    let jobs = settled_jobs(&store).await;
    assert!(jobs.iter().all(|j| j.status == JobStatus::Done), "{jobs:?}");
    assert_eq!(jobs.len(), 2);
    process.terminate().await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_up_runs_with_passes_off_and_a_restart_resumes_from_the_cursor(
    #[case] backend: Backend,
) {
    let Some((env, store)) = watched(backend).await else {
        return;
    };
    assign(&env, "501", ANN);
    // A first pass by hand; the service (passes off) runs none of its own.
    env.run(&["reconcile", "run"]).await.expect_code(0);
    let cursor = store.reconcile_states().await.unwrap()[0]
        .reconcile_cursor
        .unwrap();

    // A repair asks for a catch-up from an hour ago: the service, started after it, runs it
    // from there (and only it).
    assign(&env, "502", BOB);
    env.asana
        .set_modified_at("502", SystemTime::now() - Duration::from_secs(1800));
    let since = cursor - 3_600_000;
    store
        .request_catch_up(&crate::helpers::gid(PROJECT), since)
        .await
        .unwrap();
    let app = TestApp::spawn(&env).await;
    invited(&env, &["ann@example.com", "bob@example.com"]).await;
    let requests = pass_requests(&env);
    assert_eq!(requests.len(), 2);
    let from = query_param(&requests[1], "modified_since").unwrap();
    assert_eq!(
        humantime::parse_rfc3339(&from).unwrap(),
        SystemTime::UNIX_EPOCH + Duration::from_millis((since - 300_000) as u64)
    );
    let state = &store.reconcile_states().await.unwrap()[0];
    assert_eq!(state.reconcile_since, None);
    assert!(state.reconcile_cursor.unwrap() > cursor);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_never_run_one_projects_pass_at_once() {
    let Some((mut env, store)) = watched(Backend::Postgres).await else {
        return;
    };
    env.set("BRIDGE__RECONCILE__INTERVAL_SECS", "1");
    // Three pages a pass, each answered slowly: overlapping passes would interleave their pages.
    for n in 0..250 {
        env.asana.assign(&format!("{}", 600 + n), PROJECT, None);
    }
    env.asana.set_latency(Duration::from_millis(100));
    let first = TestApp::spawn(&env).await;
    let second = TestApp::spawn(&env).await;
    eventually("six passes", WAIT, || async {
        (pass_requests(&env).len() >= 18).then_some(())
    })
    .await;
    first.stop().await.unwrap();
    second.stop().await.unwrap();

    // Pass after pass, page after page (a pass cut short by the stop is a prefix of one).
    let mut requests = pass_requests(&env);
    requests.sort_by_key(|r| r.at);
    let offsets: Vec<Option<String>> = requests.iter().map(|r| query_param(r, "offset")).collect();
    for (n, offset) in offsets.iter().enumerate() {
        let expected = match n % 3 {
            0 => None,
            1 => Some("off-100".to_string()),
            _ => Some("off-200".to_string()),
        };
        assert_eq!(offset, &expected, "request {n} of {offsets:?}");
    }
    let passes = store.reconcile_states().await.unwrap();
    assert_eq!(passes[0].reconcile_failures, 0);
}
