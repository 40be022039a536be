//! `GET /metrics`: Prometheus text format, on the main port or on `server.metrics_port`. The
//! gauges that describe the store (queue depth, oldest pending job, open revocations) are read
//! from it here, when scraped, at most every few seconds.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::error::ApiError;
use crate::store::{JobStatus, Store, StoreResult, now_ms};
use crate::telemetry::metrics;

/// How long store-derived gauges are reused: a scrape flood costs one `COUNT(*)` over the jobs
/// table per period, not one per scrape.
pub const STORE_GAUGES_TTL: Duration = Duration::from_secs(5);

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(app): State<AppState>) -> Result<Response, ApiError> {
    app.store_gauges.refresh(&app.store).await?;
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        metrics::render(),
    )
        .into_response())
}

/// When the store-derived gauges were last read, and the oldest pending job's creation then
/// (its age is computed at every scrape).
#[derive(Debug, Default)]
pub struct StoreGauges {
    last_read: tokio::sync::Mutex<Option<(Instant, Option<i64>)>>,
    /// Each watched project and where its reconcile lag counts from (its cursor, else its
    /// creation), as last read.
    reconcile_since: std::sync::Mutex<Vec<(String, i64)>>,
}

impl StoreGauges {
    /// Reads the queue counts from the store unless they were read within [`STORE_GAUGES_TTL`];
    /// concurrent scrapes wait for one read.
    async fn refresh(&self, store: &Store) -> StoreResult<()> {
        let mut last_read = self.last_read.lock().await;
        let oldest_pending = match *last_read {
            Some((at, oldest)) if at.elapsed() < STORE_GAUGES_TTL => oldest,
            _ => {
                let counts = store.queue_counts().await?;
                for (status, count) in [
                    (JobStatus::Pending, counts.pending),
                    (JobStatus::Running, counts.running),
                    (JobStatus::Done, counts.done),
                    (JobStatus::Failed, counts.failed),
                ] {
                    metrics::queue_depth(status.as_str(), count);
                }
                let oldest = store.oldest_pending_job_created_at().await?;
                metrics::room_revocations_open(store.open_revocations().await?);
                let states = store.reconcile_states().await?;
                *self.reconcile_since.lock().expect("not poisoned") = states
                    .into_iter()
                    .map(|s| {
                        (
                            s.gid.to_string(),
                            s.reconcile_cursor.unwrap_or(s.created_at),
                        )
                    })
                    .collect();
                *last_read = Some((Instant::now(), oldest));
                oldest
            }
        };
        let waited_ms = oldest_pending.map_or(0, |created| now_ms().saturating_sub(created));
        metrics::oldest_pending_age(Duration::from_millis(u64::try_from(waited_ms).unwrap_or(0)));
        let now = now_ms();
        for (project, since) in self.reconcile_since.lock().expect("not poisoned").iter() {
            let lag_ms = u64::try_from(now.saturating_sub(*since)).unwrap_or(0);
            metrics::reconcile_lag(project, Duration::from_millis(lag_ms));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    #[tokio::test]
    async fn scrapes_within_the_period_do_not_read_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("bridge.db").display());
        let store = Store::open_migrated(&url, &StoreOptions::default())
            .await
            .unwrap();
        let gauges = StoreGauges::default();
        gauges
            .refresh(&store)
            .await
            .expect("the first scrape reads");
        store.close().await;
        gauges
            .refresh(&store)
            .await
            .expect("the next scrape uses what the first one read");
    }
}
