//! Starting the bridge against the fakes, in-process or as a real process, and awaiting what it does.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use asana_docspace_bridge::Application;
use asana_docspace_bridge::settings::{Settings, Sources};
use asana_docspace_bridge::store::{JobRecord, JobStatus, Store, StoreOptions};
use asana_docspace_fakes::{
    AsanaFake, DocSpaceFake, FakeUser, assignment_delivery, random_secret, sign,
};
pub use asana_docspace_test_support::Backend;
use asana_docspace_test_support::{BridgeEnv, TEST_DATABASE_VAR, TestConnection, TestDatabase};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ASANA_TOKEN: &str = "1/1200000000000000:test-token";
pub const DOCSPACE_KEY: &str = "sk-test-docspace-key";
pub const PROJECT: &str = "1200000000000100";
pub const WAIT: Duration = Duration::from_secs(20);

/// The bridge's environment for a test: fakes, a fresh database, fast retries.
pub struct Env {
    pub asana: AsanaFake,
    pub docspace: DocSpaceFake,
    pub database: TestDatabase,
    /// The bridge's `BRIDGE__*` variables, for the process and for [`Env::settings`].
    pub vars: BridgeEnv,
}

impl Env {
    /// On `backend`; `None`, saying the test is skipped, when it is PostgreSQL and
    /// BRIDGE_TEST_DATABASE_URL is unset.
    pub async fn on(backend: Backend) -> Option<Env> {
        let Some(database) = TestDatabase::create(backend).await else {
            eprintln!("skipped: set {TEST_DATABASE_VAR} to run this test on PostgreSQL");
            return None;
        };
        let asana = AsanaFake::start(ASANA_TOKEN).await;
        let docspace = DocSpaceFake::start(DOCSPACE_KEY).await;
        let vars = BridgeEnv::new()
            .listen_on(0)
            .asana(&asana.url(), ASANA_TOKEN)
            .docspace(&docspace.url(), DOCSPACE_KEY)
            .with("BRIDGE__DOCSPACE__INVITE_TYPE", "User")
            .database(database.url())
            .with("BRIDGE__WORKER__BACKOFF_BASE_MS", "20")
            .with("BRIDGE__WORKER__BACKOFF_MAX_MS", "200")
            .with("BRIDGE__WORKER__POLL_INTERVAL_MS", "100")
            .with("BRIDGE__WORKER__REQUEST_TIMEOUT_MS", "2000")
            .with("BRIDGE__WORKER__LEASE_MS", "5000")
            // Most tests hand-make handshakes; the registration mode has its own tests.
            .with("BRIDGE__WEBHOOKS__HANDSHAKE", "first-use")
            // Reconcile passes queue jobs and call Asana on their own; their tests turn them on.
            .with("BRIDGE__RECONCILE__INTERVAL_SECS", "0");
        Some(Env {
            asana,
            docspace,
            database,
            vars,
        })
    }

    /// Runs `statement` directly on the test's database (to age rows, say).
    pub async fn execute_sql(&self, statement: &str) {
        self.database.execute(statement).await;
    }

    pub fn set(&mut self, key: &str, value: &str) -> &mut Env {
        self.vars.set(key, value);
        self
    }

    pub fn settings(&self) -> Settings {
        Settings::load_from(Sources {
            file: None,
            env: Some(self.vars.to_map()),
        })
        .expect("valid test settings")
    }

    /// The same database the bridge uses, opened beside it.
    pub async fn store(&self) -> Store {
        Store::open_migrated(self.database.url(), &StoreOptions::default())
            .await
            .expect("open store")
    }

    /// Runs the binary with these settings, e.g. `env.run(&["jobs", "list"])`.
    pub async fn run(&self, args: &[&str]) -> CommandOutput {
        let output = self
            .vars
            .command(binary())
            .args(args)
            .output()
            .await
            .expect("run the binary");
        CommandOutput {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Starts the binary with these settings and returns at once, for a test to signal it.
    pub fn spawn(&self, args: &[&str]) -> RunningCommand {
        let child = self
            .vars
            .command(binary())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the binary");
        RunningCommand { child }
    }

    /// Holds SQLite's write lock, or an exclusive lock on `tables` on PostgreSQL, until
    /// [`WriteLock::release`]: every write to them waits, reads go on.
    pub async fn lock_writes(&self, tables: &[&str]) -> WriteLock {
        let mut conn = self.database.connect().await;
        match self.database.backend() {
            Backend::Sqlite => {
                conn.execute("BEGIN IMMEDIATE").await;
            }
            Backend::Postgres => {
                conn.execute("BEGIN").await;
                conn.execute(&format!(
                    "LOCK TABLE {} IN EXCLUSIVE MODE",
                    tables.join(", ")
                ))
                .await;
            }
        }
        WriteLock(conn)
    }

    /// A task in the test project assigned to `email`.
    pub fn assign(&self, task_gid: &str, user_gid: &str, email: &str) {
        self.asana
            .assign(task_gid, PROJECT, Some(FakeUser::new(user_gid, email)));
    }
}

/// What a command printed and how it exited.
#[derive(Debug)]
pub struct CommandOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    /// Panics, showing the output, unless the command exited with `code`.
    pub fn expect_code(&self, code: i32) -> &CommandOutput {
        assert_eq!(self.code, Some(code), "exit code; output: {self:#?}");
        self
    }
}

/// A command started with [`Env::spawn`], still running.
pub struct RunningCommand {
    child: tokio::process::Child,
}

impl RunningCommand {
    /// Sends `signal` (`"TERM"`, `"INT"`) to the command.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal}");
    }

    /// kill -9.
    pub fn kill9(&mut self) {
        self.child.start_kill().expect("kill -9");
    }

    /// Waits for the command to exit and returns what it printed.
    pub async fn finish(self) -> CommandOutput {
        let output = tokio::time::timeout(WAIT, self.child.wait_with_output())
            .await
            .expect("the command exits")
            .expect("wait");
        CommandOutput {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// A write lock on the test's database, held by the test (see [`Env::lock_writes`]).
pub struct WriteLock(TestConnection);

impl WriteLock {
    pub async fn release(mut self) {
        self.0.execute("ROLLBACK").await;
        self.0.close().await;
    }
}

/// The bridge running in this test process.
pub struct TestApp {
    pub bridge: Bridge,
    stop: oneshot::Sender<()>,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    pub async fn spawn(env: &Env) -> TestApp {
        let app = Application::build(env.settings())
            .await
            .expect("the app builds");
        let bridge = Bridge::at(&format!("http://127.0.0.1:{}", app.port()));
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        TestApp {
            bridge,
            stop,
            handle,
        }
    }

    /// Graceful stop, as on SIGTERM; returns what `run_until_stopped` returned.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.handle.await.expect("the app task")
    }
}

/// Talks to a running bridge over HTTP, as Asana and operators do.
pub struct Bridge {
    pub address: String,
    pub client: reqwest::Client,
}

impl Bridge {
    pub fn at(address: &str) -> Bridge {
        Bridge {
            address: address.to_string(),
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// `GET /metrics`, parsed by [`parse_metrics`].
    pub async fn metrics(&self) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("a text body");
        parse_metrics(&text)
    }

    /// `GET /readyz`: the status code and the JSON body.
    pub async fn readyz(&self) -> (u16, Value) {
        let response = self
            .client
            .get(self.url("/readyz"))
            .send()
            .await
            .expect("readyz");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    pub async fn handshake(&self, name: &str, secret: &str) -> reqwest::Response {
        self.handshake_to(&self.url(&format!("/webhooks/asana/{name}")), secret)
            .await
    }

    /// A handshake to a full target URL (with its query, if any), as Asana sends it.
    pub async fn handshake_to(&self, target: &str, secret: &str) -> reqwest::Response {
        self.client
            .post(target)
            .header("X-Hook-Secret", secret)
            .send()
            .await
            .expect("handshake request")
    }

    /// Registers `name` with a fresh secret and returns the secret.
    pub async fn register(&self, name: &str) -> String {
        let secret = random_secret();
        let response = self.handshake(name, &secret).await;
        assert_eq!(response.status(), 200, "handshake for {name}");
        secret
    }

    pub async fn deliver_raw(
        &self,
        name: &str,
        signature: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url(&format!("/webhooks/asana/{name}")))
            .header("content-type", "application/json");
        if let Some(signature) = signature {
            request = request.header("X-Hook-Signature", signature);
        }
        request.body(body).send().await.expect("delivery request")
    }

    /// A correctly signed delivery of `body`.
    pub async fn deliver(&self, name: &str, secret: &str, body: &Value) -> reqwest::Response {
        let body = body.to_string();
        let signature = sign(secret, body.as_bytes());
        self.deliver_raw(name, Some(&signature), body).await
    }

    /// Delivers an assignment of `task_gid` to `user_gid` and expects it accepted.
    pub async fn deliver_assignment(
        &self,
        name: &str,
        secret: &str,
        task_gid: &str,
        user_gid: &str,
    ) {
        let response = self
            .deliver(name, secret, &assignment_delivery(task_gid, user_gid))
            .await;
        assert_eq!(response.status(), 200, "delivery accepted");
    }
}

/// Polls `check` until it yields a value, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until no job is pending or running and returns them all.
pub async fn settled_jobs(store: &Store) -> Vec<JobRecord> {
    eventually("every job to settle", WAIT, || async {
        let jobs = store.list_jobs(None, 100_000).await.expect("list jobs");
        jobs.iter()
            .all(|j| j.status == JobStatus::Done || j.status == JobStatus::Failed)
            .then_some(jobs)
    })
    .await
}

/// The outcome of the job for `task_gid` among `jobs`.
pub fn outcome_of(jobs: &[JobRecord], task_gid: &str) -> String {
    jobs.iter()
        .find(|j| j.task_gid == task_gid)
        .and_then(|j| j.outcome.clone())
        .unwrap_or_else(|| panic!("no finished job for task {task_gid}"))
}

/// Waits until job `id` reached `status`.
pub async fn job_with_status(store: &Store, id: i64, status: JobStatus) -> JobRecord {
    eventually(&format!("job {id} to be {status}"), WAIT, || async {
        store
            .job(id)
            .await
            .expect("read job")
            .filter(|j| j.status == status)
    })
    .await
}

/// The bridge as a separate process (for signals and kill -9).
pub struct BridgeProcess {
    pub child: tokio::process::Child,
    pub bridge: Bridge,
    /// Every line the process logged (JSON), so far.
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl BridgeProcess {
    /// Starts the binary with `env`'s settings and waits until it listens.
    pub async fn start(env: &Env) -> BridgeProcess {
        let mut command = env.vars.command(binary());
        command
            .arg("serve")
            .env("BRIDGE__LOG__FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("start the bridge");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let address = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.expect("read log") {
                logs.lock().unwrap().push(line.clone());
                let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if entry["message"] == "listening" {
                    return entry["address"]
                        .as_str()
                        .expect("address field")
                        .to_string();
                }
            }
            panic!("the bridge exited before listening");
        })
        .await
        .expect("the bridge starts listening");
        // Keep reading the log so the process never blocks on a full pipe.
        let collected = logs.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                collected.lock().unwrap().push(line);
            }
        });
        BridgeProcess {
            child,
            bridge: Bridge::at(&format!("http://{address}")),
            logs,
        }
    }

    pub async fn kill9(mut self) {
        self.child.kill().await.expect("kill -9");
    }

    /// Sends SIGTERM and returns the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("exits after SIGTERM")
            .expect("wait")
    }
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_asana-docspace-bridge"))
}

/// Writes `request` to the bridge over a plain TCP connection and returns everything it answers
/// until it closes the connection.
pub async fn raw_request(address: &str, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    stream.write_all(request).await.expect("write request");
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("the bridge answers and closes")
        .expect("read answer");
    String::from_utf8_lossy(&answer).into_owned()
}

/// A TCP proxy to a database that a test can cut (dropping every connection and refusing new
/// ones) and restore: a database outage on demand.
pub struct TcpProxy {
    pub address: std::net::SocketAddr,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(upstream: String) -> TcpProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (up_in_loop, connections_in_loop) = (up.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up_in_loop.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections_in_loop
                    .lock()
                    .unwrap()
                    .push(task.abort_handle());
            }
        });
        TcpProxy {
            address,
            up,
            connections,
            accept,
        }
    }

    /// The database goes away: open connections drop, new ones are refused.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// A webhook name for the store's API (tests name their webhooks with literals).
pub fn name(value: &str) -> asana_docspace_bridge::domain::WebhookName {
    value.parse().expect("a valid webhook name")
}

/// An Asana gid for the store's API.
pub fn gid(value: &str) -> asana_docspace_bridge::domain::Gid {
    value.parse().expect("a valid gid")
}

/// An email address for the store's API.
pub fn email(value: &str) -> asana_docspace_bridge::domain::Email {
    value.parse().expect("a valid email")
}

/// A job for task `task_gid` as a delivery would queue it.
pub fn assignment_job(dedupe_key: &str, task_gid: &str) -> asana_docspace_bridge::store::NewJob {
    asana_docspace_bridge::store::NewJob {
        dedupe_key: dedupe_key.into(),
        task_gid: gid(task_gid),
        kind: asana_docspace_bridge::domain::JobKind::AssigneeChanged,
        project_gid: None,
        assignee_gid: None,
    }
}

/// The source of jobs queued by deliveries to webhook `value`.
pub fn from_webhook(value: &str) -> asana_docspace_bridge::domain::JobSource {
    asana_docspace_bridge::domain::JobSource::Webhook(name(value))
}

/// `name{label="value",...} number` lines → ("name", sorted labels) → number.
pub fn parse_metrics(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let mut samples = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let labels = rest
                    .trim_end_matches('}')
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').expect("label=value");
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        samples.insert((name, labels), value.parse().expect("a number"));
    }
    samples
}

/// The value of `name` with exactly `labels`; panics, naming it, when there is none.
pub fn sample(
    samples: &BTreeMap<(String, BTreeMap<String, String>), f64>,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    *samples
        .get(&(name.to_string(), labels.clone()))
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

/// A Collaboration room "Website" in the fake, linked to [`PROJECT`] with `access` through the
/// store (as `rooms link` does, without its checks).
pub async fn link_room(env: &Env, store: &Store, access: i64) -> i64 {
    const COLLABORATION: i64 = 2;
    let room = env.docspace.create_room("Website", COLLABORATION, &[]);
    store
        .link_project_room(
            asana_docspace_bridge::store::NewProjectRoom {
                project_gid: gid(PROJECT),
                room_id: room,
                room_title: "Website".into(),
                room_type: COLLABORATION,
                access,
            },
            Some("Website"),
        )
        .await
        .expect("link the room");
    room
}

/// The body of a delivery that may end a need of task `task_gid`'s rooms (issue 13), as the
/// Asana fake builds it: `unassigned`, `completed`, `removed` (from [`PROJECT`]) or `deleted`.
pub fn lifecycle_delivery(task_gid: &str, ending: &str) -> Value {
    match ending {
        "unassigned" => asana_docspace_fakes::unassignment_delivery(task_gid),
        "completed" => asana_docspace_fakes::completion_delivery(task_gid),
        "removed" => asana_docspace_fakes::removed_delivery(task_gid, PROJECT),
        "deleted" => asana_docspace_fakes::deleted_delivery(task_gid),
        other => panic!("no lifecycle delivery {other:?}"),
    }
}

/// Every `PUT …/rooms/{id}/share` that removes someone (an invitation with access 0).
pub fn removal_puts(docspace: &DocSpaceFake) -> Vec<Value> {
    docspace
        .unshare_requests()
        .iter()
        .map(|r| r.json())
        .collect()
}

/// Waits until `count` jobs of `kind` have finished (done or failed) and returns those.
pub async fn finished_jobs_of(
    store: &Store,
    kind: asana_docspace_bridge::domain::JobKind,
    count: usize,
) -> Vec<JobRecord> {
    eventually(
        &format!("{count} {kind:?} jobs to finish"),
        WAIT,
        || async {
            let jobs: Vec<JobRecord> = store
                .list_jobs(None, 100_000)
                .await
                .expect("list jobs")
                .into_iter()
                .filter(|j| j.event_kind == kind)
                .filter(|j| j.status == JobStatus::Done || j.status == JobStatus::Failed)
                .collect();
            (jobs.len() >= count).then_some(jobs)
        },
    )
    .await
}

/// The status page's token in tests: long enough for the settings' 32-character rule.
pub const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef0123456789abcdef";

/// Set by `.ci/run`: a missing chromedriver or Chromium fails the browser tests instead of skipping them.
pub const BROWSER_REQUIRED_VAR: &str = "BRIDGE_BROWSER_REQUIRED";

/// Where the browser tests save their screenshots (and page sources on failure): under `target/`,
/// so CI keeps them as artifacts.
pub fn screenshots_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/admin-screenshots")
}

/// `program` on `PATH`, if any.
fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Debian's chromedriver as a child of the test, on a free port; killed (by its own pid) when dropped.
pub struct ChromeDriver {
    child: std::process::Child,
    url: String,
    chromium: PathBuf,
}

impl ChromeDriver {
    /// Starts chromedriver and waits until it is ready. `None`, saying why, when chromedriver or
    /// Chromium is not installed, unless [`BROWSER_REQUIRED_VAR`] is `1`: then that fails the test.
    pub async fn start() -> Option<ChromeDriver> {
        let found = on_path("chromedriver").zip(on_path("chromium"));
        let Some((driver, chromium)) = found else {
            let why = "chromedriver or chromium is not on PATH (apt-get install chromium chromium-driver)";
            if std::env::var(BROWSER_REQUIRED_VAR).as_deref() == Ok("1") {
                panic!("{why}, and {BROWSER_REQUIRED_VAR}=1");
            }
            eprintln!("skipped: {why}");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = std::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .arg("--log-level=WARNING")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start chromedriver");
        let started = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            chromium,
        };
        let status = format!("{}/status", started.url);
        let client = reqwest::Client::new();
        eventually("chromedriver to be ready", WAIT, || async {
            let answer = client.get(&status).send().await.ok()?;
            let body: Value = answer.json().await.ok()?;
            (body["value"]["ready"] == true).then_some(())
        })
        .await;
        Some(started)
    }

    /// A new headless Chromium session; with `javascript: false` the page's scripts never run.
    pub async fn browser(&self, javascript: bool) -> fantoccini::Client {
        let mut args = vec![
            "--headless=new",
            // CI runs as root, where Chromium's sandbox cannot start.
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--window-size=1280,1800",
        ];
        if !javascript {
            args.push("--blink-settings=scriptEnabled=false");
        }
        let mut capabilities = fantoccini::wd::Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": self.chromium, "args": args }),
        );
        fantoccini::ClientBuilder::rustls()
            .expect("rustls")
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a chromedriver session")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Types `token` into the sign-in form on the browser's current page and submits it.
pub async fn submit_token(browser: &fantoccini::Client, token: &str) {
    use fantoccini::Locator;
    let form = browser
        .form(Locator::Css("form#sign-in"))
        .await
        .expect("the sign-in form");
    form.set_by_name("token", token)
        .await
        .expect("type the token");
    form.submit_with(Locator::Css("button, input[type=submit]"))
        .await
        .expect("submit the sign-in form");
}

/// Opens `admin_url` and signs in with the right `token`, as an operator does; returns once the
/// status page shows.
pub async fn sign_in(browser: &fantoccini::Client, admin_url: &str, token: &str) {
    browser.goto(admin_url).await.expect("open /admin");
    submit_token(browser, token).await;
    browser
        .wait()
        .at_most(WAIT)
        .for_element(fantoccini::Locator::Css("main#status"))
        .await
        .expect("the status page after signing in");
}
