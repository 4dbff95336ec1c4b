//! `spawn_app`: the server on a free port, with a JWKS server beside it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{EndpointExt, Route, handler, web::Data};
use serde_json::{Value, json};
use sqlx::PgPool;
use videdit_core::Secret;
use videdit_core::config::S3Config;
use videdit_core::storage::{LocalStorage, S3Storage, Storage, UrlSigner};
use videdit_server::app::{self, AppState};
use videdit_server::auth::{AuthMode, Authenticator, ClerkConfig, Jwks};
use videdit_server::settings::Limits;

pub const ISSUER: &str = "https://clerk.test.videdit.dev";
const TEST_KEY: &[u8] = include_bytes!("fixtures/test-rsa.pem");
const OTHER_KEY: &[u8] = include_bytes!("fixtures/other-rsa.pem");

pub struct TestApp {
    pub base: String,
    pub storage: Arc<dyn Storage>,
    pub _pool: PgPool,
    pub client: reqwest::Client,
    pub rotated: Arc<AtomicBool>,
    pub jwks_hits: Arc<std::sync::atomic::AtomicUsize>,
    pub jwks: JwksState,
    pub billing: Arc<videdit_service::billing::Billing>,
    pub payments: Option<Arc<dyn videdit_service::billing::PaymentProvider>>,
    pub platforms: videdit_service::connections::Platforms,
    pub instagram_source: videdit_service::publications::InstagramSource,
    _dir: tempfile::TempDir,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    Local,
    S3,
}

pub struct Options {
    pub storage: StorageKind,
    pub limits: Limits,
    /// `METRICS_TOKEN`.
    pub metrics_token: Option<String>,
    /// The server's pool points at a port where no database listens.
    pub database_down: bool,
    /// The server's storage is an S3 endpoint where nothing listens.
    pub storage_down: bool,
    /// The JWKS endpoint answers 503.
    pub jwks_down: bool,
    /// Which webhook URLs are accepted (tests deliver to loopback).
    pub webhook_policy: videdit_webhooks::UrlPolicy,
    /// Plans (default: unlimited).
    pub billing: videdit_service::billing::Billing,
    /// Stripe (default: billing off).
    pub stripe: Option<videdit_server::settings::StripeSettings>,
    /// YouTube (default: not configured).
    pub youtube: Option<videdit_publish::youtube::YouTubeConfig>,
    /// TikTok (default: not configured).
    pub tiktok: Option<videdit_publish::tiktok::TikTokConfig>,
    /// Instagram (default: not configured).
    pub instagram: Option<videdit_publish::instagram::InstagramConfig>,
    /// How Meta gets the bytes (default: it fetches a presigned URL).
    pub instagram_source: videdit_service::publications::InstagramSource,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            storage: StorageKind::Local,
            limits: Limits { requests_per_second: 0.0, requests_per_second_per_ip: 0.0, ..Limits::default() },
            metrics_token: None,
            database_down: false,
            storage_down: false,
            jwks_down: false,
            webhook_policy: videdit_webhooks::UrlPolicy::DEV,
            billing: videdit_service::billing::Billing::unlimited(),
            stripe: None,
            youtube: None,
            tiktok: None,
            instagram: None,
            instagram_source: videdit_service::publications::InstagramSource::Url,
        }
    }
}

/// The audience and authorised party every test token carries (checked).
pub const AUDIENCE: &str = "videdit-test";
pub const AUTHORIZED_PARTY: &str = "http://localhost:3000";

/// The fake identity provider's switches.
#[derive(Clone, Default)]
pub struct JwksState {
    /// Serve the rotated key set (the first key removed, a second added).
    pub rotated: Arc<AtomicBool>,
    /// Answer 503.
    pub down: Arc<AtomicBool>,
    /// Fetches so far.
    pub hits: Arc<std::sync::atomic::AtomicUsize>,
}

#[handler]
fn jwks(Data(state): Data<&JwksState>) -> poem::Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return poem::Response::builder().status(poem::http::StatusCode::SERVICE_UNAVAILABLE).finish();
    }
    let raw = if state.rotated.load(Ordering::SeqCst) {
        include_str!("fixtures/jwks-rotated.json")
    } else {
        include_str!("fixtures/jwks.json")
    };
    poem::Response::builder().content_type("application/json").body(raw)
}

async fn serve(ep: impl poem::Endpoint + 'static) -> String {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(ep));
    format!("http://{addr}")
}

pub async fn spawn_app(pool: PgPool, options: Options) -> TestApp {
    videdit_server::migrate_all(&pool).await.unwrap();
    let jwks_state = JwksState::default();
    jwks_state.down.store(options.jwks_down, Ordering::SeqCst);
    let jwks_base = serve(Route::new().at("/.well-known/jwks.json", poem::get(jwks)).data(jwks_state.clone())).await;

    // The server must know its own URL for local signed URLs before it
    // listens, so bind first, then build.
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    let base = format!("http://{addr}");
    let dir = tempfile::tempdir().unwrap();
    let (storage, local): (Arc<dyn Storage>, Option<LocalStorage>) = match options.storage {
        _ if options.storage_down => {
            let s3 = S3Storage::new(&S3Config {
                endpoint: Some(format!("http://{}", dead_addr())),
                bucket: "nowhere".into(),
                access_key_id: "x".into(),
                secret_access_key: Secret::new("y".into()),
                region: "auto".into(),
                force_path_style: true,
            });
            (Arc::new(s3), None)
        }
        StorageKind::Local => {
            let signer = UrlSigner::new(vec![9u8; 32], base.parse().unwrap()).unwrap();
            let local = LocalStorage::open(dir.path(), Some(signer)).await.unwrap();
            (Arc::new(local.clone()), Some(local))
        }
        StorageKind::S3 => {
            let var = |n: &str| std::env::var(n).unwrap_or_else(|_| panic!("{n} is not set: run scripts/test"));
            let s3 = S3Storage::new(&S3Config {
                endpoint: Some(var("VIDEDIT_TEST_S3_ENDPOINT")),
                bucket: format!("api-{}", &uuid::Uuid::new_v4().simple().to_string()[..20]),
                access_key_id: var("VIDEDIT_TEST_S3_ACCESS_KEY"),
                secret_access_key: Secret::new(var("VIDEDIT_TEST_S3_SECRET_KEY")),
                region: "auto".into(),
                force_path_style: true,
            });
            s3.ensure_bucket().await.unwrap();
            (Arc::new(s3), None)
        }
    };
    let auth = Authenticator::new(AuthMode::Clerk(Box::new(Jwks::new(ClerkConfig {
        jwks_url: format!("{jwks_base}/.well-known/jwks.json"),
        issuer: ISSUER.into(),
        audience: Some(AUDIENCE.into()),
        authorized_parties: vec![AUTHORIZED_PARTY.into()],
        leeway: Duration::from_secs(5),
        min_refresh_interval: Duration::from_millis(200),
        max_key_age: Duration::from_secs(2),
    }))));
    let app_pool = if options.database_down {
        sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy(&format!("postgresql://postgres@{}/postgres", dead_addr()))
            .unwrap()
    } else {
        pool.clone()
    };
    let billing = Arc::new(options.billing);
    let (payments, stripe_webhook) = videdit_server::billing::from_settings(options.stripe.as_ref()).unwrap();
    let platforms = videdit_service::connections::Platforms {
        youtube: options.youtube.map(|c| Arc::new(videdit_publish::youtube::YouTube::new(c).unwrap())),
        tiktok: options.tiktok.map(|c| Arc::new(videdit_publish::tiktok::TikTok::new(c).unwrap())),
        instagram: options.instagram.map(|c| Arc::new(videdit_publish::instagram::Instagram::new(c).unwrap())),
    };
    let state = Arc::new(AppState {
        billing: billing.clone(),
        payments: payments.clone(),
        stripe_webhook,
        stripe_publishable_key: options.stripe.as_ref().and_then(|s| s.publishable_key.clone()),
        clerk_publishable_key: None,
        platforms: platforms.clone(),
        pool: app_pool,
        storage: storage.clone(),
        local,
        auth,
        rate_limiter: options.limits.user_rate_limiter(),
        ip_rate_limiter: options.limits.ip_rate_limiter(),
        limits: options.limits,
        http_metrics: Default::default(),
        metrics_token: options.metrics_token.map(Secret::new),
        webhook_policy: options.webhook_policy,
        keyring: keyring(),
    });
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app::routes(state, &base)));
    TestApp {
        base,
        storage,
        _pool: pool,
        client: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap(),
        rotated: jwks_state.rotated.clone(),
        jwks_hits: jwks_state.hits.clone(),
        jwks: jwks_state,
        billing,
        payments,
        platforms,
        instagram_source: options.instagram_source,
        _dir: dir,
    }
}

/// A loopback address where nothing listens (bound, then released).
pub fn dead_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A signed Clerk-style session token.
pub fn token_with(claims: Value, kid: &str, key: &[u8]) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(key).unwrap()).unwrap()
}

/// Standard claims for a user acting in an organisation (v1 claim shape).
pub fn claims(user: &str, org: Option<(&str, &str)>) -> Value {
    let mut c = json!({"sub": user, "iss": ISSUER, "aud": AUDIENCE, "iat": now(), "nbf": now() - 5, "exp": now() + 600, "azp": AUTHORIZED_PARTY});
    if let Some((org, role)) = org {
        c["org_id"] = json!(org);
        c["org_role"] = json!(role);
        c["org_slug"] = json!(org.trim_start_matches("org_"));
    }
    c
}

pub fn token(user: &str, org: Option<(&str, &str)>) -> String {
    token_with(claims(user, org), "test-key-1", TEST_KEY)
}

pub fn other_key() -> &'static [u8] {
    OTHER_KEY
}

pub fn test_key() -> &'static [u8] {
    TEST_KEY
}

/// The keyring of every test server and worker: a fixed test key (not the
/// public development one, so a test cannot pass by reading that).
pub fn keyring() -> Arc<videdit_core::sealed::Keyring> {
    Arc::new(videdit_core::sealed::Keyring::parse(TEST_KEYS).unwrap())
}

/// `ENCRYPTION_KEYS` of the test apps.
pub const TEST_KEYS: &str = "test-1:dGVzdC1rZXktdGhpcnR5LXR3by1ieXRlcy1sb25nISE=";

impl TestApp {
    /// What a worker of this app needs: its storage and keyring, loopback
    /// webhooks, and the media stack when given.
    pub fn worker_deps(
        &self,
        media: Option<Arc<videdit_server::handlers::MediaDeps>>,
    ) -> videdit_server::handlers::Deps {
        videdit_server::handlers::Deps {
            storage: self.storage.clone(),
            media,
            webhooks: videdit_webhooks::Sender::new(videdit_webhooks::UrlPolicy::DEV),
            keyring: keyring(),
            billing: self.billing.clone(),
            payments: self.payments.clone(),
            platforms: self.platforms.clone(),
            instagram_source: self.instagram_source,
        }
    }

    /// A worker of this app without media, claiming from `queue` only.
    pub fn queue_worker(&self, pool: &PgPool, queue: &str) -> videdit_queue::Worker {
        self.queue_worker_with_keys(pool, queue, TEST_KEYS)
    }

    /// [`TestApp::queue_worker`] with another `ENCRYPTION_KEYS` (a rotation).
    pub fn queue_worker_with_keys(&self, pool: &PgPool, queue: &str, keys: &str) -> videdit_queue::Worker {
        let config = videdit_queue::WorkerConfig { queues: vec![queue.into()], ..Default::default() };
        let mut deps = self.worker_deps(None);
        deps.keyring = Arc::new(videdit_core::sealed::Keyring::parse(keys).unwrap());
        videdit_server::handlers::build(pool.clone(), config, deps).unwrap()
    }

    pub fn storage_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// Sends a request; returns status and JSON body (Null when empty or not JSON).
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        self.call_with(method, path, token, body, &[]).await
    }

    /// [`TestApp::call`] with extra request headers.
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut r = self.client.request(method.parse().unwrap(), self.url(path));
        for (name, value) in headers {
            r = r.header(*name, *value);
        }
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// Asserts an error response's status and code.
#[track_caller]
pub fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["code"], code, "{}", got.1);
    assert!(got.1["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", got.1);
}

/// Every log line of this test process from now on (the server and the
/// worker run in it), at debug level for videdit and poem.
#[derive(Clone)]
pub struct CapturedLogs(Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLogs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing logger (once per test process; nextest runs each
/// test in its own).
pub fn capture_logs() -> CapturedLogs {
    static LOGS: std::sync::OnceLock<CapturedLogs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = CapturedLogs(Arc::default());
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,videdit=debug,videdit_server=debug,videdit_service=debug,videdit_media=debug,videdit_queue=debug,videdit_webhooks=debug,poem=debug"))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .init();
        logs
    })
    .clone()
}
