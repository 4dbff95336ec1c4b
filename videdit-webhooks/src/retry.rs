//! When to try a failed delivery again.

use std::time::{Duration, SystemTime};

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;

/// The delay before each attempt: immediately, then 5 s, 5 min, 30 min,
/// 2 h, 5 h, 10 h and 10 h, eight attempts over about 28 hours. This is the
/// start of the Standard Webhooks example schedule, with its last step held
/// at 10 h (the schedule Svix uses).
pub const SCHEDULE: [Duration; 8] = [
    Duration::ZERO,
    Duration::from_secs(5),
    Duration::from_secs(5 * MINUTE),
    Duration::from_secs(30 * MINUTE),
    Duration::from_secs(2 * HOUR),
    Duration::from_secs(5 * HOUR),
    Duration::from_secs(10 * HOUR),
    Duration::from_secs(10 * HOUR),
];

/// The most attempts a message gets: the length of [`SCHEDULE`].
pub const MAX_ATTEMPTS: u32 = SCHEDULE.len() as u32;

/// The longest `Retry-After` honoured; a receiver asking for more waits 24 h.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * HOUR);

/// The delay before attempt `next_attempt` (1-based: attempt 1 is the first,
/// immediate one; 0 is taken as 1), spread by ±10 % so that endpoints that
/// failed together are not retried together. `jitter01` is a random number
/// in `[0, 1)` (values outside are clamped, NaN counts as 0.5): 0 gives 90 %
/// of the scheduled delay, 0.5 exactly the delay, just under 1 gives 110 %.
///
/// Returns `None` once the [`SCHEDULE`]'s attempts are used up.
pub fn retry_delay(next_attempt: u32, jitter01: f64) -> Option<Duration> {
    let index = next_attempt.max(1) as usize - 1;
    let base = *SCHEDULE.get(index)?;
    let jitter01 = if jitter01.is_nan() { 0.5 } else { jitter01.clamp(0.0, 1.0) };
    // Whole milliseconds: exact, and finer than any scheduler needs.
    let millis = (base.as_millis() as f64 * (0.9 + 0.2 * jitter01)).round();
    Some(Duration::from_millis(millis as u64))
}

/// The delay a `Retry-After` header value asks for: a number of seconds or
/// an HTTP-date (in any of the three formats of RFC 9110), capped at
/// [`MAX_RETRY_AFTER`]. A date in the past means now. `None` when the
/// value is neither.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits to fit a u64 is still "a very long time".
        Duration::from_secs(value.parse().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_the_recommended_one() {
        let secs: Vec<u64> = SCHEDULE.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [0, 5, 300, 1800, 7200, 18000, 36000, 36000]);
        assert_eq!(MAX_ATTEMPTS, 8);
    }

    #[test]
    fn retry_delay_follows_the_schedule_at_mid_jitter() {
        for (i, expected) in SCHEDULE.iter().enumerate() {
            assert_eq!(retry_delay(i as u32 + 1, 0.5), Some(*expected), "attempt {}", i + 1);
        }
        assert_eq!(retry_delay(0, 0.5), Some(Duration::ZERO));
    }

    #[test]
    fn retry_delay_jitters_by_ten_percent() {
        assert_eq!(retry_delay(2, 0.0), Some(Duration::from_millis(4500)));
        assert_eq!(retry_delay(2, 1.0), Some(Duration::from_millis(5500)));
        assert_eq!(retry_delay(3, 0.25), Some(Duration::from_secs(285)));
        assert_eq!(retry_delay(8, 0.75), Some(Duration::from_secs(37800)));
        // Out-of-range input is clamped rather than trusted.
        assert_eq!(retry_delay(2, -3.0), Some(Duration::from_millis(4500)));
        assert_eq!(retry_delay(2, 7.0), Some(Duration::from_millis(5500)));
        assert_eq!(retry_delay(2, f64::NAN), Some(Duration::from_secs(5)));
        assert_eq!(retry_delay(2, f64::INFINITY), Some(Duration::from_millis(5500)));
        // The immediate first attempt stays immediate.
        assert_eq!(retry_delay(1, 0.99), Some(Duration::ZERO));
        for step in 0..100 {
            let jitter = f64::from(step) / 100.0;
            let delay = retry_delay(5, jitter).unwrap();
            assert!(delay >= Duration::from_secs(6480) && delay < Duration::from_secs(7920), "{jitter}: {delay:?}");
        }
    }

    #[test]
    fn retry_delay_ends_after_eight_attempts() {
        assert_eq!(retry_delay(9, 0.5), None);
        assert_eq!(retry_delay(u32::MAX, 0.5), None);
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let cases = [
            ("7", Some(Duration::from_secs(7))),
            (" 120 ", Some(Duration::from_secs(120))),
            ("0", Some(Duration::ZERO)),
            ("86400", Some(MAX_RETRY_AFTER)),
            ("86401", Some(MAX_RETRY_AFTER)),
            ("99999999999999999999999", Some(MAX_RETRY_AFTER)),
            ("Sun, 06 Nov 1994 08:50:37 GMT", Some(Duration::from_secs(60))),
            ("Sunday, 06-Nov-94 08:51:37 GMT", Some(Duration::from_secs(120))),
            ("Sun Nov  6 08:52:37 1994", Some(Duration::from_secs(180))),
            ("Sun, 06 Nov 1994 08:00:00 GMT", Some(Duration::ZERO)),
            ("Mon, 07 Nov 1994 08:49:38 GMT", Some(MAX_RETRY_AFTER)),
            ("-5", None),
            ("1.5", None),
            ("", None),
            ("soon", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_retry_after(value, now), expected, "{value:?}");
        }
    }
}
