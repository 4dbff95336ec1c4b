//! Job handlers: the queue worker with every kind registered.
//!
//! Handlers are adapters: media work is done by `videdit-media` functions
//! ([`media`]), and every result is recorded through one `videdit_service`
//! operation in the transaction that completes the job. Housekeeping
//! (deleting files, abandoned uploads, expired idempotency keys) and
//! webhook deliveries are here too.

pub mod media;

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use videdit_core::storage::Storage;
use videdit_core::{DeliveryId, JobKind, OrgId};
use videdit_queue::{JobContext, JobError, JobSpec, Outcome, RetryPolicy, Worker, WorkerConfig};
use videdit_service::jobs::{MAINTENANCE_QUEUE, MEDIA_QUEUE, VideoJob, WEBHOOK_QUEUE};
use videdit_service::publications::{self, PUBLISH_QUEUE, Publisher};
use videdit_service::{Error, uploads, videos, webhooks};
use videdit_webhooks::Sender;

pub use media::MediaDeps;

/// How often abandoned uploads and expired idempotency keys are looked for.
pub const CLEANUP_EVERY: Duration = Duration::from_secs(600);

/// What the handlers share.
#[derive(Clone)]
pub struct Deps {
    /// Object storage.
    pub storage: Arc<dyn Storage>,
    /// ffmpeg, the Whisper model and media settings. Without them the
    /// worker runs only housekeeping jobs and deliveries (and claims
    /// nothing else).
    pub media: Option<Arc<MediaDeps>>,
    /// Makes webhook delivery attempts (SSRF-guarded).
    pub webhooks: Sender,
    /// Opens the sealed webhook secrets (`ENCRYPTION_KEYS`).
    pub keyring: Arc<videdit_core::sealed::Keyring>,
    /// Plans and the grace period.
    pub billing: Arc<videdit_service::billing::Billing>,
    /// Stripe, for meter reports; `None`: usage is not reported.
    pub payments: Option<Arc<dyn videdit_service::billing::PaymentProvider>>,
    /// The platform clients, for publish jobs; a platform not configured
    /// fails its publications with `platform_not_configured`.
    pub platforms: videdit_service::connections::Platforms,
    /// How Meta gets a short's bytes (`INSTAGRAM_UPLOAD`).
    pub instagram_source: publications::InstagramSource,
}

/// Builds the worker with every handler registered.
///
/// # Errors
/// A bad concurrency.
pub fn build(pool: sqlx::PgPool, config: WorkerConfig, deps: Deps) -> videdit_queue::Result<Worker> {
    macro_rules! handler {
        ($worker:ident, $kind:expr, $timeout:expr, $retry:expr, $f:path) => {{
            let d = deps.clone();
            $worker = $worker.register($kind.as_str(), Some($timeout), $retry, move |ctx| {
                let d = d.clone();
                async move { $f(ctx, d).await }
            });
        }};
    }
    let mut worker = Worker::new(pool, config)?;
    handler!(worker, JobKind::Delete, Duration::from_secs(600), RetryPolicy::default(), delete);
    handler!(worker, JobKind::CleanupUploads, Duration::from_secs(600), RetryPolicy::default(), cleanup);
    // A delivery schedules its own retries (the Standard Webhooks schedule)
    // by snoozing; queue-level retries cover only our own failures.
    handler!(worker, JobKind::DeliverWebhook, Duration::from_secs(60), RetryPolicy::default(), deliver);
    handler!(worker, JobKind::ReportUsage, Duration::from_secs(60), RetryPolicy::default(), report_usage);
    handler!(worker, JobKind::BillingGraceEnded, Duration::from_secs(60), RetryPolicy::default(), grace_ended);
    // An upload of a short is minutes at worst; processing is followed by
    // snoozing, so one run never waits for the platform.
    handler!(worker, JobKind::Publish, Duration::from_secs(1800), RetryPolicy::default(), publish);
    if let Some(media) = deps.media.clone() {
        let storage = deps.storage.clone();
        // Timeouts are generous ceilings (ffmpeg runs have their own
        // duration-based deadlines): 4 h of media transcribes in about an hour.
        macro_rules! media_handler {
            ($kind:expr, $timeout:expr, $handler:path) => {{
                let (s, m) = (storage.clone(), media.clone());
                worker = worker.register($kind.as_str(), Some($timeout), RetryPolicy::default(), move |ctx| {
                    let (s, m) = (s.clone(), m.clone());
                    async move { $handler(ctx, s, m).await }
                });
            }};
        }
        media_handler!(JobKind::Ingest, Duration::from_secs(300), media::ingest);
        media_handler!(JobKind::Transcribe, Duration::from_secs(4 * 3600), media::transcribe);
        media_handler!(JobKind::Analyze, Duration::from_secs(600), media::analyze);
        media_handler!(JobKind::Render, Duration::from_secs(3600), media::render_short);
    }
    Ok(worker)
}

/// Worker settings from the core configuration.
#[must_use]
pub fn config(core: &videdit_core::config::Config, billing: &videdit_service::billing::Billing) -> WorkerConfig {
    WorkerConfig {
        queues: vec![MEDIA_QUEUE.into(), MAINTENANCE_QUEUE.into(), WEBHOOK_QUEUE.into(), PUBLISH_QUEUE.into()],
        concurrency: usize::from(core.job_concurrency),
        poll_interval: core.poll_interval,
        // One organisation's backlog cannot starve another's jobs: claims
        // take from each organisation (the jobs' group) in turn.
        // The default plan's cap on running jobs per organisation; a
        // subscribed organisation's plan sets its own (billing does).
        fairness: Some(videdit_queue::Fairness {
            max_running_per_group: billing.plans.default_plan().max_running_jobs,
            ..videdit_queue::Fairness::default()
        }),
        ..WorkerConfig::default()
    }
}

/// Removes every stored object of a deleted video (and aborts its
/// unfinished multipart uploads).
async fn delete(ctx: JobContext, deps: Deps) -> Result<Outcome, JobError> {
    let job: VideoJob = ctx.job.payload().map_err(|e| JobError::fatal(e.to_string()))?;
    let removed = videos::remove_files(deps.storage.as_ref(), &job).await?;
    ctx.progress(serde_json::json!({"objectsRemoved": removed})).await.map_err(JobError::from)?;
    Ok(Outcome::Complete)
}

/// Aborts uploads never completed (storage first, then their rows and
/// videos), forgets expired idempotency keys, seals again webhook secrets
/// not sealed by the keyring's first key and refreshes Instagram tokens
/// that would lapse; then schedules its next run in the same transaction.
async fn cleanup(ctx: JobContext, deps: Deps) -> Result<Outcome, JobError> {
    let pool = ctx.pool().clone();
    uploads::clean_up_abandoned(&pool, deps.storage.as_ref(), OffsetDateTime::now_utc()).await?;
    let pruned = videdit_core::db::prune_idempotency(&pool).await.map_err(Error::from)?;
    if pruned > 0 {
        tracing::info!(pruned, "forgot expired idempotency keys");
    }
    let resealed = webhooks::reseal_secrets(&pool, &deps.keyring).await?;
    if resealed > 0 {
        tracing::info!(resealed, "sealed webhook secrets again with the current key");
    }
    let refreshed = videdit_service::connections::refresh_aging(&pool, &deps.keyring, &deps.platforms).await?;
    if refreshed > 0 {
        tracing::info!(refreshed, "refreshed Instagram tokens before they expire");
    }
    let mut tx = pool.begin().await.map_err(Error::from)?;
    ctx.complete_in(&mut tx).await.map_err(JobError::from)?;
    schedule_cleanup(&mut tx, OffsetDateTime::now_utc() + CLEANUP_EVERY).await.map_err(JobError::from)?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Outcome::CompletedInTransaction)
}

/// One run of a publication's job: the rules, the upload (resumed where
/// the platform stopped), then processing (see `videdit_service::publications`).
async fn publish(ctx: JobContext, deps: Deps) -> Result<Outcome, JobError> {
    let publisher = Publisher {
        storage: deps.storage.as_ref(),
        keyring: &deps.keyring,
        platforms: &deps.platforms,
        instagram_source: deps.instagram_source,
    };
    publications::run(&ctx, publisher).await
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryJob {
    org_id: OrgId,
    delivery_id: DeliveryId,
}

/// One attempt of a webhook delivery; the next one is a snooze on the
/// Standard Webhooks schedule (a snooze spends no queue attempt).
async fn deliver(ctx: JobContext, deps: Deps) -> Result<Outcome, JobError> {
    let job: DeliveryJob = ctx.job.payload().map_err(|e| JobError::fatal(e.to_string()))?;
    match webhooks::attempt(ctx.pool(), &deps.webhooks, &deps.keyring, job.org_id, job.delivery_id).await? {
        webhooks::Step::Done => Ok(Outcome::Complete),
        webhooks::Step::RetryAfter(after) => Ok(Outcome::Snooze(after)),
    }
}

/// Reports a ready video's processed seconds to the Stripe meter (its
/// identifier makes a retried report count once).
async fn report_usage(ctx: JobContext, deps: Deps) -> Result<Outcome, JobError> {
    let job: videdit_service::billing::UsageJob = ctx.job.payload().map_err(|e| JobError::fatal(e.to_string()))?;
    let Some(provider) = deps.payments.as_ref() else { return Ok(Outcome::Complete) };
    videdit_service::billing::report_usage(ctx.pool(), provider.as_ref(), &job).await?;
    Ok(Outcome::Complete)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrgJob {
    org_id: OrgId,
}

/// A payment's grace period ended: the plan change is recorded.
async fn grace_ended(ctx: JobContext, deps: Deps) -> Result<Outcome, JobError> {
    let job: OrgJob = ctx.job.payload().map_err(|e| JobError::fatal(e.to_string()))?;
    videdit_service::billing::grace_ended(ctx.pool(), &deps.billing, job.org_id).await?;
    Ok(Outcome::Complete)
}

/// Makes sure a cleanup run is scheduled (one at a time, by unique key).
///
/// # Errors
/// Database failures.
pub async fn schedule_cleanup(conn: &mut sqlx::PgConnection, at: OffsetDateTime) -> videdit_queue::Result<uuid::Uuid> {
    let spec = JobSpec::new(JobKind::CleanupUploads.as_str(), &serde_json::json!({}))?
        .queue(MAINTENANCE_QUEUE)
        .unique_key("cleanup_uploads")
        .run_at(at);
    videdit_queue::enqueue(conn, &spec).await
}
