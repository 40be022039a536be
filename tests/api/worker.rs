//! From a queued job to a DocSpace invitation: the rules, the retries and exactly-once.

use asana_docspace_bridge::store::JobStatus;
use std::time::Duration;

use asana_docspace_bridge::store::{InvitationState, LeaseOwner, Outcome, Reservation};
use asana_docspace_bridge::upstream::Upstreams;
use asana_docspace_bridge::worker::{Inviter, JobEnd};
use asana_docspace_fakes::{FakeUser, Fault, assignment_delivery};
use rstest::rstest;
use serde_json::json;

use crate::helpers::{
    ASANA_TOKEN, Backend, DOCSPACE_KEY, Env, PROJECT, TestApp, WAIT, assignment_job, email,
    from_webhook, gid, job_with_status, outcome_of, settled_jobs,
};

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignment_invites_the_assignee_once_with_the_right_request(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    env.assign("501", "601", "Jane.Doe@Example.com");
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    assert!(
        env.docspace.wait_for_sent(1, WAIT).await,
        "an invitation arrives"
    );
    let store = env.store().await;
    let jobs = settled_jobs(&store).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].outcome.as_deref(), Some("invited"));
    assert_eq!(jobs[0].email.as_deref(), Some("jane.doe@example.com"));

    let task_reads = env.asana.requests_to("/tasks/501");
    assert_eq!(task_reads.len(), 1);
    assert_eq!(
        task_reads[0].header("authorization"),
        Some(format!("Bearer {ASANA_TOKEN}").as_str())
    );
    let fields = task_reads[0].query_param("opt_fields").unwrap();
    assert!(fields.split(',').any(|f| f == "assignee.email"), "{fields}");

    let invites = env.docspace.invite_requests();
    assert_eq!(invites.len(), 1);
    assert_eq!(
        invites[0].header("authorization"),
        Some(format!("Bearer {DOCSPACE_KEY}").as_str())
    );
    assert!(
        invites[0]
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(
        invites[0].json(),
        json!({"invitations": [{"email": "jane.doe@example.com", "type": "User"}]})
    );
    assert_eq!(
        store.sent_invitations().await.unwrap(),
        vec!["jane.doe@example.com"]
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_type_all_is_sent_by_name_by_default(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.vars.remove("BRIDGE__DOCSPACE__INVITE_TYPE");
    env.assign("501", "601", "jane@example.com");
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    assert!(env.docspace.wait_for_sent(1, WAIT).await);
    assert_eq!(
        env.docspace.invite_requests()[0].json()["invitations"][0]["type"],
        "All"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_and_several_tasks_for_one_person_give_one_invitation(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    for task in ["501", "502", "503", "504"] {
        env.assign(task, "601", "jane@example.com");
    }
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    let body = assignment_delivery("501", "601");
    for _ in 0..3 {
        assert_eq!(
            app.bridge.deliver("proj", &secret, &body).await.status(),
            200
        );
    }
    for task in ["502", "503", "504"] {
        app.bridge
            .deliver_assignment("proj", &secret, task, "601")
            .await;
    }

    let jobs = settled_jobs(&env.store().await).await;
    assert_eq!(jobs.len(), 4, "one job per distinct event");
    assert_eq!(env.docspace.sent_invitations().len(), 1);
    assert_eq!(
        env.docspace.invite_requests().len(),
        1,
        "no second POST either"
    );
    let mut outcomes: Vec<_> = jobs.iter().map(|j| j.outcome.clone().unwrap()).collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            "already_invited",
            "already_invited",
            "already_invited",
            "invited"
        ]
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_jobs_for_one_person_invite_once(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__WORKER__CONCURRENCY", "8");
    env.docspace.set_latency(Duration::from_millis(30));
    for task in 0..24 {
        env.assign(&format!("7{task:02}"), "601", "jane@example.com");
    }
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    let mut events = Vec::new();
    for task in 0..24 {
        events.push(assignment_delivery(&format!("7{task:02}"), "601")["events"][0].clone());
    }
    assert_eq!(
        app.bridge
            .deliver("proj", &secret, &json!({ "events": events }))
            .await
            .status(),
        200
    );

    let jobs = settled_jobs(&env.store().await).await;
    assert_eq!(jobs.len(), 24);
    assert_eq!(env.docspace.invite_requests().len(), 1);
    assert_eq!(
        jobs.iter()
            .filter(|j| j.outcome.as_deref() == Some("invited"))
            .count(),
        1
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_assignee_or_no_email_means_nothing_to_do(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    // The event named an assignee, but the task is unassigned by the time the job runs.
    env.asana.assign("501", PROJECT, None);
    env.asana.assign(
        "502",
        PROJECT,
        Some(FakeUser {
            gid: "602".into(),
            email: None,
            name: "No Email".into(),
        }),
    );
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;
    app.bridge
        .deliver_assignment("proj", &secret, "502", "602")
        .await;

    let jobs = settled_jobs(&env.store().await).await;
    let outcome = |task: &str| outcome_of(&jobs, task);
    assert_eq!(outcome("501"), "no_assignee");
    assert_eq!(outcome("502"), "no_email");
    assert!(env.docspace.invite_requests().is_empty());
}

/// An email Asana gives that is not an address is an answer, not a broken response: the job ends
/// at once, saying why, and is not retried.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignee_email_that_is_not_an_address_means_no_email(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    env.assign("501", "601", "jane at example.com");
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    let jobs = settled_jobs(&env.store().await).await;
    assert_eq!(outcome_of(&jobs, "501"), "no_email");
    assert_eq!(jobs[0].attempts, 1);
    let note = jobs[0].last_error.as_deref().unwrap_or_default();
    assert!(note.contains("which is not an address"), "{note}");
    assert!(env.docspace.requests().is_empty());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unassignment_event_queues_nothing(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    env.assign("501", "601", "jane@example.com");
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;
    let mut body = assignment_delivery("501", "601");
    body["events"][0]["change"]
        .as_object_mut()
        .unwrap()
        .remove("new_value");

    assert_eq!(
        app.bridge.deliver("proj", &secret, &body).await.status(),
        200
    );

    assert!(
        env.store()
            .await
            .list_jobs(None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(env.asana.requests_to("/tasks/501").is_empty());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_member_is_not_invited(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    env.assign("501", "601", "member@example.com");
    env.docspace.add_member("Member@example.com");
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    let jobs = settled_jobs(&env.store().await).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("already_member"));
    assert!(env.docspace.invite_requests().is_empty());
    let lookups = env.docspace.requests_to("/api/2.0/people/email");
    assert_eq!(
        lookups[0].query_param("email").as_deref(),
        Some("member@example.com")
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_outside_the_allowed_domains_are_skipped(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set(
        "BRIDGE__INVITE__ALLOWED_DOMAINS",
        "example.com,corp.example",
    );
    env.assign("501", "601", "jane@example.com");
    env.assign("502", "602", "mallory@elsewhere.org");
    env.assign("503", "603", "bob@CORP.example");
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    for (task, user) in [("501", "601"), ("502", "602"), ("503", "603")] {
        app.bridge
            .deliver_assignment("proj", &secret, task, user)
            .await;
    }

    let jobs = settled_jobs(&env.store().await).await;
    let outcome = |task: &str| outcome_of(&jobs, task);
    assert_eq!(outcome("501"), "invited");
    assert_eq!(outcome("502"), "domain_not_allowed");
    assert_eq!(outcome("503"), "invited");
    let sent = env.docspace.sent_emails();
    assert_eq!(sent, ["bob@corp.example", "jane@example.com"]);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docspace_outage_is_retried_until_the_invitation_goes_out(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    env.assign("501", "601", "jane@example.com");
    env.docspace.push_fault("invite", Fault::html(503));
    env.docspace.push_fault("invite", Fault::status(502));
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    let store = env.store().await;
    let jobs = settled_jobs(&store).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("invited"));
    assert_eq!(jobs[0].attempts, 3);
    assert_eq!(env.docspace.invite_requests().len(), 3);
    assert_eq!(env.docspace.sent_invitations().len(), 1);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asana_rate_limit_is_waited_out_for_at_least_retry_after(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    // Retry-After is honoured up to the backoff cap.
    env.set("BRIDGE__WORKER__BACKOFF_MAX_MS", "5000");
    env.assign("501", "601", "jane@example.com");
    env.asana
        .push_fault("get_task", Fault::rate_limited(Some("1")));
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    assert!(env.docspace.wait_for_sent(1, WAIT).await);
    let reads = env.asana.requests_to("/tasks/501");
    assert_eq!(reads.len(), 2);
    let waited = reads[1].at.duration_since(reads[0].at);
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_error_fails_the_job_at_once_with_the_upstream_message(
    #[case] backend: Backend,
) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    env.assign("501", "601", "jane@example.com");
    env.docspace.push_fault(
        "invite",
        Fault::json(
            400,
            json!({"error": {"message": "Incorrect email"}, "status": 1, "statusCode": 400}),
        ),
    );
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    let store = env.store().await;
    let job = job_with_status(&store, 1, JobStatus::Failed).await;
    assert_eq!(job.attempts, 1);
    assert_eq!(job.outcome.as_deref(), Some("failed"));
    let error = job.last_error.unwrap();
    assert!(
        error.contains("400") && error.contains("Incorrect email"),
        "{error}"
    );
    assert_eq!(env.docspace.invite_requests().len(), 1, "not retried");
    assert!(store.sent_invitations().await.unwrap().is_empty());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_asana_does_not_show_ends_task_gone_without_retry(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "404404", "601")
        .await;

    // Deleted (or hidden from the token): nothing to invite, and nothing to retry (issue 13).
    let job = job_with_status(&env.store().await, 1, JobStatus::Done).await;
    assert_eq!(job.outcome.as_deref(), Some("task_gone"));
    assert_eq!(env.asana.requests_to("/tasks/404404").len(), 1);
    assert!(env.docspace.requests().is_empty(), "no DocSpace call");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_stop_after_max_attempts_and_the_job_is_kept(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__WORKER__MAX_ATTEMPTS", "3");
    env.assign("501", "601", "jane@example.com");
    for _ in 0..5 {
        env.docspace.push_fault("find_user", Fault::status(500));
    }
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    let job = job_with_status(&env.store().await, 1, JobStatus::Failed).await;
    assert_eq!(job.attempts, 3);
    assert!(
        job.last_error
            .unwrap()
            .starts_with("gave up after 3 attempts")
    );
    assert_eq!(env.docspace.requests_to("/api/2.0/people/email").len(), 3);
    assert!(env.docspace.invite_requests().is_empty());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_times_out_and_is_retried(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__WORKER__REQUEST_TIMEOUT_MS", "300");
    env.set("BRIDGE__WORKER__LEASE_MS", "2000");
    env.assign("501", "601", "jane@example.com");
    env.asana
        .push_fault("get_task", Fault::Delay(Duration::from_secs(3)));
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    let jobs = settled_jobs(&env.store().await).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("invited"));
    assert_eq!(jobs[0].attempts, 2);
    assert_eq!(env.docspace.sent_invitations().len(), 1);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asana_requests_are_paced_to_the_configured_rate(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__ASANA__REQUESTS_PER_MINUTE", "600");
    env.set("BRIDGE__WORKER__CONCURRENCY", "8");
    for task in 0..20 {
        env.assign(
            &format!("8{task:02}"),
            &format!("9{task:02}"),
            &format!("p{task}@example.com"),
        );
    }
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;
    let events: Vec<_> = (0..20)
        .map(|t| assignment_delivery(&format!("8{t:02}"), &format!("9{t:02}"))["events"][0].clone())
        .collect();
    assert_eq!(
        app.bridge
            .deliver("proj", &secret, &json!({ "events": events }))
            .await
            .status(),
        200
    );

    settled_jobs(&env.store().await).await;
    let mut reads: Vec<_> = env
        .asana
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/1.0/tasks/"))
        .map(|r| r.at)
        .collect();
    reads.sort();
    assert_eq!(reads.len(), 20);
    // 600 a minute is 10 a second with a burst of 10: the last 10 take about a second.
    let spread = reads[19].duration_since(reads[0]);
    assert!(
        spread >= Duration::from_millis(900),
        "20 reads within {spread:?}"
    );
    assert_eq!(env.docspace.sent_invitations().len(), 20);
}

/// Asana limits requests per token: the worker and the webhook watcher pace through one client,
/// so together they stay under the configured rate (with a client each, each would use all of it).
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_and_the_webhook_watcher_share_one_asana_rate(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    // One request a second, in bursts of one.
    env.set("BRIDGE__ASANA__REQUESTS_PER_MINUTE", "60");
    env.set("BRIDGE__WEBHOOKS__WATCH_INTERVAL_SECS", "1");
    let tasks = ["501", "502", "503"];
    for (n, task) in tasks.iter().enumerate() {
        env.assign(task, &format!("60{n}"), &format!("p{n}@example.com"));
    }
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;
    // From now on the watcher reads the webhook at Asana every second.
    let webhook_path = "/api/1.0/webhooks/1200000000000200";
    env.execute_sql("UPDATE webhooks SET webhook_gid = '1200000000000200' WHERE name = 'proj'")
        .await;

    for (n, task) in tasks.iter().enumerate() {
        app.bridge
            .deliver_assignment("proj", &secret, task, &format!("60{n}"))
            .await;
    }

    let both_called = env
        .asana
        .wait_for_requests(WAIT, |requests| {
            let task_reads = requests
                .iter()
                .filter(|r| r.path.starts_with("/api/1.0/tasks/"))
                .count();
            let webhook_reads = requests.iter().filter(|r| r.path == webhook_path).count();
            task_reads >= tasks.len() && webhook_reads >= 2
        })
        .await;
    assert!(both_called, "the worker and the watcher both called Asana");
    let mut sent: Vec<_> = env.asana.requests().into_iter().map(|r| r.at).collect();
    sent.sort();
    // Any n + 1 of them span n seconds, less what delivery over loopback may shift.
    for (i, first) in sent.iter().enumerate() {
        for (n, last) in sent[i + 1..].iter().enumerate().map(|(k, at)| (k + 1, at)) {
            let span = last.duration_since(*first);
            let least = Duration::from_secs(n as u64) - Duration::from_millis(200);
            assert!(
                span >= least,
                "{} Asana requests within {span:?} at 60 a minute",
                n + 1
            );
        }
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asana_retry_after_of_2_pow_64_waits_only_backoff_max(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__WORKER__BACKOFF_MAX_MS", "1000");
    // Longer than the test waits: a job whose attempt panicked would sit running.
    env.set("BRIDGE__WORKER__LEASE_MS", "60000");
    env.assign("501", "601", "jane@example.com");
    env.asana.push_fault(
        "get_task",
        Fault::rate_limited(Some("18446744073709551615")),
    );
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    assert!(
        env.docspace.wait_for_sent(1, WAIT).await,
        "the invitation goes out"
    );
    let reads = env.asana.requests_to("/tasks/501");
    assert_eq!(reads.len(), 2);
    let waited = reads[1].at.duration_since(reads[0].at);
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "retried after {waited:?}"
    );
    let jobs = settled_jobs(&env.store().await).await;
    assert_eq!(jobs[0].attempts, 2);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docspace_retry_after_date_in_year_9999_waits_only_backoff_max(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__WORKER__BACKOFF_MAX_MS", "1000");
    env.assign("501", "601", "jane@example.com");
    env.docspace.push_fault(
        "find_user",
        Fault::rate_limited(Some("Fri, 31 Dec 9999 23:59:59 GMT")),
    );
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    assert!(
        env.docspace.wait_for_sent(1, WAIT).await,
        "the invitation goes out"
    );
    let lookups = env.docspace.requests_to("/api/2.0/people/email");
    assert_eq!(lookups.len(), 2);
    let waited = lookups[1].at.duration_since(lookups[0].at);
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "retried after {waited:?}"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_answers_are_read_no_further_and_count_as_transient(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__WORKER__MAX_ATTEMPTS", "1");
    for (task, user) in [("501", "601"), ("502", "602"), ("503", "603")] {
        env.assign(task, user, &format!("{user}@example.com"));
    }
    // Whichever two task reads come first get 64 MiB, with and without a Content-Length; the
    // third job's DocSpace lookup gets a 503 with an 8 MiB error body.
    for declared in [true, false] {
        env.asana.push_fault(
            "get_task",
            Fault::HugeBody {
                bytes: 64 << 20,
                declared,
            },
        );
    }
    let huge_error = json!({"error": {"message": "x".repeat(8 << 20)}});
    env.docspace
        .push_fault("find_user", Fault::json(503, huge_error));
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    for (task, user) in [("501", "601"), ("502", "602"), ("503", "603")] {
        app.bridge
            .deliver_assignment("proj", &secret, task, user)
            .await;
    }

    let jobs = settled_jobs(&env.store().await).await;
    assert_eq!(jobs.len(), 3);
    for job in &jobs {
        assert_eq!(job.status, JobStatus::Failed, "{job:?}");
        let error: String = job
            .last_error
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(300)
            .collect();
        // "gave up": the retry path, taken only by transient failures.
        assert!(error.starts_with("gave up after 1 attempts"), "{error}");
        assert!(error.contains("response too large"), "{error}");
    }
    assert!(env.docspace.invite_requests().is_empty());
}

/// A project other than the test project.
const OTHER_PROJECT: &str = "1200000000000999";

/// Registers `name` for PROJECT with `webhooks create`, as an operator does; returns the secret
/// Asana holds for it.
async fn register_for_project(app: &TestApp, env: &mut Env, name: &str) -> String {
    env.set("BRIDGE__SERVER__PUBLIC_URL", &app.bridge.address);
    env.run(&["webhooks", "create", "--project", PROJECT, "--name", name])
        .await
        .expect_code(0);
    let target = format!("/webhooks/asana/{name}?");
    env.asana
        .webhooks()
        .into_iter()
        .find(|w| w.target.contains(&target))
        .expect("the webhook Asana created")
        .secret
}

/// One delivery of `count` assignment events for `task_gid`, each to another user (so each is
/// an event of its own, with its own dedupe key).
fn many_assignments(task_gid: &str, first_user: u64, count: u64) -> serde_json::Value {
    let events: Vec<_> = (first_user..first_user + count)
        .map(|user| assignment_delivery(task_gid, &user.to_string())["events"][0].clone())
        .collect();
    json!({ "events": events })
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_of_the_registered_project_and_their_subtasks_are_invited(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.assign("501", "601", "jane@example.com");
    env.asana.assign("510", PROJECT, None);
    env.asana
        .assign_subtask("511", "510", Some(FakeUser::new("611", "bob@example.com")));
    env.asana.assign_subtask(
        "512",
        "511",
        Some(FakeUser::new("612", "carol@example.com")),
    );
    let app = TestApp::spawn(&env).await;
    let secret = register_for_project(&app, &mut env, "proj").await;

    for (task, user) in [("501", "601"), ("511", "611"), ("512", "612")] {
        app.bridge
            .deliver_assignment("proj", &secret, task, user)
            .await;
    }

    let jobs = settled_jobs(&env.store().await).await;
    for task in ["501", "511", "512"] {
        assert_eq!(outcome_of(&jobs, task), "invited", "task {task}");
    }
    assert_eq!(
        env.docspace.sent_emails(),
        ["bob@example.com", "carol@example.com", "jane@example.com"]
    );
    let fields = env.asana.requests_to("/tasks/501")[0]
        .query_param("opt_fields")
        .unwrap();
    for wanted in ["assignee.email", "projects", "parent"] {
        assert!(fields.split(',').any(|f| f == wanted), "{fields}");
    }
    assert_eq!(env.asana.requests_to("/tasks/501").len(), 1, "one read");
    assert_eq!(
        env.asana.requests_to("/tasks/510").len(),
        2,
        "each subtask's parent chain is read up to the task in the project"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_outside_the_registered_project_are_not_acted_on(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    // Elsewhere; a subtask of a task elsewhere; a subtask nested deeper than is followed.
    env.asana.assign(
        "701",
        OTHER_PROJECT,
        Some(FakeUser::new("601", "mallory@example.com")),
    );
    env.asana.assign("710", OTHER_PROJECT, None);
    env.asana
        .assign_subtask("711", "710", Some(FakeUser::new("611", "eve@example.com")));
    env.asana.assign("720", PROJECT, None);
    env.asana.assign_subtask("721", "720", None);
    env.asana.assign_subtask("722", "721", None);
    env.asana.assign_subtask("723", "722", None);
    env.asana
        .assign_subtask("724", "723", Some(FakeUser::new("624", "deep@example.com")));
    let app = TestApp::spawn(&env).await;
    let secret = register_for_project(&app, &mut env, "proj").await;

    for (task, user) in [("701", "601"), ("711", "611"), ("724", "624")] {
        app.bridge
            .deliver_assignment("proj", &secret, task, user)
            .await;
    }

    let jobs = settled_jobs(&env.store().await).await;
    for task in ["701", "711", "724"] {
        assert_eq!(outcome_of(&jobs, task), "not_in_project", "task {task}");
        let job = jobs.iter().find(|j| j.task_gid == task).unwrap();
        assert_eq!(job.email, None, "task {task}");
    }
    assert!(
        env.docspace.requests().is_empty(),
        "DocSpace is never called: {:?}",
        env.docspace.requests()
    );
    assert!(
        env.asana.requests_to("/tasks/720").is_empty(),
        "the chain is followed 3 levels up, no further"
    );
    assert!(
        env.store()
            .await
            .sent_invitations()
            .await
            .unwrap()
            .is_empty()
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_without_a_registered_project_act_on_any_task(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    env.asana.assign(
        "701",
        OTHER_PROJECT,
        Some(FakeUser::new("601", "jane@example.com")),
    );
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("handmade").await;

    app.bridge
        .deliver_assignment("handmade", &secret, "701", "601")
        .await;

    let jobs = settled_jobs(&env.store().await).await;
    assert_eq!(outcome_of(&jobs, "701"), "invited");
    assert_eq!(env.docspace.sent_emails(), ["jane@example.com"]);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_delivery_for_a_foreign_task_to_a_created_webhook_invites_nobody(
    #[case] backend: Backend,
) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__WEBHOOKS__HANDSHAKE", "registration");
    let app = TestApp::spawn(&env).await;
    env.set("BRIDGE__SERVER__PUBLIC_URL", &app.bridge.address);
    env.assign("501", "601", "jane@example.com");
    env.asana.assign(
        "701",
        OTHER_PROJECT,
        Some(FakeUser::new("666", "mallory@evil.example")),
    );
    let created = env
        .run(&["webhooks", "create", "--project", PROJECT, "--name", "proj"])
        .await;
    created.expect_code(0);
    let gid = env.asana.webhooks()[0].gid.clone();

    // Signed with the webhook's own secret, as a stale event or a leaked secret would be.
    let forged = env
        .asana
        .deliver(&gid, &assignment_delivery("701", "666"))
        .await
        .unwrap();
    assert_eq!(forged.status(), 200);
    let genuine = env
        .asana
        .deliver(&gid, &assignment_delivery("501", "601"))
        .await
        .unwrap();
    assert_eq!(genuine.status(), 200);

    let jobs = settled_jobs(&env.store().await).await;
    assert_eq!(outcome_of(&jobs, "701"), "not_in_project");
    assert_eq!(outcome_of(&jobs, "501"), "invited");
    assert_eq!(env.docspace.sent_emails(), ["jane@example.com"]);
    assert!(
        env.docspace
            .requests()
            .iter()
            .all(|r| !r.query.as_deref().unwrap_or("").contains("evil")),
        "mallory was not even looked up"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_for_a_task_whose_job_has_not_started_are_duplicates(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    env.assign("501", "601", "jane@example.com");
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    let response = app
        .bridge
        .deliver("proj", &secret, &many_assignments("501", 10_000, 500))
        .await;

    assert_eq!(response.status(), 200);
    let ack: serde_json::Value = response.json().await.unwrap();
    assert_eq!(ack["queued"], 1, "{ack}");
    assert_eq!(ack["duplicates"], 499, "{ack}");
    let jobs = settled_jobs(&env.store().await).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].outcome.as_deref(), Some("invited"));
    assert_eq!(env.asana.requests_to("/tasks/501").len(), 1);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_deliveries_for_one_waiting_task_queue_one_job(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    // One job at a time, and the first one slow: the next job waits unclaimed meanwhile.
    env.set("BRIDGE__WORKER__CONCURRENCY", "1");
    env.assign("500", "600", "blocker@example.com");
    env.assign("501", "601", "jane@example.com");
    env.asana
        .push_fault("get_task", Fault::Delay(Duration::from_millis(1500)));
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;
    app.bridge
        .deliver_assignment("proj", &secret, "500", "600")
        .await;
    assert!(
        env.asana
            .wait_for_requests(WAIT, |r| r.iter().any(|r| r.path.ends_with("/tasks/500")))
            .await
    );

    let mut deliveries = tokio::task::JoinSet::new();
    for i in 0..4u64 {
        let bridge = crate::helpers::Bridge::at(&app.bridge.address);
        let (secret, body) = (
            secret.clone(),
            many_assignments("501", 10_000 + 125 * i, 125),
        );
        deliveries.spawn(async move {
            let response = bridge.deliver("proj", &secret, &body).await;
            assert_eq!(response.status(), 200);
            response.json::<serde_json::Value>().await.unwrap()
        });
    }
    let acks = deliveries.join_all().await;

    let count = |key: &str| acks.iter().map(|a| a[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!(count("queued"), 1, "{acks:?}");
    assert_eq!(count("duplicates"), 499, "{acks:?}");
    let jobs = settled_jobs(&env.store().await).await;
    assert_eq!(jobs.iter().filter(|j| j.task_gid == "501").count(), 1);
    assert_eq!(outcome_of(&jobs, "501"), "invited");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_after_the_job_started_queues_a_new_one(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    env.assign("501", "601", "jane@example.com");
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;
    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;
    let store = env.store().await;
    job_with_status(&store, 1, JobStatus::Done).await;

    env.assign("501", "602", "bob@example.com");
    let response = app
        .bridge
        .deliver("proj", &secret, &assignment_delivery("501", "602"))
        .await;

    let ack: serde_json::Value = response.json().await.unwrap();
    assert_eq!(ack["queued"], 1, "{ack}");
    let jobs = settled_jobs(&store).await;
    assert_eq!(jobs.len(), 2);
    assert_eq!(
        env.docspace.sent_emails(),
        ["bob@example.com", "jane@example.com"]
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_is_written_only_by_the_lease_holder(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    store
        .enqueue(from_webhook("proj"), vec![assignment_job("k", "501")])
        .await
        .unwrap();
    let short = Duration::from_millis(50);
    let (old, new) = (LeaseOwner::new("old"), LeaseOwner::new("new"));
    let claimed = store.claim_due_jobs(&old, 1, short).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let id = claimed[0].id;
    let stolen = crate::helpers::eventually("the lease to run out", WAIT, || async {
        let jobs = store.claim_due_jobs(&new, 1, WAIT).await.unwrap();
        (!jobs.is_empty()).then_some(jobs)
    })
    .await;
    assert_eq!(stolen[0].id, id);

    let email = email("jane@example.com");
    let task = gid("501");
    let reserve = |owner| store.reserve_invitation(&email, id, owner, &task, "User");
    assert_eq!(
        reserve(&old).await.unwrap(),
        None,
        "the old holder reserves nothing"
    );
    assert_eq!(store.invitation(&email, id).await.unwrap(), None);
    assert_eq!(
        reserve(&new).await.unwrap(),
        Some(Reservation::Mine(InvitationState::Sending))
    );
    assert!(
        !store
            .confirm_invitation(id, &old, email.clone())
            .await
            .unwrap()
    );
    assert_eq!(
        store.invitation(&email, id).await.unwrap(),
        Some(Reservation::Mine(InvitationState::Sending)),
        "the old holder confirms nothing"
    );
    assert!(
        store
            .confirm_invitation(id, &new, email.clone())
            .await
            .unwrap()
    );
    assert_eq!(store.sent_invitations().await.unwrap(), [email.as_str()]);
    assert_eq!(
        store.job(id).await.unwrap().unwrap().outcome.as_deref(),
        Some("invited")
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_lease_does_not_invite(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    env.assign("501", "601", "jane@example.com");
    env.asana
        .push_fault("get_task", Fault::Delay(Duration::from_millis(800)));
    let store = env.store().await;
    let settings = env.settings();
    let upstreams = Upstreams::from_settings(&settings).unwrap();
    let inviter = Inviter::from_settings(&settings, store.clone(), &upstreams);
    store
        .enqueue(from_webhook("proj"), vec![assignment_job("k", "501")])
        .await
        .unwrap();
    let (old_owner, new_owner) = (LeaseOwner::new("old"), LeaseOwner::new("new"));
    let old = store
        .claim_due_jobs(&old_owner, 1, Duration::from_millis(300))
        .await
        .unwrap()
        .remove(0);

    let old_run = tokio::spawn({
        let (inviter, job, owner) = (inviter.clone(), old.clone(), old_owner.clone());
        async move { inviter.run(&job, &owner).await }
    });
    // The old holder is reading the task (slowly) when another worker takes the job.
    assert!(
        env.asana
            .wait_for_requests(WAIT, |r| r.iter().any(|r| r.path.ends_with("/tasks/501")))
            .await
    );
    let new = crate::helpers::eventually("the lease to run out", WAIT, || async {
        store
            .claim_due_jobs(&new_owner, 1, WAIT)
            .await
            .unwrap()
            .pop()
    })
    .await;

    assert_eq!(old_run.await.unwrap().unwrap(), JobEnd::LeaseLost);
    assert!(
        env.docspace.invite_requests().is_empty(),
        "the old holder sent no invitation"
    );
    assert_eq!(
        store
            .invitation(&email("jane@example.com"), old.id)
            .await
            .unwrap(),
        None
    );

    let end = inviter.run(&new, &new_owner).await.unwrap();
    assert_eq!(end, JobEnd::Done(Outcome::Invited));
    assert_eq!(env.docspace.invite_requests().len(), 1);
}
