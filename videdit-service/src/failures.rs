//! What a failed media job does to its video: a retryable error with
//! attempts left is retried and changes nothing; otherwise the failure is
//! recorded through the life cycle (the video fails, or one short fails and
//! the render fan-in runs) and the job dies with the error's code.

use sqlx::PgPool;
use videdit_core::{ShortId, Video};
use videdit_queue::{JobContext, JobError};

use crate::error::Error;

/// What a failure fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failing {
    /// The whole video.
    Video,
    /// One short (the video still becomes ready with the others).
    Short(ShortId),
}

/// Retries `e` while it is retryable and the job has attempts left (a
/// timeout at most once: [`TIMEOUT_ATTEMPTS`]); otherwise records the failure in one transaction and returns a fatal
/// job error carrying `e`'s code. When recording the failure itself fails,
/// that error is returned instead, so the job is retried and the failure is
/// not lost.
pub async fn give_up_or_retry(ctx: &JobContext, video: &Video, failing: Failing, e: Error) -> JobError {
    let again = attempts_left(ctx.job.attempt, ctx.job.max_attempts, &e);
    give_up_or_retry_at(ctx.pool(), again, video, failing, e).await
}

/// Whether a job that failed with `e` on run `attempt` (1-based) may run again.
fn attempts_left(attempt: i32, max_attempts: i32, e: &Error) -> bool {
    attempt < max_attempts && !(timed_out(e) && attempt >= TIMEOUT_ATTEMPTS)
}

/// Runs of a job that timed out: the first, and one retry. A source that
/// makes ffmpeg run past its duration-scaled deadline twice will do so
/// again; it must not hold a worker slot for every attempt.
pub const TIMEOUT_ATTEMPTS: i32 = 2;

fn timed_out(e: &Error) -> bool {
    e.code() == videdit_core::ErrorCode::Timeout
}

/// [`give_up_or_retry`] with the job's state given: `attempts_left` is
/// whether the queue would run the job again.
pub async fn give_up_or_retry_at(
    pool: &PgPool,
    attempts_left: bool,
    video: &Video,
    failing: Failing,
    e: Error,
) -> JobError {
    if e.is_retryable() && attempts_left {
        return e.into();
    }
    if let Err(err) = record(pool, video, failing, &e).await {
        tracing::warn!(video = %video.id, error = %err, "could not record the failure");
        return err.into();
    }
    JobError::from(e).into_fatal()
}

async fn record(pool: &PgPool, video: &Video, failing: Failing, e: &Error) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    match failing {
        Failing::Video => {
            crate::stages::fail(&mut tx, video, e.code(), e.message()).await?;
        }
        Failing::Short(short) => {
            crate::renders::fail(&mut tx, video, short, e.code(), e.message()).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use videdit_core::ErrorCode;

    use super::*;

    #[test]
    fn a_timeout_is_retried_once_and_other_failures_until_the_attempts_run_out() {
        let timeout = Error::new(ErrorCode::Timeout, "ffmpeg ran past its deadline");
        assert!(attempts_left(1, 5, &timeout));
        assert!(!attempts_left(2, 5, &timeout));
        let storage = Error::new(ErrorCode::StorageUnavailable, "503");
        assert!(attempts_left(4, 5, &storage));
        assert!(!attempts_left(5, 5, &storage));
    }
}
