//! Whether a task belongs to a webhook's project: Asana only sends a project's webhook the events
//! of that project's tasks and of their subtasks, so a job for any other task comes from a forged
//! or stale event and is not acted on.

use crate::domain::Gid;
use crate::upstream::asana::TaskPlacement;

/// How many parents up a subtask's chain is followed, at one `GET /tasks/{gid}` each.
pub const MAX_PARENT_LEVELS: usize = 3;

/// What one task's placement says about the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    InProject,
    /// Neither the task nor (as far as it goes) its parent chain is in the project.
    Elsewhere,
    /// Not in the project itself; its parent, with this gid, may be.
    AskParent(Gid),
}

/// Where `task` stands relative to `project`.
pub fn placement(project: &Gid, task: &TaskPlacement) -> Placement {
    if task.projects.iter().any(|p| p.gid == *project) {
        return Placement::InProject;
    }
    match &task.parent {
        Some(parent) => Placement::AskParent(parent.gid.clone()),
        None => Placement::Elsewhere,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::asana::ResourceRef;

    fn task(projects: &[&str], parent: Option<&str>) -> TaskPlacement {
        let reference = |gid: &str| ResourceRef {
            gid: gid.parse().unwrap(),
            name: None,
        };
        TaskPlacement {
            projects: projects.iter().map(|p| reference(p)).collect(),
            parent: parent.map(reference),
        }
    }

    #[test]
    fn a_task_in_the_project_is_in_it_whatever_its_parent() {
        assert_eq!(
            placement(&"1".parse().unwrap(), &task(&["2", "1"], None)),
            Placement::InProject
        );
        assert_eq!(
            placement(&"1".parse().unwrap(), &task(&["1"], Some("9"))),
            Placement::InProject
        );
    }

    #[test]
    fn a_task_elsewhere_without_a_parent_is_elsewhere() {
        assert_eq!(
            placement(&"1".parse().unwrap(), &task(&["2"], None)),
            Placement::Elsewhere
        );
        assert_eq!(
            placement(&"1".parse().unwrap(), &task(&[], None)),
            Placement::Elsewhere
        );
    }

    #[test]
    fn a_subtask_outside_the_project_defers_to_its_parent() {
        assert_eq!(
            placement(&"1".parse().unwrap(), &task(&[], Some("9"))),
            Placement::AskParent("9".parse().unwrap())
        );
        assert_eq!(
            placement(&"1".parse().unwrap(), &task(&["2"], Some("9"))),
            Placement::AskParent("9".parse().unwrap())
        );
    }
}
