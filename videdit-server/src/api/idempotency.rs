//! `Idempotency-Key` handling for creating endpoints.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use videdit_core::ErrorCode;
use videdit_core::db::{self, IdempotencyClaim};

use super::error::{ApiError, ApiResult};
use crate::app::AppState;
use crate::auth::Principal;

/// Runs `run` at most once per (organisation, user, key): a replay with the same
/// request returns the stored response, the same key with another request
/// is refused with 422 `idempotency_key_reused`. Without a key, just runs.
pub async fn idempotent<T, F>(
    state: &AppState,
    caller: Principal,
    key: Option<&str>,
    operation: &str,
    request: &impl Serialize,
    run: F,
) -> ApiResult<T>
where
    T: Serialize + DeserializeOwned,
    F: Future<Output = ApiResult<T>>,
{
    let Some(key) = key else { return run.await };
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::invalid("Idempotency-Key must have 1 to 255 characters"));
    }
    let mut hasher = Sha256::new();
    hasher.update(operation.as_bytes());
    hasher.update(serde_json::to_vec(request).expect("requests serialise"));
    let hash = hex::encode(hasher.finalize());
    let (org, user) = (caller.org_id, Some(caller.user_id));
    match db::claim_idempotency(&state.pool, org, user, key, &hash).await? {
        IdempotencyClaim::Fresh => {}
        IdempotencyClaim::Replay { body, .. } => {
            return serde_json::from_value(body)
                .map_err(|_| ApiError::new(ErrorCode::Internal, "the stored response could not be replayed"));
        }
        IdempotencyClaim::Mismatch => {
            return Err(ApiError::new(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was used with a different request",
            ));
        }
        IdempotencyClaim::InProgress => {
            return Err(ApiError::new(ErrorCode::InvalidState, "a request with this Idempotency-Key is in progress"));
        }
    }
    match run.await {
        Ok(value) => {
            let body = serde_json::to_value(&value).expect("responses serialise");
            db::finish_idempotency(&state.pool, org, user, key, 200, &body).await?;
            Ok(value)
        }
        Err(e) => {
            db::release_idempotency(&state.pool, org, user, key).await?;
            Err(e)
        }
    }
}
