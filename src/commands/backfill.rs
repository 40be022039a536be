//! `backfill --project <GID> [--dry-run]`: people assigned before the webhook existed get access too.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use super::{Context, now_rfc3339, table};
use crate::domain::{Command, Email, Gid, JobKind, JobSource};
use crate::store::NewJob;
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
        return dry_run_report(ctx, &store, &rules, scanned, &assigned).await;
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

/// Who would be invited: the same checks a job makes, without queueing or inviting anyone.
async fn dry_run_report(
    ctx: &Context,
    store: &crate::store::Store,
    rules: &InviteRules,
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
    let mut rows = table(&["EMAIL", "TASKS", "DECISION"]);
    let mut would_invite = 0;
    for (email, tasks) in &people {
        let decision = if !rules.allows(email) {
            "skip: domain not allowed".to_string()
        } else if store.invitation(email, NO_JOB).await?.is_some() {
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
        let tasks: Vec<&str> = tasks.iter().map(Gid::as_str).collect();
        rows.add_row(vec![email.to_string(), tasks.join(" "), decision]);
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
