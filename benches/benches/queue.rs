//! Queue throughput and wake-up latency, side by side with graphile-worker.
//!
//! `benches/queue-vs-graphile` installs graphile-worker 0.17.3 into a scratch
//! folder and runs this bench; `cargo bench -p videdit-benches --bench queue`
//! alone measures graphile too when it is installed (`GRAPHILE_DIR`, default
//! `~/.cache/videdit/graphile-worker-0.17.3`), else only videdit-queue.
//! Needs DATABASE_URL (makes and drops a scratch database on that server;
//! graphile-worker gets its own schema in the same database).
//!
//! Both queues run the same rounds interleaved (the order alternates each
//! round), so load from other processes hits both alike: `JOBS` no-op jobs
//! (default 20000), enqueued before the worker starts, at each of
//! `CONCURRENCY` (default "8,20"), unbatched and batched, `RUNS` rounds
//! (default 3). Throughput counts from the first handler start until every
//! completion is recorded; latency from before the (autocommitted) enqueue
//! call to the handler's start, with an idle worker. `FAIRNESS=1` adds the
//! cost of per-group fair sharing at the highest concurrency.
//! `QUEUE_BENCH_SQL` runs after the migrations, to measure a schema lever
//! (for example `DROP INDEX videdit_queue.job_history_metadata`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;
use videdit_queue::{Batching, Fairness, JobSpec, Outcome, RetryPolicy, Worker, WorkerConfig};

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.len() % 2 == 1 { v[v.len() / 2] } else { (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0 }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// How a worker takes and records jobs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// One claim per free-slot batch, one completion per job.
    Unbatched,
    /// Claims and completions in batches (graphile: local queue and batched completion).
    Batched,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Unbatched => "unbatched",
            Mode::Batched => "batched",
        }
    }
}

/// Settings of our worker in a mode.
fn our_config(concurrency: usize, mode: Mode) -> WorkerConfig {
    let config = WorkerConfig { concurrency, ..Default::default() };
    match mode {
        Mode::Unbatched => config,
        Mode::Batched => WorkerConfig { batching: Some(Batching::default()), ..config },
    }
}

/// Runs `jobs` no-op jobs through videdit-queue; jobs/s.
async fn ours(pool: &sqlx::PgPool, jobs: usize, concurrency: usize, mode: Mode, groups: usize) -> f64 {
    sqlx::query("TRUNCATE videdit_queue.jobs, videdit_queue.job_history").execute(pool).await.unwrap();
    let specs: Vec<JobSpec> = (0..jobs)
        .map(|i| {
            let spec = JobSpec::new("noop", &i).unwrap();
            if groups > 0 { spec.group(format!("org-{}", i % groups)) } else { spec }
        })
        .collect();
    let mut conn = pool.acquire().await.unwrap();
    for chunk in specs.chunks(2000) {
        videdit_queue::enqueue_many(&mut conn, chunk).await.unwrap();
    }
    drop(conn);
    sqlx::query("ANALYZE videdit_queue.jobs").execute(pool).await.unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let first = Arc::new(OnceLock::<Instant>::new());
    let (d, f) = (done.clone(), first.clone());
    let mut config = our_config(concurrency, mode);
    if groups > 0 {
        config.fairness = Some(Fairness::default());
    }
    let worker = Worker::new(pool.clone(), config).unwrap().register("noop", None, RetryPolicy::default(), move |_| {
        let (d, f) = (d.clone(), f.clone());
        async move {
            f.get_or_init(Instant::now);
            d.fetch_add(1, Ordering::Relaxed);
            Ok(Outcome::Complete)
        }
    });
    let stop = CancellationToken::new();
    let run = tokio::spawn(worker.run(stop.clone(), Duration::from_secs(30)));
    while done.load(Ordering::Relaxed) < jobs {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Count only recorded completions.
    loop {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM videdit_queue.job_history").fetch_one(pool).await.unwrap();
        if n as usize >= jobs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let secs = first.get().unwrap().elapsed().as_secs_f64();
    stop.cancel();
    run.await.unwrap().unwrap();
    jobs as f64 / secs
}

/// Enqueue→start latency of videdit-queue with an idle worker: (p50, p95, p99) in ms.
async fn our_latency(pool: &sqlx::PgPool, listen: bool, samples: usize) -> (f64, f64, f64) {
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
            let at = Instant::now();
            let seq: usize = ctx.job.payload().unwrap();
            let _ = tx.send((seq, at));
            Ok(Outcome::Complete)
        }
    });
    let stop = CancellationToken::new();
    let run = tokio::spawn(worker.run(stop.clone(), Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut lat = Vec::with_capacity(samples);
    let mut conn = pool.acquire().await.unwrap();
    for i in 0..samples {
        let sent = Instant::now();
        videdit_queue::enqueue(&mut conn, &JobSpec::new("ping", &i).unwrap()).await.unwrap();
        let (seq, started) = rx.recv().await.unwrap();
        assert_eq!(seq, i);
        lat.push(started.saturating_duration_since(sent).as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(if listen { 20 } else { 37 })).await;
    }
    stop.cancel();
    run.await.unwrap().unwrap();
    percentiles(lat)
}

fn percentiles(mut lat: Vec<f64>) -> (f64, f64, f64) {
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize];
    (p(0.5), p(0.95), p(0.99))
}

/// graphile-worker, run by `benches/graphile/run.cjs` in a node process per measurement.
struct Graphile {
    dir: PathBuf,
    url: String,
}

impl Graphile {
    fn run(&self, args: serde_json::Value) -> serde_json::Value {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/graphile/run.cjs");
        let out = Command::new("node")
            .arg(script)
            .arg(args.to_string())
            .env("GRAPHILE_DIR", &self.dir)
            .env("DATABASE_URL", &self.url)
            .output()
            .expect("node runs");
        assert!(out.status.success(), "graphile runner failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("the runner prints JSON")
    }

    fn throughput(&self, jobs: usize, concurrency: usize, mode: Mode) -> f64 {
        let args = serde_json::json!({"mode": "throughput", "jobs": jobs, "concurrency": concurrency, "batched": mode == Mode::Batched});
        self.run(args)["jobs_per_sec"].as_f64().unwrap()
    }

    fn latency(&self, samples: usize) -> (f64, f64, f64) {
        let r = self.run(serde_json::json!({"mode": "latency", "samples": samples, "concurrency": 4}));
        (r["p50"].as_f64().unwrap(), r["p95"].as_f64().unwrap(), r["p99"].as_f64().unwrap())
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn runs(v: &[f64]) -> String {
    v.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ")
}

#[tokio::main]
async fn main() {
    let jobs: usize = env_or("JOBS", 20_000);
    let rounds: usize = env_or("RUNS", 3);
    let concurrencies: Vec<usize> = std::env::var("CONCURRENCY")
        .unwrap_or_else(|_| "8,20".into())
        .split(',')
        .map(|c| c.trim().parse().expect("CONCURRENCY: numbers separated by commas"))
        .collect();
    let modes = [Mode::Unbatched, Mode::Batched];
    let fairness = std::env::var("FAIRNESS").is_ok_and(|v| v == "1");
    let base = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".into());
    let db = format!("videdit_qbench_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {db}")).execute(&mut admin).await.unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    let url = format!("{prefix}/{db}");
    let pool = PgPoolOptions::new().max_connections(24).connect(&url).await.unwrap();
    videdit_queue::migrate(&pool).await.unwrap();
    // An experiment: SQL run after the migrations (an index dropped, a setting changed).
    if let Ok(sql) = std::env::var("QUEUE_BENCH_SQL") {
        sqlx::raw_sql(&sql).execute(&pool).await.unwrap();
        println!("after the migrations: {sql}");
    }
    let graphile_dir = std::env::var_os("GRAPHILE_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/videdit/graphile-worker-0.17.3")
    });
    let graphile =
        graphile_dir.join("node_modules/graphile-worker").is_dir().then(|| Graphile { dir: graphile_dir.clone(), url });
    if graphile.is_none() {
        println!(
            "graphile-worker not installed in {}: run benches/queue-vs-graphile to compare",
            graphile_dir.display()
        );
    }
    let server: String = sqlx::query_scalar("SHOW server_version").fetch_one(&pool).await.unwrap();
    println!(
        "machine: {} cores, PostgreSQL {server} on the same box; {jobs} no-op jobs, one worker process per queue; {rounds} interleaved rounds; load average at start {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );

    // Per (mode, concurrency): jobs/s per round, ours and graphile's.
    type Row = ((Mode, usize), Vec<f64>, Vec<f64>);
    let mut results: Vec<Row> = Vec::new();
    for &mode in &modes {
        for &c in &concurrencies {
            results.push(((mode, c), Vec::new(), Vec::new()));
        }
    }
    for round in 0..rounds {
        for ((mode, c), mine, theirs) in &mut results {
            let graphile_first = round % 2 == 1;
            if graphile_first && let Some(g) = &graphile {
                theirs.push(g.throughput(jobs, *c, *mode));
            }
            mine.push(ours(&pool, jobs, *c, *mode, 0).await);
            if !graphile_first && let Some(g) = &graphile {
                theirs.push(g.throughput(jobs, *c, *mode));
            }
        }
    }
    println!(
        "\n| mode | concurrency | videdit-queue jobs/s (median; runs) | graphile-worker jobs/s (median; runs) | ratio of medians | per-round ratios |"
    );
    println!("|---|---|---|---|---|---|");
    for ((mode, c), mine, theirs) in &results {
        let (ratio, per_round) = if theirs.is_empty() {
            ("-".to_owned(), "-".to_owned())
        } else {
            let r: Vec<String> = mine.iter().zip(theirs).map(|(a, b)| format!("{:.2}", a / b)).collect();
            (format!("{:.2}×", median(mine) / median(theirs)), r.join(", "))
        };
        println!(
            "| {} | {c} | {:.0} ({}) | {} | {ratio} | {per_round} |",
            mode.name(),
            median(mine),
            runs(mine),
            if theirs.is_empty() { "-".into() } else { format!("{:.0} ({})", median(theirs), runs(theirs)) },
        );
    }

    if fairness {
        let c = *concurrencies.iter().max().unwrap();
        let (mut plain, mut fair) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            plain.push(ours(&pool, jobs, c, Mode::Unbatched, 0).await);
            fair.push(ours(&pool, jobs, c, Mode::Unbatched, 50).await);
        }
        println!(
            "\nfair sharing, unbatched, concurrency {c}: plain {:.0} jobs/s ({}), 50 groups with fair claims {:.0} jobs/s ({}): cost {:.1} %",
            median(&plain),
            runs(&plain),
            median(&fair),
            runs(&fair),
            100.0 * (1.0 - median(&fair) / median(&plain))
        );
    }

    let samples = 300;
    let (ours_lat, theirs_lat) = if let Some(g) = &graphile {
        let t = g.latency(samples);
        (our_latency(&pool, true, samples).await, Some(t))
    } else {
        (our_latency(&pool, true, samples).await, None)
    };
    println!(
        "\nadd→start latency, idle worker (concurrency 4), NOTIFY, {samples} samples, from before the enqueue call:"
    );
    println!("  videdit-queue:   p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms", ours_lat.0, ours_lat.1, ours_lat.2);
    if let Some((p50, p95, p99)) = theirs_lat {
        println!("  graphile-worker: p50 {p50:.2} ms  p95 {p95:.2} ms  p99 {p99:.2} ms");
    }
    let (p50, p95, p99) = our_latency(&pool, false, 100).await;
    println!("  videdit-queue, poll-only 100 ms: p50 {p50:.2} ms  p95 {p95:.2} ms  p99 {p99:.2} ms");
    println!("load average at end {}", load_average());
    pool.close().await;
    sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)")).execute(&mut admin).await.unwrap();
}
