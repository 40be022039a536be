//! The status page's HTML (design §7), written with maud: every value is escaped unless marked
//! otherwise (nothing here is), so a hostile task name, email or upstream error stays text. The
//! page works without JavaScript; `refresh.js` only re-reads it. No inline script or style: the
//! Content-Security-Policy allows neither.

use std::time::{Duration, SystemTime};

use axum::response::Html;
use maud::{DOCTYPE, Markup, html};

use crate::status::{
    AccessSection, JobRow, ProjectRooms, QueueSummary, RoomsSection, StatusReport, WebhookRow,
};
use crate::store::JobStatus;

/// What a wrong token at the sign-in form is told.
pub const WRONG_TOKEN: &str = "That token is not right.";

/// `?v=` on asset links: a new release is fetched again despite `max-age`.
const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Seconds between refreshes of the page by `refresh.js`, when `?refresh=` does not say.
pub const DEFAULT_REFRESH_SECS: u32 = 15;
pub const MIN_REFRESH_SECS: u32 = 1;
pub const MAX_REFRESH_SECS: u32 = 300;

/// `?refresh=N`, clamped to 1..=300; missing or not a number: the default.
pub fn refresh_secs(asked: Option<&str>) -> u32 {
    asked
        .and_then(|n| n.trim().parse::<i64>().ok())
        .map_or(DEFAULT_REFRESH_SECS, |n| {
            u32::try_from(n.clamp(i64::from(MIN_REFRESH_SECS), i64::from(MAX_REFRESH_SECS)))
                .unwrap_or(DEFAULT_REFRESH_SECS)
        })
}

/// The page's own address with the same filter and refresh period, for links and redirects.
pub fn page_url(filter: Option<JobStatus>, refresh: u32) -> String {
    let mut query = Vec::new();
    if let Some(status) = filter {
        query.push(format!("status={status}"));
    }
    if refresh != DEFAULT_REFRESH_SECS {
        query.push(format!("refresh={refresh}"));
    }
    if query.is_empty() {
        "/admin".to_string()
    } else {
        format!("/admin?{}", query.join("&"))
    }
}

/// What the signed-in page is asked to show besides the report.
#[derive(Debug, Clone)]
pub struct PageView<'a> {
    /// This session's CSRF token, for every form.
    pub csrf: &'a str,
    /// The notice `?notice=` asked for, in words.
    pub notice: Option<String>,
    pub refresh_secs: u32,
    pub filter: Option<JobStatus>,
}

/// The sign-in form, with an error (wrong token, throttled) or a notice (session ended).
pub fn sign_in(error: Option<&str>, notice: Option<&str>) -> Html<String> {
    let body = html! {
        main #sign-in-page {
            h1 { "asana-docspace-bridge status" }
            @if let Some(notice) = notice {
                p #notice .notice { (notice) }
            }
            form #sign-in method="post" action="/admin/sign-in" {
                label for="token" { "Admin token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
            @if let Some(error) = error {
                p #sign-in-error .error role="alert" { (error) }
            }
            p .hint { "The token is the service's " code { "admin.token" } " setting." }
        }
    };
    Html(document("Sign in · asana-docspace-bridge", body).into_string())
}

/// The status page.
pub fn status(report: &StatusReport, view: &PageView<'_>) -> Html<String> {
    let now = parse_time(&report.generated_at);
    let body = html! {
        header .bar {
            h1 { "asana-docspace-bridge status" }
            p .updated {
                "updated "
                time #updated datetime=(report.generated_at) { (clock(&report.generated_at)) }
                " " span #refresh-state {}
            }
            label #auto-refresh hidden {
                input #auto-refresh-on type="checkbox";
                " refresh every " (view.refresh_secs) " s"
            }
            a .refresh href=(page_url(view.filter, view.refresh_secs)) { "Refresh" }
            form #sign-out method="post" action="/admin/sign-out" {
                input type="hidden" name="csrf" value=(view.csrf);
                button type="submit" { "Sign out" }
            }
        }
        main #status data-refresh-secs=(view.refresh_secs) {
            @if let Some(notice) = &view.notice {
                p #notice .notice role="status" { (notice) }
            }
            (problems(report))
            (queue_cards(&report.queue))
            section #webhooks-section {
                h2 { "Webhooks" }
                (webhooks_table(&report.webhooks, now))
            }
            section #jobs-section {
                h2 { "Jobs" }
                (job_filters(view.filter, view.refresh_secs))
                (jobs_table(&report.jobs, view, now))
            }
            @if let Some(rooms) = &report.rooms {
                (rooms_section(rooms, now))
            }
            @if let Some(access) = &report.access {
                (access_section(access, now))
            }
        }
    };
    Html(document("Status · asana-docspace-bridge", body).into_string())
}

fn document(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { (title) }
                link rel="stylesheet" href={ "/admin/assets/admin.css?v=" (ASSET_VERSION) };
                script src={ "/admin/assets/refresh.js?v=" (ASSET_VERSION) } defer {}
            }
            body { (body) }
        }
    }
}

/// What `/readyz` reports as degraded, or that nothing is.
fn problems(report: &StatusReport) -> Markup {
    html! {
        @if report.problems.values().all(|found| found.is_empty()) {
            p #problems .banner.ok { "All webhooks healthy" }
        } @else {
            ul #problems .banner.problems {
                @for (part, found) in &report.problems {
                    @for (name, problem) in found {
                        li { strong { (part) " " (name) } ": " (problem) }
                    }
                }
            }
        }
    }
}

pub fn queue_cards(queue: &QueueSummary) -> Markup {
    html! {
        section #queue .cards aria-label="Queue" {
            div .card.pending { span .count { (queue.pending) } span .label { "pending" } }
            div .card.running {
                span .count { (queue.running) } span .label { "running" }
                @if queue.running_lease_lapsed > 0 {
                    span .note { (queue.running_lease_lapsed) " with a lapsed lease: taken over soon" }
                }
            }
            div .card.failed.(if queue.failed > 0 { "alert" } else { "calm" }) {
                span .count { (queue.failed) } span .label { "failed" }
            }
            div .card.done { span .count { (queue.done_last_24h) } span .label { "done in 24 h" } }
            div .card.oldest {
                span .count {
                    @match queue.oldest_pending_age_secs {
                        Some(secs) => (age(secs)),
                        None => "none",
                    }
                }
                span .label { "oldest pending" }
            }
        }
    }
}

pub fn webhooks_table(webhooks: &[WebhookRow], now: Option<SystemTime>) -> Markup {
    html! {
        @if webhooks.is_empty() {
            p .empty { "No webhook is registered yet: see " code { "webhooks create" } "." }
        } @else {
            div .scroll {
                table #webhooks {
                    thead { tr {
                        th { "Name" } th { "Watches" } th { "Last verified delivery" }
                        th { "Asana" } th { "Repair" } th { "Reconcile" }
                    } }
                    tbody {
                        @for webhook in webhooks {
                            tr id={ "webhook-" (webhook.name) } {
                                td .name {
                                    (webhook.name)
                                    @if let Some(old) = &webhook.replaces {
                                        br; small { "recreated: replaces " (old) }
                                    }
                                }
                                td .watches {
                                    @if let Some(project) = &webhook.project {
                                        @if let Some(name) = &project.name { (name) br; }
                                        small { "project " (project.gid) }
                                    } @else if let Some(workspace) = &webhook.workspace_gid {
                                        small { "workspace " (workspace) }
                                    } @else {
                                        (webhook.resource_type)
                                    }
                                }
                                td .delivery { (moment(webhook.last_delivery_at.as_deref(), now, "none yet")) }
                                td .asana {
                                    @match &webhook.asana {
                                        None => span .muted { "not checked yet" },
                                        Some(view) => {
                                            @if view.deleted {
                                                span .badge.badge-failed { "deleted" }
                                            } @else if view.active {
                                                span .badge.badge-done { "active" }
                                            } @else {
                                                span .badge.badge-failed { "inactive" }
                                            }
                                            @if let Some(at) = &view.last_failure_at {
                                                br; "last failure " (moment(Some(at), now, ""))
                                                @if let Some(failure) = &view.last_failure { ": " (failure) }
                                            }
                                            br; small .muted { "checked " (moment(Some(&view.checked_at), now, "")) }
                                        }
                                    }
                                }
                                td .repair {
                                    @match &webhook.repair { Some(repair) => (repair), None => span .muted { "none" } }
                                }
                                td .reconcile {
                                    @match &webhook.reconcile {
                                        None => span .muted { "not watched" },
                                        Some(pass) => {
                                            @if pass.failures > 0 {
                                                span .badge.badge-failed { "failed" } " ×" (pass.failures)
                                                @if let Some(error) = &pass.last_error { br; (error) }
                                            } @else if pass.last_pass_at.is_some() {
                                                span .badge.badge-done { "ok" }
                                            } @else {
                                                span .muted { "no pass yet" }
                                            }
                                            @if let Some(at) = &pass.last_pass_at {
                                                br; "last pass " (moment(Some(at), now, ""))
                                            }
                                            @if let Some(lag) = pass.lag_secs {
                                                br; small .muted { "lag " (age(lag)) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// All · Failed · Pending · Running · Done, as plain links (n8n's status filter).
fn job_filters(current: Option<JobStatus>, refresh: u32) -> Markup {
    let filters = [
        (None, "All"),
        (Some(JobStatus::Failed), "Failed"),
        (Some(JobStatus::Pending), "Pending"),
        (Some(JobStatus::Running), "Running"),
        (Some(JobStatus::Done), "Done"),
    ];
    html! {
        nav .filters aria-label="Show jobs" {
            @for (filter, label) in filters {
                @if filter == current {
                    a href=(page_url(filter, refresh)) aria-current="page" { (label) }
                } @else {
                    a href=(page_url(filter, refresh)) { (label) }
                }
            }
        }
    }
}

pub fn jobs_table(jobs: &[JobRow], view: &PageView<'_>, now: Option<SystemTime>) -> Markup {
    html! {
        @if jobs.is_empty() {
            p .empty { "No jobs" @if let Some(f) = view.filter { " " (f) } "." }
        }
        div .scroll {
            table #jobs {
                thead { tr {
                    th { "Status" } th { "Updated" } th { "Job" } th { "Kind" } th { "Task" }
                    th { "Email" } th { "Outcome" } th { "Attempts" } th { "Rooms" }
                    th { "Last error" } th { "Action" }
                } }
                tbody {
                    @for job in jobs {
                        tr id={ "job-" (job.id) } class={ "job-" (job.status) } {
                            td .status { span class={ "badge badge-" (job.status) } { (job.status) } }
                            td .time {
                                (moment(Some(&job.updated_at), now, ""))
                                @if let Some(next) = &job.next_attempt_at {
                                    br; small .muted { "next attempt " (moment(Some(next), now, "")) }
                                }
                            }
                            td .id { (job.id) }
                            td .kind { (job.kind) br; small .muted { (job.source) } }
                            td .task {
                                a href={ "https://app.asana.com/0/0/" (job.task_gid) } rel="noreferrer" { (job.task_gid) }
                            }
                            td .email { @if let Some(email) = &job.email { (email) } }
                            td .outcome { @if let Some(outcome) = &job.outcome { (outcome) } }
                            td .attempts { (job.attempts) }
                            td .rooms { @if let Some(rooms) = &job.rooms { (rooms) } }
                            td .error {
                                @if let Some(error) = &job.last_error {
                                    @if job.status == "pending" || job.status == "running" {
                                        small .muted { "previous error: " } (error)
                                    } @else {
                                        (error)
                                    }
                                }
                            }
                            td .action {
                                @if job.status == "failed" {
                                    form .retry method="post" action={ "/admin/jobs/" (job.id) "/retry" } {
                                        input type="hidden" name="csrf" value=(view.csrf);
                                        @if let Some(filter) = view.filter {
                                            input type="hidden" name="status" value=(filter);
                                        }
                                        @if view.refresh_secs != DEFAULT_REFRESH_SECS {
                                            input type="hidden" name="refresh" value=(view.refresh_secs);
                                        }
                                        button type="submit" { "Retry" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn rooms_section(rooms: &RoomsSection, now: Option<SystemTime>) -> Markup {
    html! {
        section #rooms-section {
            h2 { "Rooms " small .muted { "(" (rooms.mode) ")" } }
            @if rooms.projects.is_empty() {
                p .empty { "No project has a room yet." }
            } @else {
                div .scroll {
                    table #rooms {
                        thead { tr { th { "Project" } th { "Room" } th { "People granted" } } }
                        tbody {
                            @for project in &rooms.projects {
                                (project_rooms(project, now))
                            }
                        }
                    }
                }
            }
        }
    }
}

fn project_rooms(project: &ProjectRooms, now: Option<SystemTime>) -> Markup {
    html! {
        tr id={ "project-" (project.gid) } {
            td .project {
                @if let Some(name) = &project.name { (name) br; }
                small { "project " (project.gid) }
            }
            td .room {
                @match &project.room {
                    None => span .muted { "none yet" },
                    Some(room) => {
                        (room.id)
                        @if let Some(title) = &room.title { " " q { (title) } }
                        @if let Some(state) = &room.state {
                            " " span class={ "badge badge-" (if state == "active" { "done" } else { "failed" }) } { (state) }
                        }
                        @if let Some(how) = &room.how { br; small .muted { (how) } }
                    }
                }
            }
            td .people {
                @if project.granted.is_empty() {
                    span .muted { "nobody yet" }
                } @else {
                    ul {
                        @for person in &project.granted {
                            li {
                                (person.email) " · " (person.access)
                                @if person.state == "had_access" {
                                    " · " em { "had access already" }
                                } @else if person.state != "granted" {
                                    " · " (person.state)
                                }
                                " · via task " (person.task_gid) ", job " (person.job_id)
                                @if let Some(at) = &person.granted_at { ", " (moment(Some(at), now, "")) }
                            }
                        }
                    }
                    @if project.more > 0 {
                        p .more { "and " (project.more) " more" }
                    }
                }
            }
        }
    }
}

fn access_section(access: &AccessSection, now: Option<SystemTime>) -> Markup {
    html! {
        section #access-section {
            h2 { "Access lifecycle" }
            h3 { "Pending revocations " small .muted { "(what " code { "access plan" } " shows from the store)" } }
            @if access.pending.is_empty() {
                p .empty { "None pending." }
            } @else {
                div .scroll {
                    table #pending-revocations {
                        thead { tr {
                            th { "Email" } th { "Project" } th { "Room" } th { "Access" }
                            th { "State" } th { "Due" } th { "Because" }
                        } }
                        tbody {
                            @for revocation in &access.pending {
                                tr {
                                    td { (revocation.email) } td { (revocation.project) }
                                    td { (revocation.room_id) } td { (revocation.access) }
                                    td { (revocation.state) }
                                    td { (moment(revocation.due_at.as_deref(), now, "")) }
                                    td { (revocation.because) }
                                }
                            }
                        }
                    }
                }
            }
            h3 { "Latest access events " small .muted { "(" code { "access log" } ")" } }
            @if access.latest.is_empty() {
                p .empty { "Nothing yet." }
            } @else {
                div .scroll {
                    table #access-log {
                        thead { tr {
                            th { "At" } th { "What" } th { "Email" } th { "Project" }
                            th { "Room" } th { "Access" } th { "Because" }
                        } }
                        tbody {
                            @for event in &access.latest {
                                tr {
                                    td { (moment(Some(&event.at), now, "")) } td { (event.action) }
                                    td { (event.email) } td { (event.project) }
                                    td { (event.room_id) } td { (event.access) } td { (event.because) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `<time datetime="…">10:02:03Z</time> (3 min ago)`, or `missing` when there is no time.
fn moment(at: Option<&str>, now: Option<SystemTime>, missing: &str) -> Markup {
    let Some(at) = at else {
        return html! { span .muted { (missing) } };
    };
    let relative = parse_time(at).zip(now).map(|(at, now)| relative(at, now));
    html! {
        time datetime=(at) { (clock(at)) }
        @if let Some(relative) = relative { " (" (relative) ")" }
    }
}

/// An RFC 3339 time shown short: `2026-12-03 10:02:03Z`.
fn clock(at: &str) -> String {
    match at.split_once('T') {
        Some((date, time)) => {
            let time = time.split(['.', 'Z', '+']).next().unwrap_or(time);
            format!("{date} {time}Z")
        }
        None => at.to_string(),
    }
}

fn parse_time(at: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(at).ok()
}

/// `3 min ago`, `in 12 s`, `just now`.
fn relative(at: SystemTime, now: SystemTime) -> String {
    match now.duration_since(at) {
        Ok(past) if past < Duration::from_secs(2) => "just now".to_string(),
        Ok(past) => format!("{} ago", age(secs(past))),
        Err(future) => format!("in {}", age(secs(future.duration()))),
    }
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// A duration in its largest sensible units: `42 s`, `5 min`, `3 h 5 min`, `2 d 4 h`.
pub fn age(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3_600 => format!("{} min", s / 60),
        s if s < 86_400 => match (s / 3_600, s % 3_600 / 60) {
            (h, 0) => format!("{h} h"),
            (h, m) => format!("{h} h {m} min"),
        },
        s => match (s / 86_400, s % 86_400 / 3_600) {
            (d, 0) => format!("{d} d"),
            (d, h) => format!("{d} d {h} h"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{
        AccessEvent, AsanaView, PendingRevocation, PersonGrant, ProjectRef, ReconcileView, RoomView,
    };
    use std::collections::BTreeMap;

    const HOSTILE: &str = "<script>alert(1)</script>";

    fn job(id: i64, status: &str) -> JobRow {
        JobRow {
            id,
            status: status.to_string(),
            updated_at: "2026-12-03T10:01:03Z".to_string(),
            kind: "assignee_changed".to_string(),
            source: "webhook:wh-3f0c".to_string(),
            task_gid: "1200000000000777".to_string(),
            email: Some(format!("ann{HOSTILE}@example.com")),
            outcome: (status != "pending").then(|| "failed".to_string()),
            attempts: 12,
            rooms: Some("45 granted (created)".to_string()),
            last_error: Some(format!("DocSpace 500 {HOSTILE}")),
            next_attempt_at: None,
        }
    }

    fn report() -> StatusReport {
        StatusReport {
            api_version: 1,
            generated_at: "2026-12-03T10:02:03Z".to_string(),
            problems: BTreeMap::from([(
                "webhooks".to_string(),
                BTreeMap::from([(
                    "wh-3f0c".to_string(),
                    format!("no verified delivery for 30 hours {HOSTILE}"),
                )]),
            )]),
            queue: QueueSummary {
                pending: 3,
                running: 1,
                running_lease_lapsed: 1,
                failed: 2,
                done_last_24h: 118,
                oldest_pending_age_secs: Some(42),
            },
            webhooks: vec![WebhookRow {
                name: "wh-3f0c".to_string(),
                resource_type: "project".to_string(),
                project: Some(ProjectRef {
                    gid: "1200000000000100".to_string(),
                    name: Some(format!("Website {HOSTILE}")),
                }),
                workspace_gid: None,
                webhook_gid: Some("1200000000000123".to_string()),
                last_delivery_at: Some("2026-12-03T09:59:03Z".to_string()),
                replaces: Some("wh-old".to_string()),
                asana: Some(AsanaView {
                    checked_at: "2026-12-03T08:02:03Z".to_string(),
                    active: true,
                    last_failure_at: None,
                    last_failure: None,
                    deleted: false,
                }),
                repair: None,
                reconcile: Some(ReconcileView {
                    last_pass_at: Some("2026-12-03T09:57:03Z".to_string()),
                    failures: 0,
                    last_error: None,
                    lag_secs: Some(310),
                }),
            }],
            jobs: vec![job(42, "failed"), job(41, "pending"), job(40, "done")],
            job_filter: None,
            rooms: Some(RoomsSection {
                mode: "auto".to_string(),
                projects: vec![ProjectRooms {
                    gid: "1200000000000100".to_string(),
                    name: Some("Website".to_string()),
                    room: Some(RoomView {
                        id: 45,
                        title: Some(format!("Room {HOSTILE}")),
                        state: Some("active".to_string()),
                        how: Some("created".to_string()),
                    }),
                    granted: vec![PersonGrant {
                        email: "bob@example.com".to_string(),
                        access: "Editing".to_string(),
                        state: "had_access".to_string(),
                        task_gid: "1200000000000777".to_string(),
                        job_id: 40,
                        granted_at: None,
                    }],
                    more: 3,
                }],
            }),
            access: Some(AccessSection {
                pending: vec![PendingRevocation {
                    email: "carl@example.com".to_string(),
                    project: "1200000000000100".to_string(),
                    room_id: 45,
                    access: "Editing".to_string(),
                    state: "in the grace period".to_string(),
                    due_at: Some("2026-12-04T10:02:03Z".to_string()),
                    because: format!("task completed {HOSTILE}"),
                }],
                latest: vec![AccessEvent {
                    at: "2026-12-03T10:00:00Z".to_string(),
                    action: "revoked".to_string(),
                    email: "dan@example.com".to_string(),
                    project: "1200000000000100".to_string(),
                    room_id: 45,
                    access: "Editing".to_string(),
                    because: "unassigned".to_string(),
                }],
            }),
        }
    }

    fn view(csrf: &str) -> PageView<'_> {
        PageView {
            csrf,
            notice: Some(format!("Job 42 is due again {HOSTILE}")),
            refresh_secs: 1,
            filter: None,
        }
    }

    #[test]
    fn hostile_text_is_escaped_everywhere() {
        let Html(page) = status(&report(), &view("c".repeat(64).as_str()));
        assert!(!page.contains(HOSTILE), "raw markup from data in the page");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!page.contains("<script>"), "no inline script at all");
        assert!(!page.contains("style="), "no inline style (CSP)");
    }

    #[test]
    fn the_page_keeps_the_element_contract_of_the_browser_test() {
        let csrf = "c".repeat(64);
        let Html(page) = status(&report(), &view(&csrf));
        for needle in [
            r#"<main id="status" data-refresh-secs="1">"#,
            r#"<table id="webhooks">"#,
            r#"<table id="jobs">"#,
            r#"<tr id="job-42" class="job-failed"><td class="status"><span class="badge badge-failed">failed</span></td>"#,
            r#"<td class="outcome">failed</td>"#,
            r#"<form class="retry" method="post" action="/admin/jobs/42/retry">"#,
            &format!(r#"<input type="hidden" name="csrf" value="{csrf}">"#),
            r#"<button type="submit">Retry</button>"#,
            r#"<p class="notice" id="notice" role="status">"#,
            r#"<form id="sign-out" method="post" action="/admin/sign-out">"#,
            r#"<input type="hidden" name="refresh" value="1">"#,
            "recreated: replaces wh-old",
            "had access already",
            "and 3 more",
            "1 with a lapsed lease",
            "previous error: ",
            "(3 min ago)",
            "lag 5 min",
        ] {
            assert!(page.contains(needle), "{needle} missing from the page");
        }
        assert_eq!(
            page.matches("<form class=\"retry\"").count(),
            1,
            "Retry on failed rows only"
        );
        let failed = page.find("id=\"job-42\"").unwrap();
        assert!(failed < page.find("id=\"job-41\"").unwrap());
    }

    #[test]
    fn the_sign_in_form_has_one_password_field() {
        let Html(form) = sign_in(Some(WRONG_TOKEN), None);
        assert!(form.contains(r#"<form id="sign-in" method="post" action="/admin/sign-in">"#));
        assert!(form.contains(r#"type="password" name="token""#));
        assert!(form.contains(r#"<button type="submit">Sign in</button>"#));
        assert!(form.contains(WRONG_TOKEN));
        assert!(
            !form.contains("id=\"status\""),
            "the script reloads on a page without #status"
        );
        let Html(plain) = sign_in(None, None);
        assert!(!plain.contains(WRONG_TOKEN));
    }

    #[test]
    fn sections_follow_the_settings() {
        let mut off = report();
        off.rooms = None;
        off.access = None;
        off.problems.clear();
        let Html(page) = status(&off, &view("c"));
        assert!(!page.contains("rooms-section") && !page.contains("access-section"));
        assert!(page.contains("All webhooks healthy"), "{page}");
        let Html(on) = status(&report(), &view("c"));
        assert!(on.contains("rooms-section") && on.contains("access-section"));
        assert!(!on.contains("All webhooks healthy"));
    }

    #[test]
    fn a_webhook_without_a_reconcile_pass_says_so() {
        let mut fresh = report();
        fresh.webhooks[0].reconcile = Some(ReconcileView {
            last_pass_at: None,
            failures: 0,
            last_error: None,
            lag_secs: None,
        });
        let Html(page) = status(&fresh, &view("c"));
        assert!(page.contains("no pass yet"), "{page}");
        fresh.webhooks[0].reconcile = None;
        let Html(page) = status(&fresh, &view("c"));
        assert!(page.contains("not watched"), "{page}");
    }

    #[test]
    fn the_refresh_period_is_clamped() {
        assert_eq!(refresh_secs(None), DEFAULT_REFRESH_SECS);
        assert_eq!(refresh_secs(Some("1")), 1);
        assert_eq!(refresh_secs(Some("0")), 1);
        assert_eq!(refresh_secs(Some("-5")), 1);
        assert_eq!(refresh_secs(Some("301")), 300);
        assert_eq!(
            refresh_secs(Some("99999999999999999999")),
            DEFAULT_REFRESH_SECS
        );
        assert_eq!(refresh_secs(Some("soon")), DEFAULT_REFRESH_SECS);
        assert_eq!(page_url(None, DEFAULT_REFRESH_SECS), "/admin");
        assert_eq!(
            page_url(Some(JobStatus::Failed), 1),
            "/admin?status=failed&refresh=1"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(age(42), "42 s");
        assert_eq!(age(310), "5 min");
        assert_eq!(age(3_600), "1 h");
        assert_eq!(age(3_900), "1 h 5 min");
        assert_eq!(age(86_400 * 2 + 3_600 * 4), "2 d 4 h");
        assert_eq!(age(-3), "0 s");
        assert_eq!(clock("2026-12-03T10:02:03.123Z"), "2026-12-03 10:02:03Z");
    }
}
