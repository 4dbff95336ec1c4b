//! The SQL of the queue: enqueue, claim and every fenced transition.
//!
//! Every statement is one round trip and commits on its own unless the
//! caller passes its own transaction. No transaction stays open while a
//! handler runs: a claim commits at once and hands out a lease token that
//! fences every later transition of that attempt.

use std::collections::BTreeSet;
use std::time::Duration;

use sqlx::{PgConnection, PgExecutor, PgPool};
use time::OffsetDateTime;

use crate::error::{Error, JobError, Result};
use crate::job::{Job, JobSpec};
use crate::retry::RetryPolicy;

/// The NOTIFY channel; the payload is the queue name.
pub const CHANNEL: &str = "videdit_queue";

const JOB_COLUMNS: &str =
    "id, queue, kind, payload, metadata, attempt, max_attempts, timeout_ms, lease_token, run_at, errors";

/// Moves the job that the CTE `gone` deleted into the history.
const TO_HISTORY: &str = "INSERT INTO videdit_queue.job_history
    (id, queue, kind, payload, metadata, final_state, priority, attempt, max_attempts, unique_key, progress, errors, created_at, started_at)
    SELECT id, queue, kind, payload, metadata, $final, priority, attempt, max_attempts, unique_key, progress, errors, created_at, started_at FROM gone";

fn to_history(final_state: &str) -> String {
    TO_HISTORY.replace("$final", &format!("'{final_state}'"))
}

fn error_entry(attempt: i32, message: &str, code: Option<&str>) -> serde_json::Value {
    let mut entry = serde_json::json!({
        "attempt": attempt,
        "error": message.chars().take(4000).collect::<String>(),
        "at": OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
    });
    if let Some(code) = code {
        entry["code"] = serde_json::json!(code);
    }
    serde_json::json!([entry])
}

/// Enqueues one job inside the caller's transaction (or on a pool). A job
/// whose unique key is held by a live job is not inserted: the live job's
/// id is returned instead. Wakes workers on the job's queue at commit.
///
/// # Errors
/// Invalid specs or database failures.
pub async fn enqueue(conn: &mut PgConnection, spec: &JobSpec) -> Result<uuid::Uuid> {
    Ok(enqueue_many(conn, std::slice::from_ref(spec)).await?[0])
}

/// Enqueues several jobs in one statement, with one wake-up per queue.
///
/// # Errors
/// Invalid specs or database failures.
pub async fn enqueue_many(conn: &mut PgConnection, specs: &[JobSpec]) -> Result<Vec<uuid::Uuid>> {
    for s in specs {
        s.validate()?;
    }
    let mut ids = Vec::with_capacity(specs.len());
    let mut queues = BTreeSet::new();
    for s in specs {
        // A loser of a unique-key race must see the winner, so retry once if
        // the winner finished between our insert and our select.
        let mut id = None;
        for _ in 0..3 {
            let inserted: Option<uuid::Uuid> = sqlx::query_scalar(
                "INSERT INTO videdit_queue.jobs (id, queue, kind, payload, metadata, state, priority, run_at, max_attempts, unique_key, timeout_ms)
                 VALUES ($1, $2, $3, $4, $5, 'available', $6, COALESCE($7, now()), $8, $9, $10)
                 ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
                 RETURNING id",
            )
            .bind(uuid::Uuid::now_v7())
            .bind(&s.queue)
            .bind(&s.kind)
            .bind(&s.payload)
            .bind(&s.metadata)
            .bind(s.priority)
            .bind(s.run_at)
            .bind(s.max_attempts as i32)
            .bind(&s.unique_key)
            .bind(s.timeout.map(|t| t.as_millis() as i64))
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(new) = inserted {
                queues.insert(s.queue.clone());
                id = Some(new);
                break;
            }
            let existing: Option<uuid::Uuid> =
                sqlx::query_scalar("SELECT id FROM videdit_queue.jobs WHERE unique_key = $1")
                    .bind(&s.unique_key)
                    .fetch_optional(&mut *conn)
                    .await?;
            if existing.is_some() {
                id = existing;
                break;
            }
        }
        ids.push(id.ok_or_else(|| Error::Invalid("unique key kept changing hands; try again".into()))?);
    }
    for q in queues {
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(&q).execute(&mut *conn).await?;
    }
    Ok(ids)
}

/// Claims up to `limit` due jobs of the given queues (skipping paused
/// queues and rows other workers hold), marks them running under a fresh
/// lease and commits at once.
///
/// # Errors
/// Database failures.
pub async fn claim(db: impl PgExecutor<'_>, queues: &[String], limit: u32, lease: Duration) -> Result<Vec<Job>> {
    claim_kinds(db, queues, None, limit, lease).await
}

/// Like [`claim`], but only jobs of the given kinds (a worker claims only
/// what it has handlers for, so pools with different handlers can share a
/// queue).
///
/// # Errors
/// Database failures.
pub async fn claim_kinds(
    db: impl PgExecutor<'_>,
    queues: &[String],
    kinds: Option<&[String]>,
    limit: u32,
    lease: Duration,
) -> Result<Vec<Job>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(&format!(
        "WITH picked AS (
            SELECT id FROM videdit_queue.jobs
            WHERE state = 'available' AND queue = ANY($1) AND run_at <= now() AND ($4::text[] IS NULL OR kind = ANY($4))
              AND queue NOT IN (SELECT name FROM videdit_queue.queues WHERE paused)
            ORDER BY queue, priority, run_at, id
            LIMIT $2
            FOR NO KEY UPDATE SKIP LOCKED
         )
         UPDATE videdit_queue.jobs j
         SET state = 'running', attempt = j.attempt + 1, lease_token = gen_random_uuid(),
             lease_until = now() + make_interval(secs => $3), started_at = now()
         FROM picked WHERE j.id = picked.id
         RETURNING {}",
        JOB_COLUMNS.split(", ").map(|c| format!("j.{c}")).collect::<Vec<_>>().join(", ")
    ))
    .bind(queues)
    .bind(i64::from(limit))
    .bind(lease.as_secs_f64())
    .bind(kinds)
    .fetch_all(db)
    .await?)
}

/// Completes a job (fenced by its lease) and moves it to the history. Pass
/// the handler's own transaction to commit its results with the completion.
///
/// # Errors
/// [`Error::LeaseLost`] when the lease is no longer ours.
pub async fn complete(db: impl PgExecutor<'_>, job: &Job) -> Result<()> {
    finish(db, job, "completed", None).await
}

async fn finish(db: impl PgExecutor<'_>, job: &Job, final_state: &str, error: Option<&JobError>) -> Result<()> {
    let moved: Option<uuid::Uuid> = sqlx::query_scalar(&format!(
        "WITH gone AS (
            DELETE FROM videdit_queue.jobs WHERE id = $1 AND lease_token = $2 AND state = 'running'
            RETURNING id, queue, kind, payload, metadata, priority, attempt, max_attempts, unique_key, progress,
                      errors || $3::jsonb AS errors, created_at, started_at
         ), moved AS ({} RETURNING id)
         SELECT id FROM moved",
        to_history(final_state)
    ))
    .bind(job.id)
    .bind(job.lease_token)
    .bind(error.map_or(serde_json::json!([]), |e| error_entry(job.attempt, &e.message, e.code.as_deref())))
    .fetch_optional(db)
    .await?;
    moved.map(|_| ()).ok_or(Error::LeaseLost(job.id))
}

/// What a failure did to the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Scheduled for another attempt.
    Retried,
    /// Attempts spent or fatal: moved to dead.
    Dead,
}

/// Records a failed attempt (fenced): retried with backoff while attempts
/// remain and the error is retryable, else dead. The error joins the job's
/// history either way.
///
/// # Errors
/// [`Error::LeaseLost`] when the lease is no longer ours.
pub async fn fail(db: &PgPool, job: &Job, error: &JobError, policy: &RetryPolicy) -> Result<FailOutcome> {
    if error.retryable && job.attempt < job.max_attempts {
        let backoff = policy.backoff(job.attempt as u32);
        let done = sqlx::query(
            "UPDATE videdit_queue.jobs
             SET state = 'available', lease_token = NULL, lease_until = NULL,
                 run_at = now() + make_interval(secs => $3), errors = errors || $4::jsonb
             WHERE id = $1 AND lease_token = $2 AND state = 'running'",
        )
        .bind(job.id)
        .bind(job.lease_token)
        .bind(backoff.as_secs_f64())
        .bind(error_entry(job.attempt, &error.message, error.code.as_deref()))
        .execute(db)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::LeaseLost(job.id));
        }
        Ok(FailOutcome::Retried)
    } else {
        finish(db, job, "dead", Some(error)).await?;
        Ok(FailOutcome::Dead)
    }
}

/// Puts the job back to run again at `at`, without spending an attempt.
///
/// # Errors
/// [`Error::LeaseLost`] when the lease is no longer ours.
pub async fn snooze(db: impl PgExecutor<'_>, job: &Job, after: Duration) -> Result<()> {
    release_inner(db, job, after).await
}

/// Gives a job back at once (graceful shutdown), without spending an attempt.
///
/// # Errors
/// [`Error::LeaseLost`] when the lease is no longer ours.
pub async fn release(db: impl PgExecutor<'_>, job: &Job) -> Result<()> {
    release_inner(db, job, Duration::ZERO).await
}

async fn release_inner(db: impl PgExecutor<'_>, job: &Job, after: Duration) -> Result<()> {
    let done = sqlx::query(
        "UPDATE videdit_queue.jobs
         SET state = 'available', lease_token = NULL, lease_until = NULL, attempt = attempt - 1,
             run_at = now() + make_interval(secs => $3)
         WHERE id = $1 AND lease_token = $2 AND state = 'running'",
    )
    .bind(job.id)
    .bind(job.lease_token)
    .bind(after.as_secs_f64())
    .execute(db)
    .await?;
    if done.rows_affected() == 0 { Err(Error::LeaseLost(job.id)) } else { Ok(()) }
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// The lease is extended.
    Extended,
    /// The lease is extended, but cancellation was requested: stop.
    CancelRequested,
    /// The lease is gone: stop at once, do not write results.
    Lost,
}

/// Extends the lease (fenced); tells whether the job was cancelled.
///
/// # Errors
/// Database failures.
pub async fn heartbeat(db: impl PgExecutor<'_>, job: &Job, lease: Duration) -> Result<Heartbeat> {
    let cancel: Option<bool> = sqlx::query_scalar(
        "UPDATE videdit_queue.jobs SET lease_until = now() + make_interval(secs => $3)
         WHERE id = $1 AND lease_token = $2 AND state = 'running' RETURNING cancel_requested",
    )
    .bind(job.id)
    .bind(job.lease_token)
    .bind(lease.as_secs_f64())
    .fetch_optional(db)
    .await?;
    Ok(match cancel {
        None => Heartbeat::Lost,
        Some(true) => Heartbeat::CancelRequested,
        Some(false) => Heartbeat::Extended,
    })
}

/// Records progress (fenced).
///
/// # Errors
/// [`Error::LeaseLost`] when the lease is no longer ours.
pub async fn set_progress(db: impl PgExecutor<'_>, job: &Job, progress: &serde_json::Value) -> Result<()> {
    let done = sqlx::query(
        "UPDATE videdit_queue.jobs SET progress = $3 WHERE id = $1 AND lease_token = $2 AND state = 'running'",
    )
    .bind(job.id)
    .bind(job.lease_token)
    .bind(progress)
    .execute(db)
    .await?;
    if done.rows_affected() == 0 { Err(Error::LeaseLost(job.id)) } else { Ok(()) }
}

/// Moves a running job whose cancellation was requested to `cancelled`
/// (fenced); the runtime calls this when the handler stopped.
///
/// # Errors
/// [`Error::LeaseLost`] when the lease is no longer ours.
pub async fn mark_cancelled(db: impl PgExecutor<'_>, job: &Job) -> Result<()> {
    finish(db, job, "cancelled", Some(&JobError::fatal("cancelled"))).await
}

/// What [`cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It was waiting: it is cancelled now.
    Cancelled,
    /// It is running: its worker is told through its heartbeat.
    Requested,
    /// No live job with that id (finished or unknown).
    NotLive,
}

/// Cancels a job: a waiting one at once, a running one through its worker.
///
/// # Errors
/// Database failures.
pub async fn cancel(db: impl PgExecutor<'_>, id: uuid::Uuid) -> Result<CancelOutcome> {
    let row: Option<String> = sqlx::query_scalar(&format!(
        "WITH target AS (SELECT id, state FROM videdit_queue.jobs WHERE id = $1 FOR UPDATE),
         gone AS (
            DELETE FROM videdit_queue.jobs j USING target t WHERE j.id = t.id AND t.state = 'available'
            RETURNING j.id, j.queue, j.kind, j.payload, j.metadata, j.priority, j.attempt, j.max_attempts, j.unique_key,
                      j.progress, j.errors, j.created_at, j.started_at
         ),
         moved AS ({} RETURNING id),
         flagged AS (
            UPDATE videdit_queue.jobs j SET cancel_requested = true FROM target t
            WHERE j.id = t.id AND t.state = 'running' RETURNING j.id
         )
         SELECT CASE WHEN EXISTS (SELECT 1 FROM moved) THEN 'cancelled'
                     WHEN EXISTS (SELECT 1 FROM flagged) THEN 'requested' ELSE 'none' END",
        to_history("cancelled")
    ))
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(match row.as_deref() {
        Some("cancelled") => CancelOutcome::Cancelled,
        Some("requested") => CancelOutcome::Requested,
        _ => CancelOutcome::NotLive,
    })
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Swept {
    /// Expired leases returned to the queue.
    pub retried: u64,
    /// Expired leases with no attempts left, moved to dead.
    pub dead: u64,
}

/// Returns running jobs whose lease expired to the queue (with backoff) or
/// to dead. Safe to run in every process at once: rows another sweeper holds
/// are skipped.
///
/// # Errors
/// Database failures.
pub async fn sweep(db: impl PgExecutor<'_>, policy: &RetryPolicy) -> Result<Swept> {
    let (retried, dead): (i64, i64) = sqlx::query_as(&format!(
        "WITH expired AS (
            SELECT id, attempt, max_attempts FROM videdit_queue.jobs
            WHERE state = 'running' AND lease_until < now()
            FOR NO KEY UPDATE SKIP LOCKED
         ),
         retried AS (
            UPDATE videdit_queue.jobs j
            SET state = 'available', lease_token = NULL, lease_until = NULL,
                run_at = now() + make_interval(secs => least($1 * power(2, greatest(e.attempt - 1, 0)), $2) * (1 + $3 * (2 * random() - 1))),
                errors = j.errors || jsonb_build_array(jsonb_build_object('attempt', e.attempt, 'error', 'lease expired (worker lost)', 'at', now()))
            FROM expired e WHERE j.id = e.id AND e.attempt < e.max_attempts AND NOT j.cancel_requested
            RETURNING j.id
         ),
         gone AS (
            DELETE FROM videdit_queue.jobs j USING expired e
            WHERE j.id = e.id AND (e.attempt >= e.max_attempts OR j.cancel_requested)
            RETURNING j.id, j.queue, j.kind, j.payload, j.metadata, j.priority, j.attempt, j.max_attempts, j.unique_key,
                      j.progress,
                      j.errors || jsonb_build_array(jsonb_build_object('attempt', j.attempt, 'error', 'lease expired (worker lost)', 'at', now())) AS errors,
                      j.created_at, j.started_at
         ),
         moved AS ({} RETURNING id)
         SELECT (SELECT count(*) FROM retried), (SELECT count(*) FROM moved)",
        to_history("dead")
    ))
    .bind(policy.base.as_secs_f64())
    .bind(policy.max.as_secs_f64())
    .bind(policy.jitter)
    .fetch_one(db)
    .await?;
    Ok(Swept { retried: retried as u64, dead: dead as u64 })
}

/// Deletes history rows older than `retention`; returns how many.
///
/// # Errors
/// Database failures.
pub async fn prune_history(db: impl PgExecutor<'_>, retention: Duration) -> Result<u64> {
    let done =
        sqlx::query("DELETE FROM videdit_queue.job_history WHERE finished_at < now() - make_interval(secs => $1)")
            .bind(retention.as_secs_f64())
            .execute(db)
            .await?;
    Ok(done.rows_affected())
}
