//! The queue against real PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;
use videdit_queue::admin::{self, JobRecord};
use videdit_queue::queue;
use videdit_queue::{
    CancelOutcome, JobError, JobSpec, JobState, Outcome, Processed, RetryPolicy, Worker, WorkerConfig,
};

const LEASE: Duration = Duration::from_secs(2);

fn fast_retry(n: u32) -> RetryPolicy {
    RetryPolicy { max_attempts: n, base: Duration::from_millis(10), max: Duration::from_millis(50), jitter: 0.0 }
}

fn config(concurrency: usize) -> WorkerConfig {
    WorkerConfig {
        concurrency,
        lease: LEASE,
        poll_interval: Duration::from_millis(200),
        sweep_interval: Duration::from_millis(500),
        sweep_retry: fast_retry(5),
        ..WorkerConfig::default()
    }
}

async fn setup(pool: &PgPool) {
    videdit_queue::migrate(pool).await.unwrap();
}

async fn enqueue(pool: &PgPool, spec: JobSpec) -> uuid::Uuid {
    let mut conn = pool.acquire().await.unwrap();
    videdit_queue::enqueue(&mut conn, &spec).await.unwrap()
}

async fn state(pool: &PgPool, id: uuid::Uuid) -> JobRecord {
    admin::get_job(pool, id).await.unwrap()
}

/// A second pool on the same database (another "process").
async fn another_pool(pool: &PgPool, size: u32) -> PgPool {
    PgPoolOptions::new().max_connections(size).connect_with((*pool.connect_options()).clone()).await.unwrap()
}

#[sqlx::test(migrations = false)]
async fn migrations_are_idempotent_and_in_their_own_schema(pool: PgPool) {
    setup(&pool).await;
    setup(&pool).await;
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM videdit_queue._sqlx_migrations").fetch_one(&pool).await.unwrap();
    assert_eq!(n, 2);
    let public: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL").fetch_one(&pool).await.unwrap();
    assert!(!public, "the queue does not touch the application's bookkeeping table");
}

#[sqlx::test(migrations = false)]
async fn every_job_completes_exactly_once_under_contention(pool: PgPool) {
    setup(&pool).await;
    sqlx::query("CREATE TABLE effects (job_id uuid PRIMARY KEY)").execute(&pool).await.unwrap();
    let specs: Vec<JobSpec> = (0..10_000).map(|i| JobSpec::new("effect", &i).unwrap()).collect();
    let mut conn = pool.acquire().await.unwrap();
    for chunk in specs.chunks(1000) {
        videdit_queue::enqueue_many(&mut conn, chunk).await.unwrap();
    }
    drop(conn);
    let shutdown = CancellationToken::new();
    let duplicates = Arc::new(AtomicUsize::new(0));
    let mut runtimes = Vec::new();
    for _ in 0..4 {
        let p = another_pool(&pool, 8).await;
        let dup = duplicates.clone();
        let worker = Worker::new(p, config(20)).unwrap().register("effect", None, fast_retry(5), move |ctx| {
            let dup = dup.clone();
            async move {
                // The side effect and the completion commit together.
                let mut tx = ctx.pool().begin().await.map_err(|e| JobError::retryable(e.to_string()))?;
                let r =
                    sqlx::query("INSERT INTO effects (job_id) VALUES ($1)").bind(ctx.job.id).execute(&mut *tx).await;
                if r.is_err() {
                    dup.fetch_add(1, Ordering::SeqCst);
                    return Err(JobError::fatal("duplicate side effect"));
                }
                ctx.complete_in(&mut tx).await.map_err(JobError::from)?;
                tx.commit().await.map_err(|e| JobError::retryable(e.to_string()))?;
                Ok(Outcome::CompletedInTransaction)
            }
        });
        runtimes.push(tokio::spawn(worker.run(shutdown.clone(), Duration::from_secs(10))));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM effects").fetch_one(&pool).await.unwrap();
        if done == 10_000 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    for r in runtimes {
        r.await.unwrap().unwrap();
    }
    let effects: i64 = sqlx::query_scalar("SELECT count(*) FROM effects").fetch_one(&pool).await.unwrap();
    let completed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM videdit_queue.job_history WHERE final_state = 'completed'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM videdit_queue.jobs").fetch_one(&pool).await.unwrap();
    assert_eq!((effects, completed, live), (10_000, 10_000, 0));
    assert_eq!(duplicates.load(Ordering::SeqCst), 0);
}

#[sqlx::test(migrations = false)]
async fn retries_back_off_then_the_job_dies_with_its_error_history(pool: PgPool) {
    setup(&pool).await;
    let id = enqueue(&pool, JobSpec::new("flaky", &()).unwrap().max_attempts(3)).await;
    let worker =
        Worker::new(pool.clone(), config(1)).unwrap().register("flaky", None, fast_retry(3), |ctx| async move {
            Err(JobError::retryable(format!("boom {}", ctx.job.attempt)))
        });
    assert_eq!(worker.process_next().await.unwrap(), Processed::Retried(id));
    // Backing off: not due yet.
    assert_eq!(worker.process_next().await.unwrap(), Processed::Empty);
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert_eq!(worker.process_next().await.unwrap(), Processed::Retried(id));
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(worker.process_next().await.unwrap(), Processed::Dead(id));
    let rec = state(&pool, id).await;
    assert_eq!(rec.state(), JobState::Dead);
    assert_eq!(rec.attempt, 3);
    let errors: Vec<String> =
        rec.errors.as_array().unwrap().iter().map(|e| e["error"].as_str().unwrap().to_owned()).collect();
    assert_eq!(errors, ["boom 1", "boom 2", "boom 3"]);
    // A dead job can be retried by an operator.
    let again = admin::retry_dead(&pool, id).await.unwrap();
    assert_eq!(state(&pool, again).await.state(), JobState::Available);
}

#[sqlx::test(migrations = false)]
async fn fatal_errors_and_panics_and_timeouts(pool: PgPool) {
    setup(&pool).await;
    let fatal = enqueue(&pool, JobSpec::new("fatal", &()).unwrap()).await;
    let worker = Worker::new(pool.clone(), config(1))
        .unwrap()
        .register("fatal", None, fast_retry(5), |_| async { Err(JobError::fatal("bad input")) })
        .register("panic", None, fast_retry(1), |_| async { panic!("handler bug") })
        .register("slow", Some(Duration::from_millis(100)), fast_retry(1), |_| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(Outcome::Complete)
        });
    assert_eq!(worker.process_next().await.unwrap(), Processed::Dead(fatal));
    let p = enqueue(&pool, JobSpec::new("panic", &()).unwrap().max_attempts(1)).await;
    assert_eq!(worker.process_next().await.unwrap(), Processed::Dead(p));
    assert!(state(&pool, p).await.errors.to_string().contains("panicked"));
    let s = enqueue(&pool, JobSpec::new("slow", &()).unwrap().max_attempts(1)).await;
    let started = std::time::Instant::now();
    assert_eq!(worker.process_next().await.unwrap(), Processed::Dead(s));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(state(&pool, s).await.errors.to_string().contains("timed out"));
    // A worker claims only kinds it has handlers for: the job waits for one that has.
    let unknown = enqueue(&pool, JobSpec::new("nobody", &()).unwrap()).await;
    assert_eq!(worker.process_next().await.unwrap(), Processed::Empty);
    assert_eq!(state(&pool, unknown).await.state(), JobState::Available);
}

#[sqlx::test(migrations = false)]
async fn unique_keys_hold_under_concurrent_enqueue(pool: PgPool) {
    setup(&pool).await;
    let mut handles = Vec::new();
    for _ in 0..20 {
        let pool = pool.clone();
        handles.push(tokio::spawn(async move {
            let mut tx = pool.begin().await.unwrap();
            let id = videdit_queue::enqueue(&mut tx, &JobSpec::new("once", &()).unwrap().unique_key("video-1:ingest"))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            id
        }));
    }
    let mut ids = Vec::new();
    for h in handles {
        ids.push(h.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM videdit_queue.jobs").fetch_one(&pool).await.unwrap();
    assert_eq!(n, 1);
    // Once finished, the key is free again.
    let worker = Worker::new(pool.clone(), config(1))
        .unwrap()
        .register("once", None, fast_retry(1), |_| async { Ok(Outcome::Complete) });
    assert_eq!(worker.process_next().await.unwrap(), Processed::Completed(ids[0]));
    let next = enqueue(&pool, JobSpec::new("once", &()).unwrap().unique_key("video-1:ingest")).await;
    assert_ne!(next, ids[0]);
}

#[sqlx::test(migrations = false)]
async fn scheduled_jobs_wait_and_priorities_order(pool: PgPool) {
    setup(&pool).await;
    let later = enqueue(
        &pool,
        JobSpec::new("k", &"later")
            .unwrap()
            .run_at(time::OffsetDateTime::now_utc() + time::Duration::milliseconds(800)),
    )
    .await;
    let low = enqueue(&pool, JobSpec::new("k", &"low").unwrap().priority(5)).await;
    let high = enqueue(&pool, JobSpec::new("k", &"high").unwrap().priority(-5)).await;
    let worker = Worker::new(pool.clone(), config(1))
        .unwrap()
        .register("k", None, fast_retry(1), |_| async { Ok(Outcome::Complete) });
    assert_eq!(worker.process_next().await.unwrap(), Processed::Completed(high));
    assert_eq!(worker.process_next().await.unwrap(), Processed::Completed(low));
    assert_eq!(worker.process_next().await.unwrap(), Processed::Empty, "the scheduled job is not due");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(worker.process_next().await.unwrap(), Processed::Completed(later));
}

#[sqlx::test(migrations = false)]
async fn paused_queues_are_not_claimed(pool: PgPool) {
    setup(&pool).await;
    let id = enqueue(&pool, JobSpec::new("k", &()).unwrap()).await;
    let worker = Worker::new(pool.clone(), config(1))
        .unwrap()
        .register("k", None, fast_retry(1), |_| async { Ok(Outcome::Complete) });
    admin::pause_queue(&pool, "default").await.unwrap();
    assert_eq!(worker.process_next().await.unwrap(), Processed::Empty);
    let stats = admin::queue_stats(&pool).await.unwrap();
    assert_eq!((stats[0].available, stats[0].paused), (1, true));
    admin::resume_queue(&pool, "default").await.unwrap();
    assert_eq!(worker.process_next().await.unwrap(), Processed::Completed(id));
}

#[sqlx::test(migrations = false)]
async fn a_running_job_is_cancelled_promptly(pool: PgPool) {
    setup(&pool).await;
    let id = enqueue(&pool, JobSpec::new("wait", &()).unwrap()).await;
    let worker =
        Worker::new(pool.clone(), config(1)).unwrap().register("wait", None, fast_retry(3), |ctx| async move {
            ctx.progress(serde_json::json!({"percent": 10})).await.map_err(JobError::from)?;
            ctx.cancelled().await;
            Err(JobError::retryable("stopped"))
        });
    let run = tokio::spawn(async move { worker.process_next().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(state(&pool, id).await.state(), JobState::Running);
    assert_eq!(state(&pool, id).await.progress, Some(serde_json::json!({"percent": 10})));
    let asked = std::time::Instant::now();
    assert_eq!(videdit_queue::cancel(&pool, id).await.unwrap(), CancelOutcome::Requested);
    assert_eq!(run.await.unwrap(), Processed::Cancelled(id));
    assert!(asked.elapsed() < LEASE, "cancelled within one heartbeat ({:?})", asked.elapsed());
    assert_eq!(state(&pool, id).await.state(), JobState::Cancelled);
    // Waiting jobs are cancelled at once; finished ones are not live.
    let waiting = enqueue(&pool, JobSpec::new("wait", &()).unwrap()).await;
    assert_eq!(videdit_queue::cancel(&pool, waiting).await.unwrap(), CancelOutcome::Cancelled);
    assert_eq!(videdit_queue::cancel(&pool, waiting).await.unwrap(), CancelOutcome::NotLive);
}

#[sqlx::test(migrations = false)]
async fn graceful_shutdown_finishes_or_releases_in_flight_jobs(pool: PgPool) {
    setup(&pool).await;
    let quick = enqueue(&pool, JobSpec::new("sleep", &300u64).unwrap()).await;
    let long = enqueue(&pool, JobSpec::new("sleep", &30_000u64).unwrap()).await;
    let handler = |ctx: videdit_queue::JobContext| async move {
        let ms: u64 = ctx.job.payload().map_err(JobError::from)?;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(Outcome::Complete)
    };
    let worker = Worker::new(pool.clone(), config(2)).unwrap().register("sleep", None, fast_retry(3), handler);
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(worker.run(shutdown.clone(), Duration::from_millis(1000)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    shutdown.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(state(&pool, quick).await.state(), JobState::Completed, "finished within the grace period");
    let rec = state(&pool, long).await;
    assert_eq!((rec.state(), rec.attempt), (JobState::Available, 0), "released at once, attempt not spent");
    // Another worker takes it immediately (no lease to wait out).
    let other = Worker::new(pool.clone(), config(1))
        .unwrap()
        .register("sleep", None, fast_retry(3), |_| async { Ok(Outcome::Complete) });
    assert_eq!(other.process_next().await.unwrap(), Processed::Completed(long));
}

#[sqlx::test(migrations = false)]
async fn a_stale_workers_late_completion_is_fenced(pool: PgPool) {
    setup(&pool).await;
    let id = enqueue(&pool, JobSpec::new("k", &()).unwrap()).await;
    let first = queue::claim(&pool, &["default".into()], 10, Duration::from_millis(200)).await.unwrap().remove(0);
    assert_eq!(first.id, id);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let swept = queue::sweep(&pool, &RetryPolicy { jitter: 0.0, base: Duration::ZERO, ..fast_retry(5) }).await.unwrap();
    assert_eq!(swept.retried, 1);
    let second = queue::claim(&pool, &["default".into()], 10, LEASE).await.unwrap().remove(0);
    assert_eq!((second.id, second.attempt), (id, 2));
    assert!(matches!(queue::complete(&pool, &first).await, Err(videdit_queue::Error::LeaseLost(_))));
    assert_eq!(queue::heartbeat(&pool, &first, LEASE).await.unwrap(), videdit_queue::Heartbeat::Lost);
    assert!(queue::set_progress(&pool, &first, &serde_json::json!(1)).await.is_err());
    queue::complete(&pool, &second).await.unwrap();
    let rec = state(&pool, id).await;
    assert_eq!((rec.state(), rec.attempt), (JobState::Completed, 2));
    assert!(rec.errors.to_string().contains("lease expired"));
}

#[sqlx::test(migrations = false)]
async fn two_sweepers_at_once_return_each_job_once(pool: PgPool) {
    setup(&pool).await;
    for i in 0..50 {
        enqueue(&pool, JobSpec::new("k", &i).unwrap()).await;
    }
    queue::claim(&pool, &["default".into()], 50, Duration::from_millis(100)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let other = another_pool(&pool, 2).await;
    let policy = fast_retry(5);
    let (a, b) = tokio::join!(queue::sweep(&pool, &policy), queue::sweep(&other, &policy));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.retried + b.retried, 50);
    let running: i64 = sqlx::query_scalar("SELECT count(*) FROM videdit_queue.jobs WHERE state = 'running'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(running, 0);
}

/// Two connections, driven step by step: a transition that holds the row
/// blocks the other, which then sees the new state, so exactly one wins.
#[sqlx::test(migrations = false)]
async fn concurrent_transitions_have_one_winner(pool: PgPool) {
    setup(&pool).await;
    let q = vec!["default".to_owned()];
    let policy = fast_retry(5);

    // claim vs cancel: the claim holds the row; the cancel waits, then finds it running.
    let id = enqueue(&pool, JobSpec::new("k", &()).unwrap()).await;
    let mut tx = pool.begin().await.unwrap();
    let claimed = queue::claim(&mut *tx, &q, 1, LEASE).await.unwrap().remove(0);
    let cancel = tokio::spawn({
        let pool = pool.clone();
        async move { videdit_queue::cancel(&pool, id).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!cancel.is_finished(), "the cancel waits for the claim's row lock");
    tx.commit().await.unwrap();
    assert_eq!(cancel.await.unwrap(), CancelOutcome::Requested);
    // cancel vs complete: the completion still wins against a mere request...
    queue::complete(&pool, &claimed).await.unwrap();
    assert_eq!(state(&pool, id).await.state(), JobState::Completed);
    assert_eq!(videdit_queue::cancel(&pool, id).await.unwrap(), CancelOutcome::NotLive);

    // cancel vs complete on a waiting job: cancel first, then a completion is fenced out.
    let id = enqueue(&pool, JobSpec::new("k", &()).unwrap()).await;
    let job = queue::claim(&pool, &q, 1, Duration::from_millis(100)).await.unwrap().remove(0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // sweep vs heartbeat: the sweep takes the expired lease; the heartbeat then finds it lost.
    let mut tx = pool.begin().await.unwrap();
    assert_eq!(queue::sweep(&mut *tx, &policy).await.unwrap().retried, 1);
    let beat = tokio::spawn({
        let (pool, job) = (pool.clone(), job.clone());
        async move { queue::heartbeat(&pool, &job, LEASE).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!beat.is_finished(), "the heartbeat waits for the sweep");
    tx.commit().await.unwrap();
    assert_eq!(beat.await.unwrap(), videdit_queue::Heartbeat::Lost);
    // sweep vs late complete: fenced.
    assert!(queue::complete(&pool, &job).await.is_err());
    assert_eq!(state(&pool, id).await.state(), JobState::Available);

    // retry vs cancel: the failure is recorded first (holding the row); the cancel then cancels the waiting job.
    let job = queue::claim(&pool, &q, 1, LEASE).await.unwrap().remove(0);
    let mut tx = pool.begin().await.unwrap();
    let done = sqlx::query(
        "UPDATE videdit_queue.jobs SET state = 'available', lease_token = NULL WHERE id = $1 AND lease_token = $2",
    )
    .bind(job.id)
    .bind(job.lease_token)
    .execute(&mut *tx)
    .await
    .unwrap();
    assert_eq!(done.rows_affected(), 1);
    let cancel = tokio::spawn({
        let pool = pool.clone();
        async move { videdit_queue::cancel(&pool, id).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!cancel.is_finished());
    tx.commit().await.unwrap();
    assert_eq!(cancel.await.unwrap(), CancelOutcome::Cancelled);
    assert_eq!(state(&pool, id).await.state(), JobState::Cancelled);
}

#[sqlx::test(migrations = false)]
async fn a_worker_whose_connections_are_killed_recovers(pool: PgPool) {
    setup(&pool).await;
    let worker_pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with((*pool.connect_options()).clone().application_name("victim-worker"))
        .await
        .unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let worker = Worker::new(worker_pool, config(2)).unwrap().register("k", None, fast_retry(5), move |_| {
        let d = d.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            d.fetch_add(1, Ordering::SeqCst);
            Ok(Outcome::Complete)
        }
    });
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(worker.run(shutdown.clone(), Duration::from_secs(5)));
    for i in 0..10 {
        enqueue(&pool, JobSpec::new("k", &i).unwrap()).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'victim-worker') t",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(killed > 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let finished: i64 =
            sqlx::query_scalar("SELECT count(*) FROM videdit_queue.job_history WHERE final_state = 'completed'")
                .fetch_one(&pool)
                .await
                .unwrap();
        if finished == 10 || std::time::Instant::now() > deadline {
            assert_eq!(finished, 10, "every job completes after the connections were killed");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    run.await.unwrap().unwrap();
}

/// The child side of the SIGKILL test: runs a worker whose handler never
/// returns. Ignored in normal runs; the parent runs it with `--ignored`.
#[tokio::test]
#[ignore = "run by worker_killed_with_sigkill_has_its_job_rerun as a child process"]
async fn crash_child_entry() {
    let db = std::env::var("VIDEDIT_QUEUE_CHILD_DB").expect("only run as a child");
    let mut url = url_of(&db);
    url.push_str("?application_name=crash-child");
    let pool = PgPoolOptions::new().max_connections(4).connect(&url).await.unwrap();
    let worker = Worker::new(pool, config(1)).unwrap().register("crashy", None, fast_retry(5), |_| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(Outcome::Complete)
    });
    worker.run(CancellationToken::new(), Duration::from_secs(1)).await.unwrap();
}

fn url_of(db: &str) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let (prefix, _) = base.rsplit_once('/').expect("a database URL");
    format!("{prefix}/{db}")
}

#[sqlx::test(migrations = false)]
async fn worker_killed_with_sigkill_has_its_job_rerun(pool: PgPool) {
    setup(&pool).await;
    let db: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&pool).await.unwrap();
    let id = enqueue(&pool, JobSpec::new("crashy", &()).unwrap()).await;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child_entry", "--ignored", "--nocapture"])
        .env("VIDEDIT_QUEUE_CHILD_DB", &db)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while state(&pool, id).await.state() != JobState::Running {
        assert!(std::time::Instant::now() < deadline, "the child never claimed the job");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL: no chance to release anything
    child.wait().unwrap();
    // Nothing is done until the lease runs out.
    let worker = Worker::new(pool.clone(), config(1))
        .unwrap()
        .register("crashy", None, fast_retry(5), |_| async { Ok(Outcome::Complete) });
    assert_eq!(worker.process_next().await.unwrap(), Processed::Empty);
    tokio::time::sleep(LEASE + Duration::from_millis(200)).await;
    let swept = queue::sweep(&pool, &RetryPolicy { base: Duration::ZERO, jitter: 0.0, ..fast_retry(5) }).await.unwrap();
    assert_eq!(swept.retried, 1);
    assert_eq!(worker.process_next().await.unwrap(), Processed::Completed(id));
    let rec = state(&pool, id).await;
    assert_eq!((rec.state(), rec.attempt), (JobState::Completed, 2));
    let completions: i64 = sqlx::query_scalar("SELECT count(*) FROM videdit_queue.job_history WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(completions, 1);
}
