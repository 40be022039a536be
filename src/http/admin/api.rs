//! `GET /admin/api/status` (design §9): the page's [`StatusReport`] as JSON, for scripts and
//! dashboards, with `Authorization: Bearer <admin.token>` only (a page session's cookie is not
//! accepted: scripts have no business holding one). Wrong bearer tokens spend the sign-in
//! throttle's budget, as wrong tokens at the form do.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::session::{is_admin_token, throttled_json};
use super::{Admin, PageQuery, gather};
use crate::http::AppState;
use crate::http::error::ApiError;

pub async fn status(
    State(app): State<AppState>,
    Admin(admin): Admin,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    if let Some(wait) = admin.throttle.refusal() {
        return Ok(throttled_json(wait));
    }
    let Some(given) = bearer(&headers) else {
        return Ok(unauthorized(
            "send the status page's token as `Authorization: Bearer <admin.token>`",
        ));
    };
    if !is_admin_token(given, &admin.token) {
        let spent = admin.throttle.wrong_token();
        tracing::warn!("wrong admin token ({spent} in the last minute)");
        return Ok(unauthorized("the bearer token is not admin.token"));
    }
    let filter = PageQuery::parse(query.as_deref()).job_filter()?;
    let report = gather(&app, &admin, filter).await?;
    Ok(Json(report).into_response())
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case, as RFC 9110
/// says); `None` for a missing header or another scheme.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(WWW_AUTHENTICATE, r#"Bearer realm="bridge-admin""#)],
        Json(json!({ "error": message })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn only_a_bearer_token_is_read() {
        assert_eq!(bearer(&with_authorization("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&with_authorization("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&with_authorization("Basic YWJjOmRlZg==")), None);
        assert_eq!(bearer(&with_authorization("Bearer ")), None);
        assert_eq!(bearer(&with_authorization("Bearer")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
