//! YouTube: Google OAuth, the channel, Shorts rules, resumable uploads and
//! the status of an uploaded video.

mod api_error;
mod rules;
mod upload;

use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use serde::Deserialize;
use time::OffsetDateTime;
use url::Url;
use videdit_core::secret::Secret;

pub use rules::{
    MAX_DESCRIPTION_BYTES, MAX_DURATION_SECS, MAX_SIZE_BYTES, MAX_TAGS_CHARS, MAX_TITLE_CHARS, ShortFacts, check_rules,
    metadata_violations, tags_length, violations,
};
pub use upload::{UploadProgress, UploadSession, UploadedVideo};

use crate::oauth::{TokenResponse, Tokens, token_error};
use crate::wire::{FORM, bearer, form, join, parse_json};
use crate::{PublishError, RetryPolicy};
use api_error::api_error;

/// Uploading a video.
pub const SCOPE_UPLOAD: &str = "https://www.googleapis.com/auth/youtube.upload";
/// Reading the channel and the status of its videos.
pub const SCOPE_READONLY: &str = "https://www.googleapis.com/auth/youtube.readonly";

/// Resumable upload chunks are multiples of this (except the last one).
pub const CHUNK_GRANULARITY: usize = 256 * 1024;

/// Where Google is and how we talk to it. Read once at start-up and passed down.
#[derive(Debug, Clone)]
pub struct YouTubeConfig {
    /// Google's authorization endpoint (the consent page).
    pub auth_url: Url,
    /// The token endpoint (code exchange and refresh).
    pub token_url: Url,
    /// The token revocation endpoint.
    pub revoke_url: Url,
    /// The base of the Data API (`{api_base}/youtube/v3/…`).
    pub api_base: Url,
    /// The base of the upload API (`{upload_base}/upload/youtube/v3/videos`).
    pub upload_base: Url,
    /// The OAuth client id of the Google Cloud project.
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: Secret<String>,
    /// The redirect URI registered for the client; the callback receives `code` and `state`.
    pub redirect_uri: String,
    /// The deadline of one request (a chunk upload gets more, see `min_upload_rate`).
    pub timeout: Duration,
    /// Upload chunk size: a multiple of 256 KiB. Larger is faster, smaller
    /// loses less on an interruption.
    pub chunk_size: usize,
    /// The slowest upload we wait for, in bytes per second: a chunk's
    /// deadline is `timeout + chunk_len / min_upload_rate`.
    pub min_upload_rate: u64,
    /// Resuming an upload after a dropped connection, a timeout or a 5xx.
    pub retry: RetryPolicy,
}

impl YouTubeConfig {
    /// Google's production endpoints, a 30 s timeout, 8 MiB chunks, a 256 KiB/s floor.
    #[must_use]
    pub fn new(client_id: impl Into<String>, client_secret: Secret<String>, redirect_uri: impl Into<String>) -> Self {
        let url = |s: &str| Url::parse(s).expect("a valid constant URL");
        Self {
            auth_url: url("https://accounts.google.com/o/oauth2/v2/auth"),
            token_url: url("https://oauth2.googleapis.com/token"),
            revoke_url: url("https://oauth2.googleapis.com/revoke"),
            api_base: url("https://www.googleapis.com"),
            upload_base: url("https://www.googleapis.com"),
            client_id: client_id.into(),
            client_secret,
            redirect_uri: redirect_uri.into(),
            timeout: Duration::from_secs(30),
            chunk_size: 8 * 1024 * 1024,
            min_upload_rate: 256 * 1024,
            retry: RetryPolicy::default(),
        }
    }
}

/// Who a video is shown to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Privacy {
    /// Everyone.
    Public,
    /// Anyone with the link.
    Unlisted,
    /// Only the owner.
    Private,
}

impl Privacy {
    /// The API's `privacyStatus` value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Privacy::Public => "public",
            Privacy::Unlisted => "unlisted",
            Privacy::Private => "private",
        }
    }

    /// The value of a `privacyStatus`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Privacy::Public),
            "unlisted" => Some(Privacy::Unlisted),
            "private" => Some(Privacy::Private),
            _ => None,
        }
    }
}

/// A video's metadata, sent when the upload starts.
#[derive(Debug, Clone)]
pub struct VideoMeta {
    /// `snippet.title`: 1 to 100 characters, no `<` or `>`.
    pub title: String,
    /// `snippet.description`: at most 5000 bytes, no `<` or `>`.
    pub description: String,
    /// `snippet.tags`: 500 characters together at most.
    pub tags: Vec<String>,
    /// Who sees the video (see `publish_at` for scheduled posts).
    pub privacy: Privacy,
    /// A scheduled publication. YouTube accepts `status.publishAt` only
    /// with `privacyStatus: private`, so a scheduled `Public` or `Unlisted`
    /// video is sent as private with `publishAt`, and YouTube makes it
    /// **public** at that time (the API cannot schedule an unlisted
    /// release). With `Private` it is refused: a private video never publishes.
    pub publish_at: Option<OffsetDateTime>,
    /// `snippet.categoryId`, for example `"22"` (People & Blogs).
    pub category_id: String,
    /// `status.selfDeclaredMadeForKids` (COPPA).
    pub made_for_kids: bool,
}

/// The channel of the connected account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// `UC…`.
    pub id: String,
    /// The channel's name.
    pub title: String,
}

/// Where an uploaded video stands, as YouTube reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoStatus {
    /// `status.uploadStatus`: `uploaded`, `processed`, `failed`, `rejected` or `deleted`.
    pub upload_status: String,
    /// `status.privacyStatus`.
    pub privacy_status: String,
    /// `processingDetails.processingStatus` (`processing`, `succeeded`, `failed`, `terminated`), if sent.
    pub processing: Option<String>,
    /// `status.failureReason` when the upload failed.
    pub failure_reason: Option<String>,
    /// `status.rejectionReason` when YouTube rejected the video.
    pub rejection_reason: Option<String>,
    /// `status.publishAt` of a scheduled video.
    pub publish_at: Option<OffsetDateTime>,
}

/// A YouTube client for one Google Cloud project (any number of channels:
/// every call takes the channel's access token).
#[derive(Debug, Clone)]
pub struct YouTube {
    cfg: YouTubeConfig,
    http: reqwest::Client,
}

impl YouTube {
    /// A client with its own connection pool.
    ///
    /// # Errors
    /// [`PublishError::InvalidRequest`] when `chunk_size` is not a positive
    /// multiple of 256 KiB or `min_upload_rate` is zero.
    pub fn new(cfg: YouTubeConfig) -> Result<Self, PublishError> {
        if cfg.chunk_size == 0 || !cfg.chunk_size.is_multiple_of(CHUNK_GRANULARITY) {
            return Err(PublishError::InvalidRequest {
                message: format!("chunk_size must be a positive multiple of 262144 bytes, not {}", cfg.chunk_size),
            });
        }
        let http = crate::wire::http_client(cfg.timeout, cfg.min_upload_rate)?;
        Ok(Self { cfg, http })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &YouTubeConfig {
        &self.cfg
    }

    /// The consent page to send the user to. Keep `state` and the PKCE
    /// verifier until the callback; ask for offline access so that a
    /// refresh token comes back, and for consent every time so that it
    /// comes back even on a second connection.
    #[must_use]
    pub fn authorize_url(&self, state: &str, pkce_challenge: &str) -> Url {
        let mut url = self.cfg.auth_url.clone();
        url.query_pairs_mut()
            .append_pair("client_id", &self.cfg.client_id)
            .append_pair("redirect_uri", &self.cfg.redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", &format!("{SCOPE_UPLOAD} {SCOPE_READONLY}"))
            .append_pair("state", state)
            .append_pair("code_challenge", pkce_challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("access_type", "offline")
            .append_pair("prompt", "consent")
            .append_pair("include_granted_scopes", "true");
        url
    }

    /// Exchanges the callback's `code` for tokens.
    ///
    /// # Errors
    /// `needs_reauthorization` for a used, expired or mismatched code or a
    /// wrong verifier (`invalid_grant`); `platform_rejected` for other OAuth
    /// errors; `platform_unavailable` for 5xx and transport failures.
    #[tracing::instrument(skip_all)]
    pub async fn exchange_code(&self, code: &str, verifier: &Secret<String>) -> Result<Tokens, PublishError> {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier.expose()),
            ("redirect_uri", &self.cfg.redirect_uri),
        ])
        .await
    }

    /// A new access token. Google sends no new refresh token, so the answer
    /// carries the one given: store the result as it is.
    ///
    /// # Errors
    /// `needs_reauthorization` when the refresh token was revoked or expired
    /// (`invalid_grant`); as [`YouTube::exchange_code`] otherwise.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, refresh_token: &Secret<String>) -> Result<Tokens, PublishError> {
        let mut tokens =
            self.token_request(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose())]).await?;
        if tokens.refresh_token.is_none() {
            tokens.refresh_token = Some(refresh_token.clone());
        }
        Ok(tokens)
    }

    async fn token_request(&self, params: &[(&str, &str)]) -> Result<Tokens, PublishError> {
        let body =
            form(params.iter().copied().chain([
                ("client_id", self.cfg.client_id.as_str()),
                ("client_secret", self.cfg.client_secret.expose()),
            ]));
        let req = self.http.post(self.cfg.token_url.clone()).header(CONTENT_TYPE, FORM).body(body);
        let (status, _, body) = self.send(req, "token").await?;
        if !status.is_success() {
            return Err(token_error(status.as_u16(), &body));
        }
        let parsed: TokenResponse = parse_json(&body, "token response")?;
        Ok(parsed.into_tokens(OffsetDateTime::now_utc()))
    }

    /// Revokes a token (an access token, or a refresh token and the access
    /// tokens made from it). A token that is already invalid counts as revoked.
    ///
    /// # Errors
    /// `platform_rejected` for other refusals; `platform_unavailable` for 5xx
    /// and transport failures.
    #[tracing::instrument(skip_all)]
    pub async fn revoke(&self, token: &Secret<String>) -> Result<(), PublishError> {
        let req = self
            .http
            .post(self.cfg.revoke_url.clone())
            .header(CONTENT_TYPE, FORM)
            .body(form([("token", token.expose().as_str())]));
        let (status, _, body) = self.send(req, "revoke").await?;
        if status.is_success() {
            return Ok(());
        }
        match token_error(status.as_u16(), &body) {
            PublishError::Rejected { reason, .. } if reason == "invalid_token" => Ok(()),
            e => Err(e),
        }
    }

    /// The channel of the account the token belongs to.
    ///
    /// # Errors
    /// `platform_no_channel` when the account has none; `platform_unauthorized`
    /// for a refused token; the mapped API error otherwise.
    #[tracing::instrument(skip_all)]
    pub async fn channel(&self, access_token: &Secret<String>) -> Result<Channel, PublishError> {
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            items: Vec<Item>,
        }
        #[derive(Deserialize)]
        struct Item {
            id: String,
            snippet: Snippet,
        }
        #[derive(Deserialize)]
        struct Snippet {
            title: String,
        }
        let url = self.api_url("/youtube/v3/channels", &[("part", "snippet"), ("mine", "true")]);
        let list: List = self.get_json(access_token, url, "channels").await?;
        let item = list.items.into_iter().next().ok_or(PublishError::NoChannel)?;
        Ok(Channel { id: item.id, title: item.snippet.title })
    }

    /// The upload, processing and privacy status of a video.
    ///
    /// # Errors
    /// `platform_video_not_found` when the account cannot see such a video;
    /// the mapped API error otherwise.
    #[tracing::instrument(skip_all, fields(video_id = id))]
    pub async fn video_status(&self, access_token: &Secret<String>, id: &str) -> Result<VideoStatus, PublishError> {
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            items: Vec<Item>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Item {
            status: Status,
            #[serde(default)]
            processing_details: Option<Processing>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Status {
            upload_status: String,
            privacy_status: String,
            #[serde(default)]
            failure_reason: Option<String>,
            #[serde(default)]
            rejection_reason: Option<String>,
            #[serde(default, with = "time::serde::rfc3339::option")]
            publish_at: Option<OffsetDateTime>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Processing {
            #[serde(default)]
            processing_status: Option<String>,
        }
        let url = self.api_url("/youtube/v3/videos", &[("part", "status,processingDetails"), ("id", id)]);
        let list: List = self.get_json(access_token, url, "videos").await?;
        let item = list.items.into_iter().next().ok_or_else(|| PublishError::VideoNotFound { id: id.to_owned() })?;
        Ok(VideoStatus {
            upload_status: item.status.upload_status,
            privacy_status: item.status.privacy_status,
            processing: item.processing_details.and_then(|p| p.processing_status),
            failure_reason: item.status.failure_reason,
            rejection_reason: item.status.rejection_reason,
            publish_at: item.status.publish_at,
        })
    }

    fn api_url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        join(&self.cfg.api_base, path, query)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        access_token: &Secret<String>,
        url: Url,
        what: &'static str,
    ) -> Result<T, PublishError> {
        let req = self.http.get(url).header(AUTHORIZATION, bearer(access_token));
        let (status, headers, body) = self.send(req, what).await?;
        if !status.is_success() {
            return Err(api_error(status.as_u16(), &headers, &body, OffsetDateTime::now_utc()));
        }
        parse_json(&body, what)
    }

    /// Sends with the per-request timeout and reads the whole (small) answer.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        what: &'static str,
    ) -> Result<(StatusCode, HeaderMap, Bytes), PublishError> {
        self.send_with_timeout(req, self.cfg.timeout, what).await
    }

    async fn send_with_timeout(
        &self,
        req: reqwest::RequestBuilder,
        timeout: Duration,
        what: &'static str,
    ) -> Result<(StatusCode, HeaderMap, Bytes), PublishError> {
        crate::wire::send(req, timeout, what).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> YouTube {
        YouTube::new(YouTubeConfig::new(
            "cid.apps.googleusercontent.com",
            Secret::new("s3cr3t".into()),
            "https://app.example/cb",
        ))
        .unwrap()
    }

    #[test]
    fn authorize_url_has_every_parameter() {
        let url = client().authorize_url("st-1", "chal");
        assert_eq!(url.host_str(), Some("accounts.google.com"));
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["client_id"], "cid.apps.googleusercontent.com");
        assert_eq!(q["redirect_uri"], "https://app.example/cb");
        assert_eq!(q["scope"], format!("{SCOPE_UPLOAD} {SCOPE_READONLY}"));
        assert_eq!(q["state"], "st-1");
        assert_eq!(q["code_challenge"], "chal");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["access_type"], "offline");
        assert_eq!(q["prompt"], "consent");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["include_granted_scopes"], "true");
        assert!(!url.as_str().contains("s3cr3t"));
    }

    #[test]
    fn chunk_size_must_be_a_multiple_of_256_kib() {
        let mut cfg = client().cfg;
        cfg.chunk_size = 300_000;
        assert_eq!(YouTube::new(cfg).unwrap_err().code(), "invalid_request");
    }

    #[test]
    fn join_keeps_a_base_path() {
        let base = Url::parse("http://127.0.0.1:9/google/").unwrap();
        assert_eq!(
            join(&base, "/youtube/v3/videos", &[("id", "a b")]).as_str(),
            "http://127.0.0.1:9/google/youtube/v3/videos?id=a+b"
        );
    }
}
