//! The crate's one error type for API calls and event parsing.

/// Everything that can go wrong talking to Stripe or reading its events.
///
/// No variant ever carries the secret key: requests are authorised with a
/// sensitive header that reqwest does not print.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StripeError {
    /// The request took longer than [`StripeConfig::timeout`](crate::StripeConfig::timeout).
    ///
    /// Stripe may still have executed it: retry with the same idempotency
    /// key (the client does this for you when you pass the same key again).
    #[error("Stripe request timed out")]
    Timeout,

    /// The connection failed or broke before a complete answer arrived.
    #[error("Stripe transport error")]
    Transport(#[source] reqwest::Error),

    /// Stripe answered with an error object (`{"error": {...}}`) and a
    /// non-2xx status.
    #[error("Stripe API error {status} {kind}{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Api {
        /// The HTTP status (400, 401, 402, 404, 409, 429, 5xx).
        status: u16,
        /// Stripe's `error.type`: `invalid_request_error`, `card_error`,
        /// `idempotency_error`, `api_error`, `rate_limit_error`, ...
        kind: String,
        /// Stripe's `error.code` (`resource_missing`, `parameter_missing`,
        /// `card_declined`, ...), when given.
        code: Option<String>,
        /// The human-readable message Stripe sent.
        message: String,
        /// The request parameter at fault (`error.param`), when given.
        param: Option<String>,
        /// The `Request-Id` header, to quote to Stripe support.
        request_id: Option<String>,
    },

    /// A 2xx answer or a webhook payload that is not the JSON we expect.
    #[error("could not decode Stripe JSON")]
    Decode(#[source] serde_json::Error),

    /// The configuration cannot make a client (for example an `api_base`
    /// that is not an `http(s)` URL).
    #[error("invalid Stripe configuration: {reason}")]
    Config {
        /// What is wrong, in a few words (never the key itself).
        reason: &'static str,
    },
}

impl StripeError {
    /// Whether the same request may succeed later: timeouts, broken
    /// connections, 429 and 5xx. A 4xx other than 429 means the request
    /// itself is wrong and retrying it changes nothing.
    ///
    /// Retry with the same `Idempotency-Key` so that a request Stripe did
    /// execute is not executed twice.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout | Self::Transport(_) => true,
            Self::Api { status, .. } => *status == 429 || *status >= 500,
            Self::Decode(_) | Self::Config { .. } => false,
        }
    }

    /// A stable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Timeout => "stripe_timeout",
            Self::Transport(_) => "stripe_transport",
            Self::Api { status: 429, .. } => "stripe_rate_limited",
            Self::Api { status, .. } if *status >= 500 => "stripe_unavailable",
            Self::Api { kind, .. } if kind == "card_error" => "stripe_card_error",
            Self::Api { .. } => "stripe_request_rejected",
            Self::Decode(_) => "stripe_decode",
            Self::Config { .. } => "stripe_config",
        }
    }

    pub(crate) fn from_reqwest(err: reqwest::Error) -> Self {
        if err.is_timeout() { Self::Timeout } else { Self::Transport(err) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> StripeError {
        StripeError::Api {
            status,
            kind: "api_error".into(),
            code: None,
            message: "boom".into(),
            param: None,
            request_id: None,
        }
    }

    #[test]
    fn retryable_statuses() {
        assert!(StripeError::Timeout.is_retryable());
        assert!(api(429).is_retryable());
        assert!(api(500).is_retryable());
        assert!(api(503).is_retryable());
        for status in [400, 401, 402, 404, 409] {
            assert!(!api(status).is_retryable(), "{status}");
        }
        assert!(!StripeError::Config { reason: "x" }.is_retryable());
    }

    #[test]
    fn display_names_code() {
        let err = StripeError::Api {
            status: 404,
            kind: "invalid_request_error".into(),
            code: Some("resource_missing".into()),
            message: "No such customer: 'cus_1'".into(),
            param: Some("id".into()),
            request_id: None,
        };
        assert_eq!(
            err.to_string(),
            "Stripe API error 404 invalid_request_error (resource_missing): No such customer: 'cus_1'"
        );
        assert_eq!(err.code(), "stripe_request_rejected");
    }
}
