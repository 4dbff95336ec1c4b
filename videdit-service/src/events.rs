//! Domain events: recorded in the transaction of the change they describe
//! (the outbox), with one webhook delivery job per subscribed endpoint
//! enqueued in the same transaction.

use sqlx::PgConnection;
use videdit_core::event::{Event, EventType};
use videdit_core::{EventId, OrgId, Video, db};
use videdit_queue::JobSpec;

use crate::error::Result;
use crate::jobs::WEBHOOK_QUEUE;

/// Most events one page of the events API returns.
pub const MAX_PAGE: i64 = 500;

/// Records an event and queues its webhook deliveries, in the caller's
/// transaction.
///
/// # Errors
/// Database failures.
pub async fn record(
    conn: &mut PgConnection,
    org: OrgId,
    event_type: EventType,
    subject: Option<uuid::Uuid>,
    payload: serde_json::Value,
) -> Result<Event> {
    let event = db::insert_event(&mut *conn, org, event_type, subject, &payload).await?;
    let deliveries = db::deliveries_for(&mut *conn, &event, None).await?;
    crate::webhooks::enqueue_deliveries(&mut *conn, org, &deliveries).await?;
    Ok(event)
}

/// The common payload about a video.
#[must_use]
pub fn video_payload(video: &Video) -> serde_json::Value {
    let mut p = serde_json::json!({
        "videoId": video.id,
        "title": video.title,
        "status": video.status.state(),
    });
    if let Some(stage) = video.status.stage() {
        p["stage"] = serde_json::json!(stage.as_str());
    }
    if let Some(d) = video.duration_seconds {
        p["durationSeconds"] = serde_json::json!(d);
    }
    if let Some(reason) = video.status.failure_reason() {
        p["failureReason"] = serde_json::json!(reason);
    }
    if let Some(code) = video.failure_code {
        p["failureCode"] = serde_json::json!(code.as_str());
    }
    p
}

/// Records an event about a video with [`video_payload`] plus `extra` fields.
///
/// # Errors
/// Database failures.
pub async fn record_for_video(
    conn: &mut PgConnection,
    video: &Video,
    event_type: EventType,
    extra: serde_json::Value,
) -> Result<Event> {
    let mut payload = video_payload(video);
    if let (Some(p), Some(e)) = (payload.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    record(conn, video.org_id, event_type, Some(video.id.as_uuid()), payload).await
}

/// An organisation's events after `after`, oldest first.
///
/// # Errors
/// `invalid_request` for an unknown type or a bad limit; database failures.
pub async fn list(
    db: impl sqlx::PgExecutor<'_>,
    org: OrgId,
    after: Option<EventId>,
    types: &[String],
    limit: i64,
) -> Result<Vec<Event>> {
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(crate::Error::invalid(format!("limit must be 1 to {MAX_PAGE}")));
    }
    if let Some(bad) = types.iter().find(|t| EventType::parse(t).is_none()) {
        return Err(crate::Error::invalid(format!("unknown event type {bad:?}")));
    }
    Ok(db::list_events(db, org, after, types, limit).await?)
}

/// A job spec for delivering one event to one endpoint.
pub(crate) fn delivery_job(org: OrgId, delivery: videdit_core::DeliveryId) -> Result<JobSpec> {
    Ok(JobSpec::new(
        videdit_core::JobKind::DeliverWebhook.as_str(),
        &serde_json::json!({"orgId": org, "deliveryId": delivery}),
    )?
    .queue(WEBHOOK_QUEUE)
    .group(org.to_string())
    .unique_key(format!("deliver:{delivery}"))
    .max_attempts(1_000)
    .metadata(serde_json::json!({"orgId": org, "deliveryId": delivery, "kind": "deliver_webhook"})))
}
