//! The one table of stable error codes.
//!
//! Every error the API returns carries one of these codes; clients switch on
//! the code, never on the message. A code's HTTP status and retryability are
//! defined here and nowhere else. Codes are never renamed or reused: add new
//! ones at the end of their group.

/// An enum whose values have stable names (stored in the database, sent
/// through the queue and the API) from one list of `Variant => "name"`:
/// the enum, `ALL` in list order, `as_str`, `parse` and `Display`. The
/// enum's own attributes (derives, serde renames) pass through unchanged.
macro_rules! stable_names {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident => $str:literal, )*
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The stable name.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $str,)* }
            }

            /// The value with this stable name.
            #[must_use]
            pub fn parse(name: &str) -> Option<Self> {
                match name { $($str => Some($name::$variant),)* _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use stable_names;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident => ($code:literal, $status:literal, $retryable:literal), )*) => {
        stable_names! {
            /// A stable, machine-readable error code; its wire form (for
            /// example `video_not_found`) is its stable name.
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
            #[non_exhaustive]
            pub enum ErrorCode {
                $( $(#[$doc])* $variant => $code, )*
            }
        }

        impl ErrorCode {
            /// The HTTP status the API answers with.
            #[must_use]
            pub const fn http_status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// Whether the same request may succeed if simply tried again later.
            #[must_use]
            pub const fn is_retryable(self) -> bool {
                match self { $(ErrorCode::$variant => $retryable,)* }
            }

        }
    };
}

error_codes! {
    // --- request ---
    /// The request body or a parameter is malformed or out of range.
    InvalidRequest => ("invalid_request", 400, false),
    /// A webhook URL that is malformed, or resolves to an address we never call (loopback, private, metadata).
    WebhookUrlRefused => ("webhook_url_refused", 400, false),
    /// The uploaded object's content type differs from the one declared.
    ContentTypeMismatch => ("content_type_mismatch", 400, false),
    /// An idempotency key was reused with a different request body.
    IdempotencyKeyReused => ("idempotency_key_reused", 422, false),
    /// The resource is not in a state that allows the operation.
    InvalidState => ("invalid_state", 409, false),
    // --- auth ---
    /// No credentials were sent.
    Unauthenticated => ("unauthenticated", 401, false),
    /// The token is malformed, badly signed, or has the wrong issuer/audience.
    InvalidToken => ("invalid_token", 401, false),
    /// The token has expired.
    TokenExpired => ("token_expired", 401, false),
    /// Authenticated, but the role does not allow the operation.
    Forbidden => ("forbidden", 403, false),
    /// A presigned URL whose signature does not match.
    InvalidSignature => ("invalid_signature", 403, false),
    /// A presigned URL past its expiry.
    UrlExpired => ("url_expired", 403, false),
    // --- not found (also what another organisation's ids get) ---
    /// No such video in this organisation.
    VideoNotFound => ("video_not_found", 404, false),
    /// No such short in this organisation.
    ShortNotFound => ("short_not_found", 404, false),
    /// No such job in this organisation.
    JobNotFound => ("job_not_found", 404, false),
    /// No such upload in this organisation.
    UploadNotFound => ("upload_not_found", 404, false),
    /// No such webhook endpoint in this organisation.
    WebhookNotFound => ("webhook_not_found", 404, false),
    /// No such connected account in this organisation.
    ConnectionNotFound => ("connection_not_found", 404, false),
    /// No transcript exists (yet) for the video.
    TranscriptNotFound => ("transcript_not_found", 404, false),
    /// No object under that key in storage.
    ObjectNotFound => ("object_not_found", 404, false),
    /// No such route or resource.
    NotFound => ("not_found", 404, false),
    /// No such publication in this organisation.
    PublicationNotFound => ("publication_not_found", 404, false),
    /// The organisation has no such picture (an audiogram background).
    ImageNotFound => ("image_not_found", 404, false),
    /// The route exists, but not with this method.
    MethodNotAllowed => ("method_not_allowed", 405, false),
    // --- media ---
    /// The file is not a media file we can read.
    InvalidMedia => ("invalid_media", 422, false),
    /// The media has no audio stream to transcribe.
    NoAudioStream => ("no_audio_stream", 422, false),
    /// A codec we cannot decode.
    UnsupportedCodec => ("unsupported_codec", 422, false),
    /// The media is longer than the organisation's limit.
    MediaTooLong => ("media_too_long", 422, false),
    /// A picture that is not a PNG or JPEG we decode, or whose size is outside the limits.
    InvalidImage => ("invalid_image", 422, false),
    /// The upload is larger than the organisation's limit or its declared size.
    UploadTooLarge => ("upload_too_large", 413, false),
    // --- limits ---
    /// A request body over the API's limit (1 MiB; uploads go to storage).
    RequestTooLarge => ("request_too_large", 413, false),
    /// The organisation's processed minutes for this billing period are used up.
    QuotaExceeded => ("quota_exceeded", 402, false),
    /// Over a limit of the organisation's plan (upload size, source length, shorts per video, stored bytes).
    PlanLimitExceeded => ("plan_limit_exceeded", 402, false),
    /// Billing (Stripe) is not configured on this server.
    BillingNotConfigured => ("billing_not_configured", 501, false),
    /// A Stripe webhook without a valid `Stripe-Signature` (missing, wrong, or older than the tolerance).
    WebhookSignatureInvalid => ("webhook_signature_invalid", 400, false),
    /// An OAuth `state` that is unknown, used, expired, or another user's.
    OauthStateInvalid => ("oauth_state_invalid", 400, false),
    /// The connected account must be connected again (the platform refused its tokens).
    NeedsReauthorization => ("needs_reauthorization", 409, false),
    /// The platform refused the request; the message has its own words.
    PlatformRejected => ("platform_rejected", 422, false),
    /// The platform is not configured on this server.
    PlatformNotConfigured => ("platform_not_configured", 501, false),
    /// The platform failed or did not answer in time.
    PlatformUnavailable => ("platform_unavailable", 503, true),
    /// The short is longer (or shorter) than the platform allows.
    PlatformRuleDuration => ("platform_rule_duration", 422, false),
    /// The short's shape is not one the platform takes (YouTube Shorts: vertical or square).
    PlatformRuleAspect => ("platform_rule_aspect", 422, false),
    /// The title is empty, too long, or has characters the platform refuses.
    PlatformRuleTitle => ("platform_rule_title", 422, false),
    /// The description is too long or has characters the platform refuses.
    PlatformRuleDescription => ("platform_rule_description", 422, false),
    /// The tags together are too long.
    PlatformRuleTags => ("platform_rule_tags", 422, false),
    /// The file is empty or larger than the platform takes.
    PlatformRuleSize => ("platform_rule_size", 422, false),
    /// A file the platform does not take (Instagram: MP4 with `moov` at the front, H.264 or HEVC, AAC).
    PlatformRuleFormat => ("platform_rule_format", 422, false),
    /// The creator's account does not allow what the publication asks (a TikTok privacy level, comments, duets, stitches, a length).
    PlatformOptionNotAllowed => ("platform_option_not_allowed", 422, false),
    /// The platform has not audited this app: it may post only privately (TikTok `SELF_ONLY`).
    PlatformUnauditedClient => ("platform_unaudited_client", 422, false),
    /// The account is not one the platform publishes for (Instagram: a personal account).
    PlatformAccountNotProfessional => ("platform_account_not_professional", 422, false),
    /// The payment provider (Stripe) failed or did not answer in time.
    PaymentProviderUnavailable => ("payment_provider_unavailable", 503, true),
    /// Too many requests; slow down.
    RateLimited => ("rate_limited", 429, true),
    // --- server side ---
    /// The object store did not answer or failed.
    StorageUnavailable => ("storage_unavailable", 503, true),
    /// The database did not answer or failed.
    DatabaseUnavailable => ("database_unavailable", 503, true),
    /// The identity provider's signing keys (JWKS) could not be fetched.
    AuthUnavailable => ("auth_unavailable", 503, true),
    /// An operation ran past its deadline.
    Timeout => ("timeout", 504, true),
    /// A bug or an unexpected failure; the request id in the log tells more.
    Internal => ("internal", 500, false),
}

impl ErrorCode {
    /// Looks a code up by its wire form ([`ErrorCode::parse`]).
    #[must_use]
    pub fn from_code(code: &str) -> Option<Self> {
        Self::parse(code)
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ErrorCode::from_code(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown error code {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_snake_case_and_round_trip() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
            assert_eq!(ErrorCode::from_code(s), Some(*code));
            assert!((400..600).contains(&code.http_status()));
        }
        assert_eq!(ErrorCode::from_code("nope"), None);
    }

    #[test]
    fn only_server_side_and_rate_limits_are_retryable() {
        for code in ErrorCode::ALL {
            if code.is_retryable() {
                assert!(code.http_status() >= 500 || code.http_status() == 429, "{code}");
            }
        }
        assert_eq!(ErrorCode::VideoNotFound.http_status(), 404);
        assert_eq!(ErrorCode::IdempotencyKeyReused.http_status(), 422);
        assert!(ErrorCode::StorageUnavailable.is_retryable());
        assert!(!ErrorCode::InvalidMedia.is_retryable());
    }
}
