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
pub mod web;

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

/// How long a starting process keeps trying to reach the database.
pub const STARTUP_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Connects to the database and applies the migrations, trying again with
/// backoff for up to [`STARTUP_PATIENCE`]: a process started while
/// PostgreSQL restarts (a deploy, a failover) waits for it rather than
/// exiting.
///
/// # Errors
/// The last failure once the patience is spent.
pub async fn connect_and_migrate(
    url: &videdit_core::config::DatabaseUrl,
    max_connections: u32,
) -> anyhow::Result<sqlx::PgPool> {
    let started = std::time::Instant::now();
    let mut wait = std::time::Duration::from_millis(250);
    loop {
        let attempt = async {
            let pool = videdit_core::db::connect(url, max_connections).await?;
            migrate_all(&pool).await?;
            anyhow::Ok(pool)
        };
        match attempt.await {
            Ok(pool) => return Ok(pool),
            Err(e) if started.elapsed() + wait < STARTUP_PATIENCE => {
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis(), "the database is not reachable yet");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
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
