//! Loudness features from decoded audio.

use super::AnalyzeError;

/// Length of one loudness frame made by [`AudioFeatures::from_samples`].
pub const FRAME_SECONDS: f64 = 0.1;
/// The floor of [`AudioFeatures::rms_db`] (digital silence).
pub const SILENCE_DB: f32 = -100.0;
/// Frames quieter than this are left out of the reference level.
const SPEECH_FLOOR_DB: f32 = -60.0;

/// Loudness of the source audio, one RMS value per fixed-length frame.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioFeatures {
    /// Length of each frame in seconds.
    pub frame_seconds: f64,
    /// RMS level of each frame in dBFS (`0.0` is full scale), floored at
    /// [`SILENCE_DB`]. Frame `i` covers `[i, i + 1) * frame_seconds`.
    pub rms_db: Vec<f32>,
}

impl AudioFeatures {
    /// RMS loudness in [`FRAME_SECONDS`] frames of mono samples in
    /// `-1.0..=1.0` (the 16 kHz mono `f32` audio the transcriber reads).
    /// A last partial frame counts; non-finite samples count as silence.
    #[must_use]
    pub fn from_samples(samples: &[f32], sample_rate: u32) -> Self {
        let frame_len = ((f64::from(sample_rate) * FRAME_SECONDS).round() as usize).max(1);
        let rms_db = if sample_rate == 0 {
            Vec::new()
        } else {
            samples
                .chunks(frame_len)
                .map(|frame| {
                    let energy: f64 =
                        frame.iter().map(|&x| if x.is_finite() { f64::from(x) * f64::from(x) } else { 0.0 }).sum();
                    let rms = (energy / frame.len() as f64).sqrt();
                    if rms > 0.0 { ((20.0 * rms.log10()) as f32).max(SILENCE_DB) } else { SILENCE_DB }
                })
                .collect()
        };
        Self { frame_seconds: FRAME_SECONDS, rms_db }
    }

    pub(super) fn validate(&self) -> Result<(), AnalyzeError> {
        if !(self.frame_seconds.is_finite() && self.frame_seconds > 0.0) {
            return Err(AnalyzeError::InvalidAudio("frame_seconds must be finite and positive"));
        }
        if self.rms_db.iter().any(|v| !v.is_finite()) {
            return Err(AnalyzeError::InvalidAudio("rms_db holds a value that is not finite"));
        }
        Ok(())
    }
}

/// Window loudness in O(1) from prefix sums.
pub(super) struct Loudness {
    frame_seconds: f64,
    prefix: Vec<f64>,
    /// Median level of the frames with speech: what "normal" sounds like.
    reference: f64,
}

impl Loudness {
    /// `None` when there is no audible frame to compare against.
    pub(super) fn new(audio: &AudioFeatures) -> Option<Self> {
        let mut speech: Vec<f32> = audio.rms_db.iter().copied().filter(|&v| v > SPEECH_FLOOR_DB).collect();
        if speech.is_empty() {
            return None;
        }
        speech.sort_by(f32::total_cmp);
        let reference = f64::from(speech[speech.len() / 2]);
        let mut prefix = Vec::with_capacity(audio.rms_db.len() + 1);
        prefix.push(0.0);
        let mut sum = 0.0;
        for &v in &audio.rms_db {
            sum += f64::from(v);
            prefix.push(sum);
        }
        Some(Self { frame_seconds: audio.frame_seconds, prefix, reference })
    }

    /// Mean level of `[start, end)` minus the reference level, in dB;
    /// `None` when the audio does not reach that far.
    pub(super) fn relative_db(&self, start: f64, end: f64) -> Option<f64> {
        let frames = self.prefix.len() - 1;
        // The epsilon keeps 0.3 / 0.1 = 2.999… on frame 3.
        let first = ((start / self.frame_seconds + 1e-9).floor().max(0.0) as usize).min(frames);
        let last = ((end / self.frame_seconds - 1e-9).ceil().max(0.0) as usize).min(frames);
        if last <= first {
            return None;
        }
        let mean = (self.prefix[last] - self.prefix[first]) / (last - first) as f64;
        Some(mean - self.reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_rms_per_frame() {
        // 0.25 s at 16 kHz: full-scale square wave, then silence, then half scale.
        let mut samples = vec![1.0_f32; 1600];
        samples.extend(vec![0.0_f32; 1600]);
        samples.extend((0..800).map(|i| if i % 2 == 0 { 0.5 } else { -0.5 }));
        let a = AudioFeatures::from_samples(&samples, 16_000);
        assert_eq!(a.frame_seconds, 0.1);
        assert_eq!(a.rms_db.len(), 3);
        assert!(a.rms_db[0].abs() < 1e-4);
        assert_eq!(a.rms_db[1], SILENCE_DB);
        assert!((a.rms_db[2] + 6.0206).abs() < 1e-3, "{}", a.rms_db[2]);
    }

    #[test]
    fn handles_degenerate_input() {
        assert!(AudioFeatures::from_samples(&[], 16_000).rms_db.is_empty());
        assert!(AudioFeatures::from_samples(&[0.5; 10], 0).rms_db.is_empty());
        assert_eq!(AudioFeatures::from_samples(&[f32::NAN; 10], 16_000).rms_db, [SILENCE_DB]);
        let bad = AudioFeatures { frame_seconds: 0.0, rms_db: vec![] };
        assert!(bad.validate().is_err());
        let bad = AudioFeatures { frame_seconds: 0.1, rms_db: vec![f32::NAN] };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn loudness_is_relative_to_the_median_speech_level() {
        let a = AudioFeatures { frame_seconds: 0.1, rms_db: vec![-20.0, -20.0, -20.0, -10.0, -10.0, -100.0] };
        let l = Loudness::new(&a).unwrap();
        assert_eq!(l.relative_db(0.0, 0.3), Some(0.0));
        assert_eq!(l.relative_db(0.3, 0.5), Some(10.0));
        assert_eq!(l.relative_db(1.0, 2.0), None);
        assert!(Loudness::new(&AudioFeatures { frame_seconds: 0.1, rms_db: vec![-100.0] }).is_none());
    }
}
