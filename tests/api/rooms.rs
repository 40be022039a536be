//! Rooms in `linked` mode, end to end: a job grants its assignee the linked room of the task's
//! project after reading the members, leaves people already in the room alone, and shares a
//! (person, room) once.

use std::time::Duration;

use asana_docspace_bridge::store::{GrantState, NewProjectRoom, Store};
use asana_docspace_fakes::Fault;
use rstest::rstest;
use serde_json::json;

use crate::helpers::{Backend, Env, PROJECT, TestApp, WAIT, email, eventually, gid, settled_jobs};

/// FileShare Editing, the default `rooms.access`.
const EDITING: i64 = 10;
/// FileShare Read.
const READ: i64 = 2;

/// A Collaboration room in the fake, linked to the test project with `access`.
async fn linked_room(env: &Env, store: &Store, access: i64) -> i64 {
    let room = env.docspace.create_room("Website", 2, &[]);
    store
        .link_project_room(
            NewProjectRoom {
                project_gid: gid(PROJECT),
                room_id: room,
                room_title: "Website".into(),
                room_type: 2,
                access,
            },
            Some("Website"),
        )
        .await
        .unwrap();
    room
}

fn linked_env(env: &mut Env) {
    env.set("BRIDGE__ROOMS__MODE", "linked");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_member_is_granted_the_linked_room_by_id(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    linked_env(&mut env);
    env.docspace.add_member("jane@example.com");
    env.assign("501", "601", "jane@example.com");
    let store = env.store().await;
    let room = linked_room(&env, &store, EDITING).await;
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    let jobs = eventually("the job settles", WAIT, || async {
        let jobs = settled_jobs(&store).await;
        (!jobs.is_empty()).then_some(jobs)
    })
    .await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("granted"));
    let shares = env.docspace.share_requests();
    assert_eq!(shares.len(), 1, "one share");
    let user_id = env.docspace.user_id("jane@example.com").unwrap();
    assert_eq!(
        shares[0].json(),
        json!({"invitations": [{"id": user_id, "access": EDITING}], "notify": true})
    );
    assert!(env.docspace.sent_invitations().is_empty(), "no invitation");
    assert!(
        env.docspace
            .members(room)
            .contains(&("jane@example.com".to_string(), EDITING))
    );
    let grants = store
        .live_grants_of(&email("jane@example.com"))
        .await
        .unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].state, GrantState::Granted);
    assert_eq!(grants[0].room_id, room);
    assert_eq!(grants[0].docspace_user_id, user_id);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_person_is_invited_then_read_then_shared_in_that_order(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    linked_env(&mut env);
    env.assign("501", "601", "new@example.com");
    let store = env.store().await;
    let room = linked_room(&env, &store, EDITING).await;
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    let jobs = eventually("the job settles", WAIT, || async {
        let jobs = settled_jobs(&store).await;
        (!jobs.is_empty()).then_some(jobs)
    })
    .await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("invited"));
    let paths: Vec<String> = env
        .docspace
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let share_path = format!("PUT /api/2.0/files/rooms/{room}/share");
    let members_path = format!("GET /api/2.0/files/rooms/{room}/share");
    let position = |wanted: &str| {
        paths
            .iter()
            .position(|p| p == wanted)
            .unwrap_or_else(|| panic!("{wanted} in {paths:?}"))
    };
    assert!(position("POST /api/2.0/people/invite") < position(&members_path));
    assert!(position(&members_path) < position(&share_path));
    assert!(
        env.docspace
            .members(room)
            .contains(&("new@example.com".to_string(), EDITING))
    );
    assert_eq!(
        store.sent_invitations().await.unwrap(),
        vec!["new@example.com"]
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_already_in_the_room_keeps_their_access(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    linked_env(&mut env);
    env.docspace.add_member("jane@example.com");
    env.assign("501", "601", "jane@example.com");
    let store = env.store().await;
    let room = linked_room(&env, &store, EDITING).await;
    env.docspace.share_by_hand(room, "jane@example.com", READ);
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    let jobs = eventually("the job settles", WAIT, || async {
        let jobs = settled_jobs(&store).await;
        (!jobs.is_empty()).then_some(jobs)
    })
    .await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("already_member"));
    assert!(env.docspace.share_requests().is_empty(), "no share");
    assert!(
        env.docspace
            .members(room)
            .contains(&("jane@example.com".to_string(), READ))
    );
    let grants = store
        .live_grants_of(&email("jane@example.com"))
        .await
        .unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].state, GrantState::HadAccess);
    assert_eq!(grants[0].access, READ);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_task_of_the_same_person_makes_no_docspace_call(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    linked_env(&mut env);
    env.docspace.add_member("jane@example.com");
    env.assign("501", "601", "jane@example.com");
    env.assign("502", "601", "jane@example.com");
    let store = env.store().await;
    linked_room(&env, &store, EDITING).await;
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;
    eventually("the first job settles", WAIT, || async {
        (settled_jobs(&store).await.len() == 1).then_some(())
    })
    .await;
    let calls_after_first = env.docspace.requests().len();
    app.bridge
        .deliver_assignment("proj", &secret, "502", "601")
        .await;
    let jobs = eventually("the second job settles", WAIT, || async {
        let jobs = settled_jobs(&store).await;
        (jobs.len() == 2).then_some(jobs)
    })
    .await;

    assert_eq!(env.docspace.share_requests().len(), 1, "one share in all");
    assert_eq!(
        env.docspace.requests().len(),
        calls_after_first,
        "the ledger answered the second job"
    );
    let outcomes: Vec<_> = jobs.iter().filter_map(|j| j.outcome.clone()).collect();
    assert!(outcomes.contains(&"granted".to_string()), "{outcomes:?}");
    assert!(
        outcomes.contains(&"already_member".to_string()),
        "{outcomes:?}"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_linked_room_fails_the_job_naming_project_room_and_command(
    #[case] backend: Backend,
) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    linked_env(&mut env);
    env.docspace.add_member("jane@example.com");
    env.assign("501", "601", "jane@example.com");
    let store = env.store().await;
    let room = linked_room(&env, &store, EDITING).await;
    env.docspace.delete_room(room);
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    let jobs = eventually("the job settles", WAIT, || async {
        let jobs = settled_jobs(&store).await;
        (!jobs.is_empty()).then_some(jobs)
    })
    .await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("failed"));
    assert_eq!(jobs[0].attempts, 1, "failed at the first attempt");
    let error = jobs[0].last_error.as_deref().unwrap();
    assert!(
        error.contains(&format!("room {room} linked to project {PROJECT}")),
        "{error}"
    );
    assert!(
        error.contains(&format!("rooms link --project {PROJECT} --room <ROOM_ID>")),
        "{error}"
    );
    assert!(env.docspace.share_requests().is_empty());
    let gone = store.gone_rooms().await.unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].room_id, room);
}

/// Makes the test project known through a confirmed webhook, named "Website" by the store.
async fn known_project(env: &Env, store: &Store) {
    env.execute_sql(&format!(
        "INSERT INTO webhooks (name, secret, created_at, project_gid) \
         VALUES ('website', 'secret', 1, '{PROJECT}')"
    ))
    .await;
    store
        .upsert_project(&gid(PROJECT), Some("Website"))
        .await
        .unwrap();
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_the_first_job_creates_the_tagged_room_then_shares_it(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__ROOMS__MODE", "auto");
    env.docspace.add_member("jane@example.com");
    env.assign("501", "601", "jane@example.com");
    let store = env.store().await;
    known_project(&env, &store).await;
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    let jobs = eventually("the job settles", WAIT, || async {
        let jobs = settled_jobs(&store).await;
        (!jobs.is_empty()).then_some(jobs)
    })
    .await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("granted"));
    let creates = env.docspace.room_create_requests();
    assert_eq!(creates.len(), 1, "one room created");
    let tag = format!("asana-project:{PROJECT}");
    let body = creates[0].json();
    assert_eq!(body["roomType"], 2);
    assert_eq!(body["tags"], json!([tag]));
    assert!(body.get("private").is_none(), "{body}");
    let rooms = env.docspace.rooms();
    assert_eq!(rooms.len(), 1);
    let mapped = store.project_room(&gid(PROJECT)).await.unwrap().unwrap();
    assert_eq!(mapped.room_id, rooms[0].id);
    assert_eq!(mapped.how, "created");
    assert!(
        env.docspace
            .members(rooms[0].id)
            .contains(&("jane@example.com".to_string(), EDITING))
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_adopts_an_existing_tagged_room_without_creating_one(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__ROOMS__MODE", "auto");
    env.docspace.add_member("jane@example.com");
    env.assign("501", "601", "jane@example.com");
    let tag = format!("asana-project:{PROJECT}");
    let existing = env.docspace.create_room("Website", 2, &[tag.as_str()]);
    let store = env.store().await;
    known_project(&env, &store).await;
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    let jobs = eventually("the job settles", WAIT, || async {
        let jobs = settled_jobs(&store).await;
        (!jobs.is_empty()).then_some(jobs)
    })
    .await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("granted"));
    assert!(env.docspace.room_create_requests().is_empty(), "no POST");
    let mapped = store.project_room(&gid(PROJECT)).await.unwrap().unwrap();
    assert_eq!(mapped.room_id, existing);
    assert!(
        env.docspace
            .members(existing)
            .contains(&("jane@example.com".to_string(), EDITING))
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_mode_never_asks_docspace_about_rooms(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    env.docspace.add_member("jane@example.com");
    env.assign("501", "601", "jane@example.com");
    let store = env.store().await;
    known_project(&env, &store).await;
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    let jobs = eventually("the job settles", WAIT, || async {
        let jobs = settled_jobs(&store).await;
        (!jobs.is_empty()).then_some(jobs)
    })
    .await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("already_member"));
    assert!(
        env.docspace
            .requests()
            .iter()
            .all(|r| !r.path.starts_with("/api/2.0/files/rooms")),
        "no room request"
    );
    let task = store.task(&gid("501")).await.unwrap().unwrap();
    assert_eq!(task.assignee_email.as_deref(), Some("jane@example.com"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_first_jobs_for_one_project_make_one_room(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__ROOMS__MODE", "auto");
    env.set("BRIDGE__WORKER__CONCURRENCY", "20");
    let people: Vec<String> = (0..20).map(|i| format!("p{i}@example.com")).collect();
    for (i, person) in people.iter().enumerate() {
        env.docspace.add_member(person);
        env.assign(&format!("{}", 500 + i), &format!("{}", 600 + i), person);
    }
    env.docspace
        .push_fault("create_room", Fault::Delay(Duration::from_millis(200)));
    let store = env.store().await;
    known_project(&env, &store).await;
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    for i in 0..20 {
        app.bridge
            .deliver_assignment(
                "proj",
                &secret,
                &format!("{}", 500 + i),
                &format!("{}", 600 + i),
            )
            .await;
    }

    eventually("every job is granted", WAIT, || async {
        let jobs = settled_jobs(&store).await;
        (jobs.len() == 20 && jobs.iter().all(|j| j.outcome.as_deref() == Some("granted")))
            .then_some(())
    })
    .await;
    assert_eq!(env.docspace.room_create_requests().len(), 1, "one POST");
    let rooms = env.docspace.rooms();
    assert_eq!(rooms.len(), 1);
    let mapped = store.project_room(&gid(PROJECT)).await.unwrap().unwrap();
    assert_eq!(mapped.room_id, rooms[0].id);
    assert_eq!(env.docspace.share_requests().len(), 20, "one share each");
    let members = env.docspace.members(rooms[0].id);
    for person in &people {
        assert!(members.contains(&(person.clone(), EDITING)), "{person}");
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_member_gets_no_share(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    linked_env(&mut env);
    env.docspace.add_member("jane@example.com");
    env.docspace.disable("jane@example.com");
    env.assign("501", "601", "jane@example.com");
    let store = env.store().await;
    linked_room(&env, &store, EDITING).await;
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    let jobs = eventually("the job settles", WAIT, || async {
        let jobs = settled_jobs(&store).await;
        (!jobs.is_empty()).then_some(jobs)
    })
    .await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("already_member"));
    assert!(env.docspace.share_requests().is_empty(), "no share");
    assert!(
        store
            .live_grants_of(&email("jane@example.com"))
            .await
            .unwrap()
            .is_empty(),
        "nothing in the ledger"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subtask_two_levels_down_is_granted_its_top_task_project_room(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    linked_env(&mut env);
    env.docspace.add_member("jane@example.com");
    env.asana.assign("500", PROJECT, None);
    env.asana.assign_subtask("510", "500", None);
    env.asana.assign_subtask(
        "511",
        "510",
        Some(asana_docspace_fakes::FakeUser::new(
            "601",
            "jane@example.com",
        )),
    );
    let store = env.store().await;
    let room = linked_room(&env, &store, EDITING).await;
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "511", "601")
        .await;

    let jobs = eventually("the job settles", WAIT, || async {
        let jobs = settled_jobs(&store).await;
        (!jobs.is_empty()).then_some(jobs)
    })
    .await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("granted"));
    assert!(
        env.docspace
            .members(room)
            .contains(&("jane@example.com".to_string(), EDITING))
    );
    let projects = store.task_projects(&gid("511")).await.unwrap();
    assert_eq!(projects.len(), 1);
    assert_eq!(projects[0].project_gid, gid(PROJECT));
    assert_eq!(projects[0].via_task_gid, gid("500"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_answered_never_is_confirmed_by_the_retry_without_a_second_put(
    #[case] backend: Backend,
) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    linked_env(&mut env);
    env.docspace.add_member("jane@example.com");
    env.assign("501", "601", "jane@example.com");
    env.docspace.push_fault("share_room", Fault::HangAfterWork);
    let store = env.store().await;
    let room = linked_room(&env, &store, EDITING).await;
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    let jobs = eventually("the job settles", WAIT, || async {
        let jobs = settled_jobs(&store).await;
        (!jobs.is_empty()).then_some(jobs)
    })
    .await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("granted"));
    assert!(jobs[0].attempts >= 2, "the first attempt timed out");
    assert_eq!(env.docspace.share_requests().len(), 1, "one PUT");
    let grants = store
        .live_grants_of(&email("jane@example.com"))
        .await
        .unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].state, GrantState::Granted);
    assert_eq!(grants[0].room_id, room);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_created_without_an_answer_is_adopted_by_the_retry(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__ROOMS__MODE", "auto");
    env.docspace.add_member("jane@example.com");
    env.assign("501", "601", "jane@example.com");
    env.docspace.push_fault("create_room", Fault::HangAfterWork);
    let store = env.store().await;
    known_project(&env, &store).await;
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    let jobs = eventually("the job settles", WAIT, || async {
        let jobs = settled_jobs(&store).await;
        (!jobs.is_empty()).then_some(jobs)
    })
    .await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("granted"));
    assert_eq!(env.docspace.room_create_requests().len(), 1, "one POST");
    let rooms = env.docspace.rooms();
    assert_eq!(rooms.len(), 1, "one room");
    let mapped = store.project_room(&gid(PROJECT)).await.unwrap().unwrap();
    assert_eq!(mapped.room_id, rooms[0].id);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_creation_fails_at_once_and_cools_down_without_another_post(
    #[case] backend: Backend,
) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__ROOMS__MODE", "auto");
    env.docspace.add_member("jane@example.com");
    env.docspace.add_member("joe@example.com");
    env.assign("501", "601", "jane@example.com");
    env.assign("502", "602", "joe@example.com");
    env.docspace.set_room_quota(Some(0));
    let store = env.store().await;
    known_project(&env, &store).await;
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;
    let first = eventually("the first job settles", WAIT, || async {
        let jobs = settled_jobs(&store).await;
        (jobs.len() == 1).then_some(jobs)
    })
    .await;
    assert_eq!(first[0].outcome.as_deref(), Some("failed"));
    assert_eq!(first[0].attempts, 1, "failed at once");
    let error = first[0].last_error.as_deref().unwrap();
    assert!(error.contains("room limit"), "{error}");

    app.bridge
        .deliver_assignment("proj", &secret, "502", "602")
        .await;
    let jobs = eventually("the second job settles", WAIT, || async {
        let jobs = settled_jobs(&store).await;
        (jobs.len() == 2).then_some(jobs)
    })
    .await;
    assert!(jobs.iter().all(|j| j.outcome.as_deref() == Some("failed")));
    assert_eq!(env.docspace.room_create_requests().len(), 1, "one POST");
    assert!(env.docspace.rooms().is_empty());
}
