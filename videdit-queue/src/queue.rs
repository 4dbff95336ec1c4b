//! The SQL of the queue: enqueue, claim and every fenced transition.
//!
//! Every statement is one round trip and commits on its own unless the
//! caller passes its own transaction. No transaction stays open while a
//! handler runs: a claim commits at once and hands out a lease token that
//! fences every later transition of that attempt.

use std::collections::BTreeSet;
use std::time::Duration;

use sqlx::{PgConnection, PgExecutor, PgPool};
use time::OffsetDateTime;

use crate::error::{Error, JobError, Result};
use crate::job::{Job, JobSpec};
use crate::retry::RetryPolicy;

/// The NOTIFY channel; the payload is the queue name.
pub const CHANNEL: &str = "videdit_queue";

const JOB_COLUMNS: &str =
    "id, queue, kind, payload, metadata, attempt, max_attempts, timeout_ms, lease_token, run_at, errors, group_key";

/// The columns of a job that `gone` (a CTE that deleted live jobs) returns,
/// with `errors` computed by `$errors`.
fn gone_columns(prefix: &str, errors: &str) -> String {
    let p = prefix;
    format!(
        "{p}id, {p}queue, {p}kind, {p}payload, {p}metadata, {p}priority, {p}attempt, {p}max_attempts, {p}unique_key, \
         {p}progress, {errors} AS errors, {p}created_at, {p}started_at, {p}group_key"
    )
}

/// Moves the jobs that the CTE `gone` deleted into the history, each with
/// the final state `final_state` (an SQL expression over `gone`).
fn to_history(final_state: &str) -> String {
    format!(
        "INSERT INTO videdit_queue.job_history
            (id, queue, kind, payload, metadata, final_state, priority, attempt, max_attempts, unique_key, progress, errors, created_at, started_at, group_key)
         SELECT id, queue, kind, payload, metadata, {final_state}, priority, attempt, max_attempts, unique_key, progress, errors, created_at, started_at, group_key FROM gone"
    )
}

fn error_entry(attempt: i32, message: &str, code: Option<&str>) -> serde_json::Value {
    let mut entry = serde_json::json!({
        "attempt": attempt,
        "error": message.chars().take(4000).collect::<String>(),
        "at": OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
    });
    if let Some(code) = code {
        entry["code"] = serde_json::json!(code);
    }
    serde_json::json!([entry])
}

/// Enqueues one job inside the caller's transaction (or on a pool). A job
/// whose unique key is held by a live job is not inserted: the live job's
/// id is returned instead. Wakes workers on the job's queue at commit.
///
/// # Errors
/// Invalid specs or database failures.
pub async fn enqueue(conn: &mut PgConnection, spec: &JobSpec) -> Result<uuid::Uuid> {
    Ok(enqueue_many(conn, std::slice::from_ref(spec)).await?[0])
}

/// Enqueues several jobs, with one wake-up per queue: the jobs without a
/// unique key in one statement (its NOTIFY included), each job with a key in
/// a statement of its own.
///
/// # Errors
/// Invalid specs or database failures.
pub async fn enqueue_many(conn: &mut PgConnection, specs: &[JobSpec]) -> Result<Vec<uuid::Uuid>> {
    for s in specs {
        s.validate()?;
    }
    let mut ids: Vec<Option<uuid::Uuid>> = vec![None; specs.len()];
    let plain: Vec<usize> = (0..specs.len()).filter(|&i| specs[i].unique_key.is_none()).collect();
    let mut queues = BTreeSet::new();
    if !plain.is_empty() {
        let new_ids: Vec<uuid::Uuid> = plain.iter().map(|_| uuid::Uuid::now_v7()).collect();
        fn column<T>(specs: &[JobSpec], which: &[usize], f: impl Fn(&JobSpec) -> T) -> Vec<T> {
            which.iter().map(|&i| f(&specs[i])).collect()
        }
        let notify: Vec<String> =
            plain.iter().map(|&i| specs[i].queue.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        sqlx::query(
            "WITH ins AS (
                INSERT INTO videdit_queue.jobs (id, queue, kind, payload, metadata, state, priority, run_at, max_attempts, timeout_ms, group_key)
                SELECT id, queue, kind, payload, metadata, 'available', priority, COALESCE(run_at, now()), max_attempts, timeout_ms, group_key
                FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::int2[], $7::timestamptz[], $8::int4[], $9::int8[], $10::text[])
                     AS t(id, queue, kind, payload, metadata, priority, run_at, max_attempts, timeout_ms, group_key)
                RETURNING 1
             )
             SELECT (SELECT count(*) FROM ins), (SELECT count(pg_notify($11, q)) FROM unnest($12::text[]) q)",
        )
        .bind(&new_ids)
        .bind(column(specs, &plain, |s| s.queue.clone()))
        .bind(column(specs, &plain, |s| s.kind.clone()))
        .bind(column(specs, &plain, |s| s.payload.clone()))
        .bind(column(specs, &plain, |s| s.metadata.clone()))
        .bind(column(specs, &plain, |s| s.priority))
        .bind(column(specs, &plain, |s| s.run_at))
        .bind(column(specs, &plain, |s| s.max_attempts as i32))
        .bind(column(specs, &plain, |s| s.timeout.map(|t| t.as_millis() as i64)))
        .bind(column(specs, &plain, |s| s.group.clone()))
        .bind(CHANNEL)
        .bind(&notify)
        .execute(&mut *conn)
        .await?;
        for (&i, id) in plain.iter().zip(new_ids) {
            ids[i] = Some(id);
        }
    }
    for (i, s) in specs.iter().enumerate().filter(|(_, s)| s.unique_key.is_some()) {
        let (id, inserted) = enqueue_unique(conn, s).await?;
        if inserted {
            queues.insert(s.queue.clone());
        }
        ids[i] = Some(id);
    }
    for q in queues {
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(&q).execute(&mut *conn).await?;
    }
    Ok(ids.into_iter().map(|id| id.expect("every spec has its id")).collect())
}

/// Inserts a job with a unique key, or finds the live job holding the key;
/// says which and whether it inserted.
async fn enqueue_unique(conn: &mut PgConnection, s: &JobSpec) -> Result<(uuid::Uuid, bool)> {
    // A loser of a unique-key race must see the winner, so retry if the
    // winner finished between our insert and our select.
    for _ in 0..3 {
        let inserted: Option<uuid::Uuid> = sqlx::query_scalar(
            "INSERT INTO videdit_queue.jobs (id, queue, kind, payload, metadata, state, priority, run_at, max_attempts, unique_key, timeout_ms, group_key)
             VALUES ($1, $2, $3, $4, $5, 'available', $6, COALESCE($7, now()), $8, $9, $10, $11)
             ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
             RETURNING id",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(&s.queue)
        .bind(&s.kind)
        .bind(&s.payload)
        .bind(&s.metadata)
        .bind(s.priority)
        .bind(s.run_at)
        .bind(s.max_attempts as i32)
        .bind(&s.unique_key)
        .bind(s.timeout.map(|t| t.as_millis() as i64))
        .bind(&s.group)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(new) = inserted {
            return Ok((new, true));
        }
        let existing: Option<uuid::Uuid> =
            sqlx::query_scalar("SELECT id FROM videdit_queue.jobs WHERE unique_key = $1")
                .bind(&s.unique_key)
                .fetch_optional(&mut *conn)
                .await?;
        if let Some(id) = existing {
            return Ok((id, false));
        }
    }
    Err(Error::Invalid("unique key kept changing hands; try again".into()))
}

/// Claims up to `limit` due jobs of the given queues (skipping paused
/// queues and rows other workers hold), marks them running under a fresh
/// lease and commits at once.
///
/// # Errors
/// Database failures.
pub async fn claim(db: impl PgExecutor<'_>, queues: &[String], limit: u32, lease: Duration) -> Result<Vec<Job>> {
    claim_kinds(db, queues, None, limit, lease).await
}

/// The filter of due, claimable jobs (`$1` queues, `$4` kinds or NULL), on `j`.
const DUE: &str =
    "j.state = 'available' AND j.queue = ANY($1) AND j.run_at <= now() AND ($4::text[] IS NULL OR j.kind = ANY($4))
      AND j.queue NOT IN (SELECT name FROM videdit_queue.queues WHERE paused)";

/// Marks the jobs `$picked` (an SQL array of ids, locked by the caller)
/// running under a fresh lease of `$3` seconds and returns them (`$2`, the
/// limit, is named once even when [`ClaimSpec::sql`] writes it out). The ids go
/// in as an array, not a join, so that the plan looks them up by primary
/// key whatever the planner guesses about how many there are.
fn mark_running(picked: &str) -> String {
    format!(
        "UPDATE videdit_queue.jobs j
         SET state = 'running', attempt = j.attempt + 1, lease_token = gen_random_uuid(),
             lease_until = now() + make_interval(secs => $3), started_at = now()
         WHERE j.id = ANY(ARRAY({picked})) AND $2::int8 > 0
         RETURNING {}",
        JOB_COLUMNS.split(", ").map(|c| format!("j.{c}")).collect::<Vec<_>>().join(", ")
    )
}

type PgQueryAs<'q, O> = sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>;

/// What to claim: the parameters of a claim statement.
///
/// Fair sharing between job groups: a claim walks the
/// groups with due jobs in key order, starting after `after` (the last group
/// the previous claim served, so successive claims go round), takes from
/// each in turn (the first job of every group, then the second, …), and
/// skips groups and kinds at their running limit. Ungrouped jobs form the
/// group `""`. At most `limit` groups are visited per claim, and the first
/// `4 × limit` due jobs of each: a group whose first jobs are all of kinds
/// at their cap gets nothing from this claim (never more than its caps).
///
/// A group's cap is its row in `group_limits` when it has one (see
/// [`crate::fairness::set_group_limit`]; a NULL cap there is no cap), else
/// the worker's `max_running_per_group`.
///
/// The limits count jobs running when the claim starts: exact for one
/// claimer at a time; two processes claiming for the same group at the same
/// instant may together exceed it by what each took.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClaimSpec<'a> {
    pub queues: &'a [String],
    pub kinds: Option<&'a [String]>,
    pub limit: u32,
    pub lease: Duration,
    /// Fair sharing, and the group the previous claim ended with.
    pub fair: Option<(&'a crate::Fairness, &'a str)>,
}

impl<'a> ClaimSpec<'a> {
    /// The statement that marks the claimed jobs running and returns them.
    ///
    /// A small limit is written into the statement rather than passed as
    /// `$2`: the planner then costs the generic plan like a custom one, so
    /// the cached plan is reused instead of planning every claim anew (a
    /// fifth of a claim's time at concurrency 8). Larger (batched) claims
    /// are rarer and plan each time.
    /// The fair claim's caps (`$6` to `$8`) are written out too, for the same
    /// reason: they are the worker's settings, the same in every claim.
    fn sql(&self) -> String {
        let mut sql = self.sql_with_limit_param();
        if let Some((fairness, _)) = self.fair {
            let (kinds, caps): (Vec<String>, Vec<String>) = fairness
                .max_running_per_kind
                .iter()
                .map(|(k, n)| (format!("'{}'", k.replace('\'', "''")), n.to_string()))
                .unzip();
            let cap = fairness.max_running_per_group.map_or("NULL".to_owned(), |n| n.to_string());
            sql = sql
                .replace("$6", &format!("{cap}::int4"))
                .replace("$7", &format!("ARRAY[{}]::text[]", kinds.join(", ")))
                .replace("$8", &format!("ARRAY[{}]::int4[]", caps.join(", ")));
        }
        if self.limit <= 32 { sql.replace("$2", &self.limit.to_string()) } else { sql }
    }

    fn sql_with_limit_param(&self) -> String {
        if self.fair.is_none() {
            return mark_running(&format!(
                "SELECT j.id FROM videdit_queue.jobs j WHERE {DUE}
                 ORDER BY j.queue, j.priority, j.run_at, j.id LIMIT $2 FOR NO KEY UPDATE SKIP LOCKED"
            ));
        }
        let next_group = format!(
            "SELECT coalesce(j.group_key, '') FROM videdit_queue.jobs j
             WHERE {DUE} AND coalesce(j.group_key, '') > {{from}} ORDER BY coalesce(j.group_key, '') LIMIT 1"
        );
        let picked = format!(
            "WITH RECURSIVE
             after_cursor(g, n) AS (
                SELECT ({first_after}), 1
                UNION ALL SELECT ({next}), n + 1 FROM after_cursor WHERE g IS NOT NULL AND n < $2
             ),
             from_start(g, n) AS (
                SELECT ({first_start}), 1
                UNION ALL SELECT ({next_start}), n + 1 FROM from_start WHERE g IS NOT NULL AND g <= $5 AND n < $2
             ),
             turn AS (
                SELECT g, n FROM (
                    SELECT g, n FROM after_cursor WHERE g IS NOT NULL
                    UNION ALL SELECT g, n + $2 FROM from_start WHERE g IS NOT NULL AND g <= $5
                ) t ORDER BY n LIMIT $2
             ),
             capped AS (
                SELECT t.g, t.n,
                       CASE WHEN l.group_key IS NOT NULL THEN l.max_running ELSE $6::int4 END AS cap
                FROM turn t LEFT JOIN videdit_queue.group_limits l ON l.group_key = t.g
             ),
             allowance AS (
                SELECT t.g, t.n,
                       CASE WHEN t.cap IS NULL THEN $2
                            ELSE greatest(0, least($2, t.cap - (SELECT count(*) FROM videdit_queue.jobs r
                                                            WHERE r.state = 'running' AND r.group_key = t.g))) END AS allow,
                       ARRAY(SELECT greatest(0, k.cap - (SELECT count(*) FROM videdit_queue.jobs r
                                                         WHERE r.state = 'running' AND r.group_key = t.g AND r.kind = k.kind))
                             FROM unnest($7::text[], $8::int4[]) WITH ORDINALITY AS k(kind, cap, o) ORDER BY k.o) AS room
                FROM capped t
             ),
             candidates AS (
                SELECT c.id, c.rn, a.n FROM allowance a CROSS JOIN LATERAL (
                    SELECT s.id, row_number() OVER (ORDER BY s.priority, s.run_at, s.id) AS rn FROM (
                        SELECT w.*, row_number() OVER (PARTITION BY w.kind ORDER BY w.priority, w.run_at, w.id) AS kn FROM (
                            SELECT j.id, j.kind, j.priority, j.run_at FROM videdit_queue.jobs j
                            WHERE {DUE} AND coalesce(j.group_key, '') = a.g AND a.allow > 0
                            ORDER BY j.priority, j.run_at, j.id
                            LIMIT CASE WHEN cardinality($7) = 0 THEN a.allow ELSE 4 * $2 END
                        ) w
                    ) s
                    WHERE s.kn <= coalesce(a.room[array_position($7, s.kind)], $2)
                    ORDER BY s.priority, s.run_at, s.id LIMIT a.allow
                ) c
             )
             SELECT j.id FROM videdit_queue.jobs j
             WHERE j.id = ANY(ARRAY(SELECT id FROM candidates ORDER BY rn, n LIMIT $2)) AND j.state = 'available'
             FOR NO KEY UPDATE SKIP LOCKED",
            first_after = next_group.replace("{from}", "$5"),
            next = next_group.replace("{from}", "after_cursor.g"),
            first_start = next_group.replace("> {from}", ">= ''"),
            next_start = next_group.replace("{from}", "from_start.g"),
        );
        mark_running(&picked)
    }

    /// Binds its parameters to `query` (its [`ClaimSpec::sql`], perhaps
    /// inside a larger statement).
    fn bind<'q, O>(&self, query: PgQueryAs<'q, O>) -> PgQueryAs<'q, O>
    where
        'a: 'q,
    {
        let query = query
            .bind(self.queues.to_vec())
            .bind(i64::from(self.limit))
            .bind(self.lease.as_secs_f64())
            .bind(self.kinds.map(<[String]>::to_vec));
        match self.fair {
            Some((_, after)) => query.bind(after.to_owned()),
            None => query,
        }
    }

    pub(crate) async fn run(&self, db: impl PgExecutor<'_>) -> Result<Vec<Job>> {
        if self.limit == 0 {
            return Ok(Vec::new());
        }
        let sql = self.sql();
        Ok(self.bind(sqlx::query_as(&sql)).fetch_all(db).await?)
    }
}

/// Like [`claim`], but only jobs of the given kinds (a worker claims only
/// what it has handlers for, so pools with different handlers can share a
/// queue).
///
/// # Errors
/// Database failures.
pub async fn claim_kinds(
    db: impl PgExecutor<'_>,
    queues: &[String],
    kinds: Option<&[String]>,
    limit: u32,
    lease: Duration,
) -> Result<Vec<Job>> {
    ClaimSpec { queues, kinds, limit, lease, fair: None }.run(db).await
}

/// How an attempt ended, to be recorded under its lease.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Settle {
    /// Completed: to the history.
    Complete,
    /// Failed for good (or cancelled): to the history with this final
    /// state and error.
    Finish { state: &'static str, error: serde_json::Value },
    /// Failed, to run again after the backoff.
    Retry { after: Duration, error: serde_json::Value },
    /// Back to waiting without spending the attempt (snooze, release).
    GiveBack { after: Duration },
}

/// Records the ends of several attempts in one statement, each fenced by its
/// lease token; returns the ids whose lease still held (the others were
/// refused: their lease was lost).
///
/// # Errors
/// Database failures.
pub(crate) async fn settle(db: impl PgExecutor<'_>, items: &[(&Job, Settle)]) -> Result<Vec<uuid::Uuid>> {
    let sql = format!("WITH {} SELECT id FROM moved UNION ALL SELECT id FROM back", settle_ctes(1));
    let done: Vec<(uuid::Uuid,)> = bind_settle(sqlx::query_as(&sql), items).fetch_all(db).await?;
    Ok(done.into_iter().map(|(id,)| id).collect())
}

/// The CTEs `gone`, `moved` and `back` that record the ends of attempts
/// given as five arrays from parameter `$p` on (ids, lease tokens, actions,
/// delays in seconds, error entries). The arrays drive the plan (a nested
/// loop over primary-key lookups), whatever the planner guesses about
/// their length.
fn settle_ctes(p: usize) -> String {
    let (ids, tokens, actions, secs, errs) = (p, p + 1, p + 2, p + 3, p + 4);
    let input = format!(
        "unnest(${ids}::uuid[], ${tokens}::uuid[], ${actions}::text[], ${secs}::float8[], ${errs}::jsonb[]) AS i(id, token, action, secs, err)"
    );
    format!(
        "gone AS (
            DELETE FROM videdit_queue.jobs j USING {input}
            WHERE j.id = i.id AND j.lease_token = i.token AND j.state = 'running'
              AND i.action IN ('completed', 'dead', 'cancelled')
            RETURNING {}, i.action
         ),
         moved AS ({} RETURNING id),
         back AS (
            UPDATE videdit_queue.jobs j
            SET state = 'available', lease_token = NULL, lease_until = NULL,
                attempt = j.attempt - (i.action = 'give_back')::int,
                run_at = now() + make_interval(secs => i.secs), errors = j.errors || i.err
            FROM {input}
            WHERE j.id = i.id AND j.lease_token = i.token AND j.state = 'running'
              AND i.action IN ('retry', 'give_back')
            RETURNING j.id
         )",
        gone_columns("j.", "j.errors || i.err"),
        to_history("action")
    )
}

/// Binds the five arrays of [`settle_ctes`].
fn bind_settle<'q, O>(query: PgQueryAs<'q, O>, items: &[(&Job, Settle)]) -> PgQueryAs<'q, O> {
    let mut ids = Vec::with_capacity(items.len());
    let mut tokens = Vec::with_capacity(items.len());
    let mut actions = Vec::with_capacity(items.len());
    let mut secs = Vec::with_capacity(items.len());
    let mut errors = Vec::with_capacity(items.len());
    for (job, s) in items {
        ids.push(job.id);
        tokens.push(job.lease_token);
        let (action, after, error) = match s {
            Settle::Complete => ("completed", Duration::ZERO, serde_json::json!([])),
            Settle::Finish { state, error } => (*state, Duration::ZERO, error.clone()),
            Settle::Retry { after, error } => ("retry", *after, error.clone()),
            Settle::GiveBack { after } => ("give_back", *after, serde_json::json!([])),
        };
        actions.push(action.to_owned());
        secs.push(after.as_secs_f64());
        errors.push(error);
    }
    query.bind(ids).bind(tokens).bind(actions).bind(secs).bind(errors)
}

/// Records one attempt's end (fenced).
async fn settle_one(db: impl PgExecutor<'_>, job: &Job, how: Settle) -> Result<()> {
    let done = settle(db, &[(job, how)]).await?;
    if done.is_empty() { Err(Error::LeaseLost(job.id)) } else { Ok(()) }
}

/// Completes a job (fenced by its lease) and moves it to the history. Pass
/// the handler's own transaction to commit its results with the completion.
///
/// # Errors
/// [`Error::LeaseLost`] when the lease is no longer ours.
pub async fn complete(db: impl PgExecutor<'_>, job: &Job) -> Result<()> {
    settle_one(db, job, Settle::Complete).await
}

/// What a failure did to the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Scheduled for another attempt.
    Retried,
    /// Attempts spent or fatal: moved to dead.
    Dead,
}

/// How a failed attempt is recorded: retried with backoff while attempts
/// remain and the error is retryable, else dead.
pub(crate) fn failure(job: &Job, error: &JobError, policy: &RetryPolicy) -> (Settle, FailOutcome) {
    let entry = error_entry(job.attempt, &error.message, error.code.as_deref());
    if error.retryable && job.attempt < job.max_attempts {
        (Settle::Retry { after: policy.backoff(job.attempt as u32), error: entry }, FailOutcome::Retried)
    } else {
        (Settle::Finish { state: "dead", error: entry }, FailOutcome::Dead)
    }
}

/// How a cancelled attempt is recorded.
pub(crate) fn cancelled(job: &Job) -> Settle {
    Settle::Finish { state: "cancelled", error: error_entry(job.attempt, "cancelled", None) }
}

/// Records a failed attempt (fenced): retried with backoff while attempts
/// remain and the error is retryable, else dead. The error joins the job's
/// history either way.
///
/// # Errors
/// [`Error::LeaseLost`] when the lease is no longer ours.
pub async fn fail(db: &PgPool, job: &Job, error: &JobError, policy: &RetryPolicy) -> Result<FailOutcome> {
    let (how, outcome) = failure(job, error, policy);
    settle_one(db, job, how).await?;
    Ok(outcome)
}

/// Puts the job back to run again at `at`, without spending an attempt.
///
/// # Errors
/// [`Error::LeaseLost`] when the lease is no longer ours.
pub async fn snooze(db: impl PgExecutor<'_>, job: &Job, after: Duration) -> Result<()> {
    settle_one(db, job, Settle::GiveBack { after }).await
}

/// Gives a job back at once (graceful shutdown), without spending an attempt.
///
/// # Errors
/// [`Error::LeaseLost`] when the lease is no longer ours.
pub async fn release(db: impl PgExecutor<'_>, job: &Job) -> Result<()> {
    settle_one(db, job, Settle::GiveBack { after: Duration::ZERO }).await
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// The lease is extended.
    Extended,
    /// The lease is extended, but cancellation was requested: stop.
    CancelRequested,
    /// The lease is gone: stop at once, do not write results.
    Lost,
}

/// Extends the lease (fenced); tells whether the job was cancelled.
///
/// # Errors
/// Database failures.
pub async fn heartbeat(db: impl PgExecutor<'_>, job: &Job, lease: Duration) -> Result<Heartbeat> {
    let cancel: Option<bool> = sqlx::query_scalar(
        "UPDATE videdit_queue.jobs SET lease_until = now() + make_interval(secs => $3)
         WHERE id = $1 AND lease_token = $2 AND state = 'running' RETURNING cancel_requested",
    )
    .bind(job.id)
    .bind(job.lease_token)
    .bind(lease.as_secs_f64())
    .fetch_optional(db)
    .await?;
    Ok(match cancel {
        None => Heartbeat::Lost,
        Some(true) => Heartbeat::CancelRequested,
        Some(false) => Heartbeat::Extended,
    })
}

/// Records progress (fenced).
///
/// # Errors
/// [`Error::LeaseLost`] when the lease is no longer ours.
pub async fn set_progress(db: impl PgExecutor<'_>, job: &Job, progress: &serde_json::Value) -> Result<()> {
    let done = sqlx::query(
        "UPDATE videdit_queue.jobs SET progress = $3 WHERE id = $1 AND lease_token = $2 AND state = 'running'",
    )
    .bind(job.id)
    .bind(job.lease_token)
    .bind(progress)
    .execute(db)
    .await?;
    if done.rows_affected() == 0 { Err(Error::LeaseLost(job.id)) } else { Ok(()) }
}

/// Moves a running job whose cancellation was requested to `cancelled`
/// (fenced); the runtime calls this when the handler stopped.
///
/// # Errors
/// [`Error::LeaseLost`] when the lease is no longer ours.
pub async fn mark_cancelled(db: impl PgExecutor<'_>, job: &Job) -> Result<()> {
    settle_one(db, job, cancelled(job)).await
}

/// What [`cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It was waiting: it is cancelled now.
    Cancelled,
    /// It is running: its worker is told through its heartbeat.
    Requested,
    /// No live job with that id (finished or unknown).
    NotLive,
}

/// Cancels a job: a waiting one at once, a running one through its worker.
///
/// # Errors
/// Database failures.
pub async fn cancel(db: impl PgExecutor<'_>, id: uuid::Uuid) -> Result<CancelOutcome> {
    let row: Option<String> = sqlx::query_scalar(&format!(
        "WITH target AS (SELECT id, state FROM videdit_queue.jobs WHERE id = $1 FOR UPDATE),
         gone AS (
            DELETE FROM videdit_queue.jobs j USING target t WHERE j.id = t.id AND t.state = 'available'
            RETURNING {}
         ),
         moved AS ({} RETURNING id),
         flagged AS (
            UPDATE videdit_queue.jobs j SET cancel_requested = true FROM target t
            WHERE j.id = t.id AND t.state = 'running' RETURNING j.id
         )
         SELECT CASE WHEN EXISTS (SELECT 1 FROM moved) THEN 'cancelled'
                     WHEN EXISTS (SELECT 1 FROM flagged) THEN 'requested' ELSE 'none' END",
        gone_columns("j.", "j.errors"),
        to_history("'cancelled'")
    ))
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(match row.as_deref() {
        Some("cancelled") => CancelOutcome::Cancelled,
        Some("requested") => CancelOutcome::Requested,
        _ => CancelOutcome::NotLive,
    })
}

/// Moves a waiting job to run at `run_at` instead (a rescheduled post).
/// Returns whether a waiting job with that id was found; a running or
/// finished one is left alone.
///
/// # Errors
/// Database failures.
pub async fn reschedule(db: impl PgExecutor<'_>, id: uuid::Uuid, run_at: OffsetDateTime) -> Result<bool> {
    let moved = sqlx::query("UPDATE videdit_queue.jobs SET run_at = $2 WHERE id = $1 AND state = 'available'")
        .bind(id)
        .bind(run_at)
        .execute(db)
        .await?;
    Ok(moved.rows_affected() == 1)
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Swept {
    /// Expired leases returned to the queue.
    pub retried: u64,
    /// Expired leases with no attempts left, moved to dead.
    pub dead: u64,
}

/// Returns running jobs whose lease expired to the queue (with backoff) or
/// to dead. Safe to run in every process at once: rows another sweeper holds
/// are skipped.
///
/// # Errors
/// Database failures.
pub async fn sweep(db: impl PgExecutor<'_>, policy: &RetryPolicy) -> Result<Swept> {
    let (retried, dead): (i64, i64) = sqlx::query_as(&format!(
        "WITH expired AS (
            SELECT id, attempt, max_attempts FROM videdit_queue.jobs
            WHERE state = 'running' AND lease_until < now()
            FOR NO KEY UPDATE SKIP LOCKED
         ),
         retried AS (
            UPDATE videdit_queue.jobs j
            SET state = 'available', lease_token = NULL, lease_until = NULL,
                run_at = now() + make_interval(secs => least($1 * power(2, greatest(e.attempt - 1, 0)), $2) * (1 + $3 * (2 * random() - 1))),
                errors = j.errors || jsonb_build_array(jsonb_build_object('attempt', e.attempt, 'error', 'lease expired (worker lost)', 'at', now()))
            FROM expired e WHERE j.id = e.id AND e.attempt < e.max_attempts AND NOT j.cancel_requested
            RETURNING j.id
         ),
         gone AS (
            DELETE FROM videdit_queue.jobs j USING expired e
            WHERE j.id = e.id AND (e.attempt >= e.max_attempts OR j.cancel_requested)
            RETURNING {}
         ),
         moved AS ({} RETURNING id)
         SELECT (SELECT count(*) FROM retried), (SELECT count(*) FROM moved)",
        gone_columns(
            "j.",
            "j.errors || jsonb_build_array(jsonb_build_object('attempt', j.attempt, 'error', 'lease expired (worker lost)', 'at', now()))"
        ),
        to_history("'dead'")
    ))
    .bind(policy.base.as_secs_f64())
    .bind(policy.max.as_secs_f64())
    .bind(policy.jitter)
    .fetch_one(db)
    .await?;
    Ok(Swept { retried: retried as u64, dead: dead as u64 })
}

/// Deletes history rows older than `retention`; returns how many.
///
/// # Errors
/// Database failures.
pub async fn prune_history(db: impl PgExecutor<'_>, retention: Duration) -> Result<u64> {
    let done =
        sqlx::query("DELETE FROM videdit_queue.job_history WHERE finished_at < now() - make_interval(secs => $1)")
            .bind(retention.as_secs_f64())
            .execute(db)
            .await?;
    Ok(done.rows_affected())
}
