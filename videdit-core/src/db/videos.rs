//! Videos and their media assets.

use std::convert::identity;

use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;

use super::{delete_org_row, org_row};

use crate::error::{Error, Result};
use crate::error_code::{ErrorCode, stable_names};
use crate::id::{OrgId, UserId, VideoId};
use crate::storage::ObjectKey;
use crate::video::{Video, VideoStatus};

/// A video to create.
#[derive(Debug, Clone)]
pub struct NewVideo {
    /// Its id (minted by the caller, so the storage key can be built first).
    pub id: VideoId,
    /// Display title.
    pub title: String,
    /// Initial status (usually [`VideoStatus::Uploading`]).
    pub status: VideoStatus,
    /// Where the source is (or will be) stored.
    pub source_key: Option<ObjectKey>,
    /// Declared content type.
    pub content_type: Option<String>,
    /// Declared size.
    pub size_bytes: Option<i64>,
    /// Who created it.
    pub created_by: Option<UserId>,
}

/// A video in a list, with counts the UI shows.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoSummary {
    /// The video.
    pub video: Video,
    /// How many shorts it has.
    pub shorts_count: i64,
    /// Whether a transcript exists.
    pub has_transcription: bool,
}

/// One page of a cursor-paginated list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Pass as `before` to get the next page; `None` on the last page.
    pub next_cursor: Option<VideoId>,
}

stable_names! {
    /// Kinds of stored files that belong to a video.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum AssetKind {
        /// The uploaded source.
        Source => "source",
        /// Extracted audio.
        Audio => "audio",
        /// Transcript JSON.
        Transcript => "transcript",
        /// A thumbnail of the whole video.
        Thumbnail => "thumbnail",
    }
}

#[derive(FromRow)]
struct VideoRow {
    id: uuid::Uuid,
    org_id: uuid::Uuid,
    title: String,
    state: String,
    stage: Option<String>,
    failure_reason: Option<String>,
    failure_code: Option<String>,
    duration_seconds: Option<f64>,
    size_bytes: Option<i64>,
    source_key: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl VideoRow {
    fn into_video(self) -> Result<Video> {
        let status = VideoStatus::from_parts(&self.state, self.stage.as_deref(), self.failure_reason.as_deref())
            .ok_or_else(|| Error::InvalidState(format!("video {} has an unknown state {:?}", self.id, self.state)))?;
        Ok(Video {
            id: VideoId::from_uuid(self.id),
            org_id: OrgId::from_uuid(self.org_id),
            title: self.title,
            status,
            failure_code: self.failure_code.as_deref().map(|c| ErrorCode::from_code(c).unwrap_or(ErrorCode::Internal)),
            duration_seconds: self.duration_seconds,
            size_bytes: self.size_bytes,
            source_key: self
                .source_key
                .map(ObjectKey::parse)
                .transpose()
                .map_err(|e| Error::InvalidState(e.to_string()))?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

const VIDEO_COLUMNS: &str = "v.id, v.org_id, v.title, v.state, v.stage, v.failure_reason, v.failure_code, v.duration_seconds, v.size_bytes, v.source_key, v.created_at, v.updated_at";

fn video_not_found(id: VideoId) -> Error {
    Error::not_found(ErrorCode::VideoNotFound, format!("video {id}"))
}

fn check_title(title: &str) -> Result<&str> {
    let t = title.trim();
    if t.is_empty() || t.chars().count() > 300 {
        return Err(Error::InvalidRequest("a title must have 1 to 300 characters".into()));
    }
    Ok(t)
}

/// Creates a video in the organisation.
///
/// # Errors
/// A bad title, or database failures.
pub async fn insert_video(db: impl PgExecutor<'_>, org: OrgId, new: &NewVideo) -> Result<Video> {
    let title = check_title(&new.title)?;
    let row: VideoRow = sqlx::query_as(
        "INSERT INTO videdit.videos AS v (id, org_id, title, state, stage, failure_reason, source_key, content_type, size_bytes, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         RETURNING v.id, v.org_id, v.title, v.state, v.stage, v.failure_reason, v.failure_code, v.duration_seconds, v.size_bytes, v.source_key, v.created_at, v.updated_at",
    )
    .bind(new.id)
    .bind(org)
    .bind(title)
    .bind(new.status.state())
    .bind(new.status.stage().map(|s| s.as_str()))
    .bind(new.status.failure_reason())
    .bind(new.source_key.as_ref().map(ObjectKey::as_str))
    .bind(new.content_type.as_deref())
    .bind(new.size_bytes)
    .bind(new.created_by)
    .fetch_one(db)
    .await?;
    row.into_video()
}

/// One video of the organisation.
///
/// # Errors
/// `video_not_found` when it does not exist in this organisation.
pub async fn get_video(db: impl PgExecutor<'_>, org: OrgId, id: VideoId) -> Result<Video> {
    let sql = format!("SELECT {VIDEO_COLUMNS} FROM videdit.videos v WHERE v.org_id = $1 AND v.id = $2");
    let row: VideoRow = org_row(db, &sql, org, id, video_not_found, identity).await?;
    row.into_video()
}

/// Locks the video row until the transaction ends (state-machine fan-in).
///
/// # Errors
/// `video_not_found` when it does not exist in this organisation.
pub async fn lock_video(db: impl PgExecutor<'_>, org: OrgId, id: VideoId) -> Result<Video> {
    let sql = format!("SELECT {VIDEO_COLUMNS} FROM videdit.videos v WHERE v.org_id = $1 AND v.id = $2 FOR UPDATE");
    let row: VideoRow = org_row(db, &sql, org, id, video_not_found, identity).await?;
    row.into_video()
}

/// The organisation's videos, newest first, `limit` (1..=100) per page,
/// starting after the cursor `before`.
///
/// # Errors
/// Database failures.
pub async fn list_videos(
    db: impl PgExecutor<'_>,
    org: OrgId,
    before: Option<VideoId>,
    limit: u32,
) -> Result<Page<VideoSummary>> {
    let limit = limit.clamp(1, 100);
    #[derive(FromRow)]
    struct Row {
        #[sqlx(flatten)]
        video: VideoRow,
        shorts_count: i64,
        has_transcription: bool,
    }
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {VIDEO_COLUMNS},
                (SELECT count(*) FROM videdit.shorts s WHERE s.org_id = v.org_id AND s.video_id = v.id) AS shorts_count,
                EXISTS (SELECT 1 FROM videdit.transcripts t WHERE t.video_id = v.id) AS has_transcription
         FROM videdit.videos v
         WHERE v.org_id = $1 AND ($2::uuid IS NULL OR v.id < $2)
         ORDER BY v.id DESC
         LIMIT $3"
    ))
    .bind(org)
    .bind(before)
    .bind(i64::from(limit) + 1)
    .fetch_all(db)
    .await?;
    let has_more = rows.len() > limit as usize;
    let items = rows
        .into_iter()
        .take(limit as usize)
        .map(|r| {
            Ok(VideoSummary {
                video: r.video.into_video()?,
                shorts_count: r.shorts_count,
                has_transcription: r.has_transcription,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let next_cursor = if has_more { items.last().map(|s| s.video.id) } else { None };
    Ok(Page { items, next_cursor })
}

/// Renames a video.
///
/// # Errors
/// A bad title, or `video_not_found`.
pub async fn rename_video(db: impl PgExecutor<'_>, org: OrgId, id: VideoId, title: &str) -> Result<Video> {
    let title = check_title(title)?;
    let sql = format!(
        "UPDATE videdit.videos v SET title = $3, updated_at = now() WHERE v.org_id = $1 AND v.id = $2
         RETURNING {VIDEO_COLUMNS}"
    );
    let row: VideoRow = org_row(db, &sql, org, id, video_not_found, |q| q.bind(title)).await?;
    row.into_video()
}

/// Sets a video's status (and, when known, its duration and size).
///
/// # Errors
/// `video_not_found`.
pub async fn set_video_status(
    db: impl PgExecutor<'_>,
    org: OrgId,
    id: VideoId,
    status: &VideoStatus,
    duration_seconds: Option<f64>,
    size_bytes: Option<i64>,
) -> Result<Video> {
    let sql = format!(
        "UPDATE videdit.videos v
         SET state = $3, stage = $4, failure_reason = $5,
             failure_code = CASE WHEN $3 = 'failed' THEN failure_code END,
             duration_seconds = COALESCE($6, duration_seconds), size_bytes = COALESCE($7, size_bytes),
             updated_at = now()
         WHERE v.org_id = $1 AND v.id = $2
         RETURNING {VIDEO_COLUMNS}"
    );
    let row: VideoRow = org_row(db, &sql, org, id, video_not_found, |q| {
        q.bind(status.state())
            .bind(status.stage().map(|s| s.as_str()))
            .bind(status.failure_reason())
            .bind(duration_seconds)
            .bind(size_bytes)
    })
    .await?;
    row.into_video()
}

/// Deletes a video's rows (its shorts, transcript, uploads and assets go
/// with it). Objects in storage are deleted by the caller's delete job.
///
/// # Errors
/// `video_not_found`.
pub async fn delete_video(db: impl PgExecutor<'_>, org: OrgId, id: VideoId) -> Result<()> {
    delete_org_row(db, "videdit.videos", org, id, video_not_found).await
}

/// Records a stored file of a video (one per kind; replaced on re-run).
///
/// # Errors
/// `video_not_found` when the video is not in this organisation.
pub async fn put_asset(
    db: impl PgExecutor<'_>,
    org: OrgId,
    video: VideoId,
    kind: AssetKind,
    key: &ObjectKey,
    content_type: Option<&str>,
    size_bytes: Option<i64>,
) -> Result<()> {
    let done = sqlx::query(
        "INSERT INTO videdit.media_assets (org_id, video_id, kind, key, content_type, size_bytes)
         SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM videdit.videos WHERE org_id = $1 AND id = $2)
         ON CONFLICT (video_id, kind) DO UPDATE SET key = EXCLUDED.key, content_type = EXCLUDED.content_type,
             size_bytes = EXCLUDED.size_bytes, created_at = now()
         WHERE videdit.media_assets.org_id = EXCLUDED.org_id",
    )
    .bind(org)
    .bind(video)
    .bind(kind.as_str())
    .bind(key.as_str())
    .bind(content_type)
    .bind(size_bytes)
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(video_not_found(video));
    }
    Ok(())
}

/// Moves a video to `next` if the state machine allows it, under a row lock
/// (so concurrent handlers, like the render fan-in, decide one at a time).
/// Returns the video as it is afterwards.
///
/// # Errors
/// `video_not_found`, or `invalid_state` naming both states when the move is
/// not allowed.
pub async fn transition_video(
    conn: &mut sqlx::PgConnection,
    org: OrgId,
    id: VideoId,
    next: &VideoStatus,
    duration_seconds: Option<f64>,
) -> Result<Video> {
    let current = lock_video(&mut *conn, org, id).await?;
    if !current.status.can_become(next) {
        return Err(Error::InvalidState(format!(
            "video {id} cannot go from {} to {}",
            current.status.state(),
            next.state()
        )));
    }
    set_video_status(&mut *conn, org, id, next, duration_seconds, None).await
}

/// Moves a video to `failed` with a stable code and a reason, under its row
/// lock, if the state machine allows it (a ready video is never failed).
///
/// # Errors
/// `video_not_found`; `invalid_state` when the video cannot fail now.
pub async fn fail_video(
    conn: &mut sqlx::PgConnection,
    org: OrgId,
    id: VideoId,
    code: ErrorCode,
    reason: &str,
) -> Result<Video> {
    let reason: String = reason.chars().take(1000).collect();
    transition_video(&mut *conn, org, id, &VideoStatus::Failed { reason }, None).await?;
    let sql = format!(
        "UPDATE videdit.videos v SET failure_code = $3 WHERE org_id = $1 AND id = $2 RETURNING {VIDEO_COLUMNS}"
    );
    let row: VideoRow = org_row(&mut *conn, &sql, org, id, video_not_found, |q| q.bind(code.as_str())).await?;
    row.into_video()
}

/// Records a request to analyse the video with `options` and returns its
/// revision (each request gets a higher one).
///
/// # Errors
/// `video_not_found`.
pub async fn request_analysis(
    db: impl PgExecutor<'_>,
    org: OrgId,
    id: VideoId,
    options: &serde_json::Value,
) -> Result<i32> {
    let sql = "UPDATE videdit.videos SET analyze_options = $3, analyze_revision = analyze_revision + 1
         WHERE org_id = $1 AND id = $2 RETURNING analyze_revision";
    let (revision,) = org_row(db, sql, org, id, video_not_found, |q| q.bind(options)).await?;
    Ok(revision)
}

/// The newest analysis request: its options and revision.
///
/// # Errors
/// `video_not_found`.
pub async fn analysis_request(db: impl PgExecutor<'_>, org: OrgId, id: VideoId) -> Result<(serde_json::Value, i32)> {
    let sql = "SELECT analyze_options, analyze_revision FROM videdit.videos WHERE org_id = $1 AND id = $2";
    org_row(db, sql, org, id, video_not_found, identity).await
}
