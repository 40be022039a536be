//! `jobs list | retry`: what happened to each event, and a second chance for failed ones.

use std::process::ExitCode;

use anyhow::bail;

use super::{Context, format_time, table};
use crate::cli::StatusFilter;
use crate::status::room_results_text;
use crate::store::{JobStatus, RetryRequest};

pub async fn list(
    ctx: &Context,
    status: Option<StatusFilter>,
    limit: usize,
) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let status = status.map(|s| match s {
        StatusFilter::Pending => JobStatus::Pending,
        StatusFilter::Running => JobStatus::Running,
        StatusFilter::Done => JobStatus::Done,
        StatusFilter::Failed => JobStatus::Failed,
    });
    let jobs = store.list_jobs(status, limit).await?;
    if jobs.is_empty() {
        println!("no jobs");
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = table(&[
        "ID",
        "STATUS",
        "TASK",
        "EMAIL",
        "OUTCOME",
        "ATTEMPTS",
        "ROOMS",
        "LAST ERROR",
        "NEXT ATTEMPT",
        "SOURCE",
    ]);
    for job in jobs {
        let next_attempt = if job.status == JobStatus::Pending {
            format_time(Some(job.run_at))
        } else {
            "-".to_string()
        };
        rows.add_row(vec![
            job.id.to_string(),
            job.status.to_string(),
            job.task_gid.to_string(),
            job.email.unwrap_or_else(|| "-".into()),
            job.outcome.unwrap_or_else(|| "-".into()),
            job.attempts.to_string(),
            room_results_text(job.room_results.as_deref()).unwrap_or_else(|| "-".into()),
            job.last_error.unwrap_or_else(|| "-".into()),
            next_attempt,
            job.source.to_string(),
        ]);
    }
    println!("{rows}");
    Ok(ExitCode::SUCCESS)
}

pub async fn retry(ctx: &Context, id: Option<i64>, all_failed: bool) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    if all_failed {
        let count = store.retry_all_failed_jobs().await?;
        println!("{count} failed job(s) are due again");
        return Ok(ExitCode::SUCCESS);
    }
    let Some(id) = id else {
        bail!("give a job id, or --failed for every failed job");
    };
    match store.retry_failed_job(id).await? {
        RetryRequest::Retried => {
            println!("job {id} is due again; the running service picks it up");
            Ok(ExitCode::SUCCESS)
        }
        RetryRequest::NotFailed(status) => {
            bail!("job {id} is {status}, not failed: nothing to retry")
        }
        RetryRequest::NoSuchJob => bail!("there is no job {id}"),
    }
}
