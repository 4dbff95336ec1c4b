//! Processing jobs of a video: start, inspect, list, cancel.

use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use time::OffsetDateTime;
use videdit_core::{ErrorCode, VideoId, db};
use videdit_queue::JobState;
use videdit_queue::admin::{self, JobRecord};
use videdit_service::stages::{self, Stage};

use super::error::{ApiError, ApiResult};
use super::idempotency::idempotent;
use super::{ApiTags, BearerAuth};
use crate::app::AppState;
use crate::auth::Action;
use videdit_service::jobs::belongs_to;

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
    fn stage(self) -> Stage {
        match self {
            Self::Ingest => Stage::Ingest,
            Self::Transcribe => Stage::Transcribe,
            Self::Analyze => Stage::Analyze,
            Self::Render => Stage::Render,
        }
    }
}

/// A failed attempt of a job.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct JobAttemptError {
    /// Which attempt (1-based).
    pub attempt: i32,
    /// The stable error code, when the failure has one (`invalid_media`, …).
    #[oai(skip_serializing_if_is_none)]
    pub code: Option<String>,
    /// What went wrong.
    pub message: String,
}

/// Start a job.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(skip_serializing_if_is_none)]
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
#[oai(skip_serializing_if_is_none)]
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
    pub errors: Vec<JobAttemptError>,
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
                .map(|a| {
                    a.iter()
                        .filter_map(|e| {
                            Some(JobAttemptError {
                                attempt: e.get("attempt").and_then(serde_json::Value::as_i64).unwrap_or(0) as i32,
                                code: e.get("code").and_then(|c| c.as_str()).map(str::to_owned),
                                message: e.get("error")?.as_str()?.to_owned(),
                            })
                        })
                        .collect()
                })
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
        id: Path<String>,
        body: Json<CreateJob>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
    ) -> ApiResult<Created> {
        let (p, state) = auth.parts();
        let video: VideoId =
            id.0.parse().map_err(|_| ApiError::new(ErrorCode::VideoNotFound, format!("video {:?} not found", id.0)))?;
        db::get_video(&state.pool, p.org_id, video).await?;
        p.require(Action::Process)?;
        let req = body.0;
        let options = req.options.clone().unwrap_or(serde_json::json!({}));
        let body = idempotent(&state, p, idempotency_key.0.as_deref(), "createJob", &(&video, &req), async {
            let job_id =
                stages::start(&state.pool, &state.billing, p.org_id, video, req.job_type.stage(), &options).await?;
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
    async fn get(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<JobBody>> {
        let (p, state) = auth.may(Action::Read)?;
        Ok(Json(JobBody::from(&job_of_org(&state, p.org_id, &id.0).await?)))
    }

    /// List a video's jobs
    ///
    /// Every job of the video, newest first.
    #[oai(path = "/videos/:id/jobs", method = "get", operation_id = "listJobs")]
    async fn list(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<Vec<JobBody>>> {
        let (p, state) = auth.may(Action::Read)?;
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
    async fn cancel(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<JobBody>> {
        let (p, state) = auth.parts();
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
