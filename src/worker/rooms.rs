//! Granting a job's assignee the rooms of the known projects the task counts toward: at most one
//! share per (person, room), through the grants ledger, and never a call that could change the
//! access of someone who is in the room already.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use super::room_provision::{Provision, RoomEvent, RoomProvisioner};
use crate::domain::{DocSpaceUserId, Email, Gid, RoomId};
use crate::rooms::RoomAccess;
use crate::store::{
    Claimant, ClaimedJob, GrantRecord, GrantRequest, GrantReservation, GrantState, KnownProject,
    LeaseOwner, Store, StoreError,
};
use crate::telemetry::mask_email;
use crate::upstream::docspace::{DocSpaceUser, Member, RoomLookup};
use crate::upstream::{DocSpaceClient, UpstreamError};

/// What a job did in one room, as `room_results` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomResult {
    pub project: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<&'static str>,
    pub result: &'static str,
    /// `created`, `adopted` or `replaced` when this job gave the project its room.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_event: Option<&'static str>,
}

/// What the rooms part of an attempt learnt, for the settlement.
#[derive(Debug, Default)]
pub struct RoomWork {
    pub results: Vec<RoomResult>,
    /// Rooms DocSpace shared at this job's request.
    pub grants: Vec<(Email, i64)>,
    /// Rooms the person was in already.
    pub had_access: Vec<GrantRequest>,
    /// The rooms the attempt stopped before settling, as `failed` results: they are recorded
    /// (and counted) only if the job fails for good.
    pub unsettled: Vec<RoomResult>,
    /// `bridge_room_grants_total` results this attempt decided (not those an earlier attempt
    /// of the job recorded), counted once the settlement is.
    pub grant_metrics: Vec<&'static str>,
}

impl RoomWork {
    /// Whether this job granted a room (now or in an earlier attempt).
    pub fn granted_any(&self) -> bool {
        self.results.iter().any(|r| r.result == "granted")
    }

    /// The job fails for good: the rooms it left unsettled failed.
    pub fn fail_unsettled(&mut self) {
        for failed in self.unsettled.drain(..) {
            self.grant_metrics.push("failed");
            self.results.push(failed);
        }
    }

    pub fn results_json(&self) -> Option<String> {
        (!self.results.is_empty())
            .then(|| serde_json::to_string(&self.results).expect("room results serialize"))
    }
}

/// Why the rooms part stopped before every room was settled.
#[derive(Debug)]
pub enum RoomsStop {
    Upstream(UpstreamError),
    /// Fails the job at once with this reason.
    Fail(String),
    /// Try again later, with this note.
    Wait(String),
    LeaseLost,
}

/// A project the task counts toward that has an active room.
#[derive(Debug, Clone)]
struct Target {
    project: Gid,
    project_name: Option<String>,
    room: RoomId,
    access: RoomAccess,
    event: Option<RoomEvent>,
}

impl Target {
    fn new(
        project: &Gid,
        project_name: Option<String>,
        room_id: i64,
        access: i64,
        event: Option<RoomEvent>,
    ) -> Result<Target, StoreError> {
        let room = RoomId::try_from(room_id).map_err(|_| {
            StoreError::Corrupt(format!("project {project} maps to room {room_id}"))
        })?;
        let access = RoomAccess::from_repr(access).ok_or_else(|| {
            StoreError::Corrupt(format!("room {room_id} has unknown access {access}"))
        })?;
        Ok(Target {
            project: project.clone(),
            project_name,
            room,
            access,
            event,
        })
    }

    fn failed(&self) -> RoomResult {
        result(&self.project, Some(self), None, "failed")
    }
}

/// How one room's grant went.
enum Step {
    Settled,
    Stop(RoomsStop),
    /// DocSpace no longer has the room, or archived it (the reason); the mapping says so now.
    Gone(&'static str),
}

/// What the store knows about a job's rooms before any DocSpace call: each of the task's projects
/// that is known, with its room if any, and the person's live grants. Read once per attempt; the
/// grant reservation, not this view, decides races with other jobs.
#[derive(Debug, Clone, Default)]
pub struct LedgerView {
    known: Vec<(Gid, KnownProject)>,
    grants: Vec<GrantRecord>,
}

impl LedgerView {
    pub async fn read(
        store: &Store,
        projects: &[Gid],
        email: &Email,
    ) -> Result<LedgerView, StoreError> {
        let mut known = Vec::new();
        for project in projects {
            if let Some(view) = store.project_room_view(project).await? {
                known.push((project.clone(), view));
            }
        }
        let grants = if known.is_empty() {
            Vec::new()
        } else {
            store.live_grants_of(email).await?
        };
        Ok(LedgerView { known, grants })
    }

    /// Whether the ledger shows the person settled (granted or found there) in the active room of
    /// every known project, at least one: then the person is known to DocSpace and the job needs
    /// no DocSpace call at all. A grant a revoke job is taking back settles nothing: the job must
    /// wait for it, then grant again.
    pub fn settles_every_room(&self) -> bool {
        !self.known.is_empty()
            && self
                .known
                .iter()
                .all(|(_, known)| match (known.room_id, known.state.as_deref()) {
                    (Some(room), Some("active")) => self.grants.iter().any(|g| {
                        g.room_id == room
                            && g.state != GrantState::Sending
                            && g.revoking_job_id.is_none()
                    }),
                    // No room, or a gone one: the job has something to report.
                    _ => false,
                })
    }
}

/// The rooms part of one job attempt.
pub struct Granting<'a> {
    pub store: &'a Store,
    pub docspace: &'a DocSpaceClient,
    pub job: &'a ClaimedJob,
    pub owner: &'a LeaseOwner,
    pub notify: bool,
    /// Set in `auto` mode: known projects without a room get one.
    pub provisioner: Option<&'a RoomProvisioner>,
}

/// Where the person stands with DocSpace when the rooms part starts.
#[derive(Debug, Clone)]
pub enum Person {
    /// Read in this attempt.
    Found(DocSpaceUser),
    /// This attempt sent (or confirmed) the invitation: DocSpace must know them now.
    JustInvited,
    /// Another job invited them (`sent`) or is inviting them (`sending`).
    InvitedBy { job_id: i64 },
    /// Not read yet; the invitation is settled.
    Unread,
}

impl Granting<'_> {
    /// Grants `email` the rooms of the known projects in `view` (read for the projects the task
    /// counts toward; `names` are the project names the task read showed, newer than the store's,
    /// for titling created rooms).
    /// Store errors end the attempt; everything else is in the answer.
    pub async fn grant(
        &self,
        view: LedgerView,
        names: &[(Gid, String)],
        email: &Email,
        person: Person,
    ) -> Result<(RoomWork, Option<RoomsStop>), StoreError> {
        let mut work = RoomWork::default();
        let mut targets = Vec::new();
        for (project, known) in view.known {
            let project = &project;
            let gone = known.state.as_deref() == Some("gone");
            let name = names
                .iter()
                .find(|(gid, _)| gid == project)
                .map(|(_, name)| name.clone())
                .or(known.project_name);
            let target = match (known.room_id, known.access, self.provisioner) {
                (Some(room_id), Some(access), _) if !gone => {
                    Ok(Target::new(project, name, room_id, access, None)?)
                }
                (Some(room_id), Some(_), Some(provisioner)) => {
                    let reason = known.gone_reason.as_deref().unwrap_or("deleted");
                    self.replace(provisioner, project, name, room_id, reason)
                        .await?
                }
                (Some(room_id), Some(_), None) => {
                    let reason = known.gone_reason.as_deref().unwrap_or("deleted");
                    Err((
                        Some(room_id),
                        RoomsStop::Fail(linked_gone_message(
                            project,
                            name.as_deref(),
                            room_id,
                            reason,
                        )),
                    ))
                }
                (_, _, Some(provisioner)) => {
                    self.provision(provisioner, project, name, None).await?
                }
                (_, _, None) => {
                    work.results.push(result(project, None, None, "no_room"));
                    continue;
                }
            };
            match target {
                Ok(target) => targets.push(target),
                Err((room, stop)) => {
                    work.unsettled.push(RoomResult {
                        project: project.to_string(),
                        room,
                        access: None,
                        result: "failed",
                        room_event: None,
                    });
                    return Ok((work, Some(stop)));
                }
            }
        }
        targets.sort_by_key(|t| t.room.get());
        targets.dedup_by_key(|t| t.room.get());
        if targets.is_empty() {
            return Ok((work, None));
        }

        // The ledger answers first: a settled (person, room) costs no DocSpace call.
        let ledger: HashMap<i64, GrantRecord> =
            view.grants.into_iter().map(|g| (g.room_id, g)).collect();
        let mut open = VecDeque::new();
        for target in targets {
            match ledger.get(&target.room.get()) {
                Some(row) if row.state != GrantState::Sending && row.revoking_job_id.is_none() => {
                    let ours = row.job_id == self.job.id;
                    let what = if ours && row.state == GrantState::Granted {
                        "granted"
                    } else {
                        "already_granted"
                    };
                    // This job's own rows were counted by the attempt that recorded them.
                    if !ours {
                        work.grant_metrics.push("already_in_room");
                    }
                    work.results
                        .push(result(&target.project, Some(&target), None, what));
                }
                _ => open.push_back(target),
            }
        }
        if open.is_empty() {
            return Ok((work, None));
        }

        let user = match person {
            Person::Found(user) => user,
            Person::JustInvited | Person::Unread | Person::InvitedBy { .. } => {
                let stop = match self.docspace.find_user(email.as_str()).await {
                    Ok(Some(user)) => Ok(user),
                    Ok(None) => Err(match person {
                        Person::InvitedBy { job_id } => {
                            RoomsStop::Wait(format!("being invited by job {job_id}; rooms follow"))
                        }
                        Person::JustInvited => RoomsStop::Fail(format!(
                            "DocSpace accepted the invitation but has no user {} \
                             (disabled, or skipped by a server before 3.7.1)",
                            mask_email(email.as_str())
                        )),
                        Person::Unread | Person::Found(_) => RoomsStop::Fail(format!(
                            "DocSpace has no user {} any more, though the grants ledger \
                             shows one",
                            mask_email(email.as_str())
                        )),
                    }),
                    Err(error) => Err(RoomsStop::Upstream(error)),
                };
                match stop {
                    Ok(user) => user,
                    Err(stop) => {
                        work.unsettled.extend(open.iter().map(Target::failed));
                        return Ok((work, Some(stop)));
                    }
                }
            }
        };
        if user.is_disabled() {
            for target in &open {
                work.results
                    .push(result(&target.project, Some(target), None, "user_disabled"));
            }
            return Ok((work, None));
        }

        while let Some(mut target) = open.pop_front() {
            // At most one replacement per room and attempt.
            let mut replaced = false;
            let stop = loop {
                let own_sending = ledger.get(&target.room.get()).is_some_and(|row| {
                    row.job_id == self.job.id
                        && row.state == GrantState::Sending
                        && row.access == target.access.as_int()
                });
                match self
                    .grant_one(&target, email, &user, own_sending, &mut work)
                    .await?
                {
                    Step::Settled => break None,
                    Step::Stop(stop) => break Some(stop),
                    Step::Gone(reason) => match self.provisioner {
                        Some(provisioner) if !replaced => {
                            replaced = true;
                            match self
                                .replace(
                                    provisioner,
                                    &target.project,
                                    target.project_name.clone(),
                                    target.room.get(),
                                    reason,
                                )
                                .await?
                            {
                                Ok(new) => target = new,
                                Err((_, stop)) => break Some(stop),
                            }
                        }
                        Some(_) => {
                            break Some(RoomsStop::Wait(format!(
                                "room {} of project {} is gone ({reason}); the next attempt \
                                 creates a new one",
                                target.room, target.project
                            )));
                        }
                        None => {
                            break Some(RoomsStop::Fail(linked_gone_message(
                                &target.project,
                                target.project_name.as_deref(),
                                target.room.get(),
                                reason,
                            )));
                        }
                    },
                }
            };
            if let Some(stop) = stop {
                work.unsettled.push(target.failed());
                work.unsettled.extend(open.iter().map(Target::failed));
                return Ok((work, Some(stop)));
            }
        }
        Ok((work, None))
    }

    /// The project's room `gone` is deleted or archived: a new one in its place, made or adopted
    /// under the project's creation claim.
    async fn replace(
        &self,
        provisioner: &RoomProvisioner,
        project: &Gid,
        name: Option<String>,
        gone: i64,
        reason: &str,
    ) -> Result<Result<Target, (Option<i64>, RoomsStop)>, StoreError> {
        tracing::warn!(room = gone, project = %project, reason, "room {gone} of project {project} is gone ({reason}); creating a new one");
        Ok(
            match self
                .provision(provisioner, project, name, Some(gone))
                .await?
            {
                Ok(target) => Ok(Target {
                    event: target.event.map(|_| RoomEvent::Replaced),
                    ..target
                }),
                Err((_, stop)) => Err((Some(gone), stop)),
            },
        )
    }

    /// The room `ensure_room` gives `project`, with how it got it, or why the job stops.
    async fn provision(
        &self,
        provisioner: &RoomProvisioner,
        project: &Gid,
        name: Option<String>,
        replacing: Option<i64>,
    ) -> Result<Result<Target, (Option<i64>, RoomsStop)>, StoreError> {
        let claimant = Claimant::Job {
            id: self.job.id,
            owner: self.owner.clone(),
        };
        let stop = match provisioner
            .ensure_room(project, name.as_deref(), replacing, &claimant)
            .await?
        {
            Provision::Room { room_id, event } => {
                let access = provisioner.rooms.access.as_int();
                return Ok(Ok(Target::new(project, name, room_id, access, event)?));
            }
            Provision::Wait(note) => RoomsStop::Wait(note),
            Provision::Fail(reason) => RoomsStop::Fail(reason),
            Provision::Upstream(error) => RoomsStop::Upstream(error),
            Provision::LeaseLost => RoomsStop::LeaseLost,
        };
        Ok(Err((None, stop)))
    }

    async fn grant_one(
        &self,
        target: &Target,
        email: &Email,
        user: &DocSpaceUser,
        own_sending: bool,
        work: &mut RoomWork,
    ) -> Result<Step, StoreError> {
        // A removal in flight must settle first: read now, the person may be in the room only
        // until the revoke job's call lands, and a grant recorded meanwhile would be lost.
        if let Some(job_id) = self
            .store
            .live_grants_of(email)
            .await?
            .iter()
            .find(|g| g.room_id == target.room.get())
            .and_then(|g| g.revoking_job_id)
        {
            return Ok(Step::Stop(revoking(target, job_id)));
        }
        let present = match self.find_member(target.room, email, &user.id).await {
            Ok(present) => present,
            Err(error) => return self.refused(target, error).await,
        };
        let request = GrantRequest {
            email: email.clone(),
            room_id: target.room.get(),
            project_gid: target.project.clone(),
            docspace_user_id: user.id.to_string(),
            access: target.access.as_int(),
            task_gid: self.job.task_gid.clone(),
        };
        if let Some(member) = present {
            if own_sending && member.access == target.access.as_int() {
                // An earlier attempt of this job shared the room and died before recording it.
                work.grants.push((email.clone(), target.room.get()));
                work.grant_metrics.push("granted");
                work.results
                    .push(result(&target.project, Some(target), None, "granted"));
            } else {
                work.had_access.push(GrantRequest {
                    access: member.access,
                    ..request
                });
                work.grant_metrics.push("already_in_room");
                work.results.push(result(
                    &target.project,
                    Some(target),
                    RoomAccess::from_repr(member.access).map(RoomAccess::as_str),
                    "already_in_room",
                ));
            }
            return Ok(Step::Settled);
        }

        match self
            .store
            .reserve_grant(self.job.id, self.owner, request)
            .await?
        {
            None => return Ok(Step::Stop(RoomsStop::LeaseLost)),
            Some(GrantReservation::Mine) => {}
            Some(GrantReservation::Theirs { .. }) => {
                work.results
                    .push(result(&target.project, Some(target), None, "being_granted"));
                return Ok(Step::Settled);
            }
            Some(GrantReservation::Revoking { job_id }) => {
                return Ok(Step::Stop(revoking(target, job_id)));
            }
            Some(GrantReservation::AlreadyGranted { .. }) => {
                work.grant_metrics.push("already_in_room");
                work.results.push(result(
                    &target.project,
                    Some(target),
                    None,
                    "already_granted",
                ));
                return Ok(Step::Settled);
            }
        }

        let members = match self
            .docspace
            .share_room(target.room, &user.id, target.access, self.notify)
            .await
        {
            Ok(members) => members,
            Err(error) => return self.refused(target, error).await,
        };
        let added = members.iter().any(|m| {
            m.shared_to_user
                .as_ref()
                .is_some_and(|u| u.id.as_ref() == Some(&user.id))
                && m.access == target.access.as_int()
        });
        if added {
            tracing::info!(room = %target.room, project = %target.project, email = %mask_email(email.as_str()), "room shared");
            work.grants.push((email.clone(), target.room.get()));
            work.grant_metrics.push("granted");
            work.results
                .push(result(&target.project, Some(target), None, "granted"));
            return Ok(Step::Settled);
        }
        match self.docspace.find_user(email.as_str()).await {
            Ok(Some(again)) if again.is_disabled() => {
                work.results
                    .push(result(&target.project, Some(target), None, "user_disabled"));
                Ok(Step::Settled)
            }
            Ok(_) => Ok(Step::Stop(RoomsStop::Fail(format!(
                "DocSpace did not add {} to room {} (invisible to the key's user?)",
                mask_email(email.as_str()),
                target.room
            )))),
            Err(error) => Ok(Step::Stop(RoomsStop::Upstream(error))),
        }
    }

    /// The person's entry among the room's members, matched exactly (the filter is fuzzy).
    async fn find_member(
        &self,
        room: RoomId,
        email: &Email,
        id: &DocSpaceUserId,
    ) -> Result<Option<Member>, UpstreamError> {
        Ok(self
            .docspace
            .room_members_matching(room, email.as_str())
            .await?
            .into_iter()
            .find(|m| m.is(Some(id), email.as_str())))
    }

    /// A members read or share DocSpace refused: a 403 or 404 may mean the room is gone or
    /// archived, which one room read tells (and the mapping then records); anything else stands
    /// as it is.
    async fn refused(&self, target: &Target, error: UpstreamError) -> Result<Step, StoreError> {
        let reason = match gone_reason(self.docspace, target.room, error).await {
            Ok(reason) => reason,
            Err(error) => return Ok(Step::Stop(RoomsStop::Upstream(error))),
        };
        self.store
            .mark_room_gone(&target.project, target.room.get(), reason)
            .await?;
        if self.provisioner.is_none() {
            tracing::warn!(room = %target.room, project = %target.project, reason, "a linked room is gone");
        }
        Ok(Step::Gone(reason))
    }
}

/// Whether a members read or share DocSpace refused with `error` was refused because the room is
/// gone: a 403 or 404 may mean it was deleted or archived, which one room read tells (`Ok` with
/// the reason). Otherwise the error that stands: `error` itself, or the room read's own failure.
pub(crate) async fn gone_reason(
    docspace: &DocSpaceClient,
    room: RoomId,
    error: UpstreamError,
) -> Result<&'static str, UpstreamError> {
    if !matches!(error.status(), Some(403 | 404)) {
        return Err(error);
    }
    match docspace.get_room(room).await? {
        RoomLookup::NotFound => Ok("deleted"),
        RoomLookup::Found(found) if found.is_archived() => Ok("archived"),
        RoomLookup::Found(_) => Err(error),
    }
}

/// The job waits for revoke job `job_id`, which is taking the person's access to the room back.
fn revoking(target: &Target, job_id: i64) -> RoomsStop {
    RoomsStop::Wait(format!(
        "access to room {} is being taken back by job {job_id}; granting it again once that is settled",
        target.room
    ))
}

fn result(
    project: &Gid,
    target: Option<&Target>,
    access: Option<&'static str>,
    what: &'static str,
) -> RoomResult {
    RoomResult {
        project: project.to_string(),
        room: target.map(|t| t.room.get()),
        access: access.or(target.map(|t| t.access.as_str())),
        result: what,
        room_event: target.and_then(|t| t.event).map(RoomEvent::as_str),
    }
}

/// Why a job cannot grant a linked room that DocSpace no longer has, and what to do.
pub fn linked_gone_message(project: &Gid, name: Option<&str>, room: i64, reason: &str) -> String {
    let named = crate::rooms::named(name);
    let what = if reason == "archived" {
        "is archived in DocSpace: restore it, or".to_string()
    } else {
        "was deleted in DocSpace (404):".to_string()
    };
    format!(
        "room {room} linked to project {project}{named} {what} link another with \
         `asana-docspace-bridge rooms link --project {project} --room <ROOM_ID>` or forget it \
         with `rooms unlink --project {project}`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gone_message_names_project_room_and_command() {
        let message = linked_gone_message(
            &"1200000000000100".parse().unwrap(),
            Some("Website"),
            45,
            "deleted",
        );
        assert_eq!(
            message,
            "room 45 linked to project 1200000000000100 (\"Website\") was deleted in DocSpace \
             (404): link another with `asana-docspace-bridge rooms link --project \
             1200000000000100 --room <ROOM_ID>` or forget it with `rooms unlink --project \
             1200000000000100`"
        );
    }

    #[test]
    fn a_job_that_fails_for_good_records_and_counts_its_unsettled_rooms_as_failed() {
        let failed = RoomResult {
            project: "1200".into(),
            room: Some(46),
            access: Some("Read"),
            result: "failed",
            room_event: None,
        };
        let mut work = RoomWork {
            unsettled: vec![failed.clone()],
            grant_metrics: vec!["granted"],
            ..RoomWork::default()
        };
        assert_eq!(
            work.results_json(),
            None,
            "nothing failed while it may retry"
        );
        work.fail_unsettled();
        assert_eq!(work.results, vec![failed]);
        assert_eq!(work.grant_metrics, vec!["granted", "failed"]);
        assert!(work.unsettled.is_empty());
    }

    #[test]
    fn room_results_serialize_as_jobs_list_reads_them() {
        let work = RoomWork {
            results: vec![RoomResult {
                project: "1200".into(),
                room: Some(45),
                access: Some("Editing"),
                result: "granted",
                room_event: Some("created"),
            }],
            ..RoomWork::default()
        };
        assert!(work.granted_any());
        assert_eq!(
            work.results_json().unwrap(),
            r#"[{"project":"1200","room":45,"access":"Editing","result":"granted","room_event":"created"}]"#
        );
    }
}
