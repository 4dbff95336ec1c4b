//! Stripe webhook signatures (`Stripe-Signature`) and event parsing.
//!
//! Verify first, then parse: [`verify`] works on the raw body bytes exactly
//! as received, and only a verified body goes to [`parse_event`].
//!
//! ```
//! use videdit_core::Secret;
//! use videdit_stripe::webhook;
//!
//! let secret = Secret::new("whsec_test".to_owned());
//! let body = br#"{"id":"evt_1","object":"event","type":"ping","created":1,"livemode":false,"data":{"object":{"object":"ping"}}}"#;
//! let header = webhook::sign_header(body, secret.expose(), 1_700_000_000);
//! webhook::verify(body, Some(&header), &secret, 1_700_000_010, webhook::DEFAULT_TOLERANCE_SECS)?;
//! let event = webhook::parse_event(body)?;
//! assert_eq!(event.kind, "ping");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use hmac::{Hmac, Mac};
use sha2::Sha256;
use videdit_core::Secret;

pub use crate::event::parse_event;

/// How far (in seconds, either way) a signature's timestamp may be from
/// now: Stripe's libraries use 300 s.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// The name of the header Stripe signs deliveries with.
pub const SIGNATURE_HEADER: &str = "Stripe-Signature";

type HmacSha256 = Hmac<Sha256>;

/// Why a delivery's signature was refused. Answer 400 to all of them;
/// Stripe retries, and a genuine delivery will verify next time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// No `Stripe-Signature` header, or an empty one.
    #[error("missing Stripe-Signature header")]
    Missing,
    /// The header has no `t=` integer or no `v1=` value.
    #[error("malformed Stripe-Signature header: {reason}")]
    Malformed {
        /// What is missing, in a few words.
        reason: &'static str,
    },
    /// No `v1` signature matches the body under this secret (wrong
    /// secret, or a body changed on the way).
    #[error("no Stripe-Signature v1 value matches the payload")]
    NoMatch,
    /// The signature matches but its timestamp is further than the
    /// tolerance from now (a replay, or a clock far off).
    #[error("Stripe-Signature timestamp {timestamp} is more than {tolerance_secs} s from now ({now})")]
    Stale {
        /// The header's `t`.
        timestamp: i64,
        /// The time the check used.
        now: i64,
        /// The tolerance the check used.
        tolerance_secs: i64,
    },
}

/// Checks a delivery's `Stripe-Signature` header against the raw body.
///
/// The header is `t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=<hex>]`. Each
/// `v1` is HMAC-SHA256 over `"{t}.{body}"` keyed with the bytes of the
/// whole `whsec_…` string; one matching `v1` is enough (during a secret
/// rotation Stripe sends one per secret). `v0` and unknown schemes are
/// ignored. Comparison is constant-time.
///
/// # Errors
///
/// [`SignatureError::Missing`], [`SignatureError::Malformed`],
/// [`SignatureError::NoMatch`], and [`SignatureError::Stale`] when the
/// signature matches but `|now_unix - t| > tolerance_secs`.
pub fn verify(
    payload: &[u8],
    header: Option<&str>,
    secret: &Secret<String>,
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let header = header.map(str::trim).filter(|h| !h.is_empty()).ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else { continue };
        match key {
            "t" if timestamp.is_none() => {
                timestamp = Some(
                    value.parse::<i64>().map_err(|_| SignatureError::Malformed { reason: "t is not an integer" })?,
                );
            }
            // A value that is not hex can never match; keep looking.
            "v1" => candidates.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed { reason: "no t= timestamp" })?;
    if !header.split(',').any(|part| part.trim().starts_with("v1=")) {
        return Err(SignatureError::Malformed { reason: "no v1= signature" });
    }
    let mac = signed_mac(payload, secret.expose(), timestamp);
    // `verify_slice` compares in constant time.
    if !candidates.iter().any(|candidate| mac.clone().verify_slice(candidate).is_ok()) {
        return Err(SignatureError::NoMatch);
    }
    if now_unix.abs_diff(timestamp) > tolerance_secs.unsigned_abs() {
        return Err(SignatureError::Stale { timestamp, now: now_unix, tolerance_secs });
    }
    Ok(())
}

/// Signs a payload as Stripe does: `t={t},v1={hex}`. For tests and for the
/// fake; production code only verifies.
pub fn sign_header(payload: &[u8], secret: &str, t: i64) -> String {
    format!("t={t},v1={}", signature_hex(payload, secret, t))
}

/// The hex `v1` signature of a payload at time `t`.
pub fn signature_hex(payload: &[u8], secret: &str, t: i64) -> String {
    hex::encode(signed_mac(payload, secret, t).finalize().into_bytes())
}

fn signed_mac(payload: &[u8], secret: &str, t: i64) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_test","object":"event"}"#;
    const NOW: i64 = 1_700_000_000;

    fn secret() -> Secret<String> {
        Secret::new(SECRET.to_owned())
    }

    fn check(header: Option<&str>, body: &[u8], now: i64) -> Result<(), SignatureError> {
        verify(body, header, &secret(), now, DEFAULT_TOLERANCE_SECS)
    }

    /// Computed independently with OpenSSL 3 (output `SHA2-256(stdin)= …`):
    /// `printf '%s' '1700000000.{"id":"evt_test","object":"event"}' | openssl dgst -sha256 -hmac whsec_test_secret`.
    const KNOWN_V1: &str = "8042376f6ca064adbe037642a718227dfd59047137eb49497a54c49eb0cfb724";

    #[test]
    fn matches_known_vector() {
        assert_eq!(signature_hex(BODY, SECRET, NOW), KNOWN_V1);
        check(Some(&format!("t={NOW},v1={KNOWN_V1}")), BODY, NOW).unwrap();
    }

    #[test]
    fn matches_openssl_when_available() {
        let message = format!("{NOW}.{}", std::str::from_utf8(BODY).unwrap());
        let Ok(mut child) = std::process::Command::new("openssl")
            .args(["dgst", "-sha256", "-hmac", SECRET])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!("openssl not installed; the committed vector still checks the signature");
            return;
        };
        use std::io::Write;
        child.stdin.take().unwrap().write_all(message.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let hex = text.trim().rsplit(' ').next().unwrap();
        assert_eq!(hex, signature_hex(BODY, SECRET, NOW));
    }

    #[test]
    fn valid_signature() {
        check(Some(&sign_header(BODY, SECRET, NOW)), BODY, NOW + 10).unwrap();
    }

    #[test]
    fn one_of_two_v1_is_enough() {
        let good = signature_hex(BODY, SECRET, NOW);
        let old = signature_hex(BODY, "whsec_old", NOW);
        check(Some(&format!("t={NOW},v1={old},v1={good},v0=deadbeef")), BODY, NOW).unwrap();
        check(Some(&format!("t={NOW}, v1={good}, v1={old}")), BODY, NOW).unwrap();
    }

    #[test]
    fn wrong_secret() {
        let header = sign_header(BODY, "whsec_other", NOW);
        assert_eq!(check(Some(&header), BODY, NOW), Err(SignatureError::NoMatch));
    }

    #[test]
    fn tampered_body() {
        let header = sign_header(BODY, SECRET, NOW);
        assert_eq!(check(Some(&header), br#"{"id":"evt_test","object":"evenT"}"#, NOW), Err(SignatureError::NoMatch));
    }

    #[test]
    fn stale_and_future() {
        let header = sign_header(BODY, SECRET, NOW);
        check(Some(&header), BODY, NOW + 300).unwrap();
        check(Some(&header), BODY, NOW - 300).unwrap();
        assert_eq!(
            check(Some(&header), BODY, NOW + 301),
            Err(SignatureError::Stale { timestamp: NOW, now: NOW + 301, tolerance_secs: 300 })
        );
        assert!(matches!(check(Some(&header), BODY, NOW - 301), Err(SignatureError::Stale { .. })));
    }

    #[test]
    fn missing_header() {
        assert_eq!(check(None, BODY, NOW), Err(SignatureError::Missing));
        assert_eq!(check(Some("  "), BODY, NOW), Err(SignatureError::Missing));
    }

    #[test]
    fn malformed_headers() {
        let good = signature_hex(BODY, SECRET, NOW);
        for header in [
            format!("v1={good}"),
            format!("t=,v1={good}"),
            format!("t=abc,v1={good}"),
            format!("t={NOW}"),
            format!("t={NOW},v0={good}"),
            "garbage".to_owned(),
        ] {
            assert!(matches!(check(Some(&header), BODY, NOW), Err(SignatureError::Malformed { .. })), "{header}");
        }
        // A v1 that is not hex is present but cannot match.
        assert_eq!(check(Some(&format!("t={NOW},v1=zz")), BODY, NOW), Err(SignatureError::NoMatch));
    }
}
