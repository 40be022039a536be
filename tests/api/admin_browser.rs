//! The status page in a real browser (Debian's Chromium through chromedriver, design §10): signing
//! in with a wrong and a right token, seeing the webhook and a failed job, retrying it, signing out,
//! with JavaScript and without. SQLite only: the store's side is covered by `status_store.rs`.
//! Screenshots go to `target/admin-screenshots/` (with the page source too when a test fails).

use std::future::Future;
use std::time::Duration;

use asana_docspace_bridge::store::JobStatus;
use asana_docspace_fakes::{Fault, Gate, assignment_delivery};
use fantoccini::{Client, Locator};
use serde_json::json;

use crate::helpers::{
    ADMIN_TOKEN, Backend, ChromeDriver, Env, PROJECT, TestApp, WAIT, job_with_status,
    screenshots_dir, settled_jobs, sign_in, submit_token,
};

const WEBHOOK: &str = "website";
const PROJECT_NAME: &str = "Website relaunch";
const TASK: &str = "501";
const USER: &str = "601";
const EMAIL: &str = "jane@example.com";

/// How long the refresh script may take to show a change (its period is 1 s in these tests; the
/// default 15 s would fit too).
const REFRESHED: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_sees_a_failed_job_and_retries_it() {
    in_browser("with-js", true, |browser| async move {
        let (env, app, job) = one_failed_job().await;

        // (1) The form, before any session.
        browser
            .goto(&app.bridge.url("/admin?refresh=1"))
            .await
            .expect("open /admin");
        browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(
                "form#sign-in input[type=password][name=token]",
            ))
            .await
            .expect("the sign-in form");
        assert!(
            !present(&browser, "main#status").await,
            "no page without a session"
        );
        shoot(&browser, "01-sign-in").await;

        // (2) A wrong token: the form again, with the error, and no session.
        submit_token(&browser, "wrong-token-wrong-token-wrong-token-0000").await;
        browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::XPath(
                "//body[contains(., 'That token is not right.')]",
            ))
            .await
            .expect("the wrong-token error");
        assert!(present(&browser, "form#sign-in").await);
        assert!(!present(&browser, "main#status").await);
        assert!(
            session_cookie(&browser).await.is_none(),
            "no cookie for a wrong token"
        );
        shoot(&browser, "02-wrong-token").await;

        // (3) The right token: the page, with the webhook and the failed job offering Retry.
        submit_token(&browser, ADMIN_TOKEN).await;
        browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("main#status"))
            .await
            .expect("the status page");
        // Signing in lands on plain `/admin` (a 15 s refresh); ask for 1 s again, as an operator
        // would bookmark it, so step (4) waits for one refresh, not fifteen seconds.
        browser
            .goto(&app.bridge.url("/admin?refresh=1"))
            .await
            .expect("open /admin?refresh=1");
        let webhooks = text(&browser, "table#webhooks").await;
        for shown in [WEBHOOK, PROJECT, PROJECT_NAME] {
            assert!(webhooks.contains(shown), "{shown} in {webhooks}");
        }
        let row = format!("table#jobs tr#job-{job}");
        assert_eq!(text(&browser, &format!("{row} .status")).await, "failed");
        assert_eq!(text(&browser, &format!("{row} .outcome")).await, "failed");
        let row_text = text(&browser, &row).await;
        assert!(row_text.contains(EMAIL), "{row_text}");
        assert!(row_text.contains("Incorrect email"), "{row_text}");
        let retry = format!("{row} form.retry button");
        assert_eq!(text(&browser, &retry).await, "Retry");
        let cookie = session_cookie(&browser).await.expect("the session cookie");
        assert_eq!(cookie.http_only(), Some(true), "{cookie:?}");
        assert!(
            cookie.same_site().is_some_and(|s| s.is_strict()),
            "{cookie:?}"
        );
        assert!(!cookie.value().contains(ADMIN_TOKEN));
        assert!(
            displayed_checkbox(&browser).await,
            "the refresh script shows its checkbox"
        );
        shoot(&browser, "03-status").await;

        // (4) DocSpace works again, but holds the invitation until the page showed the job
        // unfinished: then only the refresh script can bring `done` onto this page.
        let gate = Gate::new();
        env.docspace.push_fault("invite", Fault::Hold(gate.clone()));
        click(&browser, &retry).await;
        browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("p#notice"))
            .await
            .expect("the retry notice");
        let notice = text(&browser, "p#notice").await;
        assert!(notice.contains(&job.to_string()), "{notice}");
        let status = text(&browser, &format!("{row} .status")).await;
        assert!(status == "pending" || status == "running", "{status}");
        // A reload would lose this; the refresh script keeps the document and swaps its content.
        browser
            .execute("window.bridgeNotReloaded = true;", vec![])
            .await
            .expect("mark the document");
        gate.open();
        browser
            .wait()
            .at_most(REFRESHED)
            .for_element(Locator::XPath(&cell_reading(job, "status", "done")))
            .await
            .expect("the row reads done without a reload");
        assert_eq!(text(&browser, &format!("{row} .outcome")).await, "invited");
        let kept = browser
            .execute("return window.bridgeNotReloaded === true;", vec![])
            .await
            .expect("read the mark");
        assert_eq!(kept, json!(true), "the page was reloaded");
        assert!(!present(&browser, &format!("{row} form.retry")).await);
        shoot(&browser, "04-retried").await;
        assert_eq!(env.docspace.sent_emails(), vec![EMAIL.to_string()]);

        // (5) Sign out: the form again, and the cookie is gone.
        let sign_out = browser
            .form(Locator::Css("form#sign-out"))
            .await
            .expect("the sign-out form");
        sign_out
            .submit_with(Locator::Css("button, input[type=submit]"))
            .await
            .expect("sign out");
        browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("form#sign-in"))
            .await
            .expect("the form after signing out");
        assert!(!present(&browser, "main#status").await);
        assert!(session_cookie(&browser).await.is_none(), "cookie cleared");
        drop(app);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_works_without_javascript() {
    in_browser("no-js", false, |browser| async move {
        let (env, app, job) = one_failed_job().await;
        sign_in(&browser, &app.bridge.url("/admin"), ADMIN_TOKEN).await;
        let row = format!("table#jobs tr#job-{job}");
        assert_eq!(text(&browser, &format!("{row} .status")).await, "failed");
        assert!(
            !displayed_checkbox(&browser).await,
            "no refresh checkbox without its script"
        );

        click(&browser, &format!("{row} form.retry button")).await;
        browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("p#notice"))
            .await
            .expect("the retry notice");
        job_with_status(&env.store().await, job, JobStatus::Done).await;
        browser.refresh().await.expect("reload by hand");
        assert_eq!(text(&browser, &format!("{row} .status")).await, "done");
        assert_eq!(text(&browser, &format!("{row} .outcome")).await, "invited");
        shoot(&browser, "05-no-js").await;
        drop(app);
    })
    .await;
}

/// The bridge with the status page on, a webhook registered for [`PROJECT`], and one delivery whose job failed for
/// good (DocSpace refused the invitation as a bad request); returns the job's id.
async fn one_failed_job() -> (Env, TestApp, i64) {
    let mut env = Env::on(Backend::Sqlite)
        .await
        .expect("SQLite needs no setup");
    env.set("BRIDGE__ADMIN__TOKEN", ADMIN_TOKEN)
        .set("BRIDGE__WORKER__MAX_ATTEMPTS", "1")
        // The retried invitation may be held by the test for a while: no timeout, no lease lapse.
        .set("BRIDGE__WORKER__REQUEST_TIMEOUT_MS", "60000")
        .set("BRIDGE__WORKER__LEASE_MS", "120000");
    env.assign(TASK, USER, EMAIL);
    env.docspace.push_fault(
        "invite",
        Fault::json(
            400,
            json!({"error": {"message": "Incorrect email"}, "status": 1, "statusCode": 400}),
        ),
    );
    // Registered as an operator does it (`webhooks create`), so the page knows its project.
    env.set("BRIDGE__WEBHOOKS__HANDSHAKE", "registration");
    env.asana.put_project(PROJECT, PROJECT_NAME);
    let app = TestApp::spawn(&env).await;
    env.set("BRIDGE__SERVER__PUBLIC_URL", &app.bridge.address);
    env.run(&[
        "webhooks",
        "create",
        "--project",
        PROJECT,
        "--name",
        WEBHOOK,
    ])
    .await
    .expect_code(0);
    let delivered = env
        .asana
        .deliver_to_project(PROJECT, &assignment_delivery(TASK, USER))
        .await;
    assert_eq!(delivered, 1, "the assignment is delivered");
    let jobs = settled_jobs(&env.store().await).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].status, JobStatus::Failed, "{jobs:?}");
    let id = jobs[0].id;
    (env, app, id)
}

/// Runs `scenario` against a fresh browser session; skipped (see [`ChromeDriver::start`]) without
/// a browser. When the scenario fails, the browser's screen and page source are saved as
/// `{test}-failure.png` / `.html` before the failure is passed on; the session is closed either way.
async fn in_browser<F, Fut>(test: &str, javascript: bool, scenario: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(driver) = ChromeDriver::start().await else {
        return;
    };
    let browser = driver.browser(javascript).await;
    let failure = format!("{test}-failure");
    for stale in ["png", "html"] {
        let _ = std::fs::remove_file(screenshots_dir().join(format!("{failure}.{stale}")));
    }
    let outcome = tokio::spawn(scenario(browser.clone())).await;
    if outcome.is_err() {
        shoot(&browser, &failure).await;
        if let Ok(source) = browser.source().await {
            let path = screenshots_dir().join(format!("{failure}.html"));
            let _ = std::fs::write(path, source);
        }
    }
    let _ = browser.close().await;
    drop(driver);
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

/// Saves the browser's viewport as `target/admin-screenshots/{name}.png`.
async fn shoot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("a screenshot");
    let dir = screenshots_dir();
    std::fs::create_dir_all(&dir).expect("the screenshots folder");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("save the screenshot");
}

/// The visible text of the first element matching `css`, trimmed.
async fn text(browser: &Client, css: &str) -> String {
    let element = browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page: {e}"));
    element.text().await.expect("its text").trim().to_string()
}

async fn present(browser: &Client, css: &str) -> bool {
    !browser
        .find_all(Locator::Css(css))
        .await
        .expect("search the page")
        .is_empty()
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// Whether any checkbox on the page is shown (the refresh switch is `hidden` until its script runs).
async fn displayed_checkbox(browser: &Client) -> bool {
    for checkbox in browser
        .find_all(Locator::Css("input[type=checkbox]"))
        .await
        .expect("search the page")
    {
        if checkbox.is_displayed().await.expect("is it displayed") {
            return true;
        }
    }
    false
}

/// XPath of job `job`'s cell of class `class` reading exactly `value`.
fn cell_reading(job: i64, class: &str, value: &str) -> String {
    format!(
        "//tr[@id='job-{job}']//*[contains(concat(' ', normalize-space(@class), ' '), ' {class} ') \
         and normalize-space(.)='{value}']"
    )
}

/// The status page's session cookie, as the browser keeps it (`bridge-admin`, or
/// `__Host-bridge-admin` over https).
async fn session_cookie(browser: &Client) -> Option<fantoccini::cookies::Cookie<'static>> {
    browser
        .get_all_cookies()
        .await
        .expect("the browser's cookies")
        .into_iter()
        .find(|cookie| cookie.name().ends_with("bridge-admin"))
}
