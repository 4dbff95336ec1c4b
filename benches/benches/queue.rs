//! Queue throughput and wake-up latency.
//!
//! `cargo bench -p videdit-benches --bench queue` (needs DATABASE_URL; makes
//! and drops a scratch database). `JOBS` (default 20000), `RUNS` (default 3).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;
use videdit_queue::{JobSpec, Outcome, RetryPolicy, Worker, WorkerConfig};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn burn_down(pool: &sqlx::PgPool, jobs: usize, concurrency: usize) -> f64 {
    sqlx::query("TRUNCATE videdit_queue.jobs, videdit_queue.job_history").execute(pool).await.unwrap();
    let specs: Vec<JobSpec> = (0..jobs).map(|i| JobSpec::new("noop", &i).unwrap()).collect();
    let mut conn = pool.acquire().await.unwrap();
    for chunk in specs.chunks(2000) {
        videdit_queue::enqueue_many(&mut conn, chunk).await.unwrap();
    }
    drop(conn);
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let worker = Worker::new(pool.clone(), WorkerConfig { concurrency, ..Default::default() }).unwrap().register(
        "noop",
        None,
        RetryPolicy::default(),
        move |_| {
            let d = d.clone();
            async move {
                d.fetch_add(1, Ordering::Relaxed);
                Ok(Outcome::Complete)
            }
        },
    );
    let stop = CancellationToken::new();
    let start = Instant::now();
    let run = tokio::spawn(worker.run(stop.clone(), Duration::from_secs(30)));
    while done.load(Ordering::Relaxed) < jobs {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Count only completed (recorded) jobs: wait for the history to fill.
    loop {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM videdit_queue.job_history").fetch_one(pool).await.unwrap();
        if n as usize >= jobs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    stop.cancel();
    run.await.unwrap().unwrap();
    jobs as f64 / secs
}

async fn latency(pool: &sqlx::PgPool, listen: bool, samples: usize) -> (f64, f64, f64) {
    sqlx::query("TRUNCATE videdit_queue.jobs, videdit_queue.job_history").execute(pool).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let worker = Worker::new(
        pool.clone(),
        WorkerConfig { concurrency: 4, listen, poll_interval: Duration::from_millis(100), ..Default::default() },
    )
    .unwrap()
    .register("ping", None, RetryPolicy::default(), move |ctx| {
        let tx = tx.clone();
        async move {
            let seq: usize = ctx.job.payload().unwrap();
            let _ = tx.send((seq, Instant::now()));
            Ok(Outcome::Complete)
        }
    });
    let stop = CancellationToken::new();
    let run = tokio::spawn(worker.run(stop.clone(), Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut lat = Vec::with_capacity(samples);
    let mut conn = pool.acquire().await.unwrap();
    for i in 0..samples {
        let mut t = conn.begin().await.unwrap();
        videdit_queue::enqueue(&mut t, &JobSpec::new("ping", &i).unwrap()).await.unwrap();
        t.commit().await.unwrap();
        let sent = Instant::now();
        let (seq, started) = rx.recv().await.unwrap();
        assert_eq!(seq, i);
        lat.push(started.saturating_duration_since(sent).as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(if listen { 20 } else { 37 })).await;
    }
    stop.cancel();
    run.await.unwrap().unwrap();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize];
    (p(0.5), p(0.95), p(0.99))
}

#[tokio::main]
async fn main() {
    let jobs: usize = std::env::var("JOBS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let runs: usize = std::env::var("RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let base = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".into());
    let db = format!("videdit_qbench_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {db}")).execute(&mut admin).await.unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    let pool = PgPoolOptions::new().max_connections(24).connect(&format!("{prefix}/{db}")).await.unwrap();
    videdit_queue::migrate(&pool).await.unwrap();
    println!(
        "machine: {} cores, PostgreSQL on the same box; {jobs} no-op jobs, unbatched claim (one statement per free-slot batch) and per-job completion; median of {runs}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for concurrency in [1, 8, 20] {
        let mut rates = Vec::new();
        for _ in 0..runs {
            rates.push(burn_down(&pool, jobs, concurrency).await);
        }
        println!(
            "throughput  concurrency {concurrency:>2}: {:>7.0} jobs/s  (runs: {:?})",
            median(rates.clone()),
            rates.iter().map(|r| r.round()).collect::<Vec<_>>()
        );
    }
    let (p50, p95, p99) = latency(&pool, true, 300).await;
    println!("enqueue->start, idle worker, NOTIFY:     p50 {p50:.2} ms  p95 {p95:.2} ms  p99 {p99:.2} ms");
    let (p50, p95, p99) = latency(&pool, false, 100).await;
    println!("enqueue->start, idle worker, poll 100ms: p50 {p50:.2} ms  p95 {p95:.2} ms  p99 {p99:.2} ms");
    pool.close().await;
    sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)")).execute(&mut admin).await.unwrap();
}
