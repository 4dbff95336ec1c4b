//! Videos: an uploaded long-form source and its processing status.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::id::{OrgId, VideoId};

/// Which stage of processing a video is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessingStage {
    /// Probing and validating the uploaded source.
    Ingesting,
    /// Speech to text.
    Transcribing,
    /// Finding the best moments.
    Analyzing,
    /// Cutting, reframing and captioning the shorts.
    Rendering,
}

impl ProcessingStage {
    /// Stable name, as stored and sent.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ingesting => "ingesting",
            Self::Transcribing => "transcribing",
            Self::Analyzing => "analyzing",
            Self::Rendering => "rendering",
        }
    }

    /// Parses the stored name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ingesting" => Self::Ingesting,
            "transcribing" => Self::Transcribing,
            "analyzing" => Self::Analyzing,
            "rendering" => Self::Rendering,
            _ => return None,
        })
    }
}

/// The life cycle of a video.
///
/// `uploading → uploaded → processing(stage…) → ready | failed`; a failed
/// video can be processed again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum VideoStatus {
    /// Waiting for the client to finish uploading the source.
    Uploading,
    /// The source is in storage; processing has not started.
    Uploaded,
    /// A processing stage is running.
    Processing {
        /// The current stage.
        stage: ProcessingStage,
    },
    /// Shorts are available.
    Ready,
    /// Processing stopped; `reason` says why in words a user understands.
    Failed {
        /// Human-readable reason.
        reason: String,
    },
}

impl VideoStatus {
    /// The stored state name.
    #[must_use]
    pub fn state(&self) -> &'static str {
        match self {
            Self::Uploading => "uploading",
            Self::Uploaded => "uploaded",
            Self::Processing { .. } => "processing",
            Self::Ready => "ready",
            Self::Failed { .. } => "failed",
        }
    }

    /// The stage while processing.
    #[must_use]
    pub fn stage(&self) -> Option<ProcessingStage> {
        match self {
            Self::Processing { stage } => Some(*stage),
            _ => None,
        }
    }

    /// The failure reason when failed.
    #[must_use]
    pub fn failure_reason(&self) -> Option<&str> {
        match self {
            Self::Failed { reason } => Some(reason),
            _ => None,
        }
    }

    /// Whether the video state machine allows moving from `self` to `next`.
    ///
    /// ```text
    /// uploading ──► uploaded ──► processing(ingesting → transcribing → analyzing → rendering) ──► ready
    ///     │             │                  │                                                      │
    ///     └─────────────┴──────────────────┴──────────► failed ◄─────────────────────────────────┘ (never from ready)
    /// ready | failed ──► processing(any stage)   (re-analyse, re-render, retry)
    /// ```
    ///
    /// Staying in the same status is allowed (handlers may run twice).
    /// Stages only move forward within one run; going back to an earlier
    /// stage means a new run, which only `ready` or `failed` may start.
    #[must_use]
    pub fn can_become(&self, next: &VideoStatus) -> bool {
        use VideoStatus::{Failed, Processing, Ready, Uploaded, Uploading};
        if self == next {
            return true;
        }
        match (self, next) {
            (Uploading, Uploaded | Failed { .. }) => true,
            (Uploaded, Processing { .. } | Failed { .. }) => true,
            (Processing { stage: a }, Processing { stage: b }) => b > a,
            (Processing { .. }, Ready | Failed { .. }) => true,
            (Ready | Failed { .. }, Processing { .. }) => true,
            (Failed { .. }, Failed { .. }) => true,
            _ => false,
        }
    }

    /// Rebuilds a status from its stored columns.
    #[must_use]
    pub fn from_parts(state: &str, stage: Option<&str>, reason: Option<&str>) -> Option<Self> {
        Some(match state {
            "uploading" => Self::Uploading,
            "uploaded" => Self::Uploaded,
            "processing" => Self::Processing { stage: ProcessingStage::parse(stage?)? },
            "ready" => Self::Ready,
            "failed" => Self::Failed { reason: reason.unwrap_or("unknown").to_owned() },
            _ => return None,
        })
    }
}

/// A video as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Video {
    /// Its id.
    pub id: VideoId,
    /// The organisation that owns it.
    pub org_id: OrgId,
    /// Display title (defaults to the uploaded file name).
    pub title: String,
    /// Processing status.
    pub status: VideoStatus,
    /// The stable error code of a failed video (`invalid_media`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<crate::ErrorCode>,
    /// Duration of the source in seconds, once probed.
    pub duration_seconds: Option<f64>,
    /// Size of the source in bytes, once uploaded.
    pub size_bytes: Option<i64>,
    /// Where the uploaded source is stored (never sent to clients).
    #[serde(default, skip_serializing)]
    pub source_key: Option<crate::storage::ObjectKey>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_its_columns() {
        let all = [
            VideoStatus::Uploading,
            VideoStatus::Uploaded,
            VideoStatus::Processing { stage: ProcessingStage::Analyzing },
            VideoStatus::Ready,
            VideoStatus::Failed { reason: "no audio".into() },
        ];
        for s in all {
            let back = VideoStatus::from_parts(s.state(), s.stage().map(ProcessingStage::as_str), s.failure_reason());
            assert_eq!(back, Some(s));
        }
        assert_eq!(VideoStatus::from_parts("processing", None, None), None);
        assert_eq!(VideoStatus::from_parts("bogus", None, None), None);
    }

    #[test]
    fn the_state_machine() {
        use ProcessingStage::*;
        let p = |stage| VideoStatus::Processing { stage };
        let failed = VideoStatus::Failed { reason: "x".into() };
        let allowed = [
            (VideoStatus::Uploading, VideoStatus::Uploaded),
            (VideoStatus::Uploading, failed.clone()),
            (VideoStatus::Uploaded, p(Ingesting)),
            (p(Ingesting), p(Transcribing)),
            (p(Transcribing), p(Rendering)),
            (p(Rendering), VideoStatus::Ready),
            (p(Analyzing), failed.clone()),
            (VideoStatus::Ready, p(Analyzing)),
            (failed.clone(), p(Ingesting)),
            (p(Rendering), p(Rendering)),
        ];
        for (a, b) in &allowed {
            assert!(a.can_become(b), "{a:?} -> {b:?}");
        }
        let refused = [
            (VideoStatus::Uploading, p(Ingesting)),
            (VideoStatus::Uploading, VideoStatus::Ready),
            (VideoStatus::Uploaded, VideoStatus::Ready),
            (p(Rendering), p(Transcribing)),
            (VideoStatus::Ready, failed.clone()),
            (VideoStatus::Ready, VideoStatus::Uploading),
            (p(Analyzing), VideoStatus::Uploaded),
            (failed.clone(), VideoStatus::Ready),
        ];
        for (a, b) in &refused {
            assert!(!a.can_become(b), "{a:?} -> {b:?}");
        }
    }

    #[test]
    fn status_json_is_tagged() {
        let s = VideoStatus::Processing { stage: ProcessingStage::Transcribing };
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::json!({"state": "processing", "stage": "transcribing"})
        );
    }
}
