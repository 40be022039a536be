//! What the SQLite store leaves on disk: secrets at rest are readable by their owner only.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use asana_docspace_bridge::store::{Store, StoreOptions};

use crate::helpers::{assignment_job, from_webhook};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn the_database_its_wal_and_shm_and_created_folders_are_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("data").join("bridge");
    let file = folder.join("bridge.db");
    let store = Store::open_migrated(
        &format!("sqlite://{}", file.display()),
        &StoreOptions::default(),
    )
    .await
    .expect("store");
    // A write, so that the -wal and -shm files exist.
    store
        .enqueue(from_webhook("proj"), vec![assignment_job("k", "1")])
        .await
        .unwrap();

    assert_eq!(mode(&dir.path().join("data")), 0o700);
    assert_eq!(mode(&folder), 0o700);
    for name in ["bridge.db", "bridge.db-wal", "bridge.db-shm"] {
        assert_eq!(mode(&folder.join(name)), 0o600, "{name}");
    }

    let copy = dir.path().join("backup.db");
    store.backup_to(&copy).await.expect("backup");
    assert_eq!(mode(&copy), 0o600);
    assert!(
        std::fs::metadata(&copy).unwrap().len() > 0,
        "the copy has the data"
    );
    let again = store.backup_to(&copy).await.unwrap_err().to_string();
    assert!(again.contains("exists already"), "{again}");
    store.close().await;
}

#[tokio::test]
async fn an_unsupported_database_url_is_named_by_its_scheme_only() {
    let err = Store::open_migrated(
        "mysql://bridge:hunter2@db:3306/bridge",
        &StoreOptions::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("\"mysql\""), "{err}");
}
