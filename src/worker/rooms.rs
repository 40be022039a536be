//! Granting a job's assignee the rooms of the known projects the task counts toward: at most one
//! share per (person, room), through the grants ledger, and never a call that could change the
//! access of someone who is in the room already.

use std::collections::HashMap;

use serde::Serialize;

use super::room_provision::{Provision, RoomEvent, RoomProvisioner};
use crate::domain::{DocSpaceUserId, Email, Gid, RoomId};
use crate::rooms::RoomAccess;
use crate::store::{
    Claimant, ClaimedJob, GrantRecord, GrantRequest, GrantReservation, GrantState, LeaseOwner,
    Store, StoreError,
};
use crate::telemetry::mask_email;
use crate::upstream::docspace::{DocSpaceUser, Member, PAGE_SIZE, RoomLookup};
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
    /// `created` or `adopted` when this job gave the project its room.
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
}

impl RoomWork {
    /// Whether this job granted a room (now or in an earlier attempt).
    pub fn granted_any(&self) -> bool {
        self.results.iter().any(|r| r.result == "granted")
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

/// Whether the ledger shows `email` settled (granted or found there) in the active room of every
/// known project among `projects`, at least one: then the person is known to DocSpace and the job
/// needs no DocSpace call at all.
pub async fn settled_by_ledger(
    store: &Store,
    projects: &[Gid],
    email: &Email,
) -> Result<bool, StoreError> {
    let mut rooms = Vec::new();
    for project in projects {
        let Some(known) = store.project_room_view(project).await? else {
            continue;
        };
        match (known.room_id, known.state.as_deref()) {
            (Some(room), Some("active")) => rooms.push(room),
            // No room, or a gone one: the job has something to report.
            _ => return Ok(false),
        }
    }
    if rooms.is_empty() {
        return Ok(false);
    }
    let ledger = store.live_grants_of(email).await?;
    Ok(rooms.iter().all(|room| {
        ledger
            .iter()
            .any(|g| g.room_id == *room && g.state != GrantState::Sending)
    }))
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
    /// Grants `email` the rooms of `projects` (the projects the task counts toward). Store errors
    /// end the attempt; everything else is in the answer.
    pub async fn grant(
        &self,
        projects: &[Gid],
        email: &Email,
        person: Person,
    ) -> Result<(RoomWork, Option<RoomsStop>), StoreError> {
        let mut work = RoomWork::default();
        let mut targets = Vec::new();
        for project in projects {
            let Some(known) = self.store.project_room_view(project).await? else {
                continue;
            };
            let gone = known.state.as_deref() == Some("gone");
            let (room_id, access, event) = match (known.room_id, known.access, self.provisioner) {
                (Some(room_id), Some(_), Some(provisioner)) if gone => {
                    tracing::warn!(room = room_id, project = %project, reason = known.gone_reason.as_deref().unwrap_or("deleted"), "the project's room is gone; creating a new one");
                    match self
                        .provision(
                            provisioner,
                            project,
                            known.project_name.as_deref(),
                            Some(room_id),
                        )
                        .await?
                    {
                        Ok((room_id, event)) => (room_id, provisioner.rooms.access.as_int(), event),
                        Err(stop) => return Ok((work, Some(stop))),
                    }
                }
                (Some(room_id), Some(access), _) => (room_id, access, None),
                (_, _, Some(provisioner)) => {
                    match self
                        .provision(provisioner, project, known.project_name.as_deref(), None)
                        .await?
                    {
                        Ok((room_id, event)) => (room_id, provisioner.rooms.access.as_int(), event),
                        Err(stop) => return Ok((work, Some(stop))),
                    }
                }
                _ => {
                    work.results.push(result(project, None, None, "no_room"));
                    continue;
                }
            };
            let room = RoomId::try_from(room_id).map_err(|_| {
                StoreError::Corrupt(format!("project {project} maps to room {room_id}"))
            })?;
            let access = RoomAccess::from_repr(access).ok_or_else(|| {
                StoreError::Corrupt(format!("room {room_id} has unknown access {access}"))
            })?;
            if gone && self.provisioner.is_none() {
                let reason = known.gone_reason.as_deref().unwrap_or("deleted");
                return Ok((
                    work,
                    Some(RoomsStop::Fail(linked_gone_message(
                        project,
                        known.project_name.as_deref(),
                        room_id,
                        reason,
                    ))),
                ));
            }
            targets.push(Target {
                project: project.clone(),
                project_name: known.project_name,
                room,
                access,
                event,
            });
        }
        targets.sort_by_key(|t| t.room.get());
        targets.dedup_by_key(|t| t.room.get());
        if targets.is_empty() {
            return Ok((work, None));
        }

        // The ledger answers first: a settled (person, room) costs no DocSpace call.
        let ledger: HashMap<i64, GrantRecord> = self
            .store
            .live_grants_of(email)
            .await?
            .into_iter()
            .map(|g| (g.room_id, g))
            .collect();
        let mut open = Vec::new();
        for target in targets {
            match ledger.get(&target.room.get()) {
                Some(row) if row.state != GrantState::Sending => {
                    let what = if row.job_id == self.job.id && row.state == GrantState::Granted {
                        "granted"
                    } else {
                        "already_granted"
                    };
                    work.results
                        .push(result(&target.project, Some(&target), None, what));
                }
                _ => open.push(target),
            }
        }
        if open.is_empty() {
            return Ok((work, None));
        }

        let user = match person {
            Person::Found(user) => user,
            Person::JustInvited | Person::Unread | Person::InvitedBy { .. } => {
                match self.docspace.find_user(email.as_str()).await {
                    Ok(Some(user)) => user,
                    Ok(None) => {
                        let stop = match person {
                            Person::InvitedBy { job_id } => RoomsStop::Wait(format!(
                                "being invited by job {job_id}; rooms follow"
                            )),
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
                        };
                        return Ok((work, Some(stop)));
                    }
                    Err(error) => return Ok((work, Some(RoomsStop::Upstream(error)))),
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

        for target in open {
            let own_sending = ledger.get(&target.room.get()).is_some_and(|row| {
                row.job_id == self.job.id
                    && row.state == GrantState::Sending
                    && row.access == target.access.as_int()
            });
            if let Some(stop) = self
                .grant_one(&target, email, &user, own_sending, &mut work)
                .await?
            {
                return Ok((work, Some(stop)));
            }
        }
        Ok((work, None))
    }

    /// The room `ensure_room` gives `project`, with how it got it, or why the job stops.
    async fn provision(
        &self,
        provisioner: &RoomProvisioner,
        project: &Gid,
        name: Option<&str>,
        replacing: Option<i64>,
    ) -> Result<Result<(i64, Option<RoomEvent>), RoomsStop>, StoreError> {
        let claimant = Claimant::Job {
            id: self.job.id,
            owner: self.owner.clone(),
        };
        Ok(
            match provisioner
                .ensure_room(project, name, replacing, &claimant)
                .await?
            {
                Provision::Room { room_id, event } => Ok((room_id, event)),
                Provision::Wait(note) => Err(RoomsStop::Wait(note)),
                Provision::Fail(reason) => Err(RoomsStop::Fail(reason)),
                Provision::Upstream(error) => Err(RoomsStop::Upstream(error)),
                Provision::LeaseLost => Err(RoomsStop::LeaseLost),
            },
        )
    }

    async fn grant_one(
        &self,
        target: &Target,
        email: &Email,
        user: &DocSpaceUser,
        own_sending: bool,
        work: &mut RoomWork,
    ) -> Result<Option<RoomsStop>, StoreError> {
        let present = match self.find_member(target.room, email, &user.id).await {
            Ok(present) => present,
            Err(error) => return Ok(Some(self.refused(target, error).await?)),
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
                work.results
                    .push(result(&target.project, Some(target), None, "granted"));
            } else {
                work.had_access.push(GrantRequest {
                    access: member.access,
                    ..request
                });
                work.results.push(result(
                    &target.project,
                    Some(target),
                    RoomAccess::from_repr(member.access).map(RoomAccess::as_str),
                    "already_in_room",
                ));
            }
            return Ok(None);
        }

        match self
            .store
            .reserve_grant(self.job.id, self.owner, request)
            .await?
        {
            None => return Ok(Some(RoomsStop::LeaseLost)),
            Some(GrantReservation::Mine) => {}
            Some(GrantReservation::Theirs { .. }) => {
                work.results
                    .push(result(&target.project, Some(target), None, "being_granted"));
                return Ok(None);
            }
            Some(GrantReservation::AlreadyGranted { .. }) => {
                work.results.push(result(
                    &target.project,
                    Some(target),
                    None,
                    "already_granted",
                ));
                return Ok(None);
            }
        }

        let members = match self
            .docspace
            .share_room(target.room, &user.id, target.access, self.notify)
            .await
        {
            Ok(members) => members,
            Err(error) => return Ok(Some(self.refused(target, error).await?)),
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
            work.results
                .push(result(&target.project, Some(target), None, "granted"));
            return Ok(None);
        }
        match self.docspace.find_user(email.as_str()).await {
            Ok(Some(again)) if again.is_disabled() => {
                work.results
                    .push(result(&target.project, Some(target), None, "user_disabled"));
                Ok(None)
            }
            Ok(_) => Ok(Some(RoomsStop::Fail(format!(
                "DocSpace did not add {} to room {} (invisible to the key's user?)",
                mask_email(email.as_str()),
                target.room
            )))),
            Err(error) => Ok(Some(RoomsStop::Upstream(error))),
        }
    }

    /// The person's entry among the room's members, matched exactly (the filter is fuzzy).
    async fn find_member(
        &self,
        room: RoomId,
        email: &Email,
        id: &DocSpaceUserId,
    ) -> Result<Option<Member>, UpstreamError> {
        let mut start = 0u32;
        loop {
            let page = self
                .docspace
                .room_members(room, email.as_str(), start)
                .await?;
            let count = page.members.len();
            if let Some(member) = page
                .members
                .into_iter()
                .find(|m| m.is(Some(id), email.as_str()))
            {
                return Ok(Some(member));
            }
            if count < PAGE_SIZE as usize {
                return Ok(None);
            }
            start = start.saturating_add(PAGE_SIZE);
        }
    }

    /// A members read or share DocSpace refused: a 403 or 404 may mean the room is gone or
    /// archived, which one room read tells; anything else stands as it is.
    async fn refused(
        &self,
        target: &Target,
        error: UpstreamError,
    ) -> Result<RoomsStop, StoreError> {
        if !matches!(error.status(), Some(403 | 404)) {
            return Ok(RoomsStop::Upstream(error));
        }
        let reason = match self.docspace.get_room(target.room).await {
            Ok(RoomLookup::NotFound) => "deleted",
            Ok(RoomLookup::Found(room)) if room.is_archived() => "archived",
            Ok(RoomLookup::Found(_)) => return Ok(RoomsStop::Upstream(error)),
            Err(read_error) => return Ok(RoomsStop::Upstream(read_error)),
        };
        self.store
            .mark_room_gone(&target.project, target.room.get(), reason)
            .await?;
        if self.provisioner.is_some() {
            tracing::warn!(room = %target.room, project = %target.project, reason, "room {} of project {} is gone ({reason}); creating a new one", target.room, target.project);
            return Ok(RoomsStop::Wait(format!(
                "room {} of project {} is gone ({reason}); the next attempt creates a new one",
                target.room, target.project
            )));
        }
        tracing::warn!(room = %target.room, project = %target.project, reason, "a linked room is gone");
        Ok(RoomsStop::Fail(linked_gone_message(
            &target.project,
            target.project_name.as_deref(),
            target.room.get(),
            reason,
        )))
    }
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
    let named = name.map(|n| format!(" ({n:?})")).unwrap_or_default();
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
