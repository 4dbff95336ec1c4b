//! How often and how patiently an interrupted upload is resumed.

use std::time::Duration;

use rand::Rng;

/// Retries of a resumable upload after a dropped connection, a timeout or a 5xx.
///
/// The count is of failures in a row without progress: every chunk the
/// platform confirms starts the count again, so a long upload over a flaky
/// network goes on as long as it moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Failures in a row (without the platform confirming new bytes) before giving up.
    pub max_retries: u32,
    /// The first backoff; it doubles with each failure in a row.
    pub base: Duration,
    /// The longest backoff.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// 8 retries from 1 s, doubling up to 64 s, as Google suggests for uploads.
    fn default() -> Self {
        Self { max_retries: 8, base: Duration::from_secs(1), max: Duration::from_secs(64) }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (1-based): `base · 2^(attempt−1)`,
    /// capped at `max`, with "equal jitter" (between half and all of it) so
    /// that many uploads failing together do not come back together.
    #[must_use]
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let full = exp.min(self.max);
        let half = full / 2;
        let jitter_nanos = u64::try_from((full - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rand::rng().random_range(0..=jitter_nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let p = RetryPolicy { max_retries: 5, base: Duration::from_millis(100), max: Duration::from_secs(1) };
        for _ in 0..100 {
            let first = p.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100), "{first:?}");
            let third = p.backoff(3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400), "{third:?}");
            let late = p.backoff(30);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_secs(1), "{late:?}");
        }
    }
}
