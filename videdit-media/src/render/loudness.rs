//! Loudness normalisation for social platforms: measure the clip's audio
//! with ebur128, apply the gain that brings it to the target and, only
//! when that gain would push true peaks over the ceiling, a lookahead
//! limiter; re-measure and correct the gain for what the limiter took.

use serde::{Deserialize, Serialize};

/// Below this integrated loudness (LUFS) the audio counts as silence and
/// is left alone (ebur128 reports −70 when nothing passes its gate).
pub const SILENCE_LUFS: f64 = -69.0;
/// Most gain applied, in dB: beyond that it is noise being amplified.
pub const MAX_GAIN_DB: f64 = 40.0;
/// The limiter's ceiling sits this far below the true-peak target, room
/// for the overshoot of AAC encoding (measured at up to 0.4 dB on speech).
pub const CODEC_MARGIN_DB: f64 = 0.5;
/// A limited pass landing within this of the target stops the correction.
pub const TOLERANCE_LU: f64 = 0.25;
/// Most passes (each is a fast audio-only run).
pub const MAX_PASSES: u32 = 3;

/// What the output should measure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoudnessTarget {
    /// Integrated loudness in LUFS.
    pub integrated: f64,
    /// Highest true peak in dBTP.
    pub true_peak: f64,
}

impl Default for LoudnessTarget {
    /// −14 LUFS and −1 dBTP: what YouTube, TikTok, Instagram and Spotify
    /// normalise to.
    fn default() -> Self {
        Self { integrated: -14.0, true_peak: -1.0 }
    }
}

impl LoudnessTarget {
    /// The limiter ceiling in dBTP.
    #[must_use]
    pub fn ceiling(&self) -> f64 {
        self.true_peak - CODEC_MARGIN_DB
    }
}

/// An EBU R128 measurement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Loudness {
    /// Integrated loudness in LUFS (−70 for silence).
    pub integrated: f64,
    /// True peak in dBTP (very negative for silence).
    pub true_peak: f64,
}

impl Loudness {
    /// Whether this is silence.
    #[must_use]
    pub fn is_silent(&self) -> bool {
        self.integrated <= SILENCE_LUFS
    }
}

/// What normalisation did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoudnessReport {
    /// The clip's audio as cut from the source.
    pub source: Loudness,
    /// The normalised audio, before AAC encoding.
    pub output: Loudness,
    /// Gain applied in dB.
    pub gain_db: f64,
    /// Whether the limiter was needed.
    pub limited: bool,
    /// Normalisation passes run.
    pub passes: u32,
}

/// The last integrated loudness and true peak in the output of
/// `ametadata=mode=print` after `ebur128=metadata=1:peak=true` (the values
/// are running, so the last ones cover the whole clip).
#[must_use]
pub fn parse(meta: &str) -> Option<Loudness> {
    let mut integrated = None;
    let mut peak = None;
    for line in meta.lines() {
        if let Some(v) = line.strip_prefix("lavfi.r128.I=") {
            integrated = v.trim().parse::<f64>().ok().or(integrated);
        } else if let Some(v) = line.strip_prefix("lavfi.r128.true_peak=") {
            peak = v.trim().parse::<f64>().ok().or(peak);
        }
    }
    let peak: f64 = peak?;
    Some(Loudness { integrated: integrated?, true_peak: if peak > 0.0 { 20.0 * peak.log10() } else { -200.0 } })
}

/// The first pass's gain, and whether it needs the limiter.
#[must_use]
pub fn first_gain(source: Loudness, target: &LoudnessTarget) -> (f64, bool) {
    if source.is_silent() {
        return (0.0, false);
    }
    let gain = (target.integrated - source.integrated).clamp(-MAX_GAIN_DB, MAX_GAIN_DB);
    (gain, source.true_peak + gain > target.ceiling())
}

/// The next pass's gain, from the passes so far (gain, measurement; the
/// source itself counts as a pass at gain 0), or `None` when the last pass
/// is within [`TOLERANCE_LU`]. The limiter makes the output grow slower
/// than the gain, so each step divides the miss by the slope between the
/// last two passes (the secant method); two limited passes usually do.
#[must_use]
pub fn next_gain(history: &[(f64, Loudness)], target: &LoudnessTarget) -> Option<f64> {
    let &(gain, output) = history.last()?;
    let miss = target.integrated - output.integrated;
    if miss.abs() <= TOLERANCE_LU || output.is_silent() {
        return None;
    }
    let slope = match history {
        [.., (g0, l0), (g1, l1)] if (g1 - g0).abs() > 1e-3 => {
            ((l1.integrated - l0.integrated) / (g1 - g0)).clamp(0.3, 1.0)
        }
        _ => 1.0,
    };
    Some((gain + miss / slope).clamp(-MAX_GAIN_DB, MAX_GAIN_DB))
}

/// The limiter's linear ceiling.
#[must_use]
pub fn limit(target: &LoudnessTarget) -> f64 {
    10f64.powf(target.ceiling() / 20.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_gives_the_last_values() {
        let meta = "frame:0    pts:0       pts_time:0\nlavfi.r128.M=-70.000\nlavfi.r128.I=-70.000\n\
                    lavfi.r128.true_peak=0.000\nframe:511  pts:2452800 pts_time:51.1\nlavfi.r128.I=-20.497\n\
                    lavfi.r128.true_peaks_ch0=0.669\nlavfi.r128.true_peak=0.669\n";
        let l = parse(meta).unwrap();
        assert_eq!(l.integrated, -20.497);
        assert!((l.true_peak - -3.49).abs() < 0.01, "{l:?}");
        assert!(parse("").is_none());
        let silent = parse("lavfi.r128.I=-70.000\nlavfi.r128.true_peak=0.000\n").unwrap();
        assert!(silent.is_silent() && silent.true_peak < -100.0);
    }

    #[test]
    fn gain_is_linear_when_peaks_allow_and_limited_otherwise() {
        let t = LoudnessTarget::default();
        assert_eq!(first_gain(Loudness { integrated: -9.2, true_peak: 0.3 }, &t), (-4.800000000000001, false));
        let (gain, limited) = first_gain(Loudness { integrated: -20.5, true_peak: -3.5 }, &t);
        assert!((gain - 6.5).abs() < 1e-9 && limited);
        assert_eq!(first_gain(Loudness { integrated: -70.0, true_peak: -200.0 }, &t), (0.0, false));
        assert_eq!(first_gain(Loudness { integrated: -65.0, true_peak: -50.0 }, &t).0, MAX_GAIN_DB);
        let l = |integrated: f64| Loudness { integrated, true_peak: -1.5 };
        assert!((next_gain(&[(6.5, l(-14.8))], &t).unwrap() - 7.3).abs() < 1e-9);
        // The source at gain 0 and a limited pass: the step follows the slope.
        let next = next_gain(&[(0.0, l(-20.5)), (6.5, l(-14.8))], &t).unwrap();
        assert!((next - (6.5 + 0.8 / (5.7 / 6.5))).abs() < 1e-9, "{next}");
        assert_eq!(next_gain(&[(0.0, l(-20.5)), (7.3, l(-14.1))], &t), None);
        assert_eq!(next_gain(&[], &t), None);
        assert!((limit(&t) - 0.841).abs() < 0.001);
    }
}
