//! API latency at a fixed request rate (open loop, so slow responses are not
//! hidden by a client that waits: latency counts from each request's
//! scheduled send time).
//!
//! `cargo bench -p videdit-benches --bench api` (needs DATABASE_URL; makes
//! and drops a scratch database). Env: `RATE` (req/s, default 1000),
//! `SECONDS` (default 10).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Route, handler};
use serde_json::json;
use sqlx::Connection;
use videdit_core::storage::{LocalStorage, UrlSigner};
use videdit_server::app::{self, AppState};
use videdit_server::auth::{AuthMode, Authenticator, ClerkConfig, Jwks};
use videdit_server::rate_limit::RateLimiter;
use videdit_server::settings::Limits;

const KEY: &[u8] = include_bytes!("../../videdit-server/tests/api/fixtures/test-rsa.pem");
const JWKS: &str = include_str!("../../videdit-server/tests/api/fixtures/jwks.json");

#[handler]
fn jwks() -> poem::web::Json<serde_json::Value> {
    poem::web::Json(serde_json::from_str(JWKS).unwrap())
}

async fn serve(ep: impl poem::Endpoint + 'static) -> String {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(ep));
    format!("http://{addr}")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run_at_rate<F, Fut>(name: &str, rate: f64, seconds: f64, make: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u16> + Send + 'static,
{
    let n = (rate * seconds) as usize;
    let start = Instant::now() + Duration::from_millis(50);
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(at.into()).await;
        let fut = make();
        handles.push(tokio::spawn(async move {
            let status = fut.await;
            (status, at.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let mut lat = Vec::with_capacity(n);
    let mut errors = 0;
    for h in handles {
        let (status, ms) = h.await.unwrap();
        if !(200..300).contains(&status) {
            errors += 1;
        }
        lat.push(ms);
    }
    let wall = start.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{name:<22} target {rate:>6.0} req/s  achieved {:>7.0} req/s  p50 {:>6.2} ms  p95 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  errors {errors}",
        n as f64 / wall,
        percentile(&lat, 0.50),
        percentile(&lat, 0.95),
        percentile(&lat, 0.99),
        lat[lat.len() - 1],
    );
}

#[tokio::main]
async fn main() {
    let rate: f64 = std::env::var("RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(1000.0);
    let seconds: f64 = std::env::var("SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10.0);
    let base_url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".into());
    let db = format!("videdit_bench_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&base_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {db}")).execute(&mut admin).await.unwrap();
    let mut url = url::Url::parse(&base_url).unwrap();
    url.set_path(&db);
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(20).connect(url.as_str()).await.unwrap();
    videdit_server::migrate_all(&pool).await.unwrap();

    let jwks_base = serve(Route::new().at("/jwks", poem::get(jwks))).await;
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    let base = format!("http://{addr}");
    let dir = tempfile::tempdir().unwrap();
    let local = LocalStorage::open(dir.path(), Some(UrlSigner::new(vec![1u8; 32], base.parse().unwrap()).unwrap()))
        .await
        .unwrap();
    let state = Arc::new(AppState {
        billing: Arc::new(videdit_service::billing::Billing::unlimited()),
        payments: None,
        stripe_webhook: None,
        stripe_publishable_key: None,
        clerk_publishable_key: None,
        platforms: Default::default(),
        pool: pool.clone(),
        storage: Arc::new(local.clone()),
        local: Some(local),
        auth: Authenticator::new(AuthMode::Clerk(Box::new(Jwks::new(ClerkConfig {
            jwks_url: format!("{jwks_base}/jwks"),
            issuer: "https://bench".into(),
            audience: None,
            authorized_parties: vec![],
            leeway: Duration::from_secs(5),
            min_refresh_interval: Duration::from_secs(30),
            max_key_age: Duration::from_secs(3600),
        })))),
        rate_limiter: RateLimiter::new(0.0, 1.0),
        ip_rate_limiter: RateLimiter::new(0.0, 1.0),
        limits: Limits { requests_per_second: 0.0, ..Limits::default() },
        http_metrics: Default::default(),
        metrics_token: None,
        webhook_policy: videdit_webhooks::UrlPolicy::DEV,
        keyring: Arc::new(videdit_core::sealed::Keyring::development()),
    });
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app::routes(state, &base)));

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("test-key-1".into());
    let claims = json!({"sub": "user_bench", "iss": "https://bench", "exp": now + 3600, "org_id": "org_bench", "org_role": "org:admin"});
    let token = Arc::new(jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(KEY).unwrap()).unwrap());
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    let create = json!({"fileName": "talk.mp4", "contentType": "video/mp4", "size": 1000});
    for _ in 0..50 {
        let r = client.post(format!("{base}/api/v1/uploads")).bearer_auth(&*token).json(&create).send().await.unwrap();
        assert_eq!(r.status(), 201);
    }
    // Warm up connections and caches.
    for _ in 0..200 {
        client.get(format!("{base}/api/v1/videos")).bearer_auth(&*token).send().await.unwrap();
    }
    println!(
        "machine: {} cores; PostgreSQL on the same box; server and load generator in one process",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let list_url = Arc::new(format!("{base}/api/v1/videos?limit=50"));
    run_at_rate("GET /api/v1/videos", rate, seconds, || {
        let (c, u, t) = (client.clone(), list_url.clone(), token.clone());
        async move { c.get(&*u).bearer_auth(&*t).send().await.map_or(0, |r| r.status().as_u16()) }
    })
    .await;
    let post_url = Arc::new(format!("{base}/api/v1/uploads"));
    run_at_rate("POST /api/v1/uploads", rate, seconds, || {
        let (c, u, t, b) = (client.clone(), post_url.clone(), token.clone(), create.clone());
        async move { c.post(&*u).bearer_auth(&*t).json(&b).send().await.map_or(0, |r| r.status().as_u16()) }
    })
    .await;

    // Completing uploads (the transaction that moves the video, records
    // `video.uploaded` in the outbox and queues ingest): uploads made and
    // filled beforehand, one completion each, at `COMPLETE_RATE`.
    let complete_rate: f64 = std::env::var("COMPLETE_RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(200.0);
    let n = (complete_rate * seconds) as usize;
    let small = json!({"fileName": "talk.mp4", "contentType": "video/mp4", "size": 10});
    let mut ready = Vec::with_capacity(n);
    for _ in 0..n {
        let plan: serde_json::Value = client
            .post(format!("{base}/api/v1/uploads"))
            .bearer_auth(&*token)
            .json(&small)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut put = client.put(plan["url"].as_str().unwrap());
        for h in plan["headers"].as_array().into_iter().flatten() {
            put = put.header(h["name"].as_str().unwrap(), h["value"].as_str().unwrap());
        }
        assert_eq!(put.body(vec![0u8; 10]).send().await.unwrap().status(), 200);
        ready.push(format!("{base}/api/v1/uploads/{}/complete", plan["uploadId"].as_str().unwrap()));
    }
    let ready = Arc::new(Mutex::new(ready.into_iter()));
    run_at_rate("POST /uploads/{id}/complete", complete_rate, seconds, || {
        let (c, t) = (client.clone(), token.clone());
        let u = ready.lock().unwrap().next().expect("one upload per request");
        async move { c.post(&u).bearer_auth(&*t).json(&json!({})).send().await.map_or(0, |r| r.status().as_u16()) }
    })
    .await;

    pool.close().await;
    sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)")).execute(&mut admin).await.unwrap();
}
