//! Videos, their transcripts and shorts.

use std::time::Duration;

use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Json, PlainText};
use videdit_core::db;
use videdit_core::storage::PresignGet;
use videdit_core::{ErrorCode, Short, ShortId, Transcript, VideoId};

use super::bodies::{RenameVideo, ShortBody, VideoBody, VideoPage};
use super::error::{ApiError, ApiResult};
use super::{ApiTags, BearerAuth};
use crate::app::AppState;
use crate::auth::Action;

/// Download URLs live this long.
const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(3600);

pub struct VideosApi;

/// Transcript formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum TranscriptFormat {
    /// Our JSON transcript with word timings.
    #[default]
    Json,
    /// SubRip.
    Srt,
    /// WebVTT.
    Vtt,
    /// Plain text.
    Txt,
}

/// A transcript in the asked-for format.
#[derive(poem_openapi::ResponseContent)]
pub enum TranscriptBody {
    /// JSON.
    Json(Json<serde_json::Value>),
    /// SRT, VTT or plain text.
    Text(PlainText<String>),
}

/// The transcript response.
#[derive(poem_openapi::ApiResponse)]
pub enum TranscriptResponse {
    /// The transcript.
    #[oai(status = 200)]
    Ok(TranscriptBody),
}

fn video_id(raw: &str) -> ApiResult<VideoId> {
    raw.parse().map_err(|_| ApiError::new(ErrorCode::VideoNotFound, format!("video {raw:?} not found")))
}

fn short_id(raw: &str) -> ApiResult<ShortId> {
    raw.parse().map_err(|_| ApiError::new(ErrorCode::ShortNotFound, format!("short {raw:?} not found")))
}

async fn short_body(state: &AppState, s: &Short) -> ApiResult<ShortBody> {
    let Some(out) = &s.outputs else { return Ok(ShortBody::new(s, None, None)) };
    let name = format!("{:02}-{}.mp4", s.rank, videdit_media::pipeline::slug(&s.title));
    let video = state
        .storage
        .presign_get(&out.video, &PresignGet { expires_in: DOWNLOAD_URL_TTL, download_name: Some(name) })
        .await?;
    let thumb = state
        .storage
        .presign_get(&out.thumbnail, &PresignGet { expires_in: DOWNLOAD_URL_TTL, download_name: None })
        .await?;
    Ok(ShortBody::new(s, Some(video.url), Some(thumb.url)))
}

#[OpenApi(tag = "ApiTags::Videos")]
impl VideosApi {
    /// List videos
    ///
    /// The organization's videos, newest first, with their status, number of
    /// shorts and whether they are transcribed. Paginate with `cursor`.
    #[oai(path = "/videos", method = "get", operation_id = "listVideos")]
    async fn list(
        &self,
        auth: BearerAuth,
        /// `nextCursor` of the previous page.
        #[oai(validator(pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"))]
        cursor: Query<Option<String>>,
        /// Page size, 1..=100.
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<u32>,
    ) -> ApiResult<Json<VideoPage>> {
        let (p, state) = auth.may(Action::Read)?;
        let before = match cursor.0.as_deref() {
            None | Some("") => None,
            Some(c) => Some(c.parse::<VideoId>().map_err(|_| ApiError::invalid(format!("bad cursor {c:?}")))?),
        };
        let page = db::list_videos(&state.pool, p.org_id, before, limit.0).await?;
        Ok(Json(VideoPage {
            items: page.items.iter().map(VideoBody::from).collect(),
            next_cursor: page.next_cursor.map(|c| c.to_string()),
        }))
    }

    /// Get a video
    ///
    /// One video with its status and processing stage.
    #[oai(path = "/videos/:id", method = "get", operation_id = "getVideo")]
    async fn get(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<VideoBody>> {
        let (p, state) = auth.may(Action::Read)?;
        let id = video_id(&id.0)?;
        let v = db::get_video(&state.pool, p.org_id, id).await?;
        let shorts = db::list_shorts(&state.pool, p.org_id, id).await?;
        let has_t = db::has_transcript(&state.pool, p.org_id, id).await?;
        let mut body = VideoBody::new(&v, shorts.len() as i64, has_t);
        if let Some(key) = &v.source_key {
            let signed = state
                .storage
                .presign_get(key, &PresignGet { expires_in: DOWNLOAD_URL_TTL, download_name: None })
                .await?;
            body.source_url = Some(signed.url);
        }
        Ok(Json(body))
    }

    /// Rename a video
    ///
    /// Changes the video's title.
    #[oai(path = "/videos/:id", method = "patch", operation_id = "renameVideo")]
    async fn rename(&self, auth: BearerAuth, id: Path<String>, body: Json<RenameVideo>) -> ApiResult<Json<VideoBody>> {
        let (p, state) = auth.may(Action::Rename)?;
        let id = video_id(&id.0)?;
        let v = videdit_service::videos::rename(&state.pool, p.org_id, id, &body.0.title).await?;
        let shorts = db::list_shorts(&state.pool, p.org_id, id).await?;
        let has_t = db::has_transcript(&state.pool, p.org_id, id).await?;
        Ok(Json(VideoBody::new(&v, shorts.len() as i64, has_t)))
    }

    /// Delete a video
    ///
    /// Deletes the video, its shorts and transcript, and every stored file
    /// of it. Admins only.
    #[oai(path = "/videos/:id", method = "delete", operation_id = "deleteVideo")]
    async fn delete(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<serde_json::Value>> {
        let (p, state) = auth.parts();
        let id = video_id(&id.0)?;
        // Existence first, so another organisation's id is a 404, not a 403.
        db::get_video(&state.pool, p.org_id, id).await?;
        p.require(Action::Delete)?;
        let job_id = videdit_service::videos::delete(&state.pool, p.org_id, id).await?;
        Ok(Json(serde_json::json!({"deleted": true, "cleanupJobId": job_id})))
    }

    /// Get a video's transcript
    ///
    /// The transcript as JSON (segments with word timings), SubRip (`srt`),
    /// WebVTT (`vtt`) or plain text (`txt`).
    #[oai(path = "/videos/:id/transcript", method = "get", operation_id = "getTranscript")]
    async fn transcript(
        &self,
        auth: BearerAuth,
        id: Path<String>,
        /// `json` (default), `srt`, `vtt` or `txt`.
        #[oai(default)]
        format: Query<TranscriptFormat>,
    ) -> ApiResult<TranscriptResponse> {
        let (p, state) = auth.may(Action::Read)?;
        let id = video_id(&id.0)?;
        db::get_video(&state.pool, p.org_id, id).await?;
        let t: Transcript = db::get_transcript(&state.pool, p.org_id, id).await?;
        Ok(TranscriptResponse::Ok(match format.0 {
            TranscriptFormat::Json => {
                TranscriptBody::Json(Json(serde_json::to_value(&t).expect("transcripts serialise")))
            }
            TranscriptFormat::Srt => TranscriptBody::Text(PlainText(t.to_srt())),
            TranscriptFormat::Vtt => TranscriptBody::Text(PlainText(t.to_vtt())),
            TranscriptFormat::Txt => TranscriptBody::Text(PlainText(t.text())),
        }))
    }

    /// List a video's shorts
    ///
    /// Best first, with scores, reasons and, once rendered, presigned
    /// download URLs of the MP4 and its thumbnail.
    #[oai(path = "/videos/:id/shorts", method = "get", operation_id = "listShorts")]
    async fn shorts(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<Vec<ShortBody>>> {
        let (p, state) = auth.may(Action::Read)?;
        let id = video_id(&id.0)?;
        db::get_video(&state.pool, p.org_id, id).await?;
        let mut out = Vec::new();
        for s in db::list_shorts(&state.pool, p.org_id, id).await? {
            out.push(short_body(&state, &s).await?);
        }
        Ok(Json(out))
    }

    /// Get a short
    ///
    /// One short with its scores, reason and download URLs.
    #[oai(path = "/shorts/:id", method = "get", operation_id = "getShort", tag = "ApiTags::Shorts")]
    async fn short(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<ShortBody>> {
        let (p, state) = auth.may(Action::Read)?;
        let s = db::get_short(&state.pool, p.org_id, short_id(&id.0)?).await?;
        Ok(Json(short_body(&state, &s).await?))
    }
}

fn default_limit() -> u32 {
    20
}
