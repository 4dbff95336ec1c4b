//! Sentence splitting on word timestamps.

use std::ops::Range;

use videdit_core::transcript::{Transcript, Word};

use super::text::{CLOSERS, OPENERS, listed, starts_upper};

/// A gap between words longer than this ends a sentence when the word
/// before it has no punctuation at all (the model omitted it).
pub const PAUSE_SPLIT_SECONDS: f64 = 1.2;
/// A gap longer than this ends a sentence even after a comma.
const HARD_PAUSE_SECONDS: f64 = 3.0;
/// Sentences longer than this (run-ons from a model that punctuates
/// little) are cut at their longest inner pause.
const MAX_SENTENCE_SECONDS: f64 = 25.0;
/// Smallest pause (with the segment-boundary bonus) worth cutting a run-on at.
const MIN_RUN_ON_CUT: f64 = 0.25;

/// One sentence of a transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct Sentence {
    /// Indices of its words in [`Transcript::words`] order.
    pub words: Range<usize>,
    /// Its first word's start, in seconds.
    pub start: f64,
    /// Its last word's end, in seconds.
    pub end: f64,
    /// Its words joined by single spaces.
    pub text: String,
}

/// Splits a transcript into sentences.
///
/// A sentence ends at terminal punctuation (`.`, `?`, `!`; an ellipsis only
/// before a capital or a pause), except after abbreviations (`Dr.`, `e.g.`,
/// initials; `etc.` or `U.S.` only before a capital) and inside numbers
/// split across words (`3.` `5`). Where the model left punctuation out, a
/// pause of more than [`PAUSE_SPLIT_SECONDS`] ends the sentence, and a
/// run-on longer than 25 s is cut at its longest pause. Every word belongs
/// to exactly one sentence; the sentences are in order and contiguous.
#[must_use]
pub fn sentences(transcript: &Transcript) -> Vec<Sentence> {
    let words: Vec<&Word> = transcript.words().collect();
    let mut seg_end = Vec::with_capacity(words.len());
    for seg in &transcript.segments {
        let n = seg.words.len();
        seg_end.extend((0..n).map(|i| i + 1 == n));
    }
    split(&words, &seg_end)
}

/// [`sentences`] on a flat word list; `seg_end[i]` says whether word `i`
/// ends a segment.
pub(super) fn split(words: &[&Word], seg_end: &[bool]) -> Vec<Sentence> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 0..words.len() {
        let next = words.get(i + 1).copied();
        if next.is_none_or(|next| ends_sentence(words[i], next)) {
            push_sentence(words, seg_end, start..i + 1, &mut out);
            start = i + 1;
        }
    }
    out
}

/// Whether `word` is the last of its sentence, given the word after it.
fn ends_sentence(word: &Word, next: &Word) -> bool {
    let gap = next.start - word.end;
    let raw = word.text.trim().trim_end_matches(CLOSERS);
    if let Some(ends) = terminal(raw, next, gap) {
        return ends;
    }
    let soft_punct = raw.ends_with([',', ';', ':', '-', '–', '—']);
    gap > HARD_PAUSE_SECONDS || (gap > PAUSE_SPLIT_SECONDS && !soft_punct)
}

/// `Some(ends)` when the word carries terminal punctuation (deciding on
/// abbreviations and numbers), `None` when it has none.
fn terminal(raw: &str, next: &Word, gap: f64) -> Option<bool> {
    let next_upper = starts_upper(&next.text);
    if raw.ends_with("...") || raw.ends_with('…') {
        return Some(next_upper || gap >= 0.6);
    }
    if raw.ends_with(['?', '!']) {
        return Some(true);
    }
    if !raw.ends_with('.') {
        return None;
    }
    let body = raw.trim_end_matches('.').trim_start_matches(OPENERS);
    let lower = body.to_lowercase();
    if is_title_abbreviation(&lower) || is_inline_abbreviation(&lower) {
        return Some(false);
    }
    let next_starts_digit = next.text.trim().trim_start_matches(OPENERS).starts_with(|c: char| c.is_ascii_digit());
    if body.ends_with(|c: char| c.is_ascii_digit()) && next_starts_digit {
        return Some(false); // "3." "5": a number split across words
    }
    let mut letters = body.chars().filter(|c| c.is_alphabetic());
    let single_letter = letters.next().is_some() && letters.next().is_none() && body.chars().count() == 1;
    if single_letter && body != "I" && body.chars().all(char::is_uppercase) {
        return Some(gap >= 0.6); // an initial, "J. K. Rowling"
    }
    let dotted = body.contains('.') && body.chars().any(char::is_alphabetic); // "U.S", "p.m", "Ph.D"
    if dotted || is_ambiguous_abbreviation(&lower) {
        return Some(next_upper);
    }
    Some(true)
}

/// Abbreviations that precede a name and never end a sentence.
fn is_title_abbreviation(w: &str) -> bool {
    listed(TITLE_ABBREVIATIONS, w)
}

/// Abbreviations used inside a sentence.
fn is_inline_abbreviation(w: &str) -> bool {
    matches!(w, "e.g" | "i.e" | "vs" | "cf" | "approx" | "viz" | "fig")
}

/// Abbreviations that may end a sentence: a split only before a capital.
fn is_ambiguous_abbreviation(w: &str) -> bool {
    matches!(w, "etc" | "inc" | "ltd" | "co" | "corp" | "jr" | "sr" | "al" | "dept" | "est" | "univ" | "bros")
}

/// Pushes `words[range]` as one sentence, cutting run-ons at their longest pause.
fn push_sentence(words: &[&Word], seg_end: &[bool], range: Range<usize>, out: &mut Vec<Sentence>) {
    let (start, end) = span(words, range.clone());
    if end - start > MAX_SENTENCE_SECONDS
        && let Some(cut) = run_on_cut(words, seg_end, range.clone())
    {
        push_sentence(words, seg_end, range.start..cut, out);
        push_sentence(words, seg_end, cut..range.end, out);
        return;
    }
    let text =
        words[range.clone()].iter().map(|w| w.text.trim()).filter(|t| !t.is_empty()).collect::<Vec<_>>().join(" ");
    out.push(Sentence { words: range, start, end, text });
}

/// First word's start and the latest end among the words.
fn span(words: &[&Word], range: Range<usize>) -> (f64, f64) {
    let start = words[range.start].start;
    let end = words[range].iter().map(|w| w.end).fold(start, f64::max);
    (start, end)
}

/// Where to cut a run-on: before the word with the longest pause ahead of
/// it (a segment boundary counts 0.3 s extra, a comma halves the pause),
/// nearest the middle on ties. `None` when no pause is worth a cut.
fn run_on_cut(words: &[&Word], seg_end: &[bool], range: Range<usize>) -> Option<usize> {
    let mid = (range.start + range.end) as f64 / 2.0;
    let mut best: Option<(f64, f64, usize)> = None;
    for k in range.start + 1..range.end {
        let before = words[k - 1];
        let raw = before.text.trim().trim_end_matches(CLOSERS);
        if is_title_abbreviation(&raw.trim_end_matches('.').to_lowercase()) {
            continue;
        }
        let mut weight = (words[k].start - before.end).max(0.0);
        if raw.ends_with([',', ';', ':']) {
            weight *= 0.5;
        }
        if seg_end.get(k - 1).copied().unwrap_or(false) {
            weight += 0.3;
        }
        let off_centre = (k as f64 - mid).abs();
        let better = match best {
            None => true,
            Some((w, off, _)) => weight > w || (weight == w && off_centre < off),
        };
        if weight >= MIN_RUN_ON_CUT && better {
            best = Some((weight, off_centre, k));
        }
    }
    best.map(|(_, _, k)| k)
}

/// Abbreviations before a name, never ending a sentence.
#[rustfmt::skip]
const TITLE_ABBREVIATIONS: &[&str] = &[
    "capt", "col", "cpt", "dr", "ft", "gen", "gov", "hon", "lt", "messrs", "mr", "mrs", "ms", "mt", "mx", "pres",
    "prof", "rep", "rev", "sen", "sgt", "st", "supt",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Words at 0.4 s each with a 0.1 s gap; `|` in the text inserts a
    /// 1.5 s pause before the next word.
    fn words(text: &str) -> Vec<Word> {
        let mut t = 0.0;
        let mut out = Vec::new();
        for token in text.split_whitespace() {
            if token == "|" {
                t += 1.5;
                continue;
            }
            out.push(Word { text: format!(" {token}"), start: t, end: t + 0.4, probability: 0.9 });
            t += 0.5;
        }
        out
    }

    fn texts(text: &str) -> Vec<String> {
        let w = words(text);
        let refs: Vec<&Word> = w.iter().collect();
        split(&refs, &vec![false; refs.len()]).into_iter().map(|s| s.text).collect()
    }

    #[test]
    fn splits_on_terminal_punctuation() {
        assert_eq!(texts("Hello there. How are you? Great!"), ["Hello there.", "How are you?", "Great!"]);
    }

    #[test]
    fn keeps_abbreviations_and_numbers() {
        assert_eq!(
            texts("I met Dr. Smith and Mr. J. Jones, e.g. at work. It grew 3.5 percent. Version 2. 0 shipped."),
            ["I met Dr. Smith and Mr. J. Jones, e.g. at work.", "It grew 3.5 percent.", "Version 2. 0 shipped."]
        );
        assert_eq!(
            texts("We sell apples, pears etc. and more. We moved to the U.S. Then we left."),
            ["We sell apples, pears etc. and more.", "We moved to the U.S.", "Then we left."]
        );
    }

    #[test]
    fn ellipsis_ends_only_before_capital_or_pause() {
        assert_eq!(
            texts("I was thinking... maybe not. Well... Okay."),
            ["I was thinking... maybe not.", "Well...", "Okay."]
        );
    }

    #[test]
    fn splits_on_long_pauses_without_punctuation() {
        assert_eq!(
            texts("so this is how it works | and then we go on"),
            ["so this is how it works", "and then we go on"]
        );
        // A comma keeps the sentence together across the same pause.
        assert_eq!(
            texts("so this is how it works, | and then we go on"),
            ["so this is how it works, and then we go on"]
        );
        // A very long pause splits anyway.
        let mut w = words("wait, for it");
        for x in &mut w[1..] {
            x.start += 4.0;
            x.end += 4.0;
        }
        let refs: Vec<&Word> = w.iter().collect();
        assert_eq!(split(&refs, &[false, false, false]).len(), 2);
    }

    #[test]
    fn cuts_run_ons_at_the_longest_pause() {
        // 80 unpunctuated words (40 s) with one 0.6 s pause after word 30.
        let mut w = words(&vec!["word"; 80].join(" "));
        for x in &mut w[30..] {
            x.start += 0.5;
            x.end += 0.5;
        }
        let refs: Vec<&Word> = w.iter().collect();
        let s = split(&refs, &[false; 80]);
        assert_eq!(s.iter().map(|s| s.words.clone()).collect::<Vec<_>>(), [0..30, 30..80]);
    }

    #[test]
    fn sentences_cover_every_word_in_order() {
        let t = Transcript {
            language: "en".into(),
            model: "test".into(),
            duration: 10.0,
            segments: vec![
                videdit_core::transcript::Segment {
                    start: 0.0,
                    end: 2.0,
                    text: "One. Two".into(),
                    words: words("One. Two"),
                },
                videdit_core::transcript::Segment {
                    start: 2.0,
                    end: 3.0,
                    text: "three.".into(),
                    words: words("three."),
                },
            ],
        };
        let s = sentences(&t);
        assert_eq!(s.iter().map(|s| s.words.clone()).collect::<Vec<_>>(), [0..1, 1..3]);
        assert_eq!(s[0].text, "One.");
        assert!(s.iter().all(|s| s.start <= s.end));
    }

    #[test]
    fn abbreviations_are_sorted() {
        assert!(TITLE_ABBREVIATIONS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn empty_transcript_has_no_sentences() {
        assert!(split(&[], &[]).is_empty());
    }
}
