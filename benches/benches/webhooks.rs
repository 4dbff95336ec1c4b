//! Webhook delivery: throughput to a loopback receiver with 20 deliveries
//! at once, and event-to-delivery latency with an idle worker (woken by
//! NOTIFY at the event's commit, not by polling).
//!
//! `cargo bench -p videdit-benches --bench webhooks` (needs DATABASE_URL;
//! makes and drops a scratch database). Env: `EVENTS` (throughput run,
//! default 2000), `LATENCY_EVENTS` (default 200).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{EndpointExt, Request, Route, handler};
use sqlx::Connection;
use tokio_util::sync::CancellationToken;
use videdit_core::event::EventType;
use videdit_core::storage::LocalStorage;

type Seen = Arc<Mutex<HashMap<String, Instant>>>;

#[handler]
fn receive(req: &Request, Data(seen): Data<&Seen>) -> &'static str {
    if let Some(id) = req.header("webhook-id") {
        seen.lock().unwrap().entry(id.to_owned()).or_insert_with(Instant::now);
    }
    "ok"
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn wait_for(seen: &Seen, n: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while seen.lock().unwrap().len() < n {
        assert!(Instant::now() < deadline, "only {} of {n} delivered", seen.lock().unwrap().len());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::main]
async fn main() {
    let events: usize = std::env::var("EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let latency_events: usize = std::env::var("LATENCY_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let base_url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".into());
    let db = format!("videdit_bench_hooks_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&base_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {db}")).execute(&mut admin).await.unwrap();
    let mut url = url::Url::parse(&base_url).unwrap();
    url.set_path(&db);
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(40).connect(url.as_str()).await.unwrap();
    let keyring = std::sync::Arc::new(videdit_core::sealed::Keyring::development());
    videdit_server::migrate_all(&pool).await.unwrap();

    let seen: Seen = Arc::default();
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    tokio::spawn(
        poem::Server::new_with_acceptor(acceptor).run(Route::new().at("/hook", poem::post(receive)).data(seen.clone())),
    );
    let org = videdit_core::db::upsert_org(&pool, "org_bench", "bench", None).await.unwrap();
    let input = videdit_service::webhooks::EndpointInput { url: format!("http://{addr}/hook"), ..Default::default() };
    videdit_service::webhooks::create(&pool, &keyring, videdit_webhooks::UrlPolicy::DEV, org, &input).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(LocalStorage::open(dir.path(), None).await.unwrap());
    let worker = videdit_server::handlers::build(
        pool.clone(),
        videdit_queue::WorkerConfig {
            queues: vec!["webhooks".into()],
            concurrency: 20,
            poll_interval: Duration::from_secs(5), // idle: woken by NOTIFY, not by polling
            ..Default::default()
        },
        videdit_server::handlers::Deps {
            storage,
            media: None,
            webhooks: videdit_webhooks::Sender::new(videdit_webhooks::UrlPolicy::DEV),
            keyring: keyring.clone(),
            billing: std::sync::Arc::new(videdit_service::billing::Billing::unlimited()),
            payments: None,
            platforms: Default::default(),
            instagram_source: Default::default(),
        },
    )
    .unwrap();
    println!(
        "machine: {} cores; PostgreSQL on the same box; worker, receiver and producer in one process",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Throughput: a backlog of events, then the worker drains it.
    for chunk in 0..events.div_ceil(100) {
        let mut tx = pool.begin().await.unwrap();
        for i in 0..100.min(events - chunk * 100) {
            let payload = serde_json::json!({"n": chunk * 100 + i});
            videdit_service::events::record(&mut tx, org, EventType::WebhookTest, None, payload).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    let stop = CancellationToken::new();
    let started = Instant::now();
    let run = tokio::spawn(worker.clone().run(stop.clone(), Duration::from_secs(5)));
    wait_for(&seen, events, Duration::from_secs(600)).await;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "throughput: {events} events delivered in {elapsed:.2} s = {:.0} events/s (20 concurrent deliveries)",
        events as f64 / elapsed
    );

    // Latency: one event at a time into an idle worker.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut lat = Vec::with_capacity(latency_events);
    for i in 0..latency_events {
        let mut tx = pool.begin().await.unwrap();
        let event = videdit_service::events::record(
            &mut tx,
            org,
            EventType::WebhookTest,
            None,
            serde_json::json!({"latency": i}),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let committed = Instant::now();
        let id = event.id.to_string();
        let deadline = committed + Duration::from_secs(30);
        let got = loop {
            if let Some(at) = seen.lock().unwrap().get(&id).copied() {
                break at;
            }
            assert!(Instant::now() < deadline, "event {id} never delivered");
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        lat.push(got.saturating_duration_since(committed).as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "event-to-delivery latency over {latency_events} events: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );
    stop.cancel();
    let _ = run.await;
    pool.close().await;
    sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)")).execute(&mut admin).await.unwrap();
}
