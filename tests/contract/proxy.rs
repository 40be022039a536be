//! A recording proxy between the bridge and a Prism server: one per test, so a test sees exactly
//! the requests it caused and what Prism thought of each (its `sl-violations` header).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::task::JoinHandle;

/// One request the bridge made and Prism's verdict on it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub request_body: String,
    pub status: u16,
    /// Prism's `sl-violations`: `[{"location":[...],"severity":"Error","code":...,"message":...}]`.
    pub violations: Vec<Value>,
    /// Set when Prism answered with an error of its own (no route matched, 422, ...).
    pub prism_error: Option<String>,
    pub response_body: String,
}

impl Exchange {
    /// The request broke the spec: Prism reported an error-level violation or refused it itself.
    pub fn rejected(&self) -> bool {
        let minor = |v: &Value| {
            matches!(
                v["severity"].as_str(),
                Some("Warning" | "Information" | "Hint")
            )
        };
        self.prism_error.is_some() || !self.violations.iter().all(minor)
    }

    /// Query parameter `name`, decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    /// For a violation at `request.query.<name>[.<index>]`: the value we sent there (Prism's
    /// message names only the allowed values).
    fn offending_query_value(&self, location: &[String]) -> Option<String> {
        match location {
            [request, query, name, rest @ ..] if request == "request" && query == "query" => {
                let value = self.query_param(name)?;
                match rest {
                    [] => Some(value),
                    [index] => value
                        .split(',')
                        .nth(index.parse().ok()?)
                        .map(str::to_string),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    pub fn request_json(&self) -> Value {
        serde_json::from_str(&self.request_body).unwrap_or(Value::Null)
    }

    pub fn response_json(&self) -> Value {
        serde_json::from_str(&self.response_body).unwrap_or(Value::Null)
    }
}

impl std::fmt::Display for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if let Some(query) = &self.query {
            write!(f, "?{query}")?;
        }
        write!(f, " -> {}", self.status)?;
        if !self.request_body.is_empty() {
            write!(f, "\n    body: {}", shorten(&self.request_body, 600))?;
        }
        for violation in &self.violations {
            let location: Vec<String> = violation["location"]
                .as_array()
                .map(|parts| {
                    parts
                        .iter()
                        .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            write!(
                f,
                "\n    violation ({}): {}{}: {}",
                violation["severity"].as_str().unwrap_or("?"),
                location.join("."),
                self.offending_query_value(&location)
                    .map(|v| format!(" (we sent {v:?})"))
                    .unwrap_or_default(),
                shorten(violation["message"].as_str().unwrap_or("?"), 600)
            )?;
        }
        if let Some(error) = &self.prism_error {
            write!(f, "\n    prism error: {error}")?;
        }
        Ok(())
    }
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}... ({} bytes)", &text[..cut], text.len()),
        None => text.to_string(),
    }
}

/// Asks Prism for another of the spec's responses (`Prefer: code=404`) for matching requests, so
/// a path the static examples never reach (an unknown email, say) is checked too.
#[derive(Debug, Clone)]
pub struct Prefer {
    pub method: Method,
    pub path: &'static str,
    /// Only requests whose raw query contains this ("" for all).
    pub query_contains: &'static str,
    pub prefer: &'static str,
}

struct Shared {
    upstream: String,
    prefer: Vec<Prefer>,
    http: reqwest::Client,
    exchanges: Mutex<Vec<Exchange>>,
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    pub url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub async fn start(upstream: &str, prefer: Vec<Prefer>) -> Proxy {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            prefer,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            exchanges: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let router = Router::new().fallback(forward).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Proxy { url, shared, task }
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.shared.exchanges.lock().unwrap().clone()
    }
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let mut headers = parts.headers.clone();
    for name in [header::HOST, header::CONTENT_LENGTH, header::CONNECTION] {
        headers.remove(name);
    }
    if let Some(rule) = shared.prefer.iter().find(|r| {
        r.method == parts.method
            && r.path == path
            && query.as_deref().unwrap_or("").contains(r.query_contains)
    }) {
        headers.insert("prefer", HeaderValue::from_static(rule.prefer));
    }
    let target = format!(
        "{}{}",
        shared.upstream,
        parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
    );
    let answer = shared
        .http
        .request(parts.method.clone(), target)
        .headers(headers)
        .body(body.clone())
        .send()
        .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(err) => {
            return (StatusCode::BAD_GATEWAY, format!("proxy: {err}")).into_response();
        }
    };
    let status = answer.status();
    let mut response_headers = answer.headers().clone();
    for name in [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::CONNECTION,
    ] {
        response_headers.remove(name);
    }
    let violations: Vec<Value> = response_headers
        .get("sl-violations")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default();
    let mut response_body = answer.bytes().await.unwrap_or_default().to_vec();
    let prism_error = prism_error(&response_body);
    // Prism's static examples always name a next page: end each list after the page that used
    // `offset`, so the follow-up request is checked too and the commands terminate.
    let paged = query
        .as_deref()
        .is_some_and(|q| url::form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "offset"));
    if paged
        && status.is_success()
        && let Ok(mut json) = serde_json::from_slice::<Value>(&response_body)
        && let Some(next) = json.get_mut("next_page")
    {
        *next = Value::Null;
        response_body = serde_json::to_vec(&json).expect("JSON");
    }
    shared.exchanges.lock().unwrap().push(Exchange {
        method: parts.method,
        path,
        query,
        request_body: String::from_utf8_lossy(&body).into_owned(),
        status: status.as_u16(),
        violations,
        prism_error,
        response_body: String::from_utf8_lossy(&response_body).into_owned(),
    });
    let mut response = Response::new(Body::from(response_body));
    *response.status_mut() = status;
    *response.headers_mut() = response_headers;
    response
}

/// Prism's own errors are RFC 7807 problems typed `https://stoplight.io/prism/errors#...`.
fn prism_error(body: &[u8]) -> Option<String> {
    let problem: Value = serde_json::from_slice(body).ok()?;
    let kind = problem.get("type")?.as_str()?;
    kind.starts_with("https://stoplight.io/prism/errors#")
        .then(|| {
            format!(
                "{kind}: {} ({})",
                problem["title"].as_str().unwrap_or("?"),
                problem["detail"].as_str().unwrap_or("")
            )
        })
}
