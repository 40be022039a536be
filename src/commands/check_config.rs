//! `check-config`: are the settings valid, and do the credentials and the database work?

use std::process::ExitCode;
use std::time::Duration;

use super::Context;
use crate::app::redact_url;
use crate::domain::RoomId;
use crate::rooms::{RoomAccess, RoomsMode};
use crate::settings::{
    HandshakeMode, RoomsSettings, Settings, SettingsError, Sources, env_var_name,
};
use crate::store::{ProjectRoom, Store};
use crate::telemetry::{LogTarget, init_logging};
use crate::upstream::DocSpaceClient;
use crate::upstream::docspace::RoomLookup;
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
    if let Some(warning) = ctx.settings.auto_recreate_warning() {
        println!("warn {warning}");
    } else if ctx.settings.server.public_url.is_empty() {
        println!(
            "warn server.public_url is not set ({}): `webhooks create` needs it",
            env_var_name("server.public_url")
        );
    }

    report(true, status_page_summary(&ctx.settings));
    if let Some(warning) = ctx.settings.admin_cookie_warning() {
        println!("warn {warning}");
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
    let rooms = &ctx.settings.rooms;
    let docspace = ctx.docspace().ok();
    if rooms.mode != RoomsMode::Off {
        report(true, rooms_summary(rooms));
        if let Some(docspace) = &docspace {
            match docspace.list_rooms_probe().await {
                Ok(()) => report(true, "docspace rooms: the key can read rooms".to_string()),
                Err(err) if err.status() == Some(403) => report(
                    false,
                    format!(
                        "docspace rooms: the key cannot read rooms ({err}): give it the rooms:write scope"
                    ),
                ),
                Err(err) => report(false, format!("docspace rooms: {err}")),
            }
        }
    }
    if let Some(grace) = ctx.settings.access.lifecycle() {
        report(true, access_summary(grace));
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
                Ok(version) => {
                    report(
                        true,
                        format!("database: {url} reachable, schema at version {version}"),
                    );
                    if let Some(docspace) =
                        docspace.as_ref().filter(|_| rooms.mode != RoomsMode::Off)
                    {
                        for (ok, line) in mapped_rooms(&store, docspace, rooms.mode).await {
                            match ok {
                                Some(ok) => report(ok, line),
                                None => println!("warn {line}"),
                            }
                        }
                    }
                }
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

/// The `status page` line: where `/admin` is served, if anywhere (never the token).
fn status_page_summary(settings: &Settings) -> String {
    match (settings.admin.token(), settings.server.admin_port) {
        (None, _) => "status page: off".to_string(),
        (Some(_), 0) => "status page: on (main port)".to_string(),
        (Some(_), port) => format!("status page: on (port {port})"),
    }
}

/// The `access` line when revocation is on: the grace period, in the largest whole unit and in
/// seconds.
fn access_summary(grace: Duration) -> String {
    let secs = grace.as_secs();
    let short = match secs {
        0 => "0s".to_string(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    };
    format!("access: revoke on, grace {short} ({secs} s)")
}

/// The `rooms` line: what the mode grants, where.
fn rooms_summary(rooms: &RoomsSettings) -> String {
    match rooms.mode {
        RoomsMode::Auto => format!(
            "rooms: auto, {} in new {} rooms titled \"{}\"",
            rooms.access, rooms.room_type, rooms.title
        ),
        RoomsMode::Linked | RoomsMode::Off => format!(
            "rooms: {}, {} in the rooms linked with `rooms link` (unless linked with another access)",
            rooms.mode, rooms.access
        ),
    }
}

/// Reads every mapped room in DocSpace. Each line comes with `Some(passed)`, or `None` for a
/// warning: a room deleted or archived fails in `linked` mode and warns in `auto` (a job replaces it).
async fn mapped_rooms(
    store: &Store,
    docspace: &DocSpaceClient,
    mode: RoomsMode,
) -> Vec<(Option<bool>, String)> {
    let mapped = match store.list_project_rooms().await {
        Ok(mapped) => mapped,
        Err(err) => {
            return vec![(
                Some(false),
                format!("rooms: reading the linked rooms: {err}"),
            )];
        }
    };
    let mut lines = Vec::new();
    for room in &mapped {
        let found = match RoomId::try_from(room.room_id) {
            Ok(id) => docspace.get_room(id).await,
            Err(err) => {
                lines.push((
                    Some(false),
                    format!("room of project {}: {err}", room.project_gid),
                ));
                continue;
            }
        };
        let gone = match found {
            Ok(RoomLookup::Found(found)) if found.is_archived() => "is archived",
            Ok(RoomLookup::Found(_)) => {
                lines.push((
                    Some(true),
                    format!(
                        "room {} \"{}\" of project {}: exists ({}, {})",
                        room.room_id,
                        room.room_title,
                        room.project_gid,
                        room.how,
                        RoomAccess::from_repr(room.access)
                            .map_or_else(|| room.access.to_string(), |a| a.to_string())
                    ),
                ));
                continue;
            }
            Ok(RoomLookup::NotFound) => "does not exist (404)",
            Err(err) => {
                lines.push((
                    Some(false),
                    format!(
                        "room {} of project {}: {err}",
                        room.room_id, room.project_gid
                    ),
                ));
                continue;
            }
        };
        lines.push(gone_room_line(room, gone, mode));
    }
    lines
}

fn gone_room_line(room: &ProjectRoom, gone: &str, mode: RoomsMode) -> (Option<bool>, String) {
    let project = &room.project_gid;
    match mode {
        RoomsMode::Auto => (
            None,
            format!(
                "room {} of project {project} {gone} in DocSpace: the project's next job adopts or \
                 creates a new room",
                room.room_id
            ),
        ),
        RoomsMode::Linked | RoomsMode::Off => (
            Some(false),
            format!(
                "room {} of project {project} {gone} in DocSpace: link another with `rooms link \
                 --project {project} --room <ROOM_ID>` or `rooms unlink --project {project}`",
                room.room_id
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Settings {
        let env = [
            ("BRIDGE__ASANA__TOKEN", "1/1200000000000000:token"),
            ("BRIDGE__DOCSPACE__BASE_URL", "https://docspace.example.com"),
            ("BRIDGE__DOCSPACE__API_KEY", "sk-key"),
        ]
        .iter()
        .chain(vars)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Settings::load_from(Sources {
            file: None,
            env: Some(env),
        })
        .expect("valid settings")
    }

    #[test]
    fn the_status_page_line_says_where_and_never_the_token() {
        let token = "0123456789abcdef0123456789abcdef";
        assert_eq!(status_page_summary(&settings(&[])), "status page: off");
        let main = status_page_summary(&settings(&[("BRIDGE__ADMIN__TOKEN", token)]));
        assert_eq!(main, "status page: on (main port)");
        let own = status_page_summary(&settings(&[
            ("BRIDGE__ADMIN__TOKEN", token),
            ("BRIDGE__SERVER__ADMIN_PORT", "9091"),
        ]));
        assert_eq!(own, "status page: on (port 9091)");
    }

    #[test]
    fn the_access_line_names_the_grace_in_its_largest_whole_unit() {
        let line = |secs| access_summary(Duration::from_secs(secs));
        assert_eq!(line(86_400), "access: revoke on, grace 1d (86400 s)");
        assert_eq!(line(7_200), "access: revoke on, grace 2h (7200 s)");
        assert_eq!(line(90), "access: revoke on, grace 90s (90 s)");
        assert_eq!(line(120), "access: revoke on, grace 2m (120 s)");
        assert_eq!(line(0), "access: revoke on, grace 0s (0 s)");
    }
}
