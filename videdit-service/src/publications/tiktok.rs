//! TikTok's part of a publish job: the creator's options asked first (the
//! post uses only what the account allows; a publication asking for more
//! fails at once, before any byte), a `FILE_UPLOAD` init (the upload URL
//! and the plan stored sealed), the chunks (resumed after an interruption
//! from what TikTok says it holds; a new init when the URL expired), then
//! the status, polled with backoff, until TikTok published the post or
//! delivered it to the creator's inbox.
//!
//! TikTok allows 6 inits a minute per account: a burst of publications
//! meets `rate_limit_exceeded`, which the job waits out (spending no
//! attempt) rather than failing.

use std::sync::atomic::{AtomicU64, Ordering};

use videdit_publish::tiktok::{ChunkPlan, CreatorInfo, Init, MAX_TITLE_UTF16, PostMode, PostRequest, check_post};
use videdit_publish::{ByteSource, PublishError};
use videdit_queue::Outcome;

use super::{
    Change, Failure, NewPublication, Publication, Run, StorageSource, Upload, caption, poll_after, processing_timeout,
    reporting,
};
use crate::error::{Error, Result};
use videdit_core::ErrorCode;

/// The longest video TikTok takes from the API (an account may allow less).
const MAX_SECS: f64 = 600.0;

pub(super) fn check_new(new: &NewPublication, title: &str, duration: f64) -> Result<()> {
    let text = caption(title, &new.description, &new.tags);
    let units = text.encode_utf16().count();
    if units > MAX_TITLE_UTF16 {
        return Err(Error::new(
            ErrorCode::PlatformRuleTitle,
            format!(
                "the caption (title, description and tags) is {units} UTF-16 units; TikTok takes {MAX_TITLE_UTF16}"
            ),
        ));
    }
    if duration > MAX_SECS {
        return Err(Error::new(
            ErrorCode::PlatformRuleDuration,
            format!("the short is {duration:.1} s; TikTok takes at most {MAX_SECS} s"),
        ));
    }
    Ok(())
}

/// Our privacy words in TikTok's.
fn privacy_level(privacy: &str) -> &'static str {
    match privacy {
        "friends" => "MUTUAL_FOLLOW_FRIENDS",
        "followers" => "FOLLOWER_OF_CREATOR",
        "private" => "SELF_ONLY",
        _ => "PUBLIC_TO_EVERYONE",
    }
}

/// The post asked for, with the account's defaults where nothing was asked.
fn post_request(p: &Publication, creator: &CreatorInfo, duration: f64) -> PostRequest {
    let o = &p.options.0;
    PostRequest {
        title: caption(&p.title, &p.description, &p.tags),
        privacy_level: privacy_level(&p.privacy).to_owned(),
        allow_comments: o.allow_comments.unwrap_or(!creator.comment_disabled),
        allow_duet: o.allow_duet.unwrap_or(!creator.duet_disabled),
        allow_stitch: o.allow_stitch.unwrap_or(!creator.stitch_disabled),
        is_aigc: o.ai_generated.unwrap_or(false),
        duration_secs: duration,
    }
}

/// The stored upload session: where the chunks go and how they were announced.
#[derive(serde::Serialize, serde::Deserialize)]
struct Session {
    publish_id: String,
    upload_url: String,
    video_size: u64,
    chunk_size: u64,
    total_chunk_count: u64,
}

impl From<&Init> for Session {
    fn from(i: &Init) -> Self {
        Self {
            publish_id: i.publish_id.clone(),
            upload_url: i.upload_url.clone(),
            video_size: i.plan.video_size,
            chunk_size: i.plan.chunk_size,
            total_chunk_count: i.plan.total_chunk_count,
        }
    }
}

impl From<Session> for Init {
    fn from(s: Session) -> Self {
        Init {
            publish_id: s.publish_id,
            upload_url: s.upload_url,
            plan: ChunkPlan {
                video_size: s.video_size,
                chunk_size: s.chunk_size,
                total_chunk_count: s.total_chunk_count,
            },
        }
    }
}

fn mode_of(c: &crate::connections::Connection) -> PostMode {
    c.mode.as_deref().and_then(PostMode::parse).unwrap_or(PostMode::Direct)
}

pub(super) async fn upload(run: &Run<'_>, job: Upload<'_>) -> std::result::Result<Outcome, Failure> {
    let Upload { p, source, recipe, session } = job;
    let tiktok = run.publisher.platforms.tiktok().map_err(|e| Failure::ours(&e))?;
    let mode = mode_of(&run.connection(&p).await?);
    let (post, profile) = match mode {
        PostMode::Direct => {
            // Asked before each post: what the account allows now.
            let creator = run.with_token(p.connection_id, |t| async move { tiktok.creator_info(&t).await }).await?;
            let post = post_request(&p, &creator, recipe.range.duration());
            check_post(&creator, &post).map_err(|e| Failure::platform(&e))?;
            (post, Some(format!("https://www.tiktok.com/@{}", creator.creator_username)))
        }
        // A draft's privacy and interactions are the creator's to choose in
        // the app (and creator info needs `video.publish`, which an inbox
        // connection has not).
        PostMode::Inbox => (post_request(&p, &CreatorInfo::default(), recipe.range.duration()), None),
    };
    let stored: Option<Init> = session
        .and_then(|s| serde_json::from_str::<Session>(s.expose()).ok())
        .map(Init::from)
        .filter(|i| i.plan.video_size == source.len());
    let init = reporting(run.pool, &p, |sent| {
        let (p, source, post) = (&p, &source, &post);
        async move { transfer(run, p, source, mode, post, stored, &sent).await }
    })
    .await?;
    let change = Change {
        status: Some("processing"),
        platform: Some((&init.publish_id, profile.as_deref(), privacy_level(&p.privacy), None)),
        session: Some(None),
        uploaded: true,
        ..Change::default()
    };
    let p = run.apply(p.id, change, None).await?;
    follow(run, p).await
}

/// Init (stored sealed before the first chunk) or resume, a refresh on the
/// first 401, a new init when TikTok forgot the upload URL.
async fn transfer(
    run: &Run<'_>,
    p: &Publication,
    source: &StorageSource<'_>,
    mode: PostMode,
    post: &PostRequest,
    mut init: Option<Init>,
    sent: &AtomicU64,
) -> std::result::Result<Init, Failure> {
    let tiktok = run.publisher.platforms.tiktok().map_err(|e| Failure::ours(&e))?;
    let progress = |done: u64, _total: u64| sent.store(done, Ordering::Relaxed);
    let mut token = run.token(p.connection_id, false).await?;
    let mut refreshed = false;
    let mut fresh_inits = 0;
    loop {
        let result = match &init {
            Some(i) => match tiktok.resume_point(&token, i).await {
                Ok(first) => {
                    sent.store(first * i.plan.chunk_size, Ordering::Relaxed);
                    tiktok.upload(i, source, first, &progress).await
                }
                Err(e) => Err(e),
            },
            None => match tiktok.init(&token, mode, post, source.len()).await {
                Ok(i) => {
                    let session = serde_json::to_string(&Session::from(&i)).unwrap_or_default();
                    run.store_session(p.id, &session).await?;
                    let r = tiktok.upload(&i, source, 0, &progress).await;
                    init = Some(i);
                    r
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(()) => return init.ok_or_else(|| Failure::fatal("internal", "an upload without its init")),
            Err(PublishError::Unauthorized { .. }) if !refreshed => {
                refreshed = true;
                token = run.token(p.connection_id, true).await?;
            }
            Err(e) if init.is_some() && fresh_inits < 2 && forgotten(&e) => {
                // The URL expired (an hour), or TikTok no longer knows the
                // post: a new init, from the first byte.
                fresh_inits += 1;
                run.clear_session(p.id).await?;
                init = None;
                sent.store(0, Ordering::Relaxed);
            }
            Err(PublishError::Rejected { status: 400, message, .. }) => {
                // A chunk TikTok refused as malformed.
                return Err(Failure::fatal(
                    "platform_upload_rejected",
                    format!("TikTok refused the upload: {message}"),
                ));
            }
            Err(e) => return Err(Failure::platform(&e)),
        }
    }
}

/// TikTok no longer takes the stored upload: its URL expired (an hour), or
/// the post is unknown.
fn forgotten(e: &PublishError) -> bool {
    match e {
        PublishError::UploadSessionExpired { .. } => true,
        PublishError::Rejected { reason, .. } => reason == "invalid_publish_id",
        _ => false,
    }
}

/// Follows the post until TikTok published it, delivered it to the inbox,
/// or failed it (with TikTok's `fail_reason`).
pub(super) async fn follow(run: &Run<'_>, p: Publication) -> std::result::Result<Outcome, Failure> {
    let tiktok = run.publisher.platforms.tiktok().map_err(|e| Failure::ours(&e))?;
    let Some(publish_id) = p.platform_id.clone() else {
        return Err(Failure::fatal("internal", "a processing publication without a publish id"));
    };
    let id = publish_id.as_str();
    let status = run.with_token(p.connection_id, |t| async move { tiktok.status(&t, id).await }).await?;
    let profile = p.platform_url.clone();
    let privacy = p.platform_privacy.clone().unwrap_or_default();
    match status.status.as_str() {
        "PUBLISH_COMPLETE" => match (status.post_ids.first(), &profile) {
            (Some(post), Some(profile)) => {
                let post = post.to_string();
                run.published(&p, &post, Some(&format!("{profile}/video/{post}")), &privacy, None).await
            }
            // Private posts, and public ones still in moderation, have no public id.
            _ => run.published(&p, &publish_id, profile.as_deref(), &privacy, None).await,
        },
        "SEND_TO_USER_INBOX" => {
            let notice = "TikTok delivered the video to the creator's inbox as a draft: they finish the post in the \
                          TikTok app (a notification tells them)";
            run.published(&p, &publish_id, None, "inbox", Some(notice)).await
        }
        "FAILED" => {
            let why = status.fail_reason.unwrap_or_else(|| "no reason given".into());
            let e = PublishError::ProcessingFailed { reason: why };
            Err(Failure::platform(&e))
        }
        _ => {
            processing_timeout(&p, "TikTok")?;
            Ok(Outcome::Snooze(poll_after(p.updated_at)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_privacy_words_are_tiktoks_levels() {
        assert_eq!(privacy_level("public"), "PUBLIC_TO_EVERYONE");
        assert_eq!(privacy_level("friends"), "MUTUAL_FOLLOW_FRIENDS");
        assert_eq!(privacy_level("followers"), "FOLLOWER_OF_CREATOR");
        assert_eq!(privacy_level("private"), "SELF_ONLY");
    }
}
