//! Highlight analysis time on a synthetic two-hour talk (about 20,000
//! words, 1,700 sentences, topics drifting every few minutes).
//!
//! `cargo bench -p videdit-benches --bench analyze`. Env: `RUNS` (default 15),
//! `WORDS` (default 20000).

use std::time::Instant;

use videdit_core::transcript::{Transcript, Word};
use videdit_media::analyze::{AnalyzeOptions, AudioFeatures, analyze, sentences};
use videdit_media::testing::transcript_of;

/// xorshift64*: a tiny deterministic generator, so every run sees the same talk.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const COMMON: &[&str] = &[
    "the", "a", "and", "to", "of", "in", "that", "it", "is", "was", "we", "you", "they", "this", "for", "on", "with",
    "but", "so", "what", "about", "just", "really", "people", "because", "when", "there", "have", "had", "think",
];
const SYLLABLES: &[&str] =
    &["ka", "lo", "mi", "ter", "sun", "va", "pel", "dro", "ni", "quo", "ras", "te", "bin", "gor", "la", "ex"];

/// A pseudo-word for topic `topic`, slot `k`.
fn topic_word(topic: usize, k: usize) -> String {
    let a = SYLLABLES[(topic * 7 + k) % SYLLABLES.len()];
    let b = SYLLABLES[(topic * 3 + k * 5 + 1) % SYLLABLES.len()];
    let c = SYLLABLES[(topic + k * 11 + 2) % SYLLABLES.len()];
    format!("{a}{b}{c}")
}

fn synthetic_talk(n_words: usize) -> Transcript {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut words: Vec<Word> = Vec::with_capacity(n_words + 32);
    let mut t = 1.0;
    let mut topic = 0;
    let mut sentence = 0;
    while words.len() < n_words {
        if sentence % 40 == 39 {
            topic += 1;
        }
        sentence += 1;
        let len = 6 + rng.below(15);
        let question = rng.chance(12);
        for i in 0..len {
            let mut text = if i == 0 && rng.chance(8) {
                "Um,".to_owned()
            } else if rng.chance(35) {
                topic_word(topic, rng.below(25))
            } else {
                COMMON[rng.below(COMMON.len())].to_owned()
            };
            if i == 0 {
                let mut c = text.chars();
                text = c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default();
            }
            if i + 1 == len {
                text.push(if question { '?' } else { '.' });
            } else if rng.chance(6) {
                text.push(',');
            }
            let duration = 0.2 + 0.02 * text.len() as f64;
            words.push(Word { text: format!(" {text}"), start: t, end: t + duration, probability: 0.85 });
            t += duration + if i + 1 == len { 0.35 + 0.1 * rng.below(5) as f64 } else { 0.06 };
        }
    }
    transcript_of(&words, 14, "synthetic", t)
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let runs = env("RUNS", 15).max(1);
    let transcript = synthetic_talk(env("WORDS", 20_000));
    let n_words = transcript.words().count();
    let n_sentences = sentences(&transcript).len();
    // 16 kHz audio is not needed for the features: 10 frames a second.
    let frames = (transcript.duration * 10.0).ceil() as usize;
    let audio = AudioFeatures {
        frame_seconds: 0.1,
        rms_db: (0..frames).map(|i| -30.0 + 8.0 * ((i as f32) * 0.013).sin()).collect(),
    };
    let options = AnalyzeOptions { max_shorts: 10, keywords: vec![topic_word(3, 1)], ..AnalyzeOptions::default() };
    println!(
        "analyze: {n_words} words, {n_sentences} sentences, {:.0} min of speech, {runs} runs",
        transcript.duration / 60.0
    );

    for (label, audio) in [("transcript only", None), ("with audio", Some(&audio))] {
        let mut times = Vec::with_capacity(runs);
        let mut found = 0;
        for _ in 0..runs {
            let started = Instant::now();
            let highlights = analyze(&transcript, audio, &options).expect("analysis");
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            found = highlights.len();
        }
        times.sort_by(f64::total_cmp);
        println!(
            "  {label:<16} median {:7.1} ms   min {:7.1} ms   max {:7.1} ms   ({found} highlights)",
            times[times.len() / 2],
            times[0],
            times[times.len() - 1]
        );
    }
}
