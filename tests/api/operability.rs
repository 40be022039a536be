//! What an operator watches: `/metrics` and the logs. Each test runs the bridge as a process of its
//! own, so the metrics it reads are that process's alone.

use asana_docspace_fakes::{Fault, assignment_delivery, sign};
use rstest::rstest;
use serde_json::{Value, json};

use crate::helpers::{
    ASANA_TOKEN, Backend, BridgeProcess, DOCSPACE_KEY, Env, WAIT, eventually, parse_metrics,
    sample, settled_jobs,
};

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_deliveries_events_jobs_and_upstream_calls(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__SERVER__MAX_BODY_BYTES", "2048");
    env.assign("501", "601", "jane@example.com");
    env.assign("502", "602", "member@example.com");
    env.docspace.add_member("member@example.com");
    env.docspace.push_fault("invite", Fault::status(503));
    let process = BridgeProcess::start(&env).await;
    let secret = process.bridge.register("proj").await;
    assert_eq!(
        process
            .bridge
            .handshake("proj", "another-secret")
            .await
            .status(),
        409
    );
    let heartbeat = r#"{"events":[]}"#;
    assert_eq!(
        process
            .bridge
            .deliver_raw("proj", Some("00"), heartbeat)
            .await
            .status(),
        401
    );
    assert_eq!(
        process
            .bridge
            .deliver_raw("proj", Some(&sign(&secret, b"{")), "{")
            .await
            .status(),
        400
    );
    let big = format!(r#"{{"events":[],"pad":"{}"}}"#, "x".repeat(4096));
    assert_eq!(
        process
            .bridge
            .deliver_raw("proj", Some(&sign(&secret, big.as_bytes())), big)
            .await
            .status(),
        413
    );
    assert_eq!(
        process
            .bridge
            .deliver_raw(
                "proj",
                Some(&sign(&secret, heartbeat.as_bytes())),
                heartbeat
            )
            .await
            .status(),
        200
    );
    process
        .bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;
    process
        .bridge
        .deliver_assignment("proj", &secret, "502", "602")
        .await;
    settled_jobs(&env.store().await).await;
    // A delivery the store cannot take is answered 503 (Asana sends it again): its events are
    // not counted.
    env.execute_sql("ALTER TABLE jobs RENAME TO jobs_away")
        .await;
    let refused = process
        .bridge
        .deliver("proj", &secret, &assignment_delivery("503", "603"))
        .await;
    assert_eq!(refused.status(), 503);
    env.execute_sql("ALTER TABLE jobs_away RENAME TO jobs")
        .await;

    let response = process
        .bridge
        .client
        .get(process.bridge.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    let m = parse_metrics(&text);
    let deliveries = "bridge_deliveries_total";
    assert_eq!(
        sample(&m, deliveries, &[("result", "handshake_accepted")]),
        1.0
    );
    assert_eq!(
        sample(&m, deliveries, &[("result", "handshake_refused")]),
        1.0
    );
    assert_eq!(sample(&m, deliveries, &[("result", "bad_signature")]), 1.0);
    assert_eq!(sample(&m, deliveries, &[("result", "malformed")]), 1.0);
    assert_eq!(sample(&m, deliveries, &[("result", "too_large")]), 1.0);
    assert_eq!(sample(&m, deliveries, &[("result", "accepted")]), 3.0);
    assert_eq!(
        sample(&m, deliveries, &[("result", "store_unavailable")]),
        1.0
    );
    assert_eq!(
        sample(&m, "bridge_events_total", &[("kind", "assignee_changed")]),
        2.0
    );
    assert_eq!(
        sample(&m, "bridge_jobs_total", &[("outcome", "invited")]),
        1.0
    );
    assert_eq!(
        sample(&m, "bridge_jobs_total", &[("outcome", "already_member")]),
        1.0
    );
    assert_eq!(
        sample(&m, "bridge_job_attempts_total", &[("result", "retry")]),
        1.0
    );
    assert_eq!(
        sample(&m, "bridge_job_attempts_total", &[("result", "done")]),
        2.0
    );
    assert_eq!(sample(&m, "bridge_queue_depth", &[("status", "done")]), 2.0);
    assert_eq!(
        sample(&m, "bridge_queue_depth", &[("status", "pending")]),
        0.0
    );
    assert_eq!(
        sample(&m, "bridge_oldest_pending_job_age_seconds", &[]),
        0.0
    );
    assert_eq!(
        sample(
            &m,
            "bridge_upstream_requests_total",
            &[("service", "asana"), ("status", "200")]
        ),
        3.0
    );
    assert_eq!(
        sample(
            &m,
            "bridge_upstream_requests_total",
            &[("service", "docspace"), ("status", "503")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            "bridge_upstream_request_duration_seconds_count",
            &[("service", "docspace"), ("operation", "invite")]
        ),
        2.0
    );
    assert!(
        text.contains("bridge_upstream_request_duration_seconds_bucket{"),
        "a histogram, not a summary"
    );
    let last = sample(
        &m,
        "bridge_webhook_last_delivery_timestamp_seconds",
        &[("webhook", "proj")],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - last).abs() < 60.0, "{last} vs {now}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_have_a_port_of_their_own(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    env.set("BRIDGE__SERVER__METRICS_PORT", &port.to_string());
    let process = BridgeProcess::start(&env).await;

    let main = process
        .bridge
        .client
        .get(process.bridge.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), 404);
    let separate = process
        .bridge
        .client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(separate.status(), 200);
    assert!(
        separate
            .text()
            .await
            .unwrap()
            .contains("bridge_queue_depth")
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_mask_emails_keep_secrets_out_and_carry_request_and_job_ids(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    env.assign("501", "601", "jane.doe@example.com");
    env.assign("502", "602", "john.roe@example.com");
    env.docspace.push_fault(
        "invite",
        Fault::json(
            400,
            json!({"error": {"message": "User disabled: john.roe@example.com"}}),
        ),
    );
    let process = BridgeProcess::start(&env).await;
    let secret = process.bridge.register("proj").await;
    let body = assignment_delivery("501", "601").to_string();
    let response = process
        .bridge
        .client
        .post(process.bridge.url("/webhooks/asana/proj"))
        .header("x-request-id", "req-abc-123")
        .header("X-Hook-Signature", sign(&secret, body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-abc-123");
    process
        .bridge
        .deliver_assignment("proj", &secret, "502", "602")
        .await;
    settled_jobs(&env.store().await).await;
    let logs = eventually("the job logs", WAIT, || async {
        let logs = process.logs.lock().unwrap().join("\n");
        (logs.contains("job done") && logs.contains("job failed")).then_some(logs)
    })
    .await;

    for secret_text in [
        "jane.doe@example.com",
        "john.roe@example.com",
        ASANA_TOKEN,
        DOCSPACE_KEY,
        secret.as_str(),
    ] {
        assert!(
            !logs.contains(secret_text),
            "{secret_text} appears in the logs:\n{logs}"
        );
    }
    assert!(logs.contains("j***@example.com"), "{logs}");
    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let accepted = lines
        .iter()
        .find(|l| l["message"] == "delivery accepted" && l.to_string().contains("req-abc-123"))
        .expect("the delivery's log line carries the request id");
    assert_eq!(accepted["level"], "INFO");
    let done = lines
        .iter()
        .find(|l| l["message"] == "job done")
        .expect("a job line");
    let spans = done["spans"].to_string();
    assert!(
        spans.contains("\"job_id\"") && spans.contains("\"task_gid\""),
        "{done}"
    );
}
