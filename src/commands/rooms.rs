//! `rooms list | link | unlink | create`: which DocSpace room each Asana project's assignees get
//! access to.

use std::process::ExitCode;

use anyhow::bail;

use super::{Context, table};
use crate::domain::{Gid, RoomId};
use crate::rooms::access::or_list;
use crate::rooms::{RoomAccess, RoomType, RoomsMode, allowed, named};
use crate::settings::{InviteType, env_var_name};
use crate::store::{KnownProject, LinkOutcome, NewProjectRoom};
use crate::upstream::docspace::RoomLookup;
use crate::worker::{asana_project, provision_for_command};

pub async fn list(ctx: &Context) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let projects = store.known_projects().await?;
    warn_if_off(ctx);
    if projects.is_empty() {
        println!(
            "no known projects: register a webhook (`webhooks create --project <GID>`) or link a room \
             (`rooms link --project <GID> --room <ROOM_ID>`)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = table(&[
        "PROJECT", "NAME", "ROOM", "TITLE", "ACCESS", "HOW", "STATE", "GRANTED",
    ]);
    let mut without_room = false;
    for project in &projects {
        without_room |= project.room_id.is_none();
        rows.add_row(list_row(project));
    }
    println!("{rows}");
    if without_room {
        let hint = match ctx.settings.rooms.mode {
            RoomsMode::Auto => "a project without a room (-) gets one on its next job",
            RoomsMode::Linked | RoomsMode::Off => {
                "a project without a room (-) grants nothing: `rooms link --project <GID> --room <ROOM_ID>`"
            }
        };
        println!("{hint}");
    }
    Ok(ExitCode::SUCCESS)
}

/// One `rooms list` row; `-` where the project has no room (or no name).
fn list_row(project: &KnownProject) -> Vec<String> {
    let dash = || "-".to_string();
    let state = match (&project.state, &project.gone_reason) {
        (Some(state), Some(reason)) => format!("{state} ({reason})"),
        (Some(state), None) => state.clone(),
        (None, _) => dash(),
    };
    vec![
        project.project_gid.to_string(),
        project.project_name.clone().unwrap_or_else(dash),
        project.room_id.map_or_else(dash, |id| id.to_string()),
        project.room_title.clone().unwrap_or_else(dash),
        project.access.map_or_else(dash, access_name),
        project.how.clone().unwrap_or_else(dash),
        state,
        if project.room_id.is_some() {
            project.granted.to_string()
        } else {
            dash()
        },
    ]
}

/// A stored FileShare integer by its name, or the integer when the bridge has no name for it.
pub(super) fn access_name(access: i64) -> String {
    RoomAccess::from_repr(access).map_or_else(|| access.to_string(), |a| a.as_str().to_string())
}

/// Why `access` cannot be granted in a room of `room_type`, if it cannot.
fn access_problem(
    access: RoomAccess,
    room_type: RoomType,
    invite_type: InviteType,
) -> Option<String> {
    if !room_type.allows(access) {
        return Some(format!(
            "{access} is not available in {room_type} rooms (they allow {})",
            or_list(allowed(room_type))
        ));
    }
    if access == RoomAccess::RoomManager && invite_type == InviteType::User {
        return Some(format!(
            "RoomManager cannot be granted with docspace.invite_type ({}) User: DocSpace refuses \
             room managers of the User type; choose ContentCreator or another access",
            env_var_name("docspace.invite_type")
        ));
    }
    None
}

pub async fn link(
    ctx: &Context,
    project: &Gid,
    room: RoomId,
    access: Option<RoomAccess>,
) -> anyhow::Result<ExitCode> {
    let access = access.unwrap_or(ctx.settings.rooms.access);
    let name = asana_project(&ctx.asana()?, project).await?.name;
    let docspace = ctx.docspace()?;
    let found = match docspace.get_room(room).await? {
        RoomLookup::NotFound => bail!("room {room} does not exist in DocSpace (404)"),
        RoomLookup::Found(found) => found,
    };
    if found.is_archived() {
        bail!("room {room} is archived in DocSpace");
    }
    let Some(room_type) = found.room_type() else {
        bail!(
            "room {room} has a room type the bridge does not know ({})",
            found
                .room_type_int
                .map_or_else(|| "none given".to_string(), |t| t.to_string())
        );
    };
    if let Some(problem) = access_problem(access, room_type, ctx.settings.docspace.invite_type) {
        bail!("{problem}");
    }
    let store = ctx.store().await?;
    let earlier = store.project_room(project).await?;
    let outcome = store
        .link_project_room(
            NewProjectRoom {
                project_gid: project.clone(),
                room_id: room.get(),
                room_title: found.title.clone(),
                room_type: room_type.as_int(),
                access: access.as_int(),
            },
            name.as_deref(),
        )
        .await?;
    if let LinkOutcome::RoomTaken { project_gid } = outcome {
        bail!("room {room} is already linked to project {project_gid}; unlink it first");
    }
    println!(
        "project {project}{} is linked to room {room} \"{}\" ({room_type}): its assignees get {access}",
        named(name.as_deref()),
        found.title
    );
    if let Some(earlier) = earlier.filter(|e| e.room_id != room.get()) {
        println!(
            "  replaces room {} \"{}\" (the access granted there stays)",
            earlier.room_id, earlier.room_title
        );
    }
    warn_if_off(ctx);
    Ok(ExitCode::SUCCESS)
}

pub async fn unlink(ctx: &Context, project: &Gid) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let Some(earlier) = store.project_room(project).await? else {
        bail!("project {project} has no room here");
    };
    if !store.unlink_project_room(project).await? {
        bail!("project {project} has no room here");
    }
    println!(
        "project {project} no longer has a room here (was room {} \"{}\"); the access granted \
         there stays",
        earlier.room_id, earlier.room_title
    );
    if ctx.settings.rooms.mode == RoomsMode::Auto
        && store
            .project_room_view(project)
            .await?
            .is_some_and(|known| known.confirmed_webhooks > 0)
    {
        eprintln!(
            "warn rooms.mode is auto and project {project} has a webhook: its next job adopts or \
             creates a room tagged asana-project:{project}"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Gives a project its room now (adopting the tagged one if DocSpace has it), whatever the mode;
/// a failed creation's cool-down does not hold an operator back.
pub async fn create(ctx: &Context, project: &Gid) -> anyhow::Result<ExitCode> {
    let rooms = &ctx.settings.rooms;
    if let Some(problem) = access_problem(
        rooms.access,
        rooms.room_type,
        ctx.settings.docspace.invite_type,
    ) {
        bail!(
            "cannot create a room: {problem}; set rooms.access ({}) or rooms.room_type ({})",
            env_var_name("rooms.access"),
            env_var_name("rooms.room_type")
        );
    }
    let store = ctx.store().await?;
    let room =
        provision_for_command(&store, ctx.upstreams()?, &ctx.settings, project, true).await?;
    if room.event.is_none() {
        bail!(
            "project {project} already has room {} {:?}",
            room.room_id,
            room.title
        );
    }
    println!(
        "project {project} has room {room}: its assignees get {}",
        rooms.access
    );
    warn_if_off(ctx);
    Ok(ExitCode::SUCCESS)
}

fn warn_if_off(ctx: &Context) {
    if ctx.settings.rooms.mode == RoomsMode::Off {
        eprintln!(
            "warn rooms.mode ({}) is off: no room access is granted until it is linked or auto",
            env_var_name("rooms.mode")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_problems_name_what_the_room_type_allows() {
        assert_eq!(
            access_problem(
                RoomAccess::Review,
                RoomType::Collaboration,
                InviteType::User
            ),
            Some(
                "Review is not available in Collaboration rooms (they allow RoomManager, \
                 ContentCreator, Editing or Read)"
                    .to_string()
            )
        );
        assert!(
            access_problem(RoomAccess::RoomManager, RoomType::Custom, InviteType::User)
                .is_some_and(|p| p.contains("BRIDGE__DOCSPACE__INVITE_TYPE"))
        );
        assert_eq!(
            access_problem(RoomAccess::Review, RoomType::Custom, InviteType::User),
            None
        );
    }

    #[test]
    fn access_names_fall_back_to_the_integer() {
        assert_eq!(access_name(10), "Editing");
        assert_eq!(access_name(1), "1");
    }
}
