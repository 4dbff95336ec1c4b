//! What face-aware framing costs: a 30 s short of two people taking turns
//! (faces from `rustface`'s group photograph, see
//! `videdit_media::testing::make_face_video`) rendered to 9:16 from
//! 1280×720 and 1920×1080 sources, three interleaved rounds of
//! - `auto`: faces sampled and the framing chosen, then rendered;
//! - the chosen framing given (its keyframes), so nothing is detected;
//! - `fit`, the old default, for reference.
//!
//! The figure of merit is the time spent finding faces over the time the
//! same render takes without it (target: at most 25 %).
//!
//! `cargo bench -p videdit-benches --bench reframe`

use std::time::Instant;

use tokio_util::sync::CancellationToken;
use videdit_core::recipe::{Aspect, CaptionStyle, ClipRecipe, RECIPE_VERSION, Reframe};
use videdit_core::time_range::TimeRange;
use videdit_media::process::Ffmpeg;
use videdit_media::render::{RenderOptions, RenderOutputs, render};
use videdit_media::testing::{FaceVideoSpec, Person, SMALL_TALK, face_talk, make_face_video};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let ffmpeg = Ffmpeg::default();
    let dir = tempfile::tempdir().unwrap();
    let parts: Vec<String> = (0..6).map(|i| SMALL_TALK[i * 2..i * 2 + 2].join(" ")).collect();
    println!(
        "machine: {} cores; x264 veryfast CRF 21 (the render defaults)",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    for (size, side) in [((1280, 720), 150), ((1920, 1080), 225)] {
        let people = vec![
            Person { face: 0, path: vec![(0.0, 0.26, 0.45), (40.0, 0.30, 0.47)] },
            Person { face: 1, path: vec![(0.0, 0.74, 0.47), (40.0, 0.70, 0.44)] },
        ];
        let spec = FaceVideoSpec {
            talk: face_talk(parts.clone(), &["en-us", "en-gb"]),
            people,
            size,
            fps: 25,
            face_side: side,
        };
        let v = make_face_video(&ffmpeg, &spec, &dir.path().join(format!("{}p.mp4", size.1))).await.unwrap();
        let end = v.talk.duration.min(30.5);
        let recipe = |reframe: Reframe| ClipRecipe {
            version: RECIPE_VERSION,
            source: v.path.display().to_string(),
            range: TimeRange::new(0.5, end).unwrap(),
            aspect: Aspect::Vertical,
            reframe,
            caption_style: CaptionStyle::Bold,
            words: v.words(),
            title: "Faces".into(),
        };
        let run = |r: ClipRecipe, name: &'static str| {
            let ffmpeg = ffmpeg.clone();
            let out = RenderOutputs::in_dir(dir.path(), name);
            async move {
                let started = Instant::now();
                let done = render(&ffmpeg, &r, &out, &RenderOptions::default(), |_| {}, &CancellationToken::new())
                    .await
                    .unwrap();
                (started.elapsed().as_secs_f64(), done)
            }
        };
        let (mut auto, mut framing, mut given, mut fit) = (vec![], vec![], vec![], vec![]);
        let mut chosen = String::new();
        for _ in 0..3 {
            let (t, done) = run(recipe(Reframe::Auto), "auto").await;
            auto.push(t);
            framing.push(done.framing_seconds);
            chosen = match &done.reframe {
                Reframe::Split { .. } => "split".into(),
                Reframe::Track { keyframes } => format!("track ({} keyframes)", keyframes.len()),
                other => format!("{other:?}"),
            };
            let (t, _) = run(recipe(done.reframe.clone()), "given").await;
            given.push(t);
            let (t, _) = run(recipe(Reframe::Fit), "fit").await;
            fit.push(t);
        }
        let (auto, framing, given, fit) =
            (median(&mut auto), median(&mut framing), median(&mut given), median(&mut fit));
        let seconds = end - 0.5;
        println!(
            "{}x{} source, {seconds:.1} s short ({chosen}): auto {auto:.2} s (finding faces {framing:.2} s), \
             keyframes given {given:.2} s, fit {fit:.2} s; finding faces adds {:.1} % to the render",
            size.0,
            size.1,
            framing / given * 100.0
        );
    }
}
