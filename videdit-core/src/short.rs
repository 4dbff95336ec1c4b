//! Shorts: the ranked clips cut from a video.

use serde::{Deserialize, Serialize};

use crate::error_code::stable_names;
use crate::id::{ShortId, VideoId};
use crate::storage::ObjectKey;
use crate::time_range::TimeRange;

/// Explainable parts of a short's score, each in `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct SubScores {
    /// How strongly the opening sentence grabs attention.
    pub hook: f32,
    /// Starts on a self-contained sentence and ends on a full stop.
    pub completeness: f32,
    /// Lexical cohesion inside the clip against its surroundings.
    pub coherence: f32,
    /// Terms frequent here and rare elsewhere.
    pub salience: f32,
    /// Speech rate, pauses and loudness.
    pub delivery: f32,
    /// `1.0` means no filler words at all.
    pub filler: f32,
}

stable_names! {
    /// Where a short is in its life cycle.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum ShortStatus {
        /// Chosen, waiting to be rendered.
        Pending => "pending",
        /// Being rendered.
        Rendering => "rendering",
        /// Rendered and stored.
        Ready => "ready",
        /// Rendering failed for good.
        Failed => "failed",
    }
}

impl ShortStatus {
    /// Whether no further transition is expected.
    #[must_use]
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Ready | Self::Failed)
    }
}

/// Where a rendered short's files live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShortOutputs {
    /// The MP4.
    pub video: ObjectKey,
    /// The JPEG thumbnail.
    pub thumbnail: ObjectKey,
    /// The clip recipe (JSON) it was rendered from.
    pub recipe: ObjectKey,
}

/// A short as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Short {
    /// Its id.
    pub id: ShortId,
    /// The source video.
    pub video_id: VideoId,
    /// 1 for the best.
    pub rank: i32,
    /// Overall score, 0..=100.
    pub score: f32,
    /// The parts of the score.
    pub sub_scores: SubScores,
    /// One line saying why it was picked.
    pub reason: String,
    /// Suggested title.
    pub title: String,
    /// The source range it covers.
    pub range: TimeRange,
    /// Life-cycle status.
    pub status: ShortStatus,
    /// Output keys once rendered.
    pub outputs: Option<ShortOutputs>,
}
