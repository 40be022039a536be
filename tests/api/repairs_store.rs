//! The webhook repairs store on both backends: one row per resource however often it is asked,
//! one claimant at a time, failures backed off, and a completion that forgets the old webhook and
//! asks the project's catch-up all at once, never under a lost claim.

use std::time::Duration;

use asana_docspace_bridge::domain::WatchedResource;
use asana_docspace_bridge::store::{RepairClaim, RepairRequest, Store, now_ms};
use rstest::rstest;

use crate::helpers::{Backend, Env, PROJECT, gid, name};

const HOLD: Duration = Duration::from_secs(180);
const OLD_GID: &str = "1200000000000123";

/// A webhook `webhook` registered for the test project (Asana's gid `webhook_gid`), with the
/// project's row.
async fn registered(env: &Env, webhook: &str, webhook_gid: &str, registered_at: i64) {
    env.execute_sql(&format!(
        "INSERT INTO webhooks (name, secret, created_at, project_gid, webhook_gid, target, registered_at) \
         VALUES ('{webhook}', 'secret-{webhook}', 1, '{PROJECT}', '{webhook_gid}', 'https://x/{webhook}', {registered_at})"
    ))
    .await;
    env.execute_sql(&format!(
        "INSERT INTO projects (gid, created_at, updated_at) VALUES ('{PROJECT}', 1, 1) \
         ON CONFLICT (gid) DO NOTHING"
    ))
    .await;
}

fn request(old: &str, since: i64) -> RepairRequest {
    RepairRequest {
        old_name: name(old),
        found: "deleted at Asana (404)".into(),
        since,
    }
}

async fn count(env: &Env, sql: &str) -> i64 {
    env.database.fetch_i64(sql).await
}

/// The old webhook `old`, its repair asked, claimed under `token`.
async fn claimed(env: &Env, store: &Store, token: &str) -> RepairClaim {
    registered(env, "old", OLD_GID, 1).await;
    store
        .request_webhook_repair(&request("old", 5_000))
        .await
        .unwrap();
    store
        .claim_due_repair(token, HOLD)
        .await
        .unwrap()
        .expect("the repair is due")
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_requests_for_one_webhook_make_one_row(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    registered(&env, "old", OLD_GID, 1).await;

    let (a, b) = (request("old", 5_000), request("old", 6_000));
    let (first, second) = tokio::join!(
        store.request_webhook_repair(&a),
        store.request_webhook_repair(&b)
    );

    assert!(
        first.unwrap() && second.unwrap(),
        "both see the repair pending"
    );
    assert_eq!(count(&env, "SELECT COUNT(*) FROM webhook_repairs").await, 1);
    let repairs = store.webhook_repairs().await.unwrap();
    assert!(
        [5_000, 6_000].contains(&repairs[0].since),
        "one of the two requests: {repairs:?}"
    );
    assert_eq!(
        repairs[0].resource,
        WatchedResource::Project(gid(PROJECT)),
        "what it watches comes from the webhook's row"
    );
    assert_eq!(repairs[0].old_webhook_gid, gid(OLD_GID));
    assert_eq!(repairs[0].attempts, 0);
    // A name without a confirmed registration (hand-made, no gid) gets none.
    env.execute_sql("INSERT INTO webhooks (name, secret, created_at) VALUES ('by-hand', 's', 1)")
        .await;
    assert!(
        !store
            .request_webhook_repair(&request("by-hand", 1))
            .await
            .unwrap()
    );
    // Another webhook of a resource under repair waits for that repair to end.
    registered(&env, "twin", "1200000000000125", 1).await;
    assert!(
        !store
            .request_webhook_repair(&request("twin", 1))
            .await
            .unwrap()
    );
    assert!(
        !store
            .request_webhook_repair(&request("unknown", 1))
            .await
            .unwrap()
    );
    assert_eq!(count(&env, "SELECT COUNT(*) FROM webhook_repairs").await, 1);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_is_claimed_by_one_until_its_claim_lapses(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let first = claimed(&env, &store, "repair:a").await;
    assert_eq!(first.repair.old_name, name("old"));

    assert!(
        store
            .claim_due_repair("repair:b", HOLD)
            .await
            .unwrap()
            .is_none()
    );
    env.execute_sql("UPDATE webhook_repairs SET claimed_until = 1")
        .await;
    let second = store
        .claim_due_repair("repair:b", HOLD)
        .await
        .unwrap()
        .expect("a lapsed claim is taken over");

    assert_eq!(second.token, "repair:b");
    assert!(
        store
            .claim_due_repair("repair:a", HOLD)
            .await
            .unwrap()
            .is_none()
    );
    // The one who lost it can no longer fail, drop or complete it.
    assert!(!store.fail_repair(&first, "boom", HOLD).await.unwrap());
    assert!(!store.drop_webhook_repair(&first).await.unwrap());
    assert!(store.drop_webhook_repair(&second).await.unwrap());
    assert_eq!(count(&env, "SELECT COUNT(*) FROM webhook_repairs").await, 0);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_repair_backs_off_and_releases_its_claim(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let claim = claimed(&env, &store, "repair:a").await;
    let before = now_ms();

    assert!(
        store
            .fail_repair(&claim, "Asana answered 500", Duration::from_secs(60))
            .await
            .unwrap()
    );

    let repair = &store.webhook_repairs().await.unwrap()[0];
    assert_eq!(repair.attempts, 1);
    assert_eq!(repair.last_error.as_deref(), Some("Asana answered 500"));
    assert!(repair.next_attempt_at >= before + 60_000, "{repair:?}");
    assert_eq!(
        count(&env, "SELECT COUNT(*) FROM webhook_repairs WHERE claim_token IS NULL AND claimed_until IS NULL").await,
        1
    );
    assert!(
        store
            .claim_due_repair("repair:b", HOLD)
            .await
            .unwrap()
            .is_none(),
        "not due before its backoff"
    );
    env.execute_sql("UPDATE webhook_repairs SET next_attempt_at = 1")
        .await;
    let again = store
        .claim_due_repair("repair:b", HOLD)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.repair.attempts, 1);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_forgets_the_old_webhook_and_asks_the_catch_up(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let claim = claimed(&env, &store, "repair:a").await;
    env.execute_sql(
        "INSERT INTO pending_registrations (name, opened_at, nonce_hash) VALUES ('old', 1, 'h')",
    )
    .await;
    registered(&env, "new", "1200000000000124", now_ms()).await;
    assert_eq!(
        store
            .replacement_webhook(
                &claim.repair.resource,
                &name("old"),
                claim.repair.created_at
            )
            .await
            .unwrap(),
        Some(name("new")),
        "a repair that died after confirming finds its webhook"
    );
    let before = now_ms();

    assert!(
        store
            .complete_webhook_repair(&claim, &name("new"))
            .await
            .unwrap()
    );

    assert!(store.find_webhook("old").await.unwrap().is_none());
    assert!(store.webhook_secret(&name("old")).await.unwrap().is_none());
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM pending_registrations WHERE name = 'old'"
        )
        .await,
        0
    );
    assert!(store.webhook_repairs().await.unwrap().is_empty());
    assert_eq!(
        store
            .replaced_names()
            .await
            .unwrap()
            .get("new")
            .map(String::as_str),
        Some("old")
    );
    let project = format!("FROM projects WHERE gid = '{PROJECT}'");
    assert_eq!(
        count(&env, &format!("SELECT reconcile_since {project}")).await,
        5_000
    );
    assert!(count(&env, &format!("SELECT reconcile_due_at {project}")).await >= before);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_up_keeps_the_earlier_start_asked_for(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let claim = claimed(&env, &store, "repair:a").await;
    registered(&env, "new", "1200000000000124", now_ms()).await;
    env.execute_sql(&format!(
        "UPDATE projects SET reconcile_since = 3000 WHERE gid = '{PROJECT}'"
    ))
    .await;

    assert!(
        store
            .complete_webhook_repair(&claim, &name("new"))
            .await
            .unwrap()
    );

    assert_eq!(
        count(
            &env,
            &format!("SELECT reconcile_since FROM projects WHERE gid = '{PROJECT}'")
        )
        .await,
        3_000
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_claim_completes_nothing(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let lost = claimed(&env, &store, "repair:a").await;
    registered(&env, "new", "1200000000000124", now_ms()).await;
    env.execute_sql("UPDATE webhook_repairs SET claimed_until = 1")
        .await;
    let taken = store
        .claim_due_repair("repair:b", HOLD)
        .await
        .unwrap()
        .unwrap();

    assert!(
        !store
            .complete_webhook_repair(&lost, &name("new"))
            .await
            .unwrap()
    );

    assert!(store.webhook_secret(&name("old")).await.unwrap().is_some());
    assert!(store.replaced_names().await.unwrap().is_empty());
    assert_eq!(
        count(
            &env,
            &format!(
                "SELECT COUNT(*) FROM projects WHERE gid = '{PROJECT}' \
                 AND reconcile_since IS NULL AND reconcile_due_at IS NULL"
            )
        )
        .await,
        1
    );
    assert!(
        store
            .complete_webhook_repair(&taken, &name("new"))
            .await
            .unwrap()
    );
    assert!(store.webhook_secret(&name("old")).await.unwrap().is_none());
}
