//! The REST API under `/api/v1`.

pub mod billing;
mod bodies;
mod connections;
pub mod error;
mod events;
mod idempotency;
mod jobs;
mod organization;
mod publications;
mod recipes;
mod uploads;
mod videos;
mod webhooks;

use std::sync::Arc;

use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::{SecurityScheme, Tags};
use videdit_core::ErrorCode;

use crate::app::AppState;
use crate::auth::{Action, AuthFailure, Principal};

pub use error::{ApiError, ApiResult, ErrorBody};

/// The API's operation groups.
#[derive(Tags)]
pub enum ApiTags {
    /// Uploading source videos.
    Uploads,
    /// Videos and their transcripts.
    Videos,
    /// Shorts cut from videos.
    Shorts,
    /// Processing jobs.
    Jobs,
    /// Domain events (polling instead of webhooks).
    Events,
    /// Outbound webhooks (admins).
    Webhooks,
    /// Plans, usage, checkout and the customer portal.
    Billing,
    /// Connected platform accounts (publishing).
    Connections,
    /// Shorts published to connected accounts, now or on a schedule.
    Publications,
    /// The organisation's own settings (admins change them).
    Organization,
}

/// Declares the operation groups once: the `Api` type and its constructor.
macro_rules! operation_groups {
    ($($group:path),* $(,)?) => {
        /// All API operations.
        pub type Api = ($($group,)*);

        /// Builds the API.
        #[must_use]
        pub fn api() -> Api {
            ($($group,)*)
        }
    };
}

operation_groups!(
    uploads::UploadsApi,
    videos::VideosApi,
    jobs::JobsApi,
    recipes::RecipesApi,
    events::EventsApi,
    webhooks::WebhooksApi,
    billing::BillingApi,
    connections::ConnectionsApi,
    publications::PublicationsApi,
    organization::OrganizationApi,
);

/// A refusal raised by the security checker, rendered as `{code, message}`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    code: ErrorCode,
    message: String,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u64>,
}

impl Rejection {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry_after: None }
    }
}

impl poem::error::ResponseError for Rejection {
    fn status(&self) -> poem::http::StatusCode {
        poem::http::StatusCode::from_u16(self.code.http_status()).unwrap_or(poem::http::StatusCode::UNAUTHORIZED)
    }

    fn as_response(&self) -> poem::Response {
        let mut resp = error::error_response(self.code, &self.message);
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert("retry-after", secs.into());
        }
        resp
    }
}

/// A Clerk session token: `Authorization: Bearer <jwt>`.
// Once checked, it is the caller and the app state the request runs against.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "authenticate")]
pub struct BearerAuth(pub Caller);

/// An authenticated caller and the app state.
#[derive(Clone)]
pub struct Caller {
    /// Who calls, in which organisation, with which role.
    pub principal: Principal,
    /// The app.
    pub state: Arc<AppState>,
}

impl BearerAuth {
    /// The caller and the state, when the caller's role may do `action`.
    ///
    /// # Errors
    /// 403 `forbidden` naming the action.
    pub fn may(self, action: Action) -> ApiResult<(Principal, Arc<AppState>)> {
        self.0.principal.require(action)?;
        Ok(self.parts())
    }

    /// The caller and the state, for a handler that checks the role itself
    /// after the resource's existence (another organisation's id is a 404,
    /// not a 403).
    #[must_use]
    pub fn parts(self) -> (Principal, Arc<AppState>) {
        (self.0.principal, self.0.state)
    }
}

async fn authenticate(req: &Request, bearer: Bearer) -> poem::Result<Caller> {
    let state = req.data::<Arc<AppState>>().expect("the app state is attached to every request");
    let principal = match state.auth.authenticate(&state.pool, Some(&bearer.token)).await {
        Ok(p) => p,
        Err(AuthFailure::Auth(e)) => {
            tracing::info!(error = %e, "authentication failed");
            return Err(Rejection::new(e.code(), e.to_string()).into());
        }
        Err(AuthFailure::Db(e)) => {
            tracing::error!(error = %e, "recording the caller failed");
            return Err(Rejection::new(ErrorCode::DatabaseUnavailable, "database unavailable").into());
        }
    };
    if let Err(wait) = state.rate_limiter.check(principal.user_id) {
        let secs = crate::admission::retry_after_secs(wait);
        let mut r = Rejection::new(ErrorCode::RateLimited, format!("too many requests; retry in {secs} s"));
        r.retry_after = Some(secs);
        return Err(r.into());
    }
    Ok(Caller { principal, state: state.clone() })
}
