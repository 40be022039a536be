//! `/healthz` and `/readyz`.

use serde_json::Value;

use crate::helpers::TestApp;

store_test! {
    async fn healthz_answers_ok(env) {
        let app = TestApp::spawn(&env).await;
        let response = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            serde_json::json!({"status": "ok"})
        );
    }
}

store_test! {
    async fn readyz_reports_the_store_and_the_worker(env) {
        let app = TestApp::spawn(&env).await;
        let response = crate::helpers::eventually("readiness", crate::helpers::WAIT, || async {
            let response = app.client.get(app.url("/readyz")).send().await.unwrap();
            (response.status() == 200).then_some(response)
        })
        .await;
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["checks"]["store"], "ok");
        assert_eq!(body["checks"]["worker"], "ok");
    }
}
