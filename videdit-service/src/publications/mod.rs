//! Publications: one short sent to one connected account, now or at a time.
//!
//! The life cycle, once:
//!
//! ```text
//! scheduled ──> uploading (bytes sent of total) ──> processing ──> published
//!     │  ▲            │                                   │
//!     │  └─ quota ────┘ (retried when the quota resets)   └──> failed
//!     └──> canceled (before anything is uploaded)              (a stable code, the platform's message)
//! ```
//!
//! - [`create`] checks what can be checked at once (the short, the
//!   connection, the platform's rules for the metadata and the duration),
//!   stores the publication, enqueues its one `publish` job with `run_at =
//!   scheduledAt` and records `publication.scheduled`, in one transaction.
//!   A short still rendering can be scheduled: the job waits for it.
//! - [`cancel`] and [`reschedule`] act on a publication that has not
//!   started uploading (a failed one can be rescheduled: it is tried again).
//! - [`run`] is the `publish` job: it checks the short against the
//!   platform's rules, streams it from storage into a resumable upload
//!   (the session is kept sealed, so a retried job resumes where the
//!   platform says it stopped, never from zero), refreshes the token once
//!   on a 401, turns a spent quota into a retry at the platform's reset
//!   time, then follows processing until the video is published.
//!
//! Scheduling is ours on every platform: the job runs at `scheduledAt`, so
//! a post is under our control (cancel, reschedule) until its time. The
//! platforms differ only in how the bytes go and how "done" is learnt:
//!
//! - [`youtube`]: a resumable upload; a scheduled time still ahead when
//!   the job runs (a job run early by hand) is sent as YouTube's own
//!   schedule, private with `publishAt`.
//! - [`tiktok`]: the creator's options asked before each post (only
//!   allowed values are used; a publication asking for another fails at
//!   once), chunks by TikTok's rules, the status polled with backoff; a
//!   burst beyond TikTok's 6 inits a minute waits its turn.
//! - [`instagram`]: a Reels container fed from a presigned URL of the short
//!   (Meta fetches it) or a resumable upload, its status polled, the
//!   publishing limit read before publishing (a post past it waits for the
//!   rolling window), then `media_publish`.

mod instagram;
mod tiktok;
mod youtube;

pub use instagram::InstagramSource;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use videdit_core::event::EventType;
use videdit_core::recipe::ClipRecipe;
use videdit_core::sealed::Keyring;
use videdit_core::short::ShortStatus;
use videdit_core::storage::{ByteRange, ObjectKey, Storage};
use videdit_core::{ErrorCode, JobKind, OrgId, Secret, ShortId, UserId, db};
use videdit_publish::{ByteSource, ByteStream, PublishError};
use videdit_queue::{JobContext, JobError, JobSpec, Outcome};

use crate::connections::{self, Platform, Platforms};
use crate::error::{Error, Result};

/// The queue of publish jobs (network-bound: many at once, no media work).
pub const PUBLISH_QUEUE: &str = "publish";
/// How often a job waiting for its short to render looks again.
pub const SHORT_WAIT: Duration = Duration::from_secs(30);
/// How often processing on the platform is looked at.
pub const PROCESSING_POLL: Duration = Duration::from_secs(20);
/// Processing longer than this fails the publication (`platform_processing_timeout`).
pub const PROCESSING_LIMIT: time::Duration = time::Duration::hours(6);
/// Runs of a publish job before a retryable failure (platform down) fails
/// the publication; waiting for a short or for a quota spends none.
pub const MAX_ATTEMPTS: u32 = 8;
/// How far ahead a post may be scheduled.
pub const MAX_AHEAD: time::Duration = time::Duration::days(366);
/// The shortest wait between two looks at a platform's processing (TikTok,
/// Instagram); it grows with the time spent processing, to [`POLL_MAX`].
pub const POLL_MIN: Duration = Duration::from_secs(5);
/// The longest wait between two looks at a platform's processing.
pub const POLL_MAX: Duration = Duration::from_secs(60);

/// The per-platform options of a publication; each is refused by the
/// platforms it does not apply to.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishOptions {
    /// TikTok: comments on (default: on where the account allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_comments: Option<bool>,
    /// TikTok: duets on (default: on where the account allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_duet: Option<bool>,
    /// TikTok: stitches on (default: on where the account allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_stitch: Option<bool>,
    /// TikTok: labelled as AI-generated content (default off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai_generated: Option<bool>,
    /// Instagram: the reel is shown in the feed too (default on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_to_feed: Option<bool>,
}

/// A publication as stored (never its upload session).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Publication {
    /// Id.
    pub id: uuid::Uuid,
    /// The organisation.
    pub org_id: uuid::Uuid,
    /// The short's video.
    pub video_id: uuid::Uuid,
    /// The short.
    pub short_id: uuid::Uuid,
    /// The connected account.
    pub connection_id: uuid::Uuid,
    /// `youtube`, `tiktok` or `instagram`.
    pub platform: String,
    /// Title on the platform (TikTok and Instagram: the caption's first line).
    pub title: String,
    /// Description on the platform.
    pub description: String,
    /// Tags.
    pub tags: Vec<String>,
    /// As asked: YouTube `public`, `unlisted`, `private`; TikTok `public`,
    /// `friends` (mutual followers), `followers`, `private`; Instagram `public`.
    pub privacy: String,
    /// The per-platform options.
    pub options: sqlx::types::Json<PublishOptions>,
    /// When to publish; `None`: as soon as the short is ready.
    pub scheduled_at: Option<OffsetDateTime>,
    /// `scheduled`, `uploading`, `processing`, `published`, `failed` or `canceled`.
    pub status: String,
    /// Bytes the platform confirmed.
    pub bytes_sent: i64,
    /// The short's size, once the upload started.
    pub bytes_total: Option<i64>,
    /// The platform's id of the video.
    pub platform_id: Option<String>,
    /// Where it is.
    pub platform_url: Option<String>,
    /// The privacy the platform answered.
    pub platform_privacy: Option<String>,
    /// The platform's own scheduled release.
    pub platform_publish_at: Option<OffsetDateTime>,
    /// The platform's answer where it differs from the request.
    pub notice: Option<String>,
    /// Why it failed (or, while `retry_at` is set, why it waits).
    pub failure_code: Option<String>,
    /// The platform's own message.
    pub failure_message: Option<String>,
    /// When a retryable failure (a spent quota) is tried again.
    pub retry_at: Option<OffsetDateTime>,
    /// The publish job.
    pub job_id: Option<uuid::Uuid>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
    /// When it was published.
    pub published_at: Option<OffsetDateTime>,
}

const COLUMNS: &str = "id, org_id, video_id, short_id, connection_id, platform, title, description, tags, privacy,
    options, scheduled_at, status, bytes_sent, bytes_total, platform_id, platform_url, platform_privacy, platform_publish_at,
    notice, failure_code, failure_message, retry_at, job_id, created_at, updated_at, published_at";

/// What a new publication asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPublication {
    /// The connected account to publish to.
    pub connection_id: uuid::Uuid,
    /// Title; `None`: the short's suggested title.
    pub title: Option<String>,
    /// Description.
    pub description: String,
    /// Tags.
    pub tags: Vec<String>,
    /// The privacy, in the platform's terms (see [`Publication::privacy`]).
    pub privacy: String,
    /// When; `None` or a past time: as soon as the short is ready.
    pub scheduled_at: Option<OffsetDateTime>,
    /// The per-platform options.
    pub options: PublishOptions,
}

fn not_found(id: uuid::Uuid) -> Error {
    Error::new(ErrorCode::PublicationNotFound, format!("publication {id} not found"))
}

/// A platform rule broken, as the API's code.
fn rule_error(e: &PublishError) -> Error {
    let code = ErrorCode::from_code(e.code()).unwrap_or(ErrorCode::PlatformRejected);
    Error::new(code, e.message())
}

/// The privacies a platform takes.
fn privacies(platform: Platform) -> &'static [&'static str] {
    match platform {
        Platform::YouTube => &["public", "unlisted", "private"],
        Platform::TikTok => &["public", "friends", "followers", "private"],
        Platform::Instagram => &["public"],
    }
}

/// What can be checked of a new publication before anything is stored.
fn check_new(platform: Platform, new: &NewPublication, title: &str, duration: f64) -> Result<()> {
    if !privacies(platform).contains(&new.privacy.as_str()) {
        return Err(Error::invalid(format!(
            "privacy {:?} is not one of {} on {}",
            new.privacy,
            privacies(platform).join(", "),
            platform.as_str()
        )));
    }
    let o = &new.options;
    let foreign: &[(&str, bool)] = match platform {
        Platform::YouTube => &[
            ("allowComments", o.allow_comments.is_some()),
            ("allowDuet", o.allow_duet.is_some()),
            ("allowStitch", o.allow_stitch.is_some()),
            ("aiGenerated", o.ai_generated.is_some()),
            ("shareToFeed", o.share_to_feed.is_some()),
        ],
        Platform::TikTok => &[("shareToFeed", o.share_to_feed.is_some())],
        Platform::Instagram => &[
            ("allowComments", o.allow_comments.is_some()),
            ("allowDuet", o.allow_duet.is_some()),
            ("allowStitch", o.allow_stitch.is_some()),
            ("aiGenerated", o.ai_generated.is_some()),
        ],
    };
    if let Some((name, _)) = foreign.iter().find(|(_, set)| *set) {
        return Err(Error::invalid(format!("{name} does not apply to {}", platform.as_str())));
    }
    match platform {
        Platform::YouTube => youtube::check_new(new, title, duration),
        Platform::TikTok => tiktok::check_new(new, title, duration),
        Platform::Instagram => instagram::check_new(new, title, duration),
    }
}

/// A caption for the platforms that have one text: the title, the
/// description, and the tags as hashtags.
fn caption(title: &str, description: &str, tags: &[String]) -> String {
    let mut c = title.trim().to_owned();
    if !description.trim().is_empty() {
        c.push_str("\n\n");
        c.push_str(description.trim());
    }
    let hashtags: Vec<String> = tags
        .iter()
        .map(|t| t.chars().filter(|c| c.is_alphanumeric() || *c == '_').collect::<String>())
        .filter(|t| !t.is_empty())
        .map(|t| format!("#{t}"))
        .collect();
    if !hashtags.is_empty() {
        c.push_str(if c.is_empty() { "" } else { "\n\n" });
        c.push_str(&hashtags.join(" "));
    }
    c
}

/// Schedules a short for publication (see the module documentation).
///
/// # Errors
/// `short_not_found`, `connection_not_found` (also another organisation's),
/// `needs_reauthorization` for a connection that must be connected again,
/// `invalid_state` for a short that failed to render, `invalid_request`,
/// `platform_rule_*` for metadata or a duration the platform refuses.
pub async fn create(
    pool: &PgPool,
    org: OrgId,
    user: Option<UserId>,
    short: ShortId,
    new: NewPublication,
) -> Result<Publication> {
    let now = OffsetDateTime::now_utc();
    if new.scheduled_at.is_some_and(|at| at > now + MAX_AHEAD) {
        return Err(Error::invalid("scheduledAt is more than a year ahead"));
    }
    let mut tx = pool.begin().await?;
    let s = db::get_short(&mut *tx, org, short).await?;
    if s.status == ShortStatus::Failed {
        return Err(Error::invalid_state(format!("short {short} failed to render; it cannot be published")));
    }
    let connection = connections::get(&mut *tx, org, new.connection_id).await?;
    if connection.status == "needs_reauthorization" {
        return Err(Error::new(
            ErrorCode::NeedsReauthorization,
            format!(
                "the account {} must be connected again: {}",
                connection.account_name,
                connection.status_reason.as_deref().unwrap_or("the platform refused its tokens")
            ),
        ));
    }
    let title = new.title.clone().unwrap_or_else(|| s.title.clone());
    // What can be known now is checked now; the file and the account's own
    // options when it runs.
    check_new(Platform::parse(&connection.platform)?, &new, &title, s.range.duration())?;
    let id = uuid::Uuid::now_v7();
    let p: Publication = sqlx::query_as(&format!(
        "INSERT INTO videdit.publications
            (id, org_id, video_id, short_id, connection_id, platform, title, description, tags, privacy,
             scheduled_at, status, created_by, options)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'scheduled', $12, $13)
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(org.as_uuid())
    .bind(s.video_id.as_uuid())
    .bind(short.as_uuid())
    .bind(connection.id)
    .bind(&connection.platform)
    .bind(&title)
    .bind(&new.description)
    .bind(&new.tags)
    .bind(&new.privacy)
    .bind(new.scheduled_at)
    .bind(user.map(|u| u.as_uuid()))
    .bind(sqlx::types::Json(&new.options))
    .fetch_one(&mut *tx)
    .await?;
    let p = arm(&mut tx, org, &p).await?;
    record(&mut tx, org, EventType::PublicationScheduled, &p).await?;
    tx.commit().await?;
    Ok(p)
}

/// Enqueues the publication's job at its time and stores its id.
async fn arm(tx: &mut PgConnection, org: OrgId, p: &Publication) -> Result<Publication> {
    let spec = JobSpec::new(JobKind::Publish.as_str(), &PublishJob { org_id: org, publication_id: p.id })?
        .queue(PUBLISH_QUEUE)
        .unique_key(format!("publish:{}", p.id))
        .group(org.to_string())
        .max_attempts(MAX_ATTEMPTS)
        .run_at(p.scheduled_at.unwrap_or_else(OffsetDateTime::now_utc))
        .metadata(serde_json::json!({"orgId": org, "publicationId": p.id, "kind": JobKind::Publish.as_str()}));
    let job = videdit_queue::enqueue(&mut *tx, &spec).await?;
    Ok(sqlx::query_as(&format!(
        "UPDATE videdit.publications SET job_id = $3, updated_at = now() WHERE org_id = $1 AND id = $2
         RETURNING {COLUMNS}"
    ))
    .bind(org.as_uuid())
    .bind(p.id)
    .bind(job)
    .fetch_one(&mut *tx)
    .await?)
}

/// The payload of a `publish` job.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishJob {
    /// The organisation.
    pub org_id: OrgId,
    /// The publication.
    pub publication_id: uuid::Uuid,
}

fn payload(p: &Publication) -> serde_json::Value {
    let mut v = serde_json::json!({
        "publicationId": p.id,
        "shortId": p.short_id,
        "videoId": p.video_id,
        "connectionId": p.connection_id,
        "platform": p.platform,
        "status": p.status,
        "title": p.title,
        "privacy": p.privacy,
        "options": p.options.0,
        "scheduledAt": p.scheduled_at.map(rfc3339),
    });
    let extra = [
        ("platformId", p.platform_id.clone().map(serde_json::Value::from)),
        ("url", p.platform_url.clone().map(Into::into)),
        ("platformPrivacy", p.platform_privacy.clone().map(Into::into)),
        ("platformPublishAt", p.platform_publish_at.map(|t| rfc3339(t).into())),
        ("notice", p.notice.clone().map(Into::into)),
        ("code", p.failure_code.clone().map(Into::into)),
        ("message", p.failure_message.clone().map(Into::into)),
        ("retryAt", p.retry_at.map(|t| rfc3339(t).into())),
    ];
    for (k, val) in extra {
        if let Some(val) = val {
            v[k] = val;
        }
    }
    v
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

async fn record(tx: &mut PgConnection, org: OrgId, kind: EventType, p: &Publication) -> Result<()> {
    crate::events::record(tx, org, kind, Some(p.id), payload(p)).await?;
    Ok(())
}

/// The organisation's publications, newest first; of one short when given.
///
/// # Errors
/// Database failures.
pub async fn list(pool: &PgPool, org: OrgId, short: Option<ShortId>) -> Result<Vec<Publication>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM videdit.publications
          WHERE org_id = $1 AND ($2::uuid IS NULL OR short_id = $2) ORDER BY id DESC LIMIT 500"
    ))
    .bind(org.as_uuid())
    .bind(short.map(|s| s.as_uuid()))
    .fetch_all(pool)
    .await?)
}

/// One publication of the organisation.
///
/// # Errors
/// `publication_not_found` (also another organisation's).
pub async fn get(pool: &PgPool, org: OrgId, id: uuid::Uuid) -> Result<Publication> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM videdit.publications WHERE org_id = $1 AND id = $2"))
        .bind(org.as_uuid())
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| not_found(id))
}

async fn lock(tx: &mut PgConnection, org: OrgId, id: uuid::Uuid) -> Result<Publication> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM videdit.publications WHERE org_id = $1 AND id = $2 FOR UPDATE"))
        .bind(org.as_uuid())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| not_found(id))
}

/// Changes of a publication's row, all optional.
#[derive(Default)]
struct Change<'a> {
    status: Option<&'a str>,
    scheduled_at: Option<Option<OffsetDateTime>>,
    bytes_total: Option<i64>,
    platform: Option<(&'a str, Option<&'a str>, &'a str, Option<OffsetDateTime>)>,
    notice: Option<Option<&'a str>>,
    failure: Option<Option<(&'a str, &'a str)>>,
    retry_at: Option<Option<OffsetDateTime>>,
    /// The upload session; clearing it (`Some(None)`) resets `bytes_sent`.
    session: Option<Option<&'a str>>,
    /// Every byte is on the platform: `bytes_sent = bytes_total`.
    uploaded: bool,
    published: bool,
}

async fn update(tx: &mut PgConnection, org: OrgId, id: uuid::Uuid, c: Change<'_>) -> Result<Publication> {
    let (failure_code, failure_message) = match c.failure {
        Some(Some((code, message))) => (Some(code), Some(message)),
        _ => (None, None),
    };
    let (pid, url, privacy, publish_at) = match c.platform {
        Some((a, b, c, d)) => (Some(a), b, Some(c), d),
        None => (None, None, None, None),
    };
    Ok(sqlx::query_as(&format!(
        "UPDATE videdit.publications SET
            status = coalesce($3, status),
            scheduled_at = CASE WHEN $4 THEN $5 ELSE scheduled_at END,
            bytes_total = coalesce($6, bytes_total),
            platform_id = coalesce($7, platform_id), platform_url = coalesce($8, platform_url),
            platform_privacy = coalesce($9, platform_privacy),
            platform_publish_at = CASE WHEN $7 IS NULL THEN platform_publish_at ELSE $10 END,
            notice = CASE WHEN $11 THEN $12 ELSE notice END,
            failure_code = CASE WHEN $13 THEN $14 ELSE failure_code END,
            failure_message = CASE WHEN $13 THEN $15 ELSE failure_message END,
            retry_at = CASE WHEN $16 THEN $17 ELSE retry_at END,
            upload_session = CASE WHEN $18 THEN $19 ELSE upload_session END,
            bytes_sent = CASE WHEN $21 THEN coalesce(bytes_total, bytes_sent) WHEN $18 AND $19 IS NULL THEN 0
                              ELSE bytes_sent END,
            published_at = CASE WHEN $20 THEN now() ELSE published_at END,
            updated_at = now()
          WHERE org_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(org.as_uuid())
    .bind(id)
    .bind(c.status)
    .bind(c.scheduled_at.is_some())
    .bind(c.scheduled_at.flatten())
    .bind(c.bytes_total)
    .bind(pid)
    .bind(url)
    .bind(privacy)
    .bind(publish_at)
    .bind(c.notice.is_some())
    .bind(c.notice.flatten())
    .bind(c.failure.is_some())
    .bind(failure_code)
    .bind(failure_message)
    .bind(c.retry_at.is_some())
    .bind(c.retry_at.flatten())
    .bind(c.session.is_some())
    .bind(c.session.flatten())
    .bind(c.published)
    .bind(c.uploaded)
    .fetch_one(&mut *tx)
    .await?)
}

fn not_waiting(p: &Publication, what: &str) -> Error {
    Error::invalid_state(format!("publication {} is {}; only a scheduled one can be {what}", p.id, p.status))
}

/// Cancels a publication that has not started uploading (`publication.canceled`).
///
/// # Errors
/// `publication_not_found`; `invalid_state` once it is uploading or done.
pub async fn cancel(pool: &PgPool, org: OrgId, id: uuid::Uuid) -> Result<Publication> {
    let mut tx = pool.begin().await?;
    let p = lock(&mut tx, org, id).await?;
    if p.status != "scheduled" {
        return Err(not_waiting(&p, "canceled"));
    }
    if let Some(job) = p.job_id {
        // A job that was claimed but has not begun sees `canceled` and stops.
        videdit_queue::cancel(&mut *tx, job).await?;
    }
    let p = update(&mut tx, org, id, Change { status: Some("canceled"), retry_at: Some(None), ..Change::default() })
        .await?;
    record(&mut tx, org, EventType::PublicationCanceled, &p).await?;
    tx.commit().await?;
    Ok(p)
}

/// Moves a scheduled publication to another time, or tries a failed one
/// again at that time (`publication.scheduled`). `None`: now.
///
/// # Errors
/// `publication_not_found`; `invalid_request` for a time over a year
/// ahead; `invalid_state` while it uploads, or once published or canceled.
pub async fn reschedule(pool: &PgPool, org: OrgId, id: uuid::Uuid, at: Option<OffsetDateTime>) -> Result<Publication> {
    if at.is_some_and(|at| at > OffsetDateTime::now_utc() + MAX_AHEAD) {
        return Err(Error::invalid("scheduledAt is more than a year ahead"));
    }
    let mut tx = pool.begin().await?;
    let p = lock(&mut tx, org, id).await?;
    let run_at = at.unwrap_or_else(OffsetDateTime::now_utc);
    let change = Change {
        status: Some("scheduled"),
        scheduled_at: Some(at),
        retry_at: Some(None),
        failure: Some(None),
        ..Change::default()
    };
    let p = match p.status.as_str() {
        "scheduled" => {
            let moved = match p.job_id {
                Some(job) => videdit_queue::reschedule(&mut *tx, job, run_at).await?,
                None => false,
            };
            let p = update(&mut tx, org, id, change).await?;
            if moved { p } else { arm(&mut tx, org, &p).await? }
        }
        "failed" => {
            // Tried again from the start: a new session, a new job.
            let change = Change { session: Some(None), ..change };
            let p = update(&mut tx, org, id, change).await?;
            arm(&mut tx, org, &p).await?
        }
        _ => return Err(not_waiting(&p, "rescheduled")),
    };
    record(&mut tx, org, EventType::PublicationScheduled, &p).await?;
    tx.commit().await?;
    Ok(p)
}

/// What the publish job needs.
#[derive(Clone, Copy)]
pub struct Publisher<'a> {
    /// Where the shorts are.
    pub storage: &'a dyn Storage,
    /// Opens the connections' tokens and the upload sessions.
    pub keyring: &'a Keyring,
    /// The platform clients configured here.
    pub platforms: &'a Platforms,
    /// How Instagram gets the bytes.
    pub instagram_source: InstagramSource,
}

fn session_context(org: OrgId, id: uuid::Uuid) -> String {
    format!("publication:{org}:{id}:session")
}

/// A failure of a publish job: the stable code and the message shown.
struct Failure {
    code: String,
    message: String,
    retryable: bool,
    retry_at: Option<OffsetDateTime>,
}

impl Failure {
    fn platform(e: &PublishError) -> Self {
        Self { code: e.code().to_owned(), message: e.message(), retryable: e.is_retryable(), retry_at: e.retry_at() }
    }

    fn ours(e: &Error) -> Self {
        Self {
            code: e.code().as_str().to_owned(),
            message: e.message().to_owned(),
            retryable: e.is_retryable(),
            retry_at: None,
        }
    }

    fn fatal(code: &str, message: impl Into<String>) -> Self {
        Self { code: code.to_owned(), message: message.into(), retryable: false, retry_at: None }
    }
}

/// Runs a `publish` job (see the module documentation). The job's
/// outcome: completed once the publication is published, failed or
/// canceled; snoozed while it waits for the short, for processing, or
/// for a platform quota to reset; a retryable failure is retried while
/// the job has attempts left, then fails the publication.
///
/// # Errors
/// A retryable job error (the publication is as it was), or a fatal one
/// carrying the publication's failure code.
pub async fn run(ctx: &JobContext, publisher: Publisher<'_>) -> std::result::Result<Outcome, JobError> {
    let job: PublishJob = ctx.job.payload().map_err(|e| JobError::fatal(e.to_string()))?;
    let (org, id) = (job.org_id, job.publication_id);
    let pool = ctx.pool();
    match step(pool, publisher, org, id).await {
        Ok(outcome) => Ok(outcome),
        Err(Failure { code, message, retry_at: Some(at), .. }) => {
            // The platform said when: wait until then, spending no attempt.
            retry_later(pool, org, id, &code, &message, at).await?;
            tracing::info!(publication = %id, code, retry_at = %at, "the platform asked to wait; retrying then");
            Ok(Outcome::Snooze((at - OffsetDateTime::now_utc()).try_into().unwrap_or(Duration::ZERO)))
        }
        Err(f) if f.retryable && ctx.job.attempt < ctx.job.max_attempts => {
            Err(JobError::retryable(f.message).with_code(f.code))
        }
        Err(f) => {
            fail(pool, org, id, &f.code, &f.message).await?;
            Err(JobError::fatal(f.message).with_code(f.code))
        }
    }
}

/// Records a failure for good (`publication.failed`).
async fn fail(pool: &PgPool, org: OrgId, id: uuid::Uuid, code: &str, message: &str) -> Result<Publication> {
    let change = Change {
        status: Some("failed"),
        failure: Some(Some((code, message))),
        retry_at: Some(None),
        session: Some(None),
        ..Change::default()
    };
    apply(pool, org, id, change, Some(EventType::PublicationFailed)).await
}

/// Back to `scheduled`, saying why and when it is tried again; the
/// upload session is kept, so the retry resumes it.
async fn retry_later(
    pool: &PgPool,
    org: OrgId,
    id: uuid::Uuid,
    code: &str,
    message: &str,
    at: OffsetDateTime,
) -> Result<Publication> {
    let change = Change {
        status: Some("scheduled"),
        failure: Some(Some((code, message))),
        retry_at: Some(Some(at)),
        ..Change::default()
    };
    apply(pool, org, id, change, None).await
}

/// One change in its own transaction, with its event when given.
async fn apply(
    pool: &PgPool,
    org: OrgId,
    id: uuid::Uuid,
    change: Change<'_>,
    event: Option<EventType>,
) -> Result<Publication> {
    let mut tx = pool.begin().await?;
    let p = update(&mut tx, org, id, change).await?;
    if let Some(kind) = event {
        record(&mut tx, org, kind, &p).await?;
    }
    tx.commit().await?;
    Ok(p)
}

/// What the job found when it began.
enum Begin {
    /// Nothing to do (canceled, published, failed, or gone).
    Nothing,
    /// The short is still rendering.
    Wait,
    /// Upload (or resume) it.
    Upload { p: Publication, video: ObjectKey, recipe: ObjectKey, session: Option<String> },
    /// Uploaded: follow processing.
    Processing(Publication),
}

async fn begin(pool: &PgPool, org: OrgId, id: uuid::Uuid) -> std::result::Result<Begin, Failure> {
    let ours = |e: Error| Failure::ours(&e);
    let mut tx = pool.begin().await.map_err(|e| ours(e.into()))?;
    let p = match lock(&mut tx, org, id).await {
        Ok(p) => p,
        Err(e) if e.code() == ErrorCode::PublicationNotFound => return Ok(Begin::Nothing),
        Err(e) => return Err(ours(e)),
    };
    match p.status.as_str() {
        "scheduled" | "uploading" => {}
        "processing" => return Ok(Begin::Processing(p)),
        _ => return Ok(Begin::Nothing),
    }
    let short = match db::get_short(&mut *tx, org, ShortId::from_uuid(p.short_id)).await {
        Ok(s) => s,
        Err(e) if e.code() == ErrorCode::ShortNotFound => {
            return Err(Failure::fatal("short_not_found", "the short was removed (re-analysed or deleted)"));
        }
        Err(e) => return Err(ours(e.into())),
    };
    let outputs = match (short.status, short.outputs) {
        (ShortStatus::Ready, Some(o)) => o,
        (ShortStatus::Failed, _) => {
            return Err(Failure::fatal("short_failed", "the short failed to render; there is nothing to publish"));
        }
        _ => return Ok(Begin::Wait),
    };
    let session: Option<String> =
        sqlx::query_scalar("SELECT upload_session FROM videdit.publications WHERE org_id = $1 AND id = $2")
            .bind(org.as_uuid())
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| ours(e.into()))?;
    let p = update(
        &mut tx,
        org,
        id,
        Change { status: Some("uploading"), retry_at: Some(None), failure: Some(None), ..Change::default() },
    )
    .await
    .map_err(ours)?;
    tx.commit().await.map_err(|e| ours(e.into()))?;
    Ok(Begin::Upload { p, video: outputs.video, recipe: outputs.recipe, session })
}

async fn step(
    pool: &PgPool,
    publisher: Publisher<'_>,
    org: OrgId,
    id: uuid::Uuid,
) -> std::result::Result<Outcome, Failure> {
    let ours = |e: Error| Failure::ours(&e);
    let begun = begin(pool, org, id).await?;
    let run = Run { pool, publisher, org };
    match begun {
        Begin::Nothing => Ok(Outcome::Complete),
        Begin::Wait => Ok(Outcome::Snooze(SHORT_WAIT)),
        Begin::Processing(p) => {
            let platform = Platform::parse(&p.platform).map_err(ours)?;
            publisher.platforms.check(platform).map_err(ours)?;
            match platform {
                Platform::YouTube => youtube::follow(&run, p).await,
                Platform::TikTok => tiktok::follow(&run, p).await,
                Platform::Instagram => instagram::follow(&run, p).await,
            }
        }
        Begin::Upload { p, video, recipe, session } => {
            let platform = Platform::parse(&p.platform).map_err(ours)?;
            publisher.platforms.check(platform).map_err(ours)?;
            let source = StorageSource::open(publisher.storage, video).await.map_err(ours)?;
            let recipe: ClipRecipe = videdit_core::storage::read_all(publisher.storage, &recipe)
                .await
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| Failure::fatal("short_not_found", "the short's recipe is missing from storage"))?;
            let total = i64::try_from(source.len()).unwrap_or(i64::MAX);
            let p = apply(pool, org, p.id, Change { bytes_total: Some(total), ..Change::default() }, None)
                .await
                .map_err(ours)?;
            let session = session
                .map(|s| publisher.keyring.open_str(&s, &session_context(org, p.id)))
                .transpose()
                .map_err(|e| Failure::fatal("internal", format!("the stored upload session does not open: {e}")))?;
            let job = Upload { p, source, recipe, session };
            match platform {
                Platform::YouTube => youtube::upload(&run, job).await,
                Platform::TikTok => tiktok::upload(&run, job).await,
                Platform::Instagram => instagram::upload(&run, job).await,
            }
        }
    }
}

/// One run of a publish job: what every platform's part needs.
struct Run<'a> {
    pool: &'a PgPool,
    publisher: Publisher<'a>,
    org: OrgId,
}

impl Run<'_> {
    /// The connection's access token; `force`: refreshed (after a 401).
    async fn token(&self, connection: uuid::Uuid, force: bool) -> std::result::Result<Secret<String>, Failure> {
        connections::access_token(
            self.pool,
            self.publisher.keyring,
            self.publisher.platforms,
            self.org,
            connection,
            force,
        )
        .await
        .map_err(|e| Failure::ours(&e))
    }

    /// A platform call with the connection's token, made again once with
    /// a refreshed token when the platform answers 401.
    async fn with_token<T, F, Fut>(&self, connection: uuid::Uuid, call: F) -> std::result::Result<T, Failure>
    where
        F: Fn(Secret<String>) -> Fut,
        Fut: Future<Output = std::result::Result<T, PublishError>>,
    {
        let token = self.token(connection, false).await?;
        match call(token).await {
            Err(PublishError::Unauthorized { .. }) => {
                let token = self.token(connection, true).await?;
                call(token).await.map_err(|e| Failure::platform(&e))
            }
            other => other.map_err(|e| Failure::platform(&e)),
        }
    }

    async fn apply(
        &self,
        id: uuid::Uuid,
        change: Change<'_>,
        event: Option<EventType>,
    ) -> std::result::Result<Publication, Failure> {
        apply(self.pool, self.org, id, change, event).await.map_err(|e| Failure::ours(&e))
    }

    /// Stores the upload session sealed, before the first byte goes.
    async fn store_session(&self, id: uuid::Uuid, session: &str) -> std::result::Result<(), Failure> {
        let sealed = self.publisher.keyring.seal(session.as_bytes(), &session_context(self.org, id));
        store_session(self.pool, self.org, id, &sealed).await.map_err(|e| Failure::ours(&e))
    }

    async fn clear_session(&self, id: uuid::Uuid) -> std::result::Result<(), Failure> {
        clear_session(self.pool, self.org, id).await.map_err(|e| Failure::ours(&e))
    }

    /// The publication's connection.
    async fn connection(&self, p: &Publication) -> std::result::Result<connections::Connection, Failure> {
        connections::get(self.pool, self.org, p.connection_id).await.map_err(|e| Failure::ours(&e))
    }

    /// Published: the platform's id, link and privacy (`publication.published`).
    async fn published(
        &self,
        p: &Publication,
        platform_id: &str,
        url: Option<&str>,
        privacy: &str,
        notice: Option<&str>,
    ) -> std::result::Result<Outcome, Failure> {
        let change = Change {
            status: Some("published"),
            platform: Some((platform_id, url, privacy, None)),
            notice: notice.map(Some),
            session: Some(None),
            uploaded: true,
            published: true,
            ..Change::default()
        };
        self.apply(p.id, change, Some(EventType::PublicationPublished)).await?;
        Ok(Outcome::Complete)
    }
}

/// A short ready to go: the publication, its bytes, its recipe, the
/// stored upload session (opened) if an earlier run began one.
struct Upload<'a> {
    p: Publication,
    source: StorageSource<'a>,
    recipe: ClipRecipe,
    session: Option<Secret<String>>,
}

/// How long to wait before looking at processing again: a quarter of the
/// time it has taken so far, within [`POLL_MIN`] and [`POLL_MAX`].
fn poll_after(since: OffsetDateTime) -> Duration {
    let elapsed: Duration = (OffsetDateTime::now_utc() - since).try_into().unwrap_or(Duration::ZERO);
    (elapsed / 4).clamp(POLL_MIN, POLL_MAX)
}

/// Fails a publication processing longer than [`PROCESSING_LIMIT`].
fn processing_timeout(p: &Publication, platform: &str) -> std::result::Result<(), Failure> {
    if OffsetDateTime::now_utc() - p.updated_at > PROCESSING_LIMIT {
        return Err(Failure::fatal(
            "platform_processing_timeout",
            format!("{platform} was still processing the video after {PROCESSING_LIMIT}"),
        ));
    }
    Ok(())
}

/// Runs an upload with its progress written once a second while it runs
/// and once at its end; `run` gets the counter of bytes the platform took.
async fn reporting<T, F, Fut>(pool: &PgPool, p: &Publication, run: F) -> std::result::Result<T, Failure>
where
    F: FnOnce(Arc<AtomicU64>) -> Fut,
    Fut: Future<Output = std::result::Result<T, Failure>>,
{
    let sent = Arc::new(AtomicU64::new(u64::try_from(p.bytes_sent).unwrap_or(0)));
    let reporter = {
        let (pool, sent, id) = (pool.clone(), sent.clone(), p.id);
        tokio::spawn(async move {
            let mut last = u64::MAX;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = sent.load(Ordering::Relaxed);
                if now != last {
                    last = now;
                    let _ = write_progress(&pool, id, now).await;
                }
            }
        })
    };
    let _stop = AbortOnDrop(reporter);
    let result = run(sent.clone()).await;
    // What the platform confirmed, also when the run ends between two reports.
    let _ = write_progress(pool, p.id, sent.load(Ordering::Relaxed)).await;
    result
}

async fn write_progress(pool: &PgPool, id: uuid::Uuid, sent: u64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE videdit.publications SET bytes_sent = $2, updated_at = now() WHERE id = $1 AND status = 'uploading'",
    )
    .bind(id)
    .bind(i64::try_from(sent).unwrap_or(i64::MAX))
    .execute(pool)
    .await
    .map(|_| ())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn store_session(pool: &PgPool, org: OrgId, id: uuid::Uuid, sealed: &str) -> Result<()> {
    sqlx::query(
        "UPDATE videdit.publications SET upload_session = $3, updated_at = now() WHERE org_id = $1 AND id = $2",
    )
    .bind(org.as_uuid())
    .bind(id)
    .bind(sealed)
    .execute(pool)
    .await?;
    Ok(())
}

async fn clear_session(pool: &PgPool, org: OrgId, id: uuid::Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE videdit.publications SET upload_session = NULL, bytes_sent = 0, updated_at = now()
          WHERE org_id = $1 AND id = $2",
    )
    .bind(org.as_uuid())
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// A short in object storage as a [`ByteSource`]: each `open` is one
/// ranged GET from the offset, streamed.
pub struct StorageSource<'a> {
    storage: &'a dyn Storage,
    key: ObjectKey,
    len: u64,
    content_type: String,
}

impl<'a> StorageSource<'a> {
    /// The object at `key`, its size read now.
    ///
    /// # Errors
    /// `short_not_found` when the object is gone; storage failures.
    pub async fn open(storage: &'a dyn Storage, key: ObjectKey) -> Result<Self> {
        let meta = storage
            .head(&key)
            .await?
            .ok_or_else(|| Error::new(ErrorCode::ShortNotFound, "the short's video is missing from storage"))?;
        let content_type = meta.content_type.unwrap_or_else(|| "video/mp4".to_owned());
        Ok(Self { storage, key, len: meta.size, content_type })
    }
}

#[async_trait::async_trait]
impl ByteSource for StorageSource<'_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn content_type(&self) -> &str {
        &self.content_type
    }

    async fn open(&self, offset: u64) -> std::io::Result<ByteStream> {
        let got = self.storage.get(&self.key, Some(ByteRange::from(offset))).await.map_err(std::io::Error::other)?;
        Ok(got.body)
    }
}
