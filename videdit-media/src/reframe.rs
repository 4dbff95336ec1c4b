//! Face-aware framing: where the crop of a wide source goes, and when two
//! people share the short as a split screen.
//!
//! The clip's range is decoded once at five frames a second, scaled to
//! 384 pixels wide and grey (the decoder skips its loop filter: the faces
//! do not need it and decoding is most of the cost). Faces are found with
//! SeetaFace's frontal cascade (the `rustface` crate; its model ships in
//! the crate and is compiled into ours) on two threads, and each face's
//! mouth motion is measured against the previous sample after aligning
//! the upper face, so a moving head is not mistaken for speech. Then
//! [`path`] follows the faces, tells who speaks from mouth motion while
//! words are spoken (the transcript's timing), and makes the camera path.
//!
//! The result is a [`Reframe`] with keyframes, written into the rendered
//! recipe: a render is reproducible, and a person can edit the path.

pub mod path;

use std::sync::{Arc, OnceLock, mpsc};

use tokio_util::sync::CancellationToken;
use videdit_core::recipe::Reframe;
use videdit_core::time_range::TimeRange;
use videdit_core::transcript::Word;

pub use path::{Face, FramingStats, PathOptions, Sample, Shapes};

use crate::error::{Error, Result};
use crate::process::{Ffmpeg, safe_input_args};

/// Seconds between sampled frames.
pub const SAMPLE_STEP: f64 = 0.2;
/// Width of the frames faces are looked for in.
pub const ANALYSIS_WIDTH: u32 = 384;
/// Smallest face looked for, in analysis pixels (about a tenth of a 16:9
/// frame's height).
const MIN_FACE: u32 = 20;

static MODEL: OnceLock<rustface::Model> = OnceLock::new();

/// SeetaFace's frontal face model, read once (it ships in the `rustface`
/// crate; `build.rs` finds it).
fn model() -> Result<rustface::Model> {
    if let Some(m) = MODEL.get() {
        return Ok(m.clone());
    }
    let bytes: &[u8] = include_bytes!(concat!(env!("VIDEDIT_RUSTFACE_DIR"), "/model/seeta_fd_frontal_v1.0.bin"));
    let m = rustface::read_model(bytes).map_err(|source| Error::Io { op: "reading the face model", source })?;
    Ok(MODEL.get_or_init(|| m).clone())
}

/// A face detector set up for sampled frames.
pub struct Detector(Box<dyn rustface::Detector>);

impl Detector {
    /// A detector for faces of at least `min_face` pixels.
    ///
    /// # Errors
    /// The built-in model does not read (it always does).
    pub fn new(min_face: u32) -> Result<Self> {
        Ok(Self::with_model(model()?, min_face))
    }

    fn with_model(model: rustface::Model, min_face: u32) -> Self {
        let mut d = rustface::create_detector_with_model(model);
        d.set_min_face_size(min_face.max(20));
        d.set_score_thresh(2.0);
        d.set_pyramid_scale_factor(0.8);
        d.set_slide_window_step(4, 4);
        Self(d)
    }

    /// The faces in a grey `width`×`height` image: (x, y, side) in pixels
    /// of the box's top-left corner and side, and the score; best first.
    #[must_use]
    pub fn detect(&mut self, grey: &[u8], width: u32, height: u32) -> Vec<(i32, i32, u32, f64)> {
        if width < 20 || height < 20 || grey.len() < (width * height) as usize {
            return Vec::new();
        }
        let mut faces: Vec<_> = self
            .0
            .detect(&rustface::ImageData::new(grey, width, height))
            .into_iter()
            .map(|f| {
                let b = f.bbox();
                (b.x(), b.y(), b.width().max(b.height()), f.score())
            })
            .collect();
        faces.sort_by(|a, b| b.3.total_cmp(&a.3));
        faces
    }
}

/// Mean absolute difference between the `region` (x0, y0, x1, y1 in
/// pixels) of `a` and the same region of `b` shifted by (dx, dy).
fn region_diff(a: &[u8], b: &[u8], w: usize, h: usize, region: (i32, i32, i32, i32), dx: i32, dy: i32) -> f64 {
    let (x0, y0, x1, y1) = region;
    let (mut sum, mut count) = (0u64, 0u64);
    for y in y0.max(0)..y1.min(h as i32) {
        let by = y + dy;
        if by < 0 || by >= h as i32 {
            continue;
        }
        for x in x0.max(0)..x1.min(w as i32) {
            let bx = x + dx;
            if bx < 0 || bx >= w as i32 {
                continue;
            }
            let (pa, pb) = (a[y as usize * w + x as usize], b[by as usize * w + bx as usize]);
            sum += u64::from(pa.abs_diff(pb));
            count += 1;
        }
    }
    if count == 0 { 0.0 } else { sum as f64 / count as f64 }
}

/// How much a face's mouth moved between `prev` and `cur`: the change of
/// the mouth region less the change of the upper face, after aligning the
/// upper face (so that a head that moves, or light that changes, is not
/// taken for speech).
#[must_use]
pub fn mouth_motion(prev: &[u8], cur: &[u8], w: usize, h: usize, face: (i32, i32, u32)) -> f64 {
    let (x, y, side) = (face.0, face.1, face.2 as i32);
    let at = |f: f64| (f64::from(side) * f).round() as i32;
    let upper = (x + at(0.15), y + at(0.15), x + at(0.85), y + at(0.45));
    let mouth = (x + at(0.25), y + at(0.68), x + at(0.75), y + at(0.95));
    let reach = (side / 12).clamp(1, 6);
    let mut best = (f64::MAX, 0, 0);
    for dy in -reach / 2..=reach / 2 {
        for dx in -reach..=reach {
            let d = region_diff(cur, prev, w, h, upper, dx, dy);
            if d < best.0 {
                best = (d, dx, dy);
            }
        }
    }
    (region_diff(cur, prev, w, h, mouth, best.1, best.2) - best.0).max(0.0)
}

/// The ffmpeg arguments that decode `duration` seconds from `start` of
/// `input` to grey `width`×`height` frames every [`SAMPLE_STEP`] on stdout.
#[must_use]
pub fn sample_args(input: &str, start: f64, duration: f64, width: u32, height: u32) -> Vec<String> {
    let mut args: Vec<String> =
        ["-ss", &format!("{start:.6}"), "-t", &format!("{duration:.6}")].map(str::to_owned).to_vec();
    // Deblocking is a large part of decoding and faces at 384 px do not need it.
    args.extend(["-skip_loop_filter".to_owned(), "all".to_owned()]);
    args.extend(safe_input_args(input));
    let rate = (1.0 / SAMPLE_STEP).round() as u32;
    #[rustfmt::skip]
    let rest = [
        "-map", "0:v:0",
        "-an", "-sn", "-dn",
        "-vf", &format!("fps={rate},scale={width}:{height}:flags=bilinear,format=gray"),
        "-f", "rawvideo",
        "pipe:1",
    ];
    args.extend(rest.map(str::to_owned));
    args
}

/// The analysis size for a `source` display size: [`ANALYSIS_WIDTH`] wide
/// (never wider than the source), even.
#[must_use]
pub fn analysis_size(source: (u32, u32)) -> (u32, u32) {
    let (sw, sh) = (f64::from(source.0.max(2)), f64::from(source.1.max(2)));
    let w = f64::from(ANALYSIS_WIDTH).min(sw);
    let h = (w * sh / sw / 2.0).round().max(12.0) * 2.0;
    ((w / 2.0).round() as u32 * 2, h as u32)
}

/// Samples the faces of `duration` seconds from `start` of `input`
/// (display size `source`): one [`Sample`] every [`SAMPLE_STEP`], times
/// in source seconds. `progress` gets the fraction read.
///
/// # Errors
/// ffmpeg failures, timeouts and cancellation.
pub async fn sample_faces(
    ffmpeg: &Ffmpeg,
    input: &str,
    start: f64,
    duration: f64,
    source: (u32, u32),
    progress: &(dyn Fn(f64) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<Vec<Sample>> {
    let (w, h) = analysis_size(source);
    let frame_len = (w * h) as usize;
    let mut run = ffmpeg.spawn_stdout(&sample_args(input, start, duration, w, h), duration, cancel.clone())?;
    // Two detector threads, each frame sent with the one before it.
    type Job = (usize, Arc<Vec<u8>>, Option<Arc<Vec<u8>>>);
    let (done_tx, done_rx) = mpsc::channel::<(usize, Vec<(Face, Option<f64>)>)>();
    let mut senders = Vec::new();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(4);
        let done = done_tx.clone();
        let model = model()?;
        senders.push(tx);
        workers.push(std::thread::spawn(move || {
            let mut detector = Detector::with_model(model, MIN_FACE);
            while let Some((i, cur, prev)) = rx.blocking_recv() {
                let faces = detector
                    .detect(&cur, w, h)
                    .into_iter()
                    .map(|(x, y, side, score)| {
                        let face = Face {
                            x: (f64::from(x) + f64::from(side) / 2.0) / f64::from(w),
                            y: (f64::from(y) + f64::from(side) / 2.0) / f64::from(h),
                            size: f64::from(side) / f64::from(h),
                            score,
                        };
                        let motion = prev.as_ref().map(|p| mouth_motion(p, &cur, w as usize, h as usize, (x, y, side)));
                        (face, motion)
                    })
                    .collect();
                if done.send((i, faces)).is_err() {
                    break;
                }
            }
        }));
    }
    drop(done_tx);
    let mut buf = vec![0u8; frame_len];
    let (mut filled, mut index) = (0usize, 0usize);
    let mut prev: Option<Arc<Vec<u8>>> = None;
    let result: Result<()> = async {
        loop {
            let n = run.read(&mut buf[filled..]).await?;
            if n == 0 {
                return Ok(());
            }
            filled += n;
            if filled == frame_len {
                let cur = Arc::new(std::mem::replace(&mut buf, vec![0u8; frame_len]));
                let job = (index, cur.clone(), prev.replace(cur));
                // A full worker queue waits without blocking the runtime.
                senders[index % senders.len()].send(job).await.map_err(|_| Error::Io {
                    op: "detecting faces",
                    source: std::io::Error::other("a detector stopped"),
                })?;
                index += 1;
                filled = 0;
                progress((index as f64 * SAMPLE_STEP / duration.max(1e-3)).min(1.0));
            }
        }
    }
    .await;
    drop(senders);
    let joined = tokio::task::spawn_blocking(move || {
        for w in workers {
            let _ = w.join();
        }
        done_rx.into_iter().collect::<Vec<_>>()
    })
    .await
    .map_err(|e| Error::Io { op: "detecting faces", source: std::io::Error::other(e) })?;
    result?;
    let mut faces = joined;
    faces.sort_by_key(|(i, _)| *i);
    Ok(faces.into_iter().map(|(i, faces)| Sample { t: start + i as f64 * SAMPLE_STEP, faces }).collect())
}

/// What the framing needs to know of one short.
pub struct FramingInput<'a> {
    /// The source as ffmpeg opens it.
    pub input: &'a str,
    /// The short's range, source seconds.
    pub range: TimeRange,
    /// The source's display size.
    pub source: (u32, u32),
    /// The output size.
    pub out: (u32, u32),
    /// The caption words (their times tell when someone speaks).
    pub words: &'a [Word],
    /// What the recipe asks for.
    pub requested: &'a Reframe,
}

/// The framing a recipe's `auto`, or its `track` or `split` without a
/// path, becomes for this short: faces sampled over its range, then
/// [`path::framing`]. A source no wider than the output is fitted.
///
/// # Errors
/// ffmpeg failures, timeouts and cancellation.
pub async fn choose_framing(
    ffmpeg: &Ffmpeg,
    f: &FramingInput<'_>,
    progress: &(dyn Fn(f64) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<(Reframe, FramingStats)> {
    let source_aspect = f64::from(f.source.0.max(1)) / f64::from(f.source.1.max(1));
    let out_aspect = f64::from(f.out.0.max(1)) / f64::from(f.out.1.max(1));
    if source_aspect <= out_aspect * 1.01 {
        return Ok((Reframe::Fit, FramingStats::default()));
    }
    let samples =
        sample_faces(ffmpeg, f.input, f.range.start(), f.range.duration(), f.source, progress, cancel).await?;
    let words: Vec<(f64, f64)> = f.words.iter().map(|w| (w.start, w.end)).collect();
    let shapes = Shapes { source_aspect, out_aspect };
    Ok(path::framing(f.requested, &samples, SAMPLE_STEP, &words, shapes, &PathOptions::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analysis_frames_are_small_and_keep_the_shape() {
        assert_eq!(analysis_size((1920, 1080)), (384, 216));
        assert_eq!(analysis_size((1280, 720)), (384, 216));
        assert_eq!(analysis_size((320, 240)), (320, 240));
        let args = sample_args("file:a.mp4", 1.5, 30.0, 384, 216);
        assert!(args.join(" ").contains("fps=5,scale=384:216:flags=bilinear,format=gray"));
    }

    #[test]
    fn mouth_motion_ignores_a_moving_head_and_sees_a_moving_mouth() {
        let (w, h) = (120usize, 120usize);
        // A textured "face" (a deterministic pattern) at an offset.
        let draw = |ox: usize, mouth: u8| {
            let mut img = vec![128u8; w * h];
            for y in 0..60 {
                for x in 0..60 {
                    img[(y + 30) * w + x + ox] = ((x * 7 + y * 13) % 97 + 60) as u8;
                }
            }
            for y in 44..56 {
                for x in 18..42 {
                    img[(y + 30) * w + x + ox] = mouth;
                }
            }
            img
        };
        let face = (30, 30, 60);
        let still = mouth_motion(&draw(30, 40), &draw(30, 40), w, h, face);
        let moved = mouth_motion(&draw(28, 40), &draw(30, 40), w, h, face);
        let talking = mouth_motion(&draw(30, 40), &draw(30, 200), w, h, face);
        assert!(still < 0.01, "{still}");
        assert!(moved < 2.0, "a head moving 2 px is not speech: {moved}");
        assert!(talking > 20.0, "{talking}");
    }
}
