//! The `videdit` binary.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use videdit_core::config::{Command as ConfigCommand, Config};
use videdit_server::app::{self, AppState};
use videdit_server::auth::{AuthMode, Authenticator, Jwks};
use videdit_server::settings::{AuthSettings, Configuration, LocalSettings, ServerSettings, Settings};

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
    Process {
        #[command(flatten)]
        args: videdit_server::cli::ProcessArgs,
        #[command(flatten)]
        settings: LocalSettings,
    },
    /// Manage Whisper models (list, import a faster-whisper model, download).
    Models {
        #[command(subcommand)]
        command: videdit_server::cli::ModelsCommand,
        #[command(flatten)]
        settings: LocalSettings,
    },
    /// Run the REST API. Every setting is a flag or its environment variable.
    Serve {
        /// Also run a worker in this process (single-machine deployments).
        #[arg(long)]
        with_worker: bool,
        #[command(flatten)]
        settings: Settings,
    },
    /// Run a queue worker (JOB_CONCURRENCY jobs at once); health on HEALTH_ADDR.
    Worker {
        #[command(flatten)]
        settings: Settings,
    },
    /// Apply the database migrations and exit.
    Migrate {
        #[command(flatten)]
        settings: Settings,
    },
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
        Command::Process { args, settings } => {
            let config = settings.load()?;
            let whisper_stderr = settings.whisper_stderr()?;
            videdit_server::telemetry::init_with(config.environment, "warn");
            videdit_server::cli::process(&config, args, whisper_stderr).await
        }
        Command::Models { command, settings } => {
            let config = settings.load()?;
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
        Command::Migrate { settings } => {
            let Configuration { core: config, .. } = settings.load(ConfigCommand::Migrate)?;
            videdit_server::telemetry::init(config.environment);
            let pool = videdit_core::db::connect(config.database_url.as_ref().expect("validated"), 2).await?;
            videdit_server::migrate_all(&pool).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Worker { settings } => {
            let Configuration { core: config, server } = settings.load(ConfigCommand::Worker)?;
            videdit_server::telemetry::init(config.environment);
            let pool = videdit_server::connect_and_migrate(
                config.database_url.as_ref().expect("validated"),
                u32::from(config.job_concurrency) + 4,
            )
            .await?;
            let (storage, _) = app::open_storage(&config, &format!("http://{}", server.bind)).await?;
            run_worker(&config, &server, pool, storage, true).await
        }
        Command::Serve { with_worker, settings } => {
            let Configuration { core: config, server } = settings.load(ConfigCommand::Serve)?;
            videdit_server::telemetry::init(config.environment);
            let pool =
                videdit_server::connect_and_migrate(config.database_url.as_ref().expect("validated"), 20).await?;
            let public = format!("http://{}", server.bind);
            let (storage, local) = app::open_storage(&config, &public).await?;
            let auth = match server.auth.clone().expect("validated for serve") {
                AuthSettings::Clerk(c) => Authenticator::new(AuthMode::Clerk(Box::new(Jwks::new(c)))),
                AuthSettings::InsecureDev => {
                    tracing::warn!("AUTH_MODE=insecure-dev: every request is the development user");
                    Authenticator::new(AuthMode::InsecureDev)
                }
            };
            let (payments, stripe_webhook) = videdit_server::billing::from_settings(server.stripe.as_ref())?;
            let state = Arc::new(AppState {
                pool,
                storage,
                local,
                auth,
                rate_limiter: server.limits.user_rate_limiter(),
                ip_rate_limiter: server.limits.ip_rate_limiter(),
                limits: server.limits.clone(),
                http_metrics: Default::default(),
                metrics_token: server.metrics_token.clone(),
                webhook_policy: server.webhook_policy,
                keyring: server.keyring.clone(),
                billing: server.billing.clone(),
                payments,
                stripe_webhook,
                stripe_publishable_key: server.stripe.as_ref().and_then(|s| s.publishable_key.clone()),
                clerk_publishable_key: server.clerk_publishable_key.clone(),
                platforms: server.platforms()?,
            });
            let server_url = config.public_url.as_ref().map_or(public, |u| u.to_string());
            if with_worker {
                let (config, server, pool, storage) =
                    (config.clone(), server.clone(), state.pool.clone(), state.storage.clone());
                tokio::spawn(async move {
                    if let Err(e) = run_worker(&config, &server, pool, storage, false).await {
                        tracing::error!(error = %e, "the embedded worker stopped");
                    }
                });
            }
            let listener = poem::listener::TcpListener::bind(server.bind);
            tracing::info!(bind = %server.bind, "serving");
            let base = server_url.trim_end_matches('/');
            if videdit_server::web::built() {
                tracing::info!("the web app: open {base}/ (the API is at {base}/api/v1)");
            } else {
                tracing::warn!(
                    "this binary has no web app (run `npm --prefix web ci && npm --prefix web run build`, then build \
                     again); the API is at {base}/api/v1"
                );
            }
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

/// Runs the worker until SIGTERM, then shuts it down gracefully; with
/// `health`, it also answers `/healthz` and `/metrics` on `HEALTH_ADDR`.
async fn run_worker(
    config: &Config,
    server: &ServerSettings,
    pool: sqlx::PgPool,
    storage: Arc<dyn videdit_core::storage::Storage>,
    health: bool,
) -> anyhow::Result<()> {
    use videdit_server::handlers as worker;
    let media = {
        let (config, limits, work_dir) = (config.clone(), server.limits.clone(), server.work_dir.clone());
        let whisper_stderr = server.whisper_stderr;
        let billing = server.billing.clone();
        tokio::task::spawn_blocking(move || {
            worker::MediaDeps::from_config(&config, &limits, work_dir, whisper_stderr, billing)
        })
        .await??
    };
    tracing::info!(model = %media.model_name, "Whisper model loaded");
    let deps = worker::Deps {
        storage,
        media: Some(Arc::new(media)),
        webhooks: videdit_webhooks::Sender::new(server.webhook_policy),
        keyring: server.keyring.clone(),
        billing: server.billing.clone(),
        payments: videdit_server::billing::from_settings(server.stripe.as_ref())?.0,
        platforms: server.platforms()?,
        instagram_source: server.instagram_source,
    };
    let worker = worker::build(pool.clone(), worker::config(config, &server.billing), deps)?;
    let metrics = worker.metrics();
    // The first cleanup, as soon as the database answers.
    let first = pool.clone();
    tokio::spawn(async move {
        for wait in [1u64, 2, 4, 8, 16, 30, 60] {
            match first.acquire().await {
                Ok(mut conn) => match worker::schedule_cleanup(&mut conn, time::OffsetDateTime::now_utc()).await {
                    Ok(_) => return,
                    Err(e) => tracing::warn!(error = %e, "scheduling the first cleanup failed; trying again"),
                },
                Err(e) => tracing::warn!(error = %e, "scheduling the first cleanup failed; trying again"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
        }
    });
    if health {
        let addr = server.health_addr;
        let route = videdit_server::health::worker_routes(metrics, server.metrics_token.clone());
        let listener = poem::listener::TcpListener::bind(addr);
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
