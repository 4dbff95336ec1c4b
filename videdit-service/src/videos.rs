//! Deleting a video: its rows go at once, with its live jobs cancelled and
//! `video.deleted` recorded in the same transaction; its stored files go
//! through a `delete` job (which first aborts the video's unfinished
//! multipart uploads), and a second pass runs after the longest job lease
//! could have expired, so a late render leaves nothing behind.

use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;
use videdit_core::event::EventType;
use videdit_core::storage::{KeyPrefix, MultipartUpload, ObjectKey, Storage};
use videdit_core::{JobKind, OrgId, VideoId, db};
use videdit_queue::JobState;

use crate::error::Result;
use crate::jobs::{VideoJob, enqueue_stage, enqueue_stage_at};

/// When the second clean-up pass runs: past the longest media job's
/// timeout (renders: 1 h) plus a lease.
pub const SECOND_PASS_AFTER: Duration = Duration::from_secs(75 * 60);

/// What the delete job must free besides the video's prefix.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOptions {
    /// Unfinished multipart uploads: `(key, upload id)`.
    #[serde(default)]
    pub multipart: Vec<(String, String)>,
}

/// Most characters in a title.
pub const MAX_TITLE_CHARS: usize = 300;

/// Renames a video: a title is 1 to 300 characters, not blank, without
/// control or bidirectional-override characters.
///
/// # Errors
/// `invalid_request` for a bad title; `video_not_found`.
pub async fn rename(pool: &PgPool, org: OrgId, id: VideoId, title: &str) -> Result<videdit_core::Video> {
    if title.trim().is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(crate::Error::invalid(format!("a title has 1 to {MAX_TITLE_CHARS} characters, not only spaces")));
    }
    videdit_core::text::check("title", title).map_err(crate::Error::invalid)?;
    Ok(db::rename_video(pool, org, id, title).await?)
}

/// Deletes a video. Returns the id of the clean-up job.
///
/// # Errors
/// `video_not_found`; database failures.
pub async fn delete(pool: &PgPool, org: OrgId, id: VideoId) -> Result<uuid::Uuid> {
    let mut tx = pool.begin().await?;
    let video = db::lock_video(&mut *tx, org, id).await?;
    // Live jobs of the video stop: queued ones now, running ones at their next heartbeat.
    let filter = serde_json::json!({"orgId": org, "videoId": id});
    for job in videdit_queue::admin::find_jobs(&mut *tx, &filter, 1000).await? {
        if matches!(job.state(), JobState::Available | JobState::Running) {
            videdit_queue::cancel(&mut *tx, job.id).await?;
        }
    }
    // Unfinished multipart uploads would lose their rows with the video:
    // the delete job aborts them.
    let multipart = db::pending_multipart_uploads(&mut *tx, org, id).await?;
    crate::events::record_for_video(&mut tx, &video, EventType::VideoDeleted, serde_json::json!({})).await?;
    db::delete_video(&mut *tx, org, id).await?;
    let options = serde_json::to_value(DeleteOptions { multipart }).expect("options serialise");
    let job = VideoJob { options, ..VideoJob::video(org, id) };
    let job_id = enqueue_stage(&mut tx, JobKind::Delete, &job).await?;
    let later = OffsetDateTime::now_utc() + SECOND_PASS_AFTER;
    enqueue_stage_at(&mut tx, JobKind::Delete, &VideoJob::video(org, id), Some(later)).await?;
    tx.commit().await?;
    Ok(job_id)
}

/// The delete job's work: aborts the listed multipart uploads, then removes
/// every object under the video's prefix. Returns how many were removed.
///
/// # Errors
/// Storage failures (the job retries).
pub async fn remove_files(storage: &dyn Storage, job: &VideoJob) -> Result<u64> {
    let options: DeleteOptions = serde_json::from_value(job.options.clone()).unwrap_or_default();
    for (key, upload_id) in options.multipart {
        let key = ObjectKey::parse(key).map_err(videdit_core::Error::from)?;
        storage.abort_multipart(&MultipartUpload { key, upload_id }).await?;
    }
    Ok(storage.delete_prefix(&KeyPrefix::video(job.org_id, job.video_id)).await?)
}
