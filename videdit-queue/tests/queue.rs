//! The queue against real PostgreSQL.
//!
//! No test asserts how fast something happens (that is what the benches are
//! for): a test waits for the *state* it expects, polling with a generous
//! deadline, and fails with a message naming what never happened.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use videdit_queue::admin::{self, JobRecord};
use videdit_queue::queue;
use videdit_queue::{
    Batching, CancelOutcome, Error, Fairness, Heartbeat, JobContext, JobError, JobSpec, JobState, Outcome, Processed,
    RetryPolicy, Swept, Worker, WorkerConfig,
};

const LEASE: Duration = Duration::from_secs(2);

/// A backoff or schedule so long that "not due yet" is certain; tests move
/// `run_at` (see [`make_due`]) instead of waiting it out.
const HOUR: Duration = Duration::from_secs(3600);

/// How long a test waits for a state before it gives up. Generous: the
/// machine may be loaded; a passing test never waits this long.
const PATIENCE: Duration = Duration::from_secs(60);

/// How often a test looks again.
const POLL: Duration = Duration::from_millis(20);

/// Polls `$poll` (an expression, may `.await`, giving an `Option`) every
/// [`POLL`] until it is `Some`, and yields its value; panics naming `$what`
/// after [`PATIENCE`] (or `$patience`).
macro_rules! wait_until {
    ($what:expr, $poll:expr) => {
        wait_until!($what, PATIENCE, $poll)
    };
    ($what:expr, $patience:expr, $poll:expr) => {{
        let patience: Duration = $patience;
        let deadline = std::time::Instant::now() + patience;
        loop {
            if let Some(v) = $poll {
                break v;
            }
            assert!(std::time::Instant::now() < deadline, "gave up after {patience:?} waiting for {}", $what);
            tokio::time::sleep(POLL).await;
        }
    }};
}

/// Polls the condition `$cond` (may `.await`) until it holds; see [`wait_until`].
macro_rules! wait_for {
    ($what:expr, $cond:expr) => {
        wait_until!($what, ($cond).then_some(()))
    };
    ($what:expr, $patience:expr, $cond:expr) => {
        wait_until!($what, $patience, ($cond).then_some(()))
    };
}

/// Awaits `fut`, failing the test (instead of hanging it) after [`PATIENCE`].
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("gave up after {PATIENCE:?} waiting for {what}"))
}

fn fast_retry(n: u32) -> RetryPolicy {
    RetryPolicy { max_attempts: n, base: Duration::from_millis(10), max: Duration::from_millis(50), jitter: 0.0 }
}

/// Returns an expired lease to the queue due at once.
fn sweep_now() -> RetryPolicy {
    RetryPolicy { base: Duration::ZERO, jitter: 0.0, ..fast_retry(5) }
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

/// Tests that each run a scenario (`async fn(PgPool, …)`) with its
/// arguments, one per line: `name: scenario(args…);`.
macro_rules! scenarios {
    ($($(#[$doc:meta])* $name:ident: $scenario:ident($($arg:expr),*);)*) => {$(
        $(#[$doc])*
        #[sqlx::test(migrations = false)]
        async fn $name(pool: PgPool) {
            $scenario(pool, $($arg),*).await;
        }
    )*};
}

/// How a test's workers take and record jobs: the runtime's two modes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Unbatched,
    Batched,
}

/// [`config`] in a mode. Batched: a short window, a small prefetch buffer
/// whose lease (1 s) is shorter than the worker's.
fn config_in(mode: Mode, concurrency: usize) -> WorkerConfig {
    let batching = (mode == Mode::Batched).then(|| Batching {
        window: Duration::from_millis(5),
        max_batch: 100,
        prefetch: 16,
        // Short, but not so short that a starved test machine (the whole
        // suite at once on 2 cores) misses the first heartbeat: a lease that
        // runs out lets another worker run the job again, which these
        // exactly-once tests would count as a duplicate side effect.
        prefetch_lease: Duration::from_secs(5),
    });
    WorkerConfig { batching, ..config(concurrency) }
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

/// Each recorded error of a job as (attempt, message).
fn errors(rec: &JobRecord) -> Vec<(i64, &str)> {
    rec.errors
        .as_array()
        .expect("errors is an array")
        .iter()
        .map(|e| (e["attempt"].as_i64().expect("an attempt"), e["error"].as_str().expect("a message")))
        .collect()
}

/// The database's clock (every `run_at` is computed from it).
async fn db_now(pool: &PgPool) -> OffsetDateTime {
    sqlx::query_scalar("SELECT now()").fetch_one(pool).await.unwrap()
}

/// `SELECT count(*) FROM videdit_queue.{from}`.
async fn count(pool: &PgPool, from: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM videdit_queue.{from}")).fetch_one(pool).await.unwrap()
}

/// When a live job is due.
async fn run_at(pool: &PgPool, id: uuid::Uuid) -> OffsetDateTime {
    sqlx::query_scalar("SELECT run_at FROM videdit_queue.jobs WHERE id = $1").bind(id).fetch_one(pool).await.unwrap()
}

/// When a finished job's last attempt was claimed.
async fn started_at(pool: &PgPool, id: uuid::Uuid) -> OffsetDateTime {
    sqlx::query_scalar("SELECT started_at FROM videdit_queue.job_history WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Makes a waiting job due now, as if its backoff or schedule had passed.
async fn make_due(pool: &PgPool, id: uuid::Uuid) {
    let done = sqlx::query("UPDATE videdit_queue.jobs SET run_at = now() WHERE id = $1 AND state = 'available'")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1, "job {id} is waiting");
}

/// Calls `process_next` until it finds a due job, and says what it did.
async fn process_when_due(worker: &Worker, what: &str) -> Processed {
    wait_until!(what, {
        let p = worker.process_next().await.unwrap();
        (p != Processed::Empty).then_some(p)
    })
}

/// The server process behind a connection.
async fn backend_pid(conn: &mut PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(conn).await.unwrap()
}

/// Waits until another backend is blocked on a lock held by backend `holder`.
async fn wait_blocked_by(pool: &PgPool, holder: i32, what: &str) {
    wait_for!(what, {
        let blocked: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))")
                .bind(holder)
                .fetch_one(pool)
                .await
                .unwrap();
        blocked > 0
    });
}

/// Cancels job `id` while `tx` (of backend `holder`, having done `what`)
/// holds its row: the cancel waits for the lock, and decides once `tx`
/// commits.
async fn cancel_behind(
    pool: &PgPool,
    id: uuid::Uuid,
    tx: sqlx::Transaction<'_, sqlx::Postgres>,
    holder: i32,
    what: &str,
) -> CancelOutcome {
    let cancel = tokio::spawn({
        let pool = pool.clone();
        async move { videdit_queue::cancel(&pool, id).await.unwrap() }
    });
    wait_blocked_by(pool, holder, &format!("the cancel to wait for the row lock of {what}")).await;
    assert!(!cancel.is_finished(), "the cancel waits for {what}");
    tx.commit().await.unwrap();
    within("the cancel", cancel).await.unwrap()
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
    assert_eq!(n, 4);
    let public: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL").fetch_one(&pool).await.unwrap();
    assert!(!public, "the queue does not touch the application's bookkeeping table");
}

scenarios! {
    every_job_completes_exactly_once_under_contention: exactly_once_under_contention(Mode::Unbatched, true);
    every_job_completes_exactly_once_under_contention_batched: exactly_once_under_contention(Mode::Batched, true);
    /// Completions the runtime records (not in the handler's transaction) are fenced too.
    every_completion_is_recorded_exactly_once_under_contention: exactly_once_under_contention(Mode::Unbatched, false);
    /// Batched completions (not in the handler's transaction) are fenced too.
    every_batched_completion_is_recorded_exactly_once_under_contention:
        exactly_once_under_contention(Mode::Batched, false);
}

/// Four worker processes of concurrency 20 burn down 10 000 jobs; each job's
/// side effect happens once and each job completes once. `in_transaction`:
/// the effect commits with the completion, else the runtime records the
/// completion after the effect.
async fn exactly_once_under_contention(pool: PgPool, mode: Mode, in_transaction: bool) {
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
        let worker = Worker::new(p, config_in(mode, 20)).unwrap().register("effect", None, fast_retry(5), move |ctx| {
            let dup = dup.clone();
            async move {
                let mut tx = ctx.pool().begin().await.map_err(|e| JobError::retryable(e.to_string()))?;
                let r =
                    sqlx::query("INSERT INTO effects (job_id) VALUES ($1)").bind(ctx.job.id).execute(&mut *tx).await;
                if r.is_err() {
                    dup.fetch_add(1, Ordering::SeqCst);
                    return Err(JobError::fatal("duplicate side effect"));
                }
                if !in_transaction {
                    tx.commit().await.map_err(|e| JobError::retryable(e.to_string()))?;
                    return Ok(Outcome::Complete);
                }
                // The side effect and the completion commit together.
                ctx.complete_in(&mut tx).await.map_err(JobError::from)?;
                tx.commit().await.map_err(|e| JobError::retryable(e.to_string()))?;
                Ok(Outcome::CompletedInTransaction)
            }
        });
        runtimes.push(tokio::spawn(worker.run(shutdown.clone(), Duration::from_secs(10))));
    }
    // Ten thousand jobs on a loaded 2-core machine: more patience than usual.
    wait_for!("all 10 000 side effects", Duration::from_secs(300), {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM effects").fetch_one(&pool).await.unwrap();
        done == 10_000
    });
    shutdown.cancel();
    for r in runtimes {
        within("the workers to shut down", r).await.unwrap().unwrap();
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
    // An hour's backoff, doubling, without jitter: "still backing off" is certain and run_at is exact.
    let policy = RetryPolicy { max_attempts: 3, base: HOUR, max: 4 * HOUR, jitter: 0.0 };
    let worker = Worker::new(pool.clone(), config(1)).unwrap().register("flaky", None, policy, |ctx| async move {
        Err(JobError::retryable(format!("boom {}", ctx.job.attempt)))
    });
    for (attempt, backoff) in [(1, HOUR), (2, 2 * HOUR)] {
        let before = db_now(&pool).await;
        assert_eq!(worker.process_next().await.unwrap(), Processed::Retried(id), "attempt {attempt}");
        let after = db_now(&pool).await;
        let due = run_at(&pool, id).await;
        assert!(
            before + backoff <= due && due <= after + backoff,
            "attempt {attempt} backs off by {backoff:?}: due {due}, failed between {before} and {after}"
        );
        let rec = state(&pool, id).await;
        assert_eq!((rec.state(), rec.attempt), (JobState::Available, attempt));
        assert_eq!(worker.process_next().await.unwrap(), Processed::Empty, "backing off: not due yet");
        make_due(&pool, id).await; // the backoff passes
    }
    assert_eq!(worker.process_next().await.unwrap(), Processed::Dead(id));
    let rec = state(&pool, id).await;
    assert_eq!((rec.state(), rec.attempt, rec.max_attempts), (JobState::Dead, 3, 3));
    assert_eq!(errors(&rec), [(1, "boom 1"), (2, "boom 2"), (3, "boom 3")]);
    // A dead job can be retried by an operator: fresh attempts, its history kept.
    let again = admin::retry_dead(&pool, id).await.unwrap();
    assert_eq!(again, id);
    let rec = state(&pool, again).await;
    assert_eq!((rec.state(), rec.attempt), (JobState::Available, 0));
    assert_eq!(errors(&rec).len(), 3);
    assert!(matches!(admin::retry_dead(&pool, id).await, Err(Error::NotFound(x)) if x == id), "no longer dead");
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
            tokio::time::sleep(HOUR).await;
            Ok(Outcome::Complete)
        });
    assert_eq!(worker.process_next().await.unwrap(), Processed::Dead(fatal));
    let rec = state(&pool, fatal).await;
    assert_eq!((rec.state(), rec.attempt, rec.max_attempts), (JobState::Dead, 1, 5), "fatal: no retry");
    assert_eq!(errors(&rec), [(1, "bad input")]);
    let p = enqueue(&pool, JobSpec::new("panic", &()).unwrap().max_attempts(1)).await;
    assert_eq!(worker.process_next().await.unwrap(), Processed::Dead(p));
    let rec = state(&pool, p).await;
    assert_eq!((rec.state(), rec.attempt), (JobState::Dead, 1));
    assert_eq!(errors(&rec), [(1, "the handler panicked")]);
    // The handler would sleep for an hour: only its timeout ends it.
    let s = enqueue(&pool, JobSpec::new("slow", &()).unwrap().max_attempts(1)).await;
    assert_eq!(
        within("the 100 ms timeout to stop the handler", worker.process_next()).await.unwrap(),
        Processed::Dead(s)
    );
    let rec = state(&pool, s).await;
    assert_eq!((rec.state(), rec.attempt), (JobState::Dead, 1));
    assert_eq!(errors(&rec), [(1, "timed out after 100 ms")]);
    // A worker claims only kinds it has handlers for: the job waits for one that has.
    let unknown = enqueue(&pool, JobSpec::new("nobody", &()).unwrap()).await;
    assert_eq!(worker.process_next().await.unwrap(), Processed::Empty);
    let rec = state(&pool, unknown).await;
    assert_eq!((rec.state(), rec.attempt), (JobState::Available, 0));
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
    let later_at = db_now(&pool).await + HOUR;
    let later = enqueue(&pool, JobSpec::new("k", &"later").unwrap().run_at(later_at)).await;
    let low = enqueue(&pool, JobSpec::new("k", &"low").unwrap().priority(5)).await;
    let high = enqueue(&pool, JobSpec::new("k", &"high").unwrap().priority(-5)).await;
    let worker = Worker::new(pool.clone(), config(1))
        .unwrap()
        .register("k", None, fast_retry(1), |_| async { Ok(Outcome::Complete) });
    assert_eq!(worker.process_next().await.unwrap(), Processed::Completed(high));
    assert_eq!(worker.process_next().await.unwrap(), Processed::Completed(low));
    assert_eq!(worker.process_next().await.unwrap(), Processed::Empty, "the scheduled job is not due");
    assert_eq!(run_at(&pool, later).await, later_at);
    // A job scheduled a moment ahead runs once its time has come, and not before.
    let soon_at = db_now(&pool).await + Duration::from_millis(200);
    let soon = enqueue(&pool, JobSpec::new("k", &"soon").unwrap().run_at(soon_at)).await;
    assert_eq!(process_when_due(&worker, "the job scheduled 200 ms ahead").await, Processed::Completed(soon));
    let claimed = started_at(&pool, soon).await;
    assert!(claimed >= soon_at, "claimed at {claimed}, before its run_at {soon_at}");
    // The hour-ahead one still waits, until its time comes.
    assert_eq!(state(&pool, later).await.state(), JobState::Available);
    make_due(&pool, later).await;
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
async fn a_running_job_is_cancelled_through_its_heartbeat(pool: PgPool) {
    setup(&pool).await;
    let id = enqueue(&pool, JobSpec::new("wait", &()).unwrap()).await;
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let worker = Worker::new(pool.clone(), config(1)).unwrap().register("wait", None, fast_retry(3), move |ctx| {
        let started_tx = started_tx.clone();
        async move {
            ctx.progress(serde_json::json!({"percent": 10})).await.map_err(JobError::from)?;
            let _ = started_tx.send(ctx.job.id);
            ctx.cancelled().await;
            Err(JobError::retryable("stopped"))
        }
    });
    let run = tokio::spawn(async move { worker.process_next().await.unwrap() });
    assert_eq!(within("the handler to start", started.recv()).await, Some(id));
    let rec = state(&pool, id).await;
    assert_eq!(rec.state(), JobState::Running);
    assert_eq!(rec.progress, Some(serde_json::json!({"percent": 10})));
    assert_eq!(videdit_queue::cancel(&pool, id).await.unwrap(), CancelOutcome::Requested);
    // The request reaches the handler through a heartbeat; the handler never returns on its own.
    assert_eq!(within("the cancel request to stop the handler", run).await.unwrap(), Processed::Cancelled(id));
    let rec = state(&pool, id).await;
    assert_eq!((rec.state(), rec.attempt), (JobState::Cancelled, 1));
    assert_eq!(errors(&rec), [(1, "cancelled")]);
    // Waiting jobs are cancelled at once; finished ones are not live.
    let waiting = enqueue(&pool, JobSpec::new("wait", &()).unwrap()).await;
    assert_eq!(videdit_queue::cancel(&pool, waiting).await.unwrap(), CancelOutcome::Cancelled);
    assert_eq!(state(&pool, waiting).await.state(), JobState::Cancelled);
    assert_eq!(videdit_queue::cancel(&pool, waiting).await.unwrap(), CancelOutcome::NotLive);
    assert_eq!(videdit_queue::cancel(&pool, uuid::Uuid::now_v7()).await.unwrap(), CancelOutcome::NotLive);
}

scenarios! {
    graceful_shutdown_finishes_or_releases_in_flight_jobs: graceful_shutdown(Mode::Unbatched);
    graceful_shutdown_finishes_or_releases_in_flight_jobs_batched: graceful_shutdown(Mode::Batched);
}

async fn graceful_shutdown(pool: PgPool, mode: Mode) {
    setup(&pool).await;
    let quick = enqueue(&pool, JobSpec::new("quick", &()).unwrap()).await;
    let long = enqueue(&pool, JobSpec::new("long", &()).unwrap()).await;
    let (started_tx, mut started) = mpsc::unbounded_channel();
    // The quick job finishes when told to (inside the grace period); the long one never does on its own.
    let finish_quick = CancellationToken::new();
    let worker = Worker::new(pool.clone(), config_in(mode, 2))
        .unwrap()
        .register("quick", None, fast_retry(3), {
            let (started_tx, finish_quick) = (started_tx.clone(), finish_quick.clone());
            move |ctx| {
                let (started_tx, finish_quick) = (started_tx.clone(), finish_quick.clone());
                async move {
                    let _ = started_tx.send(ctx.job.id);
                    finish_quick.cancelled().await;
                    Ok(Outcome::Complete)
                }
            }
        })
        .register("long", None, fast_retry(3), move |ctx| {
            let started_tx = started_tx.clone();
            async move {
                let _ = started_tx.send(ctx.job.id);
                ctx.cancelled().await;
                Err(JobError::retryable("stopped"))
            }
        });
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(worker.run(shutdown.clone(), Duration::from_secs(5)));
    let mut running = vec![
        within("the first job to start", started.recv()).await.unwrap(),
        within("the second job to start", started.recv()).await.unwrap(),
    ];
    running.sort();
    let mut expected = vec![quick, long];
    expected.sort();
    assert_eq!(running, expected, "both jobs are in flight");
    shutdown.cancel();
    finish_quick.cancel();
    within("the worker to shut down", run).await.unwrap().unwrap();
    let rec = state(&pool, quick).await;
    assert_eq!((rec.state(), rec.attempt), (JobState::Completed, 1), "finished within the grace period");
    let rec = state(&pool, long).await;
    assert_eq!((rec.state(), rec.attempt), (JobState::Available, 0), "released after the grace, attempt not spent");
    assert_eq!(errors(&rec), Vec::<(i64, &str)>::new(), "a release is not a failure");
    // Another worker takes it immediately (no lease to wait out).
    let other = Worker::new(pool.clone(), config(1))
        .unwrap()
        .register("long", None, fast_retry(3), |_| async { Ok(Outcome::Complete) });
    assert_eq!(other.process_next().await.unwrap(), Processed::Completed(long));
}

#[sqlx::test(migrations = false)]
async fn a_stale_workers_late_completion_is_fenced(pool: PgPool) {
    setup(&pool).await;
    let id = enqueue(&pool, JobSpec::new("k", &()).unwrap()).await;
    let first = queue::claim(&pool, &["default".into()], 10, Duration::from_millis(200)).await.unwrap().remove(0);
    assert_eq!((first.id, first.attempt), (id, 1));
    let swept = wait_until!("the 200 ms lease to expire and be swept", {
        let s = queue::sweep(&pool, &sweep_now()).await.unwrap();
        (s != Swept::default()).then_some(s)
    });
    assert_eq!(swept, Swept { retried: 1, dead: 0 });
    let second = queue::claim(&pool, &["default".into()], 10, LEASE).await.unwrap().remove(0);
    assert_eq!((second.id, second.attempt), (id, 2));
    assert!(matches!(queue::complete(&pool, &first).await, Err(Error::LeaseLost(x)) if x == id));
    assert_eq!(queue::heartbeat(&pool, &first, LEASE).await.unwrap(), Heartbeat::Lost);
    assert!(
        matches!(queue::set_progress(&pool, &first, &serde_json::json!(1)).await, Err(Error::LeaseLost(x)) if x == id)
    );
    queue::complete(&pool, &second).await.unwrap();
    let rec = state(&pool, id).await;
    assert_eq!((rec.state(), rec.attempt), (JobState::Completed, 2));
    assert_eq!(rec.progress, None, "the stale worker's progress was refused");
    assert_eq!(errors(&rec), [(1, "lease expired (worker lost)")]);
}

#[sqlx::test(migrations = false)]
async fn two_sweepers_at_once_return_each_job_once(pool: PgPool) {
    setup(&pool).await;
    for i in 0..50 {
        enqueue(&pool, JobSpec::new("k", &i).unwrap()).await;
    }
    let claimed = queue::claim(&pool, &["default".into()], 50, Duration::from_millis(100)).await.unwrap();
    assert_eq!(claimed.len(), 50);
    wait_for!("every 100 ms lease to expire", {
        let leased: i64 = sqlx::query_scalar("SELECT count(*) FROM videdit_queue.jobs WHERE lease_until >= now()")
            .fetch_one(&pool)
            .await
            .unwrap();
        leased == 0
    });
    let other = another_pool(&pool, 2).await;
    let policy = fast_retry(5);
    let (a, b) = tokio::join!(queue::sweep(&pool, &policy), queue::sweep(&other, &policy));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.retried + b.retried, a.dead + b.dead), (50, 0));
    let (running, once): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state = 'running'),
                count(*) FILTER (WHERE state = 'available' AND jsonb_array_length(errors) = 1)
         FROM videdit_queue.jobs",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((running, once), (0, 50), "each job returned once, with one lease-expired error");
}

/// Two connections, driven step by step: a transition that holds the row
/// blocks the other, which then sees the new state, so exactly one wins.
#[sqlx::test(migrations = false)]
async fn concurrent_transitions_have_one_winner(pool: PgPool) {
    setup(&pool).await;
    let q = vec!["default".to_owned()];

    // claim vs cancel: the claim holds the row; the cancel waits, then finds it running.
    let id = enqueue(&pool, JobSpec::new("k", &()).unwrap()).await;
    let mut tx = pool.begin().await.unwrap();
    let holder = backend_pid(&mut tx).await;
    let claimed = queue::claim(&mut *tx, &q, 1, LEASE).await.unwrap().remove(0);
    assert_eq!(cancel_behind(&pool, id, tx, holder, "the claim").await, CancelOutcome::Requested);
    // cancel vs complete: the completion still wins against a mere request...
    queue::complete(&pool, &claimed).await.unwrap();
    assert_eq!(state(&pool, id).await.state(), JobState::Completed);
    assert_eq!(videdit_queue::cancel(&pool, id).await.unwrap(), CancelOutcome::NotLive);

    // sweep vs heartbeat: the sweep takes the expired lease; the heartbeat then finds it lost.
    let id = enqueue(&pool, JobSpec::new("k", &()).unwrap()).await;
    let job = queue::claim(&pool, &q, 1, Duration::from_millis(100)).await.unwrap().remove(0);
    wait_for!("the 100 ms lease to expire", {
        let expired: bool = sqlx::query_scalar("SELECT lease_until < now() FROM videdit_queue.jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
        expired
    });
    let mut tx = pool.begin().await.unwrap();
    let holder = backend_pid(&mut tx).await;
    assert_eq!(queue::sweep(&mut *tx, &sweep_now()).await.unwrap(), Swept { retried: 1, dead: 0 });
    let beat = tokio::spawn({
        let (pool, job) = (pool.clone(), job.clone());
        async move { queue::heartbeat(&pool, &job, LEASE).await.unwrap() }
    });
    wait_blocked_by(&pool, holder, "the heartbeat to wait for the sweep's row lock").await;
    assert!(!beat.is_finished(), "the heartbeat waits for the sweep");
    tx.commit().await.unwrap();
    assert_eq!(within("the heartbeat", beat).await.unwrap(), Heartbeat::Lost);
    // sweep vs late complete: fenced.
    assert!(matches!(queue::complete(&pool, &job).await, Err(Error::LeaseLost(x)) if x == id));
    assert_eq!(state(&pool, id).await.state(), JobState::Available);

    // retry vs cancel: the failure is recorded first (holding the row); the cancel then cancels the waiting job.
    let job = queue::claim(&pool, &q, 1, LEASE).await.unwrap().remove(0);
    assert_eq!((job.id, job.attempt), (id, 2));
    let mut tx = pool.begin().await.unwrap();
    let holder = backend_pid(&mut tx).await;
    let done = sqlx::query(
        "UPDATE videdit_queue.jobs SET state = 'available', lease_token = NULL WHERE id = $1 AND lease_token = $2",
    )
    .bind(job.id)
    .bind(job.lease_token)
    .execute(&mut *tx)
    .await
    .unwrap();
    assert_eq!(done.rows_affected(), 1);
    assert_eq!(cancel_behind(&pool, id, tx, holder, "the failure").await, CancelOutcome::Cancelled);
    assert_eq!(state(&pool, id).await.state(), JobState::Cancelled);
    // The failed attempt's holder is fenced out too.
    assert!(matches!(queue::complete(&pool, &job).await, Err(Error::LeaseLost(x)) if x == id));
}

scenarios! {
    a_worker_whose_connections_are_killed_recovers: connections_killed(Mode::Unbatched);
    a_worker_whose_connections_are_killed_recovers_batched: connections_killed(Mode::Batched);
}

async fn connections_killed(pool: PgPool, mode: Mode) {
    setup(&pool).await;
    let worker_pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with((*pool.connect_options()).clone().application_name("victim-worker"))
        .await
        .unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    // Handlers hold on until the connections are killed, so jobs are in flight when it happens.
    let go = CancellationToken::new();
    let worker = Worker::new(worker_pool, config_in(mode, 2)).unwrap().register("k", None, fast_retry(5), {
        let (done, go) = (done.clone(), go.clone());
        move |_| {
            let (done, go, started_tx) = (done.clone(), go.clone(), started_tx.clone());
            async move {
                let _ = started_tx.send(());
                go.cancelled().await;
                done.fetch_add(1, Ordering::SeqCst);
                Ok(Outcome::Complete)
            }
        }
    });
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(worker.run(shutdown.clone(), Duration::from_secs(5)));
    for i in 0..10 {
        enqueue(&pool, JobSpec::new("k", &i).unwrap()).await;
    }
    for n in 1..=2 {
        within(&format!("in-flight job {n} to start"), started.recv()).await.unwrap();
    }
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'victim-worker') t",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(killed > 0, "the worker had connections to kill");
    go.cancel();
    wait_for!("every job to complete after the worker's connections were killed", {
        let finished: i64 =
            sqlx::query_scalar("SELECT count(*) FROM videdit_queue.job_history WHERE final_state = 'completed'")
                .fetch_one(&pool)
                .await
                .unwrap();
        finished == 10
    });
    shutdown.cancel();
    within("the worker to shut down", run).await.unwrap().unwrap();
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM videdit_queue.jobs").fetch_one(&pool).await.unwrap();
    assert_eq!(live, 0);
    assert!(done.load(Ordering::SeqCst) >= 10, "every completed job ran its handler");
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
    let mode = if std::env::var_os("VIDEDIT_QUEUE_CHILD_BATCHED").is_some() { Mode::Batched } else { Mode::Unbatched };
    let worker = Worker::new(pool, config_in(mode, 1)).unwrap().register("crashy", None, fast_retry(5), |_| async {
        tokio::time::sleep(HOUR).await;
        Ok(Outcome::Complete)
    });
    worker.run(CancellationToken::new(), Duration::from_secs(1)).await.unwrap();
}

fn url_of(db: &str) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let (prefix, _) = base.rsplit_once('/').expect("a database URL");
    format!("{prefix}/{db}")
}

scenarios! {
    worker_killed_with_sigkill_has_its_job_rerun: killed_with_sigkill(Mode::Unbatched);
    worker_killed_with_sigkill_has_its_job_rerun_batched: killed_with_sigkill(Mode::Batched);
}

async fn killed_with_sigkill(pool: PgPool, mode: Mode) {
    setup(&pool).await;
    let db: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&pool).await.unwrap();
    let id = enqueue(&pool, JobSpec::new("crashy", &()).unwrap()).await;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child.args(["--exact", "crash_child_entry", "--ignored", "--nocapture"]).env("VIDEDIT_QUEUE_CHILD_DB", &db);
    if mode == Mode::Batched {
        child.env("VIDEDIT_QUEUE_CHILD_BATCHED", "1");
    }
    let mut child = child.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    wait_for!("the child to claim the job", state(&pool, id).await.state() == JobState::Running);
    child.kill().unwrap(); // SIGKILL: no chance to release anything
    child.wait().unwrap();
    // Nothing is done until the lease runs out: the job stays running, unclaimable.
    let worker = Worker::new(pool.clone(), config(1))
        .unwrap()
        .register("crashy", None, fast_retry(5), |_| async { Ok(Outcome::Complete) });
    assert_eq!(worker.process_next().await.unwrap(), Processed::Empty);
    let rec = state(&pool, id).await;
    assert_eq!((rec.state(), rec.attempt), (JobState::Running, 1));
    let swept = wait_until!("the dead child's lease to expire and be swept", {
        let s = queue::sweep(&pool, &sweep_now()).await.unwrap();
        (s != Swept::default()).then_some(s)
    });
    assert_eq!(swept, Swept { retried: 1, dead: 0 });
    assert_eq!(worker.process_next().await.unwrap(), Processed::Completed(id));
    let rec = state(&pool, id).await;
    assert_eq!((rec.state(), rec.attempt), (JobState::Completed, 2));
    assert_eq!(errors(&rec), [(1, "lease expired (worker lost)")]);
    assert_eq!(count(&pool, &format!("job_history WHERE id = '{id}'")).await, 1, "one completion");
}

/// `Outcome::Snooze(d)`: the job goes back to waiting with `run_at = now() + d`
/// (the database's clock at the snooze), the attempt counter goes back to
/// what it was before the claim (the snooze spends no attempt), no error is
/// recorded, and the job runs again once due.
#[sqlx::test(migrations = false)]
async fn snooze_reruns_the_job_later_without_spending_an_attempt(pool: PgPool) {
    setup(&pool).await;
    const NAP: Duration = Duration::from_millis(250);
    // Two attempts: the first fails, so a snooze that spent or reset an attempt shows in the count.
    let id = enqueue(&pool, JobSpec::new("nap", &()).unwrap().max_attempts(2)).await;
    // The attempt number each invocation saw.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let at_once = RetryPolicy { max_attempts: 2, base: Duration::ZERO, max: Duration::ZERO, jitter: 0.0 };
    let worker = Worker::new(pool.clone(), config(1)).unwrap().register("nap", None, at_once, {
        let seen = seen.clone();
        move |ctx| {
            let seen = seen.clone();
            async move {
                let n = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(ctx.job.attempt);
                    seen.len()
                };
                match n {
                    1 => Err(JobError::retryable("first try fails")),
                    2 => Ok(Outcome::Snooze(HOUR)),
                    3 => Ok(Outcome::Snooze(NAP)),
                    _ => Ok(Outcome::Complete),
                }
            }
        }
    });
    assert_eq!(worker.process_next().await.unwrap(), Processed::Retried(id));
    let rec = state(&pool, id).await;
    assert_eq!((rec.state(), rec.attempt, rec.max_attempts), (JobState::Available, 1, 2));

    // Snooze for an hour: waiting again, due an hour from the snooze, the attempt given back.
    let before = db_now(&pool).await;
    assert_eq!(process_when_due(&worker, "the retry").await, Processed::Snoozed(id));
    let after = db_now(&pool).await;
    let due = run_at(&pool, id).await;
    assert!(before + HOUR <= due && due <= after + HOUR, "due {due}, snoozed between {before} and {after}");
    let rec = state(&pool, id).await;
    assert_eq!((rec.state(), rec.attempt, rec.max_attempts), (JobState::Available, 1, 2), "no attempt spent");
    assert_eq!(errors(&rec), [(1, "first try fails")], "a snooze is not a failure");
    assert_eq!(worker.process_next().await.unwrap(), Processed::Empty, "snoozed for an hour: not due");

    // The hour passes; it runs again (still attempt 2) and snoozes briefly.
    make_due(&pool, id).await;
    let before = db_now(&pool).await;
    assert_eq!(worker.process_next().await.unwrap(), Processed::Snoozed(id));
    let after = db_now(&pool).await;
    let nap_until = run_at(&pool, id).await;
    assert!(
        before + NAP <= nap_until && nap_until <= after + NAP,
        "due {nap_until}, snoozed between {before} and {after}"
    );
    assert_eq!(state(&pool, id).await.attempt, 1);

    // Nobody moves run_at now: the job comes back by itself once the nap is over, and not before.
    assert_eq!(process_when_due(&worker, "the snoozed job to be due again").await, Processed::Completed(id));
    let claimed = started_at(&pool, id).await;
    assert!(claimed >= nap_until, "claimed at {claimed}, before its snooze ended at {nap_until}");

    assert_eq!(*seen.lock().unwrap(), [1, 2, 2, 2], "the attempt number each run saw");
    let rec = state(&pool, id).await;
    assert_eq!((rec.state(), rec.attempt, rec.max_attempts), (JobState::Completed, 2, 2));
    assert_eq!(errors(&rec), [(1, "first try fails")]);
}

// A job that works for three leases while heartbeats renew its lease is
// never taken from its worker: with a second worker and a sweeper running
// all along (either would re-run a job whose lease lapsed), its handler
// runs once and the job completes once, with no lease-expired error.
// Batched, the claim's lease is the short prefetch lease (1 s): the first
// heartbeat comes early enough to extend it.
scenarios! {
    heartbeats_keep_a_job_three_leases_long_from_running_twice: long_job_with_heartbeats(Mode::Unbatched);
    heartbeats_keep_a_job_three_leases_long_from_running_twice_batched: long_job_with_heartbeats(Mode::Batched);
}

async fn long_job_with_heartbeats(pool: PgPool, mode: Mode) {
    setup(&pool).await;
    let lease = Duration::from_secs(3);
    let cfg = WorkerConfig { lease, ..config_in(mode, 1) };
    let id = enqueue(&pool, JobSpec::new("long", &()).unwrap()).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let handler = {
        let runs = runs.clone();
        move |ctx: JobContext| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(3 * lease).await; // the work: three leases long
                // The first lease is long past, yet the job is still ours and leased into the future.
                let row: Option<(bool, bool)> = sqlx::query_as(
                    "SELECT now() > started_at + make_interval(secs => $3), lease_until > now()
                     FROM videdit_queue.jobs WHERE id = $1 AND lease_token = $2 AND state = 'running'",
                )
                .bind(ctx.job.id)
                .bind(ctx.job.lease_token)
                .bind(lease.as_secs_f64())
                .fetch_optional(ctx.pool())
                .await
                .map_err(|e| JobError::retryable(e.to_string()))?;
                match row {
                    Some((true, true)) => Ok(Outcome::Complete),
                    other => Err(JobError::fatal(format!("(first lease past, leased now) = {other:?}"))),
                }
            }
        }
    };
    let shutdown = CancellationToken::new();
    let mut metrics = Vec::new();
    let mut runtimes = Vec::new();
    for _ in 0..2 {
        let worker = Worker::new(another_pool(&pool, 4).await, cfg.clone()).unwrap().register(
            "long",
            None,
            fast_retry(5),
            handler.clone(),
        );
        metrics.push(worker.metrics());
        runtimes.push(tokio::spawn(worker.run(shutdown.clone(), Duration::from_secs(1))));
    }
    // A sweeper of its own, returning any lapsed lease at once.
    let sweeper = tokio::spawn({
        let (pool, shutdown) = (pool.clone(), shutdown.clone());
        async move {
            let mut total = Swept::default();
            while !shutdown.is_cancelled() {
                let s = queue::sweep(&pool, &sweep_now()).await.unwrap();
                total.retried += s.retried;
                total.dead += s.dead;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            total
        }
    });
    wait_for!(
        "the long job to finish",
        !matches!(state(&pool, id).await.state(), JobState::Available | JobState::Running)
    );
    shutdown.cancel();
    for r in runtimes {
        within("the workers to shut down", r).await.unwrap().unwrap();
    }
    let swept = within("the sweeper to stop", sweeper).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the handler ran once");
    let rec = state(&pool, id).await;
    assert_eq!(errors(&rec), Vec::<(i64, &str)>::new(), "no lease expired, no failure");
    assert_eq!((rec.state(), rec.attempt), (JobState::Completed, 1));
    assert_eq!(swept, Swept::default(), "the sweeper never found the lease expired");
    let started: u64 = metrics.iter().map(|m| m.started.load(Ordering::SeqCst)).sum();
    let completed: u64 = metrics.iter().map(|m| m.completed.load(Ordering::SeqCst)).sum();
    assert_eq!((started, completed), (1, 1), "one start and one completion across both workers");
}

/// A batch the database refuses (here: a trigger refusing any statement
/// that finishes more than one job) is recorded again one job per
/// statement; every job still completes once.
#[sqlx::test(migrations = false)]
async fn a_batch_that_fails_is_recorded_one_by_one(pool: PgPool) {
    setup(&pool).await;
    sqlx::query(
        "CREATE FUNCTION one_at_a_time() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
            IF (SELECT count(*) FROM gone) > 1 THEN RAISE EXCEPTION 'one job per statement'; END IF;
            RETURN NULL;
         END $$",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER one_at_a_time AFTER DELETE ON videdit_queue.jobs REFERENCING OLD TABLE AS gone
         FOR EACH STATEMENT EXECUTE FUNCTION one_at_a_time()",
    )
    .execute(&pool)
    .await
    .unwrap();
    let specs: Vec<JobSpec> = (0..40).map(|i| JobSpec::new("k", &i).unwrap()).collect();
    let mut conn = pool.acquire().await.unwrap();
    videdit_queue::enqueue_many(&mut conn, &specs).await.unwrap();
    drop(conn);
    // A long window: the 40 endings are recorded in batches, never alone.
    let cfg = WorkerConfig {
        batching: Some(Batching { window: Duration::from_millis(200), ..Batching::default() }),
        ..config(8)
    };
    let worker =
        Worker::new(pool.clone(), cfg).unwrap().register("k", None, fast_retry(1), |_| async { Ok(Outcome::Complete) });
    let metrics = worker.metrics();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(worker.run(shutdown.clone(), Duration::from_secs(5)));
    wait_for!("all 40 completions", count(&pool, "job_history WHERE final_state = 'completed'").await == 40);
    shutdown.cancel();
    within("the worker to shut down", run).await.unwrap().unwrap();
    assert_eq!(count(&pool, "jobs").await, 0);
    assert_eq!(metrics.completed.load(Ordering::SeqCst), 40);
}

/// Prefetched jobs never exceed their bound (running or buffered, a worker
/// holds at most concurrency + prefetch jobs), and go back to the queue at
/// once on shutdown, their attempt not spent.
#[sqlx::test(migrations = false)]
async fn prefetched_jobs_stay_within_their_bound_and_go_back_at_shutdown(pool: PgPool) {
    setup(&pool).await;
    let specs: Vec<JobSpec> = (0..200).map(|i| JobSpec::new("hold", &i).unwrap()).collect();
    let mut conn = pool.acquire().await.unwrap();
    videdit_queue::enqueue_many(&mut conn, &specs).await.unwrap();
    drop(conn);
    let cfg = WorkerConfig {
        batching: Some(Batching { prefetch: 10, prefetch_lease: Duration::from_secs(60), ..Batching::default() }),
        lease: Duration::from_secs(60),
        ..config(3)
    };
    // The handlers hold on until shutdown, which they never see: the grace ends them.
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let worker = Worker::new(pool.clone(), cfg).unwrap().register("hold", None, fast_retry(3), move |ctx| {
        let started_tx = started_tx.clone();
        async move {
            let _ = started_tx.send(());
            ctx.cancelled().await;
            Err(JobError::retryable("stopped"))
        }
    });
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(worker.run(shutdown.clone(), Duration::from_millis(200)));
    for n in 1..=3 {
        within(&format!("job {n} to start"), started.recv()).await.unwrap();
    }
    wait_for!("the buffer to fill", count(&pool, "jobs WHERE state = 'running'").await == 13);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&pool, "jobs WHERE state = 'running'").await, 13, "3 running + 10 prefetched, no more");
    shutdown.cancel();
    within("the worker to shut down", run).await.unwrap().unwrap();
    assert_eq!(count(&pool, "jobs WHERE state = 'available' AND attempt = 0").await, 200, "all given back");
    assert!(started.try_recv().is_err(), "no prefetched job started after shutdown");
}

/// A group with a thousand waiting jobs does not starve a group that
/// enqueues ten later: with fair claims, the small group's jobs start
/// within the next claims, alternating with the large group's.
#[sqlx::test(migrations = false)]
async fn a_small_group_is_not_starved_by_a_large_one(pool: PgPool) {
    setup(&pool).await;
    let big: Vec<JobSpec> = (0..1000).map(|i| JobSpec::new("k", &i).unwrap().group("org-big")).collect();
    let mut conn = pool.acquire().await.unwrap();
    videdit_queue::enqueue_many(&mut conn, &big).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let cfg = WorkerConfig { fairness: Some(Fairness::default()), ..config(1) };
    let worker = Worker::new(pool.clone(), cfg).unwrap().register("k", None, fast_retry(1), {
        let seen = seen.clone();
        move |ctx| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(ctx.job.group_key.clone().unwrap_or_default());
                Ok(Outcome::Complete)
            }
        }
    });
    for _ in 0..5 {
        assert!(matches!(worker.process_next().await.unwrap(), Processed::Completed(_)));
    }
    // The small group comes later, and sorts after the big one (the walk
    // goes round, so where it sorts does not matter).
    let small: Vec<JobSpec> = (0..10).map(|i| JobSpec::new("k", &i).unwrap().group("org-small")).collect();
    videdit_queue::enqueue_many(&mut conn, &small).await.unwrap();
    for _ in 0..20 {
        assert!(matches!(worker.process_next().await.unwrap(), Processed::Completed(_)));
    }
    let seen = seen.lock().unwrap().clone();
    let after: Vec<&str> = seen[5..].iter().map(String::as_str).collect();
    assert_eq!(after.iter().filter(|g| **g == "org-small").count(), 10, "all ten small jobs ran: {after:?}");
    let first_small = after.iter().position(|g| *g == "org-small").unwrap();
    assert!(first_small <= 1, "the small group started within two claims: {after:?}");
    // Unfair (the default), the big group's older jobs go first.
    let plain = Worker::new(pool.clone(), config(1)).unwrap().register("k", None, fast_retry(1), |ctx| async move {
        assert_eq!(ctx.job.group_key.as_deref(), Some("org-big"));
        Ok(Outcome::Complete)
    });
    let more: Vec<JobSpec> = (0..3).map(|i| JobSpec::new("k", &i).unwrap().group("org-small")).collect();
    videdit_queue::enqueue_many(&mut conn, &more).await.unwrap();
    assert!(matches!(plain.process_next().await.unwrap(), Processed::Completed(_)));
}

/// Caps on running jobs per group (over all kinds) and per group and kind
/// hold, while other groups and kinds go on.
#[sqlx::test(migrations = false)]
async fn running_jobs_per_group_and_kind_stay_within_their_limits(pool: PgPool) {
    setup(&pool).await;
    let mut specs = Vec::new();
    for i in 0..30 {
        specs.push(JobSpec::new("render", &i).unwrap().group("org-a"));
        specs.push(JobSpec::new("ingest", &i).unwrap().group("org-a"));
        specs.push(JobSpec::new("render", &i).unwrap().group("org-b"));
    }
    let mut conn = pool.acquire().await.unwrap();
    videdit_queue::enqueue_many(&mut conn, &specs).await.unwrap();
    drop(conn);
    let fairness = Fairness {
        max_running_per_group: Some(3),
        max_running_per_kind: [("render".to_owned(), 1)].into_iter().collect(),
    };
    let cfg = WorkerConfig { fairness: Some(fairness), ..config(10) };
    let release = CancellationToken::new();
    let hold = hold_until(release.clone());
    let worker = Worker::new(pool.clone(), cfg)
        .unwrap()
        .register("render", None, fast_retry(1), hold.clone())
        .register("ingest", None, fast_retry(1), hold);
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(worker.run(shutdown.clone(), Duration::from_secs(5)));
    let running = |group: &'static str, kind: &'static str| {
        let pool = pool.clone();
        async move {
            count(&pool, &format!("jobs WHERE state = 'running' AND group_key = '{group}' AND kind LIKE '{kind}'"))
                .await
        }
    };
    // org-a: one render (its kind cap) and two ingests (its group cap of 3); org-b: one render.
    wait_for!("org-a to reach its caps", running("org-a", "%").await == 3 && running("org-b", "%").await == 1);
    tokio::time::sleep(Duration::from_millis(500)).await; // several polls later, still within the caps
    assert_eq!(
        (running("org-a", "render").await, running("org-a", "ingest").await, running("org-b", "render").await),
        (1, 2, 1)
    );
    release.cancel();
    wait_for!("every job to finish", count(&pool, "jobs").await == 0);
    shutdown.cancel();
    within("the worker to shut down", run).await.unwrap().unwrap();
}

/// A group's own cap (a tenant's plan) overrides the worker's: one group
/// capped lower, one with no cap at all, one on the worker's setting.
#[sqlx::test(migrations = false)]
async fn a_groups_own_cap_overrides_the_workers(pool: PgPool) {
    setup(&pool).await;
    let mut specs = Vec::new();
    for i in 0..12 {
        for g in ["org-a", "org-b", "org-c"] {
            specs.push(JobSpec::new("ingest", &i).unwrap().group(g));
        }
    }
    let mut conn = pool.acquire().await.unwrap();
    videdit_queue::enqueue_many(&mut conn, &specs).await.unwrap();
    videdit_queue::set_group_limit(&mut *conn, "org-a", Some(Some(1))).await.unwrap();
    videdit_queue::set_group_limit(&mut *conn, "org-b", Some(None)).await.unwrap();
    videdit_queue::set_group_limit(&mut *conn, "org-c", Some(Some(5))).await.unwrap();
    videdit_queue::set_group_limit(&mut *conn, "org-c", None).await.unwrap();
    drop(conn);
    let fairness = Fairness { max_running_per_group: Some(2), ..Fairness::default() };
    let cfg = WorkerConfig { fairness: Some(fairness), ..config(10) };
    let release = CancellationToken::new();
    let hold = hold_until(release.clone());
    let worker = Worker::new(pool.clone(), cfg).unwrap().register("ingest", None, fast_retry(1), hold);
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(worker.run(shutdown.clone(), Duration::from_secs(5)));
    let running = |group: &'static str| {
        let pool = pool.clone();
        async move { count(&pool, &format!("jobs WHERE state = 'running' AND group_key = '{group}'")).await }
    };
    // Ten slots: org-a its own 1, org-c the worker's 2, org-b (no cap) the other 7.
    wait_for!("the slots to fill", running("org-a").await + running("org-b").await + running("org-c").await == 10);
    tokio::time::sleep(Duration::from_millis(500)).await; // several polls later, still within the caps
    assert_eq!((running("org-a").await, running("org-b").await, running("org-c").await), (1, 7, 2));
    release.cancel();
    wait_for!("every job to finish", count(&pool, "jobs").await == 0);
    shutdown.cancel();
    within("the worker to shut down", run).await.unwrap().unwrap();
}

/// A handler that holds its job running until `release` is cancelled.
fn hold_until(
    release: CancellationToken,
) -> impl Fn(JobContext) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Outcome, JobError>> + Send>>
+ Clone
+ Send
+ Sync
+ 'static {
    move |_: JobContext| {
        let release = release.clone();
        Box::pin(async move {
            release.cancelled().await;
            Ok(Outcome::Complete)
        })
    }
}

/// A TCP proxy to PostgreSQL that a test can cut (every connection through
/// it dropped, new ones closed at once) and restore: a database that a
/// worker can no longer reach, while it stays up for everyone else.
struct Proxy {
    port: u16,
    cut: Arc<std::sync::atomic::AtomicBool>,
    epoch: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: (String, u16)) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (epoch, _) = tokio::sync::watch::channel(0_u64);
        let (flag, watch) = (cut.clone(), epoch.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                if flag.load(Ordering::SeqCst) {
                    continue; // dropped: the connection closes
                }
                let mut changed = watch.subscribe();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = changed.changed() => {} // cut: both ends dropped
                    }
                });
            }
        });
        Self { port, cut, epoch }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.epoch.send_modify(|e| *e += 1);
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// Notes when the handler holding it stopped (returned or was dropped).
struct StopGuard(Arc<Mutex<Option<std::time::Instant>>>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.0.lock().unwrap().get_or_insert_with(std::time::Instant::now);
    }
}

/// A worker whose heartbeats cannot reach PostgreSQL past its lease stops
/// its handler itself, before another worker takes the job over; the job
/// then completes once, by the other worker.
#[sqlx::test(migrations = false)]
async fn a_worker_cut_off_from_the_database_stops_its_job_before_another_takes_it(pool: PgPool) {
    setup(&pool).await;
    sqlx::query("CREATE TABLE effects (job_id uuid PRIMARY KEY, by_worker text NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let opts = (*pool.connect_options()).clone();
    let proxy = Proxy::start((opts.get_host().to_owned(), opts.get_port())).await;
    let cut_off = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(1))
        .connect_with(opts.host("127.0.0.1").port(proxy.port))
        .await
        .unwrap();
    let id = enqueue(&pool, JobSpec::new("write", &1).unwrap()).await;

    let stopped_at = Arc::new(Mutex::new(None::<std::time::Instant>));
    let taken_at = Arc::new(Mutex::new(None::<std::time::Instant>));
    let release = CancellationToken::new();
    // Worker A: holds the job until it is released or stopped.
    let a = {
        let (stopped_at, release) = (stopped_at.clone(), release.clone());
        Worker::new(cut_off, WorkerConfig { lease: Duration::from_secs(3), ..config(1) }).unwrap().register(
            "write",
            None,
            fast_retry(5),
            move |ctx: JobContext| {
                let (stopped_at, release) = (stopped_at.clone(), release.clone());
                async move {
                    // Stopped: told to (cancelled) or dropped, whichever the worker does first.
                    let _stopped = StopGuard(stopped_at);
                    let cancel = ctx.cancellation_token();
                    tokio::select! {
                        () = cancel.cancelled() => Err(JobError::retryable("stopped")),
                        () = release.cancelled() => Ok(Outcome::Complete),
                    }
                }
            },
        )
    };
    let stop_a = CancellationToken::new();
    let run_a = tokio::spawn(a.run(stop_a.clone(), Duration::from_secs(5)));
    wait_for!("worker A to start the job", {
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM videdit_queue.jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&pool)
            .await
            .unwrap();
        state.as_deref() == Some("running")
    });
    proxy.cut();
    // Worker B, on a connection that works, takes the job once A's lease ran out.
    let b = {
        let taken_at = taken_at.clone();
        Worker::new(pool.clone(), WorkerConfig { sweep_retry: sweep_now(), ..config(1) }).unwrap().register(
            "write",
            None,
            fast_retry(5),
            move |ctx: JobContext| {
                let taken_at = taken_at.clone();
                async move {
                    *taken_at.lock().unwrap() = Some(std::time::Instant::now());
                    let mut tx = ctx.pool().begin().await.map_err(|e| JobError::retryable(e.to_string()))?;
                    sqlx::query("INSERT INTO effects VALUES ($1, 'b')")
                        .bind(ctx.job.id)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| JobError::fatal(e.to_string()))?;
                    ctx.complete_in(&mut tx).await.map_err(JobError::from)?;
                    tx.commit().await.map_err(|e| JobError::retryable(e.to_string()))?;
                    Ok(Outcome::CompletedInTransaction)
                }
            },
        )
    };
    let stop_b = CancellationToken::new();
    let run_b = tokio::spawn(b.run(stop_b.clone(), Duration::from_secs(5)));
    wait_for!("worker B to finish the job", count(&pool, "job_history WHERE final_state = 'completed'").await == 1);
    let (stopped, taken) =
        (stopped_at.lock().unwrap().expect("A stopped its handler"), taken_at.lock().unwrap().unwrap());
    assert!(stopped < taken, "A stopped its handler before B took the job");
    proxy.restore();
    release.cancel();
    stop_a.cancel();
    stop_b.cancel();
    within("worker A to shut down", run_a).await.unwrap().unwrap();
    within("worker B to shut down", run_b).await.unwrap().unwrap();
    let by: Vec<String> = sqlx::query_scalar("SELECT by_worker FROM effects").fetch_all(&pool).await.unwrap();
    assert_eq!(by, ["b"], "one effect, by B");
    assert_eq!(count(&pool, "jobs").await, 0);
}

/// Every connection of a worker dropped in the middle of a run (what a
/// PostgreSQL restart looks like from the worker): it reconnects, and every
/// job completes once.
#[sqlx::test(migrations = false)]
async fn a_worker_whose_connections_all_drop_reconnects_and_completes_every_job_once(pool: PgPool) {
    setup(&pool).await;
    sqlx::query("CREATE TABLE effects (job_id uuid PRIMARY KEY)").execute(&pool).await.unwrap();
    let opts = (*pool.connect_options()).clone();
    let proxy = Proxy::start((opts.get_host().to_owned(), opts.get_port())).await;
    let through = PgPoolOptions::new()
        .max_connections(6)
        .acquire_timeout(Duration::from_secs(1))
        .connect_with(opts.host("127.0.0.1").port(proxy.port))
        .await
        .unwrap();
    let specs: Vec<JobSpec> = (0..40).map(|i| JobSpec::new("effect", &i).unwrap()).collect();
    let mut conn = pool.acquire().await.unwrap();
    videdit_queue::enqueue_many(&mut conn, &specs).await.unwrap();
    drop(conn);
    let worker = Worker::new(through, WorkerConfig { sweep_retry: sweep_now(), ..config(4) }).unwrap().register(
        "effect",
        None,
        fast_retry(20),
        |ctx: JobContext| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut tx = ctx.pool().begin().await.map_err(|e| JobError::retryable(e.to_string()))?;
            let inserted = sqlx::query("INSERT INTO effects VALUES ($1)").bind(ctx.job.id).execute(&mut *tx).await;
            inserted.map_err(|e| JobError::fatal(format!("a second effect: {e}")))?;
            ctx.complete_in(&mut tx).await.map_err(JobError::from)?;
            tx.commit().await.map_err(|e| JobError::retryable(e.to_string()))?;
            Ok(Outcome::CompletedInTransaction)
        },
    );
    let stop = CancellationToken::new();
    let run = tokio::spawn(worker.run(stop.clone(), Duration::from_secs(5)));
    let effects =
        || async { sqlx::query_scalar::<_, i64>("SELECT count(*) FROM effects").fetch_one(&pool).await.unwrap() };
    wait_for!("the first effects", effects().await >= 5);
    proxy.cut();
    // The outage lasts past the lease: running jobs are stopped and swept back.
    tokio::time::sleep(LEASE + Duration::from_secs(1)).await;
    proxy.restore();
    wait_for!("every job to complete", count(&pool, "job_history WHERE final_state = 'completed'").await == 40);
    stop.cancel();
    within("the worker to shut down", run).await.unwrap().unwrap();
    assert_eq!((effects().await, count(&pool, "jobs").await), (40, 0));
    assert_eq!(count(&pool, "job_history WHERE final_state <> 'completed'").await, 0, "nothing died");
}
