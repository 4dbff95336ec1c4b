//! The `videdit` binary.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use videdit_core::config::{Command as ConfigCommand, Config};
use videdit_server::app::{self, AppState};
use videdit_server::auth::{AuthMode, Authenticator, Jwks};
use videdit_server::rate_limit::RateLimiter;
use videdit_server::settings::{AuthSettings, ServerSettings};

/// Turn long videos into ranked, captioned vertical shorts.
#[derive(Parser)]
#[command(name = "videdit", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Turn one long video into ranked, captioned shorts (no database, no S3).
    Process(videdit_server::cli::ProcessArgs),
    /// Manage Whisper models (list, import a faster-whisper model, download).
    Models {
        #[command(subcommand)]
        command: videdit_server::cli::ModelsCommand,
    },
    /// Run the REST API (configured by environment: DATABASE_URL, storage, CLERK_*, BIND_ADDR).
    Serve {
        /// Also run a worker in this process (single-machine deployments).
        #[arg(long)]
        with_worker: bool,
    },
    /// Run a queue worker (JOB_CONCURRENCY jobs at once); health on HEALTH_ADDR (default 0.0.0.0:8081).
    Worker,
    /// Apply the database migrations and exit.
    Migrate,
    /// Write the OpenAPI spec.
    Openapi {
        /// Output file.
        #[arg(long, default_value = "openapi/videdit.json")]
        out: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("videdit: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Process(args) => {
            let config = Config::from_env(ConfigCommand::Process)?;
            videdit_server::telemetry::init_with(config.environment, "warn");
            videdit_server::cli::process(&config, args).await
        }
        Command::Models { command } => {
            let config = Config::from_env(ConfigCommand::Process)?;
            videdit_server::telemetry::init_with(config.environment, "warn");
            tokio::task::spawn_blocking(move || videdit_server::cli::models(&config, command)).await?
        }
        Command::Openapi { out } => {
            let spec = videdit_server::openapi_spec();
            if let Some(dir) = out.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&out, spec)?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        Command::Migrate => {
            let config = Config::from_env(ConfigCommand::Migrate)?;
            videdit_server::telemetry::init(config.environment);
            let pool = videdit_core::db::connect(config.database_url.as_ref().expect("validated"), 2).await?;
            videdit_server::migrate_all(&pool).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Worker => {
            let config = Config::from_env(ConfigCommand::Worker)?;
            videdit_server::telemetry::init(config.environment);
            let pool = videdit_core::db::connect(
                config.database_url.as_ref().expect("validated"),
                u32::from(config.job_concurrency) + 4,
            )
            .await?;
            videdit_server::migrate_all(&pool).await?;
            let (storage, _) = app::open_storage(&config, "http://127.0.0.1:8080").await?;
            let health = std::env::var("HEALTH_ADDR").unwrap_or_else(|_| "0.0.0.0:8081".into());
            run_worker(&config, pool, storage, Some(health)).await
        }
        Command::Serve { with_worker } => {
            let config = Config::from_env(ConfigCommand::Serve)?;
            let settings = ServerSettings::from_env().map_err(videdit_core::config::ConfigErrors)?;
            videdit_server::telemetry::init(config.environment);
            let pool = videdit_core::db::connect(config.database_url.as_ref().expect("validated"), 20).await?;
            videdit_server::migrate_all(&pool).await?;
            let public = format!("http://{}", settings.bind);
            let (storage, local) = app::open_storage(&config, &public).await?;
            let auth = match settings.auth.clone() {
                AuthSettings::Clerk(c) => Authenticator::new(AuthMode::Clerk(Box::new(Jwks::new(c)))),
                AuthSettings::InsecureDev => {
                    tracing::warn!("AUTH_MODE=insecure-dev: every request is the development user");
                    Authenticator::new(AuthMode::InsecureDev)
                }
            };
            let state = Arc::new(AppState {
                pool,
                storage,
                local,
                auth,
                rate_limiter: RateLimiter::new(settings.limits.requests_per_second, settings.limits.request_burst),
                limits: settings.limits.clone(),
                http_metrics: Default::default(),
                metrics_token: metrics_token(),
                webhook_policy: webhook_policy(),
            });
            let server_url = config.public_url.as_ref().map_or(public, |u| u.to_string());
            if with_worker {
                let (config, pool, storage) = (config.clone(), state.pool.clone(), state.storage.clone());
                tokio::spawn(async move {
                    if let Err(e) = run_worker(&config, pool, storage, None).await {
                        tracing::error!(error = %e, "the embedded worker stopped");
                    }
                });
            }
            let listener = poem::listener::TcpListener::bind(settings.bind);
            tracing::info!(bind = %settings.bind, "serving");
            poem::Server::new(listener)
                .run_with_graceful_shutdown(
                    app::routes(state, &server_url),
                    videdit_server::shutdown_signal(),
                    Some(std::time::Duration::from_secs(30)),
                )
                .await?;
            Ok(())
        }
    }
}

/// `WEBHOOKS_ALLOW_LOOPBACK=true` lets webhooks reach loopback addresses
/// and plain http (development and tests only); private, link-local and
/// metadata addresses stay refused either way.
fn webhook_policy() -> videdit_webhooks::UrlPolicy {
    let allow = std::env::var("WEBHOOKS_ALLOW_LOOPBACK").is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"));
    videdit_webhooks::UrlPolicy { allow_loopback: allow }
}

/// `METRICS_TOKEN`, when set and not empty.
fn metrics_token() -> Option<videdit_core::Secret<String>> {
    std::env::var("METRICS_TOKEN").ok().filter(|t| !t.is_empty()).map(videdit_core::Secret::new)
}

/// Runs the worker until SIGTERM, then shuts it down gracefully.
async fn run_worker(
    config: &Config,
    pool: sqlx::PgPool,
    storage: Arc<dyn videdit_core::storage::Storage>,
    health: Option<String>,
) -> anyhow::Result<()> {
    use videdit_server::handlers as worker;
    let media = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || videdit_server::handlers::MediaDeps::from_config(&config)).await??
    };
    tracing::info!(model = %media.model_name, "Whisper model loaded");
    let deps = worker::Deps {
        storage,
        media: Some(Arc::new(media)),
        webhooks: videdit_webhooks::Sender::new(webhook_policy()),
    };
    let worker = worker::build(pool.clone(), worker::config(config), deps)?;
    let metrics = worker.metrics();
    let mut conn = pool.acquire().await?;
    worker::schedule_cleanup(&mut conn, time::OffsetDateTime::now_utc()).await?;
    drop(conn);
    if let Some(addr) = health {
        let route = videdit_server::health::worker_routes(metrics, metrics_token());
        let listener = poem::listener::TcpListener::bind(addr.clone());
        tracing::info!(%addr, "worker health endpoint");
        tokio::spawn(async move { poem::Server::new(listener).run(route).await });
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let signal = stop.clone();
    tokio::spawn(async move {
        videdit_server::shutdown_signal().await;
        signal.cancel();
    });
    tracing::info!(concurrency = config.job_concurrency, "worker running");
    worker.run(stop, std::time::Duration::from_secs(60)).await?;
    Ok(())
}
