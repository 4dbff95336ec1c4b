//! A short's recipe: read it, edit it (trim, restyle, fix a word, retitle)
//! and re-render. Rendering takes only the recipe, so an edited recipe
//! renders the same way every time.

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Union};
use videdit_core::recipe::{ClipRecipe, Keyframe, Reframe};
use videdit_core::{ErrorCode, ShortId};
use videdit_service::recipes::{self, EditWord, RecipeEdit};

use super::error::{ApiError, ApiResult};
use super::{ApiTags, BearerAuth};
use crate::auth::Action;

/// Recipes API.
pub struct RecipesApi;

/// One word to show, in source time.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct RecipeWord {
    /// The word as shown, with its punctuation (printable, at most 100 characters).
    pub text: String,
    /// Start, seconds of source time.
    pub start: f64,
    /// End, seconds of source time (not before `start`).
    pub end: f64,
}

/// One point of a camera path: where the crop is centred at a moment;
/// the centre moves in a straight line to the next keyframe, or cuts to
/// a keyframe marked `cut`.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct RecipeKeyframe {
    /// Source seconds.
    pub t: f64,
    /// Centre, a fraction of the source width (0..=1).
    pub x: f32,
    /// Centre, a fraction of the source height (0..=1, default 0.5).
    pub y: Option<f32>,
    /// The camera cuts to this keyframe instead of moving to it.
    pub cut: Option<bool>,
}

impl From<&Keyframe> for RecipeKeyframe {
    fn from(k: &Keyframe) -> Self {
        Self { t: k.t, x: k.x, y: Some(k.y), cut: k.cut.then_some(true) }
    }
}

impl From<&RecipeKeyframe> for Keyframe {
    fn from(k: &RecipeKeyframe) -> Self {
        Self { t: k.t, x: k.x, y: k.y.unwrap_or(0.5), cut: k.cut.unwrap_or(false) }
    }
}

/// `auto`: faces are looked for when the short renders: a split screen for
/// two people taking turns, a crop following the face, or `fit` when there
/// is none; the rendered recipe holds the choice and its camera path.
#[derive(Debug, Clone, Object)]
pub struct ReframeAuto {}

/// `fit`: the whole frame over a blurred copy of itself.
#[derive(Debug, Clone, Object)]
pub struct ReframeFit {}

/// `crop`: a fixed crop.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ReframeCrop {
    /// Horizontal centre of the crop, 0..=1 (default 0.5).
    pub x: Option<f32>,
}

/// `track`: a crop along a camera path.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ReframeTrack {
    /// The camera path, in time order, at most 600; leave it out to have
    /// the subject (the face that speaks, or the most present one) found
    /// when the short renders.
    pub keyframes: Option<Vec<RecipeKeyframe>>,
}

/// `split`: two people stacked, each half along its own path.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ReframeSplit {
    /// Each half's crop height as a fraction of the source's, 0.25..=1 (default 1).
    pub zoom: Option<f32>,
    /// The top half's path (the person on the left); leave both paths out
    /// to have the two faces found when the short renders.
    pub top: Option<Vec<RecipeKeyframe>>,
    /// The bottom half's path.
    pub bottom: Option<Vec<RecipeKeyframe>>,
}

/// How the source fills the frame, by `mode`.
#[derive(Debug, Clone, Union)]
#[oai(discriminator_name = "mode", one_of)]
pub enum RecipeReframe {
    /// Faces decide.
    #[oai(mapping = "auto")]
    Auto(ReframeAuto),
    /// The whole frame.
    #[oai(mapping = "fit")]
    Fit(ReframeFit),
    /// A fixed crop.
    #[oai(mapping = "crop")]
    Crop(ReframeCrop),
    /// A crop along a path.
    #[oai(mapping = "track")]
    Track(ReframeTrack),
    /// Two people stacked.
    #[oai(mapping = "split")]
    Split(ReframeSplit),
}

impl From<&Reframe> for RecipeReframe {
    fn from(r: &Reframe) -> Self {
        let path = |p: &[Keyframe]| Some(p.iter().map(RecipeKeyframe::from).collect::<Vec<_>>());
        match r {
            Reframe::Fit => Self::Fit(ReframeFit {}),
            Reframe::Auto => Self::Auto(ReframeAuto {}),
            Reframe::Crop { x } => Self::Crop(ReframeCrop { x: *x }),
            Reframe::Track { keyframes } => Self::Track(ReframeTrack { keyframes: path(keyframes) }),
            Reframe::Split { zoom, top, bottom } => {
                Self::Split(ReframeSplit { zoom: Some(*zoom), top: path(top), bottom: path(bottom) })
            }
        }
    }
}

/// Everything a short is rendered from.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct RecipeBody {
    /// Recipe format version (1).
    pub version: u32,
    /// Start in the source, seconds.
    pub start_seconds: f64,
    /// End in the source, seconds: 1 to 180 s after the start, inside the video.
    pub end_seconds: f64,
    /// `9:16` (1080×1920), `1:1`, `4:5` or `16:9`.
    pub aspect: String,
    /// Reframing.
    pub reframe: RecipeReframe,
    /// `bold`, `highlight`, `boxed` or `none`.
    pub caption_style: String,
    /// The caption words (times in source seconds), in time order, at most 2000.
    pub words: Vec<RecipeWord>,
    /// Title; no control or bidirectional-override characters.
    pub title: String,
}

impl From<&ClipRecipe> for RecipeBody {
    fn from(r: &ClipRecipe) -> Self {
        let reframe = RecipeReframe::from(&r.reframe);
        Self {
            version: r.version,
            start_seconds: r.range.start(),
            end_seconds: r.range.end(),
            aspect: r.aspect.as_str().into(),
            reframe,
            caption_style: r.caption_style.as_str().into(),
            words: r.words.iter().map(|w| RecipeWord { text: w.text.clone(), start: w.start, end: w.end }).collect(),
            title: r.title.clone(),
        }
    }
}

impl From<&RecipeBody> for RecipeEdit {
    fn from(b: &RecipeBody) -> Self {
        let path = |p: &Option<Vec<RecipeKeyframe>>| p.as_ref().map(|p| p.iter().map(Keyframe::from).collect());
        let (mut crop_x, mut keyframes, mut zoom, mut top, mut bottom) = (None, None, None, None, None);
        let mode = match &b.reframe {
            RecipeReframe::Auto(_) => "auto",
            RecipeReframe::Fit(_) => "fit",
            RecipeReframe::Crop(c) => {
                crop_x = c.x;
                "crop"
            }
            RecipeReframe::Track(t) => {
                keyframes = path(&t.keyframes);
                "track"
            }
            RecipeReframe::Split(s) => {
                (zoom, top, bottom) = (s.zoom, path(&s.top), path(&s.bottom));
                "split"
            }
        };
        Self {
            version: b.version,
            start_seconds: b.start_seconds,
            end_seconds: b.end_seconds,
            aspect: b.aspect.clone(),
            reframe_mode: mode.to_owned(),
            crop_x,
            keyframes,
            zoom,
            top,
            bottom,
            caption_style: b.caption_style.clone(),
            words: b.words.iter().map(|w| EditWord { text: w.text.clone(), start: w.start, end: w.end }).collect(),
            title: b.title.clone(),
        }
    }
}

fn short_id(raw: &str) -> ApiResult<ShortId> {
    raw.parse().map_err(|_| ApiError::new(ErrorCode::ShortNotFound, format!("short {raw:?} not found")))
}

#[OpenApi(tag = "ApiTags::Shorts")]
impl RecipesApi {
    /// Get a short's recipe
    ///
    /// What the short is rendered from: its range in the source, output
    /// shape, reframing, caption style, caption words and title.
    #[oai(path = "/shorts/:id/recipe", method = "get", operation_id = "getRecipe")]
    async fn get(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<RecipeBody>> {
        let (p, state) = auth.may(Action::Read)?;
        let recipe = recipes::get(&state.pool, state.storage.as_ref(), p.org_id, short_id(&id.0)?).await?;
        Ok(Json(RecipeBody::from(&recipe)))
    }

    /// Edit a short's recipe and render it again
    ///
    /// Replaces the recipe (trim, restyle, correct words, retitle), marks the
    /// short pending and queues its render. The video must have finished
    /// processing.
    #[oai(path = "/shorts/:id/recipe", method = "put", operation_id = "putRecipe")]
    async fn put(&self, auth: BearerAuth, id: Path<String>, body: Json<RecipeBody>) -> ApiResult<Json<RecipeBody>> {
        let (p, state) = auth.may(Action::Process)?;
        let edit = RecipeEdit::from(&body.0);
        let recipe = recipes::edit(&state.pool, state.storage.as_ref(), p.org_id, short_id(&id.0)?, &edit).await?;
        Ok(Json(RecipeBody::from(&recipe)))
    }
}
