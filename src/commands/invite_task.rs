//! `invite-task <GID>`: the original one-shot integration, through the service's own rules and ledger.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use super::Context;
use crate::domain::{Command, Gid, JobKind, JobSource};
use crate::store::{LeaseOwner, NewJob, Outcome, Store, now_ms};
use crate::worker::{Inviter, JobEnd};

pub async fn run(ctx: &Context, task_gid: &Gid) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let inviter = Inviter::from_settings(&ctx.settings, store.clone(), ctx.upstreams()?);
    let owner = LeaseOwner::new(format!("invite-task-{}", std::process::id()));
    let lease = Duration::from_millis(ctx.settings.worker.lease_ms);
    // Recorded as a job like any other, so `jobs list` shows it and the ledger guards it.
    let job = NewJob {
        dedupe_key: format!(
            "invite-task:{task_gid}:{}:{:08x}",
            now_ms(),
            rand::random::<u32>()
        ),
        task_gid: task_gid.clone(),
        // The operator named the task.
        project_gid: None,
        kind: JobKind::InviteTask,
        assignee_gid: None,
    };
    let job = store
        .create_leased_job(JobSource::Command(Command::InviteTask), job, &owner, lease)
        .await?
        .context("a fresh job key collided; run the command again")?;
    let end = renewing_leases(&store, &owner, lease, inviter.run(&job, &owner)).await?;
    let record = store.job(job.id).await?.context("the job just run")?;
    let email = record.email.as_deref().unwrap_or("-");
    match end {
        // The operator named a task Asana does not know: nothing to invite, and a mistake to say.
        JobEnd::Done(Outcome::TaskGone) => {
            eprintln!(
                "task {task_gid}: {}; nothing to invite; job {}",
                record
                    .last_error
                    .as_deref()
                    .unwrap_or("Asana answered 404 for it"),
                job.id
            );
            Ok(ExitCode::FAILURE)
        }
        JobEnd::Done(outcome) => {
            let note = record
                .last_error
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            println!(
                "task {task_gid}: {outcome}{note}; email {email}; job {}",
                job.id
            );
            Ok(ExitCode::SUCCESS)
        }
        JobEnd::RetryIn(delay) => {
            eprintln!(
                "task {task_gid}: not done yet: {}; job {} stays queued and the running service retries it in about {}s",
                record.last_error.unwrap_or_default(),
                job.id,
                delay.as_secs().max(1)
            );
            Ok(ExitCode::FAILURE)
        }
        JobEnd::Failed(reason) => {
            eprintln!("task {task_gid}: failed: {reason}; job {}", job.id);
            Ok(ExitCode::FAILURE)
        }
        JobEnd::LeaseLost => {
            eprintln!(
                "task {task_gid}: the job's lease ran out before its result was recorded; see `jobs list`"
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Runs `work` while renewing `owner`'s leases every third of `lease`, as the worker does for its
/// jobs: a slow upstream must not let a worker take the job while this command still runs it.
async fn renewing_leases<T>(
    store: &Store,
    owner: &LeaseOwner,
    lease: Duration,
    work: impl Future<Output = T>,
) -> T {
    let mut renew = tokio::time::interval(lease / 3);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    renew.reset();
    tokio::pin!(work);
    loop {
        tokio::select! {
            end = &mut work => return end,
            _ = renew.tick() => {
                if let Err(err) = store.renew_leases(owner, lease).await {
                    tracing::warn!(error = %err, "could not renew the job's lease");
                }
            }
        }
    }
}
