//! ONLYOFFICE DocSpace API client (`/api/2.0`), authenticated with an API key (`sk-...`).

use std::time::Duration;

use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{
    DEFAULT_MAX_RETRY_AFTER, Service, UpstreamError, error_from_response, http_client, read_body,
    send_observed,
};
use crate::settings::{InviteType, Settings};

/// `Debug` shows no credential: the token is a `SecretString`.
#[derive(Clone, Debug)]
pub struct DocSpaceClient {
    http: reqwest::Client,
    base_url: Url,
    api_key: SecretString,
    max_retry_after: Duration,
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
    ) -> Result<Self, url::ParseError> {
        Ok(DocSpaceClient {
            http: http_client(timeout),
            base_url: Url::parse(base_url.trim_end_matches('/'))?,
            api_key,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        })
    }

    /// A 429's `Retry-After` counts up to `max`.
    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    pub fn from_settings(settings: &Settings) -> Result<Self, url::ParseError> {
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
        let response = self
            .send(
                "self",
                self.http.get(self.url(&["api", "2.0", "people", "@self"])),
            )
            .await?;
        if !response.status().is_success() {
            return Err(self.error_from(response).await);
        }
        let body = read_body(Service::DocSpace, response).await?;
        let envelope: ProfileEnvelope =
            serde_json::from_slice(&body).map_err(|e| UpstreamError::InvalidResponse {
                service: Service::DocSpace,
                message: e.to_string(),
            })?;
        Ok(envelope.response)
    }

    /// `GET /api/2.0/people/email?email=`: whether DocSpace knows this email (active, disabled
    /// or with a pending invitation).
    #[tracing::instrument(name = "docspace.find_user", skip_all, err(level = "debug", Display))]
    pub async fn user_exists(&self, email: &str) -> Result<bool, UpstreamError> {
        let mut url = self.url(&["api", "2.0", "people", "email"]);
        url.query_pairs_mut().append_pair("email", email);
        let response = self.send("find_user", self.http.get(url)).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(false),
            status if status.is_success() => Ok(true),
            _ => Err(self.error_from(response).await),
        }
    }

    /// `POST /api/2.0/people/invite` for one email: a batch is not transactional, so one per request.
    #[tracing::instrument(name = "docspace.invite", skip_all, fields(invite_type = %invite_type), err(level = "debug", Display))]
    pub async fn invite(&self, email: &str, invite_type: InviteType) -> Result<(), UpstreamError> {
        let url = self.url(&["api", "2.0", "people", "invite"]);
        let body = InviteRequest {
            invitations: [Invitation {
                email,
                kind: invite_type.as_str(),
            }],
        };
        let response = self.send("invite", self.http.post(url).json(&body)).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(self.error_from(response).await)
        }
    }

    async fn error_from(&self, response: reqwest::Response) -> UpstreamError {
        error_from_response(
            Service::DocSpace,
            response,
            docspace_error_message,
            self.max_retry_after,
        )
        .await
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .expect("http(s) URLs have a path")
            .pop_if_empty()
            .extend(segments);
        url
    }

    async fn send(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, UpstreamError> {
        let request = request
            .bearer_auth(self.api_key.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json");
        send_observed(Service::DocSpace, operation, request).await
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
