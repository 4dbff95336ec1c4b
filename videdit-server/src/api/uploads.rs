//! Uploads: presigned PUT or multipart, completion, abort.

use std::sync::Arc;
use std::time::Duration;

use poem::web::Data;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use time::OffsetDateTime;
use videdit_core::db::{self, AssetKind, NewUpload, NewVideo, UploadState};
use videdit_core::storage::{CompletedPart, MultipartUpload, ObjectKey, PresignPut};
use videdit_core::{ErrorCode, JobKind, UploadId, VideoId, VideoStatus};

use crate::pipeline_jobs::{VideoJob, enqueue_stage};

use super::error::{ApiError, ApiResult};
use super::idempotency::idempotent;
use super::models::{CompleteUpload, CreateUpload, Header as HeaderBody, PartUrl, UploadMethod, UploadPlan, VideoBody};
use super::{ApiTags, BearerAuth};
use crate::app::AppState;
use crate::auth::Action;

/// Single PUT URLs live this long.
const SINGLE_URL_TTL: Duration = Duration::from_secs(3600);
/// Multipart part URLs live this long (large files take a while).
const PART_URL_TTL: Duration = Duration::from_secs(12 * 3600);
/// An upload not completed within this is abandoned and cleaned up.
const UPLOAD_TTL: time::Duration = time::Duration::hours(24);
/// Preferred part size; grows for huge files to stay within 10,000 parts.
const PART_SIZE: u64 = 16 * 1024 * 1024;

#[derive(ApiResponse)]
enum Created {
    /// The upload plan.
    #[oai(status = 201)]
    Created(Json<UploadPlan>),
}

pub struct UploadsApi;

fn parse_id<T: std::str::FromStr<Err = videdit_core::InvalidId>>(raw: &str, code: ErrorCode) -> ApiResult<T> {
    // A malformed id cannot exist, so it is a plain not-found.
    raw.parse().map_err(|_| ApiError::new(code, format!("no such id {raw:?}")))
}

fn title_from(file_name: &str) -> String {
    let stem = file_name.rsplit_once('.').map_or(file_name, |(s, _)| s).trim();
    let t: String = stem.chars().filter(|c| !c.is_control()).take(300).collect();
    if t.trim().is_empty() { "Untitled video".into() } else { t }
}

#[OpenApi(prefix_path = "/uploads", tag = "ApiTags::Uploads")]
impl UploadsApi {
    /// Start an upload
    ///
    /// Creates a video and returns where to upload its file: one presigned
    /// `PUT` URL, or above 100 MiB a multipart plan with one presigned URL per
    /// part. URLs expire; the upload is abandoned after 24 h if never
    /// completed. Send an `Idempotency-Key` header to make retries safe.
    #[oai(path = "/", method = "post", operation_id = "createUpload")]
    async fn create(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        body: Json<CreateUpload>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
    ) -> ApiResult<Created> {
        let p = auth.0;
        p.require(Action::Upload)?;
        let req = body.0;
        let plan = idempotent(state.0, p.org_id, idempotency_key.0.as_deref(), "createUpload", &req, async {
            create_plan(&state, p, &req).await
        })
        .await?;
        Ok(Created::Created(Json(plan)))
    }

    /// Complete an upload
    ///
    /// Checks that the object is in storage with the declared size
    /// (assembling the parts of a multipart upload first), marks the video
    /// uploaded and starts processing.
    #[oai(path = "/:id/complete", method = "post", operation_id = "completeUpload")]
    async fn complete(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        id: Path<String>,
        body: Json<CompleteUpload>,
    ) -> ApiResult<Json<VideoBody>> {
        let p = auth.0;
        p.require(Action::Upload)?;
        let id: UploadId = parse_id(&id.0, ErrorCode::UploadNotFound)?;
        let upload = db::get_upload(&state.pool, p.org_id, id).await?;
        if upload.state != UploadState::Pending {
            return Err(ApiError::new(ErrorCode::InvalidState, "this upload is already completed or aborted"));
        }
        if let Some(multipart_id) = &upload.multipart_id {
            if body.0.parts.is_empty() {
                return Err(ApiError::invalid("a multipart upload is completed with its parts' ETags"));
            }
            let parts: Vec<CompletedPart> = body
                .0
                .parts
                .iter()
                .map(|p| CompletedPart { part_number: p.part_number, etag: p.etag.clone() })
                .collect();
            let mp = MultipartUpload { key: upload.key.clone(), upload_id: multipart_id.clone() };
            state.storage.complete_multipart(&mp, &parts).await?;
        }
        let meta = state
            .storage
            .head(&upload.key)
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidState, "the file has not been uploaded yet"))?;
        let expected = upload.expected_size as u64;
        if meta.size != expected {
            // The object is not what was declared: remove it, so nothing unchecked is processed.
            state.storage.delete(&upload.key).await?;
            let code = if meta.size > expected { ErrorCode::UploadTooLarge } else { ErrorCode::InvalidRequest };
            return Err(ApiError::new(
                code,
                format!("the uploaded file has {} bytes but {expected} were declared; upload it again", meta.size),
            ));
        }
        let mut tx = state.pool.begin().await?;
        db::finish_upload(&mut *tx, p.org_id, id, UploadState::Completed).await?;
        db::put_asset(
            &mut *tx,
            p.org_id,
            upload.video_id,
            AssetKind::Source,
            &upload.key,
            Some(&upload.content_type),
            Some(meta.size as i64),
        )
        .await?;
        // Through the state machine, under the video's row lock.
        let video = db::transition_video(&mut tx, p.org_id, upload.video_id, &VideoStatus::Uploaded, None).await?;
        let job =
            VideoJob { org_id: p.org_id, video_id: upload.video_id, short_id: None, options: serde_json::json!({}) };
        enqueue_stage(&mut tx, JobKind::Ingest, &job).await.map_err(super::jobs::queue_error)?;
        tx.commit().await?;
        Ok(Json(VideoBody::new(&video, 0, false)))
    }

    /// Abort an upload
    ///
    /// Abandons an upload that was not completed: frees its parts and
    /// deletes the video it was creating.
    #[oai(path = "/:id", method = "delete", operation_id = "abortUpload")]
    async fn abort(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        id: Path<String>,
    ) -> ApiResult<Json<serde_json::Value>> {
        let p = auth.0;
        p.require(Action::Upload)?;
        let id: UploadId = parse_id(&id.0, ErrorCode::UploadNotFound)?;
        let upload = db::finish_upload(&state.pool, p.org_id, id, UploadState::Aborted).await.map_err(|e| match e {
            videdit_core::Error::InvalidState(_) => {
                ApiError::new(ErrorCode::UploadNotFound, format!("no pending upload {id}"))
            }
            other => other.into(),
        })?;
        abort_objects(state.storage.as_ref(), &upload).await?;
        db::delete_video(&state.pool, p.org_id, upload.video_id).await?;
        Ok(Json(serde_json::json!({"aborted": true})))
    }
}

/// Frees what an upload left in storage.
pub async fn abort_objects(
    storage: &dyn videdit_core::storage::Storage,
    upload: &db::Upload,
) -> videdit_core::Result<()> {
    if let Some(multipart_id) = &upload.multipart_id {
        let mp = MultipartUpload { key: upload.key.clone(), upload_id: multipart_id.clone() };
        storage.abort_multipart(&mp).await?;
    }
    storage.delete(&upload.key).await
}

async fn create_plan(state: &AppState, p: crate::auth::Principal, req: &CreateUpload) -> ApiResult<UploadPlan> {
    if req.file_name.trim().is_empty() {
        return Err(ApiError::invalid("fileName must not be empty"));
    }
    let ct = req.content_type.to_ascii_lowercase();
    if !(ct.starts_with("video/") || ct.starts_with("audio/")) {
        return Err(ApiError::invalid(format!("content type {:?} is not video/* or audio/*", req.content_type)));
    }
    let limit = state.limits.max_upload_bytes;
    if req.size > limit {
        return Err(ApiError::new(
            ErrorCode::UploadTooLarge,
            format!("{} bytes is over this organization's upload limit of {limit} bytes", req.size),
        ));
    }
    let video_id = VideoId::new();
    let key = ObjectKey::video_source(p.org_id, video_id, &req.file_name);
    let now = OffsetDateTime::now_utc();
    let multipart = req.size > state.limits.multipart_threshold;
    let (plan_parts, part_size, url, headers, expires_at, multipart_record) = if multipart {
        let part_size = PART_SIZE.max(req.size.div_ceil(10_000));
        let count = req.size.div_ceil(part_size) as i32;
        let mp = state.storage.create_multipart(&key, &ct).await?;
        let mut parts = Vec::with_capacity(count as usize);
        let mut expires_at = now;
        for n in 1..=count {
            let r = state.storage.presign_part(&mp, n, PART_URL_TTL).await?;
            expires_at = r.expires_at;
            parts.push(PartUrl { part_number: n, url: r.url });
        }
        (parts, Some(part_size), None, vec![], expires_at, Some((mp.upload_id, part_size as i64, count)))
    } else {
        let r = state
            .storage
            .presign_put(
                &key,
                &PresignPut { expires_in: SINGLE_URL_TTL, content_type: ct.clone(), content_length: Some(req.size) },
            )
            .await?;
        let headers = r.headers.iter().map(|(n, v)| HeaderBody { name: n.clone(), value: v.clone() }).collect();
        (vec![], None, Some(r.url), headers, r.expires_at, None)
    };
    let upload_id = UploadId::new();
    let mut tx = state.pool.begin().await?;
    // No fsync on this request's path (it dominated the p99): a crash may
    // lose an upload created in the last moments before it, and then the
    // client's PUT or complete gets `upload_not_found` and it starts over.
    // Nothing else is lost: no object is written before the client's PUT.
    sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
    db::insert_video(
        &mut *tx,
        p.org_id,
        &NewVideo {
            id: video_id,
            title: title_from(&req.file_name),
            status: VideoStatus::Uploading,
            source_key: Some(key.clone()),
            content_type: Some(ct.clone()),
            size_bytes: Some(req.size as i64),
            created_by: Some(p.user_id),
        },
    )
    .await?;
    db::insert_upload(
        &mut *tx,
        p.org_id,
        &NewUpload {
            id: upload_id,
            video_id,
            key,
            file_name: req.file_name.clone(),
            content_type: ct,
            expected_size: req.size as i64,
            multipart: multipart_record,
            expires_at: now + UPLOAD_TTL,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(UploadPlan {
        upload_id: upload_id.to_string(),
        video_id: video_id.to_string(),
        method: if multipart { UploadMethod::Multipart } else { UploadMethod::Single },
        url,
        headers,
        part_size,
        parts: plan_parts,
        expires_at,
    })
}
