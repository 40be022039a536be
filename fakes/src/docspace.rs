//! A DocSpace portal (API v2.0, server 3.7.x behaviour): people look-up by email, invitations,
//! the caller's own profile, and rooms (create, find by tag, read, members, share and remove),
//! behind `Authorization: Bearer <api key>`.
//!
//! Removals follow the server's `FileSharingAceHelper.SetAceObjectAsync`: `access` 0 by id removes
//! the member, a disabled (terminated) one included (the server skips terminated users only when
//! the access is not None); by email it never resolves anyone and does nothing; the room's owner
//! is skipped silently (200, no member in the answer).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{Value, json};

use crate::faults::Fault;
use crate::server::{Common, Connection, RecordedRequest, Server, bearer_matches, serve};

/// How many pending users an invite answer lists.
const PAGE: usize = 25;

/// The EmployeeType names the 3.7.0 spec lists for invitations.
const EMPLOYEE_TYPES: [&str; 5] = ["All", "RoomAdmin", "Guest", "DocSpaceAdmin", "User"];

/// An invitation that made DocSpace send an email (a new person).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentInvitation {
    pub email: String,
    pub employee_type: String,
}

/// The caller (the API key's user): the owner of every room the fake creates.
const ADMIN_EMAIL: &str = "admin@example.com";

/// DocSpace's longest room title, in UTF-16 units.
const MAX_TITLE: usize = 170;

/// The RoomType integers DocSpace 3.7 knows.
const ROOM_TYPES: [i64; 6] = [1, 2, 5, 6, 8, 9];

/// `rootFolderType` of active rooms and of the archive.
const ROOMS_FOLDER: i64 = 14;
const ARCHIVE_FOLDER: i64 = 20;

/// The fields `CreateRoomRequestDto` has (`additionalProperties: false`).
const CREATE_ROOM_FIELDS: [&str; 14] = [
    "title",
    "quota",
    "indexing",
    "denyDownload",
    "lifetime",
    "watermark",
    "logo",
    "tags",
    "color",
    "cover",
    "roomType",
    "private",
    "share",
    "culture",
];

/// The access (FileShare) a user member may have in a room of this type (DocSpace 3.7); 0
/// (remove) is allowed everywhere.
fn allowed_access(room_type: i64) -> &'static [i64] {
    match room_type {
        5 => &[9, 11, 10, 5, 6, 2],
        2 => &[9, 11, 10, 2],
        6 => &[9, 11],
        1 => &[9, 11, 7],
        8 => &[9, 11, 10, 2, 7],
        9 => &[9, 11, 2],
        _ => &[],
    }
}

/// A person the portal knows.
#[derive(Debug, Clone)]
struct Person {
    id: String,
    /// 1 active, 2 disabled, 4 pending invitation.
    status: u8,
    /// The EmployeeType name.
    employee_type: String,
}

/// A room as the fake keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeRoom {
    pub id: i64,
    pub title: String,
    pub room_type: i64,
    pub tags: Vec<String>,
    pub archived: bool,
    pub deleted: bool,
    /// The owner's user id (the API key's user).
    pub owner: String,
    /// User id → FileShare integer, the owner included (9).
    pub members: BTreeMap<String, i64>,
}

#[derive(Default)]
struct Portal {
    api_key: String,
    /// Lowercased email → person.
    people: HashMap<String, Person>,
    sent: Vec<SentInvitation>,
    /// Emails whose invitation is refused with 400 "User disabled" (v3.7.1 behaviour).
    disabled: Vec<String>,
    /// Each refusal actually answered for a disabled email.
    refused: Vec<String>,
    rooms: BTreeMap<i64, FakeRoom>,
    next_room_id: i64,
    /// Rooms (not deleted) the tariff allows; `None`: no limit.
    room_quota: Option<usize>,
    /// Whether the key's user may create rooms (a RoomAdmin or DocSpace admin).
    cannot_create_rooms: bool,
}

impl Portal {
    /// Adds (or updates) a person; returns their id.
    fn put_person(&mut self, email: &str, status: u8, employee_type: &str) -> String {
        let email = email.to_lowercase();
        let person = self.people.entry(email.clone()).or_insert_with(|| Person {
            id: user_id(&email),
            status,
            employee_type: employee_type.to_string(),
        });
        person.status = status;
        person.employee_type = employee_type.to_string();
        person.id.clone()
    }

    fn email_of(&self, id: &str) -> Option<&str> {
        self.people
            .iter()
            .find(|(_, person)| person.id == id)
            .map(|(email, _)| email.as_str())
    }

    fn person_by_id(&self, id: &str) -> Option<(&str, &Person)> {
        self.people
            .iter()
            .find(|(_, person)| person.id == id)
            .map(|(email, person)| (email.as_str(), person))
    }

    fn new_room(&mut self, title: &str, room_type: i64, tags: &[String]) -> i64 {
        self.next_room_id += 1;
        let id = self.next_room_id;
        let owner = self.put_person(ADMIN_EMAIL, 1, "DocSpaceAdmin");
        let mut unique_tags: Vec<String> = Vec::new();
        for tag in tags {
            if !unique_tags.contains(tag) {
                unique_tags.push(tag.clone());
            }
        }
        self.rooms.insert(
            id,
            FakeRoom {
                id,
                title: title.to_string(),
                room_type,
                tags: unique_tags,
                archived: false,
                deleted: false,
                owner: owner.clone(),
                members: BTreeMap::from([(owner, 9)]),
            },
        );
        id
    }

    fn live_rooms(&self) -> usize {
        self.rooms.values().filter(|r| !r.deleted).count()
    }

    /// A `FileShareDto` for `user_id` with `access` in `room`.
    fn share_entry(&self, room: &FakeRoom, user_id: &str, access: i64) -> Value {
        let email = self.email_of(user_id).unwrap_or_default();
        let is_owner = room.owner == user_id;
        json!({
            "access": access,
            "sharedToUser": {"id": user_id, "displayName": email, "email": email},
            "subjectType": 0,
            "isLocked": false,
            "isOwner": is_owner,
            "canEditAccess": !is_owner,
            "canEditInternal": false,
            "canEditDenyDownload": false,
            "canEditExpirationDate": false,
            "canRevoke": !is_owner,
        })
    }
}

#[derive(Clone)]
struct Shared {
    portal: Arc<Mutex<Portal>>,
    common: Arc<Common>,
}

/// A running DocSpace fake; stops when dropped.
pub struct DocSpaceFake {
    shared: Shared,
    server: Server,
}

impl DocSpaceFake {
    /// Starts a portal that accepts `api_key`.
    pub async fn start(api_key: &str) -> DocSpaceFake {
        let shared = Shared {
            portal: Arc::new(Mutex::new(Portal {
                api_key: api_key.to_string(),
                ..Portal::default()
            })),
            common: Arc::new(Common::default()),
        };
        let router = Router::new()
            .route("/api/2.0/people/email", get(find_by_email))
            .route("/api/2.0/people/invite", post(invite))
            .route("/api/2.0/people/@self", get(self_profile))
            .route("/api/2.0/files/rooms", get(find_rooms).post(create_room))
            .route("/api/2.0/files/rooms/{id}", get(get_room))
            .route(
                "/api/2.0/files/rooms/{id}/share",
                get(room_members).put(share_room),
            )
            .with_state(shared.clone());
        let server = serve(router, shared.common.clone()).await;
        DocSpaceFake { shared, server }
    }

    /// The portal URL, for `docspace.base_url`.
    pub fn url(&self) -> String {
        self.server.url.clone()
    }

    /// An existing, active member (of the `All` type, as the original integration invites).
    pub fn add_member(&self, email: &str) {
        self.add_member_as(email, "All");
    }

    /// An existing, active member of this EmployeeType (`User`, `RoomAdmin`, ...).
    pub fn add_member_as(&self, email: &str, employee_type: &str) {
        self.shared
            .portal
            .lock()
            .unwrap()
            .put_person(email, 1, employee_type);
    }

    /// Invitations of `email` are refused with 400 "User disabled: <email>", and a known person
    /// gets status 2 (shares to them are dropped silently).
    pub fn disable(&self, email: &str) {
        let email = email.to_lowercase();
        let mut portal = self.shared.portal.lock().unwrap();
        if let Some(person) = portal.people.get_mut(&email) {
            person.status = 2;
        }
        portal.disabled.push(email);
    }

    /// The person's id (a dashed uuid), if the portal knows them.
    pub fn user_id(&self, email: &str) -> Option<String> {
        let portal = self.shared.portal.lock().unwrap();
        portal
            .people
            .get(&email.to_lowercase())
            .map(|p| p.id.clone())
    }

    /// A room made by hand (as the API key's user, its owner); returns its id.
    pub fn create_room(&self, title: &str, room_type: i64, tags: &[&str]) -> i64 {
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        self.shared
            .portal
            .lock()
            .unwrap()
            .new_room(title, room_type, &tags)
    }

    /// Moves the room to the archive (`rootFolderType` 20): shares are refused with 403.
    pub fn archive_room(&self, id: i64) {
        if let Some(room) = self.shared.portal.lock().unwrap().rooms.get_mut(&id) {
            room.archived = true;
        }
    }

    /// Deletes the room: every call on it answers 404.
    pub fn delete_room(&self, id: i64) {
        if let Some(room) = self.shared.portal.lock().unwrap().rooms.get_mut(&id) {
            room.deleted = true;
        }
    }

    pub fn room(&self, id: i64) -> Option<FakeRoom> {
        self.shared.portal.lock().unwrap().rooms.get(&id).cloned()
    }

    /// Every room, deleted ones included, by id.
    pub fn rooms(&self) -> Vec<FakeRoom> {
        self.shared
            .portal
            .lock()
            .unwrap()
            .rooms
            .values()
            .cloned()
            .collect()
    }

    /// The room's members as (email, access), sorted by email; the owner included.
    pub fn members(&self, id: i64) -> Vec<(String, i64)> {
        let portal = self.shared.portal.lock().unwrap();
        let mut members: Vec<(String, i64)> = portal
            .rooms
            .get(&id)
            .map(|room| {
                room.members
                    .iter()
                    .map(|(user, access)| {
                        (portal.email_of(user).unwrap_or(user).to_string(), *access)
                    })
                    .collect()
            })
            .unwrap_or_default();
        members.sort();
        members
    }

    /// Gives `email` (made an active `User` if unknown) `access` in the room, as an admin would by
    /// hand; 0 removes them.
    pub fn share_by_hand(&self, id: i64, email: &str, access: i64) {
        let mut portal = self.shared.portal.lock().unwrap();
        let user = match portal.people.get(&email.to_lowercase()) {
            Some(person) => person.id.clone(),
            None => portal.put_person(email, 1, "User"),
        };
        if let Some(room) = portal.rooms.get_mut(&id) {
            if access == 0 {
                room.members.remove(&user);
            } else {
                room.members.insert(user, access);
            }
        }
    }

    /// Rooms beyond `limit` (deleted ones not counted) are refused with 402.
    pub fn set_room_quota(&self, limit: Option<usize>) {
        self.shared.portal.lock().unwrap().room_quota = limit;
    }

    /// `false`: the key's user is no room admin, and creating a room is refused with 403.
    pub fn set_can_create_rooms(&self, can: bool) {
        self.shared.portal.lock().unwrap().cannot_create_rooms = !can;
    }

    /// Makes `email` (an active `RoomAdmin` if unknown) the room's owner, as a transfer of
    /// ownership does: a RoomManager member listed with `isOwner: true` and `canRevoke: false`, whom
    /// no share request can change. The previous owner stays a RoomManager.
    pub fn set_room_owner(&self, room: i64, email: &str) {
        let mut portal = self.shared.portal.lock().unwrap();
        let user = match portal.people.get(&email.to_lowercase()) {
            Some(person) => person.id.clone(),
            None => portal.put_person(email, 1, "RoomAdmin"),
        };
        let room = portal
            .rooms
            .get_mut(&room)
            .unwrap_or_else(|| panic!("no room {room} at the DocSpace fake"));
        room.owner = user.clone();
        room.members.insert(user, 9);
    }

    /// The FileShare integer `email` has in the room now; `None` when they are no member (or the
    /// room is unknown).
    pub fn member_access(&self, room: i64, email: &str) -> Option<i64> {
        let portal = self.shared.portal.lock().unwrap();
        let id = &portal.people.get(&email.to_lowercase())?.id;
        portal.rooms.get(&room)?.members.get(id).copied()
    }

    /// Every share `PUT` with an invitation DocSpace reads as access 0 (a removal: the integer 0,
    /// or anything that is not a FileShare integer), by id or by email, including refused ones.
    pub fn unshare_requests(&self) -> Vec<RecordedRequest> {
        self.share_requests()
            .into_iter()
            .filter(|r| removes_anyone(&r.body))
            .collect()
    }

    /// Every `PUT /api/2.0/files/rooms/{id}/share` received, including refused ones.
    pub fn share_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| {
                r.method == Method::PUT
                    && r.path.starts_with("/api/2.0/files/rooms/")
                    && r.path.ends_with("/share")
            })
            .collect()
    }

    /// Every `POST /api/2.0/files/rooms` received, including refused ones.
    pub fn room_create_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == Method::POST && r.path == "/api/2.0/files/rooms")
            .collect()
    }

    /// How many 400s were answered for `email` (a disabled one).
    pub fn refusals(&self, email: &str) -> usize {
        let email = email.to_lowercase();
        self.shared
            .portal
            .lock()
            .unwrap()
            .refused
            .iter()
            .filter(|e| **e == email)
            .count()
    }

    pub fn knows(&self, email: &str) -> bool {
        self.shared
            .portal
            .lock()
            .unwrap()
            .people
            .contains_key(&email.to_lowercase())
    }

    /// Invitations that reached a new person, in order.
    pub fn sent_invitations(&self) -> Vec<SentInvitation> {
        self.shared.portal.lock().unwrap().sent.clone()
    }

    /// The emails invitations were sent to, sorted.
    pub fn sent_emails(&self) -> Vec<String> {
        let mut emails: Vec<String> = self
            .sent_invitations()
            .into_iter()
            .map(|i| i.email)
            .collect();
        emails.sort();
        emails
    }

    /// Every `POST /people/invite` received, including refused and repeated ones.
    pub fn invite_requests(&self) -> Vec<RecordedRequest> {
        self.requests_to("/api/2.0/people/invite")
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.common.requests()
    }

    /// How many requests each route (`"find_user"`, `"invite"`, `"room_members"`, `"share_room"`, ...) received, by the names [`Self::push_fault`]
    /// takes; cheap however long the request log is.
    pub fn calls_by_route(&self) -> BTreeMap<&'static str, u64> {
        self.shared.common.calls_by_route()
    }

    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// The next request to `route` (`"find_user"`, `"invite"`, `"self"`, `"create_room"`,
    /// `"find_rooms"`, `"get_room"`, `"room_members"`, `"share_room"`, `"unshare_room"`) gets
    /// `fault`. A share `PUT` whose every invitation reads as access 0 is `"unshare_room"` (a
    /// removal), any other `"share_room"`.
    pub fn push_fault(&self, route: &'static str, fault: Fault) {
        self.shared.common.push_fault(route, fault);
    }

    /// Every request gets one of `faults` with probability `rate`.
    pub fn set_random_faults(&self, rate: f64, faults: Vec<Fault>) {
        self.shared.common.set_random_faults(rate, faults);
    }

    pub fn clear_faults(&self) {
        self.shared.common.clear_faults();
    }

    /// Every answer is delayed by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.common.set_latency(latency);
    }

    /// Waits until at least `count` invitations were sent; false on timeout.
    pub async fn wait_for_sent(&self, count: usize, timeout: Duration) -> bool {
        let portal = self.shared.portal.clone();
        self.shared
            .common
            .wait_until(timeout, || portal.lock().unwrap().sent.len() >= count)
            .await
    }

    /// Waits until `condition` holds over the requests received so far.
    pub async fn wait_for_requests(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&[RecordedRequest]) -> bool,
    ) -> bool {
        let common = self.shared.common.clone();
        self.shared
            .common
            .wait_until(timeout, || condition(&common.requests()))
            .await
    }
}

fn authorized(portal: &Portal, headers: &HeaderMap) -> bool {
    bearer_matches(headers, &portal.api_key)
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"message": message}, "status": 1, "statusCode": status.as_u16()})),
    )
        .into_response()
}

/// A stable dashed uuid for `email` (`EmployeeDto.id` is `format: uuid`).
fn user_id(email: &str) -> String {
    let hex = format!("{:032x}", fxhash(&email.to_lowercase()));
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn profile(email: &str, status: u8) -> Value {
    json!({
        "id": user_id(email),
        "displayName": email,
        "email": email,
        "status": status,
        "activationStatus": if status == 4 { 2 } else { 1 },
        "isAdmin": false,
    })
}

fn fxhash(s: &str) -> u128 {
    s.bytes().fold(0xcbf29ce484222325u128, |h, b| {
        (h ^ u128::from(b)).wrapping_mul(0x100000001b3)
    })
}

async fn find_by_email(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let common = shared.common.clone();
    common
        .respond("find_user", &connection, async move {
            let portal = shared.portal.lock().unwrap();
            if !authorized(&portal, &headers) {
                return StatusCode::UNAUTHORIZED.into_response();
            }
            let email = query
                .get("email")
                .map(|e| e.to_lowercase())
                .unwrap_or_default();
            match portal.people.get(&email) {
                Some(person) => Json(
                    json!({"response": profile(&email, person.status), "status": 0, "statusCode": 200}),
                )
                .into_response(),
                None => error(StatusCode::NOT_FOUND, "The user could not be found"),
            }
        })
        .await
}

async fn invite(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let common = shared.common.clone();
    common
        .respond("invite", &connection, async move {
            let mut portal = shared.portal.lock().unwrap();
            if !authorized(&portal, &headers) {
                return StatusCode::UNAUTHORIZED.into_response();
            }
            let invitations = match parse_invitations(&body) {
                Ok(invitations) => invitations,
                Err(problem) => return validation_problem(&problem),
            };
            for (email, employee_type) in &invitations {
                if employee_type == "Guest" {
                    return error(StatusCode::FORBIDDEN, "Access denied");
                }
                if !email.contains('@') || email.starts_with('@') || email.ends_with('@') {
                    return error(StatusCode::BAD_REQUEST, "Incorrect email");
                }
                if portal.disabled.contains(email) {
                    let message = format!("User disabled: {email}");
                    portal.refused.push(email.clone());
                    return error(StatusCode::BAD_REQUEST, &message);
                }
            }
            for (email, employee_type) in invitations {
                // An email DocSpace already knows gets 200 and no new email.
                if portal.people.contains_key(&email) {
                    continue;
                }
                portal.put_person(&email, 4, &employee_type);
                portal.sent.push(SentInvitation { email, employee_type });
            }
            // The response lists pending users, not this call's result; a page of them is
            // enough for a simulator (the whole list would make the fake, not the bridge, the
            // bottleneck of a large backlog).
            let count = portal.sent.len();
            let pending: Vec<Value> = portal
                .sent
                .iter()
                .rev()
                .take(PAGE)
                .map(|invitation| profile(&invitation.email, 4))
                .collect();
            Json(json!({"response": pending, "count": count, "links": [], "status": 0, "statusCode": 200})).into_response()
        })
        .await
}

fn parse_invitations(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("body: {e}"))?;
    let list = value
        .get("invitations")
        .and_then(Value::as_array)
        .ok_or("invitations: required array")?;
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let email = item
            .get("email")
            .and_then(Value::as_str)
            .ok_or(format!("Invitations[{i}].Email: required string"))?;
        let employee_type = item
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| EMPLOYEE_TYPES.contains(t))
            .ok_or(format!(
                "Invitations[{i}].Type: must be one of {EMPLOYEE_TYPES:?}"
            ))?;
        out.push((email.to_lowercase(), employee_type.to_string()));
    }
    Ok(out)
}

fn validation_problem(problem: &str) -> Response {
    let (field, message) = problem.split_once(": ").unwrap_or(("body", problem));
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "response": {
                "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
                "title": "One or more validation errors occurred.",
                "status": 400,
                "errors": { field: [message] },
            },
            "status": 1,
            "statusCode": 400,
        })),
    )
        .into_response()
}

async fn self_profile(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
) -> Response {
    let common = shared.common.clone();
    common
        .respond("self", &connection, async move {
            let portal = shared.portal.lock().unwrap();
            if !authorized(&portal, &headers) {
                return StatusCode::UNAUTHORIZED.into_response();
            }
            let mut me = profile("admin@example.com", 1);
            me["isAdmin"] = json!(true);
            Json(json!({"response": me, "status": 0, "statusCode": 200})).into_response()
        })
        .await
}

fn ok(response: Value) -> Response {
    Json(json!({"response": response, "status": 0, "statusCode": 200})).into_response()
}

fn folder_not_found() -> Response {
    error(StatusCode::NOT_FOUND, "The required folder was not found")
}

/// A room as `FolderDtoInteger`.
fn room_json(room: &FakeRoom) -> Value {
    json!({
        "id": room.id,
        "title": room.title,
        "roomType": room.room_type,
        "tags": room.tags,
        "rootFolderType": if room.archived { ARCHIVE_FOLDER } else { ROOMS_FOLDER },
        "private": false,
        "parentId": 0,
        "createdBy": {"id": room.owner},
        "filesCount": 0,
        "foldersCount": 0,
    })
}

/// Why a request is refused, turned into DocSpace's answer by [`Refusal::response`].
enum Refusal {
    /// A 400 validation problem: `"field: message"`.
    Validation(String),
    Error(StatusCode, &'static str),
}

impl Refusal {
    fn response(self) -> Response {
        match self {
            Refusal::Validation(problem) => validation_problem(&problem),
            Refusal::Error(status, message) => error(status, message),
        }
    }
}

/// `count` (1 to 100, default 100) and `startIndex` (default 0) of a query.
fn paging(query: &HashMap<String, String>) -> Result<(usize, usize), Refusal> {
    let number = |name: &str, default: usize| -> Result<usize, Refusal> {
        match query.get(name) {
            None => Ok(default),
            Some(value) => value
                .parse::<usize>()
                .map_err(|_| Refusal::Validation(format!("{name}: must be an integer"))),
        }
    };
    let count = number("count", 100)?;
    if !(1..=100).contains(&count) {
        return Err(Refusal::Validation(
            "count: must be between 1 and 100".into(),
        ));
    }
    Ok((count, number("startIndex", 0)?))
}

fn room_id(raw: &str) -> Option<i64> {
    raw.parse::<i32>().ok().map(i64::from)
}

async fn create_room(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let common = shared.common.clone();
    common
        .respond("create_room", &connection, async move {
            let mut portal = shared.portal.lock().unwrap();
            if !authorized(&portal, &headers) {
                return StatusCode::UNAUTHORIZED.into_response();
            }
            let (title, room_type, tags) = match parse_new_room(&body) {
                Ok(room) => room,
                Err(refusal) => return refusal.response(),
            };
            if portal.cannot_create_rooms {
                return error(StatusCode::FORBIDDEN, "Access denied");
            }
            if portal
                .room_quota
                .is_some_and(|limit| portal.live_rooms() >= limit)
            {
                return error(
                    StatusCode::PAYMENT_REQUIRED,
                    "The room limit of your tariff has been reached",
                );
            }
            let id = portal.new_room(&title, room_type, &tags);
            ok(room_json(&portal.rooms[&id]))
        })
        .await
}

/// The title (trimmed), type and tags of a `CreateRoomRequestDto`, or the answer refusing it.
fn parse_new_room(body: &[u8]) -> Result<(String, i64, Vec<String>), Refusal> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| Refusal::Validation(format!("body: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| Refusal::Validation("body: must be an object".into()))?;
    if let Some(unknown) = object
        .keys()
        .find(|k| !CREATE_ROOM_FIELDS.contains(&k.as_str()))
    {
        return Err(Refusal::Validation(format!(
            "{unknown}: is not a known field"
        )));
    }
    let title = object
        .get("title")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Refusal::Validation("Title: required".into()))?;
    if title.encode_utf16().count() > MAX_TITLE {
        return Err(Refusal::Validation(format!(
            "Title: at most {MAX_TITLE} characters"
        )));
    }
    let room_type = object
        .get("roomType")
        .and_then(Value::as_i64)
        .filter(|t| ROOM_TYPES.contains(t))
        .ok_or_else(|| Refusal::Validation(format!("RoomType: must be one of {ROOM_TYPES:?}")))?;
    let shares = object
        .get("share")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    if object.get("private").and_then(Value::as_bool) == Some(true) && !shares {
        return Err(Refusal::Error(
            StatusCode::BAD_REQUEST,
            "A private room needs at least one share",
        ));
    }
    let tags = match object.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|t| t.as_str().map(str::to_string))
            .collect::<Option<Vec<String>>>()
            .ok_or_else(|| Refusal::Validation("Tags: must be strings".into()))?,
        Some(_) => return Err(Refusal::Validation("Tags: must be an array".into())),
    };
    Ok((title.to_string(), room_type, tags))
}

async fn find_rooms(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let common = shared.common.clone();
    common
        .respond("find_rooms", &connection, async move {
            let portal = shared.portal.lock().unwrap();
            if !authorized(&portal, &headers) {
                return StatusCode::UNAUTHORIZED.into_response();
            }
            // `tags` is a JSON array serialized into the string.
            let tags: Vec<String> = match query.get("tags") {
                None => Vec::new(),
                Some(raw) => match serde_json::from_str(raw) {
                    Ok(tags) => tags,
                    Err(_) => return validation_problem("tags: must be a JSON array of strings"),
                },
            };
            let search_area = match query.get("searchArea").map(|a| a.parse::<u8>()) {
                None => 0,
                Some(Ok(area @ 0..=2)) => area,
                Some(_) => return validation_problem("searchArea: must be 0, 1 or 2"),
            };
            let (count, start) = match paging(&query) {
                Ok(paging) => paging,
                Err(refusal) => return refusal.response(),
            };
            let filter = query
                .get("filterValue")
                .map(|f| f.trim().to_lowercase())
                .unwrap_or_default();
            let matching: Vec<&FakeRoom> = portal
                .rooms
                .values()
                .filter(|room| !room.deleted)
                .filter(|room| match search_area {
                    0 => !room.archived,
                    1 => room.archived,
                    _ => true,
                })
                .filter(|room| tags.iter().all(|tag| room.tags.contains(tag)))
                .filter(|room| filter.is_empty() || room.title.to_lowercase().contains(&filter))
                .collect();
            let page: Vec<Value> = matching
                .iter()
                .skip(start)
                .take(count)
                .map(|room| room_json(room))
                .collect();
            ok(json!({
                "folders": page,
                "files": [],
                "total": matching.len(),
                "pathParts": [],
                "startIndex": start,
                "count": page.len(),
            }))
        })
        .await
}

async fn get_room(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let common = shared.common.clone();
    common
        .respond("get_room", &connection, async move {
            let portal = shared.portal.lock().unwrap();
            if !authorized(&portal, &headers) {
                return StatusCode::UNAUTHORIZED.into_response();
            }
            match room_id(&id).and_then(|id| portal.rooms.get(&id)) {
                Some(room) if !room.deleted => ok(room_json(room)),
                _ => folder_not_found(),
            }
        })
        .await
}

async fn room_members(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let common = shared.common.clone();
    common
        .respond("room_members", &connection, async move {
            let portal = shared.portal.lock().unwrap();
            if !authorized(&portal, &headers) {
                return StatusCode::UNAUTHORIZED.into_response();
            }
            let Some(room) = room_id(&id)
                .and_then(|id| portal.rooms.get(&id))
                .filter(|room| !room.deleted)
            else {
                return folder_not_found();
            };
            let (count, start) = match paging(&query) {
                Ok(paging) => paging,
                Err(refusal) => return refusal.response(),
            };
            // A text search over emails and display names (which the fake sets to the email).
            let filter = query
                .get("filterValue")
                .map(|f| f.trim().to_lowercase())
                .unwrap_or_default();
            let mut matching: Vec<(&String, i64)> = room
                .members
                .iter()
                .filter(|(user, _)| {
                    filter.is_empty()
                        || portal
                            .email_of(user)
                            .is_some_and(|email| email.contains(&filter))
                })
                .map(|(user, access)| (user, *access))
                .collect();
            // The owner first, as DocSpace lists it.
            matching.sort_by_key(|(user, _)| **user != room.owner);
            let page: Vec<Value> = matching
                .iter()
                .skip(start)
                .take(count)
                .map(|(user, access)| portal.share_entry(room, user, *access))
                .collect();
            let page_len = page.len();
            Json(json!({
                "response": page,
                "total": matching.len(),
                "count": page_len,
                "links": [],
                "status": 0,
                "statusCode": 200,
            }))
            .into_response()
        })
        .await
}

/// The access DocSpace reads from an invitation's `access`: the FileShare integer, or 0 (None,
/// which removes) for a name or anything else.
fn read_access(item: &Value) -> i64 {
    item.get("access")
        .and_then(Value::as_i64)
        .filter(|a| (0..=11).contains(a))
        .unwrap_or(0)
}

/// Whether a share request body has an invitation DocSpace reads as a removal (access 0).
fn removes_anyone(body: &[u8]) -> bool {
    invitations_of(body).is_some_and(|list| list.iter().any(|item| read_access(item) == 0))
}

/// Whether every invitation of a share request body is a removal (and there is one): the
/// request's route is then `unshare_room`.
fn removes_only(body: &[u8]) -> bool {
    invitations_of(body)
        .is_some_and(|list| !list.is_empty() && list.iter().all(|item| read_access(item) == 0))
}

fn invitations_of(body: &[u8]) -> Option<Vec<Value>> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value.get("invitations")?.as_array().cloned()
}

/// One entry of a share request: by id or by email, with the access as DocSpace reads it (a
/// name, or anything but an integer, reads as 0: None, which removes).
enum ShareTarget {
    Id(String),
    Email(String),
}

fn parse_share(body: &[u8]) -> Result<(Vec<(ShareTarget, i64)>, bool), Refusal> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| Refusal::Validation(format!("body: {e}")))?;
    let list = value
        .get("invitations")
        .and_then(Value::as_array)
        .ok_or_else(|| Refusal::Validation("Invitations: required array".into()))?;
    let notify = value
        .get("notify")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let access = read_access(item);
        let target = if let Some(id) = item.get("id").and_then(Value::as_str) {
            ShareTarget::Id(id.to_lowercase())
        } else if let Some(email) = item.get("email").and_then(Value::as_str) {
            ShareTarget::Email(email.trim().to_lowercase())
        } else {
            return Err(Refusal::Validation(format!(
                "Invitations[{i}]: an id or an email is required"
            )));
        };
        out.push((target, access));
    }
    Ok((out, notify))
}

async fn share_room(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let common = shared.common.clone();
    let route = if removes_only(&body) {
        "unshare_room"
    } else {
        "share_room"
    };
    common
        .respond(route, &connection, async move {
            let mut portal = shared.portal.lock().unwrap();
            if !authorized(&portal, &headers) {
                return StatusCode::UNAUTHORIZED.into_response();
            }
            let Some(room) = room_id(&id)
                .and_then(|id| portal.rooms.get(&id))
                .filter(|room| !room.deleted)
                .cloned()
            else {
                return folder_not_found();
            };
            if room.archived {
                return error(StatusCode::FORBIDDEN, "Access denied");
            }
            let (invitations, _notify) = match parse_share(&body) {
                Ok(parsed) => parsed,
                Err(refusal) => return refusal.response(),
            };
            // Roles first: one not available refuses the whole request.
            for (target, access) in &invitations {
                if *access == 0 {
                    continue;
                }
                if !allowed_access(room.room_type).contains(access) {
                    return error(StatusCode::FORBIDDEN, "role not available");
                }
                let employee_type = match target {
                    ShareTarget::Id(id) => portal
                        .person_by_id(id)
                        .map(|(_, p)| p.employee_type.clone()),
                    ShareTarget::Email(email) => portal
                        .people
                        .get(email)
                        .map(|p| p.employee_type.clone())
                        .or_else(|| Some("Guest".to_string())),
                };
                if *access == 9 && matches!(employee_type.as_deref(), Some("User") | Some("Guest"))
                {
                    return error(StatusCode::FORBIDDEN, "role not available");
                }
            }
            let mut changed: Vec<(String, i64)> = Vec::new();
            let mut warnings: Vec<String> = Vec::new();
            for (target, access) in invitations {
                let user = match target {
                    ShareTarget::Id(id) => match portal.person_by_id(&id) {
                        // Unknown users are dropped silently, and so are disabled ones, except
                        // from a removal (the server skips terminated users only when the access
                        // is not None).
                        Some((_, person)) if person.status != 2 || access == 0 => id,
                        _ => continue,
                    },
                    // With access 0 an email is never resolved: nothing happens.
                    ShareTarget::Email(_) if access == 0 => continue,
                    ShareTarget::Email(email) => match portal.people.get(&email) {
                        Some(person) if person.status == 2 => continue,
                        Some(person) => person.id.clone(),
                        None => {
                            warnings.push(format!("{email} was invited to the portal as a guest"));
                            portal.put_person(&email, 4, "Guest")
                        }
                    },
                };
                if user == room.owner {
                    continue;
                }
                let room = portal.rooms.get_mut(&room.id).expect("checked above");
                if access == 0 {
                    room.members.remove(&user);
                } else {
                    room.members.insert(user.clone(), access);
                }
                changed.push((user, access));
            }
            let room = portal.rooms[&room.id].clone();
            let members: Vec<Value> = changed
                .iter()
                .filter(|(_, access)| *access != 0)
                .map(|(user, access)| portal.share_entry(&room, user, *access))
                .collect();
            let warning = (!warnings.is_empty()).then(|| warnings.join("; "));
            ok(json!({"members": members, "warning": warning, "error": 0}))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-fake";

    struct Client {
        fake: DocSpaceFake,
        http: reqwest::Client,
    }

    impl Client {
        async fn start() -> Client {
            Client {
                fake: DocSpaceFake::start(KEY).await,
                http: reqwest::Client::new(),
            }
        }

        async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
            let mut request = self
                .http
                .request(method, format!("{}{path}", self.fake.url()))
                .bearer_auth(KEY);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.json::<Value>().await.unwrap_or(Value::Null);
            (status, body)
        }

        async fn get(&self, path: &str) -> (u16, Value) {
            self.send(Method::GET, path, None).await
        }

        async fn post(&self, path: &str, body: Value) -> (u16, Value) {
            self.send(Method::POST, path, Some(body)).await
        }

        async fn put(&self, path: &str, body: Value) -> (u16, Value) {
            self.send(Method::PUT, path, Some(body)).await
        }
    }

    fn is_dashed_uuid(id: &str) -> bool {
        let lengths: Vec<usize> = id.split('-').map(str::len).collect();
        lengths == [8, 4, 4, 4, 12] && id.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
    }

    #[tokio::test]
    async fn people_have_dashed_uuid_ids() {
        let c = Client::start().await;
        c.fake.add_member("Jane@Example.com");
        let (status, body) = c.get("/api/2.0/people/email?email=jane@example.com").await;
        assert_eq!(status, 200);
        let id = body["response"]["id"].as_str().unwrap();
        assert!(is_dashed_uuid(id), "{id}");
        assert_eq!(c.fake.user_id("JANE@example.com").as_deref(), Some(id));
        c.fake.disable("jane@example.com");
        let (_, body) = c.get("/api/2.0/people/email?email=jane@example.com").await;
        assert_eq!(body["response"]["status"], 2);
    }

    #[tokio::test]
    async fn create_room_trims_the_title_creates_tags_and_refuses_what_docspace_refuses() {
        let c = Client::start().await;
        let (status, body) = c
            .post(
                "/api/2.0/files/rooms",
                json!({"title": "  Website ", "roomType": 2, "tags": ["asana-project:1"]}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let room = &body["response"];
        assert_eq!(room["title"], "Website");
        assert_eq!(room["roomType"], 2);
        assert_eq!(room["tags"], json!(["asana-project:1"]));
        assert_eq!(room["rootFolderType"], 14);
        let id = room["id"].as_i64().unwrap();
        assert_eq!(c.fake.room(id).unwrap().title, "Website");
        // The owner is a member, as a room manager.
        assert_eq!(c.fake.members(id), vec![(ADMIN_EMAIL.to_string(), 9)]);

        for (body, why) in [
            (
                json!({"title": "x".repeat(171), "roomType": 2}),
                "title over 170",
            ),
            (json!({"title": "x", "roomType": 3}), "unknown room type"),
            (
                json!({"title": "x", "roomType": "Collaboration"}),
                "type by name",
            ),
            (
                json!({"title": "x", "roomType": 2, "private": true}),
                "private without shares",
            ),
            (
                json!({"title": "x", "roomType": 2, "owner": "me"}),
                "unknown field",
            ),
            (json!({"roomType": 2}), "no title"),
        ] {
            let (status, _) = c.post("/api/2.0/files/rooms", body).await;
            assert_eq!(status, 400, "{why}");
        }
        assert_eq!(c.fake.rooms().len(), 1);
        assert_eq!(c.fake.room_create_requests().len(), 7);
    }

    #[tokio::test]
    async fn room_quota_gives_402_and_a_user_who_cannot_create_rooms_403() {
        let c = Client::start().await;
        c.fake.create_room("Existing", 2, &[]);
        c.fake.set_room_quota(Some(1));
        let (status, body) = c
            .post(
                "/api/2.0/files/rooms",
                json!({"title": "New", "roomType": 2}),
            )
            .await;
        assert_eq!(status, 402);
        assert_eq!(
            body["error"]["message"],
            "The room limit of your tariff has been reached"
        );
        c.fake.set_room_quota(None);
        c.fake.set_can_create_rooms(false);
        let (status, _) = c
            .post(
                "/api/2.0/files/rooms",
                json!({"title": "New", "roomType": 2}),
            )
            .await;
        assert_eq!(status, 403);
        assert_eq!(c.fake.rooms().len(), 1);
    }

    #[tokio::test]
    async fn find_rooms_by_tag_reads_a_json_array_and_the_search_area() {
        let c = Client::start().await;
        let active = c.fake.create_room("Website", 2, &["asana-project:1"]);
        let archived = c.fake.create_room("Old", 2, &["asana-project:1"]);
        c.fake.archive_room(archived);
        let deleted = c.fake.create_room("Gone", 2, &["asana-project:1"]);
        c.fake.delete_room(deleted);
        c.fake.create_room("Other", 2, &["asana-project:12"]);
        let tags = "%5B%22asana-project%3A1%22%5D";
        let ids = |body: &Value| -> Vec<i64> {
            body["response"]["folders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap())
                .collect()
        };
        let (status, body) = c
            .get(&format!(
                "/api/2.0/files/rooms?tags={tags}&searchArea=0&count=100"
            ))
            .await;
        assert_eq!(status, 200);
        assert_eq!(ids(&body), vec![active]);
        assert_eq!(body["response"]["total"], 1);
        assert_eq!(body["response"]["files"], json!([]));
        let (_, body) = c
            .get(&format!("/api/2.0/files/rooms?tags={tags}&searchArea=1"))
            .await;
        assert_eq!(ids(&body), vec![archived]);
        assert_eq!(body["response"]["folders"][0]["rootFolderType"], 20);
        let (_, body) = c
            .get(&format!("/api/2.0/files/rooms?tags={tags}&searchArea=2"))
            .await;
        assert_eq!(ids(&body), vec![active, archived]);
        let (status, _) = c.get("/api/2.0/files/rooms?tags=asana-project:1").await;
        assert_eq!(status, 400, "tags must be a JSON array");
        // filterValue is a fuzzy text search on titles.
        let (_, body) = c.get("/api/2.0/files/rooms?filterValue=web").await;
        assert_eq!(ids(&body), vec![active]);
    }

    #[tokio::test]
    async fn get_room_is_404_when_deleted_and_20_when_archived() {
        let c = Client::start().await;
        let id = c.fake.create_room("Website", 5, &[]);
        let (status, body) = c.get(&format!("/api/2.0/files/rooms/{id}")).await;
        assert_eq!(
            (status, body["response"]["roomType"].clone()),
            (200, json!(5))
        );
        c.fake.archive_room(id);
        let (_, body) = c.get(&format!("/api/2.0/files/rooms/{id}")).await;
        assert_eq!(body["response"]["rootFolderType"], 20);
        c.fake.delete_room(id);
        let (status, body) = c.get(&format!("/api/2.0/files/rooms/{id}")).await;
        assert_eq!(status, 404);
        assert_eq!(
            body["error"]["message"],
            "The required folder was not found"
        );
        let (status, _) = c.get("/api/2.0/files/rooms/999").await;
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn members_filter_is_a_text_search_and_the_owner_comes_first() {
        let c = Client::start().await;
        let id = c.fake.create_room("Website", 2, &[]);
        c.fake.share_by_hand(id, "joann@example.com", 2);
        let (status, body) = c
            .get(&format!(
                "/api/2.0/files/rooms/{id}/share?filterValue=ann@example.com"
            ))
            .await;
        assert_eq!(status, 200);
        let members = body["response"].as_array().unwrap();
        assert_eq!(members.len(), 1, "ann@ matches joann@: {body}");
        assert_eq!(members[0]["sharedToUser"]["email"], "joann@example.com");
        assert_eq!(members[0]["access"], 2);
        assert_eq!(body["total"], 1);
        let (_, body) = c.get(&format!("/api/2.0/files/rooms/{id}/share")).await;
        let first = &body["response"][0];
        assert_eq!(
            (
                first["isOwner"].clone(),
                first["access"].clone(),
                first["canRevoke"].clone()
            ),
            (json!(true), json!(9), json!(false))
        );
        c.fake.archive_room(id);
        let (status, _) = c.get(&format!("/api/2.0/files/rooms/{id}/share")).await;
        assert_eq!(status, 200, "an archived room's members can be read");
        c.fake.delete_room(id);
        let (status, _) = c.get(&format!("/api/2.0/files/rooms/{id}/share")).await;
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn members_page_with_count_and_start_index() {
        let c = Client::start().await;
        let id = c.fake.create_room("Website", 5, &[]);
        for i in 0..5 {
            c.fake.share_by_hand(id, &format!("p{i}@example.com"), 2);
        }
        let path = format!("/api/2.0/files/rooms/{id}/share?filterValue=example.com&count=2");
        let (_, first) = c.get(&format!("{path}&startIndex=0")).await;
        let (_, last) = c.get(&format!("{path}&startIndex=4")).await;
        // Six members: the owner (admin@example.com matches too) and five.
        assert_eq!(first["total"], 6);
        assert_eq!(first["count"], 2);
        assert_eq!(first["response"][0]["isOwner"], true);
        assert_eq!(last["response"].as_array().unwrap().len(), 2);
        let (status, _) = c
            .get(&format!("/api/2.0/files/rooms/{id}/share?count=101"))
            .await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn share_by_id_is_a_delta_with_integer_access() {
        let c = Client::start().await;
        let id = c.fake.create_room("Website", 2, &[]);
        c.fake.add_member_as("ann@example.com", "User");
        c.fake.share_by_hand(id, "bob@example.com", 2);
        let ann = c.fake.user_id("ann@example.com").unwrap();
        let path = format!("/api/2.0/files/rooms/{id}/share");
        let (status, body) = c
            .put(
                &path,
                json!({"invitations": [{"id": ann, "access": 10}], "notify": true}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let members = body["response"]["members"].as_array().unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0]["sharedToUser"]["id"], json!(ann));
        assert_eq!(members[0]["access"], 10);
        assert_eq!(body["response"]["warning"], Value::Null);
        // Bob, not in the request, is untouched.
        assert_eq!(
            c.fake.members(id),
            vec![
                (ADMIN_EMAIL.to_string(), 9),
                ("ann@example.com".to_string(), 10),
                ("bob@example.com".to_string(), 2),
            ]
        );
        // An access by name reads as 0 and removes the member: a bug shows.
        let (status, _) = c
            .put(
                &path,
                json!({"invitations": [{"id": ann, "access": "Editing"}], "notify": false}),
            )
            .await;
        assert_eq!(status, 200);
        assert!(
            !c.fake
                .members(id)
                .iter()
                .any(|(e, _)| e == "ann@example.com")
        );
        assert_eq!(c.fake.share_requests().len(), 2);
    }

    #[tokio::test]
    async fn share_refuses_roles_the_room_type_does_not_allow_and_archived_or_deleted_rooms() {
        let c = Client::start().await;
        let public = c.fake.create_room("Public", 6, &[]);
        c.fake.add_member_as("ann@example.com", "User");
        let ann = c.fake.user_id("ann@example.com").unwrap();
        let share = |room: i64, access: i64| {
            (
                format!("/api/2.0/files/rooms/{room}/share"),
                json!({"invitations": [{"id": ann, "access": access}], "notify": false}),
            )
        };
        let (path, body) = share(public, 10);
        let (status, answer) = c.put(&path, body).await;
        assert_eq!(status, 403);
        assert_eq!(answer["error"]["message"], "role not available");
        // RoomManager for a User-type member.
        let collaboration = c.fake.create_room("Collab", 2, &[]);
        let (path, body) = share(collaboration, 9);
        assert_eq!(c.put(&path, body).await.0, 403);
        c.fake.archive_room(collaboration);
        let (path, body) = share(collaboration, 10);
        let (status, answer) = c.put(&path, body).await;
        assert_eq!(
            (status, answer["error"]["message"].clone()),
            (403, json!("Access denied"))
        );
        c.fake.delete_room(collaboration);
        let (path, body) = share(collaboration, 10);
        assert_eq!(c.put(&path, body).await.0, 404);
    }

    #[tokio::test]
    async fn unknown_and_disabled_ids_are_dropped_silently_and_emails_make_guests() {
        let c = Client::start().await;
        let id = c.fake.create_room("Website", 2, &[]);
        c.fake.add_member_as("gone@example.com", "User");
        let gone = c.fake.user_id("gone@example.com").unwrap();
        c.fake.disable("gone@example.com");
        let path = format!("/api/2.0/files/rooms/{id}/share");
        let (status, body) = c
            .put(
                &path,
                json!({"invitations": [
                    {"id": gone, "access": 10},
                    {"id": "00000000-0000-0000-0000-000000000001", "access": 10}
                ], "notify": false}),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(body["response"]["members"], json!([]));
        // By email with access 0: never resolved, nothing happens.
        c.fake.share_by_hand(id, "kept@example.com", 2);
        let (_, body) = c
            .put(
                &path,
                json!({"invitations": [{"email": "kept@example.com", "access": 0}]}),
            )
            .await;
        assert_eq!(body["response"]["members"], json!([]));
        assert!(
            c.fake
                .members(id)
                .contains(&("kept@example.com".to_string(), 2))
        );
        // By email, an unknown address becomes a pending guest, with a warning.
        let (_, body) = c
            .put(
                &path,
                json!({"invitations": [{"email": "new@example.com", "access": 2}]}),
            )
            .await;
        assert!(
            body["response"]["warning"]
                .as_str()
                .unwrap()
                .contains("guest")
        );
        assert!(c.fake.knows("new@example.com"));
        assert!(
            c.fake
                .members(id)
                .contains(&("new@example.com".to_string(), 2))
        );
    }

    #[tokio::test]
    async fn room_routes_take_faults() {
        let c = Client::start().await;
        let id = c.fake.create_room("Website", 2, &[]);
        for route in [
            "create_room",
            "find_rooms",
            "get_room",
            "room_members",
            "share_room",
        ] {
            c.fake.push_fault(route, Fault::status(503));
        }
        assert_eq!(
            c.post("/api/2.0/files/rooms", json!({"title": "x", "roomType": 2}))
                .await
                .0,
            503
        );
        assert_eq!(c.get("/api/2.0/files/rooms").await.0, 503);
        assert_eq!(c.get(&format!("/api/2.0/files/rooms/{id}")).await.0, 503);
        assert_eq!(
            c.get(&format!("/api/2.0/files/rooms/{id}/share")).await.0,
            503
        );
        assert_eq!(
            c.put(
                &format!("/api/2.0/files/rooms/{id}/share"),
                json!({"invitations": []})
            )
            .await
            .0,
            503
        );
        assert_eq!(
            c.fake.rooms().len(),
            1,
            "the fault answered before the work"
        );
        // HangAfterWork: the share is applied, the answer never comes.
        c.fake.add_member_as("ann@example.com", "User");
        let ann = c.fake.user_id("ann@example.com").unwrap();
        c.fake.push_fault("share_room", Fault::HangAfterWork);
        let request = c
            .http
            .put(format!("{}/api/2.0/files/rooms/{id}/share", c.fake.url()))
            .bearer_auth(KEY)
            .json(&json!({"invitations": [{"id": ann, "access": 10}]}))
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        assert!(request.is_err());
        assert!(
            c.fake
                .members(id)
                .contains(&("ann@example.com".to_string(), 10))
        );
    }

    #[tokio::test]
    async fn calls_are_counted_by_route_faults_included() {
        let c = Client::start().await;
        c.fake.add_member("jane@example.com");
        c.fake.push_fault("find_user", Fault::status(500));
        let room = c.fake.create_room("Website", 2, &[]);
        c.get("/api/2.0/people/email?email=jane@example.com").await;
        c.get("/api/2.0/people/email?email=jane@example.com").await;
        c.get(&format!("/api/2.0/files/rooms/{room}/share")).await;
        let calls = c.fake.calls_by_route();
        assert_eq!(
            calls.into_iter().collect::<Vec<_>>(),
            [("find_user", 2), ("room_members", 1)]
        );
    }

    #[tokio::test]
    async fn a_removal_by_id_removes_and_one_by_email_changes_nothing() {
        let c = Client::start().await;
        let id = c.fake.create_room("Website", 2, &[]);
        c.fake.share_by_hand(id, "bob@example.com", 10);
        c.fake.share_by_hand(id, "carl@example.com", 2);
        let bob = c.fake.user_id("bob@example.com").unwrap();
        let path = format!("/api/2.0/files/rooms/{id}/share");
        // By email: DocSpace never resolves an email with access 0.
        let (status, body) = c
            .put(
                &path,
                json!({"invitations": [{"email": "bob@example.com", "access": 0}], "notify": false}),
            )
            .await;
        assert_eq!(
            (status, body["response"]["members"].clone()),
            (200, json!([]))
        );
        assert_eq!(c.fake.member_access(id, "bob@example.com"), Some(10));
        // By id: removed, and the answer lists nobody for it.
        let (status, body) = c
            .put(
                &path,
                json!({"invitations": [{"id": bob, "access": 0}], "notify": false}),
            )
            .await;
        assert_eq!(
            (status, body["response"]["members"].clone()),
            (200, json!([]))
        );
        assert_eq!(c.fake.member_access(id, "bob@example.com"), None);
        assert_eq!(c.fake.member_access(id, "carl@example.com"), Some(2));
        assert_eq!(c.fake.member_access(id, "nobody@example.com"), None);
        assert_eq!(c.fake.unshare_requests().len(), 2);
        // A grant is no removal, and is counted on its own route.
        c.fake.add_member_as("dana@example.com", "User");
        let dana = c.fake.user_id("dana@example.com").unwrap();
        c.put(&path, json!({"invitations": [{"id": dana, "access": 2}]}))
            .await;
        assert_eq!(c.fake.unshare_requests().len(), 2);
        assert_eq!(c.fake.share_requests().len(), 3);
        let calls = c.fake.calls_by_route();
        assert_eq!(
            (calls.get("unshare_room"), calls.get("share_room")),
            (Some(&2), Some(&1))
        );
    }

    #[tokio::test]
    async fn the_owner_is_listed_as_such_and_a_removal_skips_it_silently() {
        let c = Client::start().await;
        let id = c.fake.create_room("Website", 2, &[]);
        c.fake.set_room_owner(id, "olga@example.com");
        assert_eq!(c.fake.member_access(id, "olga@example.com"), Some(9));
        assert_eq!(
            c.fake.member_access(id, ADMIN_EMAIL),
            Some(9),
            "the previous owner stays a room manager"
        );
        let (_, body) = c
            .get(&format!(
                "/api/2.0/files/rooms/{id}/share?filterValue=olga@example.com"
            ))
            .await;
        let olga = &body["response"][0];
        assert_eq!(
            (
                olga["isOwner"].clone(),
                olga["canRevoke"].clone(),
                olga["access"].clone()
            ),
            (json!(true), json!(false), json!(9))
        );
        let (_, body) = c
            .get(&format!(
                "/api/2.0/files/rooms/{id}/share?filterValue={ADMIN_EMAIL}"
            ))
            .await;
        assert_eq!(
            (
                body["response"][0]["isOwner"].clone(),
                body["response"][0]["canRevoke"].clone()
            ),
            (json!(false), json!(true))
        );
        let owner = c.fake.user_id("olga@example.com").unwrap();
        let (status, body) = c
            .put(
                &format!("/api/2.0/files/rooms/{id}/share"),
                json!({"invitations": [{"id": owner, "access": 0}], "notify": false}),
            )
            .await;
        assert_eq!(
            (status, body["response"]["members"].clone()),
            (200, json!([]))
        );
        assert_eq!(c.fake.member_access(id, "olga@example.com"), Some(9));
    }

    #[tokio::test]
    async fn a_disabled_member_can_be_removed_by_id_but_never_granted() {
        let c = Client::start().await;
        let id = c.fake.create_room("Website", 2, &[]);
        c.fake.share_by_hand(id, "gone@example.com", 10);
        c.fake.disable("gone@example.com");
        let gone = c.fake.user_id("gone@example.com").unwrap();
        let path = format!("/api/2.0/files/rooms/{id}/share");
        let (status, _) = c
            .put(&path, json!({"invitations": [{"id": gone, "access": 2}]}))
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            c.fake.member_access(id, "gone@example.com"),
            Some(10),
            "a change for a disabled user is dropped"
        );
        c.put(&path, json!({"invitations": [{"id": gone, "access": 0}]}))
            .await;
        assert_eq!(c.fake.member_access(id, "gone@example.com"), None);
    }

    #[tokio::test]
    async fn a_removal_takes_faults_on_its_own_route() {
        let c = Client::start().await;
        let id = c.fake.create_room("Website", 2, &[]);
        c.fake.share_by_hand(id, "bob@example.com", 10);
        let bob = c.fake.user_id("bob@example.com").unwrap();
        let path = format!("/api/2.0/files/rooms/{id}/share");
        let removal = json!({"invitations": [{"id": bob, "access": 0}], "notify": false});
        c.fake.push_fault("unshare_room", Fault::status(503));
        c.fake.add_member_as("ann@example.com", "User");
        let ann = c.fake.user_id("ann@example.com").unwrap();
        let (status, _) = c
            .put(&path, json!({"invitations": [{"id": ann, "access": 10}]}))
            .await;
        assert_eq!(status, 200, "a grant does not take the removal's fault");
        assert_eq!(c.put(&path, removal.clone()).await.0, 503);
        assert_eq!(c.fake.member_access(id, "bob@example.com"), Some(10));
        // HangAfterWork: the removal is applied, the answer never comes.
        c.fake.push_fault("unshare_room", Fault::HangAfterWork);
        let request = c
            .http
            .put(format!("{}{path}", c.fake.url()))
            .bearer_auth(KEY)
            .json(&removal)
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        assert!(request.is_err());
        assert_eq!(c.fake.member_access(id, "bob@example.com"), None);
    }
}
