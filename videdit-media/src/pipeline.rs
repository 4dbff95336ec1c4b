//! The pipeline: a long video in, ranked captioned shorts out.
//!
//! Each stage is a plain function that the server's job handlers call as
//! they are, one stage per job; [`Pipeline::run`] chains them for local use
//! (`videdit process`, embedding apps):
//!
//! 1. [`probe_source`]: what the input is, checked against [`MediaLimits`].
//! 2. [`audio_features`]: loudness per 100 ms (one cheap audio-only pass),
//!    for the analysis's delivery score.
//! 3. Transcription ([`Transcriber::transcribe`]), straight from the input.
//! 4. [`plan_shorts`]: the analysis, and one [`ClipRecipe`] per highlight,
//!    its range widened into the silence around it.
//! 5. [`crate::render::render`] per recipe, several at once.
//!
//! [`Pipeline::run`] keeps its state in `OUT/.videdit/`: a re-run with the
//! same input and model skips probing and transcription, and skips every
//! short whose recipe did not change. All outputs are written under a
//! temporary name and renamed into place.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, UNIX_EPOCH};

use futures_util::stream::{self, StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use videdit_core::ErrorCode;
use videdit_core::recipe::{Aspect, CaptionStyle, ClipRecipe, RECIPE_VERSION, Reframe};
use videdit_core::time_range::TimeRange;
use videdit_core::transcript::Transcript;

use crate::analyze::{AnalyzeError, AnalyzeOptions, AudioFeatures, Highlight, analyze};
use crate::error::Error;
use crate::probe::{MediaInfo, MediaLimits, probe, probe_url, validate};
use crate::process::{Ffmpeg, Run, safe_input_args};
use crate::render::{RenderError, RenderOptions, RenderOutputs, Rendered, render};
use crate::transcribe::{TranscribeOptions, Transcriber};

/// Silence kept before a short's first word, at most (seconds); never more
/// than half the pause before it.
pub const LEAD_IN: f64 = 0.15;
/// Silence kept after a short's last word, at most (seconds); never more
/// than half the pause after it.
pub const TAIL_OUT: f64 = 0.18;
/// Version of the state files in `OUT/.videdit/`.
const STATE_VERSION: u32 = 1;

/// A pipeline stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Reading the container.
    Probe,
    /// Measuring loudness.
    Audio,
    /// Speech to text.
    Transcribe,
    /// Choosing the shorts.
    Analyze,
    /// Cutting, captioning and encoding.
    Render,
}

impl Stage {
    /// Its name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Probe => "probe",
            Self::Audio => "audio",
            Self::Transcribe => "transcribe",
            Self::Analyze => "analyze",
            Self::Render => "render",
        }
    }

    /// Where the stage sits in the whole run: (start, share) as fractions.
    /// Transcription and rendering dominate; shares follow measurements of
    /// a 10-minute talk with `tiny.en` on two cores.
    const fn span(self) -> (f64, f64) {
        match self {
            Self::Probe => (0.0, 0.01),
            Self::Audio => (0.01, 0.02),
            Self::Transcribe => (0.03, 0.5),
            Self::Analyze => (0.53, 0.01),
            Self::Render => (0.54, 0.46),
        }
    }
}

/// One progress report.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressEvent {
    /// The running stage.
    pub stage: Stage,
    /// How far the stage is, 0 to 1.
    pub stage_fraction: f64,
    /// How far the whole run is, 0 to 1.
    pub overall: f64,
    /// Time left, once there is enough to estimate it from.
    pub eta: Option<Duration>,
    /// Whether the stage's result came from an earlier run.
    pub cached: bool,
}

/// Everything the pipeline can be asked to do differently.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Which moments to look for.
    pub analyze: AnalyzeOptions,
    /// Output frame shape.
    pub aspect: Aspect,
    /// How the source fills the frame.
    pub reframe: Reframe,
    /// Caption look.
    pub caption_style: CaptionStyle,
    /// Encoding settings.
    pub render: RenderOptions,
    /// Transcription settings.
    pub transcribe: TranscribeOptions,
    /// Shorts rendered at once (x264 already uses every core, so 1–2).
    pub render_concurrency: usize,
    /// What input is accepted.
    pub limits: MediaLimits,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            analyze: AnalyzeOptions::default(),
            aspect: Aspect::default(),
            reframe: Reframe::default(),
            caption_style: CaptionStyle::default(),
            render: RenderOptions::default(),
            transcribe: TranscribeOptions::default(),
            render_concurrency: 2,
            limits: MediaLimits::default(),
        }
    }
}

/// Why the pipeline stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// Reading, probing, transcribing or measuring the input failed.
    #[error(transparent)]
    Media(#[from] Error),
    /// The analysis options are invalid.
    #[error(transparent)]
    Analyze(#[from] AnalyzeError),
    /// A short could not be rendered.
    #[error("rendering short {rank}: {source}")]
    Render {
        /// The short's rank.
        rank: usize,
        /// Why.
        #[source]
        source: RenderError,
    },
    /// Writing an output failed.
    #[error("{op} {}: {source}", path.display())]
    Output {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl PipelineError {
    /// The stable error code.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Media(e) => e.code(),
            Self::Analyze(e) => e.code(),
            Self::Render { source, .. } => source.code(),
            Self::Output { .. } => ErrorCode::Internal,
        }
    }

    /// Whether trying again may help.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Media(e) => e.is_retryable(),
            Self::Render { source, .. } => source.is_retryable(),
            Self::Analyze(_) => false,
            Self::Output { .. } => true,
        }
    }
}

fn output_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PipelineError + 'a {
    move |source| PipelineError::Output { op, path: path.to_path_buf(), source }
}

/// Stage 1: probes the input (a local path or an `http(s)` URL) and checks
/// it against `limits`.
///
/// # Errors
/// [`Error::InvalidMedia`], [`Error::NoAudio`], [`Error::ZeroDuration`],
/// [`Error::TooLong`], [`Error::TooLarge`], [`Error::UnsupportedCodec`],
/// process and I/O errors.
pub async fn probe_source(ffmpeg: &Ffmpeg, input: &str, limits: &MediaLimits) -> Result<MediaInfo, Error> {
    let info = if is_url(input) { probe_url(ffmpeg, input).await? } else { probe(ffmpeg, Path::new(input)).await? };
    validate(&info, limits)?;
    Ok(info)
}

/// Checks that probed media can become shorts: it needs pictures (audio
/// alone is transcribed by [`Transcriber`], but there is nothing to frame).
///
/// # Errors
/// [`Error::InvalidMedia`] naming what is missing.
pub fn check_renderable(info: &MediaInfo) -> Result<(), Error> {
    match info.display_size() {
        Some((w, h)) if w >= 16 && h >= 16 => Ok(()),
        Some((w, h)) => Err(Error::InvalidMedia(format!("the picture is only {w}×{h} pixels"))),
        None => Err(Error::InvalidMedia("the file has no video stream: shorts need pictures".into())),
    }
}

fn is_url(input: &str) -> bool {
    input.starts_with("https://") || input.starts_with("http://")
}

fn ffmpeg_input(input: &str) -> String {
    if is_url(input) { input.to_owned() } else { crate::process::file_arg(Path::new(input)) }
}

/// Stage 2: the loudness of the input's audio in 100 ms frames, from one
/// audio-only ffmpeg pass (`astats`); the values are streamed to a small
/// text file in `work_dir`, so memory does not grow with the duration.
///
/// # Errors
/// Process errors, cancellation and I/O.
pub async fn audio_features(
    ffmpeg: &Ffmpeg,
    input: &str,
    duration: f64,
    work_dir: &Path,
    cancel: &CancellationToken,
) -> Result<AudioFeatures, Error> {
    let io = |op| move |source| Error::Io { op, source };
    tokio::fs::create_dir_all(work_dir).await.map_err(io("creating the work directory"))?;
    let out = tempfile::Builder::new()
        .prefix(".videdit-rms-")
        .suffix(".txt")
        .tempfile_in(work_dir)
        .map_err(io("creating the loudness file"))?;
    let frame = (16_000.0 * crate::analyze::FRAME_SECONDS).round() as u32;
    let graph = format!(
        "aresample=16000,aformat=channel_layouts=mono,asetnsamples=n={frame}:p=0,\
         astats=metadata=1:reset=1:measure_perchannel=none:measure_overall=RMS_level,\
         ametadata=mode=print:key=lavfi.astats.Overall.RMS_level:file={}",
        crate::render::graph::filter_value(&out.path().display().to_string())
    );
    let mut args = safe_input_args(&ffmpeg_input(input));
    args.extend(["-vn", "-sn", "-dn", "-af", &graph, "-f", "null", "-"].map(String::from));
    ffmpeg.run(Run { args, media_seconds: duration, on_progress: None, cancel: Some(cancel.clone()) }).await?;
    let text = tokio::fs::read_to_string(out.path()).await.map_err(io("reading the loudness file"))?;
    Ok(parse_rms(&text))
}

/// Parses `ametadata` print output: one `…RMS_level=<dB>` line per frame.
fn parse_rms(text: &str) -> AudioFeatures {
    let floor = crate::analyze::SILENCE_DB;
    let rms_db = text
        .lines()
        .filter_map(|l| l.strip_prefix("lavfi.astats.Overall.RMS_level="))
        .map(|v| v.trim().parse::<f32>().ok().filter(|x| x.is_finite()).map_or(floor, |x| x.max(floor)))
        .collect();
    AudioFeatures { frame_seconds: crate::analyze::FRAME_SECONDS, rms_db }
}

/// A short chosen and ready to render.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedShort {
    /// 1 for the best.
    pub rank: usize,
    /// Why it was chosen, its scores and title.
    pub highlight: Highlight,
    /// What to render.
    pub recipe: ClipRecipe,
    /// A file name stem: `01-the-title`.
    pub stem: String,
}

/// Stage 4: finds the highlights and turns each into a recipe. A short's
/// range runs from a little before its first word to a little after its
/// last ([`LEAD_IN`], [`TAIL_OUT`]), never past the middle of the pause
/// around it, so it starts and ends in silence and never clips a word.
///
/// # Errors
/// [`AnalyzeError`] for invalid options or word timings.
pub fn plan_shorts(
    transcript: &Transcript,
    features: Option<&AudioFeatures>,
    source: &str,
    source_duration: f64,
    options: &PipelineOptions,
) -> Result<Vec<PlannedShort>, AnalyzeError> {
    let highlights = analyze(transcript, features, &options.analyze)?;
    let words: Vec<_> = transcript.words().cloned().collect();
    let end_limit = if source_duration > 0.0 { source_duration } else { f64::INFINITY };
    let threshold = features.and_then(speech_threshold);
    Ok(highlights
        .into_iter()
        .enumerate()
        .filter_map(|(i, h)| {
            let first = words.get(h.first_word)?;
            let last = words.get(h.last_word)?;
            // The aligner's word times drift around pauses (a start after a
            // pause comes late, an end before one may run into it): take the
            // edges from the audio when it is known.
            let prev = h.first_word.checked_sub(1).and_then(|j| words.get(j));
            let next = words.get(h.last_word + 1);
            let (start, end) = match (features, threshold) {
                (Some(f), Some(thr)) => {
                    let onset = speech_onset(f, thr, first.start, prev.map_or(0.0, |w| w.start), first.end);
                    let offset = speech_offset(f, thr, last.end, last.start, next.map_or(end_limit, |w| w.end));
                    let (pause_start, _) = pause_around(f, thr, onset);
                    let (_, pause_end) = pause_around(f, thr, offset);
                    let pause_start = if prev.is_none() { 0.0 } else { pause_start };
                    (
                        onset - LEAD_IN.min(((onset - pause_start) / 2.0).max(0.0)),
                        offset + TAIL_OUT.min(((pause_end.min(end_limit) - offset) / 2.0).max(0.0)),
                    )
                }
                _ => {
                    let before = prev.map_or(0.0, |w| w.end);
                    let after = next.map_or(end_limit, |w| w.start);
                    (
                        first.start - LEAD_IN.min(((first.start - before) / 2.0).max(0.0)),
                        last.end + TAIL_OUT.min(((after - last.end) / 2.0).max(0.0)),
                    )
                }
            };
            let (start, end) = (start.max(0.0), end.min(end_limit));
            let range = TimeRange::new(start, end).ok()?;
            let recipe = ClipRecipe {
                version: RECIPE_VERSION,
                source: source.to_owned(),
                range,
                aspect: options.aspect,
                reframe: options.reframe,
                caption_style: options.caption_style,
                words: words[h.first_word..=h.last_word].to_vec(),
                title: h.title.clone(),
            };
            let rank = i + 1;
            Some(PlannedShort { rank, stem: format!("{rank:02}-{}", slug(&h.title)), highlight: h, recipe })
        })
        .collect())
}

/// The level above which a loudness frame is speech: 12 dB over the
/// recording's noise floor (its 10th-percentile frame), at least −55 dBFS.
fn speech_threshold(f: &AudioFeatures) -> Option<f32> {
    let mut levels = f.rms_db.clone();
    if levels.is_empty() {
        return None;
    }
    levels.sort_by(f32::total_cmp);
    Some((levels[levels.len() / 10] + 12.0).max(-55.0))
}

fn frame_at(f: &AudioFeatures, t: f64) -> usize {
    ((t / f.frame_seconds).floor().max(0.0) as usize).min(f.rms_db.len().saturating_sub(1))
}

fn quiet(f: &AudioFeatures, threshold: f32) -> impl Fn(usize) -> bool + '_ {
    move |i| f.rms_db[i] <= threshold
}

/// Shortest pause (in loudness frames) taken for the gap between sentences.
const MIN_GAP_FRAMES: usize = 2;

/// Where speech really begins for a word the aligner starts at `t`. In
/// speech: the end of the nearest pause of at least [`MIN_GAP_FRAMES`]
/// before `t`, not before `lo` (the previous word's start); `t` when there
/// is none (continuous speech). In silence (an early start): the first
/// speech after `t`, not after `hi` (the word's end).
fn speech_onset(f: &AudioFeatures, threshold: f32, t: f64, lo: f64, hi: f64) -> f64 {
    if f.rms_db.is_empty() {
        return t;
    }
    let (n, fs, silent, mut j) = (f.rms_db.len(), f.frame_seconds, quiet(f, threshold), frame_at(f, t));
    if silent(j) {
        while j + 1 < n && silent(j) && (j + 1) as f64 * fs <= hi {
            j += 1;
        }
        return if silent(j) { t } else { (j as f64 * fs).max(t) };
    }
    while j >= MIN_GAP_FRAMES && (j - MIN_GAP_FRAMES) as f64 * fs >= lo {
        if (j - MIN_GAP_FRAMES..j).all(&silent) {
            return (j as f64 * fs).min(t);
        }
        j -= 1;
    }
    t
}

/// Where speech really ends for a word the aligner ends at `t`: the
/// mirror of [`speech_onset`] (`lo`: the word's start, `hi`: the next
/// word's end).
fn speech_offset(f: &AudioFeatures, threshold: f32, t: f64, lo: f64, hi: f64) -> f64 {
    if f.rms_db.is_empty() {
        return t;
    }
    let (n, fs, silent, mut j) = (f.rms_db.len(), f.frame_seconds, quiet(f, threshold), frame_at(f, t));
    if silent(j) {
        while j > 0 && silent(j) && j as f64 * fs >= lo {
            j -= 1;
        }
        return if silent(j) { t } else { ((j + 1) as f64 * fs).min(t) };
    }
    while j + MIN_GAP_FRAMES < n && (j + 1 + MIN_GAP_FRAMES) as f64 * fs <= hi {
        if (j + 1..=j + MIN_GAP_FRAMES).all(&silent) {
            return ((j + 1) as f64 * fs).max(t);
        }
        j += 1;
    }
    t
}

/// The silence around `t`: (start, end) of the run of quiet frames that
/// holds `t` or touches it.
fn pause_around(f: &AudioFeatures, threshold: f32, t: f64) -> (f64, f64) {
    let (fs, n, silent) = (f.frame_seconds, f.rms_db.len(), quiet(f, threshold));
    let k = ((t / fs).round().max(0.0) as usize).min(n);
    let mut a = k;
    while a > 0 && silent(a - 1) {
        a -= 1;
    }
    let mut b = k;
    while b < n && silent(b) {
        b += 1;
    }
    (a as f64 * fs, b as f64 * fs)
}

/// A title as a safe file name part: lower-case ASCII letters and digits
/// joined by single hyphens, at most 48 characters, never empty.
#[must_use]
pub fn slug(title: &str) -> String {
    let mut out = String::new();
    for word in title.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
        let word = word.to_ascii_lowercase();
        if out.len() + word.len() + 1 > 48 {
            if out.is_empty() {
                out.push_str(&word[..48]);
            }
            break;
        }
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(&word);
    }
    if out.is_empty() { "short".into() } else { out }
}

/// The transcriber and the ffmpeg gateway, loaded once, run many times.
#[derive(Clone)]
pub struct Pipeline {
    /// The ffmpeg gateway.
    pub ffmpeg: Ffmpeg,
    /// The loaded Whisper model.
    pub transcriber: Transcriber,
    /// The model's name as recorded in transcripts (`tiny.en`).
    pub model_name: String,
}

/// A rendered short.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducedShort {
    /// 1 for the best.
    pub rank: usize,
    /// Overall score, 0–100.
    pub score: f32,
    /// The parts of the score.
    pub sub_scores: videdit_core::short::SubScores,
    /// Why it was chosen.
    pub reason: String,
    /// Suggested title.
    pub title: String,
    /// Its range in the source.
    pub range: TimeRange,
    /// The MP4, thumbnail and recipe.
    pub video: PathBuf,
    /// The JPEG thumbnail.
    pub thumbnail: PathBuf,
    /// The recipe.
    pub recipe: PathBuf,
    /// Whether an earlier run's render was kept.
    pub reused: bool,
}

/// Wall time of each stage, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Timings {
    /// Probing.
    pub probe: f64,
    /// Loudness measurement.
    pub audio: f64,
    /// Transcription.
    pub transcribe: f64,
    /// Analysis.
    pub analyze: f64,
    /// All renders.
    pub render: f64,
    /// The whole run.
    pub total: f64,
}

/// What [`Pipeline::run`] produced.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The input as given.
    pub input: String,
    /// Its duration in seconds.
    pub duration: f64,
    /// The model.
    pub model: String,
    /// Whether the transcript came from an earlier run.
    pub transcript_reused: bool,
    /// The shorts, best first.
    pub shorts: Vec<ProducedShort>,
    /// Wall time per stage.
    pub timings: Timings,
}

/// The state kept between runs.
#[derive(Debug, Serialize, Deserialize)]
struct TranscriptState {
    version: u32,
    fingerprint: String,
    info: MediaInfo,
    transcript: Transcript,
    features: Option<Vec<f32>>,
}

/// Reports progress and estimates the time left.
struct Reporter<'a> {
    started: Instant,
    sink: &'a (dyn Fn(&ProgressEvent) + Send + Sync),
}

impl Reporter<'_> {
    fn report(&self, stage: Stage, fraction: f64, cached: bool) {
        let (start, share) = stage.span();
        let fraction = fraction.clamp(0.0, 1.0);
        let overall = (start + share * fraction).clamp(0.0, 1.0);
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = (overall > 0.05 && elapsed > 2.0 && !cached)
            .then(|| Duration::from_secs_f64(elapsed / overall * (1.0 - overall)));
        (self.sink)(&ProgressEvent { stage, stage_fraction: fraction, overall, eta, cached });
    }
}

impl Pipeline {
    /// A pipeline over a loaded model.
    #[must_use]
    pub fn new(ffmpeg: Ffmpeg, transcriber: Transcriber, model_name: impl Into<String>) -> Self {
        Self { ffmpeg, transcriber, model_name: model_name.into() }
    }

    /// Turns `input` into shorts under `out`: `out/shorts/NN-title.{mp4,jpg,json}`,
    /// `out/transcript.{json,srt,vtt,txt}` and `out/summary.json`.
    ///
    /// # Errors
    /// [`PipelineError`]: bad input is reported before anything is written
    /// to `out`; a failed or cancelled run leaves no partial file behind.
    pub async fn run(
        &self,
        input: &Path,
        out: &Path,
        options: &PipelineOptions,
        progress: &(dyn Fn(&ProgressEvent) + Send + Sync),
        cancel: &CancellationToken,
    ) -> Result<Summary, PipelineError> {
        let started = Instant::now();
        let reporter = Reporter { started, sink: progress };
        let mut timings = Timings::default();
        options.analyze.validate()?;
        let input_str = input.display().to_string();
        let meta = tokio::fs::metadata(input).await.map_err(|source| Error::Io { op: "reading the input", source })?;
        if !meta.is_file() {
            return Err(Error::InvalidMedia(format!("{} is not a file", input.display())).into());
        }
        let fingerprint = fingerprint(input, &meta, &self.model_name, &options.transcribe);
        let state_dir = out.join(".videdit");
        let state_path = state_dir.join("transcript.json");

        // Stages 1–3, or their saved results.
        let previous = read_state(&state_path).await.filter(|s| s.fingerprint == fingerprint);
        let transcript_reused = previous.is_some();
        let state = if let Some(state) = previous {
            for stage in [Stage::Probe, Stage::Audio, Stage::Transcribe] {
                reporter.report(stage, 1.0, true);
            }
            state
        } else {
            reporter.report(Stage::Probe, 0.0, false);
            let t = Instant::now();
            let info = probe_source(&self.ffmpeg, &input_str, &options.limits).await?;
            check_renderable(&info)?;
            timings.probe = t.elapsed().as_secs_f64();
            reporter.report(Stage::Probe, 1.0, false);

            let t = Instant::now();
            let features = audio_features(&self.ffmpeg, &input_str, info.duration, &state_dir, cancel).await?;
            timings.audio = t.elapsed().as_secs_f64();
            reporter.report(Stage::Audio, 1.0, false);

            let t = Instant::now();
            let on_progress = |f: f32| reporter.report(Stage::Transcribe, f64::from(f), false);
            let transcript = self
                .transcriber
                .transcribe(&self.ffmpeg, &input_str, info.duration, &options.transcribe, &on_progress, cancel)
                .await?;
            timings.transcribe = t.elapsed().as_secs_f64();
            reporter.report(Stage::Transcribe, 1.0, false);
            let state = TranscriptState {
                version: STATE_VERSION,
                fingerprint,
                info,
                transcript,
                features: Some(features.rms_db),
            };
            write_atomic(&state_path, &serde_json::to_vec(&state).expect("state serialises")).await?;
            state
        };
        let transcript = &state.transcript;
        write_transcript_files(out, transcript).await?;

        // Stage 4.
        let t = Instant::now();
        let features =
            state.features.clone().map(|rms_db| AudioFeatures { frame_seconds: crate::analyze::FRAME_SECONDS, rms_db });
        let source = std::path::absolute(input).unwrap_or_else(|_| input.to_path_buf()).display().to_string();
        let planned = plan_shorts(transcript, features.as_ref(), &source, state.info.duration, options)?;
        timings.analyze = t.elapsed().as_secs_f64();
        reporter.report(Stage::Analyze, 1.0, false);

        // Stage 5.
        let t = Instant::now();
        let shorts_dir = out.join("shorts");
        tokio::fs::create_dir_all(&shorts_dir).await.map_err(output_error("creating", &shorts_dir))?;
        let done: Mutex<Vec<f64>> = Mutex::new(vec![0.0; planned.len()]);
        let report_render = |i: usize, f: f64| {
            let total = {
                let mut d = done.lock().expect("progress lock");
                d[i] = f;
                d.iter().sum::<f64>() / d.len().max(1) as f64
            };
            reporter.report(Stage::Render, total, false);
        };
        let report_render = &report_render;
        let shorts_dir_ref = &shorts_dir;
        let mut shorts: Vec<ProducedShort> = stream::iter(planned.iter().enumerate())
            .map(|(i, plan)| async move {
                let outputs = RenderOutputs::in_dir(shorts_dir_ref, &plan.stem);
                let reused = is_rendered(&outputs, &plan.recipe).await;
                if !reused {
                    render(&self.ffmpeg, &plan.recipe, &outputs, &options.render, |f| report_render(i, f), cancel)
                        .await
                        .map(|_: Rendered| ())
                        .map_err(|source| PipelineError::Render { rank: plan.rank, source })?;
                }
                report_render(i, 1.0);
                let h = &plan.highlight;
                Ok::<_, PipelineError>(ProducedShort {
                    rank: plan.rank,
                    score: h.score,
                    sub_scores: h.sub_scores,
                    reason: h.reason.clone(),
                    title: h.title.clone(),
                    range: plan.recipe.range,
                    video: outputs.video,
                    thumbnail: outputs.thumbnail,
                    recipe: outputs.recipe,
                    reused,
                })
            })
            .buffer_unordered(options.render_concurrency.max(1))
            .try_collect()
            .await?;
        shorts.sort_by_key(|s| s.rank);
        remove_stale_shorts(&shorts_dir, &planned).await?;
        timings.render = t.elapsed().as_secs_f64();
        timings.total = started.elapsed().as_secs_f64();

        let summary = Summary {
            input: input_str,
            duration: state.info.duration,
            model: self.model_name.clone(),
            transcript_reused,
            shorts,
            timings,
        };
        write_atomic(&out.join("summary.json"), &serde_json::to_vec_pretty(&summary).expect("summary serialises"))
            .await?;
        Ok(summary)
    }
}

/// Identifies an input and the settings its transcript depends on.
fn fingerprint(input: &Path, meta: &std::fs::Metadata, model: &str, options: &TranscribeOptions) -> String {
    let path = std::path::absolute(input).unwrap_or_else(|_| input.to_path_buf());
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    format!("v{STATE_VERSION}|{}|{}|{mtime}|{model}|{:?}", path.display(), meta.len(), options.language)
}

async fn read_state(path: &Path) -> Option<TranscriptState> {
    let bytes = tokio::fs::read(path).await.ok()?;
    serde_json::from_slice::<TranscriptState>(&bytes).ok().filter(|s| s.version == STATE_VERSION)
}

/// Writes `bytes` to a temporary file beside `path`, then renames it.
async fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PipelineError> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(dir).await.map_err(output_error("creating", dir))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    tokio::fs::write(&tmp, bytes).await.map_err(output_error("writing", &tmp))?;
    tokio::fs::rename(&tmp, path).await.map_err(output_error("renaming into", path))
}

async fn write_transcript_files(out: &Path, t: &Transcript) -> Result<(), PipelineError> {
    write_atomic(&out.join("transcript.json"), &serde_json::to_vec_pretty(t).expect("transcript serialises")).await?;
    write_atomic(&out.join("transcript.srt"), t.to_srt().as_bytes()).await?;
    write_atomic(&out.join("transcript.vtt"), t.to_vtt().as_bytes()).await?;
    write_atomic(&out.join("transcript.txt"), format!("{}\n", t.text()).as_bytes()).await
}

/// Whether an earlier run rendered exactly this recipe to these outputs.
async fn is_rendered(outputs: &RenderOutputs, recipe: &ClipRecipe) -> bool {
    let Ok(bytes) = tokio::fs::read(&outputs.recipe).await else { return false };
    let same = serde_json::from_slice::<ClipRecipe>(&bytes).is_ok_and(|r| &r == recipe);
    same && tokio::fs::metadata(&outputs.video).await.is_ok_and(|m| m.len() > 0)
        && tokio::fs::metadata(&outputs.thumbnail).await.is_ok()
}

/// Removes shorts an earlier run wrote that this run did not choose
/// (files named `NN-….mp4|jpg|json` only).
async fn remove_stale_shorts(dir: &Path, planned: &[PlannedShort]) -> Result<(), PipelineError> {
    let mut entries = tokio::fs::read_dir(dir).await.map_err(output_error("listing", dir))?;
    while let Some(entry) = entries.next_entry().await.map_err(output_error("listing", dir))? {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((stem, ext)) = name.rsplit_once('.') else { continue };
        let ours = matches!(ext, "mp4" | "jpg" | "json")
            && stem.len() > 3
            && stem.as_bytes()[..2].iter().all(u8::is_ascii_digit)
            && stem.as_bytes()[2] == b'-';
        if ours && !planned.iter().any(|p| p.stem == stem) {
            let path = entry.path();
            tokio::fs::remove_file(&path).await.map_err(output_error("removing", &path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_safe_file_names() {
        assert_eq!(slug("Why Rust? It's fast & safe!"), "why-rust-it-s-fast-safe");
        assert_eq!(slug("   "), "short");
        assert_eq!(slug("../../etc/passwd"), "etc-passwd");
        assert_eq!(slug("Ünïcödé only"), "n-c-d-only");
        let long = slug(&"word ".repeat(40));
        assert!(long.len() <= 48 && !long.ends_with('-'), "{long}");
        assert_eq!(slug(&"x".repeat(100)).len(), 48);
    }

    #[test]
    fn rms_lines_parse_with_silence_floored() {
        let text = "frame:0    pts:0       pts_time:0\nlavfi.astats.Overall.RMS_level=-20.5\n\
                    frame:1    pts:1600    pts_time:0.1\nlavfi.astats.Overall.RMS_level=-inf\n\
                    frame:2    pts:3200    pts_time:0.2\nlavfi.astats.Overall.RMS_level=-300\n";
        let f = parse_rms(text);
        assert_eq!(f.rms_db, vec![-20.5, crate::analyze::SILENCE_DB, crate::analyze::SILENCE_DB]);
        assert!((f.frame_seconds - 0.1).abs() < 1e-12);
    }

    #[test]
    fn edges_snap_to_the_speech_around_a_word() {
        // Silence, then speech from 1.0 s to 2.0 s, then silence.
        let rms_db: Vec<f32> = (0..30).map(|i| if (10..20).contains(&i) { -20.0 } else { -100.0 }).collect();
        let f = AudioFeatures { frame_seconds: 0.1, rms_db };
        let thr = speech_threshold(&f).unwrap();
        assert!((thr + 55.0).abs() < 1e-6, "{thr}");
        // An aligner start 0.3 s late moves back to the end of the pause, even when the
        // previous word's end ran into the pause; never before the previous word's start.
        assert!((speech_onset(&f, thr, 1.3, 0.0, 1.6) - 1.0).abs() < 1e-9);
        assert!((speech_onset(&f, thr, 1.3, 0.95, 1.6) - 1.3).abs() < 1e-9);
        // A start early, in the silence, moves forward to the onset; never past the word's end.
        assert!((speech_onset(&f, thr, 0.7, 0.0, 1.6) - 1.0).abs() < 1e-9);
        assert!((speech_onset(&f, thr, 0.5, 0.0, 0.8) - 0.5).abs() < 1e-9);
        // An end inside speech moves to the start of the next pause; never past the next word.
        assert!((speech_offset(&f, thr, 1.7, 1.2, 3.0) - 2.0).abs() < 1e-9);
        assert!((speech_offset(&f, thr, 1.7, 1.2, 1.85) - 1.7).abs() < 1e-9);
        // An end late, in the silence, moves back to the end of speech; never before the word's start.
        assert!((speech_offset(&f, thr, 2.45, 1.5, 3.0) - 2.0).abs() < 1e-9);
        assert!((speech_offset(&f, thr, 2.45, 2.2, 3.0) - 2.45).abs() < 1e-9);
        // The pause around the edges.
        assert_eq!(pause_around(&f, thr, 1.0), (0.0, 1.0));
        assert_eq!(pause_around(&f, thr, 2.0), (2.0, 3.0));
        // No features: unchanged.
        let none = AudioFeatures { frame_seconds: 0.1, rms_db: vec![] };
        assert!((speech_onset(&none, thr, 1.3, 0.0, 2.0) - 1.3).abs() < 1e-9);
    }

    #[test]
    fn stages_cover_the_run_in_order() {
        let stages = [Stage::Probe, Stage::Audio, Stage::Transcribe, Stage::Analyze, Stage::Render];
        let mut at = 0.0;
        for s in stages {
            let (start, share) = s.span();
            assert!((start - at).abs() < 1e-9, "{s:?}");
            at = start + share;
        }
        assert!((at - 1.0).abs() < 1e-9);
    }
}
