//! [`Pipeline::run`]: every stage in turn for local use, reusing what an
//! earlier run into the same directory already did.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use futures_util::stream::{self, StreamExt as _, TryStreamExt as _};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use videdit_core::time_range::TimeRange;
use videdit_core::transcript::Transcript;

use super::atomic_write::write_atomic;
use super::progress::{ProgressEvent, Reporter, Stage};
use super::state::{STATE_VERSION, TranscriptState, fingerprint, is_rendered, read_state, remove_stale_shorts};
use super::{
    PipelineError, PipelineOptions, audio_features, check_renderable, output_error, plan_shorts, probe_source,
};
use crate::analyze::AudioFeatures;
use crate::error::Error;
use crate::process::Ffmpeg;
use crate::render::{RenderOutputs, Rendered, render};
use crate::transcribe::Transcriber;

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

async fn write_transcript_files(out: &Path, t: &Transcript) -> Result<(), PipelineError> {
    write_atomic(&out.join("transcript.json"), &serde_json::to_vec_pretty(t).expect("transcript serialises")).await?;
    write_atomic(&out.join("transcript.srt"), t.to_srt().as_bytes()).await?;
    write_atomic(&out.join("transcript.vtt"), t.to_vtt().as_bytes()).await?;
    write_atomic(&out.join("transcript.txt"), format!("{}\n", t.text()).as_bytes()).await
}
