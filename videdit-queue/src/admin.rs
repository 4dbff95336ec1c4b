//! Administration: inspect, retry, cancel, pause.

use sqlx::PgExecutor;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::job::JobState;

/// A job, live or finished.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRecord {
    /// Id.
    pub id: uuid::Uuid,
    /// Queue.
    pub queue: String,
    /// Kind.
    pub kind: String,
    /// Input.
    pub payload: serde_json::Value,
    /// Metadata.
    pub metadata: serde_json::Value,
    #[sqlx(rename = "state")]
    state_raw: String,
    /// Attempts made.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Last reported progress.
    pub progress: Option<serde_json::Value>,
    /// Every attempt's error.
    pub errors: serde_json::Value,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Finished, for finished jobs.
    pub finished_at: Option<OffsetDateTime>,
}

impl JobRecord {
    /// Its state.
    #[must_use]
    pub fn state(&self) -> JobState {
        JobState::parse(&self.state_raw)
    }
}

const LIVE: &str = "SELECT id, queue, kind, payload, metadata, state, attempt, max_attempts, progress, errors, created_at, NULL::timestamptz AS finished_at FROM videdit_queue.jobs";
const DONE: &str = "SELECT id, queue, kind, payload, metadata, final_state AS state, attempt, max_attempts, progress, errors, created_at, finished_at FROM videdit_queue.job_history";

/// One job by id.
///
/// # Errors
/// [`Error::NotFound`].
pub async fn get_job(db: impl PgExecutor<'_>, id: uuid::Uuid) -> Result<JobRecord> {
    sqlx::query_as(&format!("{LIVE} WHERE id = $1 UNION ALL {DONE} WHERE id = $1 LIMIT 1"))
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or(Error::NotFound(id))
}

/// Jobs in a state (and optionally a queue), newest first.
///
/// # Errors
/// Database failures.
pub async fn list_jobs(
    db: impl PgExecutor<'_>,
    state: JobState,
    queue: Option<&str>,
    limit: i64,
) -> Result<Vec<JobRecord>> {
    let (source, state_name) = match state {
        JobState::Available => (LIVE, "available"),
        JobState::Running => (LIVE, "running"),
        JobState::Completed => (DONE, "completed"),
        JobState::Dead => (DONE, "dead"),
        JobState::Cancelled => (DONE, "cancelled"),
    };
    let col = if source == LIVE { "state" } else { "final_state" };
    Ok(sqlx::query_as(&format!(
        "{source} WHERE {col} = $1 AND ($2::text IS NULL OR queue = $2) ORDER BY created_at DESC LIMIT $3"
    ))
    .bind(state_name)
    .bind(queue)
    .bind(limit.clamp(1, 1000))
    .fetch_all(db)
    .await?)
}

/// Jobs whose metadata contains `filter` (a JSON object), live and
/// finished, newest first (for example all jobs of one video).
///
/// # Errors
/// Database failures.
pub async fn find_jobs(db: impl PgExecutor<'_>, filter: &serde_json::Value, limit: i64) -> Result<Vec<JobRecord>> {
    Ok(sqlx::query_as(&format!(
        "SELECT * FROM ({LIVE} WHERE metadata @> $1 UNION ALL {DONE} WHERE metadata @> $1) j ORDER BY created_at DESC LIMIT $2"
    ))
    .bind(filter)
    .bind(limit.clamp(1, 1000))
    .fetch_all(db)
    .await?)
}

/// Puts a dead job back in the queue with fresh attempts; returns the new job's id.
///
/// # Errors
/// [`Error::NotFound`] when there is no dead job with that id.
pub async fn retry_dead(db: impl PgExecutor<'_>, id: uuid::Uuid) -> Result<uuid::Uuid> {
    sqlx::query_scalar(
        "WITH gone AS (DELETE FROM videdit_queue.job_history WHERE id = $1 AND final_state = 'dead' RETURNING *)
         INSERT INTO videdit_queue.jobs (id, queue, kind, payload, metadata, state, priority, max_attempts, unique_key, errors, created_at, group_key)
         SELECT id, queue, kind, payload, metadata, 'available', priority, max_attempts, unique_key, errors, created_at, group_key FROM gone
         RETURNING id",
    )
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or(Error::NotFound(id))
}

/// Depth of one queue.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct QueueStats {
    /// Queue name.
    pub queue: String,
    /// Due or scheduled jobs.
    pub available: i64,
    /// Running jobs.
    pub running: i64,
    /// Age in seconds of the oldest due job.
    pub oldest_due_seconds: Option<f64>,
    /// Whether it is paused.
    pub paused: bool,
}

/// Depth and age of every queue with live jobs or settings.
///
/// # Errors
/// Database failures.
pub async fn queue_stats(db: impl PgExecutor<'_>) -> Result<Vec<QueueStats>> {
    Ok(sqlx::query_as(
        "SELECT q.queue,
                count(j.id) FILTER (WHERE j.state = 'available') AS available,
                count(j.id) FILTER (WHERE j.state = 'running') AS running,
                EXTRACT(EPOCH FROM now() - min(j.run_at) FILTER (WHERE j.state = 'available' AND j.run_at <= now()))::float8 AS oldest_due_seconds,
                COALESCE(bool_or(p.paused), false) AS paused
         FROM (SELECT queue FROM videdit_queue.jobs UNION SELECT name FROM videdit_queue.queues) q
         LEFT JOIN videdit_queue.jobs j ON j.queue = q.queue
         LEFT JOIN videdit_queue.queues p ON p.name = q.queue
         GROUP BY q.queue ORDER BY q.queue",
    )
    .fetch_all(db)
    .await?)
}

/// Pauses a queue: workers stop claiming from it (running jobs go on).
///
/// # Errors
/// Database failures.
pub async fn pause_queue(db: impl PgExecutor<'_>, queue: &str) -> Result<()> {
    set_paused(db, queue, true).await
}

/// Resumes a paused queue.
///
/// # Errors
/// Database failures.
pub async fn resume_queue(db: impl PgExecutor<'_>, queue: &str) -> Result<()> {
    set_paused(db, queue, false).await
}

async fn set_paused(db: impl PgExecutor<'_>, queue: &str, paused: bool) -> Result<()> {
    sqlx::query(
        "INSERT INTO videdit_queue.queues (name, paused) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET paused = EXCLUDED.paused",
    )
    .bind(queue)
    .bind(paused)
    .execute(db)
    .await?;
    Ok(())
}
