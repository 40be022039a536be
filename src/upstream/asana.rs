//! Asana REST API client (`https://app.asana.com/api/1.0`), authenticated with a personal access token.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::json_api::JsonApi;
use super::pacing::RequestPacer;
use super::{BadBaseUrl, Service, UpstreamError};
use crate::domain::{Email, Gid, WatchedResource};
use crate::settings::Settings;

const DEFAULT_REQUESTS_PER_MINUTE: u32 = 1500;

/// A task's assignee with the email, and where the task lives: its projects and its parent (a
/// subtask's `projects` may be empty). Asana's spec lists `projects` and `parent` but no nested
/// user fields; see `tests/contract.rs`.
const TASK_FIELDS: &str =
    "assignee.email,assignee.name,completed,name,parent,projects,projects.name";

/// What a reconcile pass compares with the stored task rows.
const MODIFIED_TASK_FIELDS: &str = "assignee,completed,modified_at";

/// Where a task lives, for following a subtask's parents.
const TASK_PLACEMENT_FIELDS: &str = "projects,parent";

const WEBHOOK_FIELDS: &str = "active,resource,resource.name,target,created_at,last_success_at,\
     last_failure_at,last_failure_content,delivery_retry_count,filters,filters.action,filters.fields";

/// `Debug` shows no credential: the token is a `SecretString`.
#[derive(Clone, Debug)]
pub struct AsanaClient {
    /// Its pacer is shared by every clone: the limit is per token, so per process.
    api: JsonApi,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Task {
    pub gid: Gid,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub assignee: Option<Assignee>,
    #[serde(default)]
    pub completed: bool,
    #[serde(flatten)]
    pub placement: TaskPlacement,
}

/// The projects a task is in, and the task it is a subtask of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct TaskPlacement {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub projects: Vec<ResourceRef>,
    #[serde(default)]
    pub parent: Option<ResourceRef>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ResourceRef>, D::Error> {
    Ok(Option::<Vec<ResourceRef>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Assignee {
    pub gid: Gid,
    #[serde(default)]
    pub email: AssigneeEmail,
    #[serde(default)]
    pub name: Option<String>,
}

/// An assignee's email as Asana gives it. A hidden or blank one, or text that is not an address,
/// is an answer like any other (the job ends without an invitation), not a broken response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "Option<String>")]
pub enum AssigneeEmail {
    /// Absent, null or blank: hidden from the token, or the user has none.
    #[default]
    Hidden,
    Address(Email),
    /// Trimmed, as given.
    NotAnAddress(String),
}

impl From<Option<String>> for AssigneeEmail {
    fn from(text: Option<String>) -> AssigneeEmail {
        match text.as_deref().map(str::trim) {
            None | Some("") => AssigneeEmail::Hidden,
            Some(text) => match text.parse::<Email>() {
                Ok(email) => AssigneeEmail::Address(email),
                Err(_) => AssigneeEmail::NotAnAddress(text.to_string()),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    pub gid: Gid,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub workspaces: Vec<Workspace>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Workspace {
    pub gid: Gid,
    #[serde(default)]
    pub name: Option<String>,
}

/// A webhook as Asana reports it, status fields included.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Webhook {
    pub gid: Gid,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub resource: Option<WebhookResource>,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub last_success_at: Option<String>,
    #[serde(default)]
    pub last_failure_at: Option<String>,
    #[serde(default)]
    pub last_failure_content: Option<String>,
    #[serde(default)]
    pub delivery_retry_count: Option<i64>,
    /// The filters Asana applies (`None` when it did not say, or said it in a shape not
    /// understood: the rest of the webhook is still read, and its filters are left alone).
    #[serde(default, deserialize_with = "lenient_filters")]
    pub filters: Option<Vec<WebhookFilter>>,
}

fn lenient_filters<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<WebhookFilter>>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(value.and_then(|filters| serde_json::from_value(filters).ok()))
}

/// One of a webhook's filters, as Asana reports it (`WebhookFilter`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WebhookFilter {
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub resource_subtype: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    /// A whitelist of changed fields (none: every field).
    #[serde(default, deserialize_with = "null_as_no_fields")]
    pub fields: Vec<String>,
}

fn null_as_no_fields<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

impl WebhookFilter {
    /// Whether this filter lets through every event `wanted` (one of [`webhook_filters`]) asks
    /// for: the same resource type and action, no subtype, and each wanted field whitelisted.
    fn covers(&self, wanted: &serde_json::Value) -> bool {
        let text = |key: &str| wanted.get(key).and_then(serde_json::Value::as_str);
        let wanted_fields = wanted
            .get("fields")
            .and_then(serde_json::Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        self.resource_type.as_deref() == text("resource_type")
            && self.action.as_deref() == text("action")
            && self.resource_subtype.is_none()
            && (self.fields.is_empty()
                || wanted_fields
                    .iter()
                    .all(|field| self.fields.iter().any(|have| field.as_str() == Some(have))))
    }

    fn to_json(&self) -> serde_json::Value {
        let mut filter = serde_json::json!({
            "resource_type": self.resource_type,
            "action": self.action,
        });
        if let Some(subtype) = &self.resource_subtype {
            filter["resource_subtype"] = serde_json::json!(subtype);
        }
        if !self.fields.is_empty() {
            filter["fields"] = serde_json::json!(self.fields);
        }
        filter
    }
}

/// The filters of [`webhook_filters`] that a webhook on `resource` reporting `current` lacks (a
/// project webhook registered before access revocation existed lacks the lifecycle ones).
pub fn missing_filters(
    resource: &WatchedResource,
    current: &[WebhookFilter],
) -> Vec<serde_json::Value> {
    let wanted = webhook_filters(resource);
    wanted
        .as_array()
        .expect("webhook_filters is an array")
        .iter()
        .filter(|filter| !current.iter().any(|have| have.covers(filter)))
        .cloned()
        .collect()
}

/// What `PUT /webhooks/{gid}` must send so that a webhook reporting `current` also has `missing`:
/// `updateWebhook` replaces the filters, so those it has (someone's own included) are sent again.
pub fn filters_with(current: &[WebhookFilter], missing: &[serde_json::Value]) -> serde_json::Value {
    let all: Vec<serde_json::Value> = current
        .iter()
        .map(WebhookFilter::to_json)
        .chain(missing.iter().cloned())
        .collect();
    serde_json::Value::Array(all)
}

impl Webhook {
    /// Asana's last delivery attempt failed (and none succeeded since).
    pub fn is_failing(&self) -> bool {
        match (&self.last_failure_at, &self.last_success_at) {
            (Some(failure), Some(success)) => failure > success,
            (Some(_), None) => true,
            _ => false,
        }
    }
}

/// What a webhook watches, as Asana reports it: a project or a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WebhookResource {
    pub gid: Gid,
    /// `project` or `workspace`.
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// A project as `GET /projects/{gid}?opt_fields=name` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Project {
    pub gid: Gid,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ResourceRef {
    pub gid: Gid,
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /webhooks` answer: the webhook and the secret Asana used in the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CreatedWebhook {
    #[serde(rename = "data")]
    pub webhook: Webhook,
    #[serde(rename = "X-Hook-Secret", default)]
    pub secret: Option<String>,
}

/// A task as a reconcile pass lists it: its assignee (gid only), whether it is completed, and
/// when it last changed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ModifiedTask {
    pub gid: Gid,
    #[serde(default)]
    pub assignee: Option<ResourceRef>,
    /// Asked for (`opt_fields=completed`); absent reads as incomplete.
    #[serde(default)]
    pub completed: bool,
    #[serde(default)]
    pub modified_at: Option<String>,
}

/// One page of a list, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub next_page: Option<NextPage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NextPage {
    pub offset: String,
}

/// The filters a webhook of ours carries: on a project, assignee changes and added tasks, plus
/// what may end someone's need of the room (completions, removals from the project, deletions;
/// asked for whether revocation is on or not, so turning it on needs no new webhook); on a
/// workspace, added projects only (Asana sends no task events to a workspace's webhook, and
/// refuses `fields` on one).
pub fn webhook_filters(resource: &WatchedResource) -> serde_json::Value {
    match resource {
        WatchedResource::Project(_) => serde_json::json!([
            {"resource_type": "task", "action": "changed", "fields": ["assignee"]},
            {"resource_type": "task", "action": "added"},
            {"resource_type": "task", "action": "changed", "fields": ["completed"]},
            {"resource_type": "task", "action": "removed"},
            {"resource_type": "task", "action": "deleted"}
        ]),
        WatchedResource::Workspace(_) => {
            serde_json::json!([{"resource_type": "project", "action": "added"}])
        }
    }
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

impl AsanaClient {
    /// `base_url` is the API root, e.g. `https://app.asana.com/api/1.0`.
    /// A client that sends at most Asana's paid-plan limit, 1,500 requests a minute.
    pub fn new(base_url: &str, token: SecretString, timeout: Duration) -> Result<Self, BadBaseUrl> {
        let api = JsonApi::new(
            Service::Asana,
            base_url,
            token,
            timeout,
            asana_error_message,
        )?
        .with_pacer(RequestPacer::per_minute(DEFAULT_REQUESTS_PER_MINUTE));
        Ok(AsanaClient { api })
    }

    /// At most `requests_per_minute` requests go out a minute.
    pub fn with_requests_per_minute(mut self, requests_per_minute: u32) -> Self {
        self.api = self
            .api
            .with_pacer(RequestPacer::per_minute(requests_per_minute));
        self
    }

    /// A 429's `Retry-After` (for the job and for the pause of every request) counts up to `max`.
    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.api = self.api.with_max_retry_after(max);
        self
    }

    /// A clone whose requests first wait for a limiter of `share` of this client's rate (at
    /// least one a minute), then for the shared pacer: reconcile passes spend from the same
    /// budget, at most that share of it, and obey a 429 pause like every other request.
    pub fn with_rate_share(&self, share: f64) -> AsanaClient {
        let per_minute = self
            .api
            .requests_per_minute()
            .unwrap_or(DEFAULT_REQUESTS_PER_MINUTE);
        AsanaClient {
            api: self
                .api
                .with_extra_pacer(RequestPacer::per_minute(per_minute).share_of(share)),
        }
    }

    /// The client the settings describe. One per process: see [`super::Upstreams`].
    pub fn from_settings(settings: &Settings) -> Result<Self, BadBaseUrl> {
        Ok(AsanaClient::new(
            &settings.asana.base_url,
            settings.asana.token.clone(),
            settings.request_timeout(),
        )?
        .with_requests_per_minute(settings.asana.requests_per_minute)
        .with_max_retry_after(Duration::from_millis(settings.worker.backoff_max_ms)))
    }

    /// `GET /tasks/{gid}` with the assignee's email (the current assignee, not the one an event
    /// named) and the task's projects and parent.
    #[tracing::instrument(name = "asana.get_task", skip(self), err(level = "debug", Display))]
    pub async fn get_task(&self, task_gid: &str) -> Result<Task, UpstreamError> {
        let mut url = self.api.url(&["tasks", task_gid]);
        url.query_pairs_mut().append_pair("opt_fields", TASK_FIELDS);
        self.get("get_task", url).await
    }

    /// `GET /tasks/{gid}` for the task's projects and parent only.
    #[tracing::instrument(
        name = "asana.get_task_placement",
        skip(self),
        err(level = "debug", Display)
    )]
    pub async fn get_task_placement(&self, task_gid: &str) -> Result<TaskPlacement, UpstreamError> {
        let mut url = self.api.url(&["tasks", task_gid]);
        url.query_pairs_mut()
            .append_pair("opt_fields", TASK_PLACEMENT_FIELDS);
        self.get("get_task_placement", url).await
    }

    /// `GET /projects/{gid}` with its name; `None` when Asana does not know it (404).
    #[tracing::instrument(name = "asana.get_project", skip(self), err(level = "debug", Display))]
    pub async fn get_project(&self, project_gid: &Gid) -> Result<Option<Project>, UpstreamError> {
        let mut url = self.api.url(&["projects", project_gid.as_str()]);
        url.query_pairs_mut().append_pair("opt_fields", "name");
        match self.get("get_project", url).await {
            Ok(project) => Ok(Some(project)),
            Err(error) if error.status() == Some(404) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `GET /users/me`: who the token belongs to, and their workspaces.
    #[tracing::instrument(name = "asana.users_me", skip(self), err(level = "debug", Display))]
    pub async fn users_me(&self) -> Result<User, UpstreamError> {
        let mut url = self.api.url(&["users", "me"]);
        url.query_pairs_mut()
            .append_pair("opt_fields", "name,email,workspaces.name");
        self.get("users_me", url).await
    }

    /// `GET /users/{gid}` with the email (empty when the user's email is hidden from the token).
    #[tracing::instrument(name = "asana.get_user", skip(self), err(level = "debug", Display))]
    pub async fn get_user(&self, user_gid: &str) -> Result<User, UpstreamError> {
        let mut url = self.api.url(&["users", user_gid]);
        url.query_pairs_mut()
            .append_pair("opt_fields", "email,name");
        self.get("get_user", url).await
    }

    /// One page (up to 100) of a project's incomplete tasks with their assignees (gid and name).
    #[tracing::instrument(
        name = "asana.project_tasks",
        skip(self, completed_since),
        err(level = "debug", Display)
    )]
    pub async fn project_tasks_page(
        &self,
        project_gid: &str,
        completed_since: &str,
        offset: Option<&str>,
    ) -> Result<Page<Task>, UpstreamError> {
        let mut url = self.api.url(&["tasks"]);
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("project", project_gid)
                .append_pair("completed_since", completed_since)
                // The spec's enum for GET /tasks has no `assignee.email`: read emails per user.
                .append_pair("opt_fields", "assignee,assignee.name,name")
                .append_pair("limit", "100");
            if let Some(offset) = offset {
                query.append_pair("offset", offset);
            }
        }
        self.api.json("project_tasks", self.api.get(url)).await
    }

    /// One page (up to 100) of a project's tasks that are incomplete or were completed since
    /// `completed_since` (RFC 3339), modified since `modified_since` (RFC 3339; `None`: all of
    /// them), with their assignee, whether they are completed, and `modified_at`. `GET /tasks`:
    /// only it takes `modified_since`.
    #[tracing::instrument(
        name = "asana.tasks_modified_page",
        skip(self, completed_since),
        err(level = "debug", Display)
    )]
    pub async fn tasks_modified_page(
        &self,
        project_gid: &Gid,
        modified_since: Option<&str>,
        completed_since: &str,
        offset: Option<&str>,
    ) -> Result<Page<ModifiedTask>, UpstreamError> {
        let mut url = self.api.url(&["tasks"]);
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("project", project_gid.as_str())
                .append_pair("completed_since", completed_since);
            if let Some(since) = modified_since {
                query.append_pair("modified_since", since);
            }
            query
                .append_pair("limit", "100")
                .append_pair("opt_fields", MODIFIED_TASK_FIELDS);
            if let Some(offset) = offset {
                query.append_pair("offset", offset);
            }
        }
        self.api.json("reconcile_tasks", self.api.get(url)).await
    }

    /// `POST /webhooks` on `resource`, with its [`webhook_filters`]. Asana performs the handshake
    /// against `target` before it answers.
    #[tracing::instrument(
        name = "asana.create_webhook",
        skip(self, target),
        fields(resource = %resource),
        err(level = "debug", Display)
    )]
    pub async fn create_webhook(
        &self,
        resource: &WatchedResource,
        target: &str,
    ) -> Result<CreatedWebhook, UpstreamError> {
        let body = serde_json::json!({"data": {
            "resource": resource.gid().as_str(),
            "target": target,
            "filters": webhook_filters(resource),
        }});
        self.api
            .json(
                "create_webhook",
                self.api.post(self.api.url(&["webhooks"])).json(&body),
            )
            .await
    }

    /// `GET /webhooks/{gid}`, status fields included.
    #[tracing::instrument(name = "asana.get_webhook", skip(self), err(level = "debug", Display))]
    pub async fn get_webhook(&self, webhook_gid: &str) -> Result<Webhook, UpstreamError> {
        let mut url = self.api.url(&["webhooks", webhook_gid]);
        url.query_pairs_mut()
            .append_pair("opt_fields", WEBHOOK_FIELDS);
        self.get("get_webhook", url).await
    }

    /// Every webhook of the token's user in `workspace_gid` (all pages).
    #[tracing::instrument(
        name = "asana.list_webhooks",
        skip(self),
        err(level = "debug", Display)
    )]
    pub async fn list_webhooks(&self, workspace_gid: &str) -> Result<Vec<Webhook>, UpstreamError> {
        let mut hooks = Vec::new();
        let mut offset: Option<String> = None;
        loop {
            let mut url = self.api.url(&["webhooks"]);
            {
                let mut query = url.query_pairs_mut();
                query
                    .append_pair("workspace", workspace_gid)
                    .append_pair("opt_fields", WEBHOOK_FIELDS)
                    .append_pair("limit", "100");
                if let Some(offset) = &offset {
                    query.append_pair("offset", offset);
                }
            }
            let page: Page<Webhook> = self.api.json("list_webhooks", self.api.get(url)).await?;
            hooks.extend(page.data);
            match page.next_page {
                Some(next) => offset = Some(next.offset),
                None => return Ok(hooks),
            }
        }
    }

    /// `PUT /webhooks/{gid}` `{"data":{"filters":[...]}}` (`updateWebhook`): replaces the
    /// webhook's filters with `filters`; the rest of the webhook, its secret included, stays.
    #[tracing::instrument(
        name = "asana.update_webhook",
        skip(self, filters),
        err(level = "debug", Display)
    )]
    pub async fn update_webhook(
        &self,
        webhook_gid: &str,
        filters: &serde_json::Value,
    ) -> Result<Webhook, UpstreamError> {
        let mut url = self.api.url(&["webhooks", webhook_gid]);
        url.query_pairs_mut()
            .append_pair("opt_fields", WEBHOOK_FIELDS);
        let body = serde_json::json!({"data": {"filters": filters}});
        let envelope: Envelope<Webhook> = self
            .api
            .json("update_webhook", self.api.put(url).json(&body))
            .await?;
        Ok(envelope.data)
    }

    /// `DELETE /webhooks/{gid}`.
    #[tracing::instrument(
        name = "asana.delete_webhook",
        skip(self),
        err(level = "debug", Display)
    )]
    pub async fn delete_webhook(&self, webhook_gid: &str) -> Result<(), UpstreamError> {
        let _: Envelope<serde_json::Value> = self
            .api
            .json(
                "delete_webhook",
                self.api.delete(self.api.url(&["webhooks", webhook_gid])),
            )
            .await?;
        Ok(())
    }

    /// `GET` and unwrap `{"data": ...}`.
    async fn get<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        url: reqwest::Url,
    ) -> Result<T, UpstreamError> {
        let envelope: Envelope<T> = self.api.json(operation, self.api.get(url)).await?;
        Ok(envelope.data)
    }
}

/// `{"errors":[{"message":"...","help":"..."}]}` → the messages.
fn asana_error_message(body: &serde_json::Value) -> Option<String> {
    let messages: Vec<&str> = body
        .get("errors")?
        .as_array()?
        .iter()
        .filter_map(|e| e.get("message")?.as_str())
        .collect();
    (!messages.is_empty()).then(|| messages.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_joined() {
        let body = serde_json::json!({"errors":[{"message":"task: Not a recognized ID","help":"..."},{"message":"second"}]});
        assert_eq!(
            asana_error_message(&body).as_deref(),
            Some("task: Not a recognized ID; second")
        );
        assert_eq!(asana_error_message(&serde_json::json!({"errors":[]})), None);
    }

    #[test]
    fn an_assignee_email_is_an_address_hidden_or_not_an_address() {
        let assignee = |email: serde_json::Value| -> Assignee {
            serde_json::from_value(serde_json::json!({"gid": "12", "email": email})).unwrap()
        };
        assert_eq!(
            assignee(serde_json::json!(" Jane@Example.com ")).email,
            AssigneeEmail::Address("jane@example.com".parse().unwrap())
        );
        for hidden in [serde_json::json!(null), serde_json::json!("  ")] {
            assert_eq!(assignee(hidden).email, AssigneeEmail::Hidden);
        }
        assert_eq!(
            assignee(serde_json::json!(" not an address ")).email,
            AssigneeEmail::NotAnAddress("not an address".to_string())
        );
        let no_email: Assignee = serde_json::from_value(serde_json::json!({"gid": "12"})).unwrap();
        assert_eq!(no_email.email, AssigneeEmail::Hidden);
    }

    #[test]
    fn a_gid_that_is_not_one_is_an_unexpected_answer() {
        let err = serde_json::from_value::<Task>(serde_json::json!({"gid": "12a"})).unwrap_err();
        assert!(err.to_string().contains("is not an Asana gid"), "{err}");
    }

    #[test]
    fn debug_hides_the_token() {
        let client = AsanaClient::new(
            "https://app.asana.com/api/1.0",
            SecretString::from("1/secret-token"),
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(!format!("{client:?}").contains("secret-token"));
    }

    #[test]
    fn a_project_webhook_asks_for_assignments_added_tasks_and_the_ends_of_a_need() {
        let project = WatchedResource::Project("1200000000000100".parse().unwrap());
        assert_eq!(
            webhook_filters(&project),
            serde_json::json!([
                {"resource_type": "task", "action": "changed", "fields": ["assignee"]},
                {"resource_type": "task", "action": "added"},
                {"resource_type": "task", "action": "changed", "fields": ["completed"]},
                {"resource_type": "task", "action": "removed"},
                {"resource_type": "task", "action": "deleted"}
            ])
        );
    }

    #[test]
    fn an_old_project_webhook_lacks_the_lifecycle_filters_and_keeps_its_own() {
        let project = WatchedResource::Project("1200000000000100".parse().unwrap());
        let reported: Webhook = serde_json::from_value(serde_json::json!({
            "gid": "901",
            "filters": [
                {"resource_type": "task", "action": "changed", "fields": ["assignee"], "resource_subtype": null},
                {"resource_type": "task", "action": "added", "fields": null},
                {"resource_type": "story", "action": "added"}
            ]
        }))
        .unwrap();
        let current = reported.filters.unwrap();
        let missing = missing_filters(&project, &current);
        assert_eq!(
            missing,
            vec![
                serde_json::json!({"resource_type": "task", "action": "changed", "fields": ["completed"]}),
                serde_json::json!({"resource_type": "task", "action": "removed"}),
                serde_json::json!({"resource_type": "task", "action": "deleted"}),
            ]
        );
        assert_eq!(
            filters_with(&current, &missing),
            serde_json::json!([
                {"resource_type": "task", "action": "changed", "fields": ["assignee"]},
                {"resource_type": "task", "action": "added"},
                {"resource_type": "story", "action": "added"},
                {"resource_type": "task", "action": "changed", "fields": ["completed"]},
                {"resource_type": "task", "action": "removed"},
                {"resource_type": "task", "action": "deleted"}
            ])
        );
        let complete: Vec<WebhookFilter> =
            serde_json::from_value(webhook_filters(&project)).unwrap();
        assert!(missing_filters(&project, &complete).is_empty());
        // `fields` is a whitelist: one filter on both fields passes both changes; a filter on a
        // subtype passes that subtype only.
        let both: Vec<WebhookFilter> = serde_json::from_value(serde_json::json!([
            {"resource_type": "task", "action": "changed", "fields": ["completed", "assignee"]},
            {"resource_type": "task", "action": "removed", "resource_subtype": "milestone"}
        ]))
        .unwrap();
        assert_eq!(
            missing_filters(&project, &both),
            vec![
                serde_json::json!({"resource_type": "task", "action": "added"}),
                serde_json::json!({"resource_type": "task", "action": "removed"}),
                serde_json::json!({"resource_type": "task", "action": "deleted"}),
            ]
        );
        assert_eq!(
            filters_with(&both, &[])[1],
            serde_json::json!({"resource_type": "task", "action": "removed", "resource_subtype": "milestone"})
        );
        let workspace = WatchedResource::Workspace("80001".parse().unwrap());
        let theirs: Vec<WebhookFilter> =
            serde_json::from_value(webhook_filters(&workspace)).unwrap();
        assert!(missing_filters(&workspace, &theirs).is_empty());
        let absent: Webhook = serde_json::from_value(serde_json::json!({"gid": "902"})).unwrap();
        assert_eq!(absent.filters, None);
        for odd in [
            serde_json::json!({"resource_type": "task"}),
            serde_json::json!([{"resource_type": 5}]),
            serde_json::json!([{"action": "changed", "fields": "completed"}]),
        ] {
            let webhook: Webhook = serde_json::from_value(
                serde_json::json!({"gid": "903", "active": true, "filters": odd}),
            )
            .unwrap();
            assert_eq!(
                (webhook.filters, webhook.active),
                (None, Some(true)),
                "odd filters are not understood, and the webhook is still read"
            );
        }
    }

    #[test]
    fn a_modified_task_reads_its_completion() {
        let page: Page<ModifiedTask> = serde_json::from_value(serde_json::json!({
            "data": [
                {"gid": "501", "assignee": null, "completed": true, "modified_at": "2026-12-03T10:00:00.000Z"},
                {"gid": "502", "assignee": {"gid": "7001"}}
            ],
            "next_page": null
        }))
        .unwrap();
        assert!(page.data[0].completed);
        assert_eq!(page.data[0].assignee, None);
        assert!(!page.data[1].completed, "absent reads as incomplete");
        assert_eq!(
            MODIFIED_TASK_FIELDS.split(',').collect::<Vec<_>>(),
            ["assignee", "completed", "modified_at"]
        );
    }

    #[test]
    fn a_workspace_webhook_asks_for_added_projects_only_without_fields() {
        let workspace = WatchedResource::Workspace("80001".parse().unwrap());
        assert_eq!(
            webhook_filters(&workspace),
            serde_json::json!([{"resource_type": "project", "action": "added"}])
        );
    }
}
