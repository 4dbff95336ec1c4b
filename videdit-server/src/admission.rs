//! What every request passes before any token is verified or any database
//! work is done: a per-client-address rate limit (everything but
//! `/healthz` and `/metrics`), and for the JSON API a body-size limit.
//! Both answer with `{code, message}`.

use std::net::IpAddr;
use std::time::Duration;

use poem::{Body, Endpoint, IntoResponse, Request, Response};
use videdit_core::ErrorCode;

use crate::api::error::error_response;
use crate::app::AppState;

/// Largest JSON request body of `/api/v1` (uploads go to storage, not here).
pub const MAX_API_BODY: usize = 1024 * 1024;

/// The one body that is not JSON: an organisation's picture.
const PICTURE_PATH: &str = "/organization/audiogram-background";

/// The body limit of a request: [`MAX_API_BODY`], or for a picture sent
/// with a bearer token [`videdit_service::images::MAX_IMAGE_BYTES`] (a
/// request without one is refused with 401 whatever its body, so it is not
/// worth reading more of).
fn body_limit(req: &Request) -> usize {
    let picture = req.method() == poem::http::Method::PUT
        && req.original_uri().path().ends_with(PICTURE_PATH)
        && req.header("authorization").is_some_and(|v| v.len() > "Bearer ".len());
    if picture { videdit_service::images::MAX_IMAGE_BYTES } else { MAX_API_BODY }
}

/// Whole seconds to wait, rounded up and at least 1, as `Retry-After` takes.
#[must_use]
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// A `429 rate_limited` response with its `Retry-After`.
#[must_use]
pub fn too_many_requests(wait: Duration) -> Response {
    let secs = retry_after_secs(wait);
    let mut resp = error_response(ErrorCode::RateLimited, &format!("too many requests; retry in {secs} s"));
    resp.headers_mut().insert("retry-after", secs.into());
    resp
}

/// The client's address: the configured proxy header's first address when
/// set (`CLIENT_IP_HEADER`, e.g. `Fly-Client-IP`, only behind a proxy that
/// sets it), else the peer.
fn client_ip(req: &Request, header: Option<&str>) -> Option<IpAddr> {
    header
        .and_then(|h| req.header(h))
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .or_else(|| req.remote_addr().as_socket_addr().map(std::net::SocketAddr::ip))
}

/// The per-address limit, before anything else is done for the request.
pub async fn rate_limit<E: Endpoint>(state: &AppState, next: E, req: Request) -> poem::Result<Response> {
    let exempt = matches!(req.uri().path(), "/healthz" | "/metrics");
    if !exempt
        && let Some(ip) = client_ip(&req, state.limits.client_ip_header.as_deref())
        && let Err(wait) = state.ip_rate_limiter.check(ip)
    {
        return Ok(too_many_requests(wait));
    }
    next.call(req).await.map(IntoResponse::into_response)
}

/// Refuses an API body over its limit ([`body_limit`]) with `413
/// request_too_large`: at once when `Content-Length` says so, else once
/// that many bytes have been read (a chunked body has no length).
pub async fn limit_body<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    let limit = body_limit(&req);
    let too_large = || error_response(ErrorCode::RequestTooLarge, &format!("a request body has at most {limit} bytes"));
    let declared = req.header("content-length").and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Ok(too_large());
    }
    match req.take_body().into_bytes_limit(limit).await {
        Ok(bytes) => req.set_body(Body::from_bytes(bytes)),
        Err(poem::error::ReadBodyError::PayloadTooLarge) => return Ok(too_large()),
        Err(e) => {
            return Ok(error_response(ErrorCode::InvalidRequest, &format!("the request body could not be read: {e}")));
        }
    }
    next.call(req).await.map(IntoResponse::into_response)
}
