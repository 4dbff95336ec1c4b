//! The error type of `videdit-core`.

use crate::error_code::ErrorCode;
use crate::id::InvalidId;
use crate::storage::InvalidKey;

/// A boxed error from a dependency, kept as the source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in `videdit-core`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A row or object does not exist (or belongs to another organisation,
    /// which callers must not be able to tell apart).
    #[error("{what} not found")]
    NotFound {
        /// The stable code (`video_not_found`, `object_not_found`, …).
        code: ErrorCode,
        /// What was looked for, for the message.
        what: String,
    },
    /// An object key that failed validation.
    #[error(transparent)]
    InvalidKey(#[from] InvalidKey),
    /// An id that failed validation.
    #[error(transparent)]
    InvalidId(#[from] InvalidId),
    /// Bad input that is the caller's fault.
    #[error("{0}")]
    InvalidRequest(String),
    /// A signed URL whose signature does not match its contents.
    #[error("the URL signature does not match")]
    InvalidSignature,
    /// A signed URL past its expiry.
    #[error("the URL expired")]
    UrlExpired,
    /// An upload with another content type than the one signed.
    #[error("content type {got:?} does not match the signed {expected:?}")]
    ContentTypeMismatch {
        /// Signed content type.
        expected: String,
        /// Content type sent.
        got: String,
    },
    /// An upload larger than allowed.
    #[error("upload of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Bytes seen (at least).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The resource is not in a state that allows the operation.
    #[error("{0}")]
    InvalidState(String),
    /// The object store failed.
    #[error("storage {op} failed: {message}")]
    Storage {
        /// The operation (`put`, `head`, …).
        op: &'static str,
        /// A readable summary of the failure.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// A storage call ran past its deadline.
    #[error("storage {op} timed out after {seconds} s")]
    StorageTimeout {
        /// The operation.
        op: &'static str,
        /// The deadline.
        seconds: u64,
    },
    /// A local file operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A database query failed.
    #[cfg(feature = "postgres")]
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[cfg(feature = "postgres")]
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Error {
    /// A not-found error with its code.
    pub fn not_found(code: ErrorCode, what: impl Into<String>) -> Self {
        Self::NotFound { code, what: what.into() }
    }

    pub(crate) fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { op, source }
    }

    /// The stable code for the API.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound { code, .. } => *code,
            Self::InvalidKey(_) | Self::InvalidId(_) | Self::InvalidRequest(_) => ErrorCode::InvalidRequest,
            Self::InvalidSignature => ErrorCode::InvalidSignature,
            Self::UrlExpired => ErrorCode::UrlExpired,
            Self::ContentTypeMismatch { .. } => ErrorCode::ContentTypeMismatch,
            Self::TooLarge { .. } => ErrorCode::UploadTooLarge,
            Self::InvalidState(_) => ErrorCode::InvalidState,
            Self::Storage { .. } => ErrorCode::StorageUnavailable,
            Self::StorageTimeout { .. } => ErrorCode::Timeout,
            Self::Io { .. } => ErrorCode::Internal,
            #[cfg(feature = "postgres")]
            Self::Database(e) => match e {
                sqlx::Error::RowNotFound => ErrorCode::NotFound,
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                    ErrorCode::DatabaseUnavailable
                }
                _ => ErrorCode::Internal,
            },
            #[cfg(feature = "postgres")]
            Self::Migrate(_) => ErrorCode::Internal,
        }
    }

    /// Whether trying again later may succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.code().is_retryable()
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
