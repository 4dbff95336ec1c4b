//! Uploads: presigned PUT or multipart, completion, abort.

use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use videdit_core::storage::CompletedPart;
use videdit_core::{ErrorCode, UploadId};
use videdit_service::uploads;

use super::bodies::{CompleteUpload, CreateUpload, Header as HeaderBody, PartUrl, UploadMethod, UploadPlan, VideoBody};
use super::error::{ApiError, ApiResult};
use super::idempotency::idempotent;
use super::{ApiTags, BearerAuth};
use crate::app::AppState;
use crate::auth::Action;

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

#[OpenApi(prefix_path = "/uploads", tag = "ApiTags::Uploads")]
impl UploadsApi {
    /// Start an upload
    ///
    /// Creates a video and returns where to upload its file: one presigned
    /// `PUT` URL, or above 100 MiB a multipart plan with one presigned URL per
    /// part. URLs expire; the upload is abandoned after 24 h if never
    /// completed. Send an `Idempotency-Key` header to make retries safe.
    /// Refused with 402 (`plan_limit_exceeded`, `quota_exceeded`) when the
    /// size, the declared duration or the organisation's stored bytes are
    /// over its plan, or no minutes remain this period.
    #[oai(path = "/", method = "post", operation_id = "createUpload")]
    async fn create(
        &self,
        auth: BearerAuth,
        body: Json<CreateUpload>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
    ) -> ApiResult<Created> {
        let (p, state) = auth.may(Action::Upload)?;
        let req = body.0;
        let plan = idempotent(&state, p, idempotency_key.0.as_deref(), "createUpload", &req, async {
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
        id: Path<String>,
        body: Json<CompleteUpload>,
    ) -> ApiResult<Json<VideoBody>> {
        let (p, state) = auth.may(Action::Upload)?;
        let id: UploadId = parse_id(&id.0, ErrorCode::UploadNotFound)?;
        let parts: Vec<CompletedPart> =
            body.0.parts.iter().map(|p| CompletedPart { part_number: p.part_number, etag: p.etag.clone() }).collect();
        let video = uploads::complete(&state.pool, state.storage.as_ref(), p.org_id, id, &parts).await?;
        Ok(Json(VideoBody::new(&video, 0, false)))
    }

    /// Abort an upload
    ///
    /// Abandons an upload that was not completed: frees its parts and
    /// deletes the video it was creating.
    #[oai(path = "/:id", method = "delete", operation_id = "abortUpload")]
    async fn abort(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<serde_json::Value>> {
        let (p, state) = auth.may(Action::Upload)?;
        let id: UploadId = parse_id(&id.0, ErrorCode::UploadNotFound)?;
        uploads::abort(&state.pool, state.storage.as_ref(), p.org_id, id).await?;
        Ok(Json(serde_json::json!({"aborted": true})))
    }
}

async fn create_plan(state: &AppState, p: crate::auth::Principal, req: &CreateUpload) -> ApiResult<UploadPlan> {
    let limits = uploads::UploadLimits {
        max_upload_bytes: state.limits.max_upload_bytes,
        multipart_threshold: state.limits.multipart_threshold,
    };
    let request = uploads::NewUploadRequest {
        file_name: req.file_name.clone(),
        content_type: req.content_type.clone(),
        size: req.size,
        duration: req.duration_seconds,
    };
    let plan =
        uploads::create(&state.pool, state.storage.as_ref(), &state.billing, limits, p.org_id, p.user_id, &request)
            .await?;
    let (part_size, parts) = match plan.multipart {
        Some((size, parts)) => {
            (Some(size), parts.into_iter().map(|(part_number, url)| PartUrl { part_number, url }).collect())
        }
        None => (None, vec![]),
    };
    Ok(UploadPlan {
        upload_id: plan.upload_id.to_string(),
        video_id: plan.video_id.to_string(),
        method: if part_size.is_some() { UploadMethod::Multipart } else { UploadMethod::Single },
        url: plan.url,
        headers: plan.headers.into_iter().map(|(name, value)| HeaderBody { name, value }).collect(),
        part_size,
        parts,
        expires_at: plan.expires_at,
    })
}
