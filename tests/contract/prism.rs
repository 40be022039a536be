//! Stoplight Prism mock servers generated from the official specs in `../shared/specs`, started
//! once per test binary and shared by every test (each start parses a 3 MB spec for ~10 s).

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The variable naming the `prism` binary, when it is not at [`LOCAL_PRISM`].
pub const PRISM_BIN_VAR: &str = "BRIDGE_PRISM_BIN";
/// The variable naming the folder holding the two specs, when it is not `../shared/specs`.
pub const SPECS_DIR_VAR: &str = "BRIDGE_SPECS_DIR";
/// Where `scripts/install-prism.sh` puts the binary, relative to the repository root.
const LOCAL_PRISM: &str = ".tools/prism/node_modules/.bin/prism";
pub const ASANA_SPEC: &str = "asana_oas.yaml";
pub const DOCSPACE_SPEC: &str = "docspace_openapi.json";
/// A cold start takes ~10 s on two cores; leave room for a loaded CI machine.
const START_DEADLINE: Duration = Duration::from_secs(120);

/// Every line a server logged, on stdout or stderr.
type Log = Arc<Mutex<Vec<String>>>;

/// Both mock servers.
pub struct Prisms {
    pub asana: PrismServer,
    pub docspace: PrismServer,
}

/// One `prism mock <spec> --errors` process and everything it logged.
pub struct PrismServer {
    pub spec: PathBuf,
    /// Prism serves the spec's paths at the root: `/users/me`, not the server URL's `/api/1.0/users/me`.
    pub url: String,
    log: Log,
    // Kept for its stdin pipe: the process ends when the test binary does (see `spawn`).
    _process: Mutex<Child>,
}

impl PrismServer {
    /// How many log lines there are so far, to show only a test's own part later.
    pub fn log_mark(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// The log lines since `mark` (other tests share the server: their lines may be among them),
    /// each cut to 400 characters (a refused enum value makes Prism list every allowed one).
    pub fn log_since(&self, mark: usize) -> String {
        let log = self.log.lock().unwrap();
        let lines = log.get(mark..).unwrap_or_default().iter().map(|line| {
            match line.char_indices().nth(400) {
                Some((cut, _)) => format!("{}...", &line[..cut]),
                None => line.clone(),
            }
        });
        lines.collect::<Vec<_>>().join("\n")
    }
}

/// The `prism` binary: `$BRIDGE_PRISM_BIN`, else the one `scripts/install-prism.sh` installs;
/// `None` when neither exists.
pub fn prism_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(PRISM_BIN_VAR).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{PRISM_BIN_VAR}={} names no file: unset it or run scripts/install-prism.sh",
            path.display()
        );
        return Some(path);
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(LOCAL_PRISM);
    local.is_file().then_some(local)
}

/// Set (CI sets it) to make a missing Prism or spec fail the contract tests instead of skipping them.
pub const REQUIRED_VAR: &str = "BRIDGE_CONTRACT_REQUIRED";

/// Whether the contract tests must run here.
pub fn required() -> bool {
    std::env::var_os(REQUIRED_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The folder holding both specs; they are read where they are, never copied into the project.
/// `Err` says which spec is missing where: a clone without `../shared` has none.
pub fn specs_dir() -> Result<PathBuf, String> {
    let dir = match std::env::var_os(SPECS_DIR_VAR).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/specs"),
    };
    for spec in [ASANA_SPEC, DOCSPACE_SPEC] {
        if !dir.join(spec).is_file() {
            return Err(format!(
                "the official spec {spec} is not in {} (set {SPECS_DIR_VAR} to the folder holding {ASANA_SPEC} and {DOCSPACE_SPEC})",
                dir.display()
            ));
        }
    }
    Ok(dir)
}

static PRISMS: OnceLock<Result<Prisms, String>> = OnceLock::new();

/// The shared servers for the specs in `specs`, started by whichever test asks first (blocking:
/// call it off the async runtime). A failed start is remembered, not retried by every test.
pub fn shared(binary: &Path, specs: &Path) -> Result<&'static Prisms, String> {
    PRISMS
        .get_or_init(|| start_both(binary, specs))
        .as_ref()
        .map_err(Clone::clone)
}

fn start_both(binary: &Path, specs: &Path) -> Result<Prisms, String> {
    // Both parse their spec at once: the start costs the slower of the two, not the sum.
    let asana = Starting::spawn(binary, &specs.join(ASANA_SPEC))?;
    let docspace = Starting::spawn(binary, &specs.join(DOCSPACE_SPEC))?;
    Ok(Prisms {
        asana: asana.ready()?,
        docspace: docspace.ready()?,
    })
}

struct Starting {
    binary: PathBuf,
    spec: PathBuf,
    address: SocketAddr,
    process: Child,
    log: Log,
    started: Instant,
    attempts: u32,
}

impl Starting {
    fn spawn(binary: &Path, spec: &Path) -> Result<Starting, String> {
        let (process, address, log) = spawn(binary, spec)?;
        Ok(Starting {
            binary: binary.to_path_buf(),
            spec: spec.to_path_buf(),
            address,
            process,
            log,
            started: Instant::now(),
            attempts: 1,
        })
    }

    /// Polls until the server accepts connections and said so, the process exits, or the
    /// deadline passes.
    fn ready(mut self) -> Result<PrismServer, String> {
        let deadline = self.started + START_DEADLINE;
        loop {
            if let Some(status) = self.process.try_wait().map_err(|e| e.to_string())? {
                let log = self.log.lock().unwrap().join("\n");
                // Another process took the free port we picked between probing and binding it.
                if log.contains("EADDRINUSE") && self.attempts < 3 {
                    let (process, address, log) = spawn(&self.binary, &self.spec)?;
                    (self.process, self.address, self.log) = (process, address, log);
                    self.attempts += 1;
                    continue;
                }
                return Err(format!(
                    "prism for {} exited ({status}) before listening; its log:\n{log}",
                    self.spec.display()
                ));
            }
            // Prism logs its start-up (every route) before this line: waiting for it too keeps
            // that out of the first test's share of the log.
            let announced = || {
                let log = self.log.lock().unwrap();
                log.iter()
                    .any(|line| line.contains("Prism is listening on"))
            };
            if TcpStream::connect_timeout(&self.address, Duration::from_millis(250)).is_ok()
                && announced()
            {
                eprintln!(
                    "prism for {} listening on {} after {:.1}s",
                    self.spec.display(),
                    self.address,
                    self.started.elapsed().as_secs_f64()
                );
                return Ok(PrismServer {
                    spec: self.spec,
                    url: format!("http://{}", self.address),
                    log: self.log,
                    _process: Mutex::new(self.process),
                });
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "prism for {} did not listen on {} within {START_DEADLINE:?}; its log:\n{}",
                    self.spec.display(),
                    self.address,
                    self.log.lock().unwrap().join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs `prism mock <spec> --errors` on a free loopback port, logging into a shared buffer.
///
/// The servers live in a static, which is never dropped, so `kill_on_drop` cannot end them.
/// Instead a small shell wrapper holds the read end of a pipe whose write end only this process
/// owns: when the test binary exits, however it exits, the pipe closes and the wrapper kills Prism.
fn spawn(binary: &Path, spec: &Path) -> Result<(Child, SocketAddr, Log), String> {
    let address = free_loopback_port()?;
    const WATCHDOG: &str = r#"
exec 3<&0
"$@" </dev/null 3<&- &
prism=$!
( cat <&3 >/dev/null 2>&1; kill "$prism" 2>/dev/null ) >/dev/null 2>&1 &
exec 3<&-
wait "$prism"
"#;
    let mut process = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("prism-watchdog")
        .arg(binary)
        .arg("mock")
        .arg(spec)
        .args(["--host", "127.0.0.1", "--port", &address.port().to_string()])
        // Answer requests that break the spec with the spec's own 4xx (or 422), not just a log line.
        .arg("--errors")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start {}: {e}", binary.display()))?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let stdout = process.stdout.take().expect("piped stdout");
    let stderr = process.stderr.take().expect("piped stderr");
    collect_lines(stdout, log.clone());
    collect_lines(stderr, log.clone());
    Ok((process, address, log))
}

fn collect_lines(stream: impl Read + Send + 'static, log: Log) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            log.lock().unwrap().push(line);
        }
    });
}

fn free_loopback_port() -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    listener
        .local_addr()
        .map_err(|e| format!("local address: {e}"))
}
