//! Clip recipes: everything needed to render one short, as versioned JSON.
//!
//! Rendering takes only a recipe, so a recipe that a user edited (trimmed,
//! restyled, a word corrected) renders the same way every time.

use serde::{Deserialize, Serialize};

use crate::error_code::stable_names;
use crate::time_range::TimeRange;
use crate::transcript::Word;

/// The recipe format version this build writes.
pub const RECIPE_VERSION: u32 = 1;

stable_names! {
    /// Output frame shape; its stable name is the one the API uses (`9:16`, …).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
    pub enum Aspect {
        /// 1080×1920, the default for Shorts, TikTok and Reels.
        #[default]
        #[serde(rename = "9:16")]
        Vertical => "9:16",
        /// 1080×1080.
        #[serde(rename = "1:1")]
        Square => "1:1",
        /// 1080×1350.
        #[serde(rename = "4:5")]
        Portrait => "4:5",
        /// 1920×1080.
        #[serde(rename = "16:9")]
        Landscape => "16:9",
    }
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

stable_names! {
    /// Caption look; its stable name is the one the API uses (`bold`, …).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
    #[serde(rename_all = "snake_case")]
    pub enum CaptionStyle {
        /// Bold white with a black outline; the active word turns yellow.
        #[default]
        Bold => "bold",
        /// White text; the active word yellow and larger.
        Highlight => "highlight",
        /// White text on a dark box.
        Boxed => "boxed",
        /// No captions.
        None => "none",
    }
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

/// Longest short a recipe may describe, in seconds.
pub const MAX_RECIPE_SECONDS: f64 = 180.0;
/// Most words in a recipe.
pub const MAX_RECIPE_WORDS: usize = 2000;
/// Longest title.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest caption word.
pub const MAX_WORD_CHARS: usize = 100;

/// A recipe that cannot be rendered as it stands; the message says why in
/// the API's field names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRecipe(pub String);

/// `InvalidRecipe` for a `field` whose `value` is none of `names`.
fn not_one_of(field: &str, value: &str, names: impl Iterator<Item = &'static str>) -> InvalidRecipe {
    InvalidRecipe(format!("{field} {value:?} is not one of {}", names.collect::<Vec<_>>().join(", ")))
}

impl std::str::FromStr for Aspect {
    type Err = InvalidRecipe;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| not_one_of("aspect", s, Self::ALL.iter().map(|a| a.as_str())))
    }
}

impl std::str::FromStr for CaptionStyle {
    type Err = InvalidRecipe;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| not_one_of("captionStyle", s, Self::ALL.iter().map(|c| c.as_str())))
    }
}

impl Reframe {
    /// Builds a reframe from the API's `{mode, x}`.
    ///
    /// # Errors
    /// An unknown mode, an `x` with `fit`, or `x` outside 0..=1.
    pub fn from_parts(mode: &str, x: Option<f32>) -> Result<Self, InvalidRecipe> {
        match (mode, x) {
            ("fit", None) => Ok(Self::Fit),
            ("crop", x) if x.is_none_or(|x| (0.0..=1.0).contains(&x)) => Ok(Self::Crop { x }),
            _ => Err(InvalidRecipe("reframe is {mode: fit} or {mode: crop, x: 0..1}".into())),
        }
    }
}

/// Checks a recipe's format version (what the renderer can read).
///
/// # Errors
/// A version this build does not read.
pub fn check_version(version: u32) -> Result<(), InvalidRecipe> {
    if version == 0 || version > RECIPE_VERSION {
        return Err(InvalidRecipe(format!("recipe version {version} is not supported (1..={RECIPE_VERSION})")));
    }
    Ok(())
}

impl ClipRecipe {
    /// Every rule a recipe must follow to be rendered: a known version, a
    /// range of 1 to 180 s inside the video (when its duration is known),
    /// at most 2000 words of printable text with `0 <= start <= end` in time
    /// order, and a title of at most 200 characters. The API checks edits
    /// with it and the renderer checks what it is given.
    ///
    /// # Errors
    /// The first rule broken.
    pub fn validate(&self, media_duration: Option<f64>) -> Result<(), InvalidRecipe> {
        check_version(self.version)?;
        let d = self.range.duration();
        if !(1.0..=MAX_RECIPE_SECONDS).contains(&d) {
            return Err(InvalidRecipe(format!("a short lasts 1 to {MAX_RECIPE_SECONDS} s, got {d:.2} s")));
        }
        if let Some(total) = media_duration
            && self.range.end() > total + 0.05
        {
            return Err(InvalidRecipe(format!(
                "endSeconds {:.2} is past the end of the {total:.2} s video",
                self.range.end()
            )));
        }
        if self.words.len() > MAX_RECIPE_WORDS {
            return Err(InvalidRecipe(format!("at most {MAX_RECIPE_WORDS} words")));
        }
        for (i, w) in self.words.iter().enumerate() {
            let ok = w.start.is_finite() && w.end.is_finite() && w.start >= 0.0 && w.end >= w.start;
            if !ok || w.text.chars().count() > MAX_WORD_CHARS || w.text.chars().any(crate::text::is_forbidden) {
                return Err(InvalidRecipe(format!(
                    "word {i} needs 0 <= start <= end and at most {MAX_WORD_CHARS} printable characters"
                )));
            }
        }
        if self.words.windows(2).any(|p| p[1].start < p[0].start) {
            return Err(InvalidRecipe("words must be in time order".into()));
        }
        if self.title.chars().count() > MAX_TITLE_CHARS {
            return Err(InvalidRecipe(format!("a title has at most {MAX_TITLE_CHARS} characters")));
        }
        crate::text::check("the title", &self.title).map_err(InvalidRecipe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe() -> ClipRecipe {
        ClipRecipe {
            version: 1,
            source: "s.mp4".into(),
            range: TimeRange::new(10.0, 40.0).unwrap(),
            aspect: Aspect::Vertical,
            reframe: Reframe::Fit,
            caption_style: CaptionStyle::Bold,
            words: vec![
                Word { text: "a".into(), start: 10.0, end: 10.5, probability: 1.0 },
                Word { text: "b".into(), start: 10.5, end: 11.0, probability: 1.0 },
            ],
            title: "t".into(),
        }
    }

    #[test]
    fn names_parse_back_and_bad_ones_are_refused() {
        for &a in Aspect::ALL {
            assert_eq!(a.as_str().parse::<Aspect>(), Ok(a));
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        for &c in CaptionStyle::ALL {
            assert_eq!(c.as_str().parse::<CaptionStyle>(), Ok(c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        assert_eq!("2:3".parse::<Aspect>().unwrap_err().0, "aspect \"2:3\" is not one of 9:16, 1:1, 4:5, 16:9");
        assert_eq!(
            "big".parse::<CaptionStyle>().unwrap_err().0,
            "captionStyle \"big\" is not one of bold, highlight, boxed, none"
        );
        assert_eq!(Reframe::from_parts("crop", Some(1.0)), Ok(Reframe::Crop { x: Some(1.0) }));
        assert!(Reframe::from_parts("crop", Some(-0.1)).is_err());
    }

    #[test]
    fn the_rules() {
        assert_eq!(recipe().validate(Some(60.0)), Ok(()));
        let broken = |f: &dyn Fn(&mut ClipRecipe)| {
            let mut r = recipe();
            f(&mut r);
            r.validate(Some(60.0)).unwrap_err().0
        };
        assert_eq!(broken(&|r| r.version = 7), "recipe version 7 is not supported (1..=1)");
        assert_eq!(broken(&|r| r.range = TimeRange::new(0.0, 0.5).unwrap()), "a short lasts 1 to 180 s, got 0.50 s");
        assert_eq!(
            broken(&|r| r.range = TimeRange::new(30.0, 61.0).unwrap()),
            "endSeconds 61.00 is past the end of the 60.00 s video"
        );
        assert_eq!(broken(&|r| r.words[1].start = 9.0), "words must be in time order");
        assert_eq!(
            broken(&|r| r.words[1].end = 10.0),
            "word 1 needs 0 <= start <= end and at most 100 printable characters"
        );
        assert_eq!(broken(&|r| r.title = "x".repeat(201)), "a title has at most 200 characters");
        assert_eq!(recipe().validate(None), Ok(()), "the video's end is checked only when known");
    }
}
