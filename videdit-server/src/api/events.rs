//! The events API: an organisation's domain events, oldest first after a
//! cursor, so a client can poll instead of receiving webhooks.

use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use time::OffsetDateTime;
use videdit_core::{Event, EventId};

use super::error::{ApiError, ApiResult};
use super::{ApiTags, BearerAuth};
use crate::auth::Action;

/// One domain event.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct EventBody {
    /// Id (UUIDv7, time-ordered; the cursor; the `webhook-id` of its deliveries).
    pub id: String,
    /// Type (`video.uploaded`, `video.stage_changed`, `transcript.ready`,
    /// `short.ready`, `short.failed`, `video.ready`, `video.failed`,
    /// `video.deleted`, `webhook.test`, `webhook.endpoint_disabled`).
    #[oai(rename = "type")]
    pub event_type: String,
    /// Payload format version.
    pub version: i32,
    /// When it happened.
    pub timestamp: OffsetDateTime,
    /// What happened.
    pub data: serde_json::Value,
}

impl From<&Event> for EventBody {
    fn from(e: &Event) -> Self {
        Self {
            id: e.id.to_string(),
            event_type: e.event_type.clone(),
            version: e.version,
            timestamp: e.created_at,
            data: e.payload.clone(),
        }
    }
}

/// A page of events.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct EventPage {
    /// Oldest first.
    pub items: Vec<EventBody>,
    /// Pass as `after` to get the events that follow (the last item's id,
    /// or the `after` given when the page is empty).
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

/// Events API.
pub struct EventsApi;

#[OpenApi(tag = "ApiTags::Events")]
impl EventsApi {
    /// List events
    ///
    /// The organisation's events after `after` (an event id), oldest first,
    /// optionally only some types (comma-separated). Poll with the returned
    /// `nextCursor` to follow a video's life without webhooks.
    #[oai(path = "/events", method = "get", operation_id = "listEvents")]
    async fn list(
        &self,
        auth: BearerAuth,
        #[oai(validator(pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"))]
        after: Query<Option<String>>,
        #[oai(validator(
            pattern = r"^(video\.uploaded|video\.stage_changed|transcript\.ready|short\.ready|short\.failed|video\.ready|video\.failed|video\.deleted|webhook\.test|webhook\.endpoint_disabled|billing\.plan_changed|billing\.quota_exceeded|billing\.payment_failed|publication\.scheduled|publication\.published|publication\.failed|publication\.canceled)(,(video\.uploaded|video\.stage_changed|transcript\.ready|short\.ready|short\.failed|video\.ready|video\.failed|video\.deleted|webhook\.test|webhook\.endpoint_disabled|billing\.plan_changed|billing\.quota_exceeded|billing\.payment_failed|publication\.scheduled|publication\.published|publication\.failed|publication\.canceled))*$"
        ))]
        types: Query<Option<String>>,
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<i64>,
    ) -> ApiResult<Json<EventPage>> {
        let (p, state) = auth.may(Action::Read)?;
        let after: Option<EventId> = match after.0.as_deref() {
            None | Some("") => None,
            Some(raw) => {
                Some(raw.parse().map_err(|_| ApiError::invalid(format!("after: {raw:?} is not an event id")))?)
            }
        };
        let types: Vec<String> = types
            .0
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        let events = videdit_service::events::list(&state.pool, p.org_id, after, &types, limit.0).await?;
        let next_cursor = events.last().map(|e| e.id.to_string()).or_else(|| after.map(|a| a.to_string()));
        Ok(Json(EventPage { items: events.iter().map(EventBody::from).collect(), next_cursor }))
    }
}

fn default_limit() -> i64 {
    100
}

#[cfg(test)]
mod tests {
    /// The `types` pattern of the spec names every event type.
    #[test]
    fn the_types_pattern_names_every_event_type() {
        let listed = "video.uploaded|video.stage_changed|transcript.ready|short.ready|short.failed|video.ready|video.failed|video.deleted|webhook.test|webhook.endpoint_disabled|billing.plan_changed|billing.quota_exceeded|billing.payment_failed|publication.scheduled|publication.published|publication.failed|publication.canceled";
        let listed: Vec<&str> = listed.split('|').collect();
        let all: Vec<&str> = videdit_core::event::EventType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(listed, all, "update the `types` pattern in events.rs");
    }
}
