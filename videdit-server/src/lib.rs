//! # videdit-server
//!
//! The reference server of videdit: a REST API (poem + poem-openapi) over
//! the core repository, storage and queue, with Clerk authentication, and
//! the `videdit` binary (`serve`, `worker`, `process`, `migrate`,
//! `openapi`, `models`). The life cycle lives in `videdit-service` (the
//! application layer); this crate only adapts it to HTTP ([`api`]) and to
//! the queue ([`handlers`]).

pub mod admission;
pub mod api;
pub mod app;
pub mod auth;
pub mod billing;
pub mod cli;
pub mod handlers;
pub mod health;
pub mod metrics;
pub mod rate_limit;
pub mod settings;
pub mod storage_routes;
pub mod telemetry;

/// The OpenAPI spec as pretty JSON (what `videdit openapi` writes).
#[must_use]
pub fn openapi_spec() -> String {
    let mut spec = app::api_service("/api/v1").spec();
    spec.push('\n');
    spec
}

/// Applies every migration the server needs (core, then queue).
///
/// # Errors
/// Database failures.
pub async fn migrate_all(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    videdit_core::db::migrate(pool).await?;
    videdit_queue::migrate(pool).await?;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
