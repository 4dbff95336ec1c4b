//! The pipeline: a long video in, ranked captioned shorts out.
//!
//! Each stage is a plain function that the server's job handlers call as
//! they are, one stage per job; [`Pipeline::run`] chains them for local use
//! (`videdit process`, embedding apps):
//!
//! 1. [`probe_source`]: what the input is, checked against [`MediaLimits`].
//! 2. [`audio_features`]: loudness per 100 ms (one cheap audio-only pass),
//!    for the analysis's delivery score.
//! 3. Transcription ([`Transcriber::transcribe`](crate::transcribe::Transcriber::transcribe)),
//!    straight from the input.
//! 4. [`plan_shorts`]: the analysis, and one
//!    [`ClipRecipe`](videdit_core::recipe::ClipRecipe) per highlight, its
//!    range widened into the silence around it.
//! 5. [`crate::render::render`] per recipe, several at once.
//!
//! [`Pipeline::run`] keeps its state in `OUT/.videdit/`: a re-run with the
//! same input and model skips probing and transcription, and skips every
//! short whose recipe did not change. All outputs are written under a
//! temporary name and renamed into place.
//!
//! One file per concept under `pipeline/`: `source` (stage 1),
//! `audio_levels` (stage 2), `plan` (stage 4) with `edges` (where speech
//! really starts and stops around a short), `progress` (the stages and
//! progress reports), `runner` ([`Pipeline::run`]) with `state` (what it
//! keeps in `OUT/.videdit/`) and `atomic_write`. Everything public is
//! re-exported here: `videdit_media::pipeline::X` is the path to use.

use std::path::{Path, PathBuf};

use videdit_core::ErrorCode;
use videdit_core::recipe::{Aspect, CaptionStyle, Reframe};

use crate::analyze::{AnalyzeError, AnalyzeOptions};
use crate::error::Error;
use crate::probe::MediaLimits;
use crate::render::{RenderError, RenderOptions};
use crate::transcribe::TranscribeOptions;

mod atomic_write;
mod audio_levels;
mod edges;
mod plan;
mod progress;
mod runner;
mod source;
mod state;

pub use audio_levels::audio_features;
pub use plan::{LEAD_IN, PlannedShort, TAIL_OUT, plan_shorts, slug};
pub use progress::{ProgressEvent, Stage};
pub use runner::{Pipeline, ProducedShort, Summary, Timings};
pub use source::{check_renderable, probe_source};

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

    /// Whether ffmpeg ran out of time ([`Error::is_timeout`]): worth one
    /// more attempt, not more.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Media(e) => e.is_timeout(),
            Self::Render { source, .. } => source.is_timeout(),
            Self::Analyze(_) | Self::Output { .. } => false,
        }
    }
}

pub(super) fn output_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PipelineError + 'a {
    move |source| PipelineError::Output { op, path: path.to_path_buf(), source }
}
