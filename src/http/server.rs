//! The HTTP/1.1 server loop: axum's router on hyper, with a deadline for request headers (so idle
//! or slow clients cannot hold connections forever), a bound on open connections (one more is
//! answered `503` and closed) and graceful shutdown (stop accepting, let in-flight requests finish).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::CONNECTION;
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::error::ApiError;

/// How long in-flight requests may take to finish once shutdown began.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// A connection over the limit gets this long to send its request before it is closed unanswered.
const REFUSAL_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves `router` until `shutdown` completes, then waits for open requests to finish. At most
/// `max_connections` are served at once.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let mut refusing = hyper::server::conn::http1::Builder::new();
    refusing
        .timer(TokioTimer::new())
        .header_read_timeout(REFUSAL_HEADER_TIMEOUT)
        .keep_alive(false);
    let connections = Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors, say: back off instead of spinning.
                    tracing::warn!(error = %err, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            refuse_connection(&refusing, stream);
            continue;
        };
        let connection = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("requests still open after {}s; stopping anyway", DRAIN_TIMEOUT.as_secs());
        }
    }
}

/// Answers the connection's first request `503` and closes it.
fn refuse_connection(refusing: &hyper::server::conn::http1::Builder, stream: TcpStream) {
    let service = hyper::service::service_fn(|_request| async {
        let mut response =
            ApiError::Overloaded("too many open connections; retry later".into()).into_response();
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        Ok::<_, Infallible>(response)
    });
    let connection = refusing.serve_connection(TokioIo::new(stream), service);
    tokio::spawn(async move {
        let _ = connection.await;
    });
}
