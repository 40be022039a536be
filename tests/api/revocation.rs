//! Access follows the work (issue 13), end to end: with `access.revoke = on` and a short grace
//! period, room access the bridge granted goes, by id and once, when its person has had no open
//! task in the project for the grace period; access the bridge did not grant, or that someone
//! changed by hand, stays. Each test follows one bullet of the issue's "The rule" or "Never
//! removed", through deliveries to the service and the fakes' logs.

use asana_docspace_bridge::domain::JobKind;
use asana_docspace_bridge::store::{GrantState, JobRecord, JobStatus, Store};
use asana_docspace_fakes::{FakeUser, Fault};
use rstest::rstest;
use serde_json::json;

use crate::helpers::{
    Backend, BridgeProcess, Env, PROJECT, TestApp, WAIT, email, eventually, finished_jobs_of,
    lifecycle_delivery, link_room, removal_puts, sample,
};

const BOB: &str = "bob@example.com";
const CARL: &str = "carl@example.com";
const DANA: &str = "dana@example.com";
/// FileShare Editing (the default `rooms.access`), Read and RoomManager.
const EDITING: i64 = 10;
const READ: i64 = 2;
const ROOM_MANAGER: i64 = 9;

/// Rooms `linked`, revocation on with `grace` seconds.
fn revoke_env(env: &mut Env, grace: &str) {
    env.set("BRIDGE__ROOMS__MODE", "linked");
    env.set("BRIDGE__ACCESS__REVOKE", "on");
    env.set("BRIDGE__ACCESS__REVOKE_GRACE_SECS", grace);
}

/// The service with Bob granted the linked room through task 501.
struct Granted {
    env: Env,
    store: Store,
    app: TestApp,
    secret: String,
    room: i64,
    bob_id: String,
}

impl Granted {
    /// Delivers the assignment of `task` to Bob, as Asana would.
    async fn deliver_to_bob(&self, task: &str) {
        self.app
            .bridge
            .deliver_assignment("proj", &self.secret, task, "601")
            .await;
    }

    /// Revocation on with `grace` seconds, the room linked with `access`; `before` adjusts the
    /// environment before the service starts. Waits until Bob's grant is recorded.
    async fn start(
        backend: Backend,
        grace: &str,
        access: i64,
        before: impl FnOnce(&mut Env),
    ) -> Option<Granted> {
        let mut env = Env::on(backend).await?;
        revoke_env(&mut env, grace);
        env.docspace.add_member(BOB);
        before(&mut env);
        env.assign("501", "601", BOB);
        let store = env.store().await;
        // The project's webhook `proj`, as `webhooks create --project` leaves it.
        env.database
            .add_known_project("proj", PROJECT, "Website")
            .await;
        let room = link_room(&env, &store, access).await;
        let app = TestApp::spawn(&env).await;
        let secret = "secret".to_string();
        app.bridge
            .deliver_assignment("proj", &secret, "501", "601")
            .await;
        eventually("Bob's grant", WAIT, || async {
            store
                .live_grants_of(&email(BOB))
                .await
                .unwrap()
                .iter()
                .any(|g| g.state == GrantState::Granted)
                .then_some(())
        })
        .await;
        let bob_id = env.docspace.user_id(BOB).expect("Bob's DocSpace id");
        assert!(env.docspace.members(room).contains(&(BOB.into(), access)));
        Some(Granted {
            env,
            store,
            app,
            secret,
            room,
            bob_id,
        })
    }

    async fn deliver(&self, body: &serde_json::Value) {
        let response = self.app.bridge.deliver("proj", &self.secret, body).await;
        assert_eq!(response.status(), 200, "delivery accepted");
    }

    /// Task 501 changes as `ending` says in Asana, and Asana delivers the event.
    async fn end(&self, ending: Ending) {
        let asana = &self.env.asana;
        match ending {
            Ending::Unassigned => {
                asana.assign("501", PROJECT, None);
                self.deliver(&lifecycle_delivery("501", "unassigned")).await;
            }
            Ending::Reassigned => {
                asana.assign("501", PROJECT, Some(FakeUser::new("602", CARL)));
                self.app
                    .bridge
                    .deliver_assignment("proj", &self.secret, "501", "602")
                    .await;
            }
            Ending::Completed => {
                asana.complete_task("501", true);
                self.deliver(&lifecycle_delivery("501", "completed")).await;
            }
            Ending::Removed => {
                asana.remove_from_project("501", PROJECT);
                self.deliver(&lifecycle_delivery("501", "removed")).await;
            }
            Ending::Deleted => {
                asana.delete_task("501");
                self.deliver(&lifecycle_delivery("501", "deleted")).await;
            }
        }
    }

    /// Waits until `count` revoke jobs have finished, and returns them.
    async fn revoke_jobs(&self, count: usize) -> Vec<JobRecord> {
        finished_jobs_of(&self.store, JobKind::Revoke, count).await
    }

    /// The one removal PUT there must be: Bob, by id, access 0, nobody notified.
    fn assert_one_removal_of_bob(&self) {
        assert_eq!(
            removal_puts(&self.env.docspace),
            vec![json!({"invitations": [{"id": self.bob_id, "access": 0}], "notify": false})],
            "exactly one removal, by id"
        );
        assert!(
            !self
                .env
                .docspace
                .members(self.room)
                .iter()
                .any(|(who, _)| who == BOB),
            "Bob is out of the room"
        );
    }

    /// `access log` output.
    async fn access_log(&self) -> String {
        let output = self.env.run(&["access", "log"]).await;
        output.expect_code(0);
        output.stdout.clone()
    }
}

/// How a person stops needing a room (the list).
#[derive(Debug, Clone, Copy)]
enum Ending {
    Unassigned,
    Reassigned,
    Completed,
    Removed,
    Deleted,
}

impl Ending {
    /// The word `access log` gives as the reason.
    fn why(self) -> &'static str {
        match self {
            Ending::Unassigned => "unassigned",
            Ending::Reassigned => "reassigned",
            Ending::Completed => "completed",
            Ending::Removed => "removed",
            Ending::Deleted => "deleted",
        }
    }
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_ending_takes_the_access_back_once_by_id_after_the_grace(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
    #[values(
        Ending::Unassigned,
        Ending::Reassigned,
        Ending::Completed,
        Ending::Removed,
        Ending::Deleted
    )]
    ending: Ending,
) {
    let Some(granted) = Granted::start(backend, "1", EDITING, |env| {
        env.docspace.add_member(CARL);
    })
    .await
    else {
        return;
    };
    // Someone an admin shared the room with by hand: no ledger row, never touched.
    granted.env.docspace.share_by_hand(granted.room, DANA, READ);
    let ended_at = std::time::Instant::now();
    granted.end(ending).await;

    let jobs = granted.revoke_jobs(1).await;
    assert!(
        ended_at.elapsed() >= std::time::Duration::from_secs(1),
        "not before the grace period"
    );
    assert_eq!(jobs.len(), 1, "one revoke job: {jobs:?}");
    assert_eq!(jobs[0].outcome.as_deref(), Some("revoked"), "{jobs:?}");
    granted.assert_one_removal_of_bob();
    assert!(
        granted
            .env
            .docspace
            .members(granted.room)
            .contains(&(DANA.into(), READ)),
        "access given by hand stays"
    );
    if matches!(ending, Ending::Reassigned) {
        assert!(
            granted
                .env
                .docspace
                .members(granted.room)
                .contains(&(CARL.into(), EDITING)),
            "the new assignee is granted"
        );
    }
    // The DocSpace account itself is never disabled or deleted.
    assert!(granted.env.docspace.requests().iter().all(|r| {
        !r.path.starts_with("/api/2.0/people/status") && r.method != reqwest::Method::DELETE
    }));
    let log = granted.access_log().await;
    assert!(
        log.lines()
            .any(|l| l.contains("revoked") && l.contains(BOB) && l.contains(ending.why())),
        "{log}"
    );
    let grants = granted.store.live_grants_of(&email(BOB)).await.unwrap();
    assert!(grants.is_empty(), "Bob's grant ended: {grants:?}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_open_task_keeps_the_room_until_it_ends_too(#[case] backend: Backend) {
    let Some(granted) = Granted::start(backend, "1", EDITING, |env| {
        env.assign("502", "601", BOB);
    })
    .await
    else {
        return;
    };
    granted.deliver_to_bob("502").await;
    finished_jobs_of(&granted.store, JobKind::AssigneeChanged, 2).await;

    granted.end(Ending::Completed).await;
    let completion = finished_jobs_of(&granted.store, JobKind::CompletionChanged, 1).await;
    assert_eq!(completion[0].status, JobStatus::Done);
    // Task 502 is still open: nothing is scheduled, however long we wait for it.
    let plan = granted.env.run(&["access", "plan"]).await;
    plan.expect_code(0);
    assert!(!plan.stdout.contains(BOB), "{}", plan.stdout);
    assert!(removal_puts(&granted.env.docspace).is_empty());

    granted.env.asana.assign("502", PROJECT, None);
    granted
        .deliver(&lifecycle_delivery("502", "unassigned"))
        .await;
    let jobs = granted.revoke_jobs(1).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("revoked"));
    assert_eq!(
        jobs[0].task_gid.as_str(),
        "502",
        "the task that ended the need"
    );
    granted.assert_one_removal_of_bob();
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assigned_again_within_the_grace_nothing_is_removed(#[case] backend: Backend) {
    let Some(granted) = Granted::start(backend, "3", EDITING, |_| {}).await else {
        return;
    };
    granted.end(Ending::Unassigned).await;
    finished_jobs_of(&granted.store, JobKind::TaskUnassigned, 1).await;
    let plan = granted.env.run(&["access", "plan"]).await;
    plan.expect_code(0);
    assert!(
        plan.stdout
            .lines()
            .any(|l| l.contains(BOB) && l.contains("(in ")),
        "inside the grace period: {}",
        plan.stdout
    );

    granted.env.assign("501", "601", BOB);
    granted.deliver_to_bob("501").await;
    // The revoke job is settled by the assignment itself, before it was due.
    let jobs = granted.revoke_jobs(1).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("needed_again"), "{jobs:?}");
    assert!(removal_puts(&granted.env.docspace).is_empty(), "no removal");
    assert!(
        granted
            .env
            .docspace
            .members(granted.room)
            .contains(&(BOB.into(), EDITING))
    );
    assert!(granted.access_log().await.contains("needed again"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assigned_again_after_a_revocation_is_a_new_grant(#[case] backend: Backend) {
    let Some(granted) = Granted::start(backend, "1", EDITING, |_| {}).await else {
        return;
    };
    granted.end(Ending::Unassigned).await;
    granted.revoke_jobs(1).await;
    granted.assert_one_removal_of_bob();

    granted.env.assign("501", "601", BOB);
    granted.deliver_to_bob("501").await;
    let jobs = finished_jobs_of(&granted.store, JobKind::AssigneeChanged, 2).await;
    assert!(
        jobs.iter()
            .filter(|j| j.outcome.as_deref() == Some("granted"))
            .count()
            == 2,
        "{jobs:?}"
    );
    let shares: Vec<serde_json::Value> = granted
        .env
        .docspace
        .share_requests()
        .iter()
        .map(|r| r.json())
        .collect();
    assert_eq!(
        shares,
        vec![
            json!({"invitations": [{"id": granted.bob_id, "access": EDITING}], "notify": true}),
            json!({"invitations": [{"id": granted.bob_id, "access": 0}], "notify": false}),
            json!({"invitations": [{"id": granted.bob_id, "access": EDITING}], "notify": true}),
        ]
    );
    let live = granted.store.live_grants_of(&email(BOB)).await.unwrap();
    assert_eq!(live.len(), 1, "a new live grant: {live:?}");
    assert!(
        granted
            .env
            .docspace
            .members(granted.room)
            .contains(&(BOB.into(), EDITING))
    );
    let log = granted.access_log().await;
    assert_eq!(
        log.lines()
            .filter(|l| l.contains(BOB) && l.contains("granted"))
            .count(),
        2,
        "both grants in the log: {log}"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_found_in_the_room_is_never_the_bridges_to_take(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    revoke_env(&mut env, "1");
    env.assign("501", "601", DANA);
    let store = env.store().await;
    env.database
        .add_known_project("proj", PROJECT, "Website")
        .await;
    let room = link_room(&env, &store, EDITING).await;
    env.docspace.share_by_hand(room, DANA, READ);
    let app = TestApp::spawn(&env).await;
    let secret = "secret";
    app.bridge
        .deliver_assignment("proj", secret, "501", "601")
        .await;
    finished_jobs_of(&store, JobKind::AssigneeChanged, 1).await;
    env.asana.assign("501", PROJECT, None);
    let response = app
        .bridge
        .deliver("proj", secret, &lifecycle_delivery("501", "unassigned"))
        .await;
    assert_eq!(response.status(), 200);

    let jobs = finished_jobs_of(&store, JobKind::Revoke, 1).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("kept"), "{jobs:?}");
    assert!(env.docspace.share_requests().is_empty(), "no PUT at all");
    assert!(env.docspace.members(room).contains(&(DANA.into(), READ)));
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_changed_by_hand_is_kept(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
    #[values(READ, ROOM_MANAGER)] by_hand: i64,
) {
    let Some(granted) = Granted::start(backend, "1", EDITING, |env| {
        // RoomManager needs a RoomAdmin account.
        env.docspace.add_member_as(BOB, "RoomAdmin");
    })
    .await
    else {
        return;
    };
    granted
        .env
        .docspace
        .share_by_hand(granted.room, BOB, by_hand);
    granted.end(Ending::Unassigned).await;

    let jobs = granted.revoke_jobs(1).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("kept"), "{jobs:?}");
    assert!(removal_puts(&granted.env.docspace).is_empty(), "no removal");
    assert!(
        granted
            .env
            .docspace
            .members(granted.room)
            .contains(&(BOB.into(), by_hand))
    );
    let log = granted.access_log().await;
    assert!(log.contains("kept: changed by hand"), "{log}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rooms_owner_is_kept(#[case] backend: Backend) {
    let Some(granted) = Granted::start(backend, "1", EDITING, |env| {
        env.docspace.add_member_as(BOB, "RoomAdmin");
    })
    .await
    else {
        return;
    };
    // The room is handed over to Bob after the bridge granted him Editing.
    granted.env.docspace.set_room_owner(granted.room, BOB);
    granted.end(Ending::Unassigned).await;
    let jobs = granted.revoke_jobs(1).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("kept"), "{jobs:?}");
    assert!(removal_puts(&granted.env.docspace).is_empty(), "no removal");
    assert_eq!(
        granted.env.docspace.member_access(granted.room, BOB),
        Some(ROOM_MANAGER)
    );
    let log = granted.access_log().await;
    assert!(
        log.lines()
            .any(|l| l.contains(BOB) && l.contains("kept: changed by hand")),
        "{log}"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_manager_the_bridge_made_is_removed(#[case] backend: Backend) {
    let Some(granted) = Granted::start(backend, "1", ROOM_MANAGER, |env| {
        env.set("BRIDGE__ROOMS__ACCESS", "RoomManager");
        env.set("BRIDGE__DOCSPACE__INVITE_TYPE", "RoomAdmin");
        env.docspace.add_member_as(BOB, "RoomAdmin");
    })
    .await
    else {
        return;
    };
    granted.end(Ending::Unassigned).await;
    let jobs = granted.revoke_jobs(1).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("revoked"), "{jobs:?}");
    granted.assert_one_removal_of_bob();
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_who_left_the_room_is_not_removed_again(#[case] backend: Backend) {
    let Some(granted) = Granted::start(backend, "1", EDITING, |_| {}).await else {
        return;
    };
    // An admin removes Bob by hand; the bridge has nothing left to take.
    granted.env.docspace.share_by_hand(granted.room, BOB, 0);
    granted.end(Ending::Unassigned).await;
    let jobs = granted.revoke_jobs(1).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("kept"), "{jobs:?}");
    assert!(removal_puts(&granted.env.docspace).is_empty(), "no removal");
    assert!(
        granted
            .store
            .live_grants_of(&email(BOB))
            .await
            .unwrap()
            .is_empty(),
        "the grant ended (left the room)"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_docspace_answers_without_doing_fails_with_the_reason(#[case] backend: Backend) {
    let Some(granted) = Granted::start(backend, "1", EDITING, |_| {}).await else {
        return;
    };
    // DocSpace answers 200 and changes nothing (as for a user the key cannot see).
    granted.env.docspace.push_fault(
        "unshare_room",
        Fault::json(
            200,
            json!({"response": {"members": [], "warning": null, "error": 0}}),
        ),
    );
    granted.end(Ending::Unassigned).await;
    let jobs = granted.revoke_jobs(1).await;
    assert_eq!(jobs[0].status, JobStatus::Failed, "{jobs:?}");
    let error = jobs[0].last_error.as_deref().unwrap_or_default();
    assert!(error.contains("still lists the access"), "{error}");
    assert_eq!(removal_puts(&granted.env.docspace).len(), 1);
    assert_eq!(
        granted.env.docspace.member_access(granted.room, BOB),
        Some(EDITING)
    );
    let live = granted.store.live_grants_of(&email(BOB)).await.unwrap();
    assert_eq!(
        live.len(),
        1,
        "the grant stays live: the access is still there"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_accounts_access_is_removed_and_the_account_left_alone(
    #[case] backend: Backend,
) {
    let Some(granted) = Granted::start(backend, "1", EDITING, |_| {}).await else {
        return;
    };
    granted.env.docspace.disable(BOB);
    granted.end(Ending::Unassigned).await;
    let jobs = granted.revoke_jobs(1).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("revoked"), "{jobs:?}");
    granted.assert_one_removal_of_bob();
    assert!(granted.env.docspace.knows(BOB), "the account stays");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_into_one_removal(#[case] backend: Backend) {
    let Some(granted) = Granted::start(backend, "1", EDITING, |env| {
        // Backoff may wait as long as DocSpace asks.
        env.set("BRIDGE__WORKER__BACKOFF_MAX_MS", "5000");
    })
    .await
    else {
        return;
    };
    let docspace = &granted.env.docspace;
    docspace.push_fault("unshare_room", Fault::status(500));
    docspace.push_fault("unshare_room", Fault::rate_limited(Some("1")));
    granted.end(Ending::Unassigned).await;
    let jobs = granted.revoke_jobs(1).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("revoked"), "{jobs:?}");
    assert_eq!(jobs[0].attempts, 3);
    let puts = docspace.unshare_requests();
    assert_eq!(puts.len(), 3, "two refused, one applied");
    assert!(
        puts[2].at.duration_since(puts[1].at) >= std::time::Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert!(!docspace.members(granted.room).iter().any(|(w, _)| w == BOB));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_never_answered_is_confirmed_without_a_second_put(#[case] backend: Backend) {
    let Some(granted) = Granted::start(backend, "1", EDITING, |_| {}).await else {
        return;
    };
    // DocSpace removes Bob and never answers: the attempt times out, the next one reads the
    // room and finds the removal done.
    granted
        .env
        .docspace
        .push_fault("unshare_room", Fault::HangAfterWork);
    granted.end(Ending::Unassigned).await;
    let jobs = granted.revoke_jobs(1).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("revoked"), "{jobs:?}");
    assert!(jobs[0].attempts >= 2, "the first attempt timed out");
    granted.assert_one_removal_of_bob();
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_removal_fails_naming_the_rights_it_needs(#[case] backend: Backend) {
    let Some(granted) = Granted::start(backend, "1", EDITING, |_| {}).await else {
        return;
    };
    granted.env.docspace.push_fault(
        "unshare_room",
        Fault::json(403, json!({"error": {"message": "Access denied"}})),
    );
    granted.end(Ending::Unassigned).await;
    let jobs = granted.revoke_jobs(1).await;
    assert_eq!(jobs[0].status, JobStatus::Failed);
    assert_eq!(jobs[0].attempts, 1, "a refusal is not retried");
    let error = jobs[0].last_error.as_deref().unwrap_or_default();
    assert!(
        error.contains("403") && error.contains("rooms:write"),
        "{error}"
    );

    // Once the key is fixed, `jobs retry` takes the access back.
    let retried = granted
        .env
        .run(&["jobs", "retry", &jobs[0].id.to_string()])
        .await;
    retried.expect_code(0);
    eventually("the retried revocation", WAIT, || async {
        granted
            .store
            .job(jobs[0].id)
            .await
            .unwrap()
            .filter(|j| j.outcome.as_deref() == Some("revoked"))
    })
    .await;
    assert!(
        !granted
            .env
            .docspace
            .members(granted.room)
            .iter()
            .any(|(w, _)| w == BOB)
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_revocation_off_lifecycle_events_queue_nothing(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__ROOMS__MODE", "linked");
    let store = env.store().await;
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;
    for ending in ["unassigned", "completed", "removed", "deleted"] {
        let response = app
            .bridge
            .deliver("proj", &secret, &lifecycle_delivery("501", ending))
            .await;
        assert_eq!(response.status(), 200, "{ending} acknowledged");
    }
    // A delivery is acknowledged once its jobs are queued: none were.
    let jobs = store.list_jobs(None, 100).await.unwrap();
    assert!(jobs.is_empty(), "{jobs:?}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_never_delivered_is_found_by_a_pass(#[case] backend: Backend) {
    let Some(granted) = Granted::start(backend, "1", EDITING, |env| {
        env.set("BRIDGE__RECONCILE__INTERVAL_SECS", "1");
        env.set("BRIDGE__ASANA__REQUESTS_PER_MINUTE", "1000000");
    })
    .await
    else {
        return;
    };
    // Completed in Asana, and the event lost.
    granted.env.asana.complete_task("501", true);
    let jobs = granted.revoke_jobs(1).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("revoked"), "{jobs:?}");
    granted.assert_one_removal_of_bob();
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_decision_is_counted_once_under_its_result(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    revoke_env(&mut env, "3");
    env.docspace.add_member(BOB);
    env.docspace.add_member(CARL);
    env.assign("501", "601", BOB);
    env.assign("502", "602", CARL);
    env.assign("503", "603", DANA);
    let store = env.store().await;
    env.database
        .add_known_project("proj", PROJECT, "Website")
        .await;
    let room = link_room(&env, &store, EDITING).await;
    // Dana is in the room by hand before her task: her ledger row is `had_access`.
    env.docspace.share_by_hand(room, DANA, READ);
    // A process of its own: counters are per process.
    let process = BridgeProcess::start(&env).await;
    for (task, user) in [("501", "601"), ("502", "602"), ("503", "603")] {
        process
            .bridge
            .deliver_assignment("proj", "secret", task, user)
            .await;
    }
    finished_jobs_of(&store, JobKind::AssigneeChanged, 3).await;
    // Carl's access is lowered by hand after the bridge granted it.
    env.docspace.share_by_hand(room, CARL, READ);
    for task in ["501", "502", "503"] {
        env.asana.assign(task, PROJECT, None);
        let response = process
            .bridge
            .deliver("proj", "secret", &lifecycle_delivery(task, "unassigned"))
            .await;
        assert_eq!(response.status(), 200);
    }
    finished_jobs_of(&store, JobKind::TaskUnassigned, 3).await;
    let waiting = process.bridge.metrics().await;
    assert_eq!(
        sample(&waiting, "bridge_room_revocations_open", &[]),
        3.0,
        "three revocations inside the grace period"
    );

    let jobs = finished_jobs_of(&store, JobKind::Revoke, 3).await;
    assert!(jobs.iter().all(|j| j.status == JobStatus::Done), "{jobs:?}");
    let m = process.bridge.metrics().await;
    for (result, count) in [
        ("revoked", 1.0),
        ("kept_changed_by_hand", 1.0),
        ("kept_not_granted", 1.0),
    ] {
        assert_eq!(
            sample(&m, "bridge_room_revocations_total", &[("result", result)]),
            count,
            "{result}"
        );
    }
    assert!(
        !m.keys()
            .any(|(name, labels)| name == "bridge_room_revocations_total"
                && labels.get("result").map(String::as_str) == Some("failed")),
        "nothing failed"
    );
    assert_eq!(
        sample(&m, "bridge_jobs_total", &[("outcome", "revoked")]),
        1.0
    );
    assert_eq!(sample(&m, "bridge_jobs_total", &[("outcome", "kept")]), 2.0);
    assert_eq!(removal_puts(&env.docspace).len(), 1, "only Bob's");
    process.terminate().await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_never_delivered_is_found_by_the_daily_sweep(#[case] backend: Backend) {
    let Some(granted) = Granted::start(backend, "1", EDITING, |env| {
        env.set("BRIDGE__RECONCILE__INTERVAL_SECS", "1");
        env.set("BRIDGE__ASANA__REQUESTS_PER_MINUTE", "1000000");
    })
    .await
    else {
        return;
    };
    // The first pass was the project's sweep of the day.
    eventually("the first sweep", WAIT, || async {
        let swept = granted
            .env
            .database
            .fetch_i64(&format!(
                "SELECT COUNT(*) FROM projects WHERE gid = '{PROJECT}' AND need_swept_at IS NOT NULL"
            ))
            .await;
        (swept == 1).then_some(())
    })
    .await;
    // Removed from the project, and the event lost: no delta pass lists a task that left.
    granted.env.asana.remove_from_project("501", PROJECT);
    // A day later, the next sweep.
    granted
        .env
        .execute_sql(&format!(
            "UPDATE projects SET need_swept_at = need_swept_at - 86400001 WHERE gid = '{PROJECT}'"
        ))
        .await;
    let jobs = granted.revoke_jobs(1).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("revoked"), "{jobs:?}");
    granted.assert_one_removal_of_bob();
    assert!(granted.access_log().await.contains("removed"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_revocation_on_schedules_stale_grants_a_full_grace_ahead(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    // Revocation off: Bob is granted, then his task goes to Carl; nothing is taken back.
    env.set("BRIDGE__ROOMS__MODE", "linked");
    env.docspace.add_member(BOB);
    env.docspace.add_member(CARL);
    env.assign("501", "601", BOB);
    let store = env.store().await;
    env.database
        .add_known_project("proj", PROJECT, "Website")
        .await;
    let room = link_room(&env, &store, EDITING).await;
    let app = TestApp::spawn(&env).await;
    app.bridge
        .deliver_assignment("proj", "secret", "501", "601")
        .await;
    finished_jobs_of(&store, JobKind::AssigneeChanged, 1).await;
    env.asana
        .assign("501", PROJECT, Some(FakeUser::new("602", CARL)));
    app.bridge
        .deliver_assignment("proj", "secret", "501", "602")
        .await;
    finished_jobs_of(&store, JobKind::AssigneeChanged, 2).await;
    app.stop().await.unwrap();
    assert!(env.docspace.members(room).contains(&(BOB.into(), EDITING)));

    // Turned on: the first sweep finds Bob's grant without an open task behind it.
    revoke_env(&mut env, "2");
    env.set("BRIDGE__RECONCILE__INTERVAL_SECS", "1");
    env.set("BRIDGE__ASANA__REQUESTS_PER_MINUTE", "1000000");
    let app = TestApp::spawn(&env).await;
    let scheduled = eventually("the sweep to schedule Bob's revocation", WAIT, || async {
        store
            .list_jobs(None, 100)
            .await
            .unwrap()
            .into_iter()
            .find(|j| j.event_kind == JobKind::Revoke)
    })
    .await;
    assert!(
        scheduled.run_at >= scheduled.created_at + 2_000,
        "a full grace from when it was found: {scheduled:?}"
    );
    let jobs = finished_jobs_of(&store, JobKind::Revoke, 1).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("revoked"), "{jobs:?}");
    assert!(
        !env.docspace.members(room).iter().any(|(w, _)| w == BOB),
        "Bob's stale access is gone"
    );
    assert!(env.docspace.members(room).contains(&(CARL.into(), EDITING)));
    app.stop().await.unwrap();
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_subtask_keeps_its_parents_project_needed(#[case] backend: Backend) {
    let Some(granted) = Granted::start(backend, "1", EDITING, |env| {
        // Task 500 in the project, its subtask 510, and 510's subtask 511 assigned to Bob.
        env.asana.assign("500", PROJECT, None);
        env.asana.assign_subtask("510", "500", None);
        env.asana
            .assign_subtask("511", "510", Some(FakeUser::new("601", BOB)));
    })
    .await
    else {
        return;
    };
    granted.deliver_to_bob("511").await;
    finished_jobs_of(&granted.store, JobKind::AssigneeChanged, 2).await;

    granted.end(Ending::Completed).await;
    finished_jobs_of(&granted.store, JobKind::CompletionChanged, 1).await;
    let plan = granted.env.run(&["access", "plan"]).await;
    plan.expect_code(0);
    assert!(!plan.stdout.contains(BOB), "{}", plan.stdout);

    granted.env.asana.complete_task("511", true);
    granted
        .deliver(&lifecycle_delivery("511", "completed"))
        .await;
    let jobs = granted.revoke_jobs(1).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("revoked"), "{jobs:?}");
    assert_eq!(jobs[0].task_gid.as_str(), "511");
    granted.assert_one_removal_of_bob();
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_deleted_in_docspace_ends_the_grant_without_a_removal(#[case] backend: Backend) {
    let Some(granted) = Granted::start(backend, "1", EDITING, |_| {}).await else {
        return;
    };
    granted.env.docspace.delete_room(granted.room);
    granted.end(Ending::Unassigned).await;
    let jobs = granted.revoke_jobs(1).await;
    assert_eq!(jobs[0].outcome.as_deref(), Some("room_gone"), "{jobs:?}");
    assert!(removal_puts(&granted.env.docspace).is_empty(), "no removal");
    let live = granted.store.live_grants_of(&email(BOB)).await.unwrap();
    assert!(live.is_empty(), "the grant ended with its room: {live:?}");
    let log = granted.access_log().await;
    assert!(log.contains("room gone"), "{log}");
}
