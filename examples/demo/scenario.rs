//! The demo's scenario, shared by `cargo run --example demo` and the test that runs it several
//! times (`tests/api/demo.rs`): the bridge on its embedded SQLite store, against local simulators
//! of Asana and DocSpace (the same ones the tests use).

use std::time::Duration;

use anyhow::{bail, ensure};
use asana_docspace_bridge::Application;
use asana_docspace_bridge::domain::WatchedResource;
use asana_docspace_bridge::reconcile::{PassReport, PassSettings, run_pass};
use asana_docspace_bridge::settings::{Settings, Sources};
use asana_docspace_bridge::store::{ClaimOutcome, JobRecord, JobStatus, Store, StoreOptions};
use asana_docspace_bridge::upstream::{AsanaClient, Upstreams};
use asana_docspace_bridge::webhook::register::register_webhook;
use asana_docspace_bridge::worker::{RoomEvent, provision_for_command};
use asana_docspace_fakes::{AsanaFake, DocSpaceFake, FakeUser, assignment_delivery};
use asana_docspace_test_support::{BridgeEnv, TestDatabase};

const TOKEN: &str = "1/demo-token";
const API_KEY: &str = "sk-demo-key";
const PROJECT: &str = "1200000000000100";

/// Runs the scenario, printing each step; returns the jobs' outcomes in the order they were
/// queued. Fails unless exactly one invitation arrived for Alice's first task, the second task's
/// job found her in the ledgers without asking DocSpace, a reconcile pass found Bob's assignment
/// that was never delivered and he was invited once, and the project got one room with one share
/// per person.
pub async fn demo() -> anyhow::Result<Vec<String>> {
    step("Starting simulators of Asana and DocSpace on 127.0.0.1");
    let asana = AsanaFake::start(TOKEN).await;
    asana.put_project(PROJECT, "Website launch");
    let docspace = DocSpaceFake::start(API_KEY).await;
    say(&format!("Asana    {}", asana.url()));
    say(&format!("DocSpace {}", docspace.url()));

    // A SQLite file in a temporary folder, removed when the demo ends.
    let database = TestDatabase::sqlite();
    let database_url = database.url();
    let mut env = BridgeEnv::new()
        .listen_on(0)
        .asana(&asana.url(), TOKEN)
        .docspace(&docspace.url(), API_KEY)
        .with("BRIDGE__DOCSPACE__INVITE_TYPE", "User")
        .with("BRIDGE__ROOMS__MODE", "auto")
        .database(database_url);

    step("Starting the bridge on its embedded SQLite store");
    let settings = load(&env)?;
    let app = Application::build(settings).await?;
    let address = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    say(&format!("listening on {address}, store {database_url}"));

    step(
        "Registering the webhook (`webhooks create`): Asana performs the handshake against the bridge",
    );
    env.set("BRIDGE__SERVER__PUBLIC_URL", &address);
    let settings = load(&env)?;
    let store = Store::open_migrated(database_url, &StoreOptions::default()).await?;
    let asana_client = AsanaClient::from_settings(&settings)?;
    let registered = register_webhook(
        &store,
        &asana_client,
        &settings.server.public_url,
        &WatchedResource::Project(PROJECT.parse()?),
        Some("demo".parse()?),
        std::future::pending(),
    )
    .await?;
    say(&format!(
        "handshake answered at {}; webhook {} registered for project {PROJECT}; the secret Asana reports matches the stored one",
        registered.target, registered.webhook_gid
    ));
    let webhook_gid = registered.webhook_gid;

    step(
        "Rooms are on (`rooms.mode = auto`): `webhooks create` gives the project its DocSpace room at once",
    );
    let upstreams = Upstreams::from_settings(&settings)?;
    let room =
        provision_for_command(&store, &upstreams, &settings, &PROJECT.parse()?, false).await?;
    ensure!(
        room.event == Some(RoomEvent::Created),
        "expected a new room, got {room}"
    );
    say(&format!(
        "room {room}: no room tagged asana-project:{PROJECT} existed, so one was created, titled after the Asana project"
    ));

    step("Alice is assigned two tasks in Asana, one after the other");
    let alice = FakeUser::new("3001", "Alice@Example.com");
    let mut jobs = Vec::new();
    // DocSpace requests made by each task's job.
    let mut docspace_calls = Vec::new();
    for task in ["2001", "2002"] {
        let before = docspace.requests().len();
        asana.assign(task, PROJECT, Some(alice.clone()));
        let response = asana
            .deliver(webhook_gid.as_ref(), &assignment_delivery(task, "3001"))
            .await?;
        ensure!(response.status().is_success(), "delivery acknowledged");
        let ack: serde_json::Value = response.json().await?;
        say(&format!(
            "signed delivery for task {task}: HTTP 200, X-Hook-Signature verified, {} job queued before the acknowledgement",
            ack["queued"]
        ));
        // One task at a time: the second job then always finds the first one's invitation in
        // the ledger, so the demo shows the same steps on every run.
        let job = wait_for_jobs(&store, jobs.len() + 1)
            .await?
            .pop()
            .expect("one job per delivery");
        say(&format!(
            "the worker read task {task}'s assignee from Asana: job {} ended {} {}{}",
            job.id,
            job.outcome.as_deref().unwrap_or("?"),
            job.email.as_deref().unwrap_or(""),
            job.last_error
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        ));
        say(&format!(
            "rooms: {}",
            job.room_results.as_deref().unwrap_or("none")
        ));
        docspace_calls.push(docspace.requests().len() - before);
        jobs.push(job);
    }

    step(
        "Bob is assigned a third task, but Asana's delivery never arrives (its webhooks are best effort)",
    );
    let bob = FakeUser::new("3002", "bob@example.com");
    asana.assign("2003", PROJECT, Some(bob));
    say("no delivery: the bridge has not heard of it");

    step(
        "A reconcile pass (the service runs one per project every reconcile.interval_secs; `reconcile run` runs one now) reads what changed at Asana",
    );
    let report = reconcile_now(&store, &upstreams, &settings).await?;
    let window = match report.from {
        // The project's first pass reads every incomplete task, as `backfill` does; later ones
        // only what changed since the previous pass (minus a 5-minute margin).
        None => "its first pass: every incomplete task".to_string(),
        Some(from) => format!("modified_since={from} ms"),
    };
    say(&format!(
        "GET /tasks?project={PROJECT} ({window}): {} page(s), {} task(s) read, {} assigned, {} job(s) queued",
        report.pages, report.read, report.assigned, report.queued
    ));
    say("Alice's two tasks were handled already, so only Bob's assignment was queued");
    let job = wait_for_jobs(&store, jobs.len() + 1)
        .await?
        .pop()
        .expect("the pass queued one job");
    say(&format!(
        "job {} (source {}) ended {} {}; rooms: {}",
        job.id,
        job.source,
        job.outcome.as_deref().unwrap_or("?"),
        job.email.as_deref().unwrap_or(""),
        job.room_results.as_deref().unwrap_or("none")
    ));
    jobs.push(job);

    step("What DocSpace received");
    let sent = docspace.sent_invitations();
    for invitation in &sent {
        say(&format!(
            "invitation for {} as {}",
            invitation.email, invitation.employee_type
        ));
    }
    say(&format!(
        "{} invite request(s) in all: the second task's job found Alice already invited and skipped",
        docspace.invite_requests().len()
    ));
    let rooms = docspace.rooms();
    for room in &rooms {
        say(&format!(
            "room {} \"{}\" (roomType {}, tags {:?})",
            room.id, room.title, room.room_type, room.tags
        ));
        for (email, access) in docspace.members(room.id) {
            say(&format!("  member {email} with access {access}"));
        }
    }
    let shares = docspace.share_requests();
    for share in &shares {
        say(&format!(
            "{} {}: {}",
            share.method,
            share.path,
            String::from_utf8_lossy(&share.body)
        ));
    }
    say(&format!(
        "DocSpace calls per job: {docspace_calls:?}: the second job found Alice in the grants ledger and asked DocSpace nothing"
    ));

    let _ = stop.send(());
    running.await??;
    let outcomes: Vec<String> = jobs
        .iter()
        .map(|j| j.outcome.clone().unwrap_or_default())
        .collect();
    if sent.len() != 2 || outcomes != ["invited", "already_invited", "invited"] {
        bail!(
            "expected Alice invited once, her second task skipped and Bob invited after the pass, got {outcomes:?} and {} invitation(s)",
            sent.len()
        );
    }
    if rooms.len() != 1 || shares.len() != 2 || docspace_calls.get(1) != Some(&0) {
        bail!(
            "expected one room, one share per person and no DocSpace call for Alice's second task, got {} room(s), {} share(s) and calls {docspace_calls:?}",
            rooms.len(),
            shares.len()
        );
    }
    step(
        "Done: two people, three tasks (one never delivered), exactly one invitation and one share each, one room",
    );
    Ok(outcomes)
}

fn load(env: &BridgeEnv) -> anyhow::Result<Settings> {
    Ok(Settings::load_from(Sources {
        file: None,
        env: Some(env.to_map()),
    })?)
}

async fn wait_for_jobs(store: &Store, count: usize) -> anyhow::Result<Vec<JobRecord>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut jobs = store.list_jobs(None, 100).await?;
        if jobs.len() >= count
            && jobs
                .iter()
                .all(|j| matches!(j.status, JobStatus::Done | JobStatus::Failed))
        {
            jobs.reverse();
            return Ok(jobs);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the jobs did not finish within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One reconcile pass of the project now, as `reconcile run --project` runs it.
async fn reconcile_now(
    store: &Store,
    upstreams: &Upstreams,
    settings: &Settings,
) -> anyhow::Result<PassReport> {
    let settings = PassSettings {
        hold: Duration::from_millis(settings.worker.lease_ms),
        interval: settings.reconcile.interval(),
        lifecycle: settings.access.lifecycle(),
    };
    match store
        .claim_project_reconcile(&PROJECT.parse()?, "command:demo", settings.hold)
        .await?
    {
        ClaimOutcome::Claimed(claim) => {
            Ok(run_pass(store, &upstreams.asana_reconcile, &claim, settings).await?)
        }
        other => bail!("the project's pass could not be claimed: {other:?}"),
    }
}

fn step(text: &str) {
    println!("\n==> {text}");
}

fn say(text: &str) {
    println!("    {text}");
}
