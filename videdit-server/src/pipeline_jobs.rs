//! The video pipeline's jobs on the queue: what each stage enqueues, and
//! the tenant check for jobs seen through the API.

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use videdit_core::{JobKind, OrgId, ShortId, VideoId};
use videdit_queue::JobSpec;

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
    /// Stage options (analysis settings, render overrides).
    #[serde(default)]
    pub options: serde_json::Value,
}

/// The queue that CPU-heavy media jobs run on.
pub const MEDIA_QUEUE: &str = "media";
/// The queue of housekeeping jobs.
pub const MAINTENANCE_QUEUE: &str = "maintenance";

/// Enqueues a pipeline stage in the caller's transaction. Ingest, transcribe
/// and analyze are unique per video (a second request returns the live job);
/// render is unique per short.
///
/// # Errors
/// Database failures.
pub async fn enqueue_stage(
    conn: &mut PgConnection,
    kind: JobKind,
    job: &VideoJob,
) -> videdit_queue::Result<uuid::Uuid> {
    let subject = job.short_id.map_or_else(|| job.video_id.to_string(), |s| s.to_string());
    let queue = if kind == JobKind::Delete { MAINTENANCE_QUEUE } else { MEDIA_QUEUE };
    let spec = JobSpec::new(kind.as_str(), job)?
        .queue(queue)
        .unique_key(format!("{}:{subject}", kind.as_str()))
        .metadata(serde_json::json!({
            "orgId": job.org_id,
            "videoId": job.video_id,
            "kind": kind.as_str(),
        }));
    videdit_queue::enqueue(conn, &spec).await
}

/// Whether a job (by its metadata) belongs to the organisation.
#[must_use]
pub fn belongs_to(metadata: &serde_json::Value, org: OrgId) -> bool {
    metadata.get("orgId").and_then(|v| v.as_str()) == Some(org.to_string().as_str())
}
