//! Arbitrary bytes as a webhook delivery body (`parse_delivery` runs on every verified delivery).
//!
//! Invariants checked:
//! - it never panics (libFuzzer reports a panic as a crash);
//! - it is deterministic: the same bytes give the same result twice;
//! - an `Err` says "malformed delivery";
//! Each input is parsed as a delivery to a project's webhook with access revocation off and on
//! (`Subscription::Tasks { lifecycle }`) and to a workspace's (`Subscription::NewProjects`), and
//! for each:
//! - on `Ok`, every relevant event has a gid of 1 to 64 ASCII letters, digits, `-` or `_`; a task
//!   event's dedupe key is 64 lowercase hex digits, a new project's is `project_added:<gid>`;
//! - on `Ok`, when serde_json also reads the bytes as a JSON object with an `events` array (an
//!   oracle independent of the crate's typed structs): `relevant.len() + ignored` is the array's
//!   length; the relevant events are exactly those the documented rules pick, in order, with
//!   their kind and gid. Tasks: resource_type `task` and action `added`, or action `changed` on
//!   field `assignee` whose new_value is an object whose resource_type, if present, is `user`; no
//!   event is an assignee change of the wrong shape (new_value neither an object nor null, its
//!   resource_type not a string, its gid neither a string nor null: those make the delivery an
//!   error). With `lifecycle` also: action `changed` on field `assignee` whose new_value is
//!   absent or null (unassigned), action `changed` on field `completed` (whatever its value),
//!   action `removed` whose parent's resource_type is `project` (a section's is ignored), action
//!   `deleted`. Two relevant events have equal dedupe keys exactly when (task gid, kind, new
//!   assignee gid, created_at) are equal ("Equal events collapse into one job", and only those).
//!   New projects: resource_type `project` and action `added`, nothing else (task events of any
//!   shape are ignored), and two have equal keys exactly when their gids are equal.
#![no_main]

use asana_docspace_bridge::domain::JobKind;
use asana_docspace_bridge::webhook::{Delivery, Subscription, parse_delivery};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    for subscription in [
        Subscription::Tasks { lifecycle: false },
        Subscription::Tasks { lifecycle: true },
        Subscription::NewProjects,
    ] {
        check(data, subscription);
    }
});

fn check(data: &[u8], subscription: Subscription) {
    let first = parse_delivery(data, subscription);
    let second = parse_delivery(data, subscription);
    assert_eq!(first, second, "parse_delivery is not deterministic");

    let delivery = match first {
        Ok(delivery) => delivery,
        Err(err) => {
            assert!(
                err.0.starts_with("malformed delivery"),
                "unexpected error text: {err}"
            );
            return;
        }
    };

    for event in &delivery.relevant {
        let gid = event.task_gid.as_str();
        assert!(
            !gid.is_empty()
                && gid.len() <= 64
                && gid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "relevant event with a bad task gid: {gid:?}"
        );
        let key = &event.dedupe_key;
        if event.kind == JobKind::ProjectAdded {
            assert_eq!(*key, format!("project_added:{gid}"), "new project's key");
            continue;
        }
        assert!(
            key.len() == 64
                && key
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "dedupe key is not 64 lowercase hex digits: {key:?}"
        );
    }

    // The independent oracle: only where serde_json reads the same bytes as a JSON value.
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Some(events) = value.get("events").and_then(Value::as_array) else {
        return;
    };
    check_against_oracle(&delivery, events, subscription);
}

/// What the documented rules say about one event: `Ok(Some((kind, task gid, assignee gid,
/// created_at)))` when it is relevant, `Ok(None)` when it is ignored, `Err` when it is an assignee
/// change whose value has the wrong shape (which must make the whole delivery an error).
type Expected<'a> = (JobKind, &'a str, &'a str, &'a str);

fn expected(event: &Value, subscription: Subscription) -> Result<Option<Expected<'_>>, &'static str> {
    let resource = event.get("resource").ok_or("resource missing")?;
    let resource_type = resource
        .get("resource_type")
        .and_then(Value::as_str)
        .ok_or("resource.resource_type not a string")?;
    let gid = resource
        .get("gid")
        .and_then(Value::as_str)
        .ok_or("resource.gid not a string")?;
    let action = event
        .get("action")
        .and_then(Value::as_str)
        .ok_or("action not a string")?;
    let lifecycle = match subscription {
        Subscription::NewProjects => {
            return Ok((resource_type == "project" && action == "added")
                .then_some((JobKind::ProjectAdded, gid, "", "")));
        }
        Subscription::Tasks { lifecycle } => lifecycle,
    };
    if resource_type != "task" {
        return Ok(None);
    }
    let created_at = event
        .get("created_at")
        .and_then(Value::as_str)
        .unwrap_or("");
    let lifecycle_event =
        |kind: JobKind| Ok(lifecycle.then_some((kind, gid, "", created_at)));
    let parent_type = event
        .get("parent")
        .and_then(|p| p.get("resource_type"))
        .and_then(Value::as_str);
    match action {
        "added" => Ok(Some((JobKind::TaskAdded, gid, "", created_at))),
        "removed" if parent_type == Some("project") => lifecycle_event(JobKind::TaskRemoved),
        "deleted" => lifecycle_event(JobKind::TaskDeleted),
        "changed" => {
            let Some(change) = event.get("change").filter(|c| !c.is_null()) else {
                return Ok(None);
            };
            let field = change.get("field").and_then(Value::as_str);
            if field == Some("completed") {
                return lifecycle_event(JobKind::CompletionChanged);
            }
            if field != Some("assignee") {
                return Ok(None);
            }
            let new_value = match change.get("new_value") {
                None | Some(Value::Null) => return lifecycle_event(JobKind::TaskUnassigned),
                Some(Value::Object(value)) => value,
                Some(_) => return Err("change.new_value is neither an object nor null"),
            };
            match new_value.get("resource_type") {
                None => {}
                Some(Value::String(kind)) if kind == "user" => {}
                Some(Value::String(_)) => return Ok(None),
                Some(_) => return Err("change.new_value.resource_type is not a string"),
            }
            let assignee = match new_value.get("gid") {
                None | Some(Value::Null) => "",
                Some(Value::String(gid)) => gid.as_str(),
                Some(_) => return Err("change.new_value.gid is neither a string nor null"),
            };
            Ok(Some((
                JobKind::AssigneeChanged,
                gid,
                assignee,
                created_at,
            )))
        }
        _ => Ok(None),
    }
}

fn check_against_oracle(delivery: &Delivery, events: &[Value], subscription: Subscription) {
    assert_eq!(
        delivery.relevant.len() + delivery.ignored,
        events.len(),
        "relevant + ignored != number of events"
    );
    let mut wanted = Vec::new();
    for (index, event) in events.iter().enumerate() {
        match expected(event, subscription) {
            Ok(Some(relevant)) => wanted.push(relevant),
            Ok(None) => {}
            Err(problem) => {
                panic!("Ok for a delivery whose events[{index}] is malformed: {problem}")
            }
        }
    }
    assert_eq!(
        delivery.relevant.len(),
        wanted.len(),
        "relevant events differ from the documented rules: got {:?}, want {wanted:?}",
        delivery.relevant
    );
    for (got, want) in delivery.relevant.iter().zip(&wanted) {
        assert_eq!(got.kind, want.0, "kind of {got:?}, want {want:?}");
        assert_eq!(got.task_gid, want.1, "task gid of {got:?}, want {want:?}");
    }
    for (i, (a, wa)) in delivery.relevant.iter().zip(&wanted).enumerate() {
        for (b, wb) in delivery.relevant.iter().zip(&wanted).skip(i + 1) {
            assert_eq!(
                a.dedupe_key == b.dedupe_key,
                wa == wb,
                "dedupe keys {} and {} vs events {wa:?} and {wb:?}",
                a.dedupe_key,
                b.dedupe_key
            );
        }
    }
}
