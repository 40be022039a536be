//! Slowing down token guessing (design §4): wrong tokens, at the sign-in form or as a bearer
//! token, spend a process-wide budget of [`WRONG_TOKENS_PER_MINUTE`]. Once it is spent, every
//! attempt is refused with a wait, the right token included (else the throttle would tell a
//! guesser when they were right). Global, not per client: behind the proxy every client has the
//! proxy's address, and `X-Forwarded-For` is whatever the client says. A signed-in session is not
//! throttled.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// Wrong tokens accepted in a burst, and again per minute after it.
pub const WRONG_TOKENS_PER_MINUTE: u32 = 5;

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

pub struct SignInThrottle {
    /// One cell per wrong token.
    limiter: Limiter,
    /// Set when a wrong token spent the last cell: until then every attempt is refused. (governor
    /// cannot look at its bucket without taking from it, and a right token must not take.)
    refused_until: Mutex<Option<Instant>>,
    /// How often a cell comes back.
    replenish: Duration,
}

impl std::fmt::Debug for SignInThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInThrottle")
            .field("refused_for", &self.refusal())
            .finish_non_exhaustive()
    }
}

impl Default for SignInThrottle {
    fn default() -> Self {
        let burst = NonZeroU32::new(WRONG_TOKENS_PER_MINUTE).expect("non-zero");
        let quota = Quota::per_minute(burst).allow_burst(burst);
        SignInThrottle {
            limiter: RateLimiter::direct(quota).with_middleware::<StateInformationMiddleware>(),
            refused_until: Mutex::new(None),
            replenish: quota.replenish_interval(),
        }
    }
}

impl SignInThrottle {
    /// How long attempts are still refused, or `None` when a token may be checked now.
    pub fn refusal(&self) -> Option<Duration> {
        let refused_until = *self.refused_until.lock().expect("not poisoned");
        refused_until
            .and_then(|until| until.checked_duration_since(Instant::now()))
            .filter(|wait| !wait.is_zero())
    }

    /// Counts a wrong token; returns how many of the budget are spent (the log says it).
    pub fn wrong_token(&self) -> u32 {
        let wait = match self.limiter.check() {
            Ok(state) => {
                let left = state.remaining_burst_capacity();
                if left > 0 {
                    return WRONG_TOKENS_PER_MINUTE.saturating_sub(left);
                }
                self.replenish
            }
            Err(not_until) => not_until
                .wait_time_from(self.limiter.clock().now())
                .max(Duration::from_secs(1)),
        };
        let mut refused_until = self.refused_until.lock().expect("not poisoned");
        let until = Instant::now() + wait;
        if refused_until.is_none_or(|current| current < until) {
            *refused_until = Some(until);
        }
        WRONG_TOKENS_PER_MINUTE
    }
}

/// A wait as whole seconds for `Retry-After` and the page: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_wrong_tokens_pass_then_every_attempt_waits() {
        let throttle = SignInThrottle::default();
        for spent in 1..=WRONG_TOKENS_PER_MINUTE {
            assert_eq!(throttle.refusal(), None, "before wrong token {spent}");
            assert_eq!(throttle.wrong_token(), spent);
        }
        let wait = throttle
            .refusal()
            .expect("the sixth attempt, right or wrong, is refused");
        assert!(
            wait <= Duration::from_secs(12) && wait > Duration::from_secs(10),
            "one cell comes back every 12 s: {wait:?}"
        );
        assert!(retry_after_secs(wait) <= 12);
    }

    #[test]
    fn checking_for_a_refusal_spends_nothing() {
        let throttle = SignInThrottle::default();
        for _ in 0..100 {
            assert_eq!(throttle.refusal(), None);
        }
        assert_eq!(throttle.wrong_token(), 1, "the budget was untouched");
    }

    #[test]
    fn waits_are_whole_seconds_rounded_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(11_001)), 12);
        assert_eq!(retry_after_secs(Duration::from_secs(12)), 12);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
    }
}
