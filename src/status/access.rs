//! The access lifecycle (issue 13) as the status page shows it, in the words `access plan` and
//! `access log` print: the page and the commands share these functions, so they cannot drift.
//! Store reads only: the room's members are read when a removal is due, not here.

use super::{AccessEvent, PendingRevocation};
use crate::rooms::RoomAccess;
use crate::store::{GrantState, LogEntry, NeedEnd, PlanRow, RevocationState, rfc3339_seconds};

/// Where a row of `access plan` stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The person had the access before the bridge granted it: never removed.
    Kept,
    /// A revoke job is removing it.
    Removing,
    /// Within the grace period, due at the given time.
    Waiting { due_at: i64 },
    /// Past its due time, waiting for a revoke job.
    DueNow,
    /// No revocation yet: the next daily sweep schedules one.
    NextSweep,
}

impl Removal {
    pub fn of(row: &PlanRow, now: i64) -> Removal {
        if row.grant_state == GrantState::HadAccess {
            return Removal::Kept;
        }
        match (row.state, row.due_at) {
            (Some(RevocationState::Removing), _) => Removal::Removing,
            (Some(_), Some(due_at)) if due_at > now => Removal::Waiting { due_at },
            (Some(_), _) => Removal::DueNow,
            (None, _) => Removal::NextSweep,
        }
    }

    /// The state in words.
    pub fn state(self) -> &'static str {
        match self {
            Removal::Kept => "kept: not granted by us",
            Removal::Removing => "removing",
            Removal::Waiting { .. } => "in the grace period",
            Removal::DueNow => "due now",
            Removal::NextSweep => "at the next sweep",
        }
    }
}

/// Why the person loses the room: the task whose change ended the need, and who saw it.
pub fn because(row: &PlanRow) -> String {
    match (row.why, &row.why_task_gid) {
        (Some(NeedEnd::NoOpenTask) | None, _) | (_, None) => {
            format!("no open task (grant by job {})", row.grant_job_id)
        }
        (Some(why), Some(task)) => {
            let source = row
                .why_source
                .as_deref()
                .map_or_else(String::new, |s| format!(" ({s})"));
            format!("task {task} {}{source}", why.to_string().replace('_', " "))
        }
    }
}

/// A time still to wait, in its two largest units, rounded down.
pub fn remaining(ms: i64) -> String {
    let secs = ms / 1000;
    let (days, hours, minutes) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// A stored FileShare integer by its name, or the integer when the bridge has no name for it.
pub fn access_name(access: i64) -> String {
    RoomAccess::from_repr(access).map_or_else(|| access.to_string(), |a| a.as_str().to_string())
}

/// The `limit` nearest rows of `access plan`: removals under way and due first, then by due
/// time, then those the next sweep schedules.
pub fn pending_revocations(rows: Vec<PlanRow>, now: i64, limit: usize) -> Vec<PendingRevocation> {
    let mut rows: Vec<(Removal, PlanRow)> = rows
        .into_iter()
        .map(|row| (Removal::of(&row, now), row))
        .collect();
    rows.sort_by_key(|(removal, row)| {
        let rank = match removal {
            Removal::Removing => 0,
            Removal::DueNow => 1,
            Removal::Waiting { .. } => 2,
            Removal::NextSweep => 3,
            Removal::Kept => 4,
        };
        (rank, row.due_at.unwrap_or(i64::MAX))
    });
    rows.into_iter()
        .take(limit)
        .map(|(removal, row)| PendingRevocation {
            because: because(&row),
            state: removal.state().to_string(),
            due_at: match removal {
                Removal::Kept | Removal::NextSweep => None,
                _ => row.due_at.map(rfc3339_seconds),
            },
            access: access_name(row.access),
            email: row.email,
            project: row.project_gid,
            room_id: row.room_id,
        })
        .collect()
}

/// An entry of `access log` for the page.
pub fn access_event(entry: LogEntry) -> AccessEvent {
    AccessEvent {
        at: rfc3339_seconds(entry.at),
        access: access_name(entry.access),
        action: entry.action,
        email: entry.email,
        project: entry.project_gid,
        room_id: entry.room_id,
        because: entry.cause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_row(email: &str, state: Option<RevocationState>, due_at: Option<i64>) -> PlanRow {
        PlanRow {
            email: email.into(),
            project_gid: "1200000000000100".into(),
            project_name: Some("Website".into()),
            room_id: 45,
            access: 10,
            grant_state: GrantState::Granted,
            grant_job_id: 7,
            revocation_id: state.map(|_| 1),
            state,
            need_ended_at: Some(0),
            due_at,
            job_id: None,
            why: state.map(|_| NeedEnd::NoOpenTask),
            why_task_gid: None,
            why_source: None,
        }
    }

    #[test]
    fn the_time_left_is_in_its_two_largest_units() {
        assert_eq!(remaining(21 * 3_600_000), "21h");
        assert_eq!(remaining(21 * 3_600_000 + 5 * 60_000 + 999), "21h 5m");
        assert_eq!(remaining(2 * 86_400_000 + 3 * 3_600_000), "2d 3h");
        assert_eq!(remaining(86_400_000 + 59_000), "1d");
        assert_eq!(remaining(90_000), "1m");
        assert_eq!(remaining(4_500), "4s");
    }

    #[test]
    fn pending_revocations_come_nearest_first_in_the_plans_words() {
        let now = 1_000_000;
        let mut kept = plan_row("kept@example.com", None, None);
        kept.grant_state = GrantState::HadAccess;
        let rows = vec![
            plan_row(
                "later@example.com",
                Some(RevocationState::Waiting),
                Some(now + 7_200_000),
            ),
            plan_row("sweep@example.com", None, None),
            kept,
            plan_row(
                "soon@example.com",
                Some(RevocationState::Waiting),
                Some(now + 60_000),
            ),
            plan_row(
                "due@example.com",
                Some(RevocationState::Waiting),
                Some(now - 1),
            ),
            plan_row(
                "removing@example.com",
                Some(RevocationState::Removing),
                Some(now - 5),
            ),
        ];
        let pending = pending_revocations(rows, now, 50);
        let order: Vec<(&str, &str)> = pending
            .iter()
            .map(|p| (p.email.as_str(), p.state.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                ("removing@example.com", "removing"),
                ("due@example.com", "due now"),
                ("soon@example.com", "in the grace period"),
                ("later@example.com", "in the grace period"),
                ("sweep@example.com", "at the next sweep"),
                ("kept@example.com", "kept: not granted by us"),
            ]
        );
        assert_eq!(
            pending[2].due_at.as_deref(),
            Some(rfc3339_seconds(now + 60_000).as_str())
        );
        assert_eq!(pending[2].access, "Editing");
        assert_eq!(pending[2].because, "no open task (grant by job 7)");
        assert_eq!(pending[4].due_at, None);
        assert_eq!(pending_revocations(pending_rows(3, now), now, 2).len(), 2);
    }

    fn pending_rows(n: usize, now: i64) -> Vec<PlanRow> {
        (0..n)
            .map(|i| {
                plan_row(
                    &format!("p{i}@example.com"),
                    Some(RevocationState::Waiting),
                    Some(now + 1),
                )
            })
            .collect()
    }

    #[test]
    fn log_entries_keep_their_words() {
        let event = access_event(LogEntry {
            at: 1_700_000_000_000,
            action: "revoked".into(),
            email: "ann@example.com".into(),
            project_gid: "1200000000000100".into(),
            room_id: 45,
            access: 1,
            cause: "task 1 completed".into(),
        });
        assert_eq!(event.at, "2023-11-14T22:13:20Z");
        assert_eq!(event.access, "1");
        assert_eq!(event.action, "revoked");
        assert_eq!(event.because, "task 1 completed");
    }
}
