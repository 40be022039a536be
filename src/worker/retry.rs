//! Whether a failed job runs again, and when: a transient upstream failure is retried with
//! exponential backoff and jitter (capped, never sooner than the upstream asked) until the
//! attempts run out; anything else fails the job with its reason.

use std::time::Duration;

use crate::settings::Settings;
use crate::upstream::UpstreamError;

/// How failed attempts are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

/// What happens to a job after an attempt that failed upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run it again after this wait.
    RetryIn(Duration),
    /// Give up: the job fails with this reason.
    Fail(String),
}

impl RetryPolicy {
    pub fn from_settings(settings: &Settings) -> RetryPolicy {
        RetryPolicy {
            max_attempts: settings.worker.max_attempts,
            backoff_base: Duration::from_millis(settings.worker.backoff_base_ms),
            backoff_max: Duration::from_millis(settings.worker.backoff_max_ms),
        }
    }

    /// The decision after attempt number `attempts` (counting this one) failed with `error`.
    pub fn decide(&self, attempts: i64, error: &UpstreamError) -> Decision {
        let tried = u32::try_from(attempts).unwrap_or(u32::MAX);
        if !error.is_transient() {
            return Decision::Fail(error.to_string());
        }
        if tried >= self.max_attempts {
            return Decision::Fail(format!("gave up after {tried} attempts: {error}"));
        }
        Decision::RetryIn(match error.retry_after() {
            Some(wait) => retry_after_delay(wait, self.backoff_base, self.backoff_max),
            None => backoff_delay(attempts, self.backoff_base, self.backoff_max),
        })
    }

    /// The decision after attempt number `attempts` had to wait for something other than an
    /// upstream answer (`why`): tried again with backoff until the attempts run out.
    pub fn decide_wait(&self, attempts: i64, why: &str) -> Decision {
        let tried = u32::try_from(attempts).unwrap_or(u32::MAX);
        if tried >= self.max_attempts {
            return Decision::Fail(format!("gave up after {tried} attempts: {why}"));
        }
        Decision::RetryIn(backoff_delay(attempts, self.backoff_base, self.backoff_max))
    }
}

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
    fn a_wait_backs_off_until_the_attempts_run_out() {
        let policy = RetryPolicy {
            max_attempts: 3,
            backoff_base: BASE,
            backoff_max: MAX,
        };
        match policy.decide_wait(2, "the room is being created") {
            Decision::RetryIn(delay) => assert!(delay >= BASE && delay <= BASE * 2, "{delay:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            policy.decide_wait(3, "the room is being created"),
            Decision::Fail("gave up after 3 attempts: the room is being created".into())
        );
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

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        backoff_base: BASE,
        backoff_max: MAX,
    };

    fn server_error() -> UpstreamError {
        UpstreamError::Status {
            service: crate::upstream::Service::DocSpace,
            status: 503,
            message: "busy".into(),
        }
    }

    #[test]
    fn a_transient_failure_is_retried_until_the_attempts_run_out() {
        assert!(matches!(
            POLICY.decide(1, &server_error()),
            Decision::RetryIn(d) if d >= BASE / 2 && d <= BASE
        ));
        assert!(matches!(
            POLICY.decide(2, &server_error()),
            Decision::RetryIn(_)
        ));
        assert_eq!(
            POLICY.decide(3, &server_error()),
            Decision::Fail("gave up after 3 attempts: DocSpace answered 503: busy".into())
        );
    }

    #[test]
    fn a_rate_limit_waits_at_least_as_long_as_asked() {
        let limited = UpstreamError::RateLimited {
            service: crate::upstream::Service::Asana,
            retry_after: Some(Duration::from_secs(30)),
        };
        assert!(matches!(
            POLICY.decide(1, &limited),
            Decision::RetryIn(d) if d >= Duration::from_secs(30)
        ));
    }

    #[test]
    fn a_permanent_failure_fails_at_once_with_its_reason() {
        let refused = UpstreamError::Status {
            service: crate::upstream::Service::DocSpace,
            status: 400,
            message: "bad email".into(),
        };
        assert_eq!(
            POLICY.decide(1, &refused),
            Decision::Fail("DocSpace answered 400: bad email".into())
        );
    }

    #[test]
    fn retry_after_is_capped_at_max() {
        for retry_after in [MAX, MAX + Duration::from_millis(1), Duration::MAX] {
            assert_eq!(retry_after_delay(retry_after, BASE, MAX), MAX);
        }
    }
}
