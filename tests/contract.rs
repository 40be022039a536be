//! Contract checks: every request the bridge makes, through its clients and through its commands,
//! against Stoplight Prism mock servers generated from the official specs in `../shared/specs`
//! (`asana_oas.yaml`, `docspace_openapi.json`), read there at test time. Prism runs with
//! `--errors`: a request that breaks the spec gets the spec's own 4xx (or 422) and an
//! `sl-violations` header, which a recording proxy in front of each server collects per test.
//!
//! One known exception: Asana's spec lists no nested user fields (`assignee.email`) in the
//! `opt_fields` enum of `GET /tasks/{gid}`, though Asana's API documents such dotted paths and the
//! original integration relies on them. That call is checked to be refused for exactly that
//! reason, and run against our Asana fake instead.
//!
//! Prism: `scripts/install-prism.sh` (or `BRIDGE_PRISM_BIN`). Specs: `BRIDGE_SPECS_DIR` overrides
//! `../shared/specs`. Without either (a clone outside the team's workspace has no `../shared`),
//! every test says it is SKIPPED and why; with `BRIDGE_CONTRACT_REQUIRED=1` (CI) that is a failure.

#[path = "contract/prism.rs"]
mod prism;
#[path = "contract/proxy.rs"]
mod proxy;

use std::fmt::Display;
use std::io::Write as _;
use std::time::{Duration, SystemTime};

use asana_docspace_bridge::domain::{DocSpaceUserId, Gid, RoomId, RoomTag, WatchedResource};
use asana_docspace_bridge::rooms::{RoomAccess, RoomType};
use asana_docspace_bridge::settings::{InviteType, Settings, Sources};
use asana_docspace_bridge::store::{Store, StoreOptions};
use asana_docspace_bridge::upstream::asana::{
    AssigneeEmail, WebhookFilter, filters_with, missing_filters, webhook_filters,
};
use asana_docspace_bridge::upstream::docspace::{NewRoom, RoomLookup};
use asana_docspace_bridge::upstream::{AsanaClient, DocSpaceClient, UpstreamError};
use asana_docspace_fakes::{AsanaFake, FakeUser};
use asana_docspace_test_support::{BridgeEnv, TestDatabase};
use axum::http::Method;
use serde_json::json;

use prism::Prisms;
use proxy::{Exchange, Prefer, Proxy};

const ASANA_TOKEN: &str = "1/1200000000000000:contract-token";
const DOCSPACE_KEY: &str = "sk-contract-docspace-key";
const PROJECT: &str = "1200000000000100";
const WORKSPACE: &str = "1200000000000001";
const WEBHOOK: &str = "1200000000000200";
const TASK: &str = "1200000000000300";
const PUBLIC_URL: &str = "https://bridge.example.com";
/// The `opt_fields` the bridge reads a task with (the known exception): the assignee's email, and
/// the task's projects and parent (both in the spec's enum).
const TASK_FIELDS: &str =
    "assignee.email,assignee.name,completed,name,parent,projects,projects.name";
const PEOPLE_EMAIL: &str = "/api/2.0/people/email";
const PEOPLE_INVITE: &str = "/api/2.0/people/invite";
const ROOMS: &str = "/api/2.0/files/rooms";

/// A test's view of the shared Prism servers: its own recording proxies, and where its part of
/// each server's log starts.
struct Contract {
    prisms: &'static Prisms,
    asana: Proxy,
    docspace: Proxy,
    asana_mark: usize,
    docspace_mark: usize,
}

/// Says why `test` is skipped, or fails it when the contract tests are required (CI).
fn skip(test: &str, why: &str) -> Option<Contract> {
    assert!(
        !prism::required(),
        "{test}: {why}; {} is set, so this is a failure, not a skip",
        prism::REQUIRED_VAR
    );
    // Past the harness's capture (`eprintln!` is captured): a skip must show in the output.
    let _ = writeln!(std::io::stderr(), "{test}: SKIPPED: {why}");
    None
}

impl Contract {
    /// `None` (after saying so) when Prism or the specs are missing, unless they are required.
    async fn start(test: &str) -> Option<Contract> {
        Contract::start_with(test, Vec::new()).await
    }

    async fn start_with(test: &str, docspace_prefer: Vec<Prefer>) -> Option<Contract> {
        let Some(binary) = prism::prism_binary() else {
            return skip(
                test,
                "Prism is not installed: run scripts/install-prism.sh (CI does)",
            );
        };
        let specs = match prism::specs_dir() {
            Ok(specs) => specs,
            Err(missing) => return skip(test, &missing),
        };
        let prisms = tokio::task::spawn_blocking(move || prism::shared(&binary, &specs))
            .await
            .expect("the Prism start-up thread")
            .unwrap_or_else(|err| panic!("{err}"));
        Some(Contract {
            prisms,
            asana: Proxy::start(&prisms.asana.url, Vec::new()).await,
            docspace: Proxy::start(&prisms.docspace.url, docspace_prefer).await,
            asana_mark: prisms.asana.log_mark(),
            docspace_mark: prisms.docspace.log_mark(),
        })
    }

    /// Prism serves Asana's paths at its root (`/users/me`; `/api/1.0/users/me` matches no
    /// route), so the API root the bridge is given is the server itself.
    fn asana_client(&self) -> AsanaClient {
        AsanaClient::from_settings(&settings(&self.asana.url, &self.docspace.url)).expect("URL")
    }

    /// DocSpace's spec has the full `/api/2.0/...` paths, as the client sends them.
    fn docspace_client(&self) -> DocSpaceClient {
        DocSpaceClient::from_settings(&settings(&self.asana.url, &self.docspace.url)).expect("URL")
    }

    /// The binary, wired to both proxies.
    async fn cli(&self) -> Cli {
        Cli::new(&self.asana.url, &self.docspace.url).await
    }

    /// Every exchange and Prism's log lines since the test started.
    fn report(&self) -> String {
        let list = |exchanges: Vec<Exchange>| -> String {
            if exchanges.is_empty() {
                return "  (none)".to_string();
            }
            exchanges
                .iter()
                .map(|e| format!("  {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        format!(
            "requests to Asana's spec ({}):\n{}\nrequests to DocSpace's spec ({}):\n{}\n\
             --- Prism log, {} (other tests share the server) ---\n{}\n\
             --- Prism log, {} ---\n{}",
            self.prisms.asana.spec.display(),
            list(self.asana.exchanges()),
            self.prisms.docspace.spec.display(),
            list(self.docspace.exchanges()),
            self.prisms.asana.spec.display(),
            self.prisms.asana.log_since(self.asana_mark),
            self.prisms.docspace.spec.display(),
            self.prisms.docspace.log_since(self.docspace_mark),
        )
    }

    #[track_caller]
    fn ensure(&self, ok: bool, what: impl Display) {
        if !ok {
            panic!("{what}\n\n{}", self.report());
        }
    }

    /// Every request so far passed the spec: no error-level violation, no Prism error.
    #[track_caller]
    fn assert_all_accepted(&self) {
        let rejected: Vec<String> = self
            .asana
            .exchanges()
            .into_iter()
            .chain(self.docspace.exchanges())
            .filter(Exchange::rejected)
            .map(|e| format!("  {e}"))
            .collect();
        self.ensure(
            rejected.is_empty(),
            format!(
                "Prism refused {} request(s) as breaking the spec:\n{}",
                rejected.len(),
                rejected.join("\n")
            ),
        );
    }

    /// The requests made so far, in order, were exactly these (method, path).
    #[track_caller]
    fn assert_requests(&self, asana: &[(Method, &str)], docspace: &[(Method, &str)]) {
        let seen = |proxy: &Proxy| -> Vec<(Method, String)> {
            proxy
                .exchanges()
                .into_iter()
                .map(|e| (e.method, e.path))
                .collect()
        };
        let wanted = |list: &[(Method, &str)]| -> Vec<(Method, String)> {
            list.iter()
                .map(|(m, p)| (m.clone(), p.to_string()))
                .collect()
        };
        self.ensure(
            seen(&self.asana) == wanted(asana) && seen(&self.docspace) == wanted(docspace),
            format!("expected requests: Asana {asana:?}, DocSpace {docspace:?}"),
        );
    }

    /// `GET /tasks/{gid}?opt_fields=assignee.email,...` was refused for the known reason, and
    /// only for it: `assignee.email` (index 0) is not in the spec's `opt_fields` enum.
    #[track_caller]
    fn assert_known_task_exception(&self, exchange: &Exchange) {
        let only_violation = match exchange.violations.as_slice() {
            [only] => Some(only),
            _ => None,
        };
        let known = exchange.method == Method::GET
            && exchange.path == format!("/tasks/{TASK}")
            && exchange.query_param("opt_fields").as_deref() == Some(TASK_FIELDS)
            && exchange.prism_error.is_none()
            && exchange.status == 400
            && only_violation.is_some_and(|v| {
                v["location"] == json!(["request", "query", "opt_fields", "0"])
                    && v["code"] == "enum"
                    && v["severity"] == "Error"
            });
        self.ensure(
            known,
            format!(
                "GET /tasks/{{gid}} should be refused by Prism for exactly one reason, \
                 `assignee.email` missing from the spec's opt_fields enum (the known exception); \
                 if the spec now allows it, check this call strictly like the others. Got:\n  {exchange}"
            ),
        );
    }
}

/// How the binary exited and what it printed.
#[derive(Debug)]
struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// The binary with a fresh SQLite store and the given upstreams.
struct Cli {
    vars: BridgeEnv,
    _database: TestDatabase,
}

impl Cli {
    /// Creates and migrates the store first, as `serve` or `migrate` would: commands only open it.
    async fn new(asana_url: &str, docspace_url: &str) -> Cli {
        let database = TestDatabase::sqlite();
        Store::open_migrated(database.url(), &StoreOptions::default())
            .await
            .expect("create the store")
            .close()
            .await;
        let vars = upstream_vars(asana_url, docspace_url).database(database.url());
        Cli {
            vars,
            _database: database,
        }
    }

    async fn run(&self, args: &[&str]) -> Output {
        let child = self
            .vars
            .command(env!("CARGO_BIN_EXE_asana-docspace-bridge"))
            .args(args)
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(120), child)
            .await
            .unwrap_or_else(|_| panic!("`{}` did not finish within 120 s", args.join(" ")))
            .expect("run the binary");
        Output {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// The bridge's settings for these upstreams.
fn upstream_vars(asana_url: &str, docspace_url: &str) -> BridgeEnv {
    BridgeEnv::new()
        .asana(asana_url, ASANA_TOKEN)
        .docspace(docspace_url, DOCSPACE_KEY)
        .with("BRIDGE__DOCSPACE__INVITE_TYPE", "User")
        // Prism never calls it: no handshake ever reaches the bridge.
        .with("BRIDGE__SERVER__PUBLIC_URL", PUBLIC_URL)
        .with("BRIDGE__WEBHOOKS__HANDSHAKE", "registration")
}

/// The same settings for the clients in this process (every other setting at its default).
fn settings(asana_url: &str, docspace_url: &str) -> Settings {
    Settings::load_from(Sources {
        file: None,
        env: Some(upstream_vars(asana_url, docspace_url).to_map()),
    })
    .expect("valid settings")
}

fn project_resource() -> WatchedResource {
    WatchedResource::Project(PROJECT.parse().expect("a gid"))
}

fn workspace_resource() -> WatchedResource {
    WatchedResource::Workspace(WORKSPACE.parse().expect("a gid"))
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

#[tokio::test]
async fn asana_users_me_passes_the_spec() {
    let Some(c) = Contract::start("asana_users_me_passes_the_spec").await else {
        return;
    };
    let me = c.asana_client().users_me().await;
    c.assert_all_accepted();
    c.assert_requests(&[(Method::GET, "/users/me")], &[]);
    c.ensure(
        me.as_ref().is_ok_and(|me| !me.workspaces.is_empty()),
        format!("users_me: {me:?}"),
    );
}

#[tokio::test]
async fn asana_get_user_passes_the_spec() {
    let Some(c) = Contract::start("asana_get_user_passes_the_spec").await else {
        return;
    };
    let user = c.asana_client().get_user("12345").await;
    c.assert_all_accepted();
    c.assert_requests(&[(Method::GET, "/users/12345")], &[]);
    c.ensure(user.is_ok(), format!("get_user: {user:?}"));
}

#[tokio::test]
async fn asana_get_project_passes_the_spec() {
    let Some(c) = Contract::start("asana_get_project_passes_the_spec").await else {
        return;
    };
    let project = c
        .asana_client()
        .get_project(&PROJECT.parse().unwrap())
        .await;
    c.assert_all_accepted();
    let path = format!("/projects/{PROJECT}");
    c.assert_requests(&[(Method::GET, &path)], &[]);
    c.ensure(
        c.asana.exchanges()[0].query_param("opt_fields").as_deref() == Some("name"),
        "only the name is asked for",
    );
    c.ensure(
        project
            .as_ref()
            .is_ok_and(|p| p.as_ref().is_some_and(|p| p.name.is_some())),
        format!("get_project: {project:?}"),
    );
}

#[tokio::test]
async fn asana_project_tasks_pages_pass_the_spec() {
    let Some(c) = Contract::start("asana_project_tasks_pages_pass_the_spec").await else {
        return;
    };
    let client = c.asana_client();
    let since = now_rfc3339();
    let first = client.project_tasks_page(PROJECT, &since, None).await;
    let offset = first
        .as_ref()
        .ok()
        .and_then(|page| page.next_page.as_ref())
        .map(|next| next.offset.clone());
    let second = match &offset {
        Some(offset) => Some(
            client
                .project_tasks_page(PROJECT, &since, Some(offset))
                .await,
        ),
        None => None,
    };
    c.assert_all_accepted();
    c.ensure(
        first.is_ok() && matches!(second, Some(Ok(_))),
        format!("a page and the next one (Prism's example names one): {first:?}, {second:?}"),
    );
    c.assert_requests(&[(Method::GET, "/tasks"), (Method::GET, "/tasks")], &[]);
    let exchanges = c.asana.exchanges();
    c.ensure(
        exchanges[1].query_param("offset") == offset,
        "the second page is asked for with the first one's offset",
    );
}

/// A reconcile pass's page: `GET /tasks` with `modified_since` and `completed_since` as date-times,
/// `limit=100` and `opt_fields` from the spec's enum.
#[tokio::test]
async fn asana_tasks_modified_page_passes_the_spec() {
    let Some(c) = Contract::start("asana_tasks_modified_page_passes_the_spec").await else {
        return;
    };
    let client = c.asana_client();
    let project = PROJECT.parse().expect("a gid");
    let since = "2026-12-03T09:55:00.000Z";
    let page = client
        .tasks_modified_page(&project, Some(since), &now_rfc3339(), None)
        .await;
    let first_pass = client
        .tasks_modified_page(&project, None, &now_rfc3339(), None)
        .await;
    c.assert_all_accepted();
    c.ensure(
        page.is_ok() && first_pass.is_ok(),
        format!("both pages decode: {page:?}, {first_pass:?}"),
    );
    c.assert_requests(&[(Method::GET, "/tasks"), (Method::GET, "/tasks")], &[]);
    let exchanges = c.asana.exchanges();
    c.ensure(
        exchanges[0].query_param("modified_since").as_deref() == Some(since)
            && exchanges[1].query_param("modified_since").is_none()
            && exchanges[0].query_param("limit").as_deref() == Some("100"),
        "the window is sent, and left out on a first pass",
    );
    c.ensure(
        exchanges.iter().all(|e| {
            e.query_param("opt_fields").as_deref() == Some("assignee,completed,modified_at")
        }),
        "a pass reads each task's assignee, completion and modified_at (completions end needs)",
    );
}

/// A completion window: `completed_since` a date-time in the past lists the tasks completed since.
#[tokio::test]
async fn asana_tasks_modified_page_with_a_completion_window_passes_the_spec() {
    let Some(c) =
        Contract::start("asana_tasks_modified_page_with_a_completion_window_passes_the_spec").await
    else {
        return;
    };
    let client = c.asana_client();
    let project = PROJECT.parse().expect("a gid");
    let window_start = "2026-12-03T09:55:00.000Z";
    let page = client
        .tasks_modified_page(&project, Some(window_start), window_start, None)
        .await;
    c.assert_all_accepted();
    c.assert_requests(&[(Method::GET, "/tasks")], &[]);
    c.ensure(
        page.is_ok(),
        format!("the page decodes, `completed` included: {page:?}"),
    );
    c.ensure(
        c.asana.exchanges()[0]
            .query_param("completed_since")
            .as_deref()
            == Some(window_start),
        "completed_since is the window's start",
    );
}

#[tokio::test]
async fn asana_webhook_calls_pass_the_spec() {
    let Some(c) = Contract::start("asana_webhook_calls_pass_the_spec").await else {
        return;
    };
    let client = c.asana_client();
    let target = format!("{PUBLIC_URL}/webhooks/asana/contract");
    let created = client.create_webhook(&project_resource(), &target).await;
    let fetched = client.get_webhook(WEBHOOK).await;
    let listed = client.list_webhooks(WORKSPACE).await;
    let deleted = client.delete_webhook(WEBHOOK).await;
    c.assert_all_accepted();
    let one = format!("/webhooks/{WEBHOOK}");
    c.assert_requests(
        &[
            (Method::POST, "/webhooks"),
            (Method::GET, &one),
            (Method::GET, "/webhooks"),
            (Method::GET, "/webhooks"),
            (Method::DELETE, &one),
        ],
        &[],
    );
    c.ensure(
        c.asana.exchanges()[0].request_json()
            == json!({"data": {"resource": PROJECT, "target": target, "filters": webhook_filters(&project_resource())}}),
        "the create body",
    );
    c.ensure(
        created.as_ref().is_ok_and(|c| c.secret.is_some()),
        format!("create_webhook: {created:?}"),
    );
    c.ensure(fetched.is_ok(), format!("get_webhook: {fetched:?}"));
    c.ensure(
        listed.as_ref().is_ok_and(|hooks| hooks.len() == 2),
        format!("list_webhooks, one webhook on each of two pages: {listed:?}"),
    );
    c.ensure(deleted.is_ok(), format!("delete_webhook: {deleted:?}"));
}

/// Adding the lifecycle filters to an older project webhook: `updateWebhook` with the filters it
/// has and the missing ones, read back with the same fields as `getWebhook`.
#[tokio::test]
async fn asana_update_webhook_passes_the_spec() {
    let Some(c) = Contract::start("asana_update_webhook_passes_the_spec").await else {
        return;
    };
    let client = c.asana_client();
    let old: Vec<WebhookFilter> = serde_json::from_value(json!([
        {"resource_type": "task", "action": "changed", "fields": ["assignee"]},
        {"resource_type": "task", "action": "added"}
    ]))
    .unwrap();
    let missing = missing_filters(&project_resource(), &old);
    let filters = filters_with(&old, &missing);
    let updated = client.update_webhook(WEBHOOK, &filters).await;
    c.assert_all_accepted();
    let one = format!("/webhooks/{WEBHOOK}");
    c.assert_requests(&[(Method::PUT, &one)], &[]);
    c.ensure(
        updated.is_ok(),
        format!("update_webhook decodes the webhook: {updated:?}"),
    );
    c.ensure(
        c.asana.exchanges()[0].request_json()
            == json!({"data": {"filters": webhook_filters(&project_resource())}}),
        "the update body: the two old filters and the three lifecycle ones",
    );
}

/// A workspace's webhook: `project` `added` only, no `fields` (a `WebhookRequest` the spec takes).
#[tokio::test]
async fn asana_workspace_webhook_create_passes_the_spec() {
    let Some(c) = Contract::start("asana_workspace_webhook_create_passes_the_spec").await else {
        return;
    };
    let client = c.asana_client();
    let target = format!("{PUBLIC_URL}/webhooks/asana/contract");
    let created = client.create_webhook(&workspace_resource(), &target).await;
    c.assert_all_accepted();
    c.assert_requests(&[(Method::POST, "/webhooks")], &[]);
    c.ensure(
        c.asana.exchanges()[0].request_json()
            == json!({"data": {
                "resource": WORKSPACE,
                "target": target,
                "filters": [{"resource_type": "project", "action": "added"}],
            }}),
        "the create body",
    );
    c.ensure(
        created.as_ref().is_ok_and(|c| c.secret.is_some()),
        format!("create_webhook: {created:?}"),
    );
}

/// The known exception: refused by the spec, so checked against our fake, which answers as
/// Asana's API documents dotted `opt_fields` paths.
#[tokio::test]
async fn asana_get_task_is_the_known_exception_and_works_against_the_fake() {
    let Some(c) =
        Contract::start("asana_get_task_is_the_known_exception_and_works_against_the_fake").await
    else {
        return;
    };
    let refused = c.asana_client().get_task(TASK).await;
    let path = format!("/tasks/{TASK}");
    c.assert_requests(&[(Method::GET, &path)], &[]);
    c.assert_known_task_exception(&c.asana.exchanges()[0]);
    c.ensure(
        matches!(refused, Err(UpstreamError::Status { status: 400, .. })),
        format!("the client reports the spec's 400: {refused:?}"),
    );

    let fake = AsanaFake::start(ASANA_TOKEN).await;
    fake.assign(
        TASK,
        PROJECT,
        Some(FakeUser::new("1200000000000400", "Jane.Doe@example.com")),
    );
    let client = AsanaClient::from_settings(&settings(&fake.url(), &c.docspace.url)).expect("URL");
    let task = client.get_task(TASK).await.expect("get_task at the fake");
    let assignee = task.assignee.expect("an assignee");
    assert_eq!(assignee.gid, "1200000000000400");
    assert_eq!(
        assignee.email,
        AssigneeEmail::Address("jane.doe@example.com".parse().unwrap())
    );
    let projects: Vec<_> = task
        .placement
        .projects
        .iter()
        .map(|p| p.gid.as_str())
        .collect();
    assert_eq!(projects, [PROJECT]);
    assert_eq!(task.placement.parent, None);
    let asked = fake.requests_to(&path);
    assert_eq!(asked.len(), 1);
    assert_eq!(
        asked[0].query_param("opt_fields").as_deref(),
        Some(TASK_FIELDS)
    );
}

/// Following a subtask's parents asks only for fields the spec lists.
#[tokio::test]
async fn asana_get_task_placement_passes_the_spec() {
    let Some(c) = Contract::start("asana_get_task_placement_passes_the_spec").await else {
        return;
    };
    let placement = c.asana_client().get_task_placement(TASK).await;
    c.assert_all_accepted();
    let path = format!("/tasks/{TASK}");
    c.assert_requests(&[(Method::GET, &path)], &[]);
    c.ensure(
        c.asana.exchanges()[0].query_param("opt_fields").as_deref() == Some("projects,parent"),
        "only the projects and the parent are asked for",
    );
    c.ensure(
        placement.is_ok(),
        format!("get_task_placement: {placement:?}"),
    );
}

#[tokio::test]
async fn docspace_calls_pass_the_spec() {
    let unknown = Prefer {
        method: Method::GET,
        path: PEOPLE_EMAIL,
        query_contains: "newcomer",
        prefer: "code=404",
    };
    let Some(c) = Contract::start_with("docspace_calls_pass_the_spec", vec![unknown]).await else {
        return;
    };
    let client = c.docspace_client();
    let profile = client.self_profile().await;
    let member = client
        .find_user("member@example.com")
        .await
        .map(|user| user.is_some());
    let newcomer = client
        .find_user("newcomer@example.com")
        .await
        .map(|user| user.is_some());
    // Every type the service can send (settings refuse Guest).
    let types = [
        InviteType::All,
        InviteType::RoomAdmin,
        InviteType::User,
        InviteType::DocSpaceAdmin,
    ];
    let mut invites = Vec::new();
    for invite_type in types {
        invites.push(client.invite("newcomer@example.com", invite_type).await);
    }
    c.assert_all_accepted();
    c.assert_requests(
        &[],
        &[
            (Method::GET, "/api/2.0/people/@self"),
            (Method::GET, PEOPLE_EMAIL),
            (Method::GET, PEOPLE_EMAIL),
            (Method::POST, PEOPLE_INVITE),
            (Method::POST, PEOPLE_INVITE),
            (Method::POST, PEOPLE_INVITE),
            (Method::POST, PEOPLE_INVITE),
        ],
    );
    c.ensure(
        profile.as_ref().is_ok_and(|p| p.display_name.is_some()),
        format!("self_profile: {profile:?}"),
    );
    c.ensure(
        member == Ok(true) && newcomer == Ok(false),
        format!("find_user, 200 then 404: {member:?}, {newcomer:?}"),
    );
    c.ensure(
        invites.iter().all(Result::is_ok),
        format!("invite: {invites:?}"),
    );
    let exchanges = c.docspace.exchanges();
    for (exchange, invite_type) in exchanges[3..].iter().zip(types) {
        c.ensure(
            exchange.request_json()
                == json!({"invitations": [{"email": "newcomer@example.com", "type": invite_type.as_str()}]}),
            format!("the invite body for {invite_type}"),
        );
    }
}

/// Every room call, and the person look-up by email with its uuid decoded.
#[tokio::test]
async fn docspace_room_calls_pass_the_spec() {
    let Some(c) = Contract::start("docspace_room_calls_pass_the_spec").await else {
        return;
    };
    let client = c.docspace_client();
    let project: Gid = PROJECT.parse().unwrap();
    let tag = RoomTag::for_project(&project);
    let room = RoomId::try_from(1).unwrap();
    let user: DocSpaceUserId = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".parse().unwrap();
    let found = client.find_user("member@example.com").await;
    let created = client
        .create_room(&NewRoom {
            title: "Website".into(),
            room_type: RoomType::Collaboration,
            tags: vec![tag.as_str().to_string()],
        })
        .await;
    let by_tag = client.find_rooms_by_tag(&tag).await;
    let probe = client.list_rooms_probe().await;
    let info = client.get_room(room).await;
    let members = client.room_members(room, "member@example.com", 0).await;
    let shared = client
        .share_room(room, &user, RoomAccess::Editing, true)
        .await;
    c.assert_all_accepted();
    c.assert_requests(
        &[],
        &[
            (Method::GET, PEOPLE_EMAIL),
            (Method::POST, ROOMS),
            (Method::GET, ROOMS),
            (Method::GET, ROOMS),
            (Method::GET, "/api/2.0/files/rooms/1"),
            (Method::GET, "/api/2.0/files/rooms/1/share"),
            (Method::PUT, "/api/2.0/files/rooms/1/share"),
        ],
    );
    c.ensure(
        found.as_ref().is_ok_and(Option::is_some),
        format!("find_user decodes the uuid: {found:?}"),
    );
    c.ensure(created.is_ok(), format!("create_room: {created:?}"));
    c.ensure(by_tag.is_ok(), format!("find_rooms_by_tag: {by_tag:?}"));
    c.ensure(probe.is_ok(), format!("list_rooms_probe: {probe:?}"));
    c.ensure(
        matches!(info, Ok(RoomLookup::Found(_))),
        format!("get_room: {info:?}"),
    );
    c.ensure(members.is_ok(), format!("room_members: {members:?}"));
    c.ensure(shared.is_ok(), format!("share_room: {shared:?}"));
    let exchanges = c.docspace.exchanges();
    c.ensure(
        exchanges[1].request_json()
            == json!({"title": "Website", "roomType": 2, "tags": [format!("asana-project:{PROJECT}")]}),
        "the create body: title, integer type and the tag; never `private`",
    );
    c.ensure(
        exchanges[2].query_param("tags") == Some(format!("[\"asana-project:{PROJECT}\"]"))
            && exchanges[2].query_param("searchArea").as_deref() == Some("0")
            && exchanges[2].query_param("count").as_deref() == Some("100"),
        "the tag search: a JSON array in a string, active rooms, a full page",
    );
    c.ensure(
        exchanges[5].query_param("filterValue").as_deref() == Some("member@example.com")
            && exchanges[5].query_param("count").as_deref() == Some("100")
            && exchanges[5].query_param("startIndex").as_deref() == Some("0"),
        "the members read: filtered by the email, a full page from the start",
    );
    c.ensure(
        exchanges[6].request_json()
            == json!({"invitations": [{"id": user.as_str(), "access": 10}], "notify": true}),
        "the share body: by id, the integer access",
    );
}

/// Taking back one person's access: `setRoomSecurity` by id with access 0 (`FileShare` None),
/// mailing nobody; never by email (DocSpace ignores a removal by email).
#[tokio::test]
async fn docspace_unshare_room_passes_the_spec() {
    let Some(c) = Contract::start("docspace_unshare_room_passes_the_spec").await else {
        return;
    };
    let client = c.docspace_client();
    let room = RoomId::try_from(1).unwrap();
    let user: DocSpaceUserId = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".parse().unwrap();
    let removed = client.unshare_room(room, &user).await;
    c.assert_all_accepted();
    c.assert_requests(&[], &[(Method::PUT, "/api/2.0/files/rooms/1/share")]);
    c.ensure(
        removed.is_ok(),
        format!("unshare_room decodes the members: {removed:?}"),
    );
    c.ensure(
        c.docspace.exchanges()[0].request_json()
            == json!({"invitations": [{"id": user.as_str(), "access": 0}], "notify": false}),
        "the removal body: by id, the integer 0, no notification, no email",
    );
}

/// A room that is gone answers 404: `get_room` says so instead of failing.
#[tokio::test]
async fn docspace_get_room_404_is_not_found() {
    let gone = Prefer {
        method: Method::GET,
        path: "/api/2.0/files/rooms/7",
        query_contains: "",
        prefer: "code=404",
    };
    let Some(c) = Contract::start_with("docspace_get_room_404_is_not_found", vec![gone]).await
    else {
        return;
    };
    let client = c.docspace_client();
    let info = client.get_room(RoomId::try_from(7).unwrap()).await;
    let user = client.find_user("member@example.com").await;
    c.assert_requests(
        &[],
        &[
            (Method::GET, "/api/2.0/files/rooms/7"),
            (Method::GET, PEOPLE_EMAIL),
        ],
    );
    c.ensure(
        info == Ok(RoomLookup::NotFound),
        format!("get_room: {info:?}"),
    );
    c.ensure(user.is_ok(), format!("find_user: {user:?}"));
}

#[tokio::test]
async fn command_check_config_passes_the_spec() {
    let Some(c) = Contract::start("command_check_config_passes_the_spec").await else {
        return;
    };
    let out = c.cli().await.run(&["check-config"]).await;
    c.assert_all_accepted();
    c.assert_requests(
        &[(Method::GET, "/users/me")],
        &[(Method::GET, "/api/2.0/people/@self")],
    );
    c.ensure(
        out.code == Some(0)
            && out.stdout.contains("asana token: works")
            && out.stdout.contains("docspace key: works")
            && !out.stdout.contains("FAIL"),
        format!("check-config: {out:#?}"),
    );
}

/// Prism performs no handshake, so the command must end on its documented failure path: the
/// secret in Asana's answer never reached the store, and the webhook is deleted again.
#[tokio::test]
async fn command_webhooks_create_passes_the_spec_up_to_the_missing_handshake() {
    let Some(c) =
        Contract::start("command_webhooks_create_passes_the_spec_up_to_the_missing_handshake")
            .await
    else {
        return;
    };
    let out = c
        .cli()
        .await
        .run(&["webhooks", "create", "--project", PROJECT, "--name", "x"])
        .await;
    c.assert_all_accepted();
    let exchanges = c.asana.exchanges();
    let created_gid = exchanges
        .first()
        .and_then(|e| {
            e.response_json()["data"]["gid"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default();
    let one = format!("/webhooks/{created_gid}");
    c.assert_requests(&[(Method::POST, "/webhooks"), (Method::DELETE, &one)], &[]);
    let mut sent = exchanges[0].request_json();
    let target = sent["data"]["target"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let nonce = target
        .strip_prefix(&format!("{PUBLIC_URL}/webhooks/asana/x?r="))
        .unwrap_or_default();
    sent["data"]["target"] = json!(format!("{PUBLIC_URL}/webhooks/asana/x"));
    c.ensure(
        sent == json!({"data": {
            "resource": PROJECT,
            "target": format!("{PUBLIC_URL}/webhooks/asana/x"),
            "filters": webhook_filters(&project_resource()),
        }}) && nonce.len() == 32
            && nonce.bytes().all(|b| b.is_ascii_hexdigit()),
        format!("the create body, its target with a 128-bit nonce: {target}"),
    );
    c.ensure(
        out.code == Some(1)
            && out
                .stderr
                .contains("the handshake did not reach this service's store")
            && out
                .stderr
                .contains(&format!("webhook {created_gid} was deleted at Asana")),
        format!("webhooks create: {out:#?}"),
    );
}

/// `webhooks watch-workspace` asks for a workspace webhook the spec takes; Prism performs no
/// handshake, so the command then deletes what Asana created, as `webhooks create` does.
#[tokio::test]
async fn command_webhooks_watch_workspace_passes_the_spec_up_to_the_missing_handshake() {
    let Some(c) = Contract::start(
        "command_webhooks_watch_workspace_passes_the_spec_up_to_the_missing_handshake",
    )
    .await
    else {
        return;
    };
    let out = c
        .cli()
        .await
        .run(&[
            "webhooks",
            "watch-workspace",
            "--workspace",
            WORKSPACE,
            "--name",
            "x",
        ])
        .await;
    c.assert_all_accepted();
    let exchanges = c.asana.exchanges();
    let created_gid = exchanges
        .first()
        .and_then(|e| {
            e.response_json()["data"]["gid"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default();
    let one = format!("/webhooks/{created_gid}");
    c.assert_requests(&[(Method::POST, "/webhooks"), (Method::DELETE, &one)], &[]);
    let mut sent = exchanges[0].request_json();
    sent["data"]["target"] = json!("-");
    c.ensure(
        sent == json!({"data": {
            "resource": WORKSPACE,
            "target": "-",
            "filters": webhook_filters(&workspace_resource()),
        }}),
        format!("the create body: {}", exchanges[0].request_json()),
    );
    c.ensure(
        out.code == Some(1)
            && out
                .stderr
                .contains("the handshake did not reach this service's store"),
        format!("webhooks watch-workspace: {out:#?}"),
    );
}

/// `rooms link` reads the project at Asana and the room at DocSpace, as the specs describe them.
#[tokio::test]
async fn command_rooms_link_passes_the_spec() {
    let Some(c) = Contract::start("command_rooms_link_passes_the_spec").await else {
        return;
    };
    // The spec's example room is a FillingForms room.
    let out = c
        .cli()
        .await
        .run(&[
            "rooms",
            "link",
            "--project",
            PROJECT,
            "--room",
            "1",
            "--access",
            "FillForms",
        ])
        .await;
    c.assert_all_accepted();
    let project = format!("/projects/{PROJECT}");
    c.assert_requests(
        &[(Method::GET, &project)],
        &[(Method::GET, "/api/2.0/files/rooms/1")],
    );
    c.ensure(
        out.code == Some(0) && out.stdout.contains("is linked to room 1"),
        format!("rooms link: {out:#?}"),
    );
}

/// `rooms create` reads the project at Asana, searches DocSpace for its tagged room and, finding
/// none (the spec's example carries other tags), creates it.
#[tokio::test]
async fn command_rooms_create_passes_the_spec() {
    let Some(c) = Contract::start("command_rooms_create_passes_the_spec").await else {
        return;
    };
    let out = c
        .cli()
        .await
        .run(&["rooms", "create", "--project", PROJECT])
        .await;
    c.assert_all_accepted();
    let project = format!("/projects/{PROJECT}");
    c.assert_requests(
        &[(Method::GET, &project)],
        &[(Method::GET, ROOMS), (Method::POST, ROOMS)],
    );
    let exchanges = c.docspace.exchanges();
    c.ensure(
        exchanges[1].request_json()["tags"] == json!([format!("asana-project:{PROJECT}")]),
        "the room is tagged with the project",
    );
    c.ensure(
        out.code == Some(0) && out.stdout.contains("(created)"),
        format!("rooms create: {out:#?}"),
    );
}

#[tokio::test]
async fn command_webhooks_list_and_delete_pass_the_spec() {
    let Some(c) = Contract::start("command_webhooks_list_and_delete_pass_the_spec").await else {
        return;
    };
    let cli = c.cli().await;
    let listed = cli
        .run(&["webhooks", "list", "--workspace", WORKSPACE])
        .await;
    // Without --workspace: the token user's only workspace, from GET /users/me.
    let listed_default = cli.run(&["webhooks", "list"]).await;
    let deleted = cli.run(&["webhooks", "delete", WEBHOOK]).await;
    c.assert_all_accepted();
    let one = format!("/webhooks/{WEBHOOK}");
    c.assert_requests(
        &[
            (Method::GET, "/webhooks"),
            (Method::GET, "/webhooks"),
            (Method::GET, "/users/me"),
            (Method::GET, "/webhooks"),
            (Method::GET, "/webhooks"),
            (Method::DELETE, &one),
        ],
        &[],
    );
    let exchanges = c.asana.exchanges();
    let only_workspace = exchanges[2].response_json()["data"]["workspaces"][0]["gid"]
        .as_str()
        .map(str::to_string);
    c.ensure(
        exchanges[0].query_param("workspace").as_deref() == Some(WORKSPACE)
            && exchanges[3].query_param("workspace") == only_workspace,
        "each list asks for the right workspace",
    );
    c.ensure(
        listed.code == Some(0) && listed_default.code == Some(0),
        format!("webhooks list: {listed:#?}\n{listed_default:#?}"),
    );
    c.ensure(
        deleted.code == Some(0)
            && deleted
                .stdout
                .contains(&format!("Deleted webhook {WEBHOOK} at Asana")),
        format!("webhooks delete: {deleted:#?}"),
    );
}

/// Prism's example tasks have no assignee, so neither run gets as far as DocSpace (its calls are
/// checked in `docspace_calls_pass_the_spec` and the invite-task test below).
#[tokio::test]
async fn command_backfill_passes_the_spec() {
    let Some(c) = Contract::start("command_backfill_passes_the_spec").await else {
        return;
    };
    let cli = c.cli().await;
    let dry_run = cli
        .run(&["backfill", "--project", PROJECT, "--dry-run"])
        .await;
    let queued = cli.run(&["backfill", "--project", PROJECT]).await;
    c.assert_all_accepted();
    c.assert_requests(
        &[
            (Method::GET, "/tasks"),
            (Method::GET, "/tasks"),
            (Method::GET, "/tasks"),
            (Method::GET, "/tasks"),
        ],
        &[],
    );
    for exchange in c.asana.exchanges() {
        let since = exchange.query_param("completed_since").unwrap_or_default();
        c.ensure(
            exchange.query_param("project").as_deref() == Some(PROJECT)
                && humantime::parse_rfc3339(&since).is_ok(),
            format!("completed_since is an RFC 3339 timestamp, not {since:?}"),
        );
    }
    c.ensure(
        dry_run.code == Some(0) && dry_run.stdout.contains("Dry run:"),
        format!("backfill --dry-run: {dry_run:#?}"),
    );
    c.ensure(
        queued.code == Some(0) && queued.stdout.contains("incomplete tasks of project"),
        format!("backfill: {queued:#?}"),
    );
}

/// The command's first call is the known exception: Prism refuses it, and the job fails on the
/// spec's 400 without reaching DocSpace.
#[tokio::test]
async fn command_invite_task_is_refused_only_for_the_known_exception() {
    let Some(c) =
        Contract::start("command_invite_task_is_refused_only_for_the_known_exception").await
    else {
        return;
    };
    let out = c.cli().await.run(&["invite-task", TASK]).await;
    let path = format!("/tasks/{TASK}");
    c.assert_requests(&[(Method::GET, &path)], &[]);
    c.assert_known_task_exception(&c.asana.exchanges()[0]);
    c.ensure(
        out.code == Some(1) && out.stderr.contains("Asana answered 400"),
        format!("invite-task: {out:#?}"),
    );
}

/// The same command end to end, with our Asana fake for the known exception and DocSpace's spec
/// for the rest; Prism is asked for the spec's 404 on the look-up so the invitation is sent.
#[tokio::test]
async fn command_invite_task_works_with_the_asana_fake_and_passes_the_docspace_spec() {
    let unknown = Prefer {
        method: Method::GET,
        path: PEOPLE_EMAIL,
        query_contains: "",
        prefer: "code=404",
    };
    let Some(c) = Contract::start_with(
        "command_invite_task_works_with_the_asana_fake_and_passes_the_docspace_spec",
        vec![unknown],
    )
    .await
    else {
        return;
    };
    let fake = AsanaFake::start(ASANA_TOKEN).await;
    fake.assign(
        TASK,
        PROJECT,
        Some(FakeUser::new("1200000000000400", "Jane.Doe@example.com")),
    );
    let out = Cli::new(&fake.url(), &c.docspace.url)
        .await
        .run(&["invite-task", TASK])
        .await;
    c.assert_all_accepted();
    c.assert_requests(
        &[],
        &[(Method::GET, PEOPLE_EMAIL), (Method::POST, PEOPLE_INVITE)],
    );
    let exchanges = c.docspace.exchanges();
    c.ensure(
        exchanges[0].query_param("email").as_deref() == Some("jane.doe@example.com")
            && exchanges[1].request_json()
                == json!({"invitations": [{"email": "jane.doe@example.com", "type": "User"}]}),
        "the look-up and the invitation name the lowercased email, as type User",
    );
    let asked = fake.requests_to(&format!("/tasks/{TASK}"));
    c.ensure(
        asked.len() == 1 && asked[0].query_param("opt_fields").as_deref() == Some(TASK_FIELDS),
        "the task is read once, with the assignee's email",
    );
    c.ensure(
        out.code == Some(0) && out.stdout.contains(&format!("task {TASK}: invited")),
        format!("invite-task: {out:#?}"),
    );
}
