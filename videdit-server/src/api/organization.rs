//! The organisation's own settings: the picture behind its audiograms.

use std::time::Duration;

use poem::Request;
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};
use time::OffsetDateTime;
use videdit_core::ErrorCode;
use videdit_core::storage::{ObjectKey, PresignGet};
use videdit_service::images::{self, ImageKind, OrgImage};

use super::error::{ApiError, ApiResult};
use super::{ApiTags, BearerAuth};
use crate::app::AppState;
use crate::auth::Action;

/// Preview URLs live this long.
const PREVIEW_URL_TTL: Duration = Duration::from_secs(3600);

pub struct OrganizationApi;

/// A picture of the organisation.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct PictureBody {
    /// `image/png` or `image/jpeg`.
    pub content_type: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// Width in pixels.
    pub width: i32,
    /// Height in pixels.
    pub height: i32,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// When it was set.
    pub updated_at: OffsetDateTime,
    /// A presigned URL to see it (expires after an hour).
    pub url: String,
}

async fn body(state: &AppState, image: &OrgImage) -> ApiResult<PictureBody> {
    let key =
        ObjectKey::parse(image.object_key.clone()).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let url =
        state.storage.presign_get(&key, &PresignGet { expires_in: PREVIEW_URL_TTL, download_name: None }).await?.url;
    Ok(PictureBody {
        content_type: image.content_type.clone(),
        size_bytes: image.size_bytes,
        width: image.width,
        height: image.height,
        sha256: image.sha256.clone(),
        updated_at: image.updated_at,
        url,
    })
}

#[derive(ApiResponse)]
enum Removed {
    /// Removed: audiograms fall back to a file's cover art or a plain colour.
    #[oai(status = 204)]
    Removed,
}

#[OpenApi(prefix_path = "/organization", tag = "ApiTags::Organization")]
impl OrganizationApi {
    /// Get the audiogram background
    ///
    /// The picture blurred behind the waveform of every audiogram (the
    /// short of an audio-only source) the organisation renders, in place
    /// of a file's own cover art. 404 `image_not_found` when none is set.
    #[oai(path = "/audiogram-background", method = "get", operation_id = "getAudiogramBackground")]
    async fn get(&self, auth: BearerAuth) -> ApiResult<Json<PictureBody>> {
        let (p, state) = auth.may(Action::Read)?;
        let image = images::get(&state.pool, p.org_id, ImageKind::AudiogramBackground).await?;
        Ok(Json(body(&state, &image).await?))
    }

    /// Set the audiogram background
    ///
    /// Admins only. The body is the picture itself, PNG or JPEG (at most
    /// 8 MiB, each side 16 to 8192 pixels; 1080×1920 fills a 9:16 short),
    /// sent as `image/png`, `image/jpeg` or `application/octet-stream`
    /// (the bytes say which). Replaces the one set before; renders from
    /// now on use it, shorts already rendered keep theirs until they are
    /// rendered again. 422 `invalid_image` for anything else, 400
    /// `content_type_mismatch` when the bytes are not the type they were
    /// sent as.
    #[oai(path = "/audiogram-background", method = "put", operation_id = "setAudiogramBackground")]
    async fn put(&self, auth: BearerAuth, req: &Request, picture: Binary<Vec<u8>>) -> ApiResult<Json<PictureBody>> {
        let (p, state) = auth.may(Action::Manage)?;
        let image = images::put(
            &state.pool,
            state.storage.as_ref(),
            p.org_id,
            ImageKind::AudiogramBackground,
            req.content_type(),
            picture.0,
        )
        .await?;
        Ok(Json(body(&state, &image).await?))
    }

    /// Remove the audiogram background
    ///
    /// Admins only. 404 `image_not_found` when none is set.
    #[oai(path = "/audiogram-background", method = "delete", operation_id = "deleteAudiogramBackground")]
    async fn delete(&self, auth: BearerAuth) -> ApiResult<Removed> {
        let (p, state) = auth.may(Action::Manage)?;
        images::delete(&state.pool, state.storage.as_ref(), p.org_id, ImageKind::AudiogramBackground).await?;
        Ok(Removed::Removed)
    }
}
