//! Instagram Reels through the Instagram API with Instagram Login: OAuth
//! with long-lived (60-day) tokens that refresh themselves, the
//! professional account's identity, Reels containers fed from a public
//! `video_url` (Meta fetches it) or a resumable upload to Meta's upload
//! host, the container's status, the publishing limit over a rolling day,
//! and `media_publish`.
//!
//! Instagram has no scheduling through this API: the caller publishes at
//! the time. Graph errors come as `{"error": {"message", "type", "code",
//! "error_subcode", "fbtrace_id"}}`; the code and subcode decide (code 4
//! is both the app's rate limit and, with subcode 2207051, a spam block).

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::sync::Mutex;
use url::Url;
use videdit_core::secret::Secret;

use crate::mp4::Mp4Facts;
use crate::oauth::Tokens;
use crate::wire::{FORM, Reader, bearer, chunk_body, form, parse_json, send};
use crate::{ByteSource, PublishError, RetryPolicy, Rule};

/// Reading the professional account.
pub const SCOPE_BASIC: &str = "instagram_business_basic";
/// Publishing to it.
pub const SCOPE_PUBLISH: &str = "instagram_business_content_publish";
/// The Graph API version the paths use.
pub const GRAPH_VERSION: &str = "v25.0";
/// The shortest reel.
pub const MIN_REEL_SECS: f64 = 3.0;
/// The longest reel.
pub const MAX_REEL_SECS: f64 = 15.0 * 60.0;
/// The largest reel file (Meta's reference: 300 MB).
pub const MAX_REEL_BYTES: u64 = 300 * 1024 * 1024;
/// The widest reel picture.
pub const MAX_REEL_WIDTH: u32 = 1920;
/// The longest caption (characters).
pub const MAX_CAPTION_CHARS: usize = 2200;
/// The most hashtags in a caption.
pub const MAX_HASHTAGS: usize = 30;

/// Where Instagram is and how we talk to it.
#[derive(Debug, Clone)]
pub struct InstagramConfig {
    /// The consent page (`https://www.instagram.com/oauth/authorize`).
    pub auth_url: Url,
    /// The short-lived token endpoint (`https://api.instagram.com/oauth/access_token`).
    pub token_url: Url,
    /// The Graph API (`https://graph.instagram.com`).
    pub graph_base: Url,
    /// The Instagram app id (not the Facebook app's).
    pub client_id: String,
    /// The Instagram app secret.
    pub client_secret: Secret<String>,
    /// The registered redirect URI.
    pub redirect_uri: String,
    /// The deadline of one request (an upload gets more, see `min_upload_rate`).
    pub timeout: Duration,
    /// The slowest upload waited for, in bytes per second.
    pub min_upload_rate: u64,
    /// Retrying a resumable upload after a dropped connection, a timeout or a 5xx.
    pub retry: RetryPolicy,
}

impl InstagramConfig {
    /// Instagram's production endpoints, a 30 s timeout.
    #[must_use]
    pub fn new(client_id: impl Into<String>, client_secret: Secret<String>, redirect_uri: impl Into<String>) -> Self {
        let url = |s: &str| Url::parse(s).expect("a valid constant URL");
        Self {
            auth_url: url("https://www.instagram.com/oauth/authorize"),
            token_url: url("https://api.instagram.com/oauth/access_token"),
            graph_base: url("https://graph.instagram.com"),
            client_id: client_id.into(),
            client_secret,
            redirect_uri: redirect_uri.into(),
            timeout: Duration::from_secs(30),
            min_upload_rate: 256 * 1024,
            retry: RetryPolicy::default(),
        }
    }
}

/// The connected professional account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The professional account's id (`17841…`), the `{ig-user-id}` of publishing.
    pub user_id: String,
    /// `@username`.
    pub username: String,
    /// `BUSINESS` or `MEDIA_CREATOR` (any case); anything else cannot publish.
    pub account_type: String,
}

impl Account {
    /// A business or creator account: the only kinds the API publishes for.
    #[must_use]
    pub fn is_professional(&self) -> bool {
        let t = self.account_type.to_ascii_uppercase();
        t == "BUSINESS" || t == "MEDIA_CREATOR" || t == "CREATOR"
    }
}

/// Where a container's video comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReelSource {
    /// A URL Meta fetches (a presigned GET of the short): storage must be
    /// reachable from the internet.
    Url(String),
    /// A resumable upload to Meta's upload host ([`Instagram::upload`]).
    Resumable,
}

/// A reel as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReelPost {
    /// The caption (hashtags included).
    pub caption: String,
    /// Shown in the feed as well as in Reels.
    pub share_to_feed: bool,
    /// Where the video comes from.
    pub source: ReelSource,
}

/// A container Instagram made.
#[derive(Clone, PartialEq, Eq)]
pub struct Container {
    /// Its id (`creation_id` of `media_publish`).
    pub id: String,
    /// Where a resumable upload sends the bytes (a resumable container only).
    pub upload_uri: Option<String>,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Where a container stands.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ContainerStatus {
    /// `IN_PROGRESS`, `FINISHED`, `PUBLISHED`, `ERROR` or `EXPIRED`.
    pub status_code: String,
    /// Instagram's words; for `ERROR` they carry the subcode.
    #[serde(default)]
    pub status: Option<String>,
}

impl ContainerStatus {
    /// The 7-digit error subcode inside `status` (`2207026`, …).
    #[must_use]
    pub fn subcode(&self) -> Option<u64> {
        let s = self.status.as_deref()?;
        s.split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 7 && w.starts_with("22"))
            .and_then(|w| w.parse().ok())
    }
}

/// The account's use of its publishing limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishingLimit {
    /// Posts published through the API in the window.
    pub usage: u64,
    /// The most the window allows (50 or 100: read, never assumed).
    pub total: u64,
    /// The window (a rolling day).
    pub window: Duration,
}

/// A published reel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// Its id.
    pub id: String,
    /// `https://www.instagram.com/reel/…/`.
    pub permalink: String,
}

/// What is checked of a reel before anything is sent.
#[derive(Debug, Clone, Copy)]
pub struct ReelFacts<'a> {
    /// The file's layout and codecs ([`crate::mp4::probe`]).
    pub mp4: &'a Mp4Facts,
    /// The file's size.
    pub size_bytes: u64,
    /// The caption.
    pub caption: &'a str,
}

/// Checks a reel against Instagram's rules: 3 s to 15 min, H.264 or HEVC
/// with AAC, `moov` at the front, at most 1920 pixels wide, 300 MB, a
/// caption of at most 2200 characters and 30 hashtags.
///
/// # Errors
/// `platform_rule_duration`, `platform_rule_format`, `platform_rule_size`,
/// `platform_rule_aspect`, `platform_rule_title`.
pub fn check_reel(r: &ReelFacts<'_>) -> Result<(), PublishError> {
    let rule = |rule: Rule, message: String| Err(PublishError::Rule { rule, message });
    let m = r.mp4;
    if !m.moov_at_front {
        return rule(
            Rule::Format,
            "the MP4's moov box comes after its media data; Instagram needs it at the front (ffmpeg -movflags +faststart)"
                .into(),
        );
    }
    if !(MIN_REEL_SECS..=MAX_REEL_SECS).contains(&m.duration_secs) {
        return rule(Rule::Duration, format!("the reel is {:.1} s; Instagram takes 3 s to 15 min", m.duration_secs));
    }
    match m.video_codec.as_deref() {
        Some("avc1" | "avc3" | "hvc1" | "hev1") => {}
        other => return rule(Rule::Format, format!("the video codec is {other:?}; Instagram takes H.264 or HEVC")),
    }
    if m.audio_codec.as_deref().is_some_and(|a| a != "mp4a") {
        return rule(Rule::Format, format!("the audio codec is {:?}; Instagram takes AAC", m.audio_codec));
    }
    if m.width > MAX_REEL_WIDTH {
        return rule(Rule::Aspect, format!("the picture is {} px wide; Instagram takes at most 1920", m.width));
    }
    if r.size_bytes == 0 || r.size_bytes > MAX_REEL_BYTES {
        return rule(Rule::Size, format!("the file is {} bytes; Instagram takes at most 300 MB", r.size_bytes));
    }
    let chars = r.caption.chars().count();
    let hashtags = r.caption.split_whitespace().filter(|w| w.starts_with('#')).count();
    if chars > MAX_CAPTION_CHARS || hashtags > MAX_HASHTAGS {
        return rule(
            Rule::Title,
            format!("the caption has {chars} characters and {hashtags} hashtags; Instagram takes 2200 and 30"),
        );
    }
    Ok(())
}

/// An Instagram client for one app (any number of accounts).
#[derive(Debug, Clone)]
pub struct Instagram {
    cfg: InstagramConfig,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: i64,
    #[serde(default)]
    error_subcode: Option<i64>,
    #[serde(default)]
    error_user_msg: Option<String>,
    #[serde(default)]
    fbtrace_id: Option<String>,
}

/// A Graph answer: its JSON, or the error it carries.
fn graph<T: serde::de::DeserializeOwned>(status: StatusCode, body: &[u8], what: &str) -> Result<T, PublishError> {
    if let Ok(e) = serde_json::from_slice::<GraphErrorBody>(body) {
        return Err(graph_error(status.as_u16(), &e.error, OffsetDateTime::now_utc()));
    }
    if status.is_server_error() {
        return Err(PublishError::Unavailable {
            message: format!("{what}: Instagram answered {status}"),
            source: None,
        });
    }
    if !status.is_success() {
        return Err(PublishError::Rejected {
            status: status.as_u16(),
            reason: String::new(),
            message: format!("{what}: {}", String::from_utf8_lossy(&body[..body.len().min(300)])),
        });
    }
    parse_json(body, what)
}

/// Meta's codes and subcodes, in ours.
fn graph_error(status: u16, e: &GraphError, now: OffsetDateTime) -> PublishError {
    let text = e.error_user_msg.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| e.message.clone());
    let message = match &e.fbtrace_id {
        Some(t) => format!("{text} (code {}, subcode {}, trace {t})", e.code, e.error_subcode.unwrap_or(0)),
        None => format!("{text} (code {}, subcode {})", e.code, e.error_subcode.unwrap_or(0)),
    };
    match (e.code, e.error_subcode) {
        (190, _) => PublishError::Unauthorized { message },
        (10 | 200..=299, _) => PublishError::NeedsReauthorization {
            message: format!("the account did not grant the permission this needs: {message}"),
        },
        (4, Some(2_207_051)) => PublishError::Rejected { status, reason: "2207051".into(), message },
        (9, Some(2_207_042)) => PublishError::PostingLimit { message, retry_at: now + time::Duration::hours(1) },
        (4 | 17 | 32 | 613 | 80_001 | 80_002, _) => {
            PublishError::RateLimited { message, retry_at: Some(now + time::Duration::minutes(5)) }
        }
        (9004, _) | (_, Some(2_207_052)) => PublishError::MediaUnreachable { message },
        (_, Some(2_207_020 | 2_207_008)) => PublishError::UploadSessionExpired { message },
        (9007, _) | (_, Some(2_207_027)) => PublishError::Unavailable {
            message: format!("the media is not ready to publish yet: {message}"),
            source: None,
        },
        (25, _) | (_, Some(2_207_050)) => PublishError::NeedsReauthorization { message },
        (352, _) | (_, Some(2_207_026)) => PublishError::ProcessingFailed { reason: message },
        (-1 | -2 | 1 | 2, _) => PublishError::Unavailable { message, source: None },
        (code, _) => PublishError::Rejected { status, reason: code.to_string(), message },
    }
}

#[derive(Deserialize)]
struct ShortToken {
    access_token: String,
    #[serde(default)]
    permissions: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct LongToken {
    access_token: String,
    #[serde(default)]
    expires_in: Option<i64>,
}

/// A rupload answer.
#[derive(Deserialize)]
struct UploadAnswer {
    #[serde(default)]
    success: Option<bool>,
    #[serde(default)]
    debug_info: Option<DebugInfo>,
}

#[derive(Deserialize)]
struct DebugInfo {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    retriable: bool,
}

impl Instagram {
    /// A client with its own connection pool.
    ///
    /// # Errors
    /// `invalid_request` for a zero `min_upload_rate`.
    pub fn new(cfg: InstagramConfig) -> Result<Self, PublishError> {
        let http = crate::wire::http_client(cfg.timeout, cfg.min_upload_rate)?;
        Ok(Self { cfg, http })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &InstagramConfig {
        &self.cfg
    }

    fn graph_url(&self, path: &str, versioned: bool) -> Url {
        let path = if versioned { format!("/{GRAPH_VERSION}{path}") } else { path.to_owned() };
        crate::wire::join(&self.cfg.graph_base, &path, &[])
    }

    /// The consent page (Business Login for Instagram; Instagram has no PKCE).
    #[must_use]
    pub fn authorize_url(&self, state: &str) -> Url {
        let mut url = self.cfg.auth_url.clone();
        url.query_pairs_mut()
            .append_pair("client_id", &self.cfg.client_id)
            .append_pair("redirect_uri", &self.cfg.redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", &format!("{SCOPE_BASIC},{SCOPE_PUBLISH}"))
            .append_pair("state", state);
        url
    }

    /// Exchanges the callback's `code` (a trailing `#_` is dropped) for a
    /// short-lived token, then that for a long-lived one (60 days).
    ///
    /// # Errors
    /// `needs_reauthorization` for a used or expired code;
    /// `platform_unavailable` for 5xx and transport failures.
    #[tracing::instrument(skip_all)]
    pub async fn exchange_code(&self, code: &str) -> Result<Tokens, PublishError> {
        let code = code.trim_end_matches("#_");
        let body = form([
            ("client_id", self.cfg.client_id.as_str()),
            ("client_secret", self.cfg.client_secret.expose()),
            ("grant_type", "authorization_code"),
            ("redirect_uri", &self.cfg.redirect_uri),
            ("code", code),
        ]);
        let req = self.http.post(self.cfg.token_url.clone()).header(CONTENT_TYPE, FORM).body(body);
        let (status, _, body) = send(req, self.cfg.timeout, "instagram token").await?;
        if status.is_server_error() {
            return Err(PublishError::Unavailable {
                message: format!("token: Instagram answered {status}"),
                source: None,
            });
        }
        // The legacy error shape: {"error_type", "code", "error_message"}.
        let value: serde_json::Value = parse_json(&body, "token response")?;
        if let Some(msg) = value.get("error_message").and_then(|m| m.as_str()) {
            return Err(PublishError::NeedsReauthorization { message: msg.to_owned() });
        }
        if let Ok(e) = serde_json::from_value::<GraphErrorBody>(value.clone()) {
            return Err(graph_error(status.as_u16(), &e.error, OffsetDateTime::now_utc()));
        }
        // The documented answer wraps it in `data: [..]`; some answers are flat.
        let inner = value.get("data").and_then(|d| d.get(0)).cloned().unwrap_or(value);
        let short: ShortToken = serde_json::from_value(inner)
            .map_err(|e| PublishError::InvalidResponse { message: format!("token response: {e}") })?;
        let scope = match short.permissions {
            Some(serde_json::Value::String(s)) => s,
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(","),
            _ => String::new(),
        };
        let mut url = self.graph_url("/access_token", false);
        url.query_pairs_mut()
            .append_pair("grant_type", "ig_exchange_token")
            .append_pair("client_secret", self.cfg.client_secret.expose())
            .append_pair("access_token", &short.access_token);
        let mut tokens = self.long_token(url, "long-lived token").await?;
        tokens.scope = scope;
        Ok(tokens)
    }

    /// A fresh long-lived token for one at least 24 hours old and not yet
    /// expired (Instagram has no refresh token: the token refreshes itself).
    ///
    /// # Errors
    /// `platform_unauthorized` (190) for an expired or too young token.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, access_token: &Secret<String>) -> Result<Tokens, PublishError> {
        let mut url = self.graph_url("/refresh_access_token", false);
        url.query_pairs_mut()
            .append_pair("grant_type", "ig_refresh_token")
            .append_pair("access_token", access_token.expose());
        self.long_token(url, "refresh").await
    }

    async fn long_token(&self, url: Url, what: &'static str) -> Result<Tokens, PublishError> {
        let (status, _, body) = send(self.http.get(url), self.cfg.timeout, what).await?;
        let t: LongToken = graph(status, &body, what)?;
        Ok(Tokens {
            access_token: Secret::new(t.access_token),
            refresh_token: None,
            expires_at: OffsetDateTime::now_utc() + time::Duration::seconds(t.expires_in.unwrap_or(5_184_000)),
            scope: String::new(),
        })
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        token: &Secret<String>,
        path: &str,
        query: &[(&str, &str)],
        what: &'static str,
    ) -> Result<T, PublishError> {
        let mut url = self.graph_url(path, true);
        url.query_pairs_mut().extend_pairs(query);
        let req = self.http.get(url).header(AUTHORIZATION, bearer(token));
        let (status, _, body) = send(req, self.cfg.timeout, what).await?;
        graph(status, &body, what)
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        token: &Secret<String>,
        path: &str,
        params: &[(&str, &str)],
        what: &'static str,
    ) -> Result<T, PublishError> {
        let req = self
            .http
            .post(self.graph_url(path, true))
            .header(AUTHORIZATION, bearer(token))
            .header(CONTENT_TYPE, FORM)
            .body(form(params.iter().copied()));
        let (status, _, body) = send(req, self.cfg.timeout, what).await?;
        graph(status, &body, what)
    }

    /// The account the token is for.
    ///
    /// # Errors
    /// `platform_unauthorized`, and the mapped Graph errors.
    #[tracing::instrument(skip_all)]
    pub async fn account(&self, access_token: &Secret<String>) -> Result<Account, PublishError> {
        #[derive(Deserialize)]
        struct Me {
            #[serde(default)]
            id: Option<serde_json::Value>,
            #[serde(default)]
            user_id: Option<serde_json::Value>,
            #[serde(default)]
            username: String,
            #[serde(default)]
            account_type: String,
        }
        let me: Me = self.get(access_token, "/me", &[("fields", "user_id,username,account_type")], "me").await?;
        // Ids above 2^53 come as numbers: read them as text, never as floats.
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let user_id = me.user_id.as_ref().or(me.id.as_ref()).map(text).unwrap_or_default();
        if user_id.is_empty() {
            return Err(PublishError::InvalidResponse { message: "/me answered without an id".into() });
        }
        Ok(Account { user_id, username: me.username, account_type: me.account_type })
    }

    /// Creates a Reels container.
    ///
    /// # Errors
    /// `platform_media_unreachable` when Meta cannot fetch `video_url`,
    /// `platform_rate_limited`, and the mapped Graph errors.
    #[tracing::instrument(skip_all)]
    pub async fn create_container(
        &self,
        access_token: &Secret<String>,
        user_id: &str,
        post: &ReelPost,
    ) -> Result<Container, PublishError> {
        #[derive(Deserialize)]
        struct Created {
            id: String,
            #[serde(default)]
            uri: Option<String>,
        }
        let share = if post.share_to_feed { "true" } else { "false" };
        let mut params = vec![("media_type", "REELS"), ("caption", post.caption.as_str()), ("share_to_feed", share)];
        match &post.source {
            ReelSource::Url(u) => params.push(("video_url", u.as_str())),
            ReelSource::Resumable => params.push(("upload_type", "resumable")),
        }
        let c: Created = self.post(access_token, &format!("/{user_id}/media"), &params, "create container").await?;
        if post.source == ReelSource::Resumable && c.uri.is_none() {
            return Err(PublishError::InvalidResponse { message: "a resumable container came without its uri".into() });
        }
        Ok(Container { id: c.id, upload_uri: c.uri })
    }

    /// Sends the bytes of a resumable container from `offset` (0 for a
    /// fresh upload; [`Instagram::uploaded_bytes`] after an interruption),
    /// in one request. A dropped connection, a timeout or a 5xx asks Meta
    /// how much it holds and goes on from there, with backoff.
    ///
    /// # Errors
    /// `platform_unavailable` once the retries are spent; `platform_rejected`
    /// for what Meta refuses; `source_unavailable`.
    #[tracing::instrument(skip_all, fields(container = %container.id))]
    pub async fn upload(
        &self,
        access_token: &Secret<String>,
        container: &Container,
        source: &dyn ByteSource,
        offset: u64,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<(), PublishError> {
        let Some(uri) = container.upload_uri.as_deref() else {
            return Err(PublishError::InvalidRequest { message: "the container is not resumable".into() });
        };
        let total = source.len();
        let mut offset = offset;
        let mut failures = 0;
        loop {
            progress(offset, total);
            if offset >= total {
                return Ok(());
            }
            match self.send_from(access_token, uri, source, offset).await {
                Ok(()) => {
                    progress(total, total);
                    return Ok(());
                }
                Err(e) if e.is_transient() => {
                    failures += 1;
                    if failures > self.cfg.retry.max_retries {
                        return Err(e);
                    }
                    tracing::info!(attempt = failures, error = %e, "the upload was cut; asking Meta what it holds");
                    tokio::time::sleep(self.cfg.retry.backoff(failures)).await;
                    let held = self.uploaded_bytes(access_token, &container.id).await?;
                    if held > offset {
                        failures = 0;
                    }
                    offset = held.min(total);
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn send_from(
        &self,
        access_token: &Secret<String>,
        uri: &str,
        source: &dyn ByteSource,
        offset: u64,
    ) -> Result<(), PublishError> {
        let total = source.len();
        let len = total - offset;
        let reader = Arc::new(Mutex::new(Reader::default()));
        reader.lock().await.seek(source, offset).await.map_err(|source| PublishError::Source { source })?;
        #[allow(clippy::cast_precision_loss)]
        let timeout = self.cfg.timeout + Duration::from_secs_f64(len as f64 / self.cfg.min_upload_rate as f64);
        let req = self
            .http
            .post(uri)
            // Meta's upload host wants the `OAuth` scheme, not `Bearer`.
            .header(AUTHORIZATION, format!("OAuth {}", access_token.expose()))
            .header("offset", offset)
            .header("file_size", total)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(chunk_body(reader.clone(), len)));
        let answer = send(req, timeout, "instagram upload").await;
        if let Some(source) = reader.lock().await.failure.take() {
            return Err(PublishError::Source { source });
        }
        let (status, _, body) = answer?;
        if status.is_server_error() {
            return Err(PublishError::Unavailable { message: format!("the upload got {status}"), source: None });
        }
        let a: UploadAnswer = parse_json(&body, "upload answer")?;
        if status.is_success() && a.success == Some(true) {
            return Ok(());
        }
        let info = a.debug_info.unwrap_or(DebugInfo { kind: String::new(), message: String::new(), retriable: false });
        if info.retriable || info.kind == "OffsetInvalidError" {
            // Out of step: the caller's retry asks where Meta stands.
            return Err(PublishError::Unavailable {
                message: format!("{}: {}", info.kind, info.message),
                source: None,
            });
        }
        Err(PublishError::Rejected { status: status.as_u16(), reason: info.kind, message: info.message })
    }

    /// How many bytes of a resumable container Meta holds.
    ///
    /// # Errors
    /// The mapped Graph errors.
    pub async fn uploaded_bytes(&self, access_token: &Secret<String>, container_id: &str) -> Result<u64, PublishError> {
        let v: serde_json::Value =
            self.get(access_token, &format!("/{container_id}"), &[("fields", "video_status")], "video status").await?;
        let phase = &v["video_status"]["uploading_phase"];
        // Meta's own documents spell it both ways.
        Ok(phase["bytes_transferred"].as_u64().or_else(|| phase["bytes_transfered"].as_u64()).unwrap_or(0))
    }

    /// Where a container stands.
    ///
    /// # Errors
    /// The mapped Graph errors.
    pub async fn container_status(
        &self,
        access_token: &Secret<String>,
        container_id: &str,
    ) -> Result<ContainerStatus, PublishError> {
        self.get(access_token, &format!("/{container_id}"), &[("fields", "status_code,status")], "container status")
            .await
    }

    /// The account's publishing limit now.
    ///
    /// # Errors
    /// The mapped Graph errors; `platform_invalid_response` for an answer without it.
    pub async fn publishing_limit(
        &self,
        access_token: &Secret<String>,
        user_id: &str,
    ) -> Result<PublishingLimit, PublishError> {
        let v: serde_json::Value = self
            .get(
                access_token,
                &format!("/{user_id}/content_publishing_limit"),
                &[("fields", "config,quota_usage")],
                "publishing limit",
            )
            .await?;
        let d = &v["data"][0];
        let total = d["config"]["quota_total"].as_u64();
        let (Some(usage), Some(total)) = (d["quota_usage"].as_u64(), total) else {
            return Err(PublishError::InvalidResponse { message: format!("publishing limit: {v}") });
        };
        let window = Duration::from_secs(d["config"]["quota_duration"].as_u64().unwrap_or(86_400));
        Ok(PublishingLimit { usage, total, window })
    }

    /// Publishes a finished container; the reel's id.
    ///
    /// # Errors
    /// `platform_posting_limit` past the limit; `platform_unavailable`
    /// when the container is not ready; the mapped Graph errors.
    #[tracing::instrument(skip_all)]
    pub async fn publish(
        &self,
        access_token: &Secret<String>,
        user_id: &str,
        container_id: &str,
    ) -> Result<String, PublishError> {
        #[derive(Deserialize)]
        struct Published {
            id: String,
        }
        let p: Published = self
            .post(access_token, &format!("/{user_id}/media_publish"), &[("creation_id", container_id)], "publish")
            .await?;
        Ok(p.id)
    }

    /// The account's latest reels (id and link), newest first: how a
    /// publish whose answer was lost finds what it published.
    ///
    /// # Errors
    /// The mapped Graph errors.
    pub async fn recent_media(&self, access_token: &Secret<String>, user_id: &str) -> Result<Vec<Media>, PublishError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            data: Vec<Item>,
        }
        #[derive(Deserialize)]
        struct Item {
            id: String,
            #[serde(default)]
            permalink: String,
        }
        let page: Page = self
            .get(access_token, &format!("/{user_id}/media"), &[("fields", "id,permalink"), ("limit", "10")], "media")
            .await?;
        Ok(page.data.into_iter().map(|i| Media { id: i.id, permalink: i.permalink }).collect())
    }

    /// A published reel's link.
    ///
    /// # Errors
    /// The mapped Graph errors.
    pub async fn media(&self, access_token: &Secret<String>, media_id: &str) -> Result<Media, PublishError> {
        #[derive(Deserialize)]
        struct M {
            id: String,
            #[serde(default)]
            permalink: String,
        }
        let m: M = self.get(access_token, &format!("/{media_id}"), &[("fields", "id,permalink")], "media").await?;
        Ok(Media { id: m.id, permalink: m.permalink })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: i64, sub: Option<i64>) -> GraphError {
        GraphError { message: "m".into(), code, error_subcode: sub, error_user_msg: None, fbtrace_id: Some("T".into()) }
    }

    #[test]
    fn graph_errors_map_to_stable_codes() {
        let now = OffsetDateTime::now_utc();
        let code = |c, s| graph_error(400, &err(c, s), now).code();
        assert_eq!(code(190, Some(463)), "platform_unauthorized");
        assert_eq!(code(10, None), "needs_reauthorization");
        assert_eq!(code(9, Some(2_207_042)), "platform_posting_limit");
        assert_eq!(code(4, None), "platform_rate_limited");
        // Code 4 with 2207051 is a spam block, not a rate limit to wait out.
        assert_eq!(code(4, Some(2_207_051)), "platform_rejected");
        assert_eq!(code(9004, Some(2_207_052)), "platform_media_unreachable");
        assert_eq!(code(352, Some(2_207_026)), "platform_processing_failed");
        assert_eq!(code(-2, Some(2_207_003)), "platform_unavailable");
        assert!(graph_error(400, &err(100, None), now).message().contains("trace T"));
    }

    #[test]
    fn a_container_error_names_its_subcode() {
        let s = ContainerStatus {
            status_code: "ERROR".into(),
            status: Some("Error: Media upload has failed with error code 2207026".into()),
        };
        assert_eq!(s.subcode(), Some(2_207_026));
        assert_eq!(ContainerStatus { status_code: "FINISHED".into(), status: None }.subcode(), None);
    }

    fn mp4(secs: f64) -> Mp4Facts {
        Mp4Facts {
            moov_at_front: true,
            duration_secs: secs,
            video_codec: Some("avc1".into()),
            audio_codec: Some("mp4a".into()),
            width: 1080,
            height: 1920,
        }
    }

    #[test]
    fn reels_follow_instagrams_rules() {
        let ok = mp4(30.0);
        assert!(check_reel(&ReelFacts { mp4: &ok, size_bytes: 1_000_000, caption: "hi #a" }).is_ok());
        let code = |m: Mp4Facts, size: u64, caption: &str| {
            check_reel(&ReelFacts { mp4: &m, size_bytes: size, caption }).unwrap_err().code()
        };
        assert_eq!(code(mp4(2.0), 1, ""), "platform_rule_duration");
        assert_eq!(code(mp4(901.0), 1, ""), "platform_rule_duration");
        assert_eq!(code(Mp4Facts { moov_at_front: false, ..mp4(30.0) }, 1, ""), "platform_rule_format");
        assert_eq!(code(Mp4Facts { video_codec: Some("vp09".into()), ..mp4(30.0) }, 1, ""), "platform_rule_format");
        assert_eq!(code(Mp4Facts { audio_codec: Some("Opus".into()), ..mp4(30.0) }, 1, ""), "platform_rule_format");
        assert_eq!(code(Mp4Facts { width: 3840, ..mp4(30.0) }, 1, ""), "platform_rule_aspect");
        assert_eq!(code(mp4(30.0), MAX_REEL_BYTES + 1, ""), "platform_rule_size");
        assert_eq!(code(mp4(30.0), 1, &"#t ".repeat(31)), "platform_rule_title");
    }
}
