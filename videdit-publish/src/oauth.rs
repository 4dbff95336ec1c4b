//! OAuth 2.0 pieces shared by the platform clients: PKCE (RFC 7636) and tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use videdit_core::secret::Secret;

use crate::PublishError;

/// A PKCE pair: keep the verifier (with the `state`) until the callback,
/// send the challenge in the authorization URL.
#[derive(Debug, Clone)]
pub struct Pkce {
    /// 43 characters of base64url (32 random bytes), sent with the code exchange.
    pub verifier: Secret<String>,
    /// `BASE64URL(SHA256(verifier))`, sent with `code_challenge_method=S256`.
    pub challenge: String,
}

impl Pkce {
    /// A fresh verifier from the operating system's random source, and its S256 challenge.
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let verifier = URL_SAFE_NO_PAD.encode(bytes);
        let challenge = Self::challenge_for(&verifier);
        Self { verifier: Secret::new(verifier), challenge }
    }

    /// The S256 challenge of a verifier.
    #[must_use]
    pub fn challenge_for(verifier: &str) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    }
}

/// The tokens of one connected account.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// Sent as `Authorization: Bearer …`.
    pub access_token: Secret<String>,
    /// Long-lived; `None` only when the platform sent none (a refresh keeps
    /// the one it was given, see [`crate::youtube::YouTube::refresh`]).
    pub refresh_token: Option<Secret<String>>,
    /// When the access token stops working (from `expires_in`).
    pub expires_at: OffsetDateTime,
    /// The scopes granted, space-separated, as the platform answered.
    pub scope: String,
}

/// A token endpoint's success answer (RFC 6749 §5.1).
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    scope: Option<String>,
}

impl TokenResponse {
    pub(crate) fn into_tokens(self, now: OffsetDateTime) -> Tokens {
        Tokens {
            access_token: Secret::new(self.access_token),
            refresh_token: self.refresh_token.map(Secret::new),
            // Google always sends expires_in; assume its usual hour if another platform does not.
            expires_at: now + time::Duration::seconds(self.expires_in.unwrap_or(3600)),
            scope: self.scope.unwrap_or_default(),
        }
    }
}

/// A token endpoint's error answer (RFC 6749 §5.2).
#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Maps a token endpoint's failure: `invalid_grant` means the user must
/// connect again; 5xx is retryable; anything else is a rejection.
pub(crate) fn token_error(status: u16, body: &[u8]) -> PublishError {
    if status >= 500 {
        return PublishError::Unavailable { message: format!("token endpoint answered {status}"), source: None };
    }
    match serde_json::from_slice::<TokenError>(body) {
        Ok(e) => {
            let message = e.error_description.unwrap_or_else(|| e.error.clone());
            if e.error == "invalid_grant" {
                PublishError::NeedsReauthorization { message }
            } else {
                PublishError::Rejected { status, reason: e.error, message }
            }
        }
        Err(_) => PublishError::Rejected {
            status,
            reason: String::new(),
            message: String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc7636() {
        // RFC 7636 appendix B.
        assert_eq!(
            Pkce::challenge_for("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let p = Pkce::generate();
        let v = p.verifier.expose();
        assert!((43..=128).contains(&v.len()));
        assert!(v.chars().all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c)));
        assert_eq!(p.challenge, Pkce::challenge_for(v));
        assert_ne!(Pkce::generate().verifier.expose(), v);
        assert!(!format!("{p:?}").contains(v.as_str()));
    }

    #[test]
    fn invalid_grant_needs_reauthorization() {
        let e =
            token_error(400, br#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#);
        assert_eq!(e.code(), "needs_reauthorization");
        assert_eq!(e.message(), "Token has been expired or revoked.");
        assert_eq!(token_error(401, br#"{"error":"invalid_client"}"#).code(), "platform_rejected");
        assert!(token_error(503, b"").is_retryable());
    }
}
