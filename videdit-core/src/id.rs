//! Identifiers as validated newtypes.
//!
//! Every id is a UUID (version 7 when we mint it, so ids sort by creation
//! time and index well). The wire form is the canonical hyphenated UUID
//! string; parsing anything else is a typed error, never a panic.

use std::fmt;
use std::str::FromStr;

/// An id string that is not a valid UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {value:?} is not a UUID")]
pub struct InvalidId {
    /// Which id it was meant to be (`video id`, `org id`, …).
    pub kind: &'static str,
    /// The rejected input, cut to 64 characters.
    pub value: String,
}

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident, $label:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        #[cfg_attr(feature = "postgres", derive(sqlx::Type), sqlx(transparent))]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// Mints a new, time-ordered id.
            #[must_use]
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }

            /// Wraps an existing UUID.
            #[must_use]
            pub const fn from_uuid(uuid: uuid::Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside.
            #[must_use]
            pub const fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }

            /// Parses the wire form.
            ///
            /// # Errors
            /// [`InvalidId`] when `s` is not a UUID.
            pub fn parse(s: &str) -> Result<Self, InvalidId> {
                uuid::Uuid::try_parse(s.trim()).map(Self).map_err(|_| InvalidId {
                    kind: $label,
                    value: s.chars().take(64).collect(),
                })
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.to_string()
            }
        }
    };
}

define_id!(
    /// A video (an uploaded long-form source and everything derived from it).
    VideoId, "video id"
);
define_id!(
    /// One short cut from a video.
    ShortId, "short id"
);
define_id!(
    /// An organisation (the tenant boundary). A user without an organisation
    /// gets a personal one.
    OrgId, "organization id"
);
define_id!(
    /// A user of the API.
    UserId, "user id"
);
define_id!(
    /// A queued job.
    JobId, "job id"
);
define_id!(
    /// An upload session (single PUT or multipart).
    UploadId, "upload id"
);
define_id!(
    /// A domain event (also its idempotency key: the `webhook-id` header).
    EventId, "event id"
);
define_id!(
    /// An outbound webhook endpoint.
    WebhookId, "webhook id"
);
define_id!(
    /// One event's delivery to one webhook endpoint.
    DeliveryId, "delivery id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_its_wire_form() {
        let id = VideoId::new();
        let parsed: VideoId = id.to_string().parse().unwrap();
        assert_eq!(id, parsed);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<VideoId>(&json).unwrap(), id);
    }

    #[test]
    fn rejects_what_is_not_a_uuid() {
        for bad in ["", "abc", "../../etc/passwd", "1234", "0190f1e2-zzzz-7000-8000-000000000000"] {
            let err = VideoId::parse(bad).unwrap_err();
            assert_eq!(err.kind, "video id");
            assert!(err.to_string().contains("not a UUID"), "{err}");
        }
        assert!(serde_json::from_str::<ShortId>("\"nope\"").is_err());
    }

    #[test]
    fn new_ids_sort_by_creation() {
        let a = JobId::new();
        let b = JobId::new();
        assert!(a < b);
    }
}
