//! Logs of refused requests, rate-limited: a flood of bad requests must not turn into a flood of
//! log lines (each one costs CPU and disk). Up to [`LINES_PER_SECOND`] are written; the rest are
//! counted, and the next line written says how many were left out.

use std::num::NonZeroU32;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

pub const LINES_PER_SECOND: u32 = 10;

static LIMITER: LazyLock<DefaultDirectRateLimiter> = LazyLock::new(|| {
    RateLimiter::direct(Quota::per_second(
        NonZeroU32::new(LINES_PER_SECOND).expect("non-zero"),
    ))
});
static SUPPRESSED: AtomicU64 = AtomicU64::new(0);

/// Calls `log` with the number of refusals left unlogged since the last line, unless the rate is
/// spent, in which case this refusal is only counted.
pub fn log_refusal(log: impl FnOnce(u64)) {
    if LIMITER.check().is_ok() {
        log(SUPPRESSED.swap(0, Ordering::Relaxed));
    } else {
        SUPPRESSED.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_beyond_the_rate_are_counted_not_written() {
        let mut written = Vec::new();
        for _ in 0..1000 {
            log_refusal(|suppressed| written.push(suppressed));
        }
        assert!(
            written.len() <= LINES_PER_SECOND as usize + 1,
            "{} lines",
            written.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(
            1100 / LINES_PER_SECOND as u64,
        ));
        log_refusal(|suppressed| written.push(suppressed));
        let total: u64 = written.iter().sum::<u64>() + written.len() as u64;
        assert!(total >= 1000, "every refusal is accounted for: {total}");
    }
}
