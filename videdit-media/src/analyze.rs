//! Highlight analysis: from a transcript (and optionally the audio's
//! loudness), find the passages that make the best shorts.
//!
//! 1. [`sentences`] splits the words into sentences.
//! 2. Every run of whole sentences lasting between
//!    [`AnalyzeOptions::min_duration`] and [`AnalyzeOptions::max_duration`]
//!    is a candidate, so a short always starts on the first word of a
//!    sentence and ends on the last word of one. Each start keeps its best
//!    window in each of up to three duration buckets.
//! 3. Each candidate gets explainable [`SubScores`]:
//!    - **hook** (weight 0.25): the opening sentence is a question, a teaser
//!      ("here's the thing"), a bold claim, a number or speaks to the viewer;
//!      greetings, channel chores and a leading "um" count against it.
//!    - **completeness** (0.20): it does not open on a dangling "and / but /
//!      so / that", ends on a full stop, and the next sentence does not carry
//!      the thought on.
//!    - **coherence** (0.15): content words recur between its sentences, and
//!      it shares little vocabulary with the sentences just outside it.
//!    - **salience** (0.15): terms repeated here and rare in the rest of the
//!      transcript, plus the caller's keywords.
//!    - **delivery** (0.10): speech rate, dead air, loudness (with audio) and
//!      recogniser confidence.
//!    - **filler** (0.15): 1 with no "um", "uh", "you know", … at all, falling
//!      to 0 when one word in ten is one.
//!
//!    The score is 100 × the weighted sum, plus up to 15 points for the
//!    caller's keywords, capped at 100. The hook and completeness weigh most
//!    because a short lives or dies in its first seconds and clips that start
//!    or stop mid-thought are what viewers complain about most.
//! 4. The best candidates are taken greedily, skipping any that overlaps one
//!    already taken. Ties break on position, so the result is deterministic.
//!
//! The lexicons are English; on other languages the hook, filler and
//! completeness cues mostly stay silent and the ranking rests on the
//! language-neutral signals (cohesion, salience, delivery).
//!
//! ```
//! use videdit_media::analyze::{AnalyzeOptions, analyze};
//! # let transcript: videdit_core::transcript::Transcript =
//! #     serde_json::from_str(r#"{"language":"en","model":"tiny.en","duration":0,"segments":[]}"#).unwrap();
//! let options = AnalyzeOptions { max_shorts: 3, keywords: vec!["pricing".into()], ..AnalyzeOptions::default() };
//! for h in analyze(&transcript, None, &options)? {
//!     println!("{:.0} {:?} {} ({})", h.score, h.range, h.title, h.reason);
//! }
//! # Ok::<(), videdit_media::analyze::AnalyzeError>(())
//! ```

mod audio;
mod explain;
mod prepare;
mod score;
mod sentences;
mod text;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use videdit_core::ErrorCode;
use videdit_core::short::SubScores;
use videdit_core::time_range::TimeRange;
use videdit_core::transcript::Transcript;

pub use audio::{AudioFeatures, FRAME_SECONDS, SILENCE_DB};
pub use explain::MAX_TITLE_CHARS;
pub use sentences::{PAUSE_SPLIT_SECONDS, Sentence, sentences};

/// Most shorts one analysis may return.
pub const MAX_SHORTS: usize = 50;
/// Longest allowed [`AnalyzeOptions::max_duration`], in seconds.
pub const MAX_DURATION_LIMIT: f64 = 180.0;
/// Shortest allowed [`AnalyzeOptions::min_duration`], in seconds.
pub const MIN_DURATION_LIMIT: f64 = 5.0;
/// Most keywords one analysis may favour.
pub const MAX_KEYWORDS: usize = 20;
/// Longest keyword, in characters.
pub const MAX_KEYWORD_CHARS: usize = 64;

/// What to look for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnalyzeOptions {
    /// How many shorts to return at most (1..=[`MAX_SHORTS`]).
    pub max_shorts: usize,
    /// Shortest short in seconds.
    pub min_duration: f64,
    /// Longest short in seconds (at most [`MAX_DURATION_LIMIT`]).
    pub max_duration: f64,
    /// Only consider this part of the source.
    pub search_range: Option<TimeRange>,
    /// Words or phrases to favour (matched case-insensitively, plurals too).
    pub keywords: Vec<String>,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        Self { max_shorts: 5, min_duration: 20.0, max_duration: 60.0, search_range: None, keywords: Vec::new() }
    }
}

impl AnalyzeOptions {
    /// Checks the options.
    ///
    /// # Errors
    /// [`AnalyzeError`] naming the first option out of range.
    pub fn validate(&self) -> Result<(), AnalyzeError> {
        if self.max_shorts == 0 || self.max_shorts > MAX_SHORTS {
            return Err(AnalyzeError::InvalidShortCount(self.max_shorts));
        }
        let (min, max) = (self.min_duration, self.max_duration);
        if !(min.is_finite() && max.is_finite() && MIN_DURATION_LIMIT <= min && min <= max && max <= MAX_DURATION_LIMIT)
        {
            return Err(AnalyzeError::InvalidDurationRange { min, max });
        }
        if let Some(r) = self.search_range
            && r.duration() < min
        {
            return Err(AnalyzeError::SearchRangeTooShort { range: r, min_duration: min });
        }
        if self.keywords.len() > MAX_KEYWORDS {
            return Err(AnalyzeError::TooManyKeywords(self.keywords.len()));
        }
        for k in &self.keywords {
            if k.chars().count() > MAX_KEYWORD_CHARS || !k.chars().any(char::is_alphanumeric) {
                return Err(AnalyzeError::InvalidKeyword(k.clone()));
            }
        }
        Ok(())
    }
}

/// Why an analysis could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AnalyzeError {
    /// `max_shorts` is zero or above [`MAX_SHORTS`].
    #[error("the number of shorts must be between 1 and {MAX_SHORTS}, got {0}")]
    InvalidShortCount(usize),
    /// The duration range is empty, reversed or out of bounds.
    #[error("invalid duration range {min}..{max} s: need {MIN_DURATION_LIMIT} <= min <= max <= {MAX_DURATION_LIMIT}")]
    InvalidDurationRange {
        /// `min_duration` as given.
        min: f64,
        /// `max_duration` as given.
        max: f64,
    },
    /// The search range cannot hold even the shortest short.
    #[error("the search range {}..{} s is shorter than the minimum duration of {min_duration} s", range.start(), range.end())]
    SearchRangeTooShort {
        /// The range as given.
        range: TimeRange,
        /// `min_duration` as given.
        min_duration: f64,
    },
    /// More than [`MAX_KEYWORDS`] keywords.
    #[error("at most {MAX_KEYWORDS} keywords are allowed, got {0}")]
    TooManyKeywords(usize),
    /// A keyword without letters or digits, or longer than [`MAX_KEYWORD_CHARS`].
    #[error("invalid keyword {0:?}: it needs a letter or digit and at most {MAX_KEYWORD_CHARS} characters")]
    InvalidKeyword(String),
    /// A word with a timestamp that is negative, not finite, or ends before it starts.
    #[error("transcript word {index} has invalid timing {start}..{end}")]
    InvalidWordTiming {
        /// Its index in [`Transcript::words`] order.
        index: usize,
        /// Its start.
        start: f64,
        /// Its end.
        end: f64,
    },
    /// Unusable [`AudioFeatures`].
    #[error("invalid audio features: {0}")]
    InvalidAudio(&'static str),
}

impl AnalyzeError {
    /// The stable API error code: bad options are the caller's fault, bad
    /// transcripts or audio features are ours.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidWordTiming { .. } | Self::InvalidAudio(_) => ErrorCode::Internal,
            _ => ErrorCode::InvalidRequest,
        }
    }
}

/// A passage chosen to become a short.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Highlight {
    /// From its first word's start to its last word's end (the renderer
    /// adds padding).
    pub range: TimeRange,
    /// Index of its first word in [`Transcript::words`] order: the first
    /// word of a sentence.
    pub first_word: usize,
    /// Index of its last word (inclusive): the last word of a sentence.
    pub last_word: usize,
    /// Overall score, 0..=100.
    pub score: f32,
    /// The parts of the score.
    pub sub_scores: SubScores,
    /// One line saying why it was picked.
    pub reason: String,
    /// Suggested title, at most [`MAX_TITLE_CHARS`] characters.
    pub title: String,
    /// Its most salient terms or two-word phrases, best first, lower case
    /// (for hashtags and search; not the caller's favoured keywords).
    pub key_terms: Vec<String>,
}

/// Finds the best passages of a transcript for shorts: at most
/// `options.max_shorts`, best first, none overlapping another, each made of
/// whole sentences and lasting between the minimum and maximum duration.
/// `audio` adds loudness to the delivery score; without it delivery rests
/// on the transcript alone. The same input always gives the same output.
///
/// Returns fewer highlights (possibly none) when the transcript has no more
/// runs of whole sentences that fit the duration range.
///
/// # Errors
/// [`AnalyzeError`] when the options are out of range, a word's timing is
/// invalid, or the audio features are malformed.
pub fn analyze(
    transcript: &Transcript,
    audio: Option<&AudioFeatures>,
    options: &AnalyzeOptions,
) -> Result<Vec<Highlight>, AnalyzeError> {
    options.validate()?;
    for (index, w) in transcript.words().enumerate() {
        if !(w.start.is_finite() && w.end.is_finite() && w.start >= 0.0 && w.end >= w.start) {
            return Err(AnalyzeError::InvalidWordTiming { index, start: w.start, end: w.end });
        }
    }
    if let Some(a) = audio {
        a.validate()?;
    }
    let prepared = prepare::Prepared::new(transcript, audio, &options.keywords);
    let chosen = select(score::candidates(&prepared, options), options.max_shorts);
    Ok(chosen.iter().filter_map(|c| highlight(&prepared, c, options)).collect())
}

/// Best first (ties: earlier, then shorter), skipping overlaps.
fn select(mut candidates: Vec<score::Candidate>, max: usize) -> Vec<score::Candidate> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.first.cmp(&b.first)).then(a.last.cmp(&b.last)));
    let mut chosen: Vec<score::Candidate> = Vec::with_capacity(max);
    for c in candidates {
        if chosen.len() == max {
            break;
        }
        let clashes =
            chosen.iter().any(|k| (c.first <= k.last && k.first <= c.last) || (c.start < k.end && k.start < c.end));
        if !clashes {
            chosen.push(c);
        }
    }
    chosen
}

fn highlight(p: &prepare::Prepared<'_>, c: &score::Candidate, options: &AnalyzeOptions) -> Option<Highlight> {
    let range = TimeRange::new(c.start, c.end).ok()?;
    let first_word = p.sentences[c.first].words.start;
    let last_word = p.sentences[c.last].words.end - 1;
    let key_terms = explain::salient_terms(p, c);
    // The caller's keywords said here, in order of first mention.
    let mut matched: Vec<&str> = Vec::new();
    for k in (first_word..=last_word).filter_map(|i| p.keyword_at[i]) {
        let k = options.keywords[k].trim();
        if !matched.contains(&k) {
            matched.push(k);
        }
    }
    Some(Highlight {
        range,
        first_word,
        last_word,
        score: c.score,
        sub_scores: c.sub,
        reason: explain::reason(p, c, &key_terms, &matched),
        title: explain::title(p, c, &key_terms),
        key_terms,
    })
}
