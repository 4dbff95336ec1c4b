//! Media files for tests, made with ffmpeg, and ffprobe's view of what a
//! test produced: both through the gateway, like everything else.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::audio::{self, AudioRange};
use crate::process::{Ffmpeg, Run, file_arg};

/// Runs ffmpeg with `args` (inputs, filters, codecs: everything but the
/// output) writing `dir/name`, overwriting it; `media_seconds` sets the
/// deadline. Returns the file.
///
/// # Panics
/// When ffmpeg fails: a test cannot go on without its input.
pub async fn generate(dir: &Path, name: &str, args: &[&str], media_seconds: f64) -> PathBuf {
    let out = dir.join(name);
    let mut all: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    all.extend(["-y".to_owned(), file_arg(&out)]);
    Ffmpeg::default()
        .run(Run { args: all, media_seconds, on_progress: None, cancel: None })
        .await
        .unwrap_or_else(|e| panic!("making {}: {e}", out.display()));
    out
}

/// ffprobe's `-show_format -show_streams` JSON of `path`.
///
/// # Panics
/// When ffprobe fails or writes something that is not JSON.
pub async fn ffprobe_json(path: &Path) -> Value {
    let out = Ffmpeg::default()
        .ffprobe(&["-show_format", "-show_streams", "-of", "json", &file_arg(path)], Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("ffprobe {}: {e}", path.display()));
    serde_json::from_slice(&out).unwrap_or_else(|e| panic!("ffprobe {}: {e}", path.display()))
}

/// The first stream of `kind` (`video`, `audio`) in [`ffprobe_json`] output.
///
/// # Panics
/// When there is none.
#[must_use]
pub fn stream_of<'a>(probe: &'a Value, kind: &str) -> &'a Value {
    probe["streams"]
        .as_array()
        .and_then(|streams| streams.iter().find(|s| s["codec_type"] == kind))
        .unwrap_or_else(|| panic!("no {kind} stream in {probe}"))
}

/// A duration as ffprobe writes it (a string of seconds), as a number.
///
/// # Panics
/// When `value` is not one.
#[must_use]
pub fn seconds_of(value: &Value) -> f64 {
    value.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not a duration: {value}"))
}

/// The duration of the media file at `path`, seconds (its container's).
///
/// # Panics
/// As [`ffprobe_json`], or when it has no duration.
pub async fn media_seconds(path: &Path) -> f64 {
    seconds_of(&ffprobe_json(path).await["format"]["duration"])
}

/// All of the audio of the file at `path` as 16 kHz mono samples, what
/// transcription reads; `media_seconds` sets the deadline.
///
/// # Panics
/// When ffmpeg cannot decode it.
pub async fn samples_of(path: &Path, media_seconds: f64) -> Vec<f32> {
    let input = path.to_str().unwrap_or_else(|| panic!("not UTF-8: {}", path.display()));
    audio::extract(&Ffmpeg::default(), input, AudioRange::default(), media_seconds, CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("decoding {}: {e}", path.display()))
}
