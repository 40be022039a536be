//! A project a workspace's webhook reported (`project_added`): give it a webhook of its own, and in
//! `auto` mode its room. The job's `task_gid` holds the project's gid.
//!
//! 1. A confirmed webhook watches the project here already: `already_watched`, no Asana call.
//! 2. Asana no longer knows the project (404): `project_gone`.
//! 3. The project is recorded with its name and the workspace whose webhook reported it.
//! 4. A webhook is registered through the normal registration (window, nonce, handshake, the 201
//!    secret cross-check), abandoned if the job's lease is lost meanwhile.
//! 5. `auto` mode: the project's room is made or adopted; a failure there does not undo the
//!    webhook (the project's first assignment gives it its room), it is noted.
//! 6. `watched`, noting the webhook and the room.
//!
//! A retry after a crash mid-registration finds the confirmed webhook (1) or starts over: an
//! unconfirmed secret dies with its window, as for a killed `webhooks create`.

use std::time::Duration;

use crate::domain::{Gid, JobSource, WatchedResource};
use crate::rooms::RoomsMode;
use crate::settings::Settings;
use crate::store::{
    Claimant, ClaimedJob, JobStatus, LeaseOwner, Outcome, Store, StoreError, duration_ms, now_ms,
};
use crate::upstream::{AsanaClient, UpstreamError, Upstreams};
use crate::webhook::register::{CreateRefused, PublicUrlMissing, register_webhook};

use super::JobEnd;
use super::retry::{Decision, RetryPolicy};
use super::room_provision::{Provision, RoomProvisioner};

/// Runs `project_added` jobs.
#[derive(Debug, Clone)]
pub struct ProjectWatcher {
    store: Store,
    asana: AsanaClient,
    /// Where Asana reaches this service (`server.public_url`): the new webhook's target.
    public_url: String,
    retry: RetryPolicy,
    /// In `auto` mode: gives the new project its room.
    provisioner: Option<RoomProvisioner>,
    /// How often the job's lease is checked while Asana holds the create call.
    lease_check: Duration,
}

/// How one attempt ended, before it is recorded.
#[derive(Debug)]
enum Step {
    Done {
        outcome: Outcome,
        note: String,
    },
    /// Asana refused or failed: retried as the worker's policy says; `why` is what to record.
    Upstream {
        error: UpstreamError,
        why: String,
    },
    /// Something that may pass (the store, a closed window): tried again with backoff.
    Retry(String),
    /// Cannot succeed as things stand.
    Fail(String),
}

impl ProjectWatcher {
    /// The watcher the settings describe, calling Asana through the process's client.
    pub fn from_settings(settings: &Settings, store: Store, upstreams: &Upstreams) -> Self {
        let provisioner = (settings.rooms.mode == RoomsMode::Auto).then(|| {
            RoomProvisioner::new(
                store.clone(),
                upstreams.docspace.clone(),
                &settings.rooms,
                &settings.worker,
            )
        });
        ProjectWatcher {
            store,
            asana: upstreams.asana.clone(),
            public_url: settings.server.public_url.clone(),
            retry: RetryPolicy::from_settings(settings),
            provisioner,
            lease_check: Duration::from_millis(settings.worker.lease_ms / 3).max(LEASE_CHECK_MIN),
        }
    }

    /// Runs one attempt of `job`, which `owner` has leased, and records the result.
    pub async fn run(&self, job: &ClaimedJob, owner: &LeaseOwner) -> Result<JobEnd, StoreError> {
        let step = self.watch(job, owner).await?;
        self.record(job, owner, step).await
    }

    async fn watch(&self, job: &ClaimedJob, owner: &LeaseOwner) -> Result<Step, StoreError> {
        let project = &job.task_gid;
        let resource = WatchedResource::Project(project.clone());
        if let Some(name) = self.store.webhook_watching(&resource).await? {
            return Ok(done(Outcome::AlreadyWatched, format!("webhook {name}")));
        }
        let found = match self.asana.get_project(project).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                return Ok(done(
                    Outcome::ProjectGone,
                    format!("Asana does not know project {project} (404)"),
                ));
            }
            Err(error) => {
                let why = format!("reading project {project} at Asana: {error}");
                return Ok(Step::Upstream { error, why });
            }
        };
        let name = found.name.as_deref();
        let via = self.source_workspace(&job.source).await?;
        self.store
            .record_discovered_project(project, name, via.as_ref())
            .await?;
        let interrupted = lease_lost(&self.store, job.id, owner, self.lease_check);
        let registered = match register_webhook(
            &self.store,
            &self.asana,
            &self.public_url,
            &resource,
            None,
            interrupted,
        )
        .await
        {
            Ok(registered) => registered,
            Err(err) => return Ok(registration_failed(err)),
        };
        tracing::info!(project = %project, webhook = %registered.name, "new project watched");
        let room = self.room(job, owner, project, name).await?;
        let note = match room {
            Some(room) => format!("webhook {}; {room}", registered.name),
            None => format!("webhook {}", registered.name),
        };
        Ok(done(Outcome::Watched, note))
    }

    /// The workspace whose webhook queued the job, if it is still registered.
    async fn source_workspace(&self, source: &JobSource) -> Result<Option<Gid>, StoreError> {
        let JobSource::Webhook(name) = source else {
            return Ok(None);
        };
        Ok(self
            .store
            .find_webhook(name.as_str())
            .await?
            .and_then(|record| record.workspace_gid))
    }

    /// In `auto` mode, the project's room, as a note; the webhook stands whatever happens here.
    async fn room(
        &self,
        job: &ClaimedJob,
        owner: &LeaseOwner,
        project: &Gid,
        name: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let Some(provisioner) = &self.provisioner else {
            return Ok(None);
        };
        let claimant = Claimant::Job {
            id: job.id,
            owner: owner.clone(),
        };
        let later = "the project's first assignment gives it one";
        let note = match provisioner
            .ensure_room(project, name, None, &claimant)
            .await?
        {
            Provision::Room { room_id, event } => match event {
                Some(event) => format!("room {room_id} ({})", event.as_str()),
                None => format!("room {room_id} (had one)"),
            },
            Provision::Wait(note) => format!("no room yet ({note})"),
            Provision::Fail(reason) => format!("no room: {reason}"),
            Provision::Upstream(error) => format!("no room yet (DocSpace: {error}); {later}"),
            Provision::LeaseLost => format!("no room yet (the job's lease ran out); {later}"),
        };
        Ok(Some(note))
    }

    async fn record(
        &self,
        job: &ClaimedJob,
        owner: &LeaseOwner,
        step: Step,
    ) -> Result<JobEnd, StoreError> {
        let end = match step {
            Step::Done { outcome, note } => {
                tracing::info!(outcome = outcome.as_str(), note = %note, "job done");
                if !self
                    .store
                    .finish_job(job.id, owner, outcome, None, Some(note))
                    .await?
                {
                    return Ok(lease_lost_end());
                }
                JobEnd::Done(outcome)
            }
            Step::Upstream { error, why } => match self.retry.decide(job.attempts, &error) {
                Decision::RetryIn(delay) => self.retry_later(job, owner, delay, why).await?,
                Decision::Fail(_) if error.is_transient() => {
                    let reason = format!("gave up after {} attempts: {why}", job.attempts);
                    self.fail(job, owner, reason).await?
                }
                Decision::Fail(_) => self.fail(job, owner, why).await?,
            },
            Step::Retry(why) => match self.retry.decide_wait(job.attempts, &why) {
                Decision::RetryIn(delay) => self.retry_later(job, owner, delay, why).await?,
                Decision::Fail(reason) => self.fail(job, owner, reason).await?,
            },
            Step::Fail(reason) => self.fail(job, owner, reason).await?,
        };
        end.record_metrics();
        Ok(end)
    }

    async fn retry_later(
        &self,
        job: &ClaimedJob,
        owner: &LeaseOwner,
        delay: Duration,
        why: String,
    ) -> Result<JobEnd, StoreError> {
        tracing::warn!(error = %why, attempt = job.attempts, retry_in_ms = duration_ms(delay),
            "job attempt failed, will retry");
        let run_at = now_ms().saturating_add(duration_ms(delay));
        Ok(
            if self
                .store
                .retry_job_later(job.id, owner, run_at, why, None)
                .await?
            {
                JobEnd::RetryIn(delay)
            } else {
                lease_lost_end()
            },
        )
    }

    async fn fail(
        &self,
        job: &ClaimedJob,
        owner: &LeaseOwner,
        reason: String,
    ) -> Result<JobEnd, StoreError> {
        tracing::error!(error = %reason, attempt = job.attempts, "job failed");
        Ok(
            if self
                .store
                .fail_job(job.id, owner, reason.clone(), None)
                .await?
            {
                JobEnd::Failed(reason)
            } else {
                lease_lost_end()
            },
        )
    }
}

/// The lease is checked at least this far apart.
const LEASE_CHECK_MIN: Duration = Duration::from_millis(100);

fn done(outcome: Outcome, note: String) -> Step {
    Step::Done { outcome, note }
}

fn lease_lost_end() -> JobEnd {
    tracing::warn!("job lease was lost before its result was recorded; its new holder finishes it");
    JobEnd::LeaseLost
}

/// What a failed registration means for the job: Asana's answer follows the retry policy with
/// its explanation; a missing public URL fails at once; anything else is tried again.
fn registration_failed(err: anyhow::Error) -> Step {
    if let Some(refused) = err.downcast_ref::<CreateRefused>() {
        return Step::Upstream {
            error: refused.cause.clone(),
            why: refused.explained.clone(),
        };
    }
    if err.downcast_ref::<PublicUrlMissing>().is_some() {
        return Step::Fail(err.to_string());
    }
    Step::Retry(format!("registering the project's webhook: {err:#}"))
}

/// Completes once job `id` is no longer running under `owner`'s lease (another worker took it, or
/// it was settled elsewhere); a store that does not answer is asked again.
async fn lease_lost(store: &Store, id: i64, owner: &LeaseOwner, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        match store.job(id).await {
            Ok(Some(job))
                if job.status == JobStatus::Running
                    && job.lease_owner.as_deref() == Some(owner.as_str()) => {}
            Ok(_) => return,
            Err(err) => tracing::debug!(error = %err, "could not check the job's lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Service;

    fn refused(status: u16) -> anyhow::Error {
        CreateRefused {
            explained: "Asana refused: explained".into(),
            cause: UpstreamError::Status {
                service: Service::Asana,
                status,
                message: "raw".into(),
            },
        }
        .into()
    }

    #[test]
    fn asanas_refusal_keeps_its_cause_and_explanation() {
        match registration_failed(refused(403)) {
            Step::Upstream { error, why } => {
                assert_eq!(error.status(), Some(403));
                assert_eq!(why, "Asana refused: explained");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_public_url_fails_at_once_and_other_failures_are_retried() {
        assert!(matches!(
            registration_failed(PublicUrlMissing.into()),
            Step::Fail(reason) if reason.contains("BRIDGE__SERVER__PUBLIC_URL")
        ));
        assert!(matches!(
            registration_failed(anyhow::anyhow!("the window closed")),
            Step::Retry(why) if why.contains("the window closed")
        ));
    }
}
