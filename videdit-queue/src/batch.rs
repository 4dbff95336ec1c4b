//! Batched recording of attempts' ends: the worker hands each ending to a
//! flusher that records whatever arrived within a short window (or a full
//! batch) in one statement, each row still fenced by its lease token.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::job::Job;
use crate::metrics::Metrics;
use crate::queue::{self, Settle};
use crate::worker::Processed;

/// Settings of a worker's batched mode.
///
/// One claim takes every free slot (and, with `prefetch`, up to that many
/// more jobs into a local buffer); the ends of attempts (completions,
/// retries, snoozes, failures) are recorded together, within `window` or
/// when `max_batch` are waiting, and at shutdown. A completion is still
/// fenced by its lease; a batch that fails is recorded again one statement
/// per job. A crash can lose at most one window of endings: those jobs run
/// again once their lease expires, as after any crash.
#[derive(Debug, Clone, PartialEq)]
pub struct Batching {
    /// How long an ending may wait for others before it is recorded.
    pub window: Duration,
    /// At most this many endings per statement.
    pub max_batch: usize,
    /// Jobs claimed ahead of free slots into a local buffer (0: none). They
    /// hold `prefetch_lease` only, are given back at once on shutdown, and
    /// are given back instead of started once half of it has passed.
    pub prefetch: usize,
    /// The lease of jobs claimed in this mode until their first heartbeat,
    /// when `prefetch` is on (the worker's lease otherwise).
    pub prefetch_lease: Duration,
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            window: Duration::from_millis(2),
            max_batch: 500,
            prefetch: 200,
            prefetch_lease: Duration::from_secs(10),
        }
    }
}

/// One ending waiting to be recorded: the job, how, and what it means when
/// the lease held.
pub(crate) struct Ending {
    pub job: Job,
    pub how: Settle,
    pub ok: Processed,
}

/// Records endings in batches; dropping every sender and awaiting
/// [`Flusher::finish`] records the rest.
pub(crate) struct Flusher {
    tx: mpsc::UnboundedSender<Ending>,
    task: tokio::task::JoinHandle<()>,
}

impl Flusher {
    pub(crate) fn start(pool: PgPool, metrics: Arc<Metrics>, batching: Batching) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self { tx, task: tokio::spawn(flush_loop(pool, metrics, batching, rx)) }
    }

    pub(crate) fn sender(&self) -> mpsc::UnboundedSender<Ending> {
        self.tx.clone()
    }

    /// Records what is still waiting, once every other sender is gone.
    pub(crate) async fn finish(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}

async fn flush_loop(pool: PgPool, metrics: Arc<Metrics>, batching: Batching, mut rx: mpsc::UnboundedReceiver<Ending>) {
    let max = batching.max_batch.max(1);
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + batching.window;
        while batch.len() < max {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(e)) => batch.push(e),
                Ok(None) | Err(_) => break,
            }
        }
        flush(&pool, &metrics, batch).await;
    }
}

/// Records a batch in one statement; when that fails, one statement per job.
async fn flush(pool: &PgPool, metrics: &Metrics, batch: Vec<Ending>) {
    let items: Vec<(&Job, Settle)> = batch.iter().map(|e| (&e.job, e.how.clone())).collect();
    match queue::settle(pool, &items).await {
        Ok(done) => {
            let done: HashSet<uuid::Uuid> = done.into_iter().collect();
            for e in batch {
                let id = e.job.id;
                metrics.count(&if done.contains(&id) { e.ok } else { Processed::LeaseLost(id) });
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, jobs = batch.len(), "recording a batch failed; recording one by one");
            for e in batch {
                let id = e.job.id;
                let processed = match queue::settle(pool, &[(&e.job, e.how)]).await {
                    Ok(done) if !done.is_empty() => e.ok,
                    Ok(_) => Processed::LeaseLost(id),
                    Err(err) => {
                        // Unrecorded: the lease runs out and the sweeper returns the job.
                        tracing::warn!(error = %err, %id, "recording a job's end failed");
                        Processed::LeaseLost(id)
                    }
                };
                metrics.count(&processed);
            }
        }
    }
}
