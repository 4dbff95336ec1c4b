//! Processing jobs of a video: start, inspect, list, cancel.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use time::OffsetDateTime;
use videdit_core::{ErrorCode, JobKind, VideoId, db};
use videdit_queue::JobState;
use videdit_queue::admin::{self, JobRecord};

use super::error::{ApiError, ApiResult};
use super::idempotency::idempotent;
use super::{ApiTags, BearerAuth};
use crate::app::AppState;
use crate::auth::Action;
use crate::pipeline_jobs::{VideoJob, belongs_to, enqueue_stage};

/// The stages a client may start.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum JobType {
    /// Probe and validate the source again.
    Ingest,
    /// Transcribe again.
    Transcribe,
    /// Find the best moments again (options: maxShorts, minDuration, maxDuration, keywords).
    Analyze,
    /// Render one short again (options: shortId).
    Render,
}

impl JobType {
    fn kind(self) -> JobKind {
        match self {
            Self::Ingest => JobKind::Ingest,
            Self::Transcribe => JobKind::Transcribe,
            Self::Analyze => JobKind::Analyze,
            Self::Render => JobKind::Render,
        }
    }
}

/// Start a job.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct CreateJob {
    /// What to run.
    #[oai(rename = "type")]
    pub job_type: JobType,
    /// Stage options.
    #[oai(default)]
    pub options: Option<serde_json::Value>,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting to run.
    Queued,
    /// Running.
    Running,
    /// Done.
    Completed,
    /// Failed for good.
    Failed,
    /// Cancelled.
    Cancelled,
}

/// A job.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
pub struct JobBody {
    /// Id.
    pub id: String,
    /// Kind (`ingest`, `transcribe`, `analyze`, `render`, `delete`).
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub job_type: String,
    /// The video.
    pub video_id: String,
    /// Status.
    pub status: JobStatus,
    /// Attempts made.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Last reported progress (`{"stage": "...", "percent": 40}`).
    #[oai(skip_serializing_if_is_none)]
    pub progress: Option<serde_json::Value>,
    /// Errors of failed attempts, oldest first.
    pub errors: Vec<String>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Finished.
    #[oai(skip_serializing_if_is_none)]
    pub finished_at: Option<OffsetDateTime>,
}

impl From<&JobRecord> for JobBody {
    fn from(r: &JobRecord) -> Self {
        let status = match r.state() {
            JobState::Available => JobStatus::Queued,
            JobState::Running => JobStatus::Running,
            JobState::Completed => JobStatus::Completed,
            JobState::Dead => JobStatus::Failed,
            JobState::Cancelled => JobStatus::Cancelled,
        };
        Self {
            id: r.id.to_string(),
            job_type: r.kind.clone(),
            video_id: r.metadata.get("videoId").and_then(|v| v.as_str()).unwrap_or_default().to_owned(),
            status,
            attempt: r.attempt,
            max_attempts: r.max_attempts,
            progress: r.progress.clone(),
            errors: r
                .errors
                .as_array()
                .map(|a| a.iter().filter_map(|e| e.get("error").and_then(|m| m.as_str()).map(str::to_owned)).collect())
                .unwrap_or_default(),
            created_at: r.created_at,
            finished_at: r.finished_at,
        }
    }
}

#[derive(ApiResponse)]
enum Created {
    /// The job.
    #[oai(status = 201)]
    Created(Json<JobBody>),
}

pub struct JobsApi;

fn not_found(raw: &str) -> ApiError {
    ApiError::new(ErrorCode::JobNotFound, format!("job {raw:?} not found"))
}

async fn job_of_org(state: &AppState, org: videdit_core::OrgId, raw: &str) -> ApiResult<JobRecord> {
    let id: uuid::Uuid = raw.parse().map_err(|_| not_found(raw))?;
    match admin::get_job(&state.pool, id).await {
        Ok(r) if belongs_to(&r.metadata, org) => Ok(r),
        Ok(_) | Err(videdit_queue::Error::NotFound(_)) => Err(not_found(raw)),
        Err(e) => Err(queue_error(e)),
    }
}

pub(crate) fn queue_error(e: videdit_queue::Error) -> ApiError {
    tracing::error!(error = %e, "queue operation failed");
    ApiError::new(ErrorCode::DatabaseUnavailable, "the job queue is unavailable; retry later")
}

#[OpenApi(tag = "ApiTags::Jobs")]
impl JobsApi {
    /// Start a job on a video
    ///
    /// Re-runs a stage: `analyze` with other options, `render` one short
    /// again, and so on. A stage that is already queued or running for the
    /// video is returned instead of a duplicate. Send an `Idempotency-Key`
    /// to make retries safe.
    #[oai(path = "/videos/:id/jobs", method = "post", operation_id = "createJob")]
    async fn create(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        id: Path<String>,
        body: Json<CreateJob>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
    ) -> ApiResult<Created> {
        let p = auth.0;
        let video: VideoId =
            id.0.parse().map_err(|_| ApiError::new(ErrorCode::VideoNotFound, format!("video {:?} not found", id.0)))?;
        db::get_video(&state.pool, p.org_id, video).await?;
        p.require(Action::Process)?;
        let req = body.0;
        let options = req.options.clone().unwrap_or(serde_json::json!({}));
        if !options.is_object() {
            return Err(ApiError::invalid("options must be a JSON object"));
        }
        let short_id = match req.job_type {
            JobType::Render => {
                let raw = options
                    .get("shortId")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| ApiError::invalid("render needs options.shortId"))?;
                let sid = raw
                    .parse()
                    .map_err(|_| ApiError::new(ErrorCode::ShortNotFound, format!("short {raw:?} not found")))?;
                let short = db::get_short(&state.pool, p.org_id, sid).await?;
                if short.video_id != video {
                    return Err(ApiError::new(ErrorCode::ShortNotFound, format!("short {raw:?} not found")));
                }
                Some(sid)
            }
            JobType::Analyze => {
                // Bad analysis options are the caller's to fix: refuse them now, not in the worker.
                let parsed: crate::media_jobs::AnalyzeJobOptions =
                    serde_json::from_value(options.clone()).map_err(|e| ApiError::invalid(format!("options: {e}")))?;
                parsed.validate().map_err(|e| ApiError::invalid(format!("options: {e}")))?;
                None
            }
            _ => None,
        };
        let body = idempotent(&state, p.org_id, idempotency_key.0.as_deref(), "createJob", &(&video, &req), async {
            let job = VideoJob { org_id: p.org_id, video_id: video, short_id, options };
            let mut conn = state.pool.acquire().await?;
            let job_id = enqueue_stage(&mut conn, req.job_type.kind(), &job).await.map_err(queue_error)?;
            let rec = admin::get_job(&state.pool, job_id).await.map_err(queue_error)?;
            Ok(JobBody::from(&rec))
        })
        .await?;
        Ok(Created::Created(Json(body)))
    }

    /// Get a job
    ///
    /// A job's status, progress and errors.
    #[oai(path = "/jobs/:id", method = "get", operation_id = "getJob")]
    async fn get(&self, auth: BearerAuth, state: Data<&Arc<AppState>>, id: Path<String>) -> ApiResult<Json<JobBody>> {
        let p = auth.0;
        p.require(Action::Read)?;
        Ok(Json(JobBody::from(&job_of_org(&state, p.org_id, &id.0).await?)))
    }

    /// List a video's jobs
    ///
    /// Every job of the video, newest first.
    #[oai(path = "/videos/:id/jobs", method = "get", operation_id = "listJobs")]
    async fn list(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        id: Path<String>,
    ) -> ApiResult<Json<Vec<JobBody>>> {
        let p = auth.0;
        p.require(Action::Read)?;
        let video: VideoId =
            id.0.parse().map_err(|_| ApiError::new(ErrorCode::VideoNotFound, format!("video {:?} not found", id.0)))?;
        db::get_video(&state.pool, p.org_id, video).await?;
        let filter = serde_json::json!({"orgId": p.org_id, "videoId": video});
        let jobs = admin::find_jobs(&state.pool, &filter, 200).await.map_err(queue_error)?;
        Ok(Json(jobs.iter().map(JobBody::from).collect()))
    }

    /// Cancel a job
    ///
    /// A queued job is cancelled at once; a running one is told to stop and
    /// ends as cancelled within seconds. Admins only.
    #[oai(path = "/jobs/:id/cancel", method = "post", operation_id = "cancelJob")]
    async fn cancel(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        id: Path<String>,
    ) -> ApiResult<Json<JobBody>> {
        let p = auth.0;
        let rec = job_of_org(&state, p.org_id, &id.0).await?;
        p.require(Action::CancelJob)?;
        if videdit_queue::cancel(&state.pool, rec.id).await.map_err(queue_error)?
            == videdit_queue::CancelOutcome::NotLive
        {
            return Err(ApiError::new(ErrorCode::InvalidState, "the job has already finished"));
        }
        Ok(Json(JobBody::from(&admin::get_job(&state.pool, rec.id).await.map_err(queue_error)?)))
    }
}
