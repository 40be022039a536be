//! kill -9 while taking room access back (issue 13): the bridge runs as a real process and is
//! killed after its revoke job reserved the removal (its PUT sent but never applied by DocSpace),
//! and after DocSpace applied the PUT without the bridge learning it. The restarted process
//! applies exactly one removal, never a second one after DocSpace applied the first, and never
//! removes an access granted again meanwhile.

use asana_docspace_bridge::domain::JobKind;
use asana_docspace_bridge::store::{GrantState, JobStatus, Store};
use asana_docspace_fakes::{Fault, Gate};
use rstest::rstest;
use serde_json::json;

use crate::helpers::{
    Backend, BridgeProcess, Env, PROJECT, WAIT, email, eventually, finished_jobs_of,
    lifecycle_delivery, link_room, removal_puts,
};

const BOB: &str = "bob@example.com";
const EDITING: i64 = 10;

/// How the process dies during the removal.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// The removal is reserved and its PUT sent; DocSpace holds it and never applies it.
    AfterReserving,
    /// DocSpace applied the PUT and never answered.
    AfterDocSpaceApplied,
}

/// A bridge process with Bob granted the linked room through task 501, revocation on with a 1 s
/// grace, short leases so a dead process's jobs are taken over soon.
struct Crashed {
    env: Env,
    store: Store,
    room: i64,
    bob_id: String,
}

impl Crashed {
    async fn start(backend: Backend) -> Option<(Crashed, BridgeProcess)> {
        let mut env = Env::on(backend).await?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        env.set("BRIDGE__SERVER__PORT", &port.to_string());
        env.set("BRIDGE__WORKER__LEASE_MS", "1500");
        env.set("BRIDGE__WORKER__REQUEST_TIMEOUT_MS", "1000");
        env.set("BRIDGE__WORKER__BACKOFF_MAX_MS", "1000");
        env.set("BRIDGE__WORKER__MAX_ATTEMPTS", "30");
        env.set("BRIDGE__ROOMS__MODE", "linked");
        env.set("BRIDGE__ACCESS__REVOKE", "on");
        env.set("BRIDGE__ACCESS__REVOKE_GRACE_SECS", "1");
        env.docspace.add_member(BOB);
        env.assign("501", "601", BOB);
        let store = env.store().await;
        env.database
            .add_known_project("proj", PROJECT, "Website")
            .await;
        let room = link_room(&env, &store, EDITING).await;
        let process = BridgeProcess::start(&env).await;
        process
            .bridge
            .deliver_assignment("proj", "secret", "501", "601")
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
        let bob_id = env.docspace.user_id(BOB).unwrap();
        Some((
            Crashed {
                env,
                store,
                room,
                bob_id,
            },
            process,
        ))
    }

    fn bob_in_room(&self) -> bool {
        self.env
            .docspace
            .members(self.room)
            .contains(&(BOB.into(), EDITING))
    }

    /// Unassigns task 501, waits until the revoke job is where `kill` says, and kills the process.
    async fn kill_during_removal(&self, process: BridgeProcess, kill: Kill) {
        let gate = Gate::new();
        let fault = match kill {
            Kill::AfterReserving => Fault::Hold(gate.clone()),
            Kill::AfterDocSpaceApplied => Fault::HangAfterWork,
        };
        self.env.docspace.push_fault("unshare_room", fault);
        self.env.asana.assign("501", PROJECT, None);
        let response = process
            .bridge
            .deliver("proj", "secret", &lifecycle_delivery("501", "unassigned"))
            .await;
        assert_eq!(response.status(), 200);
        let removal_sent = self
            .env
            .docspace
            .wait_for_requests(WAIT, |requests| {
                requests
                    .iter()
                    .any(|r| r.method == "PUT" && r.json()["invitations"][0]["access"] == 0)
            })
            .await;
        assert!(removal_sent, "the revoke job sent its removal");
        match kill {
            Kill::AfterReserving => assert!(self.bob_in_room(), "held: not applied"),
            Kill::AfterDocSpaceApplied => {
                let applied = eventually("DocSpace to apply the removal", WAIT, || async {
                    (!self.bob_in_room()).then_some(())
                });
                applied.await;
            }
        }
        process.kill9().await;
    }
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_interrupted_by_kill_9_is_applied_exactly_once(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
    #[values(Kill::AfterReserving, Kill::AfterDocSpaceApplied)] kill: Kill,
) {
    let Some((crashed, process)) = Crashed::start(backend).await else {
        return;
    };
    crashed.kill_during_removal(process, kill).await;
    let restarted = BridgeProcess::start(&crashed.env).await;
    let jobs = finished_jobs_of(&crashed.store, JobKind::Revoke, 1).await;
    assert_eq!(jobs[0].status, JobStatus::Done, "{jobs:?}");
    assert_eq!(jobs[0].outcome.as_deref(), Some("revoked"), "{jobs:?}");
    assert!(!crashed.bob_in_room());
    let removal = json!({"invitations": [{"id": crashed.bob_id, "access": 0}], "notify": false});
    let expected = match kill {
        // The held PUT was never applied: the new holder sends the one DocSpace applies.
        Kill::AfterReserving => vec![removal.clone(), removal],
        // DocSpace applied it: the new holder reads the room and sends nothing.
        Kill::AfterDocSpaceApplied => vec![removal],
    };
    assert_eq!(removal_puts(&crashed.env.docspace), expected);
    let live = crashed.store.live_grants_of(&email(BOB)).await.unwrap();
    assert!(live.is_empty(), "{live:?}");
    restarted.terminate().await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_granted_again_after_a_kill_9_removal_is_never_removed(#[case] backend: Backend) {
    let Some((crashed, process)) = Crashed::start(backend).await else {
        return;
    };
    crashed
        .kill_during_removal(process, Kill::AfterDocSpaceApplied)
        .await;
    // Bob is assigned 501 again while the bridge is down; Asana delivers it once it is back.
    crashed.env.assign("501", "601", BOB);
    let restarted = BridgeProcess::start(&crashed.env).await;
    restarted
        .bridge
        .deliver_assignment("proj", "secret", "501", "601")
        .await;

    let revoked = finished_jobs_of(&crashed.store, JobKind::Revoke, 1).await;
    assert_eq!(
        revoked[0].outcome.as_deref(),
        Some("revoked"),
        "{revoked:?}"
    );
    let assigned = finished_jobs_of(&crashed.store, JobKind::AssigneeChanged, 2).await;
    assert!(
        assigned.iter().all(|j| j.status == JobStatus::Done),
        "{assigned:?}"
    );
    eventually("Bob back in the room", WAIT, || async {
        crashed.bob_in_room().then_some(())
    })
    .await;
    // No job is left that could remove him: every revoke job has settled.
    let open_revokes = crashed
        .store
        .list_jobs(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.event_kind == JobKind::Revoke)
        .filter(|j| j.status != JobStatus::Done && j.status != JobStatus::Failed)
        .count();
    assert_eq!(open_revokes, 0);
    let shares: Vec<i64> = crashed
        .env
        .docspace
        .share_requests()
        .iter()
        .map(|r| r.json()["invitations"][0]["access"].as_i64().unwrap())
        .collect();
    assert_eq!(
        shares,
        vec![EDITING, 0, EDITING],
        "grant, one removal, grant"
    );
    let live = crashed.store.live_grants_of(&email(BOB)).await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].state, GrantState::Granted);
    assert!(crashed.bob_in_room());
    restarted.terminate().await;
}
