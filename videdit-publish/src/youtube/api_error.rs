//! Google's JSON error shape, mapped to [`PublishError`].
//!
//! ```json
//! { "error": { "code": 403, "message": "…",
//!     "errors": [ { "domain": "youtube.quota", "reason": "quotaExceeded", "message": "…" } ],
//!     "status": "PERMISSION_DENIED" } }
//! ```

use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::PublishError;
use crate::pacific::next_pacific_midnight;

#[derive(Deserialize)]
struct Envelope {
    error: GoogleError,
}

#[derive(Deserialize)]
struct GoogleError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
}

/// Maps a non-success answer of a Google API.
pub(crate) fn api_error(status: u16, headers: &HeaderMap, body: &[u8], now: OffsetDateTime) -> PublishError {
    let parsed = serde_json::from_slice::<Envelope>(body).ok().map(|e| e.error);
    let reason = parsed.as_ref().and_then(|e| e.errors.first()).map(|i| i.reason.clone()).unwrap_or_default();
    let message = parsed
        .as_ref()
        .map(|e| {
            if e.message.is_empty() {
                e.errors.first().map(|i| i.message.clone()).unwrap_or_default()
            } else {
                e.message.clone()
            }
        })
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&body[..body.len().min(500)]).trim().to_owned();
            if text.is_empty() { format!("HTTP {status}") } else { text }
        });
    match (status, reason.as_str()) {
        (_, "quotaExceeded" | "dailyLimitExceeded") => {
            PublishError::QuotaExceeded { message, retry_at: next_pacific_midnight(now) }
        }
        (_, "uploadLimitExceeded") => {
            PublishError::UploadLimitExceeded { message, retry_at: now + time::Duration::days(1) }
        }
        (429, _) | (_, "rateLimitExceeded" | "userRateLimitExceeded") => {
            PublishError::RateLimited { message, retry_at: retry_after(headers, now) }
        }
        (401, _) => PublishError::Unauthorized { message },
        (500.., _) => PublishError::Unavailable { message, source: None },
        _ => PublishError::Rejected { status, reason, message },
    }
}

/// `Retry-After` in seconds (the form Google uses).
fn retry_after(headers: &HeaderMap, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let secs: i64 = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(now + time::Duration::seconds(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn err(status: u16, body: &str) -> PublishError {
        api_error(status, &HeaderMap::new(), body.as_bytes(), datetime!(2025-01-15 12:00 UTC))
    }

    #[test]
    fn quota_resets_at_pacific_midnight() {
        let e = err(
            403,
            r#"{"error":{"code":403,"message":"The request cannot be completed because you have exceeded your quota.","errors":[{"message":"quota","domain":"youtube.quota","reason":"quotaExceeded"}]}}"#,
        );
        assert_eq!(e.code(), "platform_quota_exceeded");
        assert_eq!(e.retry_at(), Some(datetime!(2025-01-16 08:00 UTC)));
        assert_eq!(e.message(), "The request cannot be completed because you have exceeded your quota.");
        assert!(e.is_retryable());
        let e = err(403, r#"{"error":{"code":403,"message":"m","errors":[{"reason":"dailyLimitExceeded"}]}}"#);
        assert_eq!(e.code(), "platform_quota_exceeded");
    }

    #[test]
    fn other_shapes() {
        assert_eq!(
            err(401, r#"{"error":{"code":401,"message":"x","errors":[{"reason":"authError"}]}}"#).code(),
            "platform_unauthorized"
        );
        assert_eq!(
            err(400, r#"{"error":{"code":400,"message":"x","errors":[{"reason":"uploadLimitExceeded"}]}}"#).code(),
            "platform_upload_limit_exceeded"
        );
        let e = err(400, r#"{"error":{"code":400,"message":"Bad title","errors":[{"reason":"invalidTitle"}]}}"#);
        assert!(
            matches!(&e, PublishError::Rejected { status: 400, reason, message } if reason == "invalidTitle" && message == "Bad title")
        );
        assert!(!e.is_retryable());
        let e = err(503, "<html>oops</html>");
        assert_eq!(e.code(), "platform_unavailable");
        assert!(e.is_retryable());
        assert_eq!(err(404, "").message(), "HTTP 404");
        assert_eq!(err(429, "{}").code(), "platform_rate_limited");
    }
}
