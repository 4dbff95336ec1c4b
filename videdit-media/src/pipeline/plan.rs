//! Stage 4: the highlights turned into recipes, each cut in the silence
//! around its words, and the file name stem of each short.

use serde::{Deserialize, Serialize};
use videdit_core::recipe::{ClipRecipe, RECIPE_VERSION};
use videdit_core::time_range::TimeRange;
use videdit_core::transcript::Transcript;

use super::PipelineOptions;
use super::edges::{pause_around, speech_offset, speech_onset, speech_threshold};
use crate::analyze::{AnalyzeError, AudioFeatures, Highlight, analyze};

/// Silence kept before a short's first word, at most (seconds); never more
/// than half the pause before it.
pub const LEAD_IN: f64 = 0.15;
/// Silence kept after a short's last word, at most (seconds); never more
/// than half the pause after it.
pub const TAIL_OUT: f64 = 0.18;

/// A short chosen and ready to render.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedShort {
    /// 1 for the best.
    pub rank: usize,
    /// Why it was chosen, its scores and title.
    pub highlight: Highlight,
    /// What to render.
    pub recipe: ClipRecipe,
    /// A file name stem: `01-the-title`.
    pub stem: String,
}

/// Stage 4: finds the highlights and turns each into a recipe. A short's
/// range runs from a little before its first word to a little after its
/// last ([`LEAD_IN`], [`TAIL_OUT`]), never past the middle of the pause
/// around it, so it starts and ends in silence and never clips a word.
///
/// # Errors
/// [`AnalyzeError`] for invalid options or word timings.
pub fn plan_shorts(
    transcript: &Transcript,
    features: Option<&AudioFeatures>,
    source: &str,
    source_duration: f64,
    options: &PipelineOptions,
) -> Result<Vec<PlannedShort>, AnalyzeError> {
    let highlights = analyze(transcript, features, &options.analyze)?;
    let words: Vec<_> = transcript.words().cloned().collect();
    let end_limit = if source_duration > 0.0 { source_duration } else { f64::INFINITY };
    let threshold = features.and_then(speech_threshold);
    Ok(highlights
        .into_iter()
        .enumerate()
        .filter_map(|(i, h)| {
            let first = words.get(h.first_word)?;
            let last = words.get(h.last_word)?;
            // The aligner's word times drift around pauses (a start after a
            // pause comes late, an end before one may run into it): take the
            // edges from the audio when it is known.
            let prev = h.first_word.checked_sub(1).and_then(|j| words.get(j));
            let next = words.get(h.last_word + 1);
            let (start, end) = match (features, threshold) {
                (Some(f), Some(thr)) => {
                    let onset = speech_onset(f, thr, first.start, prev.map_or(0.0, |w| w.start), first.end);
                    let offset = speech_offset(f, thr, last.end, last.start, next.map_or(end_limit, |w| w.end));
                    let (pause_start, _) = pause_around(f, thr, onset);
                    let (_, pause_end) = pause_around(f, thr, offset);
                    let pause_start = if prev.is_none() { 0.0 } else { pause_start };
                    (
                        onset - LEAD_IN.min(((onset - pause_start) / 2.0).max(0.0)),
                        offset + TAIL_OUT.min(((pause_end.min(end_limit) - offset) / 2.0).max(0.0)),
                    )
                }
                _ => {
                    let before = prev.map_or(0.0, |w| w.end);
                    let after = next.map_or(end_limit, |w| w.start);
                    (
                        first.start - LEAD_IN.min(((first.start - before) / 2.0).max(0.0)),
                        last.end + TAIL_OUT.min(((after - last.end) / 2.0).max(0.0)),
                    )
                }
            };
            let (start, end) = (start.max(0.0), end.min(end_limit));
            let range = TimeRange::new(start, end).ok()?;
            let recipe = ClipRecipe {
                version: RECIPE_VERSION,
                source: source.to_owned(),
                range,
                aspect: options.aspect,
                reframe: options.reframe.clone(),
                caption_style: options.caption_style,
                words: words[h.first_word..=h.last_word].to_vec(),
                title: h.title.clone(),
            };
            let rank = i + 1;
            Some(PlannedShort { rank, stem: format!("{rank:02}-{}", slug(&h.title)), highlight: h, recipe })
        })
        .collect())
}

/// A title as a safe file name part: lower-case ASCII letters and digits
/// joined by single hyphens, at most 48 characters, never empty.
#[must_use]
pub fn slug(title: &str) -> String {
    let mut out = String::new();
    for word in title.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
        let word = word.to_ascii_lowercase();
        if out.len() + word.len() + 1 > 48 {
            if out.is_empty() {
                out.push_str(&word[..48]);
            }
            break;
        }
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(&word);
    }
    if out.is_empty() { "short".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_safe_file_names() {
        for (title, slugged) in [
            ("Why Rust? It's fast & safe!", "why-rust-it-s-fast-safe"),
            ("   ", "short"),
            ("../../etc/passwd", "etc-passwd"),
            ("Ünïcödé only", "n-c-d-only"),
        ] {
            assert_eq!(slug(title), slugged, "{title:?}");
        }
        let long = slug(&"word ".repeat(40));
        assert!(long.len() <= 48 && !long.ends_with('-'), "{long}");
        assert_eq!(slug(&"x".repeat(100)).len(), 48);
    }
}
