//! Where speech really starts and stops around a short's first and last
//! word, read from the loudness frames: the aligner's word times drift
//! around pauses, the audio does not.

use crate::analyze::AudioFeatures;

/// The level above which a loudness frame is speech: 12 dB over the
/// recording's noise floor (its 10th-percentile frame), at least −55 dBFS.
pub(super) fn speech_threshold(f: &AudioFeatures) -> Option<f32> {
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
pub(super) fn speech_onset(f: &AudioFeatures, threshold: f32, t: f64, lo: f64, hi: f64) -> f64 {
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
pub(super) fn speech_offset(f: &AudioFeatures, threshold: f32, t: f64, lo: f64, hi: f64) -> f64 {
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
pub(super) fn pause_around(f: &AudioFeatures, threshold: f32, t: f64) -> (f64, f64) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
