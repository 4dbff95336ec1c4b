//! TikTok: Login Kit OAuth v2 (PKCE, rotating refresh tokens), the
//! creator's posting options, and the Content Posting API's chunked
//! `FILE_UPLOAD`: a direct post (`video.publish`) or a draft sent to the
//! creator's inbox (`video.upload`), then its status until TikTok is done.
//!
//! TikTok has no scheduling of its own: the caller posts at the time.
//!
//! Every v2 answer is `{"data": …, "error": {"code", "message", "log_id"}}`
//! with `code: "ok"` on success, so the code is read whatever the HTTP
//! status (creator info reports its spam caps with a 200). The OAuth
//! endpoints answer flat, RFC 6749 style.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderMap};
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::sync::Mutex;
use url::Url;
use videdit_core::secret::Secret;

use crate::oauth::Tokens;
use crate::wire::{FORM, Reader, bearer, chunk_body, form, parse_json, send};
use crate::{ByteSource, PublishError, RetryPolicy};

/// Reading the account's name.
pub const SCOPE_BASIC: &str = "user.info.basic";
/// Posting directly to the account.
pub const SCOPE_PUBLISH: &str = "video.publish";
/// Sending drafts to the creator's inbox.
pub const SCOPE_UPLOAD: &str = "video.upload";

/// A mebibyte: TikTok's "MB".
pub const MIB: u64 = 1024 * 1024;
/// The smallest chunk (but a file under it goes whole, in one chunk).
pub const MIN_CHUNK: u64 = 5 * MIB;
/// The largest chunk but the last.
pub const MAX_CHUNK: u64 = 64 * MIB;
/// The largest last chunk (it takes the trailing bytes).
pub const MAX_FINAL_CHUNK: u64 = 128 * MIB;
/// The most chunks an upload may have.
pub const MAX_CHUNKS: u64 = 1000;
/// The largest video.
pub const MAX_VIDEO_BYTES: u64 = 4 * 1024 * MIB;
/// The longest title (UTF-16 code units).
pub const MAX_TITLE_UTF16: usize = 2200;

/// How a connection posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PostMode {
    /// Published on the account (`video.publish`).
    Direct,
    /// Sent to the creator's TikTok inbox as a draft to finish in the app (`video.upload`).
    Inbox,
}

impl PostMode {
    /// `direct` or `inbox`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            PostMode::Direct => "direct",
            PostMode::Inbox => "inbox",
        }
    }

    /// Parses `direct` or `inbox`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "direct" => Some(PostMode::Direct),
            "inbox" => Some(PostMode::Inbox),
            _ => None,
        }
    }

    /// The scope the mode needs.
    #[must_use]
    pub const fn scope(self) -> &'static str {
        match self {
            PostMode::Direct => SCOPE_PUBLISH,
            PostMode::Inbox => SCOPE_UPLOAD,
        }
    }
}

/// Where TikTok is and how we talk to it.
#[derive(Debug, Clone)]
pub struct TikTokConfig {
    /// The consent page (`https://www.tiktok.com/v2/auth/authorize/`).
    pub auth_url: Url,
    /// The Open API (`https://open.tiktokapis.com`): OAuth tokens, user info, posting.
    pub api_base: Url,
    /// The app's client key.
    pub client_key: String,
    /// The app's client secret.
    pub client_secret: Secret<String>,
    /// The registered redirect URI.
    pub redirect_uri: String,
    /// The deadline of one request (a chunk gets more, see `min_upload_rate`).
    pub timeout: Duration,
    /// The chunk size asked for, clamped to TikTok's 5–64 MiB.
    pub chunk_size: u64,
    /// The slowest upload waited for, in bytes per second.
    pub min_upload_rate: u64,
    /// Retrying a chunk after a dropped connection, a timeout or a 5xx.
    pub retry: RetryPolicy,
}

impl TikTokConfig {
    /// TikTok's production endpoints, a 30 s timeout, 10 MiB chunks.
    #[must_use]
    pub fn new(client_key: impl Into<String>, client_secret: Secret<String>, redirect_uri: impl Into<String>) -> Self {
        let url = |s: &str| Url::parse(s).expect("a valid constant URL");
        Self {
            auth_url: url("https://www.tiktok.com/v2/auth/authorize/"),
            api_base: url("https://open.tiktokapis.com"),
            client_key: client_key.into(),
            client_secret,
            redirect_uri: redirect_uri.into(),
            timeout: Duration::from_secs(30),
            chunk_size: 10 * MIB,
            min_upload_rate: 256 * 1024,
            retry: RetryPolicy::default(),
        }
    }
}

/// The connected account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The user's id for this app.
    pub open_id: String,
    /// The name shown.
    pub display_name: String,
}

/// What the creator's account allows a post, asked before each post.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CreatorInfo {
    /// `@name`.
    #[serde(default)]
    pub creator_username: String,
    /// The name shown.
    #[serde(default)]
    pub creator_nickname: String,
    /// `PUBLIC_TO_EVERYONE`, `MUTUAL_FOLLOW_FRIENDS`, `FOLLOWER_OF_CREATOR`, `SELF_ONLY`: what this account offers.
    pub privacy_level_options: Vec<String>,
    /// Comments cannot be turned on.
    #[serde(default)]
    pub comment_disabled: bool,
    /// Duets cannot be turned on.
    #[serde(default)]
    pub duet_disabled: bool,
    /// Stitches cannot be turned on.
    #[serde(default)]
    pub stitch_disabled: bool,
    /// The longest video the account may post.
    pub max_video_post_duration_sec: u32,
}

/// A post as asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct PostRequest {
    /// The caption (hashtags and mentions included).
    pub title: String,
    /// One of the creator's `privacy_level_options`.
    pub privacy_level: String,
    /// Comments on.
    pub allow_comments: bool,
    /// Duets on.
    pub allow_duet: bool,
    /// Stitches on.
    pub allow_stitch: bool,
    /// Marked as AI-generated content.
    pub is_aigc: bool,
    /// The video's length.
    pub duration_secs: f64,
}

/// Checks a post against what the creator's account allows: the post
/// uses only allowed values.
///
/// # Errors
/// `platform_option_not_allowed` naming the option and what is allowed;
/// `platform_rule_title` for a caption over 2200 UTF-16 units.
pub fn check_post(creator: &CreatorInfo, post: &PostRequest) -> Result<(), PublishError> {
    if !creator.privacy_level_options.contains(&post.privacy_level) {
        return Err(PublishError::NotAllowed {
            option: "privacy_level",
            message: format!(
                "TikTok offers this account the privacy levels {}, not {}",
                creator.privacy_level_options.join(", "),
                post.privacy_level
            ),
        });
    }
    for (asked, disabled, option, what) in [
        (post.allow_comments, creator.comment_disabled, "comments", "comments"),
        (post.allow_duet, creator.duet_disabled, "duet", "duets"),
        (post.allow_stitch, creator.stitch_disabled, "stitch", "stitches"),
    ] {
        if asked && disabled {
            return Err(PublishError::NotAllowed {
                option,
                message: format!("the account has {what} turned off; they cannot be turned on for a post"),
            });
        }
    }
    if post.duration_secs > f64::from(creator.max_video_post_duration_sec) {
        return Err(PublishError::NotAllowed {
            option: "duration",
            message: format!(
                "the video is {:.1} s; this account may post at most {} s",
                post.duration_secs, creator.max_video_post_duration_sec
            ),
        });
    }
    let units = post.title.encode_utf16().count();
    if units > MAX_TITLE_UTF16 {
        return Err(PublishError::Rule {
            rule: crate::Rule::Title,
            message: format!("the caption is {units} UTF-16 units; TikTok takes at most {MAX_TITLE_UTF16}"),
        });
    }
    Ok(())
}

/// How a file is cut into chunks, as TikTok's rules say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPlan {
    /// The video's size.
    pub video_size: u64,
    /// Every chunk's size but the last.
    pub chunk_size: u64,
    /// `floor(video_size / chunk_size)`: the last chunk takes the rest.
    pub total_chunk_count: u64,
}

impl ChunkPlan {
    /// The plan for `video_size` bytes with chunks of about `preferred`:
    /// under 5 MiB (or up to `preferred`) one chunk of the whole file;
    /// else chunks of `preferred` clamped to 5–64 MiB, the last one taking
    /// the trailing bytes (so it stays under 128 MiB).
    ///
    /// # Errors
    /// `platform_rule_size` for an empty file or one over 4 GiB.
    pub fn new(video_size: u64, preferred: u64) -> Result<Self, PublishError> {
        if video_size == 0 || video_size > MAX_VIDEO_BYTES {
            return Err(PublishError::Rule {
                rule: crate::Rule::Size,
                message: format!("the video is {video_size} bytes; TikTok takes 1 byte to 4 GiB"),
            });
        }
        let chunk = preferred.clamp(MIN_CHUNK, MAX_CHUNK);
        if video_size < MIN_CHUNK || video_size <= chunk {
            return Ok(Self { video_size, chunk_size: video_size, total_chunk_count: 1 });
        }
        // At most 1000 chunks: a 4 GiB file takes chunks of at least 4.1 MiB anyway.
        let chunk = chunk.max(video_size.div_ceil(MAX_CHUNKS));
        Ok(Self { video_size, chunk_size: chunk, total_chunk_count: video_size / chunk })
    }

    /// The byte range `[first, last]` of chunk `i` (0-based).
    #[must_use]
    pub fn range(&self, i: u64) -> (u64, u64) {
        let first = i * self.chunk_size;
        let last = if i + 1 == self.total_chunk_count { self.video_size - 1 } else { first + self.chunk_size - 1 };
        (first, last)
    }

    /// The chunk that starts at `offset`, if one does.
    #[must_use]
    pub fn chunk_at(&self, offset: u64) -> Option<u64> {
        (offset.is_multiple_of(self.chunk_size) && offset / self.chunk_size < self.total_chunk_count)
            .then(|| offset / self.chunk_size)
    }
}

/// An upload TikTok opened: what the status is asked by, and where the bytes go.
#[derive(Clone, PartialEq, Eq)]
pub struct Init {
    /// The post's id.
    pub publish_id: String,
    /// Where the chunks are `PUT` (valid an hour; it is a credential).
    pub upload_url: String,
    /// The chunks announced.
    pub plan: ChunkPlan,
}

impl std::fmt::Debug for Init {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Init").field("publish_id", &self.publish_id).field("plan", &self.plan).finish_non_exhaustive()
    }
}

/// Where a post stands.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PublishStatus {
    /// `PROCESSING_UPLOAD`, `PROCESSING_DOWNLOAD`, `SEND_TO_USER_INBOX`, `PUBLISH_COMPLETE` or `FAILED`.
    pub status: String,
    /// Why it failed.
    #[serde(default)]
    pub fail_reason: Option<String>,
    /// The post's ids once it is public and moderated (TikTok's spelling).
    #[serde(default, rename = "publicaly_available_post_id")]
    pub post_ids: Vec<u64>,
    /// Bytes TikTok holds.
    #[serde(default)]
    pub uploaded_bytes: Option<u64>,
}

impl PublishStatus {
    /// TikTok is done with it (published, in the inbox, or failed).
    #[must_use]
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "PUBLISH_COMPLETE" | "SEND_TO_USER_INBOX" | "FAILED")
    }
}

/// A TikTok client for one app (any number of accounts: every call takes
/// the account's access token).
#[derive(Debug, Clone)]
pub struct TikTok {
    cfg: TikTokConfig,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: Option<T>,
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    log_id: String,
}

/// A v2 answer's `data`, or the error its `error.code` names.
fn envelope<T: serde::de::DeserializeOwned>(status: StatusCode, body: &[u8], what: &str) -> Result<T, PublishError> {
    if status.is_server_error() {
        return Err(PublishError::Unavailable { message: format!("{what}: TikTok answered {status}"), source: None });
    }
    let parsed: Envelope<serde_json::Value> = parse_json(body, what)?;
    let error = parsed.error.unwrap_or(ApiError { code: "ok".into(), message: String::new(), log_id: String::new() });
    if error.code != "ok" {
        return Err(api_error(status.as_u16(), &error, OffsetDateTime::now_utc()));
    }
    if !status.is_success() {
        return Err(PublishError::Rejected {
            status: status.as_u16(),
            reason: String::new(),
            message: what.to_owned(),
        });
    }
    serde_json::from_value(parsed.data.unwrap_or(serde_json::Value::Null))
        .map_err(|e| PublishError::InvalidResponse { message: format!("{what}: {e}") })
}

/// TikTok's error codes, in ours.
fn api_error(status: u16, e: &ApiError, now: OffsetDateTime) -> PublishError {
    let message = if e.log_id.is_empty() { e.message.clone() } else { format!("{} (log id {})", e.message, e.log_id) };
    match e.code.as_str() {
        "access_token_invalid" => PublishError::Unauthorized { message },
        "scope_not_authorized" | "scope_permission_missed" => PublishError::NeedsReauthorization {
            message: format!("the account did not grant the scope this needs: {message}"),
        },
        "rate_limit_exceeded" => {
            PublishError::RateLimited { message, retry_at: Some(now + time::Duration::minutes(1)) }
        }
        "spam_risk_too_many_posts" | "reached_active_user_cap" | "spam_risk_too_many_pending_share" => {
            PublishError::PostingLimit {
                message: format!("{}: {message}", e.code),
                retry_at: now + time::Duration::days(1),
            }
        }
        "unaudited_client_can_only_post_to_private_accounts" => PublishError::UnauditedClient {
            message: format!(
                "TikTok has not audited this app: it may post only SELF_ONLY, to a private account ({message})"
            ),
        },
        "privacy_level_option_mismatch" => PublishError::NotAllowed {
            option: "privacy_level",
            message: format!("TikTok refused the privacy level: {message}"),
        },
        "internal_error" => PublishError::Unavailable { message, source: None },
        code => PublishError::Rejected { status, reason: code.to_owned(), message },
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

impl TikTok {
    /// A client with its own connection pool.
    ///
    /// # Errors
    /// `invalid_request` for a zero `min_upload_rate`.
    pub fn new(cfg: TikTokConfig) -> Result<Self, PublishError> {
        let http = crate::wire::http_client(cfg.timeout, cfg.min_upload_rate)?;
        Ok(Self { cfg, http })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &TikTokConfig {
        &self.cfg
    }

    fn api(&self, path: &str) -> Url {
        crate::wire::join(&self.cfg.api_base, path, &[])
    }

    /// The consent page: the account's name, and the scope of `mode`.
    /// `pkce_challenge` is the S256 challenge (base64url), which TikTok's
    /// web flow accepts.
    #[must_use]
    pub fn authorize_url(&self, state: &str, pkce_challenge: &str, mode: PostMode) -> Url {
        let mut url = self.cfg.auth_url.clone();
        url.query_pairs_mut()
            .append_pair("client_key", &self.cfg.client_key)
            .append_pair("scope", &format!("{SCOPE_BASIC},{}", mode.scope()))
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", &self.cfg.redirect_uri)
            .append_pair("state", state)
            .append_pair("code_challenge", pkce_challenge)
            .append_pair("code_challenge_method", "S256");
        url
    }

    /// Exchanges the callback's `code` for tokens.
    ///
    /// # Errors
    /// `needs_reauthorization` for a used or expired code or a wrong
    /// verifier; `platform_unavailable` for 5xx and transport failures.
    #[tracing::instrument(skip_all)]
    pub async fn exchange_code(&self, code: &str, verifier: &Secret<String>) -> Result<Tokens, PublishError> {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.cfg.redirect_uri),
            ("code_verifier", verifier.expose()),
        ])
        .await
    }

    /// A fresh access token. TikTok rotates refresh tokens: store the
    /// returned one, the old one stops working.
    ///
    /// # Errors
    /// `needs_reauthorization` when TikTok refuses the refresh token.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, refresh_token: &Secret<String>) -> Result<Tokens, PublishError> {
        self.token_request(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose())]).await
    }

    async fn token_request(&self, params: &[(&str, &str)]) -> Result<Tokens, PublishError> {
        let body =
            form(params.iter().copied().chain([
                ("client_key", self.cfg.client_key.as_str()),
                ("client_secret", self.cfg.client_secret.expose()),
            ]));
        let req = self.http.post(self.api("/v2/oauth/token/")).header(CONTENT_TYPE, FORM).body(body);
        let (status, _, body) = send(req, self.cfg.timeout, "tiktok token").await?;
        if status.is_server_error() {
            return Err(PublishError::Unavailable {
                message: format!("token: TikTok answered {status}"),
                source: None,
            });
        }
        let t: TokenAnswer = parse_json(&body, "token response")?;
        // Errors come flat, sometimes with a 200: the body says.
        if let Some(error) = t.error.filter(|e| !e.is_empty()) {
            let message = t.error_description.unwrap_or_default();
            return Err(match error.as_str() {
                "invalid_grant" | "invalid_request" | "access_denied" => {
                    PublishError::NeedsReauthorization { message: format!("{error}: {message}") }
                }
                "temporarily_unavailable" | "server_error" => PublishError::Unavailable { message, source: None },
                _ => PublishError::Rejected { status: status.as_u16(), reason: error, message },
            });
        }
        let access = t.access_token.ok_or_else(|| PublishError::InvalidResponse {
            message: "the token answer has no access_token".to_owned(),
        })?;
        Ok(Tokens {
            access_token: Secret::new(access),
            refresh_token: t.refresh_token.map(Secret::new),
            expires_at: OffsetDateTime::now_utc() + time::Duration::seconds(t.expires_in.unwrap_or(3600)),
            scope: t.scope.unwrap_or_default(),
        })
    }

    /// Revokes the account's access (best effort on the caller's side).
    ///
    /// # Errors
    /// `platform_rejected` when TikTok refuses; `platform_unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn revoke(&self, access_token: &Secret<String>) -> Result<(), PublishError> {
        let body = form([
            ("client_key", self.cfg.client_key.as_str()),
            ("client_secret", self.cfg.client_secret.expose()),
            ("token", access_token.expose().as_str()),
        ]);
        let req = self.http.post(self.api("/v2/oauth/revoke/")).header(CONTENT_TYPE, FORM).body(body);
        let (status, _, body) = send(req, self.cfg.timeout, "tiktok revoke").await?;
        if status.is_server_error() {
            return Err(PublishError::Unavailable {
                message: format!("revoke: TikTok answered {status}"),
                source: None,
            });
        }
        let t: Option<TokenAnswer> = serde_json::from_slice(&body).ok();
        match t.and_then(|t| t.error.filter(|e| !e.is_empty()).map(|e| (e, t.error_description))) {
            // A token TikTok no longer knows is revoked already.
            Some((e, _)) if e == "invalid_grant" => Ok(()),
            Some((e, m)) => {
                Err(PublishError::Rejected { status: status.as_u16(), reason: e, message: m.unwrap_or_default() })
            }
            None => Ok(()),
        }
    }

    async fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        access_token: &Secret<String>,
        path: &str,
        body: Option<serde_json::Value>,
        what: &'static str,
    ) -> Result<T, PublishError> {
        let mut req = self
            .http
            .post(self.api(path))
            .header(AUTHORIZATION, bearer(access_token))
            .header(CONTENT_TYPE, "application/json; charset=UTF-8");
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let (status, _, body) = send(req, self.cfg.timeout, what).await?;
        envelope(status, &body, what)
    }

    /// The account: its open id and name.
    ///
    /// # Errors
    /// `platform_unauthorized`, and the mapped API errors.
    #[tracing::instrument(skip_all)]
    pub async fn account(&self, access_token: &Secret<String>) -> Result<Account, PublishError> {
        #[derive(Deserialize)]
        struct Data {
            user: User,
        }
        #[derive(Deserialize)]
        struct User {
            open_id: String,
            #[serde(default)]
            display_name: String,
        }
        let mut url = self.api("/v2/user/info/");
        url.query_pairs_mut().append_pair("fields", "open_id,display_name");
        let req = self.http.get(url).header(AUTHORIZATION, bearer(access_token));
        let (status, _, body) = send(req, self.cfg.timeout, "tiktok user info").await?;
        let d: Data = envelope(status, &body, "user info")?;
        Ok(Account { open_id: d.user.open_id, display_name: d.user.display_name })
    }

    /// What the creator's account allows a post now (ask before each post).
    ///
    /// # Errors
    /// `platform_posting_limit` (answered with a 200), `platform_unauthorized`,
    /// `platform_rate_limited`, and the mapped API errors.
    #[tracing::instrument(skip_all)]
    pub async fn creator_info(&self, access_token: &Secret<String>) -> Result<CreatorInfo, PublishError> {
        self.post_json(access_token, "/v2/post/publish/creator_info/query/", None, "creator info").await
    }

    /// Opens a `FILE_UPLOAD` of `video_size` bytes: a direct post with
    /// `post`, or a draft to the inbox (`post` is then ignored by TikTok
    /// but its caption is kept).
    ///
    /// # Errors
    /// `platform_option_not_allowed` (`privacy_level_option_mismatch`),
    /// `platform_unaudited_client`, `platform_posting_limit`,
    /// `platform_rate_limited` (6 inits a minute per account), and the
    /// mapped API errors.
    #[tracing::instrument(skip_all, fields(video_size))]
    pub async fn init(
        &self,
        access_token: &Secret<String>,
        mode: PostMode,
        post: &PostRequest,
        video_size: u64,
    ) -> Result<Init, PublishError> {
        #[derive(Deserialize)]
        struct Data {
            publish_id: String,
            upload_url: String,
        }
        let plan = ChunkPlan::new(video_size, self.cfg.chunk_size)?;
        let source_info = serde_json::json!({
            "source": "FILE_UPLOAD",
            "video_size": plan.video_size,
            "chunk_size": plan.chunk_size,
            "total_chunk_count": plan.total_chunk_count,
        });
        let (path, body) = match mode {
            PostMode::Direct => (
                "/v2/post/publish/video/init/",
                serde_json::json!({
                    "post_info": {
                        "title": post.title,
                        "privacy_level": post.privacy_level,
                        "disable_comment": !post.allow_comments,
                        "disable_duet": !post.allow_duet,
                        "disable_stitch": !post.allow_stitch,
                        "brand_content_toggle": false,
                        "brand_organic_toggle": false,
                        "is_aigc": post.is_aigc,
                    },
                    "source_info": source_info,
                }),
            ),
            PostMode::Inbox => ("/v2/post/publish/inbox/video/init/", serde_json::json!({"source_info": source_info})),
        };
        let d: Data = self.post_json(access_token, path, Some(body), "init").await?;
        Ok(Init { publish_id: d.publish_id, upload_url: d.upload_url, plan })
    }

    /// Sends the chunks from `first_chunk` on, in order (0 for a fresh
    /// upload; [`TikTok::resume_point`] after an interruption). A chunk
    /// that fails with a 5xx, a dropped connection or a timeout is sent
    /// again, with backoff; a 416 resynchronises on the `Content-Range`
    /// TikTok answers. `progress(sent, total)` follows the chunks TikTok took.
    ///
    /// # Errors
    /// `upload_session_expired` when the upload URL expired (403) or is
    /// unknown (404): init again; `platform_unavailable` once the retries
    /// are spent; `source_unavailable`; `platform_rejected`.
    #[tracing::instrument(skip_all, fields(publish_id = %init.publish_id, first_chunk))]
    pub async fn upload(
        &self,
        init: &Init,
        source: &dyn ByteSource,
        first_chunk: u64,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<(), PublishError> {
        let plan = init.plan;
        if source.len() != plan.video_size {
            return Err(PublishError::InvalidRequest {
                message: format!("the source has {} bytes; the upload announced {}", source.len(), plan.video_size),
            });
        }
        let reader = Arc::new(Mutex::new(Reader::default()));
        let mut i = first_chunk;
        let mut failures = 0;
        while i < plan.total_chunk_count {
            match self.put_chunk(init, source, &reader, i).await {
                Ok(Chunk::Taken) => {
                    failures = 0;
                    let (_, last) = plan.range(i);
                    progress(last + 1, plan.video_size);
                    i += 1;
                }
                Ok(Chunk::Resync(held)) => {
                    // TikTok holds another amount than we thought: go on from there.
                    if held >= plan.video_size {
                        break;
                    }
                    i = plan.chunk_at(held).ok_or_else(|| PublishError::InvalidResponse {
                        message: format!("TikTok holds {held} bytes, not a chunk boundary"),
                    })?;
                    failures += 1;
                    if failures > self.cfg.retry.max_retries {
                        return Err(PublishError::Unavailable {
                            message: "the upload does not advance".to_owned(),
                            source: None,
                        });
                    }
                }
                Err(e) if e.is_transient() => {
                    failures += 1;
                    if failures > self.cfg.retry.max_retries {
                        return Err(e);
                    }
                    tracing::info!(chunk = i, attempt = failures, error = %e, "chunk failed; sending it again");
                    tokio::time::sleep(self.cfg.retry.backoff(failures)).await;
                }
                Err(e) => return Err(e),
            }
        }
        progress(plan.video_size, plan.video_size);
        Ok(())
    }

    async fn put_chunk(
        &self,
        init: &Init,
        source: &dyn ByteSource,
        reader: &Arc<Mutex<Reader>>,
        i: u64,
    ) -> Result<Chunk, PublishError> {
        let plan = init.plan;
        let (first, last) = plan.range(i);
        let len = last - first + 1;
        reader.lock().await.seek(source, first).await.map_err(|source| PublishError::Source { source })?;
        #[allow(clippy::cast_precision_loss)]
        let timeout = self.cfg.timeout + Duration::from_secs_f64(len as f64 / self.cfg.min_upload_rate as f64);
        let req = self
            .http
            .put(&init.upload_url)
            .header(CONTENT_TYPE, source.content_type())
            .header(CONTENT_LENGTH, len)
            .header(CONTENT_RANGE, format!("bytes {first}-{last}/{}", plan.video_size))
            .body(reqwest::Body::wrap_stream(chunk_body(reader.clone(), len)));
        let answer = send(req, timeout, "tiktok chunk").await;
        if let Some(source) = reader.lock().await.failure.take() {
            return Err(PublishError::Source { source });
        }
        let (status, headers, body) = answer?;
        chunk_answer(status, &headers, &body)
    }

    /// Where an interrupted upload goes on: the chunk after what TikTok
    /// says it holds (`uploaded_bytes` of the status).
    ///
    /// # Errors
    /// As [`TikTok::status`].
    pub async fn resume_point(&self, access_token: &Secret<String>, init: &Init) -> Result<u64, PublishError> {
        let s = self.status(access_token, &init.publish_id).await?;
        let held = s.uploaded_bytes.unwrap_or(0);
        Ok(init.plan.chunk_at(held).unwrap_or(held / init.plan.chunk_size).min(init.plan.total_chunk_count))
    }

    /// Where the post stands.
    ///
    /// # Errors
    /// `platform_unauthorized`, `platform_rate_limited` (30 a minute), and
    /// the mapped API errors.
    #[tracing::instrument(skip_all)]
    pub async fn status(&self, access_token: &Secret<String>, publish_id: &str) -> Result<PublishStatus, PublishError> {
        let body = serde_json::json!({ "publish_id": publish_id });
        self.post_json(access_token, "/v2/post/publish/status/fetch/", Some(body), "status").await
    }
}

/// What a chunk's answer says.
#[derive(Debug, PartialEq, Eq)]
enum Chunk {
    /// 206 (more expected) or 201 (the last one).
    Taken,
    /// 416: TikTok holds this many bytes.
    Resync(u64),
}

fn chunk_answer(status: StatusCode, headers: &HeaderMap, body: &Bytes) -> Result<Chunk, PublishError> {
    match status.as_u16() {
        200 | 201 | 206 => Ok(Chunk::Taken),
        416 => {
            // `Content-Range: bytes 0-{last}/{total}`: what TikTok holds.
            let held = headers
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('/').next())
                .and_then(|r| r.split('-').nth(1))
                .and_then(|last| last.parse::<u64>().ok())
                .map_or(0, |last| last + 1);
            Ok(Chunk::Resync(held))
        }
        403 | 404 => Err(PublishError::UploadSessionExpired {
            message: format!("TikTok answered {status} to a chunk: the upload URL expired or is unknown"),
        }),
        s if s >= 500 => Err(PublishError::Unavailable { message: format!("a chunk got {status}"), source: None }),
        s => Err(PublishError::Rejected {
            status: s,
            reason: String::new(),
            message: String::from_utf8_lossy(body).chars().take(300).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_plans_follow_tiktoks_rules() {
        // Under 5 MiB: whole, in one chunk.
        assert_eq!(ChunkPlan::new(4 * MIB, 10 * MIB).unwrap().total_chunk_count, 1);
        assert_eq!(ChunkPlan::new(4 * MIB, 10 * MIB).unwrap().chunk_size, 4 * MIB);
        // Up to the chunk size: one chunk too.
        assert_eq!(
            ChunkPlan::new(9 * MIB, 10 * MIB).unwrap(),
            ChunkPlan { video_size: 9 * MIB, chunk_size: 9 * MIB, total_chunk_count: 1 }
        );
        // The doc's example: 50,000,123 bytes in 10,000,000-byte chunks is 5, the last taking the rest.
        let p = ChunkPlan::new(50_000_123, 10_000_000).unwrap();
        assert_eq!((p.chunk_size, p.total_chunk_count), (10_000_000, 5));
        assert_eq!(p.range(4), (40_000_000, 50_000_122));
        for size in [5 * MIB + 1, 64 * MIB, 65 * MIB, 700 * MIB + 3, 4 * 1024 * MIB] {
            for preferred in [1, 5 * MIB, 10 * MIB, 64 * MIB, 500 * MIB] {
                let p = ChunkPlan::new(size, preferred).unwrap();
                assert_eq!(p.total_chunk_count, size / p.chunk_size, "{size} {preferred}");
                assert!((1..=MAX_CHUNKS).contains(&p.total_chunk_count));
                let (first, last) = p.range(p.total_chunk_count - 1);
                assert_eq!(last, size - 1);
                if p.total_chunk_count > 1 {
                    assert!((MIN_CHUNK..=MAX_CHUNK).contains(&p.chunk_size), "{size} {preferred}: {p:?}");
                }
                assert!(last - first < MAX_FINAL_CHUNK, "{size} {preferred}: {p:?}");
            }
        }
        assert_eq!(ChunkPlan::new(0, MIB).unwrap_err().code(), "platform_rule_size");
        assert_eq!(ChunkPlan::new(MAX_VIDEO_BYTES + 1, MIB).unwrap_err().code(), "platform_rule_size");
    }

    fn creator() -> CreatorInfo {
        CreatorInfo {
            creator_username: "u".into(),
            creator_nickname: "U".into(),
            privacy_level_options: vec!["PUBLIC_TO_EVERYONE".into(), "SELF_ONLY".into()],
            comment_disabled: false,
            duet_disabled: true,
            stitch_disabled: false,
            max_video_post_duration_sec: 60,
        }
    }

    fn post() -> PostRequest {
        PostRequest {
            title: "t".into(),
            privacy_level: "PUBLIC_TO_EVERYONE".into(),
            allow_comments: true,
            allow_duet: false,
            allow_stitch: true,
            is_aigc: false,
            duration_secs: 30.0,
        }
    }

    #[test]
    fn a_post_uses_only_what_the_account_allows() {
        assert!(check_post(&creator(), &post()).is_ok());
        let friends = PostRequest { privacy_level: "MUTUAL_FOLLOW_FRIENDS".into(), ..post() };
        let e = check_post(&creator(), &friends).unwrap_err();
        assert_eq!(e.code(), "platform_option_not_allowed");
        assert!(e.message().contains("PUBLIC_TO_EVERYONE, SELF_ONLY"), "{}", e.message());
        let duet = PostRequest { allow_duet: true, ..post() };
        assert!(matches!(check_post(&creator(), &duet), Err(PublishError::NotAllowed { option: "duet", .. })));
        let long = PostRequest { duration_secs: 61.0, ..post() };
        assert!(matches!(check_post(&creator(), &long), Err(PublishError::NotAllowed { option: "duration", .. })));
        let caption = PostRequest { title: "é".repeat(2201), ..post() };
        assert_eq!(check_post(&creator(), &caption).unwrap_err().code(), "platform_rule_title");
    }

    #[test]
    fn api_errors_map_to_stable_codes() {
        let now = OffsetDateTime::now_utc();
        let e = |code: &str| ApiError { code: code.into(), message: "m".into(), log_id: "L".into() };
        assert_eq!(
            api_error(403, &e("unaudited_client_can_only_post_to_private_accounts"), now).code(),
            "platform_unaudited_client"
        );
        assert_eq!(api_error(403, &e("privacy_level_option_mismatch"), now).code(), "platform_option_not_allowed");
        assert_eq!(api_error(401, &e("access_token_invalid"), now).code(), "platform_unauthorized");
        let limited = api_error(429, &e("rate_limit_exceeded"), now);
        assert_eq!(limited.retry_at(), Some(now + time::Duration::minutes(1)));
        let capped = api_error(403, &e("spam_risk_too_many_posts"), now);
        assert!(capped.is_retryable() && capped.retry_at() == Some(now + time::Duration::days(1)));
        assert!(api_error(400, &e("invalid_params"), now).message().contains("log id L"));
    }

    #[test]
    fn an_init_does_not_print_its_upload_url() {
        let plan = ChunkPlan::new(10, MIB).unwrap();
        let init = Init { publish_id: "p".into(), upload_url: "https://u/?upload_token=SECRET".into(), plan };
        assert!(!format!("{init:?}").contains("SECRET"));
    }
}
