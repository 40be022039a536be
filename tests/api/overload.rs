//! Too much at once is answered `503` with a JSON reason at once, never left hanging: requests
//! beyond `server.max_concurrent_requests`, connections beyond `server.max_connections`.

use std::time::Duration;

use rstest::rstest;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::helpers::{Backend, Env, TestApp, WAIT, eventually, raw_request};

/// Opens a connection that sends a delivery's headers and never its body, so the request holds
/// its slot until the connection closes.
async fn stalled_delivery(address: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(address.trim_start_matches("http://"))
        .await
        .expect("connect");
    stream
        .write_all(
            b"POST /webhooks/asana/proj HTTP/1.1\r\nHost: bridge\r\nX-Hook-Signature: 00\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        )
        .await
        .expect("write headers");
    stream
}

/// Whether the server has answered (or closed) `stream`, without waiting.
fn was_answered(stream: &tokio::net::TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.try_read(&mut byte) {
        Err(err) => err.kind() != std::io::ErrorKind::WouldBlock,
        Ok(_) => true,
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_concurrency_limit_are_answered_503_at_once(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__SERVER__MAX_CONCURRENT_REQUESTS", "1");
    let app = TestApp::spawn(&env).await;
    let stalled = tokio::sync::Mutex::new(stalled_delivery(&app.bridge.address).await);
    let refused = eventually("a request to be shed", WAIT, || async {
        // A probe that took the slot before the stalled delivery was dispatched sheds the delivery
        // instead (it is answered 503 at once): then stall another one.
        let mut held = stalled.lock().await;
        if was_answered(&held) {
            *held = stalled_delivery(&app.bridge.address).await;
        }
        let response = app
            .bridge
            .client
            .get(app.bridge.url("/metrics"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .expect("an answer, not a hang");
        (response.status() == 503).then_some(response)
    })
    .await;
    let body: Value = refused.json().await.expect("a JSON body");
    assert_eq!(body["error"], "too many requests at once; retry later");
    let (status, _) = app.bridge.readyz().await;
    assert_eq!(status, 200, "health probes are not limited");

    drop(stalled);
    eventually("the slot to be free again", WAIT, || async {
        let status = app
            .bridge
            .client
            .get(app.bridge.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .status();
        (status == 200).then_some(())
    })
    .await;
    app.stop().await.unwrap();
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_answered_503_and_closed(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__SERVER__MAX_CONNECTIONS", "1");
    let app = TestApp::spawn(&env).await;
    let idle = tokio::net::TcpStream::connect(app.bridge.address.trim_start_matches("http://"))
        .await
        .expect("connect");
    let answer = raw_request(
        &app.bridge.address,
        b"GET /metrics HTTP/1.1\r\nHost: bridge\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains(r#"{"error":"too many open connections; retry later"}"#),
        "{answer}"
    );

    drop(idle);
    eventually("the connection slot to be free again", WAIT, || async {
        let status = app
            .bridge
            .client
            .get(app.bridge.url("/healthz"))
            .send()
            .await
            .ok()?
            .status();
        (status == 200).then_some(())
    })
    .await;
    app.stop().await.unwrap();
}
