//! New projects of a workspace: `webhooks watch-workspace` registers a webhook on the workspace for
//! `project` `added` events only; each new project Asana reports queues one job, which registers
//! the project's own webhook (and, in `auto` mode, creates its room) through the running service.

use asana_docspace_bridge::store::{JobRecord, Store};
use asana_docspace_fakes::{FakeUser, FakeWebhook, Fault, Gate, assignment_delivery};
use rstest::rstest;
use serde_json::{Value, json};

use crate::helpers::{Backend, Env, PROJECT, TestApp, WAIT, eventually, sample, settled_jobs};

/// The fake's only workspace, the default of `watch-workspace`.
const WORKSPACE: &str = "80001";
/// A project added to the workspace during a test.
const NEW: &str = "1200000000000900";

/// The service in `registration` mode on a port picked beforehand, so that its own settings (its
/// worker registers webhooks) and the commands' carry the URL Asana reaches it at.
async fn reachable_app(env: &mut Env) -> TestApp {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    env.set("BRIDGE__SERVER__PORT", &port.to_string())
        .set(
            "BRIDGE__SERVER__PUBLIC_URL",
            &format!("http://127.0.0.1:{port}"),
        )
        .set("BRIDGE__WEBHOOKS__HANDSHAKE", "registration");
    TestApp::spawn(env).await
}

/// Runs `webhooks watch-workspace` and returns the new webhook's name and the fake's view of it.
async fn watch_workspace(env: &Env) -> (String, FakeWebhook) {
    let out = env.run(&["webhooks", "watch-workspace"]).await;
    out.expect_code(0);
    let field = |label: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("{label} printed: {}", out.stdout))
            .trim()
            .to_string()
    };
    let hook = env
        .asana
        .webhook(&field("webhook gid:"))
        .expect("Asana has the workspace webhook");
    (field("name:"), hook)
}

/// The webhooks Asana has on `resource`.
fn hooks_on(env: &Env, resource: &str) -> Vec<FakeWebhook> {
    env.asana
        .webhooks()
        .into_iter()
        .filter(|h| h.resource == resource)
        .collect()
}

fn create_calls(env: &Env) -> u64 {
    env.asana
        .calls_by_route()
        .get("create_webhook")
        .copied()
        .unwrap_or(0)
}

/// The settled job of project `project` (its `task_gid`).
async fn project_job(store: &Store, project: &str) -> JobRecord {
    settled_jobs(store)
        .await
        .into_iter()
        .find(|j| j.task_gid == project)
        .unwrap_or_else(|| panic!("no job for project {project}"))
}

async fn delivered(env: &Env, hook: &FakeWebhook, body: &Value) -> Value {
    let response = env.asana.deliver(&hook.gid, body).await.expect("delivered");
    assert_eq!(response.status(), 200, "delivery accepted");
    response.json().await.expect("a JSON answer")
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_workspace_asks_for_new_projects_only_is_listed_and_deleted(
    #[case] backend: Backend,
) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let _app = reachable_app(&mut env).await;

    let (name, hook) = watch_workspace(&env).await;

    assert_eq!(hook.resource, WORKSPACE);
    assert_eq!(hook.resource_type, "workspace");
    assert_eq!(
        hook.filters,
        json!([{"resource_type": "project", "action": "added"}])
    );
    let store = env.store().await;
    let record = store.find_webhook(&name).await.unwrap().expect("recorded");
    assert_eq!(record.resource_type, "workspace");
    assert_eq!(
        record.workspace_gid.as_ref().map(|g| g.as_str()),
        Some(WORKSPACE)
    );
    assert_eq!(record.project_gid, None);
    assert_eq!(
        env.database
            .fetch_i64("SELECT COUNT(*) FROM projects")
            .await,
        0,
        "a workspace is no project"
    );

    let again = env.run(&["webhooks", "watch-workspace"]).await;
    again.expect_code(1);
    assert!(
        again.stderr.contains(&format!(
            "workspace {WORKSPACE} is watched already by webhook \"{name}\": `webhooks delete {name}` first"
        )),
        "{}",
        again.stderr
    );
    assert_eq!(
        create_calls(&env),
        1,
        "nothing asked of Asana the second time"
    );

    let listed = env.run(&["webhooks", "list"]).await;
    listed.expect_code(0);
    let header = listed.stdout.lines().next().unwrap_or_default();
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert!(
        columns.contains(&"TYPE") && columns.contains(&"RESOURCE") && !columns.contains(&"PROJECT"),
        "{header}"
    );
    let line = listed
        .stdout
        .lines()
        .find(|l| l.contains(&name))
        .unwrap_or_else(|| panic!("the webhook is listed: {}", listed.stdout));
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        cells[..4],
        [name.as_str(), &hook.gid, "workspace", WORKSPACE]
    );

    env.run(&["webhooks", "delete", &name]).await.expect_code(0);
    assert!(env.asana.webhooks().is_empty(), "deleted at Asana");
    assert!(store.find_webhook(&name).await.unwrap().is_none());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_project_gets_one_webhook_and_its_assignments_are_invited(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let app = reachable_app(&mut env).await;
    let (_, workspace_hook) = watch_workspace(&env).await;
    let store = env.store().await;

    let added = env.asana.add_project(WORKSPACE, NEW, "Launch").await;

    let job = project_job(&store, NEW).await;
    assert_eq!(job.outcome.as_deref(), Some("watched"));
    let project_hooks = hooks_on(&env, NEW);
    assert_eq!(project_hooks.len(), 1, "one webhook for the new project");
    let project_hook = &project_hooks[0];
    assert_eq!(project_hook.resource_type, "project");
    assert_eq!(
        project_hook.filters,
        json!([{"resource_type":"task","action":"changed","fields":["assignee"]},{"resource_type":"task","action":"added"},{"resource_type":"task","action":"changed","fields":["completed"]},{"resource_type":"task","action":"removed"},{"resource_type":"task","action":"deleted"}])
    );
    let note = job.last_error.as_deref().unwrap_or_default();
    let recorded = store
        .webhooks()
        .await
        .unwrap()
        .into_iter()
        .find(|w| {
            w.webhook_gid
                .as_ref()
                .is_some_and(|g| *g == project_hook.gid.as_str())
        })
        .expect("the project's webhook is registered here");
    assert_eq!(note, format!("webhook {}", recorded.name));
    assert_eq!(
        env.database
            .fetch_i64(&format!(
                "SELECT COUNT(*) FROM projects WHERE gid = '{NEW}' AND name = 'Launch' \
                 AND discovered_via = '{WORKSPACE}'"
            ))
            .await,
        1,
        "the project is recorded with its name and the workspace it was found through"
    );

    // Asana reports it again: no second job, no second webhook.
    let answer = delivered(&env, &workspace_hook, &added).await;
    assert_eq!(answer["queued"], 0, "{answer}");
    assert_eq!(answer["duplicates"], 1, "{answer}");
    // Task events on a workspace webhook are not read.
    let answer = delivered(&env, &workspace_hook, &assignment_delivery("701", "801")).await;
    assert_eq!(
        (answer["queued"].clone(), answer["ignored"].clone()),
        (json!(0), json!(1))
    );
    assert_eq!(settled_jobs(&store).await.len(), 1);
    assert_eq!(hooks_on(&env, NEW).len(), 1);
    assert_eq!(
        create_calls(&env),
        2,
        "the workspace's webhook and the project's"
    );

    env.asana
        .assign("701", NEW, Some(FakeUser::new("801", "jane@example.com")));
    delivered(&env, project_hook, &assignment_delivery("701", "801")).await;
    assert!(env.docspace.wait_for_sent(1, WAIT).await, "invited");
    assert_eq!(env.docspace.sent_invitations()[0].email, "jane@example.com");

    let listed = env.run(&["jobs", "list"]).await;
    assert!(listed.stdout.contains("watched"), "{}", listed.stdout);
    let metrics = app.bridge.metrics().await;
    assert!(
        sample(
            &metrics,
            "bridge_events_total",
            &[("kind", "project_added")]
        ) >= 1.0
    );
    assert!(sample(&metrics, "bridge_jobs_total", &[("outcome", "watched")]) >= 1.0);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_with_a_webhook_here_is_already_watched(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let _app = reachable_app(&mut env).await;
    env.asana.put_project(PROJECT, "Website");
    env.run(&["webhooks", "create", "--project", PROJECT])
        .await
        .expect_code(0);
    watch_workspace(&env).await;
    let store = env.store().await;

    env.asana.add_project(WORKSPACE, PROJECT, "Website").await;

    let job = project_job(&store, PROJECT).await;
    assert_eq!(job.outcome.as_deref(), Some("already_watched"));
    assert!(
        job.last_error
            .as_deref()
            .unwrap_or_default()
            .starts_with("webhook "),
        "{job:?}"
    );
    assert_eq!(create_calls(&env), 2, "no webhook created for the project");
    assert_eq!(hooks_on(&env, PROJECT).len(), 1);
    assert_eq!(
        env.asana.calls_by_route().get("get_project"),
        None,
        "Asana not asked about the project"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_auto_mode_a_new_project_gets_its_room(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__ROOMS__MODE", "auto");
    let _app = reachable_app(&mut env).await;
    watch_workspace(&env).await;
    let store = env.store().await;

    env.asana.add_project(WORKSPACE, NEW, "Launch").await;

    let job = project_job(&store, NEW).await;
    assert_eq!(job.outcome.as_deref(), Some("watched"));
    let rooms = env.docspace.rooms();
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    assert_eq!(rooms[0].title, "Launch");
    assert_eq!(rooms[0].tags, vec![format!("asana-project:{NEW}")]);
    let note = job.last_error.as_deref().unwrap_or_default();
    assert!(
        note.ends_with(&format!("; room {} (created)", rooms[0].id)),
        "{note}"
    );
    let mapped = store
        .project_room(&NEW.parse().unwrap())
        .await
        .unwrap()
        .expect("the room is mapped");
    assert_eq!(mapped.room_id, rooms[0].id);
    assert_eq!(hooks_on(&env, NEW).len(), 1);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_asana_no_longer_knows_is_gone(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let _app = reachable_app(&mut env).await;
    let (_, workspace_hook) = watch_workspace(&env).await;
    let store = env.store().await;
    let added = env.asana.add_project(WORKSPACE, NEW, "Launch").await;
    project_job(&store, NEW).await;

    // Reported, then deleted before the job read it.
    let gone = "1200000000000901";
    let body: Value =
        serde_json::from_str(&added.to_string().replace(NEW, gone)).expect("the same body");
    delivered(&env, &workspace_hook, &body).await;

    let job = project_job(&store, gone).await;
    assert_eq!(job.outcome.as_deref(), Some("project_gone"));
    assert!(hooks_on(&env, gone).is_empty());
    assert_eq!(
        create_calls(&env),
        2,
        "the workspace's and the first project's"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_asana_fails_is_retried_and_made_once(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let _app = reachable_app(&mut env).await;
    watch_workspace(&env).await;
    let store = env.store().await;
    env.asana.push_fault("create_webhook", Fault::status(500));

    env.asana.add_project(WORKSPACE, NEW, "Launch").await;

    let job = project_job(&store, NEW).await;
    assert_eq!(job.outcome.as_deref(), Some("watched"));
    assert_eq!(job.attempts, 2, "{job:?}");
    assert_eq!(hooks_on(&env, NEW).len(), 1);
    assert_eq!(
        create_calls(&env),
        3,
        "the workspace's, the failed one and the retry"
    );
    // Nothing of the failed attempt is left: the one registered webhook is the retry's.
    let registered: Vec<_> = store
        .webhooks()
        .await
        .unwrap()
        .into_iter()
        .filter(|w| w.project_gid.as_ref().is_some_and(|g| *g == NEW))
        .collect();
    assert_eq!(registered.len(), 1);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_public_url_the_job_fails_saying_so(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let app = reachable_app(&mut env).await;
    watch_workspace(&env).await;
    app.stop().await.expect("stopped");
    // The same service, restarted without the URL it needs to register a webhook.
    env.vars.remove("BRIDGE__SERVER__PUBLIC_URL");
    let _app = TestApp::spawn(&env).await;
    let store = env.store().await;

    env.asana.add_project(WORKSPACE, NEW, "Launch").await;

    let job = project_job(&store, NEW).await;
    assert_eq!(job.outcome.as_deref(), Some("failed"));
    assert_eq!(job.attempts, 1, "not retried");
    assert!(
        job.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("BRIDGE__SERVER__PUBLIC_URL"),
        "{job:?}"
    );
    assert!(hooks_on(&env, NEW).is_empty());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_whose_lease_is_lost_is_abandoned_then_run_again(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let _app = reachable_app(&mut env).await;
    watch_workspace(&env).await;
    let store = env.store().await;
    let stall = Gate::new();
    env.asana
        .push_fault("create_webhook", Fault::Hold(stall.clone()));
    let windows = "SELECT COUNT(*) FROM pending_registrations";

    env.asana.add_project(WORKSPACE, NEW, "Launch").await;
    eventually("the job's registration window", WAIT, || async {
        (env.database.fetch_i64(windows).await == 1).then_some(())
    })
    .await;
    // Another worker takes the job over while Asana holds the create call.
    env.execute_sql(&format!(
        "UPDATE jobs SET lease_owner = 'elsewhere' WHERE task_gid = '{NEW}'"
    ))
    .await;
    eventually("the attempt to be abandoned", WAIT, || async {
        (env.database.fetch_i64(windows).await == 0).then_some(())
    })
    .await;
    stall.open();

    // The taken lease runs out unrenewed: the job runs again and registers once.
    let job = project_job(&store, NEW).await;
    assert_eq!(job.outcome.as_deref(), Some("watched"));
    assert_eq!(job.attempts, 2, "{job:?}");
    assert_eq!(hooks_on(&env, NEW).len(), 1);
    let registered = store
        .webhooks()
        .await
        .unwrap()
        .into_iter()
        .filter(|w| w.project_gid.as_ref().is_some_and(|g| *g == NEW))
        .count();
    assert_eq!(registered, 1);
}

/// What the bridge relies on the fake to refuse, as Asana does: a workspace webhook without
/// filters, or with `fields` (only project and task webhooks may have them).
#[tokio::test]
async fn the_asana_fake_refuses_workspace_webhooks_asana_refuses() {
    let asana = asana_docspace_fakes::AsanaFake::start(crate::helpers::ASANA_TOKEN).await;
    let client = reqwest::Client::new();
    for filters in [
        json!(null),
        json!([]),
        json!([{"resource_type": "project", "action": "changed", "fields": ["name"]}]),
    ] {
        let response = client
            .post(format!("{}/webhooks", asana.url()))
            .bearer_auth(crate::helpers::ASANA_TOKEN)
            .json(&json!({"data": {
                "resource": WORKSPACE,
                "target": "http://127.0.0.1:9/webhooks/asana/x",
                "filters": filters,
            }}))
            .send()
            .await
            .expect("the fake answers");
        assert_eq!(response.status(), 400, "{filters}");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(
            body["errors"][0]["message"],
            "filters: Workspace webhooks require filters without fields"
        );
    }
    assert!(asana.webhooks().is_empty());
}
