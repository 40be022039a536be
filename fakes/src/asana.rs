//! An Asana API (`/api/1.0`) that behaves like Asana where the bridge depends on it: tasks with
//! `opt_fields`, paged project tasks (`completed_since`, `modified_since`), projects by gid, the
//! token's user, and webhooks whose creation performs the handshake against the target before
//! answering 201 with the secret in the body. A task's life (assigned, completed, removed from a
//! project, deleted) changes its `modified_at`; the `*_delivery` functions build the events Asana
//! sends for each, for a test to deliver.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{Value, json};

use crate::faults::Fault;
use crate::server::{Common, Connection, RecordedRequest, Server, bearer_matches, serve};
use crate::{random_secret, sign};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeUser {
    pub gid: String,
    pub email: Option<String>,
    pub name: String,
}

impl FakeUser {
    pub fn new(gid: &str, email: &str) -> FakeUser {
        FakeUser {
            gid: gid.to_string(),
            email: Some(email.to_string()),
            name: email.split('@').next().unwrap_or(email).to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTask {
    pub gid: String,
    pub name: String,
    pub assignee: Option<FakeUser>,
    pub completed: bool,
    pub projects: Vec<String>,
    /// The task this is a subtask of.
    pub parent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeWebhook {
    pub gid: String,
    pub resource: String,
    /// `project`, or `workspace` for a webhook on one of the user's workspaces (which gets
    /// project events only, never task events).
    pub resource_type: String,
    pub target: String,
    pub secret: String,
    pub filters: Value,
    pub active: bool,
    pub created_at: String,
    pub last_success_at: Option<String>,
    pub last_failure_at: Option<String>,
    pub last_failure_content: Option<String>,
    pub delivery_retry_count: u32,
}

struct World {
    token: String,
    me: FakeUser,
    workspaces: Vec<(String, String)>,
    tasks: BTreeMap<String, FakeTask>,
    /// Project names set by [`AsanaFake::put_project`]; other projects are named `Project <gid>`.
    project_names: BTreeMap<String, String>,
    webhooks: BTreeMap<String, FakeWebhook>,
    next_gid: u64,
    /// When set, the 201 of the next webhook creation carries this secret instead of the real one.
    secret_in_body_override: Option<String>,
    /// When false, creating a webhook does not send the first heartbeat.
    heartbeat_after_create: bool,
    /// Each task's last change, strictly increasing (reconcile passes read `modified_since`).
    modified: BTreeMap<String, SystemTime>,
    /// When each completed task was completed (`completed_since` lists those completed since).
    completed_at: BTreeMap<String, SystemTime>,
    last_modified: SystemTime,
    /// Deliveries of [`AsanaFake::assign_and_deliver`] never sent: the share, and the generator.
    drop_rate: f64,
    drop_state: u64,
    dropped: Vec<DroppedDelivery>,
}

/// An assignment event Asana "lost": never sent to this webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedDelivery {
    pub webhook_gid: String,
    pub task_gid: String,
}

impl World {
    /// Records a change of `task_gid` now, strictly after every earlier one; returns its time.
    fn touch(&mut self, task_gid: &str) -> SystemTime {
        let at = SystemTime::now().max(self.last_modified + Duration::from_millis(1));
        self.last_modified = at;
        self.modified.insert(task_gid.to_string(), at);
        at
    }

    /// The stored task `gid`; a test naming a task the fake does not have is a broken test.
    fn task_mut(&mut self, gid: &str) -> &mut FakeTask {
        self.tasks
            .get_mut(gid)
            .unwrap_or_else(|| panic!("no task {gid} at the Asana fake"))
    }

    /// Whether the next delivery is dropped (splitmix64 over the seed: the same seed drops the
    /// same deliveries).
    fn drop_next(&mut self) -> bool {
        if self.drop_rate <= 0.0 {
            return false;
        }
        self.drop_state = self.drop_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.drop_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 / (1u64 << 53) as f64) < self.drop_rate
    }
}

#[derive(Clone)]
struct Shared {
    world: Arc<Mutex<World>>,
    common: Arc<Common>,
    http: reqwest::Client,
}

/// A running Asana fake; stops when dropped.
pub struct AsanaFake {
    shared: Shared,
    server: Server,
}

impl AsanaFake {
    /// Starts an Asana that accepts `token`, whose user is a member of one workspace.
    pub async fn start(token: &str) -> AsanaFake {
        let shared = Shared {
            world: Arc::new(Mutex::new(World {
                token: token.to_string(),
                me: FakeUser::new("90001", "operator@example.com"),
                workspaces: vec![("80001".to_string(), "Example Workspace".to_string())],
                tasks: BTreeMap::new(),
                project_names: BTreeMap::new(),
                webhooks: BTreeMap::new(),
                next_gid: 1_200_000_000_000_000,
                secret_in_body_override: None,
                heartbeat_after_create: true,
                modified: BTreeMap::new(),
                completed_at: BTreeMap::new(),
                last_modified: SystemTime::UNIX_EPOCH,
                drop_rate: 0.0,
                drop_state: 0,
                dropped: Vec::new(),
            })),
            common: Arc::new(Common::default()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
        };
        let router = Router::new()
            .route("/api/1.0/tasks/{gid}", get(get_task))
            .route("/api/1.0/tasks", get(list_tasks))
            .route("/api/1.0/projects/{gid}", get(get_project))
            .route("/api/1.0/projects/{gid}/tasks", get(list_project_tasks))
            .route("/api/1.0/users/me", get(users_me))
            .route("/api/1.0/users/{gid}", get(get_user))
            .route("/api/1.0/webhooks", get(list_webhooks).post(create_webhook))
            .route(
                "/api/1.0/webhooks/{gid}",
                get(get_webhook).put(update_webhook).delete(delete_webhook),
            )
            .with_state(shared.clone());
        let server = serve(router, shared.common.clone()).await;
        AsanaFake { shared, server }
    }

    /// The API root, for `asana.base_url`.
    pub fn url(&self) -> String {
        format!("{}/api/1.0", self.server.url)
    }

    /// Creates or replaces a task; it counts as modified now (and, if `completed`, as completed
    /// now unless it already was).
    pub fn put_task(&self, task: FakeTask) {
        let mut world = self.shared.world.lock().unwrap();
        let at = world.touch(&task.gid);
        if task.completed {
            world.completed_at.entry(task.gid.clone()).or_insert(at);
        } else {
            world.completed_at.remove(&task.gid);
        }
        world.tasks.insert(task.gid.clone(), task);
    }

    /// Marks `task_gid` completed (now) or re-opens it, as a person does in Asana: `modified_at`
    /// moves, and a completed task is listed only by a `completed_since` at or before now.
    pub fn complete_task(&self, task_gid: &str, completed: bool) {
        let mut world = self.shared.world.lock().unwrap();
        world.task_mut(task_gid).completed = completed;
        let at = world.touch(task_gid);
        if completed {
            world.completed_at.insert(task_gid.to_string(), at);
        } else {
            world.completed_at.remove(task_gid);
        }
    }

    /// Takes `task_gid` out of `project_gid` (it stays in its other projects); `modified_at` moves.
    pub fn remove_from_project(&self, task_gid: &str, project_gid: &str) {
        let mut world = self.shared.world.lock().unwrap();
        world
            .task_mut(task_gid)
            .projects
            .retain(|p| p != project_gid);
        world.touch(task_gid);
    }

    /// Deletes `task_gid`: `GET /tasks/{gid}` answers 404 (Asana's "Unknown object") and no list
    /// has it any more.
    pub fn delete_task(&self, task_gid: &str) {
        let mut world = self.shared.world.lock().unwrap();
        world.tasks.remove(task_gid);
        world.modified.remove(task_gid);
        world.completed_at.remove(task_gid);
    }

    /// The task as the fake holds it now (`None` once deleted).
    pub fn task(&self, task_gid: &str) -> Option<FakeTask> {
        self.shared
            .world
            .lock()
            .unwrap()
            .tasks
            .get(task_gid)
            .cloned()
    }

    /// Sets when task `gid` last changed, as `modified_at` shows and `modified_since` filters.
    pub fn set_modified_at(&self, gid: &str, at: SystemTime) {
        self.shared
            .world
            .lock()
            .unwrap()
            .modified
            .insert(gid.to_string(), at);
    }

    /// From now on, [`AsanaFake::assign_and_deliver`] drops this share (0 to 1) of its
    /// deliveries, chosen by `seed`.
    pub fn drop_deliveries(&self, rate: f64, seed: u64) {
        let mut world = self.shared.world.lock().unwrap();
        world.drop_rate = rate;
        world.drop_state = seed;
    }

    /// The deliveries dropped so far.
    pub fn dropped(&self) -> Vec<DroppedDelivery> {
        self.shared.world.lock().unwrap().dropped.clone()
    }

    /// Assigns `task_gid` in `project` to `assignee` and, as Asana does, sends the assignment
    /// event to every active webhook on the project, unless [`AsanaFake::drop_deliveries`]
    /// drops it (recorded in [`AsanaFake::dropped`]). Returns how many were sent.
    pub async fn assign_and_deliver(
        &self,
        task_gid: &str,
        project: &str,
        assignee: FakeUser,
    ) -> usize {
        let assignee_gid = assignee.gid.clone();
        self.assign(task_gid, project, Some(assignee));
        let hooks: Vec<FakeWebhook> = {
            let mut world = self.shared.world.lock().unwrap();
            let hooks: Vec<FakeWebhook> = world
                .webhooks
                .values()
                .filter(|h| h.active && h.resource == project)
                .cloned()
                .collect();
            let mut sent = Vec::new();
            for hook in hooks {
                if world.drop_next() {
                    world.dropped.push(DroppedDelivery {
                        webhook_gid: hook.gid.clone(),
                        task_gid: task_gid.to_string(),
                    });
                } else {
                    sent.push(hook);
                }
            }
            sent
        };
        let body = assignment_delivery(task_gid, &assignee_gid).to_string();
        for hook in &hooks {
            // A failed delivery is recorded on the webhook, as Asana does; the caller reads it there.
            let _ = deliver(&self.shared, hook, body.clone()).await;
        }
        hooks.len()
    }

    /// Sends `body` (one of the `*_delivery` functions' bodies) to every active webhook on
    /// `project`, as Asana does; returns how many deliveries were answered 2xx.
    pub async fn deliver_to_project(&self, project: &str, body: &Value) -> usize {
        let hooks: Vec<FakeWebhook> = self
            .webhooks()
            .into_iter()
            .filter(|h| h.active && h.resource_type == "project" && h.resource == project)
            .collect();
        let mut answered = 0;
        for hook in hooks {
            // A failed delivery is recorded on the webhook, as Asana does; the caller reads it there.
            if deliver(&self.shared, &hook, body.to_string())
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                answered += 1;
            }
        }
        self.shared.common.notify();
        answered
    }

    /// A task in `project` assigned to `assignee` (or nobody).
    pub fn assign(&self, task_gid: &str, project: &str, assignee: Option<FakeUser>) {
        self.put_task(FakeTask {
            gid: task_gid.to_string(),
            name: format!("Task {task_gid}"),
            assignee,
            completed: false,
            projects: vec![project.to_string()],
            parent: None,
        });
    }

    /// A subtask of `parent_gid`, in no project of its own, assigned to `assignee` (or nobody).
    pub fn assign_subtask(&self, task_gid: &str, parent_gid: &str, assignee: Option<FakeUser>) {
        self.put_task(FakeTask {
            gid: task_gid.to_string(),
            name: format!("Subtask {task_gid}"),
            assignee,
            completed: false,
            projects: Vec::new(),
            parent: Some(parent_gid.to_string()),
        });
    }

    /// Creates project `gid` named `name`, or renames it. A project a task or a webhook refers to
    /// exists without this, named `Project <gid>`.
    pub fn put_project(&self, gid: &str, name: &str) {
        self.shared
            .world
            .lock()
            .unwrap()
            .project_names
            .insert(gid.to_string(), name.to_string());
    }

    /// Creates project `gid` named `name` in `workspace`, and sends the `project` `added` event
    /// (its parent: the workspace) to every active webhook on the workspace, as Asana does.
    /// Returns the delivery's body, for a test to send it again.
    pub async fn add_project(&self, workspace: &str, gid: &str, name: &str) -> Value {
        self.put_project(gid, name);
        let body = project_added_delivery(gid, name, workspace);
        let hooks: Vec<FakeWebhook> = self
            .webhooks()
            .into_iter()
            .filter(|h| h.active && h.resource_type == "workspace" && h.resource == workspace)
            .collect();
        for hook in hooks {
            // Asana's own retries are not simulated: a failed delivery stays recorded on the hook.
            let _ = deliver(&self.shared, &hook, body.to_string()).await;
        }
        self.shared.common.notify();
        body
    }

    pub fn workspace_gid(&self) -> String {
        self.shared.world.lock().unwrap().workspaces[0].0.clone()
    }

    /// Gives the token's user a second workspace (so there is no "only" one).
    pub fn add_workspace(&self, gid: &str, name: &str) {
        self.shared
            .world
            .lock()
            .unwrap()
            .workspaces
            .push((gid.to_string(), name.to_string()));
    }

    pub fn webhooks(&self) -> Vec<FakeWebhook> {
        self.shared
            .world
            .lock()
            .unwrap()
            .webhooks
            .values()
            .cloned()
            .collect()
    }

    pub fn webhook(&self, gid: &str) -> Option<FakeWebhook> {
        self.shared.world.lock().unwrap().webhooks.get(gid).cloned()
    }

    /// Sets the webhook's filters, as if it had been created with them (a webhook registered by an
    /// older release, with fewer filters).
    pub fn set_webhook_filters(&self, gid: &str, filters: Value) {
        if let Some(hook) = self.shared.world.lock().unwrap().webhooks.get_mut(gid) {
            hook.filters = filters;
        }
    }

    /// Asana gave up on this webhook and deleted it.
    pub fn forget_webhook(&self, gid: &str) {
        self.shared.world.lock().unwrap().webhooks.remove(gid);
    }

    /// Records failed deliveries on a webhook, as Asana reports them.
    pub fn record_webhook_failure(&self, gid: &str, content: &str) {
        let mut world = self.shared.world.lock().unwrap();
        if let Some(hook) = world.webhooks.get_mut(gid) {
            // Strictly after the last success, even within the same millisecond.
            let mut at = SystemTime::now();
            if let Some(success) = hook
                .last_success_at
                .as_deref()
                .and_then(|t| humantime::parse_rfc3339(t).ok())
            {
                at = at.max(success + Duration::from_millis(1));
            }
            hook.last_failure_at = Some(humantime::format_rfc3339_millis(at).to_string());
            hook.last_failure_content = Some(content.to_string());
            hook.delivery_retry_count += 1;
        }
    }

    /// Asana stopped delivering to this webhook after failures (`content` the last one): it stays,
    /// `active: false`.
    pub fn deactivate_webhook(&self, gid: &str, content: &str) {
        self.record_webhook_failure(gid, content);
        if let Some(hook) = self.shared.world.lock().unwrap().webhooks.get_mut(gid) {
            hook.active = false;
        }
    }

    /// The next webhook creation answers 201 with `secret` in its body instead of the handshake's.
    pub fn answer_next_webhook_with_secret(&self, secret: &str) {
        self.shared.world.lock().unwrap().secret_in_body_override = Some(secret.to_string());
    }

    /// Whether creating a webhook sends the first heartbeat right after the handshake (default true).
    pub fn set_heartbeat_after_create(&self, enabled: bool) {
        self.shared.world.lock().unwrap().heartbeat_after_create = enabled;
    }

    /// Signs `body` with the webhook's secret and POSTs it to the webhook's target, as Asana does;
    /// the webhook's success/failure fields are updated from the answer.
    pub async fn deliver(
        &self,
        webhook_gid: &str,
        body: &Value,
    ) -> reqwest::Result<reqwest::Response> {
        let hook = self
            .webhook(webhook_gid)
            .expect("no such webhook at the Asana fake");
        deliver(&self.shared, &hook, body.to_string()).await
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.common.requests()
    }

    /// How many requests each route (`"get_task"`, `"list_tasks"`, ...) received, by the names [`Self::push_fault`]
    /// takes; cheap however long the request log is.
    pub fn calls_by_route(&self) -> BTreeMap<&'static str, u64> {
        self.shared.common.calls_by_route()
    }

    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        let full = format!("/api/1.0{path}");
        self.requests()
            .into_iter()
            .filter(|r| r.path == full)
            .collect()
    }

    /// The next request to `route` (`"get_task"`, `"list_tasks"`, `"get_project"`, `"users_me"`,
    /// `"create_webhook"`, `"get_webhook"`, `"list_webhooks"`, `"update_webhook"`,
    /// `"delete_webhook"`) gets `fault`.
    pub fn push_fault(&self, route: &'static str, fault: Fault) {
        self.shared.common.push_fault(route, fault);
    }

    pub fn set_random_faults(&self, rate: f64, faults: Vec<Fault>) {
        self.shared.common.set_random_faults(rate, faults);
    }

    pub fn clear_faults(&self) {
        self.shared.common.clear_faults();
    }

    pub fn set_latency(&self, latency: Duration) {
        self.shared.common.set_latency(latency);
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

/// The body of a delivery in which `task_gid` was assigned to user `assignee_gid`.
pub fn assignment_delivery(task_gid: &str, assignee_gid: &str) -> Value {
    json!({"events": [{
        "user": {"gid": "1111", "resource_type": "user"},
        "created_at": now_rfc3339(),
        "action": "changed",
        "resource": {"gid": task_gid, "resource_type": "task", "resource_subtype": "default_task"},
        "parent": null,
        "change": {"field": "assignee", "action": "changed", "new_value": {"gid": assignee_gid, "resource_type": "user"}}
    }]})
}

/// One task event as a project's webhook delivers it: `parent` set for `added`/`removed` only,
/// `change` for `changed` only (Asana's `EventResponse`).
fn task_event(
    task_gid: &str,
    action: &str,
    parent: Option<(&str, &str)>,
    change: Option<Value>,
) -> Value {
    let mut event = json!({
        "user": {"gid": "1111", "resource_type": "user"},
        "created_at": now_rfc3339(),
        "action": action,
        "resource": {"gid": task_gid, "resource_type": "task", "resource_subtype": "default_task"},
        "parent": parent.map(|(gid, resource_type)| json!({"gid": gid, "resource_type": resource_type})),
    });
    if let Some(change) = change {
        event["change"] = change;
    }
    json!({ "events": [event] })
}

/// The body of a delivery in which `task_gid` was unassigned: `changed` on `assignee` with no
/// `new_value` (Asana does not say who was unassigned).
pub fn unassignment_delivery(task_gid: &str) -> Value {
    task_event(
        task_gid,
        "changed",
        None,
        Some(json!({"field": "assignee", "action": "changed"})),
    )
}

/// The body of a delivery in which `task_gid` was completed or re-opened: `changed` on
/// `completed`, with no `new_value` (Asana sends one only when the value is a resource).
pub fn completion_delivery(task_gid: &str) -> Value {
    task_event(
        task_gid,
        "changed",
        None,
        Some(json!({"field": "completed", "action": "changed"})),
    )
}

/// The body of a delivery in which `task_gid` was removed from `project_gid` (the parent).
pub fn removed_delivery(task_gid: &str, project_gid: &str) -> Value {
    task_event(task_gid, "removed", Some((project_gid, "project")), None)
}

/// The body of a delivery in which `task_gid` left section `section_gid` (moved to another
/// section, or removed with its project): a section parent, which says nothing about projects.
pub fn removed_from_section_delivery(task_gid: &str, section_gid: &str) -> Value {
    task_event(task_gid, "removed", Some((section_gid, "section")), None)
}

/// The body of a delivery in which `task_gid` was deleted: `deleted`, no parent, no change.
pub fn deleted_delivery(task_gid: &str) -> Value {
    task_event(task_gid, "deleted", None, None)
}

/// The body of a delivery in which `task_gid` was added to `project_gid` (and a section of it).
pub fn task_added_delivery(task_gid: &str, project_gid: &str) -> Value {
    let created_at = now_rfc3339();
    json!({"events": [
        {"user": {"gid": "1111", "resource_type": "user"}, "created_at": created_at, "action": "added",
         "parent": {"gid": project_gid, "resource_type": "project"},
         "resource": {"gid": task_gid, "resource_type": "task", "resource_subtype": "default_task"}},
        {"user": {"gid": "1111", "resource_type": "user"}, "created_at": created_at, "action": "added",
         "parent": {"gid": "777", "resource_type": "section"},
         "resource": {"gid": task_gid, "resource_type": "task", "resource_subtype": "default_task"}}
    ]})
}

/// The body of a delivery in which project `project_gid` was added to `workspace_gid`.
fn project_added_delivery(project_gid: &str, name: &str, workspace_gid: &str) -> Value {
    json!({"events": [{
        "user": {"gid": "1111", "resource_type": "user"},
        "created_at": now_rfc3339(),
        "action": "added",
        "resource": {"gid": project_gid, "resource_type": "project", "name": name},
        "parent": {"gid": workspace_gid, "resource_type": "workspace"},
        "change": null
    }]})
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

async fn deliver(
    shared: &Shared,
    hook: &FakeWebhook,
    body: String,
) -> reqwest::Result<reqwest::Response> {
    let signature = sign(&hook.secret, body.as_bytes());
    let result = shared
        .http
        .post(&hook.target)
        .header("content-type", "application/json; charset=utf-8")
        .header("x-hook-signature", signature)
        .body(body)
        .send()
        .await;
    let mut world = shared.world.lock().unwrap();
    if let Some(stored) = world.webhooks.get_mut(&hook.gid) {
        match &result {
            Ok(response) if response.status().is_success() => {
                stored.last_success_at = Some(now_rfc3339())
            }
            Ok(response) => {
                stored.last_failure_at = Some(now_rfc3339());
                stored.last_failure_content = Some(format!("HTTP {}", response.status().as_u16()));
                stored.delivery_retry_count += 1;
            }
            Err(err) => {
                stored.last_failure_at = Some(now_rfc3339());
                stored.last_failure_content = Some(err.to_string());
                stored.delivery_retry_count += 1;
            }
        }
    }
    result
}

fn errors(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"errors": [{"message": message, "help": "For more information on API status codes and how to handle them, read the docs on errors: https://developers.asana.com/docs/errors"}]}))).into_response()
}

impl World {
    /// Project `gid`'s name, if the project exists: put by a test, or referred to by a task or a
    /// webhook.
    fn project_name(&self, gid: &str) -> Option<String> {
        if let Some(name) = self.project_names.get(gid) {
            return Some(name.clone());
        }
        // A scan of every task: fine for `GET /projects/{gid}`, too slow for each task read.
        let referred = self
            .tasks
            .values()
            .any(|t| t.projects.iter().any(|p| p == gid))
            || self
                .webhooks
                .values()
                .any(|h| h.resource_type == "project" && h.resource == gid);
        referred.then(|| default_project_name(gid))
    }

    /// The name of project `gid`, which a task or webhook being answered refers to (so it exists).
    fn referred_project_name(&self, gid: &str) -> String {
        self.project_names
            .get(gid)
            .cloned()
            .unwrap_or_else(|| default_project_name(gid))
    }

    fn workspace_name(&self, gid: &str) -> Option<String> {
        self.workspaces
            .iter()
            .find(|(workspace, _)| workspace == gid)
            .map(|(_, name)| name.clone())
    }
}

/// Asana's refusal of filters a workspace webhook cannot have: none, or any with `fields`.
fn workspace_filters_refusal(filters: &Value) -> Option<Response> {
    let usable = filters
        .as_array()
        .is_some_and(|list| !list.is_empty() && list.iter().all(|f| f.get("fields").is_none()));
    (!usable).then(|| {
        errors(
            StatusCode::BAD_REQUEST,
            "filters: Workspace webhooks require filters without fields",
        )
    })
}

fn default_project_name(gid: &str) -> String {
    format!("Project {gid}")
}

fn authorized(world: &World, headers: &HeaderMap) -> bool {
    bearer_matches(headers, &world.token)
}

fn unauthorized() -> Response {
    errors(StatusCode::UNAUTHORIZED, "Not Authorized")
}

fn opt_fields(query: &HashMap<String, String>) -> Vec<String> {
    query
        .get("opt_fields")
        .map(|f| f.split(',').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default()
}

/// A task as Asana renders it for the requested `opt_fields` (compact when none are given);
/// `projects` and `parent` are compact records, like Asana's.
fn render_task(world: &World, task: &FakeTask, fields: &[String]) -> Value {
    let wants = |f: &str| fields.iter().any(|x| x == f);
    let wants_under = |f: &str| {
        fields
            .iter()
            .any(|x| x == f || x.strip_prefix(f).is_some_and(|rest| rest.starts_with('.')))
    };
    let mut out = json!({"gid": task.gid, "resource_type": "task"});
    if fields.is_empty() || wants("name") {
        out["name"] = json!(task.name);
    }
    if fields.is_empty()
        || fields
            .iter()
            .any(|f| f == "assignee" || f.starts_with("assignee."))
    {
        out["assignee"] = match &task.assignee {
            None => Value::Null,
            Some(user) => {
                let mut a = json!({"gid": user.gid, "resource_type": "user"});
                if wants("assignee.email") {
                    a["email"] = json!(user.email);
                }
                if wants("assignee.name") || !wants("assignee.email") {
                    a["name"] = json!(user.name);
                }
                a
            }
        };
    }
    if wants("completed") {
        out["completed"] = json!(task.completed);
    }
    if wants("completed_at") {
        out["completed_at"] = json!(
            world
                .completed_at
                .get(&task.gid)
                .filter(|_| task.completed)
                .map(|at| humantime::format_rfc3339_millis(*at).to_string())
        );
    }
    if wants("modified_at") {
        out["modified_at"] = json!(
            world
                .modified
                .get(&task.gid)
                .map(|at| humantime::format_rfc3339_millis(*at).to_string())
        );
    }
    if wants_under("projects") {
        let projects: Vec<Value> = task
            .projects
            .iter()
            .map(|gid| json!({"gid": gid, "resource_type": "project", "name": world.referred_project_name(gid)}))
            .collect();
        out["projects"] = json!(projects);
    }
    if wants_under("parent") {
        out["parent"] = match task.parent.as_ref() {
            None => Value::Null,
            Some(gid) => {
                let name = world.tasks.get(gid).map(|t| t.name.clone());
                json!({"gid": gid, "resource_type": "task", "name": name, "resource_subtype": "default_task"})
            }
        };
    }
    out
}

async fn get_task(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    Path(gid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let common = shared.common.clone();
    common
        .respond("get_task", &connection, async move {
            let world = shared.world.lock().unwrap();
            if !authorized(&world, &headers) {
                return unauthorized();
            }
            match world.tasks.get(&gid) {
                Some(task) => Json(json!({"data": render_task(&world, task, &opt_fields(&query))}))
                    .into_response(),
                None => errors(
                    StatusCode::NOT_FOUND,
                    &format!("task: Unknown object: {gid}"),
                ),
            }
        })
        .await
}

async fn get_project(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    Path(gid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let common = shared.common.clone();
    common
        .respond("get_project", &connection, async move {
            let world = shared.world.lock().unwrap();
            if !authorized(&world, &headers) {
                return unauthorized();
            }
            let Some(name) = world.project_name(&gid) else {
                return errors(
                    StatusCode::NOT_FOUND,
                    &format!("project: Unknown object: {gid}"),
                );
            };
            let mut data = json!({"gid": gid, "resource_type": "project"});
            let fields = opt_fields(&query);
            if fields.is_empty() || fields.iter().any(|f| f == "name") {
                data["name"] = json!(name);
            }
            Json(json!({ "data": data })).into_response()
        })
        .await
}

async fn list_tasks(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(project) = query.get("project").cloned() else {
        return errors(StatusCode::BAD_REQUEST, "project: Missing input");
    };
    page_of_tasks(shared, connection, headers, project, query, "/tasks").await
}

async fn list_project_tasks(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let path = format!("/projects/{project}/tasks");
    page_of_tasks(shared, connection, headers, project, query, &path).await
}

async fn page_of_tasks(
    shared: Shared,
    connection: Connection,
    headers: HeaderMap,
    project: String,
    query: HashMap<String, String>,
    path: &str,
) -> Response {
    let common = shared.common.clone();
    let path = path.to_string();
    common
        .respond("list_tasks", &connection, async move {
            let world = shared.world.lock().unwrap();
            if !authorized(&world, &headers) {
                return unauthorized();
            }
            let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
                None => 100,
                Some(Ok(l)) if (1..=100).contains(&l) => l,
                _ => return errors(StatusCode::BAD_REQUEST, "limit: Must be between 1 and 100"),
            };
            // `completed_since`: incomplete tasks, and those completed at or after that time
            // (`now`: incomplete ones only); absent: every task.
            let completed_since = match query.get("completed_since").map(String::as_str) {
                None => None,
                Some("now") => Some(None),
                Some(since) => match humantime::parse_rfc3339_weak(since) {
                    Ok(at) => Some(Some(at)),
                    Err(_) => return errors(StatusCode::BAD_REQUEST, "completed_since: Invalid date"),
                },
            };
            let listed_by_completion = |t: &FakeTask| match completed_since {
                None => true,
                Some(_) if !t.completed => true,
                Some(None) => false,
                Some(Some(since)) => world.completed_at.get(&t.gid).is_some_and(|at| *at >= since),
            };
            // Only `GET /tasks` takes `modified_since`; `/projects/{gid}/tasks` ignores it.
            let modified_since = match query.get("modified_since").filter(|_| path == "/tasks") {
                None => None,
                Some(since) => match humantime::parse_rfc3339_weak(since) {
                    Ok(at) => Some(at),
                    Err(_) => return errors(StatusCode::BAD_REQUEST, "modified_since: Invalid date"),
                },
            };
            let tasks: Vec<&FakeTask> = world
                .tasks
                .values()
                .filter(|t| t.projects.contains(&project))
                .filter(|t| listed_by_completion(t))
                .filter(|t| modified_since.is_none_or(|since| world.modified.get(&t.gid).is_some_and(|at| *at >= since)))
                .collect();
            let start = match query.get("offset") {
                None => 0,
                Some(offset) => match offset.strip_prefix("off-").and_then(|n| n.parse::<usize>().ok()) {
                    Some(n) if n <= tasks.len() => n,
                    _ => return errors(StatusCode::BAD_REQUEST, "offset: Your pagination token is invalid."),
                },
            };
            let fields = opt_fields(&query);
            let end = (start + limit).min(tasks.len());
            let data: Vec<Value> = tasks[start..end].iter().map(|t| render_task(&world, t, &fields)).collect();
            let next_page = if end < tasks.len() {
                let offset = format!("off-{end}");
                json!({"offset": offset, "path": format!("{path}?limit={limit}&offset={offset}"), "uri": format!("https://app.asana.com/api/1.0{path}?limit={limit}&offset={offset}")})
            } else {
                Value::Null
            };
            Json(json!({"data": data, "next_page": next_page})).into_response()
        })
        .await
}

async fn get_user(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    Path(gid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let common = shared.common.clone();
    common
        .respond("get_user", &connection, async move {
            let world = shared.world.lock().unwrap();
            if !authorized(&world, &headers) {
                return unauthorized();
            }
            let user = std::iter::once(&world.me)
                .chain(world.tasks.values().filter_map(|t| t.assignee.as_ref()))
                .find(|u| u.gid == gid);
            let Some(user) = user else {
                return errors(
                    StatusCode::NOT_FOUND,
                    &format!("user: Unknown object: {gid}"),
                );
            };
            let fields = opt_fields(&query);
            let mut data = json!({"gid": user.gid, "resource_type": "user", "name": user.name});
            if fields.iter().any(|f| f == "email") {
                data["email"] = json!(user.email);
            }
            Json(json!({ "data": data })).into_response()
        })
        .await
}

async fn users_me(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
) -> Response {
    let common = shared.common.clone();
    common
        .respond("users_me", &connection, async move {
            let world = shared.world.lock().unwrap();
            if !authorized(&world, &headers) {
                return unauthorized();
            }
            let workspaces: Vec<Value> = world
                .workspaces
                .iter()
                .map(|(gid, name)| json!({"gid": gid, "name": name, "resource_type": "workspace"}))
                .collect();
            Json(json!({"data": {
                "gid": world.me.gid, "resource_type": "user", "name": world.me.name,
                "email": world.me.email, "workspaces": workspaces
            }}))
            .into_response()
        })
        .await
}

fn render_webhook(world: &World, hook: &FakeWebhook) -> Value {
    let name = match hook.resource_type.as_str() {
        "workspace" => world.workspace_name(&hook.resource).unwrap_or_default(),
        _ => world.referred_project_name(&hook.resource),
    };
    json!({
        "gid": hook.gid,
        "resource_type": "webhook",
        "active": hook.active,
        "resource": {"gid": hook.resource, "resource_type": hook.resource_type, "name": name},
        "target": hook.target,
        "created_at": hook.created_at,
        "filters": hook.filters,
        "last_success_at": hook.last_success_at,
        "last_failure_at": hook.last_failure_at,
        "last_failure_content": hook.last_failure_content.clone().unwrap_or_default(),
        "delivery_retry_count": hook.delivery_retry_count,
        "next_attempt_after": null,
        "failure_deletion_timestamp": null,
    })
}

async fn create_webhook(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let common = shared.common.clone();
    common
        .respond("create_webhook", &connection, async move {
            let (resource, resource_type, target, filters, gid, secret, heartbeat) = {
                let mut world = shared.world.lock().unwrap();
                if !authorized(&world, &headers) {
                return unauthorized();
            }
                let Ok(request) = serde_json::from_slice::<Value>(&body) else {
                    return errors(StatusCode::BAD_REQUEST, "Could not parse request data, invalid JSON");
                };
                let data = &request["data"];
                let (Some(resource), Some(target)) = (data["resource"].as_str(), data["target"].as_str()) else {
                    return errors(StatusCode::BAD_REQUEST, "resource, target: Missing input");
                };
                let resource_type = if world.workspace_name(resource).is_some() {
                    "workspace"
                } else {
                    "project"
                };
                if resource_type == "workspace"
                    && let Some(refusal) = workspace_filters_refusal(&data["filters"])
                {
                    return refusal;
                }
                if world.webhooks.values().any(|h| h.resource == resource && h.target == target) {
                    return errors(
                        StatusCode::FORBIDDEN,
                        "Duplicated webhook. You already have an existing webhook for the given resource and target. Delete the old one before creating another.",
                    );
                }
                world.next_gid += 1;
                (
                    resource.to_string(),
                    resource_type.to_string(),
                    target.to_string(),
                    data["filters"].clone(),
                    world.next_gid.to_string(),
                    random_secret(),
                    world.heartbeat_after_create,
                )
            };

            // The handshake happens while this request is still open, as at Asana.
            let handshake = shared
                .http
                .post(&target)
                .header("x-hook-secret", &secret)
                .send()
                .await;
            let echoed = match &handshake {
                Ok(response) if matches!(response.status().as_u16(), 200 | 204) => {
                    response.headers().get("x-hook-secret").and_then(|v| v.to_str().ok()) == Some(secret.as_str())
                }
                _ => false,
            };
            if !echoed {
                return errors(
                    StatusCode::BAD_REQUEST,
                    "The remote server did not respond with the handshake secret.",
                );
            }

            let (hook, rendered, secret_in_body) = {
                let mut world = shared.world.lock().unwrap();
                let hook = FakeWebhook {
                    gid: gid.clone(),
                    resource,
                    resource_type,
                    target,
                    secret: secret.clone(),
                    filters,
                    active: true,
                    created_at: now_rfc3339(),
                    last_success_at: None,
                    last_failure_at: None,
                    last_failure_content: None,
                    delivery_retry_count: 0,
                };
                world.webhooks.insert(gid, hook.clone());
                let secret_in_body = world.secret_in_body_override.take().unwrap_or(secret);
                let rendered = render_webhook(&world, &hook);
                (hook, rendered, secret_in_body)
            };
            if heartbeat {
                let shared = shared.clone();
                let hook = hook.clone();
                tokio::spawn(async move {
                    // Like Asana, retry a heartbeat that was not answered 2xx, backing off.
                    let mut pause = Duration::from_millis(50);
                    for _ in 0..6 {
                        tokio::time::sleep(pause).await;
                        if !shared.world.lock().unwrap().webhooks.contains_key(&hook.gid) {
                            break;
                        }
                        let answer = deliver(&shared, &hook, r#"{"events":[]}"#.to_string()).await;
                        shared.common.notify();
                        if answer.is_ok_and(|r| r.status().is_success()) {
                            break;
                        }
                        pause *= 2;
                    }
                });
            }
            (
                StatusCode::CREATED,
                Json(json!({"data": rendered, "X-Hook-Secret": secret_in_body})),
            )
                .into_response()
        })
        .await
}

async fn list_webhooks(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let common = shared.common.clone();
    common
        .respond("list_webhooks", &connection, async move {
            let world = shared.world.lock().unwrap();
            if !authorized(&world, &headers) {
                return unauthorized();
            }
            let Some(workspace) = query.get("workspace") else {
                return errors(StatusCode::BAD_REQUEST, "workspace: Missing input");
            };
            if !world.workspaces.iter().any(|(gid, _)| gid == workspace) {
                return errors(
                    StatusCode::NOT_FOUND,
                    &format!("workspace: Unknown object: {workspace}"),
                );
            }
            let data: Vec<Value> = world
                .webhooks
                .values()
                .map(|hook| render_webhook(&world, hook))
                .collect();
            Json(json!({"data": data, "next_page": null})).into_response()
        })
        .await
}

async fn get_webhook(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    Path(gid): Path<String>,
) -> Response {
    let common = shared.common.clone();
    common
        .respond("get_webhook", &connection, async move {
            let world = shared.world.lock().unwrap();
            if !authorized(&world, &headers) {
                return unauthorized();
            }
            match world.webhooks.get(&gid) {
                Some(hook) => Json(json!({"data": render_webhook(&world, hook)})).into_response(),
                None => errors(
                    StatusCode::NOT_FOUND,
                    &format!("webhook: Unknown object: {gid}"),
                ),
            }
        })
        .await
}

/// `PUT /webhooks/{gid}` `{"data":{"filters":[...]}}`: replaces the webhook's filters (Asana's
/// `updateWebhook`; the only field it changes).
async fn update_webhook(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    Path(gid): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let common = shared.common.clone();
    common
        .respond("update_webhook", &connection, async move {
            let mut world = shared.world.lock().unwrap();
            if !authorized(&world, &headers) {
                return unauthorized();
            }
            let Ok(request) = serde_json::from_slice::<Value>(&body) else {
                return errors(
                    StatusCode::BAD_REQUEST,
                    "Could not parse request data, invalid JSON",
                );
            };
            let filters = request["data"]["filters"].clone();
            if !filters.is_array() {
                return errors(StatusCode::BAD_REQUEST, "filters: Missing input");
            }
            let Some(hook) = world.webhooks.get(&gid) else {
                return errors(
                    StatusCode::NOT_FOUND,
                    &format!("webhook: Unknown object: {gid}"),
                );
            };
            if hook.resource_type == "workspace"
                && let Some(refusal) = workspace_filters_refusal(&filters)
            {
                return refusal;
            }
            let hook = world.webhooks.get_mut(&gid).expect("checked above");
            hook.filters = filters;
            let hook = hook.clone();
            Json(json!({"data": render_webhook(&world, &hook)})).into_response()
        })
        .await
}

async fn delete_webhook(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    Path(gid): Path<String>,
) -> Response {
    let common = shared.common.clone();
    common
        .respond("delete_webhook", &connection, async move {
            let mut world = shared.world.lock().unwrap();
            if !authorized(&world, &headers) {
                return unauthorized();
            }
            match world.webhooks.remove(&gid) {
                Some(_) => Json(json!({"data": {}})).into_response(),
                None => errors(
                    StatusCode::NOT_FOUND,
                    &format!("webhook: Unknown object: {gid}"),
                ),
            }
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "1/fake";
    const PROJECT: &str = "1200000000000100";
    const OTHER_PROJECT: &str = "1200000000000200";

    struct Client {
        fake: AsanaFake,
        http: reqwest::Client,
    }

    impl Client {
        async fn start() -> Client {
            Client {
                fake: AsanaFake::start(TOKEN).await,
                http: reqwest::Client::new(),
            }
        }

        async fn send(
            &self,
            method: reqwest::Method,
            path: &str,
            body: Option<Value>,
        ) -> (u16, Value) {
            let mut request = self
                .http
                .request(method, format!("{}{path}", self.fake.url()))
                .bearer_auth(TOKEN);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }

        async fn get(&self, path: &str) -> (u16, Value) {
            self.send(reqwest::Method::GET, path, None).await
        }

        /// The gids `GET /tasks?project=` lists with this `completed_since` (URL-encoded).
        async fn listed(&self, project: &str, completed_since: &str) -> Vec<String> {
            let (status, body) = self
                .get(&format!(
                    "/tasks?project={project}&completed_since={completed_since}&opt_fields=completed,modified_at"
                ))
                .await;
            assert_eq!(status, 200, "{body}");
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["gid"].as_str().unwrap().to_string())
                .collect()
        }

        async fn modified_at(&self, task: &str) -> String {
            let (_, body) = self
                .get(&format!("/tasks/{task}?opt_fields=modified_at"))
                .await;
            body["data"]["modified_at"].as_str().unwrap().to_string()
        }
    }

    fn rfc3339(at: SystemTime) -> String {
        humantime::format_rfc3339_millis(at).to_string()
    }

    #[tokio::test]
    async fn a_completed_task_is_listed_only_by_a_completed_since_before_its_completion() {
        let c = Client::start().await;
        let ann = FakeUser::new("7001", "ann@example.com");
        c.fake.assign("501", PROJECT, Some(ann.clone()));
        c.fake.assign("502", PROJECT, Some(ann));
        let before = rfc3339(SystemTime::now() - Duration::from_secs(60));
        let modified = c.modified_at("501").await;
        c.fake.complete_task("501", true);
        assert!(
            c.modified_at("501").await > modified,
            "completing moves modified_at"
        );

        let (_, task) = c.get("/tasks/501?opt_fields=completed,completed_at").await;
        assert_eq!(task["data"]["completed"], true);
        assert!(task["data"]["completed_at"].is_string(), "{task}");
        assert_eq!(c.listed(PROJECT, "now").await, ["502"]);
        assert_eq!(c.listed(PROJECT, &before).await, ["501", "502"]);
        let later = rfc3339(SystemTime::now() + Duration::from_secs(60));
        assert_eq!(c.listed(PROJECT, &later).await, ["502"]);
        let (_, all) = c
            .get(&format!("/tasks?project={PROJECT}&opt_fields=completed"))
            .await;
        assert_eq!(
            all["data"][0]["completed"], true,
            "no completed_since lists every task"
        );

        c.fake.complete_task("501", false);
        assert_eq!(c.listed(PROJECT, "now").await, ["501", "502"]);
        let (_, task) = c.get("/tasks/501?opt_fields=completed,completed_at").await;
        assert_eq!(
            (
                task["data"]["completed"].clone(),
                task["data"]["completed_at"].clone()
            ),
            (json!(false), Value::Null)
        );
        let (status, _) = c
            .get(&format!(
                "/tasks?project={PROJECT}&completed_since=yesterday"
            ))
            .await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn a_task_removed_from_a_project_stays_in_its_others_and_a_deleted_one_is_404() {
        let c = Client::start().await;
        c.fake.put_task(FakeTask {
            gid: "501".into(),
            name: "Both".into(),
            assignee: Some(FakeUser::new("7001", "ann@example.com")),
            completed: false,
            projects: vec![PROJECT.into(), OTHER_PROJECT.into()],
            parent: None,
        });
        let modified = c.modified_at("501").await;
        c.fake.remove_from_project("501", PROJECT);
        assert!(c.modified_at("501").await > modified);
        assert!(c.listed(PROJECT, "now").await.is_empty());
        assert_eq!(c.listed(OTHER_PROJECT, "now").await, ["501"]);
        let (_, task) = c.get("/tasks/501?opt_fields=projects").await;
        assert_eq!(task["data"]["projects"].as_array().unwrap().len(), 1);

        c.fake.delete_task("501");
        assert_eq!(c.fake.task("501"), None);
        let (status, body) = c.get("/tasks/501?opt_fields=assignee").await;
        assert_eq!(status, 404);
        assert_eq!(body["errors"][0]["message"], "task: Unknown object: 501");
        assert!(c.listed(OTHER_PROJECT, "now").await.is_empty());
    }

    #[test]
    fn lifecycle_deliveries_have_asanas_event_shapes() {
        let event = |body: Value| body["events"][0].clone();
        let unassigned = event(unassignment_delivery("501"));
        assert_eq!(
            (
                unassigned["action"].clone(),
                unassigned["change"].clone(),
                unassigned["parent"].clone()
            ),
            (
                json!("changed"),
                json!({"field": "assignee", "action": "changed"}),
                Value::Null
            )
        );
        assert!(unassigned["change"].get("new_value").is_none());
        let completed = event(completion_delivery("501"));
        assert_eq!(
            completed["change"],
            json!({"field": "completed", "action": "changed"})
        );
        let removed = event(removed_delivery("501", PROJECT));
        assert_eq!(
            (removed["action"].clone(), removed["parent"].clone()),
            (
                json!("removed"),
                json!({"gid": PROJECT, "resource_type": "project"})
            )
        );
        assert!(removed.get("change").is_none());
        let section = event(removed_from_section_delivery("501", "777"));
        assert_eq!(section["parent"]["resource_type"], "section");
        let deleted = event(deleted_delivery("501"));
        assert_eq!(
            (deleted["action"].clone(), deleted["parent"].clone()),
            (json!("deleted"), Value::Null)
        );
        for body in [unassigned, completed, removed, section, deleted] {
            assert_eq!(body["resource"]["gid"], "501");
            assert_eq!(body["resource"]["resource_type"], "task");
            assert!(humantime::parse_rfc3339(body["created_at"].as_str().unwrap()).is_ok());
        }
    }

    #[tokio::test]
    async fn updating_a_webhook_replaces_its_filters() {
        let c = Client::start().await;
        let two = json!([
            {"resource_type": "task", "action": "changed", "fields": ["assignee"]},
            {"resource_type": "task", "action": "added"}
        ]);
        {
            let mut world = c.fake.shared.world.lock().unwrap();
            world.webhooks.insert(
                "901".into(),
                FakeWebhook {
                    gid: "901".into(),
                    resource: PROJECT.into(),
                    resource_type: "project".into(),
                    target: "https://bridge.example.com/webhooks/asana".into(),
                    secret: "s".into(),
                    filters: two,
                    active: true,
                    created_at: now_rfc3339(),
                    last_success_at: None,
                    last_failure_at: None,
                    last_failure_content: None,
                    delivery_retry_count: 0,
                },
            );
        }
        let five = json!([
            {"resource_type": "task", "action": "changed", "fields": ["assignee"]},
            {"resource_type": "task", "action": "added"},
            {"resource_type": "task", "action": "changed", "fields": ["completed"]},
            {"resource_type": "task", "action": "removed"},
            {"resource_type": "task", "action": "deleted"}
        ]);
        let (status, body) = c
            .send(
                reqwest::Method::PUT,
                "/webhooks/901",
                Some(json!({"data": {"filters": five}})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["filters"], five);
        assert_eq!(c.fake.webhook("901").unwrap().filters, five);
        let (status, _) = c
            .send(
                reqwest::Method::PUT,
                "/webhooks/902",
                Some(json!({"data": {"filters": five}})),
            )
            .await;
        assert_eq!(status, 404);
        assert_eq!(c.fake.calls_by_route().get("update_webhook"), Some(&2));
    }
}
