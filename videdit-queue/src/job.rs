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
    /// The group the job belongs to (a tenant: the videdit server sets the
    /// organisation), for fair sharing between groups; none by default.
    pub group: Option<String>,
}

/// Builder methods of [`JobSpec`], one line each: `name(arg: Type) => field = value;`.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident($arg:ident: $ty:ty) => $field:ident = $value:expr;)*) => {
        impl JobSpec {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $name(mut self, $arg: $ty) -> Self {
                    self.$field = $value;
                    self
                }
            )*
        }
    };
}

setters! {
    /// On another queue.
    queue(queue: impl Into<String>) => queue = queue.into();
    /// With a priority (lower first).
    priority(priority: i16) => priority = priority;
    /// Scheduled for later.
    run_at(at: OffsetDateTime) => run_at = Some(at);
    /// With a number of attempts.
    max_attempts(n: u32) => max_attempts = n;
    /// With a unique key.
    unique_key(key: impl Into<String>) => unique_key = Some(key.into());
    /// With a timeout.
    timeout(timeout: Duration) => timeout = Some(timeout);
    /// With metadata.
    metadata(metadata: serde_json::Value) => metadata = metadata;
    /// In a group (see [`crate::Fairness`]).
    group(key: impl Into<String>) => group = Some(key.into());
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
            group: None,
        })
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
        if self.group.as_ref().is_some_and(|g| g.is_empty() || g.len() > 200) {
            return Err(Error::Invalid("group must have 1 to 200 characters".into()));
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
    /// Its group, if any.
    pub group_key: Option<String>,
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
