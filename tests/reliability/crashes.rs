//! kill -9 at random moments while 1,000 assignments arrive: every acknowledged one is invited,
//! exactly once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asana_docspace_fakes::{assignment_delivery, sign};
use tokio::sync::Notify;

use asana_docspace_bridge::store::JobStatus;
use rstest::rstest;

use crate::helpers::{Backend, BridgeProcess, Env, WAIT, eventually};

const ASSIGNMENTS: usize = 1_000;
const KILLS: usize = 6;
const SENDERS: usize = 4;

fn email(i: usize) -> String {
    format!("crash{i}@example.com")
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_assignment_is_invited_once_across_kill_9(#[case] backend: Backend) {
    let Some(mut env) = Env::on(backend).await else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    env.set("BRIDGE__SERVER__PORT", &port.to_string());
    env.set("BRIDGE__WORKER__LEASE_MS", "1500");
    env.set("BRIDGE__WORKER__REQUEST_TIMEOUT_MS", "1000");
    env.set("BRIDGE__ASANA__REQUESTS_PER_MINUTE", "1000000");
    // Slow enough that jobs are in flight when the kills come.
    env.docspace.set_latency(Duration::from_millis(3));
    for i in 0..ASSIGNMENTS {
        env.assign(
            &format!("{}", 100_000 + i),
            &format!("{}", 200_000 + i),
            &email(i),
        );
    }
    let mut process = BridgeProcess::start(&env).await;
    let secret = process.bridge.register("proj").await;
    let url = process.bridge.url("/webhooks/asana/proj");
    // Asana resends the same bytes: build each delivery once.
    let deliveries: Arc<Vec<(String, String)>> = Arc::new(
        (0..ASSIGNMENTS)
            .map(|i| {
                let body =
                    assignment_delivery(&format!("{}", 100_000 + i), &format!("{}", 200_000 + i))
                        .to_string();
                let signature = sign(&secret, body.as_bytes());
                (body, signature)
            })
            .collect(),
    );

    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let next = Arc::new(Mutex::new(0usize));
    let progress = Arc::new(Notify::new());
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (deliveries, acknowledged, next, url, progress) = (
            deliveries.clone(),
            acknowledged.clone(),
            next.clone(),
            url.clone(),
            progress.clone(),
        );
        senders.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            loop {
                let i = {
                    let mut next = next.lock().unwrap();
                    if *next == ASSIGNMENTS {
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
                        progress.notify_waiters();
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }

    let store = env.store().await;
    let mut interrupted = 0;
    for kill in 0..KILLS {
        // At a random moment while the assignments arrive.
        let target = (kill + 1) * ASSIGNMENTS / (KILLS + 2)
            + rand::random_range(0..ASSIGNMENTS / (KILLS * 3));
        eventually("the senders to make progress", WAIT * 3, || async {
            (acknowledged.lock().unwrap().len() >= target).then_some(())
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
        process = BridgeProcess::start(&env).await;
    }
    assert!(interrupted > 0, "the kills caught jobs in flight");
    for sender in senders {
        sender.await.unwrap();
    }
    assert_eq!(acknowledged.lock().unwrap().len(), ASSIGNMENTS);

    let jobs = eventually("every job to finish", WAIT * 6, || async {
        let jobs = store.list_jobs(None, 100_000).await.unwrap();
        (jobs.len() >= ASSIGNMENTS
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
    let mut per_email: HashMap<String, usize> = HashMap::new();
    for invitation in env.docspace.sent_invitations() {
        *per_email.entry(invitation.email).or_default() += 1;
    }
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
