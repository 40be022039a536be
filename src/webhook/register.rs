//! Registering a webhook safely: open a registration window in the shared store, bound to a
//! one-time nonce; ask Asana to create the webhook at a target URL that carries the nonce (Asana
//! performs the handshake against the running service, which accepts it only inside the window
//! and with the nonce); check that the secret Asana reports is the one the handshake stored; then
//! confirm it, which makes it verify deliveries. Whatever fails or interrupts the attempt before
//! that, what it stored is removed (and a webhook Asana created is deleted there); if the command
//! dies instead, the unconfirmed secret verifies nothing and is deleted after the window.

use std::future::Future;
use std::time::Duration;

use anyhow::{anyhow, bail};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::domain::{Gid, WatchedResource, WebhookName};
use crate::settings::env_var_name;
use crate::store::{RegisteredWebhook, RegistrationOpening, Store, now_ms};
use crate::upstream::asana::CreatedWebhook;
use crate::upstream::{AsanaClient, UpstreamError};
use crate::webhook::RegistrationNonce;

/// How long after `webhooks create` opens a registration its handshake is accepted, and how long
/// the command then has to confirm it.
pub const REGISTRATION_WINDOW: Duration = Duration::from_secs(60);

/// A webhook Asana created and this service holds the secret of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub name: WebhookName,
    pub webhook_gid: Gid,
    /// The project or workspace it watches.
    pub resource: WatchedResource,
    pub target: String,
    pub registered_at: i64,
}

/// Creates a webhook for `resource` (a project's tasks, or a workspace's new projects) at
/// `{public_url}/webhooks/asana/{name}?r=<nonce>`; `name` defaults to an unguessable random one.
/// The service must be running and reachable at `public_url`. When `interrupted` completes first,
/// the attempt is abandoned and undone here. When Asana refuses, the error is a [`CreateRefused`].
pub async fn register_webhook(
    store: &Store,
    asana: &AsanaClient,
    public_url: &str,
    resource: &WatchedResource,
    name: Option<WebhookName>,
    interrupted: impl Future<Output = ()>,
) -> anyhow::Result<Registered> {
    let attempt = Attempt::open(store, public_url, resource, name).await?;
    match attempt.run(asana, interrupted).await {
        Ok(registered) => Ok(registered),
        Err(err) => Err(attempt.abandon(err).await),
    }
}

/// One registration under way: its name, its nonce and the target that carries it.
struct Attempt<'s> {
    store: &'s Store,
    name: WebhookName,
    resource: WatchedResource,
    nonce: RegistrationNonce,
    /// The target without the nonce, for messages.
    base: String,
    target: String,
}

impl<'s> Attempt<'s> {
    /// Checks the arguments and opens the window.
    async fn open(
        store: &'s Store,
        public_url: &str,
        resource: &WatchedResource,
        name: Option<WebhookName>,
    ) -> anyhow::Result<Attempt<'s>> {
        if public_url.is_empty() {
            return Err(PublicUrlMissing.into());
        }
        let name = name.unwrap_or_else(random_name);
        let nonce = RegistrationNonce::generate();
        let base = format!("{}/webhooks/asana/{name}", public_url.trim_end_matches('/'));
        let target = nonce.target(&base);
        match store
            .open_registration(&name, nonce.hash(), REGISTRATION_WINDOW)
            .await?
        {
            RegistrationOpening::Opened => {}
            RegistrationOpening::HasSecret => bail!(
                "a webhook named {name:?} exists here already: choose another --name, or `webhooks delete {name}` first"
            ),
            RegistrationOpening::InProgress => bail!(
                "another `webhooks create` is registering {name:?} (or died less than {} s ago): \
                 wait for it, or choose another --name",
                REGISTRATION_WINDOW.as_secs()
            ),
        }
        Ok(Attempt {
            store,
            name,
            resource: resource.clone(),
            nonce,
            base,
            target,
        })
    }

    /// Asks Asana for the webhook, unless `interrupted` first, and confirms it; a webhook Asana
    /// created but that cannot be confirmed is deleted there. Once Asana has answered, the
    /// attempt runs to its end (a read and a write) so that it never stops half-confirmed.
    async fn run(
        &self,
        asana: &AsanaClient,
        interrupted: impl Future<Output = ()>,
    ) -> anyhow::Result<Registered> {
        // `interrupted` is polled first, so a signal handler behind it is installed before the
        // create request can leave (a Ctrl-C while Asana holds the call is then never missed).
        let created = tokio::select! {
            biased;
            () = interrupted => bail!(
                "interrupted: the registration was abandoned. If Asana created the webhook already, \
                 `webhooks list` shows it as \"not registered here\": remove it with `webhooks delete <GID>`"
            ),
            created = asana.create_webhook(&self.resource, &self.target) => created,
        };
        let created = created.map_err(|cause| CreateRefused {
            explained: explain_create_failure(&cause, &self.resource, &self.base),
            cause,
        })?;
        let gid = created.webhook.gid.clone();
        let why = match self.confirm(created).await {
            Ok(registered) => return Ok(registered),
            Err(why) => why,
        };
        match asana.delete_webhook(gid.as_str()).await {
            Ok(()) => bail!("{why:#}; webhook {gid} was deleted at Asana"),
            Err(err) => bail!(
                "{why:#}; deleting webhook {gid} at Asana failed too ({err}): delete it by hand"
            ),
        }
    }

    /// Confirms the secret the handshake stored if it is the one in Asana's answer.
    async fn confirm(&self, created: CreatedWebhook) -> anyhow::Result<Registered> {
        let hash = self.nonce.hash();
        let stored = self.store.unconfirmed_secret(&self.name, &hash).await?;
        let matches = match (&created.secret, &stored) {
            (Some(given), Some(stored)) => {
                bool::from(given.as_bytes().ct_eq(stored.expose_secret().as_bytes()))
            }
            _ => false,
        };
        if stored.is_none() {
            bail!(
                "the handshake did not reach this service's store (does server.public_url point at another server?)"
            );
        }
        if !matches {
            // Whoever answered the handshake, it was not with the secret Asana reports: trust neither.
            bail!("the secret in Asana's answer differs from the one the handshake delivered");
        }
        let webhook_gid = created.webhook.gid.clone();
        let registered = RegisteredWebhook {
            webhook_gid: webhook_gid.clone(),
            resource: self.resource.clone(),
            target: self.target.clone(),
        };
        if !self
            .store
            .confirm_registration(&self.name, hash, registered)
            .await?
        {
            bail!(
                "the {} s registration window closed before the registration was confirmed",
                REGISTRATION_WINDOW.as_secs()
            );
        }
        Ok(Registered {
            name: self.name.clone(),
            webhook_gid,
            resource: self.resource.clone(),
            target: self.target.clone(),
            registered_at: now_ms(),
        })
    }

    /// Removes the window and whatever secret this attempt's handshake stored; returns `why`
    /// the attempt failed, with the clean-up's own failure if it had one.
    async fn abandon(&self, why: anyhow::Error) -> anyhow::Error {
        match self
            .store
            .abandon_registration(&self.name, self.nonce.hash())
            .await
        {
            Ok(_) => why,
            Err(err) => anyhow!(
                "{why:#}; removing what the handshake stored failed too ({err}): it verifies no \
                 delivery, and the first `webhooks create` after its {} s deletes it",
                REGISTRATION_WINDOW.as_secs()
            ),
        }
    }
}

/// What `first-use` handshakes risk and how to avoid it: logged at start-up, printed by `check-config`.
pub fn first_use_warning() -> String {
    format!(
        "webhooks.handshake = first-use: anyone who can reach /webhooks/asana/<name> can plant a \
         webhook secret on a name that has none yet, and then have deliveries signed with it \
         accepted. Unless you create webhooks by hand, set {}=registration (the default) and \
         create them with `webhooks create`, which binds each handshake to its own registration",
        env_var_name("webhooks.handshake")
    )
}

/// Asana refused to create the webhook: the line an operator can act on, and Asana's answer (for
/// a caller that retries what is transient).
#[derive(Debug, thiserror::Error)]
#[error("{explained}")]
pub struct CreateRefused {
    pub explained: String,
    pub cause: UpstreamError,
}

/// `server.public_url` is empty: nothing can be registered.
#[derive(Debug, Clone, Copy)]
pub struct PublicUrlMissing;

impl std::fmt::Display for PublicUrlMissing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "server.public_url ({}) is not set: registering a webhook needs the https URL Asana \
             reaches this service at",
            env_var_name("server.public_url")
        )
    }
}

impl std::error::Error for PublicUrlMissing {}

/// One line an operator can act on, for each way Asana refuses.
fn explain_create_failure(err: &UpstreamError, resource: &WatchedResource, target: &str) -> String {
    match err {
        UpstreamError::Status {
            status: 403,
            message,
            ..
        } if message.contains("Duplicated webhook") => format!(
            "Asana already has a webhook for {resource} and target {target}: delete it first \
             (`webhooks list`, then `webhooks delete <GID>`) or use another --name"
        ),
        UpstreamError::Status {
            status: 400,
            message,
            ..
        } => format!(
            "Asana could not complete the handshake with {target} ({message}): is the service running \
             and reachable over HTTPS at server.public_url?"
        ),
        UpstreamError::Status { status: 401, .. } => format!(
            "Asana refused the token (401): check asana.token ({})",
            env_var_name("asana.token")
        ),
        UpstreamError::Status {
            status: 403,
            message,
            ..
        } => format!(
            "Asana refused to create the webhook (403: {message}): can the token's user see {resource}? \
             Asana also refuses localhost targets"
        ),
        UpstreamError::Status { status: 404, .. } => {
            format!("Asana does not know {resource} (404), or the token's user cannot see it")
        }
        other => format!("could not create the webhook at Asana: {other}"),
    }
}

/// 128 random bits: nobody can guess the path to plant a handshake on.
fn random_name() -> WebhookName {
    format!("wh-{}", hex::encode(rand::random::<[u8; 16]>()))
        .parse()
        .expect("hex digits are a valid webhook name")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Service;

    #[test]
    fn random_names_are_distinct_and_unguessable() {
        let a = random_name();
        assert_ne!(a, random_name());
        assert_eq!(a.as_str().len(), 35);
    }

    #[test]
    fn each_refusal_gets_its_own_explanation() {
        let status = |status, message: &str| UpstreamError::Status {
            service: Service::Asana,
            status,
            message: message.to_string(),
        };
        let project = WatchedResource::Project("1".parse().unwrap());
        let text = |e| explain_create_failure(&e, &project, "https://x/webhooks/asana/n");
        assert!(
            text(status(403, "Duplicated webhook. You already have..."))
                .contains("already has a webhook")
        );
        assert!(text(status(400, "The remote server did not respond")).contains("handshake"));
        assert!(text(status(401, "Not Authorized")).contains("BRIDGE__ASANA__TOKEN"));
        assert!(text(status(403, "Forbidden")).contains("can the token's user see project 1?"));
    }

    #[test]
    fn refusals_name_the_watched_resource() {
        let workspace = WatchedResource::Workspace("80001".parse().unwrap());
        let status = |status, message: &str| UpstreamError::Status {
            service: Service::Asana,
            status,
            message: message.to_string(),
        };
        let text = |e| explain_create_failure(&e, &workspace, "https://x/webhooks/asana/n");
        assert!(
            text(status(403, "Duplicated webhook.")).contains("a webhook for workspace 80001 and")
        );
        assert!(text(status(403, "Forbidden")).contains("see workspace 80001?"));
        assert_eq!(
            text(status(404, "Unknown object")),
            "Asana does not know workspace 80001 (404), or the token's user cannot see it"
        );
    }
}
