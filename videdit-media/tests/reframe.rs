//! Face-aware framing on videos of real faces (cropped from the group
//! photograph in the `rustface` crate), rendered through real ffmpeg:
//! one face moving across the frame is followed smoothly; two people
//! taking turns get a cut to whoever speaks, or a split screen.

use std::path::Path;

use tokio_util::sync::CancellationToken;
use videdit_core::recipe::{Aspect, CaptionStyle, ClipRecipe, Keyframe, RECIPE_VERSION, Reframe};
use videdit_core::time_range::TimeRange;
use videdit_media::process::Ffmpeg;
use videdit_media::reframe::Detector;
use videdit_media::render::{RenderOptions, RenderOutputs, Rendered, render};
use videdit_media::testing::{FaceVideo, FaceVideoSpec, Frame, Person, SMALL_TALK, face_talk, make_face_video};

const FPS: u32 = 25;
/// Crop width of 16:9 into 9:16, a fraction of the source width.
const CROP_W: f64 = (9.0 / 16.0) / (16.0 / 9.0);

fn sentences(from: usize, n: usize) -> String {
    SMALL_TALK[from..from + n].join(" ")
}

async fn video(dir: &Path, name: &str, parts: Vec<String>, people: Vec<Person>, voices: &[&str]) -> FaceVideo {
    let spec = FaceVideoSpec { talk: face_talk(parts, voices), people, size: (1280, 720), fps: FPS, face_side: 150 };
    make_face_video(&Ffmpeg::default(), &spec, &dir.join(name)).await.expect("making the face video")
}

async fn render_with(v: &FaceVideo, reframe: Reframe, dir: &Path, name: &str) -> Rendered {
    let recipe = ClipRecipe {
        version: RECIPE_VERSION,
        source: v.path.display().to_string(),
        range: TimeRange::new(0.0, v.talk.duration).unwrap(),
        aspect: Aspect::Vertical,
        reframe,
        caption_style: CaptionStyle::Bold,
        words: v.words(),
        title: "Faces".into(),
    };
    let outputs = RenderOutputs::in_dir(dir, name);
    render(&Ffmpeg::default(), &recipe, &outputs, &RenderOptions::default(), |_| {}, &CancellationToken::new())
        .await
        .expect("rendering")
}

/// Where a face at source x `face` is across the crop centred at `centre`, 0..1.
fn across(face: f64, centre: f64) -> f64 {
    (face - (centre - CROP_W / 2.0)) / CROP_W
}

fn in_middle_third(f: f64) -> bool {
    (1.0 / 3.0..=2.0 / 3.0).contains(&f)
}

/// The camera's centre at each output frame from `t0` to `t1`.
fn frames(path: &[Keyframe], t0: f64, t1: f64) -> Vec<(f64, f64)> {
    let n = ((t1 - t0) * f64::from(FPS)) as usize;
    (0..n)
        .map(|i| {
            let t = t0 + i as f64 / f64::from(FPS);
            (t, f64::from(Keyframe::centre_at(path, t).unwrap().0))
        })
        .collect()
}

/// The largest second difference of the camera per frame, away from cuts,
/// as a fraction of the crop width.
fn jitter(path: &[Keyframe], t0: f64, t1: f64) -> f64 {
    let cuts: Vec<f64> = path.iter().filter(|k| k.cut).map(|k| k.t).collect();
    let c = frames(path, t0, t1);
    c.windows(3)
        .filter(|w| !cuts.iter().any(|&k| k >= w[0].0 - 1e-6 && k <= w[2].0 + 1e-6))
        .map(|w| (w[2].1 - 2.0 * w[1].1 + w[0].1).abs() / CROP_W)
        .fold(0.0, f64::max)
}

/// Faces found in a band (`y0..y1` of the frame's rows) of a decoded frame:
/// centre x as a fraction of the width.
fn faces_in(frame: &Frame, y0: usize, y1: usize) -> Vec<f64> {
    let w = frame.width;
    let grey: Vec<u8> = frame.rgb[y0 * w * 3..y1 * w * 3]
        .chunks_exact(3)
        .map(|p| ((u32::from(p[0]) * 77 + u32::from(p[1]) * 150 + u32::from(p[2]) * 29) >> 8) as u8)
        .collect();
    let mut d = Detector::new(80).unwrap();
    d.detect(&grey, w as u32, (y1 - y0) as u32)
        .into_iter()
        .map(|(x, _, side, _)| (f64::from(x) + f64::from(side) / 2.0) / w as f64)
        .collect()
}

#[tokio::test]
async fn one_face_moving_across_the_frame_is_followed_smoothly() {
    let dir = tempfile::tempdir().unwrap();
    let person = Person { face: 0, path: vec![(0.0, 0.28, 0.45), (9.0, 0.72, 0.5), (18.0, 0.40, 0.42)] };
    let v = video(dir.path(), "one.mp4", vec![sentences(0, 3), sentences(3, 3)], vec![person], &["en-us"]).await;
    let out = render_with(&v, Reframe::Auto, dir.path(), "one").await;
    let Reframe::Track { keyframes } = &out.reframe else { panic!("one face is tracked: {:?}", out.reframe) };
    assert!(!keyframes.iter().any(|k| k.cut), "one subject, no cuts: {keyframes:?}");
    assert!(keyframes.len() < 120, "the path is a few straight lines: {} keyframes", keyframes.len());

    // From the keyframes: the face in the middle third of the 9:16 frame.
    let cam = frames(keyframes, 0.0, v.talk.duration);
    let inside = cam.iter().filter(|(t, c)| in_middle_third(across(v.people[0].at(*t).0, *c))).count();
    let share = inside as f64 / cam.len() as f64;
    assert!(share >= 0.95, "the face is in the middle third {:.1} % of the time", share * 100.0);
    let j = jitter(keyframes, 0.0, v.talk.duration);
    assert!(j < 0.015, "the camera does not jitter: second difference up to {j:.4} crop widths a frame");
    let moved = cam.iter().map(|c| c.1).fold(f64::MIN, f64::max) - cam.iter().map(|c| c.1).fold(f64::MAX, f64::min);
    assert!(moved > 0.3, "the camera follows the face across the frame: it moved {moved:.2}");

    // From decoded output frames: the face is where the path says.
    let (mut found, mut centred) = (0, 0);
    let samples: Vec<f64> = (1..12).map(|i| f64::from(i) * v.talk.duration / 12.0).collect();
    for &t in &samples {
        let frame = Frame::at(&out.video, t, 1080).await;
        let faces = faces_in(&frame, 0, frame.height());
        if let Some(&x) = faces.first() {
            found += 1;
            centred += usize::from(in_middle_third(x));
        }
    }
    assert!(found >= samples.len() - 1, "a face in {found} of {} output frames", samples.len());
    assert_eq!(centred, found, "every face found in the output is in its middle third");
    assert!(out.framing_seconds > 0.0);
}

#[tokio::test]
async fn two_people_taking_turns_get_a_cut_to_the_speaker_or_a_split_screen() {
    let dir = tempfile::tempdir().unwrap();
    let people = vec![
        Person { face: 0, path: vec![(0.0, 0.26, 0.45), (30.0, 0.29, 0.47)] },
        Person { face: 1, path: vec![(0.0, 0.74, 0.47), (30.0, 0.71, 0.44)] },
    ];
    let parts = vec![sentences(0, 2), sentences(2, 2), sentences(4, 2), sentences(6, 2)];
    let v = video(dir.path(), "two.mp4", parts, people, &["en-us", "en-gb"]).await;
    let changes = v.speaker_changes();
    assert_eq!(changes.len(), 3);

    // Asked to track: the camera cuts to whoever speaks.
    let out = render_with(&v, Reframe::Track { keyframes: vec![] }, dir.path(), "track").await;
    let Reframe::Track { keyframes } = &out.reframe else { panic!("{:?}", out.reframe) };
    let cuts: Vec<f64> = keyframes.iter().filter(|k| k.cut).map(|k| k.t).collect();
    assert_eq!(cuts.len(), changes.len(), "one cut a change of speaker: cuts {cuts:?}, changes {changes:?}");
    for (cut, change) in cuts.iter().zip(&changes) {
        assert!((cut - change).abs() <= 0.5, "the camera cuts at {cut:.2} s for a change at {change:.2} s");
    }
    let first = v.talk.sentences[0].start;
    let cam = frames(keyframes, first, v.talk.duration);
    let inside = cam.iter().filter(|(t, c)| in_middle_third(across(v.people[v.speaker_at(*t)].at(*t).0, *c))).count();
    let share = inside as f64 / cam.len() as f64;
    assert!(share >= 0.95, "the speaker is in the middle third {:.1} % of the time", share * 100.0);
    assert!(jitter(keyframes, 0.0, v.talk.duration) < 0.015);

    // Left to choose: both are there and both speak, so a split screen,
    // each half framing its own face.
    let out = render_with(&v, Reframe::Auto, dir.path(), "split").await;
    let Reframe::Split { top, bottom, zoom } = &out.reframe else { panic!("two speakers: {:?}", out.reframe) };
    assert!((0.35..=1.0).contains(zoom));
    assert!(top[0].x < 0.5 && bottom[0].x > 0.5, "the left person on top: {top:?} {bottom:?}");
    for t in [2.0, v.talk.duration / 2.0, v.talk.duration - 2.0] {
        let frame = Frame::at(&out.video, t, 1080).await;
        let h = frame.height();
        for (name, band) in [("top", (0, h / 2)), ("bottom", (h / 2, h))] {
            let faces = faces_in(&frame, band.0, band.1);
            assert!(
                faces.first().is_some_and(|&x| in_middle_third(x)),
                "at {t:.1} s the {name} half frames a face in its middle: {faces:?}"
            );
        }
    }
}
