//! The processes under measurement: the bridge (the release binary, started with its
//! `BRIDGE__*` environment) and the ceiling (a bare axum server, this program run with
//! `--serve-ceiling`), with what /proc says about their memory and CPU.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use asana_docspace_fakes::{AsanaFake, DocSpaceFake, random_secret};
use asana_docspace_test_support::BridgeEnv;

pub(crate) const TOKEN: &str = "1/bench-token";
const API_KEY: &str = "sk-bench-key";

/// The fakes the bridge talks to, and how to start the bridge against them.
pub struct BenchEnv {
    pub asana: AsanaFake,
    pub docspace: DocSpaceFake,
}

impl BenchEnv {
    pub async fn new() -> BenchEnv {
        BenchEnv {
            asana: AsanaFake::start(TOKEN).await,
            docspace: DocSpaceFake::start(API_KEY).await,
        }
    }

    /// `serve` on `database_url`, with `extra` settings; returns once `/healthz` answers 200.
    pub async fn start_bridge(
        &self,
        database_url: &str,
        extra: &[(&str, &str)],
    ) -> BridgeUnderTest {
        let port = free_port();
        let mut env = BridgeEnv::new()
            .listen_on(port)
            .asana(&self.asana.url(), TOKEN)
            .docspace(&self.docspace.url(), API_KEY)
            .with("BRIDGE__DOCSPACE__INVITE_TYPE", "User")
            .database(database_url)
            .with("BRIDGE__WEBHOOKS__HANDSHAKE", "first-use")
            // The other sections measure deliveries and jobs: no reconcile pass beside them.
            .with("BRIDGE__RECONCILE__INTERVAL_SECS", "0")
            .with("BRIDGE__LOG__FORMAT", "json")
            .with("RUST_LOG", "info");
        for (var, value) in extra {
            env.set(var, value);
        }
        let mut command = env.std_command(env!("CARGO_BIN_EXE_asana-docspace-bridge"));
        command
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let began = Instant::now();
        let child = command.spawn().expect("start the bridge");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        loop {
            if let Ok(response) = client.get(format!("{base}/healthz")).send().await
                && response.status() == 200
            {
                break;
            }
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "the bridge did not start"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let startup = began.elapsed();
        let pid = child.id();
        let idle_rss_kib = proc_status(pid, "VmRSS:");
        BridgeUnderTest {
            child,
            base,
            client,
            startup,
            idle_rss_kib,
            baseline: std::sync::Mutex::new(cpu_ticks(pid)),
        }
    }
}

/// A running bridge; stopped with SIGTERM (and awaited) on drop.
pub struct BridgeUnderTest {
    child: Child,
    base: String,
    pub client: reqwest::Client,
    pub startup: Duration,
    pub idle_rss_kib: u64,
    baseline: std::sync::Mutex<u64>,
}

impl Drop for BridgeUnderTest {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl BridgeUnderTest {
    pub fn webhook_url(&self, name: &str) -> String {
        format!("{}/webhooks/asana/{name}", self.base)
    }

    /// Registers webhook `name` through a handshake and returns its secret.
    pub async fn register(&self, name: &str) -> String {
        let secret = random_secret();
        let response = self
            .client
            .post(self.webhook_url(name))
            .header("X-Hook-Secret", &secret)
            .send()
            .await
            .expect("handshake");
        assert_eq!(response.status(), 200);
        secret
    }

    /// Resets the peak RSS (Linux: `clear_refs` 5) and the CPU baseline for the next phase.
    pub fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
        *self.baseline.lock().unwrap() = cpu_ticks(self.child.id());
    }

    /// Peak RSS, and the CPU used since the last sample or reset.
    pub fn sample(&self) -> Resources {
        let pid = self.child.id();
        let ticks = cpu_ticks(pid);
        let mut baseline = self.baseline.lock().unwrap();
        let used = ticks.saturating_sub(*baseline);
        *baseline = ticks;
        Resources {
            peak_rss_kib: proc_status(pid, "VmHWM:"),
            cpu_seconds: used as f64 / clock_ticks(),
        }
    }
}

/// The ceiling: a bare axum server that reads the body and answers 200, nothing else. Runs in the
/// process started by [`CeilingProcess::start`], which prints its port first.
pub fn serve_ceiling() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let app = axum::Router::new().fallback(|body: axum::body::Bytes| async move {
            let _ = body.len();
            axum::Json(serde_json::json!({"status": "accepted"}))
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("{}", listener.local_addr().expect("address").port());
        axum::serve(listener, app).await.expect("serve");
    });
}

pub struct CeilingProcess {
    child: Child,
    port: u16,
    baseline: std::sync::Mutex<u64>,
}

impl CeilingProcess {
    pub fn start() -> CeilingProcess {
        let mut child = Command::new(std::env::current_exe().expect("this program"))
            .arg("--serve-ceiling")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the ceiling server");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
            &mut line,
        )
        .expect("port");
        let port = line.trim().parse().expect("a port");
        let baseline = std::sync::Mutex::new(cpu_ticks(child.id()));
        CeilingProcess {
            child,
            port,
            baseline,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/webhooks/asana/bench", self.port)
    }

    /// Peak RSS and CPU since the last sample; resets the peak.
    pub fn sample(&self) -> Resources {
        let pid = self.child.id();
        let ticks = cpu_ticks(pid);
        let mut baseline = self.baseline.lock().unwrap();
        let used = ticks.saturating_sub(*baseline);
        *baseline = ticks;
        let peak = proc_status(pid, "VmHWM:");
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        Resources {
            peak_rss_kib: peak,
            cpu_seconds: used as f64 / clock_ticks(),
        }
    }
}

impl Drop for CeilingProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Resources {
    pub peak_rss_kib: u64,
    pub cpu_seconds: f64,
}

impl Resources {
    pub fn rss(&self) -> String {
        format!("{:.1} MiB", self.peak_rss_kib as f64 / 1024.0)
    }
    pub fn cpu(&self) -> String {
        format!("{:.1} s", self.cpu_seconds)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

fn proc_status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of /proc/pid/stat; here 0-based after the name: 11, 12.
    field(11) + field(12)
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
