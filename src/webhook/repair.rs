//! Webhooks that come back by themselves. The watcher asks for a repair when Asana deleted a
//! registered webhook (404) or deactivated it ([`repair_reason`]); the [`WebhookRepairer`], a
//! background task of every replica, claims each repair (one replica at a time), registers a new
//! webhook for the same resource through the normal registration (fresh name, window, nonce,
//! handshake, the 201 secret cross-check), deletes the old one at Asana, then forgets the old
//! name and asks the project's catch-up pass in one store transaction. A failed attempt is
//! retried with backoff; until one succeeds, `/readyz` reports the repair as `degraded`.
//!
//! It never runs on the ingress path: Asana's create call blocks until our handshake answers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::WebhookName;
use crate::settings::env_var_name;
use crate::store::{LeaseOwner, RepairClaim, Store, WebhookRepair, rfc3339_seconds};
use crate::telemetry::metrics;
use crate::upstream::asana::Webhook;
use crate::upstream::{AsanaClient, UpstreamError};
use crate::webhook::register::{REGISTRATION_WINDOW, register_webhook};
use crate::worker::backoff_delay;

/// How often due repairs are looked for when nothing wakes the repairer.
const TICK: Duration = Duration::from_secs(30);
/// The first retry of a failed repair, doubling (with jitter) up to [`BACKOFF_MAX`].
pub const BACKOFF_BASE: Duration = Duration::from_secs(60);
pub const BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// Why a webhook needs registering again, from what reading it at Asana gave; `None` while Asana
/// still retries its deliveries (failing but active: after 24 h it deletes it, then 404) or when
/// Asana could not be asked.
pub fn repair_reason(checked: &Result<Webhook, UpstreamError>) -> Option<String> {
    match checked {
        Err(UpstreamError::Status { status: 404, .. }) => Some("deleted at Asana (404)".into()),
        Ok(hook) if hook.active == Some(false) => Some(format!(
            "inactive at Asana: {}",
            hook.last_failure_content
                .as_deref()
                .filter(|c| !c.is_empty())
                .unwrap_or("no failure reported")
        )),
        _ => None,
    }
}

/// The wait after `failed_attempts` failed repairs: a minute, doubling, at most an hour.
pub fn repair_backoff(failed_attempts: i64) -> Duration {
    backoff_delay(failed_attempts, BACKOFF_BASE, BACKOFF_MAX)
}

/// A pending repair as `/readyz` reports it.
pub fn repair_status(repair: &WebhookRepair) -> String {
    let doing = format!(
        "{}; registering a new webhook for {}",
        repair.found, repair.resource
    );
    match (&repair.last_error, repair.attempts) {
        (Some(error), attempts) if attempts > 0 => format!(
            "{doing}: attempt {attempts} failed ({error}), next at {}",
            rfc3339_seconds(repair.next_attempt_at)
        ),
        _ => doing,
    }
}

/// A pending repair as the NOTE of `webhooks list` shows it.
pub fn repair_note(repair: &WebhookRepair) -> String {
    match (&repair.last_error, repair.attempts) {
        (Some(error), attempts) if attempts > 0 => {
            format!("re-registering (attempt {attempts} failed: {error})")
        }
        _ => "re-registering".to_string(),
    }
}

/// What a claimed repair came to.
#[derive(Debug, PartialEq, Eq)]
enum Repaired {
    /// The old webhook was gone here already: nothing to replace.
    Dropped,
    /// `new` replaces the old webhook.
    Replaced { new: WebhookName },
    /// Another replica took the repair over (the claim lapsed); it finishes it.
    ClaimLost,
}

/// The background task that registers again the webhooks Asana dropped.
pub struct WebhookRepairer {
    pub store: Store,
    pub asana: AsanaClient,
    /// `server.public_url`: the new webhook's target is under it.
    pub public_url: String,
    pub owner: LeaseOwner,
    /// Woken by the watcher when it asks for a repair.
    pub wake: Arc<Notify>,
    /// Woken once a repair asked for a catch-up pass.
    pub reconcile_wake: Arc<Notify>,
}

impl WebhookRepairer {
    /// Repairs whatever is due, every 30 s or when woken, until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
                _ = self.wake.notified() => {}
            }
            self.repair_due(&shutdown).await;
        }
    }

    /// Claims and works due repairs one at a time until none is due.
    async fn repair_due(&self, shutdown: &CancellationToken) {
        let token = format!("repair:{}", self.owner);
        while !shutdown.is_cancelled() {
            let claim = match self
                .store
                .claim_due_repair(&token, 3 * REGISTRATION_WINDOW)
                .await
            {
                Ok(Some(claim)) => claim,
                Ok(None) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "could not claim a webhook repair; will try again");
                    return;
                }
            };
            self.repair(&claim, shutdown).await;
        }
    }

    async fn repair(&self, claim: &RepairClaim, shutdown: &CancellationToken) {
        let repair = &claim.repair;
        match self.attempt(claim, shutdown).await {
            Ok(Repaired::Replaced { new }) => {
                tracing::warn!(
                    webhook = %repair.old_name,
                    "webhook {} of {} was {}; registered {new} in its place; catching up from {}",
                    repair.old_name,
                    repair.resource,
                    repair.found,
                    rfc3339_seconds(repair.since)
                );
                metrics::webhook_recreated();
                self.reconcile_wake.notify_one();
            }
            Ok(Repaired::Dropped) => tracing::info!(
                webhook = %repair.old_name,
                "webhook {} is no longer registered here: its repair is dropped",
                repair.old_name
            ),
            Ok(Repaired::ClaimLost) => tracing::info!(
                webhook = %repair.old_name,
                "another replica took the repair of webhook {} over",
                repair.old_name
            ),
            Err(err) => self.failed(claim, &format!("{err:#}")).await,
        }
    }

    /// §5.3 of the design: (a) drop a repair whose webhook is gone here; (b) reuse a new webhook
    /// a repair that died after confirming left; (c) register one; (d) delete the old one at
    /// Asana; (e) complete.
    async fn attempt(
        &self,
        claim: &RepairClaim,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Repaired> {
        let repair = &claim.repair;
        let still_here = self.store.find_webhook(repair.old_name.as_str()).await?;
        let Some(old) = still_here.filter(|hook| hook.name == repair.old_name) else {
            return Ok(if self.store.drop_webhook_repair(claim).await? {
                Repaired::Dropped
            } else {
                Repaired::ClaimLost
            });
        };
        // A webhook of the resource registered after the dead one (a repair that died after
        // confirming it, or the repair of another dead webhook of the same resource) replaces
        // it: one live webhook per resource is enough.
        let left_over = self
            .store
            .replacement_webhook(
                &repair.resource,
                &repair.old_name,
                old.registered_at.unwrap_or(old.created_at),
            )
            .await?;
        let new = match left_over {
            Some(name) => name,
            None => self.register(repair, shutdown).await?,
        };
        self.delete_old_at_asana(repair).await;
        Ok(if self.store.complete_webhook_repair(claim, &new).await? {
            Repaired::Replaced { new }
        } else {
            tracing::warn!(
                webhook = %repair.old_name,
                "the repair of {} was cancelled (`webhooks delete`) or finished elsewhere while {new} \
                 was registered; {new} stays registered here and at Asana (`webhooks delete {new}` \
                 if it is not wanted)",
                repair.old_name
            );
            Repaired::ClaimLost
        })
    }

    /// A new webhook for the repair's resource, abandoned (and undone) on shutdown or once the
    /// claim could have lapsed.
    async fn register(
        &self,
        repair: &WebhookRepair,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<WebhookName> {
        if self.public_url.is_empty() {
            bail!(
                "server.public_url ({}) is empty: a webhook Asana deletes cannot be registered again",
                env_var_name("server.public_url")
            );
        }
        let interrupted = async {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(2 * REGISTRATION_WINDOW) => {}
            }
        };
        let registered = register_webhook(
            &self.store,
            &self.asana,
            &self.public_url,
            &repair.resource,
            None,
            interrupted,
        )
        .await?;
        Ok(registered.name)
    }

    /// Best effort: an inactive webhook still exists at Asana; a deleted one answers 404.
    async fn delete_old_at_asana(&self, repair: &WebhookRepair) {
        let gid = repair.old_webhook_gid.as_str();
        match self.asana.delete_webhook(gid).await {
            Ok(()) | Err(UpstreamError::Status { status: 404, .. }) => {}
            Err(err) => tracing::warn!(
                webhook = %repair.old_name,
                error = %err,
                "could not delete the replaced webhook {gid} at Asana: delete webhook {gid} at Asana yourself \
                 (`webhooks delete {gid}`)"
            ),
        }
    }

    /// Counts the failed attempt and schedules the next one.
    async fn failed(&self, claim: &RepairClaim, error: &str) {
        let repair = &claim.repair;
        let attempt = repair.attempts + 1;
        let retry_in = repair_backoff(attempt);
        tracing::warn!(
            webhook = %repair.old_name,
            attempt,
            retry_in_secs = retry_in.as_secs(),
            "registering a new webhook for {} in place of {} failed: {error}",
            repair.resource,
            repair.old_name
        );
        if let Err(err) = self.store.fail_repair(claim, error, retry_in).await {
            tracing::warn!(error = %err, "could not record the failed webhook repair");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Gid, WatchedResource};
    use crate::upstream::Service;

    fn webhook(active: Option<bool>, failure: Option<&str>) -> Webhook {
        Webhook {
            gid: "1200000000000123".parse().unwrap(),
            active,
            resource: None,
            target: None,
            created_at: None,
            last_success_at: Some("2026-12-03T10:00:00.000Z".into()),
            last_failure_at: failure.map(|_| "2026-12-03T11:00:00.000Z".into()),
            last_failure_content: failure.map(str::to_string),
            delivery_retry_count: None,
            filters: None,
        }
    }

    fn status(status: u16) -> UpstreamError {
        UpstreamError::Status {
            service: Service::Asana,
            status,
            message: "x".into(),
        }
    }

    #[test]
    fn only_a_deleted_or_inactive_webhook_needs_registering_again() {
        assert_eq!(
            repair_reason(&Err(status(404))).as_deref(),
            Some("deleted at Asana (404)")
        );
        assert_eq!(
            repair_reason(&Ok(webhook(Some(false), Some("HTTP 502")))).as_deref(),
            Some("inactive at Asana: HTTP 502")
        );
        assert_eq!(
            repair_reason(&Ok(webhook(Some(false), None))).as_deref(),
            Some("inactive at Asana: no failure reported")
        );
        // Failing but active: Asana still retries.
        assert_eq!(
            repair_reason(&Ok(webhook(Some(true), Some("HTTP 502")))),
            None
        );
        assert_eq!(repair_reason(&Ok(webhook(None, None))), None);
        let transport = UpstreamError::Transport {
            service: Service::Asana,
            message: "connection refused".into(),
        };
        assert_eq!(repair_reason(&Err(transport)), None);
        assert_eq!(repair_reason(&Err(status(500))), None);
        assert_eq!(repair_reason(&Err(status(401))), None);
    }

    #[test]
    fn repairs_back_off_from_a_minute_to_an_hour() {
        for _ in 0..50 {
            let first = repair_backoff(1);
            assert!(
                first >= BACKOFF_BASE / 2 && first <= BACKOFF_BASE,
                "{first:?}"
            );
            let late = repair_backoff(20);
            assert!(late >= BACKOFF_MAX / 2 && late <= BACKOFF_MAX, "{late:?}");
        }
    }

    fn repair(attempts: i64, last_error: Option<&str>) -> WebhookRepair {
        WebhookRepair {
            resource: WatchedResource::Project(
                Gid::try_from("1200000000000100".to_string()).unwrap(),
            ),
            old_name: "wh-old".parse().unwrap(),
            old_webhook_gid: "1200000000000123".parse().unwrap(),
            found: "deleted at Asana (404)".into(),
            since: 0,
            attempts,
            next_attempt_at: 1_796_295_720_000,
            last_error: last_error.map(str::to_string),
            created_at: 0,
        }
    }

    #[test]
    fn a_repair_is_reported_with_its_last_failed_attempt() {
        assert_eq!(
            repair_status(&repair(0, None)),
            "deleted at Asana (404); registering a new webhook for project 1200000000000100"
        );
        assert_eq!(
            repair_status(&repair(3, Some("Asana answered 500: boom"))),
            "deleted at Asana (404); registering a new webhook for project 1200000000000100: \
             attempt 3 failed (Asana answered 500: boom), next at 2026-12-03T11:02:00Z"
        );
        assert_eq!(repair_note(&repair(0, None)), "re-registering");
        assert_eq!(
            repair_note(&repair(2, Some("boom"))),
            "re-registering (attempt 2 failed: boom)"
        );
    }
}
