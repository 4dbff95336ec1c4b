//! Generated speech: talks with known sentence timings over a moving test
//! picture ([`make_talk`]), and paragraphs read aloud into one WAV for the
//! transcription tests ([`paragraphs_wav`]). Because every sentence is
//! synthesised alone, where each one starts and ends is known exactly,
//! independently of any transcript.

use std::path::{Path, PathBuf};

use super::generate;
use crate::error::{Error, Result};
use crate::process::{Ffmpeg, Run, file_arg};

/// espeak-ng's speaking rate everywhere here, in words per minute.
pub const WORDS_PER_MINUTE: u32 = 165;

/// A hook, a story and a payoff: what a good short looks like.
pub const HOOK_STORY_PAYOFF: &str = "Why do most people retire broke even when they earn a good salary? When my \
    grandmother turned twenty five, she started putting fifty dollars a month into an index fund. She never \
    touched it, not once, through three recessions. Her friends laughed at her and bought new cars instead. By \
    the time she retired, that fund had grown to more than four hundred thousand dollars. The money itself did \
    almost none of the work. Compound interest did the work, and time was the only ingredient she needed. So the \
    lesson is simple: start early, stay invested, and let compound interest carry you.";

/// Rambling with filler words.
pub const FILLER: &str = "Um, so, yeah, uh, I was, you know, thinking about the weather the other day. It was, like, \
    kind of nice, I guess. Uh, we had some coffee and, um, you know, just sort of talked. I mean, it was fine, it \
    was okay. Um, yeah, so anyway, uh, where was I. Oh right, uh, so, the, um, the thing is, you know, it's kind \
    of hard to say. Yeah. Um, anyway, uh, let me just, you know, check the time real quick.";

/// A story that starts in the middle of a thought.
pub const MID_THOUGHT: &str = "And that is why he decided to sell the restaurant after all those years. But the \
    buyer backed out two days before the signing, so he kept the keys. Then the kitchen flooded and the insurance \
    company refused to pay for the repairs. He spent the whole winter fixing the floors himself with borrowed \
    tools. By spring the restaurant was open again and busier than it had been in years. That is the part of \
    the story he tells every new cook on their first day.";

/// A strong passage: a bold number, a study, a lesson.
pub const SLEEP: &str = "Ninety percent of the people in this room are sleeping less than they need. In one study, \
    researchers let volunteers sleep only six hours a night for two weeks. By the end, their reaction times were \
    as slow as people who had not slept at all for two days. The strange part is that the volunteers felt fine. \
    They rated their own alertness as almost normal, even while their scores kept falling. Sleep loss hides its \
    own damage, which is why you cannot trust how rested you feel. Protect eight hours of sleep the way you \
    would protect a meeting with your boss.";

/// A strong passage: a bold claim, evidence, a payoff.
pub const PRACTICE: &str = "Everything you were taught about talent is wrong. The best violinists in a famous Berlin \
    study were not the most gifted children. They were the ones who had spent the most hours in deliberate \
    practice, alone, working on the passages they could not yet play. Ten thousand hours is the number everyone \
    remembers, but the hours were never the point. The point was the kind of practice: focused, uncomfortable, \
    and measured. Talent is what deliberate practice looks like from the outside.";

/// Small talk and rambling, cycled to pad a talk.
pub const SMALL_TALK: &[&str] = &[
    "Um, so, yeah, thanks everyone for coming out today.",
    "I think the room is a little bit cold, but that's okay.",
    "Uh, let me just check that the slides are working.",
    "So, you know, we'll get into it in a minute.",
    "Yeah, it's been a long week for a lot of us, I guess.",
    "I mean, the traffic this morning was, like, pretty bad.",
    "Anyway, um, where was I going with this.",
    "Right, so, there's a few things I wanted to mention.",
    "It's kind of a funny thing, but, uh, I forgot my notes.",
    "Okay, let's see, the next slide is, um, this one.",
    "We'll, uh, take some questions at the end, probably.",
    "So, yeah, that's kind of the general idea, I suppose.",
    "I had a coffee before this, so, uh, hopefully I'm awake.",
    "Um, the weather has been really nice lately, hasn't it.",
    "Anyway, I digress, as usual.",
    "Let me, uh, go back a slide, sorry about that.",
    "So where were we, right, okay.",
    "It's, you know, one of those things that happens.",
    "I don't know, it's hard to explain, really.",
    "Uh, my cat woke me up at five this morning, which was fun.",
    "Okay, so, moving on.",
    "Yeah, so, that's basically it for that part.",
    "Um, I think, uh, I think that's right.",
    "Sorry, I lost my train of thought there.",
    "We can, um, come back to that later if there's time.",
    "Thanks again to the organisers for having me here.",
    "The microphone is working, right, can everyone hear me?",
    "Anyway, it's fine, it's all fine.",
    "Uh, let me drink some water real quick.",
    "So, um, yeah.",
];

/// `sentences` small-talk sentences starting at `from`, in a fixed stride.
#[must_use]
pub fn small_talk(from: usize, sentences: usize) -> String {
    (0..sentences).map(|i| SMALL_TALK[(from + i * 7) % SMALL_TALK.len()]).collect::<Vec<_>>().join(" ")
}

/// The parts of a talk of about `minutes` minutes (at least 1): small talk
/// with [`HOOK_STORY_PAYOFF`], [`SLEEP`] and [`PRACTICE`] planted in it
/// (at parts 1, 3 and 5).
#[must_use]
pub fn planted_talk(minutes: f64) -> Vec<String> {
    // A planted passage speaks for about 40 s; small talk about 2.9 s a sentence.
    let pad = (((minutes.max(1.0) * 60.0 - 120.0) / 4.0 / 2.9).round() as usize).max(2);
    let pads: Vec<String> = (0..4).map(|i| small_talk(i * 5, pad)).collect();
    vec![
        pads[0].clone(),
        HOOK_STORY_PAYOFF.into(),
        pads[1].clone(),
        SLEEP.into(),
        pads[2].clone(),
        PRACTICE.into(),
        pads[3].clone(),
    ]
}

/// How to make a talk.
#[derive(Debug, Clone, PartialEq)]
pub struct TalkSpec {
    /// Paragraphs; each is split into sentences at `.`, `?` and `!`.
    pub parts: Vec<String>,
    /// Silence between sentences of a part, seconds.
    pub sentence_gap: f64,
    /// Silence between parts, seconds.
    pub part_gap: f64,
    /// espeak-ng voices, used in turn per part.
    pub voices: Vec<String>,
    /// Words per minute.
    pub speed: u32,
    /// Picture size; `None` makes an audio-only file (`.m4a`).
    pub size: Option<(u32, u32)>,
    /// Picture rate.
    pub fps: u32,
    /// Silence before the first sentence, seconds.
    pub lead: f64,
}

impl TalkSpec {
    /// A 1280×720, 30 fps talk of `parts`, one voice, 0.7 s between
    /// sentences and 1.2 s between parts.
    #[must_use]
    pub fn new(parts: Vec<String>) -> Self {
        Self {
            parts,
            sentence_gap: 0.7,
            part_gap: 1.2,
            voices: vec!["en-us".into()],
            speed: WORDS_PER_MINUTE,
            size: Some((1280, 720)),
            fps: 30,
            lead: 0.5,
        }
    }
}

/// One sentence where it was placed.
#[derive(Debug, Clone, PartialEq)]
pub struct SpokenSentence {
    /// Its text.
    pub text: String,
    /// The part it belongs to.
    pub part: usize,
    /// First audible sample, seconds.
    pub start: f64,
    /// Last audible sample, seconds.
    pub end: f64,
}

/// A generated talk.
#[derive(Debug, Clone, PartialEq)]
pub struct Talk {
    /// The file.
    pub path: PathBuf,
    /// Its duration, seconds.
    pub duration: f64,
    /// Every sentence with its exact timing.
    pub sentences: Vec<SpokenSentence>,
}

impl Talk {
    /// (start, end) of a part: its first sentence's start to its last's end.
    #[must_use]
    pub fn part_range(&self, part: usize) -> Option<(f64, f64)> {
        let first = self.sentences.iter().find(|s| s.part == part)?;
        let last = self.sentences.iter().rfind(|s| s.part == part)?;
        Some((first.start, last.end))
    }

    /// The plain text, sentences joined by spaces.
    #[must_use]
    pub fn text(&self) -> String {
        self.sentences.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join(" ")
    }
}

/// Splits a paragraph into sentences after `.`, `?` and `!`.
#[must_use]
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
        if word.ends_with(['.', '?', '!']) {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

const SAMPLE_RATE: u32 = 22_050;
/// Samples quieter than this (of 32 768) are silence when trimming.
const TRIM_LEVEL: i16 = 200;

/// Makes the talk `spec` describes at `out` (an `.mp4`, or audio only).
///
/// # Errors
/// [`Error::Spawn`] when `espeak-ng` is missing, process and I/O errors.
pub async fn make_talk(ffmpeg: &Ffmpeg, spec: &TalkSpec, out: &Path) -> Result<Talk> {
    let io = |op| move |source| Error::Io { op, source };
    let dir = tempfile::tempdir().map_err(io("creating a temporary directory"))?;
    let mut pcm: Vec<i16> = vec![0; (spec.lead * f64::from(SAMPLE_RATE)) as usize];
    let mut sentences = Vec::new();
    let voices = if spec.voices.is_empty() { vec!["en-us".to_owned()] } else { spec.voices.clone() };
    for (part, text) in spec.parts.iter().enumerate() {
        if part > 0 {
            pcm.extend(std::iter::repeat_n(0, (spec.part_gap * f64::from(SAMPLE_RATE)) as usize));
        }
        let voice = &voices[part % voices.len()];
        for (i, sentence) in split_sentences(text).into_iter().enumerate() {
            if i > 0 {
                pcm.extend(std::iter::repeat_n(0, (spec.sentence_gap * f64::from(SAMPLE_RATE)) as usize));
            }
            let wav = dir.path().join("s.wav");
            speak(&sentence, voice, spec.speed, &wav).await?;
            let bytes = tokio::fs::read(&wav).await.map_err(io("reading espeak-ng's output"))?;
            let samples = wav_samples(&bytes)?;
            let start = pcm.len() as f64 / f64::from(SAMPLE_RATE);
            pcm.extend_from_slice(trim(&samples));
            let end = pcm.len() as f64 / f64::from(SAMPLE_RATE);
            sentences.push(SpokenSentence { text: sentence, part, start, end });
        }
    }
    pcm.extend(std::iter::repeat_n(0, (spec.lead * f64::from(SAMPLE_RATE)) as usize));
    let duration = pcm.len() as f64 / f64::from(SAMPLE_RATE);
    let wav = dir.path().join("talk.wav");
    tokio::fs::write(&wav, wav_bytes(&pcm)).await.map_err(io("writing the talk's audio"))?;

    let mut args: Vec<String> = Vec::new();
    if let Some((w, h)) = spec.size {
        args.extend(["-f".into(), "lavfi".into(), "-i".into(), format!("testsrc2=size={w}x{h}:rate={}", spec.fps)]);
    }
    args.extend(["-i".into(), file_arg(&wav), "-t".into(), format!("{duration:.3}")]);
    if spec.size.is_some() {
        args.extend(
            [
                "-map",
                "0:v",
                "-map",
                "1:a",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-crf",
                "30",
                "-pix_fmt",
                "yuv420p",
            ]
            .map(String::from),
        );
    }
    args.extend(["-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart", "-y"].map(String::from));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await.map_err(io("creating the output directory"))?;
    }
    let tmp = out.with_extension(format!("tmp.{}", out.extension().and_then(|e| e.to_str()).unwrap_or("mp4")));
    args.push(file_arg(&tmp));
    ffmpeg.run(Run { args, media_seconds: duration, on_progress: None, cancel: None }).await?;
    tokio::fs::rename(&tmp, out).await.map_err(io("renaming the talk into place"))?;
    Ok(Talk { path: out.to_path_buf(), duration, sentences })
}

/// The 16-bit mono samples of a WAV file (espeak-ng writes 22 050 Hz mono).
fn wav_samples(bytes: &[u8]) -> Result<Vec<i16>> {
    let bad = || Error::InvalidMedia("espeak-ng wrote an unexpected WAV file".into());
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad());
    }
    let mut at = 12;
    let mut format_ok = false;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        let body = at + 8;
        if id == b"fmt " {
            let f = bytes.get(body..body + 16).ok_or_else(bad)?;
            let channels = u16::from_le_bytes([f[2], f[3]]);
            let rate = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
            let bits = u16::from_le_bytes([f[14], f[15]]);
            format_ok = channels == 1 && rate == SAMPLE_RATE && bits == 16;
        } else if id == b"data" {
            if !format_ok {
                return Err(bad());
            }
            // espeak-ng writing to a pipe leaves the size unset: take the rest.
            let end = body.saturating_add(size).min(bytes.len());
            return Ok(bytes[body..end].chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect());
        }
        at = body + size + (size & 1);
    }
    Err(bad())
}

/// The samples from the first to the last audible one.
fn trim(samples: &[i16]) -> &[i16] {
    let loud = |s: &i16| s.unsigned_abs() > TRIM_LEVEL.unsigned_abs();
    let first = samples.iter().position(loud).unwrap_or(0);
    let last = samples.iter().rposition(loud).map_or(first, |i| i + 1);
    &samples[first..last]
}

fn wav_bytes(pcm: &[i16]) -> Vec<u8> {
    let data = (pcm.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + pcm.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&SAMPLE_RATE.to_le_bytes());
    out.extend_from_slice(&(SAMPLE_RATE * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    for s in pcm {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// espeak-ng's speech of `text` in `voice` at `speed` words a minute,
/// written to `out` as a 22 050 Hz mono WAV.
///
/// # Errors
/// [`Error::Spawn`] when `espeak-ng` is missing, [`Error::Failed`] when it fails.
pub async fn speak(text: &str, voice: &str, speed: u32, out: &Path) -> Result<()> {
    let status = tokio::process::Command::new("espeak-ng")
        .args(["-v", voice, "-s", &speed.to_string(), "-w"])
        .arg(out)
        .arg(text)
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|source| Error::Spawn { program: "espeak-ng".into(), source })?;
    if !status.success() {
        return Err(Error::Failed { program: "espeak-ng".into(), status: status.to_string(), stderr: vec![] });
    }
    Ok(())
}

/// Paragraphs with no digits or abbreviations, so that what espeak-ng
/// says and what Whisper writes can be compared word for word.
pub const PLAIN_PARAGRAPHS: &[&str] = &[
    "The old lighthouse stood at the edge of the cliff for more than a century. Every night the keeper climbed the \
     narrow stairs, cleaned the glass, and lit the lamp so that ships could find their way home through the fog.",
    "Cooking rice is simple when you measure carefully. Rinse the grains until the water runs clear, add twice as \
     much water as rice, bring it to a boil, then cover the pot and let it simmer slowly on a low flame.",
    "Our team spent the whole summer building a small robot that could sort recycling. It learned to tell paper \
     from plastic by looking at the color and the shape of each object on the moving belt.",
    "When you travel by train across the country, you see forests, rivers, and quiet villages pass by the window. \
     Many people say it is the most relaxing way to see the land and meet new friends along the way.",
    "A good library is more than a room full of books. It is a quiet place to think, a warm place to wait for the \
     rain to stop, and a door that opens onto every corner of the world for anyone who walks inside.",
    "The children planted tomatoes, beans, and sunflowers in the school garden. By the end of the season the \
     sunflowers were taller than the teachers, and the whole class shared a salad made from their own harvest.",
];

/// The voice for the `i`-th paragraph: en-us and en-gb in turn.
#[must_use]
pub fn alternating_voice(i: usize) -> &'static str {
    if i.is_multiple_of(2) { "en-us" } else { "en-gb" }
}

/// `paragraphs` read aloud ([`alternating_voice`]) with a second of
/// silence after each, as one 16 kHz WAV `dir/name.wav`; returns it and the
/// text said.
///
/// # Panics
/// When espeak-ng or ffmpeg fails: a test cannot go on without its input.
pub async fn paragraphs_wav(dir: &Path, name: &str, paragraphs: &[&str]) -> (PathBuf, String) {
    let mut args: Vec<String> = Vec::new();
    for (i, p) in paragraphs.iter().enumerate() {
        let wav = dir.join(format!("{name}-{i}.wav"));
        speak(p, alternating_voice(i), WORDS_PER_MINUTE, &wav)
            .await
            .expect("espeak-ng is installed (scripts/install-deps)");
        args.extend(["-i".into(), file_arg(&wav)]);
    }
    let n = paragraphs.len();
    let filter: String = (0..n).map(|i| format!("[{i}:a]aresample=16000,apad=pad_dur=1[a{i}];")).collect::<String>()
        + &(0..n).map(|i| format!("[a{i}]")).collect::<String>()
        + &format!("concat=n={n}:v=0:a=1[out]");
    args.extend(["-filter_complex".into(), filter, "-map".into(), "[out]".into(), "-ar".into(), "16000".into()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = generate(dir, &format!("{name}.wav"), &refs, 20.0 * n as f64).await;
    (out, paragraphs.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_at_terminal_punctuation() {
        assert_eq!(
            split_sentences("Hi there. How are you? Fine!  ok"),
            vec!["Hi there.", "How are you?", "Fine!", "ok"]
        );
    }

    #[test]
    fn wav_round_trips() {
        let pcm = vec![0, 1, -1, 300, -300, 0];
        assert_eq!(wav_samples(&wav_bytes(&pcm)).unwrap(), pcm);
        assert!(wav_samples(b"RIFF0000WAVEjunk").is_err());
    }

    #[test]
    fn planted_talks_have_seven_parts() {
        let t = planted_talk(10.0);
        assert_eq!(t.len(), 7);
        assert_eq!(t[3], SLEEP);
    }
}
