//! The pipeline's jobs on the queue: their payload, their queues, and how
//! a stage is enqueued (always inside the caller's transaction).

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::OffsetDateTime;
use videdit_core::recipe::{Aspect, CaptionStyle, Reframe};
use videdit_core::{JobKind, OrgId, ShortId, TimeRange, VideoId};
use videdit_media::analyze::{AnalyzeError, AnalyzeOptions};
use videdit_media::pipeline::PipelineOptions;
use videdit_queue::JobSpec;

use crate::error::Result;

/// The payload of every pipeline job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VideoJob {
    /// The organisation (every handler scopes its queries by it).
    pub org_id: OrgId,
    /// The video.
    pub video_id: VideoId,
    /// The short, for render jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_id: Option<ShortId>,
    /// Stage options (analysis settings).
    #[serde(default)]
    pub options: serde_json::Value,
}

impl VideoJob {
    /// A job for a whole video, without options.
    #[must_use]
    pub fn video(org_id: OrgId, video_id: VideoId) -> Self {
        Self { org_id, video_id, short_id: None, options: serde_json::json!({}) }
    }

    /// A job for one short.
    #[must_use]
    pub fn short(org_id: OrgId, video_id: VideoId, short_id: ShortId) -> Self {
        Self { org_id, video_id, short_id: Some(short_id), options: serde_json::json!({}) }
    }
}

/// The queue that CPU-heavy media jobs run on.
pub const MEDIA_QUEUE: &str = "media";
/// The queue of housekeeping jobs.
pub const MAINTENANCE_QUEUE: &str = "maintenance";
/// The queue of webhook deliveries (light, many at once).
pub const WEBHOOK_QUEUE: &str = "webhooks";

/// Enqueues a pipeline stage in the caller's transaction. Ingest, transcribe
/// and analyze are unique per video (a second request returns the live
/// job); render is unique per short.
///
/// # Errors
/// Database failures.
pub async fn enqueue_stage(conn: &mut PgConnection, kind: JobKind, job: &VideoJob) -> Result<uuid::Uuid> {
    enqueue_stage_at(conn, kind, job, None).await
}

/// [`enqueue_stage`] to run at `at` (a delayed second pass).
///
/// # Errors
/// Database failures.
pub async fn enqueue_stage_at(
    conn: &mut PgConnection,
    kind: JobKind,
    job: &VideoJob,
    at: Option<OffsetDateTime>,
) -> Result<uuid::Uuid> {
    let subject = job.short_id.map_or_else(|| job.video_id.to_string(), |s| s.to_string());
    let queue = if kind == JobKind::Delete { MAINTENANCE_QUEUE } else { MEDIA_QUEUE };
    let unique = match at {
        Some(_) => format!("{}:{subject}:later", kind.as_str()),
        None => format!("{}:{subject}", kind.as_str()),
    };
    // Grouped by organisation, so a worker with fair sharing takes from
    // each organisation in turn.
    let mut spec =
        JobSpec::new(kind.as_str(), job)?.queue(queue).unique_key(unique).group(job.org_id.to_string()).metadata(
            serde_json::json!({
                "orgId": job.org_id,
                "videoId": job.video_id,
                "kind": kind.as_str(),
            }),
        );
    if let Some(at) = at {
        spec = spec.run_at(at);
    }
    Ok(videdit_queue::enqueue(conn, &spec).await?)
}

/// Whether a job (by its metadata) belongs to the organisation.
#[must_use]
pub fn belongs_to(metadata: &serde_json::Value, org: OrgId) -> bool {
    metadata.get("orgId").and_then(|v| v.as_str()) == Some(org.to_string().as_str())
}

/// Options of an `analyze` request (all optional, camelCase in the API).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct AnalyzeJobOptions {
    /// How many shorts at most.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_shorts: Option<usize>,
    /// Shortest short, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_duration: Option<f64>,
    /// Longest short, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<f64>,
    /// Only search this part of the video.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_range: Option<TimeRange>,
    /// Words to favour.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    /// Output frame shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aspect: Option<Aspect>,
    /// Reframing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reframe: Option<Reframe>,
    /// Caption style.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption_style: Option<CaptionStyle>,
}

impl AnalyzeJobOptions {
    /// Parses and checks options as the analysis will see them.
    ///
    /// # Errors
    /// `invalid_request` naming the first bad option.
    pub fn parse(options: &serde_json::Value) -> Result<Self> {
        let parsed: Self =
            serde_json::from_value(options.clone()).map_err(|e| crate::Error::invalid(format!("options: {e}")))?;
        parsed.validate().map_err(|e| crate::Error::invalid(format!("options: {e}")))?;
        Ok(parsed)
    }

    /// Checks the options as the analysis will see them.
    ///
    /// # Errors
    /// The first option out of range.
    pub fn validate(&self) -> std::result::Result<(), AnalyzeError> {
        self.pipeline_options().analyze.validate()
    }

    /// The pipeline's options with these applied over the defaults.
    #[must_use]
    pub fn pipeline_options(&self) -> PipelineOptions {
        let d = AnalyzeOptions::default();
        PipelineOptions {
            analyze: AnalyzeOptions {
                max_shorts: self.max_shorts.unwrap_or(d.max_shorts),
                min_duration: self.min_duration.unwrap_or(d.min_duration),
                max_duration: self.max_duration.unwrap_or(d.max_duration),
                search_range: self.search_range,
                keywords: self.keywords.clone(),
            },
            aspect: self.aspect.unwrap_or_default(),
            reframe: self.reframe.clone().unwrap_or_default(),
            caption_style: self.caption_style.unwrap_or_default(),
            ..PipelineOptions::default()
        }
    }
}
