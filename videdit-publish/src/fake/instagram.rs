//! A fake of Instagram's API with Instagram Login, on loopback.
//!
//! It enforces what a client can get wrong: single-use codes bound to the
//! redirect URI, the `{"data": [..]}` short-token answer with a numeric
//! `user_id` above 2^53, long-lived tokens that refresh only when at least
//! 24 hours old and before they expire (a clock tests can move), Graph
//! errors in Meta's envelope (190, 10, 9/2207042, 9007/2207027), Reels
//! containers that need `media_type=REELS` and exactly one of `video_url`
//! or `upload_type=resumable`, the upload host's `OAuth` scheme with
//! `offset` and `file_size` (keeping the bytes of a cut request, as
//! `video_status` reports), Reels rules checked on the bytes (MP4 with
//! `moov` first, H.264/HEVC, AAC, 3 s–15 min, 1920 px wide, 300 MB: a
//! container `ERROR` with subcode 2207026 otherwise), and the publishing
//! limit over a rolling day. A `video_url` is really fetched, over HTTP.
//! Faults on demand: a personal account, a failing container, an
//! unfetchable URL, a cut upload, expired tokens, a spent limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use url::Url;
use videdit_core::secret::Secret;

use super::http::{self, App, Head, Plan, Response, Served};
use super::random;
use crate::RetryPolicy;
use crate::instagram::{InstagramConfig, MAX_REEL_BYTES, MAX_REEL_SECS, MAX_REEL_WIDTH, MIN_REEL_SECS};

/// The redirect URI the fake's app is registered with.
pub const REDIRECT_URI: &str = "http://127.0.0.1/oauth/instagram/callback";
const UPLOAD_PREFIX: &str = "/ig-api-upload/";

/// A container the fake holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeContainer {
    /// Its id.
    pub id: String,
    /// `video_url` (as given) or `None` for a resumable upload.
    pub video_url: Option<String>,
    /// The caption.
    pub caption: String,
    /// `share_to_feed`.
    pub share_to_feed: bool,
    /// `IN_PROGRESS`, `FINISHED`, `PUBLISHED`, `ERROR` or `EXPIRED`.
    pub status_code: String,
    /// Bytes held.
    pub held: u64,
    /// Hex sha256 of the whole file, once held.
    pub sha256: Option<String>,
    /// Upload requests received (cut ones included).
    pub upload_requests: u32,
    /// The reel published from it.
    pub media_id: Option<String>,
}

/// A running fake, serving until dropped.
pub struct FakeInstagram {
    served: Served<State>,
}

impl std::fmt::Debug for FakeInstagram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeInstagram").field("addr", &self.served.addr).finish_non_exhaustive()
    }
}

struct Token {
    long: bool,
    scopes: String,
    issued: OffsetDateTime,
    expires: OffsetDateTime,
}

struct Container {
    seq: u64,
    id: String,
    video_url: Option<String>,
    caption: String,
    share_to_feed: bool,
    status_code: &'static str,
    error: Option<(u64, String)>,
    file_size: Option<u64>,
    bytes: Vec<u8>,
    sha256: Option<String>,
    upload_requests: u32,
    media_id: Option<String>,
    fail_with: Option<u64>,
}

struct State {
    base: String,
    client_id: String,
    client_secret: String,
    user_id: u64,
    username: String,
    account_type: String,
    /// code → (redirect_uri, used)
    codes: HashMap<String, (String, bool)>,
    tokens: HashMap<String, Token>,
    containers: HashMap<String, Container>,
    /// media id → (container id, shortcode)
    media: Vec<(String, String, String)>,
    publishes: Vec<OffsetDateTime>,
    quota_total: u64,
    /// The fake's clock runs this far ahead of the real one.
    ahead: time::Duration,
    fail_next_container: Option<u64>,
    unfetchable: bool,
    drop_after: Option<u64>,
    seq: u64,
}

impl State {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.ahead
    }

    fn issue(&mut self, long: bool, scopes: &str) -> String {
        let token = format!("IGAA{}", random(60));
        let now = self.now();
        let life = if long { time::Duration::seconds(5_183_944) } else { time::Duration::hours(1) };
        self.tokens.insert(token.clone(), Token { long, scopes: scopes.to_owned(), issued: now, expires: now + life });
        token
    }

    /// The caller's long-lived token (query `access_token` or Bearer), or the 190 to answer.
    fn authenticate(
        &self,
        head: &Head,
        params: &HashMap<String, String>,
        scope: Option<&str>,
    ) -> Result<String, Response> {
        let token = head
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::to_owned)
            .or_else(|| params.get("access_token").cloned())
            .unwrap_or_default();
        let now = self.now();
        let Some(t) = self.tokens.get(&token).filter(|t| t.long && t.expires > now) else {
            return Err(graph_error(400, 190, None, "Invalid OAuth access token - Cannot parse access token"));
        };
        if let Some(scope) = scope
            && !t.scopes.split(',').any(|s| s == scope)
        {
            return Err(graph_error(403, 10, None, "Application does not have permission for this action"));
        }
        Ok(token)
    }

    fn published_in_window(&self) -> u64 {
        let since = self.now() - time::Duration::days(1);
        self.publishes.iter().filter(|t| **t > since).count() as u64
    }
}

fn graph_error(status: u16, code: i64, subcode: Option<u64>, message: &str) -> Response {
    let mut e = json!({"message": message, "type": "OAuthException", "code": code, "fbtrace_id": random(22)});
    if let Some(s) = subcode {
        e["error_subcode"] = s.into();
        e["is_transient"] = false.into();
    }
    Response::json(status, &json!({"error": e}))
}

fn rupload_error(kind: &str, message: &str) -> Response {
    Response::json(400, &json!({"debug_info": {"retriable": false, "type": kind, "message": message}}))
}

impl FakeInstagram {
    /// Starts the fake on `127.0.0.1:0`: a business account, a publishing
    /// limit of 100 a day.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            base: String::new(),
            client_id: format!("{}", 1_000_000_000_000_000u64 + u64::from(rand::random::<u32>())),
            client_secret: random(32).to_lowercase(),
            user_id: 17_841_400_000_000_000 + u64::from(rand::random::<u16>()),
            username: "fake.creator".into(),
            account_type: "BUSINESS".into(),
            codes: HashMap::new(),
            tokens: HashMap::new(),
            containers: HashMap::new(),
            media: Vec::new(),
            publishes: Vec::new(),
            quota_total: 100,
            ahead: time::Duration::ZERO,
            fail_next_container: None,
            unfetchable: false,
            drop_after: None,
            seq: 0,
        }));
        let app: Arc<dyn App> = Arc::new(InstagramApp { state: state.clone(), http: reqwest::Client::new() });
        Self { served: Served::start(state, app, |s, base| s.base = base).await }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.served.lock()
    }

    /// `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn base_url(&self) -> String {
        self.served.base_url()
    }

    /// A client configuration for this fake: its endpoints and app,
    /// [`REDIRECT_URI`], 1 ms retry backoff.
    #[must_use]
    pub fn config(&self) -> InstagramConfig {
        let base = Url::parse(&self.base_url()).expect("a valid base URL");
        let s = self.lock();
        let mut cfg = InstagramConfig::new(s.client_id.clone(), Secret::new(s.client_secret.clone()), REDIRECT_URI);
        cfg.auth_url = base.join("/oauth/authorize").expect("valid");
        cfg.token_url = base.join("/oauth/access_token").expect("valid");
        cfg.graph_base = base;
        cfg.timeout = Duration::from_secs(10);
        cfg.retry = RetryPolicy { max_retries: 5, base: Duration::from_millis(1), max: Duration::from_millis(20) };
        cfg
    }

    /// The account: `(user_id, username)`.
    #[must_use]
    pub fn account(&self) -> (String, String) {
        let s = self.lock();
        (s.user_id.to_string(), s.username.clone())
    }

    /// A long-lived token with both publishing scopes, without the OAuth round trip.
    #[must_use]
    pub fn issue_token(&self) -> crate::oauth::Tokens {
        let mut s = self.lock();
        let scopes = "instagram_business_basic,instagram_business_content_publish";
        let token = s.issue(true, scopes);
        let expires = s.tokens[&token].expires - s.ahead;
        crate::oauth::Tokens {
            access_token: Secret::new(token),
            refresh_token: None,
            expires_at: expires,
            scope: scopes.into(),
        }
    }

    // --- the account ---

    /// `BUSINESS`, `MEDIA_CREATOR`, or `PERSONAL` (which cannot publish).
    pub fn set_account_type(&self, t: &str) {
        t.clone_into(&mut self.lock().account_type);
    }

    /// The publishing limit over a rolling day (Meta: 50 or 100).
    pub fn set_quota_total(&self, n: u64) {
        self.lock().quota_total = n;
    }

    /// Moves the fake's clock ahead: tokens age (refreshable after 24 h)
    /// and expire (after 60 days), published posts leave the window.
    pub fn advance_clock(&self, by: time::Duration) {
        self.lock().ahead += by;
    }

    // --- faults ---

    /// The next container's media fails Meta's checks: `ERROR` with `subcode`.
    pub fn fail_next_container(&self, subcode: u64) {
        self.lock().fail_next_container = Some(subcode);
    }

    /// `video_url`s cannot be fetched (as from storage that is not public):
    /// the container goes to `ERROR` with 2207052.
    pub fn unfetchable(&self, on: bool) {
        self.lock().unfetchable = on;
    }

    /// The next upload request reads `n` body bytes, then the connection is
    /// closed without an answer; the bytes read are kept.
    pub fn drop_after_bytes(&self, n: u64) {
        self.lock().drop_after = Some(n);
    }

    /// Every token issued so far stops working (190).
    pub fn expire_tokens(&self) {
        let mut s = self.lock();
        let past = s.now() - time::Duration::seconds(1);
        for t in s.tokens.values_mut() {
            t.expires = past;
        }
    }

    /// Meta finishes a container whose bytes it holds and took: `FINISHED`.
    pub fn finish_processing(&self, container_id: &str) {
        if let Some(c) = self.lock().containers.get_mut(container_id)
            && c.status_code == "IN_PROGRESS"
            && c.sha256.is_some()
        {
            c.status_code = "FINISHED";
        }
    }

    // --- inspection ---

    /// Every container, oldest first.
    #[must_use]
    pub fn containers(&self) -> Vec<FakeContainer> {
        let s = self.lock();
        let mut v: Vec<&Container> = s.containers.values().collect();
        v.sort_by_key(|c| c.seq);
        v.into_iter()
            .map(|c| FakeContainer {
                id: c.id.clone(),
                video_url: c.video_url.clone(),
                caption: c.caption.clone(),
                share_to_feed: c.share_to_feed,
                status_code: c.status_code.to_owned(),
                held: c.bytes.len() as u64,
                sha256: c.sha256.clone(),
                upload_requests: c.upload_requests,
                media_id: c.media_id.clone(),
            })
            .collect()
    }

    /// Reels published, oldest first: `(media id, container id)`.
    #[must_use]
    pub fn published(&self) -> Vec<(String, String)> {
        self.lock().media.iter().map(|(m, c, _)| (m.clone(), c.clone())).collect()
    }
}

struct InstagramApp {
    state: Arc<Mutex<State>>,
    http: reqwest::Client,
}

impl InstagramApp {
    fn lock(&self) -> MutexGuard<'_, State> {
        http::lock(&self.state)
    }
}

/// The path without a `/vNN.N` prefix.
fn unversioned(path: &str) -> &str {
    let Some(rest) = path.strip_prefix("/v") else { return path };
    match rest.find('/') {
        Some(i) if rest[..i].split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) => &rest[i..],
        _ => path,
    }
}

fn params(head: &Head, body: &[u8]) -> HashMap<String, String> {
    let mut p = head.query.clone();
    if head.header("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")) {
        p.extend(url::form_urlencoded::parse(body).into_owned());
    } else if head.header("content-type").is_some_and(|c| c.starts_with("application/json"))
        && let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body)
    {
        for (k, v) in m {
            p.insert(k, v.as_str().map_or_else(|| v.to_string(), str::to_owned));
        }
    }
    p
}

impl App for InstagramApp {
    fn plan(&self, head: &Head) -> Plan {
        let mut s = self.lock();
        match s.drop_after {
            Some(n) if head.method == "POST" && unversioned(&head.path).starts_with(UPLOAD_PREFIX) => {
                s.drop_after = None;
                Plan::DropAfter(n)
            }
            _ => Plan::Whole,
        }
    }

    fn dropped(&self, head: &Head, partial: Vec<u8>) {
        // Meta keeps what arrived of a cut upload; video_status tells how much.
        let mut s = self.lock();
        if let Some(c) = container_of_upload(&mut s, head) {
            c.upload_requests += 1;
            if head.header("offset").and_then(|o| o.parse::<u64>().ok()) == Some(c.bytes.len() as u64) {
                c.bytes.extend_from_slice(&partial);
            }
        }
    }

    fn handle(&self, head: &Head, body: Vec<u8>) -> Response {
        let path = unversioned(&head.path).to_owned();
        let p = params(head, &body);
        let mut s = self.lock();
        if path.starts_with(UPLOAD_PREFIX) && head.method == "POST" {
            return upload(&mut s, head, &body);
        }
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (head.method.as_str(), parts.as_slice()) {
            ("GET", ["oauth", "authorize"]) => authorize(&mut s, &p),
            ("POST", ["oauth", "access_token"]) => short_token(&mut s, &p),
            ("GET", ["access_token"]) => exchange(&mut s, &p),
            ("GET", ["refresh_access_token"]) => refresh(&mut s, &p),
            (method, rest) => {
                let scope = match rest {
                    [_, "media" | "media_publish"] if method == "POST" => Some("instagram_business_content_publish"),
                    _ => Some("instagram_business_basic"),
                };
                if let Err(r) = s.authenticate(head, &p, scope) {
                    return r;
                }
                drop(s);
                self.graph(method, rest, &p)
            }
        }
    }
}

impl InstagramApp {
    fn graph(&self, method: &str, parts: &[&str], p: &HashMap<String, String>) -> Response {
        let mut s = self.lock();
        let user = s.user_id.to_string();
        let own = |id: &str| id == "me" || id == user;
        match (method, parts) {
            ("GET", ["me"]) => {
                let mut me = json!({"id": format!("{}", s.user_id + 7)});
                for f in p.get("fields").map(String::as_str).unwrap_or("").split(',') {
                    match f {
                        // A JSON number above 2^53, as Meta sends it.
                        "user_id" => me["user_id"] = json!(s.user_id),
                        "username" => me["username"] = json!(s.username),
                        "account_type" => me["account_type"] = json!(s.account_type),
                        _ => {}
                    }
                }
                Response::json(200, &me)
            }
            ("POST", [id, "media"]) if own(id) => self.create(&mut s, p),
            ("GET", [id, "media"]) if own(id) => {
                let data: Vec<Value> = s
                    .media
                    .iter()
                    .rev()
                    .map(
                        |(m, _, code)| json!({"id": m, "permalink": format!("https://www.instagram.com/reel/{code}/")}),
                    )
                    .collect();
                Response::json(200, &json!({"data": data}))
            }
            ("POST", [id, "media_publish"]) if own(id) => publish(&mut s, p),
            ("GET", [id, "content_publishing_limit"]) if own(id) => {
                let usage = s.published_in_window();
                Response::json(
                    200,
                    &json!({"data": [{"quota_usage": usage, "config": {"quota_total": s.quota_total, "quota_duration": 86_400}}]}),
                )
            }
            ("GET", [id]) => {
                if let Some(c) = s.containers.get(*id) {
                    return Response::json(200, &container_json(c, p.get("fields").map_or("", String::as_str)));
                }
                if let Some((m, _, code)) = s.media.iter().find(|(m, _, _)| m == id) {
                    return Response::json(
                        200,
                        &json!({"id": m, "permalink": format!("https://www.instagram.com/reel/{code}/"),
                                "shortcode": code, "media_type": "VIDEO", "media_product_type": "REELS"}),
                    );
                }
                graph_error(400, 100, Some(33), "Unsupported get request. Object does not exist.")
            }
            _ => graph_error(400, 100, None, "Unsupported request."),
        }
    }

    fn create(&self, s: &mut State, p: &HashMap<String, String>) -> Response {
        if p.get("media_type").map(String::as_str) != Some("REELS") {
            return graph_error(400, 100, Some(2_207_023), "The media type is unknown; this fake takes REELS.");
        }
        let url = p.get("video_url").cloned();
        let resumable = p.get("upload_type").map(String::as_str) == Some("resumable");
        if url.is_some() == resumable {
            return graph_error(400, 100, None, "Exactly one of video_url or upload_type=resumable is required.");
        }
        let caption = p.get("caption").cloned().unwrap_or_default();
        if caption.chars().count() > 2200 {
            return graph_error(400, 36004, Some(2_207_010), "The caption is too long.");
        }
        s.seq += 1;
        let id = format!("{}", 17_900_000_000_000_000u64 + s.seq);
        let fail_with = s.fail_next_container.take();
        s.containers.insert(
            id.clone(),
            Container {
                seq: s.seq,
                id: id.clone(),
                video_url: url.clone(),
                caption,
                share_to_feed: p.get("share_to_feed").is_none_or(|v| v == "true"),
                status_code: "IN_PROGRESS",
                error: None,
                file_size: None,
                bytes: Vec::new(),
                sha256: None,
                upload_requests: 0,
                media_id: None,
                fail_with,
            },
        );
        if let Some(url) = url {
            // Meta fetches the URL itself, a moment later.
            let (state, http, id2, unfetchable) = (self.state.clone(), self.http.clone(), id.clone(), s.unfetchable);
            tokio::spawn(async move {
                let fetched = if unfetchable {
                    Err("refused".to_owned())
                } else {
                    match http.get(&url).timeout(Duration::from_secs(30)).send().await {
                        Ok(r) if r.status().is_success() => {
                            r.bytes().await.map(|b| b.to_vec()).map_err(|e| e.to_string())
                        }
                        Ok(r) => Err(format!("HTTP {}", r.status())),
                        Err(e) => Err(e.to_string()),
                    }
                };
                let mut s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let Some(c) = s.containers.get_mut(&id2) else { return };
                match fetched {
                    Ok(bytes) => {
                        c.file_size = Some(bytes.len() as u64);
                        c.bytes = bytes;
                        take(c);
                    }
                    Err(_) => {
                        c.status_code = "ERROR";
                        c.error = Some((2_207_052, "The media could not be fetched from this uri".into()));
                    }
                }
            });
            Response::json(200, &json!({"id": id}))
        } else {
            let uri = format!("{}{UPLOAD_PREFIX}{}/{id}", s.base, crate::instagram::GRAPH_VERSION);
            Response::json(200, &json!({"id": id, "uri": uri}))
        }
    }
}

/// The whole file is here: Meta's checks, then it waits for processing.
fn take(c: &mut Container) {
    let head = &c.bytes[..c.bytes.len().min(usize::try_from(crate::mp4::PROBE_BYTES).unwrap_or(usize::MAX))];
    let facts = crate::mp4::probe(head);
    let ok = facts.as_ref().is_ok_and(|f| {
        f.moov_at_front
            && (MIN_REEL_SECS..=MAX_REEL_SECS).contains(&f.duration_secs)
            && matches!(f.video_codec.as_deref(), Some("avc1" | "avc3" | "hvc1" | "hev1"))
            && f.audio_codec.as_deref().is_none_or(|a| a == "mp4a")
            && f.width <= MAX_REEL_WIDTH
    }) && c.bytes.len() as u64 <= MAX_REEL_BYTES;
    if let Some(sub) = c.fail_with.take() {
        c.status_code = "ERROR";
        c.error = Some((sub, "Media upload has failed".into()));
    } else if !ok {
        c.status_code = "ERROR";
        c.error =
            Some((2_207_026, "The video format is not supported. Please check spec for supported formats".into()));
    } else {
        c.sha256 = Some(hex::encode(Sha256::digest(&c.bytes)));
    }
}

fn container_json(c: &Container, fields: &str) -> Value {
    let mut v = json!({"id": c.id});
    for f in fields.split(',') {
        match f {
            "status_code" => v["status_code"] = json!(c.status_code),
            "status" => {
                v["status"] = json!(match (c.status_code, &c.error) {
                    ("ERROR", Some((sub, why))) => format!("Error: {why} (error code {sub})"),
                    ("FINISHED", _) => "Finished: Media has been uploaded and it is ready to be published.".into(),
                    ("IN_PROGRESS", _) => "In Progress: Media is still being processed.".into(),
                    (other, _) => other.to_owned(),
                });
            }
            "video_status" => {
                let complete = c.file_size.is_some_and(|n| n == c.bytes.len() as u64);
                v["video_status"] = json!({"uploading_phase": {
                    "status": if complete { "complete" } else { "in_progress" },
                    "bytes_transferred": c.bytes.len(),
                }});
            }
            _ => {}
        }
    }
    v
}

fn container_of_upload<'a>(s: &'a mut State, head: &Head) -> Option<&'a mut Container> {
    let id = unversioned(&head.path).strip_prefix(UPLOAD_PREFIX)?.rsplit('/').next()?.to_owned();
    s.containers.get_mut(&id).filter(|c| c.video_url.is_none())
}

fn upload(s: &mut State, head: &Head, body: &[u8]) -> Response {
    let token = head.header("authorization").and_then(|h| h.strip_prefix("OAuth ")).unwrap_or("").to_owned();
    let now = s.now();
    let valid = s.tokens.get(&token).is_some_and(|t| t.long && t.expires > now);
    let Some(c) = container_of_upload(s, head) else {
        return rupload_error("ProcessingFailedError", "No upload session for this id");
    };
    c.upload_requests += 1;
    if !valid {
        return rupload_error(
            "ProcessingFailedError",
            r#"{"success":false,"error":{"message":"unauthorized user request"}}"#,
        );
    }
    let num = |k: &str| head.header(k).and_then(|v| v.parse::<u64>().ok());
    let (Some(offset), Some(size)) = (num("offset"), num("file_size")) else {
        return rupload_error("ProcessingFailedError", "offset and file_size headers are required");
    };
    if c.file_size.is_some_and(|f| f != size) || c.sha256.is_some() {
        return rupload_error("ProcessingFailedError", "The file does not match this upload");
    }
    if offset != c.bytes.len() as u64 {
        return rupload_error("OffsetInvalidError", "Request starting offset is invalid");
    }
    if offset + body.len() as u64 != size {
        return rupload_error("PartialRequestError", "Request length did not match length of file");
    }
    c.file_size = Some(size);
    c.bytes.extend_from_slice(body);
    take(c);
    Response::json(200, &json!({"success": true, "message": "Upload successful."}))
}

fn publish(s: &mut State, p: &HashMap<String, String>) -> Response {
    let used = s.published_in_window();
    let total = s.quota_total;
    let now = s.now();
    let Some(c) = p.get("creation_id").and_then(|id| s.containers.get_mut(id)) else {
        return graph_error(400, 24, Some(2_207_006), "The media was not found.");
    };
    match c.status_code {
        "FINISHED" => {}
        "PUBLISHED" => return graph_error(400, 100, None, "This media has already been published."),
        "IN_PROGRESS" => {
            return graph_error(
                400,
                9007,
                Some(2_207_027),
                "The media is not ready for publishing, please wait for a moment",
            );
        }
        _ => return graph_error(400, 24, Some(2_207_008), "The media builder does not exist or has expired."),
    }
    if used >= total {
        return graph_error(
            400,
            9,
            Some(2_207_042),
            "You reached maximum number of posts that is allowed to be published by Content Publishing API.",
        );
    }
    c.status_code = "PUBLISHED";
    let media_id = format!("{}", 18_000_000_000_000_000u64 + c.seq);
    c.media_id = Some(media_id.clone());
    let container = c.id.clone();
    s.media.push((media_id.clone(), container, format!("C{}", random(10))));
    s.publishes.push(now);
    Response::json(200, &json!({"id": media_id}))
}

fn authorize(s: &mut State, p: &HashMap<String, String>) -> Response {
    let q = |k: &str| p.get(k).map_or("", String::as_str);
    if q("client_id") != s.client_id {
        return Response::json(
            400,
            &json!({"error_type": "OAuthException", "code": 400, "error_message": "Invalid platform app"}),
        );
    }
    if q("redirect_uri") != REDIRECT_URI || q("response_type") != "code" {
        return Response::json(
            400,
            &json!({"error_type": "OAuthException", "code": 400, "error_message": "Invalid redirect_uri or response_type"}),
        );
    }
    let code = random(40);
    s.codes.insert(code.clone(), (q("redirect_uri").to_owned(), false));
    let mut to = Url::parse(REDIRECT_URI).expect("valid");
    to.query_pairs_mut().append_pair("code", &code).append_pair("state", q("state"));
    // Instagram appends `#_` to the redirect.
    Response::new(302).header("Location", format!("{to}#_"))
}

fn short_token(s: &mut State, p: &HashMap<String, String>) -> Response {
    let q = |k: &str| p.get(k).map_or("", String::as_str);
    let legacy =
        |msg: &str| Response::json(400, &json!({"error_type": "OAuthException", "code": 400, "error_message": msg}));
    if q("client_id") != s.client_id || q("client_secret") != s.client_secret {
        return legacy("Invalid Client ID or secret");
    }
    if q("grant_type") != "authorization_code" {
        return legacy("Unsupported grant_type");
    }
    let Some((redirect, used)) = s.codes.get_mut(q("code")) else {
        return legacy("Matching code was not found or was already used");
    };
    if *used || redirect != q("redirect_uri") {
        *used = true;
        return legacy("Matching code was not found or was already used");
    }
    *used = true;
    let scopes = "instagram_business_basic,instagram_business_content_publish";
    let token = s.issue(false, scopes);
    Response::json(200, &json!({"data": [{"access_token": token, "user_id": s.user_id, "permissions": scopes}]}))
}

fn exchange(s: &mut State, p: &HashMap<String, String>) -> Response {
    let q = |k: &str| p.get(k).map_or("", String::as_str);
    if q("grant_type") != "ig_exchange_token" || q("client_secret") != s.client_secret {
        return graph_error(400, 100, None, "Invalid grant_type or client_secret");
    }
    let now = s.now();
    let Some(scopes) = s.tokens.get(q("access_token")).filter(|t| !t.long && t.expires > now).map(|t| t.scopes.clone())
    else {
        return graph_error(400, 190, None, "Invalid OAuth access token - Cannot parse access token");
    };
    let long = s.issue(true, &scopes);
    Response::json(200, &json!({"access_token": long, "token_type": "bearer", "expires_in": 5_183_944}))
}

fn refresh(s: &mut State, p: &HashMap<String, String>) -> Response {
    let q = |k: &str| p.get(k).map_or("", String::as_str);
    if q("grant_type") != "ig_refresh_token" {
        return graph_error(400, 100, None, "Invalid grant_type");
    }
    let now = s.now();
    let Some(t) = s.tokens.get(q("access_token")).filter(|t| t.long && t.expires > now) else {
        return graph_error(400, 190, Some(463), "Error validating access token: Session has expired");
    };
    if now - t.issued < time::Duration::hours(24) {
        return graph_error(400, 100, None, "The access token must be at least 24 hours old to be refreshed");
    }
    let scopes = t.scopes.clone();
    let fresh = s.issue(true, &scopes);
    Response::json(200, &json!({"access_token": fresh, "token_type": "bearer", "expires_in": 5_183_944}))
}
