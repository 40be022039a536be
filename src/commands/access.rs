//! `access plan | log`: who would lose which room, and every grant and revocation (issue 13).
//! Both read the store only: the room's members are read when a removal is due, not here.

use std::process::ExitCode;

use super::rooms::access_name;
use super::{Context, format_time, table};
use crate::domain::{Email, Gid};
use crate::settings::env_var_name;
use crate::status::access::{Removal, because, remaining};
use crate::store::{LogFilter, PlanRow, now_ms};

/// `access plan [--project <GID>]`.
pub async fn plan(ctx: &Context, project: Option<&Gid>) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let mut rows = store.revocation_plan(project).await?;
    let on = ctx.settings.access.lifecycle().is_some();
    if !on {
        println!(
            "access.revoke ({}) is off: nothing is taken back; with it on, this is what the first \
             sweep would schedule (nothing goes before one grace period):",
            env_var_name("access.revoke")
        );
        // Revocations left from when it was on are cancelled when due: only the sweep's rows.
        rows.retain(|row| row.revocation_id.is_none());
    }
    if rows.is_empty() {
        println!(
            "Nobody loses room access: every person granted a room still has an open task in \
             its project."
        );
        return Ok(ExitCode::SUCCESS);
    }
    let now = now_ms();
    let mut counts = PlanCounts::default();
    let mut out = table(&[
        "EMAIL",
        "PROJECT",
        "NAME",
        "ROOM",
        "ACCESS",
        "NEED ENDED",
        "REMOVAL",
        "WHY",
    ]);
    for row in &rows {
        let removal = removal(row, now, &mut counts);
        out.add_row(vec![
            row.email.clone(),
            row.project_gid.clone(),
            row.project_name.clone().unwrap_or_else(|| "-".to_string()),
            row.room_id.to_string(),
            access_name(row.access),
            format_time(row.need_ended_at),
            removal,
            because(row),
        ]);
    }
    println!("{out}");
    println!("{}", counts.summary(rows.len()));
    println!(
        "Each removal first reads the room's members: access changed by hand, owners and managers \
         we did not make are kept."
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Default)]
struct PlanCounts {
    waiting: usize,
    due: usize,
    kept: usize,
    orphans: usize,
}

impl PlanCounts {
    fn summary(&self, people: usize) -> String {
        format!(
            "{people} {}: {} within the grace period, {} due now, {} kept, {} found without an \
             open task (scheduled by the next daily sweep).",
            if people == 1 { "person" } else { "people" },
            self.waiting,
            self.due,
            self.kept,
            self.orphans
        )
    }
}

/// The REMOVAL column, counting the row.
fn removal(row: &PlanRow, now: i64, counts: &mut PlanCounts) -> String {
    let job = row
        .job_id
        .map_or_else(String::new, |id| format!(" (job {id})"));
    let removal = Removal::of(row, now);
    match removal {
        Removal::Kept => {
            counts.kept += 1;
            removal.state().to_string()
        }
        Removal::Removing | Removal::DueNow => {
            counts.due += 1;
            format!("{}{job}", removal.state())
        }
        Removal::Waiting { due_at } => {
            counts.waiting += 1;
            format!(
                "{} (in {})",
                format_time(Some(due_at)),
                remaining(due_at - now)
            )
        }
        Removal::NextSweep => {
            counts.orphans += 1;
            removal.state().to_string()
        }
    }
}

/// `access log [--email <EMAIL>] [--project <GID>] [--limit N]`.
pub async fn log(
    ctx: &Context,
    email: Option<Email>,
    project: Option<Gid>,
    limit: i64,
) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let filtered = email.is_some() || project.is_some();
    let (entries, total) = store
        .access_log(&LogFilter { email, project }, limit)
        .await?;
    if entries.is_empty() {
        println!(
            "{}",
            if filtered {
                "No room access granted or taken back matches these filters."
            } else {
                "No room access granted or taken back yet."
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = table(&[
        "TIME", "ACTION", "EMAIL", "PROJECT", "ROOM", "ACCESS", "CAUSE",
    ]);
    for entry in &entries {
        out.add_row(vec![
            format_time(Some(entry.at)),
            entry.action.clone(),
            entry.email.clone(),
            entry.project_gid.clone(),
            entry.room_id.to_string(),
            access_name(entry.access),
            entry.cause.clone(),
        ]);
    }
    println!("{out}");
    println!(
        "{} {} (of {total}).",
        entries.len(),
        if entries.len() == 1 {
            "entry"
        } else {
            "entries"
        }
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_people_in_each_state() {
        let counts = PlanCounts {
            waiting: 1,
            due: 1,
            kept: 1,
            orphans: 1,
        };
        assert_eq!(
            counts.summary(4),
            "4 people: 1 within the grace period, 1 due now, 1 kept, 1 found without an open \
             task (scheduled by the next daily sweep)."
        );
        assert!(PlanCounts::default().summary(1).starts_with("1 person: "));
    }
}
