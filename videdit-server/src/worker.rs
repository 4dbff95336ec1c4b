//! `videdit worker`: the queue runtime with the pipeline's job handlers.
//!
//! Handlers glue queue + storage + repository; media work is done by
//! `videdit-media` functions. Each handler writes its results and enqueues
//! the next stage in the same transaction that completes its job.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use videdit_core::db::{self, UploadState};
use videdit_core::storage::{KeyPrefix, Storage};
use videdit_core::{JobKind, VideoStatus};
use videdit_queue::{JobContext, JobError, JobSpec, Outcome, RetryPolicy, Worker, WorkerConfig};

use crate::media_jobs::{self, MediaDeps};
use crate::pipeline_jobs::{MAINTENANCE_QUEUE, MEDIA_QUEUE, VideoJob};

/// How often abandoned uploads are looked for.
pub const CLEANUP_EVERY: Duration = Duration::from_secs(600);

/// What the handlers share.
#[derive(Clone)]
pub struct Deps {
    /// Object storage.
    pub storage: Arc<dyn Storage>,
    /// ffmpeg, the Whisper model and media settings. Without them the
    /// worker runs only housekeeping jobs (and claims nothing else).
    pub media: Option<Arc<MediaDeps>>,
}

fn retryable(e: impl std::fmt::Display) -> JobError {
    JobError::retryable(e.to_string())
}

/// Builds the worker with every handler registered.
///
/// # Errors
/// A bad concurrency.
pub fn build(pool: sqlx::PgPool, config: WorkerConfig, deps: Deps) -> videdit_queue::Result<Worker> {
    let d1 = deps.clone();
    let d2 = deps.clone();
    let mut worker = Worker::new(pool, config)?
        .register(JobKind::Delete.as_str(), Some(Duration::from_secs(600)), RetryPolicy::default(), move |ctx| {
            let d = d1.clone();
            async move { delete(ctx, d).await }
        })
        .register(
            JobKind::CleanupUploads.as_str(),
            Some(Duration::from_secs(600)),
            RetryPolicy::default(),
            move |ctx| {
                let d = d2.clone();
                async move { cleanup_uploads(ctx, d).await }
            },
        );
    if let Some(media) = deps.media {
        let storage = deps.storage;
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
        media_handler!(JobKind::Ingest, Duration::from_secs(300), media_jobs::ingest);
        media_handler!(JobKind::Transcribe, Duration::from_secs(4 * 3600), media_jobs::transcribe);
        media_handler!(JobKind::Analyze, Duration::from_secs(600), media_jobs::analyze);
        media_handler!(JobKind::Render, Duration::from_secs(3600), media_jobs::render_short);
    }
    Ok(worker)
}

/// Worker settings from the core configuration.
#[must_use]
pub fn config(core: &videdit_core::config::Config) -> WorkerConfig {
    WorkerConfig {
        queues: vec![MEDIA_QUEUE.into(), MAINTENANCE_QUEUE.into()],
        concurrency: usize::from(core.job_concurrency),
        poll_interval: core.poll_interval,
        ..WorkerConfig::default()
    }
}

/// Removes every stored object of a deleted video.
async fn delete(ctx: JobContext, deps: Deps) -> Result<Outcome, JobError> {
    let job: VideoJob = ctx.job.payload().map_err(|e| JobError::fatal(e.to_string()))?;
    let removed = deps.storage.delete_prefix(&KeyPrefix::video(job.org_id, job.video_id)).await.map_err(retryable)?;
    ctx.progress(serde_json::json!({"objectsRemoved": removed})).await.map_err(JobError::from)?;
    Ok(Outcome::Complete)
}

/// Aborts uploads never completed, frees their parts and removes their
/// videos; then schedules its next run in the same transaction.
async fn cleanup_uploads(ctx: JobContext, deps: Deps) -> Result<Outcome, JobError> {
    let pool = ctx.pool().clone();
    loop {
        let batch = db::expired_uploads(&pool, OffsetDateTime::now_utc(), 100).await.map_err(retryable)?;
        if batch.is_empty() {
            break;
        }
        for upload in batch {
            // Claim it first: exactly one cleaner (or a late client) wins.
            match db::finish_upload(&pool, upload.org_id, upload.id, UploadState::Aborted).await {
                Ok(_) => {}
                Err(videdit_core::Error::InvalidState(_)) => continue,
                Err(e) => return Err(retryable(e)),
            }
            crate::api::abort_upload_objects(deps.storage.as_ref(), &upload).await.map_err(retryable)?;
            let video = db::get_video(&pool, upload.org_id, upload.video_id).await;
            if matches!(video, Ok(v) if v.status == VideoStatus::Uploading) {
                db::delete_video(&pool, upload.org_id, upload.video_id).await.map_err(retryable)?;
            }
            tracing::info!(upload = %upload.id, "aborted an abandoned upload");
        }
    }
    let mut tx = pool.begin().await.map_err(retryable)?;
    ctx.complete_in(&mut tx).await.map_err(JobError::from)?;
    schedule_cleanup(&mut tx, OffsetDateTime::now_utc() + CLEANUP_EVERY).await.map_err(JobError::from)?;
    tx.commit().await.map_err(retryable)?;
    Ok(Outcome::CompletedInTransaction)
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
