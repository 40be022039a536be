//! The operator's status page (issue 14, `docs/design/status-page.md` §1–§5, §7–§9): `GET /admin`
//! (sign-in form or the page), `POST /admin/sign-in`, `POST /admin/sign-out`,
//! `POST /admin/jobs/{id}/retry`, `GET /admin/api/status` (bearer token) and the page's static
//! assets. Exists only when `admin.token` is set: otherwise every one of these paths is the
//! router's ordinary `404`.
//!
//! A POST is checked in this order: Origin (`403`), session (back to the sign-in form), CSRF token
//! (`403`), then the action. Every answer carries [`security_headers`]. The routes share a
//! concurrency limit of their own ([`ADMIN_SLOTS`]), outside the webhooks' `request_slots`: a
//! webhook flood cannot lock the operator out, and the page cannot starve ingress.

mod api;
mod origin;
pub mod pages;
pub mod session;
mod throttle;

use std::sync::Arc;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, RawQuery, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, ORIGIN, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, middleware};
use axum_extra::extract::cookie::CookieJar;
use secrecy::SecretString;
use serde::Deserialize;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::{BoxError, ServiceBuilder};

use super::AppState;
use super::error::ApiError;
use crate::settings::Settings;
use crate::status::{StatusReport, StatusSources};
use crate::store::{JobStatus, RetryRequest, StoreResult, now_ms};
use crate::telemetry::metrics;
pub use origin::origin_allowed;
use pages::PageView;
use session::{CookiePolicy, Session};
use throttle::SignInThrottle;

/// Admin requests handled at once; more are answered `503` at once.
pub const ADMIN_SLOTS: usize = 16;
/// The largest form the page posts is a token or a CSRF token: anything bigger is not ours.
const MAX_FORM_BYTES: usize = 16 * 1024;

const CONTENT_SECURITY: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
     connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the admin routes share; `None` in [`AppState::admin`] when `admin.token` is unset.
#[derive(Debug)]
pub struct AdminState {
    /// `admin.token`.
    pub token: SecretString,
    /// `server.public_url` is https: the cookie is `Secure` and named `__Host-bridge-admin`.
    pub secure_cookie: bool,
    /// `server.public_url`'s origin (`scheme://host[:port]`), when set.
    pub own_origin: Option<String>,
    /// `access.revoke` on: the page shows the access lifecycle.
    pub revoke_on: bool,
    /// Wrong tokens spend it; once spent, sign-ins and API calls wait.
    pub throttle: SignInThrottle,
}

impl AdminState {
    /// The status page's state, or `None` when `admin.token` is unset (the page is off).
    pub fn from_settings(settings: &Settings) -> Option<AdminState> {
        let token = settings.admin.token()?.clone();
        let public_url = &settings.server.public_url;
        Some(AdminState {
            token,
            secure_cookie: public_url.starts_with("https://"),
            own_origin: origin::own_origin(public_url),
            revoke_on: settings.access.lifecycle().is_some(),
            throttle: SignInThrottle::default(),
        })
    }

    pub fn cookie(&self) -> CookiePolicy {
        CookiePolicy {
            secure: self.secure_cookie,
        }
    }
}

/// The admin routes (empty when the status page is off).
pub fn router(state: &AppState) -> Router<AppState> {
    if state.admin.is_none() {
        return Router::new();
    }
    Router::new()
        .route("/admin", get(page))
        .route("/admin/sign-in", post(session::sign_in))
        .route("/admin/sign-out", post(session::sign_out))
        .route("/admin/jobs/{id}/retry", post(retry))
        .route("/admin/api/status", get(api::status))
        .route("/admin/assets/admin.css", get(stylesheet))
        .route("/admin/assets/refresh.js", get(script))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: BoxError| async {
                    ApiError::Overloaded(
                        "too many status page requests at once; retry later".into(),
                    )
                }))
                .layer(LoadShedLayer::new())
                .layer(GlobalConcurrencyLimitLayer::new(ADMIN_SLOTS)),
        )
        .layer(middleware::map_response(security_headers))
}

/// The status page's state, for handlers: present whenever an admin route matched.
pub struct Admin(pub Arc<AdminState>);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        app.admin
            .clone()
            .map(Admin)
            .ok_or_else(|| ApiError::NotFound("no such endpoint".into()))
    }
}

/// On every admin answer: not cached (it shows the state of now, and to whoever is signed in),
/// not sniffed, not framed, no referrer outside, and a policy with no inline script or style.
/// Assets set their own `Cache-Control`.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY),
    );
    response
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/admin.css"))
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/refresh.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// `403` unless a POST comes from the page itself (see [`origin_allowed`]).
pub(crate) fn post_from_the_page(admin: &AdminState, headers: &HeaderMap) -> Result<(), ApiError> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if origin_allowed(header(ORIGIN), header(HOST), admin.own_origin.as_deref()) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "refused: this form was not sent by the status page (its Origin is not this service's)"
                .into(),
        ))
    }
}

/// The page's query: `?status=`, `?refresh=`, and the one-shot `?notice=&job=` of a redirect.
#[derive(Debug, Default)]
pub(crate) struct PageQuery {
    status: Option<String>,
    refresh: Option<String>,
    notice: Option<String>,
    job: Option<String>,
}

impl PageQuery {
    /// Parses leniently: unknown keys are ignored, the last of a repeated key wins.
    pub(crate) fn parse(query: Option<&str>) -> PageQuery {
        let mut parsed = PageQuery::default();
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let slot = match &*key {
                "status" => &mut parsed.status,
                "refresh" => &mut parsed.refresh,
                "notice" => &mut parsed.notice,
                "job" => &mut parsed.job,
                _ => continue,
            };
            *slot = Some(value.into_owned());
        }
        parsed
    }

    /// `?status=`: one of the four statuses, or none (`?status=` empty or `all`: none).
    pub(crate) fn job_filter(&self) -> Result<Option<JobStatus>, ApiError> {
        parse_filter(self.status.as_deref())
    }

    fn refresh_secs(&self) -> u32 {
        pages::refresh_secs(self.refresh.as_deref())
    }
}

fn parse_filter(status: Option<&str>) -> Result<Option<JobStatus>, ApiError> {
    match status.map(str::trim) {
        None | Some("" | "all") => Ok(None),
        Some(status) => status.parse().map(Some).map_err(|_| {
            ApiError::BadRequest(
                "status must be one of pending, running, done, failed (or all)".into(),
            )
        }),
    }
}

/// The report both renderings show.
pub(crate) async fn gather(
    app: &AppState,
    admin: &AdminState,
    job_filter: Option<JobStatus>,
) -> StoreResult<StatusReport> {
    StatusReport::gather(&StatusSources {
        store: &app.store,
        health: &app.health,
        rooms_mode: app.rooms_mode,
        revoke_on: admin.revoke_on,
        now: now_ms(),
        job_filter,
    })
    .await
}

/// `GET /admin`: the page for a signed-in operator, else the sign-in form (a stale cookie is
/// cleared on the way).
async fn page(
    State(app): State<AppState>,
    Admin(admin): Admin,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = PageQuery::parse(query.as_deref());
    let Some(session) = session::current(&app.store, &admin, &jar).await? else {
        let notice = Notice::from_code(query.notice.as_deref())
            .filter(|n| *n == Notice::SignedOut)
            .map(|_| SIGNED_OUT);
        let form = pages::sign_in(None, notice);
        return Ok(if jar.get(admin.cookie().name()).is_some() {
            (jar.add(admin.cookie().expired_cookie()), form).into_response()
        } else {
            form.into_response()
        });
    };
    let filter = query.job_filter()?;
    let report = gather(&app, &admin, filter).await?;
    let notice = notice_text(&app, &query).await?;
    Ok(pages::status(
        &report,
        &PageView {
            csrf: &session.csrf_token,
            notice,
            refresh_secs: query.refresh_secs(),
            filter,
        },
    )
    .into_response())
}

/// What a redirect's `?notice=` says. Codes, never text from the URL: a link cannot make the
/// page say something of its choosing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
enum Notice {
    Retried,
    NotFailed,
    NoSuchJob,
    SignedOut,
}

impl Notice {
    fn from_code(code: Option<&str>) -> Option<Notice> {
        code?.parse().ok()
    }

    fn code(self) -> &'static str {
        self.into()
    }
}

const SIGNED_OUT: &str = "Your session ended; sign in again.";

/// The notice in words. `not_failed` re-reads the job: the notice says what is true now.
async fn notice_text(app: &AppState, query: &PageQuery) -> StoreResult<Option<String>> {
    let Some(notice) = Notice::from_code(query.notice.as_deref()) else {
        return Ok(None);
    };
    let job = query.job.as_deref().and_then(|id| id.parse::<i64>().ok());
    Ok(match (notice, job) {
        (Notice::SignedOut, _) => Some(SIGNED_OUT.to_string()),
        (_, None) => None,
        (Notice::Retried, Some(id)) => Some(format!("Job {id} is due again; it runs in a moment.")),
        (Notice::NoSuchJob, Some(id)) => Some(format!("There is no job {id}.")),
        (Notice::NotFailed, Some(id)) => Some(match app.store.job(id).await? {
            Some(job) if job.status != JobStatus::Failed => {
                format!("Job {id} is {}, not failed: nothing to retry.", job.status)
            }
            Some(_) => {
                format!("Job {id} was not failed when Retry was pressed; it has failed since.")
            }
            None => format!("There is no job {id}."),
        }),
    })
}

/// The retry form: its CSRF token, and the page's filter and refresh period to go back to.
#[derive(Debug, Deserialize)]
struct RetryForm {
    #[serde(default)]
    csrf: String,
    status: Option<String>,
    refresh: Option<String>,
}

/// `POST /admin/jobs/{id}/retry`: the same statement as `jobs retry <id>`, then the worker is
/// woken so the job runs now rather than at its next poll. Post/redirect/get: the page shows the
/// job's stored state, the notice only what was asked.
async fn retry(
    State(app): State<AppState>,
    Admin(admin): Admin,
    headers: HeaderMap,
    jar: CookieJar,
    id: Result<Path<i64>, PathRejection>,
    form: Result<Form<RetryForm>, FormRejection>,
) -> Result<Response, ApiError> {
    post_from_the_page(&admin, &headers)?;
    let Some(session): Option<Session> = session::current(&app.store, &admin, &jar).await? else {
        return Ok(Redirect::to("/admin?notice=signed_out").into_response());
    };
    let form = form.ok().map(|Form(form)| form);
    session::check_csrf(form.as_ref().map(|f| f.csrf.as_str()), &session)?;
    let Path(id) = id.map_err(|_| ApiError::BadRequest("a job id is a whole number".into()))?;
    let notice = match app.store.retry_failed_job(id).await? {
        RetryRequest::Retried => {
            app.wake_worker.notify_one();
            metrics::admin_retry();
            tracing::info!(job = id, "job retried from the status page");
            Notice::Retried
        }
        RetryRequest::NotFailed(_) => Notice::NotFailed,
        RetryRequest::NoSuchJob => Notice::NoSuchJob,
    };
    let filter = form
        .as_ref()
        .and_then(|f| parse_filter(f.status.as_deref()).ok())
        .flatten();
    let refresh = pages::refresh_secs(form.as_ref().and_then(|f| f.refresh.as_deref()));
    let back = pages::page_url(filter, refresh);
    let separator = if back.contains('?') { '&' } else { '?' };
    Ok(Redirect::to(&format!(
        "{back}{separator}notice={}&job={id}#jobs",
        notice.code()
    ))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_are_fixed_codes() {
        for notice in [
            Notice::Retried,
            Notice::NotFailed,
            Notice::NoSuchJob,
            Notice::SignedOut,
        ] {
            assert_eq!(Notice::from_code(Some(notice.code())), Some(notice));
        }
        assert_eq!(Notice::from_code(Some("<b>hello</b>")), None);
        assert_eq!(Notice::from_code(Some("")), None);
        assert_eq!(Notice::from_code(None), None);
        assert_eq!(Notice::Retried.code(), "retried");
        assert_eq!(Notice::NotFailed.code(), "not_failed");
    }

    #[test]
    fn the_query_is_read_leniently() {
        let query = PageQuery::parse(Some("status=failed&refresh=1&x=y&notice=retried&job=42"));
        assert_eq!(query.job_filter().unwrap(), Some(JobStatus::Failed));
        assert_eq!(query.refresh_secs(), 1);
        assert_eq!(query.notice.as_deref(), Some("retried"));
        assert_eq!(query.job.as_deref(), Some("42"));
        assert_eq!(PageQuery::parse(None).job_filter().unwrap(), None);
        assert_eq!(
            PageQuery::parse(Some("status=all")).job_filter().unwrap(),
            None
        );
        let bad = PageQuery::parse(Some("status=everything")).job_filter();
        assert_eq!(
            bad.expect_err("refused").status(),
            axum::http::StatusCode::BAD_REQUEST
        );
    }
}
