//! Connected platform accounts: the OAuth 2 authorisation code flow with
//! PKCE, tokens sealed at rest, refreshed before they expire, revoked on
//! disconnect. YouTube is the first platform.
//!
//! - [`authorize`] stores a single-use `state` (only its hash), bound to the
//!   organisation and the user and valid for [`STATE_TTL`], with the PKCE
//!   verifier sealed, and returns the provider's consent URL.
//! - [`callback`] consumes the state (by the same user of the same
//!   organisation, once, before it expires), exchanges the code, reads the
//!   account (the channel) and stores the connection, its tokens sealed
//!   under the keyring and bound to the organisation and the connection, so
//!   a token copied into another row does not open.
//! - [`access_token`] gives a usable access token: refreshed when it
//!   expires within [`REFRESH_AHEAD`]; a refresh the provider refuses marks
//!   the connection `needs_reauthorization` with the reason.

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;
use videdit_core::sealed::Keyring;
use videdit_core::{ErrorCode, OrgId, Secret, UserId};
use videdit_publish::oauth::{Pkce, Tokens};
use videdit_publish::youtube::YouTube;

use crate::error::{Error, Result};

/// How long an authorisation may take, from `authorize` to `callback`.
pub const STATE_TTL: time::Duration = time::Duration::minutes(10);
/// Access tokens are refreshed when they expire within this.
pub const REFRESH_AHEAD: time::Duration = time::Duration::minutes(5);

/// A platform one can connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// YouTube (Shorts).
    YouTube,
}

impl Platform {
    /// Its wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::YouTube => "youtube",
        }
    }

    /// Parses a wire name.
    ///
    /// # Errors
    /// `invalid_request` naming the platforms.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "youtube" => Ok(Self::YouTube),
            other => Err(Error::invalid(format!("unknown platform {other:?}; the platforms are: youtube"))),
        }
    }
}

/// A connected account (never its tokens).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Connection {
    /// Id.
    pub id: uuid::Uuid,
    /// The organisation.
    pub org_id: uuid::Uuid,
    /// `youtube`.
    pub platform: String,
    /// The account's id on the platform (a channel id).
    pub account_id: String,
    /// Its name (the channel's).
    pub account_name: String,
    /// `connected` or `needs_reauthorization`.
    pub status: String,
    /// Why it needs re-authorisation.
    pub status_reason: Option<String>,
    /// Scopes granted.
    pub scopes: String,
    /// When it was connected.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
}

const COLUMNS: &str =
    "id, org_id, platform, account_id, account_name, status, status_reason, scopes, created_at, updated_at";

/// A platform failure in our codes: the platform's own message kept.
#[must_use]
pub fn platform_error(e: &videdit_publish::PublishError) -> Error {
    let code = if e.code() == "needs_reauthorization" {
        ErrorCode::NeedsReauthorization
    } else if e.is_retryable() {
        ErrorCode::PlatformUnavailable
    } else {
        ErrorCode::PlatformRejected
    };
    Error::new(code, format!("{} ({}): {}", "the platform refused", e.code(), e.message()))
}

fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

fn token_context(org: OrgId, connection: uuid::Uuid, which: &str) -> String {
    format!("connection:{org}:{connection}:{which}")
}

fn verifier_context(org: OrgId, hash: &str) -> String {
    format!("oauth-state:{org}:{hash}")
}

/// Starts connecting an account: the provider's consent URL, with a fresh
/// single-use state and PKCE challenge.
///
/// # Errors
/// Database failures.
pub async fn authorize(
    pool: &PgPool,
    keyring: &Keyring,
    youtube: &YouTube,
    org: OrgId,
    user: UserId,
    platform: Platform,
) -> Result<String> {
    let state = {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        hex::encode(bytes)
    };
    let pkce = Pkce::generate();
    let hash = state_hash(&state);
    let sealed = keyring.seal(pkce.verifier.expose().as_bytes(), &verifier_context(org, &hash));
    let mut tx = pool.begin().await?;
    // Expired states of anyone go as new ones come.
    sqlx::query("DELETE FROM videdit.oauth_states WHERE expires_at < now()").execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO videdit.oauth_states (state_hash, org_id, user_id, platform, pkce_verifier, expires_at)
         VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))",
    )
    .bind(&hash)
    .bind(org.as_uuid())
    .bind(user.as_uuid())
    .bind(platform.as_str())
    .bind(sealed)
    .bind(STATE_TTL.as_seconds_f64())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(youtube.authorize_url(&state, &pkce.challenge).to_string())
}

/// Finishes connecting: consumes the state, exchanges the code, reads the
/// channel and stores (or refreshes) the connection.
///
/// # Errors
/// `oauth_state_invalid` for a state that is unknown, used, expired, of
/// another user or organisation or platform; the platform's failures.
#[allow(clippy::too_many_arguments)]
pub async fn callback(
    pool: &PgPool,
    keyring: &Keyring,
    youtube: &YouTube,
    org: OrgId,
    user: UserId,
    platform: Platform,
    state: &str,
    code: &str,
) -> Result<Connection> {
    let hash = state_hash(state);
    // Single use: deleted whoever asks, kept by nobody.
    let row: Option<(uuid::Uuid, uuid::Uuid, String, String, bool)> = sqlx::query_as(
        "DELETE FROM videdit.oauth_states WHERE state_hash = $1
         RETURNING org_id, user_id, platform, pkce_verifier, expires_at > now()",
    )
    .bind(&hash)
    .fetch_optional(pool)
    .await?;
    let invalid =
        || Error::new(ErrorCode::OauthStateInvalid, "this authorization is unknown, used or expired; start again");
    let Some((state_org, state_user, state_platform, sealed, fresh)) = row else { return Err(invalid()) };
    if state_org != org.as_uuid() || state_user != user.as_uuid() || state_platform != platform.as_str() || !fresh {
        return Err(invalid());
    }
    let verifier = keyring.open_str(&sealed, &verifier_context(org, &hash)).map_err(|_| invalid())?;
    let tokens = youtube.exchange_code(code, &verifier).await.map_err(|e| platform_error(&e))?;
    let channel = youtube.channel(&tokens.access_token).await.map_err(|e| platform_error(&e))?;
    let id = sqlx::query_scalar::<_, uuid::Uuid>(
        "SELECT id FROM videdit.connections WHERE org_id = $1 AND platform = $2 AND account_id = $3",
    )
    .bind(org.as_uuid())
    .bind(platform.as_str())
    .bind(&channel.id)
    .fetch_optional(pool)
    .await?
    .unwrap_or_else(uuid::Uuid::now_v7);
    let (access, refresh) = seal_tokens(keyring, org, id, &tokens);
    Ok(sqlx::query_as(&format!(
        "INSERT INTO videdit.connections AS c
            (id, org_id, platform, account_id, account_name, status, access_token, refresh_token, token_expires_at, scopes, created_by)
         VALUES ($1, $2, $3, $4, $5, 'connected', $6, $7, $8, $9, $10)
         ON CONFLICT (org_id, platform, account_id) DO UPDATE
            SET account_name = excluded.account_name, status = 'connected', status_reason = NULL,
                access_token = excluded.access_token,
                refresh_token = coalesce(excluded.refresh_token, c.refresh_token),
                token_expires_at = excluded.token_expires_at, scopes = excluded.scopes, updated_at = now()
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(org.as_uuid())
    .bind(platform.as_str())
    .bind(&channel.id)
    .bind(&channel.title)
    .bind(access)
    .bind(refresh)
    .bind(tokens.expires_at)
    .bind(&tokens.scope)
    .bind(user.as_uuid())
    .fetch_one(pool)
    .await?)
}

fn seal_tokens(keyring: &Keyring, org: OrgId, id: uuid::Uuid, t: &Tokens) -> (String, Option<String>) {
    let access = keyring.seal(t.access_token.expose().as_bytes(), &token_context(org, id, "access"));
    let refresh =
        t.refresh_token.as_ref().map(|r| keyring.seal(r.expose().as_bytes(), &token_context(org, id, "refresh")));
    (access, refresh)
}

/// The organisation's connections, oldest first.
///
/// # Errors
/// Database failures.
pub async fn list(pool: &PgPool, org: OrgId) -> Result<Vec<Connection>> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM videdit.connections WHERE org_id = $1 ORDER BY id"))
        .bind(org.as_uuid())
        .fetch_all(pool)
        .await?)
}

/// One connection of the organisation.
///
/// # Errors
/// `connection_not_found` (also another organisation's).
pub async fn get(db: impl sqlx::PgExecutor<'_>, org: OrgId, id: uuid::Uuid) -> Result<Connection> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM videdit.connections WHERE org_id = $1 AND id = $2"))
        .bind(org.as_uuid())
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| not_found(id))
}

fn not_found(id: uuid::Uuid) -> Error {
    Error::new(ErrorCode::ConnectionNotFound, format!("connection {id} not found"))
}

#[derive(sqlx::FromRow)]
struct SealedTokens {
    access_token: String,
    refresh_token: Option<String>,
    token_expires_at: OffsetDateTime,
}

async fn sealed_tokens(pool: &PgPool, org: OrgId, id: uuid::Uuid) -> Result<SealedTokens> {
    sqlx::query_as(
        "SELECT access_token, refresh_token, token_expires_at FROM videdit.connections WHERE org_id = $1 AND id = $2",
    )
    .bind(org.as_uuid())
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| not_found(id))
}

fn opened(keyring: &Keyring, sealed: &str, context: &str) -> Result<Secret<String>> {
    keyring
        .open_str(sealed, context)
        .map_err(|e| Error::new(ErrorCode::Internal, format!("a stored token does not open: {e}")))
}

/// A usable access token of the connection: the stored one, or, when it
/// expires within [`REFRESH_AHEAD`] (or `force`: the platform answered
/// 401), a refreshed one, stored sealed.
///
/// # Errors
/// `needs_reauthorization` when the platform refuses the refresh (the
/// connection is marked so, with the reason); `connection_not_found`;
/// the platform's failures.
pub async fn access_token(
    pool: &PgPool,
    keyring: &Keyring,
    youtube: &YouTube,
    org: OrgId,
    id: uuid::Uuid,
    force: bool,
) -> Result<Secret<String>> {
    let stored = sealed_tokens(pool, org, id).await?;
    if !force && stored.token_expires_at > OffsetDateTime::now_utc() + REFRESH_AHEAD {
        return opened(keyring, &stored.access_token, &token_context(org, id, "access"));
    }
    let Some(sealed_refresh) = stored.refresh_token else {
        return Err(needs_reauthorization(pool, org, id, "the platform gave no refresh token").await);
    };
    let refresh = opened(keyring, &sealed_refresh, &token_context(org, id, "refresh"))?;
    let tokens = match youtube.refresh(&refresh).await {
        Ok(t) => t,
        Err(e) if e.code() == "needs_reauthorization" => {
            return Err(needs_reauthorization(pool, org, id, &e.message()).await);
        }
        Err(e) => return Err(platform_error(&e)),
    };
    let (access, new_refresh) = seal_tokens(keyring, org, id, &tokens);
    sqlx::query(
        "UPDATE videdit.connections SET access_token = $3, refresh_token = coalesce($4, refresh_token),
                token_expires_at = $5, status = 'connected', status_reason = NULL, updated_at = now()
          WHERE org_id = $1 AND id = $2",
    )
    .bind(org.as_uuid())
    .bind(id)
    .bind(access)
    .bind(new_refresh)
    .bind(tokens.expires_at)
    .execute(pool)
    .await?;
    Ok(tokens.access_token)
}

async fn needs_reauthorization(pool: &PgPool, org: OrgId, id: uuid::Uuid, why: &str) -> Error {
    let marked = sqlx::query(
        "UPDATE videdit.connections SET status = 'needs_reauthorization', status_reason = $3, updated_at = now()
          WHERE org_id = $1 AND id = $2",
    )
    .bind(org.as_uuid())
    .bind(id)
    .bind(why)
    .execute(pool)
    .await;
    if let Err(e) = marked {
        return e.into();
    }
    Error::new(ErrorCode::NeedsReauthorization, format!("the account needs to be connected again: {why}"))
}

/// Disconnects: revokes the tokens at the platform (best effort: a token
/// the platform no longer knows is revoked already) and forgets them.
///
/// # Errors
/// `connection_not_found`; database failures.
pub async fn disconnect(pool: &PgPool, keyring: &Keyring, youtube: &YouTube, org: OrgId, id: uuid::Uuid) -> Result<()> {
    let stored = sealed_tokens(pool, org, id).await?;
    let token = match &stored.refresh_token {
        Some(r) => opened(keyring, r, &token_context(org, id, "refresh")),
        None => opened(keyring, &stored.access_token, &token_context(org, id, "access")),
    };
    match token {
        Ok(t) => {
            if let Err(e) = youtube.revoke(&t).await {
                tracing::warn!(connection = %id, code = e.code(), "revoking the tokens failed; forgetting them anyway");
            }
        }
        Err(e) => tracing::warn!(connection = %id, error = %e, "a stored token does not open; forgetting it"),
    }
    sqlx::query("DELETE FROM videdit.connections WHERE org_id = $1 AND id = $2")
        .bind(org.as_uuid())
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}
