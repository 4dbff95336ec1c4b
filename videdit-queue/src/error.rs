//! Errors of the queue, and of job handlers.

/// What can go wrong in the queue itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The job is no longer leased by this worker (the lease expired and the
    /// job was handed to another worker, or it was cancelled): the
    /// transition was refused.
    #[error("job {0} is no longer leased by this worker")]
    LeaseLost(uuid::Uuid),
    /// No such live job.
    #[error("job {0} not found")]
    NotFound(uuid::Uuid),
    /// Bad options (empty kind, zero attempts, …).
    #[error("invalid job: {0}")]
    Invalid(String),
    /// The payload could not be (de)serialised.
    #[error("payload: {0}")]
    Payload(#[from] serde_json::Error),
    /// A database failure.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A heartbeat got no answer within a third of the lease.
    #[error("the heartbeat got no answer in time")]
    HeartbeatTimeout,
    /// Applying migrations failed.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Error {
    /// Whether trying again may succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Database(_) | Self::HeartbeatTimeout)
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a job handler failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JobError {
    /// Whether another attempt may succeed.
    pub retryable: bool,
    /// What went wrong (kept in the job's error history).
    pub message: String,
    /// A stable, machine-readable code for the failure (kept beside the
    /// message in the error history), when the application has one.
    pub code: Option<String>,
}

impl JobError {
    /// A failure worth retrying (a timeout, an unavailable service).
    pub fn retryable(message: impl Into<String>) -> Self {
        Self { retryable: true, message: message.into(), code: None }
    }

    /// A failure no retry can fix (bad input); the job goes to dead at once.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self { retryable: false, message: message.into(), code: None }
    }

    /// The same failure, not to be retried.
    #[must_use]
    pub fn into_fatal(mut self) -> Self {
        self.retryable = false;
        self
    }

    /// The same failure with a stable code.
    #[must_use]
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
}

impl From<Error> for JobError {
    fn from(e: Error) -> Self {
        Self { retryable: e.is_retryable() || matches!(e, Error::Database(_)), message: e.to_string(), code: None }
    }
}
