//! The pipeline's job handlers: `ingest`, `transcribe`, `analyze`, `render`.
//!
//! Each is an adapter: it runs the `videdit_media` stage function as it is,
//! outside any transaction, then records the result through one
//! `videdit_service` operation (which changes state, records events and
//! enqueues the next job) in the transaction that completes its own job.
//! No life-cycle rule lives here. The source is
//! read in place: a local-storage file directly, an S3 object through a
//! presigned GET that ffmpeg streams (rendering reads only the short's byte
//! range, not the whole upload).
//!
//! A job that finds the video deleted completes quietly; a job for a stage
//! the video cannot enter now (transcribing a video still rendering) fails
//! fatally; bad media marks the video failed with the reason and the job
//! dead; other errors are retried, and the video is marked failed when the
//! last attempt fails.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use videdit_core::db::{self, NewShort};
use videdit_core::recipe::ClipRecipe;
use videdit_core::short::ShortOutputs;
use videdit_core::storage::{ObjectKey, PresignGet, Storage, bytes_stream};
use videdit_core::{ErrorCode, ProcessingStage, ShortId, Video};
use videdit_media::analyze::AudioFeatures;
use videdit_media::pipeline;
use videdit_media::probe::MediaLimits;
use videdit_media::process::Ffmpeg;
use videdit_media::render::{RenderError, RenderOptions, RenderOutputs, check_picture, render};
use videdit_media::transcribe::{TranscribeOptions, Transcriber};
use videdit_queue::{JobContext, JobError, Outcome};
use videdit_service::failures::{self, Failing};
use videdit_service::jobs::VideoJob;
use videdit_service::renders::Finished;
use videdit_service::stages::Analyzed;
use videdit_service::{Error, images, recipes, renders, stages};

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
    /// Plans and their limits (ingest reserves minutes, analysis caps the
    /// shorts count).
    pub billing: Arc<videdit_service::billing::Billing>,
}

impl MediaDeps {
    /// The media side of a worker: the ffmpeg and the model of `config`
    /// (the model loaded now, so a missing model stops the worker at
    /// start-up with the reason; a name not installed as given falls back
    /// to its quantized weights, see `ModelStore::resolve`), what uploads
    /// must satisfy, and where renders write. Transcription threads: the
    /// cores shared among the job slots.
    ///
    /// # Errors
    /// A model that is missing or does not load.
    pub fn from_config(
        config: &videdit_core::config::Config,
        limits: &crate::settings::Limits,
        work_dir: PathBuf,
        whisper_stderr: bool,
        billing: Arc<videdit_service::billing::Billing>,
    ) -> anyhow::Result<Self> {
        use videdit_media::models::{ModelRef, ModelStore};
        let store = ModelStore::from_config(config.model_dir.as_deref());
        let path = store.resolve(&ModelRef::parse(&config.whisper_model))?;
        // The name of what was loaded (`tiny.en-q8_0`), not of what was asked for.
        let model_name = ModelRef::File(path.clone()).name();
        let load = videdit_media::transcribe::LoadOptions { whisper_stderr, ..Default::default() };
        let transcriber = Transcriber::load_with(&path, &model_name, &load)?;
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let threads = (cores / usize::from(config.job_concurrency.max(1))).max(1);
        Ok(Self {
            ffmpeg: limits.ffmpeg(&config.ffmpeg_binary),
            transcriber,
            model_name,
            limits: limits.media(),
            transcribe: TranscribeOptions { threads: Some(threads), ..TranscribeOptions::default() },
            render: RenderOptions::default(),
            work_dir,
            billing,
        })
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
        Err(e) if e.code() == ErrorCode::VideoNotFound => Ok(None),
        Err(e) => Err(Error::from(e).into()),
    }
}

/// Moves the video into `stage` (its own small transaction: the stage is
/// shown while the work runs).
async fn enter(ctx: &JobContext, video: &Video, stage: ProcessingStage) -> Result<Video, JobError> {
    let mut tx = ctx.pool().begin().await.map_err(Error::from)?;
    let video = stages::enter(&mut tx, video, stage).await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(video)
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
        .map_err(Error::from)?;
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

async fn fail_video(ctx: &JobContext, video: &Video, e: Error) -> JobError {
    failures::give_up_or_retry(ctx, video, Failing::Video, e).await
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

/// Completes the job in `tx` and commits.
async fn commit_with_job(ctx: &JobContext, mut tx: sqlx::Transaction<'_, sqlx::Postgres>) -> Result<Outcome, JobError> {
    ctx.complete_in(&mut tx).await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Outcome::CompletedInTransaction)
}

/// `ingest`: probes the upload, checks it against the limits, records its
/// duration and moves on to transcription.
pub async fn ingest(ctx: JobContext, storage: Arc<dyn Storage>, deps: Arc<MediaDeps>) -> Result<Outcome, JobError> {
    let Some((_, video)) = load(&ctx).await? else { return Ok(Outcome::Complete) };
    let video = enter(&ctx, &video, ProcessingStage::Ingesting).await?;
    let input = source_input(storage.as_ref(), &video).await?;
    let probed = pipeline::probe_source(&deps.ffmpeg, &input, &deps.limits).await;
    let info = match probed.and_then(|info| pipeline::check_renderable(&info).map(|()| info)) {
        Ok(info) => info,
        Err(e) => return Err(fail_video(&ctx, &video, Error::from(e).map_message(|m| scrub(m, &input))).await),
    };
    let mut tx = ctx.pool().begin().await.map_err(Error::from)?;
    stages::ingested(&mut tx, &deps.billing, &video, info.duration).await?;
    commit_with_job(&ctx, tx).await
}

/// `transcribe`: measures loudness, transcribes, stores both and moves on
/// to analysis.
pub async fn transcribe(ctx: JobContext, storage: Arc<dyn Storage>, deps: Arc<MediaDeps>) -> Result<Outcome, JobError> {
    let Some((_, video)) = load(&ctx).await? else { return Ok(Outcome::Complete) };
    let video = enter(&ctx, &video, ProcessingStage::Transcribing).await?;
    let input = source_input(storage.as_ref(), &video).await?;
    let cancel = ctx.cancellation_token();
    let scrubbed = |e: videdit_media::Error| Error::from(e).map_message(|m| scrub(m, &input));
    let duration = match video.duration_seconds {
        Some(d) => d,
        None => pipeline::probe_source(&deps.ffmpeg, &input, &deps.limits).await.map_err(scrubbed)?.duration,
    };
    let work = tempfile::tempdir_in(ensure_dir(&deps.work_dir).await?).map_err(retryable)?;
    let features = match pipeline::audio_features(&deps.ffmpeg, &input, duration, work.path(), &cancel).await {
        Ok(f) => f,
        Err(e) => return Err(fail_video(&ctx, &video, scrubbed(e)).await),
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
        Err(e) => return Err(fail_video(&ctx, &video, scrubbed(e)).await),
    };
    let json = serde_json::to_vec(&features.rms_db).map_err(retryable)?;
    storage.put_stream(&features_key(&video)?, bytes_stream(json), "application/json").await.map_err(Error::from)?;

    let mut tx = ctx.pool().begin().await.map_err(Error::from)?;
    stages::transcribed(&mut tx, &video, &transcript).await?;
    commit_with_job(&ctx, tx).await
}

async fn ensure_dir(dir: &std::path::Path) -> Result<&std::path::Path, JobError> {
    tokio::fs::create_dir_all(dir).await.map_err(retryable)?;
    Ok(dir)
}

/// Removes a short's files (best effort).
async fn remove_short_files(storage: &dyn Storage, video: &Video, short: ShortId) {
    for key in [
        ObjectKey::short_video(video.org_id, video.id, short),
        ObjectKey::short_thumbnail(video.org_id, video.id, short),
        ObjectKey::short_recipe(video.org_id, video.id, short),
    ] {
        if let Err(e) = storage.delete(&key).await {
            tracing::warn!(key = key.as_str(), error = %e, "could not remove a short's file");
        }
    }
}

/// `analyze`: chooses the shorts with the newest requested options, stores
/// one recipe per short (its source is the upload's object key) and hands
/// them to the application layer, which queues their renders; a video with
/// no passage fit for a short is ready with none. An analysis requested
/// while this one ran makes it run again.
pub async fn analyze(ctx: JobContext, storage: Arc<dyn Storage>, deps: Arc<MediaDeps>) -> Result<Outcome, JobError> {
    let _ = &deps;
    let Some((_, video)) = load(&ctx).await? else { return Ok(Outcome::Complete) };
    let (options, revision) = stages::analysis_request(ctx.pool(), &deps.billing, video.org_id, video.id).await?;
    let options = options.pipeline_options();
    let video = enter(&ctx, &video, ProcessingStage::Analyzing).await?;
    let transcript = db::get_transcript(ctx.pool(), video.org_id, video.id).await.map_err(Error::from)?;
    // Loudness is optional for the analysis: one read, a missing object is None.
    let features = match videdit_core::storage::read_all(storage.as_ref(), &features_key(&video)?).await {
        Ok(bytes) => serde_json::from_slice::<Vec<f32>>(&bytes)
            .ok()
            .map(|rms_db| AudioFeatures { frame_seconds: videdit_media::analyze::FRAME_SECONDS, rms_db }),
        Err(e) if e.code() == ErrorCode::ObjectNotFound => None,
        Err(e) => return Err(Error::from(e).into()),
    };
    let source = video.source_key.as_ref().ok_or_else(|| JobError::fatal("the video has no uploaded source"))?;
    let duration = video.duration_seconds.unwrap_or(transcript.duration);
    let planned = pipeline::plan_shorts(&transcript, features.as_ref(), source.as_str(), duration, &options)
        .map_err(|e| JobError::fatal(e.to_string()))?;

    let ids: Vec<ShortId> = planned.iter().map(|_| ShortId::new()).collect();
    for (plan, id) in planned.iter().zip(&ids) {
        let json = serde_json::to_vec_pretty(&plan.recipe).map_err(retryable)?;
        let key = ObjectKey::short_recipe(video.org_id, video.id, *id);
        storage.put_stream(&key, bytes_stream(json), "application/json").await.map_err(Error::from)?;
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

    let mut tx = ctx.pool().begin().await.map_err(Error::from)?;
    match stages::analyzed(&mut tx, &video, revision, &new).await? {
        Analyzed::Superseded => {
            drop(tx);
            for id in ids {
                remove_short_files(storage.as_ref(), &video, id).await;
            }
            Ok(Outcome::Snooze(Duration::ZERO))
        }
        Analyzed::Done { replaced } => {
            let outcome = commit_with_job(&ctx, tx).await?;
            // The replaced shorts' files: best effort, after the commit.
            for id in replaced {
                remove_short_files(storage.as_ref(), &video, id).await;
            }
            Ok(outcome)
        }
    }
}

/// `render`: renders one short from its stored recipe, uploads the MP4 and
/// thumbnail, and records it through the application layer's fan-in; a
/// recipe edited meanwhile makes it render again.
pub async fn render_short(
    ctx: JobContext,
    storage: Arc<dyn Storage>,
    deps: Arc<MediaDeps>,
) -> Result<Outcome, JobError> {
    let Some((job, video)) = load(&ctx).await? else { return Ok(Outcome::Complete) };
    let short_id = job.short_id.ok_or_else(|| JobError::fatal("a render job needs a shortId"))?;
    let begun = {
        let mut conn = ctx.pool().acquire().await.map_err(Error::from)?;
        match renders::begin(&mut conn, &video, short_id).await? {
            Some(b) => b,
            None => return Ok(Outcome::Complete),
        }
    };
    let recipe_key = ObjectKey::short_recipe(video.org_id, video.id, short_id);
    let mut recipe = match recipes::read(storage.as_ref(), &recipe_key).await {
        Ok(r) => r,
        Err(e) => return Err(fail_short(&ctx, &video, short_id, e).await),
    };
    let stored_source = std::mem::replace(&mut recipe.source, source_input(storage.as_ref(), &video).await?);
    let work = tempfile::tempdir_in(ensure_dir(&deps.work_dir).await?).map_err(retryable)?;
    let outputs = RenderOutputs::in_dir(work.path(), "short");
    let options = match render_options(&ctx, storage.as_ref(), &deps, &video, &recipe.source, work.path()).await {
        Ok(o) => o,
        Err(e) => return Err(fail_short(&ctx, &video, short_id, e.map_message(|m| scrub(m, &recipe.source))).await),
    };
    let cancel = ctx.cancellation_token();
    let rendered = with_progress(&ctx, "render", async |tx: watch::Sender<f64>| {
        render(
            &deps.ffmpeg,
            &recipe,
            &outputs,
            &options,
            |f| {
                let _ = tx.send(f);
            },
            &cancel,
        )
        .await
    })
    .await;
    let rendered = match rendered {
        Ok(r) => r,
        Err(e) => {
            let e = Error::from(e).map_message(|m| scrub(m, &recipe.source));
            return Err(fail_short(&ctx, &video, short_id, e).await);
        }
    };
    // The framing the renderer chose is kept in the stored recipe.
    let framed = (rendered.reframe != recipe.reframe).then(|| ClipRecipe {
        source: stored_source,
        reframe: rendered.reframe.clone(),
        ..recipe.clone()
    });
    let keys = ShortOutputs {
        video: ObjectKey::short_video(video.org_id, video.id, short_id),
        thumbnail: ObjectKey::short_thumbnail(video.org_id, video.id, short_id),
        recipe: recipe_key,
    };
    storage.put_file(&keys.video, &outputs.video, "video/mp4").await.map_err(Error::from)?;
    storage.put_file(&keys.thumbnail, &outputs.thumbnail, "image/jpeg").await.map_err(Error::from)?;

    let mut tx = ctx.pool().begin().await.map_err(Error::from)?;
    match renders::finish_framed(&mut tx, storage.as_ref(), &video, &begun, &keys, framed.as_ref()).await? {
        // Edited while this ran: render the new recipe (a snooze spends no attempt).
        Finished::Stale => Ok(Outcome::Snooze(Duration::ZERO)),
        Finished::Done(_) => commit_with_job(&ctx, tx).await,
    }
}

/// The worker's render options, with the organisation's audiogram
/// background when it set one and the source has no pictures (an audio-only
/// source becomes an audiogram). A picture that does not decode is logged
/// and left out: the audiogram falls back to the cover art or a colour.
async fn render_options<'d>(
    ctx: &JobContext,
    storage: &dyn Storage,
    deps: &'d MediaDeps,
    video: &Video,
    source: &str,
    dir: &std::path::Path,
) -> Result<Cow<'d, RenderOptions>, Error> {
    let kind = images::ImageKind::AudiogramBackground;
    let Some(image) = images::find(ctx.pool(), video.org_id, kind).await? else {
        return Ok(Cow::Borrowed(&deps.render));
    };
    if pipeline::probe_source(&deps.ffmpeg, source, &deps.limits).await?.display_size().is_some() {
        return Ok(Cow::Borrowed(&deps.render));
    }
    let Some(path) = images::download(ctx.pool(), storage, video.org_id, kind, image, dir).await? else {
        return Ok(Cow::Borrowed(&deps.render));
    };
    match check_picture(&deps.ffmpeg, &path).await {
        Ok(()) => Ok(Cow::Owned(RenderOptions { audiogram_background: Some(path), ..deps.render.clone() })),
        Err(RenderError::Media(videdit_media::Error::InvalidMedia(why))) => {
            tracing::warn!(org = %video.org_id, %why, "the audiogram background does not decode; rendering without it");
            Ok(Cow::Borrowed(&deps.render))
        }
        Err(e) => Err(e.into()),
    }
}

async fn fail_short(ctx: &JobContext, video: &Video, short: ShortId, e: Error) -> JobError {
    failures::give_up_or_retry(ctx, video, Failing::Short(short), e).await
}
