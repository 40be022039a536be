//! The window maths of a pass, pure: where it reads from, when the next one is due, and how a
//! failed one backs off.

use std::time::Duration;

use crate::store::duration_ms;
use crate::worker::backoff_delay;

/// How far before the cursor a pass reads: clock skew between us and Asana, and Asana's delay
/// in indexing a change.
pub const CURSOR_MARGIN: Duration = Duration::from_secs(300);

/// The first backoff of a failed pass; it doubles per failure, up to the interval (an hour with
/// passes off).
pub const FAILURE_BACKOFF: Duration = Duration::from_secs(300);
const FAILURE_BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// Where a pass reads from (ms): the earlier of the cursor and an asked `since`, less the
/// margin. `None`: a first pass, which reads every incomplete task.
pub fn pass_window(cursor: Option<i64>, since: Option<i64>) -> Option<i64> {
    [cursor, since]
        .into_iter()
        .flatten()
        .min()
        .map(|t| t.saturating_sub(duration_ms(CURSOR_MARGIN)))
}

/// When the next pass is due after one `ended` (ms); `None` with passes off.
pub fn next_due(ended: i64, interval: Option<Duration>) -> Option<i64> {
    interval.map(|interval| ended.saturating_add(duration_ms(interval)))
}

/// When a pass that failed at `now` (after `failures` earlier failures in a row) is due again:
/// the worker's jittered doubling from 5 minutes, at most the interval, so replicas that failed
/// together do not return together.
pub fn failure_due(now: i64, interval: Option<Duration>, failures: i64) -> i64 {
    let max = interval.unwrap_or(FAILURE_BACKOFF_MAX);
    let delay = backoff_delay(failures.saturating_add(1), FAILURE_BACKOFF.min(max), max);
    now.saturating_add(duration_ms(delay))
}

/// A pass's job for one assignment: the same task, assignee and change is one job however many
/// passes read it.
pub fn candidate_key(task: &str, assignee: &str, modified_at: Option<&str>) -> String {
    format!("reconcile:{task}:{assignee}:{}", modified_at.unwrap_or("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARGIN: i64 = 300_000;

    #[test]
    fn a_first_pass_has_no_window() {
        assert_eq!(pass_window(None, None), None);
    }

    #[test]
    fn the_window_starts_at_the_earlier_of_cursor_and_since_less_the_margin() {
        assert_eq!(pass_window(Some(1_000_000), None), Some(1_000_000 - MARGIN));
        assert_eq!(pass_window(None, Some(900_000)), Some(900_000 - MARGIN));
        assert_eq!(
            pass_window(Some(1_000_000), Some(900_000)),
            Some(900_000 - MARGIN)
        );
        assert_eq!(
            pass_window(Some(800_000), Some(900_000)),
            Some(800_000 - MARGIN)
        );
    }

    #[test]
    fn the_next_pass_is_due_an_interval_later_or_never_with_passes_off() {
        assert_eq!(
            next_due(10_000, Some(Duration::from_secs(60))),
            Some(70_000)
        );
        assert_eq!(next_due(10_000, None), None);
    }

    #[test]
    fn failures_back_off_doubling_up_to_the_interval() {
        // Jittered: between half the ceiling and the ceiling.
        let within = |due: i64, ceiling: i64| (ceiling / 2..=ceiling).contains(&due);
        let hour = Some(Duration::from_secs(3600));
        for _ in 0..50 {
            assert!(within(failure_due(0, hour, 0), 300_000));
            assert!(within(failure_due(0, hour, 1), 600_000));
            assert!(within(failure_due(0, hour, 4), 3_600_000));
            assert!(within(failure_due(0, hour, i64::MAX), 3_600_000));
            assert!(within(failure_due(0, None, 2), 1_200_000));
            assert!(within(failure_due(0, None, 30), 3_600_000));
            assert!(within(
                failure_due(0, Some(Duration::from_secs(1)), 3),
                1_000
            ));
        }
    }

    #[test]
    fn candidate_keys_name_task_assignee_and_change() {
        assert_eq!(
            candidate_key("501", "7001", Some("2026-12-03T10:00:00.000Z")),
            "reconcile:501:7001:2026-12-03T10:00:00.000Z"
        );
        assert_eq!(candidate_key("501", "7001", None), "reconcile:501:7001:-");
    }
}
