//! YouTube's resumable upload protocol
//! (<https://developers.google.com/youtube/v3/guides/using_resumable_upload_protocol>).
//!
//! 1. `POST …/upload/youtube/v3/videos?uploadType=resumable` with the
//!    metadata; the session URI comes back in `Location`.
//! 2. `PUT` the bytes to the session URI in chunks (multiples of 256 KiB
//!    except the last) with `Content-Range: bytes a-b/TOTAL`. `308 Resume
//!    Incomplete` with `Range: bytes=0-N` says what the server has (no
//!    `Range`: nothing); `200`/`201` with the video resource ends it.
//! 3. After an interruption, an empty `PUT` with `Content-Range: bytes
//!    */TOTAL` asks the same question, and the upload goes on from there.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderMap, LOCATION, RANGE};
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::sync::Mutex;
use videdit_core::secret::Secret;

use super::api_error::api_error;
use super::{Privacy, VideoMeta, YouTube, bearer, join, metadata_violations, parse_json};
use crate::PublishError;
use crate::source::ByteSource;
use crate::wire::{Reader, chunk_body};

/// A resumable upload session. Store `uri` with the job: a retried job
/// passes it to [`YouTube::resume`]. Google keeps a session about a week.
#[derive(Clone, PartialEq, Eq)]
pub struct UploadSession {
    /// The session URI from `Location`. It authorises the upload by itself,
    /// so treat it as a secret: `Debug` hides its query.
    pub uri: String,
}

impl fmt::Debug for UploadSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.uri.split_once('?').map_or(self.uri.as_str(), |(path, _)| path);
        f.debug_struct("UploadSession").field("uri", &format_args!("{shown}?[redacted]")).finish()
    }
}

/// A finished upload, as YouTube answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedVideo {
    /// The video id.
    pub id: String,
    /// `https://youtube.com/shorts/{id}`.
    pub url: String,
    /// `status.privacyStatus` as YouTube answered. Videos uploaded through
    /// an unverified API project are forced to `private` whatever was
    /// asked: compare with what was sent (see [`UploadedVideo::privacy`]).
    pub privacy_status: String,
    /// `status.uploadStatus`, usually `uploaded` (processing follows; see
    /// [`YouTube::video_status`]).
    pub upload_status: String,
    /// `status.publishAt` of a scheduled video.
    pub publish_at: Option<OffsetDateTime>,
}

impl UploadedVideo {
    /// `privacy_status` parsed.
    #[must_use]
    pub fn privacy(&self) -> Option<Privacy> {
        Privacy::parse(&self.privacy_status)
    }
}

/// What the server holds of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadProgress {
    /// The first `received` bytes are stored.
    Incomplete {
        /// Bytes stored, from the start.
        received: u64,
    },
    /// Every byte is stored and the video exists.
    Complete(UploadedVideo),
}

impl YouTube {
    /// Starts a resumable upload of `len` bytes of `content_type` with this
    /// metadata. See [`VideoMeta::publish_at`] for how scheduling is sent.
    ///
    /// # Errors
    /// `platform_rule_title` / `_description` / `_tags` (nothing sent),
    /// `invalid_request` for a private video with a publication time,
    /// `platform_quota_exceeded`, `platform_unauthorized`, and the other
    /// mapped API errors.
    #[tracing::instrument(skip_all, fields(len))]
    pub async fn start_upload(
        &self,
        access_token: &Secret<String>,
        meta: &VideoMeta,
        len: u64,
        content_type: &str,
    ) -> Result<UploadSession, PublishError> {
        if let Some(e) = metadata_violations(&meta.title, &meta.description, &meta.tags).into_iter().next() {
            return Err(e);
        }
        let body = metadata_json(meta)?;
        let url = join(
            &self.cfg.upload_base,
            "/upload/youtube/v3/videos",
            &[("uploadType", "resumable"), ("part", "snippet,status")],
        );
        let req = self
            .http
            .post(url)
            .header(AUTHORIZATION, bearer(access_token))
            .header(CONTENT_TYPE, "application/json; charset=UTF-8")
            .header("X-Upload-Content-Length", len)
            .header("X-Upload-Content-Type", content_type)
            .body(body.to_string());
        let (status, headers, body) = self.send(req, "start upload").await?;
        if !status.is_success() {
            return Err(api_error(status.as_u16(), &headers, &body, OffsetDateTime::now_utc()));
        }
        let uri = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| PublishError::InvalidResponse { message: "no Location in the upload answer".to_owned() })?;
        Ok(UploadSession { uri: uri.to_owned() })
    }

    /// Uploads every byte of `source` into a fresh session, in chunks of
    /// `chunk_size`, streaming (one chunk is never held in memory either).
    ///
    /// After a dropped connection, a timeout or a 5xx it asks the server
    /// what it has and goes on from there, with jittered exponential
    /// backoff, up to `retry.max_retries` failures in a row without
    /// progress. `progress(sent, total)` is called with the bytes the server
    /// confirmed, and last with `(total, total)`.
    ///
    /// # Errors
    /// `upload_session_expired` (start a new session), `platform_unauthorized`
    /// (refresh, then [`YouTube::resume`]), `platform_unavailable` once the
    /// retries are spent, `source_unavailable` when reading fails, and the
    /// mapped API errors.
    #[tracing::instrument(skip_all, fields(len = source.len()))]
    pub async fn upload(
        &self,
        access_token: &Secret<String>,
        session: &UploadSession,
        source: &dyn ByteSource,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<UploadedVideo, PublishError> {
        self.drive(access_token, session, source, progress, Some(0)).await
    }

    /// Like [`YouTube::upload`], for a session that may already hold bytes
    /// (a retried job, another process): it asks the server first.
    ///
    /// # Errors
    /// As [`YouTube::upload`].
    #[tracing::instrument(skip_all, fields(len = source.len()))]
    pub async fn resume(
        &self,
        access_token: &Secret<String>,
        session: &UploadSession,
        source: &dyn ByteSource,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<UploadedVideo, PublishError> {
        self.drive(access_token, session, source, progress, None).await
    }

    /// Asks the server what it holds of a session of `total` bytes.
    ///
    /// # Errors
    /// `upload_session_expired`, `platform_unavailable`, and the mapped API errors.
    pub async fn upload_progress(
        &self,
        access_token: &Secret<String>,
        session: &UploadSession,
        total: u64,
    ) -> Result<UploadProgress, PublishError> {
        let req = self
            .http
            .put(&session.uri)
            .header(AUTHORIZATION, bearer(access_token))
            .header(CONTENT_LENGTH, 0)
            .header(CONTENT_RANGE, format!("bytes */{total}"));
        let (status, headers, body) = self.send(req, "upload status").await?;
        upload_answer(status, &headers, &body)
    }

    /// The upload loop. `known` is the offset the server is known to hold
    /// (`None`: ask first).
    async fn drive(
        &self,
        access_token: &Secret<String>,
        session: &UploadSession,
        source: &dyn ByteSource,
        progress: &(dyn Fn(u64, u64) + Sync),
        mut known: Option<u64>,
    ) -> Result<UploadedVideo, PublishError> {
        let total = source.len();
        if total == 0 {
            return Err(PublishError::InvalidRequest { message: "the video has no bytes".to_owned() });
        }
        let reader = Arc::new(Mutex::new(Reader::default()));
        let mut confirmed = 0;
        let mut failures = 0;
        loop {
            let sent_chunk = matches!(known, Some(offset) if offset < total);
            let answer = match known {
                Some(offset) if offset < total => {
                    self.put_chunk(access_token, session, source, &reader, offset, total).await
                }
                _ => self.upload_progress(access_token, session, total).await,
            };
            match answer {
                Ok(UploadProgress::Complete(video)) => {
                    progress(total, total);
                    tracing::info!(video_id = %video.id, privacy = %video.privacy_status, "upload complete");
                    return Ok(video);
                }
                Ok(UploadProgress::Incomplete { received }) => {
                    if received > total {
                        return Err(PublishError::InvalidResponse {
                            message: format!("the server holds {received} of {total} bytes"),
                        });
                    }
                    if received > confirmed {
                        confirmed = received;
                        failures = 0;
                        progress(received, total);
                    } else if sent_chunk {
                        // A chunk answered 308 without storing anything new.
                        failures += 1;
                        if failures > self.cfg.retry.max_retries {
                            return Err(PublishError::Unavailable {
                                message: format!("the server stores no bytes past {received}"),
                                source: None,
                            });
                        }
                        tokio::time::sleep(self.cfg.retry.backoff(failures)).await;
                    }
                    known = Some(received);
                }
                Err(e) if e.is_transient() => {
                    failures += 1;
                    if failures > self.cfg.retry.max_retries {
                        return Err(e);
                    }
                    tracing::info!(attempt = failures, error = %e, "upload interrupted; asking the server what it has");
                    tokio::time::sleep(self.cfg.retry.backoff(failures)).await;
                    known = None;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn put_chunk(
        &self,
        access_token: &Secret<String>,
        session: &UploadSession,
        source: &dyn ByteSource,
        reader: &Arc<Mutex<Reader>>,
        start: u64,
        total: u64,
    ) -> Result<UploadProgress, PublishError> {
        let end = (start + self.cfg.chunk_size as u64).min(total);
        let len = end - start;
        reader.lock().await.seek(source, start).await.map_err(|source| PublishError::Source { source })?;
        // The per-request deadline, plus the time the chunk takes at the slowest rate we accept.
        #[allow(clippy::cast_precision_loss)]
        let timeout = self.cfg.timeout + Duration::from_secs_f64(len as f64 / self.cfg.min_upload_rate as f64);
        let req = self
            .http
            .put(&session.uri)
            .header(AUTHORIZATION, bearer(access_token))
            .header(CONTENT_LENGTH, len)
            .header(CONTENT_RANGE, format!("bytes {start}-{}/{total}", end - 1))
            .body(reqwest::Body::wrap_stream(chunk_body(reader.clone(), len)));
        tracing::debug!(start, end, total, "sending chunk");
        let answer = self.send_with_timeout(req, timeout, "upload chunk").await;
        if let Some(source) = reader.lock().await.failure.take() {
            return Err(PublishError::Source { source });
        }
        let (status, headers, body) = answer?;
        upload_answer(status, &headers, &body)
    }
}

/// The JSON body of `videos.insert`.
fn metadata_json(meta: &VideoMeta) -> Result<serde_json::Value, PublishError> {
    let mut status = serde_json::json!({
        "privacyStatus": meta.privacy.as_str(),
        "selfDeclaredMadeForKids": meta.made_for_kids,
    });
    if let Some(at) = meta.publish_at {
        if meta.privacy == Privacy::Private {
            return Err(PublishError::InvalidRequest {
                message: "a private video cannot have a publication time: it would never be published".to_owned(),
            });
        }
        let at = at
            .to_offset(time::UtcOffset::UTC)
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| PublishError::InvalidRequest { message: format!("publish_at: {e}") })?;
        // YouTube takes publishAt only on a private video, and publishes it (public) then.
        status["privacyStatus"] = Privacy::Private.as_str().into();
        status["publishAt"] = at.into();
    }
    Ok(serde_json::json!({
        "snippet": {
            "title": meta.title,
            "description": meta.description,
            "tags": meta.tags,
            "categoryId": meta.category_id,
        },
        "status": status,
    }))
}

/// An answer to a chunk or a status query.
fn upload_answer(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Result<UploadProgress, PublishError> {
    match status.as_u16() {
        200 | 201 => Ok(UploadProgress::Complete(parse_video(body)?)),
        308 => Ok(UploadProgress::Incomplete { received: received_bytes(headers)? }),
        404 | 410 => Err(PublishError::UploadSessionExpired {
            message: format!("the upload session answered {status}; start a new one"),
        }),
        other => Err(api_error(other, headers, body, OffsetDateTime::now_utc())),
    }
}

/// The bytes a 308 says are stored: `Range: bytes=0-N` is N+1; no `Range` is none.
fn received_bytes(headers: &HeaderMap) -> Result<u64, PublishError> {
    let Some(value) = headers.get(RANGE) else { return Ok(0) };
    let bad = || PublishError::InvalidResponse { message: format!("unexpected Range {value:?}") };
    let last = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().strip_prefix("bytes=0-"))
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(bad)?;
    Ok(last + 1)
}

fn parse_video(body: &[u8]) -> Result<UploadedVideo, PublishError> {
    #[derive(Deserialize)]
    struct Video {
        id: String,
        status: Status,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Status {
        #[serde(default)]
        upload_status: String,
        #[serde(default)]
        privacy_status: String,
        #[serde(default, with = "time::serde::rfc3339::option")]
        publish_at: Option<OffsetDateTime>,
    }
    let v: Video = parse_json(body, "video resource")?;
    Ok(UploadedVideo {
        url: format!("https://youtube.com/shorts/{}", v.id),
        id: v.id,
        privacy_status: v.status.privacy_status,
        upload_status: v.status.upload_status,
        publish_at: v.status.publish_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn range_header() {
        let mut h = HeaderMap::new();
        assert_eq!(received_bytes(&h).unwrap(), 0);
        h.insert(RANGE, HeaderValue::from_static("bytes=0-262143"));
        assert_eq!(received_bytes(&h).unwrap(), 262_144);
        h.insert(RANGE, HeaderValue::from_static("bytes=5-9"));
        assert_eq!(received_bytes(&h).unwrap_err().code(), "platform_invalid_response");
    }

    #[test]
    fn scheduled_posts_are_sent_private_with_publish_at() {
        let meta = VideoMeta {
            title: "t".into(),
            description: String::new(),
            tags: vec!["a".into()],
            privacy: Privacy::Public,
            publish_at: Some(time::macros::datetime!(2030-01-02 03:04:05 +1)),
            category_id: "22".into(),
            made_for_kids: false,
        };
        let json = metadata_json(&meta).unwrap();
        assert_eq!(json["status"]["privacyStatus"], "private");
        assert_eq!(json["status"]["publishAt"], "2030-01-02T02:04:05Z");
        assert_eq!(json["snippet"]["categoryId"], "22");
        let unscheduled = metadata_json(&VideoMeta { publish_at: None, ..meta.clone() }).unwrap();
        assert_eq!(unscheduled["status"]["privacyStatus"], "public");
        assert!(unscheduled["status"].get("publishAt").is_none());
        let private = VideoMeta { privacy: Privacy::Private, ..meta };
        assert_eq!(metadata_json(&private).unwrap_err().code(), "invalid_request");
    }

    #[test]
    fn session_debug_hides_the_upload_id() {
        let s = UploadSession { uri: "https://www.googleapis.com/upload/youtube/v3/videos?upload_id=SECRET".into() };
        let shown = format!("{s:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("/upload/youtube/v3/videos"));
    }
}
