//! What both fakes share: a loopback HTTP/1 server whose connections can be cut mid-request,
//! a log of every request, fault injection, and a way to await a condition on the fake's state.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::faults::{Fault, Faults};

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The value of query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// Whether the request carries `Authorization: Bearer <expected>`.
pub(crate) fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| given == expected)
}

/// Cuts the connection a request arrived on.
#[derive(Clone, Default)]
pub(crate) struct Connection(Arc<Mutex<Option<oneshot::Sender<()>>>>);

impl Connection {
    fn cut(&self) {
        if let Some(tx) = self.0.lock().unwrap().take() {
            let _ = tx.send(());
        }
    }
}

/// Requests, faults and change notification, shared by a fake's handlers.
pub(crate) struct Common {
    faults: Mutex<Faults>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// How many requests each route answered (or had answered by a fault).
    calls: Mutex<BTreeMap<&'static str, u64>>,
    latency: Mutex<Duration>,
    changed: watch::Sender<u64>,
}

impl Default for Common {
    fn default() -> Self {
        Common {
            faults: Mutex::default(),
            requests: Mutex::default(),
            calls: Mutex::default(),
            latency: Mutex::default(),
            changed: watch::channel(0).0,
        }
    }
}

impl Common {
    pub(crate) fn push_fault(&self, route: &'static str, fault: Fault) {
        self.faults.lock().unwrap().push(route, fault);
    }

    pub(crate) fn set_random_faults(&self, rate: f64, faults: Vec<Fault>) {
        self.faults.lock().unwrap().set_random(rate, faults);
    }

    pub(crate) fn clear_faults(&self) {
        self.faults.lock().unwrap().clear();
    }

    pub(crate) fn set_latency(&self, latency: Duration) {
        *self.latency.lock().unwrap() = latency;
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().unwrap().clone()
    }

    pub(crate) fn calls_by_route(&self) -> BTreeMap<&'static str, u64> {
        self.calls.lock().unwrap().clone()
    }

    pub(crate) fn notify(&self) {
        self.changed.send_modify(|generation| *generation += 1);
    }

    /// Waits until `condition` holds, re-checking after every request or change, up to `timeout`.
    pub(crate) async fn wait_until(
        &self,
        timeout: Duration,
        mut condition: impl FnMut() -> bool,
    ) -> bool {
        let mut changes = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if condition() {
                return true;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                _ => return condition(),
            }
        }
    }

    /// Runs a handler's `work` under the next fault for `route`, if any.
    pub(crate) async fn respond<F>(
        &self,
        route: &'static str,
        connection: &Connection,
        work: F,
    ) -> Response
    where
        F: Future<Output = Response>,
    {
        *self.calls.lock().unwrap().entry(route).or_default() += 1;
        let fault = self.faults.lock().unwrap().next(route);
        let latency = *self.latency.lock().unwrap();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let response = match fault {
            None => work.await,
            Some(Fault::Status {
                status,
                body,
                content_type,
                retry_after,
            }) => {
                let mut response = (
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    body,
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert("content-type", HeaderValue::from_static(content_type));
                if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                    response.headers_mut().insert("retry-after", value);
                }
                response
            }
            Some(Fault::Delay(delay)) => {
                tokio::time::sleep(delay).await;
                work.await
            }
            Some(Fault::Hold(gate)) => {
                gate.opened().await;
                work.await
            }
            Some(Fault::HangAfterWork) => {
                let _ = work.await;
                self.notify();
                std::future::pending::<()>().await;
                unreachable!()
            }
            Some(Fault::Drop) => {
                connection.cut();
                std::future::pending::<()>().await;
                unreachable!()
            }
            Some(Fault::HugeBody { bytes, declared }) => {
                let mut response = Response::new(Body::new(Filler::new(bytes, declared)));
                response
                    .headers_mut()
                    .insert("content-type", HeaderValue::from_static("application/json"));
                response
            }
        };
        self.notify();
        response
    }
}

/// `remaining` bytes of spaces, in 64 KiB chunks made as hyper asks for them.
struct Filler {
    remaining: u64,
    declared: bool,
    chunk: Bytes,
}

impl Filler {
    fn new(bytes: u64, declared: bool) -> Filler {
        Filler {
            remaining: bytes,
            declared,
            chunk: Bytes::from(vec![b' '; 64 * 1024]),
        }
    }
}

impl http_body::Body for Filler {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let len = self.remaining.min(self.chunk.len() as u64);
        self.remaining -= len;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..len as usize)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    /// Exact (hence a `Content-Length`) only when declared: otherwise hyper sends it chunked.
    fn size_hint(&self) -> SizeHint {
        if self.declared {
            SizeHint::with_exact(self.remaining)
        } else {
            SizeHint::default()
        }
    }
}

async fn record(State(common): State<Arc<Common>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    common.requests.lock().unwrap().push(RecordedRequest {
        method: parts.method.clone(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers.clone(),
        body: body.clone(),
        at: Instant::now(),
    });
    common.notify();
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// A running fake server; stops when dropped.
pub(crate) struct Server {
    pub(crate) url: String,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `router` on a free loopback port. Handlers get the request's [`Connection`] as an extension.
pub(crate) async fn serve(router: Router, common: Arc<Common>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("bound address"));
    let router = router.layer(middleware::from_fn_with_state(common, record));
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (cut_tx, cut_rx) = oneshot::channel();
            let connection = Connection(Arc::new(Mutex::new(Some(cut_tx))));
            let service =
                TowerToHyperService::new(router.clone().layer(axum::Extension(connection)));
            tokio::spawn(async move {
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    _ = conn => {}
                    // Dropping the connection closes the socket without an answer.
                    _ = cut_rx => {}
                }
            });
        }
    });
    Server { url, task }
}
