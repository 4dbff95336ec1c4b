//! The fake's endpoints: OAuth (authorize, token, revoke), the Data API
//! (channels, videos) and resumable uploads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use url::Url;

use super::http::{self, App, Head, Plan, Response};
use super::{AuthCode, Session, State, Video, random};
use crate::oauth::Pkce;
use crate::youtube::{CHUNK_GRANULARITY, SCOPE_READONLY, SCOPE_UPLOAD};

const GRANULE: u64 = CHUNK_GRANULARITY as u64;
const UPLOAD_PATH: &str = "/upload/youtube/v3/videos";

pub(super) struct Google {
    pub state: Arc<Mutex<State>>,
}

impl Google {
    fn lock(&self) -> MutexGuard<'_, State> {
        http::lock(&self.state)
    }
}

impl App for Google {
    fn plan(&self, head: &Head) -> Plan {
        let is_chunk =
            head.method == "PUT" && head.path == UPLOAD_PATH && head.header("content-length").is_some_and(|l| l != "0");
        let mut s = self.lock();
        match s.faults.drop_after {
            Some(n) if is_chunk => {
                s.faults.drop_after = None;
                Plan::DropAfter(n)
            }
            _ => Plan::Whole,
        }
    }

    fn handle(&self, head: &Head, body: Vec<u8>) -> Response {
        let mut s = self.lock();
        match (head.method.as_str(), head.path.as_str()) {
            ("GET", "/o/oauth2/v2/auth") => authorize(&mut s, head),
            ("POST", "/token") => token(&mut s, &body),
            ("POST", "/revoke") => revoke(&mut s, head, &body),
            ("GET", "/youtube/v3/channels") => channels(&mut s, head),
            ("GET", "/youtube/v3/videos") => videos(&mut s, head),
            ("POST", UPLOAD_PATH) => start_upload(&mut s, head, &body),
            ("PUT", UPLOAD_PATH) => put_upload(&mut s, head, &body),
            _ => google_error(404, "notFound", "global", "Not Found"),
        }
    }

    fn dropped(&self, head: &Head, partial: Vec<u8>) {
        let mut s = self.lock();
        let force_private = s.faults.force_private;
        let seq = s.next_seq();
        let Some(session) = session_of(&mut s, head) else { return };
        session.chunk_requests += 1;
        session.received_bytes += partial.len() as u64;
        let Ok(Some((start, end, total))) = content_range(head) else { return };
        let declared = end + 1 - start;
        if start != session.stored || total != session.total || session.video_id.is_some() {
            return;
        }
        // What a real server commits of an interrupted request: whole 256 KiB
        // blocks, or everything if the request carried the end of the file.
        let got = partial.len() as u64;
        let keep = if got == declared && end + 1 == total { got } else { got / GRANULE * GRANULE };
        let keep_bytes = &partial[..usize::try_from(keep).unwrap_or(partial.len())];
        commit(session, keep_bytes);
        if session.stored == session.total {
            let video = finish(session, force_private, seq);
            s.videos.insert(video.id.clone(), video);
        }
    }
}

// --- errors in Google's shapes ---

fn google_error(status: u16, reason: &str, domain: &str, message: &str) -> Response {
    let status_name = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        503 => "UNAVAILABLE",
        _ => "UNKNOWN",
    };
    Response::json(
        status,
        &json!({ "error": {
            "code": status,
            "message": message,
            "errors": [ { "message": message, "domain": domain, "reason": reason } ],
            "status": status_name,
        } }),
    )
}

fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    Response::json(status, &json!({ "error": error, "error_description": description }))
}

fn unauthorized() -> Response {
    let message = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";
    let r = Response::json(
        401,
        &json!({ "error": {
            "code": 401,
            "message": message,
            "errors": [ { "message": "Invalid Credentials", "domain": "global", "reason": "authError",
                          "location": "Authorization", "locationType": "header" } ],
            "status": "UNAUTHENTICATED",
        } }),
    );
    r.header("WWW-Authenticate", "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"")
}

fn quota_exceeded() -> Response {
    google_error(
        403,
        "quotaExceeded",
        "youtube.quota",
        "The request cannot be completed because you have exceeded your <a href=\"/youtube/v3/getting-started#quota\">quota</a>.",
    )
}

fn bad_request(reason: &str, message: &str) -> Response {
    google_error(400, reason, "youtube.video", message)
}

/// Checks the Bearer token and its scopes (`any` of them suffices).
fn authenticate(s: &State, head: &Head, any: &[&str]) -> Result<(), Response> {
    let token = head.header("authorization").and_then(|h| h.strip_prefix("Bearer ")).ok_or_else(unauthorized)?;
    let t = s.access.get(token).filter(|t| !t.expired && !t.revoked).ok_or_else(unauthorized)?;
    if !any.iter().any(|needed| t.scope.split(' ').any(|granted| granted == *needed)) {
        return Err(google_error(
            403,
            "insufficientPermissions",
            "global",
            "Request had insufficient authentication scopes.",
        ));
    }
    Ok(())
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

// --- OAuth ---

fn authorize(s: &mut State, head: &Head) -> Response {
    let q = |k: &str| head.query(k).unwrap_or("");
    if q("client_id") != s.client_id {
        return oauth_error(401, "invalid_client", "The OAuth client was not found.");
    }
    if !s.redirect_uris.iter().any(|u| u == q("redirect_uri")) {
        return oauth_error(400, "redirect_uri_mismatch", "The redirect URI is not registered for the client.");
    }
    if q("response_type") != "code" {
        return oauth_error(400, "unsupported_response_type", "response_type must be code.");
    }
    let scope = q("scope");
    let known = [SCOPE_UPLOAD, SCOPE_READONLY, "https://www.googleapis.com/auth/youtube"];
    if scope.is_empty() || !scope.split(' ').all(|sc| known.contains(&sc)) {
        return oauth_error(400, "invalid_scope", "Some requested scopes are invalid.");
    }
    let challenge = q("code_challenge");
    if q("code_challenge_method") != "S256" || !(43..=128).contains(&challenge.len()) {
        return oauth_error(400, "invalid_request", "PKCE with code_challenge_method=S256 is required.");
    }
    let code = format!("4/fake-{}", random(30));
    s.codes.insert(
        code.clone(),
        AuthCode {
            client_id: s.client_id.clone(),
            redirect_uri: q("redirect_uri").to_owned(),
            challenge: challenge.to_owned(),
            scope: scope.to_owned(),
            used: false,
        },
    );
    let mut to = Url::parse(q("redirect_uri")).expect("registered URIs are valid");
    to.query_pairs_mut().append_pair("code", &code).append_pair("scope", scope);
    if let Some(state) = head.query("state") {
        to.query_pairs_mut().append_pair("state", state);
    }
    Response::new(302).header("Location", to.as_str())
}

fn token(s: &mut State, body: &[u8]) -> Response {
    let f = form(body);
    let get = |k: &str| f.get(k).map_or("", String::as_str);
    if get("client_id") != s.client_id || get("client_secret") != s.client_secret {
        return oauth_error(401, "invalid_client", "Unauthorized");
    }
    match get("grant_type") {
        "authorization_code" => {
            let Some(code) = s.codes.get_mut(get("code")) else {
                return oauth_error(400, "invalid_grant", "Malformed auth code.");
            };
            if code.used {
                return oauth_error(400, "invalid_grant", "Bad Request");
            }
            if code.redirect_uri != get("redirect_uri") || code.client_id != get("client_id") {
                return oauth_error(400, "redirect_uri_mismatch", "Bad Request");
            }
            // One attempt per code, as at Google: a wrong verifier burns it.
            code.used = true;
            if Pkce::challenge_for(get("code_verifier")) != code.challenge {
                return oauth_error(400, "invalid_grant", "Invalid code verifier.");
            }
            let scope = code.scope.clone();
            let refresh = s.issue_refresh(&scope);
            let access = s.issue_access(&scope, Some(&refresh));
            Response::json(
                200,
                &json!({ "access_token": access, "expires_in": 3599, "refresh_token": refresh,
                         "scope": scope, "token_type": "Bearer" }),
            )
        }
        "refresh_token" => {
            let Some(scope) = s.refresh.get(get("refresh_token")).filter(|t| !t.revoked).map(|t| t.scope.clone())
            else {
                return oauth_error(400, "invalid_grant", "Token has been expired or revoked.");
            };
            let access = s.issue_access(&scope, Some(get("refresh_token")));
            Response::json(
                200,
                &json!({ "access_token": access, "expires_in": 3599, "scope": scope, "token_type": "Bearer" }),
            )
        }
        _ => oauth_error(400, "unsupported_grant_type", "Invalid grant_type."),
    }
}

fn revoke(s: &mut State, head: &Head, body: &[u8]) -> Response {
    let f = form(body);
    let Some(token) = f.get("token").map(String::as_str).or_else(|| head.query("token")).map(str::to_owned) else {
        return oauth_error(400, "invalid_request", "Missing required parameter: token");
    };
    if let Some(t) = s.refresh.get_mut(&token).filter(|t| !t.revoked) {
        t.revoked = true;
        for a in s.access.values_mut().filter(|a| a.refresh.as_deref() == Some(token.as_str())) {
            a.revoked = true;
        }
    } else if let Some(t) = s.access.get_mut(&token).filter(|t| !t.revoked) {
        t.revoked = true;
    } else {
        return oauth_error(400, "invalid_token", "Token expired or revoked");
    }
    s.issued.revoked.push(token);
    Response::json(200, &json!({}))
}

// --- Data API ---

fn channels(s: &mut State, head: &Head) -> Response {
    if let Err(r) = authenticate(s, head, &[SCOPE_READONLY, "https://www.googleapis.com/auth/youtube"]) {
        return r;
    }
    if s.faults.quota {
        return quota_exceeded();
    }
    if head.query("part").is_none() {
        return google_error(400, "required", "global", "Required parameter: part");
    }
    if head.query("mine") != Some("true") {
        return google_error(400, "missingRequiredParameter", "youtube.parameter", "No filter selected.");
    }
    Response::json(
        200,
        &json!({ "kind": "youtube#channelListResponse", "pageInfo": { "totalResults": 1, "resultsPerPage": 5 },
                 "items": [ { "kind": "youtube#channel", "id": s.channel_id,
                              "snippet": { "title": s.channel_title, "description": "" } } ] }),
    )
}

fn videos(s: &mut State, head: &Head) -> Response {
    if let Err(r) = authenticate(s, head, &[SCOPE_READONLY, "https://www.googleapis.com/auth/youtube"]) {
        return r;
    }
    if s.faults.quota {
        return quota_exceeded();
    }
    let Some(part) = head.query("part") else {
        return google_error(400, "required", "global", "Required parameter: part");
    };
    let parts: Vec<&str> = part.split(',').collect();
    let items: Vec<Value> = head
        .query("id")
        .unwrap_or("")
        .split(',')
        .filter_map(|id| s.videos.get(id))
        .map(|v| {
            let mut item = json!({ "kind": "youtube#video", "id": v.id });
            if parts.contains(&"status") {
                item["status"] = video_status_json(v);
            }
            if parts.contains(&"processingDetails") {
                item["processingDetails"] = json!({ "processingStatus": v.processing_status });
            }
            if parts.contains(&"snippet") {
                item["snippet"] = v.metadata["snippet"].clone();
            }
            item
        })
        .collect();
    Response::json(200, &json!({ "kind": "youtube#videoListResponse", "items": items }))
}

fn video_status_json(v: &Video) -> Value {
    let mut status = json!({
        "uploadStatus": v.upload_status,
        "privacyStatus": v.privacy_status,
        "license": "youtube",
        "embeddable": true,
        "publicStatsViewable": true,
        "selfDeclaredMadeForKids": v.metadata["status"]["selfDeclaredMadeForKids"].as_bool().unwrap_or(false),
    });
    if let Some(at) = &v.publish_at {
        status["publishAt"] = at.clone().into();
    }
    status
}

fn video_json(v: &Video, channel_id: &str) -> Value {
    let mut snippet = v.metadata["snippet"].clone();
    if snippet.is_object() {
        snippet["channelId"] = channel_id.into();
        snippet["publishedAt"] = v.published_at.clone().into();
    }
    json!({ "kind": "youtube#video", "etag": "fake", "id": v.id, "snippet": snippet, "status": video_status_json(v) })
}

// --- resumable uploads ---

fn start_upload(s: &mut State, head: &Head, body: &[u8]) -> Response {
    if let Err(r) = authenticate(s, head, &[SCOPE_UPLOAD, "https://www.googleapis.com/auth/youtube"]) {
        return r;
    }
    if s.faults.quota {
        return quota_exceeded();
    }
    if head.query("uploadType") != Some("resumable") {
        return google_error(400, "invalidParameter", "global", "This fake only supports uploadType=resumable.");
    }
    if head.query("part").is_none_or(|p| !p.split(',').any(|x| x == "snippet")) {
        return google_error(400, "required", "global", "Required parameter: part");
    }
    let Some(total) = head.header("x-upload-content-length").and_then(|l| l.parse::<u64>().ok()).filter(|l| *l > 0)
    else {
        return bad_request("badContent", "X-Upload-Content-Length is missing or invalid.");
    };
    let content_type = head.header("x-upload-content-type").unwrap_or("").to_owned();
    if !(content_type.starts_with("video/") || content_type == "application/octet-stream") {
        return bad_request("invalidContentType", "The media content type is not a video type.");
    }
    let Ok(metadata) = serde_json::from_slice::<Value>(body) else {
        return google_error(400, "parseError", "global", "Parse Error");
    };
    if let Err(r) = check_metadata(&metadata) {
        return r;
    }
    let id = random(32);
    let uri = format!("{}{UPLOAD_PATH}?uploadType=resumable&upload_id={id}", s.base);
    let seq = s.next_seq();
    s.sessions.insert(
        id.clone(),
        Session {
            seq,
            uri: uri.clone(),
            total,
            content_type,
            metadata,
            hasher: Sha256::new(),
            stored: 0,
            accepted_bytes: 0,
            received_bytes: 0,
            chunk_requests: 0,
            status_queries: 0,
            video_id: None,
            expired: false,
        },
    );
    Response::new(200).header("Location", uri).header("X-GUploader-UploadID", id)
}

fn check_metadata(m: &Value) -> Result<(), Response> {
    let title = m["snippet"]["title"].as_str().unwrap_or("");
    if title.trim().is_empty() || title.chars().count() > 100 || title.contains(['<', '>']) {
        return Err(bad_request("invalidTitle", "The request metadata specifies an invalid video title."));
    }
    let description = m["snippet"]["description"].as_str().unwrap_or("");
    if description.len() > 5000 || description.contains(['<', '>']) {
        return Err(bad_request("invalidDescription", "The request metadata specifies an invalid video description."));
    }
    let tags: Vec<String> = m["snippet"]["tags"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    if crate::youtube::tags_length(&tags) > 500 {
        return Err(bad_request("invalidTags", "The request metadata specifies invalid video keywords."));
    }
    let privacy = m["status"]["privacyStatus"].as_str().unwrap_or("public");
    if !["public", "unlisted", "private"].contains(&privacy) {
        return Err(bad_request("invalidPrivacyStatus", "The request metadata specifies an invalid privacy status."));
    }
    if let Some(at) = m["status"].get("publishAt") {
        let time = at.as_str().and_then(|a| OffsetDateTime::parse(a, &Rfc3339).ok());
        let valid = privacy == "private" && time.is_some_and(|t| t > OffsetDateTime::now_utc());
        if !valid {
            return Err(bad_request(
                "invalidPublishAt",
                "The request metadata specifies an invalid scheduled publishing time.",
            ));
        }
    }
    Ok(())
}

fn session_of<'a>(s: &'a mut State, head: &Head) -> Option<&'a mut Session> {
    s.sessions.get_mut(head.query("upload_id")?).filter(|x| !x.expired)
}

/// `bytes a-b/T` → `Some((a, b, T))`; `bytes */T` → `None` with `T` checked by the caller.
fn content_range(head: &Head) -> Result<Option<(u64, u64, u64)>, ()> {
    let v = head.header("content-range").ok_or(())?.strip_prefix("bytes ").ok_or(())?;
    let (range, total) = v.split_once('/').ok_or(())?;
    let total: u64 = total.parse().map_err(|_| ())?;
    if range == "*" {
        return Ok(None);
    }
    let (a, b) = range.split_once('-').ok_or(())?;
    let (a, b): (u64, u64) = (a.parse().map_err(|_| ())?, b.parse().map_err(|_| ())?);
    if b < a {
        return Err(());
    }
    Ok(Some((a, b, total)))
}

fn status_total(head: &Head) -> Option<u64> {
    head.header("content-range")?.strip_prefix("bytes */")?.parse().ok()
}

fn commit(session: &mut Session, bytes: &[u8]) {
    session.hasher.update(bytes);
    session.stored += bytes.len() as u64;
    session.accepted_bytes += bytes.len() as u64;
}

fn finish(session: &mut Session, force_private: bool, seq: u64) -> Video {
    let id = random(11);
    session.video_id = Some(id.clone());
    let requested = session.metadata["status"]["privacyStatus"].as_str().unwrap_or("public");
    let privacy_status = if force_private { "private" } else { requested }.to_owned();
    Video {
        seq,
        id,
        sha256: hex::encode(session.hasher.clone().finalize()),
        len: session.stored,
        metadata: session.metadata.clone(),
        privacy_status,
        upload_status: "uploaded".to_owned(),
        processing_status: "processing".to_owned(),
        publish_at: session.metadata["status"]["publishAt"].as_str().map(str::to_owned),
        published_at: OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
    }
}

fn incomplete(stored: u64) -> Response {
    let r = Response::new(308).header("X-GUploader-UploadID", "fake");
    if stored == 0 { r } else { r.header("Range", format!("bytes=0-{}", stored - 1)) }
}

fn put_upload(s: &mut State, head: &Head, body: &[u8]) -> Response {
    if let Err(r) = authenticate(s, head, &[SCOPE_UPLOAD, "https://www.googleapis.com/auth/youtube"]) {
        return r;
    }
    let force_private = s.faults.force_private;
    let fail = if body.is_empty() { None } else { s.faults.fail_next_chunk.pop_front() };
    let seq = s.next_seq();
    let channel_id = s.channel_id.clone();
    let Some(session) = session_of(s, head) else {
        return google_error(404, "notFound", "global", "The upload session was not found or has expired.");
    };
    let done = |s: &State, id: &str| Response::json(200, &video_json(&s.videos[id], &channel_id));

    let range = match content_range(head) {
        Ok(r) => r,
        Err(()) => return bad_request("badContent", "Content-Range is missing or malformed."),
    };
    let Some((start, end, total)) = range else {
        // A status query: `bytes */TOTAL`, empty body.
        session.status_queries += 1;
        if status_total(head) != Some(session.total) || !body.is_empty() {
            return bad_request("badContent", "A status query is an empty PUT with Content-Range: bytes */TOTAL.");
        }
        let (stored, video) = (session.stored, session.video_id.clone());
        return match video {
            Some(id) => done(s, &id),
            None => incomplete(stored),
        };
    };
    session.chunk_requests += 1;
    session.received_bytes += body.len() as u64;
    if let Some(id) = session.video_id.clone() {
        return done(s, &id);
    }
    if let Some(status) = fail {
        return google_error(status, "backendError", "global", "Backend Error");
    }
    if total != session.total {
        return bad_request("badContent", &format!("Content-Range total {total} differs from {}.", session.total));
    }
    if start != session.stored {
        return bad_request(
            "badContent",
            &format!("Content-Range starts at {start}; the next expected byte is {}.", session.stored),
        );
    }
    let len = end + 1 - start;
    if len != body.len() as u64 || end >= total {
        return bad_request("badContent", "Content-Range does not match the body.");
    }
    if end + 1 < total && !len.is_multiple_of(GRANULE) {
        return bad_request("badContent", "A chunk other than the last must be a multiple of 262144 bytes.");
    }
    commit(session, body);
    if session.stored < session.total {
        return incomplete(session.stored);
    }
    let video = finish(session, force_private, seq);
    let id = video.id.clone();
    s.videos.insert(id.clone(), video);
    let mut r = done(s, &id);
    r.status = 200;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_forms() {
        let head = |v: &str| Head {
            method: "PUT".into(),
            path: UPLOAD_PATH.into(),
            query: HashMap::new(),
            headers: [("content-range".to_owned(), v.to_owned())].into(),
        };
        assert_eq!(content_range(&head("bytes 0-9/10")), Ok(Some((0, 9, 10))));
        assert_eq!(content_range(&head("bytes */10")), Ok(None));
        assert_eq!(status_total(&head("bytes */10")), Some(10));
        assert!(content_range(&head("bytes 9-0/10")).is_err());
        assert!(content_range(&head("0-9/10")).is_err());
    }
}
