//! Request and response bodies (camelCase JSON).

use poem_openapi::{Enum, Object};
use time::OffsetDateTime;
use videdit_core::db::VideoSummary;
use videdit_core::{Short, Video};

/// Start an upload.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct CreateUpload {
    /// The file's name (used for the title and the extension); no control
    /// or bidirectional-override characters.
    #[oai(validator(min_length = 1, max_length = 255))]
    pub file_name: String,
    /// `video/*` or `audio/*` (a media type, parameters allowed).
    #[oai(validator(min_length = 7, max_length = 127, pattern = r"^(video|audio)/[!-~]+( *;[ -~]*)?$"))]
    pub content_type: String,
    /// Exact size in bytes (at most 1 TiB; the organisation's limit is lower).
    #[oai(validator(minimum(value = "1"), maximum(value = "1099511627776")))]
    pub size: u64,
    /// The source's duration in seconds, when the client knows it: an
    /// upload over the plan's longest source or the period's remaining
    /// minutes is refused at once (402) instead of after it was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[oai(validator(minimum(value = "0", exclusive = true)))]
    pub duration_seconds: Option<f64>,
}

/// How to upload.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum UploadMethod {
    /// One `PUT` of the whole file to `url`.
    Single,
    /// `PUT` each part to its URL, then complete with the parts' ETags.
    Multipart,
}

/// A header the client must send.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
#[oai(skip_serializing_if_is_none)]
pub struct Header {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// One part's upload URL.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct PartUrl {
    /// 1-based.
    pub part_number: i32,
    /// Where to `PUT` it.
    pub url: String,
}

/// Where and how to upload the file.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct UploadPlan {
    /// The upload (complete or abort it with this id).
    pub upload_id: String,
    /// The video being created.
    pub video_id: String,
    /// Single PUT or multipart.
    pub method: UploadMethod,
    /// For `single`: where to PUT the file.
    #[oai(skip_serializing_if_is_none)]
    pub url: Option<String>,
    /// Headers to send with every PUT.
    pub headers: Vec<Header>,
    /// For `multipart`: size of every part but the last (which has the
    /// rest). Each part URL accepts exactly its part's size.
    #[oai(skip_serializing_if_is_none)]
    pub part_size: Option<u64>,
    /// For `multipart`: one URL per part.
    pub parts: Vec<PartUrl>,
    /// When the URLs stop working.
    pub expires_at: OffsetDateTime,
}

/// A part's ETag as the storage answered its PUT.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct CompletedPartBody {
    /// 1-based.
    pub part_number: i32,
    /// The `ETag` response header.
    #[oai(validator(min_length = 1, max_length = 256))]
    pub etag: String,
}

/// Finish an upload.
#[derive(Debug, Clone, Object, Default, serde::Serialize)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct CompleteUpload {
    /// For multipart uploads: every part, ascending.
    #[oai(default)]
    pub parts: Vec<CompletedPartBody>,
}

/// Processing status of a video.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum VideoState {
    /// Waiting for the upload.
    Uploading,
    /// Uploaded, waiting for processing.
    Uploaded,
    /// A stage is running.
    Processing,
    /// Shorts are ready.
    Ready,
    /// Processing failed; see `failureReason`.
    Failed,
}

/// A video.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct VideoBody {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Status.
    pub status: VideoState,
    /// The running stage while processing (`ingesting`, `transcribing`, `analyzing`, `rendering`).
    #[oai(skip_serializing_if_is_none)]
    pub stage: Option<String>,
    /// Why it failed, in words a person understands.
    #[oai(skip_serializing_if_is_none)]
    pub failure_reason: Option<String>,
    /// The stable error code of the failure (`invalid_media`, `no_audio_stream`, …).
    #[oai(skip_serializing_if_is_none)]
    pub failure_code: Option<String>,
    /// Duration in seconds, once known.
    #[oai(skip_serializing_if_is_none)]
    pub duration_seconds: Option<f64>,
    /// Size in bytes.
    #[oai(skip_serializing_if_is_none)]
    pub size_bytes: Option<i64>,
    /// Number of shorts.
    pub shorts_count: i64,
    /// Whether a transcript exists.
    pub has_transcription: bool,
    /// `getVideo` only: a presigned GET of the uploaded source (to play it
    /// beside its transcript), valid an hour.
    #[oai(skip_serializing_if_is_none)]
    pub source_url: Option<String>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
}

impl VideoBody {
    /// From a stored video and its counts.
    pub fn new(v: &Video, shorts_count: i64, has_transcription: bool) -> Self {
        let status = match v.status.state() {
            "uploading" => VideoState::Uploading,
            "uploaded" => VideoState::Uploaded,
            "processing" => VideoState::Processing,
            "ready" => VideoState::Ready,
            _ => VideoState::Failed,
        };
        Self {
            id: v.id.to_string(),
            title: v.title.clone(),
            status,
            stage: v.status.stage().map(|s| s.as_str().to_owned()),
            failure_reason: v.status.failure_reason().map(str::to_owned),
            failure_code: v.failure_code.map(|c| c.as_str().to_owned()),
            duration_seconds: v.duration_seconds,
            size_bytes: v.size_bytes,
            shorts_count,
            has_transcription,
            source_url: None,
            created_at: v.created_at,
            updated_at: v.updated_at,
        }
    }
}

impl From<&VideoSummary> for VideoBody {
    fn from(s: &VideoSummary) -> Self {
        Self::new(&s.video, s.shorts_count, s.has_transcription)
    }
}

/// A page of videos.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct VideoPage {
    /// Newest first.
    pub items: Vec<VideoBody>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

/// Rename a video.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RenameVideo {
    /// The new title; no control or bidirectional-override characters.
    #[oai(validator(min_length = 1, max_length = 300))]
    pub title: String,
}

/// Explainable parts of a short's score, each 0..1.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
#[oai(skip_serializing_if_is_none)]
pub struct SubScoresBody {
    /// Opening hook.
    pub hook: f32,
    /// Starts and ends on complete thoughts.
    pub completeness: f32,
    /// Topic coherence.
    pub coherence: f32,
    /// Keyword salience.
    pub salience: f32,
    /// Delivery (pace, pauses, loudness).
    pub delivery: f32,
    /// Absence of filler words.
    pub filler: f32,
}

/// A short.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct ShortBody {
    /// Id.
    pub id: String,
    /// The source video.
    pub video_id: String,
    /// 1 is the best.
    pub rank: i32,
    /// 0..100.
    pub score: f32,
    /// The parts of the score.
    pub sub_scores: SubScoresBody,
    /// Why it was picked.
    pub reason: String,
    /// Suggested title.
    pub title: String,
    /// Start in source seconds.
    pub start_seconds: f64,
    /// End in source seconds.
    pub end_seconds: f64,
    /// `pending`, `rendering`, `ready` or `failed`.
    pub status: String,
    /// Presigned download URL of the MP4, when ready.
    #[oai(skip_serializing_if_is_none)]
    pub video_url: Option<String>,
    /// Presigned URL of the JPEG thumbnail, when ready.
    #[oai(skip_serializing_if_is_none)]
    pub thumbnail_url: Option<String>,
}

impl ShortBody {
    /// From a stored short and its URLs.
    pub fn new(s: &Short, video_url: Option<String>, thumbnail_url: Option<String>) -> Self {
        let ss = s.sub_scores;
        Self {
            id: s.id.to_string(),
            video_id: s.video_id.to_string(),
            rank: s.rank,
            score: s.score,
            sub_scores: SubScoresBody {
                hook: ss.hook,
                completeness: ss.completeness,
                coherence: ss.coherence,
                salience: ss.salience,
                delivery: ss.delivery,
                filler: ss.filler,
            },
            reason: s.reason.clone(),
            title: s.title.clone(),
            start_seconds: s.range.start(),
            end_seconds: s.range.end(),
            status: s.status.as_str().to_owned(),
            video_url,
            thumbnail_url,
        }
    }
}
