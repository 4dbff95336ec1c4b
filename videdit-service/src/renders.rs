//! Renders: beginning one, finishing it (the fan-in that makes the video
//! ready once every short is done) and failing it.
//!
//! A recipe edited while its render runs is never lost: every edit bumps
//! the short's recipe revision under the video's row lock, and a render
//! finishes only if the revision it started from is still the newest;
//! otherwise it is told to render again.

use sqlx::PgConnection;
use videdit_core::db;
use videdit_core::event::EventType;
use videdit_core::recipe::ClipRecipe;
use videdit_core::short::{ShortOutputs, ShortStatus};
use videdit_core::storage::{Storage, bytes_stream};
use videdit_core::{ErrorCode, ProcessingStage, Short, ShortId, Video, VideoStatus};

use crate::error::{Error, Result};

/// A render about to run: the short and the recipe revision it renders.
#[derive(Debug, Clone)]
pub struct Begun {
    /// The short.
    pub short: Short,
    /// The recipe revision read before the recipe (compare in [`finish`]).
    pub revision: i32,
}

/// Checks that the short can render now and marks it rendering.
/// `Ok(None)`: the short is gone (re-analysed or deleted): nothing to do.
///
/// # Errors
/// `invalid_state` (not retryable) when the video is neither rendering nor
/// ready, or the short belongs to another video.
pub async fn begin(conn: &mut PgConnection, video: &Video, short: ShortId) -> Result<Option<Begun>> {
    let short = match db::get_short(&mut *conn, video.org_id, short).await {
        Ok(s) if s.video_id == video.id => s,
        Ok(_) => return Err(Error::invalid_state("the short belongs to another video")),
        Err(e) if e.code() == ErrorCode::ShortNotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let rendering = VideoStatus::Processing { stage: ProcessingStage::Rendering };
    if !(video.status == rendering || video.status == VideoStatus::Ready) {
        return Err(Error::invalid_state(format!(
            "video {} is {} and cannot render now",
            video.id,
            video.status.state()
        )));
    }
    let revision = db::recipe_revision(&mut *conn, video.org_id, short.id).await?;
    let short = db::set_short_status(&mut *conn, video.org_id, short.id, ShortStatus::Rendering).await?;
    Ok(Some(Begun { short, revision }))
}

/// What [`finish`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Finished {
    /// The short is ready; the video is as it is now (ready once every short is done).
    Done(Video),
    /// The recipe was edited while this render ran: render again.
    Stale,
}

/// Records a rendered short and, when it was the last one still to
/// finish, makes the video ready (or failed, when no short rendered),
/// under the video's row lock so concurrent renders agree on who is last.
///
/// # Errors
/// Database failures.
pub async fn finish(tx: &mut PgConnection, video: &Video, begun: &Begun, outputs: &ShortOutputs) -> Result<Finished> {
    let current = db::lock_video(&mut *tx, video.org_id, video.id).await?;
    if db::recipe_revision(&mut *tx, video.org_id, begun.short.id).await? != begun.revision {
        return Ok(Finished::Stale);
    }
    let short = db::set_short_outputs(&mut *tx, video.org_id, begun.short.id, outputs).await?;
    crate::events::record_for_video(
        &mut *tx,
        &current,
        EventType::ShortReady,
        serde_json::json!({
            "shortId": short.id,
            "rank": short.rank,
            "title": short.title,
            "startSeconds": short.range.start(),
            "endSeconds": short.range.end(),
        }),
    )
    .await?;
    Ok(Finished::Done(fan_in(tx, &current).await?))
}

/// [`finish`], and when the renderer chose the framing (the recipe said
/// `auto`, or `track` or `split` without a path), the short's stored
/// recipe gets the choice, so the next render and the editor see the
/// camera path. Written under the video's row lock after the revision
/// check, so an edit made meanwhile is never overwritten.
///
/// # Errors
/// Database and storage failures.
pub async fn finish_framed(
    tx: &mut PgConnection,
    storage: &dyn Storage,
    video: &Video,
    begun: &Begun,
    outputs: &ShortOutputs,
    framed: Option<&ClipRecipe>,
) -> Result<Finished> {
    let finished = finish(tx, video, begun, outputs).await?;
    if let (Finished::Done(_), Some(recipe)) = (&finished, framed) {
        let json = serde_json::to_vec_pretty(recipe)
            .map_err(|e| Error::new(ErrorCode::Internal, format!("serialising the recipe: {e}")))?;
        storage.put_stream(&outputs.recipe, bytes_stream(json), "application/json").await?;
    }
    Ok(finished)
}

/// Marks a short failed for good (`short.failed`) and runs the fan-in.
///
/// # Errors
/// Database failures.
pub async fn fail(
    tx: &mut PgConnection,
    video: &Video,
    short: ShortId,
    code: ErrorCode,
    message: &str,
) -> Result<Video> {
    let current = db::lock_video(&mut *tx, video.org_id, video.id).await?;
    match db::set_short_status(&mut *tx, video.org_id, short, ShortStatus::Failed).await {
        Ok(_) => {}
        Err(e) if e.code() == ErrorCode::ShortNotFound => return Ok(current),
        Err(e) => return Err(e.into()),
    }
    crate::events::record_for_video(
        &mut *tx,
        &current,
        EventType::ShortFailed,
        serde_json::json!({"shortId": short, "code": code.as_str(), "message": message}),
    )
    .await?;
    fan_in(tx, &current).await
}

/// With the video row locked: once every short is ready or failed, the
/// video is ready when at least one short is, failed otherwise.
async fn fan_in(tx: &mut PgConnection, video: &Video) -> Result<Video> {
    if video.status != (VideoStatus::Processing { stage: ProcessingStage::Rendering }) {
        return Ok(video.clone());
    }
    let shorts = db::list_shorts(&mut *tx, video.org_id, video.id).await?;
    if !shorts.iter().all(|s| s.status.is_terminal()) {
        return Ok(video.clone());
    }
    let ready = shorts.iter().filter(|s| s.status == ShortStatus::Ready).count();
    if ready > 0 {
        let done = db::transition_video(&mut *tx, video.org_id, video.id, &VideoStatus::Ready, None).await?;
        crate::billing::commit(&mut *tx, &done).await?;
        crate::events::record_for_video(
            &mut *tx,
            &done,
            EventType::VideoReady,
            serde_json::json!({"shorts": ready, "failedShorts": shorts.len() - ready}),
        )
        .await?;
        Ok(done)
    } else {
        let failed = crate::stages::fail(&mut *tx, video, ErrorCode::Internal, "every short failed to render").await?;
        Ok(failed.unwrap_or_else(|| video.clone()))
    }
}
