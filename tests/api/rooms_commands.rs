//! The operator surface of rooms: `rooms list | link | unlink`, `check-config`'s room checks and
//! the ROOMS column of `jobs list`, run as the binary against the DocSpace fake.

use asana_docspace_fakes::Fault;
use rstest::rstest;

use crate::helpers::{Backend, Env, PROJECT, assignment_job, from_webhook, gid};

const OTHER: &str = "1200000000000200";

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
            .stdout
            .contains(&format!("linked to room {website} \"Website\"")),
        "{}",
        linked.stdout
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
    store
        .upsert_project(&gid(PROJECT), Some("Website project"))
        .await
        .unwrap();
    env.run(&[
        "rooms",
        "link",
        "--project",
        PROJECT,
        "--room",
        &website.to_string(),
    ])
    .await
    .expect_code(0);
    env.execute_sql(&format!(
        "INSERT INTO room_grants (email, room_id, project_gid, docspace_user_id, access, state, \
         job_id, task_gid, created_at, granted_at) \
         VALUES ('ann@example.com', {website}, '{PROJECT}', 'u-ann', 10, 'granted', 1, '501', 1, 1)"
    ))
    .await;

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
    let website = env.docspace.create_room("Website", 2, &[]);
    env.execute_sql(&format!(
        "INSERT INTO webhooks (name, secret, created_at, project_gid) \
         VALUES ('website', 'secret', 1, '{PROJECT}')"
    ))
    .await;
    env.run(&[
        "rooms",
        "link",
        "--project",
        PROJECT,
        "--room",
        &website.to_string(),
    ])
    .await
    .expect_code(0);
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
    let website = env.docspace.create_room("Website", 2, &[]);
    env.run(&[
        "rooms",
        "link",
        "--project",
        PROJECT,
        "--room",
        &website.to_string(),
    ])
    .await
    .expect_code(0);

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
