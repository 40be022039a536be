//! The operator commands behind the CLI. Each prints for a person on stdout, explains a failure
//! in one line on stderr, and exits non-zero when it did not do what was asked.

mod access;
mod backfill;
mod check_config;
mod healthcheck;
mod invite_task;
mod jobs;
mod migrate;
mod reconcile;
mod rooms;
mod webhooks;

use std::process::ExitCode;
use std::sync::OnceLock;

use anyhow::Context as _;

use crate::app::{Application, redact_url, shutdown_signal};
use crate::cli::{
    AccessCommand, Cli, Command, JobsCommand, ReconcileCommand, RoomsCommand, WebhooksCommand,
};
use crate::settings::{Settings, SettingsError, Sources};
use crate::store::{Store, StoreResult, now_ms, rfc3339_seconds};
use crate::telemetry::{LogTarget, init_logging};
use crate::upstream::{AsanaClient, DocSpaceClient, Upstreams};

/// Runs the command line and returns the process's exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let command = cli.command.unwrap_or(Command::Serve);
    let sources = Sources {
        file: cli.config.as_deref(),
        env: None,
    };
    match command {
        // These two must work where the rest of the settings are broken.
        Command::Healthcheck { url } => return healthcheck::run(sources, url.as_deref()).await,
        Command::CheckConfig => return check_config::run(sources).await,
        _ => {}
    }
    let settings = match Settings::load_from(sources) {
        Ok(settings) => settings,
        Err(err) => return settings_failure(&err),
    };
    let target = match command {
        Command::Serve => LogTarget::Service,
        _ => LogTarget::Command,
    };
    init_logging(settings.log.format, target);
    let ctx = Context::new(settings);
    let result = match command {
        Command::Serve => serve(ctx.settings).await,
        Command::Migrate => migrate::run(&ctx).await,
        Command::Webhooks(WebhooksCommand::Create { project, name }) => {
            webhooks::create(&ctx, &project, name).await
        }
        Command::Webhooks(WebhooksCommand::List { workspace }) => {
            webhooks::list(&ctx, workspace.as_ref()).await
        }
        Command::Webhooks(WebhooksCommand::Delete { name_or_gid }) => {
            webhooks::delete(&ctx, &name_or_gid).await
        }
        Command::Webhooks(WebhooksCommand::WatchWorkspace { workspace, name }) => {
            webhooks::watch_workspace(&ctx, workspace.as_ref(), name).await
        }
        Command::Reconcile(ReconcileCommand::Run { project }) => {
            reconcile::run(&ctx, project.as_ref()).await
        }
        Command::Access(AccessCommand::Plan { project }) => {
            access::plan(&ctx, project.as_ref()).await
        }
        Command::Access(AccessCommand::Log {
            email,
            project,
            limit,
        }) => access::log(&ctx, email, project, limit).await,
        Command::Jobs(JobsCommand::List { status, limit }) => jobs::list(&ctx, status, limit).await,
        Command::Jobs(JobsCommand::Retry { id, failed }) => jobs::retry(&ctx, id, failed).await,
        Command::Rooms(RoomsCommand::List) => rooms::list(&ctx).await,
        Command::Rooms(RoomsCommand::Link {
            project,
            room,
            access,
        }) => rooms::link(&ctx, &project, room, access).await,
        Command::Rooms(RoomsCommand::Unlink { project }) => rooms::unlink(&ctx, &project).await,
        Command::Rooms(RoomsCommand::Create { project }) => rooms::create(&ctx, &project).await,
        Command::InviteTask { task_gid } => invite_task::run(&ctx, &task_gid).await,
        Command::Backfill(args) => backfill::run(&ctx, &args.project, args.dry_run).await,
        Command::Backup { path } => backup(&ctx, &path).await,
        Command::Healthcheck { .. } | Command::CheckConfig => unreachable!("handled above"),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            tracing::debug!(error = format!("{err:#}"), "command failed");
            eprintln!("asana-docspace-bridge: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn settings_failure(err: &SettingsError) -> ExitCode {
    eprintln!("asana-docspace-bridge: {err}");
    ExitCode::from(2)
}

async fn serve(settings: Settings) -> anyhow::Result<ExitCode> {
    let app = Application::build(settings).await?;
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// What the commands share: the settings, and the store and clients they describe.
pub(crate) struct Context {
    settings: Settings,
    /// Built on first use, then shared: one Asana pacer per process.
    upstreams: OnceLock<Upstreams>,
}

impl Context {
    fn new(settings: Settings) -> Context {
        Context {
            settings,
            upstreams: OnceLock::new(),
        }
    }

    /// The store as it is: it must exist with this binary's schema (only `serve` and `migrate`
    /// create or migrate it).
    async fn store(&self) -> anyhow::Result<Store> {
        self.in_context(
            Store::open(
                &self.settings.database.url,
                &self.settings.database.store_options(),
            )
            .await,
        )
    }

    /// Names the store (without its password) in an error opening it.
    fn in_context<T>(&self, opened: StoreResult<T>) -> anyhow::Result<T> {
        opened.with_context(|| {
            format!(
                "opening the store at {}",
                redact_url(&self.settings.database.url)
            )
        })
    }

    /// The process's upstream clients.
    fn upstreams(&self) -> anyhow::Result<&Upstreams> {
        if let Some(upstreams) = self.upstreams.get() {
            return Ok(upstreams);
        }
        let built = Upstreams::from_settings(&self.settings)?;
        Ok(self.upstreams.get_or_init(|| built))
    }

    fn asana(&self) -> anyhow::Result<AsanaClient> {
        Ok(self.upstreams()?.asana.clone())
    }

    fn docspace(&self) -> anyhow::Result<DocSpaceClient> {
        Ok(self.upstreams()?.docspace.clone())
    }
}

async fn backup(ctx: &Context, path: &std::path::Path) -> anyhow::Result<ExitCode> {
    // As it is, whatever its schema: a copy before an upgrade is what a backup is for.
    let store = ctx.in_context(
        Store::open_as_is(
            &ctx.settings.database.url,
            &ctx.settings.database.store_options(),
        )
        .await,
    )?;
    store.backup_to(path).await?;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    println!(
        "Wrote a consistent copy of the store to {} ({size} bytes)",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A stored time (ms since the epoch) for people, in UTC.
fn format_time(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".to_string(), rfc3339_seconds)
}

/// Now, as the RFC 3339 timestamp Asana accepts for `completed_since`.
fn now_rfc3339() -> String {
    rfc3339_seconds(now_ms())
}

/// A table in the terminal's width, or plain when stdout is not a terminal.
fn table(header: &[&str]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_formatted_in_utc() {
        assert_eq!(format_time(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(Some(1_700_000_000_123)), "2023-11-14T22:13:20Z");
        assert_eq!(format_time(None), "-");
    }
}
