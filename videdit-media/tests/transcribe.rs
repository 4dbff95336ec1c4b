//! Transcription of real speech (espeak-ng, two voices) with the tiny.en
//! model imported from faster-whisper, and of bad audio.
//!
//! Needs `VIDEDIT_TEST_CT2_TINY_EN` (`eval "$(scripts/fetch-test-model.sh --print-env)"`).

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use tokio_util::sync::CancellationToken;
use videdit_core::transcript::Transcript;
use videdit_media::Error;
use videdit_media::audio::AudioRange;
use videdit_media::models::WeightType;
use videdit_media::process::Ffmpeg;
use videdit_media::testing::{
    self, PLAIN_PARAGRAPHS, WORDS_PER_MINUTE, generate, media_seconds, paragraphs_wav, tiny_en_model,
};
use videdit_media::transcribe::{TranscribeOptions, Transcriber};

/// The paragraphs the talks here read (the first four).
const PARAGRAPHS: &[&str] = PLAIN_PARAGRAPHS.split_at(4).0;

fn transcriber(wtype: WeightType) -> Transcriber {
    static F16: OnceLock<Transcriber> = OnceLock::new();
    static Q8: OnceLock<Transcriber> = OnceLock::new();
    let cell = if wtype == WeightType::F16 { &F16 } else { &Q8 };
    cell.get_or_init(|| {
        let path = tiny_en_model(wtype);
        Transcriber::load(&path, &format!("tiny.en{}", wtype.suffix())).expect("load the model")
    })
    .clone()
}

fn opts() -> TranscribeOptions {
    TranscribeOptions { threads: Some(2), ..TranscribeOptions::default() }
}

/// Every word inside the audio, in order, none running backwards; segment
/// edges on their words.
fn assert_well_timed(t: &Transcript, duration: f64) {
    let mut last = 0.0;
    for s in &t.segments {
        assert!(!s.words.is_empty(), "segment without words: {s:?}");
        assert_eq!(s.start, s.words[0].start);
        assert_eq!(s.end, s.words.last().unwrap().end);
        for w in &s.words {
            assert!(w.start >= last - 1e-9, "{w:?} starts before {last}");
            assert!(w.end >= w.start, "{w:?}");
            assert!(w.end <= duration + 1e-6, "{w:?} ends after {duration}");
            assert!((0.0..=1.0).contains(&w.probability), "{w:?}");
            assert!(!w.text.trim().is_empty());
            last = w.end;
        }
    }
    assert!(t.duration <= duration + 0.05 && t.duration >= duration - 0.5, "{} vs {duration}", t.duration);
}

/// SRT: numbered cues with `HH:MM:SS,mmm --> HH:MM:SS,mmm` times that move
/// forward; VTT: the header and dot milliseconds.
fn assert_valid_subtitles(t: &Transcript) {
    let parse = |ts: &str, sep: char| -> f64 {
        let (hms, ms) = ts.split_once(sep).unwrap_or_else(|| panic!("bad time {ts}"));
        let parts: Vec<f64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
        assert_eq!(parts.len(), 3, "{ts}");
        assert_eq!(ms.len(), 3, "{ts}");
        parts[0] * 3600.0 + parts[1] * 60.0 + parts[2] + ms.parse::<f64>().unwrap() / 1000.0
    };
    let srt = t.to_srt();
    let cues: Vec<&str> = srt.split("\n\n").filter(|c| !c.trim().is_empty()).collect();
    assert_eq!(cues.len(), t.segments.len());
    let mut last = 0.0;
    for (i, cue) in cues.iter().enumerate() {
        let lines: Vec<&str> = cue.lines().collect();
        assert_eq!(lines[0], (i + 1).to_string());
        let (a, b) = lines[1].split_once(" --> ").expect("a time line");
        let (a, b) = (parse(a, ','), parse(b, ','));
        assert!(a >= last && b > a, "cue {i}: {a} -> {b} after {last}");
        assert!(lines.len() >= 3 && !lines[2].trim().is_empty());
        last = b;
    }
    let vtt = t.to_vtt();
    assert!(vtt.starts_with("WEBVTT\n\n"));
    for line in vtt.lines().filter(|l| l.contains(" --> ")) {
        let (a, b) = line.split_once(" --> ").unwrap();
        assert!(parse(a, '.') < parse(b, '.'), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_from_two_voices_is_transcribed_with_word_times() {
    let dir = tempfile::tempdir().unwrap();
    let (wav, text) = paragraphs_wav(dir.path(), "talk", PARAGRAPHS).await;
    let duration = media_seconds(&wav).await;
    let t = transcriber(WeightType::F16);
    assert!(t.has_dtw());
    let progress = Arc::new(Mutex::new(Vec::<f32>::new()));
    let p = progress.clone();
    let on_progress = move |f: f32| p.lock().unwrap().push(f);
    let cancel = CancellationToken::new();
    let transcript = t
        .transcribe(&Ffmpeg::default(), wav.to_str().unwrap(), duration, &opts(), &on_progress, &cancel)
        .await
        .unwrap();
    let hypothesis = transcript.text();
    let wer = testing::wer(&text, &hypothesis);
    eprintln!("WER {:.1}% over {duration:.1} s\n{hypothesis}", wer * 100.0);
    assert!(wer <= 0.12, "WER {wer:.3}: {hypothesis}");
    assert_eq!((transcript.language.as_str(), transcript.model.as_str()), ("en", "tiny.en"));
    assert_well_timed(&transcript, duration);
    assert_valid_subtitles(&transcript);
    // The first word starts when the speech does (espeak leaves little
    // lead-in), and the last ends near the end of the last paragraph.
    let words: Vec<_> = transcript.words().collect();
    assert!(words[0].start < 1.0, "{:?}", words[0]);
    assert!(words.last().unwrap().end > duration - 3.0, "{:?}", words.last());
    let progress = progress.lock().unwrap();
    assert!(progress.windows(2).all(|w| w[0] <= w[1] + 1e-6), "{progress:?}");
    assert_eq!(progress.last(), Some(&1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_long_audio_keeps_times_in_order() {
    // Short chunks force cuts; times must continue across them.
    let dir = tempfile::tempdir().unwrap();
    let (wav, text) = paragraphs_wav(dir.path(), "long", PARAGRAPHS).await;
    let samples = testing::samples_of(&wav, 120.0).await;
    let duration = samples.len() as f64 / 16_000.0;
    let o = TranscribeOptions { chunk_seconds: Some(30.0), ..opts() };
    let t = transcriber(WeightType::Q8_0)
        .transcribe_samples(samples, &o, &|_| {}, &CancellationToken::new())
        .await
        .unwrap();
    let wer = testing::wer(&text, &t.text());
    eprintln!("chunked WER {:.1}% over {duration:.1} s", wer * 100.0);
    assert!(wer <= 0.15, "WER {wer:.3}: {}", t.text());
    assert_well_timed(&t, duration);
    assert_eq!(t.model, "tiny.en-q8_0");
}

/// Two whisper states side by side (one thread each), each over its own
/// half of a talk cut at a quiet moment: the same words as one state over
/// the whole, in order, in source time, with progress that only goes up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_states_side_by_side_hear_what_one_hears() {
    let dir = tempfile::tempdir().unwrap();
    let (wav, text) = paragraphs_wav(dir.path(), "parallel", PARAGRAPHS).await;
    let duration = media_seconds(&wav).await;
    let t = transcriber(WeightType::Q8_0);
    let run = async |parallel: usize| {
        let progress = Arc::new(Mutex::new(Vec::<f32>::new()));
        let p = progress.clone();
        let on_progress = move |f: f32| p.lock().unwrap().push(f);
        let o = TranscribeOptions { parallel: Some(parallel), ..opts() };
        let tr = t
            .transcribe(
                &Ffmpeg::default(),
                wav.to_str().unwrap(),
                duration,
                &o,
                &on_progress,
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        let progress = progress.lock().unwrap().clone();
        (tr, progress)
    };
    let (one, _) = run(1).await;
    let (two, progress) = run(2).await;
    assert_well_timed(&two, duration);
    let (wer_one, wer_two) = (testing::wer(&text, &one.text()), testing::wer(&text, &two.text()));
    eprintln!("WER one state {:.1}%, two {:.1}% over {duration:.1} s", wer_one * 100.0, wer_two * 100.0);
    assert!(wer_two <= wer_one + 0.03, "two states {wer_two:.3} vs one {wer_one:.3}: {}", two.text());
    assert!(testing::wer(&one.text(), &two.text()) <= 0.05, "{}\n{}", one.text(), two.text());
    // Words from both halves: the second half's start in source time.
    let words: Vec<_> = two.words().collect();
    assert!(words.iter().any(|w| w.start > duration * 0.6), "{words:?}");
    assert!(progress.windows(2).all(|w| w[0] <= w[1] + 1e-6), "{progress:?}");
    assert!(progress.iter().any(|p| (0.05..0.95).contains(p)), "progress while running: {progress:?}");
    assert_eq!(progress.last(), Some(&1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_of_the_input_is_transcribed_in_source_time() {
    let dir = tempfile::tempdir().unwrap();
    let (wav, _) = paragraphs_wav(dir.path(), "range", &PARAGRAPHS[..2]).await;
    let duration = media_seconds(&wav).await;
    let start = duration / 2.0;
    let o = TranscribeOptions { range: AudioRange { start: Some(start), end: Some(duration) }, ..opts() };
    let t = transcriber(WeightType::Q8_0)
        .transcribe(&Ffmpeg::default(), wav.to_str().unwrap(), duration - start, &o, &|_| {}, &CancellationToken::new())
        .await
        .unwrap();
    let words: Vec<_> = t.words().collect();
    assert!(!words.is_empty());
    assert!(words[0].start >= start - 1e-6 && words.last().unwrap().end <= duration + 1e-6, "{words:?}");
    // The second paragraph is about rice.
    assert!(testing::normalise(&t.text()).iter().any(|w| w == "rice"), "{}", t.text());
}

async fn transcribe_file(path: &Path, duration: f64) -> Result<Transcript, Error> {
    transcriber(WeightType::Q8_0)
        .transcribe(&Ffmpeg::default(), path.to_str().unwrap(), duration, &opts(), &|_| {}, &CancellationToken::new())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_audio_gives_a_result_or_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // Silence only: nothing (or next to nothing) is said.
    let silence =
        generate(d, "silence.wav", &["-f", "lavfi", "-i", "anullsrc=r=44100:cl=stereo", "-t", "8"], 8.0).await;
    let t = transcribe_file(&silence, 8.0).await.unwrap();
    assert!(t.words().count() <= 3, "silence: {}", t.text());
    assert_well_timed(&t, 8.0);

    // Pure noise: any text, but well-formed.
    let noise = generate(d, "noise.wav", &["-f", "lavfi", "-i", "anoisesrc=c=white:a=0.3:d=6:r=16000"], 6.0).await;
    let t = transcribe_file(&noise, 6.0).await.unwrap();
    assert_well_timed(&t, 6.0);

    // A 0.2 s clip.
    let blip = generate(d, "blip.wav", &["-f", "lavfi", "-i", "sine=f=440:d=0.2:r=16000"], 0.2).await;
    let t = transcribe_file(&blip, 0.2).await.unwrap();
    assert_well_timed(&t, 0.2);

    // 8 kHz telephone speech (band-limited, μ-law): still mostly right.
    let wide = d.join("wide.wav");
    testing::speak(PARAGRAPHS[0], "en-us", WORDS_PER_MINUTE, &wide).await.unwrap();
    let wide = wide.display().to_string();
    let band_limited = ["-af", "highpass=f=300,lowpass=f=3400", "-ar", "8000", "-c:a", "pcm_mulaw"];
    let phone = generate(d, "phone.wav", &[&["-i", wide.as_str()][..], &band_limited].concat(), 30.0).await;
    let seconds = media_seconds(&phone).await;
    let t = transcribe_file(&phone, seconds).await.unwrap();
    let wer = testing::wer(PARAGRAPHS[0], &t.text());
    // tiny.en on narrow-band speech synthesis: recognisable, not accurate.
    assert!(wer <= 0.5, "telephone WER {wer:.3}: {}", t.text());
    assert_well_timed(&t, seconds);

    // Six channels (5.1): downmixed to mono.
    let six = generate(d, "six.wav", &["-i", &wide, "-af", "pan=5.1|FL=c0|FR=c0|FC=c0|LFE=c0|BL=c0|BR=c0"], 30.0).await;
    let t = transcribe_file(&six, seconds).await.unwrap();
    let wer = testing::wer(PARAGRAPHS[0], &t.text());
    assert!(wer <= 0.15, "5.1 WER {wer:.3}: {}", t.text());

    // No audio stream at all, and not media at all: typed errors.
    let mute = generate(d, "mute.mp4", &["-f", "lavfi", "-i", "testsrc=s=64x64:d=1", "-c:v", "mpeg4"], 1.0).await;
    assert!(matches!(transcribe_file(&mute, 1.0).await, Err(Error::NoAudio)));
    std::fs::write(d.join("text.mp4"), "just some text, not a video\n").unwrap();
    let err = transcribe_file(&d.join("text.mp4"), 1.0).await.unwrap_err();
    assert!(matches!(err, Error::InvalidMedia(_)), "{err:?}");
    let err = transcribe_file(&d.join("missing.wav"), 1.0).await.unwrap_err();
    assert!(matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_stops_transcription() {
    // 150 s of tone in one chunk: five 30 s windows, each a fifth of the
    // progress. Cancelled on the first progress report (whisper.cpp is
    // running then); every report is kept with whether it came after that.
    let samples: Vec<f32> = (0..16_000 * 150).map(|i| ((i as f32) * 0.05).sin() * 0.1).collect();
    let cancel = CancellationToken::new();
    let t = transcriber(WeightType::Q8_0);
    let reports = Mutex::new(Vec::<(f32, bool)>::new());
    let trigger = cancel.clone();
    let on_progress = |p: f32| {
        reports.lock().unwrap().push((p, trigger.is_cancelled()));
        trigger.cancel();
    };
    let opts = opts();
    let run = t.transcribe_samples(samples, &opts, &on_progress, &cancel);
    let r = tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .expect("the transcription did not stop within 120 s of being cancelled");
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
    let reports = reports.into_inner().unwrap();
    let (first, was_cancelled) = *reports.first().expect("progress was reported");
    assert!(!was_cancelled);
    // It stopped within the window it was in: at most one more step of
    // progress, never the end (had it ignored the cancellation, the other
    // windows would have reported 0.4, 0.6, 0.8 and 1.0).
    let furthest = reports.iter().map(|r| r.0).fold(first, f32::max);
    assert!(furthest <= first + 0.2 + 1e-3, "went on after the cancellation: {reports:?}");
}

#[test]
fn missing_and_broken_models_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = Transcriber::load(&dir.path().join("nope.bin"), "tiny.en").unwrap_err();
    assert!(matches!(err, Error::ModelNotFound { .. }), "{err:?}");
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, b"definitely not a model").unwrap();
    assert!(matches!(Transcriber::load(&junk, "tiny.en"), Err(Error::InvalidModel { .. })));
    // The right magic but only half the tensors: whisper.cpp refuses it.
    let model = std::fs::read(tiny_en_model(WeightType::Q8_0)).unwrap();
    std::fs::write(&junk, &model[..model.len() / 2]).unwrap();
    assert!(matches!(Transcriber::load(&junk, "tiny.en"), Err(Error::InvalidModel { .. })));
}
