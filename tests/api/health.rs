//! `/healthz` and `/readyz`.

use rstest::rstest;
use serde_json::Value;

use crate::helpers::{Backend, Env, TestApp};

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_ok(#[case] backend: Backend) {
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
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        serde_json::json!({"status": "ok"})
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_the_store_and_the_worker(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let response = crate::helpers::eventually("readiness", crate::helpers::WAIT, || async {
        let response = app
            .bridge
            .client
            .get(app.bridge.url("/readyz"))
            .send()
            .await
            .unwrap();
        (response.status() == 200).then_some(response)
    })
    .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["store"], "ok");
    assert_eq!(body["checks"]["worker"], "ok");
}
