//! Idempotency keys for creating requests, scoped to the user within the
//! organisation. A claim holds its key for a lease only, so a request that
//! crashed or was cut off does not block its key for a day.

use sqlx::PgExecutor;

use crate::error::Result;
use crate::id::{OrgId, UserId};

/// How long a key is remembered.
pub const IDEMPOTENCY_TTL_HOURS: i64 = 24;

/// How long an in-progress claim holds its key (longer than any request).
pub const IDEMPOTENCY_LEASE_SECONDS: i64 = 120;

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyClaim {
    /// The key is new (or expired, or its claim's lease ran out): run the
    /// request, then [`finish_idempotency`].
    Fresh,
    /// The same request ran before: replay its response.
    Replay {
        /// HTTP status.
        status: u16,
        /// JSON body.
        body: serde_json::Value,
    },
    /// The same key is running right now.
    InProgress,
    /// The key was used with another request body.
    Mismatch,
}

const NIL: uuid::Uuid = uuid::Uuid::nil();

fn scope(user: Option<UserId>) -> uuid::Uuid {
    user.map_or(NIL, |u| u.as_uuid())
}

/// Claims an idempotency key for a request with the given body hash.
///
/// # Errors
/// Database failures.
pub async fn claim_idempotency(
    db: impl PgExecutor<'_> + Copy,
    org: OrgId,
    user: Option<UserId>,
    key: &str,
    request_hash: &str,
) -> Result<IdempotencyClaim> {
    // Forget an expired key, or an abandoned claim, so it can be claimed again.
    sqlx::query(
        "DELETE FROM videdit.idempotency_keys
         WHERE org_id = $1 AND COALESCE(user_id, $5) = $2 AND key = $3
           AND (created_at < now() - make_interval(hours => $4) OR (status IS NULL AND lease_until < now()))",
    )
    .bind(org)
    .bind(scope(user))
    .bind(key)
    .bind(IDEMPOTENCY_TTL_HOURS as i32)
    .bind(NIL)
    .execute(db)
    .await?;
    let inserted = sqlx::query(
        "INSERT INTO videdit.idempotency_keys (org_id, user_id, key, request_hash, lease_until)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) ON CONFLICT DO NOTHING",
    )
    .bind(org)
    .bind(user)
    .bind(key)
    .bind(request_hash)
    .bind(IDEMPOTENCY_LEASE_SECONDS as f64)
    .execute(db)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(IdempotencyClaim::Fresh);
    }
    let row: Option<(String, Option<i32>, Option<serde_json::Value>)> = sqlx::query_as(
        "SELECT request_hash, status, body FROM videdit.idempotency_keys
         WHERE org_id = $1 AND COALESCE(user_id, $4) = $2 AND key = $3",
    )
    .bind(org)
    .bind(scope(user))
    .bind(key)
    .bind(NIL)
    .fetch_optional(db)
    .await?;
    Ok(match row {
        None => IdempotencyClaim::InProgress, // deleted between our statements; the client may retry
        Some((hash, _, _)) if hash != request_hash => IdempotencyClaim::Mismatch,
        Some((_, Some(status), Some(body))) => IdempotencyClaim::Replay { status: status as u16, body },
        Some(_) => IdempotencyClaim::InProgress,
    })
}

/// Stores the response of a request that claimed a key.
///
/// # Errors
/// Database failures.
pub async fn finish_idempotency(
    db: impl PgExecutor<'_>,
    org: OrgId,
    user: Option<UserId>,
    key: &str,
    status: u16,
    body: &serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "UPDATE videdit.idempotency_keys SET status = $4, body = $5, lease_until = NULL
         WHERE org_id = $1 AND COALESCE(user_id, $6) = $2 AND key = $3",
    )
    .bind(org)
    .bind(scope(user))
    .bind(key)
    .bind(i32::from(status))
    .bind(body)
    .bind(NIL)
    .execute(db)
    .await?;
    Ok(())
}

/// Releases a key whose request failed, so it can be retried.
///
/// # Errors
/// Database failures.
pub async fn release_idempotency(db: impl PgExecutor<'_>, org: OrgId, user: Option<UserId>, key: &str) -> Result<()> {
    sqlx::query(
        "DELETE FROM videdit.idempotency_keys
         WHERE org_id = $1 AND COALESCE(user_id, $4) = $2 AND key = $3 AND status IS NULL",
    )
    .bind(org)
    .bind(scope(user))
    .bind(key)
    .bind(NIL)
    .execute(db)
    .await?;
    Ok(())
}

/// Forgets keys older than the TTL (and abandoned claims); returns how many.
///
/// # Errors
/// Database failures.
pub async fn prune_idempotency(db: impl PgExecutor<'_>) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM videdit.idempotency_keys
         WHERE created_at < now() - make_interval(hours => $1) OR (status IS NULL AND lease_until < now())",
    )
    .bind(IDEMPOTENCY_TTL_HOURS as i32)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
