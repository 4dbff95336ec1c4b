//! Connected platform accounts: the OAuth 2 authorisation code flow (with
//! PKCE where the platform has it), tokens sealed at rest, refreshed before
//! they expire, revoked on disconnect. YouTube, TikTok (posting directly or
//! to the creator's inbox, the `mode` chosen when connecting) and Instagram
//! (professional accounts only; its long-lived token refreshes itself once
//! it is a day old, and [`refresh_aging`] keeps unused ones alive).
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
use std::sync::Arc;
use time::OffsetDateTime;
use videdit_core::sealed::Keyring;
use videdit_core::{ErrorCode, OrgId, Secret, UserId};

use videdit_publish::instagram::Instagram;
use videdit_publish::oauth::{Pkce, Tokens};
use videdit_publish::tiktok::{PostMode, TikTok};
use videdit_publish::youtube::YouTube;

use crate::error::{Error, Result};

/// How long an authorisation may take, from `authorize` to `callback`.
pub const STATE_TTL: time::Duration = time::Duration::minutes(10);
/// Access tokens are refreshed when they expire within this.
pub const REFRESH_AHEAD: time::Duration = time::Duration::minutes(5);
/// Instagram refreshes only tokens at least this old.
pub const INSTAGRAM_REFRESH_AGE: time::Duration = time::Duration::hours(24);
/// [`refresh_aging`] refreshes Instagram tokens that expire within this.
pub const INSTAGRAM_REFRESH_BEFORE: time::Duration = time::Duration::days(30);

/// A platform one can connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// YouTube (Shorts).
    YouTube,
    /// TikTok (Content Posting API).
    TikTok,
    /// Instagram (Reels, Instagram Login).
    Instagram,
}

impl Platform {
    /// Its wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::YouTube => "youtube",
            Self::TikTok => "tiktok",
            Self::Instagram => "instagram",
        }
    }

    /// Parses a wire name.
    ///
    /// # Errors
    /// `invalid_request` naming the platforms.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "youtube" => Ok(Self::YouTube),
            "tiktok" => Ok(Self::TikTok),
            "instagram" => Ok(Self::Instagram),
            other => Err(Error::invalid(format!(
                "unknown platform {other:?}; the platforms are: youtube, tiktok, instagram"
            ))),
        }
    }
}

/// The platform clients configured here (each `None` when not).
#[derive(Debug, Clone, Default)]
pub struct Platforms {
    /// `YOUTUBE_*`.
    pub youtube: Option<Arc<YouTube>>,
    /// `TIKTOK_*`.
    pub tiktok: Option<Arc<TikTok>>,
    /// `INSTAGRAM_*`.
    pub instagram: Option<Arc<Instagram>>,
}

fn not_configured(platform: Platform) -> Error {
    let vars = match platform {
        Platform::YouTube => "YOUTUBE_CLIENT_ID, YOUTUBE_CLIENT_SECRET",
        Platform::TikTok => "TIKTOK_CLIENT_KEY, TIKTOK_CLIENT_SECRET",
        Platform::Instagram => "INSTAGRAM_CLIENT_ID, INSTAGRAM_CLIENT_SECRET",
    };
    Error::new(
        ErrorCode::PlatformNotConfigured,
        format!("{} is not configured on this server ({vars})", platform.as_str()),
    )
}

impl Platforms {
    /// The YouTube client.
    ///
    /// # Errors
    /// `platform_not_configured`.
    pub fn youtube(&self) -> Result<&YouTube> {
        self.youtube.as_deref().ok_or_else(|| not_configured(Platform::YouTube))
    }

    /// The TikTok client.
    ///
    /// # Errors
    /// `platform_not_configured`.
    pub fn tiktok(&self) -> Result<&TikTok> {
        self.tiktok.as_deref().ok_or_else(|| not_configured(Platform::TikTok))
    }

    /// The Instagram client.
    ///
    /// # Errors
    /// `platform_not_configured`.
    pub fn instagram(&self) -> Result<&Instagram> {
        self.instagram.as_deref().ok_or_else(|| not_configured(Platform::Instagram))
    }

    /// Whether `platform` is configured.
    ///
    /// # Errors
    /// `platform_not_configured`.
    pub fn check(&self, platform: Platform) -> Result<()> {
        match platform {
            Platform::YouTube => self.youtube().map(|_| ()),
            Platform::TikTok => self.tiktok().map(|_| ()),
            Platform::Instagram => self.instagram().map(|_| ()),
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
    /// `youtube`, `tiktok` or `instagram`.
    pub platform: String,
    /// The account's id on the platform (a channel id, an open id, an Instagram user id).
    pub account_id: String,
    /// Its name (the channel's).
    pub account_name: String,
    /// `connected` or `needs_reauthorization`.
    pub status: String,
    /// Why it needs re-authorisation.
    pub status_reason: Option<String>,
    /// Scopes granted.
    pub scopes: String,
    /// TikTok: `direct` (posted on the account) or `inbox` (a draft the creator finishes in the app).
    pub mode: Option<String>,
    /// When it was connected.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
}

const COLUMNS: &str =
    "id, org_id, platform, account_id, account_name, status, status_reason, scopes, mode, created_at, updated_at";

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
/// single-use state and PKCE challenge. `mode` is TikTok's (default
/// `direct`); other platforms ignore it.
///
/// # Errors
/// `platform_not_configured`; database failures.
pub async fn authorize(
    pool: &PgPool,
    keyring: &Keyring,
    platforms: &Platforms,
    org: OrgId,
    user: UserId,
    platform: Platform,
    mode: Option<PostMode>,
) -> Result<String> {
    platforms.check(platform)?;
    // The mode is TikTok's; other platforms have one way to post.
    let mode = (platform == Platform::TikTok).then(|| mode.unwrap_or(PostMode::Direct));
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
        "INSERT INTO videdit.oauth_states (state_hash, org_id, user_id, platform, pkce_verifier, expires_at, mode)
         VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $7)",
    )
    .bind(&hash)
    .bind(org.as_uuid())
    .bind(user.as_uuid())
    .bind(platform.as_str())
    .bind(sealed)
    .bind(STATE_TTL.as_seconds_f64())
    .bind(mode.map(PostMode::as_str))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let url = match (platform, mode) {
        (Platform::YouTube, _) => platforms.youtube()?.authorize_url(&state, &pkce.challenge),
        (Platform::TikTok, m) => {
            platforms.tiktok()?.authorize_url(&state, &pkce.challenge, m.unwrap_or(PostMode::Direct))
        }
        (Platform::Instagram, _) => platforms.instagram()?.authorize_url(&state),
    };
    Ok(url.to_string())
}

/// What a platform says of a freshly connected account.
struct Connected {
    tokens: Tokens,
    account_id: String,
    account_name: String,
}

async fn exchange(
    platforms: &Platforms,
    platform: Platform,
    code: &str,
    verifier: &Secret<String>,
) -> Result<Connected> {
    let e = |e: videdit_publish::PublishError| platform_error(&e);
    Ok(match platform {
        Platform::YouTube => {
            let yt = platforms.youtube()?;
            let tokens = yt.exchange_code(code, verifier).await.map_err(e)?;
            let channel = yt.channel(&tokens.access_token).await.map_err(e)?;
            Connected { tokens, account_id: channel.id, account_name: channel.title }
        }
        Platform::TikTok => {
            let tt = platforms.tiktok()?;
            let tokens = tt.exchange_code(code, verifier).await.map_err(e)?;
            let account = tt.account(&tokens.access_token).await.map_err(e)?;
            Connected { tokens, account_id: account.open_id, account_name: account.display_name }
        }
        Platform::Instagram => {
            let ig = platforms.instagram()?;
            let tokens = ig.exchange_code(code).await.map_err(e)?;
            let account = ig.account(&tokens.access_token).await.map_err(e)?;
            if !account.is_professional() {
                return Err(Error::new(
                    ErrorCode::PlatformAccountNotProfessional,
                    format!(
                        "@{} is a {} account; Instagram publishes only for business and creator accounts \
                         (switch it to a professional account in the Instagram app, then connect again)",
                        account.username,
                        account.account_type.to_lowercase()
                    ),
                ));
            }
            Connected { tokens, account_id: account.user_id, account_name: account.username }
        }
    })
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
    platforms: &Platforms,
    org: OrgId,
    user: UserId,
    platform: Platform,
    state: &str,
    code: &str,
) -> Result<Connection> {
    let hash = state_hash(state);
    // Single use: deleted whoever asks, kept by nobody.
    platforms.check(platform)?;
    let row: Option<(uuid::Uuid, uuid::Uuid, String, String, bool, Option<String>)> = sqlx::query_as(
        "DELETE FROM videdit.oauth_states WHERE state_hash = $1
         RETURNING org_id, user_id, platform, pkce_verifier, expires_at > now(), mode",
    )
    .bind(&hash)
    .fetch_optional(pool)
    .await?;
    let invalid =
        || Error::new(ErrorCode::OauthStateInvalid, "this authorization is unknown, used or expired; start again");
    let Some((state_org, state_user, state_platform, sealed, fresh, mode)) = row else { return Err(invalid()) };
    if state_org != org.as_uuid() || state_user != user.as_uuid() || state_platform != platform.as_str() || !fresh {
        return Err(invalid());
    }
    let verifier = keyring.open_str(&sealed, &verifier_context(org, &hash)).map_err(|_| invalid())?;
    let Connected { tokens, account_id, account_name } = exchange(platforms, platform, code, &verifier).await?;
    let id = sqlx::query_scalar::<_, uuid::Uuid>(
        "SELECT id FROM videdit.connections WHERE org_id = $1 AND platform = $2 AND account_id = $3",
    )
    .bind(org.as_uuid())
    .bind(platform.as_str())
    .bind(&account_id)
    .fetch_optional(pool)
    .await?
    .unwrap_or_else(uuid::Uuid::now_v7);
    let (access, refresh) = seal_tokens(keyring, org, id, &tokens);
    Ok(sqlx::query_as(&format!(
        "INSERT INTO videdit.connections AS c
            (id, org_id, platform, account_id, account_name, status, access_token, refresh_token, token_expires_at, scopes,
             created_by, mode, token_issued_at)
         VALUES ($1, $2, $3, $4, $5, 'connected', $6, $7, $8, $9, $10, $11, now())
         ON CONFLICT (org_id, platform, account_id) DO UPDATE
            SET account_name = excluded.account_name, status = 'connected', status_reason = NULL,
                access_token = excluded.access_token,
                refresh_token = coalesce(excluded.refresh_token, c.refresh_token),
                token_expires_at = excluded.token_expires_at, scopes = excluded.scopes, mode = excluded.mode,
                token_issued_at = now(), updated_at = now()
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(org.as_uuid())
    .bind(platform.as_str())
    .bind(&account_id)
    .bind(&account_name)
    .bind(access)
    .bind(refresh)
    .bind(tokens.expires_at)
    .bind(&tokens.scope)
    .bind(user.as_uuid())
    .bind(mode)
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
    platform: String,
    access_token: String,
    refresh_token: Option<String>,
    token_expires_at: OffsetDateTime,
    token_issued_at: OffsetDateTime,
}

async fn sealed_tokens(pool: &PgPool, org: OrgId, id: uuid::Uuid) -> Result<SealedTokens> {
    sqlx::query_as(
        "SELECT platform, access_token, refresh_token, token_expires_at, token_issued_at
           FROM videdit.connections WHERE org_id = $1 AND id = $2",
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
/// 401), a refreshed one, stored sealed (TikTok rotates its refresh
/// tokens: the new one is stored). Instagram has no refresh token: its
/// token is refreshed once it is [`INSTAGRAM_REFRESH_AGE`] old, and one
/// the platform refused cannot be refreshed.
///
/// # Errors
/// `needs_reauthorization` when the platform refuses the refresh (the
/// connection is marked so, with the reason); `connection_not_found`;
/// `platform_not_configured`; the platform's failures.
pub async fn access_token(
    pool: &PgPool,
    keyring: &Keyring,
    platforms: &Platforms,
    org: OrgId,
    id: uuid::Uuid,
    force: bool,
) -> Result<Secret<String>> {
    let stored = sealed_tokens(pool, org, id).await?;
    let platform = Platform::parse(&stored.platform)?;
    let now = OffsetDateTime::now_utc();
    let current = || opened(keyring, &stored.access_token, &token_context(org, id, "access"));
    let refreshed = match platform {
        Platform::Instagram => {
            if force || stored.token_expires_at <= now + REFRESH_AHEAD {
                let why = if force { "Instagram refused the token" } else { "the token expired" };
                return Err(needs_reauthorization(pool, org, id, why).await);
            }
            if now - stored.token_issued_at < INSTAGRAM_REFRESH_AGE {
                return current();
            }
            match platforms.instagram()?.refresh(&current()?).await {
                Ok(t) => t,
                Err(e) if e.is_retryable() => {
                    // Still valid: refreshed another time.
                    tracing::warn!(connection = %id, code = e.code(), "refreshing the Instagram token failed; using it as is");
                    return current();
                }
                Err(e) => return Err(needs_reauthorization(pool, org, id, &e.message()).await),
            }
        }
        Platform::YouTube | Platform::TikTok => {
            if !force && stored.token_expires_at > now + REFRESH_AHEAD {
                return current();
            }
            let Some(sealed_refresh) = stored.refresh_token else {
                return Err(needs_reauthorization(pool, org, id, "the platform gave no refresh token").await);
            };
            let refresh = opened(keyring, &sealed_refresh, &token_context(org, id, "refresh"))?;
            let result = match platform {
                Platform::TikTok => platforms.tiktok()?.refresh(&refresh).await,
                _ => platforms.youtube()?.refresh(&refresh).await,
            };
            match result {
                Ok(t) => t,
                Err(e) if e.code() == "needs_reauthorization" => {
                    return Err(needs_reauthorization(pool, org, id, &e.message()).await);
                }
                Err(e) => return Err(platform_error(&e)),
            }
        }
    };
    store_refreshed(pool, keyring, org, id, &refreshed).await?;
    Ok(refreshed.access_token)
}

async fn store_refreshed(pool: &PgPool, keyring: &Keyring, org: OrgId, id: uuid::Uuid, tokens: &Tokens) -> Result<()> {
    let (access, new_refresh) = seal_tokens(keyring, org, id, tokens);
    sqlx::query(
        "UPDATE videdit.connections SET access_token = $3, refresh_token = coalesce($4, refresh_token),
                token_expires_at = $5, token_issued_at = now(), status = 'connected', status_reason = NULL,
                updated_at = now()
          WHERE org_id = $1 AND id = $2",
    )
    .bind(org.as_uuid())
    .bind(id)
    .bind(access)
    .bind(new_refresh)
    .bind(tokens.expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Refreshes the Instagram tokens that expire within
/// [`INSTAGRAM_REFRESH_BEFORE`] (a connection nothing is published to
/// would otherwise lapse after 60 days); the number refreshed. Run by the
/// periodic cleanup.
///
/// # Errors
/// Database failures (a refusal marks its connection and goes on).
pub async fn refresh_aging(pool: &PgPool, keyring: &Keyring, platforms: &Platforms) -> Result<u32> {
    if platforms.instagram.is_none() {
        return Ok(0);
    }
    let due: Vec<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
        "SELECT org_id, id FROM videdit.connections
          WHERE platform = 'instagram' AND status = 'connected' AND token_expires_at < now() + make_interval(secs => $1)
            AND token_issued_at < now() - make_interval(secs => $2)
          ORDER BY token_expires_at LIMIT 100",
    )
    .bind(INSTAGRAM_REFRESH_BEFORE.as_seconds_f64())
    .bind(INSTAGRAM_REFRESH_AGE.as_seconds_f64())
    .fetch_all(pool)
    .await?;
    let mut refreshed = 0;
    for (org, id) in due {
        match access_token(pool, keyring, platforms, OrgId::from_uuid(org), id, false).await {
            Ok(_) => refreshed += 1,
            Err(e) => tracing::warn!(connection = %id, code = %e.code(), "an Instagram token was not refreshed"),
        }
    }
    Ok(refreshed)
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
pub async fn disconnect(
    pool: &PgPool,
    keyring: &Keyring,
    platforms: &Platforms,
    org: OrgId,
    id: uuid::Uuid,
) -> Result<()> {
    let stored = sealed_tokens(pool, org, id).await?;
    let platform = Platform::parse(&stored.platform)?;
    // YouTube revokes the grant by its refresh token, TikTok by the access
    // token; Instagram Login has no revocation endpoint (the person removes
    // the app in Instagram's settings): its token is only forgotten.
    let token = match (platform, &stored.refresh_token) {
        (Platform::YouTube, Some(r)) => Some(opened(keyring, r, &token_context(org, id, "refresh"))),
        (Platform::Instagram, _) => None,
        _ => Some(opened(keyring, &stored.access_token, &token_context(org, id, "access"))),
    };
    match token {
        Some(Ok(t)) => {
            let revoked = match platform {
                Platform::YouTube => platforms.youtube()?.revoke(&t).await,
                Platform::TikTok => platforms.tiktok()?.revoke(&t).await,
                Platform::Instagram => Ok(()),
            };
            if let Err(e) = revoked {
                tracing::warn!(connection = %id, code = e.code(), "revoking the tokens failed; forgetting them anyway");
            }
        }
        Some(Err(e)) => tracing::warn!(connection = %id, error = %e, "a stored token does not open; forgetting it"),
        None => {}
    }
    sqlx::query("DELETE FROM videdit.connections WHERE org_id = $1 AND id = $2")
        .bind(org.as_uuid())
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}
