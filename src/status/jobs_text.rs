//! A job's per-room results in words, as `jobs list` prints them and the status page shows them.

/// What a job's `room_results` says, for people: `45 granted (created); 46 already_in_room`, or
/// `None` when it recorded none. Text that is not the expected JSON is shown as it is.
pub fn room_results_text(room_results: Option<&str>) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct RoomResult {
        room: Option<i64>,
        result: String,
        room_event: Option<String>,
    }
    let stored = room_results?;
    let Ok(results) = serde_json::from_str::<Vec<RoomResult>>(stored) else {
        return Some(stored.to_string());
    };
    if results.is_empty() {
        return None;
    }
    Some(
        results
            .iter()
            .map(|r| {
                let room = r.room.map_or_else(|| "-".to_string(), |id| id.to_string());
                match &r.room_event {
                    Some(event) => format!("{room} {} ({event})", r.result),
                    None => format!("{room} {}", r.result),
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_results_read_per_room() {
        assert_eq!(
            room_results_text(Some(
                r#"[{"project":"1","room":45,"access":"Editing","result":"granted","room_event":"created"},
                    {"project":"2","room":46,"access":"Read","result":"already_in_room"},
                    {"project":"3","result":"no_room"}]"#
            ))
            .as_deref(),
            Some("45 granted (created); 46 already_in_room; - no_room")
        );
        assert_eq!(room_results_text(None), None);
        assert_eq!(room_results_text(Some("[]")), None);
        assert_eq!(
            room_results_text(Some("not json")).as_deref(),
            Some("not json")
        );
    }
}
