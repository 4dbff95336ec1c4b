//! Shared by the transcription and model tests: the imported tiny.en test
//! model (converted once per CTranslate2 model and cached), espeak-ng
//! speech, and word error rate.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest;
use videdit_media::models::{WeightType, import_ct2};

/// The faster-whisper tiny.en directory from `scripts/fetch-test-model.sh`.
pub fn ct2_dir() -> PathBuf {
    match std::env::var_os("VIDEDIT_TEST_CT2_TINY_EN") {
        Some(dir) if Path::new(&dir).join("model.bin").is_file() => PathBuf::from(dir),
        Some(dir) => panic!(
            "VIDEDIT_TEST_CT2_TINY_EN={} has no model.bin; run: eval \"$(scripts/fetch-test-model.sh --print-env)\"",
            Path::new(&dir).display()
        ),
        None => panic!(
            "the transcription tests need the tiny.en test model: run eval \"$(scripts/fetch-test-model.sh --print-env)\" \
             (scripts/test does it for you)"
        ),
    }
}

fn cache_root() -> PathBuf {
    std::env::var_os("VIDEDIT_TEST_MODEL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/videdit/test-models"))
}

/// The tiny.en model imported as ggml with `wtype`; converted on first use
/// and cached under a directory keyed by the hash of `model.bin`. The
/// importer writes through a temporary file and a rename, so test processes
/// racing to create it are safe.
pub fn tiny_en(wtype: WeightType) -> PathBuf {
    let dir = ct2_dir();
    let bin = std::fs::read(dir.join("model.bin")).expect("read model.bin");
    let key = hex::encode(&sha2::Sha256::digest(&bin)[..8]);
    drop(bin);
    let out = cache_root().join("ggml").join(key).join(format!("ggml-tiny.en{}.bin", wtype.suffix()));
    if !out.is_file() {
        import_ct2(&dir, &out, wtype).expect("import the CTranslate2 model");
    }
    out
}

/// Paragraphs with no digits or abbreviations, so that what espeak-ng
/// says and what Whisper writes can be compared word for word.
pub const PARAGRAPHS: &[&str] = &[
    "The old lighthouse stood at the edge of the cliff for more than a century. Every night the keeper climbed the \
     narrow stairs, cleaned the glass, and lit the lamp so that ships could find their way home through the fog.",
    "Cooking rice is simple when you measure carefully. Rinse the grains until the water runs clear, add twice as \
     much water as rice, bring it to a boil, then cover the pot and let it simmer slowly on a low flame.",
    "Our team spent the whole summer building a small robot that could sort recycling. It learned to tell paper \
     from plastic by looking at the color and the shape of each object on the moving belt.",
    "When you travel by train across the country, you see forests, rivers, and quiet villages pass by the window. \
     Many people say it is the most relaxing way to see the land and meet new friends along the way.",
];

/// espeak-ng speech of `text` in `voice`, as a WAV file.
pub fn speak(text: &str, voice: &str, out: &Path) {
    let status = Command::new("espeak-ng")
        .args(["-v", voice, "-s", "165", "-w"])
        .arg(out)
        .arg(text)
        .status()
        .expect("espeak-ng is installed (scripts/install-deps)");
    assert!(status.success(), "espeak-ng failed");
}

/// Runs ffmpeg (test fixtures only; the library goes through its gateway).
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg").args(["-hide_banner", "-loglevel", "error", "-y"]).args(args).output().unwrap();
    assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// All paragraphs, alternating en-us and en-gb voices, with a second of
/// silence between them, as one 16 kHz WAV; returns the text.
pub fn talk(dir: &Path, name: &str, paragraphs: &[&str]) -> (PathBuf, String) {
    let mut inputs = Vec::new();
    for (i, p) in paragraphs.iter().enumerate() {
        let wav = dir.join(format!("{name}-{i}.wav"));
        speak(p, if i % 2 == 0 { "en-us" } else { "en-gb" }, &wav);
        inputs.push(wav);
    }
    let out = dir.join(format!("{name}.wav"));
    let mut args: Vec<String> = Vec::new();
    for wav in &inputs {
        args.extend(["-i".into(), wav.display().to_string()]);
    }
    let n = inputs.len();
    let filter: String = (0..n).map(|i| format!("[{i}:a]aresample=16000,apad=pad_dur=1[a{i}];")).collect::<String>()
        + &(0..n).map(|i| format!("[a{i}]")).collect::<String>()
        + &format!("concat=n={n}:v=0:a=1[out]");
    args.extend(["-filter_complex".into(), filter, "-map".into(), "[out]".into(), "-ar".into(), "16000".into()]);
    args.push(out.display().to_string());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ffmpeg(&refs);
    (out, paragraphs.join(" "))
}

/// Lower-cased words without punctuation (apostrophes dropped, hyphens split).
pub fn normalize(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace(['-', '—'], " ")
        .split_whitespace()
        .map(|w| w.chars().filter(|c| c.is_alphanumeric()).collect::<String>())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word error rate of `hypothesis` against `reference` (Levenshtein over
/// normalized words).
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (r, h) = (normalize(reference), normalize(hypothesis));
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(rw != hw)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len().max(1) as f64
}

/// Duration of a 16 kHz mono WAV written by ffmpeg, from its size.
pub fn wav_seconds(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("ffprobe duration")
}
