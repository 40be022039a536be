//! Input meant to break the service: each gets the right status, nothing panics, memory stays
//! bounded, and `/healthz` answers afterwards.

use std::time::{Duration, Instant};

use asana_docspace_fakes::sign;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, BridgeProcess, Env, WAIT, eventually};

const VALID_EVENT: &str = r#"{"user":{"gid":"1","resource_type":"user"},"created_at":"2026-03-17T10:12:00.000Z","action":"changed","resource":{"gid":"2222","resource_type":"task","resource_subtype":"default_task"},"parent":null,"change":{"field":"assignee","action":"changed","new_value":{"gid":"3333","resource_type":"user"}}}"#;

async fn bridge_with(settings: &[(&str, &str)]) -> (Env, BridgeProcess, String) {
    let mut env = Env::on(Backend::Sqlite).await.expect("SQLite");
    for (key, value) in settings {
        env.set(key, value);
    }
    let process = BridgeProcess::start(&env).await;
    let secret = process.bridge.register("proj").await;
    (env, process, secret)
}

pub(crate) fn peak_rss_mib(process: &BridgeProcess) -> u64 {
    let status = std::fs::read_to_string(format!(
        "/proc/{}/status",
        process.child.id().expect("running")
    ))
    .unwrap();
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024
}

async fn assert_healthy(process: &BridgeProcess) {
    let response = process
        .bridge
        .client
        .get(process.bridge.url("/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .expect("healthz answers");
    assert_eq!(response.status(), 200);
}

/// Signs `body` correctly and sends it.
async fn signed(process: &BridgeProcess, secret: &str, body: Vec<u8>) -> (u16, Value) {
    let signature = sign(secret, &body);
    let response = process
        .bridge
        .deliver_raw("proj", Some(&signature), body)
        .await;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A change that breaks one field of a valid event.
type Mutation = Box<dyn Fn(&mut Value)>;

fn with_event(mutate: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut event: Value = serde_json::from_str(VALID_EVENT).unwrap();
    mutate(&mut event);
    json!({ "events": [event] }).to_string().into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_hostile_bodies_get_400_and_leave_the_service_up() {
    let (env, process, secret) = bridge_with(&[]).await;
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "truncated",
            br#"{"events":[{"action":"changed","resource":{"gid":"1""#.to_vec(),
        ),
        ("empty", Vec::new()),
        (
            "deeply nested",
            format!(
                r#"{{"events":[{}{}]}}"#,
                "[".repeat(200_000),
                "]".repeat(200_000)
            )
            .into_bytes(),
        ),
        (
            "deeply nested objects",
            format!(
                r#"{{"events":{}1{}}}"#,
                r#"{"a":"#.repeat(50_000),
                "}".repeat(50_000)
            )
            .into_bytes(),
        ),
        ("raw NUL byte", b"{\"events\":[\0]}".to_vec()),
        (
            "invalid UTF-8",
            b"{\"events\":[{\"action\":\"\xff\xfe\"}]}".to_vec(),
        ),
        ("events not an array", br#"{"events":{"0":1}}"#.to_vec()),
        ("events a string", br#"{"events":"[]"}"#.to_vec()),
        ("an event not an object", br#"{"events":[1]}"#.to_vec()),
        ("top level an array", br#"[{"events":[]}]"#.to_vec()),
    ];
    let mutations: Vec<(&str, Mutation)> = vec![
        ("action a number", Box::new(|e| e["action"] = json!(1))),
        (
            "resource a string",
            Box::new(|e| e["resource"] = json!("task")),
        ),
        (
            "resource.gid a number",
            Box::new(|e| e["resource"]["gid"] = json!(2222)),
        ),
        (
            "resource.resource_type a bool",
            Box::new(|e| e["resource"]["resource_type"] = json!(true)),
        ),
        (
            "change a string",
            Box::new(|e| e["change"] = json!("assignee")),
        ),
        (
            "change.field a number",
            Box::new(|e| e["change"]["field"] = json!(7)),
        ),
        (
            "change.new_value a string",
            Box::new(|e| e["change"]["new_value"] = json!("3333")),
        ),
        (
            "change.new_value.gid a number",
            Box::new(|e| e["change"]["new_value"]["gid"] = json!(3333)),
        ),
        (
            "created_at a number",
            Box::new(|e| e["created_at"] = json!(1_700_000_000)),
        ),
        (
            "a NUL in the task gid",
            Box::new(|e| e["resource"]["gid"] = json!("22\u{0}22")),
        ),
        (
            "full-width digits in the task gid",
            Box::new(|e| e["resource"]["gid"] = json!("２２２２")),
        ),
        (
            "a path in the task gid",
            Box::new(|e| e["resource"]["gid"] = json!("../../users/me")),
        ),
    ];
    for (name, mutate) in &mutations {
        cases.push((name, with_event(|e| mutate(e))));
    }
    for (name, body) in cases {
        let (status, answer) = signed(&process, &secret, body).await;
        assert_eq!(status, 400, "{name}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{name}: a JSON error: {answer}"
        );
    }

    // Unicode where it does no harm is fine: acknowledged, ignored or queued as usual.
    let (status, answer) = signed(
        &process,
        &secret,
        with_event(|e| e["action"] = json!("changé 🎉\u{0}")),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["ignored"], 1);
    let (status, _) = signed(
        &process,
        &secret,
        with_event(|e| e["user"] = json!({"name": "Zoë \u{0} 名前"})),
    )
    .await;
    assert_eq!(status, 200);

    assert_healthy(&process).await;
    assert!(
        peak_rss_mib(&process) < 100,
        "peak RSS {} MiB",
        peak_rss_mib(&process)
    );
    drop(env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_in_one_delivery_are_queued_in_one_go() {
    let (env, process, secret) =
        bridge_with(&[("BRIDGE__ASANA__BASE_URL", "http://127.0.0.1:9")]).await;
    let events: Vec<Value> = (0..10_000)
        .map(|i| json!({"action": "added", "resource": {"gid": format!("{}", 1_000_000 + i), "resource_type": "task"}}))
        .collect();
    let body = json!({ "events": events }).to_string().into_bytes();
    assert!(
        body.len() < 1_048_576,
        "{} bytes fit the default limit",
        body.len()
    );

    let started = Instant::now();
    let (status, answer) = signed(&process, &secret, body).await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["queued"], 10_000);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let counts = env.store().await.queue_counts().await.unwrap();
    assert_eq!(
        counts.pending + counts.running + counts.done + counts.failed,
        10_000
    );

    // Twice as many events do not fit: refused whole, nothing half-queued.
    let events: Vec<Value> = (0..20_000)
        .map(|i| json!({"action": "added", "resource": {"gid": format!("{}", 5_000_000 + i), "resource_type": "task"}}))
        .collect();
    let (status, answer) = signed(
        &process,
        &secret,
        json!({ "events": events }).to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 413, "{answer}");
    let counts = env.store().await.queue_counts().await.unwrap();
    assert_eq!(
        counts.pending + counts.running + counts.done + counts.failed,
        10_000
    );
    assert_healthy(&process).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_of_the_wrong_length_case_or_form() {
    let (_env, process, secret) = bridge_with(&[]).await;
    let body = br#"{"events":[]}"#;
    let good = sign(&secret, body);
    let mixed: String = good
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    for (signature, expected) in [
        (good.clone(), 200),
        (good.to_uppercase(), 200),
        (mixed, 200),
        (format!(" {good} "), 200),
        (good[..63].to_string(), 401),
        (good[..62].to_string(), 401),
        (format!("{good}00"), 401),
        (format!("sha256={good}"), 401),
        ("".to_string(), 401),
        ("ä".repeat(32), 401),
        ("0".repeat(100_000), 401),
    ] {
        let response = process
            .bridge
            .deliver_raw("proj", Some(&signature), &body[..])
            .await;
        let status = response.status().as_u16();
        // Header values over hyper's limit are refused before the handler: 431.
        let ok = status == expected || (signature.len() > 8_000 && status == 431);
        assert!(ok, "{signature:.40}: {status}");
    }
    assert_healthy(&process).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_headers_are_refused() {
    let (_env, process, secret) = bridge_with(&[]).await;
    let body = br#"{"events":[]}"#;
    let good = sign(&secret, body);
    let response = process
        .bridge
        .client
        .post(process.bridge.url("/webhooks/asana/proj"))
        .header("X-Hook-Signature", &good)
        .header("X-Hook-Signature", &good)
        .body(&body[..])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("only once"));
    let response = process
        .bridge
        .client
        .post(process.bridge.url("/webhooks/asana/other"))
        .header("X-Hook-Secret", "a")
        .header("X-Hook-Secret", "b")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_slower_than_the_read_timeout_gets_408() {
    let (_env, process, secret) =
        bridge_with(&[("BRIDGE__SERVER__REQUEST_TIMEOUT_MS", "1000")]).await;
    let host = process
        .bridge
        .address
        .trim_start_matches("http://")
        .to_string();
    let mut stream = TcpStream::connect(&host).await.unwrap();
    let head = format!(
        "POST /webhooks/asana/proj HTTP/1.1\r\nHost: x\r\nX-Hook-Signature: {}\r\nContent-Length: 100\r\n\r\n{{\"events\"",
        sign(&secret, b"irrelevant")
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Headers that never finish: the connection is closed after the header deadline (an EOF or
    // a reset; either ends the read), well before the test's own deadline.
    let mut stream = TcpStream::connect(&host).await.unwrap();
    stream
        .write_all(b"POST /webhooks/asana/proj HTTP/1.1\r\nHost: x\r\nX-Hook-Sig")
        .await
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest))
        .await
        .expect("closed by the server");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after {:?}",
        started.elapsed()
    );
    assert_healthy(&process).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_that_never_send_a_body_do_not_starve_others() {
    let (_env, process, secret) =
        bridge_with(&[("BRIDGE__SERVER__REQUEST_TIMEOUT_MS", "2000")]).await;
    let host = process
        .bridge
        .address
        .trim_start_matches("http://")
        .to_string();
    let head = format!(
        "POST /webhooks/asana/proj HTTP/1.1\r\nHost: x\r\nX-Hook-Signature: {}\r\nContent-Length: 1000\r\n\r\n",
        sign(&secret, b"x")
    );
    let mut stalled = Vec::new();
    for i in 0..400 {
        let mut stream = TcpStream::connect(&host).await.unwrap();
        if i % 2 == 0 {
            // Headers, then nothing.
            stream.write_all(head.as_bytes()).await.unwrap();
        } // else: not even headers.
        stalled.push(stream);
    }

    // Everyone else is still served, promptly.
    let started = Instant::now();
    assert_healthy(&process).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let heartbeat = br#"{"events":[]}"#;
    let response = process
        .bridge
        .deliver_raw("proj", Some(&sign(&secret, heartbeat)), &heartbeat[..])
        .await;
    assert_eq!(response.status(), 200);

    // And the stalled connections are closed by the server's deadlines.
    for mut stream in stalled {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the server closed the connection");
    }
    eventually("the connections to be gone", WAIT, || async {
        let fds = std::fs::read_dir(format!("/proc/{}/fd", process.child.id().unwrap()))
            .unwrap()
            .count();
        (fds < 100).then_some(())
    })
    .await;
    assert!(
        peak_rss_mib(&process) < 100,
        "peak RSS {} MiB",
        peak_rss_mib(&process)
    );
    assert_healthy(&process).await;
}
