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

    /// SubRip subtitles, one cue per non-empty segment.
    #[must_use]
    pub fn to_srt(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.cues().enumerate() {
            out.push_str(&format!("{}\n{} --> {}\n{}\n\n", i + 1, timestamp(s.0, ','), timestamp(s.1, ','), s.2));
        }
        out
    }

    /// WebVTT subtitles, one cue per non-empty segment.
    #[must_use]
    pub fn to_vtt(&self) -> String {
        let mut out = String::from("WEBVTT\n\n");
        for (start, end, text) in self.cues() {
            // "-->" inside a cue would end it early.
            let text = text.replace("-->", "->");
            out.push_str(&format!("{} --> {}\n{}\n\n", timestamp(start, '.'), timestamp(end, '.'), text));
        }
        out
    }

    /// (start, end, text) of every segment with text, times clamped so that
    /// cues never run backwards or overlap.
    fn cues(&self) -> impl Iterator<Item = (f64, f64, String)> + '_ {
        let mut last_end = 0.0f64;
        self.segments.iter().filter(|s| !s.text.trim().is_empty()).map(move |s| {
            let start = s.start.max(last_end).max(0.0);
            let end = s.end.max(start + 0.001);
            last_end = end;
            let text = s.text.split_whitespace().collect::<Vec<_>>().join(" ");
            (start, end, text)
        })
    }
}

/// `HH:MM:SS,mmm` (SRT) or `HH:MM:SS.mmm` (VTT).
fn timestamp(seconds: f64, separator: char) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    format!("{:02}:{:02}:{:02}{separator}{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Transcript {
        let seg = |start: f64, end: f64, text: &str| Segment { start, end, text: text.into(), words: vec![] };
        Transcript {
            language: "en".into(),
            model: "tiny.en".into(),
            duration: 4000.0,
            segments: vec![
                seg(0.0, 1.5, " Hello  world. "),
                seg(1.2, 2.0, "Overlap --> fixed."),
                seg(2.0, 2.0, "  "),
                seg(3725.5, 3727.25, "Late."),
            ],
        }
    }

    #[test]
    fn srt_is_numbered_with_comma_milliseconds() {
        assert_eq!(
            t().to_srt(),
            "1\n00:00:00,000 --> 00:00:01,500\nHello world.\n\n2\n00:00:01,500 --> 00:00:02,000\nOverlap --> fixed.\n\n3\n01:02:05,500 --> 01:02:07,250\nLate.\n\n"
        );
    }

    #[test]
    fn vtt_has_a_header_dot_milliseconds_and_no_arrows_in_text() {
        let vtt = t().to_vtt();
        assert!(vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello world.\n\n"), "{vtt}");
        assert!(vtt.contains("Overlap -> fixed."));
        assert_eq!(vtt.matches(" --> ").count(), 3);
    }
}
