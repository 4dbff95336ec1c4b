//! Retry policy: exponential backoff with jitter.

use std::time::Duration;

/// How a job kind is retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, including the first.
    pub max_attempts: u32,
    /// Backoff after the first failure.
    pub base: Duration,
    /// Longest backoff.
    pub max: Duration,
    /// Jitter as a fraction of the backoff, 0..=1 (0.25: ±25 %).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 5, base: Duration::from_secs(2), max: Duration::from_secs(3600), jitter: 0.25 }
    }
}

impl RetryPolicy {
    /// The backoff before attempt `attempt + 1`, after `attempt` (>= 1)
    /// failed attempts, for a jitter draw `u` in `0..1`:
    /// `min(base * 2^(attempt-1), max) * (1 + jitter * (2u - 1))`.
    #[must_use]
    pub fn backoff_with(&self, attempt: u32, u: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(62);
        let raw = self.base.as_secs_f64() * 2f64.powi(exp as i32);
        let capped = raw.min(self.max.as_secs_f64());
        let jitter = self.jitter.clamp(0.0, 1.0) * (2.0 * u.clamp(0.0, 1.0) - 1.0);
        Duration::from_secs_f64((capped * (1.0 + jitter)).max(0.0))
    }

    /// The backoff with a random jitter draw.
    #[must_use]
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.backoff_with(attempt, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn policy() -> impl Strategy<Value = RetryPolicy> {
        (1u32..20, 1u64..10_000, 1u64..100_000, 0.0f64..=1.0).prop_map(|(n, base, max, jitter)| RetryPolicy {
            max_attempts: n,
            base: Duration::from_millis(base),
            max: Duration::from_millis(base.max(max)),
            jitter,
        })
    }

    proptest! {
        #[test]
        fn backoff_stays_within_its_jitter_band(p in policy(), attempt in 1u32..100, u in 0.0f64..1.0) {
            let d = p.backoff_with(attempt, u).as_secs_f64();
            let nominal = (p.base.as_secs_f64() * 2f64.powi(attempt.saturating_sub(1).min(62) as i32)).min(p.max.as_secs_f64());
            prop_assert!(d >= nominal * (1.0 - p.jitter) - 1e-9, "{d} < {nominal}");
            prop_assert!(d <= nominal * (1.0 + p.jitter) + 1e-9, "{d} > {nominal}");
            prop_assert!(d <= p.max.as_secs_f64() * (1.0 + p.jitter) + 1e-9);
        }

        #[test]
        fn backoff_never_shrinks_for_the_same_draw(p in policy(), attempt in 1u32..60, u in 0.0f64..1.0) {
            prop_assert!(p.backoff_with(attempt + 1, u) >= p.backoff_with(attempt, u));
        }

        #[test]
        fn the_first_retry_waits_about_base(p in policy(), u in 0.0f64..1.0) {
            let d = p.backoff_with(1, u).as_secs_f64();
            prop_assert!((d - p.base.as_secs_f64()).abs() <= p.base.as_secs_f64() * p.jitter + 1e-9);
        }
    }

    #[test]
    fn doubles_until_the_cap() {
        let p =
            RetryPolicy { max_attempts: 10, base: Duration::from_secs(1), max: Duration::from_secs(10), jitter: 0.0 };
        let got: Vec<u64> = (1..=6).map(|a| p.backoff_with(a, 0.5).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 10, 10]);
    }
}
