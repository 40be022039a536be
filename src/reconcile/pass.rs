//! One reconcile pass over one claimed project: page through the project's incomplete tasks
//! changed since the window's start, queue a job for each assignment no job has handled (one
//! write per page, the dedupe inside it), renew the claim per page, and move the cursor to the
//! pass's start once every page was read. On an error the cursor stays and the pass is due again
//! after a backoff.
//!
//! With access revocation on (issue 13) a pass also lists the tasks completed in its window and
//! queues unassigned and completed tasks whose stored row still shows an open assignment (they end
//! a need), and once a day per project it is a **need sweep**: every incomplete task is listed, the
//! stored open tasks not among them (removed, deleted or completed unseen) are read again by a
//! job, and live grants without any open task behind them get a revocation.

use std::collections::HashSet;
use std::time::Duration;

use super::cursor::{candidate_key, failure_due, next_due, pass_window};
use crate::domain::{Gid, JobKind, JobSource};
use crate::store::{
    NewJob, ReconcileCandidate, ReconcileClaim, Store, StoreError, now_ms, rfc3339_millis,
};
use crate::telemetry::metrics;
use crate::upstream::asana::ModifiedTask;
use crate::upstream::{AsanaClient, UpstreamError};

/// What a pass read and queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassReport {
    pub project: Gid,
    /// Where it read from (ms); `None`: a first pass, every incomplete task.
    pub from: Option<i64>,
    pub pages: u32,
    pub read: u64,
    /// Tasks read with an assignee.
    pub assigned: u64,
    pub queued: u64,
    /// Jobs queued by a pass with a window: assignments no delivery had brought by then.
    pub missed: u64,
    /// A need sweep (access revocation on, once a day): every incomplete task was listed.
    pub swept: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    #[error(
        "the pass's claim on the project was lost (held too long); the next pass starts from the same cursor"
    )]
    ClaimLost,
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Asana's paging went round in a circle (a next page it had given before), or on for more
    /// pages than any project has.
    #[error("Asana gave the same next-page offset twice; the pass stopped")]
    PagingLoop,
    #[error("Asana's paging went on for more than {MAX_PAGES} pages; the pass stopped")]
    TooManyPages,
}

/// A million tasks at 100 a page, far beyond what an Asana project holds: a pass stops there.
pub const MAX_PAGES: u32 = 10_000;

/// How a pass is run: the claim's hold (renewed per page), the passes' interval, and the grace
/// period of access revocation (`None`: revocation off).
#[derive(Debug, Clone, Copy)]
pub struct PassSettings {
    pub hold: Duration,
    pub interval: Option<Duration>,
    pub lifecycle: Option<Duration>,
}

/// Runs the pass `claim` holds, and ends it in the store: finished (cursor moved) or failed
/// (cursor kept, due again after a backoff). A lost claim writes nothing more.
pub async fn run_pass(
    store: &Store,
    asana: &AsanaClient,
    claim: &ReconcileClaim,
    settings: PassSettings,
) -> Result<PassReport, PassError> {
    let started = now_ms();
    let result = read_and_queue(store, asana, claim, settings, started).await;
    match &result {
        Ok(report) => {
            let due = next_due(now_ms(), settings.interval);
            if !store.finish_reconcile_pass(claim, started, due).await? {
                return Err(PassError::ClaimLost);
            }
            if report.missed > 0 {
                metrics::reconcile_missed(report.missed);
            }
        }
        Err(PassError::ClaimLost) => {}
        Err(error) => {
            let due = failure_due(now_ms(), settings.interval, claim.failures);
            if let Err(store_error) = store
                .fail_reconcile_pass(claim, &error.to_string(), due)
                .await
            {
                tracing::warn!(project = %claim.project, error = %store_error,
                    "could not record a failed reconcile pass; its claim runs out instead");
            }
        }
    }
    result
}

async fn read_and_queue(
    store: &Store,
    asana: &AsanaClient,
    claim: &ReconcileClaim,
    settings: PassSettings,
    started: i64,
) -> Result<PassReport, PassError> {
    let sweep = match settings.lifecycle {
        Some(_) => store.need_sweep_due(&claim.project, started).await?,
        None => false,
    };
    // A sweep lists every incomplete task, as a first pass does.
    let from = (!sweep)
        .then(|| pass_window(claim.cursor, claim.since))
        .flatten();
    let modified_since = from.map(rfc3339_millis);
    // Incomplete tasks only: completed after the pass started counts as incomplete. With
    // revocation on, a window lists the tasks completed in it too: each may end a need.
    let completed_since = match (settings.lifecycle, from) {
        (Some(_), Some(from)) => rfc3339_millis(from),
        _ => rfc3339_millis(started),
    };
    let mut report = PassReport {
        project: claim.project.clone(),
        from,
        pages: 0,
        read: 0,
        assigned: 0,
        queued: 0,
        missed: 0,
        swept: sweep,
    };
    let mut offset: Option<String> = None;
    let mut seen = HashSet::new();
    // A sweep's list of the project's incomplete tasks.
    let mut listed: Vec<Gid> = Vec::new();
    loop {
        let page = asana
            .tasks_modified_page(
                &claim.project,
                modified_since.as_deref(),
                &completed_since,
                offset.as_deref(),
            )
            .await?;
        report.pages += 1;
        report.read += page.data.len() as u64;
        if sweep {
            listed.extend(page.data.iter().map(|t| t.gid.clone()));
        }
        report.assigned += page.data.iter().filter(|t| t.assignee.is_some()).count() as u64;
        let candidates = candidates(&page.data, settings.lifecycle.is_some());
        let queued = store
            .enqueue_reconcile_jobs(&claim.project, candidates)
            .await?
            .len() as u64;
        report.queued += queued;
        if from.is_some() {
            report.missed += queued;
        }
        if !store.renew_reconcile_claim(claim, settings.hold).await? {
            return Err(PassError::ClaimLost);
        }
        match page.next_page {
            // Untrusted paging: offsets that come round again, or never end, would keep the pass
            // (and its claim) forever.
            Some(next) if !seen.insert(next.offset.clone()) => return Err(PassError::PagingLoop),
            Some(_) if report.pages >= MAX_PAGES => return Err(PassError::TooManyPages),
            Some(next) => offset = Some(next.offset),
            None => break,
        }
    }
    if let (true, Some(grace)) = (sweep, settings.lifecycle) {
        report.queued += sweep_needs(store, &claim.project, &listed, grace, started).await?;
    }
    Ok(report)
}

/// The need sweep's end, once every incomplete task of `project` was `listed`: a job reads again
/// each stored open task not among them (one per task and day), then every live grant of the
/// project's room whose person has no open task in it gets a revocation (a full grace from now).
/// Returns the jobs queued.
async fn sweep_needs(
    store: &Store,
    project: &Gid,
    listed: &[Gid],
    grace: Duration,
    started: i64,
) -> Result<u64, PassError> {
    let stale = store.open_tasks_not_listed(project, listed).await?;
    let day = sweep_day(started);
    let jobs: Vec<NewJob> = stale
        .into_iter()
        .map(|task| NewJob {
            dedupe_key: format!("sweep:{task}:{day}"),
            task_gid: task,
            kind: JobKind::Reconcile,
            project_gid: Some(project.clone()),
            assignee_gid: None,
        })
        .collect();
    let queued = store.enqueue(JobSource::Reconcile, jobs).await?.created;
    let scheduled = store.orphan_grants(project, grace).await?;
    store.mark_need_swept(project, started).await?;
    tracing::info!(
        project = %project,
        listed = listed.len(),
        queued,
        scheduled,
        "need sweep done"
    );
    Ok(queued)
}

/// `2026-12-04` for a time in ms: a sweep's jobs are one per task and day.
fn sweep_day(at: i64) -> String {
    rfc3339_millis(at).chars().take(10).collect()
}

/// The page's candidates: its assigned tasks; with revocation on (`lifecycle`), every task, as
/// unassigned and completed ones may end a need the stored row still shows.
fn candidates(tasks: &[ModifiedTask], lifecycle: bool) -> Vec<ReconcileCandidate> {
    tasks
        .iter()
        .filter(|task| lifecycle || task.assignee.is_some())
        .map(|task| {
            let assignee = task.assignee.as_ref().map(|a| a.gid.clone());
            ReconcileCandidate {
                dedupe_key: candidate_key(
                    task.gid.as_str(),
                    assignee.as_ref().map_or("-", Gid::as_str),
                    task.modified_at.as_deref(),
                ),
                task_gid: task.gid.clone(),
                assignee_gid: assignee,
                completed: task.completed,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_the_assigned_tasks_keyed_by_change() {
        let tasks: Vec<ModifiedTask> = serde_json::from_value(serde_json::json!([
            {"gid": "501", "assignee": {"gid": "7001", "resource_type": "user"},
             "modified_at": "2026-12-03T10:00:00.000Z"},
            {"gid": "502", "assignee": null, "modified_at": "2026-12-03T10:00:01.000Z"},
            {"gid": "503"}
        ]))
        .unwrap();
        let found = candidates(&tasks, false);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].task_gid.as_str(), "501");
        assert_eq!(found[0].assignee_gid.as_ref().unwrap().as_str(), "7001");
        assert_eq!(
            found[0].dedupe_key,
            "reconcile:501:7001:2026-12-03T10:00:00.000Z"
        );
    }

    #[test]
    fn with_revocation_on_unassigned_and_completed_tasks_are_candidates_too() {
        let tasks: Vec<ModifiedTask> = serde_json::from_value(serde_json::json!([
            {"gid": "501", "assignee": {"gid": "7001", "resource_type": "user"},
             "completed": true, "modified_at": "2026-12-03T10:00:00.000Z"},
            {"gid": "502", "assignee": null, "modified_at": "2026-12-03T10:00:01.000Z"}
        ]))
        .unwrap();
        let found = candidates(&tasks, true);
        assert_eq!(found.len(), 2);
        assert!(found[0].completed);
        assert_eq!(found[0].assignee_gid.as_ref().unwrap().as_str(), "7001");
        assert_eq!(
            found[0].dedupe_key,
            "reconcile:501:7001:2026-12-03T10:00:00.000Z"
        );
        assert!(!found[1].completed);
        assert_eq!(found[1].assignee_gid, None);
        assert_eq!(
            found[1].dedupe_key,
            "reconcile:502:-:2026-12-03T10:00:01.000Z"
        );
    }

    #[test]
    fn a_sweep_day_is_the_utc_date() {
        // 2026-12-04T10:00:00Z
        assert_eq!(sweep_day(1_796_378_400_000), "2026-12-04");
    }
}
