//! Explicit migrations: only `serve` and `migrate` create or migrate the store; every other command
//! opens it as it is and refuses a missing store, or one whose schema is not this binary's.

use asana_docspace_bridge::Application;
use rstest::rstest;

use crate::helpers::{Backend, Env};

/// The tables in the test's database (migrations' bookkeeping included).
async fn tables(env: &Env) -> i64 {
    env.database
        .fetch_i64(match env.database.backend() {
            Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'"
            }
        })
        .await
}

/// The SQLite file the test's URL names.
fn sqlite_file(env: &Env) -> std::path::PathBuf {
    env.database
        .url()
        .strip_prefix("sqlite://")
        .expect("a sqlite:// url")
        .into()
}

/// A fresh store as `serve` or `migrate` leaves it, then migration 9 undone (its table dropped, its
/// row gone): the schema of the release before.
async fn store_at_version_8(env: &Env) {
    env.store().await.close().await;
    for statement in [
        "DROP TABLE admin_sessions",
        "DELETE FROM _sqlx_migrations WHERE version = 9",
    ] {
        env.execute_sql(statement).await;
    }
}

/// As [`store_at_version_8`], then migration 8 undone too (its table, indexes and columns
/// dropped, its row gone).
async fn store_at_version_7(env: &Env) {
    store_at_version_8(env).await;
    for statement in [
        "DROP TABLE room_revocations",
        "DROP INDEX tasks_open_by_assignee",
        "DROP INDEX room_grants_person_project",
        "ALTER TABLE tasks DROP COLUMN deleted_at",
        "ALTER TABLE room_grants DROP COLUMN end_reason",
        "ALTER TABLE room_grants DROP COLUMN revoking_job_id",
        "ALTER TABLE room_grants DROP COLUMN cause",
        "ALTER TABLE projects DROP COLUMN need_swept_at",
        "DELETE FROM _sqlx_migrations WHERE version = 8",
    ] {
        env.execute_sql(statement).await;
    }
}

/// As [`store_at_version_7`], then migration 7 undone too (its table, indexes and columns
/// dropped, its row gone).
async fn store_at_version_6(env: &Env) {
    store_at_version_7(env).await;
    for statement in [
        "DROP TABLE webhook_repairs",
        "DROP INDEX jobs_task_assignee",
        "DROP INDEX projects_reconcile_due",
        "ALTER TABLE jobs DROP COLUMN assignee_gid",
        "ALTER TABLE webhooks DROP COLUMN replaced_name",
        "ALTER TABLE webhooks DROP COLUMN workspace_gid",
        "ALTER TABLE webhooks DROP COLUMN resource_type",
        "ALTER TABLE projects DROP COLUMN discovered_via",
        "ALTER TABLE projects DROP COLUMN reconcile_last_error",
        "ALTER TABLE projects DROP COLUMN reconcile_failures",
        "ALTER TABLE projects DROP COLUMN reconcile_passed_at",
        "ALTER TABLE projects DROP COLUMN reconcile_claimed_until",
        "ALTER TABLE projects DROP COLUMN reconcile_claim",
        "ALTER TABLE projects DROP COLUMN reconcile_due_at",
        "ALTER TABLE projects DROP COLUMN reconcile_since",
        "ALTER TABLE projects DROP COLUMN reconcile_cursor",
        "DELETE FROM _sqlx_migrations WHERE version = 7",
    ] {
        env.execute_sql(statement).await;
    }
}

/// As [`store_at_version_6`], then migration 6 undone too (its tables, index and column dropped,
/// its row gone).
async fn store_at_version_5(env: &Env) {
    store_at_version_6(env).await;
    for statement in [
        "DROP TABLE task_projects",
        "DROP TABLE tasks",
        "DROP TABLE room_grants",
        "DROP TABLE room_creations",
        "DROP TABLE project_rooms",
        "DROP TABLE projects",
        "DROP INDEX webhooks_project",
        "ALTER TABLE jobs DROP COLUMN room_results",
        "DELETE FROM _sqlx_migrations WHERE version = 6",
    ] {
        env.execute_sql(statement).await;
    }
}

/// As [`store_at_version_5`], then migration 5 undone too (its index dropped, its row gone).
async fn store_at_version_4(env: &Env) {
    store_at_version_5(env).await;
    env.execute_sql("DROP INDEX jobs_done_updated").await;
    env.execute_sql("DELETE FROM _sqlx_migrations WHERE version = 5")
        .await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_neither_create_nor_migrate_a_missing_store(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };

    let listed = env.run(&["jobs", "list"]).await;
    listed.expect_code(1);
    assert!(
        listed.stderr.contains("run `serve` (or `migrate`) first"),
        "{}",
        listed.stderr
    );
    let checked = env.run(&["check-config"]).await;
    checked.expect_code(1);
    let database = checked
        .stdout
        .lines()
        .find(|l| l.starts_with("FAIL database"))
        .unwrap_or_else(|| panic!("a FAIL database line: {}", checked.stdout));
    assert!(
        database.contains("run `serve` (or `migrate`) first"),
        "{database}"
    );

    match backend {
        Backend::Sqlite => {
            let file = sqlite_file(&env);
            assert!(
                listed.stderr.contains("there is no SQLite store at"),
                "{}",
                listed.stderr
            );
            assert!(
                database.contains("there is no SQLite store at"),
                "{database}"
            );
            assert!(!file.exists(), "no file at {}", file.display());
            assert!(
                !file.parent().unwrap().exists(),
                "no folder at {}",
                file.parent().unwrap().display()
            );
        }
        Backend::Postgres => {
            assert!(
                listed.stderr.contains("the store has no schema yet"),
                "{}",
                listed.stderr
            );
            assert_eq!(tables(&env).await, 0, "nothing created");
        }
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_creates_the_store_and_prints_what_it_applied(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };

    let migrated = env.run(&["migrate"]).await;
    migrated.expect_code(0);
    for line in [
        "applied migration 1 (initial)",
        "applied migration 4 (job sources)",
        "applied migration 5 (retention)",
        "applied migration 6 (rooms)",
        "applied migration 7 (reconcile)",
        "applied migration 8 (access lifecycle)",
        "applied migration 9 (admin sessions)",
        "the store's schema is at version 9",
    ] {
        assert!(
            migrated.stdout.contains(line),
            "{line}: {}",
            migrated.stdout
        );
    }
    env.run(&["jobs", "list"]).await.expect_code(0);
    let checked = env.run(&["check-config"]).await;
    checked.expect_code(0);
    assert!(
        checked.stdout.contains("reachable, schema at version 9"),
        "{}",
        checked.stdout
    );

    let again = env.run(&["migrate"]).await;
    again.expect_code(0);
    assert!(
        again
            .stdout
            .contains("nothing to apply: the store's schema is at version 9"),
        "{}",
        again.stdout
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_schema_is_refused_until_migrate_applies_what_it_lacks(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    store_at_version_4(&env).await;

    let listed = env.run(&["jobs", "list"]).await;
    listed.expect_code(1);
    assert!(
        listed.stderr.contains(
            "the store's schema is at version 4, older than this binary's 9: run `serve` (or `migrate`) first"
        ),
        "{}",
        listed.stderr
    );
    let checked = env.run(&["check-config"]).await;
    checked.expect_code(1);
    assert!(
        checked
            .stdout
            .lines()
            .any(|l| l.starts_with("FAIL database")
                && l.contains("run `serve` (or `migrate`) first")),
        "{}",
        checked.stdout
    );
    if backend == Backend::Sqlite {
        // A copy before the upgrade is what a backup is for: it takes the store as it is.
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("before-upgrade.db");
        env.run(&["backup", copy.to_str().unwrap()])
            .await
            .expect_code(0);
    }

    let migrated = env.run(&["migrate"]).await;
    migrated.expect_code(0);
    for line in [
        "applied migration 5 (retention)",
        "applied migration 6 (rooms)",
        "applied migration 7 (reconcile)",
        "applied migration 8 (access lifecycle)",
    ] {
        assert!(
            migrated.stdout.contains(line),
            "{line}: {}",
            migrated.stdout
        );
    }
    assert!(
        !migrated.stdout.contains("applied migration 4"),
        "{}",
        migrated.stdout
    );
    env.run(&["jobs", "list"]).await.expect_code(0);
    env.run(&["check-config"]).await.expect_code(0);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_applies_what_an_older_schema_lacks(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    store_at_version_4(&env).await;

    let app = Application::build(env.settings())
        .await
        .expect("serve migrates");
    drop(app);

    env.run(&["jobs", "list"]).await.expect_code(0);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused_by_commands_migrate_and_serve(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    env.store().await.close().await;
    let checksum = match backend {
        Backend::Sqlite => "X'00'",
        Backend::Postgres => "decode('00', 'hex')",
    };
    env.execute_sql(&format!(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from a newer release', TRUE, {checksum}, 0)"
    ))
    .await;
    let newer = "the store's schema is at version 9999, newer than this binary's 9";

    for args in [&["jobs", "list"][..], &["migrate"][..]] {
        let out = env.run(args).await;
        out.expect_code(1);
        assert!(out.stderr.contains(newer), "{args:?}: {}", out.stderr);
    }
    let err = Application::build(env.settings())
        .await
        .err()
        .expect("serve refuses a newer schema");
    assert!(format!("{err:#}").contains(newer), "{err:#}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_6_applies_on_a_store_at_version_5_and_knows_the_webhooks_projects(
    #[case] backend: Backend,
) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    store_at_version_5(&env).await;
    for (name, created_at, project) in [
        ("website-a", 3000, "'1200000000000100'"),
        ("website-b", 2000, "'1200000000000100'"),
        ("shop", 5000, "'1200000000000200'"),
        ("any", 1000, "NULL"),
    ] {
        env.execute_sql(&format!(
            "INSERT INTO webhooks (name, secret, created_at, project_gid) \
             VALUES ('{name}', 'secret', {created_at}, {project})"
        ))
        .await;
    }
    let listed = env.run(&["jobs", "list"]).await;
    listed.expect_code(1);
    assert!(
        listed
            .stderr
            .contains("the store's schema is at version 5, older than this binary's 9"),
        "{}",
        listed.stderr
    );

    let migrated = env.run(&["migrate"]).await;
    migrated.expect_code(0);
    assert!(
        migrated.stdout.contains("applied migration 6 (rooms)"),
        "{}",
        migrated.stdout
    );
    assert!(
        !migrated.stdout.contains("applied migration 5"),
        "{}",
        migrated.stdout
    );
    assert_eq!(
        env.database
            .fetch_i64("SELECT COUNT(*) FROM projects")
            .await,
        2,
        "one row per webhook project"
    );
    assert_eq!(
        env.database
            .fetch_i64(
                "SELECT created_at FROM projects WHERE gid = '1200000000000100' AND name IS NULL"
            )
            .await,
        2000,
        "the project's first webhook"
    );
    assert_eq!(
        env.database
            .fetch_i64("SELECT COUNT(*) FROM project_rooms")
            .await,
        0
    );
    env.run(&["jobs", "list"]).await.expect_code(0);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_7_names_the_assignee_of_backfill_jobs_and_watches_the_projects(
    #[case] backend: Backend,
) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    store_at_version_6(&env).await;
    env.execute_sql(
        "INSERT INTO webhooks (name, secret, created_at, project_gid) \
         VALUES ('website', 'secret', 1, '1200000000000100')",
    )
    .await;
    env.execute_sql(
        "INSERT INTO projects (gid, created_at, updated_at) VALUES ('1200000000000100', 1, 1)",
    )
    .await;
    for (key, source, kind, status) in [
        (
            "backfill:501:7001",
            "command:backfill",
            "backfill",
            "pending",
        ),
        ("backfill:502:7002", "command:backfill", "backfill", "done"),
        (
            "some-event-hash",
            "webhook:website",
            "assignee_changed",
            "pending",
        ),
    ] {
        let task = key.split(':').nth(1).unwrap_or("503");
        env.execute_sql(&format!(
            "INSERT INTO jobs (dedupe_key, source, task_gid, event_kind, status, run_at, \
             created_at, updated_at) VALUES ('{key}', '{source}', '{task}', '{kind}', \
             '{status}', 1, 1, 1)"
        ))
        .await;
    }

    env.run(&["migrate"]).await.expect_code(0);
    let assignee = |task: &str| {
        format!(
            "SELECT COUNT(*) FROM jobs WHERE task_gid = '{task}' AND assignee_gid = '70{}'",
            &task[1..]
        )
    };
    assert_eq!(env.database.fetch_i64(&assignee("501")).await, 1);
    assert_eq!(env.database.fetch_i64(&assignee("502")).await, 1);
    assert_eq!(
        env.database
            .fetch_i64("SELECT COUNT(*) FROM jobs WHERE assignee_gid IS NULL")
            .await,
        1,
        "an event's job named no assignee before 0007"
    );
    // The webhook is a project webhook; its project has no pass yet, and is due at once.
    let store = env.store().await;
    let states = store.reconcile_states().await.unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(
        (states[0].reconcile_cursor, states[0].reconcile_due_at),
        (None, None)
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_8_names_the_cause_of_earlier_grants_from_their_jobs(#[case] backend: Backend) {
    let Some(env) = Env::on(backend).await else {
        return;
    };
    store_at_version_7(&env).await;
    env.execute_sql(
        "INSERT INTO jobs (id, dedupe_key, source, task_gid, event_kind, status, run_at, \
         created_at, updated_at) VALUES (812, 'some-event-hash', 'webhook:website', '501', \
         'assignee_changed', 'done', 1, 1, 1)",
    )
    .await;
    // Job 77 was deleted by retention: its grant's cause stays unknown.
    for (email, job, task) in [
        ("bob@example.com", 812, "501"),
        ("erin@example.com", 77, "610"),
    ] {
        env.execute_sql(&format!(
            "INSERT INTO room_grants (email, room_id, project_gid, docspace_user_id, access, \
             state, job_id, task_gid, created_at, granted_at) VALUES ('{email}', 45, \
             '1200000000000100', 'u-{job}', 10, 'granted', {job}, '{task}', 1, 2)"
        ))
        .await;
    }

    env.run(&["migrate"]).await.expect_code(0);
    assert_eq!(
        env.database
            .fetch_i64(
                "SELECT COUNT(*) FROM room_grants WHERE email = 'bob@example.com' \
                 AND cause = 'assignee_changed from webhook:website'"
            )
            .await,
        1
    );
    assert_eq!(
        env.database
            .fetch_i64(
                "SELECT COUNT(*) FROM room_grants WHERE email = 'erin@example.com' \
                 AND cause IS NULL AND revoking_job_id IS NULL AND end_reason IS NULL"
            )
            .await,
        1
    );
    let listed = env.run(&["access", "log"]).await;
    listed.expect_code(0);
    assert!(
        listed
            .stdout
            .contains("task 501 assignee_changed from webhook:website; job 812"),
        "{}",
        listed.stdout
    );
    assert!(
        listed
            .stdout
            .contains("task 610; job 77 (cause unknown: job deleted by retention)"),
        "{}",
        listed.stdout
    );
}
