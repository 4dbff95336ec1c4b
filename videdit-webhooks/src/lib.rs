//! # videdit-webhooks
//!
//! Outbound webhooks per [Standard Webhooks](https://www.standardwebhooks.com)
//! v1: the protocol and one HTTP attempt, nothing else. It knows no database
//! and no videos; the server stores endpoints and messages and schedules the
//! attempts, this crate decides what each attempt sends and what its answer
//! means.
//!
//! - **Secrets**: [`WebhookSecret`] is `whsec_` + base64 of 32 random bytes,
//!   redacted in `Debug` and `Display`.
//! - **Signatures**: [`sign`] and [`headers`] produce `webhook-id`,
//!   `webhook-timestamp` and `webhook-signature` (HMAC-SHA256 over
//!   `{id}.{timestamp}.{body}`); pass the old and the new secret during a
//!   rotation and both signatures are sent.
//! - **Retries**: [`SCHEDULE`] and [`retry_delay`] (immediately, 5 s, 5 min,
//!   30 min, 2 h, 5 h, 10 h, 10 h, with ±10 % jitter); a receiver's
//!   `Retry-After` on 429 and 503 is in [`Attempt::retry_after`].
//! - **SSRF guard**: [`UrlPolicy::check`] refuses URLs that are not `https`
//!   or whose host resolves to any loopback, private, shared, link-local,
//!   metadata, multicast or reserved address ([`is_forbidden`]).
//! - **Delivery**: [`Sender::send`] makes one attempt, re-checking the URL
//!   and connecting only to the addresses that passed (no DNS rebinding),
//!   following no redirect, within 15 s, and returns an [`Attempt`] whose
//!   [`Outcome`] says what to do next.
//!
//! ```no_run
//! use videdit_webhooks::{Outcome, Sender, UrlPolicy, WebhookSecret, retry_delay};
//!
//! # async fn run() -> Result<(), videdit_webhooks::Error> {
//! // When the endpoint is created: check its URL, make its secret.
//! let policy = UrlPolicy::STRICT;
//! policy.check("https://hooks.example.com/videdit").await?;
//! let secret = WebhookSecret::generate();
//! println!("your signing secret: {}", secret.expose());
//!
//! // For each attempt: send, then act on the outcome.
//! let sender = Sender::new(policy);
//! let body = br#"{"type":"short.rendered","timestamp":"2025-01-01T00:00:00Z","data":{"id":"s_1"}}"#;
//! let now = videdit_webhooks::unix_timestamp();
//! let attempt = sender.send("https://hooks.example.com/videdit", "msg_1", now, body, &[&secret]).await;
//! match attempt.outcome {
//!     Outcome::Delivered => {}
//!     Outcome::Retry => {
//!         let next = retry_delay(2, rand_in_0_1()).map(|delay| delay.max(attempt.retry_after.unwrap_or_default()));
//!         println!("retry in {next:?}: {:?}", attempt.error);
//!     }
//!     Outcome::Gone | Outcome::Refused => println!("disable the endpoint: {:?}", attempt.error),
//! }
//! # Ok(()) }
//! # fn rand_in_0_1() -> f64 { 0.5 }
//! ```
//!
//! # Errors
//!
//! Everything that goes wrong before a request is made is an [`Error`]
//! with a stable [`Error::code`] (`webhook_url_invalid`,
//! `webhook_url_forbidden`, ...); what happens to a request is an
//! [`Attempt`], never an error.

#![warn(missing_docs)]

mod address;
mod error;
mod policy;
mod retry;
mod secret;
mod sender;
mod signature;

pub use address::{AddressCategory, classify, is_forbidden};
pub use error::Error;
pub use policy::{DNS_TIMEOUT, MAX_URL_LEN, UrlPolicy};
pub use retry::{MAX_ATTEMPTS, MAX_RETRY_AFTER, SCHEDULE, retry_delay};
pub use secret::{SECRET_PREFIX, WebhookSecret};
pub use sender::{Attempt, CONNECT_TIMEOUT, DEFAULT_TIMEOUT, MAX_RESPONSE_SNIPPET, Outcome, Sender, USER_AGENT};
pub use signature::{
    HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, MAX_BODY, MAX_MESSAGE_ID, check_message, headers, sign,
};

/// The current Unix time in seconds, for `webhook-timestamp` (the time of
/// the attempt, not of the event: receivers reject stale timestamps).
pub fn unix_timestamp() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(since) => since.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    }
}
