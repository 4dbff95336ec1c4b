//! Signing secrets in the Standard Webhooks format.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

use crate::Error;

/// The prefix that marks a symmetric Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Bytes of key material in a [`WebhookSecret::generate`]d secret.
const GENERATED_LEN: usize = 32;

/// The key lengths the spec allows: at least 24 bytes (192 bits), at most
/// 64 bytes (512 bits).
const KEY_LEN: std::ops::RangeInclusive<usize> = 24..=64;

/// A signing secret: `"whsec_"` followed by the padded standard base64 of
/// the key bytes (32 random bytes when generated here).
///
/// `Debug` and `Display` print `whsec_[redacted]`; only
/// [`expose`](Self::expose) gives the secret out, for storing it and for
/// showing it once to the endpoint's owner.
#[derive(Clone)]
pub struct WebhookSecret {
    /// The whole `whsec_...` string, as parsed or generated.
    text: String,
    /// The HMAC key: the base64-decoded bytes after the prefix.
    key: Vec<u8>,
}

impl WebhookSecret {
    /// A new secret of 32 bytes from the thread-local CSPRNG (ChaCha,
    /// seeded by the operating system).
    pub fn generate() -> Self {
        let mut key = vec![0u8; GENERATED_LEN];
        rand::rng().fill_bytes(&mut key);
        let text = format!("{SECRET_PREFIX}{}", STANDARD.encode(&key));
        WebhookSecret { text, key }
    }

    /// Parses a stored or user-supplied secret.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSecret`] when the text lacks the `whsec_` prefix, is
    /// not padded standard base64, or decodes to fewer than 24 or more than
    /// 64 bytes. The error never contains the text.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let encoded =
            text.strip_prefix(SECRET_PREFIX).ok_or_else(|| Error::invalid_secret("missing the whsec_ prefix"))?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|source| Error::InvalidSecret { reason: "not padded standard base64", source: Some(source) })?;
        if !KEY_LEN.contains(&key.len()) {
            return Err(Error::invalid_secret("the key must be 24 to 64 bytes"));
        }
        Ok(WebhookSecret { text: text.to_owned(), key })
    }

    /// The secret as text (`whsec_...`), to store or to show its owner.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The HMAC key bytes.
    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }
}

impl FromStr for WebhookSecret {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        WebhookSecret::parse(text)
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WebhookSecret").field(&format_args!("{SECRET_PREFIX}[redacted]")).finish()
    }
}

impl fmt::Display for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SECRET_PREFIX}[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_32_random_bytes_in_whsec_form() {
        let a = WebhookSecret::generate();
        let b = WebhookSecret::generate();
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with("whsec_"));
        // 32 bytes are 44 base64 characters with one `=` of padding.
        assert_eq!(a.expose().len(), "whsec_".len() + 44);
        assert!(a.expose().ends_with('='));
        assert_eq!(a.key().len(), 32);
        let reparsed = WebhookSecret::parse(a.expose()).unwrap();
        assert_eq!(reparsed.expose(), a.expose());
        assert_eq!(reparsed.key(), a.key());
    }

    #[test]
    fn parse_accepts_the_spec_sizes() {
        // The 24-byte secret of the reference libraries' test vectors.
        let s = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        assert_eq!(s.key().len(), 24);
        let s64 = format!("whsec_{}", STANDARD.encode([7u8; 64]));
        assert_eq!(WebhookSecret::parse(&s64).unwrap().key().len(), 64);
        assert_eq!("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".parse::<WebhookSecret>().unwrap().key(), s.key());
    }

    #[test]
    fn parse_rejects_malformed_secrets() {
        let cases = [
            ("C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "invalid webhook secret: missing the whsec_ prefix"),
            ("whsk_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "invalid webhook secret: missing the whsec_ prefix"),
            ("whsec_C2FVsBQIhrscChlQIMV-b5sSYspob7oD", "invalid webhook secret: not padded standard base64"),
            ("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "invalid webhook secret: not padded standard base64"),
            (" whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "invalid webhook secret: missing the whsec_ prefix"),
            ("whsec_", "invalid webhook secret: the key must be 24 to 64 bytes"),
            ("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", "invalid webhook secret: the key must be 24 to 64 bytes"),
        ];
        for (text, message) in cases {
            let err = WebhookSecret::parse(text).unwrap_err();
            assert_eq!(err.code(), "webhook_secret_invalid", "{text}");
            assert_eq!(err.to_string(), message, "{text}");
        }
        let too_long = format!("whsec_{}", STANDARD.encode([7u8; 65]));
        assert_eq!(WebhookSecret::parse(&too_long).unwrap_err().code(), "webhook_secret_invalid");
    }

    #[test]
    fn debug_and_display_are_redacted() {
        let s = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        assert_eq!(format!("{s}"), "whsec_[redacted]");
        assert_eq!(format!("{s:?}"), "WebhookSecret(whsec_[redacted])");
        assert!(!format!("{s:?} {s:#?}").contains("C2FV"));
    }
}
