//! The DocSpace client's room calls against the DocSpace fake: typed answers, and DocSpace's
//! refusals as permanent errors carrying its own message (429 and 5xx stay transient).

use std::time::Duration;

use asana_docspace_bridge::domain::{DocSpaceUserId, Gid, RoomId, RoomTag};
use asana_docspace_bridge::rooms::{RoomAccess, RoomType};
use asana_docspace_bridge::upstream::docspace::{NewRoom, RoomLookup};
use asana_docspace_bridge::upstream::{DocSpaceClient, UpstreamError};
use asana_docspace_fakes::{DocSpaceFake, Fault};
use secrecy::SecretString;

const KEY: &str = "sk-rooms-client";
const PROJECT: &str = "1200000000000100";

async fn start() -> (DocSpaceFake, DocSpaceClient) {
    let fake = DocSpaceFake::start(KEY).await;
    let client = DocSpaceClient::new(&fake.url(), SecretString::from(KEY), Duration::from_secs(5))
        .expect("the fake's URL");
    (fake, client)
}

fn room_id(id: i64) -> RoomId {
    RoomId::try_from(id).unwrap()
}

fn tag() -> RoomTag {
    RoomTag::for_project(&PROJECT.parse::<Gid>().unwrap())
}

fn refused(result: Result<impl std::fmt::Debug, UpstreamError>, status: u16, message: &str) {
    match result {
        Err(UpstreamError::Status {
            status: got,
            message: text,
            ..
        }) => {
            assert_eq!((got, text.as_str()), (status, message));
        }
        other => panic!("expected {status} {message:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn create_find_read_members_and_share_by_id() {
    let (fake, client) = start().await;
    fake.add_member_as("ann@example.com", "User");
    fake.add_member_as("joann@example.com", "User");

    let ann = client.find_user("ANN@example.com").await.unwrap().unwrap();
    assert_eq!(
        Some(ann.id.as_str().to_string()),
        fake.user_id("ann@example.com")
    );
    assert!(!ann.is_disabled());
    assert_eq!(client.find_user("nobody@example.com").await, Ok(None));

    let created = client
        .create_room(&NewRoom {
            title: "Website".into(),
            room_type: RoomType::Collaboration,
            tags: vec![tag().as_str().into()],
        })
        .await
        .unwrap();
    assert_eq!(created.title, "Website");
    assert_eq!(created.room_type(), Some(RoomType::Collaboration));
    assert!(created.has_tag(&tag()) && !created.is_archived());
    let request = &fake.room_create_requests()[0];
    assert!(request.json().get("private").is_none());

    // A near tag is not this project's.
    fake.create_room("Other", 2, &["asana-project:12000000000001000"]);
    let found = client.find_rooms_by_tag(&tag()).await.unwrap();
    let exact: Vec<i64> = found
        .iter()
        .filter(|r| r.has_tag(&tag()))
        .map(|r| r.id.get())
        .collect();
    assert_eq!(exact, vec![created.id.get()]);

    assert_eq!(
        client.get_room(created.id).await,
        Ok(RoomLookup::Found(created.clone()))
    );

    fake.share_by_hand(created.id.get(), "joann@example.com", 2);
    let page = client
        .room_members(created.id, "ann@example.com", 0)
        .await
        .unwrap();
    assert_eq!(page.total, Some(1), "the filter is fuzzy: joann@ matches");
    assert!(
        !page
            .members
            .iter()
            .any(|m| m.is(Some(&ann.id), "ann@example.com"))
    );

    let members = client
        .share_room(created.id, &ann.id, RoomAccess::Editing, true)
        .await
        .unwrap();
    assert!(
        members
            .iter()
            .any(|m| m.is(Some(&ann.id), "ann@example.com") && m.access == 10)
    );
    let body = fake.share_requests()[0].json();
    assert_eq!(
        body,
        serde_json::json!({"invitations": [{"id": ann.id.as_str(), "access": 10}], "notify": true})
    );
    let page = client
        .room_members(created.id, "ann@example.com", 0)
        .await
        .unwrap();
    assert!(
        page.members
            .iter()
            .any(|m| m.is(Some(&ann.id), "ann@example.com"))
    );
    assert!(
        fake.members(created.id.get())
            .contains(&("joann@example.com".to_string(), 2)),
        "the share is a delta: joann keeps Read"
    );
}

#[tokio::test]
async fn docspace_refusals_are_permanent_and_carry_its_message() {
    let (fake, client) = start().await;
    let new_room = NewRoom {
        title: "Website".into(),
        room_type: RoomType::Collaboration,
        tags: vec![tag().as_str().into()],
    };
    fake.set_room_quota(Some(0));
    let quota = client.create_room(&new_room).await;
    assert!(quota.as_ref().is_err_and(|e| !e.is_transient()));
    refused(quota, 402, "The room limit of your tariff has been reached");
    fake.set_room_quota(None);
    fake.set_can_create_rooms(false);
    refused(client.create_room(&new_room).await, 403, "Access denied");

    fake.add_member_as("ann@example.com", "User");
    let ann: DocSpaceUserId = fake.user_id("ann@example.com").unwrap().parse().unwrap();
    let public = room_id(fake.create_room("Public", 6, &[]));
    let role = client
        .share_room(public, &ann, RoomAccess::Editing, false)
        .await;
    assert!(
        role.as_ref()
            .is_err_and(|e| !e.is_transient() && e.status() == Some(403))
    );
    refused(role, 403, "role not available");

    let archived = room_id(fake.create_room("Old", 2, &[]));
    fake.archive_room(archived.get());
    match client.get_room(archived).await {
        Ok(RoomLookup::Found(room)) => assert!(room.is_archived()),
        other => panic!("archived room: {other:?}"),
    }
    refused(
        client
            .share_room(archived, &ann, RoomAccess::Read, false)
            .await,
        403,
        "Access denied",
    );

    let deleted = room_id(fake.create_room("Gone", 2, &[]));
    fake.delete_room(deleted.get());
    assert_eq!(client.get_room(deleted).await, Ok(RoomLookup::NotFound));
    refused(
        client.room_members(deleted, "ann@example.com", 0).await,
        404,
        "The required folder was not found",
    );
    refused(
        client
            .share_room(deleted, &ann, RoomAccess::Read, false)
            .await,
        404,
        "The required folder was not found",
    );
}

#[tokio::test]
async fn rate_limits_and_server_errors_stay_transient() {
    let (fake, client) = start().await;
    let room = room_id(fake.create_room("Website", 2, &[]));
    fake.add_member_as("ann@example.com", "User");
    let ann: DocSpaceUserId = fake.user_id("ann@example.com").unwrap().parse().unwrap();
    fake.push_fault("share_room", Fault::rate_limited(Some("7")));
    let limited = client
        .share_room(room, &ann, RoomAccess::Editing, true)
        .await
        .unwrap_err();
    assert!(limited.is_transient());
    assert_eq!(limited.retry_after(), Some(Duration::from_secs(7)));
    for route in ["create_room", "find_rooms", "get_room", "room_members"] {
        fake.push_fault(route, Fault::html(503));
    }
    let errors = [
        client
            .create_room(&NewRoom {
                title: "x".into(),
                room_type: RoomType::Custom,
                tags: Vec::new(),
            })
            .await
            .unwrap_err(),
        client.find_rooms_by_tag(&tag()).await.unwrap_err(),
        client.get_room(room).await.unwrap_err(),
        client.room_members(room, "ann", 0).await.unwrap_err(),
    ];
    for error in errors {
        assert!(error.is_transient(), "{error}");
        assert_eq!(error.status(), Some(503));
    }
    assert!(
        fake.members(room.get())
            .iter()
            .all(|(e, _)| e != "ann@example.com")
    );
}

#[tokio::test]
async fn a_members_search_that_never_ends_is_an_invalid_response_after_fifty_pages() {
    use asana_docspace_bridge::upstream::docspace::{MAX_MEMBER_PAGES, PAGE_SIZE};
    let (fake, client) = start().await;
    let room = fake.create_room("Website", 2, &[]);
    // Every page full: a DocSpace (or a proxy) that would keep a reader paging forever.
    let entry = serde_json::json!({"access": 10, "subjectType": 0,
        "sharedToUser": {"id": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "email": "someone@example.com"}});
    let full_page = serde_json::json!({
        "response": vec![entry; PAGE_SIZE as usize],
        "total": 1_000_000,
    });
    for _ in 0..=MAX_MEMBER_PAGES {
        fake.push_fault("room_members", Fault::json(200, full_page.clone()));
    }

    let read = client
        .room_members_matching(room_id(room), "ann@example.com")
        .await;

    match read {
        Err(UpstreamError::InvalidResponse { message, .. }) => {
            assert!(message.contains("over 5000 member entries"), "{message}")
        }
        other => panic!("expected an invalid response, got {other:?}"),
    }
    assert_eq!(
        fake.calls_by_route().get("room_members"),
        Some(&u64::from(MAX_MEMBER_PAGES))
    );
}
