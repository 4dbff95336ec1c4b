//! Instagram's part of a publish job: the Reels rules checked on the MP4
//! itself (its first bytes from storage), a Reels container fed from a
//! presigned URL of the short (Meta fetches it, so the storage must be
//! reachable from the internet) or, with [`InstagramSource::Resumable`],
//! from a resumable upload to Meta's upload host; the container polled
//! with backoff; the publishing limit read before `media_publish`, a post
//! past it waiting for the rolling window (not failing); and a publish
//! whose answer was lost found again rather than posted twice.

use std::sync::atomic::{AtomicU64, Ordering};

use time::OffsetDateTime;
use videdit_core::ErrorCode;
use videdit_core::storage::{ByteRange, PresignGet};
use videdit_publish::instagram::{
    Container, MAX_CAPTION_CHARS, MAX_HASHTAGS, MAX_REEL_SECS, MIN_REEL_SECS, ReelFacts, ReelPost, ReelSource,
    check_reel,
};
use videdit_publish::mp4::{PROBE_BYTES, probe};
use videdit_publish::{ByteSource, PublishError};
use videdit_queue::Outcome;

use super::{
    Change, Failure, NewPublication, Publication, Run, StorageSource, Upload, caption, poll_after, processing_timeout,
    reporting,
};
use crate::error::{Error, Result};

/// How Meta gets a short's bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InstagramSource {
    /// A presigned GET of the short that Meta fetches (the storage must be
    /// reachable from the internet).
    #[default]
    Url,
    /// A resumable upload from the worker to Meta's upload host (for
    /// private storage; Meta documents it for apps with Facebook Login for
    /// Business).
    Resumable,
}

impl InstagramSource {
    /// `url` or `resumable`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "url" => Some(Self::Url),
            "resumable" => Some(Self::Resumable),
            _ => None,
        }
    }
}

/// How long Meta may take to start fetching a presigned URL.
const FETCH_URL_TTL: std::time::Duration = std::time::Duration::from_secs(6 * 3600);
/// How long a post past the publishing limit waits before it looks again
/// (the window rolls: a slot frees as the oldest post of the day ages out).
const LIMIT_RETRY: time::Duration = time::Duration::hours(1);

pub(super) fn check_new(new: &NewPublication, title: &str, duration: f64) -> Result<()> {
    let text = caption(title, &new.description, &new.tags);
    let chars = text.chars().count();
    let hashtags = text.split_whitespace().filter(|w| w.starts_with('#')).count();
    if chars > MAX_CAPTION_CHARS || hashtags > MAX_HASHTAGS {
        return Err(Error::new(
            ErrorCode::PlatformRuleTitle,
            format!(
                "the caption (title, description and tags) has {chars} characters and {hashtags} hashtags; \
                 Instagram takes {MAX_CAPTION_CHARS} and {MAX_HASHTAGS}"
            ),
        ));
    }
    if !(MIN_REEL_SECS..=MAX_REEL_SECS).contains(&duration) {
        return Err(Error::new(
            ErrorCode::PlatformRuleDuration,
            format!("the short is {duration:.1} s; Instagram takes reels of 3 s to 15 min"),
        ));
    }
    Ok(())
}

/// The stored session: the container, and where its bytes go when resumable.
#[derive(serde::Serialize, serde::Deserialize)]
struct Session {
    container_id: String,
    upload_uri: Option<String>,
}

/// The first bytes of the short, for the MP4 checks.
async fn head_bytes(run: &Run<'_>, source: &StorageSource<'_>) -> std::result::Result<Vec<u8>, Failure> {
    use futures_util::StreamExt;
    let end = source.len().min(PROBE_BYTES).saturating_sub(1);
    let got = run
        .publisher
        .storage
        .get(&source.key, Some(ByteRange::new(0, end)))
        .await
        .map_err(|e| Failure::ours(&e.into()))?;
    let mut body = got.body;
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk.map_err(|e| Failure::fatal("source_unavailable", e.to_string()))?);
        if bytes.len() as u64 > PROBE_BYTES {
            break;
        }
    }
    Ok(bytes)
}

pub(super) async fn upload(run: &Run<'_>, job: Upload<'_>) -> std::result::Result<Outcome, Failure> {
    let Upload { p, source, session, .. } = job;
    let instagram = run.publisher.platforms.instagram().map_err(|e| Failure::ours(&e))?;
    let user = run.connection(&p).await?.account_id;
    let text = caption(&p.title, &p.description, &p.tags);
    let facts = probe(&head_bytes(run, &source).await?).map_err(|why| {
        Failure::fatal("platform_rule_format", format!("the short is not an MP4 Instagram takes: {why}"))
    })?;
    check_reel(&ReelFacts { mp4: &facts, size_bytes: source.len(), caption: &text })
        .map_err(|e| Failure::platform(&e))?;

    let mut stored: Option<Session> = session.and_then(|s| serde_json::from_str(s.expose()).ok());
    if let Some(s) = &stored {
        let id = s.container_id.as_str();
        let status =
            run.with_token(p.connection_id, |t| async move { instagram.container_status(&t, id).await }).await?;
        match status.status_code.as_str() {
            // Gone: a new container.
            "EXPIRED" => stored = None,
            "ERROR" if status.subcode() == Some(2_207_020) => stored = None,
            // Done with the bytes: follow it.
            "FINISHED" | "PUBLISHED" | "ERROR" => return processing(run, p, &s.container_id).await,
            _ => {}
        }
    }
    let session = match stored {
        Some(s) => s,
        None => {
            run.clear_session(p.id).await?;
            let source_kind = match run.publisher.instagram_source {
                super::InstagramSource::Url => {
                    let signed = run
                        .publisher
                        .storage
                        .presign_get(&source.key, &PresignGet { expires_in: FETCH_URL_TTL, download_name: None })
                        .await
                        .map_err(|e| Failure::ours(&e.into()))?;
                    ReelSource::Url(signed.url)
                }
                super::InstagramSource::Resumable => ReelSource::Resumable,
            };
            let post = ReelPost {
                caption: text.clone(),
                share_to_feed: p.options.0.share_to_feed.unwrap_or(true),
                source: source_kind,
            };
            let (user, post) = (user.as_str(), &post);
            let c = run
                .with_token(p.connection_id, |t| async move { instagram.create_container(&t, user, post).await })
                .await?;
            let s = Session { container_id: c.id, upload_uri: c.upload_uri };
            run.store_session(p.id, &serde_json::to_string(&s).unwrap_or_default()).await?;
            s
        }
    };
    if let Some(uri) = session.upload_uri.clone() {
        let container = Container { id: session.container_id.clone(), upload_uri: Some(uri) };
        let (container, source) = (&container, &source);
        let pr = &p;
        reporting(run.pool, pr, |sent| async move { send(run, pr, container, source, &sent).await }).await?;
    }
    processing(run, p, &session.container_id).await
}

/// Sends the bytes of a resumable container from what Meta holds.
async fn send(
    run: &Run<'_>,
    p: &Publication,
    container: &Container,
    source: &StorageSource<'_>,
    sent: &AtomicU64,
) -> std::result::Result<(), Failure> {
    let instagram = run.publisher.platforms.instagram().map_err(|e| Failure::ours(&e))?;
    let progress = |done: u64, _total: u64| sent.store(done, Ordering::Relaxed);
    let id = container.id.as_str();
    let held = run.with_token(p.connection_id, |t| async move { instagram.uploaded_bytes(&t, id).await }).await?;
    let progress = &progress;
    run.with_token(p.connection_id, |t| async move { instagram.upload(&t, container, source, held, progress).await })
        .await
}

/// The container has (or Meta is fetching) its bytes: `processing`, then follow it.
async fn processing(run: &Run<'_>, p: Publication, container: &str) -> std::result::Result<Outcome, Failure> {
    let change = Change {
        status: Some("processing"),
        platform: Some((container, None, "public", None)),
        uploaded: true,
        ..Change::default()
    };
    let p = run.apply(p.id, change, None).await?;
    follow(run, p).await
}

/// Follows the container: published once it is finished and the account
/// has room in its publishing limit.
pub(super) async fn follow(run: &Run<'_>, p: Publication) -> std::result::Result<Outcome, Failure> {
    let instagram = run.publisher.platforms.instagram().map_err(|e| Failure::ours(&e))?;
    let Some(container) = p.platform_id.clone() else {
        return Err(Failure::fatal("internal", "a processing publication without a container"));
    };
    let user = run.connection(&p).await?.account_id;
    let (id, user) = (container.as_str(), user.as_str());
    let status = run.with_token(p.connection_id, |t| async move { instagram.container_status(&t, id).await }).await?;
    match status.status_code.as_str() {
        "FINISHED" => {}
        "PUBLISHED" => {
            // Published by an earlier run whose answer was lost: found, not posted again.
            let recent =
                run.with_token(p.connection_id, |t| async move { instagram.recent_media(&t, user).await }).await?;
            let media = recent.into_iter().next();
            let (media_id, url) = media.map_or((container.clone(), None), |m| (m.id, Some(m.permalink)));
            return run.published(&p, &media_id, url.as_deref(), "public", None).await;
        }
        "ERROR" if status.subcode() == Some(2_207_052) => {
            let e = PublishError::MediaUnreachable {
                message: "Instagram could not fetch the short from storage: the storage must be reachable from the \
                          internet (or set INSTAGRAM_UPLOAD=resumable)"
                    .into(),
            };
            return Err(Failure::platform(&e));
        }
        "ERROR" => {
            let why = status.status.unwrap_or_else(|| "no reason given".into());
            return Err(Failure::platform(&PublishError::ProcessingFailed { reason: why }));
        }
        "EXPIRED" => {
            // Not published within a day (a long wait for the limit): a new container next run.
            let change = Change { status: Some("scheduled"), session: Some(None), ..Change::default() };
            run.apply(p.id, change, None).await?;
            return Ok(Outcome::Snooze(std::time::Duration::from_secs(1)));
        }
        _ => {
            processing_timeout(&p, "Instagram")?;
            return Ok(Outcome::Snooze(poll_after(p.updated_at)));
        }
    }
    let limit = run.with_token(p.connection_id, |t| async move { instagram.publishing_limit(&t, user).await }).await?;
    if limit.usage >= limit.total {
        return Err(Failure {
            code: "platform_posting_limit".into(),
            message: format!(
                "the account published {} of the {} posts Instagram allows through the API in a rolling day; \
                 it is tried again as the window rolls",
                limit.usage, limit.total
            ),
            retryable: true,
            retry_at: Some(OffsetDateTime::now_utc() + LIMIT_RETRY),
        });
    }
    let published = run.with_token(p.connection_id, |t| async move { instagram.publish(&t, user, id).await }).await;
    let media_id = match published {
        Ok(m) => m,
        // Not quite ready after all: look again soon.
        Err(f) if f.code == "platform_unavailable" && f.retry_at.is_none() => {
            return Ok(Outcome::Snooze(poll_after(p.updated_at)));
        }
        Err(f) => return Err(f),
    };
    let mid = media_id.as_str();
    let media = run.with_token(p.connection_id, |t| async move { instagram.media(&t, mid).await }).await;
    let url = media.ok().map(|m| m.permalink);
    run.published(&p, &media_id, url.as_deref(), "public", None).await
}
