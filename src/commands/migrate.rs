//! `migrate`: create the store if missing and apply the migrations it lacks, as `serve` does at
//! start-up, for operators who upgrade without starting the service.

use std::process::ExitCode;

use super::Context;
use crate::store::Store;

pub async fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let (store, applied) = ctx.in_context(
        Store::open_and_migrate(
            &ctx.settings.database.url,
            &ctx.settings.database.store_options(),
        )
        .await,
    )?;
    let version = store.require_current_schema().await?;
    store.close().await;
    for migration in &applied {
        println!(
            "applied migration {} ({})",
            migration.version, migration.description
        );
    }
    if applied.is_empty() {
        println!("nothing to apply: the store's schema is at version {version}");
    } else {
        println!("the store's schema is at version {version}");
    }
    Ok(ExitCode::SUCCESS)
}
