//! When a failed job runs again: exponential backoff with jitter, capped, never sooner than the
//! upstream asked.

use std::time::Duration;

/// The wait before attempt `attempts + 1`, after `attempts` failed ones: `base * 2^(attempts-1)`
/// capped at `max`, of which a random half is jitter so retries of many jobs spread out.
pub fn backoff_delay(attempts: i64, base: Duration, max: Duration) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 32)).unwrap_or(32);
    let ceiling = base
        .checked_mul(2u32.saturating_pow(exponent))
        .unwrap_or(max)
        .min(max);
    let half = ceiling / 2;
    let jitter_ms = rand::random_range(0..=duration_ms(ceiling - half));
    half + Duration::from_millis(jitter_ms)
}

/// The wait after a failure that named its own (`Retry-After`): at least that, plus a little
/// jitter so jobs that were refused together do not return together; never more than `max`.
pub fn retry_after_delay(retry_after: Duration, base: Duration, max: Duration) -> Duration {
    let spread = duration_ms(base.min(Duration::from_secs(1)));
    retry_after
        .saturating_add(Duration::from_millis(rand::random_range(0..=spread)))
        .min(max)
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(1000);
    const MAX: Duration = Duration::from_secs(3600);

    #[test]
    fn doubles_each_attempt_within_jitter_bounds() {
        for (attempts, ceiling_ms) in [(1, 1000), (2, 2000), (3, 4000), (6, 32_000)] {
            for _ in 0..200 {
                let d = backoff_delay(attempts, BASE, MAX).as_millis() as u64;
                assert!(
                    d >= ceiling_ms / 2 && d <= ceiling_ms,
                    "attempt {attempts}: {d}"
                );
            }
        }
    }

    #[test]
    fn is_capped() {
        for attempts in [13, 40, 1000, i64::MAX] {
            let d = backoff_delay(attempts, BASE, MAX);
            assert!(d <= MAX && d >= MAX / 2, "{attempts}: {d:?}");
        }
    }

    #[test]
    fn jitter_varies() {
        let samples: std::collections::HashSet<_> =
            (0..50).map(|_| backoff_delay(5, BASE, MAX)).collect();
        assert!(samples.len() > 1);
    }

    #[test]
    fn retry_after_is_a_floor() {
        for _ in 0..100 {
            let d = retry_after_delay(Duration::from_secs(2), BASE, MAX);
            assert!(d >= Duration::from_secs(2) && d <= Duration::from_secs(3));
        }
    }

    #[test]
    fn retry_after_is_capped_at_max() {
        for retry_after in [MAX, MAX + Duration::from_millis(1), Duration::MAX] {
            assert_eq!(retry_after_delay(retry_after, BASE, MAX), MAX);
        }
    }
}
