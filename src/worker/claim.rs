//! The worker's loop: claims due jobs with a lease (a few ahead of free slots), runs up to
//! `concurrency` of them at once, renews the leases it holds, and on shutdown gives running jobs
//! a bounded time to finish before handing the rest back to the queue. The claim itself is one
//! write in `store/jobs.rs` (`ClaimDueJobs`).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{JobEnd, RunningGuard, Worker};
use crate::domain::JobKind;
use crate::store::ClaimedJob;

impl Worker {
    /// Runs until `shutdown` is cancelled, then drains.
    pub async fn run(self, shutdown: CancellationToken) {
        self.status.running.store(true, Ordering::Release);
        let _guard = RunningGuard(self.status.clone());
        let lease = Duration::from_millis(self.settings.lease_ms);
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        let mut renew = tokio::time::interval(lease / 3);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        renew.reset();
        let mut in_flight: JoinSet<()> = JoinSet::new();
        tracing::info!(owner = %self.owner, concurrency = self.settings.concurrency, "worker started");

        // Claimed jobs waiting for a slot: claiming a few ahead costs one write per batch
        // instead of one per job. Their leases are renewed with the running ones.
        let mut ready: VecDeque<ClaimedJob> = VecDeque::new();
        let concurrency = self.settings.concurrency;
        while !shutdown.is_cancelled() {
            let mut store_failed = false;
            if in_flight.len() < concurrency && ready.is_empty() {
                let room = 2 * concurrency - in_flight.len();
                match self.store.claim_due_jobs(&self.owner, room, lease).await {
                    Ok(jobs) => ready.extend(jobs),
                    Err(err) => {
                        tracing::error!(error = %err, "could not claim jobs");
                        store_failed = true;
                    }
                }
            }
            while in_flight.len() < concurrency {
                let Some(job) = ready.pop_front() else { break };
                self.spawn_job(&mut in_flight, job);
            }
            let has_free_slot = concurrency > in_flight.len() && !store_failed;
            let holds_leases = !in_flight.is_empty() || !ready.is_empty();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(result) = in_flight.join_next(), if !in_flight.is_empty() => log_panic(result),
                _ = self.wake.notified(), if has_free_slot => {}
                _ = tokio::time::sleep(poll) => {}
                _ = renew.tick(), if holds_leases => self.renew_leases(lease).await,
            }
        }
        self.drain(in_flight, !ready.is_empty(), lease).await;
        tracing::info!("worker stopped");
    }

    fn spawn_job(&self, in_flight: &mut JoinSet<()>, job: ClaimedJob) {
        let inviter = self.inviter.clone();
        let watcher = self.watcher.clone();
        let revoker = self.revoker.clone();
        let owner = self.owner.clone();
        let wake = self.wake.clone();
        let span = tracing::info_span!("job", job_id = job.id, task_gid = %job.task_gid, attempt = job.attempts);
        in_flight.spawn(
            async move {
                let ran = match job.kind {
                    JobKind::ProjectAdded => watcher.run(&job, &owner).await,
                    JobKind::Revoke => revoker.run(&job, &owner).await,
                    _ => inviter.run(&job, &owner).await,
                };
                match ran {
                    // Wake the loop when the retry is due rather than at the next poll.
                    Ok(JobEnd::RetryIn(delay)) => {
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            wake.notify_one();
                        });
                    }
                    Ok(_) => {}
                    // The lease runs out and the job is taken again: nothing is lost.
                    Err(err) => tracing::error!(error = %err, "could not record the job's result"),
                }
            }
            .instrument(span),
        );
    }

    async fn renew_leases(&self, lease: Duration) {
        if let Err(err) = self.store.renew_leases(&self.owner, lease).await {
            tracing::warn!(error = %err, "could not renew job leases");
        }
    }

    /// Lets running jobs finish within the grace period, then hands the rest back to the queue
    /// (with any claimed that never started).
    async fn drain(&self, mut in_flight: JoinSet<()>, claimed_ahead: bool, lease: Duration) {
        if in_flight.is_empty() && !claimed_ahead {
            return;
        }
        let grace = Duration::from_millis(self.settings.shutdown_grace_ms);
        if !in_flight.is_empty() {
            tracing::info!(
                jobs = in_flight.len(),
                grace_ms = self.settings.shutdown_grace_ms,
                "waiting for running jobs"
            );
        }
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        let mut renew = tokio::time::interval(lease / 3);
        renew.reset();
        while !in_flight.is_empty() {
            tokio::select! {
                next = in_flight.join_next() => if let Some(result) = next { log_panic(result) },
                _ = renew.tick() => self.renew_leases(lease).await,
                _ = &mut deadline => break,
            }
        }
        in_flight.shutdown().await;
        match self.store.release_leases(&self.owner).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "unfinished jobs handed back to the queue"),
            Err(err) => tracing::warn!(
                error = %err,
                "could not hand back unfinished jobs; their leases will expire"
            ),
        }
    }
}

fn log_panic(result: Result<(), tokio::task::JoinError>) {
    if let Err(err) = result
        && err.is_panic()
    {
        tracing::error!(error = %err, "a job panicked; its lease will expire and it will run again");
    }
}
