//! YouTube's part of a publish job: the rules, a resumable upload (the
//! session kept sealed, resumed where YouTube stopped, a new one when
//! YouTube forgot it), processing followed until YouTube is done.

use std::sync::atomic::{AtomicU64, Ordering};

use time::OffsetDateTime;
use videdit_core::Secret;
use videdit_publish::youtube::{Privacy, ShortFacts, UploadSession, UploadedVideo, VideoMeta, check_rules};
use videdit_publish::{ByteSource, PublishError};
use videdit_queue::Outcome;

use super::{
    Change, Failure, NewPublication, PROCESSING_POLL, Publication, Run, StorageSource, Upload, processing_timeout,
    reporting, rule_error,
};
use crate::error::{Error, Result};

/// A scheduled time at least this far ahead when the upload starts is sent
/// as YouTube's own schedule.
const PLATFORM_SCHEDULE_AHEAD: time::Duration = time::Duration::minutes(15);

pub(super) fn check_new(new: &NewPublication, title: &str, duration: f64) -> Result<()> {
    // The size and the shape are checked when the job runs.
    let facts = ShortFacts {
        duration_secs: duration,
        width: 1080,
        height: 1920,
        size_bytes: 1,
        title,
        description: &new.description,
        tags: &new.tags,
    };
    check_rules(&facts).map_err(|e| rule_error(&e))
}

fn privacy(p: &Publication) -> std::result::Result<Privacy, Failure> {
    Privacy::parse(&p.privacy).ok_or_else(|| Failure::ours(&Error::invalid(format!("privacy {:?}", p.privacy))))
}

pub(super) async fn upload(run: &Run<'_>, job: Upload<'_>) -> std::result::Result<Outcome, Failure> {
    let Upload { p, source, recipe, session } = job;
    let (width, height) = recipe.aspect.size();
    let facts = ShortFacts {
        duration_secs: recipe.range.duration(),
        width,
        height,
        size_bytes: source.len(),
        title: &p.title,
        description: &p.description,
        tags: &p.tags,
    };
    check_rules(&facts).map_err(|e| Failure::platform(&e))?;
    let session = session.map(|uri| UploadSession { uri: uri.expose().clone() });
    let uploaded = reporting(run.pool, &p, |sent| {
        let (p, source) = (&p, &source);
        async move { transfer(run, p, source, session, &sent).await }
    })
    .await?;
    let privacy = uploaded.privacy_status.clone();
    let notice = (privacy != p.privacy && uploaded.publish_at.is_none()).then(|| {
        format!(
            "YouTube made the video {privacy} though {} was asked: uploads from API projects Google has \
             not verified are private",
            p.privacy
        )
    });
    let change = Change {
        status: Some("processing"),
        platform: Some((&uploaded.id, Some(&uploaded.url), &privacy, uploaded.publish_at)),
        notice: Some(notice.as_deref()),
        session: Some(None),
        uploaded: true,
        ..Change::default()
    };
    let p = run.apply(p.id, change, None).await?;
    follow(run, p).await
}

/// The upload's protocol: start (the session stored sealed before the
/// first byte) or resume, a refresh on the first 401, a fresh session when
/// the platform forgot the stored one.
async fn transfer(
    run: &Run<'_>,
    p: &Publication,
    source: &StorageSource<'_>,
    mut session: Option<UploadSession>,
    sent: &AtomicU64,
) -> std::result::Result<UploadedVideo, Failure> {
    let youtube = run.publisher.platforms.youtube().map_err(|e| Failure::ours(&e))?;
    let progress = |done: u64, _total: u64| sent.store(done, Ordering::Relaxed);
    let mut token: Secret<String> = run.token(p.connection_id, false).await?;
    let mut refreshed = false;
    loop {
        let result = match &session {
            Some(s) => youtube.resume(&token, s, source, &progress).await,
            None => {
                let meta = video_meta(p)?;
                match youtube.start_upload(&token, &meta, source.len(), source.content_type()).await {
                    Ok(s) => {
                        run.store_session(p.id, &s.uri).await?;
                        let r = youtube.upload(&token, &s, source, &progress).await;
                        session = Some(s);
                        r
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok(video) => return Ok(video),
            Err(PublishError::Unauthorized { .. }) if !refreshed => {
                refreshed = true;
                token = run.token(p.connection_id, true).await?;
            }
            Err(PublishError::UploadSessionExpired { .. }) if session.is_some() => {
                // Gone at the platform: a fresh session, from the first byte.
                run.clear_session(p.id).await?;
                session = None;
                sent.store(0, Ordering::Relaxed);
            }
            Err(e) => return Err(Failure::platform(&e)),
        }
    }
}

fn video_meta(p: &Publication) -> std::result::Result<VideoMeta, Failure> {
    let privacy = privacy(p)?;
    let ahead = p.scheduled_at.filter(|at| *at > OffsetDateTime::now_utc() + PLATFORM_SCHEDULE_AHEAD);
    Ok(VideoMeta {
        title: p.title.clone(),
        description: p.description.clone(),
        tags: p.tags.clone(),
        privacy,
        publish_at: if privacy == Privacy::Private { None } else { ahead },
        category_id: "22".into(),
        made_for_kids: false,
    })
}

/// Follows processing on YouTube: published when done, failed when YouTube
/// rejects it or it takes longer than the limit.
pub(super) async fn follow(run: &Run<'_>, p: Publication) -> std::result::Result<Outcome, Failure> {
    let youtube = run.publisher.platforms.youtube().map_err(|e| Failure::ours(&e))?;
    let Some(video_id) = p.platform_id.clone() else {
        return Err(Failure::fatal("internal", "a processing publication without a platform id"));
    };
    let vid = video_id.as_str();
    let status = run.with_token(p.connection_id, |t| async move { youtube.video_status(&t, vid).await }).await?;
    match status.upload_status.as_str() {
        "processed" => {
            let privacy = status.privacy_status.clone();
            let url = p.platform_url.clone().unwrap_or_default();
            let change = Change {
                status: Some("published"),
                platform: Some((&video_id, Some(&url), &privacy, status.publish_at)),
                published: true,
                ..Change::default()
            };
            run.apply(p.id, change, Some(videdit_core::event::EventType::PublicationPublished)).await?;
            Ok(Outcome::Complete)
        }
        "failed" | "rejected" | "deleted" => {
            let why = status.failure_reason.or(status.rejection_reason).unwrap_or_else(|| status.upload_status.clone());
            Err(Failure::fatal("platform_processing_failed", format!("YouTube did not publish the video: {why}")))
        }
        _ => {
            processing_timeout(&p, "YouTube")?;
            Ok(Outcome::Snooze(PROCESSING_POLL))
        }
    }
}
