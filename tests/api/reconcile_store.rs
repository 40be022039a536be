//! The reconcile store on both backends: a pass's page queues only assignments no job has
//! handled; one pass per project at a time (claims); the cursor moves only on a complete pass;
//! catch-ups keep the earliest `since`.

use std::time::Duration;

use asana_docspace_bridge::store::{
    ClaimOutcome, ReconcileCandidate, ReconcileClaim, Store, TaskRead, now_ms,
};
use rstest::rstest;

use crate::helpers::{Backend, Env, PROJECT, gid};

const HOLD: Duration = Duration::from_secs(60);
const OTHER: &str = "1200000000000200";

fn candidate(task: &str, assignee: &str, modified: &str) -> ReconcileCandidate {
    ReconcileCandidate {
        task_gid: gid(task),
        assignee_gid: Some(gid(assignee)),
        completed: false,
        dedupe_key: format!("reconcile:{task}:{assignee}:{modified}"),
    }
}

async fn queue(store: &Store, candidates: Vec<ReconcileCandidate>) -> Vec<String> {
    store
        .enqueue_reconcile_jobs(&gid(PROJECT), candidates)
        .await
        .expect("enqueue")
        .iter()
        .map(|g| g.to_string())
        .collect()
}

/// A task row as a job leaves it: read at `read_at` with `assignee`.
async fn task_read(store: &Store, task: &str, assignee: &str) {
    store
        .refresh_task(
            TaskRead {
                gid: gid(task),
                assignee_gid: Some(gid(assignee)),
                assignee_email: None,
                completed: false,
                parent_gid: None,
                projects: Vec::new(),
            },
            None,
        )
        .await
        .expect("refresh task");
}

/// A finished job for `task` that named `assignee`, created at `created_at`.
async fn done_job(env: &Env, key: &str, task: &str, assignee: &str, created_at: i64) {
    env.execute_sql(&format!(
        "INSERT INTO jobs (dedupe_key, source, task_gid, event_kind, status, run_at, created_at, \
         updated_at, assignee_gid) VALUES ('{key}', 'webhook:proj', '{task}', 'assignee_changed', \
         'done', {created_at}, {created_at}, {created_at}, '{assignee}')"
    ))
    .await;
}

/// A migrated store with one watched project, [`PROJECT`].
async fn watched_env(backend: Backend) -> Option<(Env, Store)> {
    let env = Env::on(backend).await?;
    let store = env.store().await;
    env.database
        .add_known_project("proj", PROJECT, "Website")
        .await;
    Some((env, store))
}

async fn claim(store: &Store, token: &str, passes_on: bool) -> Option<ReconcileClaim> {
    store
        .claim_due_reconcile(token, HOLD, passes_on)
        .await
        .expect("claim")
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_queues_only_assignments_no_job_handled(#[case] backend: Backend) {
    let Some((env, store)) = watched_env(backend).await else {
        return;
    };
    // 501: a job read it with 7001. 502: a job named 7002 after the last read (none here).
    // 503: a job waits to start. 504: nothing known.
    task_read(&store, "501", "7001").await;
    done_job(&env, "k502", "502", "7002", now_ms()).await;
    store
        .enqueue(
            crate::helpers::from_webhook("proj"),
            vec![crate::helpers::assignment_job("k503", "503")],
        )
        .await
        .expect("enqueue");

    let page = || {
        vec![
            candidate("501", "7001", "t1"),
            candidate("502", "7002", "t1"),
            candidate("503", "7003", "t1"),
            candidate("504", "7004", "t1"),
        ]
    };
    assert_eq!(queue(&store, page()).await, vec!["504".to_string()]);
    assert!(
        queue(&store, page()).await.is_empty(),
        "the same page again"
    );

    let source: i64 = env
        .database
        .fetch_i64(
            "SELECT COUNT(*) FROM jobs WHERE task_gid = '504' AND source = 'reconcile' \
             AND event_kind = 'reconcile' AND assignee_gid = '7004' \
             AND project_gid = '1200000000000100'",
        )
        .await;
    assert_eq!(source, 1);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reassignment_back_is_queued_again(#[case] backend: Backend) {
    let Some((env, store)) = watched_env(backend).await else {
        return;
    };
    // A's job ran long ago; then B's job read the task with B.
    done_job(&env, "ka", "501", "7001", 1_000).await;
    task_read(&store, "501", "7002").await;
    // A job for B is newer than nothing: B is handled (task row); A back: queued.
    assert!(
        queue(&store, vec![candidate("501", "7002", "t2")])
            .await
            .is_empty()
    );
    assert_eq!(
        queue(&store, vec![candidate("501", "7001", "t3")]).await,
        vec!["501".to_string()]
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_claim_at_a_time_taken_over_once_expired(#[case] backend: Backend) {
    let Some((env, store)) = watched_env(backend).await else {
        return;
    };
    let first = claim(&store, "service:a", true).await.expect("due at once");
    assert_eq!(first.project, gid(PROJECT));
    assert_eq!((first.cursor, first.since, first.failures), (None, None, 0));
    assert!(claim(&store, "service:b", true).await.is_none(), "held");
    match store
        .claim_project_reconcile(&gid(PROJECT), "command:1", HOLD)
        .await
        .unwrap()
    {
        ClaimOutcome::HeldUntil(until) => assert!(until > now_ms()),
        other => panic!("held, not {other:?}"),
    }

    env.execute_sql("UPDATE projects SET reconcile_claimed_until = 1")
        .await;
    let second = claim(&store, "service:b", true).await.expect("expired");
    assert!(!store.renew_reconcile_claim(&first, HOLD).await.unwrap());
    assert!(!store.finish_reconcile_pass(&first, 5, None).await.unwrap());
    assert!(store.renew_reconcile_claim(&second, HOLD).await.unwrap());
    assert!(
        store
            .finish_reconcile_pass(&second, 5_000, Some(now_ms() + 3_600_000))
            .await
            .unwrap()
    );
    let state = &store.reconcile_states().await.unwrap()[0];
    assert_eq!(state.reconcile_cursor, Some(5_000));
    assert!(claim(&store, "service:c", true).await.is_none(), "not due");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwatched_projects_are_never_claimed(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    // Known by a task read (rooms), but no webhook; and a webhook still unconfirmed.
    env.execute_sql(&format!(
        "INSERT INTO projects (gid, created_at, updated_at) VALUES ('{OTHER}', 1, 1)"
    ))
    .await;
    env.execute_sql(&format!(
        "INSERT INTO webhooks (name, secret, created_at, project_gid, unconfirmed_until) \
         VALUES ('w2', 's', 1, '{OTHER}', {})",
        now_ms() + 60_000
    ))
    .await;
    assert!(claim(&store, "service:a", true).await.is_none());
    assert_eq!(
        store
            .claim_project_reconcile(&gid(OTHER), "command:1", HOLD)
            .await
            .unwrap(),
        ClaimOutcome::NotWatched
    );
    assert!(store.reconcile_states().await.unwrap().is_empty());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_passes_off_only_catch_ups_are_claimed(#[case] backend: Backend) {
    let Some((env, store)) = watched_env(backend).await else {
        return;
    };
    env.database
        .add_known_project("proj2", OTHER, "Other")
        .await;
    assert!(claim(&store, "service:a", false).await.is_none());
    assert!(store.request_catch_up(&gid(OTHER), 9_000).await.unwrap());
    assert!(store.request_catch_up(&gid(OTHER), 12_000).await.unwrap());
    let caught = claim(&store, "service:a", false).await.expect("asked");
    assert_eq!(caught.project, gid(OTHER));
    assert_eq!(caught.since, Some(9_000), "the earliest asked");
    assert!(claim(&store, "service:a", false).await.is_none());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finish_clears_only_the_since_it_honoured(#[case] backend: Backend) {
    let Some((_env, store)) = watched_env(backend).await else {
        return;
    };
    store.request_catch_up(&gid(PROJECT), 10_000).await.unwrap();
    let pass = claim(&store, "service:a", false).await.expect("asked");
    assert_eq!(pass.since, Some(10_000));
    let started = now_ms();
    // Asked again, earlier, while the pass runs: it survives the finish and stays due.
    store.request_catch_up(&gid(PROJECT), 4_000).await.unwrap();
    assert!(
        store
            .finish_reconcile_pass(&pass, started, None)
            .await
            .unwrap()
    );
    let again = claim(&store, "service:a", false).await.expect("still due");
    assert_eq!((again.cursor, again.since), (Some(started), Some(4_000)));
    let started = now_ms() + 1;
    assert!(
        store
            .finish_reconcile_pass(&again, started, None)
            .await
            .unwrap()
    );
    let state = &store.reconcile_states().await.unwrap()[0];
    assert_eq!(
        (
            state.reconcile_cursor,
            state.reconcile_since,
            state.reconcile_due_at
        ),
        (Some(started), None, None)
    );
    assert!(claim(&store, "service:a", false).await.is_none());

    // Asked again with a later `since` while a pass runs (one `since` is kept, the earliest):
    // the pass may have read before the new webhook existed, so the catch-up survives it too.
    store.request_catch_up(&gid(PROJECT), 50_000).await.unwrap();
    let pass = claim(&store, "service:a", false).await.expect("asked");
    let started = now_ms();
    store.request_catch_up(&gid(PROJECT), 60_000).await.unwrap();
    assert!(
        store
            .finish_reconcile_pass(&pass, started, None)
            .await
            .unwrap()
    );
    let again = claim(&store, "service:a", false)
        .await
        .expect("the later catch-up is still due");
    assert_eq!(again.since, Some(50_000));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_keeps_the_cursor_and_backs_off(#[case] backend: Backend) {
    let Some((_env, store)) = watched_env(backend).await else {
        return;
    };
    let pass = claim(&store, "service:a", true).await.unwrap();
    assert!(
        store
            .finish_reconcile_pass(&pass, 7_000, Some(0))
            .await
            .unwrap()
    );
    let pass = claim(&store, "service:a", true).await.unwrap();
    let due = now_ms() + 300_000;
    assert!(
        store
            .fail_reconcile_pass(&pass, "Asana answered 500", due)
            .await
            .unwrap()
    );
    let state = &store.reconcile_states().await.unwrap()[0];
    assert_eq!(state.reconcile_cursor, Some(7_000));
    assert_eq!(state.reconcile_failures, 1);
    assert_eq!(state.reconcile_due_at, Some(due));
    assert_eq!(
        state.reconcile_last_error.as_deref(),
        Some("Asana answered 500")
    );
    assert!(
        claim(&store, "service:a", true).await.is_none(),
        "backing off"
    );
}

/// A candidate a pass read unassigned (`assignee` `None`) or completed (issue 13).
fn ending(task: &str, assignee: Option<&str>, completed: bool) -> ReconcileCandidate {
    ReconcileCandidate {
        task_gid: gid(task),
        assignee_gid: assignee.map(gid),
        completed,
        dedupe_key: format!("reconcile:{task}:{}:{completed}", assignee.unwrap_or("-")),
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unassigned_and_completed_tasks_queue_only_against_an_open_stored_assignment(
    #[case] backend: Backend,
) {
    let Some((env, store)) = watched_env(backend).await else {
        return;
    };
    // 601, 602: stored open with an assignee, read unassigned / completed: the need they show ended.
    // 603: stored open with an assignee, but a job created since its read will read it anyway.
    // 604: never read (no need the bridge counts). 605: stored unassigned already.
    // 606: stored completed, listed completed.
    for task in ["601", "602", "603"] {
        task_read(&store, task, "7001").await;
    }
    done_job(&env, "k603", "603", "7002", now_ms() + 1000).await;
    store
        .refresh_task(
            TaskRead {
                gid: gid("605"),
                assignee_gid: None,
                assignee_email: None,
                completed: false,
                parent_gid: None,
                projects: Vec::new(),
            },
            None,
        )
        .await
        .unwrap();
    store
        .refresh_task(
            TaskRead {
                gid: gid("606"),
                assignee_gid: Some(gid("7001")),
                assignee_email: None,
                completed: true,
                parent_gid: None,
                projects: Vec::new(),
            },
            None,
        )
        .await
        .unwrap();

    let page = || {
        vec![
            ending("601", None, false),
            ending("602", Some("7001"), true),
            ending("603", None, false),
            ending("604", None, true),
            ending("605", None, false),
            ending("606", Some("7001"), true),
        ]
    };
    assert_eq!(
        queue(&store, page()).await,
        vec!["601".to_string(), "602".to_string()]
    );
    assert!(
        queue(&store, page()).await.is_empty(),
        "the same page again"
    );
    assert_eq!(
        env.database
            .fetch_i64(
                "SELECT COUNT(*) FROM jobs WHERE task_gid IN ('601', '602') \
                 AND source = 'reconcile' AND event_kind = 'reconcile' AND status = 'pending'"
            )
            .await,
        2
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_task_listed_open_is_read_again(#[case] backend: Backend) {
    let Some((_env, store)) = watched_env(backend).await else {
        return;
    };
    store
        .refresh_task(
            TaskRead {
                gid: gid("701"),
                assignee_gid: Some(gid("7001")),
                assignee_email: None,
                completed: true,
                parent_gid: None,
                projects: Vec::new(),
            },
            None,
        )
        .await
        .unwrap();
    // Same assignee, but the stored row is completed: the re-opening renews a need.
    assert_eq!(
        queue(&store, vec![candidate("701", "7001", "t2")]).await,
        vec!["701".to_string()]
    );
}
