//! A short's recipe: read it, edit it (trim, restyle, fix a word, retitle)
//! and re-render. Rendering takes only the recipe, so an edited recipe
//! renders the same way every time.

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
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

/// How the source fills the frame.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct RecipeReframe {
    /// `auto` (faces are looked for when rendered: a split screen for two
    /// people taking turns, a crop following the face, or `fit` when there
    /// is none; the rendered recipe holds the choice), `fit` (the whole
    /// frame over a blurred copy), `crop` (fixed), `track` (a crop along a
    /// camera path) or `split` (two people stacked, each along a path).
    pub mode: String,
    /// For `crop`: horizontal centre of the crop, 0..=1 (default 0.5).
    pub x: Option<f32>,
    /// For `track`: the camera path, in time order, at most 600 (leave it
    /// out to have the subject found when rendered).
    pub keyframes: Option<Vec<RecipeKeyframe>>,
    /// For `split`: each half's crop height as a fraction of the source's, 0.25..=1.
    pub zoom: Option<f32>,
    /// For `split`: the top half's path (the person on the left).
    pub top: Option<Vec<RecipeKeyframe>>,
    /// For `split`: the bottom half's path.
    pub bottom: Option<Vec<RecipeKeyframe>>,
}

impl From<&Reframe> for RecipeReframe {
    fn from(r: &Reframe) -> Self {
        let path = |p: &[Keyframe]| Some(p.iter().map(RecipeKeyframe::from).collect::<Vec<_>>());
        let none = Self { mode: String::new(), x: None, keyframes: None, zoom: None, top: None, bottom: None };
        match r {
            Reframe::Fit => Self { mode: "fit".into(), ..none },
            Reframe::Auto => Self { mode: "auto".into(), ..none },
            Reframe::Crop { x } => Self { mode: "crop".into(), x: *x, ..none },
            Reframe::Track { keyframes } => Self { mode: "track".into(), keyframes: path(keyframes), ..none },
            Reframe::Split { zoom, top, bottom } => {
                Self { mode: "split".into(), zoom: Some(*zoom), top: path(top), bottom: path(bottom), ..none }
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
        let path = |p: Option<&[RecipeKeyframe]>| p.map(|p| p.iter().map(Keyframe::from).collect());
        Self {
            version: b.version,
            start_seconds: b.start_seconds,
            end_seconds: b.end_seconds,
            aspect: b.aspect.clone(),
            reframe_mode: b.reframe.mode.clone(),
            crop_x: b.reframe.x,
            keyframes: path(b.reframe.keyframes.as_deref()),
            zoom: b.reframe.zoom,
            top: path(b.reframe.top.as_deref()),
            bottom: path(b.reframe.bottom.as_deref()),
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
