//! Transcripts made of given words, for tests and benches of what reads a
//! transcript (analysis, captions) without running a model.

use videdit_core::transcript::{Segment, Transcript, Word};

/// An English transcript of `words` cut into segments of `per_segment`
/// words whatever the sentences, as a recogniser's often are. A segment's
/// text is its words' run together (each word carries its leading space),
/// its edges its first word's start and last word's end. `model` names the
/// transcript; `duration` is the audio's length in seconds.
///
/// # Panics
/// When `per_segment` is 0.
#[must_use]
pub fn transcript_of(words: &[Word], per_segment: usize, model: &str, duration: f64) -> Transcript {
    let segments = words
        .chunks(per_segment)
        .map(|ws| Segment {
            start: ws[0].start,
            end: ws[ws.len() - 1].end,
            text: ws.iter().map(|w| w.text.as_str()).collect(),
            words: ws.to_vec(),
        })
        .collect();
    Transcript { language: "en".into(), model: model.into(), duration, segments }
}
