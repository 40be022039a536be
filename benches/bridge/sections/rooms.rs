//! Rooms in `auto` mode at scale (SQLite, instant fakes): a backlog over 50 known projects and a
//! fifth as many people as jobs drains at worker concurrency 4 and 16; what each job costs
//! upstream, by operation; then the same backlog again, every grant in the ledger already.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use asana_docspace_fakes::FakeUser;
use asana_docspace_test_support::TestDatabase;

use super::drain::queue_backlog;
use crate::Settings;
use crate::database::JobCounter;
use crate::process::{BenchEnv, Resources};
use crate::report::{Report, thousands};

const PROJECTS: usize = 50;
/// Each person has this many of the backlog's tasks.
const TASKS_PER_PERSON: usize = 5;
const CONCURRENCIES: [usize; 2] = [4, 16];
const TARGET_JOBS_PER_SECOND: f64 = 500.0;
/// However slow the drain, the section gives up after this long.
const DRAIN_LIMIT: Duration = Duration::from_secs(600);

pub async fn run(settings: &Settings, report: &mut Report, max_rss_kib: &mut u64) {
    for concurrency in CONCURRENCIES {
        // Fakes of its own: every row starts with no room, and its calls are its own.
        let env = BenchEnv::new().await;
        let backlog = Backlog::seed(&env, settings.backlog);
        let database = TestDatabase::sqlite();
        queue_backlog(&env, &database, "rooms", &backlog.assignments).await;
        for (p, project) in backlog.projects.iter().enumerate() {
            database
                .add_known_project(
                    &format!("project{p}"),
                    project,
                    &format!("Project {project}"),
                )
                .await;
        }
        let first = backlog
            .drain(&env, &database, concurrency, max_rss_kib)
            .await;
        // A webhook of its own: the first one's name is taken.
        queue_backlog(&env, &database, "rooms-again", &backlog.assignments).await;
        let again = backlog
            .drain(&env, &database, concurrency, max_rss_kib)
            .await;
        let what = format!(
            "{} jobs over {PROJECTS} projects and {} people",
            thousands(backlog.assignments.len() as u64),
            thousands(backlog.people as u64)
        );
        for (pass, label) in [(&first, "first pass"), (&again, "again, all granted")] {
            report.row([
                &format!("rooms auto: drain {what}, {label}, concurrency {concurrency}"),
                &format!("{:.0} jobs/s", pass.rate),
                "-",
                "-",
                "-",
                "-",
                &pass.resources.rss(),
                &pass.resources.cpu(),
            ]);
        }
        report.target(
            &format!(
                "rooms auto: a backlog of {what} drains at ≥ {TARGET_JOBS_PER_SECOND:.0} jobs/s (concurrency {concurrency})"
            ),
            format!("{:.0} jobs/s", first.rate),
            first.rate >= TARGET_JOBS_PER_SECOND,
        );
        let rooms = env.docspace.rooms().len();
        let shares = first.docspace.get("share_room").copied().unwrap_or(0);
        report.target(
            &format!(
                "rooms auto: one room per project, one share per (person, project) (concurrency {concurrency})"
            ),
            format!(
                "{rooms} rooms for {PROJECTS} projects; {} shares for {} pairs",
                thousands(shares),
                thousands(backlog.pairs as u64)
            ),
            rooms == PROJECTS && shares == backlog.pairs as u64,
        );
        let again_calls: u64 = again.docspace.values().sum();
        report.target(
            &format!(
                "rooms auto: the same backlog again makes no DocSpace call (concurrency {concurrency})"
            ),
            format!(
                "{:.2} DocSpace calls per job",
                again_calls as f64 / again.jobs as f64
            ),
            again_calls == 0,
        );
        for (pass, label) in [(&first, "first pass"), (&again, "again")] {
            report.note(format!(
                "rooms auto, concurrency {concurrency}, {label}: {} jobs in {:.1} s; DocSpace calls per job {}; Asana calls per job {}",
                thousands(pass.jobs as u64),
                pass.elapsed.as_secs_f64(),
                per_job(&pass.docspace, pass.jobs),
                per_job(&pass.asana, pass.jobs)
            ));
        }
    }
}

/// The backlog: one task per job, each in one of the known projects, each person with
/// [`TASKS_PER_PERSON`] tasks over three projects; half of the people are DocSpace members
/// already, the others are invited.
struct Backlog {
    /// (task gid, assignee gid), one job each.
    assignments: Vec<(String, String)>,
    people: usize,
    projects: Vec<String>,
    /// Distinct (person, project) pairs: the shares to expect.
    pairs: usize,
}

impl Backlog {
    fn seed(env: &BenchEnv, jobs: usize) -> Backlog {
        let people = jobs / TASKS_PER_PERSON;
        let projects: Vec<String> = (0..PROJECTS)
            .map(|p| format!("{}", 1_200_000_000_001_000 + p))
            .collect();
        let mut assignments = Vec::with_capacity(jobs);
        let mut pairs = BTreeSet::new();
        for i in 0..jobs {
            let person = i % people;
            // A person's five tasks: two in one project, two in the next, one in the third.
            let project = &projects[(person + i / (2 * people)) % PROJECTS];
            let (task, user) = (
                format!("{}", 40_000_000 + i),
                format!("{}", 50_000_000 + person),
            );
            let email = format!("rooms{person}@example.com");
            if i < people && person.is_multiple_of(2) {
                env.docspace.add_member(&email);
            }
            env.asana
                .assign(&task, project, Some(FakeUser::new(&user, &email)));
            pairs.insert((person, project.clone()));
            assignments.push((task, user));
        }
        Backlog {
            assignments,
            people,
            projects,
            pairs: pairs.len(),
        }
    }

    /// Drains the backlog queued on `database` with rooms `auto` at `concurrency`, to the last job.
    async fn drain(
        &self,
        env: &BenchEnv,
        database: &TestDatabase,
        concurrency: usize,
        max_rss_kib: &mut u64,
    ) -> Pass {
        let mut jobs = JobCounter::open(database).await;
        let (docspace_before, asana_before) =
            (env.docspace.calls_by_route(), env.asana.calls_by_route());
        let concurrency = concurrency.to_string();
        let bridge = env
            .start_bridge(
                database.url(),
                &[
                    ("BRIDGE__ROOMS__MODE", "auto"),
                    ("BRIDGE__WORKER__CONCURRENCY", &concurrency),
                    ("BRIDGE__ASANA__REQUESTS_PER_MINUTE", "1000000"),
                ],
            )
            .await;
        bridge.reset_peak();
        let began = Instant::now();
        while jobs.unfinished().await > 0 {
            assert!(
                began.elapsed() < DRAIN_LIMIT,
                "the backlog did not drain in {DRAIN_LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let elapsed = began.elapsed();
        let resources = bridge.sample();
        *max_rss_kib = (*max_rss_kib).max(resources.peak_rss_kib);
        drop(bridge);
        let failed = jobs.with_status("failed").await;
        jobs.close().await;
        assert_eq!(failed, 0, "no job failed");
        let jobs = self.assignments.len();
        Pass {
            rate: jobs as f64 / elapsed.as_secs_f64(),
            jobs,
            elapsed,
            resources,
            docspace: since(docspace_before, env.docspace.calls_by_route()),
            asana: since(asana_before, env.asana.calls_by_route()),
        }
    }
}

/// What one drain of the backlog measured.
struct Pass {
    rate: f64,
    jobs: usize,
    elapsed: Duration,
    resources: Resources,
    /// Calls by route during the drain.
    docspace: BTreeMap<&'static str, u64>,
    asana: BTreeMap<&'static str, u64>,
}

/// The calls made between two counts.
fn since(
    before: BTreeMap<&'static str, u64>,
    after: BTreeMap<&'static str, u64>,
) -> BTreeMap<&'static str, u64> {
    after
        .into_iter()
        .map(|(route, n)| (route, n - before.get(route).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// `0.00` when there were none, else `1.20 (find_user 0.40, share_room 0.80)`.
fn per_job(calls: &BTreeMap<&'static str, u64>, jobs: usize) -> String {
    let total: u64 = calls.values().sum();
    let rate = |n: u64| n as f64 / jobs as f64;
    if calls.is_empty() {
        return format!("{:.2}", rate(total));
    }
    let each: Vec<String> = calls
        .iter()
        .map(|(route, n)| format!("{route} {:.3}", rate(*n)))
        .collect();
    format!("{:.2} ({})", rate(total), each.join(", "))
}
