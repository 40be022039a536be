//! `/healthz` and `/readyz`.

use asana_docspace_bridge::store::NewProjectRoom;
use rstest::rstest;
use serde_json::Value;

use crate::helpers::{Backend, Env, TestApp, WAIT, eventually};

/// `/readyz`'s body once the app is ready (200: `ready` or `degraded`).
pub async fn ready_body(app: &TestApp) -> Value {
    eventually("readiness", WAIT, || async {
        let (status, body) = app.bridge.readyz().await;
        (status == 200).then_some(body)
    })
    .await
}

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
    let body = ready_body(&app).await;
    assert_eq!(body["checks"]["store"], "ok");
    assert_eq!(body["checks"]["worker"], "ok");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_gone_rooms_in_linked_mode_only(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let project = crate::helpers::gid(crate::helpers::PROJECT);
    store
        .link_project_room(
            NewProjectRoom {
                project_gid: project.clone(),
                room_id: 45,
                room_title: "Website".into(),
                room_type: 2,
                access: 10,
            },
            Some("Website"),
        )
        .await
        .unwrap();
    store.mark_room_gone(&project, 45, "deleted").await.unwrap();

    // In auto mode the next job replaces the room: nothing to report.
    env.set("BRIDGE__ROOMS__MODE", "auto");
    let auto = TestApp::spawn(&env).await;
    let body = ready_body(&auto).await;
    assert_eq!(body["status"], "ready", "{body}");
    auto.stop().await.unwrap();

    env.set("BRIDGE__ROOMS__MODE", "linked");
    let linked = TestApp::spawn(&env).await;
    let body = ready_body(&linked).await;
    assert_eq!(body["status"], "degraded", "{body}");
    let reasons = body["degraded"]["rooms"].as_object().expect("rooms");
    assert_eq!(reasons.len(), 1, "{body}");
    assert!(
        reasons[crate::helpers::PROJECT]
            .as_str()
            .is_some_and(|r| r.starts_with("room 45 linked to project")),
        "{body}"
    );
    assert!(body["degraded"].get("webhooks").is_none(), "{body}");
}
