//! ONLYOFFICE DocSpace API client (`/api/2.0`), authenticated with an API key (`sk-...`).

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::json_api::JsonApi;
use super::{BadBaseUrl, Service, UpstreamError};
use crate::settings::{InviteType, Settings};

/// `Debug` shows no credential: the token is a `SecretString`.
#[derive(Clone, Debug)]
pub struct DocSpaceClient {
    api: JsonApi,
}

/// The caller's profile, as much of it as the checks print.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Profile {
    #[serde(rename = "displayName", default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(rename = "isAdmin", default)]
    pub is_admin: Option<bool>,
    #[serde(rename = "isOwner", default)]
    pub is_owner: Option<bool>,
}

#[derive(Deserialize)]
struct ProfileEnvelope {
    response: Profile,
}

#[derive(Serialize)]
struct InviteRequest<'a> {
    invitations: [Invitation<'a>; 1],
}

#[derive(Serialize)]
struct Invitation<'a> {
    email: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
}

impl DocSpaceClient {
    /// `base_url` is the portal, e.g. `https://your-docspace.onlyoffice.com`.
    pub fn new(
        base_url: &str,
        api_key: SecretString,
        timeout: Duration,
    ) -> Result<Self, BadBaseUrl> {
        let api = JsonApi::new(
            Service::DocSpace,
            base_url,
            api_key,
            timeout,
            docspace_error_message,
        )?;
        Ok(DocSpaceClient { api })
    }

    /// A 429's `Retry-After` counts up to `max`.
    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.api = self.api.with_max_retry_after(max);
        self
    }

    /// The client the settings describe. One per process: see [`super::Upstreams`].
    pub fn from_settings(settings: &Settings) -> Result<Self, BadBaseUrl> {
        Ok(DocSpaceClient::new(
            &settings.docspace.base_url,
            settings.docspace.api_key.clone(),
            settings.request_timeout(),
        )?
        .with_max_retry_after(Duration::from_millis(settings.worker.backoff_max_ms)))
    }

    /// `GET /api/2.0/people/@self`: who the API key acts as.
    #[tracing::instrument(name = "docspace.self", skip_all, err(level = "debug", Display))]
    pub async fn self_profile(&self) -> Result<Profile, UpstreamError> {
        let url = self.api.url(&["api", "2.0", "people", "@self"]);
        let envelope: ProfileEnvelope = self.api.json("self", self.api.get(url)).await?;
        Ok(envelope.response)
    }

    /// `GET /api/2.0/people/email?email=`: whether DocSpace knows this email (active, disabled
    /// or with a pending invitation).
    #[tracing::instrument(name = "docspace.find_user", skip_all, err(level = "debug", Display))]
    pub async fn user_exists(&self, email: &str) -> Result<bool, UpstreamError> {
        let mut url = self.api.url(&["api", "2.0", "people", "email"]);
        url.query_pairs_mut().append_pair("email", email);
        self.api.found("find_user", self.api.get(url)).await
    }

    /// `POST /api/2.0/people/invite` for one email: a batch is not transactional, so one per request.
    #[tracing::instrument(name = "docspace.invite", skip_all, fields(invite_type = %invite_type), err(level = "debug", Display))]
    pub async fn invite(&self, email: &str, invite_type: InviteType) -> Result<(), UpstreamError> {
        let url = self.api.url(&["api", "2.0", "people", "invite"]);
        let body = InviteRequest {
            invitations: [Invitation {
                email,
                kind: invite_type.as_str(),
            }],
        };
        self.api
            .success("invite", self.api.post(url).json(&body))
            .await
    }
}

/// `{"error":{"message":"..."}}`, or a validation problem (RFC 7807) inside `response`.
fn docspace_error_message(body: &serde_json::Value) -> Option<String> {
    if let Some(message) = body.pointer("/error/message").and_then(|m| m.as_str()) {
        return Some(message.to_string());
    }
    let problem = body.get("response")?;
    let title = problem.get("title").and_then(|t| t.as_str());
    let details: Vec<String> = problem
        .get("errors")
        .and_then(|e| e.as_object())
        .map(|errors| {
            errors
                .iter()
                .map(|(field, messages)| format!("{field}: {messages}"))
                .collect()
        })
        .unwrap_or_default();
    match (title, details.is_empty()) {
        (Some(title), true) => Some(title.to_string()),
        (Some(title), false) => Some(format!("{title} ({})", details.join("; "))),
        (None, false) => Some(details.join("; ")),
        (None, true) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_from_both_shapes() {
        let plain =
            serde_json::json!({"error":{"message":"Incorrect email"},"status":1,"statusCode":400});
        assert_eq!(
            docspace_error_message(&plain).as_deref(),
            Some("Incorrect email")
        );
        let problem = serde_json::json!({"response":{"title":"One or more validation errors occurred.","errors":{"Invitations[0].Type":["bad"]}}});
        let text = docspace_error_message(&problem).unwrap();
        assert!(
            text.starts_with("One or more validation errors occurred."),
            "{text}"
        );
        assert!(text.contains("Invitations[0].Type"), "{text}");
        assert_eq!(docspace_error_message(&serde_json::json!({})), None);
    }

    #[test]
    fn debug_hides_the_api_key() {
        let client = DocSpaceClient::new(
            "https://x.onlyoffice.com",
            SecretString::from("sk-very-secret"),
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(!format!("{client:?}").contains("sk-very-secret"));
    }

    #[test]
    fn invite_body_has_the_wire_shape() {
        let body = InviteRequest {
            invitations: [Invitation {
                email: "a@b.c",
                kind: InviteType::User.as_str(),
            }],
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"invitations":[{"email":"a@b.c","type":"User"}]})
        );
    }
}
