//! The operator's status page (issue 14, `docs/design/status-page.md` §1–§5, §7–§9): `GET /admin`
//! (sign-in form or the page), `POST /admin/sign-in`, `POST /admin/sign-out`,
//! `POST /admin/jobs/{id}/retry`, `GET /admin/api/status` (bearer token) and the page's static
//! assets. Exists only when `admin.token` is set.

use secrecy::SecretString;

use super::AppState;

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
}

/// The admin routes (empty when the status page is off).
pub fn router(state: &AppState) -> axum::Router<AppState> {
    let _ = state;
    axum::Router::new()
}
