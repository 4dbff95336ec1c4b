//! Liveness and readiness.

use std::sync::Arc;
use std::time::Duration;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{IntoResponse, Response, handler};
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
    let allowed = match &state.metrics_token {
        Some(token) => req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|t| constant_time_eq(t.as_bytes(), token.expose().as_bytes())),
        None => match req.remote_addr().as_socket_addr() {
            Some(addr) => addr.ip().is_loopback(),
            None => false,
        },
    };
    if !allowed {
        return crate::api::error::error_response(
            videdit_core::ErrorCode::Unauthenticated,
            "metrics need METRICS_TOKEN",
        );
    }
    let mut out = String::new();
    state.http_metrics.render(&mut out);
    Response::builder().content_type("text/plain; version=0.0.4").body(out)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
