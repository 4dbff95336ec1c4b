//! Token buckets per key (a user after authentication, a client address
//! before it), in memory (one server process; a shared limit across
//! replicas would move into Postgres or Redis).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use videdit_core::UserId;

/// Buckets kept before idle ones are pruned.
const PRUNE_ABOVE: usize = 10_000;

/// Allows `burst` requests at once and `per_second` sustained, per key.
#[derive(Debug)]
pub struct RateLimiter<K = UserId> {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Hash + Eq> RateLimiter<K> {
    /// A limiter; `per_second == 0` disables it.
    #[must_use]
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self { per_second, burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token; `false` when the user is over the limit.
    pub fn allow(&self, user: K) -> bool {
        self.check(user).is_ok()
    }

    /// Takes a token now.
    ///
    /// # Errors
    /// When the user is over the limit: how long until a token is back
    /// (the `Retry-After` to send).
    pub fn check(&self, user: K) -> Result<(), Duration> {
        self.check_at(user, Instant::now())
    }

    /// Takes a token at `now` (the clock is a parameter so the refill is
    /// tested without sleeping).
    ///
    /// # Errors
    /// As [`RateLimiter::check`].
    pub fn check_at(&self, user: K, now: Instant) -> Result<(), Duration> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() >= PRUNE_ABOVE {
            // A bucket that has refilled to the burst is the same as no
            // bucket: forget it, so idle users do not accumulate.
            buckets.retain(|_, (tokens, at)| self.refilled(*tokens, *at, now) < self.burst);
        }
        let (tokens, at) = buckets.entry(user).or_insert((self.burst, now));
        *tokens = self.refilled(*tokens, *at, now);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.per_second))
        }
    }

    fn refilled(&self, tokens: f64, at: Instant, now: Instant) -> f64 {
        (tokens + now.saturating_duration_since(at).as_secs_f64() * self.per_second).min(self.burst)
    }

    /// How many users have a bucket (for tests and metrics).
    #[must_use]
    pub fn tracked(&self) -> usize {
        self.buckets.lock().expect("rate limiter lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refuse_per_user() {
        let rl = RateLimiter::new(0.001, 3.0);
        let (a, b) = (UserId::new(), UserId::new());
        assert!(rl.allow(a) && rl.allow(a) && rl.allow(a));
        assert!(!rl.allow(a));
        assert!(rl.allow(b), "another user has their own bucket");
        assert!(RateLimiter::new(0.0, 1.0).allow(a), "0 disables");
    }

    #[test]
    fn tokens_come_back_at_the_sustained_rate_and_the_wait_is_told() {
        let rl = RateLimiter::new(2.0, 2.0);
        let a = UserId::new();
        let t0 = Instant::now();
        assert_eq!(rl.check_at(a, t0), Ok(()));
        assert_eq!(rl.check_at(a, t0), Ok(()));
        // Empty: the next token is half a second away at 2/s.
        assert_eq!(rl.check_at(a, t0), Err(Duration::from_millis(500)));
        // A quarter of a second later, a quarter second still to wait.
        assert_eq!(rl.check_at(a, t0 + Duration::from_millis(250)), Err(Duration::from_millis(250)));
        // Once the half second has passed there is one token, not two.
        assert_eq!(rl.check_at(a, t0 + Duration::from_millis(500)), Ok(()));
        assert!(rl.check_at(a, t0 + Duration::from_millis(500)).is_err());
        // Long idle: back to the burst, never above it.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(rl.check_at(a, later), Ok(()));
        assert_eq!(rl.check_at(a, later), Ok(()));
        assert_eq!(rl.check_at(a, later), Err(Duration::from_millis(500)));
    }

    #[test]
    fn idle_users_are_pruned_and_busy_ones_kept() {
        let rl = RateLimiter::new(1.0, 5.0);
        let t0 = Instant::now();
        let busy = UserId::new();
        for _ in 0..5 {
            rl.check_at(busy, t0).unwrap();
        }
        for _ in 0..PRUNE_ABOVE - 1 {
            rl.check_at(UserId::new(), t0).unwrap();
        }
        assert_eq!(rl.tracked(), PRUNE_ABOVE);
        // Two seconds on, the one-request users have refilled; the busy
        // user (5 used, 2 back) has not and keeps its bucket.
        let t1 = t0 + Duration::from_secs(2);
        rl.check_at(UserId::new(), t1).unwrap();
        assert_eq!(rl.tracked(), 2, "only the busy user and the newcomer remain");
        assert_eq!(rl.check_at(busy, t1), Ok(()));
        assert_eq!(rl.check_at(busy, t1), Ok(()));
        assert_eq!(rl.check_at(busy, t1), Err(Duration::from_secs(1)), "the busy user's bucket was not reset");
    }
}
