//! One revoke job (issue 13, `docs/design/revocation.md` §5): once a person has not needed a
//! project's room for the grace period, read the room's members and remove the access by id, only
//! if the grants ledger says the bridge granted it and the room shows it unchanged.
//!
//! Exactly once across crashes: the removal is reserved in the store (revocation `removing`, the
//! grant's `revoking_job_id`) before DocSpace is asked, and every attempt decides again from a
//! fresh members read. An access gone after the reservation was removed by our own earlier call
//! (settled `revoked` without a second call); a new grant of the pair waits until the revocation
//! is settled, so no second call can ever remove a re-granted access.

use crate::access::removal::{GrantFacts, Removal, decide_removal};
use crate::domain::{DocSpaceUserId, RoomId};
use crate::settings::{AccessSettings, Settings};
use crate::store::{
    ClaimedJob, Confirmations, GrantState, LeaseOwner, Outcome, RemovalReservation, RevocationEnd,
    RevocationState, RevocationWork, Settlement, Store, StoreError, duration_ms, now_ms,
};
use crate::telemetry::{mask_email, mask_emails_in, metrics};
use crate::upstream::{DocSpaceClient, UpstreamError, Upstreams};

use super::JobEnd;
use super::retry::{Decision, RetryPolicy};
use super::rooms::gone_reason;

/// Why a removal DocSpace answered with success did not happen: it drops changes for users the
/// key's account cannot see, and skips the room's owner, silently (docspace-api.md).
pub const KEPT_BY_DOCSPACE: &str = "DocSpace answered the removal but the room still lists the access (a user the key's account cannot see, or the room's owner); remove it by hand";

/// What an attempt found, before it is recorded.
#[derive(Debug)]
enum Attempt {
    /// Finished: the job's outcome and, when the revocation ends with it, how.
    Done {
        outcome: Outcome,
        end: Option<RevocationEnd>,
    },
    /// Not due yet (the grace period was lengthened since the job was queued).
    NotDue {
        due: i64,
    },
    Upstream(UpstreamError),
    /// The removal cannot succeed as things stand.
    Failed(String),
    /// A grant job is working on the pair: try again later.
    Wait(String),
    /// The lease ran out before DocSpace was asked.
    LeaseLost,
}

/// Runs revoke jobs.
#[derive(Debug, Clone)]
pub struct Revoker {
    store: Store,
    docspace: DocSpaceClient,
    retry: RetryPolicy,
    access: AccessSettings,
}

impl Revoker {
    pub fn new(
        store: Store,
        docspace: DocSpaceClient,
        retry: RetryPolicy,
        access: AccessSettings,
    ) -> Revoker {
        Revoker {
            store,
            docspace,
            retry,
            access,
        }
    }

    pub fn from_settings(settings: &Settings, store: Store, upstreams: &Upstreams) -> Revoker {
        Revoker::new(
            store,
            upstreams.docspace.clone(),
            RetryPolicy::from_settings(settings),
            settings.access,
        )
    }

    /// Runs one attempt of revoke job `job`, which `owner` has leased, and records the result.
    pub async fn run(&self, job: &ClaimedJob, owner: &LeaseOwner) -> Result<JobEnd, StoreError> {
        let Some(work) = self.store.revocation_for_job(job.id).await? else {
            return self
                .record(
                    job,
                    owner,
                    None,
                    Attempt::done(Outcome::NothingToRevoke, None),
                )
                .await;
        };
        let attempt = self.attempt(job, owner, &work).await?;
        self.record(job, owner, Some(&work), attempt).await
    }

    async fn attempt(
        &self,
        job: &ClaimedJob,
        owner: &LeaseOwner,
        work: &RevocationWork,
    ) -> Result<Attempt, StoreError> {
        // 1. Still open, and revocation still on.
        if !matches!(
            work.state,
            RevocationState::Waiting | RevocationState::Removing | RevocationState::Failed
        ) {
            return Ok(Attempt::done(Outcome::NothingToRevoke, None));
        }
        let Some(grace) = self.access.lifecycle() else {
            return Ok(Attempt::done(
                Outcome::RevokeOff,
                Some(RevocationEnd::Cancelled(
                    "access.revoke was turned off before it was due".into(),
                )),
            ));
        };
        // 2. Due, and still not needed.
        let due = work
            .need_ended_at
            .saturating_add(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
        if now_ms() < due && work.decided_at.is_none() {
            return Ok(Attempt::NotDue { due });
        }
        let needed = self
            .store
            .needs_room(&work.email, &work.project_gid)
            .await?;
        if needed && work.decided_at.is_none() {
            return Ok(needed_again());
        }
        // 3. The grant.
        if work.grant_ended {
            return Ok(Attempt::done(
                Outcome::NothingToRevoke,
                Some(RevocationEnd::Cancelled(
                    "the grant had ended already".into(),
                )),
            ));
        }
        if !work.room_active {
            return Ok(Attempt::done(
                Outcome::NothingToRevoke,
                Some(RevocationEnd::Cancelled(format!(
                    "room {} is no longer the active room of project {}",
                    work.room_id, work.project_gid
                ))),
            ));
        }
        match work.grant_state {
            GrantState::HadAccess => {
                return Ok(Attempt::done(
                    Outcome::Kept,
                    Some(RevocationEnd::KeptNotGranted),
                ));
            }
            GrantState::Sending => {
                return Ok(Attempt::Wait(format!(
                    "a grant job is sharing room {} with the person; deciding once it is settled",
                    work.room_id
                )));
            }
            GrantState::Granted => {}
        }
        let room = RoomId::try_from(work.room_id).map_err(|_| {
            StoreError::Corrupt(format!(
                "revocation {} names room {}",
                work.id, work.room_id
            ))
        })?;
        let user: DocSpaceUserId = work.docspace_user_id.parse().map_err(|_| {
            StoreError::Corrupt(format!(
                "the grant of revocation {} has no DocSpace user id",
                work.id
            ))
        })?;
        let grant = GrantFacts {
            email: work.email.clone(),
            state: work.grant_state,
            access: work.grant_access,
            docspace_user_id: user.clone(),
        };

        // 4. The room's members, all pages.
        let members = match self
            .docspace
            .room_members_matching(room, work.email.as_str())
            .await
        {
            Ok(members) => members,
            Err(error) => return self.members_refused(room, work, error).await,
        };
        // 5. The decision.
        let decision = decide_removal(&grant, work.decided_at.is_some(), &members);
        if needed {
            // The need came back after an earlier attempt reserved the removal: whether that
            // call landed decides whether the grant ended (the new grant job waits for this).
            return Ok(match decision {
                Removal::AlreadyRemoved => revoked(),
                _ => needed_again(),
            });
        }
        match decision {
            Removal::Remove => {}
            Removal::AlreadyRemoved => return Ok(revoked()),
            Removal::Left => return Ok(Attempt::done(Outcome::Kept, Some(RevocationEnd::Left))),
            Removal::KeepNotGranted => {
                return Ok(Attempt::done(
                    Outcome::Kept,
                    Some(RevocationEnd::KeptNotGranted),
                ));
            }
            Removal::KeepChangedByHand(why) => {
                return Ok(Attempt::done(
                    Outcome::Kept,
                    Some(RevocationEnd::KeptChangedByHand(why)),
                ));
            }
        }

        // 6. The reservation, under the lease.
        match self
            .store
            .reserve_removal(job.id, owner, work.id, work.grant_access)
            .await?
        {
            None => return Ok(Attempt::LeaseLost),
            Some(RemovalReservation::Mine) => {}
            Some(RemovalReservation::NeededAgain) => return Ok(needed_again()),
            Some(RemovalReservation::Gone) => {
                return Ok(Attempt::done(
                    Outcome::NothingToRevoke,
                    Some(RevocationEnd::Cancelled(
                        "the grant ended or changed before the removal".into(),
                    )),
                ));
            }
        }

        // 7. The call, by id.
        if let Err(error) = self.docspace.unshare_room(room, &user).await {
            return Ok(Attempt::Upstream(error));
        }
        // 8. Verify: DocSpace answers a removal it skipped with success.
        let after = match self
            .docspace
            .room_members_matching(room, work.email.as_str())
            .await
        {
            Ok(members) => members,
            Err(error) => return Ok(Attempt::Upstream(error)),
        };
        let still_there = after.iter().any(|m| {
            m.shared_to_user
                .as_ref()
                .is_some_and(|u| u.id.as_ref() == Some(&user))
        });
        if still_there {
            return Ok(Attempt::Failed(KEPT_BY_DOCSPACE.into()));
        }
        // 9. Settled with the job.
        Ok(revoked())
    }

    /// A members read DocSpace refused: when the room is gone ([`gone_reason`]) the mapping says
    /// so, as when granting, and the grant ends with the room; anything else stands.
    async fn members_refused(
        &self,
        room: RoomId,
        work: &RevocationWork,
        error: UpstreamError,
    ) -> Result<Attempt, StoreError> {
        let reason = match gone_reason(&self.docspace, room, error).await {
            Ok(reason) => reason,
            Err(error) => return Ok(Attempt::Upstream(error)),
        };
        self.store
            .mark_room_gone(&work.project_gid, work.room_id, reason)
            .await?;
        tracing::warn!(room = %room, project = %work.project_gid, reason, "the room of a revocation is gone");
        Ok(Attempt::done(
            Outcome::RoomGone,
            Some(RevocationEnd::RoomGone),
        ))
    }

    async fn record(
        &self,
        job: &ClaimedJob,
        owner: &LeaseOwner,
        work: Option<&RevocationWork>,
        attempt: Attempt,
    ) -> Result<JobEnd, StoreError> {
        let email = work.map(|w| mask_email(w.email.as_str()));
        let (settlement, end, revocation) = match attempt {
            Attempt::Done { outcome, end } => {
                tracing::info!(
                    outcome = outcome.as_str(),
                    email,
                    room = work.map(|w| w.room_id),
                    project = work.map(|w| w.project_gid.to_string()),
                    "revoke job done"
                );
                let note = end.as_ref().and_then(end_note);
                (
                    Settlement::Done { outcome, note },
                    JobEnd::Done(outcome),
                    end,
                )
            }
            Attempt::NotDue { due } => {
                let delay = due.saturating_sub(now_ms()).max(0);
                tracing::info!(due_in_ms = delay, "revocation not due yet");
                (
                    Settlement::RetryAt {
                        run_at: due,
                        error: "the grace period was lengthened: not due yet".into(),
                    },
                    JobEnd::RetryIn(std::time::Duration::from_millis(
                        u64::try_from(delay).unwrap_or(0),
                    )),
                    None,
                )
            }
            Attempt::Upstream(error) => match self.retry.decide(job.attempts, &error) {
                Decision::RetryIn(delay) => {
                    tracing::warn!(
                        error = %mask_emails_in(&error.to_string()),
                        attempt = job.attempts,
                        retry_in_ms = duration_ms(delay),
                        "revoke job attempt failed, will retry"
                    );
                    (
                        Settlement::RetryAt {
                            run_at: now_ms().saturating_add(duration_ms(delay)),
                            error: error.to_string(),
                        },
                        JobEnd::RetryIn(delay),
                        None,
                    )
                }
                Decision::Fail(reason) => failed(with_rights(&error, reason), job),
            },
            Attempt::Failed(reason) => failed(reason, job),
            Attempt::Wait(note) => match self.retry.decide_wait(job.attempts, &note) {
                Decision::RetryIn(delay) => {
                    tracing::info!(note = %note, retry_in_ms = duration_ms(delay), "revoke job waits");
                    (
                        Settlement::RetryAt {
                            run_at: now_ms().saturating_add(duration_ms(delay)),
                            error: note,
                        },
                        JobEnd::RetryIn(delay),
                        None,
                    )
                }
                Decision::Fail(reason) => failed(reason, job),
            },
            Attempt::LeaseLost => {
                tracing::warn!(
                    "revoke job lease was lost before DocSpace was asked; its new holder finishes it"
                );
                return Ok(JobEnd::LeaseLost);
            }
        };
        let result = revocation.as_ref().and_then(metric_result);
        let confirmations = Confirmations {
            revocation: work.zip(revocation).map(|(w, end)| (w.id, end)),
            ..Confirmations::default()
        };
        let recorded = self
            .store
            .settle_job(
                job.id,
                owner,
                work.map(|w| w.email.clone()),
                settlement,
                confirmations,
            )
            .await?;
        if !recorded {
            tracing::warn!(
                "revoke job lease was lost before its result was recorded; its new holder finishes it"
            );
            return Ok(JobEnd::LeaseLost);
        }
        end.record_metrics();
        if let Some(result) = result {
            metrics::room_revocation(result);
        }
        Ok(end)
    }
}

impl Attempt {
    fn done(outcome: Outcome, end: Option<RevocationEnd>) -> Attempt {
        Attempt::Done { outcome, end }
    }
}

fn revoked() -> Attempt {
    Attempt::done(Outcome::Revoked, Some(RevocationEnd::Revoked))
}

fn needed_again() -> Attempt {
    Attempt::done(Outcome::NeededAgain, Some(RevocationEnd::NeededAgain))
}

/// The job fails for good, and its revocation with it (the grant stays live: the access may
/// still be there).
fn failed(reason: String, job: &ClaimedJob) -> (Settlement, JobEnd, Option<RevocationEnd>) {
    tracing::error!(error = %mask_emails_in(&reason), attempt = job.attempts, "revoke job failed");
    (
        Settlement::Failed {
            error: reason.clone(),
        },
        JobEnd::Failed(reason.clone()),
        Some(RevocationEnd::Failed(reason)),
    )
}

/// A refusal of the key names the rights a removal needs (the same as granting).
fn with_rights(error: &UpstreamError, reason: String) -> String {
    if error.status() == Some(403) {
        format!(
            "{reason}; removing room access needs what granting needs: the key's scope rooms:write, and its user must manage the room"
        )
    } else {
        reason
    }
}

/// The job's note for how the revocation ended, for `jobs list`.
fn end_note(end: &RevocationEnd) -> Option<String> {
    match end {
        RevocationEnd::Revoked => None,
        RevocationEnd::Left => Some("no longer in the room: nothing to remove".into()),
        RevocationEnd::KeptChangedByHand(why) => Some(format!("kept: {why}")),
        RevocationEnd::KeptNotGranted => Some("kept: not granted by the bridge".into()),
        RevocationEnd::RoomGone => Some("the room is gone".into()),
        RevocationEnd::NeededAgain => Some("needed again: an open task in the project".into()),
        RevocationEnd::Cancelled(why) | RevocationEnd::Failed(why) => Some(why.clone()),
    }
}

/// The `bridge_room_revocations_total` result of a decision; a need back or a cancellation
/// decides nothing.
fn metric_result(end: &RevocationEnd) -> Option<&'static str> {
    match end {
        RevocationEnd::Revoked => Some("revoked"),
        RevocationEnd::Left | RevocationEnd::KeptChangedByHand(_) => Some("kept_changed_by_hand"),
        RevocationEnd::KeptNotGranted => Some("kept_not_granted"),
        RevocationEnd::RoomGone => Some("room_gone"),
        RevocationEnd::Failed(_) => Some("failed"),
        RevocationEnd::NeededAgain | RevocationEnd::Cancelled(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_count_under_the_issue_labels() {
        assert_eq!(metric_result(&RevocationEnd::Revoked), Some("revoked"));
        assert_eq!(
            metric_result(&RevocationEnd::Left),
            Some("kept_changed_by_hand")
        );
        assert_eq!(
            metric_result(&RevocationEnd::KeptChangedByHand("room owner".into())),
            Some("kept_changed_by_hand")
        );
        assert_eq!(
            metric_result(&RevocationEnd::KeptNotGranted),
            Some("kept_not_granted")
        );
        assert_eq!(
            metric_result(&RevocationEnd::Failed("x".into())),
            Some("failed")
        );
        assert_eq!(metric_result(&RevocationEnd::RoomGone), Some("room_gone"));
        assert_eq!(metric_result(&RevocationEnd::NeededAgain), None);
        assert_eq!(metric_result(&RevocationEnd::Cancelled("off".into())), None);
    }

    #[test]
    fn a_refused_removal_names_the_rights_it_needs() {
        let refused = UpstreamError::Status {
            service: crate::upstream::Service::DocSpace,
            status: 403,
            message: "Access denied".into(),
        };
        let reason = with_rights(&refused, refused.to_string());
        assert_eq!(
            reason,
            "DocSpace answered 403: Access denied; removing room access needs what granting needs: the key's scope rooms:write, and its user must manage the room"
        );
        let busy = UpstreamError::Status {
            service: crate::upstream::Service::DocSpace,
            status: 400,
            message: "bad".into(),
        };
        assert_eq!(with_rights(&busy, "x".into()), "x");
    }
}
