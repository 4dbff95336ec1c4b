//! Clip recipes: everything needed to render one short, as versioned JSON.
//!
//! Rendering takes only a recipe, so a recipe that a user edited (trimmed,
//! restyled, a word corrected) renders the same way every time.

use serde::{Deserialize, Serialize};

use crate::time_range::TimeRange;
use crate::transcript::Word;

/// The recipe format version this build writes.
pub const RECIPE_VERSION: u32 = 1;

/// Output frame shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Aspect {
    /// 1080×1920, the default for Shorts, TikTok and Reels.
    #[default]
    #[serde(rename = "9:16")]
    Vertical,
    /// 1080×1080.
    #[serde(rename = "1:1")]
    Square,
    /// 1080×1350.
    #[serde(rename = "4:5")]
    Portrait,
    /// 1920×1080.
    #[serde(rename = "16:9")]
    Landscape,
}

impl Aspect {
    /// Output width and height in pixels.
    #[must_use]
    pub const fn size(self) -> (u32, u32) {
        match self {
            Self::Vertical => (1080, 1920),
            Self::Square => (1080, 1080),
            Self::Portrait => (1080, 1350),
            Self::Landscape => (1920, 1080),
        }
    }
}

/// How the source frame is fitted into the output frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Reframe {
    /// Crop the source to the output shape. `x` is the horizontal centre of
    /// the crop as a fraction of the source width (0.5 = centre).
    Crop {
        /// Crop centre, 0..=1; `None` means the middle.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        x: Option<f32>,
    },
    /// Show the whole source frame over a blurred, scaled copy of itself.
    #[default]
    Fit,
}

/// Caption look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CaptionStyle {
    /// Bold white with a black outline; the active word turns yellow.
    #[default]
    Bold,
    /// White text; the active word yellow and larger.
    Highlight,
    /// White text on a dark box.
    Boxed,
    /// No captions.
    None,
}

/// A full description of one short.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipRecipe {
    /// Format version ([`RECIPE_VERSION`]).
    pub version: u32,
    /// The source, as a path or URL the renderer can read.
    pub source: String,
    /// The part of the source to cut, in source seconds.
    pub range: TimeRange,
    /// Output shape.
    #[serde(default)]
    pub aspect: Aspect,
    /// How the source is fitted.
    #[serde(default)]
    pub reframe: Reframe,
    /// Caption look.
    #[serde(default)]
    pub caption_style: CaptionStyle,
    /// The words to caption, with source-time stamps (inside `range`).
    pub words: Vec<Word>,
    /// Title shown to the user (not burned in).
    #[serde(default)]
    pub title: String,
}
