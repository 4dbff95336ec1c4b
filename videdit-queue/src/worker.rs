//! The worker runtime: claims as many jobs as it has free slots, runs their
//! handlers with heartbeats, timeouts and cancellation, and records each
//! outcome under the job's lease.

use std::collections::{HashMap, VecDeque};
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

use crate::batch::{Batching, Ending, Flusher};
use crate::error::{Error, JobError, Result};
use crate::fairness::{self, Fairness};
use crate::job::{DEFAULT_QUEUE, Job};
use crate::metrics::Metrics;
use crate::queue::{self, ClaimSpec, FailOutcome, Heartbeat, Settle};
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
    /// Batched claims and recording (`None`: one claim per free-slot batch,
    /// one statement per job's end). See [`Batching`].
    pub batching: Option<Batching>,
    /// Fair sharing between job groups (`None`: claim in queue, priority
    /// and due order, whatever the group). See [`Fairness`].
    pub fairness: Option<Fairness>,
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
            batching: None,
            fairness: None,
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
    config: Arc<WorkerConfig>,
    handlers: Arc<HashMap<String, Registered>>,
    metrics: Arc<Metrics>,
    /// The group the last fair claim ended with.
    cursor: Arc<std::sync::Mutex<String>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("config", &self.config).field("kinds", &self.handlers.keys()).finish()
    }
}

/// A claimed job not yet started: when and under which lease it was claimed.
struct Claimed {
    job: Job,
    at: Instant,
    lease: Duration,
}

/// How an attempt ended: what to record under its lease, and what that
/// means once recorded; or nothing left to record.
enum End {
    Record(Settle, Processed),
    Done(Processed),
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
        Ok(Self {
            pool,
            config: Arc::new(config),
            handlers: Arc::new(HashMap::new()),
            metrics: Arc::new(Metrics::default()),
            cursor: Arc::default(),
        })
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
        Arc::make_mut(&mut self.handlers).insert(kind.to_owned(), Registered { handler, timeout, retry });
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

    /// Claims up to `limit` jobs under `lease`, fairly between groups when
    /// the worker shares fairly.
    async fn claim(&self, kinds: &[String], limit: usize, lease: Duration) -> Result<Vec<Job>> {
        let after = self.cursor.lock().expect("lock").clone();
        let jobs = self.claim_spec(kinds, limit, lease, &after).run(&self.pool).await?;
        self.advance_cursor(&after, &jobs);
        Ok(jobs)
    }

    /// What [`Worker::claim`] asks the database for.
    fn claim_spec<'a>(&'a self, kinds: &'a [String], limit: usize, lease: Duration, after: &'a str) -> ClaimSpec<'a> {
        let fair = self.config.fairness.as_ref().map(|f| (f, after));
        ClaimSpec { queues: &self.config.queues, kinds: Some(kinds), limit: limit as u32, lease, fair }
    }

    /// After a fair claim that started after `after`: the next starts after its last group.
    fn advance_cursor(&self, after: &str, claimed: &[Job]) {
        if self.config.fairness.is_some()
            && let Some(next) = fairness::next_cursor(after, claimed)
        {
            *self.cursor.lock().expect("lock") = next;
        }
    }

    /// Claims one due job (if any), runs it to its end, and says what happened.
    /// For tests and step-by-step drivers; it records the end at once, in
    /// batched mode too.
    ///
    /// # Errors
    /// Database failures.
    pub async fn process_next(&self) -> Result<Processed> {
        let lease = self.config.lease;
        match self.claim(&self.kinds(), 1, lease).await?.pop() {
            None => Ok(Processed::Empty),
            Some(job) => {
                let claimed = Claimed { job, at: Instant::now(), lease };
                Ok(self.run_job(claimed, CancellationToken::new(), None).await)
            }
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
        let flusher = self.config.batching.clone().map(|b| Flusher::start(self.pool.clone(), self.metrics.clone(), b));
        let (prefetch, claim_lease) = match &self.config.batching {
            Some(b) if b.prefetch > 0 => (b.prefetch, b.prefetch_lease.min(self.config.lease)),
            _ => (0, self.config.lease),
        };
        let mut buffer: VecDeque<Claimed> = VecDeque::new();
        let mut tasks = tokio::task::JoinSet::new();
        let kinds = self.kinds();
        let mut backoff = Duration::from_millis(100);
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            self.give_back_stale(&mut buffer).await;
            let free = slots.available_permits();
            // Claim when the buffer cannot fill the free slots, or (prefetching) is half empty.
            let want = if buffer.len() < free || (prefetch > 0 && buffer.len() <= prefetch / 2) {
                free + prefetch - buffer.len()
            } else {
                0
            };
            let mut claimed_full = false;
            if want > 0 {
                match self.claim(&kinds, want, claim_lease).await {
                    Ok(jobs) => {
                        backoff = Duration::from_millis(100);
                        claimed_full = jobs.len() == want;
                        let at = Instant::now();
                        buffer.extend(jobs.into_iter().map(|job| Claimed { job, at, lease: claim_lease }));
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
            while !buffer.is_empty() {
                let Ok(permit) = slots.clone().try_acquire_owned() else { break };
                let claimed = buffer.pop_front().expect("not empty");
                let me = self.clone();
                let stop = hard_stop.child_token();
                let wake = wake.clone();
                let endings = flusher.as_ref().map(Flusher::sender);
                tasks.spawn(async move {
                    me.run_job(claimed, stop, endings).await;
                    drop(permit);
                    wake.notify_one(); // a slot is free: look for more work
                });
            }
            while tasks.try_join_next().is_some() {}
            if claimed_full && (slots.available_permits() > 0 || buffer.len() <= prefetch / 2) {
                continue; // more may be waiting
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
                () = shutdown.cancelled() => {}
            }
        }
        // Graceful shutdown: no more claims; prefetched jobs go back at once;
        // wait for the running ones, then stop the rest.
        self.give_back(buffer.drain(..).map(|c| c.job).collect()).await;
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
        if let Some(f) = flusher {
            f.finish().await;
        }
        for b in background {
            b.abort();
        }
        Ok(())
    }

    /// Gives back prefetched jobs that waited so long that their short lease
    /// might run out before their first heartbeat.
    async fn give_back_stale(&self, buffer: &mut VecDeque<Claimed>) {
        if buffer.front().is_none_or(|c| c.at.elapsed() < c.lease / 2) {
            return;
        }
        let (stale, fresh): (Vec<Claimed>, Vec<Claimed>) =
            buffer.drain(..).partition(|c| c.at.elapsed() >= c.lease / 2);
        buffer.extend(fresh);
        self.give_back(stale.into_iter().map(|c| c.job).collect()).await;
    }

    /// Gives unstarted jobs back to the queue, attempt not spent.
    async fn give_back(&self, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        let items: Vec<(&Job, Settle)> = jobs.iter().map(|j| (j, Settle::GiveBack { after: Duration::ZERO })).collect();
        if let Err(e) = queue::settle(&self.pool, &items).await {
            // Their leases run out and the sweeper returns them.
            tracing::warn!(error = %e, jobs = jobs.len(), "giving back prefetched jobs failed");
        }
    }

    /// Runs a job and records its end: at once, or through the flusher in
    /// batched mode (then what is returned is what the job asked for; the
    /// metrics count what was recorded).
    async fn run_job(
        &self,
        claimed: Claimed,
        stop: CancellationToken,
        endings: Option<tokio::sync::mpsc::UnboundedSender<Ending>>,
    ) -> Processed {
        let span =
            tracing::info_span!("job", id = %claimed.job.id, kind = %claimed.job.kind, attempt = claimed.job.attempt);
        async move {
            let started = Instant::now();
            let m = &self.metrics;
            m.running.fetch_add(1, Ordering::Relaxed);
            let latency = (time::OffsetDateTime::now_utc() - claimed.job.run_at).whole_microseconds().max(0) as u64;
            m.start_latency_micros.fetch_add(latency, Ordering::Relaxed);
            m.started.fetch_add(1, Ordering::Relaxed);
            let first_beat = (claimed.lease / 3).saturating_sub(claimed.at.elapsed());
            let held_until = claimed.at + lease_margin(claimed.lease);
            let job = claimed.job;
            let end = self.execute(&job, stop, first_beat, held_until).await;
            m.running.fetch_sub(1, Ordering::Relaxed);
            let result = match (end, endings) {
                (End::Done(p), _) => {
                    m.count(&p);
                    p
                }
                (End::Record(how, ok), Some(tx)) => {
                    let asked = ok.clone();
                    match tx.send(Ending { job, how, ok }) {
                        Ok(()) => asked,
                        Err(lost) => self.record(&lost.0.job, lost.0.how, lost.0.ok).await,
                    }
                }
                (End::Record(how, ok), None) => self.record(&job, how, ok).await,
            };
            tracing::debug!(outcome = ?result, elapsed_ms = started.elapsed().as_millis() as u64, "job finished");
            result
        }
        .instrument(span)
        .await
    }

    /// Records one end at once.
    async fn record(&self, job: &Job, how: Settle, ok: Processed) -> Processed {
        let p = match queue::settle(&self.pool, &[(job, how)]).await {
            Ok(done) if !done.is_empty() => ok,
            Ok(_) => Processed::LeaseLost(job.id),
            Err(e) => {
                tracing::warn!(error = %e, "recording the job's end failed");
                Processed::LeaseLost(job.id)
            }
        };
        self.metrics.count(&p);
        p
    }

    /// Runs a job's handler with heartbeats. `held_until` is when the lease
    /// it was claimed with runs out by this worker's clock (with a margin):
    /// when no heartbeat has renewed it by then (the database cannot be
    /// reached), the handler is cancelled here, so it stops writing before
    /// another worker can take the job over.
    async fn execute(&self, job: &Job, stop: CancellationToken, first_beat: Duration, held_until: Instant) -> End {
        let id = job.id;
        let Some(reg) = self.handlers.get(&job.kind).cloned() else {
            let msg = format!("no handler for kind {:?}", job.kind);
            return failed(job, &JobError::fatal(msg), &RetryPolicy::default());
        };
        let cancel = stop.child_token();
        let ctx = JobContext { job: job.clone(), pool: self.pool.clone(), cancel: cancel.clone() };
        let timeout = job.timeout_ms.map_or(reg.timeout, |ms| Duration::from_millis(ms.max(1) as u64));

        // Heartbeats renew the lease and carry cancellation requests back.
        let lease = self.config.lease;
        let why = std::sync::Mutex::new(None::<&'static str>);
        let beat = async {
            let mut held_until = held_until;
            tokio::time::sleep(first_beat).await;
            loop {
                let sent = Instant::now();
                // A heartbeat that hangs (a dead connection) counts as
                // failed, at the latest when the lease runs out.
                let budget = (lease / 3).min(held_until.saturating_duration_since(sent));
                let answer = tokio::time::timeout(budget, queue::heartbeat(&self.pool, job, lease)).await;
                match answer.unwrap_or(Err(crate::Error::HeartbeatTimeout)) {
                    Ok(Heartbeat::Extended) => held_until = sent + lease_margin(lease),
                    Ok(Heartbeat::CancelRequested) => {
                        *why.lock().expect("lock") = Some("cancelled");
                        cancel.cancel();
                    }
                    Ok(Heartbeat::Lost) => {
                        *why.lock().expect("lock") = Some("lease lost");
                        cancel.cancel();
                        return std::future::pending::<()>().await;
                    }
                    // A failed heartbeat is retried at the next tick, while
                    // the lease lasts; past it the job is no longer ours.
                    Err(e) if Instant::now() >= held_until => {
                        tracing::warn!(error = %e, "heartbeats failed past the lease; stopping the job here");
                        *why.lock().expect("lock") = Some("lease lost");
                        cancel.cancel();
                        return std::future::pending::<()>().await;
                    }
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                }
                let next = (lease / 3).min(held_until.saturating_duration_since(Instant::now()));
                tokio::time::sleep(next).await;
            }
        };

        // A panic fails this attempt, not the worker.
        let run = std::panic::AssertUnwindSafe((reg.handler)(ctx)).catch_unwind();
        let outcome = tokio::select! {
            r = run => r.map_err(|_| "the handler panicked"),
            () = beat => unreachable!("heartbeats never end"),
            () = tokio::time::sleep(timeout) => {
                cancel.cancel();
                Err("timed out")
            }
            () = cancel.cancelled() => Err("stopped"),
        };

        let reason = *why.lock().expect("lock");
        if stop.is_cancelled() && reason.is_none() {
            // Shutdown past the grace period: hand the job to another worker.
            return End::Record(Settle::GiveBack { after: Duration::ZERO }, Processed::Released(id));
        }
        match reason {
            Some("lease lost") => return End::Done(Processed::LeaseLost(id)),
            Some(_) => return End::Record(queue::cancelled(job), Processed::Cancelled(id)),
            None => {}
        }
        match outcome {
            Ok(Ok(Outcome::Complete)) => End::Record(Settle::Complete, Processed::Completed(id)),
            Ok(Ok(Outcome::CompletedInTransaction)) => End::Done(Processed::Completed(id)),
            Ok(Ok(Outcome::Snooze(after))) => End::Record(Settle::GiveBack { after }, Processed::Snoozed(id)),
            Ok(Err(e)) => failed(job, &e, &reg.retry),
            Err(what) => {
                let msg = if what == "timed out" {
                    format!("timed out after {} ms", timeout.as_millis())
                } else {
                    what.to_owned()
                };
                failed(job, &JobError::retryable(msg), &reg.retry)
            }
        }
    }
}

/// How long a lease of `lease` is taken to last here: a quarter less, for
/// the clocks, the round trip and a busy scheduler between this worker and
/// the database (a tenth was not enough on a loaded 2-core machine).
fn lease_margin(lease: Duration) -> Duration {
    lease - lease / 4
}

/// A failed attempt's end.
fn failed(job: &Job, error: &JobError, policy: &RetryPolicy) -> End {
    tracing::warn!(error = %error.message, code = error.code.as_deref(), retryable = error.retryable, "job attempt failed");
    let (how, outcome) = queue::failure(job, error, policy);
    End::Record(
        how,
        match outcome {
            FailOutcome::Retried => Processed::Retried(job.id),
            FailOutcome::Dead => Processed::Dead(job.id),
        },
    )
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

async fn sweeper(pool: PgPool, config: Arc<WorkerConfig>, shutdown: CancellationToken) {
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
