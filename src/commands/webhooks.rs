//! `webhooks create | watch-workspace | list | delete`: the webhook lifecycle without `curl`
//! against Asana.

use std::collections::HashSet;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};

use super::{Context, format_time, table};
use crate::app::shutdown_signal;
use crate::domain::{Gid, WatchedResource, WebhookName};
use crate::rooms::RoomsMode;
use crate::store::Store;
use crate::upstream::UpstreamError;
use crate::upstream::asana::Webhook;
use crate::webhook::register::register_webhook;
use crate::webhook::repair::repair_note;
use crate::worker::provision_for_command;

pub async fn create(
    ctx: &Context,
    project: &Gid,
    name: Option<WebhookName>,
) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let asana = ctx.asana()?;
    let registered = register_webhook(
        &store,
        &asana,
        &ctx.settings.server.public_url,
        &WatchedResource::Project(project.clone()),
        name,
        shutdown_signal(),
    )
    .await?;
    println!("Created webhook");
    println!("  name:        {}", registered.name);
    println!("  webhook gid: {}", registered.webhook_gid);
    println!("  project:     {project}");
    println!("  target:      {}", registered.target);
    println!(
        "  created at:  {}",
        format_time(Some(registered.registered_at))
    );
    if ctx.settings.rooms.mode == RoomsMode::Auto {
        // The webhook is worth keeping either way: a job gives the project its room on first use.
        match provision_for_command(&store, ctx.upstreams()?, &ctx.settings, project, false).await {
            Ok(room) => println!("  room:        {room}"),
            Err(err) => {
                let why = format!("{err:#}");
                // A refused creation's message already says to run `rooms create`.
                let hint = if why.contains("rooms create") {
                    String::new()
                } else {
                    format!(
                        "; give it one with `asana-docspace-bridge rooms create --project {project}`"
                    )
                };
                eprintln!(
                    "asana-docspace-bridge: the webhook is registered, but project {project} has \
                     no room: {why}{hint}"
                );
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn list(ctx: &Context, workspace: Option<&Gid>) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let asana = ctx.asana()?;
    let workspace = match workspace {
        Some(gid) => gid.clone(),
        None => only_workspace(&asana).await?,
    };
    let remote = asana
        .list_webhooks(workspace.as_str())
        .await
        .with_context(|| format!("listing the webhooks of workspace {workspace} at Asana"))?;
    let local = store.webhooks().await?;
    let repairs = store.webhook_repairs().await?;
    let replaced = store.replaced_names().await?;

    let mut rows = table(&[
        "NAME",
        "WEBHOOK GID",
        "TYPE",
        "RESOURCE",
        "ACTIVE",
        "LAST SUCCESS",
        "LAST FAILURE",
        "FAILURE",
        "RETRIES",
        "LAST DELIVERY HERE",
        "NOTE",
    ]);
    let mut shown: HashSet<&str> = HashSet::new();
    for hook in &local {
        let at_asana = hook
            .webhook_gid
            .as_ref()
            .and_then(|gid| remote.iter().find(|r| r.gid == *gid));
        let note = match (&hook.webhook_gid, at_asana) {
            (None, _) => "created by hand (no gid recorded)".to_string(),
            (Some(_), None) => {
                "MISSING AT ASANA: deleted there; delete it here and create it again".to_string()
            }
            (Some(_), Some(remote)) if remote.active == Some(false) => {
                "INACTIVE at Asana".to_string()
            }
            (Some(_), Some(remote)) if remote.is_failing() => "deliveries failing".to_string(),
            _ => replaced
                .get(hook.name.as_str())
                .map(|old| format!("replaces {old}"))
                .unwrap_or_default(),
        };
        // A webhook the service is registering again: what it does about it says more.
        let under_repair = repairs.iter().find(|r| r.old_name == hook.name);
        let note = under_repair.map(repair_note).unwrap_or(note);
        if let Some(remote) = at_asana {
            shown.insert(remote.gid.as_str());
        }
        let resource = hook.resource();
        rows.add_row(row(
            hook.name.as_str(),
            hook.webhook_gid.as_ref().map(Gid::as_str),
            resource
                .as_ref()
                .map(|r| (r.resource_type(), r.gid().as_str())),
            at_asana,
            &format_time(hook.last_delivery_at),
            &note,
        ));
    }
    let ours = format!("{}/webhooks/asana/", ctx.settings.server.public_url);
    for hook in remote.iter().filter(|r| !shown.contains(r.gid.as_str())) {
        let points_here = !ctx.settings.server.public_url.is_empty()
            && hook.target.as_deref().is_some_and(|t| t.starts_with(&ours));
        if points_here {
            let resource = hook
                .resource
                .as_ref()
                .map(|r| (r.resource_type.as_deref().unwrap_or("-"), r.gid.as_str()));
            rows.add_row(row(
                "-",
                Some(hook.gid.as_str()),
                resource,
                Some(hook),
                "-",
                "not registered here (no secret)",
            ));
        }
    }
    println!("{rows}");
    Ok(ExitCode::SUCCESS)
}

/// A `webhooks list` row; `resource` is what the webhook watches: (`project` or `workspace`, gid).
fn row(
    name: &str,
    gid: Option<&str>,
    resource: Option<(&str, &str)>,
    remote: Option<&Webhook>,
    last_delivery: &str,
    note: &str,
) -> Vec<String> {
    let text = |v: Option<&str>| v.filter(|s| !s.is_empty()).unwrap_or("-").to_string();
    vec![
        name.to_string(),
        text(gid),
        text(resource.map(|(kind, _)| kind)),
        text(resource.map(|(_, gid)| gid)),
        remote
            .and_then(|r| r.active)
            .map(|a| if a { "yes" } else { "no" }.to_string())
            .unwrap_or_else(|| "-".into()),
        text(remote.and_then(|r| r.last_success_at.as_deref())),
        text(remote.and_then(|r| r.last_failure_at.as_deref())),
        text(remote.and_then(|r| r.last_failure_content.as_deref())),
        remote
            .and_then(|r| r.delivery_retry_count)
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into()),
        last_delivery.to_string(),
        note.to_string(),
    ]
}

/// The token user's workspace, when there is exactly one.
async fn only_workspace(asana: &crate::upstream::AsanaClient) -> anyhow::Result<Gid> {
    let me = asana
        .users_me()
        .await
        .context("reading the token's user at Asana")?;
    match me.workspaces.as_slice() {
        [only] => Ok(only.gid.clone()),
        [] => Err(anyhow!("the token's user belongs to no workspace")),
        many => {
            let names: Vec<String> = many
                .iter()
                .map(|w| format!("{} ({})", w.gid, w.name.as_deref().unwrap_or("?")))
                .collect();
            Err(anyhow!(
                "the token's user belongs to {} workspaces, pass --workspace <GID>: {}",
                many.len(),
                names.join(", ")
            ))
        }
    }
}

pub async fn delete(ctx: &Context, key: &str) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let asana = ctx.asana()?;
    let record = store.find_webhook(key).await?;
    let gid = match &record {
        Some(record) => record.webhook_gid.clone(),
        None => match key.parse::<Gid>() {
            Ok(gid) => Some(gid),
            Err(_) => bail!("no webhook named {key:?} here, and it is not an Asana gid"),
        },
    };
    if let Some(gid) = &gid {
        match asana.delete_webhook(gid.as_str()).await {
            Ok(()) => println!("Deleted webhook {gid} at Asana"),
            Err(UpstreamError::Status { status: 404, .. }) => {
                println!("Asana no longer has webhook {gid}")
            }
            Err(err) => {
                bail!("could not delete webhook {gid} at Asana: {err}; nothing was forgotten here")
            }
        }
    }
    match &record {
        Some(record) => {
            forget(&store, &record.name).await?;
            if gid.is_none() {
                println!(
                    "No Asana gid was recorded for {:?} (created by hand): delete it at Asana yourself",
                    record.name
                );
            }
        }
        None => println!("No webhook with gid {key} was registered here"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn forget(store: &Store, name: &WebhookName) -> anyhow::Result<()> {
    store.forget_webhook(name).await?;
    println!("Forgot the secret of webhook {name:?}: deliveries to it are refused from now on");
    Ok(())
}

/// `webhooks watch-workspace`: a webhook on the workspace for `project` `added` events, so that
/// each new project gets a webhook of its own (a job of the running service registers it).
pub(crate) async fn watch_workspace(
    ctx: &Context,
    workspace: Option<&Gid>,
    name: Option<WebhookName>,
) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let asana = ctx.asana()?;
    let workspace = match workspace {
        Some(gid) => gid.clone(),
        None => only_workspace(&asana).await?,
    };
    let resource = WatchedResource::Workspace(workspace.clone());
    if let Some(watching) = store.webhook_watching(&resource).await? {
        bail!(
            "workspace {workspace} is watched already by webhook {:?}: `webhooks delete {watching}` first",
            watching.as_str()
        );
    }
    let registered = register_webhook(
        &store,
        &asana,
        &ctx.settings.server.public_url,
        &resource,
        name,
        shutdown_signal(),
    )
    .await?;
    println!("Watching workspace {workspace} for new projects");
    println!("  name:        {}", registered.name);
    println!("  webhook gid: {}", registered.webhook_gid);
    println!("  filter:      project added");
    println!("  target:      {}", registered.target);
    println!(
        "  created at:  {}",
        format_time(Some(registered.registered_at))
    );
    println!(
        "New projects get a webhook of their own as Asana reports them (and a room, with rooms.mode = auto)."
    );
    println!(
        "Projects that exist already are not subscribed by this: `webhooks create --project <GID>` each."
    );
    Ok(ExitCode::SUCCESS)
}
