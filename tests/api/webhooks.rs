//! Ingress: handshakes, signatures and what a delivery turns into.

use asana_docspace_fakes::{assignment_delivery, random_secret, sign, task_added_delivery};
use rstest::rstest;
use serde_json::{Value, json};

use crate::helpers::{Backend, Env, TestApp, name, raw_request};

async fn error_of(response: reqwest::Response) -> String {
    let body: Value = response.json().await.expect("a JSON error body");
    body["error"].as_str().expect("an error field").to_string()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_stores_the_secret_and_echoes_it(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let secret = random_secret();

    let response = app.bridge.handshake("proj", &secret).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-hook-secret"], secret.as_str());
    let stored = env
        .store()
        .await
        .webhook_secret(&name("proj"))
        .await
        .unwrap();
    assert!(stored.is_some(), "the secret is stored");
    // And it is the one deliveries are checked with.
    let delivered = app
        .bridge
        .deliver("proj", &secret, &json!({"events": []}))
        .await;
    assert_eq!(delivered.status(), 200);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_route_is_the_webhook_named_default(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let secret = random_secret();
    let response = app
        .bridge
        .client
        .post(app.bridge.url("/webhooks/asana"))
        .header("X-Hook-Secret", &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let delivered = app
        .bridge
        .deliver("default", &secret, &json!({"events": []}))
        .await;
    assert_eq!(delivered.status(), 200);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_handshake_is_refused_and_the_first_secret_kept(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let first = app.bridge.register("proj").await;
    let second = random_secret();

    let response = app.bridge.handshake("proj", &second).await;

    assert_eq!(response.status(), 409);
    assert!(response.headers().get("x-hook-secret").is_none());
    assert!(error_of(response).await.contains("already has a secret"));
    let heartbeat = json!({"events": []});
    assert_eq!(
        app.bridge
            .deliver("proj", &first, &heartbeat)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.bridge
            .deliver("proj", &second, &heartbeat)
            .await
            .status(),
        401
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_are_checked_on_the_raw_body(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;
    let body = r#"{"events":[]}"#;

    let valid = app
        .bridge
        .deliver_raw("proj", Some(&sign(&secret, body.as_bytes())), body)
        .await;
    assert_eq!(valid.status(), 200);

    let upper = app
        .bridge
        .deliver_raw(
            "proj",
            Some(&sign(&secret, body.as_bytes()).to_uppercase()),
            body,
        )
        .await;
    assert_eq!(upper.status(), 200, "hex is case-insensitive");

    // Same JSON, different bytes: Asana signs bytes, not values.
    let respaced = app
        .bridge
        .deliver_raw(
            "proj",
            Some(&sign(&secret, body.as_bytes())),
            r#"{"events": []}"#,
        )
        .await;
    assert_eq!(respaced.status(), 401);

    let wrong = app
        .bridge
        .deliver_raw("proj", Some(&sign("not-the-secret", body.as_bytes())), body)
        .await;
    assert_eq!(wrong.status(), 401);
    assert!(error_of(wrong).await.contains("does not match"));

    let missing = app.bridge.deliver_raw("proj", None, body).await;
    assert_eq!(missing.status(), 401);
    assert!(error_of(missing).await.contains("missing X-Hook-Signature"));

    let not_hex = app
        .bridge
        .deliver_raw("proj", Some("zz-not-hex"), body)
        .await;
    assert_eq!(not_hex.status(), 401);
    assert!(error_of(not_hex).await.contains("not hex"));

    let short = app
        .bridge
        .deliver_raw("proj", Some(&sign(&secret, body.as_bytes())[..40]), body)
        .await;
    assert_eq!(short.status(), 401);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_for_an_unknown_webhook_are_refused(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let body = r#"{"events":[]}"#;
    let response = app
        .bridge
        .deliver_raw(
            "never-registered",
            Some(&sign("guess", body.as_bytes())),
            body,
        )
        .await;
    assert_eq!(response.status(), 401);
    assert!(error_of(response).await.contains("unknown webhook"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_neither_header_is_a_bad_request(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let response = app
        .bridge
        .deliver_raw("fresh", None, r#"{"events":[]}"#)
        .await;
    assert_eq!(response.status(), 400);
    assert!(error_of(response).await.contains("X-Hook-Secret"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_are_acknowledged_and_create_no_jobs(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    let response = app
        .bridge
        .deliver("proj", &secret, &json!({"events": []}))
        .await;

    assert_eq!(response.status(), 200);
    assert!(
        env.store()
            .await
            .list_jobs(None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_after_a_valid_signature_is_a_bad_request(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    for body in [
        r#"{"events":[{"action":"added""#,
        "not json",
        r#"{"events":"many"}"#,
    ] {
        let response = app
            .bridge
            .deliver_raw("proj", Some(&sign(&secret, body.as_bytes())), body)
            .await;
        assert_eq!(response.status(), 400, "{body}");
        assert!(
            error_of(response).await.contains("malformed delivery"),
            "{body}"
        );
    }
    assert!(
        env.store()
            .await
            .list_jobs(None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_with_413(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__SERVER__MAX_BODY_BYTES", "1024");
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;
    let body = format!(r#"{{"events":[],"pad":"{}"}}"#, "x".repeat(2000));

    let response = app
        .bridge
        .deliver_raw("proj", Some(&sign(&secret, body.as_bytes())), body.clone())
        .await;
    assert_eq!(response.status(), 413);
    assert!(error_of(response).await.contains("larger than 1024 bytes"));

    // Without a Content-Length (chunked) the limit still holds.
    let mut request = format!(
        "POST /webhooks/asana/proj HTTP/1.1\r\nHost: x\r\nX-Hook-Signature: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        sign(&secret, body.as_bytes())
    );
    for chunk in body.as_bytes().chunks(256) {
        request.push_str(&format!(
            "{:x}\r\n{}\r\n",
            chunk.len(),
            String::from_utf8_lossy(chunk)
        ));
    }
    request.push_str("0\r\n\r\n");
    let answer = raw_request(&app.bridge.address, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("larger than 1024 bytes"), "{answer}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relevant_events_become_jobs_and_the_rest_is_ignored(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;
    let mut body = assignment_delivery("501", "601");
    let added = task_added_delivery("502", "900");
    let events = body["events"].as_array_mut().unwrap();
    events.extend(added["events"].as_array().unwrap().iter().cloned());
    let mut unassigned = assignment_delivery("503", "601")["events"][0].clone();
    unassigned["change"]["new_value"] = Value::Null;
    let mut renamed = assignment_delivery("504", "601")["events"][0].clone();
    renamed["change"]["field"] = json!("name");
    let mut story = assignment_delivery("505", "601")["events"][0].clone();
    story["resource"]["resource_type"] = json!("story");
    events.extend([unassigned, renamed, story]);

    let response = app.bridge.deliver("proj", &secret, &body).await;

    assert_eq!(response.status(), 200);
    let ack: Value = response.json().await.unwrap();
    // The task added to the project and to its section is one event.
    assert_eq!(ack["queued"], 2, "{ack}");
    assert_eq!(ack["duplicates"], 1, "{ack}");
    assert_eq!(ack["ignored"], 3, "{ack}");
    let jobs = env.store().await.list_jobs(None, 10).await.unwrap();
    let mut tasks: Vec<_> = jobs
        .iter()
        .map(|j| {
            (
                j.task_gid.as_str(),
                j.event_kind.as_str(),
                j.source.to_string(),
            )
        })
        .collect();
    tasks.sort();
    assert_eq!(
        tasks,
        vec![
            ("501", "assignee_changed", "webhook:proj".to_owned()),
            ("502", "task_added", "webhook:proj".to_owned())
        ]
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_events_are_recorded_once(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;
    let body = assignment_delivery("501", "601");

    for _ in 0..3 {
        assert_eq!(
            app.bridge.deliver("proj", &secret, &body).await.status(),
            200
        );
    }

    assert_eq!(
        env.store().await.list_jobs(None, 10).await.unwrap().len(),
        1
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_answer_json(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let missing = app
        .bridge
        .client
        .get(app.bridge.url("/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(error_of(missing).await.contains("no such endpoint"));
    let wrong_method = app
        .bridge
        .client
        .get(app.bridge.url("/webhooks/asana/proj"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert!(!error_of(wrong_method).await.is_empty());
    let bad_name = app.bridge.handshake("bad%20name", "abc").await;
    assert_eq!(bad_name.status(), 400);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_carry_a_request_id(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let response = app
        .bridge
        .client
        .get(app.bridge.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("x-request-id").is_some());
    let given = app
        .bridge
        .client
        .get(app.bridge.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "abc-123");
}
