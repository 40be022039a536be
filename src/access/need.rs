//! Whose need of which project's room a task's change may end, and whose it renews. A person needs
//! project P's room while they are the assignee of an open (incomplete, undeleted) task counting
//! toward P; these functions look at one task only: whether the person still has *another* open
//! task in P is the store's question, asked in the same transaction (`store::revocations`).

use crate::domain::{Email, Gid};
use crate::store::NeedEnd;

/// A task as the store knows it, before or after a job's read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState {
    pub assignee: Option<Email>,
    pub completed: bool,
    /// Asana answered 404 for it.
    pub deleted: bool,
    /// The projects it counts toward (its own and its ancestors').
    pub projects: Vec<Gid>,
}

impl TaskState {
    /// Counts toward its assignee's need: neither completed nor deleted.
    pub fn open(&self) -> bool {
        !self.completed && !self.deleted
    }
}

/// (person, project, why) whose need *may* have ended when a task went from `before` to `after`:
/// the earlier assignee of an open task, for each project it counted toward, unless the task still
/// makes them need that project. Of the reasons, the first that applies: deleted, completed,
/// another assignee (or none), left the project.
pub fn ended(before: Option<&TaskState>, after: &TaskState) -> Vec<(Email, Gid, NeedEnd)> {
    let Some(before) = before else {
        return Vec::new();
    };
    let Some(person) = before.assignee.as_ref().filter(|_| before.open()) else {
        return Vec::new();
    };
    let mut ends = Vec::new();
    for project in &before.projects {
        let why = if after.deleted {
            NeedEnd::Deleted
        } else if after.completed {
            NeedEnd::Completed
        } else if after.assignee.is_none() {
            NeedEnd::Unassigned
        } else if after.assignee.as_ref() != Some(person) {
            NeedEnd::Reassigned
        } else if !after.projects.contains(project) {
            NeedEnd::Removed
        } else {
            continue;
        };
        ends.push((person.clone(), project.clone(), why));
    }
    ends
}

/// (person, project) the task makes needed now: their waiting revocations there are cancelled.
pub fn needed(after: &TaskState) -> Vec<(Email, Gid)> {
    match &after.assignee {
        Some(person) if after.open() => after
            .projects
            .iter()
            .map(|project| (person.clone(), project.clone()))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(s: &str) -> Email {
        s.parse().unwrap()
    }

    fn gid(s: &str) -> Gid {
        s.parse().unwrap()
    }

    fn state(
        assignee: Option<&str>,
        completed: bool,
        deleted: bool,
        projects: &[&str],
    ) -> TaskState {
        TaskState {
            assignee: assignee.map(email),
            completed,
            deleted,
            projects: projects.iter().map(|p| gid(p)).collect(),
        }
    }

    /// A case of the table: its name, the task after, and the needs it ends.
    type Case = (
        &'static str,
        TaskState,
        &'static [(&'static str, &'static str, NeedEnd)],
    );

    #[test]
    fn ended_names_each_reason_in_order_of_precedence() {
        let bob_open = state(Some("bob@example.com"), false, false, &["100", "200"]);
        let table: &[Case] = &[
            (
                "unassigned",
                state(None, false, false, &["100", "200"]),
                &[
                    ("bob@example.com", "100", NeedEnd::Unassigned),
                    ("bob@example.com", "200", NeedEnd::Unassigned),
                ],
            ),
            (
                "reassigned",
                state(Some("carl@example.com"), false, false, &["100", "200"]),
                &[
                    ("bob@example.com", "100", NeedEnd::Reassigned),
                    ("bob@example.com", "200", NeedEnd::Reassigned),
                ],
            ),
            (
                "completed wins over reassigned",
                state(Some("carl@example.com"), true, false, &["100", "200"]),
                &[
                    ("bob@example.com", "100", NeedEnd::Completed),
                    ("bob@example.com", "200", NeedEnd::Completed),
                ],
            ),
            (
                "deleted wins over completed",
                state(Some("bob@example.com"), true, true, &["100", "200"]),
                &[
                    ("bob@example.com", "100", NeedEnd::Deleted),
                    ("bob@example.com", "200", NeedEnd::Deleted),
                ],
            ),
            (
                "removed from one of two projects",
                state(Some("bob@example.com"), false, false, &["200"]),
                &[("bob@example.com", "100", NeedEnd::Removed)],
            ),
            (
                "reassigned wins over removed",
                state(Some("carl@example.com"), false, false, &["200"]),
                &[
                    ("bob@example.com", "100", NeedEnd::Reassigned),
                    ("bob@example.com", "200", NeedEnd::Reassigned),
                ],
            ),
            (
                "unchanged",
                state(Some("bob@example.com"), false, false, &["100", "200"]),
                &[],
            ),
            (
                "added to a third project",
                state(
                    Some("bob@example.com"),
                    false,
                    false,
                    &["100", "200", "300"],
                ),
                &[],
            ),
        ];
        for (name, after, expected) in table {
            let expected: Vec<(Email, Gid, NeedEnd)> = expected
                .iter()
                .map(|(e, p, why)| (email(e), gid(p), *why))
                .collect();
            assert_eq!(ended(Some(&bob_open), after), expected, "{name}");
        }
    }

    #[test]
    fn only_an_open_assigned_task_before_can_end_a_need() {
        let after = state(None, true, false, &["100"]);
        assert!(ended(None, &after).is_empty(), "first read");
        let unassigned = state(None, false, false, &["100"]);
        assert!(
            ended(Some(&unassigned), &after).is_empty(),
            "nobody needed it"
        );
        let completed = state(Some("bob@example.com"), true, false, &["100"]);
        assert!(
            ended(Some(&completed), &after).is_empty(),
            "completed already: the need ended then"
        );
        let deleted = state(Some("bob@example.com"), false, true, &["100"]);
        assert!(ended(Some(&deleted), &after).is_empty(), "deleted already");
    }

    #[test]
    fn a_subtask_ends_the_need_of_its_parents_project() {
        // A subtask's row counts toward its ancestor's project (task_projects via the parent).
        let before = state(Some("bob@example.com"), false, false, &["100"]);
        let after = state(Some("bob@example.com"), true, false, &["100"]);
        assert_eq!(
            ended(Some(&before), &after),
            vec![(email("bob@example.com"), gid("100"), NeedEnd::Completed)]
        );
    }

    #[test]
    fn needed_is_every_project_of_an_open_assigned_task() {
        assert_eq!(
            needed(&state(
                Some("bob@example.com"),
                false,
                false,
                &["100", "200"]
            )),
            vec![
                (email("bob@example.com"), gid("100")),
                (email("bob@example.com"), gid("200"))
            ]
        );
        assert!(needed(&state(None, false, false, &["100"])).is_empty());
        assert!(needed(&state(Some("bob@example.com"), true, false, &["100"])).is_empty());
        assert!(needed(&state(Some("bob@example.com"), false, true, &["100"])).is_empty());
    }

    #[test]
    fn a_reopened_task_renews_the_need_and_ends_none() {
        let before = state(Some("bob@example.com"), true, false, &["100"]);
        let after = state(Some("bob@example.com"), false, false, &["100"]);
        assert!(ended(Some(&before), &after).is_empty());
        assert_eq!(needed(&after), vec![(email("bob@example.com"), gid("100"))]);
    }
}
