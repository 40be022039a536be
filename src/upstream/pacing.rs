//! Staying under an upstream's rate limit instead of collecting 429s: a client-side limiter
//! (requests per minute, with a one-second burst), and a pause for everyone when the upstream
//! answers 429 with `Retry-After` (rejected requests count against the limit too).

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

pub struct RequestPacer {
    per_minute: u32,
    limiter: DefaultDirectRateLimiter,
    paused_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for RequestPacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestPacer").finish_non_exhaustive()
    }
}

impl RequestPacer {
    /// At most `per_minute` requests a minute, in bursts of at most a second's share.
    pub fn per_minute(per_minute: u32) -> RequestPacer {
        let rate = NonZeroU32::new(per_minute.max(1)).expect("at least 1");
        let burst = NonZeroU32::new((per_minute / 60).max(1)).expect("at least 1");
        RequestPacer {
            per_minute: per_minute.max(1),
            limiter: RateLimiter::direct(Quota::per_minute(rate).allow_burst(burst)),
            paused_until: Mutex::new(None),
        }
    }

    /// The requests a minute this pacer lets out.
    pub fn requests_per_minute(&self) -> u32 {
        self.per_minute
    }

    /// A pacer for `share` (more than 0, at most 1) of this one's rate: at least one a minute.
    pub fn share_of(&self, share: f64) -> RequestPacer {
        let shared = (f64::from(self.per_minute) * share).floor();
        RequestPacer::per_minute(if shared >= 1.0 { shared as u32 } else { 1 })
    }

    /// Waits until a request may go out.
    pub async fn wait(&self) {
        let pause = *self.paused_until.lock().expect("not poisoned");
        if let Some(until) = pause {
            tokio::time::sleep_until(until).await;
        }
        self.limiter.until_ready().await;
    }

    /// The upstream asked everyone to wait `delay` (the caller caps it; this only never overflows).
    pub fn pause_for(&self, delay: Duration) {
        let now = Instant::now();
        let until = now.checked_add(delay).unwrap_or_else(|| far_future(now));
        let mut paused = self.paused_until.lock().expect("not poisoned");
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
    }
}

/// About 30 years from `now`, as tokio's own sleeps use for a deadline past `Instant`'s range.
fn far_future(now: Instant) -> Instant {
    now + Duration::from_secs(86_400 * 365 * 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn paces_to_the_configured_rate_after_the_burst() {
        let pacer = RequestPacer::per_minute(600); // 10/s, burst 10
        let started = std::time::Instant::now();
        for _ in 0..15 {
            pacer.wait().await;
        }
        // 10 at once, then 5 more at 100 ms each.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    }

    #[tokio::test]
    async fn a_share_paces_to_its_part_of_the_rate() {
        let pacer = RequestPacer::per_minute(600);
        let share = pacer.share_of(0.2); // 120/min: 2/s, burst 2
        assert_eq!(share.requests_per_minute(), 120);
        assert_eq!(
            RequestPacer::per_minute(4)
                .share_of(0.2)
                .requests_per_minute(),
            1
        );
        let started = std::time::Instant::now();
        for _ in 0..5 {
            share.wait().await;
        }
        // 2 at once, then 3 more at 500 ms each.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(1400), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");
    }

    #[tokio::test]
    async fn a_pause_holds_every_request() {
        let pacer = RequestPacer::per_minute(60_000);
        pacer.pause_for(Duration::from_millis(300));
        let started = std::time::Instant::now();
        pacer.wait().await;
        assert!(started.elapsed() >= Duration::from_millis(290));
    }

    #[tokio::test]
    async fn a_pause_beyond_the_range_of_instant_does_not_panic() {
        let pacer = RequestPacer::per_minute(60_000);
        pacer.pause_for(Duration::MAX);
        let waited = tokio::time::timeout(Duration::from_millis(100), pacer.wait()).await;
        assert!(waited.is_err(), "still paused");
    }
}
