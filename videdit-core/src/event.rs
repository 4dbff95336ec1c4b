//! Domain events: what happened to an organisation's videos, as a
//! versioned JSON payload with a stable type name. Written to the outbox
//! in the transaction of the change they describe; read through the events
//! API and delivered to webhooks.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error_code::stable_names;
use crate::id::{EventId, OrgId};

/// The payload format version this build writes.
pub const EVENT_VERSION: i32 = 1;

stable_names! {
    /// The kinds of events, with their stable names (`video.ready`, …).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum EventType {
        /// The source is uploaded and processing starts.
        VideoUploaded => "video.uploaded",
        /// The video entered another processing stage (milestones, not progress ticks).
        VideoStageChanged => "video.stage_changed",
        /// The transcript is stored.
        TranscriptReady => "transcript.ready",
        /// A short was rendered.
        ShortReady => "short.ready",
        /// A short failed to render for good.
        ShortFailed => "short.failed",
        /// Every short is finished and at least one is ready (or none was found).
        VideoReady => "video.ready",
        /// Processing stopped; the payload has the code and the reason.
        VideoFailed => "video.failed",
        /// The video and its files are being deleted.
        VideoDeleted => "video.deleted",
        /// A test event sent from the webhooks API.
        WebhookTest => "webhook.test",
        /// A webhook endpoint was disabled (410, or failing for days).
        WebhookDisabled => "webhook.endpoint_disabled",
        /// The organisation's effective plan changed (subscription, cancellation, or a grace period that ended).
        BillingPlanChanged => "billing.plan_changed",
        /// A video was refused because the period's minutes (or a plan limit) ran out.
        BillingQuotaExceeded => "billing.quota_exceeded",
        /// A subscription payment failed; the grace period started.
        BillingPaymentFailed => "billing.payment_failed",
        /// A short was scheduled for publication to a connected account (or rescheduled).
        PublicationScheduled => "publication.scheduled",
        /// A publication is on the platform: its id and URL (and, for a scheduled YouTube post, when it goes public).
        PublicationPublished => "publication.published",
        /// A publication failed for good: the platform's code and its own message.
        PublicationFailed => "publication.failed",
        /// A publication was canceled before anything was uploaded.
        PublicationCanceled => "publication.canceled",
    }
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Its id (UUIDv7: ordered by time; the cursor of the events API).
    pub id: EventId,
    /// The organisation it belongs to.
    pub org_id: OrgId,
    /// The stable type name.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Payload format version.
    pub version: i32,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// What happened (camelCase JSON; ids as strings).
    pub payload: serde_json::Value,
}

impl Event {
    /// The JSON document sent to webhooks and shown by the events API:
    /// `{id, type, version, timestamp, data}`.
    #[must_use]
    pub fn envelope(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "type": self.event_type,
            "version": self.version,
            "timestamp": self.created_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "data": self.payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
            assert!(seen.insert(t.as_str()), "{t} twice");
            assert!(t.as_str().contains('.'), "{t}");
        }
        assert_eq!(EventType::parse("video.exploded"), None);
    }
}
