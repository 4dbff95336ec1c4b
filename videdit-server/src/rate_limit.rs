//! A per-user token bucket, in memory (one server process; a shared limit
//! across replicas would move into Postgres or Redis).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use videdit_core::UserId;

/// Allows `burst` requests at once and `per_second` sustained, per user.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<UserId, (f64, Instant)>>,
}

impl RateLimiter {
    /// A limiter; `per_second == 0` disables it.
    #[must_use]
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self { per_second, burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token; `false` when the user is over the limit.
    pub fn allow(&self, user: UserId) -> bool {
        if self.per_second <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() > 100_000 {
            // Forget idle users rather than grow without bound.
            buckets.retain(|_, (tokens, at)| *tokens < self.burst || now.duration_since(*at).as_secs() < 60);
        }
        let (tokens, at) = buckets.entry(user).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
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
}
