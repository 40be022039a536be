//! The values the bridge passes around, parsed once where they enter (CLI arguments, webhook
//! deliveries, upstream answers) so the rest of the code never checks them again. Each parser's
//! error is the sentence a user sees.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Why a value was refused: a sentence naming what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

/// An Asana id (a task's, a project's, a user's, a webhook's): 1 to 64 ASCII digits, so it can go
/// into an upstream URL or a log line as it is. Like the other ids here, cheap to clone (shared).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Gid(Arc<str>);

impl Gid {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Gid {
    type Err = ParseError;
    fn from_str(value: &str) -> Result<Gid, ParseError> {
        if (1..=64).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Gid(value.into()))
        } else {
            Err(ParseError(format!(
                "{:?} is not an Asana gid (1 to 64 digits)",
                shorten(value)
            )))
        }
    }
}

impl TryFrom<String> for Gid {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Gid, ParseError> {
        value.parse::<Gid>().map(|_| Gid(value.into()))
    }
}

/// A webhook's name, which routes its deliveries (`/webhooks/asana/{name}`): 1 to 64 letters,
/// digits, `-` or `_`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WebhookName(Arc<str>);

impl WebhookName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for WebhookName {
    type Err = ParseError;
    fn from_str(value: &str) -> Result<WebhookName, ParseError> {
        if (1..=64).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            Ok(WebhookName(value.into()))
        } else {
            Err(ParseError(format!(
                "{:?} is not a webhook name (1 to 64 letters, digits, '-' or '_')",
                shorten(value)
            )))
        }
    }
}

impl TryFrom<String> for WebhookName {
    type Error = ParseError;
    fn try_from(value: String) -> Result<WebhookName, ParseError> {
        value
            .parse::<WebhookName>()
            .map(|_| WebhookName(value.into()))
    }
}

/// An email address as the bridge compares and stores it: trimmed and lowercased, so
/// `Jane@Example.com ` and `jane@example.com` are one person.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Email(Arc<str>);

impl Email {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the last `@`.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, domain)| domain)
    }
}

impl FromStr for Email {
    type Err = ParseError;
    fn from_str(value: &str) -> Result<Email, ParseError> {
        let email = value.trim().to_lowercase();
        let well_formed = email.len() <= 254
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && matches!(email.rsplit_once('@'), Some((local, domain)) if !local.is_empty() && !domain.is_empty());
        if well_formed {
            Ok(Email(email.into()))
        } else {
            Err(ParseError(format!(
                "{:?} is not an email address",
                shorten(value)
            )))
        }
    }
}

impl TryFrom<String> for Email {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Email, ParseError> {
        value.parse()
    }
}

/// What a job was made for: the event that queued it, or the command.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumString, strum::Display, strum::IntoStaticStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum JobKind {
    /// `changed` on `assignee` with a user as the new value.
    AssigneeChanged,
    /// A task `added` (to the project, or a section of it).
    TaskAdded,
    /// `backfill`: a task that had an assignee when the command ran.
    Backfill,
    /// `invite-task`: one task, run by the command itself.
    InviteTask,
    /// A reconcile pass found an assignment no job had handled (`reconcile:<task>:<assignee>:…`).
    Reconcile,
    /// A workspace webhook reported a new project (`project_added:<project>`; the job's
    /// `task_gid` holds the project's gid): the job registers the project's own webhook.
    ProjectAdded,
    /// `changed` on `assignee` without a new value: Asana does not say who was unassigned, the
    /// stored task row does (issue 13; with `access.revoke` on).
    TaskUnassigned,
    /// `changed` on `completed` (completed or re-opened).
    CompletionChanged,
    /// A task `removed` from a project (events whose parent is a section are ignored).
    TaskRemoved,
    /// A task `deleted`: the job's read answers 404 (`task_gone`).
    TaskDeleted,
    /// Take back one grant whose need ended (`revoke:<revocation id>`; `source` is `access`, the
    /// job's `task_gid` the task that ended the need, `project_gid` the room's project).
    Revoke,
}

impl JobKind {
    /// Kinds that read their task from Asana (every kind but `project_added` and `revoke`).
    pub fn reads_task(self) -> bool {
        !matches!(self, JobKind::ProjectAdded | JobKind::Revoke)
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl TryFrom<String> for JobKind {
    type Error = ParseError;
    fn try_from(value: String) -> Result<JobKind, ParseError> {
        value
            .parse()
            .map_err(|_| ParseError(format!("unknown job kind {:?}", shorten(&value))))
    }
}

/// An operator command that queues jobs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumString, strum::Display, strum::IntoStaticStr,
)]
#[strum(serialize_all = "kebab-case")]
pub enum Command {
    Backfill,
    InviteTask,
}

/// Who queued a job: a webhook's delivery or a command. Stored as `webhook:<name>` or
/// `command:<name>`, so no webhook name can pass for a command.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobSource {
    Webhook(WebhookName),
    Command(Command),
    /// A reconcile pass (the service's own, or `reconcile run`). Stored as `reconcile`.
    Reconcile,
    /// The access lifecycle: a revocation scheduled when a need ended. Stored as `access`.
    Access,
}

impl JobSource {
    /// The stored form.
    pub fn to_stored(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for JobSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobSource::Webhook(name) => write!(f, "webhook:{}", name.as_str()),
            JobSource::Command(command) => write!(f, "command:{command}"),
            JobSource::Reconcile => f.write_str("reconcile"),
            JobSource::Access => f.write_str("access"),
        }
    }
}

impl FromStr for JobSource {
    type Err = ParseError;
    fn from_str(value: &str) -> Result<JobSource, ParseError> {
        let unknown = || ParseError(format!("unknown job source {:?}", shorten(value)));
        match value {
            "reconcile" => return Ok(JobSource::Reconcile),
            "access" => return Ok(JobSource::Access),
            _ => {}
        }
        match value.split_once(':') {
            Some(("webhook", name)) => Ok(JobSource::Webhook(name.parse()?)),
            Some(("command", command)) => {
                Ok(JobSource::Command(command.parse().map_err(|_| unknown())?))
            }
            _ => Err(unknown()),
        }
    }
}

impl TryFrom<String> for JobSource {
    type Error = ParseError;
    fn try_from(value: String) -> Result<JobSource, ParseError> {
        value.parse()
    }
}

/// What an Asana webhook watches: a project (task events) or a workspace (new projects only).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WatchedResource {
    Project(Gid),
    Workspace(Gid),
}

impl WatchedResource {
    pub fn gid(&self) -> &Gid {
        match self {
            WatchedResource::Project(gid) | WatchedResource::Workspace(gid) => gid,
        }
    }

    /// `project` or `workspace`: Asana's `resource_type`, and the stored `webhooks.resource_type`.
    pub fn resource_type(&self) -> &'static str {
        match self {
            WatchedResource::Project(_) => "project",
            WatchedResource::Workspace(_) => "workspace",
        }
    }

    /// From the stored `resource_type` and gid.
    pub fn from_stored(resource_type: &str, gid: Gid) -> Result<WatchedResource, ParseError> {
        match resource_type {
            "project" => Ok(WatchedResource::Project(gid)),
            "workspace" => Ok(WatchedResource::Workspace(gid)),
            other => Err(ParseError(format!(
                "unknown webhook resource type {:?}",
                shorten(other)
            ))),
        }
    }
}

impl fmt::Display for WatchedResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.resource_type(), self.gid())
    }
}

/// Display, Debug, `AsRef<str>` and comparison with text for the string-like values above.
macro_rules! display_as_str {
    ($($name:ident),*) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        /// Quoted, as the text itself.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }
    )*};
}
display_as_str!(Gid, WebhookName, Email);

/// A DocSpace room's id: the spec's int32, positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(try_from = "i64")]
pub struct RoomId(i32);

impl RoomId {
    pub fn get(self) -> i64 {
        i64::from(self.0)
    }
}

impl TryFrom<i64> for RoomId {
    type Error = ParseError;
    fn try_from(value: i64) -> Result<RoomId, ParseError> {
        i32::try_from(value)
            .ok()
            .filter(|id| *id >= 1)
            .map(RoomId)
            .ok_or_else(|| {
                ParseError(format!(
                    "{value} is not a DocSpace room id (1 to {})",
                    i32::MAX
                ))
            })
    }
}

impl FromStr for RoomId {
    type Err = ParseError;
    fn from_str(value: &str) -> Result<RoomId, ParseError> {
        value
            .parse::<i64>()
            .ok()
            .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                ParseError(format!(
                    "{:?} is not a DocSpace room id (1 to {})",
                    shorten(value),
                    i32::MAX
                ))
            })
            .and_then(RoomId::try_from)
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A DocSpace user's id: a uuid, kept in lowercase 8-4-4-4-12 hex form.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct DocSpaceUserId(Arc<str>);

impl DocSpaceUserId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DocSpaceUserId {
    type Err = ParseError;
    fn from_str(value: &str) -> Result<DocSpaceUserId, ParseError> {
        let id = value.trim().to_ascii_lowercase();
        let groups: Vec<&str> = id.split('-').collect();
        let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        let well_formed = lengths == [8, 4, 4, 4, 12]
            && groups
                .iter()
                .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
        if well_formed {
            Ok(DocSpaceUserId(id.into()))
        } else {
            Err(ParseError(format!(
                "{:?} is not a DocSpace user id (a uuid)",
                shorten(value)
            )))
        }
    }
}

impl TryFrom<String> for DocSpaceUserId {
    type Error = ParseError;
    fn try_from(value: String) -> Result<DocSpaceUserId, ParseError> {
        value.parse()
    }
}

impl From<DocSpaceUserId> for String {
    fn from(id: DocSpaceUserId) -> String {
        id.0.to_string()
    }
}

display_as_str!(DocSpaceUserId);

/// The DocSpace tag that marks a project's room: `asana-project:<gid>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomTag(String);

impl RoomTag {
    pub fn for_project(project: &Gid) -> RoomTag {
        RoomTag(format!("asana-project:{project}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// At most 80 characters of a refused value, for messages.
fn shorten(value: &str) -> String {
    match value.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_are_positive_int32s() {
        assert_eq!("45".parse::<RoomId>().unwrap().get(), 45);
        assert_eq!(
            RoomId::try_from(2_147_483_647).unwrap().get(),
            2_147_483_647
        );
        for bad in ["0", "-1", "2147483648", "4x", "", "+5"] {
            let err = bad.parse::<RoomId>().unwrap_err().to_string();
            assert!(err.contains("is not a DocSpace room id"), "{bad}: {err}");
        }
        assert!(serde_json::from_str::<RoomId>("0").is_err());
        assert_eq!(serde_json::from_str::<RoomId>("7").unwrap().get(), 7);
    }

    #[test]
    fn docspace_user_ids_are_lowercased_dashed_uuids() {
        let id: DocSpaceUserId = " 0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0".parse().unwrap();
        assert_eq!(id.as_str(), "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
        for bad in [
            "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fg",
            "",
        ] {
            assert!(bad.parse::<DocSpaceUserId>().is_err(), "{bad}");
        }
        assert_eq!(
            serde_json::to_value(&id).unwrap(),
            serde_json::json!("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
        );
    }

    #[test]
    fn room_tags_name_the_project() {
        let gid: Gid = "1200000000000100".parse().unwrap();
        assert_eq!(
            RoomTag::for_project(&gid).as_str(),
            "asana-project:1200000000000100"
        );
    }

    #[test]
    fn gids_are_digits() {
        assert_eq!(
            "1200000000000100".parse::<Gid>().unwrap().as_str(),
            "1200000000000100"
        );
        for bad in ["", "12a", "../1", "１２", "1 2", &"1".repeat(65)] {
            let err = bad.parse::<Gid>().unwrap_err();
            assert!(
                err.to_string().contains("is not an Asana gid"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn webhook_names_are_restricted_to_a_safe_alphabet() {
        assert!("default".parse::<WebhookName>().is_ok());
        assert!("proj-42_A".parse::<WebhookName>().is_ok());
        for bad in ["", "a b", "é", "../x", "a:b", &"x".repeat(65)] {
            assert!(bad.parse::<WebhookName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        let email: Email = " Jane.Doe@Example.COM ".parse().unwrap();
        assert_eq!(email.as_str(), "jane.doe@example.com");
        assert_eq!(email.domain(), "example.com");
        for bad in [
            "",
            "   ",
            "jane",
            "@example.com",
            "jane@",
            "ja ne@example.com",
            "a\u{0}@b",
        ] {
            assert!(bad.parse::<Email>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_webhook_cannot_pass_for_a_command() {
        let webhook = JobSource::Webhook("backfill".parse().unwrap());
        let command = JobSource::Command(Command::Backfill);
        assert_ne!(webhook.to_stored(), command.to_stored());
        assert_eq!(webhook.to_stored().parse::<JobSource>().unwrap(), webhook);
        assert_eq!(command.to_stored().parse::<JobSource>().unwrap(), command);
        assert_eq!(
            JobSource::Command(Command::InviteTask).to_stored(),
            "command:invite-task"
        );
        assert!("backfill".parse::<JobSource>().is_err());
        assert!("command:nope".parse::<JobSource>().is_err());
        let named_reconcile = JobSource::Webhook("reconcile".parse().unwrap());
        assert_eq!(JobSource::Reconcile.to_stored(), "reconcile");
        assert_ne!(
            named_reconcile.to_stored(),
            JobSource::Reconcile.to_stored()
        );
        assert_eq!(
            "reconcile".parse::<JobSource>().unwrap(),
            JobSource::Reconcile
        );
    }

    #[test]
    fn job_kinds_keep_their_stored_names() {
        assert_eq!(JobKind::AssigneeChanged.as_str(), "assignee_changed");
        assert_eq!(JobKind::InviteTask.as_str(), "invite_task");
        assert_eq!("task_added".parse::<JobKind>().unwrap(), JobKind::TaskAdded);
        assert_eq!(JobKind::ProjectAdded.as_str(), "project_added");
        assert_eq!(JobKind::Reconcile.as_str(), "reconcile");
        assert!(JobKind::try_from("lost".to_string()).is_err());
    }
}
