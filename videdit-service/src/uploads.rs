//! Uploads: create (a presigned PUT or a multipart plan), complete (checks
//! the object, moves the video to `uploaded`, records `video.uploaded`,
//! queues ingest), abort, and cleaning up the abandoned ones.
//!
//! Storage is always cleaned before the state that forgets the upload is
//! committed, so no part stays in storage with no row that names it; a
//! failed clean-up leaves the upload pending, and it is tried again.

use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;
use videdit_core::db::{self, AssetKind, NewUpload, NewVideo, UploadState};
use videdit_core::event::EventType;
use videdit_core::storage::{CompletedPart, MultipartUpload, ObjectKey, PresignPut, Storage};
use videdit_core::{ErrorCode, JobKind, OrgId, UploadId, UserId, Video, VideoId, VideoStatus};

use crate::error::{Error, Result};
use crate::jobs::{VideoJob, enqueue_stage};

/// Single PUT URLs live this long.
pub const SINGLE_URL_TTL: Duration = Duration::from_secs(3600);
/// Multipart part URLs live this long (large files take a while).
pub const PART_URL_TTL: Duration = Duration::from_secs(12 * 3600);
/// An upload not completed within this is abandoned and cleaned up.
pub const UPLOAD_TTL: time::Duration = time::Duration::hours(24);
/// Preferred part size; grows for huge files to stay within 10,000 parts.
pub const PART_SIZE: u64 = 16 * 1024 * 1024;

/// What an organisation may upload.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Largest upload in bytes.
    pub max_upload_bytes: u64,
    /// Uploads above this size use multipart.
    pub multipart_threshold: u64,
}

/// A request to upload a file.
#[derive(Debug, Clone)]
pub struct NewUploadRequest {
    /// The file's name (its stem becomes the title).
    pub file_name: String,
    /// `video/*` or `audio/*`.
    pub content_type: String,
    /// Bytes.
    pub size: u64,
    /// The duration the client declares, seconds (checked against the
    /// plan at once; the probed duration is what is charged).
    pub duration: Option<f64>,
}

/// Where and how to upload.
#[derive(Debug, Clone)]
pub struct UploadPlan {
    /// The upload.
    pub upload_id: UploadId,
    /// The video being created.
    pub video_id: VideoId,
    /// One presigned PUT (`None` for multipart).
    pub url: Option<String>,
    /// Headers to send with the PUT.
    pub headers: Vec<(String, String)>,
    /// For multipart: the part size and one URL per part (1-based numbers).
    pub multipart: Option<(u64, Vec<(i32, String)>)>,
    /// When the URLs stop working.
    pub expires_at: OffsetDateTime,
}

fn title_from(file_name: &str) -> String {
    let stem = file_name.rsplit_once('.').map_or(file_name, |(s, _)| s).trim();
    let t: String = stem.chars().filter(|c| !c.is_control()).take(300).collect();
    if t.trim().is_empty() { "Untitled video".into() } else { t }
}

/// Creates a video and its upload plan.
///
/// # Errors
/// `invalid_request` for an empty name or a type that is not audio or
/// video; `upload_too_large` above the limit; `plan_limit_exceeded` (402)
/// over the plan's upload size, source length or stored bytes,
/// `quota_exceeded` (402) when the declared duration is more than the
/// period's remaining minutes; storage and database failures.
pub async fn create(
    pool: &PgPool,
    storage: &dyn Storage,
    billing: &crate::billing::Billing,
    limits: UploadLimits,
    org: OrgId,
    user: UserId,
    req: &NewUploadRequest,
) -> Result<UploadPlan> {
    if req.file_name.trim().is_empty() {
        return Err(Error::invalid("fileName must not be empty"));
    }
    if let Err(why) = videdit_core::text::check("fileName", &req.file_name) {
        return Err(Error::invalid(why));
    }
    let ct = req.content_type.to_ascii_lowercase();
    if !(ct.starts_with("video/") || ct.starts_with("audio/")) {
        return Err(Error::invalid(format!("content type {:?} is not video/* or audio/*", req.content_type)));
    }
    if req.size > limits.max_upload_bytes {
        return Err(Error::new(
            ErrorCode::UploadTooLarge,
            format!("{} bytes is over this organization's upload limit of {} bytes", req.size, limits.max_upload_bytes),
        ));
    }
    if let Some(d) = req.duration
        && !(d.is_finite() && d > 0.0)
    {
        return Err(Error::invalid("durationSeconds must be a positive number"));
    }
    {
        let mut conn = pool.acquire().await?;
        crate::billing::check_upload(&mut conn, billing, org, req.size, req.duration).await?;
    }
    let video_id = VideoId::new();
    let key = ObjectKey::video_source(org, video_id, &req.file_name);
    let now = OffsetDateTime::now_utc();
    let is_multipart = req.size > limits.multipart_threshold;
    let (url, headers, multipart, expires_at, record) = if is_multipart {
        let part_size = PART_SIZE.max(req.size.div_ceil(10_000));
        let count = req.size.div_ceil(part_size) as i32;
        let mp = storage.create_multipart(&key, &ct).await?;
        let mut parts = Vec::with_capacity(count as usize);
        let mut expires_at = now;
        for n in 1..=count {
            // Every part is `part_size` bytes but the last, which has the rest.
            let size = if n == count { req.size - part_size * (count as u64 - 1) } else { part_size };
            let r = storage.presign_part(&mp, n, size, PART_URL_TTL).await?;
            expires_at = r.expires_at;
            parts.push((n, r.url));
        }
        (None, vec![], Some((part_size, parts)), expires_at, Some((mp.upload_id, part_size as i64, count)))
    } else {
        let put = PresignPut { expires_in: SINGLE_URL_TTL, content_type: ct.clone(), content_length: Some(req.size) };
        let r = storage.presign_put(&key, &put).await?;
        (Some(r.url), r.headers, None, r.expires_at, None)
    };
    let upload_id = UploadId::new();
    let mut tx = pool.begin().await?;
    // No fsync on this request's path (it dominated the p99): a crash may
    // lose an upload created in the last moments before it, and then the
    // client's PUT or complete gets `upload_not_found` and it starts over.
    // Nothing else is lost: no object is written before the client's PUT.
    sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
    let video = NewVideo {
        id: video_id,
        title: title_from(&req.file_name),
        status: VideoStatus::Uploading,
        source_key: Some(key.clone()),
        content_type: Some(ct.clone()),
        size_bytes: Some(req.size as i64),
        created_by: Some(user),
    };
    db::insert_video(&mut *tx, org, &video).await?;
    let upload = NewUpload {
        id: upload_id,
        video_id,
        key,
        file_name: req.file_name.clone(),
        content_type: ct,
        expected_size: req.size as i64,
        multipart: record,
        expires_at: now + UPLOAD_TTL,
    };
    db::insert_upload(&mut *tx, org, &upload).await?;
    tx.commit().await?;
    Ok(UploadPlan { upload_id, video_id, url, headers, multipart, expires_at })
}

/// Completes an upload: assembles a multipart upload's parts, checks the
/// object has the declared size, then in one transaction marks the upload
/// completed, records the source, moves the video to `uploaded`, records
/// `video.uploaded` and queues ingest.
///
/// # Errors
/// `upload_not_found`; `invalid_state` when it is not pending or nothing
/// was uploaded; `invalid_request` for a bad part list or a short file and
/// `upload_too_large` for a long one (the object is removed).
pub async fn complete(
    pool: &PgPool,
    storage: &dyn Storage,
    org: OrgId,
    id: UploadId,
    parts: &[CompletedPart],
) -> Result<Video> {
    let upload = db::get_upload(pool, org, id).await?;
    if upload.state != UploadState::Pending {
        return Err(Error::invalid_state("this upload is already completed or aborted"));
    }
    if let Some(multipart_id) = &upload.multipart_id {
        if parts.is_empty() {
            return Err(Error::invalid("a multipart upload is completed with its parts' ETags"));
        }
        let mp = MultipartUpload { key: upload.key.clone(), upload_id: multipart_id.clone() };
        storage.complete_multipart(&mp, parts).await?;
    }
    let meta =
        storage.head(&upload.key).await?.ok_or_else(|| Error::invalid_state("the file has not been uploaded yet"))?;
    let expected = upload.expected_size as u64;
    if meta.size != expected {
        // The object is not what was declared: remove it, so nothing unchecked is processed.
        storage.delete(&upload.key).await?;
        let code = if meta.size > expected { ErrorCode::UploadTooLarge } else { ErrorCode::InvalidRequest };
        return Err(Error::new(
            code,
            format!("the uploaded file has {} bytes but {expected} were declared; upload it again", meta.size),
        ));
    }
    let mut tx = pool.begin().await?;
    db::finish_upload(&mut *tx, org, id, UploadState::Completed).await?;
    db::put_asset(
        &mut *tx,
        org,
        upload.video_id,
        AssetKind::Source,
        &upload.key,
        Some(&upload.content_type),
        Some(meta.size as i64),
    )
    .await?;
    // Through the state machine, under the video's row lock.
    let video = db::transition_video(&mut tx, org, upload.video_id, &VideoStatus::Uploaded, None).await?;
    crate::events::record_for_video(
        &mut tx,
        &video,
        EventType::VideoUploaded,
        serde_json::json!({"sizeBytes": meta.size}),
    )
    .await?;
    enqueue_stage(&mut tx, JobKind::Ingest, &VideoJob::video(org, video.id)).await?;
    tx.commit().await?;
    Ok(video)
}

/// Aborts a pending upload: frees its parts and object first, then removes
/// the upload and the video it was creating.
///
/// # Errors
/// `upload_not_found` when there is no pending upload with this id;
/// storage failures (the upload stays pending and can be aborted again).
pub async fn abort(pool: &PgPool, storage: &dyn Storage, org: OrgId, id: UploadId) -> Result<()> {
    let upload = db::get_upload(pool, org, id).await?;
    if upload.state != UploadState::Pending {
        return Err(Error::new(ErrorCode::UploadNotFound, format!("no pending upload {id}")));
    }
    release(pool, storage, &upload).await.map(|_| ())
}

/// Frees what an upload holds in storage, then, in one transaction, marks
/// it aborted and deletes its video if that is still uploading. Returns
/// false when another process completed or aborted it first.
async fn release(pool: &PgPool, storage: &dyn Storage, upload: &db::Upload) -> Result<bool> {
    free_objects(storage, upload).await?;
    let mut tx = pool.begin().await?;
    match db::finish_upload(&mut *tx, upload.org_id, upload.id, UploadState::Aborted).await {
        Ok(_) => {}
        Err(videdit_core::Error::InvalidState(_)) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    let video = db::lock_video(&mut *tx, upload.org_id, upload.video_id).await;
    if matches!(&video, Ok(v) if v.status == VideoStatus::Uploading) {
        db::delete_video(&mut *tx, upload.org_id, upload.video_id).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Frees an upload's parts and object (both idempotent).
///
/// # Errors
/// Storage failures.
pub async fn free_objects(storage: &dyn Storage, upload: &db::Upload) -> Result<()> {
    if let Some(multipart_id) = &upload.multipart_id {
        let mp = MultipartUpload { key: upload.key.clone(), upload_id: multipart_id.clone() };
        storage.abort_multipart(&mp).await?;
    }
    Ok(storage.delete(&upload.key).await?)
}

/// Aborts every upload that expired before `now`; returns how many.
///
/// # Errors
/// The first storage or database failure (what was done stays done; the
/// rest is tried on the next run).
pub async fn clean_up_abandoned(pool: &PgPool, storage: &dyn Storage, now: OffsetDateTime) -> Result<usize> {
    let mut cleaned = 0;
    loop {
        let batch = db::expired_uploads(pool, now, 100).await?;
        if batch.is_empty() {
            return Ok(cleaned);
        }
        let before = cleaned;
        for upload in &batch {
            if release(pool, storage, upload).await? {
                cleaned += 1;
                tracing::info!(upload = %upload.id, "aborted an abandoned upload");
            }
        }
        if cleaned == before {
            return Ok(cleaned); // the whole batch was taken by someone else
        }
    }
}
