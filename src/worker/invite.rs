//! One job, start to finish: read the task's current assignee from Asana, check that the task is
//! in its webhook's project, apply the invite rules, and invite the email to DocSpace at most once
//! (and only while the job's lease is held), recording how it ended.

use std::time::Duration;

use crate::domain::{Email, Gid};
use crate::settings::{InviteType, Settings};
use crate::store::{
    ClaimedJob, InvitationState, LeaseOwner, Outcome, Reservation, Store, StoreError, duration_ms,
    now_ms,
};
use crate::telemetry::{mask_email, mask_emails_in, metrics};
use crate::upstream::asana::{AssigneeEmail, TaskPlacement};
use crate::upstream::{AsanaClient, DocSpaceClient, UpstreamError, Upstreams};

use super::project_scope::{MAX_PARENT_LEVELS, Placement, placement};
use super::retry::{Decision, RetryPolicy};

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
    /// The job's lease ran out before DocSpace was asked to invite: whoever holds it now goes on.
    LeaseLost,
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

#[derive(Debug, Clone)]
pub struct Inviter {
    store: Store,
    asana: AsanaClient,
    docspace: DocSpaceClient,
    rules: InviteRules,
    retry: RetryPolicy,
}

impl Inviter {
    pub fn new(
        store: Store,
        asana: AsanaClient,
        docspace: DocSpaceClient,
        rules: InviteRules,
        retry: RetryPolicy,
    ) -> Self {
        Inviter {
            store,
            asana,
            docspace,
            rules,
            retry,
        }
    }

    /// The rules and retry policy the settings describe, calling upstream through the process's
    /// clients (whose Asana pacer everyone shares).
    pub fn from_settings(settings: &Settings, store: Store, upstreams: &Upstreams) -> Inviter {
        Inviter::new(
            store,
            upstreams.asana.clone(),
            upstreams.docspace.clone(),
            InviteRules::from_settings(settings),
            RetryPolicy::from_settings(settings),
        )
    }

    /// Runs one attempt of `job`, which `owner` has leased, and records the result.
    pub async fn run(&self, job: &ClaimedJob, owner: &LeaseOwner) -> Result<JobEnd, StoreError> {
        let attempt = self.attempt(job, owner).await?;
        self.record(job, owner, attempt).await
    }

    async fn attempt(&self, job: &ClaimedJob, owner: &LeaseOwner) -> Result<Attempt, StoreError> {
        let task = match self.asana.get_task(job.task_gid.as_str()).await {
            Ok(task) => task,
            Err(error) => return Ok(Attempt::Upstream { error, email: None }),
        };
        if let Some(project) = &job.project_gid {
            match self.is_in_project(project, &task.placement).await {
                Ok(true) => {}
                Ok(false) => return Ok(done(Outcome::NotInProject, None)),
                Err(error) => return Ok(Attempt::Upstream { error, email: None }),
            }
        }
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
            Some(settled) => return Ok(settled_by(settled, email)),
            None => false,
        };

        match self.docspace.user_exists(email.as_str()).await {
            Err(error) => {
                return Ok(Attempt::Upstream {
                    error,
                    email: Some(email),
                });
            }
            Ok(true) if resuming => return Ok(Attempt::Invited { email }),
            Ok(true) => return Ok(done(Outcome::AlreadyMember, Some(email))),
            Ok(false) => {}
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
            Some(settled) => return Ok(settled_by(settled, email)),
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

    /// Whether the task is in `project`, or is a subtask whose parent chain reaches a task in it
    /// within [`MAX_PARENT_LEVELS`].
    async fn is_in_project(
        &self,
        project: &Gid,
        task: &TaskPlacement,
    ) -> Result<bool, UpstreamError> {
        let mut next = placement(project, task);
        for _ in 0..MAX_PARENT_LEVELS {
            let Placement::AskParent(parent) = next else {
                break;
            };
            next = placement(
                project,
                &self.asana.get_task_placement(parent.as_str()).await?,
            );
        }
        Ok(next == Placement::InProject)
    }

    async fn record(
        &self,
        job: &ClaimedJob,
        owner: &LeaseOwner,
        attempt: Attempt,
    ) -> Result<JobEnd, StoreError> {
        let (recorded, end) = match attempt {
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
                let recorded = self
                    .store
                    .finish_job(job.id, owner, outcome, email, note)
                    .await?;
                (recorded, JobEnd::Done(outcome))
            }
            Attempt::Invited { email } => {
                tracing::info!(outcome = "invited", email = %mask_email(email.as_str()), "job done");
                let recorded = self.store.confirm_invitation(job.id, owner, email).await?;
                (recorded, JobEnd::Done(Outcome::Invited))
            }
            Attempt::Upstream { error, email } => match self.retry.decide(job.attempts, &error) {
                Decision::RetryIn(delay) => {
                    tracing::warn!(
                        error = %mask_emails_in(&error.to_string()),
                        attempt = job.attempts,
                        retry_in_ms = duration_ms(delay),
                        "job attempt failed, will retry"
                    );
                    let run_at = now_ms().saturating_add(duration_ms(delay));
                    let recorded = self
                        .store
                        .retry_job_later(job.id, owner, run_at, error.to_string(), email)
                        .await?;
                    (recorded, JobEnd::RetryIn(delay))
                }
                Decision::Fail(reason) => {
                    tracing::error!(error = %mask_emails_in(&reason), attempt = job.attempts, "job failed");
                    let recorded = self
                        .store
                        .fail_job(job.id, owner, reason.clone(), email)
                        .await?;
                    (recorded, JobEnd::Failed(reason))
                }
            },
            Attempt::LeaseLost => {
                tracing::warn!(
                    "job lease was lost before DocSpace was asked to invite; its new holder finishes it"
                );
                return Ok(JobEnd::LeaseLost);
            }
        };
        if recorded {
            match &end {
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
            Ok(end)
        } else {
            tracing::warn!(
                "job lease was lost before its result was recorded; its new holder finishes it"
            );
            Ok(JobEnd::LeaseLost)
        }
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
fn settled_by(reservation: Reservation, email: Email) -> Attempt {
    match reservation {
        Reservation::Theirs { job_id, state } => Attempt::Done {
            outcome: Outcome::AlreadyInvited,
            note: Some(already_invited_note(job_id, state)),
            email: Some(email),
        },
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
