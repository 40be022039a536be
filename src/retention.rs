//! Retention: finished (`done`) jobs older than `retention.done_days` are deleted by a background
//! task of the service, at start-up and then every hour, in small batches with a pause between
//! them so that deliveries and the worker never wait long for the store.
//!
//! A job's dedupe key goes with it, and Asana retries a delivery for 24 hours: so a job is kept
//! at least [`DEDUPE_FLOOR`] (48 hours) whatever the setting, and a redelivered event still finds
//! its key. Failed jobs, unfinished ones and the invitations ledger are never deleted (see
//! `store::retention`).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{Store, StoreResult, duration_ms, now_ms};
use crate::telemetry::metrics;

/// The least time a done job is kept: twice Asana's 24 hours of retries.
pub const DEDUPE_FLOOR: Duration = Duration::from_secs(48 * 3600);
/// Jobs deleted per write.
pub const BATCH: usize = 500;
/// Between two batches: room for other writes.
const PAUSE: Duration = Duration::from_millis(50);
/// Between two sweeps.
const INTERVAL: Duration = Duration::from_secs(3600);

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Done jobs last updated before this time (ms since the epoch) are expired; `None` when
/// `done_days` is 0 (kept forever).
pub fn done_cutoff(now_ms: i64, done_days: u32) -> Option<i64> {
    if done_days == 0 {
        return None;
    }
    let keep = (DAY * done_days).max(DEDUPE_FLOOR);
    Some(now_ms.saturating_sub(duration_ms(keep)))
}

/// Deletes expired done jobs from one store.
#[derive(Debug, Clone)]
pub struct Retention {
    store: Store,
    done_days: u32,
}

impl Retention {
    pub fn new(store: Store, done_days: u32) -> Retention {
        Retention { store, done_days }
    }

    /// Deletes every done job expired now, batch by batch; returns how many.
    pub async fn sweep(&self) -> StoreResult<u64> {
        let Some(cutoff) = done_cutoff(now_ms(), self.done_days) else {
            return Ok(0);
        };
        let mut deleted = 0;
        loop {
            let batch = self.store.delete_expired_done_jobs(cutoff, BATCH).await?;
            deleted += batch;
            metrics::jobs_deleted(batch);
            if batch < BATCH as u64 {
                return Ok(deleted);
            }
            tokio::time::sleep(PAUSE).await;
        }
    }

    /// Sweeps at once and then every hour until `shutdown`. A sweep that fails is logged and
    /// tried again at the next one.
    pub async fn run(self, shutdown: CancellationToken) {
        if self.done_days == 0 {
            return;
        }
        let mut every = tokio::time::interval(INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                swept = self.sweep() => match swept {
                    Ok(0) => {}
                    Ok(deleted) => tracing::info!(jobs = deleted, "deleted expired done jobs"),
                    Err(err) => tracing::warn!(error = %err, "could not delete expired done jobs"),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: i64 = 3600 * 1000;
    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn zero_days_keeps_done_jobs_forever() {
        assert_eq!(done_cutoff(NOW, 0), None);
    }

    #[test]
    fn done_jobs_are_kept_at_least_48_hours() {
        assert_eq!(done_cutoff(NOW, 1), Some(NOW - 48 * HOUR_MS));
        assert_eq!(done_cutoff(NOW, 2), Some(NOW - 48 * HOUR_MS));
        assert_eq!(done_cutoff(NOW, 3), Some(NOW - 72 * HOUR_MS));
        assert_eq!(done_cutoff(NOW, 30), Some(NOW - 30 * 24 * HOUR_MS));
    }
}
