//! Awkward sources real users upload, rendered into a 9:16 short: a
//! vertical phone video, a 4K video, a variable frame rate phone video, a
//! phone video stored sideways with a rotation flag, and a 1-second clip.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use videdit_core::recipe::{Aspect, CaptionStyle, ClipRecipe, RECIPE_VERSION, Reframe};
use videdit_core::time_range::TimeRange;
use videdit_core::transcript::Word;
use videdit_media::process::{Ffmpeg, Run, file_arg};
use videdit_media::render::{RenderOptions, RenderOutputs, render};

async fn make(dir: &Path, name: &str, args: &[&str], seconds: f64) -> PathBuf {
    let out = dir.join(name);
    let mut all: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    all.extend(["-y".to_owned(), file_arg(&out)]);
    Ffmpeg::default().run(Run { args: all, media_seconds: seconds, on_progress: None, cancel: None }).await.unwrap();
    out
}

async fn probe(path: &Path) -> Value {
    let out = Ffmpeg::default()
        .ffprobe(&["-show_format", "-show_streams", "-of", "json", &file_arg(path)], Duration::from_secs(30))
        .await
        .unwrap();
    serde_json::from_slice(&out).unwrap()
}

/// Renders 0.5..end of `src` to 9:16 with captions and checks the output.
async fn renders_vertical(src: &Path, end: f64, reframe: Reframe) {
    let recipe = ClipRecipe {
        version: RECIPE_VERSION,
        source: src.display().to_string(),
        range: TimeRange::new(0.5, end).unwrap(),
        aspect: Aspect::Vertical,
        reframe,
        caption_style: CaptionStyle::Bold,
        words: vec![Word { text: "Hello".into(), start: 0.6, end: 1.0, probability: 0.9 }],
        title: "t".into(),
    };
    let dir = src.parent().unwrap().join(src.file_stem().unwrap());
    let r = render(
        &Ffmpeg::default(),
        &recipe,
        &RenderOutputs::in_dir(&dir, "short"),
        &RenderOptions::default(),
        |_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    assert_eq!((r.width, r.height), (1080, 1920), "{}", src.display());
    let p = probe(&r.video).await;
    let v = p["streams"].as_array().unwrap().iter().find(|s| s["codec_type"] == "video").unwrap();
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(1080), Some(1920)));
    assert_eq!(v["pix_fmt"], "yuv420p");
    let seconds: f64 = p["format"]["duration"].as_str().unwrap().parse().unwrap();
    assert!((seconds - (end - 0.5)).abs() <= 1.0 / r.fps + 0.03, "{}: {seconds}", src.display());
    assert!(p["streams"].as_array().unwrap().iter().any(|s| s["codec_type"] == "audio"));
}

const TONE: &str = "sine=frequency=440:sample_rate=48000";

#[tokio::test]
async fn vertical_4k_variable_rate_and_rotated_sources_render() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let common = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-t", "3"];
    let vertical: Vec<&str> = ["-f", "lavfi", "-i", "testsrc2=size=720x1280:rate=30", "-f", "lavfi", "-i", TONE]
        .into_iter()
        .chain(common)
        .collect();
    let uhd: Vec<&str> = ["-f", "lavfi", "-i", "testsrc2=size=3840x2160:rate=30", "-f", "lavfi", "-i", TONE]
        .into_iter()
        .chain(common)
        .collect();
    // Frames at irregular times, as phones write them.
    let vfr: Vec<&str> = [
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1280x720:rate=60",
        "-f",
        "lavfi",
        "-i",
        TONE,
        "-vf",
        "select='not(mod(n\\,3))+not(mod(n\\,7))',setpts=N/(37*TB)+0.01*sin(N)/TB",
        "-fps_mode",
        "vfr",
    ]
    .into_iter()
    .chain(common)
    .collect();
    let vertical = make(d, "vertical.mp4", &vertical, 3.0).await;
    let uhd = make(d, "uhd.mp4", &uhd, 3.0).await;
    let vfr = make(d, "vfr.mp4", &vfr, 3.0).await;
    // Landscape pixels with a 90° display matrix: shown as portrait.
    let rotated =
        make(d, "rotated.mp4", &["-i", &file_arg(&uhd), "-c", "copy", "-metadata:s:v:0", "rotate=90"], 3.0).await;
    let rotation = probe(&rotated).await.to_string();
    assert!(rotation.contains("rotation"), "{rotation}");

    for (src, reframe) in [
        (&vertical, Reframe::Fit),
        (&vertical, Reframe::Crop { x: None }),
        (&uhd, Reframe::Crop { x: Some(0.3) }),
        (&uhd, Reframe::Fit),
        (&vfr, Reframe::Fit),
        (&rotated, Reframe::Crop { x: None }),
    ] {
        renders_vertical(src, 2.5, reframe).await;
    }
}

#[tokio::test]
async fn a_one_second_clip_renders_what_there_is() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i", TONE, "-t", "1"];
    let clip = make(dir.path(), "one.mp4", &args, 1.0).await;
    renders_vertical(&clip, 1.0, Reframe::Fit).await;
}
