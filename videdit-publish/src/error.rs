//! The crate's one error type and its stable codes.

use time::OffsetDateTime;

/// A platform rule a short breaks (see [`crate::youtube::check_rules`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// Too long, or not a positive duration.
    Duration,
    /// Wider than tall: Shorts are vertical or square.
    Aspect,
    /// Empty, too long, or contains `<` / `>`.
    Title,
    /// Too many bytes, or contains `<` / `>`.
    Description,
    /// The tags together are too long.
    Tags,
    /// Empty, or larger than the platform accepts.
    Size,
    /// A container or codec the platform does not take (Instagram: MP4
    /// with `moov` at the front, H.264 or HEVC, AAC).
    Format,
}

impl Rule {
    /// The stable code, `platform_rule_<rule>`.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Rule::Duration => "platform_rule_duration",
            Rule::Aspect => "platform_rule_aspect",
            Rule::Title => "platform_rule_title",
            Rule::Description => "platform_rule_description",
            Rule::Tags => "platform_rule_tags",
            Rule::Size => "platform_rule_size",
            Rule::Format => "platform_rule_format",
        }
    }
}

/// Everything that can go wrong while talking to a platform.
///
/// Switch on [`PublishError::code`] (stable, snake_case), never on the
/// message. [`PublishError::is_retryable`] says whether the same call may
/// succeed later, and [`PublishError::retry_at`] when, where the platform
/// tells us.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The short breaks a platform rule; nothing was sent.
    #[error("{message}")]
    Rule {
        /// Which rule.
        rule: Rule,
        /// The limit and the value, for people.
        message: String,
    },
    /// The request itself is inconsistent (for example a private video with
    /// a publication time); nothing was sent.
    #[error("{message}")]
    InvalidRequest {
        /// What is wrong.
        message: String,
    },
    /// The refresh token was revoked or expired (OAuth `invalid_grant`): the
    /// user has to connect the account again.
    #[error("needs reauthorization: {message}")]
    NeedsReauthorization {
        /// The platform's own description.
        message: String,
    },
    /// The access token was refused (HTTP 401). Refresh it once and retry.
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// The platform's own message.
        message: String,
    },
    /// The project's daily API quota is spent; it resets at midnight Pacific
    /// time, which is `retry_at`.
    #[error("quota exceeded (retry at {retry_at}): {message}")]
    QuotaExceeded {
        /// The platform's own message.
        message: String,
        /// The next midnight in America/Los_Angeles.
        retry_at: OffsetDateTime,
    },
    /// The channel uploaded more videos than YouTube allows in a day.
    #[error("upload limit exceeded: {message}")]
    UploadLimitExceeded {
        /// The platform's own message.
        message: String,
        /// An estimate: the limit is over a rolling day, so a day from now.
        retry_at: OffsetDateTime,
    },
    /// Too many requests in a short time (HTTP 429 or a rate-limit reason).
    #[error("rate limited: {message}")]
    RateLimited {
        /// The platform's own message.
        message: String,
        /// From `Retry-After` when the platform sent one.
        retry_at: Option<OffsetDateTime>,
    },
    /// The platform refused the request (any other 4xx).
    #[error("rejected ({status} {reason}): {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// Google's `errors[0].reason` (or the OAuth `error`), empty if none.
        reason: String,
        /// The platform's own message.
        message: String,
    },
    /// The resumable upload session is gone (404/410): start a new one.
    #[error("upload session expired: {message}")]
    UploadSessionExpired {
        /// What the platform said.
        message: String,
    },
    /// The account has no channel to publish to.
    #[error("the account has no YouTube channel")]
    NoChannel,
    /// No video with this id (or not visible to this account).
    #[error("video {id} not found")]
    VideoNotFound {
        /// The id asked for.
        id: String,
    },
    /// A 5xx answer, a dropped connection or a timeout: try again later.
    #[error("platform unavailable: {message}")]
    Unavailable {
        /// What happened.
        message: String,
        /// The transport error, when there was one.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// The platform answered something we cannot understand.
    #[error("unexpected platform response: {message}")]
    InvalidResponse {
        /// What was wrong with it.
        message: String,
    },
    /// The creator's account does not allow what the post asks for (a
    /// privacy level not offered, comments, duets or stitches turned off,
    /// a video longer than the account may post); nothing was sent.
    #[error("{message}")]
    NotAllowed {
        /// Which option: `privacy_level`, `comments`, `duet`, `stitch`, `duration`.
        option: &'static str,
        /// The value asked and what is allowed.
        message: String,
    },
    /// The platform has not audited this app: it may post only privately
    /// (TikTok: `SELF_ONLY`, to a private account, 5 users a day).
    #[error("unaudited app: {message}")]
    UnauditedClient {
        /// The platform's own message.
        message: String,
    },
    /// The account or the app reached the platform's posting cap for now
    /// (TikTok `spam_risk_too_many_posts`, `reached_active_user_cap`).
    #[error("posting limit reached: {message}")]
    PostingLimit {
        /// The platform's own message.
        message: String,
        /// When to try again: the cap is over a rolling day.
        retry_at: OffsetDateTime,
    },
    /// The platform took the upload but did not publish it (TikTok `FAILED`
    /// with its `fail_reason`).
    #[error("the platform did not publish the video: {reason}")]
    ProcessingFailed {
        /// The platform's reason, as sent (`duration_check_failed`, …).
        reason: String,
    },
    /// The platform could not fetch the video from the URL it was given
    /// (Instagram 9004/2207052): the storage is not reachable from the
    /// internet, or the presigned URL expired.
    #[error("the platform could not fetch the video: {message}")]
    MediaUnreachable {
        /// The platform's own message.
        message: String,
    },
    /// The account is not one the platform publishes for (Instagram: a
    /// personal account; only business and creator accounts can).
    #[error("{message}")]
    NotProfessional {
        /// What the account is and what it must be.
        message: String,
    },
    /// Reading the short's bytes failed.
    #[error("reading the video bytes failed: {source}")]
    Source {
        /// The I/O error of the [`crate::ByteSource`].
        #[source]
        source: std::io::Error,
    },
}

impl PublishError {
    /// The stable, snake_case code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            PublishError::Rule { rule, .. } => rule.code(),
            PublishError::InvalidRequest { .. } => "invalid_request",
            PublishError::NeedsReauthorization { .. } => "needs_reauthorization",
            PublishError::Unauthorized { .. } => "platform_unauthorized",
            PublishError::QuotaExceeded { .. } => "platform_quota_exceeded",
            PublishError::UploadLimitExceeded { .. } => "platform_upload_limit_exceeded",
            PublishError::RateLimited { .. } => "platform_rate_limited",
            PublishError::Rejected { .. } => "platform_rejected",
            PublishError::UploadSessionExpired { .. } => "upload_session_expired",
            PublishError::NoChannel => "platform_no_channel",
            PublishError::VideoNotFound { .. } => "platform_video_not_found",
            PublishError::Unavailable { .. } => "platform_unavailable",
            PublishError::InvalidResponse { .. } => "platform_invalid_response",
            PublishError::Source { .. } => "source_unavailable",
            PublishError::NotAllowed { .. } => "platform_option_not_allowed",
            PublishError::UnauditedClient { .. } => "platform_unaudited_client",
            PublishError::PostingLimit { .. } => "platform_posting_limit",
            PublishError::ProcessingFailed { .. } => "platform_processing_failed",
            PublishError::MediaUnreachable { .. } => "platform_media_unreachable",
            PublishError::NotProfessional { .. } => "platform_account_not_professional",
        }
    }

    /// The human-readable message: the platform's own where it sent one.
    #[must_use]
    pub fn message(&self) -> String {
        match self {
            PublishError::Rule { message, .. }
            | PublishError::InvalidRequest { message }
            | PublishError::NeedsReauthorization { message }
            | PublishError::Unauthorized { message }
            | PublishError::QuotaExceeded { message, .. }
            | PublishError::UploadLimitExceeded { message, .. }
            | PublishError::RateLimited { message, .. }
            | PublishError::Rejected { message, .. }
            | PublishError::UploadSessionExpired { message }
            | PublishError::Unavailable { message, .. }
            | PublishError::InvalidResponse { message }
            | PublishError::NotAllowed { message, .. }
            | PublishError::UnauditedClient { message }
            | PublishError::MediaUnreachable { message }
            | PublishError::NotProfessional { message }
            | PublishError::PostingLimit { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// Whether the same call may succeed if made again later (at
    /// [`PublishError::retry_at`] if set). An expired upload session is
    /// retryable by starting a new session; [`PublishError::Unauthorized`]
    /// is not (refresh the token first, then retry once).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            PublishError::QuotaExceeded { .. }
                | PublishError::UploadLimitExceeded { .. }
                | PublishError::PostingLimit { .. }
                | PublishError::RateLimited { .. }
                | PublishError::UploadSessionExpired { .. }
                | PublishError::Unavailable { .. }
                | PublishError::Source { .. }
        )
    }

    /// The earliest time a retry makes sense, when known.
    #[must_use]
    pub fn retry_at(&self) -> Option<OffsetDateTime> {
        match self {
            PublishError::QuotaExceeded { retry_at, .. }
            | PublishError::UploadLimitExceeded { retry_at, .. }
            | PublishError::PostingLimit { retry_at, .. } => Some(*retry_at),
            PublishError::RateLimited { retry_at, .. } => *retry_at,
            _ => None,
        }
    }

    /// A transport failure: the URL is dropped from the error because an
    /// upload session URI is itself a credential.
    pub(crate) fn transport(err: reqwest::Error) -> Self {
        let err = err.without_url();
        let message = if err.is_timeout() {
            "the request timed out".to_owned()
        } else if err.is_connect() {
            "could not connect".to_owned()
        } else {
            format!("transport error: {err}")
        };
        PublishError::Unavailable { message, source: Some(err) }
    }

    /// Whether the resumable upload loop should ask the server what it has
    /// and go on (5xx, dropped connection, timeout).
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, PublishError::Unavailable { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case() {
        let errors = [
            PublishError::NoChannel,
            PublishError::Unauthorized { message: String::new() },
            PublishError::UploadSessionExpired { message: String::new() },
            PublishError::Rule { rule: Rule::Tags, message: String::new() },
        ];
        for e in errors {
            assert!(e.code().chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{}", e.code());
        }
    }
}
