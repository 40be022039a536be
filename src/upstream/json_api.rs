//! The HTTP and JSON plumbing under both upstream clients: paths joined onto the base URL, the
//! bearer credential, a timeout on every request, pacing, a size cap on every body, decoding a
//! success into a typed answer, and turning any other answer into an [`UpstreamError`] (with the
//! upstream's own explanation, and its `Retry-After` honoured up to a cap). The clients themselves
//! name their endpoints and answer types only.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{ACCEPT, HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::pacing::RequestPacer;
use super::{BadBaseUrl, Service, UpstreamError};
use crate::telemetry::metrics;

/// The largest body read from an upstream: every answer we ask for is a few KiB.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// The longest `Retry-After` a client honours unless told otherwise (`worker.backoff_max_ms`'s default).
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Pulls an upstream's own explanation out of its JSON error body.
pub(crate) type ErrorMessage = fn(&serde_json::Value) -> Option<String>;

/// One upstream JSON API. `Debug` shows no credential: it is a `SecretString`.
#[derive(Clone, Debug)]
pub(crate) struct JsonApi {
    service: Service,
    http: reqwest::Client,
    base_url: Url,
    credential: SecretString,
    error_message: ErrorMessage,
    max_retry_after: Duration,
    /// Shared by every clone; `None` sends unpaced.
    pacer: Option<Arc<RequestPacer>>,
    /// Waited for before `pacer`: a smaller share of the same budget (reconcile passes).
    extra_pacer: Option<Arc<RequestPacer>>,
}

impl JsonApi {
    /// `base_url` is the API root (a trailing `/` is ignored); every request times out after `timeout`.
    pub fn new(
        service: Service,
        base_url: &str,
        credential: SecretString,
        timeout: Duration,
        error_message: ErrorMessage,
    ) -> Result<JsonApi, BadBaseUrl> {
        let base_url =
            Url::parse(base_url.trim_end_matches('/')).map_err(|problem| BadBaseUrl {
                setting: service.base_url_setting(),
                problem,
            })?;
        Ok(JsonApi {
            service,
            http: http_client(timeout),
            base_url,
            credential,
            error_message,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            pacer: None,
            extra_pacer: None,
        })
    }

    /// A 429's `Retry-After` (for the caller, and for the pause of every paced request) counts up to `max`.
    pub fn with_max_retry_after(mut self, max: Duration) -> JsonApi {
        self.max_retry_after = max;
        self
    }

    /// Every request waits for `pacer`, and a 429 pauses it.
    pub fn with_pacer(mut self, pacer: RequestPacer) -> JsonApi {
        self.pacer = Some(Arc::new(pacer));
        self
    }

    /// A clone whose requests first wait for `pacer`, then for the shared one (whose 429
    /// pauses hold them too).
    pub fn with_extra_pacer(&self, pacer: RequestPacer) -> JsonApi {
        let mut api = self.clone();
        api.extra_pacer = Some(Arc::new(pacer));
        api
    }

    /// The shared pacer's rate; `None` when requests go out unpaced.
    pub fn requests_per_minute(&self) -> Option<u32> {
        self.pacer.as_ref().map(|p| p.requests_per_minute())
    }

    /// The base URL with `segments` appended, each escaped.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .expect("http(s) URLs have a path")
            .pop_if_empty()
            .extend(segments);
        url
    }

    pub fn get(&self, url: Url) -> RequestBuilder {
        self.http.get(url)
    }

    pub fn post(&self, url: Url) -> RequestBuilder {
        self.http.post(url)
    }

    pub fn put(&self, url: Url) -> RequestBuilder {
        self.http.put(url)
    }

    pub fn delete(&self, url: Url) -> RequestBuilder {
        self.http.delete(url)
    }

    /// Sends `request` and decodes a successful answer's body as `T`.
    pub async fn json<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        request: RequestBuilder,
    ) -> Result<T, UpstreamError> {
        let response = self.send(operation, request).await?;
        if !response.status().is_success() {
            return Err(self.error_from(response).await);
        }
        let body = read_body(self.service, response).await?;
        serde_json::from_slice(&body).map_err(|e| UpstreamError::InvalidResponse {
            service: self.service,
            message: e.to_string(),
        })
    }

    /// Sends `request` and decodes a successful answer's body as `T`; a 404 is `None`.
    pub async fn json_or_not_found<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        request: RequestBuilder,
    ) -> Result<Option<T>, UpstreamError> {
        let response = self.send(operation, request).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => {
                let body = read_body(self.service, response).await?;
                serde_json::from_slice(&body).map(Some).map_err(|e| {
                    UpstreamError::InvalidResponse {
                        service: self.service,
                        message: e.to_string(),
                    }
                })
            }
            _ => Err(self.error_from(response).await),
        }
    }

    /// Sends `request` and expects a success; its body is not read.
    pub async fn success(
        &self,
        operation: &'static str,
        request: RequestBuilder,
    ) -> Result<(), UpstreamError> {
        let response = self.send(operation, request).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(self.error_from(response).await)
        }
    }

    /// Sends with the credential once the pacer allows, counting and timing it for the metrics.
    async fn send(
        &self,
        operation: &'static str,
        request: RequestBuilder,
    ) -> Result<Response, UpstreamError> {
        let request = request
            .bearer_auth(self.credential.expose_secret())
            .header(ACCEPT, "application/json");
        self.pace().await;
        let started = Instant::now();
        let result = request.send().await;
        let status = match &result {
            Ok(response) => response.status().as_str().to_string(),
            Err(err) if err.is_timeout() => "timeout".to_string(),
            Err(_) => "error".to_string(),
        };
        metrics::upstream(self.service.as_str(), operation, &status, started.elapsed());
        result.map_err(|e| UpstreamError::transport(self.service, e))
    }

    /// Waits for this clone's own share first, then for the pacer every clone shares.
    async fn pace(&self) {
        if let Some(pacer) = &self.extra_pacer {
            pacer.wait().await;
        }
        if let Some(pacer) = &self.pacer {
            pacer.wait().await;
        }
    }

    /// The error a non-success answer means; one that asks to wait pauses every paced request.
    async fn error_from(&self, response: Response) -> UpstreamError {
        let error = error_from_response(
            self.service,
            response,
            self.error_message,
            self.max_retry_after,
        )
        .await;
        if let (Some(pacer), Some(wait)) = (&self.pacer, error.retry_after()) {
            pacer.pause_for(wait);
        }
        error
    }
}

/// A `reqwest::Client` whose every request times out.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("asana-docspace-bridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the TLS backend initialises")
}

/// Reads `Retry-After` as whole or fractional seconds or an HTTP date, and waits at most `max`:
/// an upstream does not get to park us for longer than our own backoff would.
pub fn parse_retry_after(headers: &HeaderMap, max: Duration) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else if let Ok(seconds) = value.parse::<f64>()
        && seconds >= 0.0
    {
        // Infinite or beyond `Duration`: as long as it gets.
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
    } else {
        let when = httpdate::parse_http_date(value).ok()?;
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    };
    Some(wait.min(max))
}

/// Reads a whole body of at most [`MAX_RESPONSE_BYTES`], chunk by chunk: a larger one (declared,
/// or found while counting) is read no further.
async fn read_body(service: Service, mut response: Response) -> Result<Vec<u8>, UpstreamError> {
    let declared = response.content_length().unwrap_or(0);
    if declared > MAX_RESPONSE_BYTES as u64 {
        return Err(UpstreamError::TooLarge { service });
    }
    let mut body = Vec::with_capacity(declared as usize);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| UpstreamError::transport(service, e))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(UpstreamError::TooLarge { service });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Turns a non-success response into an error, using `extract_message` to pull the upstream's
/// own explanation out of its JSON error body; a 429's `Retry-After` counts up to `max_retry_after`.
async fn error_from_response(
    service: Service,
    response: Response,
    extract_message: ErrorMessage,
    max_retry_after: Duration,
) -> UpstreamError {
    let status = response.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return UpstreamError::RateLimited {
            service,
            retry_after: parse_retry_after(response.headers(), max_retry_after),
        };
    }
    let body = match read_body(service, response).await {
        Ok(body) => body,
        Err(too_large @ UpstreamError::TooLarge { .. }) => return too_large,
        Err(_) => Vec::new(),
    };
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| extract_message(&v))
        .unwrap_or_else(|| describe_body(status, &body));
    UpstreamError::Status {
        service,
        status: status.as_u16(),
        message,
    }
}

/// A short, printable summary of a body that carried no readable error (HTML from a proxy, say).
fn describe_body(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let looks_html = text.trim_start().starts_with('<');
    let reason = status.canonical_reason().unwrap_or("error").to_string();
    if body.is_empty() {
        reason
    } else if looks_html {
        format!("{reason} (HTML page)")
    } else {
        let snippet: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
        format!("{reason}: {snippet}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use reqwest::header::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        h
    }

    const CAP: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn a_share_waits_for_its_own_limit_and_for_a_pause_of_the_shared_pacer() {
        let api = JsonApi::new(
            Service::Asana,
            "http://127.0.0.1:9",
            SecretString::from("token"),
            Duration::from_secs(1),
            |_| None,
        )
        .unwrap()
        .with_pacer(RequestPacer::per_minute(60_000));
        let share = api.with_extra_pacer(RequestPacer::per_minute(60_000));
        assert_eq!(share.requests_per_minute(), Some(60_000));
        api.pacer
            .as_ref()
            .unwrap()
            .pause_for(Duration::from_millis(300));
        let started = Instant::now();
        share.pace().await;
        assert!(
            started.elapsed() >= Duration::from_millis(290),
            "held by the pause"
        );
        // Its own limit: 120 a minute is a burst of 2, then one every 500 ms.
        let slow = api.with_extra_pacer(RequestPacer::per_minute(120));
        let started = Instant::now();
        for _ in 0..3 {
            slow.pace().await;
        }
        assert!(
            started.elapsed() >= Duration::from_millis(450),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        let parse = |value: &str| parse_retry_after(&headers(value), CAP);
        assert_eq!(parse("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse("1.5"), Some(Duration::from_millis(1500)));
        let later = SystemTime::now() + Duration::from_secs(20);
        let parsed = parse(&httpdate::fmt_http_date(later)).unwrap();
        assert!(parsed > Duration::from_secs(10) && parsed <= Duration::from_secs(20));
        assert_eq!(parse("Thu, 01 Jan 1970 00:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse("soon"), None);
        assert_eq!(parse("-1"), None);
        assert_eq!(parse("NaN"), None);
        assert_eq!(parse_retry_after(&HeaderMap::new(), CAP), None);
    }

    #[test]
    fn retry_after_waits_at_most_the_cap() {
        for value in [
            "61",
            "18446744073709551615",
            "18446744073709551616",
            "1e300",
            "inf",
            "86400.5",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            assert_eq!(
                parse_retry_after(&headers(value), CAP),
                Some(CAP),
                "{value}"
            );
        }
    }

    /// Seconds, fractions, dates and plain noise.
    fn retry_after_values() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            any::<u64>().prop_map(|n| n.to_string().into_bytes()),
            any::<f64>().prop_map(|x| x.to_string().into_bytes()),
            "[0-9]{1,40}(\\.[0-9]{0,20})?([eE][+-]?[0-9]{1,4})?".prop_map(String::into_bytes),
            any::<u64>().prop_map(|secs| {
                let when =
                    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs % 253_402_300_800));
                httpdate::fmt_http_date(when.unwrap_or(SystemTime::UNIX_EPOCH)).into_bytes()
            }),
            proptest::collection::vec(any::<u8>(), 0..64),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn any_retry_after_never_panics_and_waits_at_most_the_cap(
            value in retry_after_values(),
            cap_ms in 0u64..=u64::MAX,
        ) {
            // Bytes no header may carry (CR, LF, NUL...) never reach the parser.
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                let mut map = HeaderMap::new();
                map.insert(RETRY_AFTER, value);
                let cap = Duration::from_millis(cap_ms);
                if let Some(wait) = parse_retry_after(&map, cap) {
                    prop_assert!(wait <= cap);
                }
            }
        }
    }

    #[test]
    fn html_bodies_are_summarised() {
        let text = describe_body(StatusCode::BAD_GATEWAY, b"<html><body>nginx</body></html>");
        assert_eq!(text, "Bad Gateway (HTML page)");
        assert_eq!(describe_body(StatusCode::UNAUTHORIZED, b""), "Unauthorized");
    }

    fn api(base_url: &str) -> JsonApi {
        JsonApi::new(
            Service::Asana,
            base_url,
            SecretString::from("1/secret-token"),
            Duration::from_secs(1),
            |_| None,
        )
        .unwrap()
    }

    #[test]
    fn urls_keep_the_api_prefix_and_escape_segments() {
        assert_eq!(
            api("https://app.asana.com/api/1.0/")
                .url(&["tasks", "12/3"])
                .as_str(),
            "https://app.asana.com/api/1.0/tasks/12%2F3"
        );
    }

    #[test]
    fn debug_hides_the_credential() {
        assert!(!format!("{:?}", api("https://app.asana.com/api/1.0")).contains("secret-token"));
    }

    #[test]
    fn a_base_url_that_does_not_parse_names_its_setting() {
        let err = JsonApi::new(
            Service::DocSpace,
            "portal.example.com",
            SecretString::from("sk"),
            Duration::from_secs(1),
            |_| None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "docspace.base_url is not a URL: relative URL without a base"
        );
    }
}
