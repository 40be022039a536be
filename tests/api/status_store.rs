//! The status page's data on both backends (issue 14): the queue's counts from index ranges, the
//! failed-first job list, the webhook overview without secrets, the people of each room capped,
//! the sign-in sessions, and `StatusReport::gather` over all of them. On SQLite, the query plans
//! show that no queue count reads every job.

use asana_docspace_bridge::rooms::RoomsMode;
use asana_docspace_bridge::status::{DONE_WINDOW_MS, StatusReport, StatusSources};
use asana_docspace_bridge::store::{JobStatus, QUEUE_SUBSELECTS, Store, now_ms};
use asana_docspace_bridge::upstream::AsanaClient;
use asana_docspace_bridge::webhook::watch::WebhookHealth;
use rstest::rstest;
use secrecy::SecretString;

use crate::helpers::{ASANA_TOKEN, Backend, Env, PROJECT};

const HOUR_MS: i64 = 3_600_000;
const ROOM: i64 = 45;
const OTHER_ROOM: i64 = 46;
const OTHER_PROJECT: &str = "1200000000000200";
const WEBHOOK_SECRET: &str = "whsec-4f1d0c9a7e6b5d3c2b1a";
const TARGET_NONCE: &str = "nonce-8e7d6c5b4a39";

/// Jobs inserted as rows, so that a test sets each one's status, times and lease.
struct Jobs<'a> {
    env: &'a Env,
    next_key: usize,
}

#[derive(Clone, Copy)]
struct JobRow<'a> {
    status: &'a str,
    created_at: i64,
    updated_at: i64,
    lease_until: Option<i64>,
    last_error: Option<&'a str>,
}

impl<'a> JobRow<'a> {
    fn new(status: &'a str, at: i64) -> JobRow<'a> {
        JobRow {
            status,
            created_at: at,
            updated_at: at,
            lease_until: None,
            last_error: None,
        }
    }
}

impl Jobs<'_> {
    fn on(env: &Env) -> Jobs<'_> {
        Jobs { env, next_key: 0 }
    }

    /// Inserts `n` jobs like `row`, in one statement; ids grow in order.
    async fn add(&mut self, n: usize, row: JobRow<'_>) {
        let values: Vec<String> = (0..n)
            .map(|_| {
                self.next_key += 1;
                let key = self.next_key;
                format!(
                    "('status-{key}', 'webhook:proj', '{}', 'assignee_changed', '{}', 1, {}, {}, {}, {}, {})",
                    1_300_000_000_000_000_i64 + key as i64,
                    row.status,
                    row.created_at,
                    sql_int(row.lease_until),
                    row.last_error
                        .map_or("NULL".to_string(), |e| format!("'{e}'")),
                    row.created_at,
                    row.updated_at,
                )
            })
            .collect();
        self.env
            .execute_sql(&format!(
                "INSERT INTO jobs (dedupe_key, source, task_gid, event_kind, status, attempts, \
                 run_at, lease_until, last_error, created_at, updated_at) VALUES {}",
                values.join(", ")
            ))
            .await;
    }
}

fn sql_int(value: Option<i64>) -> String {
    value.map_or("NULL".to_string(), |v| v.to_string())
}

async fn job_ids(store: &Store, status: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = store
        .list_jobs(Some(status.parse().expect("a status")), 10_000)
        .await
        .expect("list")
        .into_iter()
        .map(|job| job.id)
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids
}

fn sources<'a>(store: &'a Store, health: &'a WebhookHealth, now: i64) -> StatusSources<'a> {
    StatusSources {
        store,
        health,
        rooms_mode: RoomsMode::Off,
        revoke_on: false,
        now,
        job_filter: None,
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_queue_counts_each_state_lapsed_leases_and_only_the_last_days_done_jobs(
    #[case] backend: Backend,
) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    // Opening the store migrates the test's database.
    let store = env.store().await;
    let now = now_ms();
    let mut jobs = Jobs::on(&env);
    // The lowest id is the oldest pending job, even though a later one claims an older time.
    jobs.add(1, JobRow::new("pending", now - 90_000)).await;
    jobs.add(2, JobRow::new("pending", now - 10_000)).await;
    jobs.add(1, JobRow::new("pending", now - 500_000)).await;
    jobs.add(
        2,
        JobRow {
            lease_until: Some(now + 60_000),
            ..JobRow::new("running", now)
        },
    )
    .await;
    jobs.add(
        1,
        JobRow {
            lease_until: Some(now - 1),
            ..JobRow::new("running", now - 120_000)
        },
    )
    .await;
    jobs.add(4, JobRow::new("failed", now - 5 * HOUR_MS)).await;
    jobs.add(5, JobRow::new("done", now - 23 * HOUR_MS)).await;
    jobs.add(2, JobRow::new("done", now - 25 * HOUR_MS)).await;

    let overview = store
        .queue_overview(now, now - DONE_WINDOW_MS)
        .await
        .expect("counts");
    assert_eq!(
        (
            overview.pending,
            overview.running,
            overview.running_lease_lapsed,
            overview.failed,
            overview.done_recent
        ),
        (4, 3, 1, 4, 5)
    );
    assert_eq!(overview.oldest_pending_created_at, Some(now - 90_000));

    let health = WebhookHealth::default();
    let report = StatusReport::gather(&sources(&store, &health, now))
        .await
        .expect("gather");
    assert_eq!(report.queue.pending, 4);
    assert_eq!(report.queue.done_last_24h, 5);
    assert_eq!(report.queue.running_lease_lapsed, 1);
    assert_eq!(report.queue.oldest_pending_age_secs, Some(90));
    assert_eq!(report.api_version, 1);
    assert!(report.rooms.is_none() && report.access.is_none());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_empty_queue_has_no_oldest_pending_job(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    // Opening the store migrates the test's database.
    let store = env.store().await;
    let overview = store.queue_overview(now_ms(), 0).await.expect("counts");
    assert_eq!(overview, Default::default());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn failed_jobs_fill_the_list_first_even_when_newer_jobs_exist(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    // Opening the store migrates the test's database.
    let store = env.store().await;
    let now = now_ms();
    let mut jobs = Jobs::on(&env);
    jobs.add(
        60,
        JobRow {
            last_error: Some("DocSpace 500"),
            ..JobRow::new("failed", now - HOUR_MS)
        },
    )
    .await;
    jobs.add(10, JobRow::new("done", now)).await;

    let listed = store.recent_jobs(None, 50).await.expect("jobs");
    let ids: Vec<i64> = listed.iter().map(|job| job.id).collect();
    let failed = job_ids(&store, "failed").await;
    assert_eq!(ids, failed[..50], "the 50 newest failed jobs, newest first");

    let health = WebhookHealth::default();
    let report = StatusReport::gather(&sources(&store, &health, now))
        .await
        .expect("gather");
    assert_eq!(report.jobs.len(), 50);
    assert!(report.jobs.iter().all(|job| job.status == "failed"));
    assert_eq!(report.jobs[0].last_error.as_deref(), Some("DocSpace 500"));
    assert_eq!(report.jobs[0].next_attempt_at, None);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_few_failed_jobs_come_first_then_the_newest_others(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    // Opening the store migrates the test's database.
    let store = env.store().await;
    let now = now_ms();
    let mut jobs = Jobs::on(&env);
    jobs.add(2, JobRow::new("failed", now - HOUR_MS)).await;
    jobs.add(100, JobRow::new("done", now)).await;
    jobs.add(3, JobRow::new("pending", now)).await;

    let listed = store.recent_jobs(None, 50).await.expect("jobs");
    let ids: Vec<i64> = listed.iter().map(|job| job.id).collect();
    let failed = job_ids(&store, "failed").await;
    let mut others: Vec<i64> = [
        job_ids(&store, "pending").await,
        job_ids(&store, "done").await,
    ]
    .concat();
    others.sort_unstable_by(|a, b| b.cmp(a));
    let expected: Vec<i64> = failed.iter().chain(&others[..48]).copied().collect();
    assert_eq!(ids, expected);

    let only_pending = store
        .recent_jobs(Some(JobStatus::Pending), 50)
        .await
        .expect("jobs");
    assert_eq!(
        only_pending.iter().map(|job| job.id).collect::<Vec<_>>(),
        job_ids(&store, "pending").await
    );
    let health = WebhookHealth::default();
    let report = StatusReport::gather(&StatusSources {
        job_filter: Some(JobStatus::Pending),
        ..sources(&store, &health, now)
    })
    .await
    .expect("gather");
    assert_eq!(report.job_filter.as_deref(), Some("pending"));
    assert_eq!(report.jobs.len(), 3);
    assert!(report.jobs.iter().all(|job| job.next_attempt_at.is_some()));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_webhook_overview_names_projects_and_never_carries_a_secret(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    // Opening the store migrates the test's database.
    let store = env.store().await;
    let now = now_ms();
    env.execute_sql(&format!(
        "INSERT INTO projects (gid, name, created_at, updated_at) VALUES ('{PROJECT}', 'Website', 1, 1)"
    ))
    .await;
    env.execute_sql(&format!(
        "INSERT INTO webhooks (name, secret, created_at, project_gid, webhook_gid, target, \
         registered_at, last_delivery_at, replaced_name, registration_nonce_hash) VALUES \
         ('wh-new', '{WEBHOOK_SECRET}', 1, '{PROJECT}', '1200000000000124', \
          'https://bridge.example.com/webhooks/asana/wh-new?nonce={TARGET_NONCE}', 2, {now}, 'wh-old', \
          'hash-{TARGET_NONCE}'), \
         ('wh-ws', '{WEBHOOK_SECRET}-2', 1, NULL, '1200000000000125', NULL, 2, NULL, NULL, NULL)"
    ))
    .await;
    env.execute_sql(
        "UPDATE webhooks SET resource_type = 'workspace', workspace_gid = '1200000000000300' \
         WHERE name = 'wh-ws'",
    )
    .await;
    env.execute_sql(&format!(
        "INSERT INTO webhooks (name, secret, created_at, unconfirmed_until) VALUES \
         ('wh-unconfirmed', '{WEBHOOK_SECRET}-3', 1, {})",
        now + 60_000
    ))
    .await;

    let hooks = store.webhook_overview().await.expect("webhooks");
    assert_eq!(
        hooks
            .iter()
            .map(|hook| hook.name.as_str())
            .collect::<Vec<_>>(),
        ["wh-new", "wh-ws"]
    );
    let new = &hooks[0];
    assert_eq!(new.project_name.as_deref(), Some("Website"));
    assert_eq!(new.replaced_name.as_deref(), Some("wh-old"));
    assert_eq!(new.last_delivery_at, Some(now));
    assert_eq!(hooks[1].resource_type, "workspace");
    let shown = format!("{hooks:?}");
    assert!(!shown.contains(WEBHOOK_SECRET) && !shown.contains(TARGET_NONCE));

    let health = WebhookHealth::default();
    let report = StatusReport::gather(&sources(&store, &health, now))
        .await
        .expect("gather");
    let row = &report.webhooks[0];
    assert_eq!(row.project.as_ref().map(|p| p.gid.as_str()), Some(PROJECT));
    assert_eq!(
        row.project.as_ref().and_then(|p| p.name.as_deref()),
        Some("Website")
    );
    assert_eq!(row.replaces.as_deref(), Some("wh-old"));
    assert!(row.asana.is_none(), "not checked since this process began");
    assert_eq!(
        report.webhooks[1].workspace_gid.as_deref(),
        Some("1200000000000300")
    );
    let json = serde_json::to_string(&report).expect("json");
    assert!(!json.contains(WEBHOOK_SECRET) && !json.contains(TARGET_NONCE));
    // Never delivered to and created in 1970: silent for over 24 hours, as /readyz says.
    assert!(report.problems["webhooks"]["wh-ws"].contains("no verified delivery"));
    assert!(!report.problems["webhooks"].contains_key("wh-new"));
}

fn asana_at(url: &str) -> AsanaClient {
    AsanaClient::new(
        url,
        SecretString::from(ASANA_TOKEN),
        std::time::Duration::from_secs(2),
    )
    .expect("an Asana client")
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn asanas_view_is_what_the_watchers_last_check_read_and_survives_an_unreachable_asana(
    #[case] backend: Backend,
) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    let store = env.store().await;
    let now = now_ms();
    // Registered here, unknown to Asana: Asana answers 404 (it deleted the webhook).
    env.execute_sql(&format!(
        "INSERT INTO webhooks (name, secret, created_at, project_gid, webhook_gid, registered_at, \
         last_delivery_at) VALUES ('wh-gone', 'secret', 1, '{PROJECT}', '1200000000000999', 1, {now})"
    ))
    .await;
    let health = WebhookHealth::default();
    let before = StatusReport::gather(&sources(&store, &health, now))
        .await
        .expect("gather");
    assert!(before.webhooks[0].asana.is_none(), "not checked yet");

    health
        .check_at_asana(&store, &asana_at(&env.asana.url()))
        .await;
    let checked = StatusReport::gather(&sources(&store, &health, now_ms()))
        .await
        .expect("gather");
    let view = checked.webhooks[0].asana.clone().expect("checked");
    assert!(view.deleted && !view.active, "{view:?}");
    assert!(checked.problems["webhooks"]["wh-gone"].contains("Asana has deleted webhook"));

    // Nothing listens on port 9 of loopback: the check cannot reach Asana; the view stays.
    health
        .check_at_asana(&store, &asana_at("http://127.0.0.1:9"))
        .await;
    let unreachable = StatusReport::gather(&sources(&store, &health, now_ms()))
        .await
        .expect("gather");
    assert_eq!(unreachable.webhooks[0].asana.as_ref(), Some(&view));
}

/// `n` live grants of `room` (project `project`), granted a minute apart from `since`.
async fn grants(env: &Env, project: &str, room: i64, n: i64, since: i64, prefix: &str) {
    let values: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "('{prefix}{i}@example.com', {room}, '{project}', 'user-{i}', 10, '{}', {}, '1300000000000001', {}, {})",
                if i == 0 { "had_access" } else { "granted" },
                i + 1,
                since + i * 60_000,
                since + i * 60_000,
            )
        })
        .collect();
    env.execute_sql(&format!(
        "INSERT INTO room_grants (email, room_id, project_gid, docspace_user_id, access, state, \
         job_id, task_gid, created_at, granted_at) VALUES {}",
        values.join(", ")
    ))
    .await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn each_room_lists_its_25_latest_people_and_counts_the_rest(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    // Opening the store migrates the test's database.
    let store = env.store().await;
    let now = now_ms();
    env.database
        .add_known_project("proj", PROJECT, "Website")
        .await;
    env.database
        .add_known_project("other", OTHER_PROJECT, "Intranet")
        .await;
    for (project, room) in [(PROJECT, ROOM), (OTHER_PROJECT, OTHER_ROOM)] {
        env.execute_sql(&format!(
            "INSERT INTO project_rooms (project_gid, room_id, room_title, room_type, access, how, \
             created_at, updated_at) VALUES ('{project}', {room}, 'Room {room}', 2, 10, 'linked', 1, 1)"
        ))
        .await;
    }
    grants(&env, PROJECT, ROOM, 30, now - HOUR_MS, "p").await;
    grants(&env, OTHER_PROJECT, OTHER_ROOM, 3, now - HOUR_MS, "q").await;
    // An ended grant is nobody's access any more.
    env.execute_sql(&format!(
        "INSERT INTO room_grants (email, room_id, project_gid, docspace_user_id, access, state, \
         job_id, task_gid, created_at, granted_at, ended_at) VALUES \
         ('gone@example.com', {ROOM}, '{PROJECT}', 'user-x', 10, 'granted', 99, '1300000000000001', {now}, {now}, {now})"
    ))
    .await;

    let people = store.room_people(25).await.expect("people");
    let in_room: Vec<&str> = people
        .iter()
        .filter(|p| p.room_id == ROOM)
        .map(|p| p.email.as_str())
        .collect();
    let newest: Vec<String> = (5..30).rev().map(|i| format!("p{i}@example.com")).collect();
    assert_eq!(in_room, newest);
    assert!(
        people
            .iter()
            .filter(|p| p.room_id == ROOM)
            .all(|p| p.live_in_room == 30)
    );
    assert_eq!(people.iter().filter(|p| p.room_id == OTHER_ROOM).count(), 3);

    let health = WebhookHealth::default();
    let report = StatusReport::gather(&StatusSources {
        rooms_mode: RoomsMode::Auto,
        ..sources(&store, &health, now)
    })
    .await
    .expect("gather");
    let rooms = report.rooms.expect("rooms are on");
    assert_eq!(rooms.mode, "auto");
    let website = rooms
        .projects
        .iter()
        .find(|p| p.gid == PROJECT)
        .expect("the project");
    assert_eq!(website.name.as_deref(), Some("Website"));
    assert_eq!(website.room.as_ref().map(|r| r.id), Some(ROOM));
    assert_eq!(website.granted.len(), 25);
    assert_eq!(website.more, 5);
    assert_eq!(website.granted[0].access, "Editing");
    let intranet = rooms
        .projects
        .iter()
        .find(|p| p.gid == OTHER_PROJECT)
        .expect("the other project");
    assert_eq!(intranet.more, 0);
    let had = intranet
        .granted
        .iter()
        .find(|g| g.email == "q0@example.com")
        .expect("the first person");
    assert_eq!(had.state, "had_access");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn linked_mode_reports_a_gone_room_as_a_problem(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    // Opening the store migrates the test's database.
    let store = env.store().await;
    let now = now_ms();
    env.database
        .add_known_project("proj", PROJECT, "Website")
        .await;
    env.execute_sql(&format!(
        "INSERT INTO project_rooms (project_gid, room_id, room_title, room_type, access, how, \
         state, gone_reason, created_at, updated_at) \
         VALUES ('{PROJECT}', {ROOM}, 'Room', 2, 10, 'linked', 'gone', 'archived', 1, 1)"
    ))
    .await;
    let health = WebhookHealth::default();

    let linked = StatusReport::gather(&StatusSources {
        rooms_mode: RoomsMode::Linked,
        ..sources(&store, &health, now)
    })
    .await
    .expect("gather");
    assert!(linked.problems["rooms"][PROJECT].contains("archived"));
    let auto = StatusReport::gather(&StatusSources {
        rooms_mode: RoomsMode::Auto,
        ..sources(&store, &health, now)
    })
    .await
    .expect("gather");
    assert!(!auto.problems.contains_key("rooms"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn with_revocation_on_the_report_has_the_access_section(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    // Opening the store migrates the test's database.
    let store = env.store().await;
    let now = now_ms();
    env.database
        .add_known_project("proj", PROJECT, "Website")
        .await;
    env.execute_sql(&format!(
        "INSERT INTO project_rooms (project_gid, room_id, room_title, room_type, access, how, \
         created_at, updated_at) VALUES ('{PROJECT}', {ROOM}, 'Room', 2, 10, 'linked', 1, 1)"
    ))
    .await;
    grants(&env, PROJECT, ROOM, 2, now - HOUR_MS, "p").await;
    let health = WebhookHealth::default();

    let report = StatusReport::gather(&StatusSources {
        revoke_on: true,
        ..sources(&store, &health, now)
    })
    .await
    .expect("gather");
    let access = report.access.expect("revocation is on");
    // Nobody has an open task: both people are found by the next sweep (one is kept: not ours).
    let mut states: Vec<(&str, &str)> = access
        .pending
        .iter()
        .map(|p| (p.email.as_str(), p.state.as_str()))
        .collect();
    states.sort_unstable();
    assert_eq!(
        states,
        [
            ("p0@example.com", "kept: not granted by us"),
            ("p1@example.com", "at the next sweep")
        ]
    );
    assert_eq!(access.latest.len(), 2, "{:?}", access.latest);
    assert!(access.latest.iter().all(|event| event.room_id == ROOM));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn sessions_are_found_until_they_expire_or_end_and_expired_rows_are_swept(
    #[case] backend: Backend,
) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    // Opening the store migrates the test's database.
    let store = env.store().await;
    let now = now_ms();
    store
        .create_admin_session("hash-a", "csrf-a", now, now + 8 * HOUR_MS)
        .await
        .expect("create");
    store
        .create_admin_session("hash-old", "csrf-old", now - 9 * HOUR_MS, now - HOUR_MS)
        .await
        .expect("create an already expired one");

    let found = store
        .admin_session("hash-a", now)
        .await
        .expect("read")
        .expect("live");
    assert_eq!(found.csrf_token, "csrf-a");
    assert_eq!(
        (found.created_at, found.expires_at),
        (now, now + 8 * HOUR_MS)
    );
    assert_eq!(
        store.admin_session("hash-b", now).await.expect("read"),
        None
    );
    assert_eq!(
        store
            .admin_session("hash-a", now + 8 * HOUR_MS)
            .await
            .expect("read"),
        None,
        "expired at its time"
    );
    assert_eq!(
        store.admin_session("hash-old", now).await.expect("read"),
        None
    );
    assert_eq!(
        env.database
            .fetch_i64("SELECT COUNT(*) FROM admin_sessions")
            .await,
        2
    );

    store
        .create_admin_session("hash-c", "csrf-c", now, now + 8 * HOUR_MS)
        .await
        .expect("create");
    assert_eq!(
        env.database
            .fetch_i64("SELECT COUNT(*) FROM admin_sessions WHERE id_hash = 'hash-old'")
            .await,
        0,
        "the expired row went with the next sign-in"
    );

    assert!(store.end_admin_session("hash-a").await.expect("end"));
    assert_eq!(
        store.admin_session("hash-a", now).await.expect("read"),
        None
    );
    assert!(!store.end_admin_session("hash-a").await.expect("end again"));
    assert!(
        store
            .admin_session("hash-c", now)
            .await
            .expect("read")
            .is_some(),
        "other sessions stay"
    );
}

/// SQLite's plan for `statement`, one line per step.
async fn query_plan(env: &Env, statement: &str) -> Vec<String> {
    let pool = sqlx::SqlitePool::connect(env.database.url())
        .await
        .expect("connect");
    let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(format!(
        "EXPLAIN QUERY PLAN {statement}"
    )));
    for n in 1..=2 {
        if statement.contains(&format!("${n}")) {
            query = query.bind(n);
        }
    }
    let rows = query.fetch_all(&pool).await.expect("explain");
    pool.close().await;
    rows.into_iter().map(|(_, _, _, detail)| detail).collect()
}

#[tokio::test]
async fn on_sqlite_no_queue_count_scans_the_jobs_table() {
    let env = Env::on(Backend::Sqlite).await.expect("SQLite runs always");
    let _migrated = env.store().await;
    // Some rows, and statistics, so the planner chooses as it would in a real store.
    let now = now_ms();
    let mut jobs = Jobs::on(&env);
    jobs.add(200, JobRow::new("done", now - 30 * HOUR_MS)).await;
    jobs.add(5, JobRow::new("pending", now)).await;
    env.execute_sql("ANALYZE").await;

    for statement in QUEUE_SUBSELECTS {
        // The statements take $1 and $2 in order; a sub-select using only $2 gets it as $1.
        let statement = if statement.contains("$2") && !statement.contains("$1") {
            statement.replace("$2", "$1")
        } else {
            statement.to_string()
        };
        let plan = query_plan(&env, &statement).await;
        // `SEARCH jobs USING (COVERING) INDEX …`: a range of an index, never `SCAN jobs`.
        assert!(
            !plan.is_empty()
                && plan
                    .iter()
                    .all(|step| step.starts_with("SEARCH jobs USING") && step.contains("INDEX")),
            "{statement}: {plan:?}"
        );
    }
    for list in [
        "SELECT id FROM jobs WHERE status = 'failed' ORDER BY id DESC LIMIT $1",
        "SELECT id FROM jobs ORDER BY id DESC LIMIT $1",
    ] {
        let plan = query_plan(&env, list).await;
        assert!(
            plan.iter().all(|step| !step.contains("TEMP B-TREE")),
            "{list}: {plan:?}"
        );
    }
}
