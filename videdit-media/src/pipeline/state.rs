//! What [`Pipeline::run`](super::Pipeline::run) keeps between runs: the
//! probe, loudness and transcript in `OUT/.videdit/transcript.json` (used
//! again while the input, model and language are the same), whether a
//! short already rendered can be kept, and removing shorts a run no longer
//! chose.

use std::path::Path;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use videdit_core::recipe::ClipRecipe;
use videdit_core::transcript::Transcript;

use super::{PipelineError, PlannedShort, output_error};
use crate::probe::MediaInfo;
use crate::render::RenderOutputs;
use crate::transcribe::TranscribeOptions;

/// Version of the state files in `OUT/.videdit/`.
pub(super) const STATE_VERSION: u32 = 1;

/// The state kept between runs.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct TranscriptState {
    pub(super) version: u32,
    pub(super) fingerprint: String,
    pub(super) info: MediaInfo,
    pub(super) transcript: Transcript,
    pub(super) features: Option<Vec<f32>>,
}

/// Identifies an input and the settings its transcript depends on.
pub(super) fn fingerprint(input: &Path, meta: &std::fs::Metadata, model: &str, options: &TranscribeOptions) -> String {
    let path = std::path::absolute(input).unwrap_or_else(|_| input.to_path_buf());
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    format!("v{STATE_VERSION}|{}|{}|{mtime}|{model}|{:?}", path.display(), meta.len(), options.language)
}

pub(super) async fn read_state(path: &Path) -> Option<TranscriptState> {
    let bytes = tokio::fs::read(path).await.ok()?;
    serde_json::from_slice::<TranscriptState>(&bytes).ok().filter(|s| s.version == STATE_VERSION)
}

/// Whether an earlier run rendered exactly this recipe to these outputs
/// (its framing chosen, when the recipe left it to the renderer).
pub(super) async fn is_rendered(outputs: &RenderOutputs, recipe: &ClipRecipe) -> bool {
    let Ok(bytes) = tokio::fs::read(&outputs.recipe).await else { return false };
    // The rendered recipe holds the framing `auto` became: the same
    // recipe otherwise.
    let same = serde_json::from_slice::<ClipRecipe>(&bytes).is_ok_and(|r| {
        r.reframe.answers(&recipe.reframe) && ClipRecipe { reframe: recipe.reframe.clone(), ..r } == *recipe
    });
    same && tokio::fs::metadata(&outputs.video).await.is_ok_and(|m| m.len() > 0)
        && tokio::fs::metadata(&outputs.thumbnail).await.is_ok()
}

/// Removes shorts an earlier run wrote that this run did not choose
/// (files named `NN-….mp4|jpg|json` only).
pub(super) async fn remove_stale_shorts(dir: &Path, planned: &[PlannedShort]) -> Result<(), PipelineError> {
    let mut entries = tokio::fs::read_dir(dir).await.map_err(output_error("listing", dir))?;
    while let Some(entry) = entries.next_entry().await.map_err(output_error("listing", dir))? {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((stem, ext)) = name.rsplit_once('.') else { continue };
        let ours = matches!(ext, "mp4" | "jpg" | "json")
            && stem.len() > 3
            && stem.as_bytes()[..2].iter().all(u8::is_ascii_digit)
            && stem.as_bytes()[2] == b'-';
        if ours && !planned.iter().any(|p| p.stem == stem) {
            let path = entry.path();
            tokio::fs::remove_file(&path).await.map_err(output_error("removing", &path))?;
        }
    }
    Ok(())
}
