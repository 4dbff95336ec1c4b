//! # videdit-queue
//!
//! A generic PostgreSQL job queue and worker runtime. It knows nothing about
//! video: the videdit server registers its media handlers on it, and any
//! other application can do the same with its own job kinds.
//!
//! - **Claim** with one statement (`FOR NO KEY UPDATE SKIP LOCKED` over a
//!   partial index matching the `ORDER BY`), never more jobs than free slots,
//!   committed at once: no transaction stays open while a handler runs.
//! - **Leases and fencing**: a claim hands out a lease token; heartbeats renew
//!   it; every later transition names the token, so a worker that lost its
//!   lease cannot overwrite the job. A sweeper (safe in every process)
//!   returns expired leases to the queue or to dead.
//! - **Outcomes**: complete (optionally in the handler's own transaction),
//!   retry with exponential backoff and jitter, snooze, fail, cancel; every
//!   attempt's error is kept.
//! - **Wake-ups**: `NOTIFY` at enqueue (one per queue per statement, sent by
//!   the insert itself) with a polling fallback, or poll-only for PgBouncer.
//! - **Batched mode** ([`Batching`]): one statement claims every free slot
//!   (and a bounded prefetch buffer under short leases); the ends of
//!   attempts are recorded together within a few milliseconds, each still
//!   fenced by its lease token, one by one when a batch fails.
//! - **Fair sharing** ([`Fairness`]): jobs may carry a group key (a tenant);
//!   claims take from groups in turn and can cap the jobs running per group
//!   and per group and kind.
//! - Finished jobs move to a history table, so the hot table stays small.
//!
//! ```no_run
//! use std::time::Duration;
//! use tokio_util::sync::CancellationToken;
//! use videdit_queue::{JobSpec, Outcome, RetryPolicy, Worker, WorkerConfig};
//!
//! # async fn run(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
//! videdit_queue::migrate(&pool).await?;
//! let mut conn = pool.acquire().await?;
//! videdit_queue::enqueue(&mut conn, &JobSpec::new("greet", &"world")?).await?;
//!
//! let worker = Worker::new(pool.clone(), WorkerConfig { concurrency: 4, ..Default::default() })?
//!     .register("greet", Some(Duration::from_secs(10)), RetryPolicy::default(), |ctx| async move {
//!         let name: String = ctx.job.payload()?;
//!         println!("hello, {name}");
//!         Ok(Outcome::Complete)
//!     });
//! worker.run(CancellationToken::new(), Duration::from_secs(30)).await?;
//! # Ok(()) }
//! ```

pub mod admin;
mod batch;
mod error;
mod fairness;
mod job;
mod metrics;
pub mod queue;
mod retry;
mod worker;

pub use batch::Batching;
pub use error::{Error, JobError, Result};
pub use fairness::{Fairness, set_group_limit};
pub use job::{DEFAULT_QUEUE, Job, JobSpec, JobState};
pub use metrics::Metrics;
pub use queue::{
    CancelOutcome, FailOutcome, Heartbeat, Swept, cancel, claim, enqueue, enqueue_many, reschedule, sweep,
};
pub use retry::RetryPolicy;
pub use worker::{JobContext, Outcome, Processed, Worker, WorkerConfig};

/// Lock key for migrations ("vqueue"), distinct from the core crate's.
const MIGRATION_LOCK: i64 = 0x7671_7565_7565_0000;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Applies the queue's migrations (schema `videdit_queue`, with its own
/// bookkeeping table `videdit_queue._sqlx_migrations`); a no-op when applied.
///
/// # Errors
/// Database failures.
pub async fn migrate(pool: &sqlx::PgPool) -> Result<()> {
    use sqlx::Connection;
    // A connection of its own: its search_path is changed, so it is closed
    // afterwards instead of going back to the pool.
    let mut conn = pool.acquire().await?.detach();
    let result = async {
        // Two processes creating the schema at once would collide; the
        // migrator serialises the rest with its own lock.
        let mut tx = conn.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK).execute(&mut *tx).await?;
        sqlx::query("CREATE SCHEMA IF NOT EXISTS videdit_queue").execute(&mut *tx).await?;
        tx.commit().await?;
        sqlx::query("SET search_path TO videdit_queue").execute(&mut conn).await?;
        MIGRATOR.run_direct(&mut conn).await?;
        Ok::<_, Error>(())
    }
    .await;
    let _ = conn.close().await;
    result
}
