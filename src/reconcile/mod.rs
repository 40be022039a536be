//! Reconcile passes: Asana drops some webhook deliveries and says so, so each watched project is
//! read again periodically ("what changed since the last pass?") and every assignment no job has
//! handled is queued. [`Reconciler`] runs in the service: it claims due projects one at a time
//! (the claim in the store makes one pass per project at a time across replicas) and runs their
//! passes; `reconcile run` runs them now. The pass itself is `pass.rs`, its window maths
//! `cursor.rs`.

pub mod cursor;
pub mod pass;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use cursor::{CURSOR_MARGIN, next_due, pass_window};
pub use pass::{PassError, PassReport, PassSettings, run_pass};

use crate::store::{LeaseOwner, ReconcileClaim, Store};
use crate::telemetry::metrics;
use crate::upstream::AsanaClient;

/// The longest a reconciler waits between looks for due projects (with passes off: for
/// catch-ups a repair asked for on another replica).
pub const MAX_TICK: Duration = Duration::from_secs(30);

/// The service's pass runner.
pub struct Reconciler {
    store: Store,
    /// The rate-shared client (`Upstreams::asana_reconcile`).
    asana: AsanaClient,
    settings: PassSettings,
    token: String,
    /// Notified when a catch-up was asked for (a webhook repair).
    wake: Arc<Notify>,
    /// Woken when a pass queued jobs.
    wake_worker: Arc<Notify>,
}

impl Reconciler {
    pub fn new(
        store: Store,
        asana: AsanaClient,
        settings: PassSettings,
        owner: &LeaseOwner,
        wake: Arc<Notify>,
        wake_worker: Arc<Notify>,
    ) -> Reconciler {
        Reconciler {
            store,
            asana,
            settings,
            token: format!("service:{owner}"),
            wake,
            wake_worker,
        }
    }

    /// How often it looks for due projects: the interval, at most [`MAX_TICK`].
    pub fn tick(interval: Option<Duration>) -> Duration {
        interval.map_or(MAX_TICK, |i| i.min(MAX_TICK))
    }

    /// Runs due passes until `shutdown`; a pass running then is stopped and its claim handed back.
    pub async fn run(self, shutdown: CancellationToken) {
        let tick = Reconciler::tick(self.settings.interval);
        loop {
            if !self.run_due_passes(&shutdown).await {
                return;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(tick) => {}
            }
        }
    }

    /// Claims and runs due projects one at a time until none is due. False on shutdown.
    async fn run_due_passes(&self, shutdown: &CancellationToken) -> bool {
        loop {
            let passes_on = self.settings.interval.is_some();
            let claim = match self
                .store
                .claim_due_reconcile(&self.token, self.settings.hold, passes_on)
                .await
            {
                Ok(Some(claim)) => claim,
                Ok(None) => return true,
                Err(error) => {
                    tracing::warn!(error = %error, "could not look for due reconcile passes");
                    return true;
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => {
                    self.hand_back(&claim).await;
                    return false;
                }
                result = run_pass(&self.store, &self.asana, &claim, self.settings) => {
                    if result.as_ref().is_ok_and(|report| report.queued > 0) {
                        self.wake_worker.notify_one();
                    }
                    record(&claim, result);
                }
            }
        }
    }

    async fn hand_back(&self, claim: &ReconcileClaim) {
        if let Err(error) = self.store.release_reconcile_claim(claim).await {
            tracing::warn!(project = %claim.project, error = %error,
                "could not hand back a reconcile claim at shutdown; it runs out instead");
        }
    }
}

fn record(claim: &ReconcileClaim, result: Result<PassReport, PassError>) {
    match result {
        Ok(report) => {
            metrics::reconcile_pass("ok");
            tracing::info!(
                project = %report.project,
                pages = report.pages,
                read = report.read,
                assigned = report.assigned,
                queued = report.queued,
                missed = report.missed,
                swept = report.swept,
                "reconcile pass done"
            );
        }
        Err(error) => {
            metrics::reconcile_pass("failed");
            tracing::warn!(project = %claim.project, error = %error, "reconcile pass failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_ticks_every_interval_but_at_least_every_30_seconds() {
        assert_eq!(Reconciler::tick(None), MAX_TICK);
        assert_eq!(
            Reconciler::tick(Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(Reconciler::tick(Some(Duration::from_secs(3600))), MAX_TICK);
    }
}
