//! The HTTP application: state, middleware, routes.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route};
use poem_openapi::OpenApiService;
use sqlx::PgPool;
use videdit_core::ErrorCode;
use videdit_core::storage::{LocalStorage, Storage};

use crate::api::error::error_response;
use crate::auth::Authenticator;
use crate::rate_limit::RateLimiter;
use crate::settings::Limits;

/// Everything a request handler needs.
pub struct AppState {
    /// The database.
    pub pool: PgPool,
    /// Object storage.
    pub storage: Arc<dyn Storage>,
    /// The local backend, when storage is local (its signed URLs are served
    /// by this server).
    pub local: Option<LocalStorage>,
    /// Authentication.
    pub auth: Authenticator,
    /// Limits.
    pub limits: Limits,
    /// Per-user request rate limit.
    pub rate_limiter: RateLimiter,
    /// Per-client-address rate limit, before authentication.
    pub ip_rate_limiter: RateLimiter<std::net::IpAddr>,
    /// HTTP metrics.
    pub http_metrics: crate::metrics::HttpMetrics,
    /// Bearer token for `/metrics` (`METRICS_TOKEN`); `None`: loopback only.
    pub metrics_token: Option<videdit_core::Secret<String>>,
    /// Which webhook URLs are accepted (`WEBHOOKS_ALLOW_LOOPBACK`).
    pub webhook_policy: videdit_webhooks::UrlPolicy,
    /// Seals secrets stored in the database (`ENCRYPTION_KEYS`).
    pub keyring: Arc<videdit_core::sealed::Keyring>,
    /// Plans and the grace period (`PLANS_FILE`, `BILLING_GRACE_HOURS`).
    pub billing: Arc<videdit_service::billing::Billing>,
    /// Stripe's API, when billing is configured.
    pub payments: Option<Arc<dyn videdit_service::billing::PaymentProvider>>,
    /// Verifies Stripe's webhook events, when billing is configured.
    pub stripe_webhook: Option<crate::billing::StripeWebhook>,
    /// `STRIPE_PUBLISHABLE_KEY`, shown to the web app.
    pub stripe_publishable_key: Option<String>,
    /// Clerk's publishable key, for the web app's sign-in (`CLERK_PUBLISHABLE_KEY`).
    pub clerk_publishable_key: Option<String>,
    /// The platform clients configured (`YOUTUBE_*`, `TIKTOK_*`, `INSTAGRAM_*`).
    pub platforms: videdit_service::connections::Platforms,
}

/// The OpenAPI service (also used to write the spec).
pub fn api_service(server_url: &str) -> OpenApiService<crate::api::Api, ()> {
    OpenApiService::new(crate::api::api(), "videdit API", env!("CARGO_PKG_VERSION"))
        .description(
            "Turn long videos into ranked, captioned vertical shorts. Authenticate with a Clerk session token \
             (`Authorization: Bearer <jwt>`). Errors are `{code, message}` with stable codes.",
        )
        .server(server_url)
}

/// The whole route tree.
pub fn routes(state: Arc<AppState>, server_url: &str) -> impl Endpoint + use<> {
    let state_for_metrics = state.clone();
    let state_for_admission = state.clone();
    let api = api_service(&format!("{}/api/v1", server_url.trim_end_matches('/')));
    Route::new()
        // Signed by Stripe instead of authenticated; reads its own body.
        .at("/api/v1/billing/stripe-webhook", poem::post(crate::api::billing::stripe_webhook))
        .nest("/api/v1", api.around(crate::admission::limit_body))
        .at("/healthz", poem::get(crate::health::healthz))
        .at("/readyz", poem::get(crate::health::readyz))
        .at("/metrics", poem::get(crate::health::metrics))
        .nest("/storage", crate::storage_routes::routes(state.clone()))
        .nest("/", crate::web::routes())
        .data(state)
        .around(move |next, req| {
            let state = state_for_admission.clone();
            async move { crate::admission::rate_limit(&state, next, req).await }
        })
        .catch_all_error(render_error)
        .around(request_id)
        .around(move |next, req| {
            let state = state_for_metrics.clone();
            async move { crate::metrics::track(next, req, &state.http_metrics).await }
        })
}

/// Turns errors raised outside typed endpoints (routing, auth, parsing)
/// into our `{code, message}` JSON.
async fn render_error(err: poem::Error) -> Response {
    // Typed endpoint errors and checker rejections already are `{code, message}` responses.
    if err.is::<crate::api::Rejection>() || err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    let code = match status {
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthenticated,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::UploadTooLarge,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        s if s.is_client_error() => ErrorCode::InvalidRequest,
        _ => ErrorCode::Internal,
    };
    let message = match code {
        ErrorCode::Unauthenticated => "no bearer token was sent".to_owned(),
        ErrorCode::NotFound => "no such route".to_owned(),
        ErrorCode::MethodNotAllowed => "this route does not take that method".to_owned(),
        ErrorCode::Internal => "internal error".to_owned(),
        _ => err.to_string(),
    };
    error_response(code, &message)
}

/// Gives every request an id (`x-request-id`, kept if the client sent a
/// sane one), puts it in the log span, echoes it in the response and logs
/// the request once it is answered. The log has the path only, never the
/// query string: local storage URLs carry their signature there, and a
/// signed URL in a log is a credential anyone reading the log could use.
async fn request_id<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let id = req
        .header("x-request-id")
        .filter(|v| v.len() <= 64 && v.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'))
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned);
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let path = req.uri().path().to_owned();
    let started = std::time::Instant::now();
    let mut resp = match tracing::Instrument::instrument(next.call(req), span.clone()).await {
        Ok(r) => r.into_response(),
        Err(e) => render_error(e).await,
    };
    span.in_scope(|| {
        tracing::info!(status = resp.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "answered");
    });
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED
        && let Some(allow) = allowed_methods(&path)
        && let Ok(v) = allow.parse()
    {
        // RFC 9110: a 405 names the methods the resource takes.
        resp.headers_mut().insert(poem::http::header::ALLOW, v);
    }
    if let Ok(v) = id.parse() {
        resp.headers_mut().insert("x-request-id", v);
    }
    Ok(resp)
}

/// The methods the API takes at `path` (`/api/v1/...`), from the spec's
/// path templates; `None` for a path the API does not have.
fn allowed_methods(path: &str) -> Option<String> {
    static ROUTES: std::sync::OnceLock<Vec<(Vec<String>, Vec<String>)>> = std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        let spec: serde_json::Value = serde_json::from_str(&crate::openapi_spec()).unwrap_or_default();
        spec["paths"]
            .as_object()
            .map(|paths| {
                paths
                    .iter()
                    .map(|(template, ops)| {
                        let segments = template.trim_matches('/').split('/').map(str::to_owned).collect();
                        let methods =
                            ops.as_object().map(|o| o.keys().map(|m| m.to_uppercase()).collect()).unwrap_or_default();
                        (segments, methods)
                    })
                    .collect()
            })
            .unwrap_or_default()
    });
    let rest = path.strip_prefix("/api/v1")?;
    let asked: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let (_, methods) = routes.iter().find(|(segments, _)| {
        segments.len() == asked.len()
            && segments.iter().zip(&asked).all(|(s, a)| (s.starts_with('{') && s.ends_with('}')) || s == a)
    })?;
    Some(methods.join(", "))
}

/// Opens the configured storage. For local storage, signed URLs point at
/// `PUBLIC_URL` (or `default_public_url`) and are served by this server.
///
/// # Errors
/// When the storage directory or signing key cannot be set up.
pub async fn open_storage(
    config: &videdit_core::config::Config,
    default_public_url: &str,
) -> anyhow::Result<(Arc<dyn Storage>, Option<LocalStorage>)> {
    use videdit_core::config::StorageConfig;
    match config.storage.as_ref() {
        Some(StorageConfig::S3(s3)) => Ok((Arc::new(videdit_core::storage::S3Storage::new(s3)), None)),
        Some(StorageConfig::Local { dir }) => {
            let key = match &config.signing_key {
                Some(k) => k.expose().as_bytes().to_vec(),
                None => LocalStorage::load_or_create_signing_key(dir).await?,
            };
            let base = match &config.public_url {
                Some(u) => u.clone(),
                None => default_public_url.parse()?,
            };
            let signer = videdit_core::storage::UrlSigner::new(key, base)?;
            let local = LocalStorage::open(dir, Some(signer)).await?;
            Ok((Arc::new(local.clone()), Some(local)))
        }
        None => anyhow::bail!("no storage is configured"),
    }
}
