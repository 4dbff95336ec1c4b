//! Transcripts: segments and words with timestamps.

use serde::{Deserialize, Serialize};

/// One spoken word with its timing in seconds of source time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    /// The word as written, with attached punctuation (`"Hello,"`).
    pub text: String,
    /// Start in seconds.
    pub start: f64,
    /// End in seconds (`>= start`).
    pub end: f64,
    /// The model's confidence, 0..=1.
    pub probability: f32,
}

/// A segment: a run of words the model decoded together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Start in seconds (the first word's start when there are words).
    pub start: f64,
    /// End in seconds (the last word's end when there are words).
    pub end: f64,
    /// Full text of the segment.
    pub text: String,
    /// Its words, in order.
    pub words: Vec<Word>,
}

/// A whole transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// Spoken language (ISO 639-1, for example `en`).
    pub language: String,
    /// The model that produced it (for example `tiny.en`).
    pub model: String,
    /// Duration of the transcribed audio in seconds.
    pub duration: f64,
    /// The segments, in order.
    pub segments: Vec<Segment>,
}

impl Transcript {
    /// All words of all segments, in order.
    pub fn words(&self) -> impl Iterator<Item = &Word> {
        self.segments.iter().flat_map(|s| s.words.iter())
    }

    /// The plain text, segments joined by newlines.
    #[must_use]
    pub fn text(&self) -> String {
        self.segments.iter().map(|s| s.text.trim()).collect::<Vec<_>>().join("\n")
    }
}
