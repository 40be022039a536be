//! Is each webhook still alive? Verified deliveries are timed per name (heartbeats arrive every
//! 8 h, so 24 h of silence means trouble), and every `webhooks.watch_interval_secs` each registered
//! webhook is read from Asana: failing deliveries or a webhook Asana deleted are logged and
//! reported as `degraded` in `/readyz`. With `webhooks.auto_recreate`, a webhook Asana deleted or
//! deactivated gets a repair (`repair.rs`), reported as `degraded` until a new one replaces it.
//! With access revocation on, a project webhook registered before it existed gets the filters it
//! needs (completions, removals, deletions) added at Asana, once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::{WatchedResource, WebhookName};
use crate::store::{RepairRequest, Store, WebhookRecord, now_ms};
use crate::telemetry::metrics;
use crate::upstream::asana::{Webhook, filters_with, missing_filters};
use crate::upstream::{AsanaClient, UpstreamError};
use crate::webhook::repair::{repair_reason, repair_status};

/// Asana sends a heartbeat every 8 hours and deletes a webhook after 24 hours of failures.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(24 * 3600);
/// How often delivery times are written to the store (they are kept in memory in between, so the
/// acknowledgement path does not write per heartbeat).
const FLUSH_INTERVAL: Duration = Duration::from_secs(30);

/// Last verified delivery per webhook name, and what the last check at Asana found.
#[derive(Debug, Default)]
pub struct WebhookHealth {
    deliveries: Mutex<Deliveries>,
    asana_findings: Mutex<BTreeMap<String, String>>,
    /// What the last check read at Asana per webhook name, structured for the status page.
    asana_views: Mutex<BTreeMap<String, AsanaView>>,
    /// With `webhooks.auto_recreate`: wakes the repairer when a repair is asked for.
    repairer_wake: Option<Arc<Notify>>,
    /// With `access.revoke` on: project webhooks lacking the lifecycle filters get them.
    lifecycle_filters: bool,
    /// Webhooks (Asana gids) whose filters this process completed: each is updated once.
    filters_completed: Mutex<HashSet<String>>,
}

/// A webhook as the watcher last read it at Asana (`GET /webhooks/{gid}`), for the status page,
/// which never calls Asana itself: its age is what the operator sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsanaView {
    /// When it was read (ms).
    pub checked_at: i64,
    pub active: bool,
    /// As Asana wrote it (RFC 3339).
    pub last_failure_at: Option<String>,
    pub last_failure_content: Option<String>,
    /// Asana answered 404: the webhook is gone.
    pub deleted: bool,
}

impl AsanaView {
    /// What the answer to reading a webhook at `now` says; `None` when Asana could not be
    /// asked (the previous view stands, with its age).
    pub fn from_check(checked: &Result<Webhook, UpstreamError>, now: i64) -> Option<AsanaView> {
        match checked {
            Ok(remote) => Some(AsanaView {
                checked_at: now,
                // Asana omits `active` on some answers; only an explicit `false` is inactive.
                active: remote.active != Some(false),
                last_failure_at: remote.last_failure_at.clone().filter(|at| !at.is_empty()),
                last_failure_content: remote
                    .last_failure_content
                    .clone()
                    .filter(|c| !c.is_empty()),
                deleted: false,
            }),
            Err(UpstreamError::Status { status: 404, .. }) => Some(AsanaView {
                checked_at: now,
                active: false,
                last_failure_at: None,
                last_failure_content: None,
                deleted: true,
            }),
            Err(_) => None,
        }
    }
}

#[derive(Debug, Default)]
struct Deliveries {
    last: HashMap<WebhookName, i64>,
    unflushed: HashMap<WebhookName, i64>,
}

impl WebhookHealth {
    /// Health that asks for a webhook Asana deleted or deactivated to be registered again, and
    /// wakes the repairer with `repairer_wake`.
    pub fn repairing(repairer_wake: Arc<Notify>) -> WebhookHealth {
        WebhookHealth {
            repairer_wake: Some(repairer_wake),
            ..WebhookHealth::default()
        }
    }

    /// This health, adding the filters access revocation needs to the project webhooks that lack
    /// them when `on` (`access.revoke`).
    pub fn with_lifecycle_filters(mut self, on: bool) -> WebhookHealth {
        self.lifecycle_filters = on;
        self
    }

    /// A delivery to `name` passed its signature check just now.
    pub fn record_delivery(&self, name: &WebhookName) {
        let now = now_ms();
        let mut deliveries = self.deliveries.lock().expect("not poisoned");
        deliveries.last.insert(name.clone(), now);
        deliveries.unflushed.insert(name.clone(), now);
        metrics::last_delivery(name.as_str(), now);
    }

    /// The last verified delivery per name that this process has seen.
    pub fn last_deliveries(&self) -> HashMap<WebhookName, i64> {
        self.deliveries.lock().expect("not poisoned").last.clone()
    }

    /// What the last check read at Asana, per registered webhook name it could read.
    pub fn asana_views(&self) -> BTreeMap<String, AsanaView> {
        self.asana_views.lock().expect("not poisoned").clone()
    }

    /// Writes delivery times seen since the last flush.
    pub async fn flush(&self, store: &Store) {
        let pending: Vec<(WebhookName, i64)> = {
            let mut deliveries = self.deliveries.lock().expect("not poisoned");
            deliveries.unflushed.drain().collect()
        };
        if let Err(err) = store.record_deliveries(pending.clone()).await {
            tracing::warn!(error = %err, "could not record webhook delivery times; will try again");
            let mut deliveries = self.deliveries.lock().expect("not poisoned");
            for (name, at) in pending {
                deliveries.unflushed.entry(name).or_insert(at);
            }
        }
    }

    /// Webhooks that look unwell, with why: silent for over 24 hours, failing or gone at Asana,
    /// or being registered again (a repair says more than the finding that asked for it).
    pub async fn degraded(
        &self,
        store: &Store,
    ) -> Result<BTreeMap<String, String>, crate::store::StoreError> {
        let hooks = store.webhooks().await?;
        let registered: HashSet<&str> = hooks.iter().map(|hook| hook.name.as_str()).collect();
        let mut problems = self.findings_of(&registered);
        for repair in store.webhook_repairs().await? {
            if registered.contains(repair.old_name.as_str()) {
                problems.insert(repair.old_name.to_string(), repair_status(&repair));
            }
        }
        let seen_here = self.last_deliveries();
        let now = now_ms();
        for hook in hooks {
            let last = last_verified(&hook, &seen_here).unwrap_or(hook.created_at);
            let silent_for = Duration::from_millis(u64::try_from(now - last).unwrap_or(0));
            if silent_for > SILENCE_LIMIT && !problems.contains_key(hook.name.as_str()) {
                problems.insert(
                    hook.name.to_string(),
                    format!(
                        "no verified delivery (heartbeats come every 8 hours) for {} hours",
                        silent_for.as_secs() / 3600
                    ),
                );
            }
        }
        Ok(problems)
    }

    /// The last check's findings about names still `registered` (one about a name replaced or
    /// deleted since is over).
    fn findings_of(&self, registered: &HashSet<&str>) -> BTreeMap<String, String> {
        let findings = self.asana_findings.lock().expect("not poisoned");
        findings
            .iter()
            .filter(|(name, _)| registered.contains(name.as_str()))
            .map(|(name, finding)| (name.clone(), finding.clone()))
            .collect()
    }

    /// Reads every registered webhook from Asana and remembers what is wrong with each; with
    /// `auto_recreate`, asks for one Asana deleted or deactivated to be registered again.
    pub async fn check_at_asana(&self, store: &Store, asana: &AsanaClient) {
        let hooks = match store.webhooks().await {
            Ok(hooks) => hooks,
            Err(err) => {
                tracing::warn!(error = %err, "could not read the registered webhooks");
                return;
            }
        };
        let mut findings = BTreeMap::new();
        let mut views = BTreeMap::new();
        let previous_views = self.asana_views();
        let mut repairs_asked = false;
        for hook in hooks {
            let Some(gid) = hook.webhook_gid.as_ref().map(|gid| gid.as_str()) else {
                continue;
            };
            let checked = asana.get_webhook(gid).await;
            match AsanaView::from_check(&checked, now_ms()) {
                Some(view) => {
                    views.insert(hook.name.to_string(), view);
                }
                None => {
                    if let Some(view) = previous_views.get(hook.name.as_str()) {
                        views.insert(hook.name.to_string(), view.clone());
                    }
                }
            }
            if let Err(err) = &checked
                && err.status() != Some(404)
            {
                tracing::warn!(webhook = %hook.name, error = %err, "could not check the webhook at Asana");
            }
            let repairing = match repair_reason(&checked) {
                Some(reason) if self.repairer_wake.is_some() => self
                    .ask_repair(store, &hook, &reason)
                    .await
                    .then_some(reason),
                _ => None,
            };
            repairs_asked |= repairing.is_some();
            if self.lifecycle_filters
                && repairing.is_none()
                && let Ok(remote) = &checked
            {
                self.complete_filters(asana, &hook, gid, remote).await;
            }
            let finding = match repairing {
                Some(reason) => Some(format!(
                    "webhook {gid} was {reason}: registering a new one in its place"
                )),
                None => finding(&checked, gid, &hook.name),
            };
            if let Some(finding) = finding {
                tracing::warn!(webhook = %hook.name, "{finding}");
                findings.insert(hook.name.to_string(), finding);
            }
        }
        *self.asana_findings.lock().expect("not poisoned") = findings;
        *self.asana_views.lock().expect("not poisoned") = views;
        if repairs_asked && let Some(wake) = &self.repairer_wake {
            wake.notify_one();
        }
    }

    /// Adds to a project webhook the filters of `webhook_filters` it lacks (`PUT /webhooks/{gid}`
    /// with those it has and the missing ones: the call replaces them). Once per webhook and
    /// process; a failure is logged and tried again at the next check. Webhooks made by hand (no
    /// project recorded), workspace webhooks, and webhooks Asana did not report filters for are
    /// left alone.
    async fn complete_filters(
        &self,
        asana: &AsanaClient,
        hook: &WebhookRecord,
        gid: &str,
        remote: &Webhook,
    ) {
        let Some(resource @ WatchedResource::Project(_)) = hook.resource() else {
            return;
        };
        let Some(current) = remote.filters.as_deref() else {
            return;
        };
        let missing = missing_filters(&resource, current);
        if missing.is_empty()
            || self
                .filters_completed
                .lock()
                .expect("not poisoned")
                .contains(gid)
        {
            return;
        }
        match asana
            .update_webhook(gid, &filters_with(current, &missing))
            .await
        {
            Ok(_) => {
                tracing::info!(
                    webhook = %hook.name,
                    added = missing.len(),
                    "added to webhook {gid} the filters access revocation needs (completed, removed, deleted)"
                );
                self.filters_completed
                    .lock()
                    .expect("not poisoned")
                    .insert(gid.to_string());
            }
            Err(err) => tracing::warn!(
                webhook = %hook.name,
                error = %err,
                "could not add to webhook {gid} the filters access revocation needs; will try again at the next check"
            ),
        }
    }

    /// Asks for `hook` to be registered again, catching up from its last verified delivery (seen
    /// by any replica, or by this one and not written yet), else its registration. True when a
    /// repair of it is pending (asked now or before).
    async fn ask_repair(&self, store: &Store, hook: &WebhookRecord, found: &str) -> bool {
        let since = last_verified(hook, &self.last_deliveries())
            .or(hook.registered_at)
            .unwrap_or(hook.created_at);
        let request = RepairRequest {
            old_name: hook.name.clone(),
            found: found.to_string(),
            since,
        };
        match store.request_webhook_repair(&request).await {
            Ok(pending) => pending,
            Err(err) => {
                tracing::warn!(webhook = %hook.name, error = %err, "could not ask for the webhook's repair; will try again");
                false
            }
        }
    }

    /// Flushes delivery times and checks webhooks at Asana until `shutdown`, then flushes once more.
    pub async fn watch(
        self: Arc<Self>,
        store: Store,
        asana: AsanaClient,
        interval: Duration,
        shutdown: CancellationToken,
    ) {
        let mut flush = tokio::time::interval(FLUSH_INTERVAL);
        let mut check = tokio::time::interval(interval);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = flush.tick() => self.flush(&store).await,
                _ = check.tick() => self.check_at_asana(&store, &asana).await,
            }
        }
        self.flush(&store).await;
    }
}

/// What is wrong with the webhook `name` (Asana's `gid`), from reading it at Asana.
fn finding(
    checked: &Result<Webhook, UpstreamError>,
    gid: &str,
    name: &WebhookName,
) -> Option<String> {
    let detail = |remote: &Webhook, none: &'static str| {
        remote
            .last_failure_content
            .clone()
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| none.to_string())
    };
    match checked {
        Ok(remote) if remote.active == Some(false) => Some(format!(
            "Asana reports webhook {gid} inactive (last failure: {})",
            detail(remote, "unknown")
        )),
        Ok(remote) if remote.is_failing() => Some(format!(
            "Asana's deliveries to webhook {gid} are failing since {} ({}; {} retries)",
            remote.last_failure_at.as_deref().unwrap_or("?"),
            detail(remote, "no detail"),
            remote.delivery_retry_count.unwrap_or(0)
        )),
        Ok(_) => None,
        Err(UpstreamError::Status { status: 404, .. }) => Some(format!(
            "Asana has deleted webhook {gid}: run `webhooks delete {name}` and `webhooks create` again"
        )),
        Err(_) => None,
    }
}

/// The last verified delivery to `hook`: the stored one, or a later one this process saw and has
/// not written yet.
fn last_verified(hook: &WebhookRecord, seen_here: &HashMap<WebhookName, i64>) -> Option<i64> {
    [hook.last_delivery_at, seen_here.get(&hook.name).copied()]
        .into_iter()
        .flatten()
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Service;

    fn webhook(json: serde_json::Value) -> Result<Webhook, UpstreamError> {
        Ok(serde_json::from_value(json).expect("a webhook"))
    }

    #[test]
    fn the_view_keeps_what_asana_said() {
        let failing = webhook(serde_json::json!({
            "gid": "1200000000000123", "active": true,
            "last_failure_at": "2026-12-03T10:00:00.000Z", "last_failure_content": "502 Bad Gateway",
        }));
        assert_eq!(
            AsanaView::from_check(&failing, 7),
            Some(AsanaView {
                checked_at: 7,
                active: true,
                last_failure_at: Some("2026-12-03T10:00:00.000Z".into()),
                last_failure_content: Some("502 Bad Gateway".into()),
                deleted: false,
            })
        );
        let inactive = webhook(serde_json::json!({"gid": "1200000000000123", "active": false}));
        assert!(!AsanaView::from_check(&inactive, 7).unwrap().active);
        let silent =
            webhook(serde_json::json!({"gid": "1200000000000123", "last_failure_content": ""}));
        let view = AsanaView::from_check(&silent, 7).unwrap();
        assert!(view.active);
        assert_eq!(view.last_failure_content, None);
    }

    #[test]
    fn a_404_is_a_deleted_webhook_and_other_errors_say_nothing() {
        let gone: Result<Webhook, UpstreamError> = Err(UpstreamError::Status {
            service: Service::Asana,
            status: 404,
            message: "Not Found".into(),
        });
        let view = AsanaView::from_check(&gone, 9).unwrap();
        assert!(view.deleted && !view.active);
        let down: Result<Webhook, UpstreamError> = Err(UpstreamError::Transport {
            service: Service::Asana,
            message: "connection refused".into(),
        });
        assert_eq!(AsanaView::from_check(&down, 9), None);
    }
}
