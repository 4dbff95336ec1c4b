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
/// transcription reads; `seconds` (or the file's own duration, when
/// longer) sets the deadline and the read bound.
///
/// # Panics
/// When ffmpeg cannot decode it.
pub async fn samples_of(path: &Path, seconds: f64) -> Vec<f32> {
    let input = path.to_str().unwrap_or_else(|| panic!("not UTF-8: {}", path.display()));
    let seconds = media_seconds(path).await.max(seconds);
    audio::extract(&Ffmpeg::default(), input, AudioRange::default(), seconds, CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("decoding {}: {e}", path.display()))
}

/// A Matroska file of Opus audio that holds `holds` seconds but declares
/// `declares`: in its container's duration and, when `streams_too`, in its
/// stream's `DURATION` tag as well (then nothing in its headers betrays
/// it). What a hostile upload does to make a worker read far longer than
/// the limits allow.
///
/// # Panics
/// When ffmpeg fails or its output lacks the fields to rewrite.
pub async fn understated_mka(dir: &Path, name: &str, holds: f64, declares: f64, streams_too: bool) -> PathBuf {
    let sine = format!("sine=frequency=440:sample_rate=48000:d={holds}");
    let path = generate(dir, name, &["-f", "lavfi", "-i", &sine, "-c:a", "libopus", "-f", "matroska"], holds).await;
    let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    // Segment Info's Duration: element 0x4489, 8 bytes, a big-endian float
    // of milliseconds (the default timecode scale).
    let at = find(&bytes, &[0x44, 0x89, 0x88]).expect("the segment declares a duration") + 3;
    bytes[at..at + 8].copy_from_slice(&(declares * 1000.0).to_be_bytes());
    if streams_too {
        // The tag's value, HH:MM:SS.nnnnnnnnn, follows its name.
        let name = find(&bytes, b"DURATION").expect("the stream has a DURATION tag");
        let shape = |w: &[u8]| {
            w.iter().enumerate().all(|(i, c)| match i {
                2 | 5 => *c == b':',
                8 => *c == b'.',
                _ => c.is_ascii_digit(),
            })
        };
        let value = name + bytes[name..].windows(18).position(shape).expect("the tag has a value");
        let (h, m, s) = ((declares / 3600.0).floor(), (declares % 3600.0 / 60.0).floor(), declares % 60.0);
        let text = format!("{h:02}:{m:02}:{s:012.9}");
        bytes[value..value + 18].copy_from_slice(text.as_bytes());
    }
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
