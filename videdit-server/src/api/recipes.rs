//! A short's recipe: read it, edit it (trim, restyle, fix a word, retitle)
//! and re-render. Rendering takes only the recipe, so an edited recipe
//! renders the same way every time.

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use videdit_core::recipe::{ClipRecipe, Reframe};
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

/// How the source fills the frame.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct RecipeReframe {
    /// `fit` (the whole frame over a blurred copy) or `crop`.
    pub mode: String,
    /// For `crop`: horizontal centre of the crop, 0..=1 (default 0.5).
    #[oai(skip_serializing_if_is_none)]
    pub x: Option<f32>,
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
        let reframe = match r.reframe {
            Reframe::Fit => RecipeReframe { mode: "fit".into(), x: None },
            Reframe::Crop { x } => RecipeReframe { mode: "crop".into(), x },
        };
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
        Self {
            version: b.version,
            start_seconds: b.start_seconds,
            end_seconds: b.end_seconds,
            aspect: b.aspect.clone(),
            reframe_mode: b.reframe.mode.clone(),
            crop_x: b.reframe.x,
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
