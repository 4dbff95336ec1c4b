//! Probing: ffprobe's JSON as a typed [`MediaInfo`], and validation of
//! uploaded media with typed errors.
//!
//! [`validate`] refuses, from the headers alone (nothing is decoded yet),
//! what would cost a worker far more than its duration suggests: too many
//! pixels, too many frames per second, too many streams, and a container
//! whose declared duration its own streams contradict (see
//! [`MediaLimits`]). What a file holds beyond its declared duration is
//! never read: every later pass is bounded by it
//! ([`crate::process::bounded_input_args`]).

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
    /// Duration the stream declares, in seconds (its own header, or
    /// Matroska's `DURATION` tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
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

    /// An attached picture (an audio file's cover art), when there is one.
    #[must_use]
    pub fn cover_art(&self) -> Option<&StreamInfo> {
        self.streams.iter().find(|s| s.kind == StreamKind::Other && s.width.is_some() && s.height.is_some())
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
                    duration: s
                        .duration
                        .as_deref()
                        .and_then(|d| d.parse().ok())
                        .or_else(|| s.tags.as_ref().and_then(|t| t.duration.as_deref()).and_then(clock_seconds))
                        .filter(|d: &f64| d.is_finite() && *d >= 0.0),
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

/// `HH:MM:SS.fraction` (Matroska's `DURATION` tag) in seconds.
fn clock_seconds(t: &str) -> Option<f64> {
    let mut total = 0.0;
    for part in t.trim().split(':') {
        total = total * 60.0 + part.parse::<f64>().ok()?;
    }
    Some(total)
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
    duration: Option<String>,
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
    #[serde(rename = "DURATION")]
    duration: Option<String>,
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

/// What uploaded media must satisfy. Build it with the fields you set and
/// `..MediaLimits::default()` for the rest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MediaLimits {
    /// Longest duration in seconds (4 hours).
    pub max_duration: f64,
    /// Largest file in bytes (10 GiB).
    pub max_bytes: u64,
    /// Most pixels in a picture, width × height, of any stream that has a
    /// size (7680 × 4320, 8K UHD): decoders allocate by the declared size,
    /// so a tiny file can ask for gigabytes per frame.
    pub max_pixels: u64,
    /// Highest video frame rate (240 fps): every frame is decoded, so the
    /// cost of a second grows with it.
    pub max_frame_rate: f64,
    /// Most streams of any kind (16): each costs a decoder context when
    /// probed.
    pub max_streams: usize,
    /// Largest disagreement between the duration the container declares and
    /// the longest audio or video stream's own, as a share of the longer
    /// (0.5); differences under [`DURATION_GRACE`] always pass. Checked only
    /// when a stream declares its duration.
    pub max_duration_mismatch: f64,
}

/// Seconds by which a container's and its streams' durations may always
/// differ (priming samples, a last frame, edit lists).
pub const DURATION_GRACE: f64 = 5.0;

impl Default for MediaLimits {
    fn default() -> Self {
        Self {
            max_duration: 4.0 * 3600.0,
            max_bytes: 10 * 1024 * 1024 * 1024,
            max_pixels: 7680 * 4320,
            max_frame_rate: 240.0,
            max_streams: 16,
            max_duration_mismatch: 0.5,
        }
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
/// The declared durations are compared with each other, not with a
/// measurement: measuring means reading the whole file, the very cost a
/// hostile file is after, and what a file holds past its declared
/// duration is never read anyway. A container that contradicts its own
/// streams is refused, since either may be the lie.
///
/// # Errors
/// [`Error::TooLarge`], [`Error::TooManyStreams`], [`Error::NoAudio`],
/// [`Error::UnsupportedCodec`], [`Error::ZeroDuration`], [`Error::TooLong`],
/// [`Error::DurationMismatch`], [`Error::TooManyPixels`] or
/// [`Error::FrameRateTooHigh`].
pub fn validate(info: &MediaInfo, limits: &MediaLimits) -> Result<()> {
    if let Some(size) = info.size
        && size > limits.max_bytes
    {
        return Err(Error::TooLarge { bytes: size, limit: limits.max_bytes });
    }
    if info.streams.len() > limits.max_streams {
        return Err(Error::TooManyStreams { count: info.streams.len(), limit: limits.max_streams });
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
    let streams =
        info.streams.iter().filter(|s| s.kind != StreamKind::Other).filter_map(|s| s.duration).max_by(f64::total_cmp);
    if let Some(streams) = streams {
        let difference = (info.duration - streams).abs();
        if difference > DURATION_GRACE && difference > limits.max_duration_mismatch * info.duration.max(streams) {
            return Err(Error::DurationMismatch { declared: info.duration, streams });
        }
    }
    for s in &info.streams {
        if let (Some(width), Some(height)) = (s.width, s.height)
            && u64::from(width) * u64::from(height) > limits.max_pixels
        {
            return Err(Error::TooManyPixels { width, height, limit: limits.max_pixels });
        }
        if s.kind == StreamKind::Video
            && let Some(fps) = s.frame_rate
            && fps > limits.max_frame_rate
        {
            return Err(Error::FrameRateTooHigh { fps, limit: limits.max_frame_rate });
        }
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
        let limits = MediaLimits { max_duration: 1.0, max_bytes: u64::MAX, ..MediaLimits::default() };
        assert!(matches!(validate(&base, &limits), Err(Error::TooLong { .. })));
        let limits = MediaLimits { max_duration: 10.0, max_bytes: 10, ..MediaLimits::default() };
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

    /// A probe of one stream per JSON object in `streams`, in a container of
    /// `duration` seconds, with an AAC track first.
    fn probe_of(duration: &str, streams: &[&str]) -> MediaInfo {
        let mut all = vec![r#"{"index":0,"codec_type":"audio","codec_name":"aac","sample_rate":"48000","channels":2}"#];
        all.extend(streams);
        let json =
            format!(r#"{{"format":{{"format_name":"mov","duration":"{duration}"}},"streams":[{}]}}"#, all.join(","));
        MediaInfo::from_ffprobe_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn pictures_over_8k_are_refused_cover_art_too() {
        let limits = MediaLimits::default();
        let uhd8k = r#"{"index":1,"codec_type":"video","codec_name":"hevc","width":7680,"height":4320,"avg_frame_rate":"30/1"}"#;
        assert!(validate(&probe_of("60", &[uhd8k]), &limits).is_ok());
        let wider = r#"{"index":1,"codec_type":"video","codec_name":"hevc","width":7682,"height":4320}"#;
        let err = validate(&probe_of("60", &[wider]), &limits).unwrap_err();
        assert!(matches!(err, Error::TooManyPixels { width: 7682, height: 4320, limit: 33_177_600 }), "{err}");
        assert_eq!(err.code().as_str(), "invalid_media");
        assert!(!err.is_retryable());
        assert_eq!(err.to_string(), "the picture is 7682×4320 pixels, over the limit of 33177600 pixels");
        let bomb = r#"{"index":1,"codec_type":"video","codec_name":"png","width":65535,"height":65535,"disposition":{"attached_pic":1}}"#;
        assert!(matches!(validate(&probe_of("60", &[bomb]), &limits), Err(Error::TooManyPixels { .. })));
    }

    #[test]
    fn frame_rates_over_the_limit_are_refused() {
        let limits = MediaLimits::default();
        let fast =
            r#"{"index":1,"codec_type":"video","codec_name":"h264","width":640,"height":360,"avg_frame_rate":"240/1"}"#;
        assert!(validate(&probe_of("60", &[fast]), &limits).is_ok());
        let faster = r#"{"index":1,"codec_type":"video","codec_name":"h264","width":640,"height":360,"avg_frame_rate":"1000000/1"}"#;
        let err = validate(&probe_of("60", &[faster]), &limits).unwrap_err();
        assert!(matches!(err, Error::FrameRateTooHigh { fps, limit } if fps == 1e6 && limit == 240.0), "{err}");
        assert_eq!(err.code().as_str(), "invalid_media");
    }

    #[test]
    fn too_many_streams_are_refused() {
        let sub = r#"{"index":1,"codec_type":"subtitle","codec_name":"subrip"}"#;
        let limits = MediaLimits::default();
        assert!(validate(&probe_of("60", &[sub; 15]), &limits).is_ok());
        let err = validate(&probe_of("60", &[sub; 16]), &limits).unwrap_err();
        assert!(matches!(err, Error::TooManyStreams { count: 17, limit: 16 }), "{err}");
        assert_eq!(err.code().as_str(), "invalid_media");
    }

    #[test]
    fn a_container_its_streams_contradict_is_refused() {
        let limits = MediaLimits::default();
        let video = |d: &str| {
            format!(r#"{{"index":1,"codec_type":"video","codec_name":"h264","width":64,"height":64,"duration":"{d}"}}"#)
        };
        // A real file: the container and its streams agree within a frame.
        assert!(validate(&MediaInfo::from_ffprobe_json(TALK).unwrap(), &limits).is_ok());
        assert!(validate(&probe_of("60", &[&video("59.9")]), &limits).is_ok());
        // Differences under the grace always pass.
        assert!(validate(&probe_of("3", &[&video("7.5")]), &limits).is_ok());
        let err = validate(&probe_of("60", &[&video("86400")]), &limits).unwrap_err();
        assert!(
            matches!(err, Error::DurationMismatch { declared, streams } if declared == 60.0 && streams == 86400.0),
            "{err}"
        );
        assert_eq!(err.code().as_str(), "invalid_media");
        assert!(matches!(validate(&probe_of("3600", &[&video("60")]), &limits), Err(Error::DurationMismatch { .. })));
        // Matroska keeps a stream's duration in a tag.
        let tagged = r#"{"index":1,"codec_type":"audio","codec_name":"opus","tags":{"DURATION":"00:01:00.008000000"}}"#;
        let info = probe_of("3", &[tagged]);
        assert_eq!(info.streams[1].duration, Some(60.008));
        assert!(matches!(validate(&info, &limits), Err(Error::DurationMismatch { .. })));
        // A subtitle track's length says nothing about the media.
        let sub = r#"{"index":1,"codec_type":"subtitle","codec_name":"subrip","duration":"9000"}"#;
        assert!(validate(&probe_of("60", &[sub]), &limits).is_ok());
    }
}
