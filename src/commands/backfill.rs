//! `backfill --project <GID> [--dry-run]`: people assigned before the webhook existed get access too.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use super::rooms::access_name;
use super::{Context, now_rfc3339, table};
use crate::domain::{Command, Email, Gid, JobKind, JobSource};
use crate::rooms::RoomsMode;
use crate::store::{GrantRecord, GrantState, KnownProject, NewJob};
use crate::upstream::asana::Task;
use crate::worker::InviteRules;

const QUEUE_CHUNK: usize = 500;
/// Job ids start at 1: as the asking job, 0 sees every ledger row as someone else's.
const NO_JOB: i64 = 0;

pub async fn run(ctx: &Context, project: &Gid, dry_run: bool) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let asana = ctx.asana()?;
    let progress = progress_bar();
    let since = now_rfc3339();
    let mut scanned = 0usize;
    let mut assigned: Vec<Task> = Vec::new();
    let mut offset: Option<String> = None;
    loop {
        let page = asana
            .project_tasks_page(project.as_str(), &since, offset.as_deref())
            .await
            .with_context(|| {
                format!("reading the incomplete tasks of project {project} ({scanned} read so far)")
            })?;
        scanned += page.data.len();
        assigned.extend(page.data.into_iter().filter(|t| t.assignee.is_some()));
        progress.set_message(format!(
            "{scanned} incomplete tasks read, {} assigned",
            assigned.len()
        ));
        match page.next_page {
            Some(next) => offset = Some(next.offset),
            None => break,
        }
    }
    progress.finish_and_clear();

    if dry_run {
        let rules = InviteRules::from_settings(&ctx.settings);
        return dry_run_report(ctx, &store, &rules, project, scanned, &assigned).await;
    }

    let mut jobs: Vec<NewJob> = Vec::with_capacity(assigned.len());
    for task in &assigned {
        let Some(assignee) = &task.assignee else {
            continue;
        };
        let task_gid = task.gid.clone();
        jobs.push(NewJob {
            // Running the backfill again does not queue the same assignment twice.
            dedupe_key: format!("backfill:{}:{}", task_gid, assignee.gid),
            task_gid,
            kind: JobKind::Backfill,
            // Listed from the project itself.
            project_gid: None,
            assignee_gid: Some(assignee.gid.clone()),
        });
    }
    let (mut created, mut duplicates) = (0, 0);
    let mut jobs = jobs.into_iter().peekable();
    while jobs.peek().is_some() {
        let chunk: Vec<NewJob> = jobs.by_ref().take(QUEUE_CHUNK).collect();
        let outcome = store
            .enqueue(JobSource::Command(Command::Backfill), chunk)
            .await?;
        created += outcome.created;
        duplicates += outcome.duplicates;
    }
    println!(
        "Read {scanned} incomplete tasks of project {project}, {} with an assignee: queued {created} job(s){}.",
        assigned.len(),
        if duplicates > 0 {
            format!(", {duplicates} were queued by an earlier backfill")
        } else {
            String::new()
        }
    );
    println!("The running service invites them; follow with `asana-docspace-bridge jobs list`.");
    Ok(ExitCode::SUCCESS)
}

/// Who would be invited, and granted the project's room: the same checks a job makes (the room's
/// from the grants ledger only), without queueing, inviting or sharing anything.
async fn dry_run_report(
    ctx: &Context,
    store: &crate::store::Store,
    rules: &InviteRules,
    project: &Gid,
    scanned: usize,
    assigned: &[Task],
) -> anyhow::Result<ExitCode> {
    let docspace = ctx.docspace()?;
    let asana = ctx.asana()?;
    // Tasks per assignee, then one user read per assignee for the email.
    let mut by_assignee: BTreeMap<Gid, Vec<Gid>> = BTreeMap::new();
    for task in assigned {
        if let Some(assignee) = &task.assignee {
            by_assignee
                .entry(assignee.gid.clone())
                .or_default()
                .push(task.gid.clone());
        }
    }
    let mut people: BTreeMap<Email, Vec<Gid>> = BTreeMap::new();
    let mut without_email = 0;
    for (user_gid, tasks) in by_assignee {
        let user = asana
            .get_user(user_gid.as_str())
            .await
            .with_context(|| format!("reading user {user_gid} at Asana"))?;
        match user.email.as_deref().map(str::parse::<Email>) {
            Some(Ok(email)) => people.entry(email).or_default().extend(tasks),
            _ => without_email += tasks.len(),
        }
    }
    let mode = ctx.settings.rooms.mode;
    let known = match mode {
        RoomsMode::Off => None,
        RoomsMode::Linked | RoomsMode::Auto => store.project_room_view(project).await?,
    };
    let mut rows = table(&["EMAIL", "TASKS", "DECISION", "ROOM"]);
    let mut would_invite = 0;
    for (email, tasks) in &people {
        let (decision, room) = if !rules.allows(email) {
            ("skip: domain not allowed".to_string(), "-".to_string())
        } else {
            let ledger = match known.as_ref().and_then(|k| k.room_id) {
                Some(_) => store.live_grants_of(email).await?,
                None => Vec::new(),
            };
            let room = room_decision(mode, known.as_ref(), &ledger);
            let decision = if store.invitation(email, NO_JOB).await?.is_some() {
                "skip: already invited by this service".to_string()
            } else if docspace
                .find_user(email.as_str())
                .await
                .with_context(|| "looking people up in DocSpace")?
                .is_some()
            {
                "skip: already a DocSpace member".to_string()
            } else {
                would_invite += 1;
                "would invite".to_string()
            };
            (decision, room)
        };
        let tasks: Vec<&str> = tasks.iter().map(Gid::as_str).collect();
        rows.add_row(vec![email.to_string(), tasks.join(" "), decision, room]);
    }
    if !people.is_empty() {
        println!("{rows}");
    }
    println!(
        "Dry run: {would_invite} of {} people would be invited ({} assigned of {scanned} incomplete tasks{}); nothing was queued.",
        people.len(),
        assigned.len(),
        if without_email > 0 {
            format!("; {without_email} assignee(s) show no email")
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// What a job would do about the backfilled project's room for one person, from the store alone:
/// `room 45: already granted`, `room 45: would grant Editing`, `no room yet (auto creates one)`, or
/// `-` when rooms are off.
fn room_decision(
    mode: RoomsMode,
    project: Option<&KnownProject>,
    ledger: &[GrantRecord],
) -> String {
    if mode == RoomsMode::Off {
        return "-".to_string();
    }
    let Some(project) = project else {
        return "none: the project is not known here (no webhook, no room)".to_string();
    };
    let (Some(room), Some(state)) = (project.room_id, project.state.as_deref()) else {
        return match mode {
            RoomsMode::Auto => "no room yet (auto creates one)".to_string(),
            RoomsMode::Linked | RoomsMode::Off => "no room: `rooms link` one".to_string(),
        };
    };
    if state == "gone" {
        return match mode {
            RoomsMode::Auto => format!("room {room} is gone (auto creates a new one)"),
            RoomsMode::Linked | RoomsMode::Off => {
                format!("room {room} is gone: `rooms link` another or `rooms unlink`")
            }
        };
    }
    match ledger.iter().find(|g| g.room_id == room).map(|g| g.state) {
        Some(GrantState::Granted) => format!("room {room}: already granted"),
        Some(GrantState::HadAccess) => format!("room {room}: already has access"),
        Some(GrantState::Sending) => format!("room {room}: being granted"),
        None => format!(
            "room {room}: would grant {}",
            project.access.map_or_else(|| "?".to_string(), access_name)
        ),
    }
}

/// A spinner on a terminal; nothing when stderr is a pipe or a file.
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(room: Option<(i64, &str)>) -> KnownProject {
        KnownProject {
            project_gid: "1200".parse().unwrap(),
            project_name: Some("Website".into()),
            confirmed_webhooks: 1,
            room_id: room.map(|(id, _)| id),
            room_title: room.map(|_| "Website".into()),
            room_type: room.map(|_| 2),
            access: room.map(|_| 10),
            how: room.map(|_| "created".into()),
            state: room.map(|(_, state)| state.into()),
            gone_reason: None,
            granted: 0,
        }
    }

    fn grant(room_id: i64, state: GrantState) -> GrantRecord {
        GrantRecord {
            email: "ann@example.com".into(),
            room_id,
            project_gid: "1200".into(),
            docspace_user_id: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into(),
            access: 10,
            state,
            job_id: 1,
            task_gid: "501".into(),
            created_at: 1,
            granted_at: Some(1),
            revoking_job_id: None,
        }
    }

    #[test]
    fn room_decisions_come_from_the_mapping_and_the_ledger() {
        use RoomsMode::{Auto, Linked, Off};
        let active = project(Some((45, "active")));
        let elsewhere = [grant(46, GrantState::Granted)];
        let cases: [(RoomsMode, Option<KnownProject>, Vec<GrantRecord>, &str); 9] = [
            (Off, Some(active.clone()), Vec::new(), "-"),
            (
                Auto,
                Some(active.clone()),
                vec![grant(45, GrantState::Granted)],
                "room 45: already granted",
            ),
            (
                Linked,
                Some(active.clone()),
                vec![grant(45, GrantState::HadAccess)],
                "room 45: already has access",
            ),
            (
                Linked,
                Some(active.clone()),
                vec![grant(45, GrantState::Sending)],
                "room 45: being granted",
            ),
            (
                Linked,
                Some(active.clone()),
                elsewhere.to_vec(),
                "room 45: would grant Editing",
            ),
            (
                Auto,
                Some(project(None)),
                Vec::new(),
                "no room yet (auto creates one)",
            ),
            (
                Linked,
                Some(project(None)),
                Vec::new(),
                "no room: `rooms link` one",
            ),
            (
                Linked,
                Some(project(Some((45, "gone")))),
                Vec::new(),
                "room 45 is gone: `rooms link` another or `rooms unlink`",
            ),
            (
                Auto,
                None,
                Vec::new(),
                "none: the project is not known here (no webhook, no room)",
            ),
        ];
        for (mode, known, ledger, expected) in cases {
            assert_eq!(
                room_decision(mode, known.as_ref(), &ledger),
                expected,
                "{mode:?} {known:?}"
            );
        }
    }
}
