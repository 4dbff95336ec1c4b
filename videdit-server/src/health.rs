//! Liveness and readiness.

use std::sync::Arc;
use std::time::Duration;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{IntoResponse, Response, handler};
use videdit_core::Secret;
use videdit_core::storage::ObjectKey;

use crate::app::AppState;

/// Liveness: the process answers.
#[handler]
pub fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database and the storage answer within 2 s each.
#[handler]
pub async fn readyz(Data(state): Data<&Arc<AppState>>) -> Response {
    let db = tokio::time::timeout(Duration::from_secs(2), sqlx::query("SELECT 1").execute(&state.pool)).await;
    let db_ok = matches!(db, Ok(Ok(_)));
    let probe = ObjectKey::parse("health/readyz-probe").expect("a valid key");
    let storage = tokio::time::timeout(Duration::from_secs(2), state.storage.head(&probe)).await;
    let storage_ok = matches!(storage, Ok(Ok(_)));
    let body = serde_json::json!({"database": db_ok, "storage": storage_ok});
    let status = if db_ok && storage_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    poem::web::Json(body).with_status(status).into_response()
}

/// Prometheus metrics (text format): HTTP figures and queue figures.
///
/// Not public: with `METRICS_TOKEN` set, a scraper sends it as a bearer
/// token; without it, only loopback peers are answered.
#[handler]
pub async fn metrics(req: &poem::Request, Data(state): Data<&Arc<AppState>>) -> Response {
    if !metrics_allowed(req, state.metrics_token.as_ref()) {
        return refused();
    }
    let mut out = String::new();
    state.http_metrics.render(&mut out);
    prometheus_text(out)
}

/// The metrics rule, the same for the server and the worker: with a token,
/// the request must carry it (`Authorization: Bearer <token>`); without
/// one, only loopback peers are answered.
#[must_use]
pub fn metrics_allowed(req: &poem::Request, token: Option<&Secret<String>>) -> bool {
    let peer = req.remote_addr().as_socket_addr().map(std::net::SocketAddr::ip);
    metrics_allowed_for(req.header("authorization"), peer, token)
}

fn metrics_allowed_for(
    authorization: Option<&str>,
    peer: Option<std::net::IpAddr>,
    token: Option<&Secret<String>>,
) -> bool {
    match token {
        Some(token) => authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|t| constant_time_eq(t.as_bytes(), token.expose().as_bytes())),
        None => peer.is_some_and(|ip| ip.is_loopback()),
    }
}

fn refused() -> Response {
    crate::api::error::error_response(videdit_core::ErrorCode::Unauthenticated, "metrics need METRICS_TOKEN")
}

fn prometheus_text(body: String) -> Response {
    Response::builder().content_type("text/plain; version=0.0.4").body(body)
}

/// The worker's own small HTTP surface: `/healthz` and `/metrics` (queue
/// figures), the latter under [`metrics_allowed`].
pub fn worker_routes(
    queue_metrics: Arc<videdit_queue::Metrics>,
    token: Option<Secret<String>>,
) -> impl poem::Endpoint + use<> {
    let token = Arc::new(token);
    poem::Route::new().at("/healthz", poem::get(healthz)).at(
        "/metrics",
        poem::get(poem::endpoint::make_sync(move |req| {
            if !metrics_allowed(&req, token.as_ref().as_ref()) {
                return refused();
            }
            let mut out = String::new();
            queue_metrics.render(&mut out);
            prometheus_text(out)
        })),
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_need_the_token_when_one_is_set_and_loopback_otherwise() {
        let token = Secret::new("s3cret".to_owned());
        let lo = Some("127.0.0.1".parse().unwrap());
        let remote = Some("203.0.113.7".parse().unwrap());
        assert!(metrics_allowed_for(Some("Bearer s3cret"), remote, Some(&token)));
        assert!(!metrics_allowed_for(Some("Bearer s3cre"), lo, Some(&token)), "a wrong token, even on loopback");
        assert!(!metrics_allowed_for(Some("s3cret"), lo, Some(&token)), "not a bearer header");
        assert!(!metrics_allowed_for(None, lo, Some(&token)));
        assert!(metrics_allowed_for(None, lo, None));
        assert!(metrics_allowed_for(None, Some("::1".parse().unwrap()), None));
        assert!(!metrics_allowed_for(None, remote, None));
        assert!(!metrics_allowed_for(Some("Bearer anything"), remote, None));
        assert!(!metrics_allowed_for(None, None, None), "a peer we cannot tell is not loopback");
    }
}
