//! The stages of a run and the progress reports made while it runs.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

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

/// Reports progress and estimates the time left.
pub(super) struct Reporter<'a> {
    pub(super) started: Instant,
    pub(super) sink: &'a (dyn Fn(&ProgressEvent) + Send + Sync),
}

impl Reporter<'_> {
    pub(super) fn report(&self, stage: Stage, fraction: f64, cached: bool) {
        let (start, share) = stage.span();
        let fraction = fraction.clamp(0.0, 1.0);
        let overall = (start + share * fraction).clamp(0.0, 1.0);
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = (overall > 0.05 && elapsed > 2.0 && !cached)
            .then(|| Duration::from_secs_f64(elapsed / overall * (1.0 - overall)));
        (self.sink)(&ProgressEvent { stage, stage_fraction: fraction, overall, eta, cached });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
