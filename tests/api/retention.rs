//! Retention: old `done` jobs are deleted in batches; failed and unfinished jobs, jobs an
//! invitation still being sent names, the invitations ledger and recent dedupe keys stay.

use std::time::Duration;

use asana_docspace_bridge::retention::Retention;
use asana_docspace_bridge::store::{LeaseOwner, Outcome, Store, now_ms};
use rstest::rstest;

use crate::helpers::{
    Backend, BridgeProcess, Env, WAIT, assignment_job, email, eventually, from_webhook, gid,
};

const HOUR_MS: i64 = 3600 * 1000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// A job created for `task` and leased to `owner`, as a worker holds it.
async fn running_job(store: &Store, owner: &LeaseOwner, key: &str, task: &str) -> i64 {
    store
        .create_leased_job(
            from_webhook("proj"),
            assignment_job(key, task),
            owner,
            Duration::from_secs(60),
        )
        .await
        .expect("create")
        .expect("a new job")
        .id
}

/// A `done` job whose last update was `age_ms` ago.
async fn done_job(env: &Env, store: &Store, key: &str, task: &str, age_ms: i64) -> i64 {
    let owner = LeaseOwner::new("test");
    let id = running_job(store, &owner, key, task).await;
    assert!(
        store
            .finish_job(id, &owner, Outcome::NoAssignee, None, None)
            .await
            .unwrap()
    );
    age(env, id, age_ms).await;
    id
}

async fn age(env: &Env, id: i64, age_ms: i64) {
    env.execute_sql(&format!(
        "UPDATE jobs SET updated_at = {}, created_at = {} WHERE id = {id}",
        now_ms() - age_ms,
        now_ms() - age_ms
    ))
    .await;
}

async fn exists(store: &Store, id: i64) -> bool {
    store.job(id).await.expect("read job").is_some()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_jobs_older_than_the_setting_go_and_everything_else_stays(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let owner = LeaseOwner::new("test");

    let old_done = done_job(&env, &store, "old-done", "1", 40 * DAY_MS).await;
    let recent_done = done_job(&env, &store, "recent-done", "2", 2 * DAY_MS).await;

    let old_failed = running_job(&store, &owner, "old-failed", "3").await;
    assert!(
        store
            .fail_job(old_failed, &owner, "DocSpace said no".into(), None)
            .await
            .unwrap()
    );
    age(&env, old_failed, 40 * DAY_MS).await;

    let old_pending = store
        .enqueue(
            from_webhook("proj"),
            vec![assignment_job("old-pending", "4")],
        )
        .await
        .unwrap();
    assert_eq!(old_pending.created, 1);
    env.execute_sql(&format!(
        "UPDATE jobs SET updated_at = {} WHERE dedupe_key = 'old-pending'",
        now_ms() - 40 * DAY_MS
    ))
    .await;

    // Invited: the job is done and its invitation sent. The ledger row outlives the job.
    let invited = running_job(&store, &owner, "invited", "5").await;
    store
        .reserve_invitation(
            &email("jane@example.com"),
            invited,
            &owner,
            &gid("5"),
            "User",
        )
        .await
        .unwrap()
        .expect("reserved");
    assert!(
        store
            .confirm_invitation(invited, &owner, email("jane@example.com"))
            .await
            .unwrap()
    );
    age(&env, invited, 40 * DAY_MS).await;

    // Done while its invitation is still `sending`: not settled, so kept.
    let sending = running_job(&store, &owner, "sending", "6").await;
    store
        .reserve_invitation(
            &email("bob@example.com"),
            sending,
            &owner,
            &gid("6"),
            "User",
        )
        .await
        .unwrap()
        .expect("reserved");
    assert!(
        store
            .finish_job(sending, &owner, Outcome::AlreadyMember, None, None)
            .await
            .unwrap()
    );
    age(&env, sending, 40 * DAY_MS).await;

    let deleted = Retention::new(store.clone(), 30).sweep().await.unwrap();

    assert_eq!(deleted, 2, "the old done job and the invited one");
    assert!(!exists(&store, old_done).await);
    assert!(!exists(&store, invited).await);
    assert!(exists(&store, recent_done).await, "2 days < 30 days");
    assert!(exists(&store, old_failed).await, "failed jobs stay");
    assert!(
        exists(&store, sending).await,
        "its invitation is being sent"
    );
    assert_eq!(
        store.list_jobs(None, 100).await.unwrap().len(),
        4,
        "recent done, failed, pending, sending"
    );
    assert_eq!(
        store.sent_invitations().await.unwrap(),
        ["jane@example.com"],
        "the ledger keeps the invitation of a deleted job"
    );
    assert!(
        store
            .invitation(&email("bob@example.com"), sending)
            .await
            .unwrap()
            .is_some()
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedupe_keys_stay_48_hours_whatever_the_setting(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let older = done_job(&env, &store, "49-hours", "1", 49 * HOUR_MS).await;
    let younger = done_job(&env, &store, "47-hours", "2", 47 * HOUR_MS).await;

    // One day asked for; 48 hours kept.
    let deleted = Retention::new(store.clone(), 1).sweep().await.unwrap();

    assert_eq!(deleted, 1);
    assert!(!exists(&store, older).await);
    assert!(exists(&store, younger).await);
    let redelivered = store
        .enqueue(from_webhook("proj"), vec![assignment_job("47-hours", "2")])
        .await
        .unwrap();
    assert_eq!(redelivered.duplicates, 1, "its dedupe key still counts");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_days_keeps_done_jobs_forever(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let ancient = done_job(&env, &store, "ancient", "1", 4000 * DAY_MS).await;

    assert_eq!(Retention::new(store.clone(), 0).sweep().await.unwrap(), 0);
    assert!(exists(&store, ancient).await);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_write_deletes_at_most_one_batch_oldest_first(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let age = (10 + i) * DAY_MS;
        ids.push(done_job(&env, &store, &format!("k{i}"), &format!("{}", i + 1), age).await);
    }
    let cutoff = now_ms() - DAY_MS;

    assert_eq!(store.delete_expired_done_jobs(cutoff, 2).await.unwrap(), 2);
    assert!(!exists(&store, ids[4]).await && !exists(&store, ids[3]).await);
    assert!(exists(&store, ids[2]).await, "the oldest go first");
    assert_eq!(store.delete_expired_done_jobs(cutoff, 2).await.unwrap(), 2);
    assert_eq!(store.delete_expired_done_jobs(cutoff, 2).await.unwrap(), 1);
    assert_eq!(store.delete_expired_done_jobs(cutoff, 2).await.unwrap(), 0);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_deletes_expired_done_jobs_and_counts_them(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    env.set("BRIDGE__RETENTION__DONE_DAYS", "3");
    let store = env.store().await;
    let expired = done_job(&env, &store, "expired", "1", 4 * DAY_MS).await;
    let kept = done_job(&env, &store, "kept", "2", 2 * DAY_MS).await;
    store.close().await;

    let process = BridgeProcess::start(&env).await;
    let store = env.store().await;
    eventually("the expired job to be deleted", WAIT, || async {
        (!exists(&store, expired).await).then_some(())
    })
    .await;
    assert!(exists(&store, kept).await);
    let metrics_url = process.bridge.url("/metrics");
    eventually("bridge_jobs_deleted_total 1", WAIT, || async {
        let text = process
            .bridge
            .client
            .get(&metrics_url)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .any(|l| l == "bridge_jobs_deleted_total 1")
            .then_some(())
    })
    .await;
    process.terminate().await;
}
