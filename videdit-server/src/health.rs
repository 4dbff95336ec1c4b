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
