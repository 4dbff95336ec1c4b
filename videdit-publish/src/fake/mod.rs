//! A fake of Google's OAuth and YouTube endpoints, on loopback, for tests.
//!
//! It enforces the real protocol where a client can get it wrong: PKCE S256
//! and the client secret at the token endpoint, Bearer tokens on the API,
//! chunk sizes and `Content-Range` of resumable uploads, `publishAt` only
//! on private videos, and Google's JSON error shapes. Faults on demand
//! (dropped connections, 503s, expired tokens, quota, forced privacy) and
//! inspection (the sha256 of every assembled video, bytes stored per
//! session) let tests prove that an upload survived an interruption with
//! every byte stored exactly once.
//!
//! ```no_run
//! # async fn t() {
//! use videdit_publish::fake::FakeYouTube;
//! use videdit_publish::youtube::YouTube;
//! let fake = FakeYouTube::start().await;
//! let yt = YouTube::new(fake.config()).unwrap();
//! let tokens = fake.issue_tokens(); // or the whole OAuth flow, see `authorize`
//! let channel = yt.channel(&tokens.access_token).await.unwrap();
//! # }
//! ```

mod http;
mod instagram;
mod routes;
mod tiktok;

pub use instagram::{FakeContainer, FakeInstagram};

/// Makes a real 9:16 MP4 (180×320 H.264 test pattern, AAC tone) of `secs`
/// seconds with ffmpeg at `out`; `faststart` puts `moov` before the media
/// data. For tests of the platforms' media rules.
///
/// # Panics
/// When ffmpeg is missing or fails.
pub async fn make_mp4(out: &std::path::Path, secs: u32, faststart: bool) {
    let mut args: Vec<String> = [
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=180x320:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=330:sample_rate=44100",
        "-t",
    ]
    .map(String::from)
    .to_vec();
    args.push(secs.to_string());
    args.extend(["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"].map(String::from));
    if faststart {
        args.extend(["-movflags", "+faststart"].map(String::from));
    }
    args.push(out.display().to_string());
    let status = tokio::process::Command::new("ffmpeg").args(&args).status().await.expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg failed to make a test MP4");
}
pub use tiktok::{FakeTikTok, FakeTikTokPost};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::distr::{Alphanumeric, SampleString};
use sha2::Sha256;
use time::OffsetDateTime;
use url::Url;
use videdit_core::secret::Secret;

use crate::RetryPolicy;
use crate::oauth::Tokens;
use crate::youtube::{SCOPE_READONLY, SCOPE_UPLOAD, YouTubeConfig};
use http::Served;

/// The redirect URI the fake's client is registered with.
pub const REDIRECT_URI: &str = "http://127.0.0.1/oauth/youtube/callback";

/// A running fake, serving until dropped.
pub struct FakeYouTube {
    served: Served<State>,
}

impl std::fmt::Debug for FakeYouTube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeYouTube").field("addr", &self.served.addr).finish_non_exhaustive()
    }
}

/// A video the fake holds.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeVideo {
    /// The video id.
    pub id: String,
    /// Hex sha256 of the assembled bytes.
    pub sha256: String,
    /// Bytes stored.
    pub len: u64,
    /// The JSON body of the `videos.insert` request, as received.
    pub metadata: serde_json::Value,
    /// `status.privacyStatus` as stored (forced to `private` by [`FakeYouTube::force_private`]).
    pub privacy_status: String,
    /// `status.uploadStatus`.
    pub upload_status: String,
}

/// An upload session the fake holds.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeSession {
    /// The session URI (as sent in `Location`).
    pub uri: String,
    /// `X-Upload-Content-Length`.
    pub total: u64,
    /// `X-Upload-Content-Type`.
    pub content_type: String,
    /// Bytes stored so far.
    pub stored: u64,
    /// Body bytes accepted into storage over all requests: equal to
    /// `total` when every byte was stored exactly once.
    pub accepted_bytes: u64,
    /// Body bytes received over all requests, stored or not.
    pub received_bytes: u64,
    /// Chunk `PUT`s (with a body), including failed and dropped ones.
    pub chunk_requests: u32,
    /// Status queries (`Content-Range: bytes */TOTAL`).
    pub status_queries: u32,
    /// The video, once complete.
    pub video_id: Option<String>,
    /// The metadata received.
    pub metadata: serde_json::Value,
}

/// Every token the fake issued, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssuedTokens {
    /// Access tokens.
    pub access_tokens: Vec<String>,
    /// Refresh tokens.
    pub refresh_tokens: Vec<String>,
    /// Tokens revoked through the revoke endpoint.
    pub revoked: Vec<String>,
}

impl FakeYouTube {
    /// Starts the fake on `127.0.0.1:0`.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::new(String::new())));
        let app: Arc<dyn http::App> = Arc::new(routes::Google { state: state.clone() });
        Self { served: Served::start(state, app, |s, base| s.base = base).await }
    }

    /// `http://127.0.0.1:PORT`: the base of every endpoint.
    #[must_use]
    pub fn base_url(&self) -> String {
        self.served.base_url()
    }

    /// The registered OAuth client id.
    #[must_use]
    pub fn client_id(&self) -> String {
        self.lock().client_id.clone()
    }

    /// The registered OAuth client secret.
    #[must_use]
    pub fn client_secret(&self) -> Secret<String> {
        Secret::new(self.lock().client_secret.clone())
    }

    /// Registers another redirect URI ([`REDIRECT_URI`] is registered from the start).
    pub fn add_redirect_uri(&self, uri: &str) {
        self.lock().redirect_uris.push(uri.to_owned());
    }

    /// A client configuration for this fake: its endpoints, its client,
    /// [`REDIRECT_URI`], 256 KiB chunks, a 10 s timeout, and retries with a
    /// 1 ms backoff so that tests are fast.
    #[must_use]
    pub fn config(&self) -> YouTubeConfig {
        let base = Url::parse(&self.base_url()).expect("valid base URL");
        let mut cfg = YouTubeConfig::new(self.client_id(), self.client_secret(), REDIRECT_URI);
        cfg.auth_url = base.join("/o/oauth2/v2/auth").expect("valid");
        cfg.token_url = base.join("/token").expect("valid");
        cfg.revoke_url = base.join("/revoke").expect("valid");
        cfg.api_base = base.clone();
        cfg.upload_base = base;
        cfg.timeout = Duration::from_secs(10);
        cfg.chunk_size = 256 * 1024;
        cfg.retry = RetryPolicy { max_retries: 5, base: Duration::from_millis(1), max: Duration::from_millis(20) };
        cfg
    }

    /// Tokens for the fake's channel with both YouTube scopes, as if the
    /// user had consented, without the OAuth round trip.
    #[must_use]
    pub fn issue_tokens(&self) -> Tokens {
        let mut s = self.lock();
        let scope = format!("{SCOPE_UPLOAD} {SCOPE_READONLY}");
        let refresh = s.issue_refresh(&scope);
        let access = s.issue_access(&scope, Some(&refresh));
        Tokens {
            access_token: Secret::new(access),
            refresh_token: Some(Secret::new(refresh)),
            expires_at: OffsetDateTime::now_utc() + time::Duration::seconds(3599),
            scope,
        }
    }

    /// The fake's channel: `(id, title)`.
    #[must_use]
    pub fn channel(&self) -> (String, String) {
        let s = self.lock();
        (s.channel_id.clone(), s.channel_title.clone())
    }

    // --- faults ---

    /// The next chunk `PUT` reads `n` body bytes, then the connection is
    /// closed without an answer. The session keeps what a real server
    /// would have committed: the bytes received rounded down to 256 KiB
    /// (all of them if they complete the upload).
    pub fn drop_after_bytes(&self, n: u64) {
        self.lock().faults.drop_after = Some(n);
    }

    /// The next chunk `PUT` is answered with `status` (for example 503) in
    /// Google's error shape, and nothing of it is stored. Calls queue up:
    /// called `n` times, the next `n` chunks fail.
    pub fn fail_next_chunk(&self, status: u16) {
        self.lock().faults.fail_next_chunk.push_back(status);
    }

    /// Every access token issued so far stops working (401 `authError`);
    /// a refresh gives a working one.
    pub fn expire_access_tokens(&self) {
        for t in self.lock().access.values_mut() {
            t.expired = true;
        }
    }

    /// While on, API calls (channels, videos, upload start) answer 403 `quotaExceeded`.
    pub fn quota_exceeded(&self, on: bool) {
        self.lock().faults.quota = on;
    }

    /// While on, uploads finish as `private` whatever was asked, as for an
    /// unverified API project.
    pub fn force_private(&self, on: bool) {
        self.lock().faults.force_private = on;
    }

    /// Every upload session so far answers 404 from now on.
    pub fn expire_upload_sessions(&self) {
        for s in self.lock().sessions.values_mut() {
            s.expired = true;
        }
    }

    /// Marks a video processed (`uploadStatus: processed`, `processingStatus: succeeded`).
    pub fn finish_processing(&self, id: &str) {
        if let Some(v) = self.lock().videos.get_mut(id) {
            v.upload_status = "processed".to_owned();
            v.processing_status = "succeeded".to_owned();
        }
    }

    // --- inspection ---

    /// A stored video.
    #[must_use]
    pub fn video(&self, id: &str) -> Option<FakeVideo> {
        self.lock().videos.get(id).map(Video::public)
    }

    /// Every stored video, oldest first.
    #[must_use]
    pub fn videos(&self) -> Vec<FakeVideo> {
        let s = self.lock();
        let mut v: Vec<&Video> = s.videos.values().collect();
        v.sort_by_key(|v| v.seq);
        v.into_iter().map(Video::public).collect()
    }

    /// The session with this URI.
    #[must_use]
    pub fn session(&self, uri: &str) -> Option<FakeSession> {
        let id = Url::parse(uri).ok()?.query_pairs().find(|(k, _)| k == "upload_id")?.1.into_owned();
        self.lock().sessions.get(&id).map(Session::public)
    }

    /// Every upload session, oldest first.
    #[must_use]
    pub fn sessions(&self) -> Vec<FakeSession> {
        let s = self.lock();
        let mut v: Vec<&Session> = s.sessions.values().collect();
        v.sort_by_key(|s| s.seq);
        v.into_iter().map(Session::public).collect()
    }

    /// Every token issued and revoked.
    #[must_use]
    pub fn issued_tokens(&self) -> IssuedTokens {
        self.lock().issued.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.served.lock()
    }
}

#[derive(Default)]
struct Faults {
    drop_after: Option<u64>,
    fail_next_chunk: std::collections::VecDeque<u16>,
    quota: bool,
    force_private: bool,
}

struct AuthCode {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    scope: String,
    used: bool,
}

struct AccessToken {
    scope: String,
    expired: bool,
    revoked: bool,
    refresh: Option<String>,
}

struct RefreshToken {
    scope: String,
    revoked: bool,
}

struct Session {
    seq: u64,
    uri: String,
    total: u64,
    content_type: String,
    metadata: serde_json::Value,
    hasher: Sha256,
    stored: u64,
    accepted_bytes: u64,
    received_bytes: u64,
    chunk_requests: u32,
    status_queries: u32,
    video_id: Option<String>,
    expired: bool,
}

impl Session {
    fn public(&self) -> FakeSession {
        FakeSession {
            uri: self.uri.clone(),
            total: self.total,
            content_type: self.content_type.clone(),
            stored: self.stored,
            accepted_bytes: self.accepted_bytes,
            received_bytes: self.received_bytes,
            chunk_requests: self.chunk_requests,
            status_queries: self.status_queries,
            video_id: self.video_id.clone(),
            metadata: self.metadata.clone(),
        }
    }
}

struct Video {
    seq: u64,
    id: String,
    sha256: String,
    len: u64,
    metadata: serde_json::Value,
    privacy_status: String,
    upload_status: String,
    processing_status: String,
    publish_at: Option<String>,
    published_at: String,
}

impl Video {
    fn public(&self) -> FakeVideo {
        FakeVideo {
            id: self.id.clone(),
            sha256: self.sha256.clone(),
            len: self.len,
            metadata: self.metadata.clone(),
            privacy_status: self.privacy_status.clone(),
            upload_status: self.upload_status.clone(),
        }
    }
}

struct State {
    base: String,
    client_id: String,
    client_secret: String,
    redirect_uris: Vec<String>,
    channel_id: String,
    channel_title: String,
    codes: HashMap<String, AuthCode>,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    sessions: HashMap<String, Session>,
    videos: HashMap<String, Video>,
    issued: IssuedTokens,
    faults: Faults,
    seq: u64,
}

fn random(n: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), n)
}

impl State {
    fn new(base: String) -> Self {
        Self {
            base,
            client_id: format!("{}.apps.googleusercontent.com", random(12)),
            client_secret: format!("GOCSPX-{}", random(28)),
            redirect_uris: vec![REDIRECT_URI.to_owned()],
            channel_id: format!("UC{}", random(22)),
            channel_title: "Fake Channel".to_owned(),
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            sessions: HashMap::new(),
            videos: HashMap::new(),
            issued: IssuedTokens::default(),
            faults: Faults::default(),
            seq: 0,
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn issue_access(&mut self, scope: &str, refresh: Option<&str>) -> String {
        let token = format!("ya29.fake-{}", random(40));
        self.access.insert(
            token.clone(),
            AccessToken {
                scope: scope.to_owned(),
                expired: false,
                revoked: false,
                refresh: refresh.map(str::to_owned),
            },
        );
        self.issued.access_tokens.push(token.clone());
        token
    }

    fn issue_refresh(&mut self, scope: &str) -> String {
        let token = format!("1//fake-{}", random(40));
        self.refresh.insert(token.clone(), RefreshToken { scope: scope.to_owned(), revoked: false });
        self.issued.refresh_tokens.push(token.clone());
        token
    }
}
