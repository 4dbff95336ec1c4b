//! Probing: ffprobe's JSON as a typed [`MediaInfo`], and validation of
//! uploaded media with typed errors.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::process::{Ffmpeg, file_arg};

/// What kind of stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    /// Pictures.
    Video,
    /// Sound.
    Audio,
    /// Subtitles, data, attachments.
    Other,
}

/// One stream of a media file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamInfo {
    /// Index in the container.
    pub index: u32,
    /// Kind.
    pub kind: StreamKind,
    /// Codec name (`h264`, `aac`, …).
    pub codec: String,
    /// Width in pixels (video).
    pub width: Option<u32>,
    /// Height in pixels (video).
    pub height: Option<u32>,
    /// Display rotation in degrees (video; 0, 90, 180, 270).
    pub rotation: i32,
    /// Frames per second (video; average).
    pub frame_rate: Option<f64>,
    /// Sample rate in Hz (audio).
    pub sample_rate: Option<u32>,
    /// Channels (audio).
    pub channels: Option<u32>,
    /// Bit rate in bits per second.
    pub bit_rate: Option<u64>,
}

/// What ffprobe found in a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaInfo {
    /// Container (ffprobe's `format_name`, for example `mov,mp4,m4a,3gp,3g2,mj2`).
    pub container: String,
    /// Duration in seconds (0 when unknown).
    pub duration: f64,
    /// Size in bytes.
    pub size: Option<u64>,
    /// Overall bit rate.
    pub bit_rate: Option<u64>,
    /// The streams.
    pub streams: Vec<StreamInfo>,
}

impl MediaInfo {
    /// The first video stream.
    #[must_use]
    pub fn video(&self) -> Option<&StreamInfo> {
        self.streams.iter().find(|s| s.kind == StreamKind::Video)
    }

    /// The first audio stream.
    #[must_use]
    pub fn audio(&self) -> Option<&StreamInfo> {
        self.streams.iter().find(|s| s.kind == StreamKind::Audio)
    }

    /// Displayed width and height of the video (rotation applied).
    #[must_use]
    pub fn display_size(&self) -> Option<(u32, u32)> {
        let v = self.video()?;
        let (w, h) = (v.width?, v.height?);
        Some(if v.rotation.rem_euclid(180) == 90 { (h, w) } else { (w, h) })
    }

    /// Parses `ffprobe -show_format -show_streams -of json` output.
    ///
    /// # Errors
    /// [`Error::InvalidMedia`] when the JSON has no format section.
    pub fn from_ffprobe_json(json: &[u8]) -> Result<Self> {
        let raw: RawProbe =
            serde_json::from_slice(json).map_err(|e| Error::InvalidMedia(format!("unreadable probe output: {e}")))?;
        let format = raw.format.ok_or_else(|| Error::InvalidMedia("no container was recognised".into()))?;
        let streams = raw
            .streams
            .into_iter()
            .map(|s| {
                let kind = match s.codec_type.as_deref() {
                    Some("video") if s.disposition.as_ref().is_none_or(|d| d.attached_pic == 0) => StreamKind::Video,
                    Some("audio") => StreamKind::Audio,
                    _ => StreamKind::Other,
                };
                let rotation = s
                    .side_data_list
                    .iter()
                    .find_map(|d| d.rotation)
                    .or_else(|| s.tags.as_ref().and_then(|t| t.rotate.as_deref()).and_then(|r| r.parse().ok()))
                    .unwrap_or(0.0);
                StreamInfo {
                    index: s.index,
                    kind,
                    codec: s.codec_name.unwrap_or_default(),
                    width: s.width,
                    height: s.height,
                    rotation: (rotation as i32).rem_euclid(360),
                    frame_rate: s
                        .avg_frame_rate
                        .as_deref()
                        .and_then(ratio)
                        .or_else(|| s.r_frame_rate.as_deref().and_then(ratio)),
                    sample_rate: s.sample_rate.as_deref().and_then(|r| r.parse().ok()),
                    channels: s.channels,
                    bit_rate: s.bit_rate.as_deref().and_then(|b| b.parse().ok()),
                }
            })
            .collect();
        Ok(Self {
            container: format.format_name,
            duration: format
                .duration
                .as_deref()
                .and_then(|d| d.parse().ok())
                .filter(|d: &f64| d.is_finite())
                .unwrap_or(0.0),
            size: format.size.as_deref().and_then(|s| s.parse().ok()),
            bit_rate: format.bit_rate.as_deref().and_then(|b| b.parse().ok()),
            streams,
        })
    }
}

fn ratio(r: &str) -> Option<f64> {
    let (n, d) = r.split_once('/')?;
    let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
    (d > 0.0 && n > 0.0).then(|| n / d)
}

#[derive(Deserialize)]
struct RawProbe {
    format: Option<RawFormat>,
    #[serde(default)]
    streams: Vec<RawStream>,
}

#[derive(Deserialize)]
struct RawFormat {
    format_name: String,
    duration: Option<String>,
    size: Option<String>,
    bit_rate: Option<String>,
}

#[derive(Deserialize)]
struct RawStream {
    index: u32,
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    sample_rate: Option<String>,
    channels: Option<u32>,
    bit_rate: Option<String>,
    #[serde(default)]
    side_data_list: Vec<RawSideData>,
    tags: Option<RawTags>,
    disposition: Option<RawDisposition>,
}

#[derive(Deserialize)]
struct RawSideData {
    rotation: Option<f64>,
}

#[derive(Deserialize)]
struct RawTags {
    rotate: Option<String>,
}

#[derive(Deserialize)]
struct RawDisposition {
    #[serde(default)]
    attached_pic: u8,
}

/// Probes a local file with the protocol and demuxer whitelists, so a
/// playlist or concat list disguised as a video is refused rather than
/// followed.
///
/// # Errors
/// [`Error::InvalidMedia`] for anything ffprobe cannot read as a real media
/// container; [`Error::Io`] when the file is missing; process errors.
pub async fn probe(ffmpeg: &Ffmpeg, path: &Path) -> Result<MediaInfo> {
    let meta = tokio::fs::metadata(path).await.map_err(|source| Error::Io { op: "reading the input", source })?;
    if meta.len() == 0 {
        return Err(Error::InvalidMedia("the file is empty".into()));
    }
    run_probe(ffmpeg, "file", &file_arg(path)).await
}

/// Probes media behind an `http(s)` URL (a presigned GET): only the
/// network protocols that URL needs, and only real media demuxers. ffprobe
/// reads just the container's headers, not the whole file.
///
/// # Errors
/// As [`probe`]; a URL that is not http(s) is refused as invalid media.
pub async fn probe_url(ffmpeg: &Ffmpeg, url: &str) -> Result<MediaInfo> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(Error::InvalidMedia("only http(s) URLs are probed".into()));
    }
    run_probe(ffmpeg, "http,https,tcp,tls,crypto", url).await
}

async fn run_probe(ffmpeg: &Ffmpeg, protocols: &str, input: &str) -> Result<MediaInfo> {
    let args = [
        "-protocol_whitelist",
        protocols,
        "-format_whitelist",
        crate::process::ALLOWED_DEMUXERS,
        "-show_format",
        "-show_streams",
        "-of",
        "json",
        input,
    ];
    match ffmpeg.ffprobe(&args, Duration::from_secs(30)).await {
        Ok(out) => MediaInfo::from_ffprobe_json(&out),
        Err(Error::Failed { stderr, .. }) if stderr.is_empty() => {
            Err(Error::InvalidMedia("ffprobe could not read it".into()))
        }
        Err(Error::Failed { stderr, .. }) => Err(Error::InvalidMedia(stderr.join(" | "))),
        Err(e) => Err(e),
    }
}

/// What uploaded media must satisfy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MediaLimits {
    /// Longest duration in seconds.
    pub max_duration: f64,
    /// Largest file in bytes.
    pub max_bytes: u64,
}

impl Default for MediaLimits {
    fn default() -> Self {
        Self { max_duration: 4.0 * 3600.0, max_bytes: 10 * 1024 * 1024 * 1024 }
    }
}

/// Audio codecs we decode (anything the Debian ffmpeg decodes that shows up
/// in uploads; others are refused with a clear error rather than failing late).
const AUDIO_CODECS: &[&str] = &[
    "aac",
    "mp3",
    "opus",
    "vorbis",
    "flac",
    "alac",
    "pcm_s16le",
    "pcm_s24le",
    "pcm_s32le",
    "pcm_f32le",
    "pcm_s16be",
    "pcm_u8",
    "ac3",
    "eac3",
    "mp2",
    "wmav2",
    "amr_nb",
    "amr_wb",
];

/// Checks probed media against the limits.
///
/// # Errors
/// [`Error::NoAudio`], [`Error::ZeroDuration`], [`Error::TooLong`],
/// [`Error::TooLarge`] or [`Error::UnsupportedCodec`].
pub fn validate(info: &MediaInfo, limits: &MediaLimits) -> Result<()> {
    if let Some(size) = info.size
        && size > limits.max_bytes
    {
        return Err(Error::TooLarge { bytes: size, limit: limits.max_bytes });
    }
    let audio = info.audio().ok_or(Error::NoAudio)?;
    if !AUDIO_CODECS.contains(&audio.codec.as_str()) {
        return Err(Error::UnsupportedCodec(audio.codec.clone()));
    }
    if info.duration <= 0.0 {
        return Err(Error::ZeroDuration);
    }
    if info.duration > limits.max_duration {
        return Err(Error::TooLong { seconds: info.duration, limit: limits.max_duration });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TALK: &[u8] = include_bytes!("../tests/fixtures/ffprobe/talk.mp4.json");
    const SONG: &[u8] = include_bytes!("../tests/fixtures/ffprobe/song.mp3.json");

    #[test]
    fn parses_a_real_mp4_probe() {
        let info = MediaInfo::from_ffprobe_json(TALK).unwrap();
        assert_eq!(info.container, "mov,mp4,m4a,3gp,3g2,mj2");
        assert!((info.duration - 2.0).abs() < 0.05, "{}", info.duration);
        let v = info.video().unwrap();
        assert_eq!((v.codec.as_str(), v.width, v.height), ("h264", Some(1280), Some(720)));
        assert_eq!(v.frame_rate, Some(30.0));
        let a = info.audio().unwrap();
        assert_eq!((a.codec.as_str(), a.sample_rate, a.channels), ("aac", Some(44100), Some(1)));
        assert!(info.size.unwrap() > 0 && info.bit_rate.unwrap() > 0);
        assert!(validate(&info, &MediaLimits::default()).is_ok());
    }

    #[test]
    fn audio_only_is_fine() {
        let info = MediaInfo::from_ffprobe_json(SONG).unwrap();
        assert!(info.video().is_none());
        assert_eq!(info.audio().unwrap().codec, "mp3");
        assert!(validate(&info, &MediaLimits::default()).is_ok());
    }

    #[test]
    fn rotation_from_side_data_or_tags_swaps_the_display_size() {
        let json = br#"{"format":{"format_name":"mov","duration":"10"},"streams":[
            {"index":0,"codec_type":"video","codec_name":"h264","width":1920,"height":1080,"side_data_list":[{"rotation":-90}]},
            {"index":1,"codec_type":"audio","codec_name":"aac","sample_rate":"48000","channels":2}]}"#;
        let info = MediaInfo::from_ffprobe_json(json).unwrap();
        assert_eq!(info.video().unwrap().rotation, 270);
        assert_eq!(info.display_size(), Some((1080, 1920)));
        let json = br#"{"format":{"format_name":"mov","duration":"10"},"streams":[
            {"index":0,"codec_type":"video","codec_name":"hevc","width":1920,"height":1080,"tags":{"rotate":"90"}}]}"#;
        assert_eq!(MediaInfo::from_ffprobe_json(json).unwrap().display_size(), Some((1080, 1920)));
    }

    #[test]
    fn validation_errors_are_typed() {
        let base = MediaInfo::from_ffprobe_json(TALK).unwrap();
        let limits = MediaLimits { max_duration: 1.0, max_bytes: u64::MAX };
        assert!(matches!(validate(&base, &limits), Err(Error::TooLong { .. })));
        let limits = MediaLimits { max_duration: 10.0, max_bytes: 10 };
        assert!(matches!(validate(&base, &limits), Err(Error::TooLarge { .. })));
        let mut silent = base.clone();
        silent.streams.retain(|s| s.kind != StreamKind::Audio);
        assert!(matches!(validate(&silent, &MediaLimits::default()), Err(Error::NoAudio)));
        let mut zero = base.clone();
        zero.duration = 0.0;
        assert!(matches!(validate(&zero, &MediaLimits::default()), Err(Error::ZeroDuration)));
        let mut odd = base;
        odd.streams.iter_mut().find(|s| s.kind == StreamKind::Audio).unwrap().codec = "dolby_e".into();
        assert!(matches!(validate(&odd, &MediaLimits::default()), Err(Error::UnsupportedCodec(c)) if c == "dolby_e"));
        assert!(MediaInfo::from_ffprobe_json(b"{}").is_err());
    }
}
