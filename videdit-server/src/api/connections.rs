//! Connected platform accounts: list and read them (everyone), connect and
//! disconnect (admins). Connecting is OAuth 2 with PKCE: `authorize` gives
//! the platform's consent URL; the platform sends the person back to the
//! web app's redirect page with `code` and `state`, which hands them to
//! `callback` with the same person's session.

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use time::OffsetDateTime;
use videdit_core::ErrorCode;
use videdit_publish::tiktok::PostMode;
use videdit_service::connections::{self, Connection, Platform};

use super::error::{ApiError, ApiResult};
use super::{ApiTags, BearerAuth};
use crate::auth::Action;

/// A connected account (its tokens never leave the server).
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct ConnectionBody {
    /// Id.
    pub id: String,
    /// `youtube`, `tiktok` or `instagram`.
    #[oai(validator(pattern = "^(youtube|tiktok|instagram)$"))]
    pub platform: String,
    /// The account's id on the platform (a YouTube channel id, a TikTok
    /// open id, an Instagram professional account id).
    pub account_id: String,
    /// The account's name (the channel's, the TikTok display name, the Instagram username).
    pub account_name: String,
    /// `connected`, or `needs_reauthorization` (connect it again).
    pub status: String,
    /// Why it needs re-authorisation, in the platform's words.
    pub status_reason: Option<String>,
    /// Scopes granted.
    pub scopes: String,
    /// TikTok: `direct` (posted on the account) or `inbox` (a draft the
    /// creator finishes in the TikTok app).
    #[oai(validator(pattern = "^(direct|inbox)$"))]
    pub mode: Option<String>,
    /// When it was connected.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
}

impl From<Connection> for ConnectionBody {
    fn from(c: Connection) -> Self {
        Self {
            id: c.id.to_string(),
            platform: c.platform,
            account_id: c.account_id,
            account_name: c.account_name,
            status: c.status,
            status_reason: c.status_reason,
            scopes: c.scopes,
            mode: c.mode,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// The organisation's connected accounts.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ConnectionList {
    /// Oldest first.
    pub items: Vec<ConnectionBody>,
}

/// Where to send the person to consent.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AuthorizeUrl {
    /// The platform's consent page; valid for 10 minutes, once.
    pub url: String,
}

pub struct ConnectionsApi;

fn connection_id(raw: &str) -> ApiResult<uuid::Uuid> {
    raw.parse().map_err(|_| ApiError::new(ErrorCode::ConnectionNotFound, format!("connection {raw:?} not found")))
}

#[OpenApi(prefix_path = "/connections", tag = "ApiTags::Connections")]
impl ConnectionsApi {
    /// List connected accounts
    ///
    /// The organisation's accounts on the platforms, with their status
    /// (`needs_reauthorization` when the platform refused their tokens).
    #[oai(path = "/", method = "get", operation_id = "listConnections")]
    async fn list(&self, auth: BearerAuth) -> ApiResult<Json<ConnectionList>> {
        let (p, state) = auth.may(Action::Read)?;
        let items = connections::list(&state.pool, p.org_id).await?.into_iter().map(Into::into).collect();
        Ok(Json(ConnectionList { items }))
    }

    /// Get a connected account
    ///
    /// One account of the organisation (another organisation's is a 404).
    #[oai(path = "/:id", method = "get", operation_id = "getConnection")]
    async fn get(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<ConnectionBody>> {
        let (p, state) = auth.may(Action::Read)?;
        Ok(Json(connections::get(&state.pool, p.org_id, connection_id(&id.0)?).await?.into()))
    }

    /// Start connecting an account (admins)
    ///
    /// The platform's consent URL, with a single-use `state` bound to the
    /// organisation and the caller (10 minutes) and a PKCE challenge where
    /// the platform has PKCE. YouTube: scopes `youtube.upload` and
    /// `youtube.readonly`, offline access, consent asked every time (so a
    /// refresh token is issued). TikTok: `user.info.basic` and, by `mode`,
    /// `video.publish` (`direct`, the default: posted on the account) or
    /// `video.upload` (`inbox`: drafts the creator finishes in the app).
    /// Instagram: `instagram_business_basic` and
    /// `instagram_business_content_publish`; only business and creator
    /// accounts can connect.
    #[oai(path = "/:platform/authorize", method = "get", operation_id = "authorizeConnection")]
    async fn authorize(
        &self,
        auth: BearerAuth,
        #[oai(validator(pattern = "^(youtube|tiktok|instagram)$"))] platform: Path<String>,
        /// TikTok: `direct` (default) or `inbox`; other platforms ignore it.
        #[oai(validator(pattern = "^(direct|inbox)$"))]
        mode: Query<Option<String>>,
    ) -> ApiResult<Json<AuthorizeUrl>> {
        let (p, state) = auth.may(Action::Manage)?;
        let platform = Platform::parse(&platform.0)?;
        let mode = match mode.0.as_deref() {
            None => None,
            Some(m) => Some(PostMode::parse(m).ok_or_else(|| {
                ApiError::new(ErrorCode::InvalidRequest, format!("mode {m:?} is not direct or inbox"))
            })?),
        };
        let url =
            connections::authorize(&state.pool, &state.keyring, &state.platforms, p.org_id, p.user_id, platform, mode)
                .await?;
        Ok(Json(AuthorizeUrl { url }))
    }

    /// Finish connecting an account (admins)
    ///
    /// Hands over the `code` and `state` the platform sent back to the
    /// redirect page; only the person who started the authorisation, in the
    /// same organisation, within 10 minutes, once. Connecting an account
    /// that is connected already refreshes its tokens.
    #[oai(path = "/:platform/callback", method = "get", operation_id = "connectionCallback")]
    async fn callback(
        &self,
        auth: BearerAuth,
        #[oai(validator(pattern = "^(youtube|tiktok|instagram)$"))] platform: Path<String>,
        code: Query<String>,
        state: Query<String>,
    ) -> ApiResult<Json<ConnectionBody>> {
        let (p, app) = auth.may(Action::Manage)?;
        let platform = Platform::parse(&platform.0)?;
        let c = connections::callback(
            &app.pool,
            &app.keyring,
            &app.platforms,
            p.org_id,
            p.user_id,
            platform,
            &state.0,
            &code.0,
        )
        .await?;
        Ok(Json(c.into()))
    }

    /// Disconnect an account (admins)
    ///
    /// Revokes its tokens at the platform and forgets them (Instagram has
    /// no revocation: its token is forgotten; the person removes the app in
    /// Instagram's settings).
    #[oai(path = "/:id", method = "delete", operation_id = "deleteConnection")]
    async fn delete(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<serde_json::Value>> {
        let (p, state) = auth.may(Action::Manage)?;
        let id = connection_id(&id.0)?;
        connections::disconnect(&state.pool, &state.keyring, &state.platforms, p.org_id, id).await?;
        Ok(Json(serde_json::json!({"deleted": true})))
    }
}
