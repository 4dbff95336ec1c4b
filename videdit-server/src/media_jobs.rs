//! The pipeline's job handlers: `ingest`, `transcribe`, `analyze`, `render`.
//!
//! Each calls the `videdit_media::pipeline` stage function as it is, then
//! writes its results, moves the video to the next stage and enqueues the
//! next job in the transaction that completes its own job. The source is
//! read in place: a local-storage file directly, an S3 object through a
//! presigned GET that ffmpeg streams (rendering reads only the short's byte
//! range, not the whole upload).
//!
//! A job that finds the video deleted completes quietly; a job for a stage
//! the video cannot enter now (transcribing a video still rendering) fails
//! fatally; bad media marks the video failed with the reason and the job
//! dead; other errors are retried, and the video is marked failed when the
//! last attempt fails.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use videdit_core::db::{self, NewShort};
use videdit_core::recipe::{Aspect, CaptionStyle, ClipRecipe, Reframe};
use videdit_core::short::{ShortOutputs, ShortStatus};
use videdit_core::storage::{ObjectKey, PresignGet, Storage, bytes_stream};
use videdit_core::time_range::TimeRange;
use videdit_core::{JobKind, ProcessingStage, ShortId, Video, VideoStatus};
use videdit_media::analyze::{AnalyzeOptions, AudioFeatures};
use videdit_media::pipeline::{self, PipelineOptions};
use videdit_media::probe::MediaLimits;
use videdit_media::process::Ffmpeg;
use videdit_media::render::{RenderOptions, RenderOutputs, render};
use videdit_media::transcribe::{TranscribeOptions, Transcriber};
use videdit_queue::{JobContext, JobError, Outcome};

use crate::pipeline_jobs::{VideoJob, enqueue_stage};

/// How long a presigned source URL handed to ffmpeg stays valid.
const SOURCE_URL_TTL: Duration = Duration::from_secs(6 * 3600);
/// How often a running stage writes its progress to the job.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What the media handlers need besides storage.
#[derive(Clone)]
pub struct MediaDeps {
    /// The ffmpeg gateway.
    pub ffmpeg: Ffmpeg,
    /// The loaded Whisper model.
    pub transcriber: Transcriber,
    /// Its name, recorded in transcripts.
    pub model_name: String,
    /// What uploads must satisfy.
    pub limits: MediaLimits,
    /// Transcription settings (threads, language).
    pub transcribe: TranscribeOptions,
    /// Encoding settings.
    pub render: RenderOptions,
    /// Where renders write before uploading.
    pub work_dir: PathBuf,
}

impl MediaDeps {
    /// The media settings of a worker: ffmpeg from `FFMPEG_BINARY`, the
    /// model from `WHISPER_MODEL` (loaded now, so a missing model stops
    /// the worker at start-up with the reason), limits from `LIMIT_*`,
    /// renders in `VIDEDIT_WORK_DIR` (default: the temporary directory).
    /// Transcription threads: the cores shared among the job slots.
    ///
    /// # Errors
    /// A model that is missing or does not load; bad limits.
    pub fn from_config(config: &videdit_core::config::Config) -> anyhow::Result<Self> {
        use videdit_media::models::{ModelRef, ModelStore};
        let store = ModelStore::from_config(config.model_dir.as_deref());
        let model = ModelRef::parse(&config.whisper_model);
        let path = store.resolve(&model)?;
        let model_name = model.name();
        let transcriber = Transcriber::load(&path, &model_name)?;
        let limits = crate::settings::Limits::from_env().map_err(videdit_core::config::ConfigErrors)?.media();
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let threads = (cores / usize::from(config.job_concurrency.max(1))).max(1);
        let work_dir = std::env::var_os("VIDEDIT_WORK_DIR")
            .map_or_else(|| std::env::temp_dir().join("videdit-work"), PathBuf::from);
        Ok(Self {
            ffmpeg: Ffmpeg::new(&config.ffmpeg_binary),
            transcriber,
            model_name,
            limits,
            transcribe: TranscribeOptions { threads: Some(threads), ..TranscribeOptions::default() },
            render: RenderOptions::default(),
            work_dir,
        })
    }
}

/// Options of an `analyze` job (all optional, camelCase in the API).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct AnalyzeJobOptions {
    /// How many shorts at most.
    pub max_shorts: Option<usize>,
    /// Shortest short, seconds.
    pub min_duration: Option<f64>,
    /// Longest short, seconds.
    pub max_duration: Option<f64>,
    /// Only search this part of the video.
    pub search_range: Option<TimeRange>,
    /// Words to favour.
    pub keywords: Vec<String>,
    /// Output frame shape.
    pub aspect: Option<Aspect>,
    /// Reframing.
    pub reframe: Option<Reframe>,
    /// Caption style.
    pub caption_style: Option<CaptionStyle>,
}

impl AnalyzeJobOptions {
    /// Checks the options as the analysis will see them.
    ///
    /// # Errors
    /// The first option out of range.
    pub fn validate(&self) -> Result<(), videdit_media::analyze::AnalyzeError> {
        self.pipeline_options().analyze.validate()
    }

    fn pipeline_options(&self) -> PipelineOptions {
        let d = AnalyzeOptions::default();
        PipelineOptions {
            analyze: AnalyzeOptions {
                max_shorts: self.max_shorts.unwrap_or(d.max_shorts),
                min_duration: self.min_duration.unwrap_or(d.min_duration),
                max_duration: self.max_duration.unwrap_or(d.max_duration),
                search_range: self.search_range,
                keywords: self.keywords.clone(),
            },
            aspect: self.aspect.unwrap_or_default(),
            reframe: self.reframe.unwrap_or_default(),
            caption_style: self.caption_style.unwrap_or_default(),
            ..PipelineOptions::default()
        }
    }
}

fn retryable(e: impl std::fmt::Display) -> JobError {
    JobError::retryable(e.to_string())
}

/// Where a video's loudness features are kept.
fn features_key(video: &Video) -> Result<ObjectKey, JobError> {
    ObjectKey::video_file(video.org_id, video.id, "loudness.json").map_err(|e| JobError::fatal(e.to_string()))
}

/// The job's payload and its video; `None` when the video was deleted.
async fn load(ctx: &JobContext) -> Result<Option<(VideoJob, Video)>, JobError> {
    let job: VideoJob = ctx.job.payload().map_err(|e| JobError::fatal(e.to_string()))?;
    match db::get_video(ctx.pool(), job.org_id, job.video_id).await {
        Ok(v) => Ok(Some((job, v))),
        Err(e) if e.code() == videdit_core::ErrorCode::VideoNotFound => Ok(None),
        Err(e) => Err(retryable(e)),
    }
}

/// Moves the video into `stage` (allowed from the stage before it, a
/// retry of the same stage, or a finished video being re-processed).
async fn enter(ctx: &JobContext, video: &Video, stage: ProcessingStage) -> Result<(), JobError> {
    let mut conn = ctx.pool().acquire().await.map_err(retryable)?;
    match db::transition_video(&mut conn, video.org_id, video.id, &VideoStatus::Processing { stage }, None).await {
        Ok(_) => Ok(()),
        Err(videdit_core::Error::InvalidState(m)) => Err(JobError::fatal(m)),
        Err(e) => Err(retryable(e)),
    }
}

/// The source as ffmpeg should open it: a local file, or a presigned URL.
async fn source_input(storage: &dyn Storage, video: &Video) -> Result<String, JobError> {
    let key = video.source_key.as_ref().ok_or_else(|| JobError::fatal("the video has no uploaded source"))?;
    if let Some(path) = storage.local_path(key) {
        return Ok(path.display().to_string());
    }
    let get = storage
        .presign_get(key, &PresignGet { expires_in: SOURCE_URL_TTL, download_name: None })
        .await
        .map_err(retryable)?;
    Ok(get.url)
}

/// `message` without the source's location (a server path or a presigned
/// URL, whose signature is a credential): ffmpeg quotes its input in errors.
fn scrub(message: &str, input: &str) -> String {
    let mut out = message.to_owned();
    let bare = input.split('?').next().unwrap_or(input);
    for needle in [format!("file:{input}"), input.to_owned(), bare.to_owned()] {
        if !needle.is_empty() {
            out = out.replace(&needle, "the upload");
        }
    }
    out
}

/// A media failure: bad input fails the video for good; anything else is
/// retried, and fails the video once the attempts are spent.
async fn media_failure(ctx: &JobContext, video: &Video, e: &videdit_media::Error, input: &str) -> JobError {
    let (code, message, retry) = (e.code().as_str(), scrub(&e.to_string(), input), e.is_retryable());
    let last = ctx.job.attempt >= ctx.job.max_attempts;
    if retry && !last {
        return JobError::retryable(message);
    }
    let reason = format!("{code}: {message}");
    let reason: String = reason.chars().take(1000).collect();
    if let Ok(mut conn) = ctx.pool().acquire().await {
        let failed = VideoStatus::Failed { reason };
        if let Err(e) = db::transition_video(&mut conn, video.org_id, video.id, &failed, None).await {
            tracing::warn!(video = %video.id, error = %e, "could not mark the video failed");
        }
    }
    JobError::fatal(message)
}

/// Runs `work` while writing the latest progress (0..1, sent on the
/// returned channel) to the job every second.
async fn with_progress<T>(ctx: &JobContext, stage: &str, work: impl AsyncFnOnce(watch::Sender<f64>) -> T) -> T {
    let (tx, mut rx) = watch::channel(0.0_f64);
    let report = async {
        loop {
            tokio::time::sleep(PROGRESS_EVERY).await;
            if rx.has_changed().unwrap_or(false) {
                let p = *rx.borrow_and_update();
                let _ = ctx.progress(serde_json::json!({"stage": stage, "percent": (p * 100.0).round()})).await;
            }
        }
    };
    tokio::select! {
        out = work(tx) => out,
        () = report => unreachable!("the progress loop never ends"),
    }
}

/// `ingest`: probes the upload, checks it against the limits, records its
/// duration and moves on to transcription.
pub async fn ingest(ctx: JobContext, storage: Arc<dyn Storage>, deps: Arc<MediaDeps>) -> Result<Outcome, JobError> {
    let Some((job, video)) = load(&ctx).await? else { return Ok(Outcome::Complete) };
    enter(&ctx, &video, ProcessingStage::Ingesting).await?;
    let input = source_input(storage.as_ref(), &video).await?;
    let probed = pipeline::probe_source(&deps.ffmpeg, &input, &deps.limits).await;
    let info = match probed.and_then(|info| pipeline::check_renderable(&info).map(|()| info)) {
        Ok(info) => info,
        Err(e) => {
            return Err(media_failure(&ctx, &video, &e, &input).await);
        }
    };
    let mut tx = ctx.pool().begin().await.map_err(retryable)?;
    let next = VideoStatus::Processing { stage: ProcessingStage::Transcribing };
    db::transition_video(&mut tx, video.org_id, video.id, &next, Some(info.duration)).await.map_err(retryable)?;
    enqueue_stage(&mut tx, JobKind::Transcribe, &VideoJob { options: serde_json::json!({}), ..job }).await?;
    ctx.complete_in(&mut tx).await?;
    tx.commit().await.map_err(retryable)?;
    Ok(Outcome::CompletedInTransaction)
}

/// `transcribe`: measures loudness, transcribes, stores both and moves on
/// to analysis.
pub async fn transcribe(ctx: JobContext, storage: Arc<dyn Storage>, deps: Arc<MediaDeps>) -> Result<Outcome, JobError> {
    let Some((job, video)) = load(&ctx).await? else { return Ok(Outcome::Complete) };
    enter(&ctx, &video, ProcessingStage::Transcribing).await?;
    let input = source_input(storage.as_ref(), &video).await?;
    let cancel = ctx.cancellation_token();
    let duration = match video.duration_seconds {
        Some(d) => d,
        None => {
            pipeline::probe_source(&deps.ffmpeg, &input, &deps.limits)
                .await
                .map_err(|e| JobError::retryable(scrub(&e.to_string(), &input)))?
                .duration
        }
    };
    let work = tempfile::tempdir_in(ensure_dir(&deps.work_dir).await?).map_err(retryable)?;
    let features = pipeline::audio_features(&deps.ffmpeg, &input, duration, work.path(), &cancel).await;
    let features = match features {
        Ok(f) => f,
        Err(e) => {
            return Err(media_failure(&ctx, &video, &e, &input).await);
        }
    };
    let transcript = with_progress(&ctx, "transcribe", async |tx: watch::Sender<f64>| {
        let on_progress = move |f: f32| {
            let _ = tx.send(f64::from(f));
        };
        deps.transcriber.transcribe(&deps.ffmpeg, &input, duration, &deps.transcribe, &on_progress, &cancel).await
    })
    .await;
    let transcript = match transcript {
        Ok(t) => t,
        Err(e) => {
            return Err(media_failure(&ctx, &video, &e, &input).await);
        }
    };
    let json = serde_json::to_vec(&features.rms_db).map_err(retryable)?;
    storage.put_stream(&features_key(&video)?, bytes_stream(json), "application/json").await.map_err(retryable)?;

    let mut tx = ctx.pool().begin().await.map_err(retryable)?;
    db::put_transcript(&mut *tx, video.org_id, video.id, &transcript).await.map_err(retryable)?;
    let next = VideoStatus::Processing { stage: ProcessingStage::Analyzing };
    db::transition_video(&mut tx, video.org_id, video.id, &next, None).await.map_err(retryable)?;
    enqueue_stage(&mut tx, JobKind::Analyze, &VideoJob { options: serde_json::json!({}), ..job }).await?;
    ctx.complete_in(&mut tx).await?;
    tx.commit().await.map_err(retryable)?;
    Ok(Outcome::CompletedInTransaction)
}

async fn ensure_dir(dir: &std::path::Path) -> Result<&std::path::Path, JobError> {
    tokio::fs::create_dir_all(dir).await.map_err(retryable)?;
    Ok(dir)
}

async fn read_object(storage: &dyn Storage, key: &ObjectKey) -> Result<Vec<u8>, JobError> {
    videdit_core::storage::read_all(storage, key).await.map_err(retryable)
}

/// `analyze`: chooses the shorts, stores one recipe per short (its source
/// is the upload's object key) and enqueues their renders; a video with no
/// passage fit for a short is ready with none.
pub async fn analyze(ctx: JobContext, storage: Arc<dyn Storage>, deps: Arc<MediaDeps>) -> Result<Outcome, JobError> {
    let _ = &deps;
    let Some((job, video)) = load(&ctx).await? else { return Ok(Outcome::Complete) };
    let options: AnalyzeJobOptions =
        serde_json::from_value(job.options.clone()).map_err(|e| JobError::fatal(format!("invalid options: {e}")))?;
    let options = options.pipeline_options();
    options.analyze.validate().map_err(|e| JobError::fatal(e.to_string()))?;
    enter(&ctx, &video, ProcessingStage::Analyzing).await?;
    let transcript = db::get_transcript(ctx.pool(), video.org_id, video.id).await.map_err(retryable)?;
    // Loudness is optional for the analysis: one read, a missing object is None.
    let features = match videdit_core::storage::read_all(storage.as_ref(), &features_key(&video)?).await {
        Ok(bytes) => serde_json::from_slice::<Vec<f32>>(&bytes)
            .ok()
            .map(|rms_db| AudioFeatures { frame_seconds: videdit_media::analyze::FRAME_SECONDS, rms_db }),
        Err(e) if e.code() == videdit_core::ErrorCode::ObjectNotFound => None,
        Err(e) => return Err(retryable(e)),
    };
    let source = video.source_key.as_ref().ok_or_else(|| JobError::fatal("the video has no uploaded source"))?;
    let duration = video.duration_seconds.unwrap_or(transcript.duration);
    let planned = pipeline::plan_shorts(&transcript, features.as_ref(), source.as_str(), duration, &options)
        .map_err(|e| JobError::fatal(e.to_string()))?;

    let old = db::list_shorts(ctx.pool(), video.org_id, video.id).await.map_err(retryable)?;
    let ids: Vec<ShortId> = planned.iter().map(|_| ShortId::new()).collect();
    for (plan, id) in planned.iter().zip(&ids) {
        let json = serde_json::to_vec_pretty(&plan.recipe).map_err(retryable)?;
        let key = ObjectKey::short_recipe(video.org_id, video.id, *id);
        storage.put_stream(&key, bytes_stream(json), "application/json").await.map_err(retryable)?;
    }
    let new: Vec<NewShort> = planned
        .iter()
        .zip(&ids)
        .map(|(p, id)| NewShort {
            id: *id,
            rank: i32::try_from(p.rank).unwrap_or(i32::MAX),
            score: p.highlight.score.clamp(0.0, 100.0),
            sub_scores: p.highlight.sub_scores,
            reason: p.highlight.reason.clone(),
            title: p.highlight.title.clone(),
            range: p.recipe.range,
        })
        .collect();

    let mut tx = ctx.pool().begin().await.map_err(retryable)?;
    db::replace_shorts(&mut tx, video.org_id, video.id, &new).await.map_err(retryable)?;
    let next =
        if new.is_empty() { VideoStatus::Ready } else { VideoStatus::Processing { stage: ProcessingStage::Rendering } };
    db::transition_video(&mut tx, video.org_id, video.id, &next, None).await.map_err(retryable)?;
    for id in &ids {
        let render = VideoJob { short_id: Some(*id), options: serde_json::json!({}), ..job.clone() };
        enqueue_stage(&mut tx, JobKind::Render, &render).await?;
    }
    ctx.complete_in(&mut tx).await?;
    tx.commit().await.map_err(retryable)?;
    // The replaced shorts' files: best effort, after the commit.
    for s in old {
        for key in [
            ObjectKey::short_video(video.org_id, video.id, s.id),
            ObjectKey::short_thumbnail(video.org_id, video.id, s.id),
            ObjectKey::short_recipe(video.org_id, video.id, s.id),
        ] {
            if let Err(e) = storage.delete(&key).await {
                tracing::warn!(key = key.as_str(), error = %e, "could not remove a replaced short's file");
            }
        }
    }
    Ok(Outcome::CompletedInTransaction)
}

/// `render`: renders one short from its stored recipe, uploads the MP4,
/// thumbnail and recipe, and, when it was the last short of the video
/// still to finish, marks the video ready (decided under the video's row
/// lock, so concurrent renders agree on who is last).
pub async fn render_short(
    ctx: JobContext,
    storage: Arc<dyn Storage>,
    deps: Arc<MediaDeps>,
) -> Result<Outcome, JobError> {
    let Some((job, video)) = load(&ctx).await? else { return Ok(Outcome::Complete) };
    let short_id = job.short_id.ok_or_else(|| JobError::fatal("a render job needs a shortId"))?;
    let short = match db::get_short(ctx.pool(), video.org_id, short_id).await {
        Ok(s) if s.video_id == video.id => s,
        Ok(_) => return Err(JobError::fatal("the short belongs to another video")),
        Err(e) if e.code() == videdit_core::ErrorCode::ShortNotFound => return Ok(Outcome::Complete),
        Err(e) => return Err(retryable(e)),
    };
    let rendering = VideoStatus::Processing { stage: ProcessingStage::Rendering };
    if !(video.status == rendering || video.status == VideoStatus::Ready) {
        return Err(JobError::fatal(format!("video {} is {} and cannot render now", video.id, video.status.state())));
    }
    db::set_short_status(ctx.pool(), video.org_id, short.id, ShortStatus::Rendering).await.map_err(retryable)?;
    let recipe_key = ObjectKey::short_recipe(video.org_id, video.id, short.id);
    let stored: ClipRecipe = serde_json::from_slice(&read_object(storage.as_ref(), &recipe_key).await?)
        .map_err(|e| JobError::fatal(format!("the stored recipe is invalid: {e}")))?;
    let mut recipe = stored.clone();
    recipe.source = source_input(storage.as_ref(), &video).await?;
    let work = tempfile::tempdir_in(ensure_dir(&deps.work_dir).await?).map_err(retryable)?;
    let outputs = RenderOutputs::in_dir(work.path(), "short");
    let cancel = ctx.cancellation_token();
    let rendered = with_progress(&ctx, "render", async |tx: watch::Sender<f64>| {
        render(
            &deps.ffmpeg,
            &recipe,
            &outputs,
            &deps.render,
            |f| {
                let _ = tx.send(f);
            },
            &cancel,
        )
        .await
    })
    .await;
    if let Err(e) = rendered {
        let err = media_failure_short(
            &ctx,
            &video,
            short.id,
            e.code().as_str(),
            scrub(&e.to_string(), &recipe.source),
            e.is_retryable(),
        )
        .await;
        return Err(err);
    }
    // A recipe edited while this render ran: render again (a snooze spends
    // no attempt), so the edit is never lost behind the running job.
    let current: Option<ClipRecipe> = serde_json::from_slice(&read_object(storage.as_ref(), &recipe_key).await?).ok();
    if current.as_ref() != Some(&stored) {
        return Ok(Outcome::Snooze(Duration::ZERO));
    }
    let keys = ShortOutputs {
        video: ObjectKey::short_video(video.org_id, video.id, short.id),
        thumbnail: ObjectKey::short_thumbnail(video.org_id, video.id, short.id),
        recipe: recipe_key,
    };
    storage.put_file(&keys.video, &outputs.video, "video/mp4").await.map_err(retryable)?;
    storage.put_file(&keys.thumbnail, &outputs.thumbnail, "image/jpeg").await.map_err(retryable)?;

    let mut tx = ctx.pool().begin().await.map_err(retryable)?;
    let current = db::lock_video(&mut *tx, video.org_id, video.id).await.map_err(retryable)?;
    db::set_short_outputs(&mut *tx, video.org_id, short.id, &keys).await.map_err(retryable)?;
    finish_if_last(&mut tx, &current).await?;
    ctx.complete_in(&mut tx).await?;
    tx.commit().await.map_err(retryable)?;
    Ok(Outcome::CompletedInTransaction)
}

/// With the video row locked: once every short is ready or failed, the
/// video is ready when at least one short is, failed otherwise.
async fn finish_if_last(tx: &mut sqlx::PgConnection, video: &Video) -> Result<(), JobError> {
    if video.status != (VideoStatus::Processing { stage: ProcessingStage::Rendering }) {
        return Ok(());
    }
    let shorts = db::list_shorts(&mut *tx, video.org_id, video.id).await.map_err(retryable)?;
    if shorts.iter().all(|s| s.status.is_terminal()) {
        let next = if shorts.iter().any(|s| s.status == ShortStatus::Ready) {
            VideoStatus::Ready
        } else {
            VideoStatus::Failed { reason: "internal: every short failed to render".into() }
        };
        db::transition_video(tx, video.org_id, video.id, &next, None).await.map_err(retryable)?;
    }
    Ok(())
}

/// A render that failed for good marks its short failed (the video still
/// becomes ready with the others); a retryable one is retried.
async fn media_failure_short(
    ctx: &JobContext,
    video: &Video,
    short: ShortId,
    code: &str,
    message: String,
    retry: bool,
) -> JobError {
    if retry && ctx.job.attempt < ctx.job.max_attempts {
        return JobError::retryable(message);
    }
    let result = async {
        let mut tx = ctx.pool().begin().await?;
        let current = db::lock_video(&mut *tx, video.org_id, video.id).await?;
        db::set_short_status(&mut *tx, video.org_id, short, ShortStatus::Failed).await?;
        if let Err(e) = finish_if_last(&mut tx, &current).await {
            tracing::warn!(error = %e.message, "could not finish the video");
        }
        tx.commit().await?;
        Ok::<_, videdit_core::Error>(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(short = %short, error = %e, "could not mark the short failed");
    }
    JobError::fatal(format!("{code}: {message}"))
}
