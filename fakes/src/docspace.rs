//! A DocSpace portal (API v2.0, server 3.7.x behaviour): people look-up by email, invitations,
//! and the caller's own profile, behind `Authorization: Bearer <api key>`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
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

#[derive(Default)]
struct Portal {
    api_key: String,
    /// Lowercased email → status (1 active, 4 pending invitation).
    people: HashMap<String, u8>,
    sent: Vec<SentInvitation>,
    /// Emails whose invitation is refused with 400 "User disabled" (v3.7.1 behaviour).
    disabled: Vec<String>,
    /// Each refusal actually answered for a disabled email.
    refused: Vec<String>,
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
            .with_state(shared.clone());
        let server = serve(router, shared.common.clone()).await;
        DocSpaceFake { shared, server }
    }

    /// The portal URL, for `docspace.base_url`.
    pub fn url(&self) -> String {
        self.server.url.clone()
    }

    /// An existing, active member.
    pub fn add_member(&self, email: &str) {
        self.shared
            .portal
            .lock()
            .unwrap()
            .people
            .insert(email.to_lowercase(), 1);
    }

    /// Invitations of `email` are refused with 400 "User disabled: <email>".
    pub fn disable(&self, email: &str) {
        self.shared
            .portal
            .lock()
            .unwrap()
            .disabled
            .push(email.to_lowercase());
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

    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// The next request to `route` (`"find_user"`, `"invite"`, `"self"`) gets `fault`.
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

fn profile(email: &str, status: u8) -> Value {
    json!({
        "id": format!("{:032x}", fxhash(email)),
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
                Some(status) => Json(
                    json!({"response": profile(&email, *status), "status": 0, "statusCode": 200}),
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
                portal.people.insert(email.clone(), 4);
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
