//! Jobs: what is enqueued and what a worker claims.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// The default queue name.
pub const DEFAULT_QUEUE: &str = "default";

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// The handler kind (`"render"`, `"send_email"`, …).
    pub kind: String,
    /// Handler input.
    pub payload: serde_json::Value,
    /// The queue (route kinds to worker pools by queue).
    pub queue: String,
    /// Lower runs first among due jobs (default 0).
    pub priority: i16,
    /// Not before this time (default now).
    pub run_at: Option<OffsetDateTime>,
    /// Attempts in all (default: the worker's policy for the kind, else 5).
    pub max_attempts: u32,
    /// At most one live job per key; enqueueing again returns the live one.
    pub unique_key: Option<String>,
    /// Per-job timeout overriding the kind's.
    pub timeout: Option<Duration>,
    /// Free-form data for observers (not the handler's input).
    pub metadata: serde_json::Value,
}

impl JobSpec {
    /// A job of `kind` with a serialisable payload, on the default queue.
    ///
    /// # Errors
    /// When the payload does not serialise.
    pub fn new(kind: impl Into<String>, payload: &impl Serialize) -> Result<Self> {
        Ok(Self {
            kind: kind.into(),
            payload: serde_json::to_value(payload)?,
            queue: DEFAULT_QUEUE.into(),
            priority: 0,
            run_at: None,
            max_attempts: 5,
            unique_key: None,
            timeout: None,
            metadata: serde_json::Value::Object(Default::default()),
        })
    }

    /// On another queue.
    #[must_use]
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// With a priority (lower first).
    #[must_use]
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    /// Scheduled for later.
    #[must_use]
    pub fn run_at(mut self, at: OffsetDateTime) -> Self {
        self.run_at = Some(at);
        self
    }

    /// With a number of attempts.
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// With a unique key.
    #[must_use]
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// With a timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// With metadata.
    #[must_use]
    pub fn metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.kind.is_empty() || self.kind.len() > 100 {
            return Err(Error::Invalid("kind must have 1 to 100 characters".into()));
        }
        if self.queue.is_empty() || self.queue.len() > 100 {
            return Err(Error::Invalid("queue must have 1 to 100 characters".into()));
        }
        if self.max_attempts == 0 || self.max_attempts > 1000 {
            return Err(Error::Invalid("max_attempts must be 1..=1000".into()));
        }
        Ok(())
    }
}

/// A claimed job, as a handler sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Job {
    /// Its id.
    pub id: uuid::Uuid,
    /// Its queue.
    pub queue: String,
    /// Its kind.
    pub kind: String,
    /// Handler input.
    pub payload: serde_json::Value,
    /// Free-form metadata.
    pub metadata: serde_json::Value,
    /// This attempt's number (1 for the first).
    pub attempt: i32,
    /// Attempts in all.
    pub max_attempts: i32,
    /// Per-job timeout in ms, if any.
    pub timeout_ms: Option<i64>,
    /// The lease that fences this attempt's transitions.
    pub lease_token: uuid::Uuid,
    /// When the job was due.
    pub run_at: OffsetDateTime,
    /// Errors of earlier attempts.
    pub errors: serde_json::Value,
}

impl Job {
    /// The payload as a type.
    ///
    /// # Errors
    /// When the payload does not fit `T`.
    pub fn payload<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_value(self.payload.clone())?)
    }
}

/// Where a job is, live or finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting (due or scheduled).
    Available,
    /// Leased by a worker.
    Running,
    /// Finished successfully.
    Completed,
    /// Failed for good (attempts spent or a fatal error).
    Dead,
    /// Cancelled.
    Cancelled,
}

impl JobState {
    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "available" => Self::Available,
            "running" => Self::Running,
            "completed" => Self::Completed,
            "dead" => Self::Dead,
            _ => Self::Cancelled,
        }
    }
}
