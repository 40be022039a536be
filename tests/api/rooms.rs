//! Rooms in `linked` mode, end to end: a job grants its assignee the linked room of the task's
//! project after reading the members, leaves people already in the room alone, and shares a
//! (person, room) once.

use std::collections::BTreeMap;
use std::time::Duration;

use asana_docspace_bridge::store::{GrantState, JobRecord, JobStatus, NewProjectRoom, Store};
use asana_docspace_fakes::{FakeTask, FakeUser, Fault};
use rstest::rstest;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, Bridge, BridgeProcess, Env, PROJECT, TestApp, WAIT, email, eventually, gid,
    parse_metrics, sample, settled_jobs,
};

/// FileShare Editing, the default `rooms.access`.
const EDITING: i64 = 10;
/// FileShare Read.
const READ: i64 = 2;

/// FileShare RoomManager.
const ROOM_MANAGER: i64 = 9;
/// RoomType Collaboration and Public.
const COLLABORATION: i64 = 2;
const PUBLIC: i64 = 6;

/// A Collaboration room in the fake, linked to the test project with `access`.
async fn linked_room(env: &Env, store: &Store, access: i64) -> i64 {
    link_new_room(env, store, PROJECT, COLLABORATION, access).await
}

/// A room of `room_type` in the fake, linked to `project` with `access` through the store (as
/// `rooms link` does, without its checks).
async fn link_new_room(
    env: &Env,
    store: &Store,
    project: &str,
    room_type: i64,
    access: i64,
) -> i64 {
    let room = env.docspace.create_room("Website", room_type, &[]);
    store
        .link_project_room(
            NewProjectRoom {
                project_gid: gid(project),
                room_id: room,
                room_title: "Website".into(),
                room_type,
                access,
            },
            Some("Website"),
        )
        .await
        .unwrap();
    room
}

/// The job's `room_results`, parsed.
fn room_results(job: &JobRecord) -> Vec<Value> {
    let stored = job.room_results.as_deref().expect("room results recorded");
    serde_json::from_str(stored).expect("room results are JSON")
}

/// The job of task `task_gid` among `jobs`.
fn job_of<'a>(jobs: &'a [JobRecord], task_gid: &str) -> &'a JobRecord {
    jobs.iter()
        .find(|j| j.task_gid.as_str() == task_gid)
        .unwrap_or_else(|| panic!("no job for task {task_gid}"))
}

/// What the bridge's `/metrics` shows now, parsed.
async fn metrics_of(bridge: &Bridge) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let text = bridge
        .client
        .get(bridge.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    parse_metrics(&text)
}

/// The one job failed at its first attempt on DocSpace's 403 "role not available" for its one
/// share, and jane@example.com is not in `room`.
fn assert_role_refused(env: &Env, jobs: &[JobRecord], room: i64) {
    assert_eq!(jobs[0].outcome.as_deref(), Some("failed"));
    assert_eq!(jobs[0].attempts, 1, "no retry");
    let error = jobs[0].last_error.as_deref().unwrap();
    assert!(
        error.contains("403") && error.contains("role not available"),
        "{error}"
    );
    assert_eq!(env.docspace.share_requests().len(), 1, "one PUT");
    assert!(
        !env.docspace
            .members(room)
            .iter()
            .any(|(who, _)| who == "jane@example.com")
    );
}

/// Registers the `proj` webhook, delivers task 501's assignment (to user 601) and waits until
/// every job has settled: the delivery is acknowledged once its job is queued.
async fn assignment_settled(bridge: &Bridge, store: &Store) -> Vec<JobRecord> {
    let secret = bridge.register("proj").await;
    bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;
    settled_jobs(store).await
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
    let jobs = assignment_settled(&app.bridge, &store).await;
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
    let jobs = assignment_settled(&app.bridge, &store).await;
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
    let jobs = assignment_settled(&app.bridge, &store).await;
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
    let jobs = assignment_settled(&app.bridge, &store).await;
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
    env.database
        .add_known_project("website", PROJECT, "Website")
        .await;
    let app = TestApp::spawn(&env).await;
    let jobs = assignment_settled(&app.bridge, &store).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("granted"));
    let creates = env.docspace.room_create_requests();
    assert_eq!(creates.len(), 1, "one room created");
    let tag = format!("asana-project:{PROJECT}");
    let body = creates[0].json();
    assert_eq!(body["roomType"], 2);
    assert_eq!(body["tags"], json!([tag]));
    assert!(body.get("private").is_none(), "{body}");
    // Titled after the project's name as the task read showed it (rooms.title = {project}).
    assert_eq!(body["title"], format!("Project {PROJECT}"));
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
    env.database
        .add_known_project("website", PROJECT, "Website")
        .await;
    let app = TestApp::spawn(&env).await;
    let jobs = assignment_settled(&app.bridge, &store).await;
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
    env.database
        .add_known_project("website", PROJECT, "Website")
        .await;
    let app = TestApp::spawn(&env).await;
    let jobs = assignment_settled(&app.bridge, &store).await;
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
    env.database
        .add_known_project("website", PROJECT, "Website")
        .await;
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
    let jobs = assignment_settled(&app.bridge, &store).await;
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
    env.asana
        .assign_subtask("511", "510", Some(FakeUser::new("601", "jane@example.com")));
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
    let jobs = assignment_settled(&app.bridge, &store).await;
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
    env.database
        .add_known_project("website", PROJECT, "Website")
        .await;
    let app = TestApp::spawn(&env).await;
    let jobs = assignment_settled(&app.bridge, &store).await;
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
    env.database
        .add_known_project("website", PROJECT, "Website")
        .await;
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

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fuzzy_members_match_is_not_taken_for_the_person(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    linked_env(&mut env);
    env.docspace.add_member("ann@example.com");
    env.assign("501", "601", "ann@example.com");
    let store = env.store().await;
    let room = linked_room(&env, &store, EDITING).await;
    // The members filter is a text search: "ann@example.com" finds joann too.
    env.docspace.share_by_hand(room, "joann@example.com", READ);
    let app = TestApp::spawn(&env).await;
    let jobs = assignment_settled(&app.bridge, &store).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("granted"));
    let shares = env.docspace.share_requests();
    assert_eq!(shares.len(), 1, "one share");
    let ann = env.docspace.user_id("ann@example.com").unwrap();
    assert_eq!(
        shares[0].json()["invitations"],
        json!([{"id": ann, "access": EDITING}])
    );
    let members = env.docspace.members(room);
    assert!(members.contains(&("ann@example.com".to_string(), EDITING)));
    assert!(
        members.contains(&("joann@example.com".to_string(), READ)),
        "joann untouched: {members:?}"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_in_two_known_projects_gets_each_room_with_its_access(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    linked_env(&mut env);
    const DOCS: &str = "1200000000000200";
    const UNKNOWN: &str = "1200000000000300";
    env.docspace.add_member("jane@example.com");
    env.asana.put_task(FakeTask {
        gid: "501".into(),
        name: "Task 501".into(),
        assignee: Some(FakeUser::new("601", "jane@example.com")),
        completed: false,
        projects: vec![PROJECT.into(), DOCS.into(), UNKNOWN.into()],
        parent: None,
    });
    let store = env.store().await;
    let website = link_new_room(&env, &store, PROJECT, COLLABORATION, EDITING).await;
    let docs = link_new_room(&env, &store, DOCS, COLLABORATION, READ).await;
    let app = TestApp::spawn(&env).await;
    let jobs = assignment_settled(&app.bridge, &store).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("granted"));
    let jane = env.docspace.user_id("jane@example.com").unwrap();
    let mut shares: Vec<(String, Value)> = env
        .docspace
        .share_requests()
        .iter()
        .map(|r| (r.path.clone(), r.json()["invitations"].clone()))
        .collect();
    shares.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        (
            format!("/api/2.0/files/rooms/{website}/share"),
            json!([{"id": jane, "access": EDITING}]),
        ),
        (
            format!("/api/2.0/files/rooms/{docs}/share"),
            json!([{"id": jane, "access": READ}]),
        ),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(shares, expected, "one share per known project's room");
    assert!(
        env.docspace
            .requests()
            .iter()
            .all(|r| !r.path.contains(UNKNOWN)),
        "the unknown project is ignored"
    );
    let mut results: Vec<(String, i64, String, String)> = room_results(&jobs[0])
        .iter()
        .map(|r| {
            (
                r["project"].as_str().unwrap().to_string(),
                r["room"].as_i64().unwrap(),
                r["access"].as_str().unwrap().to_string(),
                r["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    results.sort();
    assert_eq!(
        results,
        vec![
            (PROJECT.into(), website, "Editing".into(), "granted".into()),
            (DOCS.into(), docs, "Read".into(), "granted".into()),
        ]
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_the_room_does_not_offer_fails_at_once_and_counts_as_a_failed_grant(
    #[case] backend: Backend,
) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    linked_env(&mut env);
    env.docspace.add_member("jane@example.com");
    env.assign("501", "601", "jane@example.com");
    let store = env.store().await;
    // Public rooms offer a user RoomManager and ContentCreator only.
    let room = link_new_room(&env, &store, PROJECT, PUBLIC, EDITING).await;
    let process = BridgeProcess::start(&env).await;
    let secret = process.bridge.register("proj").await;

    process
        .bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    let jobs = settled_jobs(&store).await;
    assert_role_refused(&env, &jobs, room);
    let results = room_results(&jobs[0]);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["room"], room);
    assert_eq!(results[0]["result"], "failed");
    let m = metrics_of(&process.bridge).await;
    assert_eq!(
        sample(&m, "bridge_room_grants_total", &[("result", "failed")]),
        1.0
    );
    assert_eq!(
        sample(&m, "bridge_jobs_total", &[("outcome", "failed")]),
        1.0
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_share_waits_for_retry_after_then_shares_once(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    linked_env(&mut env);
    env.set("BRIDGE__WORKER__BACKOFF_MAX_MS", "600000");
    env.docspace.add_member("jane@example.com");
    env.assign("501", "601", "jane@example.com");
    env.docspace
        .push_fault("share_room", Fault::rate_limited(Some("120")));
    let store = env.store().await;
    let room = linked_room(&env, &store, EDITING).await;
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;
    let before = asana_docspace_bridge::store::now_ms();

    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    let waiting = eventually("the job waits after the 429", WAIT, || async {
        store
            .list_jobs(None, 10)
            .await
            .unwrap()
            .into_iter()
            .find(|j| j.status == JobStatus::Pending && j.attempts == 1)
    })
    .await;
    assert!(
        waiting.run_at >= before + 120_000,
        "due {} ms after the delivery",
        waiting.run_at - before
    );
    assert!(
        waiting.last_error.as_deref().unwrap().contains("429"),
        "{:?}",
        waiting.last_error
    );
    assert!(
        !env.docspace
            .members(room)
            .iter()
            .any(|(who, _)| who == "jane@example.com"),
        "the refused PUT changed nothing"
    );

    // Make the retry due now rather than waiting two minutes.
    env.execute_sql(&format!(
        "UPDATE jobs SET run_at = 0 WHERE id = {}",
        waiting.id
    ))
    .await;
    let jobs = eventually("the retry settles", WAIT, || async {
        let jobs = settled_jobs(&store).await;
        (jobs[0].attempts == 2).then_some(jobs)
    })
    .await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("granted"));
    assert_eq!(
        env.docspace.share_requests().len(),
        2,
        "the refused PUT and one effective PUT"
    );
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
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_answered_500_is_retried_and_adds_the_member_once(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    linked_env(&mut env);
    env.docspace.add_member("jane@example.com");
    env.assign("501", "601", "jane@example.com");
    env.docspace.push_fault("share_room", Fault::status(500));
    let store = env.store().await;
    let room = linked_room(&env, &store, EDITING).await;
    let app = TestApp::spawn(&env).await;
    let jobs = assignment_settled(&app.bridge, &store).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("granted"));
    assert_eq!(jobs[0].attempts, 2, "retried once");
    assert_eq!(env.docspace.share_requests().len(), 2);
    let members = env.docspace.members(room);
    assert_eq!(
        members
            .iter()
            .filter(|(who, _)| who == "jane@example.com")
            .collect::<Vec<_>>(),
        vec![&("jane@example.com".to_string(), EDITING)]
    );
    let grants = store
        .live_grants_of(&email("jane@example.com"))
        .await
        .unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].state, GrantState::Granted);
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_replaces_a_deleted_or_archived_room_within_the_same_attempt(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
    #[values("deleted", "archived")] gone: &str,
) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__ROOMS__MODE", "auto");
    env.docspace.add_member("jane@example.com");
    env.docspace.add_member("joe@example.com");
    env.assign("501", "601", "jane@example.com");
    env.assign("502", "602", "joe@example.com");
    let store = env.store().await;
    env.database
        .add_known_project("website", PROJECT, "Website")
        .await;
    let process = BridgeProcess::start(&env).await;
    let secret = process.bridge.register("proj").await;
    process
        .bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;
    settled_jobs(&store).await;
    let old = store
        .project_room(&gid(PROJECT))
        .await
        .unwrap()
        .unwrap()
        .room_id;
    if gone == "deleted" {
        env.docspace.delete_room(old);
    } else {
        env.docspace.archive_room(old);
    }

    process
        .bridge
        .deliver_assignment("proj", &secret, "502", "602")
        .await;

    let jobs = eventually("the second job settles", WAIT, || async {
        let jobs = settled_jobs(&store).await;
        (jobs.len() == 2).then_some(jobs)
    })
    .await;
    let job = job_of(&jobs, "502");
    assert_eq!(job.outcome.as_deref(), Some("granted"));
    assert_eq!(job.attempts, 1, "replaced within the same attempt");
    assert_eq!(env.docspace.room_create_requests().len(), 2);
    let mapped = store.project_room(&gid(PROJECT)).await.unwrap().unwrap();
    assert_ne!(mapped.room_id, old, "the mapping moved");
    assert_eq!(mapped.state, "active");
    assert_eq!(mapped.how, "created");
    let new = env.docspace.room(mapped.room_id).unwrap();
    assert_eq!(new.tags, vec![format!("asana-project:{PROJECT}")]);
    assert!(
        env.docspace
            .members(mapped.room_id)
            .contains(&("joe@example.com".to_string(), EDITING))
    );
    let results = room_results(job);
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["room"], mapped.room_id);
    assert_eq!(results[0]["result"], "granted");
    assert_eq!(results[0]["room_event"], "replaced");
    let logs = process.logs.lock().unwrap().clone();
    let warning = format!("room {old} of project {PROJECT} is gone ({gone}); creating a new one");
    let line = logs
        .iter()
        .find(|l| l.contains(&warning))
        .unwrap_or_else(|| panic!("{warning:?} in {logs:#?}"));
    assert!(line.contains("\"WARN\""), "{line}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archived_linked_room_fails_the_job_at_once_saying_how_to_fix_it(
    #[case] backend: Backend,
) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    linked_env(&mut env);
    env.asana.put_project(PROJECT, "Website");
    env.docspace.add_member("jane@example.com");
    env.assign("501", "601", "jane@example.com");
    let store = env.store().await;
    let room = linked_room(&env, &store, EDITING).await;
    env.docspace.archive_room(room);
    let app = TestApp::spawn(&env).await;
    let jobs = assignment_settled(&app.bridge, &store).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("failed"));
    assert_eq!(jobs[0].attempts, 1, "failed at the first attempt");
    let error = jobs[0].last_error.as_deref().unwrap();
    assert!(
        error.contains(&format!(
            "room {room} linked to project {PROJECT} (\"Website\") is archived in DocSpace: \
             restore it, or link another with `asana-docspace-bridge rooms link --project \
             {PROJECT} --room <ROOM_ID>`"
        )),
        "{error}"
    );
    assert!(env.docspace.room_create_requests().is_empty());
    let gone = store.gone_rooms().await.unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].gone_reason.as_deref(), Some("archived"));
    assert_eq!(room_results(&jobs[0])[0]["result"], "failed");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_manager_for_a_user_type_member_fails_at_once_with_docspaces_message(
    #[case] backend: Backend,
) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    linked_env(&mut env);
    env.docspace.add_member_as("jane@example.com", "User");
    env.assign("501", "601", "jane@example.com");
    let store = env.store().await;
    // Collaboration rooms offer RoomManager, but not to a User.
    let room = linked_room(&env, &store, ROOM_MANAGER).await;
    let app = TestApp::spawn(&env).await;
    let jobs = assignment_settled(&app.bridge, &store).await;
    assert_role_refused(&env, &jobs, room);
    assert!(
        store.gone_rooms().await.unwrap().is_empty(),
        "the room is fine"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_grant_the_created_room_and_the_granted_job(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__ROOMS__MODE", "auto");
    env.docspace.add_member("jane@example.com");
    env.assign("501", "601", "jane@example.com");
    let store = env.store().await;
    env.database
        .add_known_project("website", PROJECT, "Website")
        .await;
    let process = BridgeProcess::start(&env).await;
    let secret = process.bridge.register("proj").await;

    process
        .bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;

    let jobs = settled_jobs(&store).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("granted"));
    let m = metrics_of(&process.bridge).await;
    assert_eq!(
        sample(&m, "bridge_room_grants_total", &[("result", "granted")]),
        1.0
    );
    assert_eq!(sample(&m, "bridge_rooms_created_total", &[]), 1.0);
    assert_eq!(
        sample(&m, "bridge_jobs_total", &[("outcome", "granted")]),
        1.0
    );
    let counted = |result: &str| {
        m.keys().any(|(name, labels)| {
            name == "bridge_room_grants_total"
                && labels.get("result").map(String::as_str) == Some(result)
        })
    };
    assert!(!counted("failed") && !counted("already_in_room"), "{m:?}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_grants_the_room_through_the_same_jobs(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    linked_env(&mut env);
    env.docspace.add_member("ann@example.com");
    env.assign("501", "601", "ann@example.com");
    env.assign("502", "602", "bob@example.com");
    let store = env.store().await;
    let room = linked_room(&env, &store, EDITING).await;
    let app = TestApp::spawn(&env).await;

    env.run(&["backfill", "--project", PROJECT])
        .await
        .expect_code(0);

    let jobs = eventually("both backfill jobs settle", WAIT, || async {
        let jobs = settled_jobs(&store).await;
        (jobs.len() == 2).then_some(jobs)
    })
    .await;
    assert_eq!(job_of(&jobs, "501").outcome.as_deref(), Some("granted"));
    assert_eq!(job_of(&jobs, "502").outcome.as_deref(), Some("invited"));
    for task in ["501", "502"] {
        let results = room_results(job_of(&jobs, task));
        assert_eq!(results.len(), 1, "{results:?}");
        assert_eq!(results[0]["room"], room);
        assert_eq!(results[0]["result"], "granted");
    }
    assert_eq!(env.docspace.share_requests().len(), 2, "one share each");
    let members = env.docspace.members(room);
    for address in ["ann@example.com", "bob@example.com"] {
        assert!(
            members.contains(&(address.to_string(), EDITING)),
            "{members:?}"
        );
    }
    app.stop().await.unwrap();
}
