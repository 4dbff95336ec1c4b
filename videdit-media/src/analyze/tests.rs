//! Analysis tests on crafted transcripts with realistic word timings.

use std::ops::Range;

use videdit_core::time_range::TimeRange;
use videdit_core::transcript::{Transcript, Word};

use super::prepare::Prepared;
use super::score::{self, evaluate};
use super::*;
use crate::testing::{FILLER, HOOK_STORY_PAYOFF, MID_THOUGHT, PRACTICE, SLEEP, small_talk, transcript_of};

/// A transcript built from paragraphs, with the word range of each.
struct Talk {
    transcript: Transcript,
    parts: Vec<Range<usize>>,
}

/// Builds a transcript at about 2.5 words per second: words last 0.22 s
/// plus 25 ms per letter with 80 ms gaps, 0.45 s pauses after sentences,
/// 0.2 s after commas and 1 s between paragraphs; hesitations ("um", "uh")
/// are drawn out and followed by a 0.35 s pause. Segments hold 12 words
/// and ignore sentence boundaries, as a recogniser's often do.
fn talk(paragraphs: &[&str]) -> Talk {
    let mut words: Vec<Word> = Vec::new();
    let mut parts = Vec::new();
    let mut t = 0.5;
    for p in paragraphs {
        let first = words.len();
        for token in p.split_whitespace() {
            let core = token.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
            let hesitation = matches!(core.as_str(), "um" | "uh" | "erm");
            let letters = core.chars().count() as f64;
            let duration = if hesitation { 0.45 } else { (0.22 + 0.025 * letters).clamp(0.2, 0.6) };
            words.push(Word { text: format!(" {token}"), start: t, end: t + duration, probability: 0.9 });
            t += duration;
            t += if token.ends_with(['.', '?', '!']) {
                0.45
            } else if hesitation {
                0.35
            } else if token.ends_with(',') {
                0.2
            } else {
                0.08
            };
        }
        parts.push(first..words.len());
        t += 1.0;
    }
    Talk { transcript: transcript_of(&words, 12, "test", t), parts }
}

/// Sentences lying inside a word range.
fn sentences_in(p: &Prepared<'_>, words: &Range<usize>) -> Range<usize> {
    let inside: Vec<usize> = p
        .sentences
        .iter()
        .enumerate()
        .filter(|(_, s)| s.words.start >= words.start && s.words.end <= words.end)
        .map(|(i, _)| i)
        .collect();
    inside[0]..inside[inside.len() - 1] + 1
}

/// Scores the whole paragraph `part` as one window.
fn score_part(talk: &Talk, part: usize) -> score::Candidate {
    let p = Prepared::new(&talk.transcript, None, &[]);
    let s = sentences_in(&p, &talk.parts[part]);
    evaluate(&p, s.start, s.end - 1)
}

/// A ten-minute talk: small talk with the three strong passages planted at
/// parts 1, 3 and 5.
fn ten_minute_talk() -> Talk {
    let pads: Vec<String> = (0..4).map(|i| small_talk(i * 5, 26)).collect();
    talk(&[&pads[0], HOOK_STORY_PAYOFF, &pads[1], SLEEP, &pads[2], PRACTICE, &pads[3]])
}

fn options() -> AnalyzeOptions {
    AnalyzeOptions::default()
}

#[test]
fn hook_story_payoff_outranks_filler_and_mid_thought() {
    let t = talk(&[FILLER, MID_THOUGHT, HOOK_STORY_PAYOFF, FILLER]);
    let good = score_part(&t, 2);
    let filler = score_part(&t, 0);
    let mid = score_part(&t, 1);
    assert!(good.score > filler.score + 15.0, "good {good:?}\nfiller {filler:?}");
    assert!(good.score > mid.score + 10.0, "good {good:?}\nmid-thought {mid:?}");
    assert!(good.sub.hook > mid.sub.hook && good.sub.completeness > mid.sub.completeness);
    assert!(good.sub.filler > filler.sub.filler);

    let hs = analyze(&t.transcript, None, &options()).unwrap();
    let best = &hs[0];
    assert_eq!(best.first_word, t.parts[2].start, "{hs:#?}");
    assert!(best.last_word < t.parts[2].end, "{best:#?}");
    // Whatever else fills the list scores well below it: far below when it
    // starts in the filler, clearly below when it opens mid-thought.
    for h in &hs[1..] {
        if t.parts[0].contains(&h.first_word) || t.parts[3].contains(&h.first_word) {
            assert!(h.score < best.score - 30.0, "{h:#?}");
        }
        if h.first_word == t.parts[1].start {
            assert!(h.score < best.score - 10.0, "{h:#?}");
        }
    }
}

#[test]
fn planted_passages_lead_a_ten_minute_talk() {
    let t = ten_minute_talk();
    assert!((540.0..720.0).contains(&t.transcript.duration), "{}", t.transcript.duration);
    let hs = analyze(&t.transcript, None, &AnalyzeOptions { max_shorts: 3, ..options() }).unwrap();
    assert_eq!(hs.len(), 3);
    let planted = [1, 3, 5];
    let found = planted
        .iter()
        .filter(|&&part| hs.iter().any(|h| h.first_word >= t.parts[part].start && h.last_word < t.parts[part].end))
        .count();
    assert_eq!(found, 3, "{hs:#?}");
}

#[test]
fn highlights_are_whole_sentences_in_range_without_overlap() {
    let t = ten_minute_talk();
    let o = AnalyzeOptions { max_shorts: 10, min_duration: 15.0, max_duration: 45.0, ..options() };
    let hs = analyze(&t.transcript, None, &o).unwrap();
    assert!(hs.len() >= 5, "{}", hs.len());
    let all = sentences(&t.transcript);
    let words: Vec<&Word> = t.transcript.words().collect();
    for h in &hs {
        assert!(all.iter().any(|s| s.words.start == h.first_word), "{h:#?}");
        assert!(all.iter().any(|s| s.words.end == h.last_word + 1), "{h:#?}");
        assert_eq!(h.range.start(), words[h.first_word].start);
        assert_eq!(h.range.end(), words[h.last_word].end);
        assert!((15.0..=45.0).contains(&h.range.duration()), "{}", h.range.duration());
        assert!((0.0..=100.0).contains(&h.score));
        assert!(!h.reason.is_empty() && !h.title.is_empty());
        assert!(h.title.chars().count() <= MAX_TITLE_CHARS, "{}", h.title);
        assert!(!h.title.ends_with(['.', ',', ';', ':', '-']), "{}", h.title);
    }
    for (i, a) in hs.iter().enumerate() {
        for b in &hs[i + 1..] {
            assert!(!a.range.overlaps(&b.range), "{a:#?}\n{b:#?}");
            assert!(a.last_word < b.first_word || b.last_word < a.first_word);
            assert!(a.score >= b.score);
        }
    }
}

#[test]
fn is_deterministic() {
    let t = ten_minute_talk();
    let o = AnalyzeOptions { max_shorts: 8, keywords: vec!["sleep".into()], ..options() };
    let a = analyze(&t.transcript, None, &o).unwrap();
    let b = analyze(&t.transcript.clone(), None, &o).unwrap();
    assert_eq!(a, b);
    assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
}

#[test]
fn incremental_scores_match_fresh_evaluation() {
    let t = ten_minute_talk();
    let p = Prepared::new(&t.transcript, None, &[]);
    let cands = score::candidates(&p, &options());
    assert!(cands.len() > 50);
    for c in &cands {
        assert_eq!(*c, evaluate(&p, c.first, c.last));
    }
}

#[test]
fn validates_options() {
    assert!(options().validate().is_ok());
    let range = |a, b| Some(TimeRange::new(a, b).unwrap());
    for bad in [
        AnalyzeOptions { max_shorts: 0, ..options() },
        AnalyzeOptions { max_shorts: MAX_SHORTS + 1, ..options() },
        AnalyzeOptions { min_duration: 40.0, max_duration: 30.0, ..options() },
        AnalyzeOptions { min_duration: 0.0, ..options() },
        AnalyzeOptions { min_duration: f64::NAN, ..options() },
        AnalyzeOptions { max_duration: 1000.0, ..options() },
        AnalyzeOptions { search_range: range(10.0, 25.0), ..options() },
        AnalyzeOptions { keywords: vec!["  ".into()], ..options() },
        AnalyzeOptions { keywords: vec!["x".repeat(65)], ..options() },
        AnalyzeOptions { keywords: vec!["k".into(); MAX_KEYWORDS + 1], ..options() },
    ] {
        let err = bad.validate().unwrap_err();
        assert_eq!(err.code(), videdit_core::ErrorCode::InvalidRequest);
        assert_eq!(analyze(&talk(&[SLEEP]).transcript, None, &bad).unwrap_err().to_string(), err.to_string());
    }
    let o: AnalyzeOptions = serde_json::from_str(r#"{"max_shorts": 3}"#).unwrap();
    assert_eq!(o, AnalyzeOptions { max_shorts: 3, ..options() });
}

#[test]
fn rejects_invalid_timings_and_audio() {
    let mut t = talk(&[SLEEP]).transcript;
    t.segments[0].words[3].end = f64::NAN;
    assert!(matches!(analyze(&t, None, &options()), Err(AnalyzeError::InvalidWordTiming { index: 3, .. })));
    let t = talk(&[SLEEP]).transcript;
    let audio = AudioFeatures { frame_seconds: -1.0, rms_db: vec![] };
    assert_eq!(analyze(&t, Some(&audio), &options()).unwrap_err().code(), videdit_core::ErrorCode::Internal);
}

#[test]
fn short_or_empty_transcripts_give_no_highlights() {
    let empty = Transcript { language: "en".into(), model: "test".into(), duration: 0.0, segments: vec![] };
    assert!(analyze(&empty, None, &options()).unwrap().is_empty());
    assert!(sentences(&empty).is_empty());
    let short = talk(&["This is far too short to become a clip."]).transcript;
    assert!(analyze(&short, None, &options()).unwrap().is_empty());
}

#[test]
fn keywords_are_favoured() {
    let t = talk(&[SLEEP, FILLER, PRACTICE]);
    let plain = analyze(&t.transcript, None, &AnalyzeOptions { max_shorts: 1, ..options() }).unwrap();
    assert!(t.parts[2].contains(&plain[0].first_word), "{plain:#?}");
    let o = AnalyzeOptions { max_shorts: 1, keywords: vec!["Volunteers".into(), "sleep".into()], ..options() };
    let favoured = analyze(&t.transcript, None, &o).unwrap();
    assert!(t.parts[0].contains(&favoured[0].first_word), "{favoured:#?}");
    assert!(favoured[0].reason.ends_with("; mentions 'sleep' and 'Volunteers'"), "{}", favoured[0].reason);

    // A phrase matches as a phrase.
    let p = Prepared::new(&t.transcript, None, &["deliberate practice".to_owned()]);
    assert_eq!(p.keyword_at.iter().flatten().count(), 2);
}

#[test]
fn search_range_is_respected() {
    let t = ten_minute_talk();
    let range = TimeRange::new(200.0, 420.0).unwrap();
    let o = AnalyzeOptions { max_shorts: 10, search_range: Some(range), ..options() };
    let hs = analyze(&t.transcript, None, &o).unwrap();
    assert!(!hs.is_empty());
    for h in &hs {
        assert!(h.range.start() >= 200.0 && h.range.end() <= 420.0, "{:?}", h.range);
    }
}

#[test]
fn dangling_openers_are_penalised() {
    let clean = talk(&[SLEEP]);
    let dangling_text = format!("And {}{}", SLEEP[..1].to_lowercase(), &SLEEP[1..]);
    let dangling = talk(&[&dangling_text]);
    let (a, b) = (score_part(&clean, 0), score_part(&dangling, 0));
    assert!(b.sub.completeness < a.sub.completeness - 0.3, "{a:?}\n{b:?}");
    assert!(b.score < a.score);
}

#[test]
fn fillers_are_penalised() {
    let clean = talk(&[PRACTICE]);
    let padded: String = PRACTICE
        .split_whitespace()
        .enumerate()
        .map(|(i, w)| match i % 6 {
            2 => format!("um, {w}"),
            5 => format!("you know, {w}"),
            _ => w.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ");
    let filled = talk(&[&padded]);
    let (a, b) = (score_part(&clean, 0), score_part(&filled, 0));
    assert!(a.sub.filler > 0.95 && b.sub.filler < 0.3, "{a:?}\n{b:?}");
    assert!(b.score < a.score - 10.0);
}

#[test]
fn window_hooks_follow_the_opening_sentence() {
    let question = format!("What would you do with an extra hour every day? {PRACTICE}");
    let flat = format!("The meeting took place in the office on a Tuesday. {PRACTICE}");
    let (question, flat) = (talk(&[&question]), talk(&[&flat]));
    assert!(score_part(&question, 0).sub.hook > score_part(&flat, 0).sub.hook + 0.3);
}

#[test]
fn loud_passages_deliver_better() {
    let t = talk(&[SLEEP, FILLER, PRACTICE]);
    let frames = (t.transcript.duration / FRAME_SECONDS).ceil() as usize;
    let loud_until = t.transcript.segments.iter().flat_map(|s| &s.words).nth(t.parts[0].end - 1).unwrap().end;
    let rms_db = (0..frames).map(|i| if (i as f64) * FRAME_SECONDS < loud_until { -12.0 } else { -24.0 }).collect();
    let audio = AudioFeatures { frame_seconds: FRAME_SECONDS, rms_db };
    let quiet = Prepared::new(&t.transcript, None, &[]);
    let loud = Prepared::new(&t.transcript, Some(&audio), &[]);
    let s = sentences_in(&quiet, &t.parts[0]);
    let without = evaluate(&quiet, s.start, s.end - 1).sub.delivery;
    let with = evaluate(&loud, s.start, s.end - 1).sub.delivery;
    let s2 = sentences_in(&quiet, &t.parts[2]);
    assert!(with > evaluate(&loud, s2.start, s2.end - 1).sub.delivery + 0.1);
    assert!(with > 0.0 && without > 0.0);
}

#[test]
fn explains_with_reason_title_and_terms() {
    let t = talk(&[FILLER, HOOK_STORY_PAYOFF, FILLER, PRACTICE]);
    let hs = analyze(&t.transcript, None, &options()).unwrap();
    let money = hs.iter().find(|h| t.parts[1].contains(&h.first_word)).unwrap();
    eprintln!("{money:#?}");
    assert!(money.reason.starts_with("Opens with a question"), "{}", money.reason);
    assert!(money.key_terms.iter().any(|k| k == "compound interest"), "{:?}", money.key_terms);
    let practice = hs.iter().find(|h| t.parts[3].contains(&h.first_word)).unwrap();
    assert_eq!(practice.title, "Everything you were taught about talent is wrong", "{practice:#?}");
    assert!(practice.reason.starts_with("Opens with a bold claim"), "{}", practice.reason);
}

#[test]
fn survives_missing_punctuation() {
    // A recogniser that drops punctuation and case: sentences come from
    // pauses and run-on cuts, and the planted passages still lead.
    let mut t = ten_minute_talk();
    for w in t.transcript.segments.iter_mut().flat_map(|s| &mut s.words) {
        w.text = w.text.trim_end_matches(['.', ',', '?', '!', ':']).to_lowercase();
    }
    let all = sentences(&t.transcript);
    assert!(all.len() > 20 && all.iter().all(|s| s.end - s.start <= 25.0), "{}", all.len());
    let hs = analyze(&t.transcript, None, &AnalyzeOptions { max_shorts: 3, ..options() }).unwrap();
    let found = [1, 3, 5]
        .iter()
        .filter(|&&part| {
            hs.iter().any(|h| t.parts[part].contains(&h.first_word) || t.parts[part].contains(&h.last_word))
        })
        .count();
    assert!(found >= 2, "{hs:#?}");
    for h in &hs {
        assert!(
            all.iter().any(|s| s.words.start == h.first_word) && all.iter().any(|s| s.words.end == h.last_word + 1)
        );
    }
}
