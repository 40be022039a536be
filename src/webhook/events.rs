//! A verified delivery body → the events worth a job. Only the fields the bridge acts on are typed;
//! everything else in an event is ignored, so Asana adding fields never breaks ingestion. What is
//! worth a job depends on what the webhook watches: a project's webhook brings task events, a
//! workspace's brings new projects. With access revocation on (`access.revoke`), a project's
//! webhook also brings the events that may end someone's need of the room: unassigned, completed
//! (or re-opened), removed from the project, deleted.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::domain::{Gid, JobKind};

/// What a delivery holds, after filtering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub relevant: Vec<RelevantEvent>,
    /// Events acknowledged and ignored (other resources, actions or fields; with revocation off,
    /// the lifecycle events).
    pub ignored: usize,
}

/// What a webhook's deliveries are read for, from the resource it watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscription {
    /// A project's webhook: assignments and added tasks; project events are ignored. With
    /// `lifecycle` (`access.revoke` on) also unassignments, completions, removals from a project
    /// and deletions; without, those are ignored as unassignments always were.
    Tasks { lifecycle: bool },
    /// A workspace's webhook: projects added to the workspace; task events are ignored (Asana
    /// sends none to a workspace, and none is trusted from one).
    NewProjects,
}

impl Subscription {
    /// The subscription of a webhook on a resource of this `resource_type` (`webhooks.resource_type`),
    /// lifecycle events off: see [`Subscription::with_lifecycle`].
    pub fn for_resource_type(resource_type: &str) -> Option<Subscription> {
        match resource_type {
            "project" => Some(Subscription::Tasks { lifecycle: false }),
            "workspace" => Some(Subscription::NewProjects),
            _ => None,
        }
    }

    /// This subscription with lifecycle events read (`on`) or ignored; a workspace's has none.
    pub fn with_lifecycle(self, on: bool) -> Subscription {
        match self {
            Subscription::Tasks { .. } => Subscription::Tasks { lifecycle: on },
            Subscription::NewProjects => Subscription::NewProjects,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelevantEvent {
    /// `AssigneeChanged` or `TaskAdded` (tasks; with lifecycle events also `TaskUnassigned`,
    /// `CompletionChanged`, `TaskRemoved`, `TaskDeleted`), or `ProjectAdded` (new projects).
    pub kind: JobKind,
    /// The task's gid; for `ProjectAdded`, the new project's.
    pub task_gid: Gid,
    /// Identifies the event across redeliveries: Asana has no event id, so this hashes what the
    /// event says (task, action, new assignee, time). Equal events collapse into one job. A new
    /// project's is `project_added:<gid>`: a project is added once, however often it is reported.
    pub dedupe_key: String,
    /// The new assignee an assignment names (`None` for other events, or a gid that is not one).
    pub assignee_gid: Option<Gid>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeliveryError(pub String);

#[derive(Deserialize)]
struct RawDelivery {
    events: Vec<RawEvent>,
}

#[derive(Deserialize)]
struct RawEvent {
    action: String,
    resource: RawResource,
    #[serde(default)]
    change: Option<RawChange>,
    #[serde(default)]
    created_at: Option<String>,
    /// What an `added`/`removed` task went into or out of: a project, or a section of one. Read
    /// as any JSON, so a parent of an odd shape is an ignored event, never a refused delivery.
    #[serde(default)]
    parent: Option<serde_json::Value>,
}

impl RawEvent {
    /// `parent.resource_type`, when it is a string.
    fn parent_type(&self) -> Option<&str> {
        self.parent.as_ref()?.get("resource_type")?.as_str()
    }
}

#[derive(Deserialize)]
struct RawResource {
    gid: String,
    resource_type: String,
}

#[derive(Deserialize)]
struct RawChange {
    field: String,
    #[serde(default)]
    new_value: Option<serde_json::Value>,
}

/// Parses a delivery whose signature was already verified, to a webhook of `subscription`.
pub fn parse_delivery(body: &[u8], subscription: Subscription) -> Result<Delivery, DeliveryError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let raw: RawDelivery = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if path == "." || path.is_empty() {
            DeliveryError(format!("malformed delivery: {inner}"))
        } else {
            DeliveryError(format!("malformed delivery at {path}: {inner}"))
        }
    })?;
    de.end()
        .map_err(|err| DeliveryError(format!("malformed delivery: {err}")))?;

    let mut relevant = Vec::new();
    let mut ignored = 0;
    for (index, event) in raw.events.into_iter().enumerate() {
        let classified = match subscription {
            Subscription::Tasks { lifecycle } => classify(&event, lifecycle),
            Subscription::NewProjects => Ok(classify_new_project(&event)),
        }
        .map_err(|problem| {
            DeliveryError(format!("malformed delivery at events[{index}].{problem}"))
        })?;
        let Some((kind, assignee_gid)) = classified else {
            ignored += 1;
            continue;
        };
        let gid: Gid = event.resource.gid.parse().map_err(|_| {
            DeliveryError(format!(
                "malformed delivery at events[{index}].resource.gid: not an Asana gid"
            ))
        })?;
        let dedupe_key = match kind {
            JobKind::ProjectAdded => project_added_key(&gid),
            _ => dedupe_key(
                &gid,
                kind,
                assignee_gid.unwrap_or(""),
                event.created_at.as_deref().unwrap_or(""),
            ),
        };
        relevant.push(RelevantEvent {
            kind,
            task_gid: gid,
            dedupe_key,
            assignee_gid: assignee_gid.and_then(|gid| gid.parse().ok()),
        });
    }
    Ok(Delivery { relevant, ignored })
}

/// On a workspace's webhook, a project `added` (to the workspace) is the one relevant event.
fn classify_new_project(event: &RawEvent) -> Option<(JobKind, Option<&str>)> {
    (event.resource.resource_type == "project" && event.action == "added")
        .then_some((JobKind::ProjectAdded, None))
}

/// The dedupe key of a new project's job: the project alone, so every report of it is one job.
pub fn project_added_key(project: &Gid) -> String {
    format!("project_added:{project}")
}

/// The kind of a relevant event and its new assignee; `Ok(None)` for events the bridge ignores,
/// `Err` for an assignee change whose value has the wrong shape. `lifecycle`: the events that may
/// end a need of a room become jobs (their job reads the task; the stored row says who it was
/// assigned to), else they are ignored.
fn classify(
    event: &RawEvent,
    lifecycle: bool,
) -> Result<Option<(JobKind, Option<&str>)>, &'static str> {
    if event.resource.resource_type != "task" {
        return Ok(None);
    }
    let lifecycle_kind = |kind: JobKind| Ok(lifecycle.then_some((kind, None)));
    match event.action.as_str() {
        "added" => Ok(Some((JobKind::TaskAdded, None))),
        // Out of a section says nothing about the project: a move between sections is one.
        "removed" if event.parent_type() == Some("project") => lifecycle_kind(JobKind::TaskRemoved),
        "deleted" => lifecycle_kind(JobKind::TaskDeleted),
        "changed" => {
            let Some(change) = event.change.as_ref() else {
                return Ok(None);
            };
            // Asana sends no `new_value` for a boolean field: completed and re-opened look alike,
            // and the job reads which.
            if change.field == "completed" {
                return lifecycle_kind(JobKind::CompletionChanged);
            }
            if change.field != "assignee" {
                return Ok(None);
            }
            let new_value = match &change.new_value {
                // Who was unassigned is not said: the stored task row knows.
                None | Some(serde_json::Value::Null) => {
                    return lifecycle_kind(JobKind::TaskUnassigned);
                }
                Some(serde_json::Value::Object(value)) => value,
                Some(_) => return Err("change.new_value: expected an object or null"),
            };
            match new_value.get("resource_type") {
                None => {}
                Some(serde_json::Value::String(kind)) if kind == "user" => {}
                Some(serde_json::Value::String(_)) => return Ok(None),
                Some(_) => return Err("change.new_value.resource_type: expected a string"),
            }
            let gid = match new_value.get("gid") {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(gid)) => Some(gid.as_str()),
                Some(_) => return Err("change.new_value.gid: expected a string"),
            };
            Ok(Some((JobKind::AssigneeChanged, gid)))
        }
        _ => Ok(None),
    }
}

fn dedupe_key(task_gid: &Gid, kind: JobKind, assignee_gid: &str, created_at: &str) -> String {
    let mut hasher = Sha256::new();
    // Length-prefixed, so no choice of field contents can make two events hash alike.
    for part in [task_gid.as_str(), kind.as_str(), assignee_gid, created_at] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A project's webhook with revocation off, and on.
    const TASKS: Subscription = Subscription::Tasks { lifecycle: false };
    const LIFECYCLE: Subscription = Subscription::Tasks { lifecycle: true };

    const ASSIGNED: &str = r#"{"events":[{"user":{"gid":"1111","resource_type":"user"},"created_at":"2026-03-17T10:12:00.000Z",
      "action":"changed","resource":{"gid":"2222","resource_type":"task","resource_subtype":"default_task"},
      "parent":null,"change":{"field":"assignee","action":"changed","new_value":{"gid":"3333","resource_type":"user"}}}]}"#;

    const ADDED: &str = r#"{"events":[
      {"user":{"gid":"1","resource_type":"user"},"action":"added","created_at":"2026-03-17T10:11:06.474Z",
       "parent":{"gid":"123","resource_type":"project"},"resource":{"gid":"456","resource_type":"task","resource_subtype":"default_task"}},
      {"user":{"gid":"1","resource_type":"user"},"action":"added","created_at":"2026-03-17T10:11:06.474Z",
       "parent":{"gid":"789","resource_type":"section"},"resource":{"gid":"456","resource_type":"task","resource_subtype":"default_task"}}]}"#;

    #[test]
    fn assignee_set_is_relevant() {
        let d = parse_delivery(ASSIGNED.as_bytes(), TASKS).unwrap();
        assert_eq!(d.ignored, 0);
        assert_eq!(d.relevant.len(), 1);
        assert_eq!(d.relevant[0].kind, JobKind::AssigneeChanged);
        assert_eq!(d.relevant[0].task_gid, "2222");
    }

    #[test]
    fn task_added_to_project_and_section_share_a_key() {
        let d = parse_delivery(ADDED.as_bytes(), TASKS).unwrap();
        assert_eq!(d.relevant.len(), 2);
        assert!(d.relevant.iter().all(|e| e.kind == JobKind::TaskAdded));
        assert_eq!(d.relevant[0].dedupe_key, d.relevant[1].dedupe_key);
    }

    #[test]
    fn unassignment_is_ignored() {
        for body in [
            ASSIGNED.replace(r#","new_value":{"gid":"3333","resource_type":"user"}"#, ""),
            ASSIGNED.replace(r#"{"gid":"3333","resource_type":"user"}"#, "null"),
        ] {
            let d = parse_delivery(body.as_bytes(), TASKS).unwrap();
            assert!(d.relevant.is_empty(), "{body}");
            assert_eq!(d.ignored, 1);
        }
    }

    #[test]
    fn other_fields_resources_and_actions_are_ignored() {
        for body in [
            ASSIGNED.replace(r#""field":"assignee""#, r#""field":"name""#),
            ASSIGNED.replace(r#""resource_type":"task""#, r#""resource_type":"story""#),
            ASSIGNED.replace(
                r#""action":"changed","resource""#,
                r#""action":"removed","resource""#,
            ),
            ADDED.replace(r#""resource_type":"task""#, r#""resource_type":"project""#),
        ] {
            let d = parse_delivery(body.as_bytes(), TASKS).unwrap();
            assert!(d.relevant.is_empty(), "{body}");
        }
    }

    #[test]
    fn heartbeat_has_no_events() {
        let d = parse_delivery(br#"{"events":[]}"#, TASKS).unwrap();
        assert_eq!(
            d,
            Delivery {
                relevant: vec![],
                ignored: 0
            }
        );
    }

    #[test]
    fn the_same_event_twice_has_one_key_and_a_new_assignee_another() {
        let a = parse_delivery(ASSIGNED.as_bytes(), TASKS).unwrap();
        let again = parse_delivery(ASSIGNED.as_bytes(), TASKS).unwrap();
        let other = parse_delivery(ASSIGNED.replace("3333", "4444").as_bytes(), TASKS).unwrap();
        assert_eq!(a.relevant[0].dedupe_key, again.relevant[0].dedupe_key);
        assert_ne!(a.relevant[0].dedupe_key, other.relevant[0].dedupe_key);
    }

    #[test]
    fn keys_cannot_be_made_to_collide_through_separators() {
        // Found by reading what the fuzz target checks: with separator bytes instead of lengths,
        // ("a\u001fb", "c") and ("a", "b\u001fc") hashed the same.
        let body = r#"{"events":[
          {"action":"changed","resource":{"gid":"1","resource_type":"task"},"created_at":"c","change":{"field":"assignee","new_value":{"gid":"a\u001fb"}}},
          {"action":"changed","resource":{"gid":"1","resource_type":"task"},"created_at":"b\u001fc","change":{"field":"assignee","new_value":{"gid":"a"}}}]}"#;
        let d = parse_delivery(body.as_bytes(), TASKS).unwrap();
        assert_eq!(d.relevant.len(), 2);
        assert_ne!(d.relevant[0].dedupe_key, d.relevant[1].dedupe_key);
    }

    #[test]
    fn malformed_bodies_are_errors_naming_the_place() {
        let cases = [
            ("{", "malformed delivery"),
            ("", "malformed delivery"),
            (r#"{"events":{}}"#, "events"),
            (r#"{"nothing":[]}"#, "missing field `events`"),
            (
                r#"{"events":[{"action":"added","resource":{"gid":5,"resource_type":"task"}}]}"#,
                "events[0].resource.gid",
            ),
            (r#"{"events":[]} trailing"#, "trailing"),
        ];
        for (body, needle) in cases {
            let err = parse_delivery(body.as_bytes(), TASKS).unwrap_err();
            assert!(err.0.contains(needle), "{body}: {err}");
        }
    }

    #[test]
    fn an_assignee_value_of_the_wrong_type_is_malformed() {
        for (new_value, place) in [
            ("\"3333\"", "events[0].change.new_value"),
            ("[1]", "events[0].change.new_value"),
            (
                r#"{"gid":3333,"resource_type":"user"}"#,
                "events[0].change.new_value.gid",
            ),
            (
                r#"{"gid":"3333","resource_type":7}"#,
                "events[0].change.new_value.resource_type",
            ),
        ] {
            let body = ASSIGNED.replace(r#"{"gid":"3333","resource_type":"user"}"#, new_value);
            let err = parse_delivery(body.as_bytes(), TASKS).unwrap_err();
            assert!(err.0.contains(place), "{new_value}: {err}");
        }
    }

    #[test]
    fn gids_that_could_reach_a_url_badly_are_refused() {
        let body = ASSIGNED.replace(r#""gid":"2222""#, r#""gid":"22/../x\u0000""#);
        let err = parse_delivery(body.as_bytes(), TASKS).unwrap_err();
        assert!(err.0.contains("resource.gid"), "{err}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let body = format!(
            r#"{{"events":[{{"action":"added","x":{}{}}}]}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(parse_delivery(body.as_bytes(), TASKS).is_err());
    }

    /// A project added to workspace 80001, as a workspace webhook delivers it.
    const PROJECT_ADDED: &str = r#"{"events":[{"user":{"gid":"1111","resource_type":"user"},
      "created_at":"2026-12-03T10:00:00.000Z","action":"added",
      "resource":{"gid":"1200000000000900","resource_type":"project","name":"Launch"},
      "parent":{"gid":"80001","resource_type":"workspace"}}]}"#;

    #[test]
    fn a_project_added_on_a_workspace_webhook_is_one_job_however_often_reported() {
        let d = parse_delivery(PROJECT_ADDED.as_bytes(), Subscription::NewProjects).unwrap();
        assert_eq!(d.ignored, 0);
        assert_eq!(
            d.relevant,
            vec![RelevantEvent {
                kind: JobKind::ProjectAdded,
                task_gid: "1200000000000900".parse().unwrap(),
                dedupe_key: "project_added:1200000000000900".into(),
                assignee_gid: None,
            }]
        );
        let later = PROJECT_ADDED.replace("2026-12-03T10:00:00", "2026-12-04T11:00:00");
        let again = parse_delivery(later.as_bytes(), Subscription::NewProjects).unwrap();
        assert_eq!(again.relevant[0].dedupe_key, d.relevant[0].dedupe_key);
    }

    #[test]
    fn task_events_on_a_workspace_webhook_are_ignored() {
        for (body, events) in [(ASSIGNED, 1), (ADDED, 2)] {
            let d = parse_delivery(body.as_bytes(), Subscription::NewProjects).unwrap();
            assert_eq!((d.relevant.len(), d.ignored), (0, events), "{body}");
        }
        // Even one whose assignee has the wrong shape: a workspace's task events are never read.
        let odd = ASSIGNED.replace(r#"{"gid":"3333","resource_type":"user"}"#, "[1]");
        let d = parse_delivery(odd.as_bytes(), Subscription::NewProjects).unwrap();
        assert_eq!((d.relevant.len(), d.ignored), (0, 1));
    }

    #[test]
    fn other_project_events_on_a_workspace_webhook_are_ignored() {
        for body in [
            PROJECT_ADDED.replace(r#""action":"added""#, r#""action":"changed""#),
            PROJECT_ADDED.replace(r#""action":"added""#, r#""action":"removed""#),
            PROJECT_ADDED.replace(r#""resource_type":"project""#, r#""resource_type":"team""#),
        ] {
            let d = parse_delivery(body.as_bytes(), Subscription::NewProjects).unwrap();
            assert_eq!((d.relevant.len(), d.ignored), (0, 1), "{body}");
        }
    }

    #[test]
    fn project_events_on_a_project_webhook_are_ignored() {
        let d = parse_delivery(PROJECT_ADDED.as_bytes(), TASKS).unwrap();
        assert_eq!((d.relevant.len(), d.ignored), (0, 1));
    }

    #[test]
    fn a_new_project_whose_gid_is_not_one_is_malformed() {
        let body = PROJECT_ADDED.replace("1200000000000900", "12/../x");
        let err = parse_delivery(body.as_bytes(), Subscription::NewProjects).unwrap_err();
        assert!(err.0.contains("events[0].resource.gid"), "{err}");
    }

    #[test]
    fn an_assignment_names_its_assignee_and_a_bad_gid_names_none() {
        let d = parse_delivery(ASSIGNED.as_bytes(), TASKS).unwrap();
        assert_eq!(d.relevant[0].assignee_gid, Some("3333".parse().unwrap()));
        let bad = ASSIGNED.replace(r#""gid":"3333""#, r#""gid":"33x""#);
        let d = parse_delivery(bad.as_bytes(), TASKS).unwrap();
        assert_eq!(
            d.relevant.len(),
            1,
            "still relevant: the job reads the task"
        );
        assert_eq!(d.relevant[0].assignee_gid, None);
        let added = parse_delivery(ADDED.as_bytes(), TASKS).unwrap();
        assert!(added.relevant.iter().all(|e| e.assignee_gid.is_none()));
    }

    #[test]
    fn subscriptions_follow_the_watched_resource_type() {
        assert_eq!(Subscription::for_resource_type("project"), Some(TASKS));
        assert_eq!(
            Subscription::for_resource_type("workspace"),
            Some(Subscription::NewProjects)
        );
        assert_eq!(Subscription::for_resource_type("team"), None);
    }

    /// One task event on task 2222 at a fixed time, as a project's webhook delivers it.
    fn task_event(action: &str, parent: &str, change: &str) -> String {
        format!(
            r#"{{"events":[{{"user":{{"gid":"1111","resource_type":"user"}},"created_at":"2026-12-03T10:00:00.000Z",
              "action":"{action}","resource":{{"gid":"2222","resource_type":"task","resource_subtype":"default_task"}},
              "parent":{parent}{change}}}]}}"#
        )
    }

    fn unassigned() -> String {
        task_event(
            "changed",
            "null",
            r#","change":{"field":"assignee","action":"changed"}"#,
        )
    }

    fn completed() -> String {
        task_event(
            "changed",
            "null",
            r#","change":{"field":"completed","action":"changed"}"#,
        )
    }

    fn removed_from(parent_type: &str) -> String {
        task_event(
            "removed",
            &format!(r#"{{"gid":"1200000000000100","resource_type":"{parent_type}"}}"#),
            "",
        )
    }

    fn deleted() -> String {
        task_event("deleted", "null", "")
    }

    #[test]
    fn lifecycle_events_become_jobs_only_with_revocation_on() {
        for (body, kind) in [
            (unassigned(), JobKind::TaskUnassigned),
            (completed(), JobKind::CompletionChanged),
            (removed_from("project"), JobKind::TaskRemoved),
            (deleted(), JobKind::TaskDeleted),
        ] {
            let on = parse_delivery(body.as_bytes(), LIFECYCLE).unwrap();
            assert_eq!((on.relevant.len(), on.ignored), (1, 0), "{body}");
            let event = &on.relevant[0];
            assert_eq!(
                (event.kind, event.task_gid.as_str()),
                (kind, "2222"),
                "{body}"
            );
            assert_eq!(event.assignee_gid, None);
            assert_eq!(event.dedupe_key.len(), 64);
            let off = parse_delivery(body.as_bytes(), TASKS).unwrap();
            assert_eq!((off.relevant.len(), off.ignored), (0, 1), "{body}");
            let workspace = parse_delivery(body.as_bytes(), Subscription::NewProjects).unwrap();
            assert_eq!(
                (workspace.relevant.len(), workspace.ignored),
                (0, 1),
                "{body}"
            );
        }
    }

    #[test]
    fn an_unassignment_with_a_null_new_value_is_one_too() {
        let body = unassigned().replace(
            r#""action":"changed"}"#,
            r#""action":"changed","new_value":null}"#,
        );
        let d = parse_delivery(body.as_bytes(), LIFECYCLE).unwrap();
        assert_eq!(d.relevant[0].kind, JobKind::TaskUnassigned, "{body}");
    }

    #[test]
    fn a_removal_from_a_section_is_ignored_even_with_revocation_on() {
        for parent in ["section", "tag"] {
            let d = parse_delivery(removed_from(parent).as_bytes(), LIFECYCLE).unwrap();
            assert_eq!((d.relevant.len(), d.ignored), (0, 1), "{parent}");
        }
        // A parent of an odd shape says no project either: ignored, not a refused delivery.
        for parent in [
            "null",
            r#""1200000000000100""#,
            r#"{"gid":"1"}"#,
            r#"{"resource_type":5}"#,
        ] {
            let body = task_event("removed", parent, "");
            let d = parse_delivery(body.as_bytes(), LIFECYCLE).unwrap();
            assert_eq!((d.relevant.len(), d.ignored), (0, 1), "{body}");
        }
    }

    #[test]
    fn lifecycle_keys_differ_by_kind_and_time_and_repeat_for_a_redelivery() {
        let keys: Vec<String> = [
            unassigned(),
            completed(),
            removed_from("project"),
            deleted(),
        ]
        .iter()
        .map(|body| {
            parse_delivery(body.as_bytes(), LIFECYCLE).unwrap().relevant[0]
                .dedupe_key
                .clone()
        })
        .collect();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        let again = parse_delivery(completed().as_bytes(), LIFECYCLE).unwrap();
        assert_eq!(again.relevant[0].dedupe_key, keys[1]);
        let later = completed().replace("10:00:00", "10:05:00");
        let later = parse_delivery(later.as_bytes(), LIFECYCLE).unwrap();
        assert_ne!(
            later.relevant[0].dedupe_key, keys[1],
            "re-opened later: a new job"
        );
    }

    #[test]
    fn an_assignee_change_of_the_wrong_shape_is_malformed_with_revocation_on_too() {
        let body = ASSIGNED.replace(r#"{"gid":"3333","resource_type":"user"}"#, "[1]");
        let err = parse_delivery(body.as_bytes(), LIFECYCLE).unwrap_err();
        assert!(err.0.contains("events[0].change.new_value"), "{err}");
        // A completion's value is never read: whatever it is, the job reads the task.
        let odd = completed().replace(
            r#""action":"changed"}"#,
            r#""action":"changed","new_value":[1]}"#,
        );
        let d = parse_delivery(odd.as_bytes(), LIFECYCLE).unwrap();
        assert_eq!(d.relevant[0].kind, JobKind::CompletionChanged);
    }

    #[test]
    fn a_mixed_delivery_keeps_its_order_and_counts() {
        let events = [
            ASSIGNED,
            &unassigned(),
            ADDED,
            &removed_from("section"),
            &deleted(),
        ]
        .iter()
        .map(|body| {
            let inner = body.trim().trim_start_matches(r#"{"events":["#);
            inner.trim_end_matches("]}").to_string()
        })
        .collect::<Vec<_>>()
        .join(",");
        let body = format!(r#"{{"events":[{events}]}}"#);
        let d = parse_delivery(body.as_bytes(), LIFECYCLE).unwrap();
        let kinds: Vec<JobKind> = d.relevant.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                JobKind::AssigneeChanged,
                JobKind::TaskUnassigned,
                JobKind::TaskAdded,
                JobKind::TaskAdded,
                JobKind::TaskDeleted
            ]
        );
        assert_eq!(d.ignored, 1, "the section removal");
        let off = parse_delivery(body.as_bytes(), TASKS).unwrap();
        assert_eq!((off.relevant.len(), off.ignored), (3, 3));
    }

    #[test]
    fn lifecycle_is_set_on_a_projects_subscription_only() {
        assert_eq!(TASKS.with_lifecycle(true), LIFECYCLE);
        assert_eq!(LIFECYCLE.with_lifecycle(false), TASKS);
        assert_eq!(
            Subscription::NewProjects.with_lifecycle(true),
            Subscription::NewProjects
        );
    }
}
