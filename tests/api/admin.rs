//! The status page over HTTP, without a browser (design §10 "HTTP without a browser"): which
//! routes exist, sign-in and its cookie, sessions, CSRF and Origin refusals, Retry, the throttle,
//! the JSON API, security headers, `server.admin_port`, and that no secret reaches the page.
//! reqwest here keeps no cookies and follows no redirects: each test reads `Set-Cookie` and
//! `Location` itself.

use asana_docspace_bridge::store::JobStatus;
use asana_docspace_fakes::Fault;
use reqwest::StatusCode;
use reqwest::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION, ORIGIN,
    RETRY_AFTER, SET_COOKIE, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS,
};
use rstest::rstest;
use serde_json::{Value, json};

use crate::helpers::{Backend, Bridge, Env, TestApp, job_with_status, settled_jobs};

/// `admin.token` in these tests: long, random-looking, and easy to search for.
const ADMIN_TOKEN: &str = "adm-7f3c9e1b5d2a4c6e8f0a1b3c5d7e9f1a3b5c7d9e";
const EVIL: &str = "https://evil.example";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn admin_env(backend: Backend) -> Option<Env> {
    let mut env = Env::on(backend).await?;
    env.set("BRIDGE__ADMIN__TOKEN", ADMIN_TOKEN);
    Some(env)
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A form POST from the page itself (its Origin is the bridge's), with `cookie` if given.
async fn post(
    bridge: &Bridge,
    path: &str,
    origin: Option<&str>,
    cookie: Option<&str>,
    body: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client()
        .post(bridge.url(path))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(body));
    if let Some(origin) = origin {
        request = request.header(ORIGIN, origin);
    }
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.expect("POST")
}

async fn get(bridge: &Bridge, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = client().get(bridge.url(path));
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.expect("GET")
}

async fn sign_in_with(bridge: &Bridge, token: &str) -> reqwest::Response {
    post(
        bridge,
        "/admin/sign-in",
        Some(&bridge.address),
        None,
        &[("token", token)],
    )
    .await
}

/// The `Set-Cookie` headers of `response`.
fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ASCII").to_string())
        .collect()
}

/// Signs in with the right token; returns `name=value` for a `Cookie` header.
async fn signed_in(bridge: &Bridge) -> String {
    let response = sign_in_with(bridge, ADMIN_TOKEN).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookies = set_cookies(&response);
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    cookies[0]
        .split(';')
        .next()
        .expect("name=value")
        .to_string()
}

/// The signed-in page's HTML.
async fn page(bridge: &Bridge, cookie: &str, query: &str) -> String {
    let response = get(bridge, &format!("/admin{query}"), Some(cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.expect("body")
}

/// The value of the first `name="csrf"` hidden field of `html`.
fn csrf_of(html: &str) -> String {
    let field = html
        .find(r#"name="csrf" value=""#)
        .expect("a csrf field in the page");
    let rest = &html[field + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').expect("closing quote")].to_string()
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .expect("Location")
        .to_str()
        .unwrap()
        .to_string()
}

/// One failed job: DocSpace refuses the invitation for good (402) once. Returns its id.
async fn failed_job(env: &Env, app: &TestApp) -> (i64, String) {
    env.assign("501", "601", "jane@example.com");
    env.docspace.push_fault(
        "invite",
        Fault::json(
            402,
            json!({"error": {"message": "The number of admins exceeds the limit"}}),
        ),
    );
    let secret = app.bridge.register("proj").await;
    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;
    let store = env.store().await;
    let job = job_with_status(&store, 1, JobStatus::Failed).await;
    store.close().await;
    (job.id, secret)
}

/// A retry that must not happen: what, Origin, Cookie, form, and the answer expected.
type Refusal<'a> = (
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Vec<(&'a str, &'a str)>,
    StatusCode,
);

fn assert_admin_headers(response: &reqwest::Response, what: &str) {
    let header = |name: reqwest::header::HeaderName| {
        response
            .headers()
            .get(&name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{what}: no {name}"))
    };
    let policy = header(CONTENT_SECURITY_POLICY);
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(
            policy.contains(directive),
            "{what}: {directive} in {policy}"
        );
    }
    assert!(!policy.contains("unsafe-inline"), "{what}: {policy}");
    assert_eq!(header(CACHE_CONTROL), "no-store", "{what}");
    assert_eq!(header(X_CONTENT_TYPE_OPTIONS), "nosniff", "{what}");
    assert_eq!(
        header(reqwest::header::REFERRER_POLICY),
        "same-origin",
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_there_is_no_status_page() {
    let Some(env) = Env::on(Backend::Sqlite).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let unknown = get(&app.bridge, "/no-such-path", None).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let unknown: Value = unknown.json().await.unwrap();
    for path in [
        "/admin",
        "/admin/api/status",
        "/admin/assets/admin.css",
        "/admin/assets/refresh.js",
    ] {
        let response = get(&app.bridge, path, None).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "GET {path}");
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            unknown,
            "GET {path}"
        );
    }
    for path in ["/admin/sign-in", "/admin/sign-out", "/admin/jobs/1/retry"] {
        let response = post(
            &app.bridge,
            path,
            Some(&app.bridge.address),
            None,
            &[("token", ADMIN_TOKEN)],
        )
        .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "POST {path}");
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            unknown,
            "POST {path}"
        );
    }
    let api = client()
        .get(app.bridge.url("/admin/api/status"))
        .header(AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::NOT_FOUND);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_form_and_the_assets_need_no_session() {
    let Some(env) = admin_env(Backend::Sqlite).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let form = get(&app.bridge, "/admin", None).await;
    assert_eq!(form.status(), StatusCode::OK);
    assert_admin_headers(&form, "the sign-in form");
    assert!(set_cookies(&form).is_empty());
    let html = form.text().await.unwrap();
    assert!(html.contains(r#"<form id="sign-in" method="post" action="/admin/sign-in">"#));
    assert!(html.contains(r#"type="password" name="token""#), "{html}");
    assert!(!html.contains(r#"id="status""#));
    assert!(!html.contains(ADMIN_TOKEN));

    for (path, content_type) in [
        ("/admin/assets/admin.css", "text/css"),
        ("/admin/assets/refresh.js", "text/javascript"),
    ] {
        let asset = get(&app.bridge, path, None).await;
        assert_eq!(asset.status(), StatusCode::OK, "{path}");
        let header = |name| asset.headers().get(name).unwrap().to_str().unwrap();
        assert!(header(CONTENT_TYPE).starts_with(content_type), "{path}");
        assert_eq!(header(CACHE_CONTROL), "public, max-age=3600", "{path}");
        assert!(header(CONTENT_SECURITY_POLICY).contains("default-src 'none'"));
    }
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_from_another_origin_or_without_one_are_refused_first() {
    let Some(env) = admin_env(Backend::Sqlite).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    for path in ["/admin/sign-in", "/admin/sign-out", "/admin/jobs/1/retry"] {
        for origin in [Some(EVIL), Some("null"), None] {
            let response = post(&app.bridge, path, origin, None, &[("token", ADMIN_TOKEN)]).await;
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "POST {path} with Origin {origin:?}"
            );
            assert!(set_cookies(&response).is_empty(), "{path}: no session");
            assert_admin_headers(&response, path);
            let body: Value = response.json().await.unwrap();
            assert!(body["error"].as_str().unwrap().contains("Origin"), "{body}");
        }
    }
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_shows_the_form_again_and_five_of_them_lock_the_door() {
    let Some(env) = admin_env(Backend::Sqlite).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let session = signed_in(&app.bridge).await;
    for attempt in 1..=4 {
        let wrong = sign_in_with(&app.bridge, "not-the-token-not-the-token-not-the").await;
        assert_eq!(
            wrong.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
        assert!(
            set_cookies(&wrong).is_empty(),
            "no session for a wrong token"
        );
        assert_admin_headers(&wrong, "the wrong-token form");
        let html = wrong.text().await.unwrap();
        assert!(html.contains("That token is not right."), "{html}");
        assert!(html.contains(r#"id="sign-in""#));
    }
    // The fifth wrong token, as a bearer token: it spends the same budget.
    let bearer = client()
        .get(app.bridge.url("/admin/api/status"))
        .header(AUTHORIZATION, "Bearer not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::UNAUTHORIZED);

    let right = sign_in_with(&app.bridge, ADMIN_TOKEN).await;
    assert_eq!(
        right.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "refused unchecked, or the throttle tells a guesser when they are right"
    );
    assert!(set_cookies(&right).is_empty());
    let wait: u64 = right.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&wait), "Retry-After {wait}");
    assert!(
        right
            .text()
            .await
            .unwrap()
            .contains("Too many wrong tokens")
    );
    let api = client()
        .get(app.bridge.url("/admin/api/status"))
        .header(AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(api.headers().contains_key(RETRY_AFTER));

    // The operator already signed in keeps working.
    assert!(
        page(&app.bridge, &session, "")
            .await
            .contains(r#"id="status""#)
    );
    let metrics = app.bridge.metrics().await;
    let sign_ins = |result: &str| {
        metrics
            .iter()
            .filter(|((name, labels), _)| {
                name == "bridge_admin_sign_ins_total"
                    && labels.get("result").map(String::as_str) == Some(result)
            })
            .map(|(_, value)| *value)
            .sum::<f64>()
    };
    assert!(sign_ins("wrong_token") >= 4.0);
    assert!(sign_ins("throttled") >= 1.0);
    assert!(sign_ins("ok") >= 1.0);
    app.stop().await.unwrap();
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_token_starts_a_session_in_a_strict_http_only_cookie(#[case] backend: Backend) {
    let Some(env) = admin_env(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let response = sign_in_with(&app.bridge, &format!("  {ADMIN_TOKEN}\n")).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/admin");
    assert_admin_headers(&response, "the sign-in redirect");
    let cookies = set_cookies(&response);
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let cookie = &cookies[0];
    assert!(cookie.starts_with("bridge-admin="), "{cookie}");
    let id = cookie["bridge-admin=".len()..].split(';').next().unwrap();
    assert_eq!(id.len(), 64, "32 random bytes, hex: {cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "public_url is not https: {cookie}"
    );

    // The id itself is not what the store keeps.
    let store = env.store().await;
    let session_cookie = format!("bridge-admin={id}");
    let html = page(&app.bridge, &session_cookie, "").await;
    assert!(html.contains(r#"<main id="status""#));
    assert!(!html.contains(id), "the session id is not in the page");
    store.close().await;
    let again = signed_in(&app.bridge).await;
    assert_ne!(again, session_cookie, "every sign-in gets a fresh id");
    app.stop().await.unwrap();

    let Some(mut env) = admin_env(backend).await else {
        return;
    };
    env.set("BRIDGE__SERVER__PUBLIC_URL", "https://bridge.example.com");
    let app = TestApp::spawn(&env).await;
    // The browser's Origin is the tunnel's, not public_url's: the Host rule accepts it.
    let response = sign_in_with(&app.bridge, ADMIN_TOKEN).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = &set_cookies(&response)[0];
    assert!(cookie.starts_with("__Host-bridge-admin="), "{cookie}");
    for attribute in [
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=28800",
    ] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    // public_url's own origin is accepted whatever the Host.
    let from_public = post(
        &app.bridge,
        "/admin/sign-in",
        Some("https://bridge.example.com"),
        None,
        &[("token", ADMIN_TOKEN)],
    )
    .await;
    assert_eq!(from_public.status(), StatusCode::SEE_OTHER);
    app.stop().await.unwrap();
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_when_tampered_expired_signed_out_or_the_token_changes(
    #[case] backend: Backend,
) {
    let Some(mut env) = admin_env(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let session = signed_in(&app.bridge).await;
    assert!(
        page(&app.bridge, &session, "")
            .await
            .contains(r#"id="status""#)
    );

    let mut tampered = session.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    for cookie in [
        tampered.as_str(),
        "bridge-admin=",
        "bridge-admin=zz",
        "other=1",
    ] {
        let html = page(&app.bridge, cookie, "").await;
        assert!(html.contains(r#"id="sign-in""#), "{cookie}: the form");
        assert!(!html.contains(r#"id="status""#), "{cookie}");
    }

    // Signed out: the row goes and the cookie expires.
    let csrf = csrf_of(&page(&app.bridge, &session, "").await);
    let out = post(
        &app.bridge,
        "/admin/sign-out",
        Some(&app.bridge.address),
        Some(&session),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&out), "/admin");
    let expired = &set_cookies(&out)[0];
    assert!(expired.contains("Max-Age=0"), "{expired}");
    assert!(
        page(&app.bridge, &session, "")
            .await
            .contains(r#"id="sign-in""#)
    );

    // Expired in the store.
    let aged = signed_in(&app.bridge).await;
    assert!(
        page(&app.bridge, &aged, "")
            .await
            .contains(r#"id="status""#)
    );
    env.execute_sql("UPDATE admin_sessions SET expires_at = 1")
        .await;
    assert!(
        page(&app.bridge, &aged, "")
            .await
            .contains(r#"id="sign-in""#)
    );

    // Another replica on the same store knows the session; a restart with the same token keeps
    // it; a new token ends it.
    let kept = signed_in(&app.bridge).await;
    let replica = TestApp::spawn(&env).await;
    assert!(
        page(&replica.bridge, &kept, "")
            .await
            .contains(r#"id="status""#)
    );
    replica.stop().await.unwrap();
    app.stop().await.unwrap();
    let app = TestApp::spawn(&env).await;
    assert!(
        page(&app.bridge, &kept, "")
            .await
            .contains(r#"id="status""#)
    );
    app.stop().await.unwrap();
    env.set(
        "BRIDGE__ADMIN__TOKEN",
        "adm-0000000000000000000000000000000000000000",
    );
    let app = TestApp::spawn(&env).await;
    assert!(
        page(&app.bridge, &kept, "")
            .await
            .contains(r#"id="sign-in""#)
    );
    app.stop().await.unwrap();
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_needs_the_origin_the_session_and_its_csrf_token_then_runs_at_once(
    #[case] backend: Backend,
) {
    let Some(mut env) = admin_env(backend).await else {
        return;
    };
    // Only a woken worker finishes the retried job within the test's wait.
    env.set("BRIDGE__WORKER__POLL_INTERVAL_MS", "60000");
    let app = TestApp::spawn(&env).await;
    let (job, _) = failed_job(&env, &app).await;
    let bridge = &app.bridge;
    let session = signed_in(bridge).await;
    let other_session = signed_in(bridge).await;
    let html = page(bridge, &session, "").await;
    let csrf = csrf_of(&html);
    let other_csrf = csrf_of(&page(bridge, &other_session, "").await);
    assert_ne!(csrf, other_csrf, "a token per session");
    assert!(html.contains(&format!(r#"action="/admin/jobs/{job}/retry""#)));

    let path = format!("/admin/jobs/{job}/retry");
    let own = Some(bridge.address.as_str());
    let wrong = "0".repeat(64);
    let refusals: [Refusal<'_>; 6] = [
        (
            "no csrf",
            own,
            Some(&session),
            vec![],
            StatusCode::FORBIDDEN,
        ),
        (
            "a wrong csrf",
            own,
            Some(&session),
            vec![("csrf", &wrong)],
            StatusCode::FORBIDDEN,
        ),
        (
            "another session's csrf",
            own,
            Some(&session),
            vec![("csrf", &other_csrf)],
            StatusCode::FORBIDDEN,
        ),
        (
            "another site's Origin",
            Some(EVIL),
            Some(&session),
            vec![("csrf", &csrf)],
            StatusCode::FORBIDDEN,
        ),
        (
            "no Origin",
            None,
            Some(&session),
            vec![("csrf", &csrf)],
            StatusCode::FORBIDDEN,
        ),
        (
            "no session",
            own,
            None,
            vec![("csrf", &csrf)],
            StatusCode::SEE_OTHER,
        ),
    ];
    let store = env.store().await;
    for (what, origin, cookie, body, status) in &refusals {
        let response = post(bridge, &path, *origin, *cookie, body).await;
        assert_eq!(response.status(), *status, "{what}");
        if *status == StatusCode::SEE_OTHER {
            assert_eq!(location(&response), "/admin?notice=signed_out", "{what}");
        }
        assert_eq!(
            store.job(job).await.unwrap().unwrap().status,
            JobStatus::Failed,
            "{what} left the job failed"
        );
    }

    let retried = post(bridge, &path, own, Some(&session), &[("csrf", &csrf)]).await;
    assert_eq!(retried.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&retried),
        format!("/admin?notice=retried&job={job}#jobs")
    );
    let done = job_with_status(&store, job, JobStatus::Done).await;
    assert_eq!(done.outcome.as_deref(), Some("invited"));
    assert_eq!(env.docspace.sent_invitations().len(), 1);
    let html = page(bridge, &session, &format!("?notice=retried&job={job}")).await;
    assert!(
        html.contains(&format!("Job {job} is due again; it runs in a moment.")),
        "{html}"
    );
    assert!(html.contains(&format!(r#"<tr id="job-{job}""#)));

    // Again: the job is done now, and the page says so from the store.
    let again = post(bridge, &path, own, Some(&session), &[("csrf", &csrf)]).await;
    assert_eq!(
        location(&again),
        format!("/admin?notice=not_failed&job={job}#jobs")
    );
    let html = page(bridge, &session, &format!("?notice=not_failed&job={job}")).await;
    assert!(
        html.contains(&format!("Job {job} is done, not failed: nothing to retry.")),
        "{html}"
    );
    let missing = post(
        bridge,
        "/admin/jobs/999999/retry",
        own,
        Some(&session),
        &[("csrf", &csrf), ("refresh", "1")],
    )
    .await;
    assert_eq!(
        location(&missing),
        "/admin?refresh=1&notice=no_such_job&job=999999#jobs"
    );
    let not_a_number = post(
        bridge,
        "/admin/jobs/forty-two/retry",
        own,
        Some(&session),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(not_a_number.status(), StatusCode::BAD_REQUEST);
    let retries = bridge
        .metrics()
        .await
        .iter()
        .filter(|((name, _), _)| name == "bridge_admin_retries_total")
        .map(|(_, value)| *value)
        .sum::<f64>();
    assert!(retries >= 1.0);
    store.close().await;
    app.stop().await.unwrap();
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_the_bearer_token_only(#[case] backend: Backend) {
    let Some(env) = admin_env(backend).await else {
        return;
    };
    let app = TestApp::spawn(&env).await;
    let (job, _) = failed_job(&env, &app).await;
    let session = signed_in(&app.bridge).await;
    let api = |authorization: Option<String>, cookie: Option<&str>| {
        let mut request = client().get(app.bridge.url("/admin/api/status"));
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie.to_string());
        }
        request.send()
    };
    for (what, authorization, cookie) in [
        ("no header", None, None),
        ("a page session", None, Some(session.as_str())),
        ("a wrong token", Some("Bearer wrong".to_string()), None),
        ("Basic", Some(format!("Basic {ADMIN_TOKEN}")), None),
    ] {
        let response = api(authorization, cookie).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            r#"Bearer realm="bridge-admin""#,
            "{what}"
        );
        assert_admin_headers(&response, what);
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{what}: {body}");
    }
    let response = api(Some(format!("Bearer {ADMIN_TOKEN}")), None)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_admin_headers(&response, "the API");
    let body: Value = response.json().await.unwrap();
    for key in [
        "api_version",
        "generated_at",
        "problems",
        "queue",
        "webhooks",
        "jobs",
        "rooms",
        "access",
    ] {
        assert!(body.get(key).is_some(), "{key} in {body}");
    }
    assert_eq!(body["api_version"], 1);
    assert_eq!(body["queue"]["failed"], 1);
    assert_eq!(body["jobs"][0]["id"], job);
    assert_eq!(body["jobs"][0]["status"], "failed");
    assert_eq!(body["webhooks"][0]["name"], "proj");
    let filtered: Value = client()
        .get(app.bridge.url("/admin/api/status?status=done"))
        .header(AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(filtered["jobs"], json!([]), "no job is done");
    let bad = client()
        .get(app.bridge.url("/admin/api/status?status=everything"))
        .header(AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    app.stop().await.unwrap();
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_page_or_the_api(#[case] backend: Backend) {
    let Some(mut env) = admin_env(backend).await else {
        return;
    };
    env.set("BRIDGE__ROOMS__MODE", "auto")
        .set("BRIDGE__ACCESS__REVOKE", "on");
    let app = TestApp::spawn(&env).await;
    env.assign("501", "601", "jane@example.com");
    let webhook_secret = app.bridge.register("proj").await;
    app.bridge
        .deliver_assignment("proj", &webhook_secret, "501", "601")
        .await;
    let store = env.store().await;
    assert_eq!(settled_jobs(&store).await.len(), 1);
    store.close().await;
    let session = signed_in(&app.bridge).await;
    let id = session.split_once('=').unwrap().1.to_string();
    let html = page(&app.bridge, &session, "").await;
    assert!(html.contains(r#"id="rooms-section""#), "rooms are on");
    assert!(html.contains(r#"id="access-section""#), "revocation is on");
    let json = client()
        .get(app.bridge.url("/admin/api/status"))
        .header(AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (what, secret) in [
        ("admin.token", ADMIN_TOKEN),
        ("asana.token", crate::helpers::ASANA_TOKEN),
        ("docspace.api_key", crate::helpers::DOCSPACE_KEY),
        ("the webhook secret", webhook_secret.as_str()),
        ("the session id", id.as_str()),
    ] {
        assert!(!html.contains(secret), "{what} in the page");
        assert!(!json.contains(secret), "{what} in the API");
    }
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_port_moves_the_page_off_the_main_port() {
    let Some(mut env) = admin_env(Backend::Sqlite).await else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    env.set("BRIDGE__SERVER__ADMIN_PORT", &port.to_string());
    let app = TestApp::spawn(&env).await;
    let admin = Bridge::at(&format!("http://127.0.0.1:{port}"));
    let form = get(&admin, "/admin", None).await;
    assert_eq!(form.status(), StatusCode::OK);
    assert_admin_headers(&form, "the form on the admin port");
    assert!(form.text().await.unwrap().contains(r#"id="sign-in""#));
    for path in ["/admin", "/admin/api/status", "/admin/assets/admin.css"] {
        assert_eq!(
            get(&app.bridge, path, None).await.status(),
            StatusCode::NOT_FOUND,
            "{path} on the main port"
        );
    }
    // Signing in through a tunnel to the admin port: Origin is the tunnel's address.
    let session = signed_in(&admin).await;
    assert!(page(&admin, &session, "").await.contains(r#"id="status""#));
    assert_eq!(
        get(&admin, "/metrics", None).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app.bridge, "/metrics", None).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        get(&app.bridge, "/healthz", None).await.status(),
        StatusCode::OK
    );
    let secret = app.bridge.register("proj").await;
    assert!(!secret.is_empty(), "webhooks still answer on the main port");
    app.stop().await.unwrap();
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_failed_jobs_first_with_their_error_and_a_retry_button(
    #[case] backend: Backend,
) {
    let Some(mut env) = admin_env(backend).await else {
        return;
    };
    // The worker runs what deliveries wake it for, and takes over no lapsed lease meanwhile.
    env.set("BRIDGE__WORKER__POLL_INTERVAL_MS", "60000");
    let app = TestApp::spawn(&env).await;
    let (failed, secret) = failed_job(&env, &app).await;
    env.assign("502", "602", "bob@example.com");
    app.bridge
        .deliver_assignment("proj", &secret, "502", "602")
        .await;
    let store = env.store().await;
    let done = job_with_status(&store, failed + 1, JobStatus::Done).await;
    store.close().await;
    let session = signed_in(&app.bridge).await;

    let html = page(&app.bridge, &session, "").await;
    let failed_row = html
        .find(&format!(r#"<tr id="job-{failed}""#))
        .expect("the failed job listed");
    let done_row = html
        .find(&format!(r#"<tr id="job-{}""#, done.id))
        .expect("the done job listed");
    assert!(failed_row < done_row, "failed first, though older");
    let failed_html = &html[failed_row..done_row];
    for needle in [
        r#"<td class="status"><span class="badge badge-failed">failed</span></td>"#,
        "jane@example.com",
        "admins exceeds the limit",
        &format!(r#"<form class="retry" method="post" action="/admin/jobs/{failed}/retry">"#),
        r#"<button type="submit">Retry</button>"#,
    ] {
        assert!(failed_html.contains(needle), "{needle} in {failed_html}");
    }
    let done_html = &html[done_row..];
    assert!(done_html.contains(r#"<td class="outcome">invited</td>"#));
    assert!(!done_html[..done_html.find("</tr>").unwrap()].contains("Retry"));
    assert!(html.contains(r#"<tr id="webhook-proj">"#), "the webhook");
    assert!(html.contains(r#"<main id="status" data-refresh-secs="15">"#));

    // The filter, the refresh period, and a running job whose lease lapsed.
    let only_done = page(&app.bridge, &session, "?status=done&refresh=1").await;
    assert!(!only_done.contains(&format!(r#"<tr id="job-{failed}""#)));
    assert!(only_done.contains(r#"data-refresh-secs="1""#));
    env.execute_sql(&format!(
        "UPDATE jobs SET status = 'running', lease_until = 1 WHERE id = {}",
        done.id
    ))
    .await;
    let lapsed = page(&app.bridge, &session, "").await;
    assert!(
        lapsed.contains("1 with a lapsed lease: taken over soon"),
        "{lapsed}"
    );
    app.stop().await.unwrap();
}
