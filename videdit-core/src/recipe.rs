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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
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
    Fit,
    /// Let the renderer look for faces and choose: `split` when two people
    /// take turns speaking, `track` when there is a face, `fit` when there
    /// is none. The rendered recipe holds the choice with its camera path.
    #[default]
    Auto,
    /// A crop that follows a subject along a camera path. With no keyframes
    /// the renderer finds the subject (the face that speaks, or the most
    /// present one) and writes the path into the rendered recipe.
    Track {
        /// The camera path; empty: computed when rendered.
        #[serde(default)]
        keyframes: Vec<Keyframe>,
    },
    /// Two people stacked, each framed by a path of its own (top and
    /// bottom halves of the output). With no keyframes the renderer finds
    /// the two faces.
    Split {
        /// Crop height of each half as a fraction of the source height
        /// (the half's width follows from its shape), 0.25..=1.
        #[serde(default = "full_zoom")]
        zoom: f32,
        /// The top half's path (the person on the left).
        #[serde(default)]
        top: Vec<Keyframe>,
        /// The bottom half's path.
        #[serde(default)]
        bottom: Vec<Keyframe>,
    },
}

const fn full_zoom() -> f32 {
    1.0
}

/// One point of a camera path: where the crop is centred at a moment.
/// Between two keyframes the centre moves in a straight line; a keyframe
/// marked `cut` is reached by a cut instead.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Keyframe {
    /// Source seconds.
    pub t: f64,
    /// Crop centre, a fraction of the source width (0..=1).
    pub x: f32,
    /// Crop centre, a fraction of the source height (0..=1).
    #[serde(default = "half")]
    pub y: f32,
    /// The camera cuts to this keyframe rather than moving to it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cut: bool,
}

const fn half() -> f32 {
    0.5
}

/// Most keyframes in one camera path (one every 0.3 s over the longest
/// short; found paths need far fewer: straight lines join them).
pub const MAX_KEYFRAMES: usize = 600;

impl Keyframe {
    /// The centre at `t` on `path` (sorted by time): held before the
    /// first and after the last keyframe, linear between, a step at a cut.
    #[must_use]
    pub fn centre_at(path: &[Self], t: f64) -> Option<(f32, f32)> {
        let first = path.first()?;
        if t <= first.t {
            return Some((first.x, first.y));
        }
        let i = path.partition_point(|k| k.t <= t);
        let a = &path[i - 1];
        let Some(b) = path.get(i) else { return Some((a.x, a.y)) };
        if b.cut || b.t <= a.t {
            return Some((a.x, a.y));
        }
        let f = ((t - a.t) / (b.t - a.t)) as f32;
        Some((a.x + (b.x - a.x) * f, a.y + (b.y - a.y) * f))
    }

    fn check(path: &[Self], name: &str) -> Result<(), InvalidRecipe> {
        if path.len() > MAX_KEYFRAMES {
            return Err(InvalidRecipe(format!("{name} has at most {MAX_KEYFRAMES} keyframes")));
        }
        for (i, k) in path.iter().enumerate() {
            let unit = |v: f32| (0.0..=1.0).contains(&v);
            if !(k.t.is_finite() && k.t >= 0.0 && unit(k.x) && unit(k.y)) {
                return Err(InvalidRecipe(format!("{name}[{i}] needs t >= 0 and x, y in 0..1")));
            }
        }
        if path.windows(2).any(|p| p[1].t < p[0].t) {
            return Err(InvalidRecipe(format!("{name} must be in time order")));
        }
        Ok(())
    }
}

impl Reframe {
    /// Whether the renderer still has to look at the source to choose the
    /// framing (`auto`, or a `track` or `split` without a path).
    #[must_use]
    pub fn needs_analysis(&self) -> bool {
        match self {
            Self::Auto => true,
            Self::Track { keyframes } => keyframes.is_empty(),
            Self::Split { top, bottom, .. } => top.is_empty() || bottom.is_empty(),
            Self::Crop { .. } | Self::Fit => false,
        }
    }

    /// Whether `self`, a framing the renderer chose, answers `requested`.
    #[must_use]
    pub fn answers(&self, requested: &Self) -> bool {
        match (requested, self) {
            (r, s) if r == s => true,
            (Self::Auto, s) => !s.needs_analysis() && !matches!(s, Self::Crop { .. }),
            (Self::Track { keyframes }, Self::Track { .. } | Self::Fit) => keyframes.is_empty(),
            (Self::Split { .. }, s) => requested.needs_analysis() && !s.needs_analysis(),
            _ => false,
        }
    }

    fn check(&self) -> Result<(), InvalidRecipe> {
        match self {
            Self::Crop { x: Some(x) } if !(0.0..=1.0).contains(x) => {
                Err(InvalidRecipe("reframe.x is a fraction of the width, 0..1".into()))
            }
            Self::Track { keyframes } => Keyframe::check(keyframes, "reframe.keyframes"),
            Self::Split { zoom, top, bottom } => {
                if !(0.25..=1.0).contains(zoom) {
                    return Err(InvalidRecipe("reframe.zoom is 0.25..1".into()));
                }
                Keyframe::check(top, "reframe.top")?;
                Keyframe::check(bottom, "reframe.bottom")
            }
            _ => Ok(()),
        }
    }
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
    /// Builds a reframe from the API's `{mode, x, keyframes, zoom, top,
    /// bottom}`: each mode takes only its own fields.
    ///
    /// # Errors
    /// An unknown mode, a field of another mode, or a value out of range.
    pub fn from_parts(
        mode: &str,
        x: Option<f32>,
        keyframes: Option<Vec<Keyframe>>,
        zoom: Option<f32>,
        top: Option<Vec<Keyframe>>,
        bottom: Option<Vec<Keyframe>>,
    ) -> Result<Self, InvalidRecipe> {
        let path_fields =
            keyframes.is_some() as u8 + zoom.is_some() as u8 + top.is_some() as u8 + bottom.is_some() as u8;
        let only = |allowed: u8| -> Result<(), InvalidRecipe> {
            if x.is_some() as u8 + path_fields > allowed {
                return Err(InvalidRecipe(format!("reframe mode {mode:?} does not take some of the fields given")));
            }
            Ok(())
        };
        let reframe = match mode {
            "fit" => only(0).map(|()| Self::Fit)?,
            "auto" => only(0).map(|()| Self::Auto)?,
            "crop" if path_fields == 0 => Self::Crop { x },
            "track" if x.is_none() && zoom.is_none() && top.is_none() && bottom.is_none() => {
                Self::Track { keyframes: keyframes.unwrap_or_default() }
            }
            "split" if x.is_none() && keyframes.is_none() => Self::Split {
                zoom: zoom.unwrap_or(1.0),
                top: top.unwrap_or_default(),
                bottom: bottom.unwrap_or_default(),
            },
            "crop" | "track" | "split" => {
                return Err(InvalidRecipe(format!(
                    "reframe mode {mode:?} takes only its own fields (crop: x; track: keyframes; split: zoom, top, bottom)"
                )));
            }
            _ => {
                return Err(InvalidRecipe(format!(
                    "reframe mode {mode:?} is not one of auto, fit, crop, track, split"
                )));
            }
        };
        reframe.check()?;
        Ok(reframe)
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
        self.reframe.check()?;
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
        let parts = |mode, x| Reframe::from_parts(mode, x, None, None, None, None);
        assert_eq!(parts("crop", Some(1.0)), Ok(Reframe::Crop { x: Some(1.0) }));
        assert!(parts("crop", Some(-0.1)).is_err());
        assert!(parts("fit", Some(0.5)).is_err());
        assert_eq!(parts("track", None), Ok(Reframe::Track { keyframes: vec![] }));
        assert_eq!(parts("split", None), Ok(Reframe::Split { zoom: 1.0, top: vec![], bottom: vec![] }));
        assert_eq!(
            parts("zoom", None).unwrap_err().0,
            "reframe mode \"zoom\" is not one of auto, fit, crop, track, split"
        );
        let k = |t, x| Keyframe { t, x, y: 0.5, cut: false };
        assert!(Reframe::from_parts("track", None, Some(vec![k(1.0, 0.2), k(0.5, 0.3)]), None, None, None).is_err());
        assert!(Reframe::from_parts("track", None, Some(vec![k(1.0, 1.2)]), None, None, None).is_err());
        assert!(Reframe::from_parts("split", None, None, Some(0.1), None, None).is_err());
        assert!(Reframe::from_parts("track", None, None, Some(0.5), None, None).is_err());
    }

    #[test]
    fn a_camera_path_is_held_at_its_ends_linear_between_and_steps_at_cuts() {
        let path = [
            Keyframe { t: 10.0, x: 0.2, y: 0.5, cut: false },
            Keyframe { t: 12.0, x: 0.4, y: 0.5, cut: false },
            Keyframe { t: 14.0, x: 0.8, y: 0.3, cut: true },
        ];
        let x = |t| Keyframe::centre_at(&path, t).unwrap().0;
        assert!((x(5.0) - 0.2).abs() < 1e-6);
        assert!((x(11.0) - 0.3).abs() < 1e-6);
        assert!((x(13.9) - 0.4).abs() < 1e-6, "held until the cut");
        assert!((x(14.0) - 0.8).abs() < 1e-6);
        assert!((x(99.0) - 0.8).abs() < 1e-6);
        assert_eq!(Keyframe::centre_at(&[], 1.0), None);
        let json = serde_json::json!({"mode": "track", "keyframes": [{"t": 1.0, "x": 0.25}]});
        let r: Reframe = serde_json::from_value(json).unwrap();
        assert_eq!(r, Reframe::Track { keyframes: vec![Keyframe { t: 1.0, x: 0.25, y: 0.5, cut: false }] });
        assert!(!r.needs_analysis() && Reframe::Auto.needs_analysis());
        assert!(r.answers(&Reframe::Auto) && r.answers(&Reframe::Track { keyframes: vec![] }));
        assert!(!Reframe::Fit.answers(&Reframe::Crop { x: None }));
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
