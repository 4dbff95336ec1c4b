//! The pipeline end to end on generated talks whose sentence boundaries are
//! known independently of any transcript (each espeak sentence placed with
//! a known silent gap): shorts start and end in the silence at a true
//! boundary, outputs are complete and atomic, a re-run reuses what is done,
//! bad input writes nothing, and planted strong passages are found.

use std::path::Path;
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;
use videdit_media::pipeline::{Pipeline, PipelineError, PipelineOptions, ProgressEvent, Stage, plan_shorts};
use videdit_media::process::Ffmpeg;
use videdit_media::testing::{HOOK_STORY_PAYOFF, PRACTICE, Talk, TalkSpec, make_talk, planted_talk, small_talk};
use videdit_media::transcribe::{TranscribeOptions, Transcriber};

fn pipeline() -> Pipeline {
    let model = videdit_media::testing::tiny_en_test_model();
    Pipeline::new(Ffmpeg::default(), Transcriber::load(&model, "tiny.en").unwrap(), "tiny.en")
}

/// `t` lies in the silence around a true sentence boundary, within `slack`
/// of that sentence's start (`starting`) or end.
fn at_boundary(talk: &Talk, t: f64, starting: bool, slack: f64) -> bool {
    talk.sentences.iter().enumerate().any(|(i, s)| {
        if starting {
            let prev_end = if i == 0 { 0.0 } else { talk.sentences[i - 1].end };
            t <= s.start + 0.02 && t >= prev_end - 0.02 && s.start - t <= slack
        } else {
            let next_start = talk.sentences.get(i + 1).map_or(talk.duration, |n| n.start);
            t >= s.end - 0.02 && t <= next_start + 0.02 && t - s.end <= slack
        }
    })
}

fn files(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> =
        walk(dir).into_iter().map(|p| p.strip_prefix(dir).unwrap().display().to_string()).collect();
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return vec![] };
    entries.flatten().flat_map(|e| if e.path().is_dir() { walk(&e.path()) } else { vec![e.path()] }).collect()
}

#[tokio::test]
async fn a_talk_becomes_shorts_cut_in_the_silence_and_a_rerun_reuses_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let parts = vec![small_talk(0, 5), HOOK_STORY_PAYOFF.into(), small_talk(3, 5), PRACTICE.into(), small_talk(6, 4)];
    let mut spec = TalkSpec::new(parts);
    spec.size = Some((640, 360));
    let talk = make_talk(&Ffmpeg::default(), &spec, &dir.path().join("talk.mp4")).await.unwrap();
    let out = dir.path().join("out");
    let p = pipeline();
    let mut options = PipelineOptions::default();
    options.analyze.max_shorts = 2;
    let events: Mutex<Vec<ProgressEvent>> = Mutex::new(vec![]);
    let on_progress = |e: &ProgressEvent| events.lock().unwrap().push(e.clone());
    let summary = p.run(&talk.path, &out, &options, &on_progress, &CancellationToken::new()).await.unwrap();

    assert!(!summary.transcript_reused);
    assert_eq!(summary.shorts.len(), 2, "{summary:#?}");
    for s in &summary.shorts {
        let (start, end) = (s.range.start(), s.range.end());
        assert!(at_boundary(&talk, start, true, 0.3), "short {} starts at {start:.2}: {:?}", s.rank, talk.sentences);
        assert!(at_boundary(&talk, end, false, 0.3), "short {} ends at {end:.2}", s.rank);
        assert!(s.video.is_file() && s.thumbnail.is_file() && s.recipe.is_file());
        let name = s.video.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(&format!("{:02}-", s.rank)) && name.ends_with(".mp4"), "{name}");
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'), "{name}");
    }
    // The planted passages are the two shorts.
    let parts_of = |s: &videdit_media::pipeline::ProducedShort| {
        talk.sentences
            .iter()
            .filter(|x| x.start >= s.range.start() && x.end <= s.range.end())
            .map(|x| x.part)
            .collect::<std::collections::BTreeSet<_>>()
    };
    let mut found: Vec<_> = summary.shorts.iter().flat_map(parts_of).collect();
    found.sort();
    found.dedup();
    assert!(found.contains(&1) && found.contains(&3), "planted parts 1 and 3, got {found:?}");

    // Every output, nothing half-written.
    let listed = files(&out);
    for f in ["summary.json", "transcript.json", "transcript.srt", "transcript.vtt", "transcript.txt"] {
        assert!(listed.contains(&f.to_owned()), "{listed:?}");
    }
    assert!(listed.iter().all(|f| !f.contains(".tmp") && !f.contains(".videdit-render")), "{listed:?}");
    let srt = std::fs::read_to_string(out.join("transcript.srt")).unwrap();
    assert!(srt.starts_with("1\n00:00:"), "{srt}");
    let vtt = std::fs::read_to_string(out.join("transcript.vtt")).unwrap();
    assert!(vtt.starts_with("WEBVTT\n\n"));

    // Progress: every stage in order, monotonic overall, ending at 100 %.
    let events = events.into_inner().unwrap();
    let overall: Vec<f64> = events.iter().map(|e| e.overall).collect();
    assert!(overall.windows(2).all(|w| w[1] >= w[0] - 1e-9), "{overall:?}");
    assert!((overall.last().unwrap() - 1.0).abs() < 1e-9);
    for stage in [Stage::Probe, Stage::Audio, Stage::Transcribe, Stage::Analyze, Stage::Render] {
        assert!(events.iter().any(|e| e.stage == stage), "{stage:?}");
    }

    // A re-run reuses the transcript and both renders.
    let mtime = std::fs::metadata(&summary.shorts[0].video).unwrap().modified().unwrap();
    let again = p.run(&talk.path, &out, &options, &|_| {}, &CancellationToken::new()).await.unwrap();
    assert!(again.transcript_reused);
    assert!(again.shorts.iter().all(|s| s.reused), "{again:#?}");
    assert_eq!(std::fs::metadata(&again.shorts[0].video).unwrap().modified().unwrap(), mtime);
    // Asking for one short removes the other's files.
    options.analyze.max_shorts = 1;
    let one = p.run(&talk.path, &out, &options, &|_| {}, &CancellationToken::new()).await.unwrap();
    assert_eq!(one.shorts.len(), 1);
    assert_eq!(files(&out.join("shorts")).len(), 3, "{:?}", files(&out.join("shorts")));
}

#[tokio::test]
async fn bad_input_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline();
    let options = PipelineOptions::default();
    let out = dir.path().join("out");
    let missing = p.run(&dir.path().join("nope.mp4"), &out, &options, &|_| {}, &CancellationToken::new()).await;
    assert!(matches!(missing, Err(PipelineError::Media(videdit_media::Error::Io { .. }))), "{missing:?}");
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "not a video at all\n".repeat(50)).unwrap();
    let err = p.run(&text, &out, &options, &|_| {}, &CancellationToken::new()).await.unwrap_err();
    assert_eq!(err.code().as_str(), "invalid_media", "{err}");
    assert!(!out.exists() || files(&out).is_empty(), "{:?}", files(&out));
    // Options out of range are refused before any work.
    let mut bad = PipelineOptions::default();
    bad.analyze.max_shorts = 0;
    let err = p.run(&text, &out, &bad, &|_| {}, &CancellationToken::new()).await.unwrap_err();
    assert_eq!(err.code().as_str(), "invalid_request", "{err}");
}

#[tokio::test]
async fn a_ten_minute_talk_puts_planted_passages_in_its_top_three() {
    // Transcription and analysis only (rendering is covered above).
    let dir = tempfile::tempdir().unwrap();
    let mut spec = TalkSpec::new(planted_talk(10.0));
    spec.size = None;
    let talk = make_talk(&Ffmpeg::default(), &spec, &dir.path().join("talk.m4a")).await.unwrap();
    assert!(talk.duration > 480.0, "{}", talk.duration);
    let p = pipeline();
    let input = talk.path.display().to_string();
    let transcript = p
        .transcriber
        .transcribe(&p.ffmpeg, &input, talk.duration, &TranscribeOptions::default(), &|_| {}, &CancellationToken::new())
        .await
        .unwrap();
    let features = videdit_media::pipeline::audio_features(
        &p.ffmpeg,
        &input,
        talk.duration,
        dir.path(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let mut options = PipelineOptions::default();
    options.analyze.max_shorts = 3;
    let planned = plan_shorts(&transcript, Some(&features), &input, talk.duration, &options).unwrap();
    assert_eq!(planned.len(), 3);
    let planted = [1, 3, 5].map(|part| talk.part_range(part).unwrap());
    let hits = planted
        .iter()
        .filter(|(ps, pe)| {
            planned.iter().any(|s| {
                s.recipe.range.start() < *pe && s.recipe.range.end() > *ps && {
                    let overlap = s.recipe.range.end().min(*pe) - s.recipe.range.start().max(*ps);
                    overlap >= 0.6 * (s.recipe.range.duration())
                }
            })
        })
        .count();
    assert!(
        hits >= 2,
        "planted {planted:?}, chose {:?}",
        planned.iter().map(|s| (s.recipe.range, &s.highlight.title)).collect::<Vec<_>>()
    );
}
