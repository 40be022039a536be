//! The operator surface of rooms: `rooms list | link | unlink | create`, `webhooks create` in
//! `auto` mode, `/readyz` on a deleted linked room, `check-config`'s room checks, `backfill
//! --dry-run`'s ROOM column and the ROOMS column of `jobs list`, run as the binary against the
//! fakes.

use std::time::Duration;

use asana_docspace_bridge::store::{Claimant, CreationClaim, CreationState, JobStatus};
use asana_docspace_fakes::{FakeUser, Fault};
use rstest::rstest;
use serde_json::json;

use crate::health::ready_body;
use crate::helpers::{
    Backend, CommandOutput, Env, PROJECT, TestApp, WAIT, assignment_job, eventually, from_webhook,
    gid, job_with_status, settled_jobs,
};

const OTHER: &str = "1200000000000200";
/// A project the Asana fake does not have.
const UNKNOWN: &str = "1200000000000900";

/// `rooms link --project <project> --room <room>`.
async fn link(env: &Env, project: &str, room: i64) -> CommandOutput {
    env.run(&[
        "rooms",
        "link",
        "--project",
        project,
        "--room",
        &room.to_string(),
    ])
    .await
}

/// A ledger row: ann@example.com granted `room` (Editing) by job 1 for task 501.
async fn granted_to_ann(env: &Env, room: i64) {
    env.execute_sql(&format!(
        "INSERT INTO room_grants (email, room_id, project_gid, docspace_user_id, access, state, \
         job_id, task_gid, created_at, granted_at) \
         VALUES ('ann@example.com', {room}, '{PROJECT}', 'u-ann', 10, 'granted', 1, '501', 1, 1)"
    ))
    .await;
}

/// The line of `stdout` that starts with `first` (after spaces).
fn line_of<'a>(stdout: &'a str, first: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(first))
        .unwrap_or_else(|| panic!("a line for {first}: {stdout}"))
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_link_checks_the_room_and_replaces_an_earlier_link(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__ROOMS__MODE", "linked");
    env.run(&["migrate"]).await.expect_code(0);
    env.asana.put_project(PROJECT, "Website");
    env.asana.put_project(OTHER, "Shop");
    let website = env.docspace.create_room("Website", 2, &[]);
    let review = env.docspace.create_room("Reviews", 5, &[]);
    let archived = env.docspace.create_room("Old", 2, &[]);
    env.docspace.archive_room(archived);
    let store = env.store().await;

    let missing = env
        .run(&["rooms", "link", "--project", PROJECT, "--room", "999"])
        .await;
    missing.expect_code(1);
    assert!(
        missing
            .stderr
            .contains("room 999 does not exist in DocSpace (404)"),
        "{}",
        missing.stderr
    );
    let old = env
        .run(&[
            "rooms",
            "link",
            "--project",
            PROJECT,
            "--room",
            &archived.to_string(),
        ])
        .await;
    old.expect_code(1);
    assert!(
        old.stderr
            .contains(&format!("room {archived} is archived in DocSpace")),
        "{}",
        old.stderr
    );
    let unfit = env
        .run(&[
            "rooms",
            "link",
            "--project",
            PROJECT,
            "--room",
            &website.to_string(),
            "--access",
            "Review",
        ])
        .await;
    unfit.expect_code(1);
    assert!(
        unfit.stderr.contains(
            "Review is not available in Collaboration rooms (they allow RoomManager, \
             ContentCreator, Editing or Read)"
        ),
        "{}",
        unfit.stderr
    );
    assert_eq!(unfit.stderr.trim().lines().count(), 1, "{}", unfit.stderr);
    assert_eq!(store.project_room(&gid(PROJECT)).await.unwrap(), None);

    let malformed = env
        .run(&["rooms", "link", "--project", PROJECT, "--room", "x"])
        .await;
    malformed.expect_code(2);
    env.run(&["rooms", "link", "--project", "12ab", "--room", "1"])
        .await
        .expect_code(2);
    let unknown = env
        .run(&[
            "rooms",
            "link",
            "--project",
            UNKNOWN,
            "--room",
            &website.to_string(),
        ])
        .await;
    unknown.expect_code(1);
    assert_eq!(
        unknown.stderr.trim(),
        format!("asana-docspace-bridge: Asana does not know project {UNKNOWN}")
    );
    assert_eq!(store.project_room(&gid(UNKNOWN)).await.unwrap(), None);

    let linked = env
        .run(&[
            "rooms",
            "link",
            "--project",
            PROJECT,
            "--room",
            &website.to_string(),
        ])
        .await;
    linked.expect_code(0);
    assert!(
        linked.stdout.contains(&format!(
            "project {PROJECT} (\"Website\") is linked to room {website} \"Website\""
        )),
        "{}",
        linked.stdout
    );
    assert_eq!(
        store.project_name(&gid(PROJECT)).await.unwrap(),
        Some(Some("Website".to_string())),
        "the name Asana gives"
    );
    let room = store.project_room(&gid(PROJECT)).await.unwrap().unwrap();
    assert_eq!(
        (
            room.room_id,
            room.access,
            room.how.as_str(),
            room.state.as_str()
        ),
        (website, 10, "linked", "active"),
        "rooms.access (Editing) by default"
    );

    let replaced = env
        .run(&[
            "rooms",
            "link",
            "--project",
            PROJECT,
            "--room",
            &review.to_string(),
            "--access",
            "review",
        ])
        .await;
    replaced.expect_code(0);
    assert!(
        replaced
            .stdout
            .contains(&format!("replaces room {website} \"Website\"")),
        "{}",
        replaced.stdout
    );
    let room = store.project_room(&gid(PROJECT)).await.unwrap().unwrap();
    assert_eq!((room.room_id, room.access), (review, 5));

    let taken = env
        .run(&[
            "rooms",
            "link",
            "--project",
            OTHER,
            "--room",
            &review.to_string(),
        ])
        .await;
    taken.expect_code(1);
    assert!(
        taken.stderr.contains(&format!(
            "room {review} is already linked to project {PROJECT}; unlink it first"
        )),
        "{}",
        taken.stderr
    );
    assert_eq!(store.project_room(&gid(OTHER)).await.unwrap(), None);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_list_shows_each_known_project_and_unlink_forgets_the_room(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__ROOMS__MODE", "linked");
    env.run(&["migrate"]).await.expect_code(0);
    let website = env.docspace.create_room("Website", 2, &[]);
    env.execute_sql(&format!(
        "INSERT INTO webhooks (name, secret, created_at, project_gid) \
         VALUES ('shop', 'secret', 1, '{OTHER}')"
    ))
    .await;
    let store = env.store().await;
    env.asana.put_project(PROJECT, "Website project");
    link(&env, PROJECT, website).await.expect_code(0);
    granted_to_ann(&env, website).await;

    let listed = env.run(&["rooms", "list"]).await;
    listed.expect_code(0);
    let header = line_of(&listed.stdout, "PROJECT");
    for column in ["NAME", "ROOM", "TITLE", "ACCESS", "HOW", "STATE", "GRANTED"] {
        assert!(header.contains(column), "{column} in {header}");
    }
    let row: Vec<&str> = line_of(&listed.stdout, PROJECT)
        .split_whitespace()
        .collect();
    assert_eq!(
        row,
        [
            PROJECT,
            "Website",
            "project",
            &website.to_string(),
            "Website",
            "Editing",
            "linked",
            "active",
            "1"
        ]
    );
    let without: Vec<&str> = line_of(&listed.stdout, OTHER).split_whitespace().collect();
    assert_eq!(without, [OTHER, "-", "-", "-", "-", "-", "-", "-"]);
    assert!(
        listed
            .stdout
            .contains("a project without a room (-) grants nothing: `rooms link"),
        "{}",
        listed.stdout
    );

    let unlinked = env.run(&["rooms", "unlink", "--project", PROJECT]).await;
    unlinked.expect_code(0);
    assert!(
        unlinked.stdout.contains("the access granted there stays"),
        "{}",
        unlinked.stdout
    );
    assert_eq!(store.project_room(&gid(PROJECT)).await.unwrap(), None);
    assert_eq!(
        env.docspace.members(website).len(),
        1,
        "only the owner: unlinking removes nobody"
    );
    let again = env.run(&["rooms", "unlink", "--project", PROJECT]).await;
    again.expect_code(1);
    assert!(
        again
            .stderr
            .contains(&format!("project {PROJECT} has no room here")),
        "{}",
        again.stderr
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_unlink_in_auto_mode_warns_that_the_next_job_brings_a_room(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__ROOMS__MODE", "auto");
    env.run(&["migrate"]).await.expect_code(0);
    env.asana.put_project(PROJECT, "Website");
    let website = env.docspace.create_room("Website", 2, &[]);
    env.execute_sql(&format!(
        "INSERT INTO webhooks (name, secret, created_at, project_gid) \
         VALUES ('website', 'secret', 1, '{PROJECT}')"
    ))
    .await;
    link(&env, PROJECT, website).await.expect_code(0);
    let unlinked = env.run(&["rooms", "unlink", "--project", PROJECT]).await;
    unlinked.expect_code(0);
    assert!(
        unlinked.stderr.contains(&format!(
            "its next job adopts or creates a room tagged asana-project:{PROJECT}"
        )),
        "{}",
        unlinked.stderr
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_link_in_off_mode_warns_that_nothing_is_granted(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    env.run(&["migrate"]).await.expect_code(0);
    env.asana.put_project(PROJECT, "Website");
    let website = env.docspace.create_room("Website", 2, &[]);
    let linked = env
        .run(&[
            "rooms",
            "link",
            "--project",
            PROJECT,
            "--room",
            &website.to_string(),
        ])
        .await;
    linked.expect_code(0);
    assert!(
        linked
            .stderr
            .contains("warn rooms.mode (BRIDGE__ROOMS__MODE) is off: no room access is granted"),
        "{}",
        linked.stderr
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_reads_rooms_and_every_linked_room(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__ROOMS__MODE", "linked");
    env.run(&["migrate"]).await.expect_code(0);
    env.asana.put_project(PROJECT, "Website");
    let website = env.docspace.create_room("Website", 2, &[]);
    link(&env, PROJECT, website).await.expect_code(0);

    let fine = env.run(&["check-config"]).await;
    fine.expect_code(0);
    for line in [
        "ok   rooms: linked, Editing",
        "ok   docspace rooms: the key can read rooms",
        &format!("ok   room {website} \"Website\" of project {PROJECT}: exists"),
    ] {
        assert!(fine.stdout.contains(line), "{line}: {}", fine.stdout);
    }

    env.docspace.push_fault("find_rooms", Fault::status(403));
    let refused = env.run(&["check-config"]).await;
    refused.expect_code(1);
    let line = line_of(&refused.stdout, "FAIL docspace rooms");
    assert!(
        line.contains("the key cannot read rooms (")
            && line.ends_with("give it the rooms:write scope"),
        "{line}"
    );

    env.docspace.archive_room(website);
    let archived = env.run(&["check-config"]).await;
    archived.expect_code(1);
    let line = line_of(&archived.stdout, &format!("FAIL room {website}"));
    assert!(
        line.contains(&format!("of project {PROJECT} is archived in DocSpace"))
            && line.contains(&format!("`rooms unlink --project {PROJECT}`")),
        "{line}"
    );

    env.set("BRIDGE__ROOMS__MODE", "auto");
    let auto = env.run(&["check-config"]).await;
    auto.expect_code(0);
    assert!(
        auto.stdout
            .contains("ok   rooms: auto, Editing in new Collaboration rooms titled \"{project}\""),
        "{}",
        auto.stdout
    );
    let line = line_of(&auto.stdout, &format!("warn room {website}"));
    assert!(
        line.contains("next job adopts or creates a new room"),
        "{line}"
    );

    env.set("BRIDGE__ROOMS__MODE", "off");
    let off = env.run(&["check-config"]).await;
    off.expect_code(0);
    assert!(!off.stdout.contains("rooms"), "{}", off.stdout);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_list_shows_what_each_room_got(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    env.run(&["migrate"]).await.expect_code(0);
    let store = env.store().await;
    store
        .enqueue(from_webhook("website"), vec![assignment_job("k1", "501")])
        .await
        .unwrap();
    env.execute_sql(
        r#"UPDATE jobs SET status = 'done', outcome = 'granted', room_results = '[{"project":"1200000000000100","room":45,"access":"Editing","result":"granted","room_event":"created"},{"project":"1200000000000200","room":46,"access":"Read","result":"already_in_room"}]'"#,
    )
    .await;
    let job = store.job(1).await.unwrap().unwrap();
    assert!(
        job.room_results
            .as_deref()
            .is_some_and(|r| r.contains("already_in_room")),
        "{job:?}"
    );

    let listed = env.run(&["jobs", "list"]).await;
    listed.expect_code(0);
    assert!(
        line_of(&listed.stdout, "ID").contains("ROOMS"),
        "{}",
        listed.stdout
    );
    let row = line_of(&listed.stdout, "1 ");
    assert!(
        row.contains("45 granted (created); 46 already_in_room"),
        "{row}"
    );
}

/// FileShare Editing, the default `rooms.access`.
const EDITING: i64 = 10;

/// The one line a refused command printed on stderr.
fn refusal(out: &CommandOutput) -> &str {
    out.expect_code(1);
    let line = out.stderr.trim();
    assert_eq!(line.lines().count(), 1, "one line: {}", out.stderr);
    line
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_create_gives_the_project_one_room_and_refuses_a_second(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__ROOMS__MODE", "linked");
    env.run(&["migrate"]).await.expect_code(0);
    env.asana.put_project(PROJECT, "Website");
    let store = env.store().await;

    let created = env.run(&["rooms", "create", "--project", PROJECT]).await;
    created.expect_code(0);
    let rooms = env.docspace.rooms();
    assert_eq!(rooms.len(), 1, "one room");
    let room = &rooms[0];
    assert!(
        created.stdout.contains(&format!(
            "project {PROJECT} has room {} \"Website\" (created): its assignees get Editing",
            room.id
        )),
        "{}",
        created.stdout
    );
    let posts = env.docspace.room_create_requests();
    assert_eq!(posts.len(), 1, "one POST");
    assert_eq!(
        posts[0].json(),
        json!({"title": "Website", "roomType": 2, "tags": [format!("asana-project:{PROJECT}")]})
    );
    let mapped = store.project_room(&gid(PROJECT)).await.unwrap().unwrap();
    assert_eq!(
        (mapped.room_id, mapped.how.as_str(), mapped.access),
        (room.id, "created", EDITING)
    );
    assert_eq!(
        store.room_creation(&gid(PROJECT)).await.unwrap(),
        None,
        "claim released"
    );

    let again = env.run(&["rooms", "create", "--project", PROJECT]).await;
    assert_eq!(
        refusal(&again),
        format!(
            "asana-docspace-bridge: project {PROJECT} already has room {} \"Website\"",
            room.id
        )
    );
    assert_eq!(
        env.docspace.room_create_requests().len(),
        1,
        "no second POST"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_create_adopts_the_tagged_room_and_refuses_in_one_line(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.run(&["migrate"]).await.expect_code(0);
    env.asana.put_project(PROJECT, "Website");
    let tagged =
        env.docspace
            .create_room("Made by hand", 5, &[&format!("asana-project:{PROJECT}")]);
    let store = env.store().await;

    env.run(&["rooms", "create", "--project", "12ab"])
        .await
        .expect_code(2);
    let unknown = env.run(&["rooms", "create", "--project", UNKNOWN]).await;
    assert_eq!(
        refusal(&unknown),
        format!("asana-docspace-bridge: Asana does not know project {UNKNOWN}")
    );

    env.set("BRIDGE__ROOMS__ACCESS", "Review");
    let unfit = env.run(&["rooms", "create", "--project", PROJECT]).await;
    assert_eq!(
        refusal(&unfit),
        "asana-docspace-bridge: cannot create a room: Review is not available in Collaboration \
         rooms (they allow RoomManager, ContentCreator, Editing or Read); set rooms.access \
         (BRIDGE__ROOMS__ACCESS) or rooms.room_type (BRIDGE__ROOMS__ROOM_TYPE)"
    );
    assert_eq!(store.project_room(&gid(PROJECT)).await.unwrap(), None);

    env.set("BRIDGE__ROOMS__ACCESS", "Editing");
    let adopted = env.run(&["rooms", "create", "--project", PROJECT]).await;
    adopted.expect_code(0);
    assert!(
        adopted
            .stdout
            .contains(&format!("has room {tagged} \"Made by hand\" (adopted)")),
        "{}",
        adopted.stdout
    );
    assert!(
        adopted
            .stderr
            .contains("warn rooms.mode (BRIDGE__ROOMS__MODE) is off"),
        "{}",
        adopted.stderr
    );
    assert!(env.docspace.room_create_requests().is_empty(), "no POST");
    let mapped = store.project_room(&gid(PROJECT)).await.unwrap().unwrap();
    assert_eq!((mapped.room_id, mapped.how.as_str()), (tagged, "created"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_create_replaces_a_deleted_linked_room(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__ROOMS__MODE", "linked");
    env.run(&["migrate"]).await.expect_code(0);
    env.asana.put_project(PROJECT, "Website");
    let old = env.docspace.create_room("Old website", 2, &[]);
    link(&env, PROJECT, old).await.expect_code(0);
    env.docspace.delete_room(old);
    let store = env.store().await;
    store
        .mark_room_gone(&gid(PROJECT), old, "deleted")
        .await
        .unwrap();

    let created = env.run(&["rooms", "create", "--project", PROJECT]).await;
    created.expect_code(0);
    let mapped = store.project_room(&gid(PROJECT)).await.unwrap().unwrap();
    assert_ne!(mapped.room_id, old);
    assert_eq!(
        (mapped.how.as_str(), mapped.state.as_str()),
        ("created", "active")
    );
    assert!(
        created.stdout.contains(&format!(
            "has room {} \"Website\" (created)",
            mapped.room_id
        )),
        "{}",
        created.stdout
    );
    assert!(store.gone_rooms().await.unwrap().is_empty());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_create_forces_past_a_refused_creations_cool_down(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__ROOMS__MODE", "auto");
    env.run(&["migrate"]).await.expect_code(0);
    env.asana.put_project(PROJECT, "Website");
    env.docspace.set_room_quota(Some(0));
    let store = env.store().await;

    let refused = env.run(&["rooms", "create", "--project", PROJECT]).await;
    let line = refusal(&refused);
    assert!(
        line.contains(&format!(
            "DocSpace refused to create the room of project {PROJECT}"
        )) && line.contains("The room limit of your tariff has been reached"),
        "{line}"
    );
    let cooling = store
        .room_creation(&gid(PROJECT))
        .await
        .unwrap()
        .expect("the failure is recorded");
    assert_eq!(cooling.state, CreationState::Failed);
    // A job would be refused now, without a POST.
    let job = Claimant::Command {
        token: "command:test".into(),
    };
    assert!(matches!(
        store
            .claim_room_creation(&gid(PROJECT), &job, Duration::from_secs(5), None, false)
            .await
            .unwrap(),
        CreationClaim::CoolingDown { .. }
    ));

    env.docspace.set_room_quota(None);
    let created = env.run(&["rooms", "create", "--project", PROJECT]).await;
    created.expect_code(0);
    assert!(created.stdout.contains("(created)"), "{}", created.stdout);
    assert_eq!(
        env.docspace.room_create_requests().len(),
        2,
        "one POST each"
    );
    assert_eq!(env.docspace.rooms().len(), 1);
    assert_eq!(store.room_creation(&gid(PROJECT)).await.unwrap(), None);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_create_waits_for_a_live_claim_and_never_takes_it_over(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    // A command waits two request timeouts for another claimant's room.
    env.set("BRIDGE__WORKER__REQUEST_TIMEOUT_MS", "200");
    env.set("BRIDGE__WORKER__LEASE_MS", "1000");
    env.run(&["migrate"]).await.expect_code(0);
    env.asana.put_project(PROJECT, "Website");
    env.execute_sql(&format!(
        "INSERT INTO room_creations (project_gid, claim_token, job_id, state, claimed_until, \
         updated_at) VALUES ('{PROJECT}', 'job:7', 7, 'claimed', 99999999999999, 1)"
    ))
    .await;

    let waited = env.run(&["rooms", "create", "--project", PROJECT]).await;
    assert_eq!(
        refusal(&waited),
        format!(
            "asana-docspace-bridge: room of project {PROJECT} is being created by job 7; try \
             again in a minute"
        )
    );
    assert!(
        env.docspace.requests_to("/api/2.0/files/rooms").is_empty(),
        "no search, no POST"
    );
    let claim = env
        .store()
        .await
        .room_creation(&gid(PROJECT))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((claim.token.as_str(), claim.job_id), ("job:7", Some(7)));
}

/// The service, and the CLI's settings pointed at it for `webhooks create`.
async fn serving(env: &mut Env) -> TestApp {
    let app = TestApp::spawn(env).await;
    let address = app.bridge.address.clone();
    env.set("BRIDGE__SERVER__PUBLIC_URL", &address);
    app
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_create_in_auto_mode_gives_the_project_its_room(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__ROOMS__MODE", "auto");
    env.asana.put_project(PROJECT, "Website");
    env.asana.put_project(OTHER, "Shop");
    let _app = serving(&mut env).await;
    let store = env.store().await;

    let out = env
        .run(&["webhooks", "create", "--project", PROJECT, "--name", "site"])
        .await;
    out.expect_code(0);
    let rooms = env.docspace.rooms();
    assert_eq!(rooms.len(), 1);
    assert_eq!(
        line_of(&out.stdout, "room:").trim(),
        format!("room:        {} \"Website\" (created)", rooms[0].id)
    );
    assert_eq!(env.docspace.room_create_requests().len(), 1, "one POST");
    let mapped = store.project_room(&gid(PROJECT)).await.unwrap().unwrap();
    assert_eq!(mapped.room_id, rooms[0].id);

    // A project whose room DocSpace refuses keeps its webhook.
    env.docspace.set_room_quota(Some(1));
    let refused = env
        .run(&["webhooks", "create", "--project", OTHER, "--name", "shop"])
        .await;
    let line = refusal(&refused);
    assert!(
        line.contains(&format!(
            "the webhook is registered, but project {OTHER} has no room"
        )) && line.contains("The room limit of your tariff has been reached")
            && line.ends_with(&format!(
                "`asana-docspace-bridge rooms create --project {OTHER}`"
            ))
            && line.matches("rooms create").count() == 1,
        "{line}"
    );
    assert!(
        refused.stdout.contains("Created webhook"),
        "{}",
        refused.stdout
    );
    assert!(
        store.find_webhook("shop").await.unwrap().is_some(),
        "the webhook stays"
    );
    assert!(env.asana.webhooks().iter().any(|h| h.resource == OTHER));
    assert_eq!(store.project_room(&gid(OTHER)).await.unwrap(), None);

    // A project with a room keeps it.
    let linked = env.docspace.create_room("Shop room", 2, &[]);
    env.set("BRIDGE__ROOMS__MODE", "linked");
    link(&env, OTHER, linked).await.expect_code(0);
    env.set("BRIDGE__ROOMS__MODE", "auto");
    let kept = env
        .run(&["webhooks", "create", "--project", OTHER, "--name", "shop2"])
        .await;
    kept.expect_code(0);
    assert_eq!(
        line_of(&kept.stdout, "room:").trim(),
        format!("room:        {linked} \"Shop room\" (already linked)")
    );
    assert_eq!(
        env.docspace.room_create_requests().len(),
        2,
        "no POST for a linked project"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_linked_room_degrades_readiness_until_another_is_linked(
    #[case] backend: Backend,
) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__ROOMS__MODE", "linked");
    env.run(&["migrate"]).await.expect_code(0);
    env.asana.put_project(PROJECT, "Website");
    env.docspace.add_member("jane@example.com");
    env.assign("501", "601", "jane@example.com");
    let first = env.docspace.create_room("Website", 2, &[]);
    link(&env, PROJECT, first).await.expect_code(0);
    env.docspace.delete_room(first);
    let store = env.store().await;
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;
    assert_eq!(ready_body(&app).await["status"], "ready");

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;
    let failed = eventually("the job fails", WAIT, || async {
        let jobs = settled_jobs(&store).await;
        jobs.into_iter().find(|j| j.status == JobStatus::Failed)
    })
    .await;

    let (status, body) = app.bridge.readyz().await;
    assert_eq!(status, 200, "degraded is still ready: {body}");
    assert_eq!(body["status"], "degraded", "{body}");
    let reason = body["degraded"]["rooms"][PROJECT]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.starts_with(&format!(
            "room {first} linked to project {PROJECT} (\"Website\") was deleted in DocSpace (404)"
        )) && reason.contains(&format!("rooms link --project {PROJECT} --room <ROOM_ID>"))
            && reason.contains(&format!("rooms unlink --project {PROJECT}")),
        "{body}"
    );

    let second = env.docspace.create_room("Website 2", 2, &[]);
    link(&env, PROJECT, second).await.expect_code(0);
    let (_, body) = app.bridge.readyz().await;
    assert_eq!(body["status"], "ready", "{body}");
    assert!(body.get("degraded").is_none(), "{body}");

    env.run(&["jobs", "retry", &failed.id.to_string()])
        .await
        .expect_code(0);
    let done = job_with_status(&store, failed.id, JobStatus::Done).await;
    assert_eq!(done.outcome.as_deref(), Some("granted"));
    assert!(
        env.docspace
            .members(second)
            .contains(&("jane@example.com".to_string(), EDITING))
    );

    // Archived later, then unlinked: degraded, then ready again.
    env.docspace.archive_room(second);
    store
        .mark_room_gone(&gid(PROJECT), second, "archived")
        .await
        .unwrap();
    let (_, body) = app.bridge.readyz().await;
    let reason = body["degraded"]["rooms"][PROJECT]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains("is archived in DocSpace: restore it, or"),
        "{body}"
    );
    env.run(&["rooms", "unlink", "--project", PROJECT])
        .await
        .expect_code(0);
    let (_, body) = app.bridge.readyz().await;
    assert_eq!(body["status"], "ready", "{body}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_dry_run_shows_each_persons_room_from_the_ledger(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__ROOMS__MODE", "linked");
    env.run(&["migrate"]).await.expect_code(0);
    env.asana.put_project(PROJECT, "Website");
    env.asana.assign(
        "501",
        PROJECT,
        Some(FakeUser::new("601", "ann@example.com")),
    );
    env.asana.assign(
        "502",
        PROJECT,
        Some(FakeUser::new("602", "bob@example.com")),
    );
    let room = env.docspace.create_room("Website", 2, &[]);
    link(&env, PROJECT, room).await.expect_code(0);
    granted_to_ann(&env, room).await;
    let requests_before = env.docspace.requests().len();

    let dry = env
        .run(&["backfill", "--project", PROJECT, "--dry-run"])
        .await;
    dry.expect_code(0);
    assert!(
        line_of(&dry.stdout, "EMAIL").contains("ROOM"),
        "{}",
        dry.stdout
    );
    assert!(
        line_of(&dry.stdout, "ann@example.com")
            .trim_end()
            .ends_with(&format!("room {room}: already granted")),
        "{}",
        dry.stdout
    );
    assert!(
        line_of(&dry.stdout, "bob@example.com")
            .trim_end()
            .ends_with(&format!("room {room}: would grant Editing")),
        "{}",
        dry.stdout
    );
    let room_calls = env.docspace.requests()[requests_before..]
        .iter()
        .filter(|r| r.path.starts_with("/api/2.0/files/rooms"))
        .count();
    assert_eq!(room_calls, 0, "the ledger answers, not DocSpace");

    env.set("BRIDGE__ROOMS__MODE", "auto");
    env.run(&["rooms", "unlink", "--project", PROJECT])
        .await
        .expect_code(0);
    env.execute_sql(&format!(
        "INSERT INTO webhooks (name, secret, created_at, project_gid) \
         VALUES ('site', 'secret', 1, '{PROJECT}')"
    ))
    .await;
    let auto = env
        .run(&["backfill", "--project", PROJECT, "--dry-run"])
        .await;
    auto.expect_code(0);
    assert!(
        line_of(&auto.stdout, "bob@example.com")
            .trim_end()
            .ends_with("no room yet (auto creates one)"),
        "{}",
        auto.stdout
    );

    env.set("BRIDGE__ROOMS__MODE", "off");
    let off = env
        .run(&["backfill", "--project", PROJECT, "--dry-run"])
        .await;
    off.expect_code(0);
    assert!(
        line_of(&off.stdout, "bob@example.com")
            .trim_end()
            .ends_with(" -"),
        "{}",
        off.stdout
    );
}
