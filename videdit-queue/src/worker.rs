//! The worker runtime: claims as many jobs as it has free slots, runs their
//! handlers with heartbeats, timeouts and cancellation, and records each
//! outcome under the job's lease.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::{Error, JobError, Result};
use crate::job::{DEFAULT_QUEUE, Job};
use crate::metrics::Metrics;
use crate::queue::{self, FailOutcome, Heartbeat};
use crate::retry::RetryPolicy;

/// What a handler asks the runtime to do with its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done: the runtime completes the job.
    Complete,
    /// The handler already completed the job in its own transaction with
    /// [`JobContext::complete_in`].
    CompletedInTransaction,
    /// Run again after this long, without spending an attempt.
    Snooze(Duration),
}

/// What a handler gets.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The job.
    pub job: Job,
    pool: PgPool,
    cancel: CancellationToken,
}

impl JobContext {
    /// The database pool (for the handler's own queries).
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Resolves when the job is cancelled, its lease is lost, it timed out
    /// or the worker is shutting down past its deadline: stop then.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// Whether the job should stop.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The cancellation token (to pass to long-running work).
    #[must_use]
    pub fn cancellation_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Reports progress (any JSON; for example `{"stage": "render", "percent": 40}`).
    ///
    /// # Errors
    /// [`Error::LeaseLost`] when the job is no longer ours.
    pub async fn progress(&self, progress: serde_json::Value) -> Result<()> {
        queue::set_progress(&self.pool, &self.job, &progress).await
    }

    /// Completes the job inside the handler's transaction, so its results and
    /// any follow-up jobs commit together with the completion; return
    /// [`Outcome::CompletedInTransaction`] after committing.
    ///
    /// # Errors
    /// [`Error::LeaseLost`] when the job is no longer ours: roll back then.
    pub async fn complete_in(&self, tx: &mut sqlx::PgConnection) -> Result<()> {
        queue::complete(tx, &self.job).await
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = std::result::Result<Outcome, JobError>> + Send>>;
type HandlerFn = dyn Fn(JobContext) -> BoxFuture + Send + Sync;

#[derive(Clone)]
struct Registered {
    handler: Arc<HandlerFn>,
    timeout: Duration,
    retry: RetryPolicy,
}

/// Settings of a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Queues to take jobs from.
    pub queues: Vec<String>,
    /// Jobs run at once, 1..=20.
    pub concurrency: usize,
    /// Lease length; heartbeats renew it every third of it.
    pub lease: Duration,
    /// Polling fallback interval (also the only wake-up in poll-only mode).
    pub poll_interval: Duration,
    /// Listen for NOTIFY wake-ups (off for PgBouncer in transaction mode).
    pub listen: bool,
    /// How often this worker sweeps expired leases.
    pub sweep_interval: Duration,
    /// How long finished jobs are kept in the history.
    pub history_retention: Duration,
    /// Default per-kind timeout.
    pub default_timeout: Duration,
    /// Backoff for jobs whose lease expired (the sweeper's policy).
    pub sweep_retry: RetryPolicy,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            queues: vec![DEFAULT_QUEUE.into()],
            concurrency: 1,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            listen: true,
            sweep_interval: Duration::from_secs(15),
            history_retention: Duration::from_secs(7 * 24 * 3600),
            default_timeout: Duration::from_secs(3600),
            sweep_retry: RetryPolicy::default(),
        }
    }
}

/// What [`Worker::process_next`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// No job was due.
    Empty,
    /// The job completed.
    Completed(uuid::Uuid),
    /// The job failed and will be retried.
    Retried(uuid::Uuid),
    /// The job failed for good.
    Dead(uuid::Uuid),
    /// The job was snoozed.
    Snoozed(uuid::Uuid),
    /// The job was cancelled while running.
    Cancelled(uuid::Uuid),
    /// The lease was lost; nothing was recorded by this worker.
    LeaseLost(uuid::Uuid),
    /// Released back to the queue (shutdown).
    Released(uuid::Uuid),
}

/// A worker: handlers by kind, and the loop that feeds them.
#[derive(Clone)]
pub struct Worker {
    pool: PgPool,
    config: WorkerConfig,
    handlers: HashMap<String, Registered>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("config", &self.config).field("kinds", &self.handlers.keys()).finish()
    }
}

impl Worker {
    /// A worker on `pool` (use a pool of at least concurrency + 2 connections).
    ///
    /// # Errors
    /// A concurrency outside 1..=20.
    pub fn new(pool: PgPool, config: WorkerConfig) -> Result<Self> {
        if !(1..=20).contains(&config.concurrency) {
            return Err(Error::Invalid(format!("concurrency {} is outside 1..=20", config.concurrency)));
        }
        Ok(Self { pool, config, handlers: HashMap::new(), metrics: Arc::new(Metrics::default()) })
    }

    /// Registers the handler of a kind, with its timeout and retry policy.
    #[must_use]
    pub fn register<F, Fut>(mut self, kind: &str, timeout: Option<Duration>, retry: RetryPolicy, handler: F) -> Self
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Outcome, JobError>> + Send + 'static,
    {
        let handler: Arc<HandlerFn> = Arc::new(move |ctx| Box::pin(handler(ctx)));
        let timeout = timeout.unwrap_or(self.config.default_timeout);
        self.handlers.insert(kind.to_owned(), Registered { handler, timeout, retry });
        self
    }

    /// The kinds this worker has handlers for (the only ones it claims).
    fn kinds(&self) -> Vec<String> {
        let mut k: Vec<String> = self.handlers.keys().cloned().collect();
        k.sort();
        k
    }

    /// Counters and gauges of this worker.
    #[must_use]
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Claims one due job (if any), runs it to its end, and says what happened.
    /// For tests and step-by-step drivers.
    ///
    /// # Errors
    /// Database failures.
    pub async fn process_next(&self) -> Result<Processed> {
        let kinds = self.kinds();
        let mut jobs = queue::claim_kinds(&self.pool, &self.config.queues, Some(&kinds), 1, self.config.lease).await?;
        match jobs.pop() {
            None => Ok(Processed::Empty),
            Some(job) => Ok(self.run_job(job, CancellationToken::new()).await),
        }
    }

    /// Runs until `shutdown` is cancelled, then stops claiming, lets running
    /// jobs finish for up to `grace`, and releases the rest so another
    /// worker takes them at once.
    ///
    /// # Errors
    /// Only when the loop cannot start; per-job errors are recorded on the jobs.
    pub async fn run(self, shutdown: CancellationToken, grace: Duration) -> Result<()> {
        let wake = Arc::new(Notify::new());
        let slots = Arc::new(Semaphore::new(self.config.concurrency));
        let hard_stop = CancellationToken::new();
        let mut background = Vec::new();
        if self.config.listen {
            background.push(tokio::spawn(listen(
                self.pool.clone(),
                self.config.queues.clone(),
                wake.clone(),
                shutdown.clone(),
            )));
        }
        background.push(tokio::spawn(sweeper(self.pool.clone(), self.config.clone(), shutdown.clone())));
        let mut tasks = tokio::task::JoinSet::new();
        let kinds = self.kinds();
        let mut backoff = Duration::from_millis(100);
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let free = slots.available_permits();
            let mut claimed_full = false;
            if free > 0 {
                match queue::claim_kinds(&self.pool, &self.config.queues, Some(&kinds), free as u32, self.config.lease)
                    .await
                {
                    Ok(jobs) => {
                        backoff = Duration::from_millis(100);
                        claimed_full = jobs.len() == free;
                        for job in jobs {
                            let permit = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
                            let me = self.clone();
                            let stop = hard_stop.child_token();
                            let wake = wake.clone();
                            tasks.spawn(async move {
                                me.run_job(job, stop).await;
                                drop(permit);
                                wake.notify_one(); // a slot is free: look for more work
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming jobs failed; backing off");
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            () = shutdown.cancelled() => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        continue;
                    }
                }
            }
            while tasks.try_join_next().is_some() {}
            if claimed_full && slots.available_permits() > 0 {
                continue; // more may be waiting
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
                () = shutdown.cancelled() => {}
            }
        }
        // Graceful shutdown: no more claims; wait, then stop the rest.
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = tasks.join_next() => if next.is_none() { break },
                () = &mut deadline => {
                    hard_stop.cancel();
                    while tasks.join_next().await.is_some() {}
                    break;
                }
            }
        }
        for b in background {
            b.abort();
        }
        Ok(())
    }

    async fn run_job(&self, job: Job, stop: CancellationToken) -> Processed {
        let span = tracing::info_span!("job", id = %job.id, kind = %job.kind, attempt = job.attempt);
        self.run_job_inner(job, stop).instrument(span).await
    }

    async fn run_job_inner(&self, job: Job, stop: CancellationToken) -> Processed {
        let started = Instant::now();
        let m = &self.metrics;
        m.running.fetch_add(1, Ordering::Relaxed);
        let latency = (time::OffsetDateTime::now_utc() - job.run_at).whole_microseconds().max(0) as u64;
        m.start_latency_micros.fetch_add(latency, Ordering::Relaxed);
        m.started.fetch_add(1, Ordering::Relaxed);
        let result = self.execute(&job, stop).await;
        m.running.fetch_sub(1, Ordering::Relaxed);
        match &result {
            Processed::Completed(_) => m.completed.fetch_add(1, Ordering::Relaxed),
            Processed::Retried(_) => m.retried.fetch_add(1, Ordering::Relaxed),
            Processed::Dead(_) => m.failed.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        tracing::debug!(outcome = ?result, elapsed_ms = started.elapsed().as_millis() as u64, "job finished");
        result
    }

    async fn execute(&self, job: &Job, stop: CancellationToken) -> Processed {
        let id = job.id;
        let Some(reg) = self.handlers.get(&job.kind).cloned() else {
            let msg = format!("no handler for kind {:?}", job.kind);
            return self.record_failure(job, &JobError::fatal(msg), &RetryPolicy::default()).await;
        };
        let cancel = stop.child_token();
        let ctx = JobContext { job: job.clone(), pool: self.pool.clone(), cancel: cancel.clone() };
        let timeout = job.timeout_ms.map_or(reg.timeout, |ms| Duration::from_millis(ms.max(1) as u64));

        // Heartbeats renew the lease and carry cancellation requests back.
        let beat_job = job.clone();
        let beat_pool = self.pool.clone();
        let lease = self.config.lease;
        let beat_cancel = cancel.clone();
        let why = Arc::new(std::sync::Mutex::new(None::<&'static str>));
        let why_beat = why.clone();
        let heartbeat = tokio::spawn(async move {
            let mut tick = tokio::time::interval(lease / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                match queue::heartbeat(&beat_pool, &beat_job, lease).await {
                    Ok(Heartbeat::Extended) => {}
                    Ok(Heartbeat::CancelRequested) => {
                        *why_beat.lock().expect("lock") = Some("cancelled");
                        beat_cancel.cancel();
                    }
                    Ok(Heartbeat::Lost) => {
                        *why_beat.lock().expect("lock") = Some("lease lost");
                        beat_cancel.cancel();
                        return;
                    }
                    // A failed heartbeat is retried at the next tick; the
                    // lease has two more ticks of slack.
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                }
            }
        });

        // Run in its own task so a panic fails this attempt, not the worker.
        let handler = reg.handler.clone();
        let run = tokio::spawn(async move { std::panic::AssertUnwindSafe(handler(ctx)).catch_unwind().await });
        let abort = run.abort_handle();
        let outcome = tokio::select! {
            r = run => match r {
                Ok(Ok(result)) => Ok(result),
                Ok(Err(_)) | Err(_) => Err("the handler panicked"),
            },
            () = tokio::time::sleep(timeout) => {
                cancel.cancel();
                abort.abort();
                Err("timed out")
            }
            () = cancel.cancelled() => {
                // Give a cooperative handler a moment to return on its own.
                abort.abort();
                Err("stopped")
            }
        };
        heartbeat.abort();

        let reason = *why.lock().expect("lock");
        if stop.is_cancelled() && reason.is_none() {
            // Shutdown past the grace period: hand the job to another worker.
            return match queue::release(&self.pool, job).await {
                Ok(()) => Processed::Released(id),
                Err(_) => Processed::LeaseLost(id),
            };
        }
        match reason {
            Some("lease lost") => return Processed::LeaseLost(id),
            Some(_) => {
                return match queue::mark_cancelled(&self.pool, job).await {
                    Ok(()) => Processed::Cancelled(id),
                    Err(_) => Processed::LeaseLost(id),
                };
            }
            None => {}
        }
        match outcome {
            Ok(Ok(Outcome::Complete)) => match queue::complete(&self.pool, job).await {
                Ok(()) => Processed::Completed(id),
                Err(_) => Processed::LeaseLost(id),
            },
            Ok(Ok(Outcome::CompletedInTransaction)) => Processed::Completed(id),
            Ok(Ok(Outcome::Snooze(after))) => match queue::snooze(&self.pool, job, after).await {
                Ok(()) => Processed::Snoozed(id),
                Err(_) => Processed::LeaseLost(id),
            },
            Ok(Err(e)) => self.record_failure(job, &e, &reg.retry).await,
            Err(what) => {
                let msg = if what == "timed out" {
                    format!("timed out after {} ms", timeout.as_millis())
                } else {
                    what.to_owned()
                };
                self.record_failure(job, &JobError::retryable(msg), &reg.retry).await
            }
        }
    }

    async fn record_failure(&self, job: &Job, error: &JobError, policy: &RetryPolicy) -> Processed {
        tracing::warn!(error = %error.message, code = error.code.as_deref(), retryable = error.retryable, "job attempt failed");
        match queue::fail(&self.pool, job, error, policy).await {
            Ok(FailOutcome::Retried) => Processed::Retried(job.id),
            Ok(FailOutcome::Dead) => Processed::Dead(job.id),
            Err(_) => Processed::LeaseLost(job.id),
        }
    }
}

/// LISTEN for wake-ups; reconnects after a lost connection.
async fn listen(pool: PgPool, queues: Vec<String>, wake: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN connection failed; polling meanwhile");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = shutdown.cancelled() => return,
                }
            }
        };
        if listener.listen(queue::CHANNEL).await.is_err() {
            continue;
        }
        // Jobs enqueued while we were not listening are found by this wake.
        wake.notify_one();
        loop {
            tokio::select! {
                n = listener.try_recv() => match n {
                    Ok(Some(n)) => if queues.iter().any(|q| q == n.payload()) { wake.notify_one() },
                    Ok(None) => { wake.notify_one(); break } // reconnected: something may have been missed
                    Err(_) => break,
                },
                () = shutdown.cancelled() => return,
            }
        }
    }
}

async fn sweeper(pool: PgPool, config: WorkerConfig, shutdown: CancellationToken) {
    let policy = config.sweep_retry;
    let mut tick = tokio::time::interval(config.sweep_interval);
    let mut last_prune = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        match queue::sweep(&pool, &policy).await {
            Ok(s) if s.retried + s.dead > 0 => {
                tracing::info!(retried = s.retried, dead = s.dead, "swept expired leases")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sweeping failed"),
        }
        if last_prune.elapsed() > Duration::from_secs(600) {
            last_prune = Instant::now();
            let _ = queue::prune_history(&pool, config.history_retention).await;
        }
    }
}
