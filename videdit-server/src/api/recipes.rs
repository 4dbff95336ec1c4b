//! A short's recipe: read it, edit it (trim, restyle, fix a word, retitle)
//! and re-render. Rendering takes only the recipe, so an edited recipe
//! renders the same way every time.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use videdit_core::db;
use videdit_core::recipe::{Aspect, CaptionStyle, ClipRecipe, RECIPE_VERSION, Reframe};
use videdit_core::storage::ObjectKey;
use videdit_core::time_range::TimeRange;
use videdit_core::transcript::Word;
use videdit_core::{ErrorCode, JobKind, ShortId};

use super::error::{ApiError, ApiResult};
use super::{ApiTags, BearerAuth};
use crate::app::AppState;
use crate::auth::Action;
use crate::pipeline_jobs::{VideoJob, enqueue_stage};

/// Longest short a recipe may describe, in seconds.
pub const MAX_RECIPE_SECONDS: f64 = 180.0;
/// Most words in a recipe.
pub const MAX_RECIPE_WORDS: usize = 2000;

/// Recipes API.
pub struct RecipesApi;

/// One word to show, in source time.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct RecipeWord {
    /// The word as shown, with its punctuation.
    pub text: String,
    /// Start, seconds of source time.
    pub start: f64,
    /// End, seconds of source time.
    pub end: f64,
}

/// How the source fills the frame.
#[derive(Debug, Clone, Object)]
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
#[oai(rename_all = "camelCase")]
pub struct RecipeBody {
    /// Recipe format version (1).
    pub version: u32,
    /// Start in the source, seconds.
    pub start_seconds: f64,
    /// End in the source, seconds.
    pub end_seconds: f64,
    /// `9:16` (1080×1920), `1:1`, `4:5` or `16:9`.
    pub aspect: String,
    /// Reframing.
    pub reframe: RecipeReframe,
    /// `bold`, `highlight`, `boxed` or `none`.
    pub caption_style: String,
    /// The caption words (times in source seconds).
    pub words: Vec<RecipeWord>,
    /// Title.
    pub title: String,
}

fn aspect_name(a: Aspect) -> &'static str {
    match a {
        Aspect::Vertical => "9:16",
        Aspect::Square => "1:1",
        Aspect::Portrait => "4:5",
        Aspect::Landscape => "16:9",
    }
}

fn style_name(s: CaptionStyle) -> &'static str {
    match s {
        CaptionStyle::Bold => "bold",
        CaptionStyle::Highlight => "highlight",
        CaptionStyle::Boxed => "boxed",
        CaptionStyle::None => "none",
    }
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
            aspect: aspect_name(r.aspect).into(),
            reframe,
            caption_style: style_name(r.caption_style).into(),
            words: r.words.iter().map(|w| RecipeWord { text: w.text.clone(), start: w.start, end: w.end }).collect(),
            title: r.title.clone(),
        }
    }
}

/// Checks an edited recipe against the video and builds it on the stored
/// one (whose source it keeps).
fn apply(body: &RecipeBody, stored: &ClipRecipe, duration: Option<f64>) -> ApiResult<ClipRecipe> {
    if body.version == 0 || body.version > RECIPE_VERSION {
        return Err(ApiError::invalid(format!(
            "recipe version {} is not supported (1..={RECIPE_VERSION})",
            body.version
        )));
    }
    let range = TimeRange::new(body.start_seconds, body.end_seconds)
        .map_err(|e| ApiError::invalid(format!("startSeconds/endSeconds: {e}")))?;
    if range.duration() < 1.0 || range.duration() > MAX_RECIPE_SECONDS {
        return Err(ApiError::invalid(format!(
            "a short lasts 1 to {MAX_RECIPE_SECONDS} s, got {:.2} s",
            range.duration()
        )));
    }
    if let Some(d) = duration
        && range.end() > d + 0.05
    {
        return Err(ApiError::invalid(format!("endSeconds {:.2} is past the end of the {d:.2} s video", range.end())));
    }
    let aspect = match body.aspect.as_str() {
        "9:16" => Aspect::Vertical,
        "1:1" => Aspect::Square,
        "4:5" => Aspect::Portrait,
        "16:9" => Aspect::Landscape,
        other => return Err(ApiError::invalid(format!("aspect {other:?} is not one of 9:16, 1:1, 4:5, 16:9"))),
    };
    let reframe = match (body.reframe.mode.as_str(), body.reframe.x) {
        ("fit", None) => Reframe::Fit,
        ("crop", x) if x.is_none_or(|x| (0.0..=1.0).contains(&x)) => Reframe::Crop { x },
        _ => return Err(ApiError::invalid("reframe is {mode: fit} or {mode: crop, x: 0..1}")),
    };
    let caption_style = match body.caption_style.as_str() {
        "bold" => CaptionStyle::Bold,
        "highlight" => CaptionStyle::Highlight,
        "boxed" => CaptionStyle::Boxed,
        "none" => CaptionStyle::None,
        other => {
            return Err(ApiError::invalid(format!(
                "captionStyle {other:?} is not one of bold, highlight, boxed, none"
            )));
        }
    };
    if body.words.len() > MAX_RECIPE_WORDS {
        return Err(ApiError::invalid(format!("at most {MAX_RECIPE_WORDS} words")));
    }
    let mut words = Vec::with_capacity(body.words.len());
    for (i, w) in body.words.iter().enumerate() {
        let ok = w.start.is_finite() && w.end.is_finite() && w.start >= 0.0 && w.end >= w.start;
        if !ok || w.text.chars().count() > 100 || w.text.chars().any(char::is_control) {
            return Err(ApiError::invalid(format!(
                "word {i} needs 0 <= start <= end and at most 100 printable characters"
            )));
        }
        let probability = stored.words.get(i).filter(|s| s.text == w.text).map_or(1.0, |s| s.probability);
        words.push(Word { text: w.text.clone(), start: w.start, end: w.end, probability });
    }
    if words.windows(2).any(|p| p[1].start < p[0].start) {
        return Err(ApiError::invalid("words must be in time order"));
    }
    let title = body.title.trim();
    if title.chars().count() > 200 {
        return Err(ApiError::invalid("a title has at most 200 characters"));
    }
    Ok(ClipRecipe {
        version: RECIPE_VERSION,
        source: stored.source.clone(),
        range,
        aspect,
        reframe,
        caption_style,
        words,
        title: title.to_owned(),
    })
}

async fn stored_recipe(state: &AppState, key: &ObjectKey) -> ApiResult<ClipRecipe> {
    let bytes = videdit_core::storage::read_all(state.storage.as_ref(), key).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("the stored recipe is unreadable: {e}")))
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
    async fn get(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        id: Path<String>,
    ) -> ApiResult<Json<RecipeBody>> {
        let p = auth.0;
        p.require(Action::Read)?;
        let short = db::get_short(&state.pool, p.org_id, short_id(&id.0)?).await?;
        let key = ObjectKey::short_recipe(p.org_id, short.video_id, short.id);
        Ok(Json(RecipeBody::from(&stored_recipe(&state, &key).await?)))
    }

    /// Edit a short's recipe and render it again
    ///
    /// Replaces the recipe (trim, restyle, correct words, retitle), marks the
    /// short pending and queues its render. The video must have finished
    /// processing.
    #[oai(path = "/shorts/:id/recipe", method = "put", operation_id = "putRecipe")]
    async fn put(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        id: Path<String>,
        body: Json<RecipeBody>,
    ) -> ApiResult<Json<RecipeBody>> {
        let p = auth.0;
        p.require(Action::Process)?;
        let short = db::get_short(&state.pool, p.org_id, short_id(&id.0)?).await?;
        let video = db::get_video(&state.pool, p.org_id, short.video_id).await?;
        if video.status != videdit_core::VideoStatus::Ready {
            return Err(ApiError::new(
                ErrorCode::InvalidState,
                format!("video {} is {}; edit recipes once it is ready", video.id, video.status.state()),
            ));
        }
        let key = ObjectKey::short_recipe(p.org_id, short.video_id, short.id);
        let recipe = apply(&body.0, &stored_recipe(&state, &key).await?, video.duration_seconds)?;
        let json = serde_json::to_vec_pretty(&recipe).expect("a recipe serialises");
        state.storage.put_stream(&key, videdit_core::storage::bytes_stream(json), "application/json").await?;
        let mut tx = state.pool.begin().await.map_err(videdit_core::Error::from)?;
        db::edit_short(&mut *tx, p.org_id, short.id, recipe.range, &recipe.title).await?;
        let job =
            VideoJob { org_id: p.org_id, video_id: video.id, short_id: Some(short.id), options: serde_json::json!({}) };
        enqueue_stage(&mut tx, JobKind::Render, &job).await.map_err(super::jobs::queue_error)?;
        tx.commit().await.map_err(videdit_core::Error::from)?;
        Ok(Json(RecipeBody::from(&recipe)))
    }
}
