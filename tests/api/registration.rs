//! `webhooks create | list | delete` against an Asana fake that performs the handshake, and the
//! `registration` handshake mode that keeps forged handshakes out.

use std::time::Duration;

use asana_docspace_fakes::{assignment_delivery, random_secret};
use serde_json::{Value, json};

use crate::helpers::{Env, PROJECT, TestApp, WAIT, eventually};

/// The service in `registration` mode, and the CLI's settings pointed at it.
async fn registration_app(env: &mut Env) -> TestApp {
    env.set("BRIDGE__WEBHOOKS__HANDSHAKE", "registration");
    let app = TestApp::spawn(env).await;
    let address = app.address.clone();
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

store_test! {
    async fn create_registers_through_the_handshake_and_deliveries_then_invite(env) {
        let app = registration_app(&mut env).await;
        env.assign("501", "601", "jane@example.com");

        let out = env
            .run(&["webhooks", "create", "--project", PROJECT, "--name", "proj"])
            .await;

        out.expect_code(0);
        let gid = gid_from(&out.stdout);
        assert!(
            out.stdout
                .contains(&format!("target:      {}/webhooks/asana/proj", app.address)),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains(&format!("project:     {PROJECT}")));
        let hook = env.asana.webhook(&gid).expect("Asana has the webhook");
        assert_eq!(hook.resource, PROJECT);
        assert_eq!(
            hook.filters,
            json!([{"resource_type":"task","action":"changed","fields":["assignee"]},{"resource_type":"task","action":"added"}])
        );
        let record = env
            .store()
            .await
            .find_webhook("proj")
            .await
            .unwrap()
            .expect("recorded");
        assert_eq!(record.webhook_gid.as_deref(), Some(gid.as_str()));
        assert_eq!(record.project_gid.as_deref(), Some(PROJECT));

        let response = env
            .asana
            .deliver(&gid, &assignment_delivery("501", "601"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(env.docspace.wait_for_sent(1, WAIT).await);
        assert_eq!(env.docspace.sent_invitations()[0].email, "jane@example.com");
    }
}

store_test! {
    async fn create_without_a_name_picks_an_unguessable_one(env) {
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
}

store_test! {
    async fn a_forged_handshake_is_refused_in_registration_mode(env) {
        let app = registration_app(&mut env).await;

        let response = app.handshake("unknown", &random_secret()).await;

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
                .webhook_secret("unknown")
                .await
                .unwrap()
                .is_none()
        );
    }
}

store_test! {
    async fn a_registration_window_expires_after_sixty_seconds(env) {
        let app = registration_app(&mut env).await;
        let store = env.store().await;
        store.open_registration("late").await.unwrap();
        env.execute_sql("UPDATE pending_registrations SET opened_at = opened_at - 61000 WHERE name = 'late'")
            .await;

        assert_eq!(app.handshake("late", &random_secret()).await.status(), 403);

        store.open_registration("early").await.unwrap();
        assert_eq!(app.handshake("early", &random_secret()).await.status(), 200);
        // The window closes with the first handshake: a second one cannot replace the secret.
        assert_eq!(app.handshake("early", &random_secret()).await.status(), 409);
    }
}

store_test! {
    async fn a_secret_mismatch_in_asanas_answer_deletes_the_webhook(env) {
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
                .webhook_secret("proj")
                .await
                .unwrap()
                .is_none(),
            "forgotten here"
        );
    }
}

store_test! {
    async fn create_explains_a_duplicate_a_failed_handshake_and_a_bad_token(env) {
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

        // Asana still has the webhook after the secret is forgotten here: Asana's duplicate 403.
        env.store().await.forget_webhook("proj").await.unwrap();
        let duplicate = env
            .run(&["webhooks", "create", "--project", PROJECT, "--name", "proj"])
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
}

store_test! {
    async fn create_needs_a_public_url(env) {
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
}

store_test! {
    async fn list_joins_local_registrations_with_asanas_view(env) {
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
}

store_test! {
    async fn list_needs_a_workspace_when_the_user_has_several(env) {
        let _app = registration_app(&mut env).await;
        env.asana.add_workspace("80002", "Second");
        let out = env.run(&["webhooks", "list"]).await;
        out.expect_code(1);
        assert!(out.stderr.contains("--workspace"), "{}", out.stderr);
        env.run(&["webhooks", "list", "--workspace", "80002"])
            .await
            .expect_code(0);
    }
}

store_test! {
    async fn delete_removes_the_webhook_at_asana_and_the_secret_here(env) {
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
                .webhook_secret("proj")
                .await
                .unwrap()
                .is_none()
        );
        // Deliveries signed with the old secret are refused once the running service's
        // few-second secret cache lets go.
        eventually("deliveries to be refused", WAIT, || async {
            (app.deliver("proj", &hook.secret, &heartbeat).await.status() == 401).then_some(())
        })
        .await;
    }
}

store_test! {
    async fn delete_by_gid_tolerates_a_webhook_asana_already_dropped(env) {
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
                .webhook_secret("proj")
                .await
                .unwrap()
                .is_none()
        );
    }
}

store_test! {
    async fn readyz_reports_webhooks_asana_flags_as_degraded(env) {
        env.set("BRIDGE__WEBHOOKS__HANDSHAKE", "registration");
        env.set("BRIDGE__WEBHOOKS__WATCH_INTERVAL_SECS", "1");
        let app = TestApp::spawn(&env).await;
        let address = app.address.clone();
        env.set("BRIDGE__SERVER__PUBLIC_URL", &address);
        let out = env
            .run(&["webhooks", "create", "--project", PROJECT, "--name", "proj"])
            .await;
        let gid = gid_from(&out.stdout);
        first_heartbeat(&env, &gid).await;

        env.asana.record_webhook_failure(&gid, "HTTP 500");

        let body = eventually("readyz to report the failing webhook", WAIT, || async {
            let response = app.client.get(app.url("/readyz")).send().await.unwrap();
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
            let (_, body) = app.readyz().await;
            body["degraded"]["webhooks"]["proj"]
                .as_str()
                .filter(|r| r.contains("deleted"))
                .map(str::to_string)
        })
        .await;
    }
}

store_test! {
    async fn a_day_without_heartbeats_is_reported_as_degraded(env) {
        let app = TestApp::spawn(&env).await;
        let secret = app.register("quiet").await;
        app.register("lively").await;
        let heartbeat = json!({"events": []});
        assert_eq!(
            app.deliver("quiet", &secret, &heartbeat).await.status(),
            200
        );
        let (_, body) = app.readyz().await;
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

        let response = app.client.get(app.url("/readyz")).send().await.unwrap();
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
            app.deliver("quiet", &secret, &heartbeat).await.status(),
            200
        );
        let (_, body) = app.readyz().await;
        assert_eq!(body["status"], "ready", "{body}");
    }
}
