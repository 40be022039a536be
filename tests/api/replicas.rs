//! PostgreSQL: several replicas on one database, and a database that goes away and comes back.
//! These need a server: they are skipped, saying so, when BRIDGE_TEST_DATABASE_URL is unset.

use asana_docspace_bridge::store::JobStatus;
use std::collections::HashMap;
use std::time::Duration;

use asana_docspace_bridge::Application;
use asana_docspace_fakes::{Fault, assignment_delivery};
use serde_json::Value;
use tokio::task::JoinSet;

use crate::helpers::{
    Backend, Bridge, BridgeProcess, Env, PROJECT, TcpProxy, TestApp, WAIT, eventually, gid,
    settled_jobs,
};

/// Every email DocSpace invited, with how many times.
fn invitations_per_email(env: &Env) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for invitation in env.docspace.sent_invitations() {
        *counts.entry(invitation.email).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_once() {
    let Some(env) = Env::on(Backend::Postgres).await else {
        return;
    };
    let (a, b) = tokio::join!(
        Application::build(env.settings()),
        Application::build(env.settings())
    );
    a.expect("first replica starts");
    b.expect("second replica starts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_invite_each_person_once_and_survive_losing_one() {
    let Some(mut env) = Env::on(Backend::Postgres).await else {
        return;
    };
    env.set("BRIDGE__WORKER__LEASE_MS", "2000");
    env.set("BRIDGE__WORKER__REQUEST_TIMEOUT_MS", "1000");
    let a = BridgeProcess::start(&env).await;
    let b = BridgeProcess::start(&env).await;
    let secret = a.bridge.register("proj").await;

    // 200 assignments for 50 people, spread over both replicas, every fifth sent to both.
    for task in 0..200 {
        let person = task % 50;
        env.assign(
            &format!("{}", 10_000 + task),
            &format!("{}", 600 + person),
            &format!("person{person}@example.com"),
        );
    }
    let mut acknowledged = 0;
    for task in 0..200 {
        let body = assignment_delivery(
            &format!("{}", 10_000 + task),
            &format!("{}", 600 + task % 50),
        );
        let first = if task % 2 == 0 { &a } else { &b };
        let other = if task % 2 == 0 { &b } else { &a };
        assert_eq!(
            first.bridge.deliver("proj", &secret, &body).await.status(),
            200
        );
        acknowledged += 1;
        if task % 5 == 0 {
            assert_eq!(
                other.bridge.deliver("proj", &secret, &body).await.status(),
                200,
                "a duplicate to the other replica"
            );
        }
    }
    let store = env.store().await;
    let jobs = settled_jobs(&store).await;
    assert_eq!(
        jobs.len(),
        acknowledged,
        "duplicates collapse into one job per event"
    );
    let counts = invitations_per_email(&env);
    assert_eq!(counts.len(), 50);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert_eq!(
        env.docspace.invite_requests().len(),
        50,
        "no duplicate POST either"
    );
    assert!(
        jobs.iter()
            .all(|j| j.status == JobStatus::Done && j.lease_owner.is_none()),
        "nothing pending or running"
    );

    // Now slow DocSpace down, queue 100 more for 25 new people, and kill replica A mid-run.
    env.docspace.set_latency(Duration::from_millis(150));
    for task in 200..300 {
        let person = 50 + task % 25;
        env.assign(
            &format!("{}", 10_000 + task),
            &format!("{}", 600 + person),
            &format!("person{person}@example.com"),
        );
    }
    for task in 200..300 {
        let body = assignment_delivery(
            &format!("{}", 10_000 + task),
            &format!("{}", 600 + 50 + task % 25),
        );
        let replica = if task % 2 == 0 { &a } else { &b };
        assert_eq!(
            replica
                .bridge
                .deliver("proj", &secret, &body)
                .await
                .status(),
            200
        );
    }
    let a_prefix = format!("{}-", a.child.id().expect("A runs"));
    eventually("replica A to hold running jobs", WAIT, || async {
        let running = store
            .list_jobs(Some(JobStatus::Running), 1000)
            .await
            .unwrap();
        running
            .iter()
            .any(|j| {
                j.lease_owner
                    .as_deref()
                    .is_some_and(|o| o.starts_with(&a_prefix))
            })
            .then_some(())
    })
    .await;
    a.kill9().await;

    let jobs = settled_jobs(&store).await;
    assert_eq!(jobs.len(), acknowledged + 100);
    assert!(
        jobs.iter().all(|j| j.status == JobStatus::Done),
        "the survivor finished A's jobs"
    );
    let counts = invitations_per_email(&env);
    assert_eq!(counts.len(), 75);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert_eq!(b.terminate().await.code(), Some(0));
}

/// How many shares a replica logged.
fn rooms_shared_by(replica: &BridgeProcess) -> usize {
    replica
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["message"] == "room shared")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_make_one_room_for_twenty_concurrent_first_jobs() {
    let Some(mut env) = Env::on(Backend::Postgres).await else {
        return;
    };
    env.set("BRIDGE__ROOMS__MODE", "auto");
    // Ten each: neither replica can take all twenty while the room is being created.
    env.set("BRIDGE__WORKER__CONCURRENCY", "10");
    let people: Vec<String> = (0..20).map(|i| format!("p{i}@example.com")).collect();
    for (i, person) in people.iter().enumerate() {
        env.docspace.add_member(person);
        env.assign(&format!("{}", 500 + i), &format!("{}", 600 + i), person);
    }
    env.docspace
        .push_fault("create_room", Fault::Delay(Duration::from_millis(200)));
    let store = env.store().await;
    env.database
        .add_known_project("website", PROJECT, "Website")
        .await;
    let a = BridgeProcess::start(&env).await;
    let b = BridgeProcess::start(&env).await;
    let secret = a.bridge.register("proj").await;

    // All twenty at once, half to each replica.
    let mut deliveries = JoinSet::new();
    for i in 0..20 {
        let replica = Bridge::at(if i % 2 == 0 {
            &a.bridge.address
        } else {
            &b.bridge.address
        });
        let secret = secret.clone();
        deliveries.spawn(async move {
            replica
                .deliver_assignment(
                    "proj",
                    &secret,
                    &format!("{}", 500 + i),
                    &format!("{}", 600 + i),
                )
                .await;
        });
    }
    deliveries.join_all().await;

    let jobs = eventually("every job is granted", WAIT, || async {
        let jobs = settled_jobs(&store).await;
        (jobs.len() == 20 && jobs.iter().all(|j| j.outcome.as_deref() == Some("granted")))
            .then_some(jobs)
    })
    .await;
    assert!(jobs.iter().all(|j| j.status == JobStatus::Done));
    assert_eq!(env.docspace.room_create_requests().len(), 1, "one POST");
    let rooms = env.docspace.rooms();
    assert_eq!(rooms.len(), 1, "one room");
    let room = rooms[0].id;
    let mapped = store.project_room(&gid(PROJECT)).await.unwrap().unwrap();
    assert_eq!(mapped.room_id, room, "one mapping, to that room");
    let share_path = format!("/api/2.0/files/rooms/{room}/share");
    let mut shared: HashMap<String, usize> = HashMap::new();
    for share in env.docspace.share_requests() {
        assert_eq!(share.path, share_path, "every share is into that room");
        for invitation in share.json()["invitations"].as_array().unwrap() {
            *shared
                .entry(invitation["id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    assert_eq!(shared.len(), 20, "{shared:?}");
    for person in &people {
        let id = env.docspace.user_id(person).unwrap();
        assert_eq!(shared.get(&id), Some(&1), "{person} shared once");
    }
    let members = env.docspace.members(room);
    for person in &people {
        assert!(members.contains(&(person.clone(), 10)), "{person} edits");
    }
    let (by_a, by_b) = eventually("each share in a replica's log", WAIT, || async {
        let (by_a, by_b) = (rooms_shared_by(&a), rooms_shared_by(&b));
        (by_a + by_b == 20).then_some((by_a, by_b))
    })
    .await;
    assert!(
        by_a > 0 && by_b > 0,
        "both replicas shared: {by_a} and {by_b}"
    );
    assert_eq!(a.terminate().await.code(), Some(0));
    assert_eq!(b.terminate().await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_the_service_recovers_by_itself() {
    let Some(mut env) = Env::on(Backend::Postgres).await else {
        return;
    };
    let mut url = url::Url::parse(env.database.url()).unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let proxy = TcpProxy::start(upstream).await;
    url.set_port(Some(proxy.address.port())).unwrap();
    url.set_host(Some("127.0.0.1")).unwrap();
    env.set("BRIDGE__DATABASE__URL", url.as_str());
    env.set("BRIDGE__DATABASE__ACQUIRE_TIMEOUT_MS", "1000");
    env.assign("501", "601", "before@example.com");
    env.assign("502", "602", "after@example.com");
    let app = TestApp::spawn(&env).await;
    let secret = app.bridge.register("proj").await;
    app.bridge
        .deliver_assignment("proj", &secret, "501", "601")
        .await;
    assert!(env.docspace.wait_for_sent(1, WAIT).await);

    proxy.cut();

    let body: Value = eventually("readyz to answer 503", WAIT, || async {
        let response = app
            .bridge
            .client
            .get(app.bridge.url("/readyz"))
            .send()
            .await
            .unwrap();
        if response.status() == 503 {
            Some(response.json().await.unwrap())
        } else {
            None
        }
    })
    .await;
    assert!(body["error"].as_str().unwrap().contains("store"), "{body}");
    let delivery = app
        .bridge
        .deliver("proj", &secret, &assignment_delivery("502", "602"))
        .await;
    assert_eq!(delivery.status(), 503, "Asana will retry");
    let error: Value = delivery.json().await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("unavailable"),
        "{error}"
    );

    proxy.restore();

    eventually("readyz to recover", WAIT, || async {
        let response = app
            .bridge
            .client
            .get(app.bridge.url("/readyz"))
            .send()
            .await
            .unwrap();
        (response.status() == 200).then_some(())
    })
    .await;
    // Asana's retry of the refused delivery now goes through.
    app.bridge
        .deliver_assignment("proj", &secret, "502", "602")
        .await;
    assert!(env.docspace.wait_for_sent(2, WAIT).await);
    let sent = env.docspace.sent_emails();
    assert_eq!(sent, ["after@example.com", "before@example.com"]);
}
