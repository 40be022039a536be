//! The rooms store on both backends: project rooms, the one creator of a project's room, the
//! grants ledger (one live row per person and room, written only under the job's lease) and the
//! tasks jobs read.

use std::time::Duration;

use asana_docspace_bridge::store::{
    Claimant, Confirmations, CreationClaim, CreationState, GrantRequest, GrantReservation,
    GrantState, LeaseOwner, LinkOutcome, NewProjectRoom, Outcome, Settlement, Store, TaskProject,
    TaskRead,
};
use rstest::rstest;

use crate::helpers::{Backend, Env, PROJECT, assignment_job, email, from_webhook, gid};

const LEASE: Duration = Duration::from_secs(60);
const HOLD: Duration = Duration::from_secs(30);

/// A job for task `task` leased to `owner`, as a worker holds it.
async fn running_job(store: &Store, owner: &LeaseOwner, key: &str, task: &str) -> i64 {
    store
        .create_leased_job(
            from_webhook("proj"),
            assignment_job(key, task),
            owner,
            LEASE,
        )
        .await
        .expect("create")
        .expect("a new job")
        .id
}

fn room(project: &str, room_id: i64) -> NewProjectRoom {
    NewProjectRoom {
        project_gid: gid(project),
        room_id,
        room_title: format!("Room {room_id}"),
        room_type: 2,
        access: 10,
    }
}

fn grant(address: &str, room_id: i64, task: &str) -> GrantRequest {
    GrantRequest {
        email: email(address),
        room_id,
        project_gid: gid(PROJECT),
        docspace_user_id: "6f3c2a8e-1b2d-4c5e-8f90-0a1b2c3d4e5f".into(),
        access: 10,
        task_gid: gid(task),
    }
}

fn job_claimant(id: i64, owner: &LeaseOwner) -> Claimant {
    Claimant::Job {
        id,
        owner: owner.clone(),
    }
}

/// Runs every future at once (each on the runtime's threads) and returns their results in order.
async fn all<T, F>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.expect("the task ran"));
    }
    results
}

async fn count(env: &Env, sql: &str) -> i64 {
    env.database.fetch_i64(sql).await
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_of_20_concurrent_claimers_gets_the_creation_claim(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let owner = LeaseOwner::new("worker-a");
    let mut jobs = Vec::new();
    for n in 0..20 {
        jobs.push(running_job(&store, &owner, &format!("k{n}"), &format!("{}", 100 + n)).await);
    }

    let claims = all(jobs.iter().map(|&id| {
        let store = store.clone();
        let claimant = job_claimant(id, &owner);
        async move {
            store
                .claim_room_creation(&gid(PROJECT), &claimant, HOLD, None, false)
                .await
                .expect("claim")
        }
    }))
    .await;

    let winners: Vec<&CreationClaim> = claims
        .iter()
        .filter(|c| matches!(c, CreationClaim::Claimed { .. }))
        .collect();
    assert_eq!(winners.len(), 1, "{claims:?}");
    let CreationClaim::Claimed { token, .. } = winners[0] else {
        unreachable!()
    };
    for claim in &claims {
        match claim {
            CreationClaim::Claimed { .. } => {}
            CreationClaim::HeldBy { token: holder, .. } => assert_eq!(holder, token),
            other => panic!("a loser sees the winner's claim, not {other:?}"),
        }
    }
    assert_eq!(count(&env, "SELECT COUNT(*) FROM room_creations").await, 1);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_is_re_claimed_by_its_job_taken_once_expired_and_refused_while_cooling_down(
    #[case] backend: Backend,
) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let owner = LeaseOwner::new("worker-a");
    let project = gid(PROJECT);
    let first = running_job(&store, &owner, "first", "1").await;
    let second = running_job(&store, &owner, "second", "2").await;
    let (a, b) = (job_claimant(first, &owner), job_claimant(second, &owner));

    let claimed = store
        .claim_room_creation(&project, &a, HOLD, None, false)
        .await
        .unwrap();
    assert!(
        matches!(&claimed, CreationClaim::Claimed { token, .. } if token == &format!("job:{first}"))
    );
    // The same job's retry re-claims its own live claim at once.
    assert!(matches!(
        store
            .claim_room_creation(&project, &a, HOLD, None, false)
            .await
            .unwrap(),
        CreationClaim::Claimed { .. }
    ));
    assert!(matches!(
        store
            .claim_room_creation(&project, &b, HOLD, None, false)
            .await
            .unwrap(),
        CreationClaim::HeldBy { job_id: Some(id), .. } if id == first
    ));

    // Expired: the next claimant takes it, and the old holder can no longer extend it.
    env.execute_sql("UPDATE room_creations SET claimed_until = 1")
        .await;
    assert!(matches!(
        store
            .claim_room_creation(&project, &b, HOLD, None, false)
            .await
            .unwrap(),
        CreationClaim::Claimed { .. }
    ));
    let token_a = a.token();
    let token_b = b.token();
    assert!(
        !store
            .extend_room_creation(&project, &token_a, HOLD)
            .await
            .unwrap()
    );
    assert!(
        store
            .extend_room_creation(&project, &token_b, HOLD)
            .await
            .unwrap()
    );

    // A permanent failure cools down: nobody claims, not even the failed job, unless forced.
    assert!(
        store
            .fail_room_creation(
                &project,
                &token_b,
                "The room limit of your tariff has been reached".into(),
                Duration::from_secs(300),
            )
            .await
            .unwrap()
    );
    for claimant in [&a, &b] {
        match store
            .claim_room_creation(&project, claimant, HOLD, None, false)
            .await
            .unwrap()
        {
            CreationClaim::CoolingDown { error, .. } => assert_eq!(
                error.as_deref(),
                Some("The room limit of your tariff has been reached")
            ),
            other => panic!("cooling down, not {other:?}"),
        }
    }
    let command = Claimant::Command {
        token: "command:42-abc".into(),
    };
    assert!(matches!(
        store
            .claim_room_creation(&project, &command, HOLD, None, true)
            .await
            .unwrap(),
        CreationClaim::Claimed { .. }
    ));
    let stored = store
        .room_creation(&project)
        .await
        .unwrap()
        .expect("a claim");
    assert_eq!(stored.state, CreationState::Claimed);
    assert_eq!(stored.job_id, None);
    assert_eq!(stored.last_error, None);

    // Released: free for the next claimant.
    assert!(
        store
            .release_room_creation(&project, "command:42-abc")
            .await
            .unwrap()
    );
    assert_eq!(store.room_creation(&project).await.unwrap(), None);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_a_created_room_needs_the_claim_and_drops_it(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let owner = LeaseOwner::new("worker-a");
    let project = gid(PROJECT);
    let job = running_job(&store, &owner, "k", "1").await;
    let claimant = job_claimant(job, &owner);

    assert!(
        !store
            .record_created_room(room(PROJECT, 45), Some("Website"), &claimant.token(), None)
            .await
            .unwrap(),
        "no claim, no record"
    );
    assert_eq!(store.project_room(&project).await.unwrap(), None);

    store
        .claim_room_creation(&project, &claimant, HOLD, None, false)
        .await
        .unwrap();
    assert!(
        store
            .record_created_room(room(PROJECT, 45), Some("Website"), &claimant.token(), None)
            .await
            .unwrap()
    );
    let mapped = store.project_room(&project).await.unwrap().expect("mapped");
    assert_eq!(
        (mapped.room_id, mapped.how.as_str(), mapped.state.as_str()),
        (45, "created", "active")
    );
    assert_eq!(mapped.project_name.as_deref(), Some("Website"));
    assert_eq!(store.room_creation(&project).await.unwrap(), None);

    // Gone, then replaced: only over the gone room's mapping.
    assert!(store.mark_room_gone(&project, 45, "deleted").await.unwrap());
    assert_eq!(store.gone_rooms().await.unwrap().len(), 1);
    store
        .claim_room_creation(&project, &claimant, HOLD, Some(45), false)
        .await
        .unwrap();
    assert!(
        !store
            .record_created_room(room(PROJECT, 46), None, &claimant.token(), Some(44))
            .await
            .unwrap(),
        "not the room to replace"
    );
    assert!(
        store
            .record_created_room(room(PROJECT, 46), None, &claimant.token(), Some(45))
            .await
            .unwrap()
    );
    let replaced = store.project_room(&project).await.unwrap().expect("mapped");
    assert_eq!((replaced.room_id, replaced.state.as_str()), (46, "active"));
    assert_eq!(
        replaced.project_name.as_deref(),
        Some("Website"),
        "a known name stays"
    );
    assert!(store.gone_rooms().await.unwrap().is_empty());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_serves_one_project_and_link_unlink_list_round_trip(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let (a, b) = (gid("1200000000000100"), gid("1200000000000200"));

    store
        .claim_room_creation(
            &a,
            &Claimant::Command {
                token: "command:1-x".into(),
            },
            HOLD,
            None,
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .link_project_room(room(a.as_str(), 45), Some("Website"))
            .await
            .unwrap(),
        LinkOutcome::Linked
    );
    assert_eq!(
        store.room_creation(&a).await.unwrap(),
        None,
        "linking drops the claim"
    );
    assert_eq!(
        store
            .link_project_room(room(b.as_str(), 45), None)
            .await
            .unwrap(),
        LinkOutcome::RoomTaken {
            project_gid: a.as_str().to_string()
        }
    );
    assert_eq!(store.project_room(&b).await.unwrap(), None);
    store
        .link_project_room(room(b.as_str(), 46), Some("Shop"))
        .await
        .unwrap();
    // Relinking a project to another room moves it.
    store
        .link_project_room(room(a.as_str(), 47), None)
        .await
        .unwrap();

    let listed: Vec<(String, i64, String)> = store
        .list_project_rooms()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.project_gid.as_str().to_string(), r.room_id, r.how))
        .collect();
    assert_eq!(
        listed,
        vec![
            (a.as_str().to_string(), 47, "linked".to_string()),
            (b.as_str().to_string(), 46, "linked".to_string()),
        ]
    );
    assert_eq!(
        store.project_name(&a).await.unwrap(),
        Some(Some("Website".into()))
    );

    assert!(store.unlink_project_room(&a).await.unwrap());
    assert!(!store.unlink_project_room(&a).await.unwrap());
    assert_eq!(store.list_project_rooms().await.unwrap().len(), 1);
    assert_eq!(
        store.project_name(&a).await.unwrap(),
        Some(Some("Website".into())),
        "the project stays known by name"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_live_grant_per_person_and_room_among_20_concurrent_jobs(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let owner = LeaseOwner::new("worker-a");
    let mut jobs = Vec::new();
    for n in 0..20 {
        jobs.push(running_job(&store, &owner, &format!("k{n}"), &format!("{}", 100 + n)).await);
    }

    let reservations = all(jobs.iter().map(|&id| {
        let store = store.clone();
        let owner = owner.clone();
        async move {
            let reservation = store
                .reserve_grant(id, &owner, grant("ann@example.com", 45, "100"))
                .await
                .expect("reserve")
                .expect("lease held");
            (id, reservation)
        }
    }))
    .await;

    let mine: Vec<i64> = reservations
        .iter()
        .filter(|(_, r)| *r == GrantReservation::Mine)
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(mine.len(), 1, "{reservations:?}");
    let winner = mine[0];
    for (id, reservation) in &reservations {
        if *id != winner {
            assert_eq!(*reservation, GrantReservation::Theirs { job_id: winner });
        }
    }
    assert_eq!(count(&env, "SELECT COUNT(*) FROM room_grants").await, 1);

    // The winner's retry still holds it; once confirmed, everyone sees it settled.
    assert_eq!(
        store
            .reserve_grant(winner, &owner, grant("ann@example.com", 45, "100"))
            .await
            .unwrap(),
        Some(GrantReservation::Mine)
    );
    assert!(
        store
            .confirm_grant(winner, &owner, &email("ann@example.com"), 45)
            .await
            .unwrap()
    );
    let other = jobs.iter().copied().find(|id| *id != winner).unwrap();
    assert_eq!(
        store
            .reserve_grant(other, &owner, grant("ann@example.com", 45, "101"))
            .await
            .unwrap(),
        Some(GrantReservation::AlreadyGranted {
            job_id: winner,
            state: GrantState::Granted
        })
    );
    // Another room is another pair.
    assert_eq!(
        store
            .reserve_grant(other, &owner, grant("ann@example.com", 46, "101"))
            .await
            .unwrap(),
        Some(GrantReservation::Mine)
    );
    let live = store
        .live_grants_of(&email("ann@example.com"))
        .await
        .unwrap();
    assert_eq!(
        live.iter()
            .map(|g| (g.room_id, g.state, g.job_id))
            .collect::<Vec<_>>(),
        vec![
            (45, GrantState::Granted, winner),
            (46, GrantState::Sending, other)
        ]
    );
    assert!(live[0].granted_at.is_some());
    assert_eq!(store.granted_counts().await.unwrap(), vec![(45, 1)]);

    // Issue 13 ends a grant: a later grant is a new live row, history stays.
    env.execute_sql("UPDATE room_grants SET ended_at = 1 WHERE room_id = 45")
        .await;
    assert_eq!(
        store
            .reserve_grant(other, &owner, grant("ann@example.com", 45, "101"))
            .await
            .unwrap(),
        Some(GrantReservation::Mine)
    );
    assert_eq!(
        count(&env, "SELECT COUNT(*) FROM room_grants WHERE room_id = 45").await,
        2
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_the_lease_reserves_claims_and_records_nothing(
    #[case] backend: Backend,
) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let holder = LeaseOwner::new("worker-new");
    let stale = LeaseOwner::new("worker-old");
    let job = running_job(&store, &holder, "k", "1").await;
    let expired = running_job(&store, &stale, "k2", "2").await;
    env.execute_sql(&format!(
        "UPDATE jobs SET lease_until = 1 WHERE id = {expired}"
    ))
    .await;

    for (id, owner) in [(job, &stale), (expired, &stale)] {
        assert_eq!(
            store
                .reserve_grant(id, owner, grant("ann@example.com", 45, "1"))
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .claim_room_creation(&gid(PROJECT), &job_claimant(id, owner), HOLD, None, false)
                .await
                .unwrap(),
            CreationClaim::LeaseLost
        );
        assert!(
            !store
                .record_had_access(id, owner, grant("ann@example.com", 45, "1"))
                .await
                .unwrap()
        );
    }
    assert_eq!(count(&env, "SELECT COUNT(*) FROM room_grants").await, 0);
    assert_eq!(count(&env, "SELECT COUNT(*) FROM room_creations").await, 0);

    // The holder reserves; a stale worker cannot confirm it.
    assert_eq!(
        store
            .reserve_grant(job, &holder, grant("ann@example.com", 45, "1"))
            .await
            .unwrap(),
        Some(GrantReservation::Mine)
    );
    assert!(
        !store
            .confirm_grant(job, &stale, &email("ann@example.com"), 45)
            .await
            .unwrap()
    );
    assert_eq!(
        store.list_grants().await.unwrap()[0].state,
        GrantState::Sending
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_releases_its_reservations_and_a_finished_jobs_are_taken_over(
    #[case] backend: Backend,
) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let owner = LeaseOwner::new("worker-a");

    // Failed for good: its `sending` rows go, its confirmed ones stay.
    let failed = running_job(&store, &owner, "failed", "1").await;
    for room_id in [45, 46] {
        store
            .reserve_grant(failed, &owner, grant("ann@example.com", room_id, "1"))
            .await
            .unwrap();
    }
    assert!(
        store
            .confirm_grant(failed, &owner, &email("ann@example.com"), 46)
            .await
            .unwrap()
    );
    assert!(
        store
            .fail_job(failed, &owner, "DocSpace said no".into(), None)
            .await
            .unwrap()
    );
    let left: Vec<(i64, GrantState)> = store
        .list_grants()
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.room_id, g.state))
        .collect();
    assert_eq!(left, vec![(46, GrantState::Granted)]);
    let next = running_job(&store, &owner, "next", "2").await;
    assert_eq!(
        store
            .reserve_grant(next, &owner, grant("ann@example.com", 45, "2"))
            .await
            .unwrap(),
        Some(GrantReservation::Mine)
    );

    // Finished without confirming: a later job takes the row over; a running holder keeps it.
    let running = running_job(&store, &owner, "running", "3").await;
    assert_eq!(
        store
            .reserve_grant(running, &owner, grant("ann@example.com", 45, "3"))
            .await
            .unwrap(),
        Some(GrantReservation::Theirs { job_id: next })
    );
    store
        .finish_job(next, &owner, Outcome::AlreadyMember, None, None)
        .await
        .unwrap();
    assert_eq!(
        store
            .reserve_grant(running, &owner, grant("ann@example.com", 45, "3"))
            .await
            .unwrap(),
        Some(GrantReservation::Mine)
    );
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM room_grants WHERE room_id = 45 AND ended_at IS NULL"
        )
        .await,
        1
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn had_access_records_what_was_seen_and_never_takes_another_jobs_row(
    #[case] backend: Backend,
) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let owner = LeaseOwner::new("worker-a");
    let first = running_job(&store, &owner, "first", "1").await;
    let second = running_job(&store, &owner, "second", "2").await;

    // The job's own reservation, then the person turns out to be in the room with Read.
    store
        .reserve_grant(first, &owner, grant("ann@example.com", 45, "1"))
        .await
        .unwrap();
    let mut seen = grant("ann@example.com", 45, "1");
    seen.access = 2;
    assert!(store.record_had_access(first, &owner, seen).await.unwrap());
    // Another job's observation changes nothing.
    let mut other = grant("ann@example.com", 45, "2");
    other.access = 9;
    assert!(
        store
            .record_had_access(second, &owner, other)
            .await
            .unwrap()
    );
    // A new pair is a new row.
    assert!(
        store
            .record_had_access(second, &owner, grant("bob@example.com", 45, "2"))
            .await
            .unwrap()
    );

    let rows: Vec<(String, i64, GrantState, i64)> = store
        .list_grants()
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.email, g.access, g.state, g.job_id))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("ann@example.com".into(), 2, GrantState::HadAccess, first),
            ("bob@example.com".into(), 10, GrantState::HadAccess, second),
        ]
    );
    assert_eq!(
        store
            .reserve_grant(second, &owner, grant("ann@example.com", 45, "2"))
            .await
            .unwrap(),
        Some(GrantReservation::AlreadyGranted {
            job_id: first,
            state: GrantState::HadAccess
        })
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshing_a_task_replaces_its_row_and_projects(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let task = gid("300");
    let read = |completed: bool, projects: Vec<TaskProject>| TaskRead {
        gid: task.clone(),
        assignee_gid: Some(gid("77")),
        assignee_email: Some(email("ann@example.com")),
        completed,
        parent_gid: Some(gid("200")),
        projects,
    };
    let via = |project: &str, via: &str| TaskProject {
        project_gid: gid(project),
        via_task_gid: gid(via),
    };

    store
        .refresh_task(
            read(
                false,
                vec![
                    via("1200000000000100", "300"),
                    via("1200000000000200", "100"),
                ],
            ),
            Some(7),
        )
        .await
        .unwrap();
    store
        .refresh_task(
            read(
                true,
                vec![
                    via("1200000000000200", "200"),
                    via("1200000000000300", "300"),
                ],
            ),
            None,
        )
        .await
        .unwrap();

    let row = store.task(&task).await.unwrap().expect("a task row");
    assert_eq!(row.completed, 1);
    assert_eq!(row.assignee_email.as_deref(), Some("ann@example.com"));
    assert_eq!(row.parent_gid.as_deref(), Some("200"));
    assert_eq!(row.read_by_job_id, None);
    assert_eq!(
        store.task_projects(&task).await.unwrap(),
        vec![
            via("1200000000000200", "200"),
            via("1200000000000300", "300")
        ]
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_is_known_by_a_confirmed_webhook_or_a_room(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let owner = LeaseOwner::new("worker-a");
    let (hooked, unconfirmed, linked, unknown) = (
        gid("1200000000000100"),
        gid("1200000000000200"),
        gid("1200000000000300"),
        gid("1200000000000400"),
    );
    env.execute_sql(
        "INSERT INTO webhooks (name, secret, created_at, project_gid) \
         VALUES ('website', 'secret', 1, '1200000000000100')",
    )
    .await;
    env.execute_sql(
        "INSERT INTO webhooks (name, secret, created_at, project_gid, unconfirmed_until) \
         VALUES ('shop', 'secret', 1, '1200000000000200', 99999999999999)",
    )
    .await;
    store
        .upsert_project(&hooked, Some("Website"))
        .await
        .unwrap();
    store
        .upsert_project(&unknown, Some("Heard of"))
        .await
        .unwrap();
    store
        .link_project_room(room(linked.as_str(), 45), Some("Linked"))
        .await
        .unwrap();
    let job = running_job(&store, &owner, "k", "1").await;
    for address in ["ann@example.com", "bob@example.com"] {
        store
            .reserve_grant(job, &owner, grant(address, 45, "1"))
            .await
            .unwrap();
        store
            .confirm_grant(job, &owner, &email(address), 45)
            .await
            .unwrap();
    }

    let view = store
        .project_room_view(&hooked)
        .await
        .unwrap()
        .expect("known by its webhook");
    assert_eq!(view.confirmed_webhooks, 1);
    assert_eq!(view.project_name.as_deref(), Some("Website"));
    assert_eq!(view.room_id, None);
    let view = store
        .project_room_view(&linked)
        .await
        .unwrap()
        .expect("known by its room");
    assert_eq!(
        (
            view.confirmed_webhooks,
            view.room_id,
            view.access,
            view.granted
        ),
        (0, Some(45), Some(10), 2)
    );
    assert_eq!(view.how.as_deref(), Some("linked"));
    assert_eq!(store.project_room_view(&unconfirmed).await.unwrap(), None);
    assert_eq!(store.project_room_view(&unknown).await.unwrap(), None);

    let listed: Vec<(String, Option<i64>, i64)> = store
        .known_projects()
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.project_gid.as_str().to_string(), p.room_id, p.granted))
        .collect();
    assert_eq!(
        listed,
        vec![
            (hooked.as_str().to_string(), None, 0),
            (linked.as_str().to_string(), Some(45), 2),
        ]
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_records_what_the_attempt_learnt_all_at_once_and_nothing_without_the_lease(
    #[case] backend: Backend,
) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let owner = LeaseOwner::new("worker-a");
    let stale = LeaseOwner::new("worker-old");
    let job = running_job(&store, &owner, "k", "300").await;
    store
        .reserve_invitation(&email("ann@example.com"), job, &owner, &gid("300"), "User")
        .await
        .unwrap();
    for room_id in [45, 46] {
        store
            .reserve_grant(job, &owner, grant("ann@example.com", room_id, "300"))
            .await
            .unwrap();
    }
    let learnt = Confirmations {
        invitation_sent: Some(email("ann@example.com")),
        grants: vec![(email("ann@example.com"), 45)],
        had_access: vec![grant("bob@example.com", 46, "300")],
        task: Some(TaskRead {
            gid: gid("300"),
            assignee_gid: Some(gid("77")),
            assignee_email: Some(email("ann@example.com")),
            completed: false,
            parent_gid: None,
            projects: vec![TaskProject {
                project_gid: gid(PROJECT),
                via_task_gid: gid("300"),
            }],
        }),
        project_names: vec![(gid(PROJECT), "Website".into())],
        room_results: Some(r#"[{"room":45,"result":"granted"}]"#.into()),
        ..Confirmations::default()
    };
    let done = Settlement::Done {
        outcome: Outcome::Invited,
        note: None,
    };

    assert!(
        !store
            .settle_job(
                job,
                &stale,
                Some(email("ann@example.com")),
                done.clone(),
                learnt.clone()
            )
            .await
            .unwrap(),
        "a lost lease records nothing"
    );
    assert_eq!(store.task(&gid("300")).await.unwrap(), None);
    assert_eq!(store.project_name(&gid(PROJECT)).await.unwrap(), None);
    assert!(store.sent_invitations().await.unwrap().is_empty());
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM room_grants WHERE state = 'sending'"
        )
        .await,
        2
    );

    assert!(
        store
            .settle_job(job, &owner, Some(email("ann@example.com")), done, learnt)
            .await
            .unwrap()
    );
    assert_eq!(
        store.sent_invitations().await.unwrap(),
        vec!["ann@example.com".to_string()]
    );
    let rows: Vec<(String, i64, GrantState)> = store
        .list_grants()
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.email, g.room_id, g.state))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("ann@example.com".into(), 45, GrantState::Granted),
            ("ann@example.com".into(), 46, GrantState::Sending),
            ("bob@example.com".into(), 46, GrantState::HadAccess),
        ]
    );
    assert_eq!(
        store
            .task(&gid("300"))
            .await
            .unwrap()
            .unwrap()
            .read_by_job_id,
        Some(job)
    );
    assert_eq!(
        store.project_name(&gid(PROJECT)).await.unwrap(),
        Some(Some("Website".into()))
    );
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM jobs WHERE outcome = 'invited' AND room_results LIKE '%granted%'"
        )
        .await,
        1
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_keeps_the_grants_it_confirms_and_releases_the_rest(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let owner = LeaseOwner::new("worker-a");
    let job = running_job(&store, &owner, "k", "300").await;
    for room_id in [45, 46] {
        store
            .reserve_grant(job, &owner, grant("ann@example.com", room_id, "300"))
            .await
            .unwrap();
    }
    assert!(
        store
            .settle_job(
                job,
                &owner,
                None,
                Settlement::Failed {
                    error: "DocSpace did not add ann@example.com to room 46".into()
                },
                Confirmations {
                    grants: vec![(email("ann@example.com"), 45)],
                    ..Confirmations::default()
                },
            )
            .await
            .unwrap()
    );
    let rows: Vec<(i64, GrantState)> = store
        .list_grants()
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.room_id, g.state))
        .collect();
    assert_eq!(rows, vec![(45, GrantState::Granted)]);
    assert_eq!(
        count(&env, "SELECT COUNT(*) FROM jobs WHERE status = 'failed'").await,
        1
    );
}
