//! `reconcile run`: a reconcile pass now, for every watched project or the one named.

use std::process::ExitCode;
use std::time::Duration;

use super::{Context, format_time, table};
use crate::domain::Gid;
use crate::reconcile::{PassError, PassReport, PassSettings, pass_window, run_pass};
use crate::store::ClaimOutcome;

/// One project's row: what its pass did, or why it did not run.
enum Row {
    Passed(PassReport),
    Held { until: i64 },
    Failed { from: Option<i64>, error: PassError },
}

pub(crate) async fn run(ctx: &Context, project: Option<&Gid>) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let states = store.reconcile_states().await?;
    let projects: Vec<(Gid, Option<String>)> = match project {
        Some(gid) => {
            let name = states
                .iter()
                .find(|s| &s.gid == gid)
                .and_then(|s| s.name.clone());
            vec![(gid.clone(), name)]
        }
        None => states.into_iter().map(|s| (s.gid, s.name)).collect(),
    };
    if projects.is_empty() {
        println!("No project has a webhook registered here: nothing to reconcile.");
        return Ok(ExitCode::SUCCESS);
    }
    let asana = ctx.upstreams()?.asana_reconcile.clone();
    let settings = PassSettings {
        hold: Duration::from_millis(ctx.settings.worker.lease_ms),
        interval: ctx.settings.reconcile.interval(),
        lifecycle: ctx.settings.access.lifecycle(),
    };
    let token = format!(
        "command:{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    let mut rows = Vec::with_capacity(projects.len());
    for (gid, name) in projects {
        let row = match store
            .claim_project_reconcile(&gid, &token, settings.hold)
            .await?
        {
            ClaimOutcome::NotWatched => {
                eprintln!(
                    "project {gid} has no webhook registered here: nothing to reconcile (use `backfill --project {gid}` once, or `webhooks create --project {gid}`)"
                );
                return Ok(ExitCode::FAILURE);
            }
            ClaimOutcome::HeldUntil(until) => Row::Held { until },
            ClaimOutcome::Claimed(claim) => {
                let from = pass_window(claim.cursor, claim.since);
                match run_pass(&store, &asana, &claim, settings).await {
                    Ok(report) => Row::Passed(report),
                    Err(error) => Row::Failed { from, error },
                }
            }
        };
        rows.push((gid, name, row));
    }
    Ok(print_report(&rows))
}

/// The table and the summary; exit 1 unless every pass ended.
fn print_report(rows: &[(Gid, Option<String>, Row)]) -> ExitCode {
    let mut out = table(&[
        "PROJECT",
        "NAME",
        "READ FROM",
        "TASKS READ",
        "ASSIGNED",
        "QUEUED",
        "NOTE",
    ]);
    let (mut read, mut assigned, mut queued, mut all_ended) = (0u64, 0u64, 0u64, true);
    for (gid, name, row) in rows {
        let name = name.clone().unwrap_or_else(|| "-".to_string());
        let cells = match row {
            Row::Passed(report) => {
                read += report.read;
                assigned += report.assigned;
                queued += report.queued;
                let note = match report.from {
                    None => "first pass".to_string(),
                    Some(_) if report.missed > 0 => {
                        format!("{} no delivery had brought", report.missed)
                    }
                    Some(_) => String::new(),
                };
                [
                    read_from(report.from),
                    report.read.to_string(),
                    report.assigned.to_string(),
                    report.queued.to_string(),
                    note,
                ]
            }
            Row::Held { until } => {
                all_ended = false;
                let until = format_time(Some(*until));
                let time = until.split_once('T').map_or(until.as_str(), |(_, t)| t);
                dashes(format!(
                    "a pass is running elsewhere (until {time}); skipped"
                ))
            }
            Row::Failed { from, error } => {
                all_ended = false;
                let mut cells = dashes(failure_note(error));
                cells[0] = read_from(*from);
                cells
            }
        };
        let mut line = vec![gid.to_string(), name];
        line.extend(cells);
        out.add_row(line);
    }
    println!("{out}");
    println!(
        "{} project(s): {read} tasks read, {assigned} assignments found, {queued} jobs queued.",
        rows.len()
    );
    if queued > 0 {
        println!(
            "The running service invites them; follow with `asana-docspace-bridge jobs list`."
        );
    }
    if all_ended {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn read_from(from: Option<i64>) -> String {
    match from {
        None => "all incomplete tasks".to_string(),
        Some(ms) => format_time(Some(ms)),
    }
}

fn dashes(note: String) -> [String; 5] {
    let dash = || "-".to_string();
    [dash(), dash(), dash(), dash(), note]
}

fn failure_note(error: &PassError) -> String {
    match error {
        PassError::ClaimLost => format!("failed: {error}"),
        PassError::Upstream(_)
        | PassError::Store(_)
        | PassError::PagingLoop
        | PassError::TooManyPages => {
            format!("failed: {error}; the cursor is unchanged")
        }
    }
}
