//! Operational endpoints: metrics behind a token (server and worker),
//! readiness that sees its dependencies fail, and the rate limiter's
//! `Retry-After` and refill.

use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::listener::{Acceptor, Listener, TcpListener};
use serde_json::json;
use sqlx::PgPool;

use crate::support::{Options, TestApp, assert_error, spawn_app, token};

async fn get(app: &TestApp, url: &str, bearer: Option<&str>) -> (u16, String) {
    let mut r = app.client.get(url);
    if let Some(t) = bearer {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[track_caller]
fn assert_refused(got: &(u16, String)) {
    assert_eq!(got.0, 401, "{}", got.1);
    let body: serde_json::Value = serde_json::from_str(&got.1).unwrap();
    assert_eq!(body, json!({"code": "unauthenticated", "message": "metrics need METRICS_TOKEN"}));
}

#[sqlx::test(migrations = false)]
async fn server_metrics_need_the_token_when_one_is_set(pool: PgPool) {
    let app = spawn_app(pool, Options { metrics_token: Some("scrape-me".into()), ..Options::default() }).await;
    let url = format!("{}/metrics", app.base);
    // With a token set, loopback alone is not enough.
    assert_refused(&get(&app, &url, None).await);
    assert_refused(&get(&app, &url, Some("scrape-m")).await);
    assert_refused(&get(&app, &url, Some("scrape-me-too")).await);
    let (status, text) = get(&app, &url, Some("scrape-me")).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("# TYPE videdit_http_requests_total counter"), "{text}");
}

async fn serve(ep: impl poem::Endpoint + 'static) -> String {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(ep));
    format!("http://{addr}")
}

#[sqlx::test(migrations = false)]
async fn worker_metrics_follow_the_same_rule(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let worker = videdit_queue::Worker::new(pool, videdit_queue::WorkerConfig::default()).unwrap();
    let with_token = serve(videdit_server::health::worker_routes(
        worker.metrics(),
        Some(videdit_core::Secret::new("worker-token".into())),
    ))
    .await;
    assert_eq!(get(&app, &format!("{with_token}/healthz"), None).await, (200, "ok".into()));
    assert_refused(&get(&app, &format!("{with_token}/metrics"), None).await);
    assert_refused(&get(&app, &format!("{with_token}/metrics"), Some("wrong")).await);
    let (status, text) = get(&app, &format!("{with_token}/metrics"), Some("worker-token")).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("# TYPE videdit_jobs_started_total counter"), "{text}");
    // Without a token: loopback peers (this test) are answered.
    let open = serve(videdit_server::health::worker_routes(Arc::new(videdit_queue::Metrics::default()), None)).await;
    let (status, text) = get(&app, &format!("{open}/metrics"), None).await;
    assert_eq!(status, 200, "{text}");
}

#[sqlx::test(migrations = false)]
async fn readiness_fails_when_the_database_is_down(pool: PgPool) {
    let app = spawn_app(pool, Options { database_down: true, ..Options::default() }).await;
    let r = app.client.get(format!("{}/readyz", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), json!({"database": false, "storage": true}));
    assert_eq!(app.client.get(format!("{}/healthz", app.base)).send().await.unwrap().status(), 200, "still alive");
}

#[sqlx::test(migrations = false)]
async fn readiness_fails_when_storage_is_down(pool: PgPool) {
    let app = spawn_app(pool, Options { storage_down: true, ..Options::default() }).await;
    let r = app.client.get(format!("{}/readyz", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), json!({"database": true, "storage": false}));
}

#[sqlx::test(migrations = false)]
async fn a_limited_user_is_told_when_to_retry_and_gets_in_after_the_refill(pool: PgPool) {
    let mut options = Options::default();
    options.limits.requests_per_second = 0.5;
    options.limits.request_burst = 1.0;
    let app = spawn_app(pool, options).await;
    let t = token("user_busy", None);
    assert_eq!(app.call("GET", "/videos", Some(&t), None).await.0, 200);
    let r = app.client.get(app.url("/videos")).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    let refused_at = Instant::now();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body, json!({"code": "rate_limited", "message": "too many requests; retry in 2 s"}));
    // Waiting what Retry-After said lets the next request in.
    tokio::time::sleep(Duration::from_secs(2).saturating_sub(refused_at.elapsed())).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(app.call("GET", "/videos", Some(&t), None).await.0, 200);
    assert_error(&app.call("GET", "/videos", Some(&t), None).await, 429, "rate_limited");
}

/// The per-address limit runs before any token is verified or the database
/// is asked: with the database down, the first request fails on it (503),
/// and once the address is over its limit the answer is 429 without trying
/// (a forged token gets 429 too, not 401). `/storage` and `/readyz` are
/// covered, `/healthz` is not.
#[sqlx::test(migrations = false)]
async fn the_address_limit_runs_before_token_verification_and_covers_storage_and_readyz(pool: PgPool) {
    let mut options = Options { database_down: true, ..Options::default() };
    options.limits.requests_per_second_per_ip = 0.05; // burst 1, refilled in 20 s
    let app = spawn_app(pool, options).await;
    let t = token("user_x", None);
    assert_error(&app.call("GET", "/videos", Some(&t), None).await, 503, "database_unavailable");
    for bearer in [t.as_str(), "forged.not-a.jwt"] {
        let started = Instant::now();
        let r = app.client.get(app.url("/videos")).bearer_auth(bearer).send().await.unwrap();
        assert_eq!(r.status(), 429);
        let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=20).contains(&wait), "{wait}");
        assert_eq!(r.json::<serde_json::Value>().await.unwrap()["code"], "rate_limited");
        assert!(started.elapsed() < Duration::from_secs(2), "refused without waiting for the database");
    }
    for path in ["/readyz", "/storage/anything?sig=x&exp=1"] {
        let r = app.client.get(format!("{}{path}", app.base)).send().await.unwrap();
        assert_eq!(r.status(), 429, "{path}");
    }
    let r = app.client.get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 200, "health checks are exempt");
}

/// A JSON API body over 1 MiB is refused with 413 `request_too_large`,
/// whether it declares its length or arrives chunked; nothing is created.
#[sqlx::test(migrations = false)]
async fn a_json_body_over_one_mebibyte_is_refused(pool: PgPool) {
    let app = spawn_app(pool, Options::default()).await;
    let t = token("user_big", None);
    let big = json!({"fileName": "a".repeat(1024 * 1024 + 10), "contentType": "video/mp4", "size": 5});
    let expected = json!({"code": "request_too_large", "message": "a request body has at most 1048576 bytes"});
    let r = app.client.post(app.url("/uploads")).bearer_auth(&t).json(&big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), expected);
    // Chunked: no Content-Length, the limit applies while reading.
    let bytes = serde_json::to_vec(&big).unwrap();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let r = app
        .client
        .post(app.url("/uploads"))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), expected);
    let (status, list) = app.call("GET", "/videos", Some(&t), None).await;
    assert_eq!((status, list["items"].as_array().map(Vec::len)), (200, Some(0)), "{list}");
    // A body under the limit still works.
    let small = json!({"fileName": "a.mp4", "contentType": "video/mp4", "size": 5});
    assert_eq!(app.call("POST", "/uploads", Some(&t), Some(small)).await.0, 201);
}
