//! From a queued job to a DocSpace invitation: the rules, the retries and exactly-once.

use std::time::Duration;

use asana_docspace_fakes::{FakeUser, Fault, assignment_delivery};
use serde_json::json;

use crate::helpers::{
    ASANA_TOKEN, DOCSPACE_KEY, PROJECT, TestApp, WAIT, job_with_status, outcome_of, settled_jobs,
};

store_test! {
    async fn an_assignment_invites_the_assignee_once_with_the_right_request(env) {
        env.assign("501", "601", "Jane.Doe@Example.com");
        let app = TestApp::spawn(&env).await;
        let secret = app.register("proj").await;

        app.deliver_assignment("proj", &secret, "501", "601").await;

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
}

store_test! {
    async fn invite_type_all_is_sent_by_name_by_default(env) {
        env.vars.remove("BRIDGE__DOCSPACE__INVITE_TYPE");
        env.assign("501", "601", "jane@example.com");
        let app = TestApp::spawn(&env).await;
        let secret = app.register("proj").await;

        app.deliver_assignment("proj", &secret, "501", "601").await;

        assert!(env.docspace.wait_for_sent(1, WAIT).await);
        assert_eq!(
            env.docspace.invite_requests()[0].json()["invitations"][0]["type"],
            "All"
        );
    }
}

store_test! {
    async fn duplicates_and_several_tasks_for_one_person_give_one_invitation(env) {
        for task in ["501", "502", "503", "504"] {
            env.assign(task, "601", "jane@example.com");
        }
        let app = TestApp::spawn(&env).await;
        let secret = app.register("proj").await;

        let body = assignment_delivery("501", "601");
        for _ in 0..3 {
            assert_eq!(app.deliver("proj", &secret, &body).await.status(), 200);
        }
        for task in ["502", "503", "504"] {
            app.deliver_assignment("proj", &secret, task, "601").await;
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
}

store_test! {
    async fn concurrent_jobs_for_one_person_invite_once(env) {
        env.set("BRIDGE__WORKER__CONCURRENCY", "8");
        env.docspace.set_latency(Duration::from_millis(30));
        for task in 0..24 {
            env.assign(&format!("7{task:02}"), "601", "jane@example.com");
        }
        let app = TestApp::spawn(&env).await;
        let secret = app.register("proj").await;

        let mut events = Vec::new();
        for task in 0..24 {
            events.push(assignment_delivery(&format!("7{task:02}"), "601")["events"][0].clone());
        }
        assert_eq!(
            app.deliver("proj", &secret, &json!({ "events": events }))
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
}

store_test! {
    async fn no_assignee_or_no_email_means_nothing_to_do(env) {
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
        let secret = app.register("proj").await;

        app.deliver_assignment("proj", &secret, "501", "601").await;
        app.deliver_assignment("proj", &secret, "502", "602").await;

        let jobs = settled_jobs(&env.store().await).await;
        let outcome = |task: &str| outcome_of(&jobs, task);
        assert_eq!(outcome("501"), "no_assignee");
        assert_eq!(outcome("502"), "no_email");
        assert!(env.docspace.invite_requests().is_empty());
    }
}

store_test! {
    async fn an_unassignment_event_queues_nothing(env) {
        env.assign("501", "601", "jane@example.com");
        let app = TestApp::spawn(&env).await;
        let secret = app.register("proj").await;
        let mut body = assignment_delivery("501", "601");
        body["events"][0]["change"]
            .as_object_mut()
            .unwrap()
            .remove("new_value");

        assert_eq!(app.deliver("proj", &secret, &body).await.status(), 200);

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
}

store_test! {
    async fn an_existing_member_is_not_invited(env) {
        env.assign("501", "601", "member@example.com");
        env.docspace.add_member("Member@example.com");
        let app = TestApp::spawn(&env).await;
        let secret = app.register("proj").await;

        app.deliver_assignment("proj", &secret, "501", "601").await;

        let jobs = settled_jobs(&env.store().await).await;
        assert_eq!(jobs[0].outcome.as_deref(), Some("already_member"));
        assert!(env.docspace.invite_requests().is_empty());
        let lookups = env.docspace.requests_to("/api/2.0/people/email");
        assert_eq!(
            lookups[0].query_param("email").as_deref(),
            Some("member@example.com")
        );
    }
}

store_test! {
    async fn emails_outside_the_allowed_domains_are_skipped(env) {
        env.set(
            "BRIDGE__INVITE__ALLOWED_DOMAINS",
            "example.com,corp.example",
        );
        env.assign("501", "601", "jane@example.com");
        env.assign("502", "602", "mallory@elsewhere.org");
        env.assign("503", "603", "bob@CORP.example");
        let app = TestApp::spawn(&env).await;
        let secret = app.register("proj").await;

        for (task, user) in [("501", "601"), ("502", "602"), ("503", "603")] {
            app.deliver_assignment("proj", &secret, task, user).await;
        }

        let jobs = settled_jobs(&env.store().await).await;
        let outcome = |task: &str| outcome_of(&jobs, task);
        assert_eq!(outcome("501"), "invited");
        assert_eq!(outcome("502"), "domain_not_allowed");
        assert_eq!(outcome("503"), "invited");
        let sent = env.docspace.sent_emails();
        assert_eq!(sent, ["bob@corp.example", "jane@example.com"]);
    }
}

store_test! {
    async fn a_docspace_outage_is_retried_until_the_invitation_goes_out(env) {
        env.assign("501", "601", "jane@example.com");
        env.docspace.push_fault("invite", Fault::html(503));
        env.docspace.push_fault("invite", Fault::status(502));
        let app = TestApp::spawn(&env).await;
        let secret = app.register("proj").await;

        app.deliver_assignment("proj", &secret, "501", "601").await;

        let store = env.store().await;
        let jobs = settled_jobs(&store).await;
        assert_eq!(jobs[0].outcome.as_deref(), Some("invited"));
        assert_eq!(jobs[0].attempts, 3);
        assert_eq!(env.docspace.invite_requests().len(), 3);
        assert_eq!(env.docspace.sent_invitations().len(), 1);
    }
}

store_test! {
    async fn an_asana_rate_limit_is_waited_out_for_at_least_retry_after(env) {
        // Retry-After is honoured up to the backoff cap.
        env.set("BRIDGE__WORKER__BACKOFF_MAX_MS", "5000");
        env.assign("501", "601", "jane@example.com");
        env.asana
            .push_fault("get_task", Fault::rate_limited(Some("1")));
        let app = TestApp::spawn(&env).await;
        let secret = app.register("proj").await;

        app.deliver_assignment("proj", &secret, "501", "601").await;

        assert!(env.docspace.wait_for_sent(1, WAIT).await);
        let reads = env.asana.requests_to("/tasks/501");
        assert_eq!(reads.len(), 2);
        let waited = reads[1].at.duration_since(reads[0].at);
        assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    }
}

store_test! {
    async fn a_permanent_error_fails_the_job_at_once_with_the_upstream_message(env) {
        env.assign("501", "601", "jane@example.com");
        env.docspace.push_fault(
            "invite",
            Fault::json(
                400,
                json!({"error": {"message": "Incorrect email"}, "status": 1, "statusCode": 400}),
            ),
        );
        let app = TestApp::spawn(&env).await;
        let secret = app.register("proj").await;

        app.deliver_assignment("proj", &secret, "501", "601").await;

        let store = env.store().await;
        let job = job_with_status(&store, 1, "failed").await;
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
}

store_test! {
    async fn a_task_asana_does_not_show_fails_without_retry(env) {
        let app = TestApp::spawn(&env).await;
        let secret = app.register("proj").await;

        app.deliver_assignment("proj", &secret, "404404", "601")
            .await;

        let job = job_with_status(&env.store().await, 1, "failed").await;
        assert!(job.last_error.unwrap().contains("Unknown object"));
        assert_eq!(env.asana.requests_to("/tasks/404404").len(), 1);
    }
}

store_test! {
    async fn transient_failures_stop_after_max_attempts_and_the_job_is_kept(env) {
        env.set("BRIDGE__WORKER__MAX_ATTEMPTS", "3");
        env.assign("501", "601", "jane@example.com");
        for _ in 0..5 {
            env.docspace.push_fault("find_user", Fault::status(500));
        }
        let app = TestApp::spawn(&env).await;
        let secret = app.register("proj").await;

        app.deliver_assignment("proj", &secret, "501", "601").await;

        let job = job_with_status(&env.store().await, 1, "failed").await;
        assert_eq!(job.attempts, 3);
        assert!(
            job.last_error
                .unwrap()
                .starts_with("gave up after 3 attempts")
        );
        assert_eq!(env.docspace.requests_to("/api/2.0/people/email").len(), 3);
        assert!(env.docspace.invite_requests().is_empty());
    }
}

store_test! {
    async fn a_slow_upstream_times_out_and_is_retried(env) {
        env.set("BRIDGE__WORKER__REQUEST_TIMEOUT_MS", "300");
        env.set("BRIDGE__WORKER__LEASE_MS", "2000");
        env.assign("501", "601", "jane@example.com");
        env.asana
            .push_fault("get_task", Fault::Delay(Duration::from_secs(3)));
        let app = TestApp::spawn(&env).await;
        let secret = app.register("proj").await;

        app.deliver_assignment("proj", &secret, "501", "601").await;

        let jobs = settled_jobs(&env.store().await).await;
        assert_eq!(jobs[0].outcome.as_deref(), Some("invited"));
        assert_eq!(jobs[0].attempts, 2);
        assert_eq!(env.docspace.sent_invitations().len(), 1);
    }
}

store_test! {
    async fn asana_requests_are_paced_to_the_configured_rate(env) {
        env.set("BRIDGE__ASANA__REQUESTS_PER_MINUTE", "600");
        env.set("BRIDGE__WORKER__CONCURRENCY", "8");
        for task in 0..20 {
            env.assign(&format!("8{task:02}"), &format!("9{task:02}"), &format!("p{task}@example.com"));
        }
        let app = TestApp::spawn(&env).await;
        let secret = app.register("proj").await;
        let events: Vec<_> = (0..20)
            .map(|t| assignment_delivery(&format!("8{t:02}"), &format!("9{t:02}"))["events"][0].clone())
            .collect();
        assert_eq!(app.deliver("proj", &secret, &json!({ "events": events })).await.status(), 200);

        settled_jobs(&env.store().await).await;
        let mut reads: Vec<_> = env.asana.requests().into_iter().filter(|r| r.path.starts_with("/api/1.0/tasks/")).map(|r| r.at).collect();
        reads.sort();
        assert_eq!(reads.len(), 20);
        // 600 a minute is 10 a second with a burst of 10: the last 10 take about a second.
        let spread = reads[19].duration_since(reads[0]);
        assert!(spread >= Duration::from_millis(900), "20 reads within {spread:?}");
        assert_eq!(env.docspace.sent_invitations().len(), 20);
    }
}

store_test! {
    async fn an_asana_retry_after_of_2_pow_64_waits_only_backoff_max(env) {
        env.set("BRIDGE__WORKER__BACKOFF_MAX_MS", "1000");
        // Longer than the test waits: a job whose attempt panicked would sit running.
        env.set("BRIDGE__WORKER__LEASE_MS", "60000");
        env.assign("501", "601", "jane@example.com");
        env.asana
            .push_fault("get_task", Fault::rate_limited(Some("18446744073709551615")));
        let app = TestApp::spawn(&env).await;
        let secret = app.register("proj").await;

        app.deliver_assignment("proj", &secret, "501", "601").await;

        assert!(env.docspace.wait_for_sent(1, WAIT).await, "the invitation goes out");
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
}

store_test! {
    async fn a_docspace_retry_after_date_in_year_9999_waits_only_backoff_max(env) {
        env.set("BRIDGE__WORKER__BACKOFF_MAX_MS", "1000");
        env.assign("501", "601", "jane@example.com");
        env.docspace.push_fault(
            "find_user",
            Fault::rate_limited(Some("Fri, 31 Dec 9999 23:59:59 GMT")),
        );
        let app = TestApp::spawn(&env).await;
        let secret = app.register("proj").await;

        app.deliver_assignment("proj", &secret, "501", "601").await;

        assert!(env.docspace.wait_for_sent(1, WAIT).await, "the invitation goes out");
        let lookups = env.docspace.requests_to("/api/2.0/people/email");
        assert_eq!(lookups.len(), 2);
        let waited = lookups[1].at.duration_since(lookups[0].at);
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
            "retried after {waited:?}"
        );
    }
}

store_test! {
    async fn oversized_answers_are_read_no_further_and_count_as_transient(env) {
        env.set("BRIDGE__WORKER__MAX_ATTEMPTS", "1");
        for (task, user) in [("501", "601"), ("502", "602"), ("503", "603")] {
            env.assign(task, user, &format!("{user}@example.com"));
        }
        // Whichever two task reads come first get 64 MiB, with and without a Content-Length; the
        // third job's DocSpace lookup gets a 503 with an 8 MiB error body.
        for declared in [true, false] {
            env.asana.push_fault("get_task", Fault::HugeBody { bytes: 64 << 20, declared });
        }
        let huge_error = json!({"error": {"message": "x".repeat(8 << 20)}});
        env.docspace.push_fault("find_user", Fault::json(503, huge_error));
        let app = TestApp::spawn(&env).await;
        let secret = app.register("proj").await;

        for (task, user) in [("501", "601"), ("502", "602"), ("503", "603")] {
            app.deliver_assignment("proj", &secret, task, user).await;
        }

        let jobs = settled_jobs(&env.store().await).await;
        assert_eq!(jobs.len(), 3);
        for job in &jobs {
            assert_eq!(job.status, "failed", "{job:?}");
            let error: String = job.last_error.as_deref().unwrap_or("").chars().take(300).collect();
            // "gave up": the retry path, taken only by transient failures.
            assert!(error.starts_with("gave up after 1 attempts"), "{error}");
            assert!(error.contains("response too large"), "{error}");
        }
        assert!(env.docspace.invite_requests().is_empty());
    }
}
