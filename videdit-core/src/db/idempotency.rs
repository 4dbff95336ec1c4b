//! Idempotency keys for creating requests.

use sqlx::PgExecutor;

use crate::error::Result;
use crate::id::OrgId;

/// How long a key is remembered.
pub const IDEMPOTENCY_TTL_HOURS: i64 = 24;

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyClaim {
    /// The key is new (or expired): run the request, then [`finish_idempotency`].
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

/// Claims an idempotency key for a request with the given body hash.
///
/// # Errors
/// Database failures.
pub async fn claim_idempotency(
    db: impl PgExecutor<'_> + Copy,
    org: OrgId,
    key: &str,
    request_hash: &str,
) -> Result<IdempotencyClaim> {
    // Forget an expired key first so it can be claimed again.
    sqlx::query(
        "DELETE FROM videdit.idempotency_keys WHERE org_id = $1 AND key = $2 AND created_at < now() - make_interval(hours => $3)",
    )
    .bind(org)
    .bind(key)
    .bind(IDEMPOTENCY_TTL_HOURS as i32)
    .execute(db)
    .await?;
    let inserted = sqlx::query(
        "INSERT INTO videdit.idempotency_keys (org_id, key, request_hash) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(org)
    .bind(key)
    .bind(request_hash)
    .execute(db)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(IdempotencyClaim::Fresh);
    }
    let row: Option<(String, Option<i32>, Option<serde_json::Value>)> = sqlx::query_as(
        "SELECT request_hash, status, body FROM videdit.idempotency_keys WHERE org_id = $1 AND key = $2",
    )
    .bind(org)
    .bind(key)
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
    key: &str,
    status: u16,
    body: &serde_json::Value,
) -> Result<()> {
    sqlx::query("UPDATE videdit.idempotency_keys SET status = $3, body = $4 WHERE org_id = $1 AND key = $2")
        .bind(org)
        .bind(key)
        .bind(i32::from(status))
        .bind(body)
        .execute(db)
        .await?;
    Ok(())
}

/// Releases a key whose request failed, so it can be retried.
///
/// # Errors
/// Database failures.
pub async fn release_idempotency(db: impl PgExecutor<'_>, org: OrgId, key: &str) -> Result<()> {
    sqlx::query("DELETE FROM videdit.idempotency_keys WHERE org_id = $1 AND key = $2 AND status IS NULL")
        .bind(org)
        .bind(key)
        .execute(db)
        .await?;
    Ok(())
}
