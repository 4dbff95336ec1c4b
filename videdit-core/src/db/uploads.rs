//! Upload sessions: what a client was allowed to upload, so completion can
//! be checked and abandoned uploads cleaned up.

use std::convert::identity;

use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;

use super::org_row;

use crate::error::{Error, Result};
use crate::error_code::{ErrorCode, stable_names};
use crate::id::{OrgId, UploadId, VideoId};
use crate::storage::ObjectKey;

stable_names! {
    /// Where an upload is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum UploadState {
        /// Waiting for the client.
        Pending => "pending",
        /// Completed and handed to processing.
        Completed => "completed",
        /// Aborted by the client or the cleanup job.
        Aborted => "aborted",
    }
}

/// An upload to record.
#[derive(Debug, Clone)]
pub struct NewUpload {
    /// Its id.
    pub id: UploadId,
    /// The video it fills.
    pub video_id: VideoId,
    /// The object key.
    pub key: ObjectKey,
    /// The client's file name.
    pub file_name: String,
    /// Declared content type.
    pub content_type: String,
    /// Declared size in bytes.
    pub expected_size: i64,
    /// Backend multipart id, part size and part count, for multipart uploads.
    pub multipart: Option<(String, i64, i32)>,
    /// When it is considered abandoned.
    pub expires_at: OffsetDateTime,
}

/// A recorded upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// Its id.
    pub id: UploadId,
    /// Its organisation.
    pub org_id: OrgId,
    /// The video.
    pub video_id: VideoId,
    /// The object key.
    pub key: ObjectKey,
    /// The client's file name.
    pub file_name: String,
    /// Declared content type.
    pub content_type: String,
    /// Declared size.
    pub expected_size: i64,
    /// Backend multipart id, when multipart.
    pub multipart_id: Option<String>,
    /// Part size, when multipart.
    pub part_size: Option<i64>,
    /// Number of parts, when multipart.
    pub part_count: Option<i32>,
    /// State.
    pub state: UploadState,
    /// When it is considered abandoned.
    pub expires_at: OffsetDateTime,
}

#[derive(FromRow)]
struct Row {
    id: uuid::Uuid,
    org_id: uuid::Uuid,
    video_id: uuid::Uuid,
    key: String,
    file_name: String,
    content_type: String,
    expected_size: i64,
    multipart_id: Option<String>,
    part_size: Option<i64>,
    part_count: Option<i32>,
    state: String,
    expires_at: OffsetDateTime,
}

impl Row {
    fn into_upload(self) -> Result<Upload> {
        Ok(Upload {
            id: UploadId::from_uuid(self.id),
            org_id: OrgId::from_uuid(self.org_id),
            video_id: VideoId::from_uuid(self.video_id),
            key: ObjectKey::parse(self.key)?,
            file_name: self.file_name,
            content_type: self.content_type,
            expected_size: self.expected_size,
            multipart_id: self.multipart_id,
            part_size: self.part_size,
            part_count: self.part_count,
            state: UploadState::parse(&self.state)
                .ok_or_else(|| Error::InvalidState(format!("upload {} has a bad state", self.id)))?,
            expires_at: self.expires_at,
        })
    }
}

const COLUMNS: &str = "id, org_id, video_id, key, file_name, content_type, expected_size, multipart_id, part_size, part_count, state, expires_at";

fn upload_not_found(id: UploadId) -> Error {
    Error::not_found(ErrorCode::UploadNotFound, format!("upload {id}"))
}

/// Records an upload for a video of the organisation.
///
/// # Errors
/// `video_not_found` when the video is not in this organisation.
pub async fn insert_upload(db: impl PgExecutor<'_>, org: OrgId, new: &NewUpload) -> Result<Upload> {
    let (multipart_id, part_size, part_count) = match &new.multipart {
        Some((id, size, count)) => (Some(id.as_str()), Some(*size), Some(*count)),
        None => (None, None, None),
    };
    let row: Option<Row> = sqlx::query_as(&format!(
        "INSERT INTO videdit.uploads (id, org_id, video_id, key, file_name, content_type, expected_size, multipart_id, part_size, part_count, expires_at)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
         WHERE EXISTS (SELECT 1 FROM videdit.videos WHERE org_id = $2 AND id = $3)
         RETURNING {COLUMNS}"
    ))
    .bind(new.id)
    .bind(org)
    .bind(new.video_id)
    .bind(new.key.as_str())
    .bind(&new.file_name)
    .bind(&new.content_type)
    .bind(new.expected_size)
    .bind(multipart_id)
    .bind(part_size)
    .bind(part_count)
    .bind(new.expires_at)
    .fetch_optional(db)
    .await?;
    row.ok_or_else(|| Error::not_found(ErrorCode::VideoNotFound, format!("video {}", new.video_id)))?.into_upload()
}

/// One upload of the organisation.
///
/// # Errors
/// `upload_not_found`.
pub async fn get_upload(db: impl PgExecutor<'_>, org: OrgId, id: UploadId) -> Result<Upload> {
    let sql = format!("SELECT {COLUMNS} FROM videdit.uploads WHERE org_id = $1 AND id = $2");
    let row: Row = org_row(db, &sql, org, id, upload_not_found, identity).await?;
    row.into_upload()
}

/// Moves a pending upload to `completed` or `aborted`. Exactly one caller
/// wins when several race.
///
/// # Errors
/// `upload_not_found`, or `invalid_state` when it is no longer pending.
pub async fn finish_upload(db: impl PgExecutor<'_>, org: OrgId, id: UploadId, to: UploadState) -> Result<Upload> {
    if to == UploadState::Pending {
        return Err(Error::InvalidRequest("an upload cannot go back to pending".into()));
    }
    let sql = format!(
        "UPDATE videdit.uploads SET state = $3, finished_at = now()
         WHERE org_id = $1 AND id = $2 AND state = 'pending' RETURNING {COLUMNS}"
    );
    let not_pending = |id: UploadId| Error::InvalidState(format!("upload {id} is not pending (or does not exist)"));
    let row: Row = org_row(db, &sql, org, id, not_pending, |q| q.bind(to.as_str())).await?;
    row.into_upload()
}

/// Pending uploads past their expiry, oldest first, across all
/// organisations. Only the cleanup job calls this; it then aborts each one
/// through the scoped [`finish_upload`].
///
/// # Errors
/// Database failures.
pub async fn expired_uploads(db: impl PgExecutor<'_>, now: OffsetDateTime, limit: i64) -> Result<Vec<Upload>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM videdit.uploads WHERE state = 'pending' AND expires_at < $1 ORDER BY expires_at LIMIT $2"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.into_iter().map(Row::into_upload).collect()
}

/// A video's pending multipart uploads as `(key, backend upload id)`.
///
/// # Errors
/// Database failures.
pub async fn pending_multipart_uploads(
    db: impl PgExecutor<'_>,
    org: OrgId,
    video: VideoId,
) -> Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT key, multipart_id FROM videdit.uploads
         WHERE org_id = $1 AND video_id = $2 AND state = 'pending' AND multipart_id IS NOT NULL",
    )
    .bind(org)
    .bind(video)
    .fetch_all(db)
    .await?)
}
