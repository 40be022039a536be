//! One room per project in `auto` mode: under the project's creation claim, adopt the active room
//! tagged `asana-project:<gid>` or create it, and record the mapping.

use std::fmt;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};

use crate::domain::{Gid, RoomTag};
use crate::settings::{RoomsSettings, Settings, WorkerSettings};
use crate::store::{Claimant, CreationClaim, NewProjectRoom, Store, StoreError, now_ms};
use crate::telemetry::metrics;
use crate::upstream::asana::Project;
use crate::upstream::docspace::{NewRoom, Room};
use crate::upstream::{AsanaClient, DocSpaceClient, UpstreamError, Upstreams};

/// How long a permanent creation failure keeps others from trying again.
pub const FAILED_COOL_DOWN: Duration = Duration::from_secs(5 * 60);

/// How often a job waiting for another claimant's room looks for the mapping.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// How a project got its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomEvent {
    Created,
    Adopted,
    /// Made or adopted in place of a room DocSpace deleted or archived.
    Replaced,
}

impl RoomEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomEvent::Created => "created",
            RoomEvent::Adopted => "adopted",
            RoomEvent::Replaced => "replaced",
        }
    }
}

/// What `ensure_room` found.
#[derive(Debug)]
pub enum Provision {
    /// The project's room; `event` when this call made or adopted it.
    Room {
        room_id: i64,
        event: Option<RoomEvent>,
    },
    /// Another claimant is creating it: try again later with this note.
    Wait(String),
    /// Fails the job at once with this reason.
    Fail(String),
    Upstream(UpstreamError),
    LeaseLost,
}

#[derive(Debug, Clone)]
pub struct RoomProvisioner {
    pub store: Store,
    pub docspace: DocSpaceClient,
    pub rooms: RoomsSettings,
    /// How long a claim holds (the worker's lease).
    pub hold: Duration,
    /// How long to wait for another claimant's room before giving up for now.
    pub wait: Duration,
}

impl RoomProvisioner {
    /// The provisioner the settings describe: a claim holds for the worker's lease, and another
    /// claimant's room is waited for up to two request timeouts.
    pub fn new(
        store: Store,
        docspace: DocSpaceClient,
        rooms: &RoomsSettings,
        worker: &WorkerSettings,
    ) -> RoomProvisioner {
        RoomProvisioner {
            store,
            docspace,
            rooms: rooms.clone(),
            hold: Duration::from_millis(worker.lease_ms),
            wait: Duration::from_millis(worker.request_timeout_ms.saturating_mul(2)),
        }
    }

    /// Makes sure `project` has an active room, other than the gone room `replacing`.
    pub async fn ensure_room(
        &self,
        project: &Gid,
        name: Option<&str>,
        replacing: Option<i64>,
        claimant: &Claimant,
    ) -> Result<Provision, StoreError> {
        self.ensure_room_forcing(project, name, replacing, claimant, false)
            .await
    }

    /// [`RoomProvisioner::ensure_room`]; with `force` (an operator's command) a permanent
    /// failure's cool-down ends at once instead of refusing.
    pub async fn ensure_room_forcing(
        &self,
        project: &Gid,
        name: Option<&str>,
        replacing: Option<i64>,
        claimant: &Claimant,
        force: bool,
    ) -> Result<Provision, StoreError> {
        let token = claimant.token();
        let deadline =
            now_ms().saturating_add(i64::try_from(self.wait.as_millis()).unwrap_or(i64::MAX));
        loop {
            match self
                .store
                .claim_room_creation(project, claimant, self.hold, replacing, force)
                .await?
            {
                CreationClaim::Claimed { .. } => break,
                CreationClaim::LeaseLost => return Ok(Provision::LeaseLost),
                CreationClaim::CoolingDown { error, .. } => {
                    return Ok(Provision::Fail(format!(
                        "DocSpace refused to create the room of project {project}: {}; fix it, \
                         then run `asana-docspace-bridge rooms create --project {project}`",
                        error.as_deref().unwrap_or("no message")
                    )));
                }
                CreationClaim::HeldBy { job_id, .. } => {
                    if let Some(room_id) = self.active_room(project, replacing).await? {
                        return Ok(Provision::Room {
                            room_id,
                            event: None,
                        });
                    }
                    if now_ms() >= deadline {
                        let by = job_id.map_or("a command".to_string(), |id| format!("job {id}"));
                        return Ok(Provision::Wait(format!(
                            "room of project {project} is being created by {by}"
                        )));
                    }
                    tokio::time::sleep(WAIT_POLL).await;
                }
            }
        }

        // Under the claim: someone may have recorded it meanwhile.
        if let Some(room_id) = self.active_room(project, replacing).await? {
            self.store.release_room_creation(project, &token).await?;
            return Ok(Provision::Room {
                room_id,
                event: None,
            });
        }
        let tag = RoomTag::for_project(project);
        let found = match self.docspace.find_rooms_by_tag(&tag).await {
            Ok(found) => found,
            Err(error) => return Ok(Provision::Upstream(error)),
        };
        let (room, event) = match adoptable(&found, &tag, replacing) {
            Some(room) => {
                tracing::info!(room = %room.id, project = %project, "adopted room {}", room.id);
                (room.clone(), RoomEvent::Adopted)
            }
            None => {
                if !self
                    .store
                    .extend_room_creation(project, &token, self.hold)
                    .await?
                {
                    return Ok(Provision::LeaseLost);
                }
                let new = NewRoom {
                    title: self
                        .rooms
                        .title
                        .render(name.unwrap_or_default(), project.as_str()),
                    room_type: self.rooms.room_type,
                    tags: vec![tag.as_str().to_string()],
                };
                match self.docspace.create_room(&new).await {
                    Ok(room) => {
                        metrics::room_created();
                        tracing::info!(room = %room.id, project = %project, "created room");
                        (room, RoomEvent::Created)
                    }
                    Err(error) if error.is_transient() => return Ok(Provision::Upstream(error)),
                    Err(error) => {
                        let message = error.to_string();
                        self.store
                            .fail_room_creation(project, &token, message.clone(), FAILED_COOL_DOWN)
                            .await?;
                        return Ok(Provision::Fail(format!(
                            "DocSpace refused to create the room of project {project}: {message}"
                        )));
                    }
                }
            }
        };
        let recorded = self
            .store
            .record_created_room(
                NewProjectRoom {
                    project_gid: project.clone(),
                    room_id: room.id.get(),
                    room_title: room.title.clone(),
                    room_type: room
                        .room_type_int
                        .unwrap_or_else(|| self.rooms.room_type.as_int()),
                    access: self.rooms.access.as_int(),
                },
                name,
                &token,
                replacing,
            )
            .await?;
        if !recorded {
            return Ok(Provision::LeaseLost);
        }
        Ok(Provision::Room {
            room_id: room.id.get(),
            event: Some(event),
        })
    }

    /// The project's active mapped room, unless it is `replacing`.
    async fn active_room(
        &self,
        project: &Gid,
        replacing: Option<i64>,
    ) -> Result<Option<i64>, StoreError> {
        Ok(self.store.project_room(project).await?.and_then(|room| {
            (room.state == "active" && Some(room.room_id) != replacing).then_some(room.room_id)
        }))
    }
}

/// The room an operator's command gave a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRoom {
    pub room_id: i64,
    pub title: String,
    /// `created` or `adopted` by this call; `None` when the project had an active room already.
    pub event: Option<RoomEvent>,
    /// How the project has the room: `linked` or `created`.
    pub how: String,
}

/// `45 "Website" (created)`; `(already linked)` when the project had the room.
impl fmt::Display for CommandRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?} ", self.room_id, self.title)?;
        match self.event {
            Some(event) => write!(f, "({})", event.as_str()),
            None => write!(f, "(already {})", self.how),
        }
    }
}

/// Gives `project` its room now, for an operator's command (`rooms create`, `webhooks create`, the
/// demo): its active room if it has one; otherwise the room tagged `asana-project:<gid>`, adopted
/// or created (titled after the Asana project) under a command's creation claim, replacing a gone
/// room's mapping. `force` ends a permanent failure's cool-down; a live claim is waited for.
pub async fn provision_for_command(
    store: &Store,
    upstreams: &Upstreams,
    settings: &Settings,
    project: &Gid,
    force: bool,
) -> anyhow::Result<CommandRoom> {
    let mapped = store.project_room(project).await?;
    if let Some(room) = mapped.as_ref().filter(|r| r.state == "active") {
        return Ok(CommandRoom {
            room_id: room.room_id,
            title: room.room_title.clone(),
            event: None,
            how: room.how.clone(),
        });
    }
    let name = asana_project(&upstreams.asana, project).await?.name;
    let provisioner = RoomProvisioner::new(
        store.clone(),
        upstreams.docspace.clone(),
        &settings.rooms,
        &settings.worker,
    );
    let claimant = Claimant::Command {
        token: format!("command:{}", super::lease_owner_id()),
    };
    let replacing = mapped.map(|gone| gone.room_id);
    match provisioner
        .ensure_room_forcing(project, name.as_deref(), replacing, &claimant, force)
        .await?
    {
        Provision::Room { room_id, event } => {
            let room = store
                .project_room(project)
                .await?
                .filter(|r| r.room_id == room_id)
                .ok_or_else(|| {
                    anyhow!("the room of project {project} changed meanwhile: see `rooms list`")
                })?;
            Ok(CommandRoom {
                room_id,
                title: room.room_title,
                event,
                how: room.how,
            })
        }
        Provision::Wait(note) => bail!("{note}; try again in a minute"),
        Provision::Fail(reason) => bail!("{reason}"),
        Provision::Upstream(error) => {
            Err(anyhow!(error).context(format!("giving project {project} its room")))
        }
        Provision::LeaseLost => bail!(
            "the claim on creating the room of project {project} ran out before the room was \
             recorded; run `rooms create --project {project}` again (it adopts the tagged room)"
        ),
    }
}

/// Project `project` as Asana has it, or "Asana does not know project P".
pub async fn asana_project(asana: &AsanaClient, project: &Gid) -> anyhow::Result<Project> {
    asana
        .get_project(project)
        .await
        .with_context(|| format!("reading project {project} at Asana"))?
        .ok_or_else(|| anyhow!("Asana does not know project {project}"))
}

/// The room to adopt among a tag search's results: tagged exactly, not archived, not the one
/// being replaced; the lowest id when several are (the others are logged).
pub fn adoptable<'a>(found: &'a [Room], tag: &RoomTag, replacing: Option<i64>) -> Option<&'a Room> {
    let mut candidates: Vec<&Room> = found
        .iter()
        .filter(|r| r.has_tag(tag) && !r.is_archived() && Some(r.id.get()) != replacing)
        .collect();
    candidates.sort_by_key(|r| r.id.get());
    if candidates.len() > 1 {
        let others: Vec<String> = candidates[1..].iter().map(|r| r.id.to_string()).collect();
        tracing::warn!(
            tag = tag.as_str(),
            others = %others.join(", "),
            "several rooms carry the tag; adopting the lowest id"
        );
    }
    candidates.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(id: i64, tags: &[&str], root: i64) -> Room {
        serde_json::from_value(serde_json::json!({
            "id": id, "title": "t", "roomType": 2, "tags": tags, "rootFolderType": root
        }))
        .unwrap()
    }

    #[test]
    fn a_command_room_says_how_the_project_got_it() {
        let room = |event, how: &str| CommandRoom {
            room_id: 45,
            title: "Website".into(),
            event,
            how: how.into(),
        };
        assert_eq!(
            room(Some(RoomEvent::Created), "created").to_string(),
            r#"45 "Website" (created)"#
        );
        assert_eq!(
            room(Some(RoomEvent::Adopted), "created").to_string(),
            r#"45 "Website" (adopted)"#
        );
        assert_eq!(
            room(None, "linked").to_string(),
            r#"45 "Website" (already linked)"#
        );
    }

    #[test]
    fn adopts_the_lowest_exactly_tagged_active_room_other_than_the_replaced_one() {
        let tag = RoomTag::for_project(&"100".parse().unwrap());
        let found = vec![
            room(9, &["asana-project:100"], 14),
            room(3, &["asana-project:1000"], 14),
            room(4, &["asana-project:100"], 20),
            room(5, &["asana-project:100"], 14),
            room(2, &["asana-project:100"], 14),
        ];
        assert_eq!(adoptable(&found, &tag, Some(2)).unwrap().id.get(), 5);
        assert_eq!(adoptable(&found, &tag, None).unwrap().id.get(), 2);
        assert!(adoptable(&found[1..3], &tag, None).is_none());
    }
}
