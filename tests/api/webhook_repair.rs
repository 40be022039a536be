//! Webhooks that come back by themselves: a webhook Asana deleted or deactivated is registered
//! again by the service (a fresh name through the normal handshake), the old name's deliveries are
//! refused, the project's catch-up is asked for, and a failed attempt is retried and reported as
//! `degraded` until it works. The watcher checks every second here.

use std::collections::BTreeMap;

use asana_docspace_fakes::{FakeUser, FakeWebhook, Fault, RecordedRequest, assignment_delivery};
use rstest::rstest;
use serde_json::{Value, json};

use crate::helpers::{Backend, Bridge, BridgeProcess, Env, PROJECT, TestApp, WAIT, eventually};

/// A port free right now, for a service that must know its own URL before it binds.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Settings of a service that registers webhooks itself: `registration` handshakes, the watcher
/// every second, and a public URL that is its own address (set before it binds).
fn repairing(env: &mut Env) {
    env.set("BRIDGE__WEBHOOKS__HANDSHAKE", "registration");
    env.set("BRIDGE__WEBHOOKS__WATCH_INTERVAL_SECS", "1");
    own_url(env);
}

/// Makes the next service started with `env` listen at a free port given as its public URL.
fn own_url(env: &mut Env) {
    let port = free_port();
    env.set("BRIDGE__SERVER__PORT", &port.to_string());
    env.set(
        "BRIDGE__SERVER__PUBLIC_URL",
        &format!("http://127.0.0.1:{port}"),
    );
}

/// `webhooks create --project PROJECT --name old` against the running service, once Asana's
/// first heartbeat was answered: the webhook as Asana holds it (its secret included).
async fn create_old(env: &Env) -> FakeWebhook {
    let out = env
        .run(&["webhooks", "create", "--project", PROJECT, "--name", "old"])
        .await;
    out.expect_code(0);
    let gid = out
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("webhook gid:"))
        .expect("the gid is printed")
        .trim()
        .to_string();
    eventually("the first heartbeat", WAIT, || async {
        env.asana
            .webhook(&gid)
            .filter(|hook| hook.last_success_at.is_some())
    })
    .await
}

/// The webhook Asana holds for the project in place of `old`, once the service confirmed it
/// and forgot the old one.
async fn replacement(env: &Env, old: &FakeWebhook) -> FakeWebhook {
    let store = env.store().await;
    eventually("the old webhook to be replaced", WAIT, || async {
        let new = env
            .asana
            .webhooks()
            .into_iter()
            .find(|hook| hook.resource == PROJECT && hook.gid != old.gid)?;
        let forgotten = store.find_webhook("old").await.unwrap().is_none();
        forgotten.then_some(new)
    })
    .await
}

/// Waits until deliveries signed with `old`'s secret to its name get 401 (secrets are cached a
/// few seconds).
async fn old_name_refused(bridge: &Bridge, old: &FakeWebhook) {
    let heartbeat = json!({"events": []});
    eventually("the old name's deliveries to be refused", WAIT, || async {
        let status = bridge
            .deliver("old", &old.secret, &heartbeat)
            .await
            .status();
        (status == 401).then_some(())
    })
    .await;
}

/// The `webhooks list` row of `name`.
async fn listed(env: &Env, name: &str) -> String {
    let out = env.run(&["webhooks", "list"]).await;
    out.expect_code(0);
    out.stdout
        .lines()
        .find(|line| line.trim_start().starts_with(name))
        .unwrap_or_else(|| panic!("no row for {name}: {}", out.stdout))
        .to_string()
}

fn new_name(hook: &FakeWebhook) -> String {
    hook.target
        .rsplit('/')
        .next()
        .and_then(|last| last.split('?').next())
        .expect("a name in the target")
        .to_string()
}

async fn readyz_webhook(bridge: &Bridge, name: &str) -> Option<String> {
    let (_, body) = bridge.readyz().await;
    body["degraded"]["webhooks"][name]
        .as_str()
        .map(str::to_string)
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_asana_deleted_is_registered_again_under_a_fresh_name(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    repairing(&mut env);
    let process = BridgeProcess::start(&env).await;
    let old = create_old(&env).await;

    env.asana.forget_webhook(&old.gid);

    let new = replacement(&env, &old).await;
    let fresh = new_name(&new);
    assert!(fresh.starts_with("wh-") && fresh != "old", "{fresh}");
    assert!(
        new.target
            .starts_with(&format!("{}/webhooks/asana/wh-", process.bridge.address)),
        "{}",
        new.target
    );
    assert_eq!(
        new.filters,
        json!([{"resource_type":"task","action":"changed","fields":["assignee"]},{"resource_type":"task","action":"added"},{"resource_type":"task","action":"changed","fields":["completed"]},{"resource_type":"task","action":"removed"},{"resource_type":"task","action":"deleted"}])
    );
    old_name_refused(&process.bridge, &old).await;
    let row = listed(&env, &fresh).await;
    assert!(
        row.contains(&new.gid) && row.contains("replaces old"),
        "{row}"
    );
    let recreated = process.bridge.metrics().await;
    assert_eq!(
        recreated.get(&(
            "bridge_webhooks_recreated_total".to_string(),
            BTreeMap::new()
        )),
        Some(&1.0)
    );
    assert!(
        process
            .logs
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains("webhook old of project") && line.contains(&fresh)),
        "a warning names the old and the new webhook"
    );
    // The new webhook's deliveries are verified and acted on.
    env.assign("501", "601", "jane@example.com");
    let answer = env
        .asana
        .deliver(&new.gid, &assignment_delivery("501", "601"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(env.docspace.wait_for_sent(1, WAIT).await);
    eventually("readyz to be ready again", WAIT, || async {
        let (_, body) = process.bridge.readyz().await;
        (body["status"] == "ready").then_some(())
    })
    .await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_asks_the_projects_catch_up_from_the_last_verified_delivery(
    #[case] backend: Backend,
) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    repairing(&mut env);
    let app = TestApp::spawn(&env).await;
    let old = create_old(&env).await;
    let store = env.store().await;
    let old_registered = store
        .find_webhook("old")
        .await
        .unwrap()
        .and_then(|hook| hook.registered_at)
        .expect("registered");
    // The first heartbeat came after the registration and before now; its time is in memory, or
    // written already.
    let before = asana_docspace_bridge::store::now_ms();

    env.asana.forget_webhook(&old.gid);
    replacement(&env, &old).await;

    // The catch-up pass runs at once (passes are off here otherwise) and reads from the old
    // webhook's last verified delivery, less the pass's 5-minute margin.
    let modified_since = eventually("the catch-up pass", WAIT, || async {
        env.asana.requests_to("/tasks").into_iter().find_map(|r| {
            url::form_urlencoded::parse(r.query.as_deref()?.as_bytes())
                .find(|(k, _)| k == "modified_since")
                .map(|(_, v)| v.into_owned())
        })
    })
    .await;
    let since = humantime::parse_rfc3339(&modified_since)
        .expect("an RFC 3339 time")
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 300_000;
    assert!(
        since >= old_registered && since <= before,
        "the catch-up starts at the old webhook's heartbeat: {since}, registered {old_registered}, \
         checked {before}"
    );
    assert!(store.webhook_repairs().await.unwrap().is_empty());
    app.stop().await.unwrap();
}

/// Needs the reconciler (issue 12's reconcile passes): the catch-up pass finds the assignment made
/// while no webhook delivered, even with periodic passes off.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gaps_assignment_is_invited_by_the_catch_up(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    repairing(&mut env);
    env.set("BRIDGE__RECONCILE__INTERVAL_SECS", "0");
    let _app = TestApp::spawn(&env).await;
    let old = create_old(&env).await;

    env.asana.forget_webhook(&old.gid);
    env.asana.assign(
        "501",
        PROJECT,
        Some(FakeUser::new("601", "jane@example.com")),
    );
    replacement(&env, &old).await;

    assert!(env.docspace.wait_for_sent(1, WAIT).await, "jane is invited");
    assert_eq!(env.docspace.sent_invitations()[0].email, "jane@example.com");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inactive_webhook_is_deleted_at_asana_and_replaced(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    repairing(&mut env);
    let app = TestApp::spawn(&env).await;
    let old = create_old(&env).await;

    env.asana.deactivate_webhook(&old.gid, "HTTP 502");

    let new = replacement(&env, &old).await;
    assert!(new.active);
    assert!(
        env.asana.webhook(&old.gid).is_none(),
        "the inactive webhook is deleted at Asana"
    );
    old_name_refused(&app.bridge, &old).await;
    assert_eq!(env.asana.webhooks().len(), 1);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auto_recreate_a_deleted_webhook_is_only_reported(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    repairing(&mut env);
    env.set("BRIDGE__WEBHOOKS__AUTO_RECREATE", "false");
    let app = TestApp::spawn(&env).await;
    let old = create_old(&env).await;

    env.asana.forget_webhook(&old.gid);

    let reason = eventually("readyz to report the deleted webhook", WAIT, || async {
        readyz_webhook(&app.bridge, "old")
            .await
            .filter(|r| r.contains("deleted"))
    })
    .await;
    assert!(reason.contains("webhooks create"), "{reason}");
    // Two more checks at Asana after the finding: nothing was asked or created.
    let checks = |requests: &[RecordedRequest]| {
        requests
            .iter()
            .filter(|r| r.method == "GET" && r.path.ends_with(&old.gid))
            .count()
    };
    let seen = checks(&env.asana.requests());
    assert!(
        env.asana
            .wait_for_requests(WAIT, |requests| checks(requests) >= seen + 2)
            .await
    );
    assert_eq!(env.asana.calls_by_route().get("create_webhook"), Some(&1));
    assert!(
        env.store()
            .await
            .webhook_repairs()
            .await
            .unwrap()
            .is_empty()
    );
    assert!(env.asana.webhooks().is_empty());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_registrations_are_retried_and_reported_until_one_works(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    repairing(&mut env);
    let app = TestApp::spawn(&env).await;
    let old = create_old(&env).await;
    for _ in 0..3 {
        env.asana.push_fault("create_webhook", Fault::status(500));
    }

    env.asana.forget_webhook(&old.gid);

    for attempt in 1..=3 {
        let reason = eventually(&format!("attempt {attempt} to fail"), WAIT, || async {
            readyz_webhook(&app.bridge, "old")
                .await
                .filter(|r| r.contains(&format!("attempt {attempt} failed")))
        })
        .await;
        assert!(
            reason.starts_with(&format!(
                "deleted at Asana (404); registering a new webhook for project {PROJECT}: attempt {attempt} failed ("
            )) && reason.contains("500")
                && reason.contains(", next at "),
            "{reason}"
        );
        let (status, body) = app.bridge.readyz().await;
        assert_eq!((status, &body["status"]), (200, &Value::from("degraded")));
        if attempt == 3 {
            let row = listed(&env, "old").await;
            assert!(row.contains("re-registering (attempt 3 failed: "), "{row}");
        }
        // The next attempt is due in a minute or more: make it due now.
        env.execute_sql("UPDATE webhook_repairs SET next_attempt_at = 0")
            .await;
    }

    let new = replacement(&env, &old).await;
    eventually("readyz to be ready again", WAIT, || async {
        let (_, body) = app.bridge.readyz().await;
        (body["status"] == "ready").then_some(())
    })
    .await;
    assert_eq!(env.asana.calls_by_route().get("create_webhook"), Some(&5));
    assert_eq!(
        env.asana.webhooks(),
        vec![env.asana.webhook(&new.gid).unwrap()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_finding_one_deletion_register_one_webhook() {
    let Some(mut env) = Env::on(Backend::Postgres).await else {
        return;
    };
    repairing(&mut env);
    let first = TestApp::spawn(&env).await;
    own_url(&mut env);
    let second = TestApp::spawn(&env).await;
    let old = create_old(&env).await;

    env.asana.forget_webhook(&old.gid);
    let new = replacement(&env, &old).await;

    // Both watchers check the new webhook twice more: neither registers another.
    let checked_twice = |requests: &[RecordedRequest]| {
        requests
            .iter()
            .filter(|r| r.method == "GET" && r.path.ends_with(&new.gid))
            .count()
            >= 4
    };
    assert!(env.asana.wait_for_requests(WAIT, checked_twice).await);
    assert_eq!(
        env.asana.webhooks(),
        vec![env.asana.webhook(&new.gid).unwrap()]
    );
    assert_eq!(env.asana.calls_by_route().get("create_webhook"), Some(&2));
    let store = env.store().await;
    assert_eq!(store.webhooks().await.unwrap().len(), 1);
    assert!(store.find_webhook(&new_name(&new)).await.unwrap().is_some());
    old_name_refused(&first.bridge, &old).await;
    old_name_refused(&second.bridge, &old).await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_webhook_under_repair_cancels_its_repair(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    repairing(&mut env);
    let app = TestApp::spawn(&env).await;
    let old = create_old(&env).await;
    env.asana.push_fault("create_webhook", Fault::status(500));
    env.asana.forget_webhook(&old.gid);
    eventually("the first attempt to fail", WAIT, || async {
        readyz_webhook(&app.bridge, "old")
            .await
            .filter(|r| r.contains("attempt 1 failed"))
    })
    .await;

    env.run(&["webhooks", "delete", "old"]).await.expect_code(0);

    // The repair went with the webhook: nothing is left to register again.
    let store = env.store().await;
    assert!(store.webhook_repairs().await.unwrap().is_empty());
    let (_, body) = app.bridge.readyz().await;
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(env.asana.calls_by_route().get("create_webhook"), Some(&2));
    assert!(env.asana.webhooks().is_empty());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_webhook_asana_deleted_is_registered_again_with_its_filter(
    #[case] backend: Backend,
) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    repairing(&mut env);
    let process = BridgeProcess::start(&env).await;
    let workspace = env.asana.workspace_gid();
    env.run(&["webhooks", "watch-workspace", "--name", "old"])
        .await
        .expect_code(0);
    let old = env
        .asana
        .webhooks()
        .into_iter()
        .find(|hook| hook.resource == workspace)
        .expect("Asana has the workspace webhook");

    env.asana.forget_webhook(&old.gid);

    let store = env.store().await;
    let new = eventually("the workspace webhook to be replaced", WAIT, || async {
        let new = env
            .asana
            .webhooks()
            .into_iter()
            .find(|hook| hook.resource == workspace && hook.gid != old.gid)?;
        store
            .find_webhook("old")
            .await
            .unwrap()
            .is_none()
            .then_some(new)
    })
    .await;
    assert_eq!(
        new.filters,
        json!([{"resource_type":"project","action":"added"}])
    );
    old_name_refused(&process.bridge, &old).await;
    let row = listed(&env, &new_name(&new)).await;
    assert!(
        row.contains("workspace") && row.contains(&workspace) && row.contains("replaces old"),
        "{row}"
    );
    // A workspace has no reconcile pass: it never becomes a project.
    assert_eq!(
        store
            .project_name(&workspace.parse().unwrap())
            .await
            .unwrap(),
        None
    );
}

/// The filters a project webhook registered before access revocation existed has.
fn two_filters() -> Value {
    json!([{"resource_type":"task","action":"changed","fields":["assignee"]},{"resource_type":"task","action":"added"}])
}

/// Waits until the watcher has read webhook `gid` at Asana `checks` more times.
async fn watcher_checks(env: &Env, gid: &str, checks: usize) {
    let path = format!("/webhooks/{gid}");
    let before = env.asana.requests_to(&path).len();
    eventually("the watcher's next checks", WAIT, || async {
        let reads = env
            .asana
            .requests_to(&path)
            .iter()
            .filter(|r| r.method == axum::http::Method::GET)
            .count();
        (reads >= before + checks).then_some(())
    })
    .await;
}

fn updates(env: &Env, gid: &str) -> Vec<RecordedRequest> {
    env.asana
        .requests_to(&format!("/webhooks/{gid}"))
        .into_iter()
        .filter(|r| r.method == axum::http::Method::PUT)
        .collect()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_revocation_on_an_older_project_webhook_gets_the_lifecycle_filters_once(
    #[case] backend: Backend,
) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    repairing(&mut env);
    env.set("BRIDGE__ROOMS__MODE", "linked");
    env.set("BRIDGE__ACCESS__REVOKE", "on");
    let process = BridgeProcess::start(&env).await;
    let hook = create_old(&env).await;
    env.asana.set_webhook_filters(&hook.gid, two_filters());

    let five = eventually("the lifecycle filters", WAIT, || async {
        let filters = env.asana.webhook(&hook.gid)?.filters;
        (filters != two_filters()).then_some(filters)
    })
    .await;
    assert_eq!(
        five,
        json!([{"resource_type":"task","action":"changed","fields":["assignee"]},{"resource_type":"task","action":"added"},{"resource_type":"task","action":"changed","fields":["completed"]},{"resource_type":"task","action":"removed"},{"resource_type":"task","action":"deleted"}])
    );
    let sent = updates(&env, &hook.gid);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].json(), json!({"data": {"filters": five}}));
    // Asana dropping them again is not fought: one update per webhook and process.
    env.asana.set_webhook_filters(&hook.gid, two_filters());
    watcher_checks(&env, &hook.gid, 2).await;
    assert_eq!(updates(&env, &hook.gid).len(), 1);
    assert!(
        process.logs.lock().unwrap().iter().any(|line| line
            .contains("filters access revocation needs")
            && line.contains(&hook.gid)),
        "the update is logged"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_revocation_off_an_older_project_webhook_keeps_its_filters(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    repairing(&mut env);
    let _process = BridgeProcess::start(&env).await;
    let hook = create_old(&env).await;
    env.asana.set_webhook_filters(&hook.gid, two_filters());
    watcher_checks(&env, &hook.gid, 2).await;
    assert!(updates(&env, &hook.gid).is_empty());
    assert_eq!(env.asana.webhook(&hook.gid).unwrap().filters, two_filters());
}
