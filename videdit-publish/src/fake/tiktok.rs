//! A fake of TikTok's Login Kit and Content Posting API, on loopback.
//!
//! It enforces what a client can get wrong: PKCE S256 and the client
//! secret at the token endpoint, rotating refresh tokens (the old one stops
//! working), Bearer tokens with the mode's scope, the creator's privacy
//! levels, TikTok's chunk rules at init (5–64 MiB chunks, a file under
//! 5 MiB whole, `total_chunk_count = floor(video_size / chunk_size)`, the
//! last chunk under 128 MiB, at most 1000) and at upload (chunks in order,
//! each exactly its `Content-Range`, 206 then 201, 416 out of order), 6
//! inits a minute per token, the `{data, error}` envelope with `code: ok`.
//! Faults on demand: an unaudited app, a posting cap, a failing chunk, a
//! dropped connection, expired tokens, a post TikTok fails.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;
use videdit_core::secret::Secret;

use super::http::{self, App, Head, Plan, Response, Served};
use super::random;
use crate::RetryPolicy;
use crate::oauth::Pkce;
use crate::tiktok::{MAX_CHUNK, MAX_CHUNKS, MAX_FINAL_CHUNK, MIN_CHUNK, PostMode, TikTokConfig};

/// The redirect URI the fake's app is registered with.
pub const REDIRECT_URI: &str = "http://127.0.0.1/oauth/tiktok/callback";
const UPLOAD_PATH: &str = "/upload/";

/// A post the fake holds.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeTikTokPost {
    /// The post's id.
    pub publish_id: String,
    /// Direct post or inbox draft.
    pub mode: PostMode,
    /// `post_info` as received (direct posts).
    pub post_info: Value,
    /// `source_info.video_size`.
    pub video_size: u64,
    /// `source_info.chunk_size`.
    pub chunk_size: u64,
    /// `source_info.total_chunk_count`.
    pub total_chunk_count: u64,
    /// Bytes stored.
    pub stored: u64,
    /// Hex sha256 of the stored bytes, once complete.
    pub sha256: Option<String>,
    /// Chunk `PUT`s received, failed and dropped ones included.
    pub chunk_requests: u32,
    /// Body bytes accepted: equal to `video_size` when each byte was stored once.
    pub accepted_bytes: u64,
    /// The status TikTok reports.
    pub status: String,
    /// Why it failed.
    pub fail_reason: Option<String>,
}

/// A running fake, serving until dropped.
pub struct FakeTikTok {
    served: Served<State>,
}

impl std::fmt::Debug for FakeTikTok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeTikTok").field("addr", &self.served.addr).finish_non_exhaustive()
    }
}

struct Code {
    redirect_uri: String,
    challenge: String,
    scope: String,
    used: bool,
}

struct Access {
    scope: String,
    expired: bool,
    revoked: bool,
}

struct Post {
    seq: u64,
    publish_id: String,
    upload_token: String,
    mode: PostMode,
    post_info: Value,
    video_size: u64,
    chunk_size: u64,
    total_chunk_count: u64,
    stored: u64,
    hasher: Sha256,
    sha256: Option<String>,
    chunk_requests: u32,
    accepted_bytes: u64,
    status: String,
    fail_reason: Option<String>,
    expires: Instant,
}

struct State {
    base: String,
    client_key: String,
    client_secret: String,
    open_id: String,
    display_name: String,
    privacy_level_options: Vec<String>,
    comment_disabled: bool,
    duet_disabled: bool,
    stitch_disabled: bool,
    max_duration: u32,
    codes: HashMap<String, Code>,
    access: HashMap<String, Access>,
    /// Refresh token → its scope; rotated ones are removed.
    refresh: HashMap<String, String>,
    posts: HashMap<String, Post>,
    inits: HashMap<String, VecDeque<Instant>>,
    init_limit: usize,
    unaudited: bool,
    posting_cap: bool,
    fail_chunks: VecDeque<u16>,
    drop_after: Option<u64>,
    issued_access: Vec<String>,
    seq: u64,
}

fn envelope(status: u16, data: &Value) -> Response {
    Response::json(status, &json!({"data": data, "error": {"code": "ok", "message": "", "log_id": random(20)}}))
}

fn api_error(status: u16, code: &str, message: &str) -> Response {
    Response::json(status, &json!({"data": {}, "error": {"code": code, "message": message, "log_id": random(20)}}))
}

fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    Response::json(status, &json!({"error": error, "error_description": description, "log_id": random(20)}))
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

impl FakeTikTok {
    /// Starts the fake on `127.0.0.1:0`: a public creator account offering
    /// `PUBLIC_TO_EVERYONE`, `MUTUAL_FOLLOW_FRIENDS` and `SELF_ONLY`, duets
    /// off, 10 minutes the longest post.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            base: String::new(),
            client_key: format!("aw{}", random(14).to_lowercase()),
            client_secret: random(32),
            open_id: format!("-000{}", random(28)),
            display_name: "Fake Creator".into(),
            privacy_level_options: ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
                .map(String::from)
                .to_vec(),
            comment_disabled: false,
            duet_disabled: true,
            stitch_disabled: false,
            max_duration: 600,
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            posts: HashMap::new(),
            inits: HashMap::new(),
            init_limit: 6,
            unaudited: false,
            posting_cap: false,
            fail_chunks: VecDeque::new(),
            drop_after: None,
            issued_access: Vec::new(),
            seq: 0,
        }));
        let app: Arc<dyn App> = Arc::new(TikTokApp { state: state.clone() });
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
    /// [`REDIRECT_URI`], 5 MiB chunks, 1 ms retry backoff.
    #[must_use]
    pub fn config(&self) -> TikTokConfig {
        let base = Url::parse(&self.base_url()).expect("a valid base URL");
        let s = self.lock();
        let mut cfg = TikTokConfig::new(s.client_key.clone(), Secret::new(s.client_secret.clone()), REDIRECT_URI);
        cfg.auth_url = base.join("/v2/auth/authorize/").expect("valid");
        cfg.api_base = base;
        cfg.timeout = Duration::from_secs(10);
        cfg.chunk_size = MIN_CHUNK;
        cfg.retry = RetryPolicy { max_retries: 5, base: Duration::from_millis(1), max: Duration::from_millis(20) };
        cfg
    }

    /// The account: `(open_id, display_name)`.
    #[must_use]
    pub fn account(&self) -> (String, String) {
        let s = self.lock();
        (s.open_id.clone(), s.display_name.clone())
    }

    /// Tokens with `scopes` (comma-separated), without the OAuth round trip.
    #[must_use]
    pub fn issue_tokens(&self, scopes: &str) -> crate::oauth::Tokens {
        let mut s = self.lock();
        let (access, refresh) = s.issue(scopes);
        crate::oauth::Tokens {
            access_token: Secret::new(access),
            refresh_token: Some(Secret::new(refresh)),
            expires_at: time::OffsetDateTime::now_utc() + time::Duration::hours(24),
            scope: scopes.to_owned(),
        }
    }

    // --- the creator's account ---

    /// The privacy levels the account offers (a private account:
    /// `FOLLOWER_OF_CREATOR`, `MUTUAL_FOLLOW_FRIENDS`, `SELF_ONLY`).
    pub fn set_privacy_levels(&self, levels: &[&str]) {
        self.lock().privacy_level_options = levels.iter().map(|l| (*l).to_owned()).collect();
    }

    /// The longest video the account may post.
    pub fn set_max_duration(&self, secs: u32) {
        self.lock().max_duration = secs;
    }

    // --- faults ---

    /// The app is not audited: inits other than `SELF_ONLY` answer 403
    /// `unaudited_client_can_only_post_to_private_accounts`.
    pub fn unaudited(&self, on: bool) {
        self.lock().unaudited = on;
    }

    /// The creator reached the posting cap: creator info answers 200 with
    /// `spam_risk_too_many_posts`, and so do inits (403).
    pub fn posting_cap(&self, on: bool) {
        self.lock().posting_cap = on;
    }

    /// Inits allowed per token per minute (TikTok: 6).
    pub fn set_init_limit(&self, per_minute: usize) {
        self.lock().init_limit = per_minute;
    }

    /// The next chunk `PUT` is answered `status` and stored not at all. Calls queue up.
    pub fn fail_next_chunk(&self, status: u16) {
        self.lock().fail_chunks.push_back(status);
    }

    /// The next chunk `PUT` reads `n` body bytes, then the connection is
    /// closed without an answer; nothing of the chunk is stored.
    pub fn drop_after_bytes(&self, n: u64) {
        self.lock().drop_after = Some(n);
    }

    /// Every access token issued so far stops working (401 `access_token_invalid`).
    pub fn expire_access_tokens(&self) {
        for t in self.lock().access.values_mut() {
            t.expired = true;
        }
    }

    /// The creator removed the app in TikTok's settings: every refresh
    /// token stops working (`invalid_grant`), and so does every access token.
    pub fn revoke_grants(&self) {
        let mut s = self.lock();
        s.refresh.clear();
        for t in s.access.values_mut() {
            t.revoked = true;
        }
    }

    /// Every upload URL so far expires (403 on its chunks).
    pub fn expire_upload_urls(&self) {
        for p in self.lock().posts.values_mut() {
            p.expires = Instant::now();
        }
    }

    /// TikTok finishes a complete upload: `PUBLISH_COMPLETE` for a direct
    /// post, `SEND_TO_USER_INBOX` for a draft.
    pub fn finish_processing(&self, publish_id: &str) {
        if let Some(p) = self.lock().posts.get_mut(publish_id).filter(|p| p.sha256.is_some()) {
            p.status = match p.mode {
                PostMode::Direct => "PUBLISH_COMPLETE",
                PostMode::Inbox => "SEND_TO_USER_INBOX",
            }
            .to_owned();
        }
    }

    /// TikTok fails the post with `reason` (`duration_check_failed`, …).
    pub fn fail_processing(&self, publish_id: &str, reason: &str) {
        if let Some(p) = self.lock().posts.get_mut(publish_id) {
            p.status = "FAILED".into();
            p.fail_reason = Some(reason.to_owned());
        }
    }

    // --- inspection ---

    /// Every post, oldest first.
    #[must_use]
    pub fn posts(&self) -> Vec<FakeTikTokPost> {
        let s = self.lock();
        let mut v: Vec<&Post> = s.posts.values().collect();
        v.sort_by_key(|p| p.seq);
        v.into_iter()
            .map(|p| FakeTikTokPost {
                publish_id: p.publish_id.clone(),
                mode: p.mode,
                post_info: p.post_info.clone(),
                video_size: p.video_size,
                chunk_size: p.chunk_size,
                total_chunk_count: p.total_chunk_count,
                stored: p.stored,
                sha256: p.sha256.clone(),
                chunk_requests: p.chunk_requests,
                accepted_bytes: p.accepted_bytes,
                status: p.status.clone(),
                fail_reason: p.fail_reason.clone(),
            })
            .collect()
    }

    /// Access tokens issued, in order.
    #[must_use]
    pub fn issued_access_tokens(&self) -> Vec<String> {
        self.lock().issued_access.clone()
    }
}

impl State {
    fn issue(&mut self, scope: &str) -> (String, String) {
        let access = format!("act.{}", random(40));
        let refresh = format!("rft.{}", random(40));
        self.access.insert(access.clone(), Access { scope: scope.to_owned(), expired: false, revoked: false });
        self.refresh.insert(refresh.clone(), scope.to_owned());
        self.issued_access.push(access.clone());
        (access, refresh)
    }

    /// The token's scope, or the 401 to answer.
    fn authenticate(&self, head: &Head, needs: Option<&str>) -> Result<String, Response> {
        let token = head.header("authorization").and_then(|h| h.strip_prefix("Bearer ")).unwrap_or("");
        let Some(t) = self.access.get(token).filter(|t| !t.expired && !t.revoked) else {
            return Err(api_error(
                401,
                "access_token_invalid",
                "The access token is invalid or not found in the request.",
            ));
        };
        if let Some(scope) = needs
            && !t.scope.split(',').any(|s| s.trim() == scope)
        {
            return Err(api_error(
                401,
                "scope_not_authorized",
                &format!("The user did not authorize the scope {scope}."),
            ));
        }
        Ok(token.to_owned())
    }
}

struct TikTokApp {
    state: Arc<Mutex<State>>,
}

impl TikTokApp {
    fn lock(&self) -> MutexGuard<'_, State> {
        http::lock(&self.state)
    }
}

impl App for TikTokApp {
    fn plan(&self, head: &Head) -> Plan {
        let mut s = self.lock();
        match s.drop_after {
            Some(n) if head.method == "PUT" && head.path == UPLOAD_PATH => {
                s.drop_after = None;
                Plan::DropAfter(n)
            }
            _ => Plan::Whole,
        }
    }

    fn dropped(&self, head: &Head, _partial: Vec<u8>) {
        // A chunk is stored whole or not at all.
        let mut s = self.lock();
        if let Some(p) = head.query("upload_id").and_then(|id| s.posts.values_mut().find(|p| p.upload_token == id)) {
            p.chunk_requests += 1;
        }
    }

    fn handle(&self, head: &Head, body: Vec<u8>) -> Response {
        let mut s = self.lock();
        match (head.method.as_str(), head.path.as_str()) {
            ("GET", "/v2/auth/authorize/") => authorize(&mut s, head),
            ("POST", "/v2/oauth/token/") => token(&mut s, &body),
            ("POST", "/v2/oauth/revoke/") => revoke(&mut s, &body),
            ("GET", "/v2/user/info/") => match s.authenticate(head, Some("user.info.basic")) {
                Ok(_) => envelope(200, &json!({"user": {"open_id": s.open_id, "display_name": s.display_name}})),
                Err(r) => r,
            },
            ("POST", "/v2/post/publish/creator_info/query/") => creator_info(&s, head),
            ("POST", "/v2/post/publish/video/init/") => init(&mut s, head, &body, PostMode::Direct),
            ("POST", "/v2/post/publish/inbox/video/init/") => init(&mut s, head, &body, PostMode::Inbox),
            ("PUT", UPLOAD_PATH) => put_chunk(&mut s, head, &body),
            ("POST", "/v2/post/publish/status/fetch/") => status(&s, head, &body),
            _ => api_error(404, "not_found", "No such endpoint."),
        }
    }
}

fn authorize(s: &mut State, head: &Head) -> Response {
    let q = |k: &str| head.query(k).unwrap_or("").to_owned();
    if q("client_key") != s.client_key {
        return oauth_error(400, "invalid_client", "client_key is invalid");
    }
    if q("redirect_uri") != REDIRECT_URI {
        return oauth_error(400, "invalid_request", "redirect_uri is not registered");
    }
    if q("response_type") != "code" || q("code_challenge").is_empty() || q("code_challenge_method") != "S256" {
        return oauth_error(400, "invalid_request", "response_type=code and an S256 code_challenge are required");
    }
    let scope = q("scope");
    if !scope.split(',').any(|s| s == "user.info.basic") {
        return oauth_error(400, "invalid_scope", "user.info.basic is required");
    }
    let code = random(30);
    s.codes.insert(
        code.clone(),
        Code { redirect_uri: q("redirect_uri"), challenge: q("code_challenge"), scope: scope.clone(), used: false },
    );
    let mut to = Url::parse(&q("redirect_uri")).expect("a registered URI");
    to.query_pairs_mut().append_pair("code", &code).append_pair("scopes", &scope).append_pair("state", &q("state"));
    Response::new(302).header("Location", to.to_string())
}

fn token(s: &mut State, body: &[u8]) -> Response {
    let f = form(body);
    let get = |k: &str| f.get(k).map_or("", String::as_str);
    if get("client_key") != s.client_key || get("client_secret") != s.client_secret {
        return oauth_error(401, "invalid_client", "Client key or secret is invalid.");
    }
    let scope = match get("grant_type") {
        "authorization_code" => {
            let Some(code) = s.codes.get_mut(get("code")).filter(|c| !c.used) else {
                return oauth_error(400, "invalid_grant", "Authorization code is expired or invalid.");
            };
            code.used = true;
            if code.redirect_uri != get("redirect_uri") {
                return oauth_error(
                    400,
                    "invalid_request",
                    "Redirect_uri is not matched with the uri when requesting code.",
                );
            }
            if Pkce::challenge_for(get("code_verifier")) != code.challenge {
                return oauth_error(400, "invalid_request", "Code verifier or code challenge is invalid.");
            }
            code.scope.clone()
        }
        "refresh_token" => match s.refresh.remove(get("refresh_token")) {
            // Rotated: the old refresh token stops working now.
            Some(scope) => scope,
            // TikTok answers this one with a 200.
            None => return oauth_error(200, "invalid_grant", "Refresh token is invalid or expired."),
        },
        other => return oauth_error(400, "unsupported_grant_type", &format!("grant_type {other} is not supported")),
    };
    let (access, refresh) = s.issue(&scope);
    Response::json(
        200,
        &json!({"access_token": access, "expires_in": 86_400, "open_id": s.open_id, "refresh_token": refresh,
                "refresh_expires_in": 31_536_000, "scope": scope, "token_type": "Bearer"}),
    )
}

fn revoke(s: &mut State, body: &[u8]) -> Response {
    let f = form(body);
    if f.get("client_key").map(String::as_str) != Some(s.client_key.as_str()) {
        return oauth_error(401, "invalid_client", "Client key is invalid.");
    }
    match f.get("token").and_then(|t| s.access.get_mut(t)).filter(|t| !t.revoked) {
        Some(t) => {
            t.revoked = true;
            s.refresh.clear();
            Response::new(200)
        }
        None => oauth_error(400, "invalid_grant", "Access token is invalid or expired."),
    }
}

fn creator_info(s: &State, head: &Head) -> Response {
    if let Err(r) = s.authenticate(head, Some("video.publish")) {
        return r;
    }
    if s.posting_cap {
        // TikTok reports its spam caps here with a 200.
        return api_error(200, "spam_risk_too_many_posts", "The daily post cap from the API is reached for the user.");
    }
    envelope(
        200,
        &json!({
            "creator_avatar_url": "https://p16.example/avatar.jpeg",
            "creator_username": "fakecreator",
            "creator_nickname": s.display_name,
            "privacy_level_options": s.privacy_level_options,
            "comment_disabled": s.comment_disabled,
            "duet_disabled": s.duet_disabled,
            "stitch_disabled": s.stitch_disabled,
            "max_video_post_duration_sec": s.max_duration,
        }),
    )
}

/// TikTok's chunk rules for `source_info`.
fn check_chunks(size: u64, chunk: u64, count: u64) -> Result<(), &'static str> {
    if size == 0 || chunk == 0 || count == 0 || count > MAX_CHUNKS {
        return Err("The total chunk count is invalid");
    }
    if size < MIN_CHUNK {
        return if chunk == size && count == 1 { Ok(()) } else { Err("A video under 5 MB must be uploaded whole") };
    }
    if count != size / chunk {
        return Err("The total chunk count is invalid");
    }
    if count == 1 {
        // One chunk: the whole file, at most 64 MB (bigger files take several).
        return if chunk == size && size <= MAX_CHUNK { Ok(()) } else { Err("The chunk size is invalid") };
    }
    if !(MIN_CHUNK..=MAX_CHUNK).contains(&chunk) || size - (count - 1) * chunk > MAX_FINAL_CHUNK {
        return Err("The chunk size is invalid");
    }
    Ok(())
}

fn init(s: &mut State, head: &Head, body: &[u8], mode: PostMode) -> Response {
    let token = match s.authenticate(head, Some(mode.scope())) {
        Ok(t) => t,
        Err(r) => return r,
    };
    // 6 inits a minute per token.
    let now = Instant::now();
    let limit = s.init_limit;
    let window = s.inits.entry(token.clone()).or_default();
    while window.front().is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60)) {
        window.pop_front();
    }
    if window.len() >= limit {
        return api_error(429, "rate_limit_exceeded", "Your request is blocked due to exceeding the API rate limit.");
    }
    window.push_back(now);
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return api_error(400, "invalid_params", "The request body is not JSON.");
    };
    if s.posting_cap {
        return api_error(403, "spam_risk_too_many_posts", "The daily post cap from the API is reached for the user.");
    }
    let post_info = req.get("post_info").cloned().unwrap_or(Value::Null);
    if mode == PostMode::Direct {
        let privacy = post_info["privacy_level"].as_str().unwrap_or("");
        if s.unaudited && privacy != "SELF_ONLY" {
            return api_error(
                403,
                "unaudited_client_can_only_post_to_private_accounts",
                "Unaudited clients can only post to a private account.",
            );
        }
        if !s.privacy_level_options.iter().any(|o| o == privacy) {
            return api_error(
                403,
                "privacy_level_option_mismatch",
                "privacy_level is not among the creator's options.",
            );
        }
        if post_info["title"].as_str().is_some_and(|t| t.encode_utf16().count() > 2200) {
            return api_error(400, "invalid_params", "The title is too long.");
        }
    }
    let si = &req["source_info"];
    if si["source"] != "FILE_UPLOAD" {
        return api_error(400, "invalid_params", "source must be FILE_UPLOAD or PULL_FROM_URL");
    }
    let n = |k: &str| si[k].as_u64().unwrap_or(0);
    let (size, chunk, count) = (n("video_size"), n("chunk_size"), n("total_chunk_count"));
    if let Err(why) = check_chunks(size, chunk, count) {
        return api_error(400, "invalid_params", why);
    }
    s.seq += 1;
    let prefix = match mode {
        PostMode::Direct => "v_pub_file",
        PostMode::Inbox => "v_inbox_file",
    };
    let publish_id = format!("{prefix}~v2-1.{}", 7_000_000_000_000_000_000u64 + s.seq);
    let upload_token = random(24);
    s.posts.insert(
        publish_id.clone(),
        Post {
            seq: s.seq,
            publish_id: publish_id.clone(),
            upload_token: upload_token.clone(),
            mode,
            post_info,
            video_size: size,
            chunk_size: chunk,
            total_chunk_count: count,
            stored: 0,
            hasher: Sha256::new(),
            sha256: None,
            chunk_requests: 0,
            accepted_bytes: 0,
            status: "PROCESSING_UPLOAD".into(),
            fail_reason: None,
            expires: now + Duration::from_secs(3600),
        },
    );
    let upload_url = format!("{}{UPLOAD_PATH}?upload_id={upload_token}&upload_token={}", s.base, random(16));
    envelope(200, &json!({"publish_id": publish_id, "upload_url": upload_url}))
}

fn put_chunk(s: &mut State, head: &Head, body: &[u8]) -> Response {
    let fail = s.fail_chunks.pop_front();
    let Some(p) = head.query("upload_id").and_then(|id| s.posts.values_mut().find(|p| p.upload_token == id)) else {
        return Response::new(404);
    };
    p.chunk_requests += 1;
    if Instant::now() >= p.expires {
        return Response::new(403);
    }
    if let Some(status) = fail {
        return Response::new(status);
    }
    if !matches!(head.header("content-type"), Some("video/mp4" | "video/quicktime" | "video/webm")) {
        return Response::new(400);
    }
    let held = |p: &Post| {
        if p.stored == 0 {
            format!("bytes */{}", p.video_size)
        } else {
            format!("bytes 0-{}/{}", p.stored - 1, p.video_size)
        }
    };
    // The chunk that must come next, exactly.
    let i = p.stored / p.chunk_size.max(1);
    let first = p.stored;
    let last = if i + 1 >= p.total_chunk_count { p.video_size - 1 } else { first + p.chunk_size - 1 };
    let expected = format!("bytes {first}-{last}/{}", p.video_size);
    if p.stored >= p.video_size || head.header("content-range") != Some(expected.as_str()) {
        return Response::new(416).header("Content-Range", held(p));
    }
    if body.len() as u64 != last - first + 1 {
        return Response::new(400);
    }
    p.hasher.update(body);
    p.stored += body.len() as u64;
    p.accepted_bytes += body.len() as u64;
    if p.stored == p.video_size {
        p.sha256 = Some(hex::encode(p.hasher.clone().finalize()));
        Response::new(201).header("Content-Range", held(p))
    } else {
        Response::new(206).header("Content-Range", held(p))
    }
}

fn status(s: &State, head: &Head, body: &[u8]) -> Response {
    if let Err(r) = s.authenticate(head, None) {
        return r;
    }
    let id = serde_json::from_slice::<Value>(body).ok().and_then(|v| v["publish_id"].as_str().map(str::to_owned));
    let Some(p) = id.and_then(|id| s.posts.get(&id)) else {
        return api_error(400, "invalid_publish_id", "The publish_id does not exist.");
    };
    // The fake has one account: every valid token may read its posts.
    let public = p.post_info["privacy_level"] == "PUBLIC_TO_EVERYONE";
    let ids: Vec<u64> =
        if p.status == "PUBLISH_COMPLETE" && public { vec![7_300_000_000_000_000_000 + p.seq] } else { vec![] };
    let mut data = json!({"status": p.status, "uploaded_bytes": p.stored, "publicaly_available_post_id": ids});
    if let Some(r) = &p.fail_reason {
        data["fail_reason"] = r.clone().into();
    }
    envelope(200, &data)
}
