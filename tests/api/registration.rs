//! `webhooks create | list | delete` against an Asana fake that performs the handshake, and the
//! `registration` handshake mode that keeps forged handshakes out.

use std::time::Duration;

use asana_docspace_bridge::store::RegistrationOpening;
use asana_docspace_bridge::webhook::RegistrationNonce;
use asana_docspace_bridge::webhook::register::REGISTRATION_WINDOW;
use asana_docspace_fakes::{
    FakeWebhook, Fault, Gate, RecordedRequest, assignment_delivery, random_secret,
};
use rstest::rstest;
use serde_json::{Value, json};

use crate::helpers::{Backend, BridgeProcess, Env, PROJECT, TestApp, WAIT, eventually, name};

/// The service in `registration` mode, and the CLI's settings pointed at it.
async fn registration_app(env: &mut Env) -> TestApp {
    env.set("BRIDGE__WEBHOOKS__HANDSHAKE", "registration");
    let app = TestApp::spawn(env).await;
    let address = app.bridge.address.clone();
    env.set("BRIDGE__SERVER__PUBLIC_URL", &address);
    app
}

/// Waits for the heartbeat Asana sends right after creating a webhook to be answered.
async fn first_heartbeat(env: &Env, gid: &str) {
    eventually("the first heartbeat", WAIT, || async {
        env.asana.webhook(gid).and_then(|h| h.last_success_at)
    })
    .await;
}

fn gid_from(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("webhook gid:"))
        .expect("the gid is printed")
        .trim()
        .to_string()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_registers_through_the_handshake_and_deliveries_then_invite(
    #[case] backend: Backend,
) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let app = registration_app(&mut env).await;
    env.assign("501", "601", "jane@example.com");

    let out = env
        .run(&["webhooks", "create", "--project", PROJECT, "--name", "proj"])
        .await;

    out.expect_code(0);
    let gid = gid_from(&out.stdout);
    assert!(
        out.stdout.contains(&format!(
            "target:      {}/webhooks/asana/proj",
            app.bridge.address
        )),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(&format!("project:     {PROJECT}")));
    let hook = env.asana.webhook(&gid).expect("Asana has the webhook");
    assert_eq!(hook.resource, PROJECT);
    assert_eq!(
        hook.filters,
        json!([{"resource_type":"task","action":"changed","fields":["assignee"]},{"resource_type":"task","action":"added"},{"resource_type":"task","action":"changed","fields":["completed"]},{"resource_type":"task","action":"removed"},{"resource_type":"task","action":"deleted"}])
    );
    let record = env
        .store()
        .await
        .find_webhook("proj")
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(
        record.webhook_gid.as_ref().map(|g| g.as_str()),
        Some(gid.as_str())
    );
    assert_eq!(
        record.project_gid.as_ref().map(|g| g.as_str()),
        Some(PROJECT)
    );
    // Confirming the registration makes its project known (rooms follow it).
    assert_eq!(
        env.database
            .fetch_i64(&format!(
                "SELECT COUNT(*) FROM projects WHERE gid = '{PROJECT}'"
            ))
            .await,
        1
    );

    let response = env
        .asana
        .deliver(&gid, &assignment_delivery("501", "601"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(env.docspace.wait_for_sent(1, WAIT).await);
    assert_eq!(env.docspace.sent_invitations()[0].email, "jane@example.com");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_without_a_name_picks_an_unguessable_one(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let _app = registration_app(&mut env).await;
    let out = env.run(&["webhooks", "create", "--project", PROJECT]).await;
    out.expect_code(0);
    let name = out
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("name:"))
        .unwrap()
        .trim()
        .to_string();
    assert!(name.starts_with("wh-") && name.len() >= 32, "{name}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_handshake_is_refused_in_registration_mode(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let app = registration_app(&mut env).await;

    let response = app.bridge.handshake("unknown", &random_secret()).await;

    assert_eq!(response.status(), 403);
    assert!(response.headers().get("x-hook-secret").is_none());
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no registration is open")
    );
    assert!(
        env.store()
            .await
            .webhook_secret(&name("unknown"))
            .await
            .unwrap()
            .is_none()
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_window_expires_after_sixty_seconds(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let app = registration_app(&mut env).await;
    let store = env.store().await;
    let late = RegistrationNonce::generate();
    let opened = store
        .open_registration(&name("late"), late.hash(), REGISTRATION_WINDOW)
        .await
        .unwrap();
    assert_eq!(opened, RegistrationOpening::Opened);
    env.execute_sql(
        "UPDATE pending_registrations SET opened_at = opened_at - 61000 WHERE name = 'late'",
    )
    .await;

    let late_target = late.target(&app.bridge.url("/webhooks/asana/late"));
    assert_eq!(
        app.bridge
            .handshake_to(&late_target, &random_secret())
            .await
            .status(),
        403
    );

    let early = RegistrationNonce::generate();
    store
        .open_registration(&name("early"), early.hash(), REGISTRATION_WINDOW)
        .await
        .unwrap();
    let early_target = early.target(&app.bridge.url("/webhooks/asana/early"));
    assert_eq!(
        app.bridge
            .handshake_to(&early_target, &random_secret())
            .await
            .status(),
        200
    );
    // The window closes with the first handshake: a second one cannot replace the secret.
    assert_eq!(
        app.bridge
            .handshake_to(&early_target, &random_secret())
            .await
            .status(),
        403
    );
}

/// Asana's create call, as the fake received it.
async fn create_request(env: &Env) -> RecordedRequest {
    let is_create = |r: &RecordedRequest| r.method == "POST" && r.path == "/api/1.0/webhooks";
    assert!(
        env.asana
            .wait_for_requests(WAIT, |requests| requests.iter().any(is_create))
            .await,
        "webhooks create calls Asana"
    );
    env.asana.requests().into_iter().find(is_create).unwrap()
}

fn target_of(create: &RecordedRequest) -> String {
    create.json()["data"]["target"]
        .as_str()
        .expect("a target")
        .to_string()
}

/// The webhook Asana created, once it has.
async fn webhook_at_asana(env: &Env) -> FakeWebhook {
    eventually("Asana to create the webhook", WAIT, || async {
        env.asana.webhooks().into_iter().next()
    })
    .await
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_handshake_cannot_win_while_create_runs(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let app = registration_app(&mut env).await;
    env.assign("501", "601", "jane@example.com");
    let stall = Gate::new();
    env.asana
        .push_fault("create_webhook", Fault::Hold(stall.clone()));
    let command = env.spawn(&[
        "webhooks",
        "create",
        "--project",
        PROJECT,
        "--name",
        "default",
    ]);
    create_request(&env).await;

    // The reported attack: while the window is open, forged handshakes to the name's URL.
    let attacker = random_secret();
    let wrong_nonce = format!(
        "{}?r={}",
        app.bridge.url("/webhooks/asana/default"),
        "0".repeat(32)
    );
    for target in [
        app.bridge.url("/webhooks/asana/default"),
        app.bridge.url("/webhooks/asana"),
        wrong_nonce,
    ] {
        for _ in 0..5 {
            let response = app.bridge.handshake_to(&target, &attacker).await;
            assert_eq!(response.status(), 403, "{target}");
            assert!(response.headers().get("x-hook-secret").is_none());
            let body: Value = response.json().await.unwrap();
            assert!(body["error"].as_str().unwrap().contains("nonce"), "{body}");
        }
    }
    stall.open();

    let out = command.finish().await;
    out.expect_code(0);
    let gid = gid_from(&out.stdout);
    let target = env.asana.webhook(&gid).unwrap().target;
    assert!(
        target.starts_with(&app.bridge.url("/webhooks/asana/default?r="))
            && target.len() == app.bridge.url("/webhooks/asana/default?r=").len() + 32,
        "the target carries a 128-bit nonce: {target}"
    );
    let delivery = assignment_delivery("501", "601");
    assert_eq!(
        app.bridge
            .deliver("default", &attacker, &delivery)
            .await
            .status(),
        401
    );
    assert_eq!(
        env.asana.deliver(&gid, &delivery).await.unwrap().status(),
        200
    );
    assert!(env.docspace.wait_for_sent(1, WAIT).await);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asana_refusing_after_a_forged_handshake_leaves_no_secret(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let app = registration_app(&mut env).await;
    env.assign("501", "601", "jane@example.com");
    let stall = Gate::new();
    env.asana
        .push_fault("create_webhook", Fault::Hold(stall.clone()));
    let command = env.spawn(&[
        "webhooks",
        "create",
        "--project",
        PROJECT,
        "--name",
        "default",
    ]);
    // The worst case: the attacker learned the very target Asana was given, nonce included.
    let target = target_of(&create_request(&env).await);
    let attacker = random_secret();
    assert_eq!(
        app.bridge.handshake_to(&target, &attacker).await.status(),
        200
    );
    let delivery = assignment_delivery("501", "601");
    assert_eq!(
        app.bridge
            .deliver("default", &attacker, &delivery)
            .await
            .status(),
        401,
        "a secret the command has not confirmed verifies nothing"
    );

    // Asana's own handshake is refused (the name has a secret), so Asana refuses to create.
    stall.open();
    let out = command.finish().await;

    out.expect_code(1);
    assert!(
        out.stderr.contains("could not complete the handshake"),
        "{}",
        out.stderr
    );
    assert!(
        env.store()
            .await
            .find_webhook("default")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        app.bridge
            .deliver("default", &attacker, &delivery)
            .await
            .status(),
        401
    );
    assert!(
        env.store()
            .await
            .list_jobs(None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(env.docspace.sent_invitations().is_empty());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_create_removes_what_its_handshake_stored(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let app = registration_app(&mut env).await;
    // Asana performs the handshake, creates the webhook, and never answers.
    env.asana.push_fault("create_webhook", Fault::HangAfterWork);
    let command = env.spawn(&["webhooks", "create", "--project", PROJECT, "--name", "proj"]);
    let hook = webhook_at_asana(&env).await;
    assert!(
        env.store()
            .await
            .find_webhook("proj")
            .await
            .unwrap()
            .is_some(),
        "stored, unconfirmed"
    );

    command.signal("TERM");
    let out = command.finish().await;

    out.expect_code(1);
    assert!(out.stderr.contains("interrupted"), "{}", out.stderr);
    assert!(
        out.stderr.contains("webhooks delete <GID>"),
        "{}",
        out.stderr
    );
    assert!(
        env.store()
            .await
            .find_webhook("proj")
            .await
            .unwrap()
            .is_none()
    );
    let heartbeat = json!({"events": []});
    assert_eq!(
        env.asana
            .deliver(&hook.gid, &heartbeat)
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        app.bridge
            .handshake_to(&hook.target, &random_secret())
            .await
            .status(),
        403,
        "the window is closed"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_create_closes_the_window(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let app = registration_app(&mut env).await;
    let stall = Gate::new();
    env.asana
        .push_fault("create_webhook", Fault::Hold(stall.clone()));
    let command = env.spawn(&["webhooks", "create", "--project", PROJECT, "--name", "proj"]);
    let target = target_of(&create_request(&env).await);

    command.signal("INT");
    let out = command.finish().await;
    stall.open();

    out.expect_code(1);
    assert!(out.stderr.contains("interrupted"), "{}", out.stderr);
    assert_eq!(
        app.bridge
            .handshake_to(&target, &random_secret())
            .await
            .status(),
        403
    );
    assert!(
        env.store()
            .await
            .find_webhook("proj")
            .await
            .unwrap()
            .is_none()
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_create_leaves_a_secret_that_verifies_nothing_and_expires(
    #[case] backend: Backend,
) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let app = registration_app(&mut env).await;
    env.assign("501", "601", "jane@example.com");
    env.asana.push_fault("create_webhook", Fault::HangAfterWork);
    let mut command = env.spawn(&["webhooks", "create", "--project", PROJECT, "--name", "proj"]);
    let hook = webhook_at_asana(&env).await;

    command.kill9();
    assert_eq!(command.finish().await.code, None);

    assert!(
        env.store()
            .await
            .find_webhook("proj")
            .await
            .unwrap()
            .is_some(),
        "left behind"
    );
    let delivery = assignment_delivery("501", "601");
    assert_eq!(
        env.asana
            .deliver(&hook.gid, &delivery)
            .await
            .unwrap()
            .status(),
        401
    );
    assert!(
        env.store()
            .await
            .list_jobs(None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let busy = env
        .run(&["webhooks", "create", "--project", PROJECT, "--name", "proj"])
        .await;
    busy.expect_code(1);
    assert!(
        busy.stderr.contains("another `webhooks create`"),
        "{}",
        busy.stderr
    );

    // Once its 60 s have passed, what it left is gone and the name is free.
    env.execute_sql("UPDATE webhooks SET unconfirmed_until = unconfirmed_until - 61000")
        .await;
    let again = env
        .run(&["webhooks", "create", "--project", PROJECT, "--name", "proj"])
        .await;
    again.expect_code(0);
    let gid = gid_from(&again.stdout);
    assert_eq!(
        env.asana
            .deliver(&hook.gid, &delivery)
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        env.asana.deliver(&gid, &delivery).await.unwrap().status(),
        200
    );
    assert!(env.docspace.wait_for_sent(1, WAIT).await);
    let _ = app;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_handshake_is_refused_without_a_write(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let app = registration_app(&mut env).await;
    let nonce = RegistrationNonce::generate();
    env.store()
        .await
        .open_registration(&name("open"), nonce.hash(), REGISTRATION_WINDOW)
        .await
        .unwrap();
    let lock = env
        .lock_writes(&["webhooks", "pending_registrations"])
        .await;

    for name in ["unknown", "open"] {
        let response = tokio::time::timeout(
            Duration::from_secs(3),
            app.bridge.handshake(name, &random_secret()),
        )
        .await
        .expect("refused without waiting for the held write lock");
        assert_eq!(response.status(), 403, "{name}");
    }
    lock.release().await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_binds_the_name_in_first_use_mode_too(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let address = app.bridge.address.clone();
    env.set("BRIDGE__SERVER__PUBLIC_URL", &address);
    let stall = Gate::new();
    env.asana
        .push_fault("create_webhook", Fault::Hold(stall.clone()));
    let command = env.spawn(&["webhooks", "create", "--project", PROJECT, "--name", "proj"]);
    create_request(&env).await;

    assert_eq!(
        app.bridge
            .handshake("proj", &random_secret())
            .await
            .status(),
        403
    );
    assert_eq!(
        app.bridge
            .handshake("other", &random_secret())
            .await
            .status(),
        200,
        "first use"
    );
    stall.open();

    command.finish().await.expect_code(0);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_use_mode_warns_at_start_up(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let process = BridgeProcess::start(&env).await;
    let logs = process.logs.lock().unwrap().clone();
    let warning = logs
        .iter()
        .find(|line| line.contains("anyone who can reach"))
        .unwrap_or_else(|| panic!("a first-use warning in {logs:#?}"));
    assert!(warning.contains("\"WARN\""), "{warning}");
    assert!(
        warning.contains("BRIDGE__WEBHOOKS__HANDSHAKE=registration"),
        "{warning}"
    );
    process.kill9().await;

    env.set("BRIDGE__WEBHOOKS__HANDSHAKE", "registration");
    let process = BridgeProcess::start(&env).await;
    assert!(
        !process
            .logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("anyone who can reach"))
    );
    process.kill9().await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_mismatch_in_asanas_answer_deletes_the_webhook(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let _app = registration_app(&mut env).await;
    env.asana.answer_next_webhook_with_secret(&random_secret());

    let out = env
        .run(&["webhooks", "create", "--project", PROJECT, "--name", "proj"])
        .await;

    out.expect_code(1);
    assert!(out.stderr.contains("differs"), "{}", out.stderr);
    assert!(out.stderr.contains("deleted at Asana"), "{}", out.stderr);
    assert!(env.asana.webhooks().is_empty(), "deleted at Asana");
    assert!(
        env.store()
            .await
            .webhook_secret(&name("proj"))
            .await
            .unwrap()
            .is_none(),
        "forgotten here"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_explains_a_duplicate_a_failed_handshake_and_a_bad_token(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let _app = registration_app(&mut env).await;
    env.run(&["webhooks", "create", "--project", PROJECT, "--name", "proj"])
        .await
        .expect_code(0);

    // The same name again: refused here before Asana is asked.
    let again = env
        .run(&["webhooks", "create", "--project", PROJECT, "--name", "proj"])
        .await;
    again.expect_code(1);
    assert!(
        again.stderr.contains("exists here already"),
        "{}",
        again.stderr
    );

    // Forgotten here but still at Asana: each attempt's target has its own nonce, so Asana
    // takes the new one, and `webhooks list` shows the old one as not registered here.
    env.store()
        .await
        .forget_webhook(&name("proj"))
        .await
        .unwrap();
    env.run(&["webhooks", "create", "--project", PROJECT, "--name", "proj"])
        .await
        .expect_code(0);
    let listed = env.run(&["webhooks", "list"]).await;
    assert!(
        listed.stdout.contains("not registered here"),
        "{}",
        listed.stdout
    );

    // Asana's duplicate 403, explained in one line.
    env.asana.push_fault(
        "create_webhook",
        Fault::json(403, json!({"errors": [{"message": "Duplicated webhook. You already have an existing webhook for the given resource and target. Delete the old one before creating another."}]})),
    );
    let duplicate = env
        .run(&[
            "webhooks",
            "create",
            "--project",
            PROJECT,
            "--name",
            "again",
        ])
        .await;
    duplicate.expect_code(1);
    assert!(
        duplicate.stderr.contains("Asana already has a webhook"),
        "{}",
        duplicate.stderr
    );
    assert_eq!(
        duplicate.stderr.trim().lines().count(),
        1,
        "one line: {}",
        duplicate.stderr
    );

    // Nothing listens at the public URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    env.set("BRIDGE__SERVER__PUBLIC_URL", &format!("http://{closed}"));
    let unreachable = env
        .run(&[
            "webhooks",
            "create",
            "--project",
            PROJECT,
            "--name",
            "other",
        ])
        .await;
    unreachable.expect_code(1);
    assert!(
        unreachable
            .stderr
            .contains("could not complete the handshake"),
        "{}",
        unreachable.stderr
    );

    env.set("BRIDGE__ASANA__TOKEN", "1/wrong");
    let bad_token = env
        .run(&[
            "webhooks",
            "create",
            "--project",
            PROJECT,
            "--name",
            "third",
        ])
        .await;
    bad_token.expect_code(1);
    assert!(
        bad_token.stderr.contains("refused the token (401)"),
        "{}",
        bad_token.stderr
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_needs_a_public_url(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let _app = registration_app(&mut env).await;
    env.vars.remove("BRIDGE__SERVER__PUBLIC_URL");
    let out = env.run(&["webhooks", "create", "--project", PROJECT]).await;
    out.expect_code(1);
    assert!(
        out.stderr.contains("BRIDGE__SERVER__PUBLIC_URL"),
        "{}",
        out.stderr
    );
    assert!(env.asana.requests().is_empty(), "Asana was not asked");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_joins_local_registrations_with_asanas_view(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let _app = registration_app(&mut env).await;
    let out = env
        .run(&["webhooks", "create", "--project", PROJECT, "--name", "proj"])
        .await;
    let gid = gid_from(&out.stdout);
    first_heartbeat(&env, &gid).await;
    env.asana.record_webhook_failure(&gid, "HTTP 502");

    let listed = env.run(&["webhooks", "list"]).await;

    listed.expect_code(0);
    let line = listed
        .stdout
        .lines()
        .find(|l| l.contains("proj"))
        .expect("a row for proj")
        .to_string();
    assert!(
        line.contains(&gid) && line.contains(PROJECT) && line.contains("yes"),
        "{line}"
    );
    assert!(line.contains("HTTP 502"), "{line}");
    assert!(line.contains("deliveries failing"), "{line}");

    env.asana.forget_webhook(&gid);
    let listed = env.run(&["webhooks", "list"]).await;
    let line = listed
        .stdout
        .lines()
        .find(|l| l.contains("proj"))
        .unwrap()
        .to_string();
    assert!(line.contains("MISSING AT ASANA"), "{line}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_needs_a_workspace_when_the_user_has_several(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let _app = registration_app(&mut env).await;
    env.asana.add_workspace("80002", "Second");
    let out = env.run(&["webhooks", "list"]).await;
    out.expect_code(1);
    assert!(out.stderr.contains("--workspace"), "{}", out.stderr);
    env.run(&["webhooks", "list", "--workspace", "80002"])
        .await
        .expect_code(0);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_webhook_at_asana_and_the_secret_here(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let app = registration_app(&mut env).await;
    let out = env
        .run(&["webhooks", "create", "--project", PROJECT, "--name", "proj"])
        .await;
    let gid = gid_from(&out.stdout);
    let heartbeat = json!({"events": []});
    assert_eq!(
        env.asana.deliver(&gid, &heartbeat).await.unwrap().status(),
        200
    );
    let hook = env.asana.webhook(&gid).unwrap();

    let deleted = env.run(&["webhooks", "delete", "proj"]).await;

    deleted.expect_code(0);
    assert!(env.asana.webhook(&gid).is_none());
    assert!(
        env.store()
            .await
            .webhook_secret(&name("proj"))
            .await
            .unwrap()
            .is_none()
    );
    // Deliveries signed with the old secret are refused once the running service's
    // few-second secret cache lets go.
    eventually("deliveries to be refused", WAIT, || async {
        (app.bridge
            .deliver("proj", &hook.secret, &heartbeat)
            .await
            .status()
            == 401)
            .then_some(())
    })
    .await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_by_gid_tolerates_a_webhook_asana_already_dropped(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let _app = registration_app(&mut env).await;
    let out = env
        .run(&["webhooks", "create", "--project", PROJECT, "--name", "proj"])
        .await;
    let gid = gid_from(&out.stdout);
    env.asana.forget_webhook(&gid);

    let deleted = env.run(&["webhooks", "delete", &gid]).await;

    deleted.expect_code(0);
    assert!(
        deleted.stdout.contains("no longer has"),
        "{}",
        deleted.stdout
    );
    assert!(
        env.store()
            .await
            .webhook_secret(&name("proj"))
            .await
            .unwrap()
            .is_none()
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_webhooks_asana_flags_as_degraded(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__WEBHOOKS__HANDSHAKE", "registration");
    env.set("BRIDGE__WEBHOOKS__WATCH_INTERVAL_SECS", "1");
    let app = TestApp::spawn(&env).await;
    let address = app.bridge.address.clone();
    env.set("BRIDGE__SERVER__PUBLIC_URL", &address);
    let out = env
        .run(&["webhooks", "create", "--project", PROJECT, "--name", "proj"])
        .await;
    let gid = gid_from(&out.stdout);
    first_heartbeat(&env, &gid).await;

    env.asana.record_webhook_failure(&gid, "HTTP 500");

    let body = eventually("readyz to report the failing webhook", WAIT, || async {
        let response = app
            .bridge
            .client
            .get(app.bridge.url("/readyz"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "degraded is still ready");
        let body: Value = response.json().await.unwrap();
        (body["status"] == "degraded").then_some(body)
    })
    .await;
    let reason = body["degraded"]["webhooks"]["proj"].as_str().unwrap();
    assert!(
        reason.contains("failing") && reason.contains("HTTP 500"),
        "{reason}"
    );

    env.asana.forget_webhook(&gid);
    eventually("readyz to report the deleted webhook", WAIT, || async {
        let (_, body) = app.bridge.readyz().await;
        body["degraded"]["webhooks"]["proj"]
            .as_str()
            .filter(|r| r.contains("deleted"))
            .map(str::to_string)
    })
    .await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_without_heartbeats_is_reported_as_degraded(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("quiet").await;
    app.bridge.register("lively").await;
    let heartbeat = json!({"events": []});
    assert_eq!(
        app.bridge
            .deliver("quiet", &secret, &heartbeat)
            .await
            .status(),
        200
    );
    let (_, body) = app.bridge.readyz().await;
    assert_eq!(body["status"], "ready", "{body}");

    // Stop the service (flushing delivery times), and age "quiet" by 25 hours.
    app.stop().await.unwrap();
    let day_and_hour = Duration::from_secs(25 * 3600).as_millis();
    env.execute_sql(&format!(
        "UPDATE webhooks SET last_delivery_at = last_delivery_at - {day_and_hour}, \
         created_at = created_at - {day_and_hour} WHERE name = 'quiet'"
    ))
    .await;
    let app = TestApp::spawn(&env).await;

    let response = app
        .bridge
        .client
        .get(app.bridge.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "degraded", "{body}");
    assert!(
        body["degraded"]["webhooks"]["quiet"]
            .as_str()
            .unwrap()
            .contains("no verified delivery")
    );
    assert!(
        body["degraded"]["webhooks"].get("lively").is_none(),
        "{body}"
    );

    // A heartbeat clears it.
    assert_eq!(
        app.bridge
            .deliver("quiet", &secret, &heartbeat)
            .await
            .status(),
        200
    );
    let (_, body) = app.bridge.readyz().await;
    assert_eq!(body["status"], "ready", "{body}");
}
