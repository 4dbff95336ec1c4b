//! Publications: schedule a short to a connected account, follow it, cancel
//! or reschedule it. The life cycle is `videdit_service::publications`;
//! these are its adapters. Members may publish (like rendering, it is the
//! work the organisation's accounts exist for); connecting an account is
//! an admin's.

use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use time::OffsetDateTime;
use videdit_core::{ErrorCode, ShortId};
use videdit_service::publications::{self, NewPublication, Publication, PublishOptions};

use super::error::{ApiError, ApiResult};
use super::idempotency::idempotent;
use super::{ApiTags, BearerAuth};
use crate::auth::Action;

/// Per-platform options; each is refused (400) by the platforms it does
/// not apply to.
#[derive(Debug, Clone, Default, Object, serde::Serialize, serde::Deserialize)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct PublicationOptions {
    /// TikTok: comments on. Default: on where the account allows them; asking
    /// for them where it does not fails with `platform_option_not_allowed`.
    pub allow_comments: Option<bool>,
    /// TikTok: duets on (default: where the account allows).
    pub allow_duet: Option<bool>,
    /// TikTok: stitches on (default: where the account allows).
    pub allow_stitch: Option<bool>,
    /// TikTok: labelled as AI-generated content (default off).
    pub ai_generated: Option<bool>,
    /// Instagram: shown in the feed as well as in Reels (default on).
    pub share_to_feed: Option<bool>,
}

impl From<PublicationOptions> for PublishOptions {
    fn from(o: PublicationOptions) -> Self {
        Self {
            allow_comments: o.allow_comments,
            allow_duet: o.allow_duet,
            allow_stitch: o.allow_stitch,
            ai_generated: o.ai_generated,
            share_to_feed: o.share_to_feed,
        }
    }
}

impl From<PublishOptions> for PublicationOptions {
    fn from(o: PublishOptions) -> Self {
        Self {
            allow_comments: o.allow_comments,
            allow_duet: o.allow_duet,
            allow_stitch: o.allow_stitch,
            ai_generated: o.ai_generated,
            share_to_feed: o.share_to_feed,
        }
    }
}

/// A publication of a short to a connected account.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct PublicationBody {
    /// Id.
    pub id: String,
    /// The short.
    pub short_id: String,
    /// The short's video.
    pub video_id: String,
    /// The connected account.
    pub connection_id: String,
    /// `youtube`, `tiktok` or `instagram`.
    pub platform: String,
    /// Title on the platform (TikTok and Instagram: the caption's first
    /// line, then the description and the tags as hashtags).
    pub title: String,
    /// Description on the platform.
    pub description: String,
    /// Tags.
    pub tags: Vec<String>,
    /// As asked (see `CreatePublication.privacy`).
    pub privacy: String,
    /// The per-platform options asked.
    pub options: PublicationOptions,
    /// When it is published; absent: as soon as the short is ready.
    pub scheduled_at: Option<OffsetDateTime>,
    /// `scheduled`, `uploading`, `processing`, `published`, `failed` or `canceled`.
    pub status: String,
    /// Bytes the platform has confirmed.
    pub bytes_sent: i64,
    /// The short's size, once the upload started.
    pub bytes_total: Option<i64>,
    /// The platform's id of the video.
    pub platform_id: Option<String>,
    /// Where the video is on the platform.
    pub url: Option<String>,
    /// The privacy the platform gave the video.
    pub platform_privacy: Option<String>,
    /// The platform's own release time (YouTube's `publishAt`).
    pub platform_publish_at: Option<OffsetDateTime>,
    /// Where the platform did otherwise than asked (a private video from
    /// an unverified API project).
    pub notice: Option<String>,
    /// Why it failed, a stable code (`platform_rule_*`, `platform_quota_exceeded`,
    /// `needs_reauthorization`, `platform_processing_failed`, ...); with
    /// `retryAt`, why it waits.
    pub failure_code: Option<String>,
    /// The platform's own message.
    pub failure_message: Option<String>,
    /// When it is tried again (a spent daily quota resets at midnight Pacific).
    pub retry_at: Option<OffsetDateTime>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
    /// When it was published.
    pub published_at: Option<OffsetDateTime>,
}

impl From<Publication> for PublicationBody {
    fn from(p: Publication) -> Self {
        Self {
            id: p.id.to_string(),
            short_id: p.short_id.to_string(),
            video_id: p.video_id.to_string(),
            connection_id: p.connection_id.to_string(),
            platform: p.platform,
            title: p.title,
            description: p.description,
            tags: p.tags,
            privacy: p.privacy,
            options: p.options.0.into(),
            scheduled_at: p.scheduled_at,
            status: p.status,
            bytes_sent: p.bytes_sent,
            bytes_total: p.bytes_total,
            platform_id: p.platform_id,
            url: p.platform_url,
            platform_privacy: p.platform_privacy,
            platform_publish_at: p.platform_publish_at,
            notice: p.notice,
            failure_code: p.failure_code,
            failure_message: p.failure_message,
            retry_at: p.retry_at,
            created_at: p.created_at,
            updated_at: p.updated_at,
            published_at: p.published_at,
        }
    }
}

/// What to publish where, and when.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct CreatePublication {
    /// The connected account (`GET /connections`).
    pub connection_id: String,
    /// Title; absent: the short's suggested title. YouTube: at most 100
    /// characters, no `<` or `>`.
    pub title: Option<String>,
    /// Description. YouTube: at most 5000 bytes, no `<` or `>`.
    #[oai(default)]
    pub description: String,
    /// Tags. YouTube: at most 500 characters together.
    #[oai(default)]
    pub tags: Vec<String>,
    /// YouTube: `public`, `unlisted` or `private`. TikTok: `public`,
    /// `friends` (mutual followers), `followers` or `private` (`SELF_ONLY`;
    /// the only one an app TikTok has not audited may use), each only where
    /// the account offers it. Instagram: `public`.
    #[oai(default = "default_privacy", validator(pattern = "^(public|unlisted|private|friends|followers)$"))]
    pub privacy: String,
    /// When to publish (RFC 3339, at most a year ahead); absent or past: as
    /// soon as the short is ready. A short still rendering can be scheduled.
    pub scheduled_at: Option<OffsetDateTime>,
    /// Per-platform options.
    #[oai(default)]
    pub options: PublicationOptions,
}

fn default_privacy() -> String {
    "public".to_owned()
}

/// A new time.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct Reschedule {
    /// When to publish; absent: now.
    pub scheduled_at: Option<OffsetDateTime>,
}

/// Publications, newest first.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PublicationList {
    /// At most 500.
    pub items: Vec<PublicationBody>,
}

#[derive(ApiResponse)]
enum Created {
    /// Scheduled.
    #[oai(status = 201)]
    Created(Json<PublicationBody>),
}

fn publication_id(raw: &str) -> ApiResult<uuid::Uuid> {
    raw.parse().map_err(|_| ApiError::new(ErrorCode::PublicationNotFound, format!("publication {raw:?} not found")))
}

fn short_id(raw: &str) -> ApiResult<ShortId> {
    raw.parse().map_err(|_| ApiError::new(ErrorCode::ShortNotFound, format!("short {raw:?} not found")))
}

pub struct PublicationsApi;

#[OpenApi(tag = "ApiTags::Publications")]
impl PublicationsApi {
    /// Publish a short to a connected account
    ///
    /// Checks the short, the account and the platform's rules for the
    /// title, description, tags and duration at once (`platform_rule_*`,
    /// 422), then schedules one publish job at `scheduledAt` (ours on every
    /// platform). When it runs: the file's size, shape and format
    /// (Instagram: MP4 with `moov` first, H.264, AAC, 3 s to 15 min) and,
    /// on TikTok, what the account allows (`platform_option_not_allowed`,
    /// `platform_unaudited_client`) are checked before any byte goes; the
    /// upload is resumable, so a failure midway resumes rather than starts
    /// over; a platform's limit (YouTube's daily quota, TikTok's inits a
    /// minute and posts a day, Instagram's posts in a rolling day) makes it
    /// wait (`retryAt`) rather than fail. To publish one short to several
    /// accounts, make one publication each. Send an `Idempotency-Key`
    /// header so that a retried request cannot post twice.
    #[oai(path = "/shorts/:id/publications", method = "post", operation_id = "createPublication")]
    async fn create(
        &self,
        auth: BearerAuth,
        id: Path<String>,
        body: Json<CreatePublication>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
    ) -> ApiResult<Created> {
        let (p, state) = auth.may(Action::Process)?;
        let short = short_id(&id.0)?;
        let b = body.0;
        let request = (&id.0, &b);
        let created = idempotent(&state, p, idempotency_key.0.as_deref(), "createPublication", &request, async {
            let connection_id = b.connection_id.parse().map_err(|_| {
                ApiError::new(ErrorCode::ConnectionNotFound, format!("connection {:?} not found", b.connection_id))
            })?;
            let new = NewPublication {
                connection_id,
                title: b.title.clone(),
                description: b.description.clone(),
                tags: b.tags.clone(),
                privacy: b.privacy.clone(),
                scheduled_at: b.scheduled_at,
                options: b.options.clone().into(),
            };
            let created = publications::create(&state.pool, p.org_id, Some(p.user_id), short, new).await?;
            Ok(PublicationBody::from(created))
        })
        .await?;
        Ok(Created::Created(Json(created)))
    }

    /// List publications
    ///
    /// The organisation's publications, newest first; of one short with `shortId`.
    #[oai(path = "/publications", method = "get", operation_id = "listPublications")]
    async fn list(
        &self,
        auth: BearerAuth,
        #[oai(name = "shortId")] short: Query<Option<String>>,
    ) -> ApiResult<Json<PublicationList>> {
        let (p, state) = auth.may(Action::Read)?;
        let short = short.0.as_deref().map(short_id).transpose()?;
        let items = publications::list(&state.pool, p.org_id, short).await?.into_iter().map(Into::into).collect();
        Ok(Json(PublicationList { items }))
    }

    /// Get a publication
    ///
    /// Its status, upload progress (`bytesSent` of `bytesTotal`), the
    /// platform's id and URL once uploaded, or the failure.
    #[oai(path = "/publications/:id", method = "get", operation_id = "getPublication")]
    async fn get(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<PublicationBody>> {
        let (p, state) = auth.may(Action::Read)?;
        Ok(Json(publications::get(&state.pool, p.org_id, publication_id(&id.0)?).await?.into()))
    }

    /// Cancel a publication
    ///
    /// Only one still `scheduled` (nothing uploaded yet): 409
    /// `invalid_state` afterwards.
    #[oai(path = "/publications/:id/cancel", method = "post", operation_id = "cancelPublication")]
    async fn cancel(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<PublicationBody>> {
        let (p, state) = auth.may(Action::Process)?;
        Ok(Json(publications::cancel(&state.pool, p.org_id, publication_id(&id.0)?).await?.into()))
    }

    /// Reschedule a publication
    ///
    /// Moves a `scheduled` publication to another time, or tries a `failed`
    /// one again (from the start) at that time; absent `scheduledAt`: now.
    #[oai(path = "/publications/:id/reschedule", method = "post", operation_id = "reschedulePublication")]
    async fn reschedule(
        &self,
        auth: BearerAuth,
        id: Path<String>,
        body: Json<Reschedule>,
    ) -> ApiResult<Json<PublicationBody>> {
        let (p, state) = auth.may(Action::Process)?;
        let id = publication_id(&id.0)?;
        Ok(Json(publications::reschedule(&state.pool, p.org_id, id, body.0.scheduled_at).await?.into()))
    }
}
