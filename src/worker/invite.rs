//! One job, start to finish: read the task's current assignee from Asana, check that the task is
//! in its webhook's project, apply the invite rules, and invite the email to DocSpace at most once
//! (and only while the job's lease is held), recording how it ended.

use std::time::Duration;

use crate::domain::{Email, Gid};
use crate::rooms::RoomsMode;
use crate::settings::{InviteType, RoomsSettings, Settings, WorkerSettings};
use crate::store::{
    ClaimedJob, Confirmations, InvitationState, LeaseOwner, Outcome, Reservation, Settlement,
    Store, StoreError, TaskProject, TaskRead, duration_ms, now_ms,
};
use crate::telemetry::{mask_email, mask_emails_in, metrics};
use crate::upstream::asana::{AssigneeEmail, Task, TaskPlacement};
use crate::upstream::docspace::DocSpaceUser;
use crate::upstream::{AsanaClient, DocSpaceClient, UpstreamError, Upstreams};

use super::project_scope::{MAX_PARENT_LEVELS, Placement, placement};
use super::retry::{Decision, RetryPolicy};
use super::room_provision::RoomProvisioner;
use super::rooms::{Granting, LedgerView, Person, RoomResult, RoomWork, RoomsStop};

/// Who gets invited, and as what.
#[derive(Debug, Clone)]
pub struct InviteRules {
    /// Lowercase domains; empty allows every domain.
    pub allowed_domains: Vec<String>,
    pub invite_type: InviteType,
}

impl InviteRules {
    pub fn from_settings(settings: &Settings) -> InviteRules {
        InviteRules {
            allowed_domains: settings.invite.allowed_domains.clone(),
            invite_type: settings.docspace.invite_type,
        }
    }

    pub fn allows(&self, email: &Email) -> bool {
        self.allowed_domains.is_empty()
            || self
                .allowed_domains
                .iter()
                .any(|allowed| allowed == email.domain())
    }
}

/// What one attempt found.
#[derive(Debug)]
enum Attempt {
    /// Nothing (more) to send.
    Done {
        outcome: Outcome,
        email: Option<Email>,
        note: Option<String>,
    },
    /// DocSpace has the invitation from this job.
    Invited { email: Email },
    /// An upstream call failed.
    Upstream {
        error: UpstreamError,
        email: Option<Email>,
    },
    /// The job cannot succeed as things stand: it fails at once with this reason.
    Failed { reason: String, email: Email },
    /// Something another job is doing must finish first: run again later, with this note.
    Wait { note: String, email: Email },
    /// The job's lease ran out before DocSpace was asked to invite: whoever holds it now goes on.
    LeaseLost,
}

impl JobEnd {
    /// Counts the attempt, and the job's outcome when it ended (recorded ends only).
    pub(crate) fn record_metrics(&self) {
        match self {
            JobEnd::Done(outcome) => {
                metrics::job_attempt("done");
                metrics::job_finished(outcome.as_str());
            }
            JobEnd::RetryIn(_) => metrics::job_attempt("retry"),
            JobEnd::Failed(_) => {
                metrics::job_attempt("failed");
                metrics::job_finished(Outcome::Failed.as_str());
            }
            JobEnd::LeaseLost => {}
        }
    }
}

/// How a job run ended, as recorded in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    Done(Outcome),
    RetryIn(Duration),
    Failed(String),
    /// The lease ran out before the result was written; whoever holds the job now finishes it.
    LeaseLost,
}

/// What an attempt read on its way, for the rooms part and the settlement.
#[derive(Debug, Default)]
struct Seen {
    /// The task's own projects and those of its parents (as far as they were read).
    projects: Vec<TaskProject>,
    task: Option<TaskRead>,
    project_names: Vec<(Gid, String)>,
    /// The person, when DocSpace was asked about them.
    user: Option<DocSpaceUser>,
    /// The job that invited (or is inviting) the person, when not this one.
    invited_by: Option<i64>,
    /// The rooms' mappings and the person's grants, when read before DocSpace was asked.
    ledger: Option<LedgerView>,
    /// Asana answered 404 for the job's own task: deleted, or hidden from the token.
    task_gone: bool,
}

#[derive(Debug, Clone)]
pub struct Inviter {
    store: Store,
    asana: AsanaClient,
    docspace: DocSpaceClient,
    rules: InviteRules,
    retry: RetryPolicy,
    rooms: RoomsSettings,
    /// In `auto` mode: gives known projects their room.
    provisioner: Option<RoomProvisioner>,
    /// The grace period of access revocation (`None`: off). On, every settlement of a task read
    /// may end or renew people's need of rooms, and a completed task grants no room.
    lifecycle: Option<Duration>,
}

impl Inviter {
    pub fn new(
        store: Store,
        asana: AsanaClient,
        docspace: DocSpaceClient,
        rules: InviteRules,
        retry: RetryPolicy,
        rooms: RoomsSettings,
        worker: &WorkerSettings,
    ) -> Self {
        let provisioner = (rooms.mode == RoomsMode::Auto)
            .then(|| RoomProvisioner::new(store.clone(), docspace.clone(), &rooms, worker));
        Inviter {
            store,
            asana,
            docspace,
            rules,
            retry,
            rooms,
            provisioner,
            lifecycle: None,
        }
    }

    /// The rules and retry policy the settings describe, calling upstream through the process's
    /// clients (whose Asana pacer everyone shares).
    pub fn from_settings(settings: &Settings, store: Store, upstreams: &Upstreams) -> Inviter {
        Inviter {
            lifecycle: settings.access.lifecycle(),
            ..Inviter::new(
                store,
                upstreams.asana.clone(),
                upstreams.docspace.clone(),
                InviteRules::from_settings(settings),
                RetryPolicy::from_settings(settings),
                settings.rooms.clone(),
                &settings.worker,
            )
        }
    }

    /// Runs one attempt of `job`, which `owner` has leased, and records the result.
    pub async fn run(&self, job: &ClaimedJob, owner: &LeaseOwner) -> Result<JobEnd, StoreError> {
        let mut seen = Seen::default();
        let attempt = self.attempt(job, owner, &mut seen).await?;
        let (attempt, confirmations, rooms) = self.with_rooms(job, owner, attempt, seen).await?;
        self.record(job, owner, attempt, confirmations, rooms).await
    }

    async fn attempt(
        &self,
        job: &ClaimedJob,
        owner: &LeaseOwner,
        seen: &mut Seen,
    ) -> Result<Attempt, StoreError> {
        let task = match self.asana.get_task(job.task_gid.as_str()).await {
            Ok(task) => task,
            // Deleted (or hidden from the token): it counts toward nobody's need any more. A 403
            // still fails: a task we cannot see keeps its access (the safe side).
            Err(error) if error.status() == Some(404) => {
                seen.task_gone = true;
                return Ok(Attempt::Done {
                    outcome: Outcome::TaskGone,
                    email: None,
                    note: Some(format!("Asana answered 404 for task {}", job.task_gid)),
                });
            }
            Err(error) => return Ok(Attempt::Upstream { error, email: None }),
        };
        seen.projects = task
            .placement
            .projects
            .iter()
            .map(|p| TaskProject {
                project_gid: p.gid.clone(),
                via_task_gid: task.gid.clone(),
            })
            .collect();
        seen.project_names = task
            .placement
            .projects
            .iter()
            .filter_map(|p| Some((p.gid.clone(), p.name.clone()?)))
            .collect();
        if self.rooms.mode != RoomsMode::Off {
            // Rooms count every project of the task and of its parents.
            match self.parents_projects(&task).await {
                Ok(inherited) => {
                    for project in inherited {
                        if !seen
                            .projects
                            .iter()
                            .any(|p| p.project_gid == project.project_gid)
                        {
                            seen.projects.push(project);
                        }
                    }
                }
                Err(error) => return Ok(Attempt::Upstream { error, email: None }),
            }
            if let Some(project) = &job.project_gid
                && !seen.projects.iter().any(|p| p.project_gid == *project)
            {
                // Recorded too: a task removed from the project ends needs of its room.
                seen.task = Some(task_read(&task, &seen.projects));
                return Ok(done(Outcome::NotInProject, None));
            }
        } else if let Some(project) = &job.project_gid {
            match self.is_in_project(project, &task).await {
                Ok(Some(via)) => {
                    if !seen.projects.iter().any(|p| p.project_gid == *project) {
                        seen.projects.push(TaskProject {
                            project_gid: project.clone(),
                            via_task_gid: via,
                        });
                    }
                }
                Ok(None) => {
                    seen.task = Some(task_read(&task, &seen.projects));
                    return Ok(done(Outcome::NotInProject, None));
                }
                Err(error) => return Ok(Attempt::Upstream { error, email: None }),
            }
        }
        seen.task = Some(task_read(&task, &seen.projects));
        let Some(assignee) = task.assignee else {
            return Ok(done(Outcome::NoAssignee, None));
        };
        let email = match assignee.email {
            AssigneeEmail::Address(email) => email,
            AssigneeEmail::Hidden => return Ok(done(Outcome::NoEmail, None)),
            AssigneeEmail::NotAnAddress(text) => {
                return Ok(Attempt::Done {
                    outcome: Outcome::NoEmail,
                    email: None,
                    note: Some(format!(
                        "Asana gave the assignee's email as {}, which is not an address",
                        mask_email(&text)
                    )),
                });
            }
        };
        if !self.rules.allows(&email) {
            return Ok(done(Outcome::DomainNotAllowed, Some(email)));
        }

        // An earlier attempt of this very job may have reached DocSpace before it died.
        let resuming = match self.store.invitation(&email, job.id).await? {
            Some(Reservation::Mine(InvitationState::Sending)) => true,
            Some(settled) => return Ok(settled_by(settled, email, seen)),
            None => false,
        };

        // The grants ledger may show the person in every room already: no DocSpace call.
        if !resuming && self.rooms.mode != RoomsMode::Off {
            let projects: Vec<Gid> = seen
                .projects
                .iter()
                .map(|p| p.project_gid.clone())
                .collect();
            let view = LedgerView::read(&self.store, &projects, &email).await?;
            let settled = view.settles_every_room();
            seen.ledger = Some(view);
            if settled {
                return Ok(done(Outcome::AlreadyMember, Some(email)));
            }
        }

        match self.docspace.find_user(email.as_str()).await {
            Err(error) => {
                return Ok(Attempt::Upstream {
                    error,
                    email: Some(email),
                });
            }
            Ok(Some(user)) => {
                seen.user = Some(user);
                if resuming {
                    return Ok(Attempt::Invited { email });
                }
                return Ok(done(Outcome::AlreadyMember, Some(email)));
            }
            Ok(None) => {}
        }

        // Also when resuming: it is where a lost lease is noticed, before DocSpace is asked.
        match self
            .store
            .reserve_invitation(
                &email,
                job.id,
                owner,
                &job.task_gid,
                self.rules.invite_type.as_str(),
            )
            .await?
        {
            None => return Ok(Attempt::LeaseLost),
            Some(Reservation::Mine(InvitationState::Sending)) => {}
            Some(settled) => return Ok(settled_by(settled, email, seen)),
        }

        match self
            .docspace
            .invite(email.as_str(), self.rules.invite_type)
            .await
        {
            Ok(()) => Ok(Attempt::Invited { email }),
            Err(error) => Ok(Attempt::Upstream {
                error,
                email: Some(email),
            }),
        }
    }

    /// The task in `project` that the job's task is or descends from (its parent chain followed
    /// within [`MAX_PARENT_LEVELS`]); `None` when the task is not in the project.
    async fn is_in_project(
        &self,
        project: &Gid,
        task: &Task,
    ) -> Result<Option<Gid>, UpstreamError> {
        let mut via = task.gid.clone();
        let mut next = placement(project, &task.placement);
        for _ in 0..MAX_PARENT_LEVELS {
            let Placement::AskParent(parent) = next else {
                break;
            };
            let read: TaskPlacement = self.asana.get_task_placement(parent.as_str()).await?;
            next = placement(project, &read);
            via = parent;
        }
        Ok((next == Placement::InProject).then_some(via))
    }

    /// The projects of the task's parents, each with the ancestor that is in it, following the
    /// chain up to [`MAX_PARENT_LEVELS`] reads.
    async fn parents_projects(&self, task: &Task) -> Result<Vec<TaskProject>, UpstreamError> {
        let mut found = Vec::new();
        let mut parent = task.placement.parent.as_ref().map(|p| p.gid.clone());
        for _ in 0..MAX_PARENT_LEVELS {
            let Some(gid) = parent else {
                break;
            };
            let read = self.asana.get_task_placement(gid.as_str()).await?;
            for project in &read.projects {
                found.push(TaskProject {
                    project_gid: project.gid.clone(),
                    via_task_gid: gid.clone(),
                });
            }
            parent = read.parent.map(|p| p.gid);
        }
        Ok(found)
    }

    /// With rooms on, grants the person the rooms of the task's known projects once the
    /// invitation part is settled; returns what to record.
    async fn with_rooms(
        &self,
        job: &ClaimedJob,
        owner: &LeaseOwner,
        attempt: Attempt,
        seen: Seen,
    ) -> Result<(Attempt, Confirmations, RoomWork), StoreError> {
        let mut confirmations = Confirmations {
            task: seen.task,
            project_names: seen.project_names,
            lifecycle: self.lifecycle,
            task_gone: seen.task_gone.then(|| job.task_gid.clone()),
            ..Confirmations::default()
        };
        if let Attempt::Invited { email } = &attempt {
            confirmations.invitation_sent = Some(email.clone());
        }
        if self.rooms.mode == RoomsMode::Off {
            return Ok((attempt, confirmations, RoomWork::default()));
        }
        let (email, person) = match &attempt {
            Attempt::Invited { email } => (
                email.clone(),
                seen.user.map_or(Person::JustInvited, Person::Found),
            ),
            Attempt::Done {
                outcome: Outcome::AlreadyMember,
                email: Some(email),
                ..
            } => (
                email.clone(),
                seen.user.map_or(Person::Unread, Person::Found),
            ),
            Attempt::Done {
                outcome: Outcome::AlreadyInvited,
                email: Some(email),
                ..
            } => (
                email.clone(),
                match seen.invited_by {
                    Some(job_id) => Person::InvitedBy { job_id },
                    None => Person::Unread,
                },
            ),
            _ => return Ok((attempt, confirmations, RoomWork::default())),
        };
        if self.lifecycle.is_some() && confirmations.task.as_ref().is_some_and(|t| t.completed) {
            // A completed task ends its assignee's need: granting its rooms now would give back
            // what the completion takes away.
            let mut work = RoomWork::default();
            for project in &seen.projects {
                work.results.push(RoomResult {
                    project: project.project_gid.to_string(),
                    room: None,
                    access: None,
                    result: "task_completed",
                    room_event: None,
                });
            }
            return Ok((attempt, confirmations, work));
        }
        let view = match seen.ledger {
            Some(view) => view,
            None => {
                let projects: Vec<Gid> = seen
                    .projects
                    .iter()
                    .map(|p| p.project_gid.clone())
                    .collect();
                LedgerView::read(&self.store, &projects, &email).await?
            }
        };
        let granting = Granting {
            store: &self.store,
            docspace: &self.docspace,
            job,
            owner,
            notify: self.rooms.notify,
            provisioner: self.provisioner.as_ref(),
        };
        let (mut work, stop) = granting
            .grant(view, &confirmations.project_names, &email, person)
            .await?;
        let granted = work.granted_any();
        confirmations.grants = std::mem::take(&mut work.grants);
        confirmations.had_access = std::mem::take(&mut work.had_access);
        let attempt = match stop {
            None => match attempt {
                Attempt::Done {
                    outcome: Outcome::AlreadyMember | Outcome::AlreadyInvited,
                    email,
                    note,
                } if granted => Attempt::Done {
                    outcome: Outcome::Granted,
                    email,
                    note,
                },
                other => other,
            },
            Some(RoomsStop::Upstream(error)) => Attempt::Upstream {
                error,
                email: Some(email),
            },
            Some(RoomsStop::Fail(reason)) => Attempt::Failed { reason, email },
            Some(RoomsStop::Wait(note)) => Attempt::Wait { note, email },
            Some(RoomsStop::LeaseLost) => Attempt::LeaseLost,
        };
        Ok((attempt, confirmations, work))
    }

    async fn record(
        &self,
        job: &ClaimedJob,
        owner: &LeaseOwner,
        attempt: Attempt,
        mut confirmations: Confirmations,
        mut rooms: RoomWork,
    ) -> Result<JobEnd, StoreError> {
        let (email, settlement, end) = match attempt {
            Attempt::Done {
                outcome,
                email,
                note,
            } => {
                tracing::info!(
                    outcome = outcome.as_str(),
                    email = email.as_ref().map(|e| mask_email(e.as_str())),
                    "job done"
                );
                (
                    email,
                    Settlement::Done { outcome, note },
                    JobEnd::Done(outcome),
                )
            }
            Attempt::Invited { email } => {
                tracing::info!(outcome = "invited", email = %mask_email(email.as_str()), "job done");
                (
                    Some(email),
                    Settlement::Done {
                        outcome: Outcome::Invited,
                        note: None,
                    },
                    JobEnd::Done(Outcome::Invited),
                )
            }
            Attempt::Upstream { error, email } => match self.retry.decide(job.attempts, &error) {
                Decision::RetryIn(delay) => {
                    tracing::warn!(
                        error = %mask_emails_in(&error.to_string()),
                        attempt = job.attempts,
                        retry_in_ms = duration_ms(delay),
                        "job attempt failed, will retry"
                    );
                    (
                        email,
                        retry_at(delay, error.to_string()),
                        JobEnd::RetryIn(delay),
                    )
                }
                Decision::Fail(reason) => {
                    tracing::error!(error = %mask_emails_in(&reason), attempt = job.attempts, "job failed");
                    (
                        email,
                        Settlement::Failed {
                            error: reason.clone(),
                        },
                        JobEnd::Failed(reason),
                    )
                }
            },
            Attempt::Failed { reason, email } => {
                tracing::error!(error = %mask_emails_in(&reason), attempt = job.attempts, "job failed");
                (
                    Some(email),
                    Settlement::Failed {
                        error: reason.clone(),
                    },
                    JobEnd::Failed(reason),
                )
            }
            Attempt::Wait { note, email } => match self.retry.decide_wait(job.attempts, &note) {
                Decision::Fail(reason) => {
                    tracing::error!(error = %mask_emails_in(&reason), "job failed");
                    (
                        Some(email),
                        Settlement::Failed {
                            error: reason.clone(),
                        },
                        JobEnd::Failed(reason),
                    )
                }
                Decision::RetryIn(delay) => {
                    tracing::info!(note = %note, retry_in_ms = duration_ms(delay), "job waits");
                    (Some(email), retry_at(delay, note), JobEnd::RetryIn(delay))
                }
            },
            Attempt::LeaseLost => {
                tracing::warn!(
                    "job lease was lost before DocSpace was asked to invite or share; its new holder finishes it"
                );
                return Ok(JobEnd::LeaseLost);
            }
        };
        if matches!(end, JobEnd::Failed(_)) {
            rooms.fail_unsettled();
        }
        confirmations.room_results = rooms.results_json();
        let recorded = self
            .store
            .settle_job(job.id, owner, email, settlement, confirmations)
            .await?;
        if recorded {
            end.record_metrics();
            for result in rooms.grant_metrics {
                metrics::room_grant(result);
            }
            Ok(end)
        } else {
            tracing::warn!(
                "job lease was lost before its result was recorded; its new holder finishes it"
            );
            Ok(JobEnd::LeaseLost)
        }
    }
}

fn retry_at(delay: Duration, error: String) -> Settlement {
    Settlement::RetryAt {
        run_at: now_ms().saturating_add(duration_ms(delay)),
        error,
    }
}

/// The task as this attempt read it, for the store.
fn task_read(task: &Task, projects: &[TaskProject]) -> TaskRead {
    let (assignee_gid, assignee_email) = match &task.assignee {
        Some(assignee) => (
            Some(assignee.gid.clone()),
            match &assignee.email {
                AssigneeEmail::Address(email) => Some(email.clone()),
                AssigneeEmail::Hidden | AssigneeEmail::NotAnAddress(_) => None,
            },
        ),
        None => (None, None),
    };
    TaskRead {
        gid: task.gid.clone(),
        assignee_gid,
        assignee_email,
        completed: task.completed,
        parent_gid: task.placement.parent.as_ref().map(|p| p.gid.clone()),
        projects: projects.to_vec(),
    }
}

fn done(outcome: Outcome, email: Option<Email>) -> Attempt {
    Attempt::Done {
        outcome,
        email,
        note: None,
    }
}

/// How the attempt ends when the ledger already settles `email`: another job holds it, or this
/// job's invitation went out. (A `Sending` reservation of this job's own settles nothing.)
fn settled_by(reservation: Reservation, email: Email, seen: &mut Seen) -> Attempt {
    match reservation {
        Reservation::Theirs { job_id, state } => {
            seen.invited_by = Some(job_id);
            Attempt::Done {
                outcome: Outcome::AlreadyInvited,
                note: Some(already_invited_note(job_id, state)),
                email: Some(email),
            }
        }
        Reservation::Mine(_) => Attempt::Invited { email },
    }
}

fn already_invited_note(job_id: i64, state: InvitationState) -> String {
    match state {
        InvitationState::Sent => format!("invited by job {job_id}"),
        InvitationState::Sending => format!("being invited by job {job_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(domains: &[&str]) -> InviteRules {
        InviteRules {
            allowed_domains: domains.iter().map(|d| d.to_string()).collect(),
            invite_type: InviteType::User,
        }
    }

    fn email(text: &str) -> Email {
        text.parse().unwrap()
    }

    #[test]
    fn empty_domain_list_allows_everyone() {
        assert!(rules(&[]).allows(&email("a@anything.org")));
    }

    #[test]
    fn only_listed_domains_are_allowed_exactly() {
        let r = rules(&["example.com"]);
        assert!(r.allows(&email("jane@example.com")));
        assert!(r.allows(&email("Jane@EXAMPLE.com")));
        assert!(!r.allows(&email("jane@evil-example.com")));
        assert!(!r.allows(&email("jane@sub.example.com")));
        assert!(!r.allows(&email("jane@example.com.evil.org")));
    }
}
