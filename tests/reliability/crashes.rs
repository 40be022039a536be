//! kill -9 at random moments while 1,000 assignments arrive: every acknowledged one is invited,
//! exactly once. And with rooms `auto`, kill -9 while 1,000 assignments over five projects drain:
//! every (person, project) is shared exactly once and each project gets one room.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asana_docspace_fakes::{FakeUser, assignment_delivery, sign};
use tokio::task::JoinHandle;

use asana_docspace_bridge::store::{JobRecord, JobStatus, Store};
use rstest::rstest;

use crate::helpers::{Backend, BridgeProcess, Env, WAIT, eventually, gid};

const ASSIGNMENTS: usize = 1_000;
const KILLS: usize = 6;
const SENDERS: usize = 4;

fn email(i: usize) -> String {
    format!("crash{i}@example.com")
}

/// Settings for a bridge killed and restarted: the same port each time (where Asana resends),
/// short leases so a dead process's jobs are taken over soon, and no Asana pacing.
fn crash_settings(env: &mut Env) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    env.set("BRIDGE__SERVER__PORT", &port.to_string());
    env.set("BRIDGE__WORKER__LEASE_MS", "1500");
    env.set("BRIDGE__WORKER__REQUEST_TIMEOUT_MS", "1000");
    env.set("BRIDGE__ASANA__REQUESTS_PER_MINUTE", "1000000");
}

/// Asana's deliveries of `assignments` (task gid, assignee gid) to webhook `proj`, each resent
/// until acknowledged, by [`SENDERS`] senders at once.
struct Senders {
    acknowledged: Arc<Mutex<HashSet<usize>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Senders {
    fn start(process: &BridgeProcess, secret: &str, assignments: &[(String, String)]) -> Senders {
        let url = process.bridge.url("/webhooks/asana/proj");
        // Asana resends the same bytes: build each delivery once.
        let deliveries: Arc<Vec<(String, String)>> = Arc::new(
            assignments
                .iter()
                .map(|(task, user)| {
                    let body = assignment_delivery(task, user).to_string();
                    let signature = sign(secret, body.as_bytes());
                    (body, signature)
                })
                .collect(),
        );
        let acknowledged = Arc::new(Mutex::new(HashSet::new()));
        let next = Arc::new(Mutex::new(0usize));
        let mut tasks = Vec::new();
        for _ in 0..SENDERS {
            let (deliveries, acknowledged, next, url) = (
                deliveries.clone(),
                acknowledged.clone(),
                next.clone(),
                url.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .unwrap();
                loop {
                    let i = {
                        let mut next = next.lock().unwrap();
                        if *next == deliveries.len() {
                            return;
                        }
                        *next += 1;
                        *next - 1
                    };
                    let (body, signature) = &deliveries[i];
                    // Like Asana: resend until acknowledged.
                    loop {
                        let sent = client
                            .post(&url)
                            .header("x-hook-signature", signature)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await;
                        if sent.is_ok_and(|r| r.status().is_success()) {
                            acknowledged.lock().unwrap().insert(i);
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }));
        }
        Senders {
            acknowledged,
            tasks,
        }
    }

    fn acknowledged(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }

    /// Waits until every delivery is acknowledged; returns how many there were.
    async fn finish(self) -> usize {
        for task in self.tasks {
            task.await.unwrap();
        }
        self.acknowledged.lock().unwrap().len()
    }
}

/// Kills the bridge with -9 [`KILLS`] times, each at a random moment once `progress` (which runs
/// up to `total`) has passed its next mark, and starts it again each time. Returns the running
/// bridge, and how many jobs the kills left running.
async fn kill_repeatedly<F, Fut>(
    env: &Env,
    store: &Store,
    mut process: BridgeProcess,
    total: usize,
    progress: F,
) -> (BridgeProcess, usize)
where
    F: Fn() -> Fut,
    Fut: Future<Output = usize>,
{
    let mut interrupted = 0;
    for kill in 0..KILLS {
        let target = (kill + 1) * total / (KILLS + 2) + rand::random_range(0..total / (KILLS * 3));
        eventually("the bridge to make progress", WAIT * 3, || async {
            (progress().await >= target).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..40))).await;
        process.kill9().await;
        let running = store
            .list_jobs(Some(JobStatus::Running), 100)
            .await
            .unwrap()
            .len();
        interrupted += running;
        process = BridgeProcess::start(env).await;
    }
    (process, interrupted)
}

/// Waits until at least `count` jobs exist and all have finished; none failed.
async fn every_job_done(store: &Store, count: usize) -> Vec<JobRecord> {
    let jobs = eventually("every job to finish", WAIT * 6, || async {
        let jobs = store.list_jobs(None, 100_000).await.unwrap();
        (jobs.len() >= count
            && jobs
                .iter()
                .all(|j| j.status == JobStatus::Done || j.status == JobStatus::Failed))
        .then_some(jobs)
    })
    .await;
    assert!(
        jobs.iter().all(|j| j.status == JobStatus::Done),
        "no job failed"
    );
    jobs
}

/// How many invitations DocSpace sent to each email.
fn invitations_per_email(env: &Env) -> HashMap<String, usize> {
    let mut per_email: HashMap<String, usize> = HashMap::new();
    for invitation in env.docspace.sent_invitations() {
        *per_email.entry(invitation.email).or_default() += 1;
    }
    per_email
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_assignment_is_invited_once_across_kill_9(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    crash_settings(&mut env);
    // Slow enough that jobs are in flight when the kills come.
    env.docspace.set_latency(Duration::from_millis(3));
    let assignments: Vec<(String, String)> = (0..ASSIGNMENTS)
        .map(|i| (format!("{}", 100_000 + i), format!("{}", 200_000 + i)))
        .collect();
    for (i, (task, user)) in assignments.iter().enumerate() {
        env.assign(task, user, &email(i));
    }
    let process = BridgeProcess::start(&env).await;
    let secret = process.bridge.register("proj").await;
    let senders = Senders::start(&process, &secret, &assignments);

    // At random moments while the assignments arrive.
    let store = env.store().await;
    let (process, interrupted) = kill_repeatedly(&env, &store, process, ASSIGNMENTS, || async {
        senders.acknowledged()
    })
    .await;
    assert!(interrupted > 0, "the kills caught jobs in flight");
    assert_eq!(senders.finish().await, ASSIGNMENTS);

    every_job_done(&store, ASSIGNMENTS).await;
    let per_email = invitations_per_email(&env);
    for i in 0..ASSIGNMENTS {
        assert_eq!(
            per_email.get(&email(i)).copied(),
            Some(1),
            "{} invited once",
            email(i)
        );
    }
    let posts = env.docspace.invite_requests().len();
    assert!(
        (ASSIGNMENTS..=ASSIGNMENTS + KILLS * 8).contains(&posts),
        "{posts} invite requests"
    );
    assert_eq!(process.terminate().await.code(), Some(0));
}

/// Projects of the rooms variant.
const PROJECTS: usize = 5;
/// People of the rooms variant: prime, so each person's tasks go round all five projects, and
/// some (person, project) pairs come up twice.
const PEOPLE: usize = 149;

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_person_is_shared_each_project_room_once_across_kill_9(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    crash_settings(&mut env);
    env.set("BRIDGE__ROOMS__MODE", "auto");
    // Asana slow enough that jobs are in flight when the kills come; DocSpace does what it is
    // asked as a request arrives, so its request log is what it did.
    env.asana.set_latency(Duration::from_millis(4));
    let projects: Vec<String> = (0..PROJECTS)
        .map(|p| format!("{}", 1_200_000_000_000_200 + p))
        .collect();
    let mut assignments = Vec::new();
    let mut pairs = BTreeSet::new();
    for i in 0..ASSIGNMENTS {
        let (task, person, project) = (100_000 + i, i % PEOPLE, &projects[i % PROJECTS]);
        let user = format!("{}", 200_000 + person);
        env.asana.assign(
            &task.to_string(),
            project,
            Some(FakeUser::new(&user, &email(person))),
        );
        assignments.push((task.to_string(), user));
        pairs.insert((email(person), project.clone()));
    }
    assert!(pairs.len() < ASSIGNMENTS, "some pairs come up twice");
    let store = env.store().await;
    for (p, project) in projects.iter().enumerate() {
        env.database
            .add_known_project(&format!("project{p}"), project, &format!("Project {p}"))
            .await;
    }
    let process = BridgeProcess::start(&env).await;
    let secret = process.bridge.register("proj").await;
    let senders = Senders::start(&process, &secret, &assignments);

    // At random moments while the backlog drains.
    let (process, interrupted) = kill_repeatedly(&env, &store, process, ASSIGNMENTS, || async {
        store
            .list_jobs(Some(JobStatus::Done), 100_000)
            .await
            .unwrap()
            .len()
    })
    .await;
    assert!(interrupted > 0, "the kills caught jobs in flight");
    assert_eq!(senders.finish().await, ASSIGNMENTS);
    every_job_done(&store, ASSIGNMENTS).await;

    let rooms = env.docspace.rooms();
    assert_eq!(rooms.len(), PROJECTS, "one room per project");
    let mut room_of = HashMap::new();
    for project in &projects {
        let mapped = store.project_room(&gid(project)).await.unwrap().unwrap();
        let room = rooms
            .iter()
            .find(|r| r.id == mapped.room_id)
            .expect("the mapped room exists");
        assert_eq!(room.tags, [format!("asana-project:{project}")]);
        room_of.insert(room.id, project.clone());
    }
    let person_of: HashMap<String, String> = (0..PEOPLE)
        .map(|person| {
            let id = env.docspace.user_id(&email(person)).expect("invited");
            (id, email(person))
        })
        .collect();
    let mut shared: HashMap<(String, String), usize> = HashMap::new();
    for share in env.docspace.share_requests() {
        let room: i64 = share.path["/api/2.0/files/rooms/".len()..]
            .trim_end_matches("/share")
            .parse()
            .unwrap();
        for invitation in share.json()["invitations"].as_array().unwrap() {
            let person = person_of[invitation["id"].as_str().unwrap()].clone();
            *shared.entry((person, room_of[&room].clone())).or_default() += 1;
        }
    }
    for pair in &pairs {
        assert_eq!(shared.get(pair), Some(&1), "{pair:?} shared once");
    }
    assert_eq!(shared.len(), pairs.len(), "no share beyond the pairs");
    let per_email = invitations_per_email(&env);
    assert_eq!(per_email.len(), PEOPLE);
    assert!(per_email.values().all(|&n| n == 1), "{per_email:?}");
    assert_eq!(process.terminate().await.code(), Some(0));
}
