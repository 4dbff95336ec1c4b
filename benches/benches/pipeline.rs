//! The whole pipeline on a generated 10-minute 1280×720 talk with the
//! tiny.en model and 2 threads: wall time per stage, the total against the
//! sum of its two unavoidable parts measured alone in the same run
//! (transcribing the audio; encoding the shorts' output seconds at
//! 1080×1920 with the same x264 settings), render speed, and peak memory.
//!
//! ```sh
//! eval "$(scripts/fetch-test-model.sh --print-env)"
//! cargo bench -p videdit-benches --bench pipeline            # MINUTES=10 SHORTS=5 REPS=1
//! ```

use std::time::Instant;

use futures_util::StreamExt as _;
use tokio_util::sync::CancellationToken;
use videdit_media::pipeline::{Pipeline, PipelineOptions};
use videdit_media::process::{Ffmpeg, Run, file_arg, safe_input_args};
use videdit_media::testing::{TalkSpec, make_talk, planted_talk, tiny_en_test_model};
use videdit_media::transcribe::{TranscribeOptions, Transcriber};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Peak resident memory of this process (the transcriber lives here; ffmpeg
/// children are reported by `ffmpeg_peak_kb`).
fn peak_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Serves `file` over HTTP on loopback with `Range` support (as S3 does)
/// and counts the body bytes the client actually pulls (the body is
/// streamed in 64 KiB chunks, so a client that stops reading and closes the
/// connection is not charged for the rest of an open-ended range).
async fn serve_counting(file: std::path::PathBuf) -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use poem::listener::{Acceptor as _, Listener as _};
    use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = sent.clone();
    let ep = poem::endpoint::make(move |req: poem::Request| {
        let (file, counter) = (file.clone(), counter.clone());
        async move {
            let mut f = tokio::fs::File::open(&file).await.unwrap();
            let size = f.metadata().await.unwrap().len();
            let range = req.headers().get("range").and_then(|v| v.to_str().ok()).and_then(|v| {
                let (a, b) = v.strip_prefix("bytes=")?.split_once('-')?;
                let start: u64 = a.parse().ok()?;
                let end: u64 = if b.is_empty() { size - 1 } else { b.parse::<u64>().ok()?.min(size - 1) };
                Some((start, end))
            });
            let (start, end) = range.unwrap_or((0, size - 1));
            f.seek(std::io::SeekFrom::Start(start)).await.unwrap();
            let stream =
                tokio_util::io::ReaderStream::with_capacity(f.take(end + 1 - start), 64 * 1024).inspect(move |chunk| {
                    if let Ok(c) = chunk {
                        counter.fetch_add(c.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            let builder = poem::Response::builder()
                .header("accept-ranges", "bytes")
                .header("content-length", end + 1 - start)
                .content_type("video/mp4");
            let body = poem::Body::from_bytes_stream(stream);
            if range.is_some() {
                builder
                    .status(poem::http::StatusCode::PARTIAL_CONTENT)
                    .header("content-range", format!("bytes {start}-{end}/{size}"))
                    .body(body)
            } else {
                builder.body(body)
            }
        }
    });
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(ep));
    (format!("http://{addr}/talk.mp4"), sent)
}

/// Bytes a render reads from a remote source (the worker renders from a
/// presigned URL): a 30 s short from the middle, rendered from HTTP.
async fn bytes_per_short(ffmpeg: &Ffmpeg, path: &std::path::Path, duration: f64) {
    let (url, sent) = serve_counting(path.to_path_buf()).await;
    let size = std::fs::metadata(path).unwrap().len();
    let start = (duration / 2.0).floor();
    let recipe = videdit_core::recipe::ClipRecipe {
        version: videdit_core::recipe::RECIPE_VERSION,
        source: url,
        range: videdit_core::time_range::TimeRange::new(start, start + 30.0).unwrap(),
        aspect: Default::default(),
        reframe: Default::default(),
        caption_style: Default::default(),
        words: vec![],
        title: String::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let outputs = videdit_media::render::RenderOutputs::in_dir(dir.path(), "short");
    videdit_media::render::render(ffmpeg, &recipe, &outputs, &Default::default(), |_| {}, &CancellationToken::new())
        .await
        .unwrap();
    let read = sent.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "rendering a 30 s short from HTTP read {:.1} MB of the {:.1} MB source ({:.1} %; the short is {:.1} % of its duration)",
        read as f64 / 1e6,
        size as f64 / 1e6,
        read as f64 * 100.0 / size as f64,
        30.0 * 100.0 / duration
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `LONG_MINUTES=120`: peak memory of the in-process stages (loudness,
/// transcription, analysis) on a long audio-only talk; rendering runs in
/// ffmpeg child processes whose memory does not grow with the input.
async fn long_input(minutes: f64, threads: usize) {
    let dir = tempfile::tempdir().unwrap();
    let ffmpeg = Ffmpeg::default();
    let mut spec = TalkSpec::new(planted_talk(minutes));
    spec.size = None;
    let s = Instant::now();
    let talk = make_talk(&ffmpeg, &spec, &dir.path().join("long.m4a")).await.unwrap();
    eprintln!("generated a {:.0} s audio talk in {:.0} s", talk.duration, s.elapsed().as_secs_f64());
    // Forget the generator's own peak (it holds the whole PCM): writing 5 to
    // clear_refs resets VmHWM.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = peak_kb();
    let transcriber = Transcriber::load(&tiny_en_test_model(), "tiny.en").unwrap();
    let input = talk.path.display().to_string();
    let s = Instant::now();
    let features =
        videdit_media::pipeline::audio_features(&ffmpeg, &input, talk.duration, dir.path(), &CancellationToken::new())
            .await
            .unwrap();
    let options = TranscribeOptions { threads: Some(threads), ..TranscribeOptions::default() };
    let transcript = transcriber
        .transcribe(&ffmpeg, &input, talk.duration, &options, &|_| {}, &CancellationToken::new())
        .await
        .unwrap();
    let mut pipeline_options = PipelineOptions::default();
    pipeline_options.analyze.max_shorts = 5;
    let planned =
        videdit_media::pipeline::plan_shorts(&transcript, Some(&features), &input, talk.duration, &pipeline_options)
            .unwrap();
    println!(
        "long input: {:.0} min of audio, {} words, {} shorts planned in {:.0} s (RTF {:.3}); peak RSS {:.0} MB (before loading the model {:.0} MB)",
        talk.duration / 60.0,
        transcript.words().count(),
        planned.len(),
        s.elapsed().as_secs_f64(),
        s.elapsed().as_secs_f64() / talk.duration,
        peak_kb() as f64 / 1024.0,
        before as f64 / 1024.0
    );
}

#[tokio::main]
async fn main() {
    if let Ok(long) = std::env::var("LONG_MINUTES") {
        long_input(long.parse().expect("LONG_MINUTES: a number"), env("THREADS", 2)).await;
        return;
    }
    let minutes: f64 = env("MINUTES", 10.0);
    if std::env::var_os("HTTP_ONLY").is_some() {
        let dir = tempfile::tempdir().unwrap();
        let spec = TalkSpec::new(planted_talk(minutes));
        let talk = make_talk(&Ffmpeg::default(), &spec, &dir.path().join("talk.mp4")).await.unwrap();
        bytes_per_short(&Ffmpeg::default(), &talk.path, talk.duration).await;
        return;
    }
    let shorts: usize = env("SHORTS", 5);
    let reps: usize = env("REPS", 1);
    let threads: usize = env("THREADS", 2);
    let dir = tempfile::tempdir().unwrap();
    let ffmpeg = Ffmpeg::default();
    let started = Instant::now();
    let talk = make_talk(&ffmpeg, &TalkSpec::new(planted_talk(minutes)), &dir.path().join("talk.mp4")).await.unwrap();
    eprintln!("generated a {:.0} s talk in {:.1} s", talk.duration, started.elapsed().as_secs_f64());

    let model = tiny_en_test_model();
    let transcriber = Transcriber::load(&model, "tiny.en").unwrap();
    let pipeline = Pipeline::new(ffmpeg.clone(), transcriber.clone(), "tiny.en");
    let mut options = PipelineOptions::default();
    options.analyze.max_shorts = shorts;
    options.analyze.min_duration = 30.0;
    options.analyze.max_duration = 50.0;
    options.transcribe = TranscribeOptions { threads: Some(threads), ..TranscribeOptions::default() };
    let input = talk.path.display().to_string();

    let (mut totals, mut ratios, mut alone_t, mut alone_e) = (vec![], vec![], vec![], vec![]);
    for rep in 0..reps {
        // 1. The pipeline.
        let out = dir.path().join(format!("out-{rep}"));
        let summary = pipeline.run(&talk.path, &out, &options, &|_| {}, &CancellationToken::new()).await.unwrap();
        let t = summary.timings;
        let seconds: f64 = summary.shorts.iter().map(|s| s.range.duration()).sum();
        println!(
            "rep {rep}: pipeline {:.1} s = probe {:.2} + audio {:.2} + transcribe {:.1} + analyze {:.2} + render {:.1} ({} shorts, {seconds:.0} s of output, render {:.2}x real time)",
            t.total,
            t.probe,
            t.audio,
            t.transcribe,
            t.analyze,
            t.render,
            summary.shorts.len(),
            seconds / t.render
        );

        // 2. Transcription alone.
        let s = Instant::now();
        transcriber
            .transcribe(&ffmpeg, &input, talk.duration, &options.transcribe, &|_| {}, &CancellationToken::new())
            .await
            .unwrap();
        let transcribe = s.elapsed().as_secs_f64();

        // 3. Encoding the same output seconds alone: cut + scale to 1080×1920
        //    + x264 veryfast CRF 21 + AAC, no captions, no reframing, no loudness.
        let s = Instant::now();
        for short in &summary.shorts {
            let mut args = vec!["-ss".to_owned(), format!("{:.3}", short.range.start())];
            args.extend(safe_input_args(&file_arg(&talk.path)));
            args.extend(
                [
                    "-t",
                    &format!("{:.3}", short.range.duration()),
                    "-vf",
                    "scale=1080:1920,fps=30",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "veryfast",
                    "-crf",
                    "21",
                    "-pix_fmt",
                    "yuv420p",
                    "-c:a",
                    "aac",
                    "-b:a",
                    "160k",
                    "-f",
                    "mp4",
                    "-y",
                ]
                .map(String::from),
            );
            args.push(file_arg(&dir.path().join("plain.mp4")));
            ffmpeg
                .run(Run { args, media_seconds: short.range.duration(), on_progress: None, cancel: None })
                .await
                .unwrap();
        }
        let encode = s.elapsed().as_secs_f64();
        let ratio = t.total / (transcribe + encode);
        println!(
            "rep {rep}: transcription alone {transcribe:.1} s (RTF {:.3}), encoding alone {encode:.1} s; pipeline / (sum) = {ratio:.3}",
            transcribe / talk.duration
        );
        if rep == 0 {
            bytes_per_short(&ffmpeg, &talk.path, talk.duration).await;
        }
        totals.push(t.total);
        ratios.push(ratio);
        alone_t.push(transcribe);
        alone_e.push(encode);
    }
    println!(
        "median of {reps}: pipeline {:.1} s, transcription alone {:.1} s, encoding alone {:.1} s, ratio {:.3} (target <= 1.2); peak RSS of this process {:.0} MB",
        median(totals),
        median(alone_t),
        median(alone_e),
        median(ratios),
        peak_kb() as f64 / 1024.0
    );
}
