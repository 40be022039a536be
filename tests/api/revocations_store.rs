//! The revocations ledger on both backends (issue 13): scheduled in the settlement of the job
//! that saw a need end, only when no other open task keeps it; once per grant; cancelled when the
//! need comes back (never once DocSpace may have been asked); reserved and settled only under the
//! revoke job's lease; and the grants it takes back end, so a new grant is a new row.

use std::time::Duration;

use asana_docspace_bridge::store::{
    Confirmations, GrantRequest, GrantReservation, LeaseOwner, LogFilter, NeedEnd, NewProjectRoom,
    Outcome, RemovalReservation, RevocationEnd, RevocationRecord, RevocationState, Settlement,
    Store, TaskProject, TaskRead,
};
use rstest::rstest;

use crate::helpers::{Backend, Env, PROJECT, assignment_job, email, from_webhook, gid};

const LEASE: Duration = Duration::from_secs(60);
const GRACE: Duration = Duration::from_secs(3600);
const ROOM: i64 = 45;
const BOB: &str = "bob@example.com";

/// The bridge's side of a test: a store with PROJECT's room linked, and a worker.
struct Ledger {
    env: Env,
    store: Store,
    owner: LeaseOwner,
    jobs: u32,
}

impl Ledger {
    async fn on(backend: Backend) -> Option<Ledger> {
        let env = Env::on(backend).await?;
        let store = env.store().await;
        store
            .link_project_room(
                NewProjectRoom {
                    project_gid: gid(PROJECT),
                    room_id: ROOM,
                    room_title: "Website".into(),
                    room_type: 2,
                    access: 10,
                },
                Some("Website"),
            )
            .await
            .expect("link");
        Some(Ledger {
            env,
            store,
            owner: LeaseOwner::new("worker-a"),
            jobs: 0,
        })
    }

    /// A new job for `task`, leased to this worker.
    async fn job(&mut self, task: &str) -> i64 {
        self.jobs += 1;
        self.store
            .create_leased_job(
                from_webhook("proj"),
                assignment_job(&format!("k{}", self.jobs), task),
                &self.owner,
                LEASE,
            )
            .await
            .expect("create")
            .expect("a new job")
            .id
    }

    /// A job reads `task` (in PROJECT, or through `parent`) with revocation on.
    async fn read(&mut self, task: &str, assignee: Option<&str>, completed: bool) -> i64 {
        let job = self.job(task).await;
        self.settle(job, read(task, None, assignee, completed), Vec::new())
            .await;
        job
    }

    async fn settle(&self, job: i64, task: TaskRead, grants: Vec<(&str, i64)>) {
        assert!(
            self.store
                .settle_job(
                    job,
                    &self.owner,
                    None,
                    Settlement::Done {
                        outcome: Outcome::Granted,
                        note: None
                    },
                    Confirmations {
                        task: Some(task),
                        grants: grants.into_iter().map(|(e, r)| (email(e), r)).collect(),
                        lifecycle: Some(GRACE),
                        ..Confirmations::default()
                    },
                )
                .await
                .unwrap()
        );
    }

    /// A job reads `task` assigned to `who` and shares the room with them.
    async fn grant(&mut self, task: &str, who: &str) -> i64 {
        let job = self.job(task).await;
        assert_eq!(
            self.store
                .reserve_grant(job, &self.owner, request(who, task))
                .await
                .unwrap(),
            Some(GrantReservation::Mine)
        );
        self.settle(job, read(task, None, Some(who), false), vec![(who, ROOM)])
            .await;
        job
    }

    async fn revocations(&self) -> Vec<RevocationRecord> {
        self.store.revocations().await.unwrap()
    }

    async fn count(&self, sql: &str) -> i64 {
        self.env.database.fetch_i64(sql).await
    }

    /// Leases the due revoke job (grace 0 in the test's data) to this worker.
    async fn claim(&self) -> i64 {
        let claimed = self
            .store
            .claim_due_jobs(&self.owner, 10, LEASE)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "{claimed:?}");
        claimed[0].id
    }

    /// Makes every waiting revocation and its job due now.
    async fn make_due(&self) {
        self.env
            .execute_sql("UPDATE room_revocations SET due_at = 0 WHERE state = 'waiting'")
            .await;
        self.env
            .execute_sql("UPDATE jobs SET run_at = 0 WHERE event_kind = 'revoke'")
            .await;
    }
}

fn read(task: &str, parent: Option<&str>, assignee: Option<&str>, completed: bool) -> TaskRead {
    TaskRead {
        gid: gid(task),
        assignee_gid: assignee.map(|_| gid("77")),
        assignee_email: assignee.map(email),
        completed,
        parent_gid: parent.map(gid),
        projects: vec![TaskProject {
            project_gid: gid(PROJECT),
            via_task_gid: gid(parent.unwrap_or(task)),
        }],
    }
}

fn request(who: &str, task: &str) -> GrantRequest {
    GrantRequest {
        email: email(who),
        room_id: ROOM,
        project_gid: gid(PROJECT),
        docspace_user_id: "6f3c2a8e-1b2d-4c5e-8f90-0a1b2c3d4e5f".into(),
        access: 10,
        task_gid: gid(task),
    }
}

fn states(revocations: &[RevocationRecord]) -> Vec<RevocationState> {
    revocations.iter().map(|r| r.state).collect()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_revocation_is_scheduled_only_when_no_other_open_task_keeps_the_room(
    #[case] backend: Backend,
) {
    let Some(mut ledger) = Ledger::on(backend).await else {
        return;
    };
    ledger.grant("501", BOB).await;
    ledger.read("502", Some(BOB), false).await;

    ledger.read("501", Some("carl@example.com"), false).await;
    assert!(ledger.revocations().await.is_empty(), "502 keeps the room");
    assert!(
        ledger
            .store
            .needs_room(&email(BOB), &gid(PROJECT))
            .await
            .unwrap()
    );

    let job = ledger.read("502", Some(BOB), true).await;
    assert!(
        !ledger
            .store
            .needs_room(&email(BOB), &gid(PROJECT))
            .await
            .unwrap()
    );
    let revocations = ledger.revocations().await;
    assert_eq!(revocations.len(), 1, "{revocations:?}");
    let r = &revocations[0];
    assert_eq!(
        (r.email.as_str(), r.room_id, r.project_gid.as_str()),
        (BOB, ROOM, PROJECT)
    );
    assert_eq!(
        (r.why, r.why_task_gid.as_str()),
        (NeedEnd::Completed, "502")
    );
    assert_eq!(r.state, RevocationState::Waiting);
    assert_eq!(r.why_source.as_deref(), Some("webhook:proj"));
    assert_eq!(r.due_at - r.need_ended_at, 3_600_000);
    let revoke = ledger
        .store
        .job(r.job_id.expect("a revoke job"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoke.event_kind.as_str(), "revoke");
    assert_eq!(revoke.source.to_string(), "access");
    assert_eq!(revoke.task_gid.as_str(), "502");
    assert_eq!(revoke.run_at, r.due_at);
    assert_eq!(
        ledger
            .count(&format!(
                "SELECT COUNT(*) FROM jobs WHERE id = {} AND dedupe_key = 'revoke:{}' \
                 AND status = 'pending' AND unstarted_task_gid IS NULL AND project_gid = '{PROJECT}'",
                revoke.id, r.id
            ))
            .await,
        1,
        "no unstarted_task_gid: other jobs of task 502 are not held back for the grace"
    );
    assert!(job < revoke.id);

    // Another job of task 502 can still be queued while the revoke job waits.
    let queued = ledger
        .store
        .enqueue(from_webhook("proj"), vec![assignment_job("later", "502")])
        .await
        .unwrap();
    assert_eq!(queued.created, 1);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn each_ending_names_its_reason_and_a_subtask_counts_toward_its_parents_project(
    #[case] backend: Backend,
) {
    let Some(mut ledger) = Ledger::on(backend).await else {
        return;
    };
    ledger.grant("501", BOB).await;
    // A subtask two levels down counts toward the project through its ancestor.
    let sub = ledger.job("601").await;
    ledger
        .settle(sub, read("601", Some("501"), Some(BOB), false), Vec::new())
        .await;
    ledger.read("501", None, false).await;
    assert!(
        ledger.revocations().await.is_empty(),
        "the subtask keeps it"
    );
    ledger.read("601", Some("dana@example.com"), false).await;
    let revocations = ledger.revocations().await;
    assert_eq!(
        revocations.iter().map(|r| r.why).collect::<Vec<_>>(),
        vec![NeedEnd::Reassigned]
    );
    assert_eq!(revocations[0].why_task_gid, "601");

    // Deleted: Asana answered 404 for the job's task.
    let Some(mut ledger) = Ledger::on(backend).await else {
        return;
    };
    ledger.grant("501", BOB).await;
    let job = ledger.job("501").await;
    assert!(
        ledger
            .store
            .settle_job(
                job,
                &ledger.owner,
                None,
                Settlement::Done {
                    outcome: Outcome::TaskGone,
                    note: None
                },
                Confirmations {
                    task_gone: Some(gid("501")),
                    lifecycle: Some(GRACE),
                    ..Confirmations::default()
                },
            )
            .await
            .unwrap()
    );
    assert!(
        ledger
            .store
            .task(&gid("501"))
            .await
            .unwrap()
            .unwrap()
            .deleted_at
            .is_some()
    );
    let revocations = ledger.revocations().await;
    assert_eq!(
        revocations.iter().map(|r| r.why).collect::<Vec<_>>(),
        vec![NeedEnd::Deleted]
    );

    // Removed from the project: the read shows no project.
    let Some(mut ledger) = Ledger::on(backend).await else {
        return;
    };
    ledger.grant("501", BOB).await;
    let job = ledger.job("501").await;
    let mut removed = read("501", None, Some(BOB), false);
    removed.projects.clear();
    ledger.settle(job, removed, Vec::new()).await;
    ledger.read("502", Some(BOB), false).await;
    assert_eq!(
        states(&ledger.revocations().await),
        vec![RevocationState::NeededAgain],
        "removed, then a new task in the project renews the need"
    );
    assert_eq!(ledger.revocations().await[0].why, NeedEnd::Removed);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_grant_has_at_most_one_open_revocation(#[case] backend: Backend) {
    let Some(mut ledger) = Ledger::on(backend).await else {
        return;
    };
    ledger.grant("501", BOB).await;
    ledger.read("501", None, false).await;
    // The stored row made open again behind the bridge's back, then ended again.
    ledger
        .env
        .execute_sql("UPDATE tasks SET assignee_email = 'bob@example.com' WHERE gid = '501'")
        .await;
    ledger.read("501", Some(BOB), true).await;
    assert_eq!(
        states(&ledger.revocations().await),
        vec![RevocationState::Waiting]
    );
    assert_eq!(
        ledger
            .store
            .orphan_grants(&gid(PROJECT), GRACE)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        ledger
            .count("SELECT COUNT(*) FROM jobs WHERE event_kind = 'revoke'")
            .await,
        1
    );
    assert_eq!(ledger.store.open_revocations().await.unwrap(), 1);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn needed_again_cancels_a_waiting_revocation_and_its_job_never_a_removing_one(
    #[case] backend: Backend,
) {
    let Some(mut ledger) = Ledger::on(backend).await else {
        return;
    };
    ledger.grant("501", BOB).await;
    ledger.read("501", None, false).await;
    let first = ledger.revocations().await[0].clone();

    let renewing = ledger.read("502", Some(BOB), false).await;
    let cancelled = ledger.revocations().await[0].clone();
    assert_eq!(cancelled.state, RevocationState::NeededAgain);
    assert!(cancelled.done_at.is_some());
    assert_eq!(
        cancelled.note.as_deref(),
        Some("task 502 assignee_changed (webhook:proj)")
    );
    let job = ledger
        .store
        .job(first.job_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (job.status.as_str(), job.outcome.as_deref()),
        ("done", Some("needed_again"))
    );
    assert!(renewing > 0);

    // The need ends again: a new revocation; its job is claimed and reserves the removal.
    ledger.read("502", Some(BOB), true).await;
    assert_eq!(
        states(&ledger.revocations().await),
        vec![RevocationState::NeededAgain, RevocationState::Waiting]
    );
    ledger.make_due().await;
    let revoke = ledger.claim().await;
    let second = ledger.revocations().await[1].clone();
    assert_eq!(second.job_id, Some(revoke));
    assert_eq!(
        ledger
            .store
            .reserve_removal(revoke, &ledger.owner, second.id, 10)
            .await
            .unwrap(),
        Some(RemovalReservation::Mine)
    );
    let removing = ledger.revocations().await[1].clone();
    assert_eq!(removing.state, RevocationState::Removing);
    assert_eq!(removing.seen_access, Some(10));
    assert!(removing.decided_at.is_some());

    // Assigned again while DocSpace may have been asked: nothing is cancelled, and a new grant
    // waits for the revoke job.
    ledger.read("503", Some(BOB), false).await;
    assert_eq!(
        ledger.revocations().await[1].state,
        RevocationState::Removing
    );
    let granting = ledger.job("503").await;
    assert_eq!(
        ledger
            .store
            .reserve_grant(granting, &ledger.owner, request(BOB, "503"))
            .await
            .unwrap(),
        Some(GrantReservation::Revoking { job_id: revoke })
    );
    let work = ledger
        .store
        .revocation_for_job(revoke)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(work.state, RevocationState::Removing);
    assert!(work.room_active && !work.grant_ended);
    assert_eq!(work.grant_access, 10);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn reserving_a_removal_needs_the_lease_and_answers_needed_again_when_the_need_is_back(
    #[case] backend: Backend,
) {
    let Some(mut ledger) = Ledger::on(backend).await else {
        return;
    };
    ledger.grant("501", BOB).await;
    ledger.read("501", None, false).await;
    ledger.make_due().await;
    let revoke = ledger.claim().await;
    let id = ledger.revocations().await[0].id;

    let stranger = LeaseOwner::new("worker-b");
    assert_eq!(
        ledger
            .store
            .reserve_removal(revoke, &stranger, id, 10)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        states(&ledger.revocations().await),
        vec![RevocationState::Waiting]
    );
    assert_eq!(
        ledger
            .count("SELECT COUNT(*) FROM room_grants WHERE revoking_job_id IS NOT NULL")
            .await,
        0
    );

    // A read recorded without the lifecycle (it cancels nothing): the reservation finds the need.
    ledger
        .store
        .refresh_task(read("502", None, Some(BOB), false), None)
        .await
        .unwrap();
    assert_eq!(
        ledger
            .store
            .reserve_removal(revoke, &ledger.owner, id, 10)
            .await
            .unwrap(),
        Some(RemovalReservation::NeededAgain)
    );
    assert_eq!(
        states(&ledger.revocations().await),
        vec![RevocationState::NeededAgain]
    );
    assert_eq!(
        ledger
            .count("SELECT COUNT(*) FROM room_grants WHERE revoking_job_id IS NOT NULL")
            .await,
        0
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_settled_revocation_ends_the_grant_and_a_new_grant_is_a_new_row(
    #[case] backend: Backend,
) {
    let Some(mut ledger) = Ledger::on(backend).await else {
        return;
    };
    let granted = ledger.grant("501", BOB).await;
    ledger.read("501", Some("carl@example.com"), false).await;
    ledger.make_due().await;
    let revoke = ledger.claim().await;
    let id = ledger.revocations().await[0].id;
    assert_eq!(
        ledger
            .store
            .reserve_removal(revoke, &ledger.owner, id, 10)
            .await
            .unwrap(),
        Some(RemovalReservation::Mine)
    );
    assert!(
        ledger
            .store
            .settle_job(
                revoke,
                &ledger.owner,
                Some(email(BOB)),
                Settlement::Done {
                    outcome: Outcome::Revoked,
                    note: None
                },
                Confirmations {
                    revocation: Some((id, RevocationEnd::Revoked)),
                    ..Confirmations::default()
                },
            )
            .await
            .unwrap()
    );
    assert_eq!(
        states(&ledger.revocations().await),
        vec![RevocationState::Revoked]
    );
    assert!(
        ledger
            .store
            .live_grants_of(&email(BOB))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ledger
            .count(
                "SELECT COUNT(*) FROM room_grants WHERE ended_at IS NOT NULL \
                 AND end_reason = 'revoked' AND revoking_job_id IS NULL"
            )
            .await,
        1
    );

    // Assigned again after the revocation: a new grant, a second row.
    let regranted = ledger.grant("507", BOB).await;
    let live = ledger.store.live_grants_of(&email(BOB)).await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].job_id, regranted);
    assert_eq!(ledger.count("SELECT COUNT(*) FROM room_grants").await, 2);
    let (log, total) = ledger
        .store
        .access_log(
            &LogFilter {
                email: Some(email(BOB)),
                project: None,
            },
            50,
        )
        .await
        .unwrap();
    assert_eq!(total, 3);
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["granted", "revoked", "granted"]);
    assert_eq!(
        log[2].cause,
        format!("task 501 assignee_changed from webhook:proj; job {granted}")
    );
    assert!(
        log[1]
            .cause
            .starts_with("task 501 reassigned (webhook:proj) at "),
        "{}",
        log[1].cause
    );
    assert!(log[1].cause.ends_with(&format!("; job {revoke}")));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_kept_access_leaves_the_grant_live_and_a_failed_job_releases_it(
    #[case] backend: Backend,
) {
    let Some(mut ledger) = Ledger::on(backend).await else {
        return;
    };
    ledger.grant("501", BOB).await;
    ledger.read("501", None, false).await;
    ledger.make_due().await;
    let revoke = ledger.claim().await;
    let id = ledger.revocations().await[0].id;
    ledger
        .store
        .reserve_removal(revoke, &ledger.owner, id, 10)
        .await
        .unwrap();
    assert!(
        ledger
            .store
            .settle_job(
                revoke,
                &ledger.owner,
                None,
                Settlement::Failed {
                    error: "DocSpace answered 403".into()
                },
                Confirmations::default(),
            )
            .await
            .unwrap()
    );
    let failed = ledger.revocations().await[0].clone();
    assert_eq!(failed.state, RevocationState::Failed);
    assert_eq!(failed.note.as_deref(), Some("DocSpace answered 403"));
    let live = ledger.store.live_grants_of(&email(BOB)).await.unwrap();
    assert_eq!(live.len(), 1, "the access may still be there");
    assert_eq!(live[0].revoking_job_id, None);

    // `jobs retry`: the failed revocation can be reserved again, then kept (changed by hand).
    ledger.store.retry_failed_job(revoke).await.unwrap();
    assert_eq!(ledger.claim().await, revoke);
    assert_eq!(
        ledger
            .store
            .reserve_removal(revoke, &ledger.owner, id, 11)
            .await
            .unwrap(),
        Some(RemovalReservation::Mine)
    );
    assert!(
        ledger
            .store
            .settle_job(
                revoke,
                &ledger.owner,
                None,
                Settlement::Done {
                    outcome: Outcome::Kept,
                    note: None
                },
                Confirmations {
                    revocation: Some((
                        id,
                        RevocationEnd::KeptChangedByHand(
                            "Read now, the bridge granted Editing".into()
                        )
                    )),
                    ..Confirmations::default()
                },
            )
            .await
            .unwrap()
    );
    let kept = ledger.revocations().await[0].clone();
    assert_eq!(kept.state, RevocationState::KeptChangedByHand);
    assert_eq!(
        kept.note.as_deref(),
        Some("Read now, the bridge granted Editing")
    );
    let live = ledger.store.live_grants_of(&email(BOB)).await.unwrap();
    assert_eq!((live.len(), live[0].revoking_job_id), (1, None));
    let (log, _) = ledger
        .store
        .access_log(&LogFilter::default(), 1)
        .await
        .unwrap();
    assert_eq!(log[0].action, "kept: changed by hand");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_had_access_row_is_scheduled_too_to_be_kept(#[case] backend: Backend) {
    let Some(mut ledger) = Ledger::on(backend).await else {
        return;
    };
    let job = ledger.job("503").await;
    assert!(
        ledger
            .store
            .settle_job(
                job,
                &ledger.owner,
                None,
                Settlement::Done {
                    outcome: Outcome::AlreadyMember,
                    note: None
                },
                Confirmations {
                    had_access: vec![request("dana@example.com", "503")],
                    task: Some(read("503", None, Some("dana@example.com"), false)),
                    lifecycle: Some(GRACE),
                    ..Confirmations::default()
                },
            )
            .await
            .unwrap()
    );
    ledger.read("503", None, true).await;
    let plan = ledger.store.revocation_plan(None).await.unwrap();
    assert_eq!(plan.len(), 1);
    assert_eq!(
        plan[0].grant_state,
        asana_docspace_bridge::store::GrantState::HadAccess
    );
    assert_eq!(plan[0].why, Some(NeedEnd::Completed));
    let (log, _) = ledger
        .store
        .access_log(&LogFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(log.len(), 1, "a waiting revocation is not in the log");
    assert_eq!(log[0].action, "had access");
    assert_eq!(
        log[0].cause,
        format!("task 503; job {job} (found in the room, never ours)")
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn orphan_grants_schedules_each_grant_without_a_need_once(#[case] backend: Backend) {
    let Some(mut ledger) = Ledger::on(backend).await else {
        return;
    };
    let granted = ledger.grant("501", BOB).await;
    ledger.grant("502", "carl@example.com").await;
    // Completed long ago, never observed: the stored row says so only after a sweep's read.
    ledger
        .env
        .execute_sql("UPDATE tasks SET completed = 1 WHERE gid = '501'")
        .await;
    let plan = ledger
        .store
        .revocation_plan(Some(&gid(PROJECT)))
        .await
        .unwrap();
    assert_eq!(plan.len(), 1);
    assert_eq!(
        (
            plan[0].email.as_str(),
            plan[0].revocation_id,
            plan[0].grant_job_id
        ),
        (BOB, None, granted)
    );

    assert_eq!(
        ledger
            .store
            .orphan_grants(&gid(PROJECT), GRACE)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        ledger
            .store
            .orphan_grants(&gid(PROJECT), GRACE)
            .await
            .unwrap(),
        0
    );
    let revocations = ledger.revocations().await;
    assert_eq!(revocations.len(), 1);
    let r = &revocations[0];
    assert_eq!(
        (r.email.as_str(), r.why, r.why_task_gid.as_str()),
        (BOB, NeedEnd::NoOpenTask, "501")
    );
    assert_eq!(
        r.due_at - r.need_ended_at,
        3_600_000,
        "a full grace from now"
    );
    assert!(r.job_id.is_some());
    assert_eq!(
        ledger.store.revocation_plan(None).await.unwrap()[0].revocation_id,
        Some(r.id)
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn rescheduling_applies_a_changed_grace_to_waiting_revocations_and_their_jobs(
    #[case] backend: Backend,
) {
    let Some(mut ledger) = Ledger::on(backend).await else {
        return;
    };
    ledger.grant("501", BOB).await;
    ledger.read("501", None, false).await;
    assert_eq!(
        ledger
            .store
            .reschedule_waiting(Duration::from_secs(60))
            .await
            .unwrap(),
        1
    );
    let r = ledger.revocations().await[0].clone();
    assert_eq!(r.due_at, r.need_ended_at + 60_000);
    let job = ledger.store.job(r.job_id.unwrap()).await.unwrap().unwrap();
    assert_eq!(job.run_at, r.due_at);
    assert_eq!(
        ledger
            .store
            .reschedule_waiting(Duration::from_secs(60))
            .await
            .unwrap(),
        0,
        "unchanged"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_need_sweep_is_due_daily_and_finds_open_rows_a_listing_left_out(
    #[case] backend: Backend,
) {
    let Some(mut ledger) = Ledger::on(backend).await else {
        return;
    };
    ledger.read("501", Some(BOB), false).await;
    ledger.read("502", Some(BOB), false).await;
    ledger.read("503", Some(BOB), true).await;
    let sub = ledger.job("601").await;
    ledger
        .settle(sub, read("601", Some("501"), Some(BOB), false), Vec::new())
        .await;
    assert_eq!(
        ledger
            .store
            .open_tasks_not_listed(&gid(PROJECT), &[gid("501")])
            .await
            .unwrap(),
        vec![gid("502")],
        "completed rows and subtasks are not the project's direct open tasks"
    );

    let now = asana_docspace_bridge::store::now_ms();
    assert!(
        ledger
            .store
            .need_sweep_due(&gid(PROJECT), now)
            .await
            .unwrap()
    );
    ledger
        .store
        .mark_need_swept(&gid(PROJECT), now)
        .await
        .unwrap();
    assert!(
        !ledger
            .store
            .need_sweep_due(&gid(PROJECT), now + 1000)
            .await
            .unwrap()
    );
    assert!(
        ledger
            .store
            .need_sweep_due(&gid(PROJECT), now + 86_400_000)
            .await
            .unwrap()
    );
}
