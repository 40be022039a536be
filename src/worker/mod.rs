//! The background worker. `claim.rs`: the loop that claims due jobs with a lease and runs them;
//! `invite.rs`: one job, start to finish; `retry.rs`: whether and when a failed job runs again;
//! `project_scope.rs`: whether a task is (still) in its webhook's project; `rooms.rs`: the rooms
//! a job grants its assignee; `room_provision.rs`: one room per project in `auto` mode;
//! `watch_project.rs`: a project a workspace's webhook reported gets a webhook of its own;
//! `revoke.rs`: room access nobody needs any more is taken back (issue 13).

mod claim;
mod invite;
mod project_scope;
mod retry;
mod revoke;
mod room_provision;
mod rooms;
mod watch_project;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use crate::settings::WorkerSettings;
use crate::store::{LeaseOwner, Store};

pub use invite::{InviteRules, Inviter, JobEnd};
pub(crate) use retry::backoff_delay;
pub use retry::{Decision, RetryPolicy};
pub use revoke::{KEPT_BY_DOCSPACE, Revoker};
pub use room_provision::{CommandRoom, RoomEvent, asana_project, provision_for_command};
pub use rooms::linked_gone_message;
pub use watch_project::ProjectWatcher;

/// Whether the worker loop is alive, for readiness.
#[derive(Debug, Default)]
pub struct WorkerStatus {
    running: AtomicBool,
}

impl WorkerStatus {
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }
}

/// Clears the running flag however the loop ends, panics included.
struct RunningGuard(Arc<WorkerStatus>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
    }
}

pub struct Worker {
    store: Store,
    inviter: Arc<Inviter>,
    /// Runs `project_added` jobs.
    watcher: Arc<ProjectWatcher>,
    /// Runs `revoke` jobs.
    revoker: Arc<Revoker>,
    settings: WorkerSettings,
    owner: LeaseOwner,
    wake: Arc<Notify>,
    status: Arc<WorkerStatus>,
}

impl Worker {
    pub fn new(
        store: Store,
        inviter: Inviter,
        watcher: ProjectWatcher,
        revoker: Revoker,
        settings: WorkerSettings,
        wake: Arc<Notify>,
    ) -> Self {
        Worker {
            store,
            inviter: Arc::new(inviter),
            watcher: Arc::new(watcher),
            revoker: Arc::new(revoker),
            settings,
            owner: LeaseOwner::new(lease_owner_id()),
            wake,
            status: Arc::new(WorkerStatus::default()),
        }
    }

    pub fn status(&self) -> Arc<WorkerStatus> {
        self.status.clone()
    }
}

/// Unique per process, so a lease names the process that holds it.
pub(crate) fn lease_owner_id() -> String {
    format!("{}-{:08x}", std::process::id(), rand::random::<u32>())
}
