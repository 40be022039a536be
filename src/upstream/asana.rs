//! Asana REST API client (`https://app.asana.com/api/1.0`), authenticated with a personal access token.

use std::time::Duration;

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{Service, UpstreamError, error_from_response, http_client};

#[derive(Clone)]
pub struct AsanaClient {
    http: reqwest::Client,
    base_url: Url,
    token: SecretString,
}

impl std::fmt::Debug for AsanaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsanaClient")
            .field("base_url", &self.base_url.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Task {
    pub gid: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub assignee: Option<Assignee>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Assignee {
    pub gid: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

impl AsanaClient {
    /// `base_url` is the API root, e.g. `https://app.asana.com/api/1.0`.
    pub fn new(
        base_url: &str,
        token: SecretString,
        timeout: Duration,
    ) -> Result<Self, url::ParseError> {
        Ok(AsanaClient {
            http: http_client(timeout),
            base_url: Url::parse(base_url.trim_end_matches('/'))?,
            token,
        })
    }

    /// `GET /tasks/{gid}` with the assignee's email: the current assignee, not the one an event named.
    #[tracing::instrument(name = "asana.get_task", skip(self), err(Display))]
    pub async fn get_task(&self, task_gid: &str) -> Result<Task, UpstreamError> {
        let mut url = self.url(&["tasks", task_gid]);
        url.query_pairs_mut()
            .append_pair("opt_fields", "assignee.email,assignee.name,name");
        self.get(url).await
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .expect("http(s) URLs have a path")
            .pop_if_empty()
            .extend(segments);
        url
    }

    async fn get<T: DeserializeOwned>(&self, url: Url) -> Result<T, UpstreamError> {
        let request = self.http.get(url).bearer_auth(self.token.expose_secret());
        self.send(request).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, UpstreamError> {
        let response = request
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| UpstreamError::transport(Service::Asana, e))?;
        if !response.status().is_success() {
            return Err(error_from_response(Service::Asana, response, asana_error_message).await);
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| UpstreamError::transport(Service::Asana, e))?;
        let envelope: Envelope<T> =
            serde_json::from_slice(&body).map_err(|e| UpstreamError::InvalidResponse {
                service: Service::Asana,
                message: e.to_string(),
            })?;
        Ok(envelope.data)
    }
}

/// `{"errors":[{"message":"...","help":"..."}]}` → the messages.
fn asana_error_message(body: &serde_json::Value) -> Option<String> {
    let messages: Vec<&str> = body
        .get("errors")?
        .as_array()?
        .iter()
        .filter_map(|e| e.get("message")?.as_str())
        .collect();
    (!messages.is_empty()).then(|| messages.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_joined() {
        let body = serde_json::json!({"errors":[{"message":"task: Not a recognized ID","help":"..."},{"message":"second"}]});
        assert_eq!(
            asana_error_message(&body).as_deref(),
            Some("task: Not a recognized ID; second")
        );
        assert_eq!(asana_error_message(&serde_json::json!({"errors":[]})), None);
    }

    #[test]
    fn urls_keep_the_api_prefix_and_escape_segments() {
        let client = AsanaClient::new(
            "https://app.asana.com/api/1.0/",
            SecretString::from("t"),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            client.url(&["tasks", "12/3"]).as_str(),
            "https://app.asana.com/api/1.0/tasks/12%2F3"
        );
    }

    #[test]
    fn debug_hides_the_token() {
        let client = AsanaClient::new(
            "https://app.asana.com/api/1.0",
            SecretString::from("1/secret-token"),
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(!format!("{client:?}").contains("secret-token"));
    }
}
