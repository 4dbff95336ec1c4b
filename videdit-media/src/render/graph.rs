//! Pure parts of rendering: frame geometry, filter graphs and ffmpeg
//! arguments. Nothing here runs anything.

use std::path::Path;

use videdit_core::recipe::{Keyframe, Reframe};

use crate::process::{file_arg, safe_input_args};

/// Output frame rate as a fraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fps {
    /// Numerator.
    pub num: u32,
    /// Denominator.
    pub den: u32,
}

impl Fps {
    /// Frames per second.
    #[must_use]
    pub fn value(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// The output rate for a source rate: the source's own up to 30 fps,
    /// halved until it is (60 → 30, 50 → 25, 59.94 → 29.97) since 1080×1920
    /// at 60 fps cannot encode in real time on two cores and the platforms
    /// show talk at 30; at least 15; 30 when unknown. NTSC rates stay exact.
    #[must_use]
    pub fn for_source(rate: Option<f64>) -> Self {
        let mut f = rate.filter(|f| f.is_finite() && *f > 0.0).unwrap_or(30.0);
        while f > 31.0 {
            f /= 2.0;
        }
        let f = f.max(15.0);
        for base in [24u32, 30, 60] {
            if (f - f64::from(base) * 1000.0 / 1001.0).abs() < 0.01 {
                return Self { num: base * 1000, den: 1001 };
            }
        }
        if (f - f.round()).abs() < 0.01 {
            Self { num: f.round() as u32, den: 1 }
        } else {
            Self { num: (f * 1000.0).round() as u32, den: 1000 }
        }
    }
}

/// A crop that moves: its size, and where its top-left corner is over
/// time (clip seconds, source pixels; `cut`: a jump, not a move).
#[derive(Debug, Clone, PartialEq)]
pub struct Pan {
    /// Crop width.
    pub w: u32,
    /// Crop height.
    pub h: u32,
    /// (time, left, top, cut), in time order.
    pub keys: Vec<(f64, f64, f64, bool)>,
}

impl Pan {
    /// A `w`×`h` crop of a `source`-sized frame centred along `path`
    /// (source seconds, fractions of the source), times made relative to
    /// `start`; corners kept inside the source.
    fn along(path: &[Keyframe], source: (f64, f64), w: u32, h: u32, start: f64) -> Self {
        let (sw, sh) = source;
        let keys = path
            .iter()
            .map(|k| {
                let left = (f64::from(k.x) * sw - f64::from(w) / 2.0).clamp(0.0, (sw - f64::from(w)).max(0.0));
                let top = (f64::from(k.y) * sh - f64::from(h) / 2.0).clamp(0.0, (sh - f64::from(h)).max(0.0));
                ((k.t - start).max(0.0), left, top, k.cut)
            })
            .collect();
        Self { w, h, keys }
    }

    /// The crop filter: `x` and `y` are expressions of `t` (evaluated
    /// each frame) that draw the path with straight lines and steps.
    fn crop(&self, source: (u32, u32)) -> String {
        let axis = |pick: fn(&(f64, f64, f64, bool)) -> f64, max: u32| {
            let Some(first) = self.keys.first() else { return "0".to_owned() };
            let mut e = format!("{:.2}", pick(first));
            for w in self.keys.windows(2) {
                let (a, b) = (&w[0], &w[1]);
                let dv = pick(b) - pick(a);
                if dv.abs() < 0.01 {
                    continue;
                }
                if b.3 || b.0 <= a.0 {
                    e.push_str(&format!("{dv:+.2}*gte(t,{:.4})", b.0));
                } else {
                    let span = b.0 - a.0;
                    e.push_str(&format!("{:+.4}*clip(t-{:.4},0,{span:.4})", dv / span, a.0));
                }
            }
            format!("clip({e},0,{max})")
        };
        let x = axis(|k| k.1, source.0.saturating_sub(self.w));
        let y = axis(|k| k.2, source.1.saturating_sub(self.h));
        format!("crop=w={}:h={}:x={}:y={}", self.w, self.h, filter_value(&x), filter_value(&y))
    }
}

/// How the source frame becomes the output frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Geometry {
    /// Same shape: scale only.
    Scale,
    /// Crop `w`×`h` at (`x`, `y`) of the source, then scale.
    Crop {
        /// Crop width.
        w: u32,
        /// Crop height.
        h: u32,
        /// Left edge.
        x: u32,
        /// Top edge.
        y: u32,
    },
    /// The whole source scaled to `w`×`h` at (`x`, `y`) over a blurred
    /// copy covering the frame, blurred at `bg_w`×`bg_h`.
    Fit {
        /// Foreground width.
        w: u32,
        /// Foreground height.
        h: u32,
        /// Left edge.
        x: u32,
        /// Top edge.
        y: u32,
        /// Width of the small blurred background.
        bg_w: u32,
        /// Height of the small blurred background.
        bg_h: u32,
    },
    /// A crop that follows a camera path, then scaled.
    Track(Pan),
    /// Two crops, each following its path, stacked as the top and bottom
    /// halves of the output (each scaled to `half`).
    Split {
        /// The top half's crop.
        top: Pan,
        /// The bottom half's crop.
        bottom: Pan,
        /// Size of each half.
        half: (u32, u32),
    },
}

/// `v` rounded down to an even size, at least 2.
fn even(v: f64) -> u32 {
    ((v / 2.0).floor() as u32 * 2).max(2)
}

/// `v` rounded down to an even offset (4:2:0 chroma stays aligned).
fn even_floor(v: f64) -> u32 {
    (v.max(0.0) / 2.0).floor() as u32 * 2
}

impl Geometry {
    /// The geometry for a `source` (display size) into `out` with
    /// `reframe`, for a clip starting at `start` source seconds (camera
    /// paths are in source time). `auto` not yet resolved is `fit`; a
    /// `track` or `split` without a path is a centred crop.
    #[must_use]
    pub fn new(source: (u32, u32), out: (u32, u32), reframe: &Reframe, start: f64) -> Self {
        let (sw, sh) = (f64::from(source.0.max(2)), f64::from(source.1.max(2)));
        let (ow, oh) = (f64::from(out.0), f64::from(out.1));
        let source_aspect = sw / sh;
        let out_aspect = ow / oh;
        if (source_aspect / out_aspect - 1.0).abs() < 0.01 {
            return Self::Scale;
        }
        let crop_w = || even(sh * out_aspect).min(even(sw));
        match reframe {
            Reframe::Track { keyframes } if source_aspect > out_aspect && !keyframes.is_empty() => {
                Self::Track(Pan::along(keyframes, (sw, sh), crop_w(), even(sh), start))
            }
            Reframe::Split { zoom, top, bottom } if !top.is_empty() && !bottom.is_empty() => {
                let half = (out.0, even(oh / 2.0));
                let half_aspect = f64::from(half.0) / f64::from(half.1);
                let mut h = even(sh * f64::from(zoom.clamp(0.25, 1.0)));
                let mut w = even(f64::from(h) * half_aspect);
                if f64::from(w) > sw {
                    w = even(sw);
                    h = even(f64::from(w) / half_aspect).min(even(sh));
                }
                Self::Split {
                    top: Pan::along(top, (sw, sh), w, h, start),
                    bottom: Pan::along(bottom, (sw, sh), w, h, start),
                    half,
                }
            }
            Reframe::Crop { .. } | Reframe::Track { .. } | Reframe::Split { .. } => {
                let x = if let Reframe::Crop { x } = reframe { *x } else { None };
                let centre = f64::from(x.unwrap_or(0.5)).clamp(0.0, 1.0);
                if source_aspect > out_aspect {
                    let w = crop_w();
                    let left = (centre * sw - f64::from(w) / 2.0).clamp(0.0, sw - f64::from(w));
                    Self::Crop { w, h: even(sh), x: even_floor(left), y: 0 }
                } else {
                    let h = even(sw / out_aspect).min(even(sh));
                    Self::Crop { w: even(sw), h, x: 0, y: even_floor((sh - f64::from(h)) / 2.0) }
                }
            }
            Reframe::Fit | Reframe::Auto => {
                let (w, h) = if source_aspect > out_aspect {
                    (out.0, even(ow / source_aspect).min(out.1))
                } else {
                    (even(oh * source_aspect).min(out.0), out.1)
                };
                Self::Fit {
                    w,
                    h,
                    x: (out.0 - w) / 4 * 2,
                    y: (out.1 - h) / 4 * 2,
                    bg_w: even(ow / 8.0),
                    bg_h: even(oh / 8.0),
                }
            }
        }
    }
}

/// Escapes a value for a filter option inside a filter graph: first for
/// the option parser (`\ ' :` and blanks), then for the graph parser
/// (`\ ' [ ] , ;`).
#[must_use]
pub fn filter_value(s: &str) -> String {
    let mut option = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if matches!(c, '\\' | '\'' | ':') || c.is_whitespace() {
            option.push('\\');
        }
        option.push(c);
    }
    let mut graph = String::with_capacity(option.len() + 8);
    for c in option.chars() {
        if matches!(c, '\\' | '\'' | '[' | ']' | ',' | ';') {
            graph.push('\\');
        }
        graph.push(c);
    }
    graph
}

/// The `ass` filter for a script and a fonts directory.
fn ass_filter(script: &Path, fonts_dir: &Path) -> String {
    format!(
        "ass=filename={}:fontsdir={}",
        filter_value(&script.display().to_string()),
        filter_value(&fonts_dir.display().to_string())
    )
}

/// The video part of the main graph, from `[0:v]` to `[v]`.
#[must_use]
pub fn video_graph(
    geometry: &Geometry,
    source: (u32, u32),
    out: (u32, u32),
    fps: Fps,
    captions: Option<(&Path, &Path)>,
) -> String {
    let (ow, oh) = out;
    // Everything runs in 8-bit 4:2:0 from the start: the cheapest format for
    // the scalers and libass, and what the encoder wants anyway.
    let head = format!("[0:v]fps={}/{},format=yuv420p", fps.num, fps.den);
    let tail = match captions {
        Some((script, fonts)) => format!(",setsar=1,{}[v]", ass_filter(script, fonts)),
        None => ",setsar=1[v]".to_owned(),
    };
    match geometry {
        Geometry::Track(pan) => format!("{head},{},scale={ow}:{oh}{tail}", pan.crop(source)),
        Geometry::Split { top, bottom, half: (hw, hh) } => format!(
            "{head},split=2[top0][bottom0];[top0]{},scale={hw}:{hh}[top];[bottom0]{},scale={hw}:{hh}[bottom];\
             [top][bottom]vstack=inputs=2{tail}",
            top.crop(source),
            bottom.crop(source)
        ),
        Geometry::Scale => format!("{head},scale={ow}:{oh}{tail}"),
        &Geometry::Crop { w, h, x, y } => format!("{head},crop={w}:{h}:{x}:{y},scale={ow}:{oh}{tail}"),
        &Geometry::Fit { w, h, x, y, bg_w, bg_h } => format!(
            // The background is blurred at an eighth of the size and scaled
            // back up: a wide, smooth blur for a few percent of the cost of
            // blurring the full frame.
            "{head},split=2[bg0][fg0];\
             [bg0]scale={bg_w}:{bg_h}:force_original_aspect_ratio=increase:flags=fast_bilinear,\
             crop={bg_w}:{bg_h},boxblur=8:2,eq=brightness=-0.08,scale={ow}:{oh}:flags=bilinear[bg];\
             [fg0]scale={w}:{h}[fg];[bg][fg]overlay={x}:{y}{tail}"
        ),
    }
}

/// An audiogram: the picture made from the sound of an audio-only source.
#[derive(Debug, Clone, Copy)]
pub struct Audiogram<'a> {
    /// What is blurred behind the waveform.
    pub background: Background<'a>,
    /// A text file with the title (drawn by `drawtext`, never escaped into
    /// the graph), and the font to draw it with.
    pub title: Option<(&'a Path, &'a Path)>,
    /// The top and the height of the waveform band, in output pixels.
    pub wave: (u32, u32),
}

/// An audiogram's background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background<'a> {
    /// A plain dark colour ([`AUDIOGRAM_BACKGROUND`]).
    Plain,
    /// The source's cover art: the stream of this index, blurred.
    Cover(u32),
    /// A picture given in the options, blurred.
    Image(&'a Path),
}

/// The demuxers a picture given as a background is opened with: still
/// images only.
pub const PICTURE_DEMUXERS: &str = "image2,png_pipe,jpeg_pipe,webp_pipe,bmp_pipe";

/// The background colour of an audiogram without cover art.
pub const AUDIOGRAM_BACKGROUND: &str = "0x14202e";

/// The video part of an audiogram's graph, to `[v]`: the background (the
/// cover art of input 1, scaled to cover the frame, blurred and darkened,
/// held for the whole clip; or a plain colour), the sound's waveform drawn
/// across a band of the frame, the title, then the captions.
#[must_use]
pub fn audiogram_graph(a: &Audiogram<'_>, out: (u32, u32), fps: Fps, captions: Option<(&Path, &Path)>) -> String {
    let (ow, oh) = out;
    let rate = format!("{}/{}", fps.num, fps.den);
    let picture = match a.background {
        Background::Plain => None,
        Background::Cover(i) => Some(format!("[1:{i}]")),
        Background::Image(_) => Some("[1:v:0]".to_owned()),
    };
    let background = match picture {
        Some(input) => format!(
            "{input}scale={ow}:{oh}:force_original_aspect_ratio=increase,crop={ow}:{oh},boxblur=20:2,\
             eq=brightness=-0.3,loop=loop=-1:size=1,fps={rate},format=yuv420p[bg]"
        ),
        None => format!("color=c={AUDIOGRAM_BACKGROUND}:s={ow}x{oh}:r={rate},format=yuv420p[bg]"),
    };
    let (wave_y, wave_h) = a.wave;
    // One frame's samples exactly fill the width: a sample a column.
    let per_second = u64::from(ow) * u64::from(fps.num) / u64::from(fps.den.max(1));
    let wave = format!(
        "[0:a:0]aformat=channel_layouts=mono,aresample={per_second},showwaves=s={ow}x{wave_h}:mode=cline:\
         rate={rate}:scale=sqrt:colors=0xf2f5f8:draw=full,format=yuva420p[wave]"
    );
    let title = a.title.map_or_else(String::new, |(text, font)| {
        format!(
            ",drawtext=textfile={}:fontfile={}:expansion=none:fontcolor=white:fontsize={}:line_spacing={}:\
             x=(w-text_w)/2:y={}:borderw=3:bordercolor=black@0.6",
            filter_value(&text.display().to_string()),
            filter_value(&font.display().to_string()),
            oh / 28,
            oh / 96,
            oh / 12
        )
    });
    let tail = match captions {
        Some((script, fonts)) => format!(",setsar=1,{}[v]", ass_filter(script, fonts)),
        None => ",setsar=1[v]".to_owned(),
    };
    format!("{background};{wave};[bg][wave]overlay=0:{wave_y}:shortest=1,format=yuv420p{title}{tail}")
}

/// The ebur128 measurement feeding the metadata of every audio frame to
/// `meta` (a file), where [`super::loudness::parse`] reads the last values.
fn measure_filter(meta: &Path) -> String {
    format!("ebur128=peak=true:metadata=1:framelog=verbose,ametadata=mode=print:file={}", filter_value(&file_arg(meta)))
}

/// The audio part of the main graph, from `[0:a:0]` to `[a]`: 48 kHz
/// stereo, padded with silence to the full duration, measured.
#[must_use]
pub fn audio_graph(duration: f64, meta: &Path) -> String {
    format!(
        "[0:a:0]aresample=48000,aformat=sample_rates=48000:channel_layouts=stereo,apad=whole_dur={duration:.6},{}[a]",
        measure_filter(meta)
    )
}

/// Encoder settings for the video.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoder {
    /// x264 preset.
    pub preset: String,
    /// x264 constant rate factor.
    pub crf: u8,
    /// Peak bit rate in kbit/s (VBV).
    pub max_kbps: u32,
}

/// Everything the main run needs.
pub struct MainRun<'a> {
    /// Source as ffmpeg should open it (`file:` path or URL).
    pub input: &'a str,
    /// Clip start in source seconds.
    pub start: f64,
    /// Clip duration.
    pub duration: f64,
    /// Output size.
    pub out: (u32, u32),
    /// Output frame rate.
    pub fps: Fps,
    /// The source's display size.
    pub source: (u32, u32),
    /// Reframing.
    pub geometry: Geometry,
    /// Caption script and fonts directory.
    pub captions: Option<(&'a Path, &'a Path)>,
    /// Encoder settings.
    pub encoder: &'a Encoder,
    /// Video-only MP4 to write.
    pub video: &'a Path,
    /// Audio (WAV, 32-bit float) and loudness metadata files, when the source has audio.
    pub audio: Option<(&'a Path, &'a Path)>,
    /// An audio-only source: the picture is made from its sound.
    pub audiogram: Option<Audiogram<'a>>,
}

impl MainRun<'_> {
    /// ffmpeg arguments: one read of the source's range (input-side `-ss`
    /// for a fast seek that still cuts on the exact frame, `-t` so only the
    /// range is read: the range is within the probed duration, so this is
    /// also the bound on a source holding more than it declares), the
    /// video encoded, the audio kept as float WAV and measured.
    #[must_use]
    pub fn args(&self) -> Vec<String> {
        let mut graph = match &self.audiogram {
            Some(a) => audiogram_graph(a, self.out, self.fps, self.captions),
            None => video_graph(&self.geometry, self.source, self.out, self.fps, self.captions),
        };
        if let Some((_, meta)) = self.audio {
            graph.push(';');
            graph.push_str(&audio_graph(self.duration, meta));
        }
        let gop = (self.fps.value() * 2.0).round() as u32;
        let mut args: Vec<String> =
            vec!["-y".into(), "-ss".into(), format!("{:.6}", self.start), "-t".into(), format!("{:.6}", self.duration)];
        args.extend(safe_input_args(self.input));
        match self.audiogram.map(|a| a.background) {
            Some(Background::Cover(_)) => {
                // The cover art again, unseeked: a picture at time 0 that the
                // seek of the first input would skip. Only its start is read.
                args.extend(["-t".to_owned(), "0.1".to_owned()]);
                args.extend(safe_input_args(self.input));
            }
            Some(Background::Image(path)) => {
                // A local picture: only the file protocol and the still
                // image demuxers.
                #[rustfmt::skip]
                let image = [
                    "-t", "0.1",
                    "-protocol_whitelist", "file",
                    "-format_whitelist", PICTURE_DEMUXERS,
                    "-i", &file_arg(path),
                ];
                args.extend(image.map(str::to_owned));
            }
            _ => {}
        }
        // An option and its value per line.
        #[rustfmt::skip]
        let video = [
            "-filter_complex", &graph,
            "-map", "[v]",
            "-c:v", "libx264",
            "-preset", &self.encoder.preset,
            "-crf", &self.encoder.crf.to_string(),
            "-maxrate", &format!("{}k", self.encoder.max_kbps),
            "-bufsize", &format!("{}k", self.encoder.max_kbps * 2),
            "-profile:v", "high",
            "-pix_fmt", "yuv420p",
            "-g", &gop.to_string(),
            "-map_metadata", "-1",
            "-map_chapters", "-1",
            "-f", "mp4", &file_arg(self.video),
        ];
        args.extend(video.map(str::to_owned));
        if let Some((wav, _)) = self.audio {
            args.extend(["-map", "[a]", "-c:a", "pcm_f32le", "-f", "wav", &file_arg(wav)].map(str::to_owned));
        }
        args
    }
}

/// ffmpeg arguments for one loudness pass: `gain_db` of gain, then, when
/// `limit` is given (linear), a lookahead limiter at 4× oversampling so
/// that it holds true peaks, not just sample peaks; the result measured.
#[must_use]
pub fn loudness_args(input: &Path, gain_db: f64, limit: Option<f64>, output: &Path, meta: &Path) -> Vec<String> {
    let mut chain = format!("volume={gain_db:.3}dB");
    if let Some(limit) = limit {
        chain.push_str(&format!(
            ",aresample=192000,alimiter=limit={:.5}:attack=5:release=80:level=0:latency=1,aresample=48000",
            limit.clamp(0.0625, 1.0)
        ));
    }
    chain.push(',');
    chain.push_str(&measure_filter(meta));
    ["-y", "-i", &file_arg(input), "-af", &chain, "-c:a", "pcm_f32le", "-f", "wav", &file_arg(output)]
        .map(str::to_owned)
        .to_vec()
}

/// Everything the final run needs.
pub struct MuxRun<'a> {
    /// The encoded video.
    pub video: &'a Path,
    /// The normalised audio, or `None` for silence.
    pub audio: Option<&'a Path>,
    /// Clip duration (for the silence).
    pub duration: f64,
    /// AAC bit rate in kbit/s.
    pub audio_kbps: u32,
    /// When the thumbnail is taken, in clip seconds.
    pub thumbnail_at: f64,
    /// The MP4 to write.
    pub output: &'a Path,
    /// The JPEG to write.
    pub thumbnail: &'a Path,
}

impl MuxRun<'_> {
    /// ffmpeg arguments: the video copied, the audio encoded to AAC,
    /// `+faststart` (the index first, so players start before the whole
    /// file arrives); a JPEG of the frame at `thumbnail_at`.
    #[must_use]
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["-y", "-i", &file_arg(self.video)].map(str::to_owned).to_vec();
        match self.audio {
            Some(audio) => args.extend(["-i".to_owned(), file_arg(audio)]),
            None => args.extend(
                ["-f", "lavfi", "-t", &format!("{:.6}", self.duration), "-i", "anullsrc=r=48000:cl=stereo"]
                    .map(str::to_owned),
            ),
        }
        // An option and its value per line; an output per paragraph.
        #[rustfmt::skip]
        let rest = [
            // Only a moment of the video is decoded for the thumbnail
            // (without -t ffmpeg would decode the rest for nothing).
            "-ss", &format!("{:.6}", self.thumbnail_at),
            "-t", "0.5",
            "-i", &file_arg(self.video),

            "-map", "0:v:0",
            "-map", "1:a:0",
            "-c:v", "copy",
            "-c:a", "aac",
            "-b:a", &format!("{}k", self.audio_kbps),
            "-ar", "48000",
            "-ac", "2",
            "-map_metadata", "-1",
            "-movflags", "+faststart",
            "-f", "mp4", &file_arg(self.output),

            "-map", "2:v:0",
            "-frames:v", "1",
            "-q:v", "3",
            "-f", "image2",
            "-update", "1", &file_arg(self.thumbnail),
        ];
        args.extend(rest.map(str::to_owned));
        args
    }
}

/// ffmpeg arguments that decode the frame at `at` seconds of `video` to
/// raw RGB (`width`×`height`×3 bytes) in `output`; used by tests and tools
/// to look at rendered pixels.
#[must_use]
pub fn frame_args(video: &Path, at: f64, output: &Path) -> Vec<String> {
    let at = format!("{at:.6}");
    let args = ["-y", "-ss", &at, "-i", &file_arg(video), "-frames:v", "1", "-pix_fmt", "rgb24", "-f", "rawvideo"];
    let mut out: Vec<String> = args.map(str::to_owned).to_vec();
    out.push(file_arg(output));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn frame_rates_are_capped_by_halving_and_keep_ntsc_exact() {
        assert_eq!(Fps::for_source(Some(30.0)), Fps { num: 30, den: 1 });
        assert_eq!(Fps::for_source(Some(60.0)), Fps { num: 30, den: 1 });
        assert_eq!(Fps::for_source(Some(50.0)), Fps { num: 25, den: 1 });
        assert_eq!(Fps::for_source(Some(59.94006)), Fps { num: 30000, den: 1001 });
        assert_eq!(Fps::for_source(Some(23.976)), Fps { num: 24000, den: 1001 });
        assert_eq!(Fps::for_source(Some(120.0)), Fps { num: 30, den: 1 });
        assert_eq!(Fps::for_source(Some(5.0)), Fps { num: 15, den: 1 });
        assert_eq!(Fps::for_source(None), Fps { num: 30, den: 1 });
        assert_eq!(Fps::for_source(Some(f64::NAN)), Fps { num: 30, den: 1 });
        assert_eq!(Fps::for_source(Some(27.5)), Fps { num: 27500, den: 1000 });
    }

    #[test]
    fn crop_keeps_the_output_shape_inside_the_source() {
        let v = (1080, 1920);
        assert_eq!(
            Geometry::new((1280, 720), v, &Reframe::Crop { x: None }, 0.0),
            Geometry::Crop { w: 404, h: 720, x: 438, y: 0 }
        );
        assert_eq!(
            Geometry::new((1920, 1080), v, &Reframe::Crop { x: Some(0.0) }, 0.0),
            Geometry::Crop { w: 606, h: 1080, x: 0, y: 0 }
        );
        assert_eq!(
            Geometry::new((1920, 1080), v, &Reframe::Crop { x: Some(1.0) }, 0.0),
            Geometry::Crop { w: 606, h: 1080, x: 1314, y: 0 }
        );
        // A tall source into a wide frame crops the middle band.
        assert_eq!(
            Geometry::new((1080, 1920), (1920, 1080), &Reframe::Crop { x: None }, 0.0),
            Geometry::Crop { w: 1080, h: 606, x: 0, y: 656 }
        );
        assert_eq!(Geometry::new((1920, 1080), (1920, 1080), &Reframe::Crop { x: Some(0.1) }, 0.0), Geometry::Scale);
        assert_eq!(Geometry::new((1280, 720), (1920, 1080), &Reframe::Fit, 0.0), Geometry::Scale);
        for source in [(1280, 720), (1920, 1080), (640, 480), (1080, 1920), (3840, 1600), (7, 5)] {
            for out in [(1080, 1920), (1080, 1080), (1080, 1350), (1920, 1080)] {
                for x in [None, Some(0.0), Some(0.33), Some(1.0), Some(-4.0)] {
                    if let Geometry::Crop { w, h, x, y } = Geometry::new(source, out, &Reframe::Crop { x }, 0.0) {
                        assert!(x + w <= source.0 && y + h <= source.1, "{source:?} {out:?}");
                        assert!(w % 2 == 0 && h % 2 == 0 && x % 2 == 0 && y % 2 == 0);
                        let ratio = f64::from(w) / f64::from(h) / (f64::from(out.0) / f64::from(out.1));
                        assert!((ratio - 1.0).abs() < 0.02 || source.0 < 20, "{source:?} {out:?} {ratio}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_camera_path_becomes_crop_expressions_of_time() {
        let k = |t: f64, x: f32, cut: bool| Keyframe { t, x, y: 0.5, cut };
        let track = Reframe::Track { keyframes: vec![k(10.0, 0.25, false), k(12.0, 0.5, false), k(15.0, 0.75, true)] };
        let g = Geometry::new((1280, 720), (1080, 1920), &track, 10.0);
        let Geometry::Track(pan) = &g else { panic!("{g:?}") };
        assert_eq!((pan.w, pan.h), (404, 720));
        // Left edges: 0.25·1280 − 202 = 118, then 438, then 758 after the cut at 5 s.
        assert_eq!(pan.keys, vec![(0.0, 118.0, 0.0, false), (2.0, 438.0, 0.0, false), (5.0, 758.0, 0.0, true)]);
        let x = "clip(118.00+160.0000*clip(t-0.0000,0,2.0000)+320.00*gte(t,5.0000),0,876)";
        assert_eq!(
            pan.crop((1280, 720)),
            format!("crop=w=404:h=720:x={}:y={}", filter_value(x), filter_value("clip(0.00,0,0)"))
        );
        let graph = video_graph(&g, (1280, 720), (1080, 1920), Fps { num: 30, den: 1 }, None);
        assert!(
            graph.starts_with("[0:v]fps=30/1,format=yuv420p,crop=w=404:h=720:x=clip(118.00+160.0000*clip(t-0.0000\\,0"),
            "{graph}"
        );
        assert!(graph.ends_with(",scale=1080:1920,setsar=1[v]"), "{graph}");
        let split = Reframe::Split { zoom: 0.5, top: vec![k(0.0, 0.25, false)], bottom: vec![k(0.0, 0.75, false)] };
        let g = Geometry::new((1920, 1080), (1080, 1920), &split, 0.0);
        let Geometry::Split { top, bottom, half } = &g else { panic!("{g:?}") };
        assert_eq!(*half, (1080, 960));
        assert_eq!((top.w, top.h), (606, 540));
        assert_eq!(top.keys[0].1, 480.0 - 303.0);
        assert_eq!(bottom.keys[0].1, 1440.0 - 303.0);
        let graph = video_graph(&g, (1920, 1080), (1080, 1920), Fps { num: 30, den: 1 }, None);
        assert!(graph.contains("scale=1080:960[top]") && graph.contains("[top][bottom]vstack=inputs=2,setsar=1[v]"));
        // Without a path: a centred crop; auto unresolved: fit.
        assert!(matches!(
            Geometry::new((1280, 720), (1080, 1920), &Reframe::Track { keyframes: vec![] }, 0.0),
            Geometry::Crop { x: 438, .. }
        ));
        assert!(matches!(Geometry::new((1280, 720), (1080, 1920), &Reframe::Auto, 0.0), Geometry::Fit { .. }));
    }

    #[test]
    fn fit_centres_the_whole_source_over_a_small_blurred_copy() {
        assert_eq!(
            Geometry::new((1920, 1080), (1080, 1920), &Reframe::Fit, 0.0),
            Geometry::Fit { w: 1080, h: 606, x: 0, y: 656, bg_w: 134, bg_h: 240 }
        );
        assert_eq!(
            Geometry::new((1080, 1920), (1080, 1080), &Reframe::Fit, 0.0),
            Geometry::Fit { w: 606, h: 1080, x: 236, y: 0, bg_w: 134, bg_h: 134 }
        );
    }

    #[test]
    fn filter_values_survive_both_parsers() {
        assert_eq!(filter_value("/tmp/a.ass"), "/tmp/a.ass");
        assert_eq!(filter_value("file:/x y"), "file\\\\:/x\\\\ y");
        assert_eq!(filter_value("it's [a],b;c"), "it\\\\\\'s\\\\ \\[a\\]\\,b\\;c");
    }

    #[test]
    fn the_main_run_seeks_on_the_input_and_maps_both_outputs() {
        let encoder = Encoder { preset: "veryfast".into(), crf: 21, max_kbps: 12000 };
        let (video, wav, meta, ass, fonts) = (
            PathBuf::from("/w/v.mp4"),
            PathBuf::from("/w/a.wav"),
            PathBuf::from("/w/m.txt"),
            PathBuf::from("/w/c.ass"),
            PathBuf::from("/w/fonts"),
        );
        let run = MainRun {
            input: "file:/src/talk.mp4",
            start: 12.5,
            duration: 30.0,
            out: (1080, 1920),
            fps: Fps { num: 30, den: 1 },
            source: (1280, 720),
            geometry: Geometry::new((1280, 720), (1080, 1920), &Reframe::Fit, 0.0),
            captions: Some((&ass, &fonts)),
            encoder: &encoder,
            video: &video,
            audio: Some((&wav, &meta)),
            audiogram: None,
        };
        let args = run.args();
        let i = args.iter().position(|a| a == "-i").unwrap();
        assert_eq!(&args[..5], ["-y", "-ss", "12.500000", "-t", "30.000000"]);
        assert!(args[..i].contains(&"-protocol_whitelist".to_owned()));
        assert_eq!(args[i + 1], "file:/src/talk.mp4");
        let graph = &args[args.iter().position(|a| a == "-filter_complex").unwrap() + 1];
        assert!(graph.starts_with("[0:v]fps=30/1,format=yuv420p,split=2[bg0][fg0];"), "{graph}");
        assert!(graph.contains("overlay=0:656,setsar=1,ass=filename=/w/c.ass:fontsdir=/w/fonts[v];"), "{graph}");
        assert!(graph.contains("apad=whole_dur=30.000000,ebur128=peak=true"), "{graph}");
        assert!(args.ends_with(&["-map", "[a]", "-c:a", "pcm_f32le", "-f", "wav", "file:/w/a.wav"].map(str::to_owned)));
        assert!(args.windows(2).any(|w| w == ["-g", "60"]));
    }

    #[test]
    fn loudness_passes_limit_only_when_asked() {
        let (a, b, m) = (PathBuf::from("/a.wav"), PathBuf::from("/b.wav"), PathBuf::from("/m"));
        let linear = loudness_args(&a, 3.25, None, &b, &m);
        assert!(linear[4].starts_with("volume=3.250dB,ebur128"), "{}", linear[4]);
        let limited = loudness_args(&a, 9.0, Some(0.84), &b, &m);
        assert!(limited[4].contains("alimiter=limit=0.84000:attack=5:release=80:level=0:latency=1"));
    }
}
