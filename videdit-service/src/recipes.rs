//! Editing a short's recipe: the one validation (the core's
//! [`ClipRecipe::validate`], which the renderer applies too), the stored
//! recipe replaced, and a render queued, atomically with the revision that
//! keeps a running render from finishing with the old recipe.

use sqlx::PgPool;
use videdit_core::recipe::{Aspect, CaptionStyle, ClipRecipe, Keyframe, RECIPE_VERSION, Reframe, check_version};
use videdit_core::storage::{ObjectKey, Storage, bytes_stream, read_all};
use videdit_core::{ErrorCode, JobKind, OrgId, ShortId, TimeRange, VideoStatus, Word, db};

use crate::error::{Error, Result};
use crate::jobs::{VideoJob, enqueue_stage};

/// One caption word of an edit.
#[derive(Debug, Clone, PartialEq)]
pub struct EditWord {
    /// The word as shown.
    pub text: String,
    /// Start, source seconds.
    pub start: f64,
    /// End, source seconds.
    pub end: f64,
}

/// A recipe as a client sends it (names as the API spells them).
#[derive(Debug, Clone, PartialEq)]
pub struct RecipeEdit {
    /// Format version.
    pub version: u32,
    /// Start, source seconds.
    pub start_seconds: f64,
    /// End, source seconds.
    pub end_seconds: f64,
    /// `9:16`, `1:1`, `4:5` or `16:9`.
    pub aspect: String,
    /// `auto`, `fit`, `crop`, `track` or `split`.
    pub reframe_mode: String,
    /// For `crop`: the horizontal centre, 0..=1.
    pub crop_x: Option<f32>,
    /// For `track`: the camera path (none: found when rendered).
    pub keyframes: Option<Vec<Keyframe>>,
    /// For `split`: each half's crop height, a fraction of the source's.
    pub zoom: Option<f32>,
    /// For `split`: the top half's path.
    pub top: Option<Vec<Keyframe>>,
    /// For `split`: the bottom half's path.
    pub bottom: Option<Vec<Keyframe>>,
    /// `bold`, `highlight`, `boxed` or `none`.
    pub caption_style: String,
    /// Caption words.
    pub words: Vec<EditWord>,
    /// Title.
    pub title: String,
}

impl RecipeEdit {
    /// The edit applied to the stored recipe (whose source it keeps), and
    /// checked against the video's duration.
    ///
    /// # Errors
    /// `invalid_request` with the first rule broken.
    pub fn apply(&self, stored: &ClipRecipe, duration: Option<f64>) -> Result<ClipRecipe> {
        let invalid = |e: videdit_core::recipe::InvalidRecipe| Error::invalid(e.0);
        check_version(self.version).map_err(invalid)?;
        let range = TimeRange::new(self.start_seconds, self.end_seconds)
            .map_err(|e| Error::invalid(format!("startSeconds/endSeconds: {e}")))?;
        let aspect: Aspect = self.aspect.parse().map_err(invalid)?;
        let reframe = Reframe::from_parts(
            &self.reframe_mode,
            self.crop_x,
            self.keyframes.clone(),
            self.zoom,
            self.top.clone(),
            self.bottom.clone(),
        )
        .map_err(invalid)?;
        let caption_style: CaptionStyle = self.caption_style.parse().map_err(invalid)?;
        let words = self
            .words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                // A word left as it was keeps the model's confidence.
                let probability = stored.words.get(i).filter(|s| s.text == w.text).map_or(1.0, |s| s.probability);
                Word { text: w.text.clone(), start: w.start, end: w.end, probability }
            })
            .collect();
        let recipe = ClipRecipe {
            version: RECIPE_VERSION,
            source: stored.source.clone(),
            range,
            aspect,
            reframe,
            caption_style,
            words,
            title: self.title.trim().to_owned(),
        };
        recipe.validate(duration).map_err(invalid)?;
        Ok(recipe)
    }
}

/// A short's stored recipe.
///
/// # Errors
/// `short_not_found`; `internal` for a stored recipe that does not parse.
pub async fn get(pool: &PgPool, storage: &dyn Storage, org: OrgId, short: ShortId) -> Result<ClipRecipe> {
    let short = db::get_short(pool, org, short).await?;
    read(storage, &ObjectKey::short_recipe(org, short.video_id, short.id)).await
}

/// Reads a stored recipe.
///
/// # Errors
/// Storage failures; `internal` for a recipe that does not parse.
pub async fn read(storage: &dyn Storage, key: &ObjectKey) -> Result<ClipRecipe> {
    let bytes = read_all(storage, key).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::new(ErrorCode::Internal, format!("the stored recipe is unreadable: {e}")))
}

/// Edits a short's recipe: validated, stored, the short retitled and
/// retrimmed, its revision bumped and a render queued, under the video's
/// row lock. The video must be ready.
///
/// # Errors
/// `short_not_found`; `invalid_state` when the video is not ready;
/// `invalid_request` for a recipe that breaks a rule.
pub async fn edit(
    pool: &PgPool,
    storage: &dyn Storage,
    org: OrgId,
    short: ShortId,
    edit: &RecipeEdit,
) -> Result<ClipRecipe> {
    let short = db::get_short(pool, org, short).await?;
    let video = db::get_video(pool, org, short.video_id).await?;
    if video.status != VideoStatus::Ready {
        return Err(Error::invalid_state(format!(
            "video {} is {}; edit recipes once it is ready",
            video.id,
            video.status.state()
        )));
    }
    let key = ObjectKey::short_recipe(org, short.video_id, short.id);
    let recipe = edit.apply(&read(storage, &key).await?, video.duration_seconds)?;
    let json = serde_json::to_vec_pretty(&recipe).expect("a recipe serialises");
    // Stored before the revision is bumped: a render that sees the new
    // revision reads this recipe or a newer one.
    storage.put_stream(&key, bytes_stream(json), "application/json").await?;
    let mut tx = pool.begin().await?;
    db::lock_video(&mut *tx, org, video.id).await?;
    db::edit_short(&mut *tx, org, short.id, recipe.range, &recipe.title).await?;
    db::bump_recipe_revision(&mut *tx, org, short.id).await?;
    enqueue_stage(&mut tx, JobKind::Render, &VideoJob::short(org, video.id, short.id)).await?;
    tx.commit().await?;
    Ok(recipe)
}
