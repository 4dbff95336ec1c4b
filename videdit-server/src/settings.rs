//! Every setting of the `videdit` binary, in one place.
//!
//! [`Settings`] is the clap struct: one flag per setting, each with its
//! environment variable and its default, documented by its doc comment,
//! so `videdit serve --help` lists them all. Its fields are the raw text;
//! [`Settings::load`] validates them into the typed
//! [`videdit_core::config::Config`] and [`ServerSettings`], reporting every
//! bad value at once, each under its variable's name. The local commands
//! (`process`, `models`) read only [`LocalSettings`], a part of it.
//!
//! Nothing below the binary reads the environment: the libraries take
//! these values as arguments.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use videdit_core::Secret;
use videdit_core::config::{Command, Config, ConfigError, ConfigErrors, Environment};
use videdit_core::sealed::Keyring;

use crate::auth::ClerkConfig;

/// Per-organisation limits (one set for now; per-plan limits come with billing).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest upload in bytes.
    pub max_upload_bytes: u64,
    /// Longest video in seconds (checked at ingest).
    pub max_duration_seconds: f64,
    /// Uploads above this size use multipart.
    pub multipart_threshold: u64,
    /// Sustained requests per second per user (0 disables).
    pub requests_per_second: f64,
    /// Burst of requests per user.
    pub request_burst: f64,
    /// Sustained requests per second per client address, checked before
    /// any token is verified (0 disables).
    pub requests_per_second_per_ip: f64,
    /// The header a trusted proxy puts the client's address in
    /// (`Fly-Client-IP`); `None`: the peer address.
    pub client_ip_header: Option<String>,
    /// Most pixels (width × height) of any stream of a source.
    pub max_pixels: u64,
    /// Highest frame rate of a source's video.
    pub max_fps: f64,
    /// Most streams in a source.
    pub max_streams: u64,
    /// Address-space limit of each ffmpeg/ffprobe child, bytes (0: none).
    pub child_memory_bytes: u64,
}

impl Limits {
    /// The per-user limiter these limits ask for.
    #[must_use]
    pub fn user_rate_limiter(&self) -> crate::rate_limit::RateLimiter {
        crate::rate_limit::RateLimiter::new(self.requests_per_second, self.request_burst)
    }

    /// The per-address limiter these limits ask for (burst: two seconds' worth).
    #[must_use]
    pub fn ip_rate_limiter(&self) -> crate::rate_limit::RateLimiter<std::net::IpAddr> {
        crate::rate_limit::RateLimiter::new(self.requests_per_second_per_ip, 2.0 * self.requests_per_second_per_ip)
    }

    /// What media the worker accepts.
    #[must_use]
    pub fn media(&self) -> videdit_media::probe::MediaLimits {
        videdit_media::probe::MediaLimits {
            max_duration: self.max_duration_seconds,
            max_bytes: self.max_upload_bytes,
            max_pixels: self.max_pixels,
            max_frame_rate: self.max_fps,
            max_streams: usize::try_from(self.max_streams).unwrap_or(usize::MAX),
            ..Default::default()
        }
    }

    /// The ffmpeg gateway with these limits on its children.
    #[must_use]
    pub fn ffmpeg(&self, binary: &std::path::Path) -> videdit_media::process::Ffmpeg {
        videdit_media::process::Ffmpeg {
            child_memory_bytes: (self.child_memory_bytes > 0).then_some(self.child_memory_bytes),
            ..videdit_media::process::Ffmpeg::new(binary)
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_upload_bytes: 10 * 1024 * 1024 * 1024,
            max_duration_seconds: 4.0 * 3600.0,
            multipart_threshold: 100 * 1024 * 1024,
            requests_per_second: 20.0,
            request_burst: 100.0,
            requests_per_second_per_ip: 100.0,
            client_ip_header: None,
            max_pixels: 7680 * 4320,
            max_fps: 240.0,
            max_streams: 16,
            child_memory_bytes: videdit_media::process::DEFAULT_CHILD_MEMORY_BYTES,
        }
    }
}

/// How the API authenticates.
#[derive(Debug, Clone)]
pub enum AuthSettings {
    /// Clerk JWTs.
    Clerk(ClerkConfig),
    /// A fixed development user; only on loopback, never in production.
    InsecureDev,
}

/// The validated settings of `serve` and `worker` beyond the core
/// configuration.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Where the API listens (`BIND_ADDR`).
    pub bind: SocketAddr,
    /// Authentication (`AUTH_MODE`, `CLERK_*`); only for `serve`.
    pub auth: Option<AuthSettings>,
    /// Limits (`LIMIT_*`), for the API and the worker alike.
    pub limits: Limits,
    /// Bearer token for `/metrics` (`METRICS_TOKEN`); `None`: loopback peers only.
    pub metrics_token: Option<Secret<String>>,
    /// Where a worker answers `/healthz` and `/metrics` (`HEALTH_ADDR`).
    pub health_addr: SocketAddr,
    /// Where renders write before uploading (`VIDEDIT_WORK_DIR`).
    pub work_dir: PathBuf,
    /// Which webhook endpoint URLs are accepted (`WEBHOOKS_ALLOW_LOOPBACK`).
    pub webhook_policy: videdit_webhooks::UrlPolicy,
    /// Seals the secrets stored in the database (`ENCRYPTION_KEYS`).
    pub keyring: std::sync::Arc<Keyring>,
    /// Whether whisper.cpp logs to stderr when the worker loads its model
    /// (`VIDEDIT_WHISPER_STDERR`), for
    /// [`videdit_media::transcribe::LoadOptions::whisper_stderr`].
    pub whisper_stderr: bool,
    /// Plans (`PLANS_FILE`) and the grace period (`BILLING_GRACE_HOURS`).
    pub billing: std::sync::Arc<videdit_service::billing::Billing>,
    /// Stripe (`STRIPE_*`, `BILLING_*_URL`); `None`: billing is off.
    pub stripe: Option<StripeSettings>,
    /// YouTube (`YOUTUBE_*`); `None`: it cannot be connected.
    pub youtube: Option<videdit_publish::youtube::YouTubeConfig>,
    /// TikTok (`TIKTOK_*`); `None`: it cannot be connected.
    pub tiktok: Option<videdit_publish::tiktok::TikTokConfig>,
    /// Instagram (`INSTAGRAM_*`); `None`: it cannot be connected.
    pub instagram: Option<videdit_publish::instagram::InstagramConfig>,
    /// How Meta gets a short's bytes (`INSTAGRAM_UPLOAD`).
    pub instagram_source: videdit_service::publications::InstagramSource,
    /// Clerk's publishable key for the web app (`CLERK_PUBLISHABLE_KEY`).
    pub clerk_publishable_key: Option<String>,
}

impl ServerSettings {
    /// The platform clients of the configured platforms.
    ///
    /// # Errors
    /// A client that cannot be built.
    pub fn platforms(&self) -> Result<videdit_service::connections::Platforms, videdit_publish::PublishError> {
        use std::sync::Arc;
        Ok(videdit_service::connections::Platforms {
            youtube: self.youtube.clone().map(videdit_publish::youtube::YouTube::new).transpose()?.map(Arc::new),
            tiktok: self.tiktok.clone().map(videdit_publish::tiktok::TikTok::new).transpose()?.map(Arc::new),
            instagram: self
                .instagram
                .clone()
                .map(videdit_publish::instagram::Instagram::new)
                .transpose()?
                .map(Arc::new),
        })
    }
}

/// How the server talks to Stripe.
#[derive(Debug, Clone)]
pub struct StripeSettings {
    /// `STRIPE_SECRET_KEY`.
    pub secret_key: Secret<String>,
    /// `STRIPE_WEBHOOK_SECRET`.
    pub webhook_secret: Secret<String>,
    /// `STRIPE_PUBLISHABLE_KEY`.
    pub publishable_key: Option<String>,
    /// `STRIPE_API_BASE`.
    pub api_base: url::Url,
    /// `STRIPE_METER_EVENT`.
    pub meter_event: Option<String>,
    /// `BILLING_SUCCESS_URL`.
    pub success_url: String,
    /// `BILLING_CANCEL_URL`.
    pub cancel_url: String,
    /// `BILLING_PORTAL_RETURN_URL`.
    pub portal_return_url: String,
}

/// Default of `BIND_ADDR`.
pub const DEFAULT_BIND_ADDR: &str = "127.0.0.1:8080";
/// Default of `HEALTH_ADDR`.
pub const DEFAULT_HEALTH_ADDR: &str = "0.0.0.0:8081";

const GENERAL: &str = "General";
const DATABASE: &str = "Database";
const STORAGE: &str = "Storage";
const WORKER: &str = "Worker";
const API: &str = "API";
const BILLING: &str = "Billing";
const PUBLISHING: &str = "Publishing";
const ALIASES: &str = "Aliases";

/// The settings the local commands (`process`, `models`) read; part of
/// [`Settings`].
#[derive(Debug, Clone, Args)]
pub struct LocalSettings {
    /// `development` (pretty logs) or `production` (JSON logs; refuses
    /// AUTH_MODE=insecure-dev). NODE_ENV is read when this is not set.
    /// Default: development.
    #[arg(long = "environment", env = "VIDEDIT_ENV", help_heading = GENERAL)]
    pub environment: Option<String>,
    /// Alias of VIDEDIT_ENV.
    #[arg(long = "node-env", env = "NODE_ENV", hide = true, help_heading = ALIASES)]
    pub node_env: Option<String>,
    /// The ffmpeg to run (ffprobe is looked up beside it).
    #[arg(long, env = "FFMPEG_BINARY", default_value = "ffmpeg", help_heading = GENERAL)]
    pub ffmpeg_binary: Option<String>,
    /// Whisper model: a name in the model directory (`tiny.en`, `base`,
    /// `small-q8_0`, …) or a ggml file. A name that is not installed falls
    /// back to its quantized weights (`tiny.en` → `tiny.en-q8_0`).
    #[arg(long, env = "WHISPER_MODEL", default_value = videdit_core::config::DEFAULT_WHISPER_MODEL, help_heading = GENERAL)]
    pub whisper_model: Option<String>,
    /// Where models are kept. Default: $XDG_CACHE_HOME/videdit/models,
    /// else ~/.cache/videdit/models.
    #[arg(long, env = "VIDEDIT_MODEL_DIR", help_heading = GENERAL)]
    pub model_dir: Option<String>,
    /// `true` lets whisper.cpp write its own log (model loading, timings)
    /// to stderr; otherwise that log joins videdit's, filtered by RUST_LOG.
    #[arg(long, env = "VIDEDIT_WHISPER_STDERR", default_value = "false", help_heading = GENERAL)]
    pub whisper_stderr: Option<String>,
}

/// `videdit/models` in the user's cache directory: `$XDG_CACHE_HOME`, else
/// `~/.cache`, else the temporary directory. `None` when that path is not
/// UTF-8 (the settings are text).
fn default_model_dir() -> Option<String> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    videdit_media::models::default_model_dir(&cache).into_os_string().into_string().ok()
}

impl LocalSettings {
    fn lookup(&self, var: &str) -> Option<String> {
        let value = match var {
            "VIDEDIT_ENV" => &self.environment,
            "NODE_ENV" => &self.node_env,
            "FFMPEG_BINARY" => &self.ffmpeg_binary,
            "WHISPER_MODEL" => &self.whisper_model,
            // The default is the binary's to compute, so the libraries never
            // look at the environment for it.
            "VIDEDIT_MODEL_DIR" => {
                return self.model_dir.clone().filter(|d| !d.trim().is_empty()).or_else(default_model_dir);
            }
            "VIDEDIT_WHISPER_STDERR" => &self.whisper_stderr,
            _ => return None,
        };
        value.clone()
    }

    /// The configuration of a local command (no database, no S3).
    ///
    /// # Errors
    /// Every bad value, each naming its variable.
    pub fn load(&self) -> Result<Config, ConfigErrors> {
        match (Config::load(Command::Process, &|var| self.lookup(var)), self.whisper_stderr()) {
            (Ok(config), Ok(_)) => Ok(config),
            (config, stderr) => {
                let mut errors = config.err().map(|e| e.0).unwrap_or_default();
                errors.extend(stderr.err().map(|e| e.0).unwrap_or_default());
                Err(ConfigErrors(errors))
            }
        }
    }

    /// Whether whisper.cpp logs to stderr (`VIDEDIT_WHISPER_STDERR`), for
    /// [`videdit_media::transcribe::LoadOptions::whisper_stderr`].
    ///
    /// # Errors
    /// A value that is not a boolean.
    pub fn whisper_stderr(&self) -> Result<bool, ConfigErrors> {
        let get = |var: &str| self.lookup(var);
        let mut check = Check { get: &get, errors: Vec::new() };
        let on = check.bool("VIDEDIT_WHISPER_STDERR", false);
        if check.errors.is_empty() { Ok(on) } else { Err(ConfigErrors(check.errors)) }
    }
}

/// Every setting of the `videdit` binary (`serve`, `worker`, `migrate`):
/// a flag or its environment variable.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    // The settings of the local commands (environment, ffmpeg, models).
    #[command(flatten)]
    pub local: LocalSettings,

    /// PostgreSQL URL, `postgresql://user:password@host:5432/db`
    /// (`postgresql+asyncpg://` and asyncpg's `ssl=` are normalised).
    /// Required by serve, worker and migrate.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, help_heading = DATABASE)]
    pub database_url: Option<Secret<String>>,

    /// `local` or `s3`. Default: s3 when a bucket is set, else local.
    #[arg(long, env = "STORAGE", help_heading = STORAGE)]
    pub storage: Option<String>,
    /// Root directory of local storage.
    #[arg(long, env = "STORAGE_DIR", default_value = ".videdit/storage", help_heading = STORAGE)]
    pub storage_dir: Option<String>,
    /// S3 endpoint URL; unset means AWS. Aliases: TIGRIS_ENDPOINT,
    /// TIGRIS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3.
    #[arg(long, env = "S3_ENDPOINT", help_heading = STORAGE)]
    pub s3_endpoint: Option<String>,
    /// S3 bucket (3-63 of a-z 0-9 . -). Aliases: TIGRIS_BUCKET,
    /// TIGRIS_BUCKET_NAME, BUCKET_NAME.
    #[arg(long, env = "S3_BUCKET", help_heading = STORAGE)]
    pub s3_bucket: Option<String>,
    /// S3 access key id. Aliases: TIGRIS_ACCESS_KEY_ID, AWS_ACCESS_KEY_ID.
    #[arg(long, env = "S3_ACCESS_KEY_ID", help_heading = STORAGE)]
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key. Aliases: TIGRIS_SECRET_ACCESS_KEY,
    /// AWS_SECRET_ACCESS_KEY.
    #[arg(long, env = "S3_SECRET_ACCESS_KEY", hide_env_values = true, help_heading = STORAGE)]
    pub s3_secret_access_key: Option<Secret<String>>,
    /// S3 region; `auto` suits Tigris and R2. Aliases: TIGRIS_REGION,
    /// AWS_REGION. Default: auto.
    #[arg(long, env = "S3_REGION", help_heading = STORAGE)]
    pub s3_region: Option<String>,
    /// Path-style S3 addressing (endpoint/bucket/key), true or false.
    /// Alias: TIGRIS_FORCE_PATH_STYLE. Default: true for IP and localhost
    /// endpoints, else false.
    #[arg(long, env = "S3_FORCE_PATH_STYLE", help_heading = STORAGE)]
    pub s3_force_path_style: Option<String>,
    /// Key that signs local-storage URLs, at least 32 characters.
    /// Default: generated and kept in STORAGE_DIR/signing-key.
    #[arg(long, env = "STORAGE_SIGNING_KEY", hide_env_values = true, help_heading = STORAGE)]
    pub storage_signing_key: Option<Secret<String>>,
    /// The server's public base URL, used in local presigned URLs.
    /// Default: http://BIND_ADDR.
    #[arg(long, env = "PUBLIC_URL", help_heading = STORAGE)]
    pub public_url: Option<String>,

    /// Jobs a worker runs at once, 1..=20.
    #[arg(long, env = "JOB_CONCURRENCY", default_value = "1", help_heading = WORKER)]
    pub job_concurrency: Option<String>,
    /// Queue polling fallback in milliseconds, at least 100.
    #[arg(long, env = "POLL_INTERVAL_MS", default_value = "1000", help_heading = WORKER)]
    pub poll_interval_ms: Option<String>,
    /// Where `videdit worker` answers /healthz and /metrics.
    #[arg(long, env = "HEALTH_ADDR", default_value = DEFAULT_HEALTH_ADDR, help_heading = WORKER)]
    pub health_addr: Option<String>,
    /// Where renders in progress are written. Default: videdit-work in the
    /// temporary directory.
    #[arg(long, env = "VIDEDIT_WORK_DIR", help_heading = WORKER)]
    pub work_dir: Option<String>,

    /// Where the API listens, host:port.
    #[arg(long, env = "BIND_ADDR", default_value = DEFAULT_BIND_ADDR, help_heading = API)]
    pub bind_addr: Option<String>,
    /// `clerk` (Clerk session JWTs) or `insecure-dev` (every request is a
    /// fixed development user; refused unless BIND_ADDR is loopback, and in
    /// production).
    #[arg(long, env = "AUTH_MODE", default_value = "clerk", help_heading = API)]
    pub auth_mode: Option<String>,
    /// Clerk issuer, `https://<your-app>.clerk.accounts.dev`; required with
    /// AUTH_MODE=clerk.
    #[arg(long, env = "CLERK_ISSUER", help_heading = API)]
    pub clerk_issuer: Option<String>,
    /// Clerk JWKS URL. Default: $CLERK_ISSUER/.well-known/jwks.json.
    #[arg(long, env = "CLERK_JWKS_URL", help_heading = API)]
    pub clerk_jwks_url: Option<String>,
    /// Expected `aud` of the tokens, when they carry one.
    #[arg(long, env = "CLERK_AUDIENCE", help_heading = API)]
    pub clerk_audience: Option<String>,
    /// Allowed `azp` origins, comma-separated. Default: any.
    #[arg(long, env = "CLERK_AUTHORIZED_PARTIES", help_heading = API)]
    pub clerk_authorized_parties: Option<String>,
    /// Clerk's publishable key (`pk_…`), for the web app's sign-in with
    /// Clerk's frontend SDK.
    #[arg(long, env = "CLERK_PUBLISHABLE_KEY", help_heading = API)]
    pub clerk_publishable_key: Option<String>,
    /// Bearer token for /metrics (API and worker). Default: none; only
    /// loopback peers get metrics.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true, help_heading = API)]
    pub metrics_token: Option<Secret<String>>,
    /// Largest upload in bytes (checked again at ingest).
    #[arg(long, env = "LIMIT_UPLOAD_BYTES", default_value = "10737418240", help_heading = API)]
    pub limit_upload_bytes: Option<String>,
    /// Longest video in seconds (checked at ingest).
    #[arg(long, env = "LIMIT_DURATION_SECONDS", default_value = "14400", help_heading = API)]
    pub limit_duration_seconds: Option<String>,
    /// Sustained requests per second per user; 0 disables the limit.
    #[arg(long, env = "LIMIT_REQUESTS_PER_SECOND", default_value = "20", help_heading = API)]
    pub limit_requests_per_second: Option<String>,
    /// Sustained requests per second per client address (burst: twice
    /// that), checked before any token is verified or the database is
    /// asked; /healthz and /metrics are exempt. 0 disables the limit.
    #[arg(long, env = "LIMIT_REQUESTS_PER_SECOND_PER_IP", default_value = "100", help_heading = API)]
    pub limit_requests_per_second_per_ip: Option<String>,
    /// The request header a trusted proxy puts the client's address in
    /// (`Fly-Client-IP` on Fly.io). Default: none, the peer address is the
    /// client's. Set it only behind a proxy that overwrites the header.
    #[arg(long, env = "CLIENT_IP_HEADER", help_heading = API)]
    pub client_ip_header: Option<String>,
    /// Most pixels (width × height) of any stream of a source, checked at
    /// ingest (default: 8K UHD, 7680 × 4320).
    #[arg(long, env = "LIMIT_MAX_PIXELS", default_value = "33177600", help_heading = API)]
    pub limit_max_pixels: Option<String>,
    /// Highest frame rate of a source's video, checked at ingest.
    #[arg(long, env = "LIMIT_MAX_FPS", default_value = "240", help_heading = API)]
    pub limit_max_fps: Option<String>,
    /// Most streams (audio, video, subtitles, attachments) in a source.
    #[arg(long, env = "LIMIT_MAX_STREAMS", default_value = "16", help_heading = API)]
    pub limit_max_streams: Option<String>,
    /// Address-space limit of each ffmpeg/ffprobe child in bytes, so a
    /// decompression bomb kills the child, not the worker; 0: none.
    #[arg(long, env = "LIMIT_CHILD_MEMORY_BYTES", default_value = "4294967296", help_heading = WORKER)]
    pub limit_child_memory_bytes: Option<String>,
    /// `true` lets webhook endpoints use plain http and loopback addresses
    /// (development and tests); private and metadata addresses stay
    /// refused.
    #[arg(long, env = "WEBHOOKS_ALLOW_LOOPBACK", default_value = "false", help_heading = API)]
    pub webhooks_allow_loopback: Option<String>,
    /// Keys that seal secrets stored in the database (webhook signing
    /// secrets, platform tokens): `id:base64key[,id:base64key…]`, each key
    /// 32 bytes (`openssl rand -base64 32`). The first seals, all open: to
    /// rotate, put a new key first and keep the old ones until every value
    /// has been sealed again. Required in production; elsewhere a public
    /// development key (id `dev`) is used.
    #[arg(long, env = "ENCRYPTION_KEYS", hide_env_values = true, help_heading = API)]
    pub encryption_keys: Option<Secret<String>>,

    /// A JSON file of plans: `{"default": "free", "plans": [{"id": "free",
    /// "minutesPerPeriod": 30, "maxSourceSeconds": 1800, "maxUploadBytes":
    /// …, "maxShortsPerVideo": 5, "maxStoredBytes": …}, {"id": "pro",
    /// "priceId": "price_…", …}]}` (README, Billing). Unset: one unlimited
    /// plan and no quotas.
    #[arg(long, env = "PLANS_FILE", help_heading = BILLING)]
    pub plans_file: Option<String>,
    /// Hours an organisation keeps its plan after a failed payment before
    /// the default plan's limits apply (running jobs finish).
    #[arg(long, env = "BILLING_GRACE_HOURS", default_value = "168", help_heading = BILLING)]
    pub billing_grace_hours: Option<String>,
    /// Stripe secret key (`sk_live_…`/`sk_test_…`, or a restricted
    /// `rk_…`). Unset: billing is off (the billing endpoints answer
    /// `billing_not_configured`).
    #[arg(long, env = "STRIPE_SECRET_KEY", hide_env_values = true, help_heading = BILLING)]
    pub stripe_secret_key: Option<Secret<String>>,
    /// Signing secret of the Stripe webhook endpoint (`whsec_…`) that posts
    /// to `/api/v1/billing/stripe-webhook`; required with STRIPE_SECRET_KEY.
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET", hide_env_values = true, help_heading = BILLING)]
    pub stripe_webhook_secret: Option<Secret<String>>,
    /// Stripe publishable key (`pk_…`), handed to the web app.
    #[arg(long, env = "STRIPE_PUBLISHABLE_KEY", help_heading = BILLING)]
    pub stripe_publishable_key: Option<String>,
    /// Stripe's API base URL (tests point it at a fake).
    #[arg(long, env = "STRIPE_API_BASE", default_value = "https://api.stripe.com", help_heading = BILLING)]
    pub stripe_api_base: Option<String>,
    /// Event name of the Stripe Billing Meter that counts processed
    /// seconds (one event per ready video); unset: no meter events.
    #[arg(long, env = "STRIPE_METER_EVENT", help_heading = BILLING)]
    pub stripe_meter_event: Option<String>,
    /// Where Checkout sends the buyer after paying (default
    /// `PUBLIC_URL/billing?checkout=success`).
    #[arg(long, env = "BILLING_SUCCESS_URL", help_heading = BILLING)]
    pub billing_success_url: Option<String>,
    /// Where Checkout sends a buyer who cancels (default
    /// `PUBLIC_URL/billing?checkout=cancel`).
    #[arg(long, env = "BILLING_CANCEL_URL", help_heading = BILLING)]
    pub billing_cancel_url: Option<String>,
    /// Where the Customer Portal's "return" link goes (default
    /// `PUBLIC_URL/billing`).
    #[arg(long, env = "BILLING_PORTAL_RETURN_URL", help_heading = BILLING)]
    pub billing_portal_return_url: Option<String>,

    /// OAuth client id of the Google Cloud project that publishes to
    /// YouTube. Unset: YouTube cannot be connected.
    #[arg(long, env = "YOUTUBE_CLIENT_ID", help_heading = PUBLISHING)]
    pub youtube_client_id: Option<String>,
    /// Its OAuth client secret; required with YOUTUBE_CLIENT_ID.
    #[arg(long, env = "YOUTUBE_CLIENT_SECRET", hide_env_values = true, help_heading = PUBLISHING)]
    pub youtube_client_secret: Option<Secret<String>>,
    /// The redirect URI registered for the client: the web app's page that
    /// hands `code` and `state` to `GET /api/v1/connections/youtube/callback`
    /// (default `PUBLIC_URL/connections/youtube/callback`).
    #[arg(long, env = "YOUTUBE_REDIRECT_URI", help_heading = PUBLISHING)]
    pub youtube_redirect_uri: Option<String>,
    /// Google's OAuth consent page (tests point it at a fake).
    #[arg(long, env = "YOUTUBE_AUTH_URL", default_value = "https://accounts.google.com/o/oauth2/v2/auth", help_heading = PUBLISHING)]
    pub youtube_auth_url: Option<String>,
    /// Google's token endpoint.
    #[arg(long, env = "YOUTUBE_TOKEN_URL", default_value = "https://oauth2.googleapis.com/token", help_heading = PUBLISHING)]
    pub youtube_token_url: Option<String>,
    /// Google's token revocation endpoint.
    #[arg(long, env = "YOUTUBE_REVOKE_URL", default_value = "https://oauth2.googleapis.com/revoke", help_heading = PUBLISHING)]
    pub youtube_revoke_url: Option<String>,
    /// Base of the YouTube Data API and its upload endpoint.
    #[arg(long, env = "YOUTUBE_API_BASE", default_value = "https://www.googleapis.com", help_heading = PUBLISHING)]
    pub youtube_api_base: Option<String>,

    /// Client key of the TikTok app (Login Kit and Content Posting API).
    /// Unset: TikTok cannot be connected. Until TikTok audits the app it
    /// may post only `SELF_ONLY` to private accounts, 5 users a day.
    #[arg(long, env = "TIKTOK_CLIENT_KEY", help_heading = PUBLISHING)]
    pub tiktok_client_key: Option<String>,
    /// Its client secret; required with TIKTOK_CLIENT_KEY.
    #[arg(long, env = "TIKTOK_CLIENT_SECRET", hide_env_values = true, help_heading = PUBLISHING)]
    pub tiktok_client_secret: Option<Secret<String>>,
    /// The redirect URI registered for the app: the web app's page that
    /// hands `code` and `state` to `GET /api/v1/connections/tiktok/callback`
    /// (default `PUBLIC_URL/connections/tiktok/callback`).
    #[arg(long, env = "TIKTOK_REDIRECT_URI", help_heading = PUBLISHING)]
    pub tiktok_redirect_uri: Option<String>,
    /// TikTok's consent page (tests point it at a fake).
    #[arg(long, env = "TIKTOK_AUTH_URL", default_value = "https://www.tiktok.com/v2/auth/authorize/", help_heading = PUBLISHING)]
    pub tiktok_auth_url: Option<String>,
    /// Base of TikTok's Open API (tokens, user info, posting).
    #[arg(long, env = "TIKTOK_API_BASE", default_value = "https://open.tiktokapis.com", help_heading = PUBLISHING)]
    pub tiktok_api_base: Option<String>,

    /// App id of the Instagram app (Instagram API with Instagram Login;
    /// the Instagram app id, not the Facebook one). Unset: Instagram cannot
    /// be connected. Only business and creator accounts can publish.
    #[arg(long, env = "INSTAGRAM_CLIENT_ID", help_heading = PUBLISHING)]
    pub instagram_client_id: Option<String>,
    /// Its app secret; required with INSTAGRAM_CLIENT_ID.
    #[arg(long, env = "INSTAGRAM_CLIENT_SECRET", hide_env_values = true, help_heading = PUBLISHING)]
    pub instagram_client_secret: Option<Secret<String>>,
    /// The redirect URI registered for the app (default
    /// `PUBLIC_URL/connections/instagram/callback`).
    #[arg(long, env = "INSTAGRAM_REDIRECT_URI", help_heading = PUBLISHING)]
    pub instagram_redirect_uri: Option<String>,
    /// Instagram's consent page.
    #[arg(long, env = "INSTAGRAM_AUTH_URL", default_value = "https://www.instagram.com/oauth/authorize", help_heading = PUBLISHING)]
    pub instagram_auth_url: Option<String>,
    /// Instagram's short-lived token endpoint.
    #[arg(long, env = "INSTAGRAM_TOKEN_URL", default_value = "https://api.instagram.com/oauth/access_token", help_heading = PUBLISHING)]
    pub instagram_token_url: Option<String>,
    /// Base of the Instagram Graph API (long-lived tokens, containers, publishing).
    #[arg(long, env = "INSTAGRAM_GRAPH_BASE", default_value = "https://graph.instagram.com", help_heading = PUBLISHING)]
    pub instagram_graph_base: Option<String>,
    /// How Meta gets a short's bytes: `url`, a presigned GET of the short
    /// that Meta fetches (the storage must be reachable from the internet),
    /// or `resumable`, an upload from the worker to Meta's upload host
    /// (for private storage).
    #[arg(long, env = "INSTAGRAM_UPLOAD", default_value = "url", help_heading = PUBLISHING)]
    pub instagram_upload: Option<String>,

    // Aliases, read when the canonical variable is not set; listed in the
    // help of the setting they stand for.
    #[arg(long, env = "TIGRIS_ENDPOINT", hide = true, help_heading = ALIASES)]
    tigris_endpoint: Option<String>,
    #[arg(long, env = "TIGRIS_ENDPOINT_URL", hide = true, help_heading = ALIASES)]
    tigris_endpoint_url: Option<String>,
    #[arg(long, env = "AWS_ENDPOINT_URL_S3", hide = true, help_heading = ALIASES)]
    aws_endpoint_url_s3: Option<String>,
    #[arg(long, env = "TIGRIS_BUCKET", hide = true, help_heading = ALIASES)]
    tigris_bucket: Option<String>,
    #[arg(long, env = "TIGRIS_BUCKET_NAME", hide = true, help_heading = ALIASES)]
    tigris_bucket_name: Option<String>,
    #[arg(long, env = "BUCKET_NAME", hide = true, help_heading = ALIASES)]
    bucket_name: Option<String>,
    #[arg(long, env = "TIGRIS_ACCESS_KEY_ID", hide = true, help_heading = ALIASES)]
    tigris_access_key_id: Option<String>,
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide = true, help_heading = ALIASES)]
    aws_access_key_id: Option<String>,
    #[arg(long, env = "TIGRIS_SECRET_ACCESS_KEY", hide = true, hide_env_values = true, help_heading = ALIASES)]
    tigris_secret_access_key: Option<Secret<String>>,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide = true, hide_env_values = true, help_heading = ALIASES)]
    aws_secret_access_key: Option<Secret<String>>,
    #[arg(long, env = "TIGRIS_REGION", hide = true, help_heading = ALIASES)]
    tigris_region: Option<String>,
    #[arg(long, env = "AWS_REGION", hide = true, help_heading = ALIASES)]
    aws_region: Option<String>,
    #[arg(long, env = "TIGRIS_FORCE_PATH_STYLE", hide = true, help_heading = ALIASES)]
    tigris_force_path_style: Option<String>,
}

/// The validated settings of a server command.
#[derive(Debug, Clone)]
pub struct Configuration {
    /// Database, storage, worker and media settings.
    pub core: Config,
    /// API, worker and limit settings.
    pub server: ServerSettings,
}

impl Settings {
    /// The raw value of a variable, as clap found it (flag, environment or
    /// default). Secrets are exposed here only to be validated.
    fn lookup(&self, var: &str) -> Option<String> {
        let secret = |s: &Option<Secret<String>>| s.as_ref().map(|s| s.expose().clone());
        let value = match var {
            "DATABASE_URL" => return secret(&self.database_url),
            "S3_SECRET_ACCESS_KEY" => return secret(&self.s3_secret_access_key),
            "TIGRIS_SECRET_ACCESS_KEY" => return secret(&self.tigris_secret_access_key),
            "AWS_SECRET_ACCESS_KEY" => return secret(&self.aws_secret_access_key),
            "STORAGE_SIGNING_KEY" => return secret(&self.storage_signing_key),
            "METRICS_TOKEN" => return secret(&self.metrics_token),
            "ENCRYPTION_KEYS" => return secret(&self.encryption_keys),
            "STRIPE_SECRET_KEY" => return secret(&self.stripe_secret_key),
            "STRIPE_WEBHOOK_SECRET" => return secret(&self.stripe_webhook_secret),
            "YOUTUBE_CLIENT_SECRET" => return secret(&self.youtube_client_secret),
            "YOUTUBE_CLIENT_ID" => &self.youtube_client_id,
            "YOUTUBE_REDIRECT_URI" => &self.youtube_redirect_uri,
            "YOUTUBE_AUTH_URL" => &self.youtube_auth_url,
            "YOUTUBE_TOKEN_URL" => &self.youtube_token_url,
            "YOUTUBE_REVOKE_URL" => &self.youtube_revoke_url,
            "YOUTUBE_API_BASE" => &self.youtube_api_base,
            "TIKTOK_CLIENT_SECRET" => return secret(&self.tiktok_client_secret),
            "TIKTOK_CLIENT_KEY" => &self.tiktok_client_key,
            "TIKTOK_REDIRECT_URI" => &self.tiktok_redirect_uri,
            "TIKTOK_AUTH_URL" => &self.tiktok_auth_url,
            "TIKTOK_API_BASE" => &self.tiktok_api_base,
            "INSTAGRAM_CLIENT_SECRET" => return secret(&self.instagram_client_secret),
            "INSTAGRAM_CLIENT_ID" => &self.instagram_client_id,
            "INSTAGRAM_REDIRECT_URI" => &self.instagram_redirect_uri,
            "INSTAGRAM_AUTH_URL" => &self.instagram_auth_url,
            "INSTAGRAM_TOKEN_URL" => &self.instagram_token_url,
            "INSTAGRAM_GRAPH_BASE" => &self.instagram_graph_base,
            "INSTAGRAM_UPLOAD" => &self.instagram_upload,
            "PLANS_FILE" => &self.plans_file,
            "BILLING_GRACE_HOURS" => &self.billing_grace_hours,
            "STRIPE_PUBLISHABLE_KEY" => &self.stripe_publishable_key,
            "STRIPE_API_BASE" => &self.stripe_api_base,
            "STRIPE_METER_EVENT" => &self.stripe_meter_event,
            "BILLING_SUCCESS_URL" => &self.billing_success_url,
            "BILLING_CANCEL_URL" => &self.billing_cancel_url,
            "BILLING_PORTAL_RETURN_URL" => &self.billing_portal_return_url,
            "STORAGE" => &self.storage,
            "STORAGE_DIR" => &self.storage_dir,
            "S3_ENDPOINT" => &self.s3_endpoint,
            "TIGRIS_ENDPOINT" => &self.tigris_endpoint,
            "TIGRIS_ENDPOINT_URL" => &self.tigris_endpoint_url,
            "AWS_ENDPOINT_URL_S3" => &self.aws_endpoint_url_s3,
            "S3_BUCKET" => &self.s3_bucket,
            "TIGRIS_BUCKET" => &self.tigris_bucket,
            "TIGRIS_BUCKET_NAME" => &self.tigris_bucket_name,
            "BUCKET_NAME" => &self.bucket_name,
            "S3_ACCESS_KEY_ID" => &self.s3_access_key_id,
            "TIGRIS_ACCESS_KEY_ID" => &self.tigris_access_key_id,
            "AWS_ACCESS_KEY_ID" => &self.aws_access_key_id,
            "S3_REGION" => &self.s3_region,
            "TIGRIS_REGION" => &self.tigris_region,
            "AWS_REGION" => &self.aws_region,
            "S3_FORCE_PATH_STYLE" => &self.s3_force_path_style,
            "TIGRIS_FORCE_PATH_STYLE" => &self.tigris_force_path_style,
            "PUBLIC_URL" => &self.public_url,
            "JOB_CONCURRENCY" => &self.job_concurrency,
            "POLL_INTERVAL_MS" => &self.poll_interval_ms,
            "HEALTH_ADDR" => &self.health_addr,
            "VIDEDIT_WORK_DIR" => &self.work_dir,
            "BIND_ADDR" => &self.bind_addr,
            "AUTH_MODE" => &self.auth_mode,
            "CLERK_ISSUER" => &self.clerk_issuer,
            "CLERK_JWKS_URL" => &self.clerk_jwks_url,
            "CLERK_AUDIENCE" => &self.clerk_audience,
            "CLERK_AUTHORIZED_PARTIES" => &self.clerk_authorized_parties,
            "CLERK_PUBLISHABLE_KEY" => &self.clerk_publishable_key,
            "LIMIT_UPLOAD_BYTES" => &self.limit_upload_bytes,
            "LIMIT_DURATION_SECONDS" => &self.limit_duration_seconds,
            "LIMIT_REQUESTS_PER_SECOND" => &self.limit_requests_per_second,
            "LIMIT_REQUESTS_PER_SECOND_PER_IP" => &self.limit_requests_per_second_per_ip,
            "CLIENT_IP_HEADER" => &self.client_ip_header,
            "LIMIT_MAX_PIXELS" => &self.limit_max_pixels,
            "LIMIT_MAX_FPS" => &self.limit_max_fps,
            "LIMIT_MAX_STREAMS" => &self.limit_max_streams,
            "LIMIT_CHILD_MEMORY_BYTES" => &self.limit_child_memory_bytes,
            "WEBHOOKS_ALLOW_LOOPBACK" => &self.webhooks_allow_loopback,
            _ => return self.local.lookup(var),
        };
        value.clone()
    }

    /// Validates every setting `command` reads.
    ///
    /// # Errors
    /// Every bad or missing value, core and server settings together, each
    /// naming its variable.
    pub fn load(&self, command: Command) -> Result<Configuration, ConfigErrors> {
        let get = |var: &str| self.lookup(var);
        match (Config::load(command, &get), ServerSettings::load(command, &get)) {
            (Ok(core), Ok(server)) => Ok(Configuration { core, server }),
            (core, server) => {
                let mut errors = core.err().map(|e| e.0).unwrap_or_default();
                errors.extend(server.err().unwrap_or_default());
                Err(ConfigErrors(errors))
            }
        }
    }
}

/// Collects bad values while validating.
struct Check<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<ConfigError>,
}

impl Check<'_> {
    /// The value, trimmed; `None` when unset or empty.
    fn var(&self, name: &str) -> Option<String> {
        (self.get)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    fn err(&mut self, var: &'static str, message: impl Into<String>) {
        self.errors.push(ConfigError { var, message: message.into() });
    }

    fn socket_addr(&mut self, var: &'static str, default: &str) -> SocketAddr {
        let fallback = default.parse().expect("a valid default address");
        let Some(raw) = self.var(var) else { return fallback };
        raw.parse().unwrap_or_else(|_| {
            self.err(var, format!("{raw:?} is not host:port (an IP address and a port)"));
            fallback
        })
    }

    fn number<T: std::str::FromStr>(&mut self, var: &'static str, ok: fn(&T) -> bool, what: &str, default: T) -> T {
        let Some(raw) = self.var(var) else { return default };
        match raw.parse::<T>() {
            Ok(n) if ok(&n) => n,
            _ => {
                self.err(var, format!("{raw:?} is not {what}"));
                default
            }
        }
    }

    fn bool(&mut self, var: &'static str, default: bool) -> bool {
        let Some(raw) = self.var(var) else { return default };
        match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => {
                self.err(var, format!("{raw:?} is not a boolean (true/false/1/0)"));
                default
            }
        }
    }
}

impl ServerSettings {
    /// Validates the server settings through a lookup by variable name
    /// (what [`Settings::load`] does with the parsed flags; tests pass a
    /// map). Authentication is checked for [`Command::Serve`] only.
    ///
    /// # Errors
    /// Every bad or missing value, each naming its variable.
    pub fn load(command: Command, get: &dyn Fn(&str) -> Option<String>) -> Result<Self, Vec<ConfigError>> {
        let mut check = Check { get, errors: Vec::new() };
        let bind = check.socket_addr("BIND_ADDR", DEFAULT_BIND_ADDR);
        let health_addr = check.socket_addr("HEALTH_ADDR", DEFAULT_HEALTH_ADDR);
        let auth = (command == Command::Serve).then(|| Self::auth(&mut check, bind));
        let defaults = Limits::default();
        let limits = Limits {
            max_upload_bytes: check.number(
                "LIMIT_UPLOAD_BYTES",
                |n| *n > 0,
                "a positive number",
                defaults.max_upload_bytes,
            ),
            max_duration_seconds: check.number(
                "LIMIT_DURATION_SECONDS",
                |n: &f64| n.is_finite() && *n > 0.0,
                "a positive number",
                defaults.max_duration_seconds,
            ),
            requests_per_second: check.number(
                "LIMIT_REQUESTS_PER_SECOND",
                |n: &f64| n.is_finite() && *n >= 0.0,
                "a number >= 0",
                defaults.requests_per_second,
            ),
            requests_per_second_per_ip: check.number(
                "LIMIT_REQUESTS_PER_SECOND_PER_IP",
                |n: &f64| n.is_finite() && *n >= 0.0,
                "a number >= 0",
                defaults.requests_per_second_per_ip,
            ),
            client_ip_header: check.var("CLIENT_IP_HEADER"),
            max_pixels: check.number("LIMIT_MAX_PIXELS", |n| *n > 0, "a positive number", defaults.max_pixels),
            max_fps: check.number(
                "LIMIT_MAX_FPS",
                |n: &f64| n.is_finite() && *n > 0.0,
                "a positive number",
                defaults.max_fps,
            ),
            max_streams: check.number("LIMIT_MAX_STREAMS", |n| *n > 0, "a positive number", defaults.max_streams),
            child_memory_bytes: check.number(
                "LIMIT_CHILD_MEMORY_BYTES",
                |_: &u64| true,
                "a number of bytes",
                defaults.child_memory_bytes,
            ),
            ..defaults
        };
        let metrics_token = check.var("METRICS_TOKEN").map(Secret::new);
        let work_dir =
            check.var("VIDEDIT_WORK_DIR").map_or_else(|| std::env::temp_dir().join("videdit-work"), PathBuf::from);
        let webhook_policy =
            videdit_webhooks::UrlPolicy { allow_loopback: check.bool("WEBHOOKS_ALLOW_LOOPBACK", false) };
        let whisper_stderr = check.bool("VIDEDIT_WHISPER_STDERR", false);
        let keyring = Self::keyring(&mut check, command);
        let billing = std::sync::Arc::new(Self::billing(&mut check));
        let stripe = Self::stripe(&mut check);
        let youtube = Self::youtube(&mut check);
        let tiktok = Self::tiktok(&mut check);
        let instagram = Self::instagram(&mut check);
        let instagram_source = match check.var("INSTAGRAM_UPLOAD") {
            None => videdit_service::publications::InstagramSource::Url,
            Some(v) => videdit_service::publications::InstagramSource::parse(&v).unwrap_or_else(|| {
                check.err("INSTAGRAM_UPLOAD", format!("{v:?} is not url or resumable"));
                videdit_service::publications::InstagramSource::Url
            }),
        };
        if check.errors.is_empty() {
            Ok(Self {
                bind,
                auth,
                limits,
                metrics_token,
                health_addr,
                work_dir,
                webhook_policy,
                keyring,
                whisper_stderr,
                billing,
                stripe,
                youtube,
                tiktok,
                instagram,
                instagram_source,
                clerk_publishable_key: check.var("CLERK_PUBLISHABLE_KEY"),
            })
        } else {
            Err(check.errors)
        }
    }

    /// `ENCRYPTION_KEYS`, required in production by `serve` and `worker`,
    /// the commands that read or write sealed values (where the public
    /// development key is refused).
    fn keyring(check: &mut Check<'_>, command: Command) -> std::sync::Arc<Keyring> {
        let production = Self::production(check) && matches!(command, Command::Serve | Command::Worker);
        let ring = match check.var("ENCRYPTION_KEYS") {
            Some(v) => match Keyring::parse(&v) {
                Ok(ring) if production && ring.key_ids().any(|id| id == videdit_core::sealed::DEVELOPMENT_KEY_ID) => {
                    check.err("ENCRYPTION_KEYS", "the key id `dev` is refused when VIDEDIT_ENV=production");
                    ring
                }
                Ok(ring) => ring,
                Err(e) => {
                    check.err("ENCRYPTION_KEYS", e.to_string());
                    Keyring::development()
                }
            },
            None if production => {
                check.err("ENCRYPTION_KEYS", "is required when VIDEDIT_ENV=production (id:base64 of 32 random bytes)");
                Keyring::development()
            }
            None => Keyring::development(),
        };
        std::sync::Arc::new(ring)
    }

    /// `PLANS_FILE` and `BILLING_GRACE_HOURS`.
    fn billing(check: &mut Check<'_>) -> videdit_service::billing::Billing {
        use videdit_service::billing::{Billing, Plans};
        let hours = check.number("BILLING_GRACE_HOURS", |_: &u32| true, "a number of hours", 168);
        let plans = match check.var("PLANS_FILE") {
            None => Plans::unlimited(),
            Some(path) => {
                match std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}")).and_then(|t| Plans::parse(&t))
                {
                    Ok(p) => p,
                    Err(e) => {
                        check.err("PLANS_FILE", e);
                        Plans::unlimited()
                    }
                }
            }
        };
        Billing { plans, grace: time::Duration::hours(i64::from(hours)) }
    }

    /// An app's id, secret and redirect URI (`{P}_{ID}`, `{P}_CLIENT_SECRET`,
    /// `{P}_REDIRECT_URI` defaulting to `PUBLIC_URL/connections/{path}/callback`):
    /// `None` when the id and secret are both unset.
    fn app(
        check: &mut Check<'_>,
        id_var: &'static str,
        secret_var: &'static str,
        redirect_var: &'static str,
        path: &str,
    ) -> Option<(String, String, String)> {
        let id = check.var(id_var);
        let secret = check.var(secret_var);
        let Some(id) = id else {
            if secret.is_some() {
                check.err(id_var, format!("is required when {secret_var} is set"));
            }
            return None;
        };
        let secret = secret.unwrap_or_else(|| {
            check.err(secret_var, format!("is required with {id_var}"));
            String::new()
        });
        let public = check.var("PUBLIC_URL").map(|u| u.trim_end_matches('/').to_owned());
        let redirect = check.var(redirect_var).or_else(|| public.map(|p| format!("{p}/connections/{path}/callback")));
        let redirect = redirect.unwrap_or_else(|| {
            check.err(redirect_var, format!("is required with {id_var} (or set PUBLIC_URL)"));
            String::new()
        });
        Some((id, secret, redirect))
    }

    /// A URL setting, or its default.
    fn url(check: &mut Check<'_>, var: &'static str, default: &url::Url) -> url::Url {
        match check.var(var) {
            None => default.clone(),
            Some(raw) => raw.parse().unwrap_or_else(|_| {
                check.err(var, format!("{raw:?} is not a URL"));
                default.clone()
            }),
        }
    }

    /// `YOUTUBE_*`: the client and Google's endpoints.
    fn youtube(check: &mut Check<'_>) -> Option<videdit_publish::youtube::YouTubeConfig> {
        let (id, secret, redirect) =
            Self::app(check, "YOUTUBE_CLIENT_ID", "YOUTUBE_CLIENT_SECRET", "YOUTUBE_REDIRECT_URI", "youtube")?;
        let mut cfg = videdit_publish::youtube::YouTubeConfig::new(id, Secret::new(secret), redirect);
        cfg.auth_url = Self::url(check, "YOUTUBE_AUTH_URL", &cfg.auth_url);
        cfg.token_url = Self::url(check, "YOUTUBE_TOKEN_URL", &cfg.token_url);
        cfg.revoke_url = Self::url(check, "YOUTUBE_REVOKE_URL", &cfg.revoke_url);
        cfg.api_base = Self::url(check, "YOUTUBE_API_BASE", &cfg.api_base);
        cfg.upload_base = cfg.api_base.clone();
        Some(cfg)
    }

    /// `TIKTOK_*`: the app and TikTok's endpoints.
    fn tiktok(check: &mut Check<'_>) -> Option<videdit_publish::tiktok::TikTokConfig> {
        let (key, secret, redirect) =
            Self::app(check, "TIKTOK_CLIENT_KEY", "TIKTOK_CLIENT_SECRET", "TIKTOK_REDIRECT_URI", "tiktok")?;
        let mut cfg = videdit_publish::tiktok::TikTokConfig::new(key, Secret::new(secret), redirect);
        cfg.auth_url = Self::url(check, "TIKTOK_AUTH_URL", &cfg.auth_url);
        cfg.api_base = Self::url(check, "TIKTOK_API_BASE", &cfg.api_base);
        Some(cfg)
    }

    /// `INSTAGRAM_*`: the app and Instagram's endpoints.
    fn instagram(check: &mut Check<'_>) -> Option<videdit_publish::instagram::InstagramConfig> {
        let (id, secret, redirect) =
            Self::app(check, "INSTAGRAM_CLIENT_ID", "INSTAGRAM_CLIENT_SECRET", "INSTAGRAM_REDIRECT_URI", "instagram")?;
        let mut cfg = videdit_publish::instagram::InstagramConfig::new(id, Secret::new(secret), redirect);
        cfg.auth_url = Self::url(check, "INSTAGRAM_AUTH_URL", &cfg.auth_url);
        cfg.token_url = Self::url(check, "INSTAGRAM_TOKEN_URL", &cfg.token_url);
        cfg.graph_base = Self::url(check, "INSTAGRAM_GRAPH_BASE", &cfg.graph_base);
        Some(cfg)
    }

    /// `STRIPE_*` and `BILLING_*_URL`: all or nothing.
    fn stripe(check: &mut Check<'_>) -> Option<StripeSettings> {
        let secret_key = check.var("STRIPE_SECRET_KEY");
        let webhook_secret = check.var("STRIPE_WEBHOOK_SECRET");
        let Some(secret_key) = secret_key else {
            if webhook_secret.is_some() {
                check.err("STRIPE_SECRET_KEY", "is required when STRIPE_WEBHOOK_SECRET is set");
            }
            return None;
        };
        if !cfg!(feature = "stripe") {
            check.err("STRIPE_SECRET_KEY", "this build has no Stripe support (cargo feature `stripe`)");
        }
        if !["sk_", "rk_"].iter().any(|p| secret_key.starts_with(p)) {
            check.err("STRIPE_SECRET_KEY", "is not a Stripe secret key (sk_… or rk_…)");
        }
        let webhook_secret = webhook_secret.unwrap_or_else(|| {
            check.err(
                "STRIPE_WEBHOOK_SECRET",
                "is required with STRIPE_SECRET_KEY (whsec_…, from the webhook endpoint)",
            );
            String::new()
        });
        let raw_base = check.var("STRIPE_API_BASE").unwrap_or_else(|| "https://api.stripe.com".into());
        let api_base = raw_base.parse::<url::Url>().unwrap_or_else(|_| {
            check.err("STRIPE_API_BASE", format!("{raw_base:?} is not a URL"));
            "https://api.stripe.com".parse().expect("a URL")
        });
        let public = check.var("PUBLIC_URL").map(|u| u.trim_end_matches('/').to_owned());
        let mut url = |var: &'static str, path: &str| {
            let v = check.var(var).or_else(|| public.as_ref().map(|p| format!("{p}{path}")));
            match v {
                Some(u) if u.starts_with("https://") || u.starts_with("http://") => u,
                Some(u) => {
                    check.err(var, format!("{u:?} is not an http(s) URL"));
                    u
                }
                None => {
                    check.err(var, "is required with STRIPE_SECRET_KEY (or set PUBLIC_URL)");
                    String::new()
                }
            }
        };
        let success_url = url("BILLING_SUCCESS_URL", "/billing?checkout=success");
        let cancel_url = url("BILLING_CANCEL_URL", "/billing?checkout=cancel");
        let portal_return_url = url("BILLING_PORTAL_RETURN_URL", "/billing");
        Some(StripeSettings {
            secret_key: Secret::new(secret_key),
            webhook_secret: Secret::new(webhook_secret),
            publishable_key: check.var("STRIPE_PUBLISHABLE_KEY"),
            api_base,
            meter_event: check.var("STRIPE_METER_EVENT"),
            success_url,
            cancel_url,
            portal_return_url,
        })
    }

    /// Whether the environment is production, with the core configuration's
    /// precedence: VIDEDIT_ENV, then NODE_ENV.
    fn production(check: &Check<'_>) -> bool {
        let environment = check.var("VIDEDIT_ENV").or_else(|| check.var("NODE_ENV"));
        environment.as_deref().and_then(Environment::parse) == Some(Environment::Production)
    }

    fn auth(check: &mut Check<'_>, bind: SocketAddr) -> AuthSettings {
        match check.var("AUTH_MODE").map(|m| m.to_ascii_lowercase()).as_deref().unwrap_or("clerk") {
            "insecure-dev" => {
                if !bind.ip().is_loopback() {
                    check
                        .err("AUTH_MODE", format!("insecure-dev refuses to start on {bind}: bind to 127.0.0.1 or ::1"));
                }
                if Self::production(check) {
                    check.err("AUTH_MODE", "insecure-dev is refused when VIDEDIT_ENV=production");
                }
                AuthSettings::InsecureDev
            }
            "clerk" => {
                let issuer = check.var("CLERK_ISSUER");
                if issuer.is_none() {
                    check.err(
                        "CLERK_ISSUER",
                        "is required (https://<your-app>.clerk.accounts.dev), or set AUTH_MODE=insecure-dev for local development",
                    );
                }
                let issuer = issuer.unwrap_or_default();
                let jwks_url = check
                    .var("CLERK_JWKS_URL")
                    .unwrap_or_else(|| format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/')));
                let audience = check.var("CLERK_AUDIENCE");
                let authorized_parties: Vec<String> = check
                    .var("CLERK_AUTHORIZED_PARTIES")
                    .map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
                    .unwrap_or_default();
                if Self::production(check) && audience.is_none() && authorized_parties.is_empty() {
                    // Without either, a token Clerk minted for another of
                    // the instance's apps would be accepted here.
                    check.err(
                        "CLERK_AUTHORIZED_PARTIES",
                        "is required when VIDEDIT_ENV=production (the web app's origins), unless CLERK_AUDIENCE is set",
                    );
                }
                AuthSettings::Clerk(ClerkConfig {
                    jwks_url,
                    issuer,
                    audience,
                    authorized_parties,
                    leeway: Duration::from_secs(5),
                    min_refresh_interval: Duration::from_secs(30),
                    max_key_age: Duration::from_secs(3600),
                })
            }
            other => {
                check.err("AUTH_MODE", format!("{other:?} is not one of clerk, insecure-dev"));
                AuthSettings::InsecureDev
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use clap::{CommandFactory as _, Parser};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    /// Every flag of [`Settings`] with its variable.
    fn flags() -> Vec<(String, String)> {
        Cli::command()
            .get_arguments()
            .filter_map(|a| Some((a.get_long()?.to_owned(), a.get_env()?.to_str()?.to_owned())))
            .collect()
    }

    fn server(command: Command, vars: &[(&str, &str)]) -> Result<ServerSettings, Vec<ConfigError>> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        ServerSettings::load(command, &|k| map.get(k).cloned())
    }

    const ISSUER: (&str, &str) = ("CLERK_ISSUER", "https://example.clerk.accounts.dev");
    const KEYS: (&str, &str) = ("ENCRYPTION_KEYS", "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=");

    #[test]
    fn encryption_keys_are_required_in_production_and_the_development_key_refused_there() {
        let ids = |s: &ServerSettings| s.keyring.key_ids().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(ids(&server(Command::Worker, &[]).unwrap()), ["dev"], "development falls back to the public key");
        let prod = ("VIDEDIT_ENV", "production");
        assert!(server(Command::Migrate, &[prod]).is_ok(), "migrations seal nothing");
        let errors = server(Command::Worker, &[prod]).unwrap_err();
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["ENCRYPTION_KEYS: is required when VIDEDIT_ENV=production (id:base64 of 32 random bytes)"]
        );
        let two = (
            "ENCRYPTION_KEYS",
            "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=, k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
        );
        assert_eq!(ids(&server(Command::Worker, &[prod, two]).unwrap()), ["k2", "k1"]);
        let dev_id = ("ENCRYPTION_KEYS", "dev:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=");
        let e = server(Command::Worker, &[prod, dev_id]).unwrap_err();
        assert_eq!(e[0].to_string(), "ENCRYPTION_KEYS: the key id `dev` is refused when VIDEDIT_ENV=production");
        let bad = server(Command::Worker, &[("ENCRYPTION_KEYS", "k:c2hvcnQ=")]).unwrap_err();
        assert_eq!(bad[0].to_string(), "ENCRYPTION_KEYS: key `k` must be 32 bytes, not 5");
    }

    #[test]
    fn every_flag_reaches_validation_under_its_variable() {
        let flags = flags();
        let mut argv = vec!["videdit".to_owned()];
        for (long, var) in &flags {
            argv.extend([format!("--{long}"), format!("value of {var}")]);
        }
        let settings = Cli::try_parse_from(argv).unwrap().settings;
        for (_, var) in &flags {
            assert_eq!(settings.lookup(var), Some(format!("value of {var}")), "{var}");
        }
        // Every variable the core configuration and the server settings read has a flag.
        let asked = std::cell::RefCell::new(Vec::<String>::new());
        for mode in ["clerk", "insecure-dev"] {
            let record = |k: &str| {
                asked.borrow_mut().push(k.to_owned());
                (k == "AUTH_MODE").then(|| mode.to_owned())
            };
            let _ = ServerSettings::load(Command::Serve, &record);
        }
        let asked = asked.into_inner();
        for var in videdit_core::config::VARIABLES.iter().copied().chain(asked.iter().map(String::as_str)) {
            assert!(flags.iter().any(|(_, v)| v == var), "{var} has no flag");
        }
    }

    #[test]
    fn defaults_shown_in_help_are_the_defaults_validation_uses() {
        let base = [("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"), ISSUER];
        let core = |vars: &[(&str, &str)]| {
            let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
            format!("{:?}", Config::load(Command::Serve, &|k| map.get(k).cloned()).unwrap())
        };
        let expected = (core(&base), format!("{:?}", server(Command::Serve, &base).unwrap()));
        let command = Cli::command();
        let defaults: Vec<_> = command
            .get_arguments()
            .filter_map(|a| Some((a.get_env()?.to_str()?, a.get_default_values().first()?.to_str()?)))
            .collect();
        assert!(defaults.len() >= 10, "{defaults:?}");
        for (var, default) in defaults {
            let vars = [base[0], base[1], (var, default)];
            assert_eq!((core(&vars), format!("{:?}", server(Command::Serve, &vars).unwrap())), expected, "{var}");
        }
    }

    #[test]
    fn limits_are_validated_and_every_bad_value_reported() {
        let s =
            server(Command::Worker, &[("LIMIT_UPLOAD_BYTES", " 1000 "), ("LIMIT_REQUESTS_PER_SECOND", "0")]).unwrap();
        assert_eq!(s.limits.max_upload_bytes, 1000);
        assert_eq!(s.limits.requests_per_second, 0.0);
        assert_eq!(s.limits.max_duration_seconds, Limits::default().max_duration_seconds);
        assert!(s.auth.is_none(), "a worker does not authenticate");
        let errors = server(
            Command::Worker,
            &[
                ("LIMIT_UPLOAD_BYTES", "0"),
                ("LIMIT_DURATION_SECONDS", "inf"),
                ("LIMIT_REQUESTS_PER_SECOND", "-1"),
                ("HEALTH_ADDR", ":8081"),
                ("WEBHOOKS_ALLOW_LOOPBACK", "maybe"),
            ],
        )
        .unwrap_err();
        let vars: Vec<_> = errors.iter().map(|e| e.var).collect();
        assert_eq!(
            vars,
            [
                "HEALTH_ADDR",
                "LIMIT_UPLOAD_BYTES",
                "LIMIT_DURATION_SECONDS",
                "LIMIT_REQUESTS_PER_SECOND",
                "WEBHOOKS_ALLOW_LOOPBACK"
            ]
        );
    }

    #[test]
    fn production_clerk_needs_an_audience_or_authorized_parties() {
        let prod = ("VIDEDIT_ENV", "production");
        let errors = server(Command::Serve, &[ISSUER, prod, KEYS]).unwrap_err();
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "CLERK_AUTHORIZED_PARTIES: is required when VIDEDIT_ENV=production (the web app's origins), unless CLERK_AUDIENCE is set"
            ]
        );
        assert!(
            server(Command::Serve, &[ISSUER, prod, KEYS, ("CLERK_AUTHORIZED_PARTIES", "https://app.example")]).is_ok()
        );
        assert!(server(Command::Serve, &[ISSUER, prod, KEYS, ("CLERK_AUDIENCE", "videdit")]).is_ok());
        assert!(server(Command::Serve, &[ISSUER]).is_ok(), "development needs neither");
    }

    #[test]
    fn serve_needs_an_issuer_or_insecure_dev_on_loopback_outside_production() {
        let errors = server(Command::Serve, &[]).unwrap_err();
        assert_eq!(errors.iter().map(|e| e.var).collect::<Vec<_>>(), ["CLERK_ISSUER"]);
        let s =
            server(Command::Serve, &[ISSUER, ("CLERK_AUTHORIZED_PARTIES", "https://a.example, ,https://b.example")])
                .unwrap();
        let Some(AuthSettings::Clerk(clerk)) = s.auth else { panic!("{:?}", s.auth) };
        assert_eq!(clerk.jwks_url, "https://example.clerk.accounts.dev/.well-known/jwks.json");
        assert_eq!(clerk.authorized_parties, ["https://a.example", "https://b.example"]);

        let dev = [("AUTH_MODE", "insecure-dev")];
        assert!(matches!(server(Command::Serve, &dev).unwrap().auth, Some(AuthSettings::InsecureDev)));
        for production in [("VIDEDIT_ENV", "production"), ("NODE_ENV", "prod")] {
            let errors = server(Command::Serve, &[dev[0], production, KEYS]).unwrap_err();
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].to_string(), "AUTH_MODE: insecure-dev is refused when VIDEDIT_ENV=production");
        }
        let errors =
            server(Command::Serve, &[dev[0], ("BIND_ADDR", "0.0.0.0:80"), ("VIDEDIT_ENV", "production"), KEYS])
                .unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        let e = &server(Command::Serve, &[("AUTH_MODE", "basic")]).unwrap_err()[0];
        assert_eq!(e.to_string(), "AUTH_MODE: \"basic\" is not one of clerk, insecure-dev");
    }

    #[test]
    fn secrets_never_print() {
        let settings = Cli::try_parse_from([
            "videdit",
            "--metrics-token",
            "tok-hunter2",
            "--database-url",
            "postgresql://u:pw-hunter2@db/app",
            "--s3-secret-access-key",
            "s3-hunter2",
            "--storage-signing-key",
            "key-hunter2-key-hunter2-key-hunter2",
        ])
        .unwrap()
        .settings;
        assert!(!format!("{settings:?}").contains("hunter2"));
        let s = server(Command::Worker, &[("METRICS_TOKEN", "tok-hunter2")]).unwrap();
        assert_eq!(s.metrics_token.as_ref().map(|t| t.expose().as_str()), Some("tok-hunter2"));
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
