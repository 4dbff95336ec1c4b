//! The pipeline's life cycle: starting a stage on request, entering a
//! stage, advancing to the next one with its results, and failing a video.
//!
//! Every advance records its events and enqueues the next stage in the
//! transaction that the job handler then completes its own job in, so a
//! crash never leaves a video half-advanced, and a retried job produces
//! the change and its events once.

use sqlx::{PgConnection, PgPool};
use videdit_core::db::{self, NewShort};
use videdit_core::event::EventType;
use videdit_core::{ErrorCode, JobKind, OrgId, ProcessingStage, ShortId, Transcript, Video, VideoId, VideoStatus};

use crate::billing::{self, Billing, Reservation};
use crate::error::{Error, Result};
use crate::jobs::{AnalyzeJobOptions, VideoJob, enqueue_stage};

/// The stages a client may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Probe and validate the source again.
    Ingest,
    /// Transcribe again.
    Transcribe,
    /// Find the best moments again, with options.
    Analyze,
    /// Render one short again.
    Render,
}

impl Stage {
    const fn kind(self) -> JobKind {
        match self {
            Self::Ingest => JobKind::Ingest,
            Self::Transcribe => JobKind::Transcribe,
            Self::Analyze => JobKind::Analyze,
            Self::Render => JobKind::Render,
        }
    }
}

/// Starts a stage on a video on request. A stage already queued or running
/// for the video (the short, for renders) is returned instead of a
/// duplicate; a re-analysis requested while one runs is not lost: the
/// request is recorded, and the running analysis runs again with it.
///
/// # Errors
/// `video_not_found`, `short_not_found` (also a short of another video),
/// `invalid_request` for bad options, `plan_limit_exceeded` for more shorts
/// than the plan makes. Starting a stage again costs no minutes: a video
/// is charged once.
pub async fn start(
    pool: &PgPool,
    billing: &Billing,
    org: OrgId,
    video: VideoId,
    stage: Stage,
    options: &serde_json::Value,
) -> Result<uuid::Uuid> {
    if !options.is_object() {
        return Err(Error::invalid("options must be a JSON object"));
    }
    let mut tx = pool.begin().await?;
    let current = db::lock_video(&mut *tx, org, video).await?;
    let job = match stage {
        Stage::Render => {
            let raw = options
                .get("shortId")
                .and_then(|v| v.as_str())
                .ok_or_else(|| Error::invalid("render needs options.shortId"))?;
            let not_found = || Error::new(ErrorCode::ShortNotFound, format!("short {raw:?} not found"));
            let sid: ShortId = raw.parse().map_err(|_| not_found())?;
            let short = db::get_short(&mut *tx, org, sid).await?;
            if short.video_id != video {
                return Err(not_found());
            }
            VideoJob::short(org, video, sid)
        }
        Stage::Analyze => {
            // Bad options are the caller's to fix: refused now, not in the worker.
            let parsed = AnalyzeJobOptions::parse(options)?;
            if let Some(n) = parsed.max_shorts {
                billing::check_shorts(&mut tx, billing, org, n).await?;
            }
            let stored = serde_json::to_value(&parsed).expect("options serialise");
            db::request_analysis(&mut *tx, org, video, &stored).await?;
            VideoJob { options: stored, ..VideoJob::video(org, video) }
        }
        Stage::Ingest | Stage::Transcribe => VideoJob::video(org, current.id),
    };
    let id = enqueue_stage(&mut tx, stage.kind(), &job).await?;
    tx.commit().await?;
    Ok(id)
}

/// Moves the video into `stage` (from the stage before it, a retry of the
/// same stage, or a finished video being processed again), recording
/// `video.stage_changed` when the stage changes.
///
/// # Errors
/// `invalid_state` (not retryable) when the video cannot enter the stage.
pub async fn enter(conn: &mut PgConnection, video: &Video, stage: ProcessingStage) -> Result<Video> {
    let next = VideoStatus::Processing { stage };
    if video.status == next {
        return Ok(video.clone());
    }
    let moved = db::transition_video(&mut *conn, video.org_id, video.id, &next, None).await?;
    crate::events::record_for_video(&mut *conn, &moved, EventType::VideoStageChanged, serde_json::json!({})).await?;
    Ok(moved)
}

/// Ingest's result: reserves the video's minutes (a video over the
/// period's remaining minutes or the plan's longest source fails with
/// `quota_exceeded` or `plan_limit_exceeded` and `billing.quota_exceeded`
/// is recorded), records the duration and moves on to transcription.
///
/// # Errors
/// Database failures; `invalid_state` when the video moved meanwhile.
pub async fn ingested(conn: &mut PgConnection, billing: &Billing, video: &Video, duration: f64) -> Result<Video> {
    if let Reservation::Refused(e) = billing::reserve(&mut *conn, billing, video, duration).await? {
        let failed = fail(&mut *conn, video, e.code(), e.message()).await?;
        billing::record_refusal(&mut *conn, video, &e).await?;
        return Ok(failed.unwrap_or_else(|| video.clone()));
    }
    let next = VideoStatus::Processing { stage: ProcessingStage::Transcribing };
    let moved = db::transition_video(&mut *conn, video.org_id, video.id, &next, Some(duration)).await?;
    crate::events::record_for_video(&mut *conn, &moved, EventType::VideoStageChanged, serde_json::json!({})).await?;
    enqueue_stage(&mut *conn, JobKind::Transcribe, &VideoJob::video(video.org_id, video.id)).await?;
    Ok(moved)
}

/// Transcription's result: stores the transcript, records
/// `transcript.ready`, moves on to analysis with the newest requested
/// options.
///
/// # Errors
/// Database failures; `invalid_state` when the video moved meanwhile.
pub async fn transcribed(conn: &mut PgConnection, video: &Video, transcript: &Transcript) -> Result<Video> {
    db::put_transcript(&mut *conn, video.org_id, video.id, transcript).await?;
    let words = transcript.words().count();
    crate::events::record_for_video(
        &mut *conn,
        video,
        EventType::TranscriptReady,
        serde_json::json!({"language": transcript.language, "words": words, "model": transcript.model}),
    )
    .await?;
    let next = VideoStatus::Processing { stage: ProcessingStage::Analyzing };
    let moved = db::transition_video(&mut *conn, video.org_id, video.id, &next, None).await?;
    crate::events::record_for_video(&mut *conn, &moved, EventType::VideoStageChanged, serde_json::json!({})).await?;
    enqueue_stage(&mut *conn, JobKind::Analyze, &VideoJob::video(video.org_id, video.id)).await?;
    Ok(moved)
}

/// What an analysis job runs with: the newest requested options (the
/// count capped by the plan) and their revision (compare it in [`analyzed`]).
///
/// # Errors
/// `video_not_found`; `invalid_request` for stored options that no longer parse.
pub async fn analysis_request(
    pool: &PgPool,
    billing: &Billing,
    org: OrgId,
    video: VideoId,
) -> Result<(AnalyzeJobOptions, i32)> {
    let mut conn = pool.acquire().await?;
    let (options, revision) = db::analysis_request(&mut *conn, org, video).await?;
    let mut options = AnalyzeJobOptions::parse(&options)?;
    // The plan's most shorts per video caps the count (the default's too).
    if let Some(max) = billing::max_shorts(&mut conn, billing, org).await? {
        let wanted = options.max_shorts.unwrap_or(videdit_media::analyze::AnalyzeOptions::default().max_shorts);
        options.max_shorts = Some(wanted.min(max as usize).max(1));
    }
    Ok((options, revision))
}

/// What [`analyzed`] did.
#[derive(Debug)]
pub enum Analyzed {
    /// Shorts replaced and renders queued (or the video is ready with none);
    /// the replaced shorts' ids, whose files the caller removes after commit.
    Done {
        /// The shorts that were replaced.
        replaced: Vec<ShortId>,
    },
    /// A newer analysis was requested while this one ran: nothing was
    /// changed; run the analysis again.
    Superseded,
}

/// Analysis's result: replaces the shorts, queues one render per short and
/// moves to rendering (or to ready, with `video.ready`, when none was
/// found). Decided under the video's row lock against the revision the
/// analysis ran with.
///
/// # Errors
/// Database failures; `invalid_state` when the video moved meanwhile.
pub async fn analyzed(conn: &mut PgConnection, video: &Video, revision: i32, shorts: &[NewShort]) -> Result<Analyzed> {
    let locked = db::lock_video(&mut *conn, video.org_id, video.id).await?;
    let (_, current) = db::analysis_request(&mut *conn, video.org_id, video.id).await?;
    if current != revision {
        return Ok(Analyzed::Superseded);
    }
    let replaced = db::list_shorts(&mut *conn, video.org_id, video.id).await?.into_iter().map(|s| s.id).collect();
    db::replace_shorts(&mut *conn, video.org_id, video.id, shorts).await?;
    if shorts.is_empty() {
        let ready = db::transition_video(&mut *conn, video.org_id, video.id, &VideoStatus::Ready, None).await?;
        billing::commit(&mut *conn, &ready).await?;
        crate::events::record_for_video(&mut *conn, &ready, EventType::VideoReady, serde_json::json!({"shorts": 0}))
            .await?;
    } else {
        let next = VideoStatus::Processing { stage: ProcessingStage::Rendering };
        let moved = db::transition_video(&mut *conn, video.org_id, video.id, &next, None).await?;
        crate::events::record_for_video(&mut *conn, &moved, EventType::VideoStageChanged, serde_json::json!({}))
            .await?;
        for s in shorts {
            enqueue_stage(&mut *conn, JobKind::Render, &VideoJob::short(video.org_id, video.id, s.id)).await?;
        }
    }
    let _ = locked;
    Ok(Analyzed::Done { replaced })
}

/// Fails a video with a stable code and a reason a user understands,
/// recording `video.failed`; its reserved minutes are released when the
/// failure is ours (a 5xx code) and kept when it is the client's. A video that is ready (or gone) is left as it
/// is: a late failure of a re-run does not take working shorts away.
///
/// # Errors
/// Database failures.
pub async fn fail(conn: &mut PgConnection, video: &Video, code: ErrorCode, reason: &str) -> Result<Option<Video>> {
    match db::fail_video(&mut *conn, video.org_id, video.id, code, reason).await {
        Ok(failed) => {
            billing::settle_failed(&mut *conn, &failed, code).await?;
            crate::events::record_for_video(&mut *conn, &failed, EventType::VideoFailed, serde_json::json!({})).await?;
            Ok(Some(failed))
        }
        Err(e) if matches!(e.code(), ErrorCode::InvalidState | ErrorCode::VideoNotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
