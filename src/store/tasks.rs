//! Every task a job has read: its assignee, whether it is completed, its parent, and the projects
//! it counts toward (its own and its ancestors'), each with the task that is in the project. Issues
//! 12 and 13 add columns to these; a job refreshes the row each time it reads the task.

use super::conn::{Conn, Sql, Write};
use super::{Durability, Store, StoreResult, now_ms};
use crate::access::need::TaskState;
use crate::domain::{Email, Gid};

/// A task as a job read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRead {
    pub gid: Gid,
    pub assignee_gid: Option<Gid>,
    pub assignee_email: Option<Email>,
    pub completed: bool,
    pub parent_gid: Option<Gid>,
    /// The projects the task counts toward.
    pub projects: Vec<TaskProject>,
}

/// A project a task counts toward, through itself or an ancestor.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TaskProject {
    #[sqlx(try_from = "String")]
    pub project_gid: Gid,
    /// The task itself, or the ancestor that is in the project.
    #[sqlx(try_from = "String")]
    pub via_task_gid: Gid,
}

/// A task row as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TaskRecord {
    pub gid: String,
    pub assignee_gid: Option<String>,
    pub assignee_email: Option<String>,
    pub completed: i64,
    pub parent_gid: Option<String>,
    pub read_at: i64,
    pub read_by_job_id: Option<i64>,
    /// When Asana answered 404 for it (issue 13); a later successful read clears it.
    pub deleted_at: Option<i64>,
}

/// Replaces a task's row and its projects, in one transaction.
struct RefreshTask {
    task: TaskRead,
    job_id: Option<i64>,
}

impl Write for RefreshTask {
    type Output = ();
    const DURABILITY: Durability = Durability::Relaxed;

    async fn run(&self, conn: &mut Conn<'_>) -> sqlx::Result<()> {
        let mut tx = conn.begin().await?;
        refresh_task(&mut tx.conn(), &self.task, self.job_id, now_ms()).await?;
        tx.commit().await
    }
}

/// Upserts `task` and replaces its projects; for use inside a transaction (a job's settlement).
pub(crate) async fn refresh_task(
    conn: &mut Conn<'_>,
    task: &TaskRead,
    job_id: Option<i64>,
    now: i64,
) -> sqlx::Result<()> {
    conn.execute_all(refresh_task_sql(task, job_id, now)).await
}

/// The statements of [`refresh_task`], to run with others.
pub(crate) fn refresh_task_sql(task: &TaskRead, job_id: Option<i64>, now: i64) -> Vec<Sql<'_>> {
    let mut statements = vec![
        Sql::new(
            "INSERT INTO tasks (gid, assignee_gid, assignee_email, completed, parent_gid, read_at, \
             read_by_job_id) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (gid) DO UPDATE SET assignee_gid = excluded.assignee_gid, \
             assignee_email = excluded.assignee_email, completed = excluded.completed, \
             parent_gid = excluded.parent_gid, read_at = excluded.read_at, \
             read_by_job_id = excluded.read_by_job_id, deleted_at = NULL",
        )
        .bind(task.gid.as_str())
        .bind(task.assignee_gid.as_ref().map(Gid::as_str))
        .bind(task.assignee_email.as_ref().map(Email::as_str))
        .bind(i64::from(task.completed))
        .bind(task.parent_gid.as_ref().map(Gid::as_str))
        .bind(now)
        .bind(job_id),
        Sql::new("DELETE FROM task_projects WHERE task_gid = $1").bind(task.gid.as_str()),
    ];
    for project in &task.projects {
        statements.push(
            Sql::new(
                "INSERT INTO task_projects (task_gid, project_gid, via_task_gid) \
                 VALUES ($1, $2, $3) ON CONFLICT (task_gid, project_gid) DO NOTHING",
            )
            .bind(task.gid.as_str())
            .bind(project.project_gid.as_str())
            .bind(project.via_task_gid.as_str()),
        );
    }
    statements
}

/// Marks task `gid` deleted (Asana answered 404 for job `job_id`): it counts toward nobody's need.
/// A task no job recorded before stays unrecorded: it never counted toward anyone's.
pub(crate) fn mark_task_deleted_sql(gid: &Gid, now: i64) -> Sql<'_> {
    Sql::new("UPDATE tasks SET deleted_at = $1 WHERE gid = $2 AND deleted_at IS NULL")
        .bind(now)
        .bind(gid.as_str())
}

#[derive(sqlx::FromRow)]
struct StoredState {
    assignee_email: Option<String>,
    completed: i64,
    deleted_at: Option<i64>,
}

/// Task `gid` as stored, with its projects (`None`: never recorded); read inside a settlement's
/// transaction before the new read replaces it.
pub(crate) async fn task_state(conn: &mut Conn<'_>, gid: &Gid) -> sqlx::Result<Option<TaskState>> {
    let row: Option<StoredState> = conn
        .fetch_optional(
            Sql::new("SELECT assignee_email, completed, deleted_at FROM tasks WHERE gid = $1")
                .bind(gid.as_str()),
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let projects: Vec<(String,)> = conn
        .fetch_all(
            Sql::new(
                "SELECT project_gid FROM task_projects WHERE task_gid = $1 ORDER BY project_gid",
            )
            .bind(gid.as_str()),
        )
        .await?;
    let corrupt = |e: crate::domain::ParseError| sqlx::Error::Decode(Box::new(e));
    Ok(Some(TaskState {
        assignee: row
            .assignee_email
            .map(Email::try_from)
            .transpose()
            .map_err(corrupt)?,
        completed: row.completed != 0,
        deleted: row.deleted_at.is_some(),
        projects: projects
            .into_iter()
            .map(|(p,)| Gid::try_from(p))
            .collect::<Result<_, _>>()
            .map_err(corrupt)?,
    }))
}

impl TaskRead {
    /// What this read says about its assignee's need.
    pub(crate) fn state(&self) -> TaskState {
        TaskState {
            assignee: self.assignee_email.clone(),
            completed: self.completed,
            deleted: false,
            projects: self
                .projects
                .iter()
                .map(|p| p.project_gid.clone())
                .collect(),
        }
    }
}

impl Store {
    /// Records `task` as job `job_id` (if any) read it, replacing its projects.
    pub async fn refresh_task(&self, task: TaskRead, job_id: Option<i64>) -> StoreResult<()> {
        self.write(RefreshTask { task, job_id }).await
    }

    /// The stored row of task `gid`.
    pub async fn task(&self, gid: &Gid) -> StoreResult<Option<TaskRecord>> {
        self.fetch_optional(
            Sql::new(
                "SELECT gid, assignee_gid, assignee_email, completed, parent_gid, read_at, \
                 read_by_job_id, deleted_at FROM tasks WHERE gid = $1",
            )
            .bind(gid.as_str()),
        )
        .await
    }

    /// The projects task `gid` counts toward, by project.
    pub async fn task_projects(&self, gid: &Gid) -> StoreResult<Vec<TaskProject>> {
        self.fetch_all(
            Sql::new(
                "SELECT project_gid, via_task_gid FROM task_projects WHERE task_gid = $1 \
                 ORDER BY project_gid",
            )
            .bind(gid.as_str()),
        )
        .await
    }
}
