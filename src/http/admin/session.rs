//! Signing in and out of the status page (design §4): a correct `admin.token` starts a session
//! kept in the store (so every replica behind the balancer knows it, and a restart keeps it),
//! named by a random id in an `HttpOnly`, `SameSite=Strict` cookie. The store holds only
//! SHA-256(token ‖ 0x00 ‖ id): a reader of the database cannot forge a cookie, and a new token
//! ends every session. Sessions last [`SESSION_LIFETIME`], with no renewal.

use std::time::Duration;

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::throttle::retry_after_secs;
use super::{Admin, AdminState, pages, post_from_the_page};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::{Store, StoreResult, now_ms};
use crate::telemetry::metrics::{self, SignInResult};

/// How long a session lasts from its sign-in: a working day, so a stolen cookie dies the same day.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);

/// How the session cookie is set: `Secure`, and `__Host-` prefixed (no subdomain can plant one),
/// when `server.public_url` is https.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookiePolicy {
    pub secure: bool,
}

impl CookiePolicy {
    pub fn name(self) -> &'static str {
        if self.secure {
            "__Host-bridge-admin"
        } else {
            "bridge-admin"
        }
    }

    /// The cookie naming session `id`.
    pub fn session_cookie(self, id: String) -> Cookie<'static> {
        self.cookie(id, SESSION_LIFETIME)
    }

    /// The same cookie, expired: the browser forgets it.
    pub fn expired_cookie(self) -> Cookie<'static> {
        self.cookie(String::new(), Duration::ZERO)
    }

    fn cookie(self, value: String, max_age: Duration) -> Cookie<'static> {
        Cookie::build((self.name(), value))
            .http_only(true)
            .same_site(SameSite::Strict)
            .path("/")
            .secure(self.secure)
            .max_age(cookie::time::Duration::seconds(
                i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
            ))
            .build()
    }
}

/// 32 random bytes from the OS-seeded generator, hex: a session id or a CSRF token.
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// What the store keeps for session `id`: hex SHA-256(token ‖ 0x00 ‖ id).
pub fn id_hash(token: &SecretString, id: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(configured(token).as_bytes());
    hash.update([0u8]);
    hash.update(id.as_bytes());
    hex::encode(hash.finalize())
}

/// `given` equals `expected`, in time that does not depend on where they differ or on their
/// lengths (both are hashed first).
pub fn same_secret(given: &str, expected: &str) -> bool {
    Sha256::digest(given.as_bytes())
        .ct_eq(&Sha256::digest(expected.as_bytes()))
        .into()
}

/// `given` is `admin.token` (surrounding blanks ignored on both sides, as the settings check does).
pub fn is_admin_token(given: &str, token: &SecretString) -> bool {
    same_secret(given.trim(), configured(token))
}

fn configured(token: &SecretString) -> &str {
    token.expose_secret().trim()
}

/// The signed-in session a request's cookie names.
#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: String,
    pub csrf_token: String,
}

/// The live session named by the request's cookie, if any. A tampered, expired or ended id, or
/// one issued under another token, is none.
pub async fn current(
    store: &Store,
    admin: &AdminState,
    jar: &CookieJar,
) -> StoreResult<Option<Session>> {
    let Some(id) = jar.get(admin.cookie().name()).map(Cookie::value) else {
        return Ok(None);
    };
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let id_hash = id_hash(&admin.token, id);
    Ok(store
        .admin_session(&id_hash, now_ms())
        .await?
        .map(|session| Session {
            id_hash,
            csrf_token: session.csrf_token,
        }))
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    token: String,
}

/// `POST /admin/sign-in`: Origin → throttle → token. Right: a fresh session (never the id the
/// browser came with) and `303 /admin`; wrong: `401` and the form again.
pub async fn sign_in(
    State(app): State<AppState>,
    Admin(admin): Admin,
    headers: HeaderMap,
    jar: CookieJar,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Result<Response, ApiError> {
    post_from_the_page(&admin, &headers)?;
    if let Some(wait) = admin.throttle.refusal() {
        metrics::admin_sign_in(SignInResult::Throttled);
        return Ok(throttled_form(wait));
    }
    let Form(form) = form.map_err(|rejection| {
        ApiError::BadRequest(format!(
            "the sign-in form could not be read: {}",
            rejection.body_text()
        ))
    })?;
    if !is_admin_token(&form.token, &admin.token) {
        let spent = admin.throttle.wrong_token();
        tracing::warn!("wrong admin token ({spent} in the last minute)");
        metrics::admin_sign_in(SignInResult::WrongToken);
        return Ok((
            StatusCode::UNAUTHORIZED,
            pages::sign_in(Some(pages::WRONG_TOKEN), None),
        )
            .into_response());
    }
    let id = random_token();
    let now = now_ms();
    let lifetime_ms = i64::try_from(SESSION_LIFETIME.as_millis()).unwrap_or(i64::MAX);
    app.store
        .create_admin_session(
            &id_hash(&admin.token, &id),
            &random_token(),
            now,
            now + lifetime_ms,
        )
        .await?;
    metrics::admin_sign_in(SignInResult::Ok);
    tracing::info!("an operator signed in to the status page");
    Ok((
        jar.add(admin.cookie().session_cookie(id)),
        Redirect::to("/admin"),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /admin/sign-out`: Origin → session → CSRF; the session's row goes, the cookie expires.
pub async fn sign_out(
    State(app): State<AppState>,
    Admin(admin): Admin,
    headers: HeaderMap,
    jar: CookieJar,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, ApiError> {
    post_from_the_page(&admin, &headers)?;
    let Some(session) = current(&app.store, &admin, &jar).await? else {
        return Ok((
            jar.add(admin.cookie().expired_cookie()),
            Redirect::to("/admin"),
        )
            .into_response());
    };
    check_csrf(form.as_ref().ok().map(|Form(f)| f.csrf.as_str()), &session)?;
    app.store.end_admin_session(&session.id_hash).await?;
    Ok((
        jar.add(admin.cookie().expired_cookie()),
        Redirect::to("/admin"),
    )
        .into_response())
}

/// The form's `csrf` field is this session's token.
pub fn check_csrf(given: Option<&str>, session: &Session) -> Result<(), ApiError> {
    match given {
        Some(given) if !given.is_empty() && same_secret(given, &session.csrf_token) => Ok(()),
        _ => Err(ApiError::Forbidden(
            "the form's CSRF token is missing or not this session's; reload the status page and try again"
                .into(),
        )),
    }
}

/// The sign-in form while wrong tokens are being refused: `429` and when to come back.
fn throttled_form(wait: Duration) -> Response {
    let secs = retry_after_secs(wait);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(RETRY_AFTER, secs.to_string())],
        pages::sign_in(Some(&throttled_message(secs)), None),
    )
        .into_response()
}

/// `429` for the JSON API.
pub fn throttled_json(wait: Duration) -> Response {
    let secs = retry_after_secs(wait);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(RETRY_AFTER, secs.to_string())],
        Json(json!({ "error": throttled_message(secs) })),
    )
        .into_response()
}

fn throttled_message(secs: u64) -> String {
    format!("Too many wrong tokens; try again in {secs} s.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_only_over_https() {
        let plain = CookiePolicy { secure: false }
            .session_cookie("ab".repeat(32))
            .to_string();
        assert!(
            plain.starts_with(&format!("bridge-admin={}", "ab".repeat(32))),
            "{plain}"
        );
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
            assert!(plain.contains(attribute), "{attribute} in {plain}");
        }
        assert!(!plain.contains("Secure"), "{plain}");

        let tls = CookiePolicy { secure: true }
            .session_cookie("cd".repeat(32))
            .to_string();
        assert!(tls.starts_with("__Host-bridge-admin="), "{tls}");
        for attribute in [
            "Secure",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=28800",
        ] {
            assert!(tls.contains(attribute), "{attribute} in {tls}");
        }
        assert!(
            !tls.contains("Domain"),
            "__Host- cookies carry no Domain: {tls}"
        );

        let expired = CookiePolicy { secure: true }.expired_cookie().to_string();
        assert!(
            expired.contains("Max-Age=0") && expired.contains("Secure"),
            "{expired}"
        );
    }

    #[test]
    fn the_stored_hash_depends_on_the_token_and_the_id() {
        let token = SecretString::from("0123456789abcdef0123456789abcdef");
        let other = SecretString::from("fedcba9876543210fedcba9876543210");
        let id = random_token();
        assert_eq!(id.len(), 64);
        assert_ne!(id, random_token(), "ids are random");
        let hash = id_hash(&token, &id);
        assert_eq!(hash.len(), 64);
        assert_ne!(hash, id, "the id itself is never stored");
        assert_eq!(hash, id_hash(&token, &id));
        assert_ne!(hash, id_hash(&other, &id), "a new token ends every session");
        assert_ne!(hash, id_hash(&token, &random_token()));
    }

    #[test]
    fn tokens_are_compared_whole() {
        let token = SecretString::from("0123456789abcdef0123456789abcdef");
        assert!(is_admin_token("0123456789abcdef0123456789abcdef", &token));
        assert!(is_admin_token(
            " 0123456789abcdef0123456789abcdef\n",
            &token
        ));
        assert!(!is_admin_token("0123456789abcdef0123456789abcde", &token));
        assert!(!is_admin_token("0123456789abcdef0123456789abcdef0", &token));
        assert!(!is_admin_token("", &token));
        assert!(same_secret("a", "a"));
        assert!(!same_secret("a", "b"));
    }

    #[test]
    fn a_form_without_this_sessions_token_is_refused() {
        let session = Session {
            id_hash: "h".into(),
            csrf_token: "c".repeat(64),
        };
        assert!(check_csrf(Some(&"c".repeat(64)), &session).is_ok());
        for given in [None, Some(""), Some("c"), Some(&*"d".repeat(64))] {
            let refused = check_csrf(given, &session).expect_err("refused");
            assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{given:?}");
        }
    }
}
