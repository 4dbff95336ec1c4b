//! Videos of real faces for the framing's tests and bench: faces cropped
//! from the group photograph that ships in the `rustface` crate, moved
//! over a 16:9 frame, each speaking in its own espeak-ng voice with its
//! mouth opened by the speech's loudness (so that a motion-based choice
//! of speaker has a real signal to find).

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use super::talks::{Talk, TalkSpec, make_talk};
use crate::error::{Error, Result};
use crate::process::{Ffmpeg, Run, file_arg};

/// The `rustface` crate's folder (its model and its `test.png`).
#[must_use]
pub fn rustface_dir() -> &'static Path {
    Path::new(env!("VIDEDIT_RUSTFACE_DIR"))
}

/// Faces of `test.png` (x, y, side of the detector's box, in its pixels)
/// that the detector finds with high scores.
pub const PHOTO_FACES: [(u32, u32, u32); 4] = [(1162, 247, 65), (1425, 218, 52), (1263, 207, 59), (657, 257, 64)];

/// One person of a generated video.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// Which of [`PHOTO_FACES`].
    pub face: usize,
    /// Where the face's centre is: (time, x, y) waypoints in fractions of
    /// the frame, joined by straight lines.
    pub path: Vec<(f64, f64, f64)>,
}

impl Person {
    /// The face's centre at `t`.
    #[must_use]
    pub fn at(&self, t: f64) -> (f64, f64) {
        let p = &self.path;
        let Some(first) = p.first() else { return (0.5, 0.5) };
        if t <= first.0 {
            return (first.1, first.2);
        }
        for w in p.windows(2) {
            if t <= w[1].0 {
                let f = (t - w[0].0) / (w[1].0 - w[0].0).max(1e-9);
                return (w[0].1 + (w[1].1 - w[0].1) * f, w[0].2 + (w[1].2 - w[0].2) * f);
            }
        }
        let last = p[p.len() - 1];
        (last.1, last.2)
    }
}

/// How to make a video of faces.
#[derive(Debug, Clone)]
pub struct FaceVideoSpec {
    /// The talk; part `i` is spoken by person `i % people.len()` in voice
    /// `talk.voices[i % voices]`.
    pub talk: TalkSpec,
    /// The people.
    pub people: Vec<Person>,
    /// Frame size.
    pub size: (u32, u32),
    /// Frames a second.
    pub fps: u32,
    /// Side of each face's box in the video, pixels.
    pub face_side: u32,
}

/// A generated video of faces.
#[derive(Debug, Clone)]
pub struct FaceVideo {
    /// The MP4.
    pub path: PathBuf,
    /// The talk (sentences with their parts and times).
    pub talk: Talk,
    /// The people, as in the spec.
    pub people: Vec<Person>,
}

impl FaceVideo {
    /// Who speaks at `t`: the person of the part being spoken (the last
    /// one through pauses).
    #[must_use]
    pub fn speaker_at(&self, t: f64) -> usize {
        let n = self.people.len().max(1);
        let part = self.talk.sentences.iter().take_while(|s| s.start <= t).last().map_or(0, |s| s.part);
        part % n
    }

    /// When the speaker changes: the start of each part's first sentence
    /// spoken by someone else than the part before.
    #[must_use]
    pub fn speaker_changes(&self) -> Vec<f64> {
        let n = self.people.len().max(1);
        let mut out = Vec::new();
        for w in self.talk.sentences.windows(2) {
            if w[1].part % n != w[0].part % n {
                out.push(w[1].start);
            }
        }
        out
    }

    /// Caption words spread evenly over each sentence, as a transcript
    /// would time them (no model needed).
    #[must_use]
    pub fn words(&self) -> Vec<videdit_core::Word> {
        let mut out = Vec::new();
        for s in &self.talk.sentences {
            let words: Vec<&str> = s.text.split_whitespace().collect();
            let step = (s.end - s.start) / words.len().max(1) as f64;
            for (i, w) in words.iter().enumerate() {
                let start = s.start + step * i as f64;
                out.push(videdit_core::Word {
                    text: (*w).to_owned(),
                    start,
                    end: start + step * 0.85,
                    probability: 1.0,
                });
            }
        }
        out
    }
}

/// An RGB image.
struct Image {
    w: usize,
    h: usize,
    rgb: Vec<u8>,
}

/// Decodes `face` of the photograph, scaled so that its box is `side`
/// pixels, with a margin of half a box around it.
async fn face_image(ffmpeg: &Ffmpeg, face: (u32, u32, u32), side: u32, dir: &Path) -> Result<Image> {
    let (x, y, s) = face;
    let margin = s / 2;
    let crop = s + 2 * margin;
    let scale = f64::from(side) / f64::from(s);
    let out_side = ((f64::from(crop) * scale / 2.0).round() as usize) * 2;
    let raw = dir.join(format!("face-{x}-{y}.rgb"));
    let photo = rustface_dir().join("test.png");
    #[rustfmt::skip]
    let args = [
        "-y", "-i", &file_arg(&photo),
        "-vf", &format!("crop={crop}:{crop}:{}:{},scale={out_side}:{out_side}:flags=lanczos", x.saturating_sub(margin), y.saturating_sub(margin)),
        "-frames:v", "1", "-pix_fmt", "rgb24", "-f", "rawvideo", &file_arg(&raw),
    ];
    ffmpeg
        .run(Run { args: args.map(str::to_owned).to_vec(), media_seconds: 1.0, on_progress: None, cancel: None })
        .await?;
    let rgb = tokio::fs::read(&raw).await.map_err(|source| Error::Io { op: "reading a face", source })?;
    Ok(Image { w: out_side, h: out_side, rgb })
}

/// The loudness of `samples` (16 kHz) per video frame, 0..1.
fn envelope(samples: &[f32], fps: u32, frames: usize) -> Vec<f64> {
    let per = (16_000 / fps.max(1)) as usize;
    let rms: Vec<f64> = (0..frames)
        .map(|i| {
            let chunk = samples.get(i * per..((i + 1) * per).min(samples.len())).unwrap_or(&[]);
            let sum: f64 = chunk.iter().map(|s| f64::from(*s) * f64::from(*s)).sum();
            (sum / chunk.len().max(1) as f64).sqrt()
        })
        .collect();
    let max = rms.iter().copied().fold(1e-6, f64::max);
    rms.iter().map(|r| (r / max * 1.6).min(1.0)).collect()
}

/// Makes the video `spec` describes at `out` (H.264 + AAC MP4).
///
/// # Errors
/// espeak-ng or ffmpeg missing or failing, I/O.
///
/// # Panics
/// On a spec with no people.
pub async fn make_face_video(ffmpeg: &Ffmpeg, spec: &FaceVideoSpec, out: &Path) -> Result<FaceVideo> {
    assert!(!spec.people.is_empty(), "a face video needs people");
    let io = |op| move |source| Error::Io { op, source };
    let dir = tempfile::tempdir().map_err(io("creating a temporary directory"))?;
    let mut talk_spec = spec.talk.clone();
    talk_spec.size = None;
    let audio = dir.path().join("talk.m4a");
    let talk = make_talk(ffmpeg, &talk_spec, &audio).await?;
    let samples = super::samples_of(&audio, talk.duration).await;
    let (w, h) = (spec.size.0 as usize, spec.size.1 as usize);
    let frames = (talk.duration * f64::from(spec.fps)).ceil() as usize;
    let loud = envelope(&samples, spec.fps, frames);

    let mut faces = Vec::new();
    for p in &spec.people {
        faces.push(face_image(ffmpeg, PHOTO_FACES[p.face % PHOTO_FACES.len()], spec.face_side, dir.path()).await?);
    }
    // A still background with some texture (a soft gradient and panels).
    let mut background = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) * 3;
            let panel = ((x / 160) + (y / 180)) % 2 == 0;
            let base = 70 + (y * 60 / h) as u8 + if panel { 12 } else { 0 };
            background[i..i + 3].copy_from_slice(&[base, base.saturating_add(8), base.saturating_add(20)]);
        }
    }
    let video = FaceVideo { path: out.to_path_buf(), talk, people: spec.people.clone() };

    let mut child = tokio::process::Command::new(&ffmpeg.ffmpeg)
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s"])
        .arg(format!("{w}x{h}"))
        .args(["-r", &spec.fps.to_string(), "-i", "pipe:0", "-i"])
        .arg(file_arg(&audio))
        .args(["-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "20"])
        .args(["-pix_fmt", "yuv420p", "-c:a", "copy", "-shortest", "-movflags", "+faststart"])
        .arg(file_arg(out))
        .stdin(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| Error::Spawn { program: "ffmpeg".into(), source })?;
    let mut stdin = child.stdin.take().ok_or_else(|| io("opening ffmpeg's stdin")(std::io::Error::other("no pipe")))?;
    let mut frame = background.clone();
    for i in 0..frames {
        let t = i as f64 / f64::from(spec.fps);
        frame.copy_from_slice(&background);
        let speaker = video.speaker_at(t);
        let speaking = video.talk.sentences.iter().any(|s| t >= s.start && t <= s.end);
        for (pi, (person, img)) in spec.people.iter().zip(&faces).enumerate() {
            let (cx, cy) = person.at(t);
            let (left, top) = ((cx * w as f64) as i64 - img.w as i64 / 2, (cy * h as f64) as i64 - img.h as i64 / 2);
            // An oval head: each row copied between the oval's edges.
            let (rx, ry) = (img.w as f64 * 0.40, img.h as f64 * 0.48);
            for row in 0..img.h {
                let dy = (row as f64 - img.h as f64 / 2.0) / ry;
                if dy.abs() >= 1.0 {
                    continue;
                }
                let half = rx * (1.0 - dy * dy).sqrt();
                let (c0, c1) = ((img.w as f64 / 2.0 - half) as i64, (img.w as f64 / 2.0 + half) as i64);
                let y = top + row as i64;
                if y < 0 || y >= h as i64 {
                    continue;
                }
                let x0 = (left + c0).clamp(0, w as i64);
                let x1 = (left + c1).clamp(0, w as i64);
                if x1 <= x0 {
                    continue;
                }
                let src = (row * img.w + (x0 - left) as usize) * 3;
                let dst = (y as usize * w + x0 as usize) * 3;
                let len = (x1 - x0) as usize * 3;
                frame[dst..dst + len].copy_from_slice(&img.rgb[src..src + len]);
            }
            // The speaking face's mouth opens with the loudness.
            if pi == speaker && speaking {
                let side = f64::from(spec.face_side);
                let (mx, my) = (cx * w as f64, cy * h as f64 + side * 0.30);
                let (ax, ay) = (side * 0.17, side * 0.11 * loud[i.min(loud.len() - 1)]);
                if ay >= 1.0 {
                    for y in (my - ay) as usize..=(my + ay) as usize {
                        for x in (mx - ax) as usize..=(mx + ax) as usize {
                            let (dx, dy) = ((x as f64 - mx) / ax, (y as f64 - my) / ay);
                            if dx * dx + dy * dy <= 1.0 && x < w && y < h {
                                let i = (y * w + x) * 3;
                                frame[i..i + 3].copy_from_slice(&[70, 18, 22]);
                            }
                        }
                    }
                }
            }
        }
        stdin.write_all(&frame).await.map_err(io("writing frames to ffmpeg"))?;
    }
    drop(stdin);
    let status = child.wait().await.map_err(io("waiting for ffmpeg"))?;
    if !status.success() {
        return Err(Error::Failed { program: "ffmpeg".into(), status: status.to_string(), stderr: vec![] });
    }
    Ok(video)
}

/// A talk of `parts` (each a few sentences) at 1280×720, 25 fps.
#[must_use]
pub fn face_talk(parts: Vec<String>, voices: &[&str]) -> TalkSpec {
    let mut t = TalkSpec::new(parts);
    t.voices = voices.iter().map(|v| (*v).to_owned()).collect();
    t.part_gap = 0.8;
    t.sentence_gap = 0.5;
    t
}
