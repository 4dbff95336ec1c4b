//! Transcripts, stored as JSON segments beside their summary columns.

use sqlx::PgExecutor;

use crate::error::{Error, Result};
use crate::error_code::ErrorCode;
use crate::id::{OrgId, VideoId};
use crate::transcript::{Segment, Transcript};

/// Stores (or replaces) the transcript of a video.
///
/// # Errors
/// `video_not_found` when the video is not in this organisation.
pub async fn put_transcript(db: impl PgExecutor<'_>, org: OrgId, video: VideoId, t: &Transcript) -> Result<()> {
    let segments = serde_json::to_value(&t.segments).map_err(|e| Error::InvalidRequest(e.to_string()))?;
    let words = i32::try_from(t.words().count()).unwrap_or(i32::MAX);
    let done = sqlx::query(
        "INSERT INTO videdit.transcripts (org_id, video_id, language, model, duration, word_count, segments)
         SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM videdit.videos WHERE org_id = $1 AND id = $2)
         ON CONFLICT (video_id) DO UPDATE SET language = EXCLUDED.language, model = EXCLUDED.model,
             duration = EXCLUDED.duration, word_count = EXCLUDED.word_count, segments = EXCLUDED.segments,
             created_at = now()
         WHERE videdit.transcripts.org_id = EXCLUDED.org_id",
    )
    .bind(org)
    .bind(video)
    .bind(&t.language)
    .bind(&t.model)
    .bind(t.duration)
    .bind(words)
    .bind(segments)
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::not_found(ErrorCode::VideoNotFound, format!("video {video}")));
    }
    Ok(())
}

/// The transcript of a video.
///
/// # Errors
/// `transcript_not_found` when there is none in this organisation.
pub async fn get_transcript(db: impl PgExecutor<'_>, org: OrgId, video: VideoId) -> Result<Transcript> {
    let row: Option<(String, String, f64, serde_json::Value)> = sqlx::query_as(
        "SELECT language, model, duration, segments FROM videdit.transcripts WHERE org_id = $1 AND video_id = $2",
    )
    .bind(org)
    .bind(video)
    .fetch_optional(db)
    .await?;
    let (language, model, duration, segments) =
        row.ok_or_else(|| Error::not_found(ErrorCode::TranscriptNotFound, format!("transcript of video {video}")))?;
    let segments: Vec<Segment> = serde_json::from_value(segments)
        .map_err(|e| Error::InvalidState(format!("stored transcript of {video} is unreadable: {e}")))?;
    Ok(Transcript { language, model, duration, segments })
}

/// Whether the video has a transcript.
///
/// # Errors
/// Database failures.
pub async fn has_transcript(db: impl PgExecutor<'_>, org: OrgId, video: VideoId) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM videdit.transcripts WHERE org_id = $1 AND video_id = $2)")
        .bind(org)
        .bind(video)
        .fetch_one(db)
        .await?)
}
