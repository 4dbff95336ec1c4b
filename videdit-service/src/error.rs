//! The application layer's error: a stable code, a message, retryability.

use videdit_core::ErrorCode;

/// An operation failed. The code is the stable one from the core table;
/// HTTP adapters map it to a status, job adapters to retry or give up.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    code: ErrorCode,
    message: String,
    retryable: bool,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Result of an operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retryable: default_retryable(code), source: None }
    }

    /// 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// 409 `invalid_state`.
    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidState, message)
    }

    /// The same error with its message rewritten (for example with a
    /// storage location taken out).
    #[must_use]
    pub fn map_message(mut self, f: impl FnOnce(&str) -> String) -> Self {
        self.message = f(&self.message);
        self
    }

    /// The stable code.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether trying again may succeed: every server-side failure (a
    /// database or storage outage, a timeout, a bug that may be a race),
    /// never the caller's (bad input, a state that forbids the operation).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

fn default_retryable(code: ErrorCode) -> bool {
    code.http_status() >= 500 || code.is_retryable()
}

impl From<videdit_core::Error> for Error {
    fn from(e: videdit_core::Error) -> Self {
        let code = e.code();
        Self { code, message: e.to_string(), retryable: default_retryable(code), source: Some(Box::new(e)) }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        videdit_core::Error::from(e).into()
    }
}

impl From<videdit_queue::Error> for Error {
    fn from(e: videdit_queue::Error) -> Self {
        let code = match &e {
            videdit_queue::Error::NotFound(_) => ErrorCode::JobNotFound,
            _ => ErrorCode::DatabaseUnavailable,
        };
        Self { code, message: e.to_string(), retryable: default_retryable(code), source: Some(Box::new(e)) }
    }
}

impl From<videdit_media::Error> for Error {
    /// The media crate decides retryability itself (a timeout is worth
    /// another try, a file that is not media never is).
    fn from(e: videdit_media::Error) -> Self {
        Self { code: e.code(), message: e.to_string(), retryable: e.is_retryable(), source: Some(Box::new(e)) }
    }
}

impl From<videdit_media::render::RenderError> for Error {
    fn from(e: videdit_media::render::RenderError) -> Self {
        Self { code: e.code(), message: e.to_string(), retryable: e.is_retryable(), source: Some(Box::new(e)) }
    }
}

impl From<Error> for videdit_queue::JobError {
    fn from(e: Error) -> Self {
        let retryable = e.is_retryable();
        let job_error = if retryable { Self::retryable(e.message) } else { Self::fatal(e.message) };
        job_error.with_code(e.code.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_side_failures_retry_and_caller_mistakes_do_not() {
        assert!(Error::new(ErrorCode::DatabaseUnavailable, "x").is_retryable());
        assert!(Error::new(ErrorCode::Internal, "x").is_retryable());
        assert!(!Error::invalid("x").is_retryable());
        assert!(!Error::new(ErrorCode::InvalidMedia, "x").is_retryable());
        let job: videdit_queue::JobError = Error::new(ErrorCode::NoAudioStream, "no sound").into();
        assert_eq!(
            (job.retryable, job.code.as_deref(), job.message.as_str()),
            (false, Some("no_audio_stream"), "no sound")
        );
    }
}
