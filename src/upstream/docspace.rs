//! ONLYOFFICE DocSpace API client (`/api/2.0`), authenticated with an API key (`sk-...`).

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::json_api::JsonApi;
use super::{BadBaseUrl, Service, UpstreamError};
use crate::domain::{DocSpaceUserId, RoomId, RoomTag};
use crate::rooms::{RoomAccess, RoomType};
use crate::settings::{InviteType, Settings};
use crate::telemetry::mask_emails_in;

/// The most entries DocSpace returns per page of rooms or members (the spec's `count` maximum).
pub const PAGE_SIZE: u32 = 100;

/// The most pages of one person's member entries read from a room: a search by one email that
/// fills this many pages is an answer no real room gives, and must not loop forever.
pub const MAX_MEMBER_PAGES: u32 = 50;

/// `rootFolderType` of a room in the archive.
const ARCHIVE_FOLDER_TYPE: i64 = 20;

/// A DocSpace person (`EmployeeFullDto`), as far as rooms need one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DocSpaceUser {
    pub id: DocSpaceUserId,
    #[serde(default)]
    pub email: Option<String>,
    /// 1 active, 2 disabled (terminated), 4 pending.
    #[serde(default)]
    pub status: Option<i64>,
}

impl DocSpaceUser {
    /// A terminated user: DocSpace silently drops shares to them.
    pub fn is_disabled(&self) -> bool {
        self.status == Some(2)
    }
}

#[derive(Deserialize)]
struct UserEnvelope {
    response: DocSpaceUser,
}

/// A room (`FolderDtoInteger`), as far as the bridge reads one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Room {
    pub id: RoomId,
    #[serde(default)]
    pub title: String,
    /// The RoomType integer (see [`Room::room_type`]).
    #[serde(rename = "roomType", default)]
    pub room_type_int: Option<i64>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub tags: Vec<String>,
    /// 14 for active rooms, 20 in the archive.
    #[serde(rename = "rootFolderType", default)]
    pub root_folder_type: Option<i64>,
}

impl Room {
    pub fn room_type(&self) -> Option<RoomType> {
        self.room_type_int.and_then(RoomType::from_repr)
    }

    pub fn is_archived(&self) -> bool {
        self.root_folder_type == Some(ARCHIVE_FOLDER_TYPE)
    }

    pub fn has_tag(&self, tag: &RoomTag) -> bool {
        self.tags.iter().any(|t| t == tag.as_str())
    }
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// A room read by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomLookup {
    Found(Room),
    /// 404: deleted, or never there.
    NotFound,
}

#[derive(Deserialize)]
struct RoomEnvelope {
    response: Room,
}

#[derive(Deserialize)]
struct RoomsEnvelope {
    response: RoomsFolder,
}

#[derive(Deserialize)]
struct RoomsFolder {
    #[serde(default)]
    folders: Vec<Room>,
}

/// The room the bridge asks DocSpace to create: never `private`, never `share` (shares follow,
/// by id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewRoom {
    pub title: String,
    #[serde(rename = "roomType", serialize_with = "room_type_int")]
    pub room_type: RoomType,
    pub tags: Vec<String>,
}

fn room_type_int<S: serde::Serializer>(room_type: &RoomType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(room_type.as_int())
}

/// Someone with access to a room (`FileShareDto`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Member {
    /// The FileShare integer (may be one the bridge never grants).
    #[serde(default)]
    pub access: i64,
    /// `None` for groups and links.
    #[serde(rename = "sharedToUser", default)]
    pub shared_to_user: Option<MemberUser>,
    #[serde(rename = "subjectType", default)]
    pub subject_type: Option<i64>,
    #[serde(rename = "isOwner", default)]
    pub is_owner: bool,
    #[serde(rename = "canRevoke", default)]
    pub can_revoke: bool,
}

impl Member {
    /// Whether this entry is the person: the same id, or the same email compared exactly
    /// (DocSpace's `filterValue` is a text search: `joann@` matches `ann@`).
    pub fn is(&self, id: Option<&DocSpaceUserId>, email: &str) -> bool {
        self.shared_to_user.as_ref().is_some_and(|user| {
            id.is_some_and(|id| user.id.as_ref() == Some(id))
                || user
                    .email
                    .as_deref()
                    .is_some_and(|e| e.trim().eq_ignore_ascii_case(email.trim()))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MemberUser {
    #[serde(default, deserialize_with = "lenient_user_id")]
    pub id: Option<DocSpaceUserId>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(rename = "displayName", default)]
    pub display_name: Option<String>,
}

/// A member's id that is no uuid (never seen from DocSpace) reads as absent, not as a broken page.
fn lenient_user_id<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<DocSpaceUserId>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.and_then(|id| id.parse().ok()))
}

/// One page of a room's members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembersPage {
    pub members: Vec<Member>,
    /// `total` (the notes) or `count` (the spec), whichever DocSpace sent.
    pub total: Option<i64>,
}

#[derive(Deserialize)]
struct MembersEnvelope {
    #[serde(default)]
    response: Vec<Member>,
    #[serde(default)]
    total: Option<i64>,
    #[serde(default)]
    count: Option<i64>,
}

#[derive(Serialize)]
struct ShareRequest<'a> {
    invitations: [ShareInvitation<'a>; 1],
    notify: bool,
}

/// By id, never by email: by email an unknown address becomes a Guest, whatever `invite_type`.
#[derive(Serialize)]
struct ShareInvitation<'a> {
    id: &'a str,
    access: i64,
}

#[derive(Deserialize)]
struct ShareEnvelope {
    response: ShareResult,
}

#[derive(Deserialize)]
struct ShareResult {
    #[serde(default)]
    members: Option<Vec<Member>>,
    #[serde(default)]
    warning: Option<String>,
}

/// `Debug` shows no credential: the token is a `SecretString`.
#[derive(Clone, Debug)]
pub struct DocSpaceClient {
    api: JsonApi,
}

/// The caller's profile, as much of it as the checks print.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Profile {
    #[serde(rename = "displayName", default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(rename = "isAdmin", default)]
    pub is_admin: Option<bool>,
    #[serde(rename = "isOwner", default)]
    pub is_owner: Option<bool>,
}

#[derive(Deserialize)]
struct ProfileEnvelope {
    response: Profile,
}

#[derive(Serialize)]
struct InviteRequest<'a> {
    invitations: [Invitation<'a>; 1],
}

#[derive(Serialize)]
struct Invitation<'a> {
    email: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
}

impl DocSpaceClient {
    /// `base_url` is the portal, e.g. `https://your-docspace.onlyoffice.com`.
    pub fn new(
        base_url: &str,
        api_key: SecretString,
        timeout: Duration,
    ) -> Result<Self, BadBaseUrl> {
        let api = JsonApi::new(
            Service::DocSpace,
            base_url,
            api_key,
            timeout,
            docspace_error_message,
        )?;
        Ok(DocSpaceClient { api })
    }

    /// A 429's `Retry-After` counts up to `max`.
    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.api = self.api.with_max_retry_after(max);
        self
    }

    /// The client the settings describe. One per process: see [`super::Upstreams`].
    pub fn from_settings(settings: &Settings) -> Result<Self, BadBaseUrl> {
        Ok(DocSpaceClient::new(
            &settings.docspace.base_url,
            settings.docspace.api_key.clone(),
            settings.request_timeout(),
        )?
        .with_max_retry_after(Duration::from_millis(settings.worker.backoff_max_ms)))
    }

    /// `GET /api/2.0/people/@self`: who the API key acts as.
    #[tracing::instrument(name = "docspace.self", skip_all, err(level = "debug", Display))]
    pub async fn self_profile(&self) -> Result<Profile, UpstreamError> {
        let url = self.api.url(&["api", "2.0", "people", "@self"]);
        let envelope: ProfileEnvelope = self.api.json("self", self.api.get(url)).await?;
        Ok(envelope.response)
    }

    /// `GET /api/2.0/people/email?email=`: the person with this email (active, disabled or with a
    /// pending invitation), `None` on 404.
    #[tracing::instrument(name = "docspace.find_user", skip_all, err(level = "debug", Display))]
    pub async fn find_user(&self, email: &str) -> Result<Option<DocSpaceUser>, UpstreamError> {
        let mut url = self.api.url(&["api", "2.0", "people", "email"]);
        url.query_pairs_mut().append_pair("email", email);
        let envelope: Option<UserEnvelope> = self
            .api
            .json_or_not_found("find_user", self.api.get(url))
            .await?;
        Ok(envelope.map(|e| e.response))
    }

    /// `POST /api/2.0/files/rooms`: a new room. 402 (the tariff's room count) and 403 (the key's
    /// user is no room admin) are permanent errors carrying DocSpace's message.
    #[tracing::instrument(name = "docspace.create_room", skip_all, fields(room_type = %room.room_type), err(level = "debug", Display))]
    pub async fn create_room(&self, room: &NewRoom) -> Result<Room, UpstreamError> {
        let url = self.api.url(&["api", "2.0", "files", "rooms"]);
        let envelope: RoomEnvelope = self
            .api
            .json("create_room", self.api.post(url).json(room))
            .await?;
        Ok(envelope.response)
    }

    /// `GET /api/2.0/files/rooms?tags=["<tag>"]&searchArea=0`: active rooms carrying `tag` (the
    /// search may return near matches: check [`Room::has_tag`]).
    #[tracing::instrument(name = "docspace.find_rooms", skip_all, err(level = "debug", Display))]
    pub async fn find_rooms_by_tag(&self, tag: &RoomTag) -> Result<Vec<Room>, UpstreamError> {
        let mut url = self.api.url(&["api", "2.0", "files", "rooms"]);
        let tags = serde_json::to_string(&[tag.as_str()]).expect("strings serialize");
        url.query_pairs_mut()
            .append_pair("tags", &tags)
            .append_pair("searchArea", "0")
            .append_pair("count", &PAGE_SIZE.to_string());
        let envelope: RoomsEnvelope = self.api.json("find_rooms", self.api.get(url)).await?;
        Ok(envelope.response.folders)
    }

    /// `GET /api/2.0/files/rooms?count=1`: whether the key may read rooms at all (`check-config`).
    #[tracing::instrument(name = "docspace.list_rooms", skip_all, err(level = "debug", Display))]
    pub async fn list_rooms_probe(&self) -> Result<(), UpstreamError> {
        let mut url = self.api.url(&["api", "2.0", "files", "rooms"]);
        url.query_pairs_mut().append_pair("count", "1");
        let _: RoomsEnvelope = self.api.json("list_rooms", self.api.get(url)).await?;
        Ok(())
    }

    /// `GET /api/2.0/files/rooms/{id}`: the room, or [`RoomLookup::NotFound`] on 404.
    #[tracing::instrument(name = "docspace.get_room", skip_all, fields(room = %room), err(level = "debug", Display))]
    pub async fn get_room(&self, room: RoomId) -> Result<RoomLookup, UpstreamError> {
        let url = self
            .api
            .url(&["api", "2.0", "files", "rooms", &room.to_string()]);
        let envelope: Option<RoomEnvelope> = self
            .api
            .json_or_not_found("get_room", self.api.get(url))
            .await?;
        Ok(envelope.map_or(RoomLookup::NotFound, |e| RoomLookup::Found(e.response)))
    }

    /// `GET /api/2.0/files/rooms/{id}/share?filterValue=&count=100&startIndex=`: one page of the
    /// members matching `filter` (a fuzzy text search; compare with [`Member::is`]). A 404 (room
    /// gone) is a permanent error.
    #[tracing::instrument(name = "docspace.room_members", skip_all, fields(room = %room), err(level = "debug", Display))]
    pub async fn room_members(
        &self,
        room: RoomId,
        filter: &str,
        start: u32,
    ) -> Result<MembersPage, UpstreamError> {
        let mut url = self
            .api
            .url(&["api", "2.0", "files", "rooms", &room.to_string(), "share"]);
        url.query_pairs_mut()
            .append_pair("filterValue", filter)
            .append_pair("count", &PAGE_SIZE.to_string())
            .append_pair("startIndex", &start.to_string());
        let envelope: MembersEnvelope = self.api.json("room_members", self.api.get(url)).await?;
        Ok(MembersPage {
            members: envelope.response,
            total: envelope.total.or(envelope.count),
        })
    }

    /// Every entry of `room`'s members matching `filter` (DocSpace's fuzzy text search: compare
    /// with [`Member::is`]), all pages up to [`MAX_MEMBER_PAGES`]; more is an invalid response.
    pub async fn room_members_matching(
        &self,
        room: RoomId,
        filter: &str,
    ) -> Result<Vec<Member>, UpstreamError> {
        let mut members = Vec::new();
        for page_number in 0..MAX_MEMBER_PAGES {
            let page = self
                .room_members(room, filter, page_number * PAGE_SIZE)
                .await?;
            let count = page.members.len();
            members.extend(page.members);
            if count < PAGE_SIZE as usize {
                return Ok(members);
            }
        }
        Err(UpstreamError::InvalidResponse {
            service: Service::DocSpace,
            message: format!(
                "room {room} listed over {} member entries for one person's search",
                MAX_MEMBER_PAGES * PAGE_SIZE
            ),
        })
    }

    /// `PUT /api/2.0/files/rooms/{id}/share` with one invitation by id: a delta, only this person
    /// changes. Returns the members DocSpace reports for the ids sent (empty when it dropped the
    /// share: a disabled user, or one the key cannot see).
    #[tracing::instrument(name = "docspace.share_room", skip_all, fields(room = %room, access = %access), err(level = "debug", Display))]
    pub async fn share_room(
        &self,
        room: RoomId,
        user: &DocSpaceUserId,
        access: RoomAccess,
        notify: bool,
    ) -> Result<Vec<Member>, UpstreamError> {
        let url = self
            .api
            .url(&["api", "2.0", "files", "rooms", &room.to_string(), "share"]);
        let body = share_body(user, access, notify);
        let envelope: ShareEnvelope = self
            .api
            .json("share_room", self.api.put(url).json(&body))
            .await?;
        if let Some(warning) = envelope.response.warning.filter(|w| !w.trim().is_empty()) {
            tracing::warn!(room = %room, warning = %mask_emails_in(&warning), "DocSpace answered a room share with a warning");
        }
        Ok(envelope.response.members.unwrap_or_default())
    }

    /// `PUT /api/2.0/files/rooms/{id}/share` `{"invitations":[{"id":"<uuid>","access":0}],
    /// "notify":false}`: removes one person's access to a room, by id (DocSpace ignores a removal
    /// by email). A method of its own: [`RoomAccess`] has no 0, so no grant can remove anyone.
    /// Returns the members DocSpace reports for the id sent.
    #[tracing::instrument(name = "docspace.unshare_room", skip_all, fields(room = %room), err(level = "debug", Display))]
    pub async fn unshare_room(
        &self,
        room: RoomId,
        user: &DocSpaceUserId,
    ) -> Result<Vec<Member>, UpstreamError> {
        let url = self
            .api
            .url(&["api", "2.0", "files", "rooms", &room.to_string(), "share"]);
        let envelope: ShareEnvelope = self
            .api
            .json("unshare_room", self.api.put(url).json(&unshare_body(user)))
            .await?;
        if let Some(warning) = envelope.response.warning.filter(|w| !w.trim().is_empty()) {
            tracing::warn!(room = %room, warning = %mask_emails_in(&warning), "DocSpace answered a room removal with a warning");
        }
        Ok(envelope.response.members.unwrap_or_default())
    }

    /// `POST /api/2.0/people/invite` for one email: a batch is not transactional, so one per request.
    #[tracing::instrument(name = "docspace.invite", skip_all, fields(invite_type = %invite_type), err(level = "debug", Display))]
    pub async fn invite(&self, email: &str, invite_type: InviteType) -> Result<(), UpstreamError> {
        let url = self.api.url(&["api", "2.0", "people", "invite"]);
        let body = InviteRequest {
            invitations: [Invitation {
                email,
                kind: invite_type.as_str(),
            }],
        };
        self.api
            .success("invite", self.api.post(url).json(&body))
            .await
    }
}

fn share_body(user: &DocSpaceUserId, access: RoomAccess, notify: bool) -> ShareRequest<'_> {
    ShareRequest {
        invitations: [ShareInvitation {
            id: user.as_str(),
            access: access.as_int(),
        }],
        notify,
    }
}

/// The removal: access 0 (None) by id, mailing nobody. Never by email (DocSpace does nothing
/// with an email and access 0).
fn unshare_body(user: &DocSpaceUserId) -> ShareRequest<'_> {
    ShareRequest {
        invitations: [ShareInvitation {
            id: user.as_str(),
            access: 0,
        }],
        notify: false,
    }
}

/// `{"error":{"message":"..."}}`, or a validation problem (RFC 7807) inside `response`.
fn docspace_error_message(body: &serde_json::Value) -> Option<String> {
    if let Some(message) = body.pointer("/error/message").and_then(|m| m.as_str()) {
        return Some(message.to_string());
    }
    let problem = body.get("response")?;
    let title = problem.get("title").and_then(|t| t.as_str());
    let details: Vec<String> = problem
        .get("errors")
        .and_then(|e| e.as_object())
        .map(|errors| {
            errors
                .iter()
                .map(|(field, messages)| format!("{field}: {messages}"))
                .collect()
        })
        .unwrap_or_default();
    match (title, details.is_empty()) {
        (Some(title), true) => Some(title.to_string()),
        (Some(title), false) => Some(format!("{title} ({})", details.join("; "))),
        (None, false) => Some(details.join("; ")),
        (None, true) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_from_both_shapes() {
        let plain =
            serde_json::json!({"error":{"message":"Incorrect email"},"status":1,"statusCode":400});
        assert_eq!(
            docspace_error_message(&plain).as_deref(),
            Some("Incorrect email")
        );
        let problem = serde_json::json!({"response":{"title":"One or more validation errors occurred.","errors":{"Invitations[0].Type":["bad"]}}});
        let text = docspace_error_message(&problem).unwrap();
        assert!(
            text.starts_with("One or more validation errors occurred."),
            "{text}"
        );
        assert!(text.contains("Invitations[0].Type"), "{text}");
        assert_eq!(docspace_error_message(&serde_json::json!({})), None);
    }

    #[test]
    fn debug_hides_the_api_key() {
        let client = DocSpaceClient::new(
            "https://x.onlyoffice.com",
            SecretString::from("sk-very-secret"),
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(!format!("{client:?}").contains("sk-very-secret"));
    }

    const USER: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

    #[test]
    fn share_body_is_by_id_with_the_integer_access() {
        let id: DocSpaceUserId = USER.parse().unwrap();
        assert_eq!(
            serde_json::to_value(share_body(&id, RoomAccess::Editing, true)).unwrap(),
            serde_json::json!({"invitations":[{"id": USER, "access": 10}],"notify":true})
        );
        let body = serde_json::to_value(share_body(&id, RoomAccess::Read, false)).unwrap();
        assert_eq!(body["invitations"][0]["access"], 2);
        assert!(body["invitations"][0].get("email").is_none());
    }

    #[test]
    fn unshare_body_is_by_id_with_access_zero_and_no_notification() {
        let id: DocSpaceUserId = USER.parse().unwrap();
        let body = serde_json::to_value(unshare_body(&id)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"invitations":[{"id": USER, "access": 0}],"notify":false})
        );
        assert!(body["invitations"][0].get("email").is_none());
    }

    #[test]
    fn create_body_has_title_integer_type_and_tags_and_nothing_else() {
        let room = NewRoom {
            title: "Website".into(),
            room_type: RoomType::Collaboration,
            tags: vec!["asana-project:1200000000000100".into()],
        };
        assert_eq!(
            serde_json::to_value(&room).unwrap(),
            serde_json::json!({"title":"Website","roomType":2,"tags":["asana-project:1200000000000100"]})
        );
    }

    #[test]
    fn rooms_decode_with_their_type_tags_and_archive_state() {
        let room: Room = serde_json::from_value(serde_json::json!({
            "id": 45, "title": "Website", "roomType": 5, "tags": ["asana-project:1"],
            "rootFolderType": 20, "private": false
        }))
        .unwrap();
        assert_eq!(room.id.get(), 45);
        assert_eq!(room.room_type(), Some(RoomType::Custom));
        assert!(room.is_archived());
        let tag = RoomTag::for_project(&"1".parse().unwrap());
        assert!(room.has_tag(&tag));
        assert!(!room.has_tag(&RoomTag::for_project(&"12".parse().unwrap())));
        let bare: Room = serde_json::from_value(
            serde_json::json!({"id": 46, "tags": null, "rootFolderType": 14}),
        )
        .unwrap();
        assert!(!bare.is_archived());
        assert!(bare.tags.is_empty());
    }

    #[test]
    fn members_match_exactly_by_id_or_email_not_by_the_fuzzy_filter() {
        let page: MembersEnvelope = serde_json::from_value(serde_json::json!({
            "response": [
                {"access": 10, "sharedToUser": {"id": USER, "email": "JoAnn@example.com"}, "subjectType": 0, "isOwner": false, "canRevoke": true},
                {"access": 9, "sharedToGroup": {"id": "g"}, "subjectType": 2, "isOwner": false, "canRevoke": true}
            ],
            "count": 2
        }))
        .unwrap();
        assert_eq!(page.count, Some(2));
        let joann = &page.response[0];
        assert!(joann.is(None, "joann@example.com"));
        assert!(!joann.is(None, "ann@example.com"));
        let id: DocSpaceUserId = USER.parse().unwrap();
        assert!(joann.is(Some(&id), "someone-else@example.com"));
        assert!(!page.response[1].is(Some(&id), "joann@example.com"));
    }

    #[test]
    fn users_decode_with_a_uuid_and_a_status() {
        let user: UserEnvelope = serde_json::from_value(serde_json::json!({
            "response": {"id": USER, "email": "a@b.c", "status": 2, "displayName": "A"}
        }))
        .unwrap();
        assert_eq!(user.response.id.as_str(), USER);
        assert!(user.response.is_disabled());
        let bad = serde_json::from_value::<UserEnvelope>(serde_json::json!({
            "response": {"id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0"}
        }));
        assert!(bad.is_err());
    }

    #[test]
    fn invite_body_has_the_wire_shape() {
        let body = InviteRequest {
            invitations: [Invitation {
                email: "a@b.c",
                kind: InviteType::User.as_str(),
            }],
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"invitations":[{"email":"a@b.c","type":"User"}]})
        );
    }
}
