//! Registering a webhook safely: open a registration window in the shared store, ask Asana to
//! create the webhook (it performs the handshake against the running service, which accepts it
//! only inside the window), then check that the secret Asana reports is the one the handshake
//! stored. On a mismatch the webhook is deleted at Asana and forgotten here.

use anyhow::{Context as _, bail};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::settings::env_var_name;
use crate::store::{Store, now_ms};
use crate::upstream::{AsanaClient, UpstreamError};
use crate::webhook::is_valid_webhook_name;

/// A webhook Asana created and this service holds the secret of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub name: String,
    pub webhook_gid: String,
    pub project_gid: String,
    pub target: String,
    pub registered_at: i64,
}

/// Creates a webhook for `project` at `{public_url}/webhooks/asana/{name}`; `name` defaults to an
/// unguessable random one. The service must be running and reachable at `public_url`.
pub async fn register_webhook(
    store: &Store,
    asana: &AsanaClient,
    public_url: &str,
    project: &str,
    name: Option<&str>,
) -> anyhow::Result<Registered> {
    if public_url.is_empty() {
        bail!(
            "server.public_url ({}) is not set: webhooks create needs the https URL Asana reaches this service at",
            env_var_name("server.public_url")
        );
    }
    if !is_gid(project) {
        bail!("--project must be an Asana project gid (digits), not {project:?}");
    }
    let name = match name {
        Some(name) if is_valid_webhook_name(name) => name.to_string(),
        Some(name) => {
            bail!("--name {name:?} is not valid: use 1 to 64 letters, digits, '-' or '_'")
        }
        None => random_name(),
    };
    if store.webhook_secret(&name).await?.is_some() {
        bail!(
            "a webhook named {name:?} exists here already: choose another --name, or `webhooks delete {name}` first"
        );
    }
    let target = format!("{}/webhooks/asana/{name}", public_url.trim_end_matches('/'));

    store.open_registration(&name).await?;
    let created = match asana.create_webhook(project, &target).await {
        Ok(created) => created,
        Err(err) => {
            store.close_registration(&name).await?;
            bail!(explain_create_failure(&err, project, &target));
        }
    };
    let gid = created.webhook.gid.clone();
    let stored = store.webhook_secret(&name).await?;
    let matches = match (&created.secret, &stored) {
        (Some(given), Some(stored)) => {
            bool::from(given.as_bytes().ct_eq(stored.expose_secret().as_bytes()))
        }
        _ => false,
    };
    if !matches {
        // Whoever answered the handshake, it was not with the secret Asana reports: trust neither.
        let cleanup = asana.delete_webhook(&gid).await;
        store.forget_webhook(&name).await?;
        let why = if stored.is_none() {
            "the handshake did not reach this service's store (does server.public_url point at another server?)"
        } else {
            "the secret in Asana's answer differs from the one the handshake delivered"
        };
        match cleanup {
            Ok(()) => bail!("{why}; webhook {gid} was deleted at Asana"),
            Err(err) => bail!(
                "{why}; deleting webhook {gid} at Asana failed too ({err}): delete it by hand"
            ),
        }
    }
    store
        .record_registration(&name, &gid, project, &target)
        .await
        .context("recording the registration")?;
    Ok(Registered {
        name,
        webhook_gid: gid,
        project_gid: project.to_string(),
        target,
        registered_at: now_ms(),
    })
}

/// One line an operator can act on, for each way Asana refuses.
fn explain_create_failure(err: &UpstreamError, project: &str, target: &str) -> String {
    match err {
        UpstreamError::Status {
            status: 403,
            message,
            ..
        } if message.contains("Duplicated webhook") => format!(
            "Asana already has a webhook for project {project} and target {target}: delete it first \
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
            "Asana refused to create the webhook (403: {message}): can the token's user see project {project}? \
             Asana also refuses localhost targets"
        ),
        UpstreamError::Status { status: 404, .. } => {
            format!(
                "Asana does not know project {project} (404), or the token's user cannot see it"
            )
        }
        other => format!("could not create the webhook at Asana: {other}"),
    }
}

pub fn is_gid(value: &str) -> bool {
    !value.is_empty() && value.len() <= 32 && value.bytes().all(|b| b.is_ascii_digit())
}

/// 128 random bits: nobody can guess the path to plant a handshake on.
fn random_name() -> String {
    format!("wh-{}", hex::encode(rand::random::<[u8; 16]>()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Service;

    #[test]
    fn random_names_are_valid_and_distinct() {
        let a = random_name();
        assert!(is_valid_webhook_name(&a), "{a}");
        assert_ne!(a, random_name());
        assert_eq!(a.len(), 35);
    }

    #[test]
    fn gids_are_digits() {
        assert!(is_gid("1200000000000100"));
        assert!(!is_gid("12a"));
        assert!(!is_gid(""));
    }

    #[test]
    fn each_refusal_gets_its_own_explanation() {
        let status = |status, message: &str| UpstreamError::Status {
            service: Service::Asana,
            status,
            message: message.to_string(),
        };
        let text = |e| explain_create_failure(&e, "1", "https://x/webhooks/asana/n");
        assert!(
            text(status(403, "Duplicated webhook. You already have..."))
                .contains("already has a webhook")
        );
        assert!(text(status(400, "The remote server did not respond")).contains("handshake"));
        assert!(text(status(401, "Not Authorized")).contains("BRIDGE__ASANA__TOKEN"));
        assert!(text(status(403, "Forbidden")).contains("can the token's user see"));
    }
}
