//! Wiring: settings → store, clients, worker and router; binding; running until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::http::admin::AdminState;
use crate::http::{
    AdminRoute, AppState, MetricsRoute, SecretCache, admin_router, metrics_router, router, server,
};
use crate::reconcile::{PassSettings, Reconciler};
use crate::retention::Retention;
use crate::settings::{HandshakeMode, Settings};
use crate::store::{LeaseOwner, Store};
use crate::upstream::{AsanaClient, Upstreams};
use crate::webhook::register::first_use_warning;
use crate::webhook::repair::WebhookRepairer;
use crate::webhook::watch::WebhookHealth;
use crate::worker::{Inviter, ProjectWatcher, Revoker, Worker, lease_owner_id};

/// The service, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: axum::Router,
    /// `/metrics` on a port of its own (`server.metrics_port`).
    metrics: Option<(TcpListener, axum::Router)>,
    /// The status page on a port of its own (`server.admin_port`).
    admin: Option<(TcpListener, axum::Router)>,
    worker: Worker,
    store: Store,
    retention: Retention,
    reconciler: Reconciler,
    health: Arc<WebhookHealth>,
    asana: AsanaClient,
    /// Request headers and bodies must arrive within this time.
    request_timeout: Duration,
    max_connections: usize,
    watch_interval: Duration,
    /// Registers again the webhooks Asana dropped (`webhooks.auto_recreate`).
    repairer: Option<WebhookRepairer>,
}

impl Application {
    /// Opens the store (creating it and applying migrations), builds the clients and binds the
    /// listener. Port 0 binds a free port; `port()` tells which.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let store =
            Store::open_for_service(&settings.database.url, &settings.database.store_options())
                .await
                .with_context(|| {
                    format!(
                        "opening the store at {}",
                        redact_url(&settings.database.url)
                    )
                })?;
        if settings.webhooks.handshake == HandshakeMode::FirstUse {
            tracing::warn!("{}", first_use_warning());
        }
        if let Some(warning) = settings.auto_recreate_warning() {
            tracing::warn!("{warning}");
        }
        if let Some(warning) = settings.admin_cookie_warning() {
            tracing::warn!("{warning}");
        }
        // One client per upstream for the whole process: the worker and the webhook watcher pace
        // their Asana requests together, as Asana counts them per token.
        let upstreams = Upstreams::from_settings(&settings)?;
        let inviter = Inviter::from_settings(&settings, store.clone(), &upstreams);
        let watcher = ProjectWatcher::from_settings(&settings, store.clone(), &upstreams);
        let revoker = Revoker::from_settings(&settings, store.clone(), &upstreams);
        if let Some(grace) = settings.access.lifecycle() {
            // A changed `access.revoke_grace_secs` applies to the revocations still waiting.
            let moved = store.reschedule_waiting(grace).await?;
            tracing::info!(
                waiting = moved,
                grace_secs = grace.as_secs(),
                "access revocation is on"
            );
        }
        let wake = Arc::new(Notify::new());
        let worker = Worker::new(
            store.clone(),
            inviter,
            watcher,
            revoker,
            settings.worker.clone(),
            wake.clone(),
        );
        // Notified when a catch-up pass was asked for (a repaired webhook).
        let reconcile_wake = Arc::new(Notify::new());
        let repairer_wake = Arc::new(Notify::new());
        let health = if settings.webhooks.auto_recreate {
            WebhookHealth::repairing(repairer_wake.clone())
        } else {
            WebhookHealth::default()
        }
        .with_lifecycle_filters(settings.access.lifecycle().is_some());
        let repairer = settings.webhooks.auto_recreate.then(|| WebhookRepairer {
            store: store.clone(),
            asana: upstreams.asana.clone(),
            public_url: settings.server.public_url.clone(),
            owner: LeaseOwner::new(lease_owner_id()),
            wake: repairer_wake,
            reconcile_wake: reconcile_wake.clone(),
        });
        let reconciler = Reconciler::new(
            store.clone(),
            upstreams.asana_reconcile.clone(),
            PassSettings {
                hold: Duration::from_millis(settings.worker.lease_ms),
                interval: settings.reconcile.interval(),
                lifecycle: settings.access.lifecycle(),
            },
            &LeaseOwner::new(lease_owner_id()),
            reconcile_wake,
            wake.clone(),
        );
        let state = AppState {
            store: store.clone(),
            handshake: settings.webhooks.handshake,
            max_body_bytes: settings.server.max_body_bytes,
            request_timeout: Duration::from_millis(settings.server.request_timeout_ms),
            wake_worker: wake,
            worker: worker.status(),
            health: Arc::new(health),
            rooms_mode: settings.rooms.mode,
            access_lifecycle: settings.access.lifecycle().is_some(),
            secrets: SecretCache::default(),
            store_gauges: Arc::default(),
            request_slots: Arc::new(Semaphore::new(
                settings
                    .server
                    .max_concurrent_requests
                    .min(Semaphore::MAX_PERMITS),
            )),
            admin: AdminState::from_settings(&settings).map(Arc::new),
        };

        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address)
            .await
            .with_context(|| format!("binding {address}"))?;
        let local_addr = listener.local_addr()?;
        let health = state.health.clone();
        // Install the recorder before anything records.
        crate::telemetry::metrics::handle();
        let metrics = match settings.server.metrics_port {
            0 => None,
            port => Some((
                bind_separate(&settings.server.host, port, "/metrics").await?,
                metrics_router(state.clone()),
            )),
        };
        // `server.admin_port` is refused without `admin.token`, so a port here has a page to serve.
        let admin = match settings.server.admin_port {
            0 => None,
            port => Some((
                bind_separate(&settings.server.host, port, "/admin").await?,
                admin_router(state.clone()),
            )),
        };
        let router = router(
            state,
            if metrics.is_some() {
                MetricsRoute::Separate
            } else {
                MetricsRoute::Included
            },
            if admin.is_some() {
                AdminRoute::Separate
            } else {
                AdminRoute::Included
            },
        );
        Ok(Application {
            listener,
            local_addr,
            router,
            metrics,
            admin,
            worker,
            retention: Retention::new(store.clone(), settings.retention.done_days),
            reconciler,
            store,
            health,
            asana: upstreams.asana,
            request_timeout: Duration::from_millis(settings.server.request_timeout_ms),
            max_connections: settings.server.max_connections,
            watch_interval: Duration::from_secs(settings.webhooks.watch_interval_secs),
            repairer,
        })
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// Serves until `shutdown` completes, then stops accepting, finishes in-flight requests,
    /// gives running jobs their grace period and returns.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let worker = tokio::spawn(self.worker.run(stop.child_token()));
        let retention = tokio::spawn(self.retention.run(stop.child_token()));
        let reconciler = tokio::spawn(self.reconciler.run(stop.child_token()));
        let watcher = tokio::spawn(self.health.watch(
            self.store.clone(),
            self.asana,
            self.watch_interval,
            stop.child_token(),
        ));
        tracing::info!(address = %self.local_addr, "listening");
        let serve_separate = |(listener, router): (TcpListener, axum::Router)| {
            let stopped = stop.clone();
            let header_timeout = self.request_timeout;
            let max_connections = self.max_connections;
            tokio::spawn(async move {
                server::serve(
                    listener,
                    router,
                    header_timeout,
                    max_connections,
                    stopped.cancelled_owned(),
                )
                .await
            })
        };
        let metrics_server = self.metrics.map(serve_separate);
        let admin_server = self.admin.map(serve_separate);
        // The listener is bound and serves below: Asana's create call, which the repairer makes,
        // blocks until our handshake answers.
        let repairer = self
            .repairer
            .map(|repairer| tokio::spawn(repairer.run(stop.child_token())));
        let server_stop = stop.clone();
        server::serve(
            self.listener,
            self.router,
            self.request_timeout,
            self.max_connections,
            async move {
                tokio::select! {
                    _ = shutdown => tracing::info!("shutting down"),
                    _ = server_stop.cancelled() => {}
                }
                // Stop the worker as the listener closes, not after the last request.
                server_stop.cancel();
            },
        )
        .await;
        stop.cancel();
        if let Err(err) = worker.await {
            tracing::error!(error = %err, "the worker ended abnormally");
        }
        if let Err(err) = watcher.await {
            tracing::error!(error = %err, "the webhook watcher ended abnormally");
        }
        if let Err(err) = reconciler.await {
            tracing::error!(error = %err, "the reconciler ended abnormally");
        }
        if let Some(repairer) = repairer
            && let Err(err) = repairer.await
        {
            tracing::error!(error = %err, "the webhook repairer ended abnormally");
        }
        if let Err(err) = retention.await {
            tracing::error!(error = %err, "the retention task ended abnormally");
        }
        if let Some(metrics_server) = metrics_server
            && let Err(err) = metrics_server.await
        {
            tracing::error!(error = %err, "the metrics listener ended abnormally");
        }
        if let Some(admin_server) = admin_server
            && let Err(err) = admin_server.await
        {
            tracing::error!(error = %err, "the status page's listener ended abnormally");
        }
        self.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Binds `server.host` on a port of its own for `what` (`/metrics`, `/admin`).
async fn bind_separate(host: &str, port: u16, what: &str) -> anyhow::Result<TcpListener> {
    let address = format!("{host}:{port}");
    TcpListener::bind(&address)
        .await
        .with_context(|| format!("binding {address} for {what}"))
}

/// A database URL without its password, for messages. One that does not parse is not shown at
/// all: where its password starts and ends is anyone's guess.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(err) => format!("<a URL that does not parse ({err}), not shown>"),
    }
}

/// Completes on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://bridge:hunter2@db:5432/bridge"),
            "postgres://bridge:***@db:5432/bridge"
        );
        assert_eq!(
            redact_url("sqlite://data/bridge.db"),
            "sqlite://data/bridge.db"
        );
    }

    #[test]
    fn a_url_that_does_not_parse_is_not_shown() {
        for url in [
            "postgres://bridge:hunter2@db:port/bridge",
            "postgres://bridge:hunter2@[db/bridge",
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains("hunter2"), "{url} shown as {shown}");
            assert!(shown.contains("not shown"), "{shown}");
        }
    }
}
