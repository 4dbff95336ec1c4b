//! Rendering: a [`ClipRecipe`] in, a finished short out (H.264 + AAC MP4
//! with `+faststart`, a JPEG thumbnail and the recipe beside them).
//!
//! Rendering reads nothing but the recipe (and the source it names), so a
//! recipe a user edited renders the same way every time. Every ffmpeg and
//! ffprobe run goes through the [`crate::process`] gateway:
//!
//! 1. **Probe** the source (a local path, or an `http(s)` URL such as a
//!    presigned GET) for its size, frame rate and audio.
//! 2. **Main run**, one read of the source's range: input-side `-ss` (a
//!    fast seek that still cuts on the exact frame) and `-t` (only the
//!    range is read, which over HTTP means only its bytes are fetched);
//!    video reframed (`crop` at a given centre, or `fit` over a blurred
//!    copy), captions burned in with libass from the ASS script
//!    [`crate::captions`] makes, encoded with x264; audio kept as 48 kHz
//!    float WAV and measured with ebur128.
//! 3. **Loudness** to −14 LUFS integrated and at most −1 dBTP (see
//!    [`loudness`]): linear gain when the peaks allow it, otherwise gain
//!    and a 4×-oversampled lookahead limiter, re-measured and corrected.
//!    These runs touch only the WAV and take well under a second.
//! 4. **Mux**: video copied, audio to AAC, `+faststart`; the thumbnail.
//!
//! Everything is written in a temporary directory beside the outputs and
//! renamed into place at the end (recipe, thumbnail, then video), so no
//! output is ever half-written and a cancelled or failed render leaves
//! nothing behind.
//!
//! ## Speed
//! x264 `veryfast` at CRF 21: on two cores a 1080×1920 captioned short
//! from 720p talk renders faster than real time (see the `render` bench),
//! where `faster` does not; `superfast` is ~35 % quicker but needs about
//! 2.5× the bits for the same quality. CRF 21 keeps the detail the
//! platforms' own re-encode will take away anyway; a VBV cap of 12 Mbit/s
//! bounds the file size on noisy footage. Sources above 30 fps are halved
//! (see [`Fps::for_source`]).

pub(crate) mod graph;
pub mod loudness;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use videdit_core::ErrorCode;
use videdit_core::recipe::{Aspect, CaptionStyle, ClipRecipe, Reframe};
use videdit_core::time_range::TimeRange;

pub use graph::{Fps, Geometry};
pub use loudness::{Loudness, LoudnessReport, LoudnessTarget};

use crate::captions::{CaptionFont, CaptionLayout, Captions};
use crate::error::Error;
use crate::probe::{probe, probe_url};
use crate::process::{Ffmpeg, Progress, Run, file_arg};

/// Share of the progress bar the main run takes, with the framing when
/// there is one (the rest is loudness and muxing).
const MAIN_SHARE: f64 = 0.9;
/// Share of the progress bar finding faces takes.
const FRAMING_SHARE: f64 = 0.15;
/// x264 presets accepted in [`RenderOptions::x264_preset`].
const PRESETS: &[&str] =
    &["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"];

/// How to encode.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderOptions {
    /// x264 preset (`veryfast`).
    pub x264_preset: String,
    /// x264 constant rate factor (21).
    pub crf: u8,
    /// Peak video bit rate in kbit/s (12 000).
    pub max_video_kbps: u32,
    /// AAC bit rate in kbit/s (160).
    pub audio_kbps: u32,
    /// Loudness target (−14 LUFS, −1 dBTP).
    pub loudness: LoudnessTarget,
    /// Caption font; `None` takes [`CaptionFont::installed`].
    pub font: Option<CaptionFont>,
    /// A picture (PNG, JPEG) blurred behind every audiogram, in place of
    /// the file's cover art or the plain colour.
    pub audiogram_background: Option<PathBuf>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            x264_preset: "veryfast".into(),
            crf: 21,
            max_video_kbps: 12_000,
            audio_kbps: 160,
            loudness: LoudnessTarget::default(),
            font: None,
            audiogram_background: None,
        }
    }
}

/// Where a render writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOutputs {
    /// The MP4.
    pub video: PathBuf,
    /// The JPEG thumbnail.
    pub thumbnail: PathBuf,
    /// The recipe, as JSON.
    pub recipe: PathBuf,
}

impl RenderOutputs {
    /// `dir/stem.mp4`, `dir/stem.jpg` and `dir/stem.json`.
    #[must_use]
    pub fn in_dir(dir: &Path, stem: &str) -> Self {
        Self {
            video: dir.join(format!("{stem}.mp4")),
            thumbnail: dir.join(format!("{stem}.jpg")),
            recipe: dir.join(format!("{stem}.json")),
        }
    }
}

/// A finished render.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rendered {
    /// The MP4.
    pub video: PathBuf,
    /// The JPEG thumbnail.
    pub thumbnail: PathBuf,
    /// The recipe.
    pub recipe: PathBuf,
    /// Duration of the MP4 in seconds.
    pub duration: f64,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Frame rate.
    pub fps: f64,
    /// Caption events burned in.
    pub caption_events: usize,
    /// The framing rendered: the recipe's own, or what `auto` (or a
    /// `track` or `split` without a path) became; the recipe file holds it.
    pub reframe: Reframe,
    /// Seconds spent finding faces (0 when the recipe's framing was final).
    pub framing_seconds: f64,
    /// What loudness normalisation did (`None` for a source without audio,
    /// which gets a silent track).
    pub loudness: Option<LoudnessReport>,
}

/// Why a render failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The recipe cannot be rendered as it stands.
    #[error("invalid recipe: {0}")]
    InvalidRecipe(String),
    /// Invalid [`RenderOptions`].
    #[error("invalid render options: {0}")]
    InvalidOptions(String),
    /// No caption font is installed.
    #[error("no caption font is installed (install fonts-inter or fonts-dejavu-core)")]
    NoFont,
    /// Probing or running ffmpeg failed, or local I/O did.
    #[error(transparent)]
    Media(#[from] Error),
}

impl RenderError {
    /// The stable API code.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidRecipe(_) => ErrorCode::InvalidRequest,
            Self::InvalidOptions(_) | Self::NoFont => ErrorCode::Internal,
            Self::Media(e) => e.code(),
        }
    }

    /// Whether another attempt may succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Media(e) if e.is_retryable())
    }

    /// Whether ffmpeg ran out of time ([`Error::is_timeout`]): worth one
    /// more attempt, not more.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Media(e) if e.is_timeout())
    }
}

fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { op, source }
}

/// Where the source is.
enum Source {
    Local(PathBuf),
    Url(String),
}

impl Source {
    fn parse(source: &str) -> Result<Self, RenderError> {
        if source.is_empty() {
            return Err(RenderError::InvalidRecipe("the source is empty".into()));
        }
        if source.starts_with("https://") || source.starts_with("http://") {
            return Ok(Self::Url(source.to_owned()));
        }
        if let Some((scheme, _)) = source.split_once("://")
            && !scheme.is_empty()
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            return Err(RenderError::InvalidRecipe(format!(
                "unsupported source scheme {scheme:?}: use a local path or an http(s) URL"
            )));
        }
        Ok(Self::Local(PathBuf::from(source)))
    }

    /// As ffmpeg should open it.
    fn input(&self) -> String {
        match self {
            Self::Local(path) => file_arg(path),
            Self::Url(url) => url.clone(),
        }
    }
}

fn validate(recipe: &ClipRecipe, options: &RenderOptions) -> Result<(), RenderError> {
    // The format rule is the core's, the same the API applies to edits.
    videdit_core::recipe::check_version(recipe.version).map_err(|e| RenderError::InvalidRecipe(e.0))?;
    if !PRESETS.contains(&options.x264_preset.as_str()) {
        return Err(RenderError::InvalidOptions(format!("unknown x264 preset {:?}", options.x264_preset)));
    }
    if options.crf > 51 || options.max_video_kbps < 100 || !(32..=512).contains(&options.audio_kbps) {
        return Err(RenderError::InvalidOptions(
            "crf must be 0..=51, max_video_kbps >= 100, audio_kbps 32..=512".into(),
        ));
    }
    if let Some(image) = &options.audiogram_background
        && !image.is_file()
    {
        return Err(RenderError::InvalidOptions(format!("the audiogram background {} is not a file", image.display())));
    }
    let t = options.loudness;
    if !((-40.0..=-5.0).contains(&t.integrated) && (-10.0..=0.0).contains(&t.true_peak)) {
        return Err(RenderError::InvalidOptions("loudness target out of range".into()));
    }
    Ok(())
}

/// Checks that a picture meant as an audiogram background decodes, opened
/// as a render opens it (the file protocol and still-image demuxers only):
/// a worker given a picture it cannot read renders without it rather than
/// failing every audiogram.
///
/// # Errors
/// [`RenderError::Media`] with [`Error::InvalidMedia`] when ffmpeg cannot
/// decode a frame of it (or hits a resource limit doing so); other media
/// errors (a timeout, ffmpeg missing) as they are.
pub async fn check_picture(ffmpeg: &Ffmpeg, path: &Path) -> Result<(), RenderError> {
    let out = path.with_extension("check.raw");
    #[rustfmt::skip]
    let args = [
        "-v", "error", "-xerror",
        "-protocol_whitelist", "file",
        "-format_whitelist", graph::PICTURE_DEMUXERS,
        "-i", &file_arg(path),
        "-frames:v", "1", "-vf", "scale=8:8,format=gray", "-f", "rawvideo", "-y", &file_arg(&out),
    ];
    let ran = ffmpeg
        .run(Run { args: args.map(str::to_owned).to_vec(), media_seconds: 1.0, on_progress: None, cancel: None })
        .await;
    let written = tokio::fs::metadata(&out).await.map(|m| m.len()).unwrap_or(0);
    let _ = tokio::fs::remove_file(&out).await;
    match ran {
        Err(e @ (Error::Failed { .. } | Error::ResourceLimit { .. })) => {
            return Err(Error::InvalidMedia(format!("the picture {} does not decode: {e}", path.display())).into());
        }
        other => other?,
    }
    if written == 64 {
        Ok(())
    } else {
        Err(Error::InvalidMedia(format!("the picture {} has no frame ffmpeg decodes", path.display())).into())
    }
}

/// Renders `recipe` to `outputs`.
///
/// `progress` gets the fraction done, 0 to 1. `cancel` stops the render
/// (ffmpeg is killed and nothing is left behind).
///
/// # Errors
/// [`RenderError::InvalidRecipe`] for an unsupported version or source
/// scheme, or a range past the end of the source; [`RenderError::Media`]
/// for a source that is not media we read (a playlist, a missing file, no
/// video stream), ffmpeg failures and timeouts, cancellation and I/O.
pub async fn render<P>(
    ffmpeg: &Ffmpeg,
    recipe: &ClipRecipe,
    outputs: &RenderOutputs,
    options: &RenderOptions,
    progress: P,
    cancel: &CancellationToken,
) -> Result<Rendered, RenderError>
where
    P: Fn(f64) + Send + Sync,
{
    let started = Instant::now();
    validate(recipe, options)?;
    let source = Source::parse(&recipe.source)?;
    if cancel.is_cancelled() {
        return Err(Error::Cancelled.into());
    }
    let info = match &source {
        Source::Local(path) => probe(ffmpeg, path).await?,
        Source::Url(url) => probe_url(ffmpeg, url).await?,
    };
    let has_audio = info.audio().is_some();
    // No picture but sound (a podcast): the short is an audiogram.
    let audiogram = info.display_size().is_none();
    if audiogram && !has_audio {
        return Err(Error::InvalidMedia("the source has neither pictures nor sound".into()).into());
    }
    let (sw, sh) = info.display_size().unwrap_or_else(|| recipe.aspect.size());
    let fps =
        if audiogram { Fps { num: 30, den: 1 } } else { Fps::for_source(info.video().and_then(|v| v.frame_rate)) };
    let start = recipe.range.start();
    let end = if info.duration > 0.0 { recipe.range.end().min(info.duration) } else { recipe.range.end() };
    let range = TimeRange::new(start, end).ok().filter(|r| r.duration() >= 1.0 / fps.value()).ok_or_else(|| {
        RenderError::InvalidRecipe(format!(
            "the range {start:.3}..{:.3} s starts after the end of the {:.3} s source",
            recipe.range.end(),
            info.duration
        ))
    })?;
    let duration = range.duration();
    let (width, height) = recipe.aspect.size();
    let input = source.input();

    // Faces first, when the framing is still to be chosen: the rendered
    // recipe holds the choice and its camera path.
    let framing_started = Instant::now();
    let framing_share = if recipe.reframe.needs_analysis() && !audiogram { FRAMING_SHARE } else { 0.0 };
    let reframe = if framing_share > 0.0 {
        let framing = crate::reframe::FramingInput {
            input: &input,
            range,
            source: (sw, sh),
            out: (width, height),
            words: &recipe.words,
            requested: &recipe.reframe,
        };
        let on_progress = |f: f64| progress(f * framing_share);
        let (reframe, stats) = crate::reframe::choose_framing(ffmpeg, &framing, &on_progress, cancel).await?;
        tracing::info!(samples = stats.samples, faces = stats.tracks, cuts = stats.cuts, "framing chosen");
        reframe
    } else {
        recipe.reframe.clone()
    };
    let framing_seconds = if framing_share > 0.0 { framing_started.elapsed().as_secs_f64() } else { 0.0 };
    let recipe = &ClipRecipe { reframe, ..recipe.clone() };
    let geometry = Geometry::new((sw, sh), (width, height), &recipe.reframe, start);

    let parent = match outputs.video.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    for path in [&outputs.video, &outputs.thumbnail, &outputs.recipe] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(io("creating the output directory"))?;
        }
    }
    let work = tempfile::Builder::new()
        .prefix(".videdit-render-")
        .tempdir_in(&parent)
        .map_err(io("creating the render's temporary directory"))?;
    let dir = work.path();

    let captions = if recipe.caption_style == CaptionStyle::None || recipe.words.is_empty() {
        None
    } else {
        let font = options.font.clone().or_else(CaptionFont::installed).ok_or(RenderError::NoFont)?;
        let mut c = Captions::new(&recipe.words, range, recipe.aspect, recipe.caption_style, &font);
        if matches!(geometry, Geometry::Split { .. }) {
            // Over the seam between the two people, clear of both faces.
            c.layout.center_y = f64::from(height / 2);
        }
        Some(c).filter(|c| !c.events.is_empty())
    };
    let (script, fonts) = (dir.join("captions.ass"), dir.join("fonts"));
    if let Some(c) = &captions {
        tokio::fs::write(&script, c.to_ass()).await.map_err(io("writing the caption script"))?;
        tokio::fs::create_dir(&fonts).await.map_err(io("creating the fonts directory"))?;
        let name = c.font.file.file_name().ok_or(RenderError::NoFont)?;
        // Only our font in the directory libass is given: nothing else to scan.
        if tokio::fs::symlink(&c.font.file, fonts.join(name)).await.is_err() {
            tokio::fs::copy(&c.font.file, fonts.join(name)).await.map_err(io("copying the caption font"))?;
        }
    }

    let title_file = dir.join("title.txt");
    let title_font = options.font.clone().or_else(CaptionFont::installed);
    let audiogram = if audiogram {
        let titled = !recipe.title.trim().is_empty() && title_font.is_some();
        if titled {
            tokio::fs::write(&title_file, wrap_title(&recipe.title, width))
                .await
                .map_err(io("writing the audiogram's title"))?;
        }
        Some(graph::Audiogram {
            // A picture given in the options wins over the file's own.
            background: match (options.audiogram_background.as_deref(), info.cover_art()) {
                (Some(image), _) => graph::Background::Image(image),
                (None, Some(cover)) => graph::Background::Cover(cover.index),
                (None, None) => graph::Background::Plain,
            },
            title: title_font.as_ref().filter(|_| titled).map(|f| (title_file.as_path(), f.file.as_path())),
            wave: wave_band(recipe.aspect, recipe.caption_style),
        })
    } else {
        None
    };
    let (video, wav, meta) = (dir.join("video.mp4"), dir.join("audio.wav"), dir.join("loudness.txt"));
    let encoder =
        graph::Encoder { preset: options.x264_preset.clone(), crf: options.crf, max_kbps: options.max_video_kbps };
    let main = graph::MainRun {
        input: &input,
        start,
        duration,
        source: (sw, sh),
        out: (width, height),
        fps,
        geometry,
        captions: captions.as_ref().map(|_| (script.as_path(), fonts.as_path())),
        encoder: &encoder,
        video: &video,
        audio: has_audio.then_some((wav.as_path(), meta.as_path())),
        audiogram,
    };
    let on_progress = |p: Progress| {
        progress(framing_share + (p.time / duration).clamp(0.0, 1.0) * (MAIN_SHARE - framing_share));
    };
    ffmpeg
        .run(Run {
            args: main.args(),
            media_seconds: duration,
            on_progress: Some(&on_progress),
            cancel: Some(cancel.clone()),
        })
        .await?;
    progress(MAIN_SHARE);

    let (audio, loudness) = if has_audio {
        let (path, report) = normalise(ffmpeg, dir, &wav, &meta, duration, &options.loudness, cancel).await?;
        (Some(path), Some(report))
    } else {
        (None, None)
    };
    progress(0.95);

    let (final_video, thumbnail, recipe_json) =
        (dir.join("short.mp4"), dir.join("thumbnail.jpg"), dir.join("recipe.json"));
    let mux = graph::MuxRun {
        video: &video,
        audio: audio.as_deref(),
        duration,
        audio_kbps: options.audio_kbps,
        thumbnail_at: thumbnail_time(captions.as_ref(), duration, fps),
        output: &final_video,
        thumbnail: &thumbnail,
    };
    ffmpeg
        .run(Run { args: mux.args(), media_seconds: duration, on_progress: None, cancel: Some(cancel.clone()) })
        .await?;
    let json = serde_json::to_vec_pretty(recipe).map_err(|e| io("serialising the recipe")(std::io::Error::other(e)))?;
    tokio::fs::write(&recipe_json, json).await.map_err(io("writing the recipe"))?;

    let out = probe(ffmpeg, &final_video).await?;
    let (w, h) = out.display_size().ok_or_else(|| Error::InvalidMedia("the render has no video stream".into()))?;
    if cancel.is_cancelled() {
        return Err(Error::Cancelled.into());
    }
    persist(&recipe_json, &outputs.recipe).await?;
    persist(&thumbnail, &outputs.thumbnail).await?;
    persist(&final_video, &outputs.video).await?;
    progress(1.0);
    let elapsed = started.elapsed().as_secs_f64();
    // Not the source: on a server it is a presigned URL, a credential.
    tracing::info!(
        duration,
        elapsed,
        speed = duration / elapsed.max(1e-9),
        events = captions.as_ref().map_or(0, |c| c.events.len()),
        "rendered {}",
        outputs.video.display()
    );
    Ok(Rendered {
        video: outputs.video.clone(),
        thumbnail: outputs.thumbnail.clone(),
        recipe: outputs.recipe.clone(),
        duration: out.duration,
        width: w,
        height: h,
        fps: fps.value(),
        caption_events: captions.as_ref().map_or(0, |c| c.events.len()),
        loudness,
        reframe: recipe.reframe.clone(),
        framing_seconds,
    })
}

/// Brings the WAV to the loudness target; returns the file to encode.
async fn normalise(
    ffmpeg: &Ffmpeg,
    dir: &Path,
    wav: &Path,
    meta: &Path,
    duration: f64,
    target: &LoudnessTarget,
    cancel: &CancellationToken,
) -> Result<(PathBuf, LoudnessReport), RenderError> {
    let silence = Loudness { integrated: -70.0, true_peak: -200.0 };
    let read = |path: PathBuf| async move {
        let text = tokio::fs::read_to_string(&path).await.map_err(io("reading the loudness measurement"))?;
        Ok::<_, Error>(loudness::parse(&text).unwrap_or(silence))
    };
    let source = read(meta.to_path_buf()).await?;
    let (mut gain, limited) = loudness::first_gain(source, target);
    let mut report = LoudnessReport { source, output: source, gain_db: 0.0, limited, passes: 0 };
    if source.is_silent() {
        return Ok((wav.to_path_buf(), report));
    }
    let limit = limited.then(|| loudness::limit(target));
    // Below the ceiling the limiter does nothing, so the source is the output at gain 0.
    let mut history = vec![(0.0, source)];
    loop {
        report.passes += 1;
        let out = dir.join(format!("normalised-{}.wav", report.passes));
        let out_meta = dir.join(format!("loudness-{}.txt", report.passes));
        ffmpeg
            .run(Run {
                args: graph::loudness_args(wav, gain, limit, &out, &out_meta),
                media_seconds: duration,
                on_progress: None,
                cancel: Some(cancel.clone()),
            })
            .await?;
        report.output = read(out_meta).await?;
        report.gain_db = gain;
        history.push((gain, report.output));
        let next = if limited { loudness::next_gain(&history, target) } else { None };
        match next {
            Some(g) if report.passes < loudness::MAX_PASSES => gain = g,
            _ => return Ok((out, report)),
        }
    }
}

/// The thumbnail's time: the middle of the caption event nearest 30 % into
/// the clip (so it shows a caption), else 30 % in.
fn thumbnail_time(captions: Option<&Captions>, duration: f64, fps: Fps) -> f64 {
    let target = duration * 0.3;
    let t = captions
        .and_then(|c| {
            c.events
                .iter()
                .map(|e| (e.start + e.end) / 2.0)
                .min_by(|a, b| (a - target).abs().total_cmp(&(b - target).abs()))
        })
        .unwrap_or(target);
    t.clamp(0.0, (duration - 1.0 / fps.value()).max(0.0))
}

/// Moves a finished file into place: a rename, which is atomic; across
/// file systems a copy to a hidden name beside the destination, then a rename.
async fn persist(from: &Path, to: &Path) -> Result<(), Error> {
    match tokio::fs::rename(from, to).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
            let name = to.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let part = to.with_file_name(format!(".{name}.part"));
            let copied = async {
                tokio::fs::copy(from, &part).await?;
                tokio::fs::rename(&part, to).await
            }
            .await;
            if copied.is_err() {
                let _ = tokio::fs::remove_file(&part).await;
            }
            copied.map_err(io("publishing an output"))
        }
        Err(e) => Err(Error::Io { op: "publishing an output", source: e }),
    }
}

/// The frame at `at` seconds of `video`, as packed RGB (3 bytes a pixel,
/// rows top to bottom), decoded through the gateway.
///
/// # Errors
/// Process and I/O errors.
pub async fn frame_rgb(ffmpeg: &Ffmpeg, video: &Path, at: f64) -> Result<Vec<u8>, Error> {
    let dir = tempfile::tempdir().map_err(io("creating a temporary directory"))?;
    let out = dir.path().join("frame.rgb");
    ffmpeg
        .run(Run { args: graph::frame_args(video, at, &out), media_seconds: 1.0, on_progress: None, cancel: None })
        .await?;
    tokio::fs::read(&out).await.map_err(io("reading the decoded frame"))
}

/// An audiogram's title in lines that fit the frame (drawn at a 28th of
/// the frame's height): at most three, the last cut with an ellipsis.
fn wrap_title(title: &str, width: u32) -> String {
    let per_line = (f64::from(width) / 38.0).floor().max(12.0) as usize;
    let mut lines: Vec<String> = vec![String::new()];
    for word in title.split_whitespace() {
        let line = lines.last_mut().expect("one line");
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > per_line {
            lines.push(String::new());
        }
        let line = lines.last_mut().expect("one line");
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if lines.len() > 3 {
        lines.truncate(3);
        lines[2].push('…');
    }
    lines.join("\n")
}

/// The waveform band of an audiogram: a fifth of the frame's height,
/// ending a little above the caption box.
fn wave_band(aspect: Aspect, style: CaptionStyle) -> (u32, u32) {
    let (_, h) = aspect.size();
    let style = if style == CaptionStyle::None { CaptionStyle::Bold } else { style };
    let [_, caption_top, _, _] = CaptionLayout::new(aspect, style).caption_box();
    let band = (f64::from(h) / 5.0 / 2.0).floor() * 2.0;
    let top = (caption_top - band - f64::from(h) * 0.03).max(f64::from(h) * 0.2);
    ((top / 2.0).floor() as u32 * 2, band as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use videdit_core::recipe::{RECIPE_VERSION, Reframe};

    fn recipe(source: &str) -> ClipRecipe {
        ClipRecipe {
            version: RECIPE_VERSION,
            source: source.into(),
            range: TimeRange::new(1.0, 3.0).unwrap(),
            aspect: Aspect::Vertical,
            reframe: Reframe::Fit,
            caption_style: CaptionStyle::Bold,
            words: vec![],
            title: String::new(),
        }
    }

    #[test]
    fn sources_are_local_paths_or_http_urls() {
        assert!(matches!(Source::parse("/data/talk.mp4"), Ok(Source::Local(_))));
        assert!(matches!(Source::parse("relative/odd:name.mp4"), Ok(Source::Local(_))));
        assert_eq!(Source::parse("-i.mp4").unwrap().input(), "file:-i.mp4");
        assert!(matches!(Source::parse("https://bucket.s3/x.mp4?X-Amz-Signature=1"), Ok(Source::Url(_))));
        for bad in ["", "ftp://host/x.mp4", "s3://bucket/key", "file:///etc/passwd", "concat://a|b"] {
            assert!(matches!(Source::parse(bad), Err(RenderError::InvalidRecipe(_))), "{bad}");
        }
    }

    #[test]
    fn recipes_and_options_are_validated() {
        let ok = RenderOptions::default();
        assert!(validate(&recipe("/a.mp4"), &ok).is_ok());
        let mut future = recipe("/a.mp4");
        future.version = RECIPE_VERSION + 1;
        let err = validate(&future, &ok).unwrap_err();
        assert!(matches!(err, RenderError::InvalidRecipe(_)) && err.code() == ErrorCode::InvalidRequest);
        let bad = RenderOptions { x264_preset: "fast; rm -rf".into(), ..RenderOptions::default() };
        assert!(matches!(validate(&recipe("/a.mp4"), &bad), Err(RenderError::InvalidOptions(_))));
        assert!(!RenderError::Media(Error::Cancelled).is_retryable());
        let slow = RenderError::Media(Error::Timeout {
            program: "ffmpeg".into(),
            what: "timed out",
            seconds: 1.0,
            stderr: vec![],
        });
        assert!(slow.is_timeout() && slow.is_retryable() && slow.code() == ErrorCode::Timeout);
        assert!(!RenderError::NoFont.is_timeout());
    }

    #[test]
    fn outputs_sit_side_by_side() {
        let o = RenderOutputs::in_dir(Path::new("/out"), "short-1");
        assert_eq!(o.video, PathBuf::from("/out/short-1.mp4"));
        assert_eq!(o.thumbnail, PathBuf::from("/out/short-1.jpg"));
        assert_eq!(o.recipe, PathBuf::from("/out/short-1.json"));
    }

    #[test]
    fn thumbnails_show_a_caption() {
        let words = vec![
            videdit_core::transcript::Word { text: "one".into(), start: 0.2, end: 0.6, probability: 1.0 },
            videdit_core::transcript::Word { text: "two".into(), start: 3.0, end: 3.4, probability: 1.0 },
        ];
        let c = Captions::new(
            &words,
            TimeRange::new(0.0, 10.0).unwrap(),
            Aspect::Vertical,
            CaptionStyle::Bold,
            &CaptionFont::inter(),
        );
        let fps = Fps { num: 30, den: 1 };
        assert!((thumbnail_time(Some(&c), 10.0, fps) - 3.45).abs() < 1e-9);
        assert!((thumbnail_time(None, 10.0, fps) - 3.0).abs() < 1e-9);
        assert!(thumbnail_time(None, 0.01, fps) == 0.0);
    }
}
