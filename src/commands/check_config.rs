//! `check-config`: are the settings valid, and do the credentials and the database work?

use std::process::ExitCode;

use super::Context;
use crate::app::redact_url;
use crate::settings::{HandshakeMode, Settings, SettingsError, Sources, env_var_name};
use crate::store::Store;
use crate::telemetry::{LogTarget, init_logging};
use crate::webhook::register::first_use_warning;

pub async fn run(sources: Sources<'_>) -> ExitCode {
    let settings = match Settings::load_from(sources) {
        Ok(settings) => settings,
        Err(SettingsError::Invalid(problems)) => {
            for problem in problems {
                println!("FAIL settings: {problem}");
            }
            return ExitCode::FAILURE;
        }
        Err(err) => {
            println!("FAIL settings: {err}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(settings.log.format, LogTarget::Command);
    let ctx = Context::new(settings);
    let mut passed = true;
    let mut report = |ok: bool, line: String| {
        passed &= ok;
        println!("{} {line}", if ok { "ok  " } else { "FAIL" });
    };

    report(true, "settings: valid".to_string());
    let invite_type = ctx.settings.docspace.invite_type;
    if invite_type.takes_paid_seat() {
        println!(
            "warn invite type {invite_type}: every invitee takes a paid admin seat in DocSpace{}; \
             set {}=User for regular members",
            if invite_type == crate::settings::InviteType::All {
                " (DocSpace treats All as RoomAdmin)"
            } else {
                ""
            },
            env_var_name("docspace.invite_type")
        );
    }
    if ctx.settings.webhooks.handshake == HandshakeMode::FirstUse {
        println!("warn {}", first_use_warning());
    }
    if ctx.settings.server.public_url.is_empty() {
        println!(
            "warn server.public_url is not set ({}): `webhooks create` needs it",
            env_var_name("server.public_url")
        );
    }

    match ctx.asana() {
        Ok(asana) => match asana.users_me().await {
            Ok(me) => report(
                true,
                format!(
                    "asana token: works, acting as {} <{}> in {} workspace(s)",
                    me.name.as_deref().unwrap_or("?"),
                    me.email.as_deref().unwrap_or("?"),
                    me.workspaces.len()
                ),
            ),
            Err(err) => report(false, format!("asana token: {err}")),
        },
        Err(err) => report(false, format!("asana: {err:#}")),
    }
    match ctx.docspace() {
        Ok(docspace) => match docspace.self_profile().await {
            Ok(profile) => report(
                true,
                format!(
                    "docspace key: works, acting as {}{}",
                    profile
                        .display_name
                        .or(profile.email)
                        .as_deref()
                        .unwrap_or("?"),
                    if profile.is_admin == Some(true) || profile.is_owner == Some(true) {
                        " (admin)"
                    } else {
                        ""
                    }
                ),
            ),
            Err(err) => report(false, format!("docspace key: {err}")),
        },
        Err(err) => report(false, format!("docspace: {err:#}")),
    }
    let url = redact_url(&ctx.settings.database.url);
    // Opened as every command but `serve` and `migrate` opens it: a missing store, or one whose
    // schema is not this binary's, fails here instead of being created or migrated.
    match Store::open(
        &ctx.settings.database.url,
        &ctx.settings.database.store_options(),
    )
    .await
    {
        Ok(store) => {
            match store.require_current_schema().await {
                Ok(version) => report(
                    true,
                    format!("database: {url} reachable, schema at version {version}"),
                ),
                Err(err) => report(false, format!("database: {url}: {err}")),
            }
            store.close().await;
        }
        Err(err) => report(false, format!("database: {url}: {err}")),
    }

    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
