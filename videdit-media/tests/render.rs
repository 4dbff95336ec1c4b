//! Rendering against real ffmpeg: sizes, codecs, durations, frame-accurate
//! cuts, caption pixels and their timing, loudness, re-rendering, and the
//! failure paths. Sources are generated with lavfi (flite speech, test
//! patterns, flat colours) through the gateway.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use videdit_core::recipe::{Aspect, CaptionStyle, ClipRecipe, RECIPE_VERSION, Reframe};
use videdit_core::time_range::TimeRange;
use videdit_core::transcript::Word;
use videdit_media::Error;
use videdit_media::captions::{CaptionLayout, YELLOW};
use videdit_media::process::{Ffmpeg, Run, file_arg};
use videdit_media::render::{RenderError, RenderOptions, RenderOutputs, Rendered, check_picture, loudness, render};
use videdit_media::testing::{self, Frame, Rect, ffprobe_json, looks_like, seconds_of, stream_of};

fn ff() -> Ffmpeg {
    Ffmpeg::default()
}

const SPEECH: &str = "flite=voice=slt:text='Hello and welcome to the show. Today we talk about making great short \
                      videos from long talks. The secret is the first three seconds.'";

async fn generate(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    testing::generate(dir, name, args, 10.0).await
}

/// A source of `seconds` with `video` (a lavfi graph) and flite speech at
/// `gain_db`, padded with silence.
async fn source(dir: &Path, name: &str, video: &str, seconds: u32, gain_db: i32) -> PathBuf {
    let audio = format!("{SPEECH},volume={gain_db}dB,apad");
    let args = [
        "-f",
        "lavfi",
        "-i",
        video,
        "-f",
        "lavfi",
        "-i",
        &audio,
        "-t",
        &seconds.to_string(),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-crf",
        "10",
        "-g",
        "30",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "192k",
    ];
    generate(dir, name, &args).await
}

fn word(text: &str, start: f64, end: f64) -> Word {
    Word { text: text.into(), start, end, probability: 0.9 }
}

fn recipe(source: &Path, start: f64, end: f64, aspect: Aspect, reframe: Reframe, style: CaptionStyle) -> ClipRecipe {
    ClipRecipe {
        version: RECIPE_VERSION,
        source: source.display().to_string(),
        range: TimeRange::new(start, end).unwrap(),
        aspect,
        reframe,
        caption_style: style,
        words: vec![],
        title: "Test".into(),
    }
}

async fn run(recipe: &ClipRecipe, outputs: &RenderOutputs) -> Result<Rendered, RenderError> {
    render(&ff(), recipe, outputs, &RenderOptions::default(), |_| {}, &CancellationToken::new()).await
}

/// Checks what every render must be: H.264 High yuv420p at the preset's
/// size, AAC 48 kHz stereo, both streams and the file lasting the recipe's
/// duration to within a frame, the index before the data, a JPEG thumbnail
/// of the same size and the recipe beside them.
async fn check_outputs(r: &Rendered, recipe: &ClipRecipe, duration: f64, fps: f64) -> Value {
    let (w, h) = recipe.aspect.size();
    assert_eq!((r.width, r.height), (w, h));
    let probe = ffprobe_json(&r.video).await;
    let v = stream_of(&probe, "video");
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(v["profile"], "High");
    assert_eq!(v["pix_fmt"], "yuv420p");
    assert_eq!((v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap()), (u64::from(w), u64::from(h)));
    let a = stream_of(&probe, "audio");
    assert_eq!(a["codec_name"], "aac");
    assert_eq!(a["sample_rate"], "48000");
    assert_eq!(a["channels"], 2);
    let frame = 1.0 / fps;
    for d in
        [seconds_of(&probe["format"]["duration"]), seconds_of(&v["duration"]), seconds_of(&a["duration"]), r.duration]
    {
        assert!((d - duration).abs() <= frame + 1e-6, "duration {d} vs {duration}");
    }
    let bytes = std::fs::read(&r.video).unwrap();
    let find = |tag: &[u8]| bytes.windows(4).position(|w| w == tag).unwrap();
    assert!(find(b"moov") < find(b"mdat"), "+faststart puts the index first");
    let thumb = std::fs::read(&r.thumbnail).unwrap();
    assert_eq!(&thumb[..2], &[0xFF, 0xD8], "a JPEG");
    let t = ffprobe_json(&r.thumbnail).await;
    assert_eq!(stream_of(&t, "video")["width"].as_u64(), Some(u64::from(w)));
    let saved: ClipRecipe = serde_json::from_slice(&std::fs::read(&r.recipe).unwrap()).unwrap();
    assert_eq!(&saved, recipe);
    probe
}

/// Only the outputs are left in `dir`: no temporary files or directories.
fn assert_only(dir: &Path, names: &[&str]) {
    let mut found: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    found.sort();
    let mut names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    names.sort();
    assert_eq!(found, names);
}

fn white(p: [u8; 3]) -> bool {
    p.iter().all(|&c| c > 200)
}

fn highlight(p: [u8; 3]) -> bool {
    let [r, g, b] = p;
    let [yr, yg, yb] = YELLOW;
    r.abs_diff(yr) < 50 && g.abs_diff(yg) < 50 && b.abs_diff(yb) < 90 && b < 120
}

fn bright(p: [u8; 3]) -> bool {
    white(p) || highlight(p)
}

#[tokio::test]
async fn a_captioned_vertical_short_has_the_right_streams_and_captions_in_sync() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), "talk.mp4", "color=c=0x203040:s=1280x720:r=30", 6, 0).await;
    let mut recipe = recipe(&src, 1.0, 5.0, Aspect::Vertical, Reframe::Fit, CaptionStyle::Bold);
    recipe.words = vec![
        word(" Hello", 1.5, 1.9),
        word(" big", 1.9, 2.2),
        word(" world.", 2.2, 2.8),
        word(" Second", 3.6, 4.0),
        word(" group", 4.0, 4.4),
        word(" here", 4.4, 4.9),
        word(" outside", 5.5, 5.9),
    ];
    let out = dir.path().join("out");
    let outputs = RenderOutputs::in_dir(&out, "short");
    let seen = std::sync::Mutex::new(Vec::new());
    let r = render(
        &ff(),
        &recipe,
        &outputs,
        &RenderOptions::default(),
        |p| seen.lock().unwrap().push(p),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let seen = seen.into_inner().unwrap();
    assert!(seen.windows(2).all(|w| w[0] <= w[1]) && seen.last() == Some(&1.0), "{seen:?}");
    assert_eq!(r.caption_events, 6);
    check_outputs(&r, &recipe, 4.0, 30.0).await;
    assert_only(&out, &["short.mp4", "short.jpg", "short.json"]);

    // Caption pixels appear exactly on the first word's frame (clip 0.5 s)
    // and not one frame earlier, only inside the safe caption box.
    let [_, y0, _, y1] = CaptionLayout::new(Aspect::Vertical, CaptionStyle::Bold).caption_box();
    let (y0, y1) = (y0 as usize, y1 as usize);
    // (Decoding from `t` gives the first frame at or after `t`.)
    let before = Frame::at(&r.video, 0.45, 1080).await;
    assert_eq!(before.find(0, 1920, bright).0, 0, "nothing before the first word");
    let first = Frame::at(&r.video, 0.49, 1080).await;
    assert!(first.find(y0, y1, highlight).0 > 500, "the first word lights up on its own frame");

    // Mid-word frames: white caption pixels in the caption box, the spoken
    // word in the highlight colour where that word is, nothing elsewhere.
    for (t, side) in [(0.7, -1.0), (1.05, 0.0), (1.5, 1.0)] {
        let f = Frame::at(&r.video, t, 1080).await;
        let (n_white, _) = f.find(y0, y1, white);
        let (n_hi, x_hi) = f.find(y0, y1, highlight);
        assert!(n_white > 1000 && n_hi > 500, "t={t}: {n_white} white, {n_hi} highlighted");
        let offset = (x_hi - 540.0) / 540.0;
        assert!(if side == 0.0 { offset.abs() < 0.1 } else { offset * side > 0.15 }, "t={t}: highlight at {x_hi}");
        assert_eq!(f.find(0, y0, bright).0 + f.find(y1, 1920, bright).0, 0, "t={t}: stray caption pixels");
    }
    // Between the groups (the first held until 2.3 s, the next at 2.6 s).
    assert_eq!(Frame::at(&r.video, 2.45, 1080).await.find(0, 1920, bright).0, 0);
    assert!(Frame::at(&r.video, 3.7, 1080).await.find(y0, y1, highlight).0 > 500);
}

#[tokio::test]
async fn loudness_lands_on_target_for_quiet_normal_and_loud_sources() {
    let dir = tempfile::tempdir().unwrap();
    for gain in [-25, 0, 15] {
        let name = format!("speech{gain}.mp4");
        let src = source(dir.path(), &name, "testsrc2=s=640x360:r=30", 9, gain).await;
        let recipe = recipe(&src, 0.4, 8.4, Aspect::Square, Reframe::Crop { x: None }, CaptionStyle::None);
        let r = run(&recipe, &RenderOutputs::in_dir(&dir.path().join("out"), &format!("s{gain}"))).await.unwrap();
        let report = r.loudness.unwrap();
        // Measure the delivered AAC with ebur128, as a platform would.
        let meta = dir.path().join(format!("m{gain}.txt"));
        let graph = format!("ebur128=peak=true:metadata=1,ametadata=mode=print:file={}", meta.display());
        let args = ["-i", &file_arg(&r.video), "-map", "0:a", "-af", &graph, "-f", "null", "-"];
        ff().run(Run { args: args.map(str::to_owned).to_vec(), media_seconds: 8.0, on_progress: None, cancel: None })
            .await
            .unwrap();
        let measured = loudness::parse(&std::fs::read_to_string(&meta).unwrap()).unwrap();
        assert!((measured.integrated - -14.0).abs() <= 1.0, "{gain} dB: {measured:?} {report:?}");
        assert!(measured.true_peak <= -1.0, "{gain} dB: {measured:?} {report:?}");
        assert!((report.output.integrated - -14.0).abs() <= 0.3, "{report:?}");
        assert!(report.source.integrated < -30.0 || gain != -25, "{report:?}");
    }
}

#[tokio::test]
async fn cuts_are_frame_accurate_and_re_renders_are_identical() {
    let dir = tempfile::tempdir().unwrap();
    // Frame n of the source has luma 16 + 4n: the first output frame tells
    // which source frame the cut started on.
    let src = source(dir.path(), "frames.mp4", "nullsrc=s=320x240:r=25,geq=lum='16+4*N':cb=128:cr=128", 4, 0).await;
    let grey = |n: f64| (4.0 * n) * 255.0 / 219.0;
    for (start, frame) in [(1.0, 25.0), (1.6, 40.0), (2.02, 50.5)] {
        let recipe = recipe(&src, start, start + 1.0, Aspect::Landscape, Reframe::Crop { x: None }, CaptionStyle::None);
        let r = run(&recipe, &RenderOutputs::in_dir(&dir.path().join("cut"), "c")).await.unwrap();
        let f = Frame::at(&r.video, 0.0, 1920).await;
        let mean = f.rgb.iter().map(|&c| f64::from(c)).sum::<f64>() / f.rgb.len() as f64;
        // Within one frame of the start (4 luma steps a frame; 2.02 s lies
        // between frames 50 and 51).
        assert!(
            (mean - grey(frame)).abs() < grey(1.0) * 0.75 + if frame.fract() > 0.0 { grey(0.5) } else { 0.0 },
            "start {start}: mean {mean}, want {}",
            grey(frame)
        );
        check_outputs(&r, &recipe, 1.0, 25.0).await;
    }

    // A recipe renders the same way every time.
    let recipe = recipe(&src, 0.52, 3.0, Aspect::Portrait, Reframe::Crop { x: Some(0.3) }, CaptionStyle::Highlight);
    let recipe = ClipRecipe { words: vec![word("again", 0.6, 1.2), word("and again", 1.3, 2.0)], ..recipe };
    let a = run(&recipe, &RenderOutputs::in_dir(&dir.path().join("a"), "x")).await.unwrap();
    // The saved recipe alone reproduces it.
    let saved: ClipRecipe = serde_json::from_slice(&std::fs::read(&a.recipe).unwrap()).unwrap();
    let b = run(&saved, &RenderOutputs::in_dir(&dir.path().join("b"), "x")).await.unwrap();
    let (pa, pb) = (check_outputs(&a, &recipe, 2.48, 25.0).await, check_outputs(&b, &recipe, 2.48, 25.0).await);
    for key in [
        "codec_name",
        "profile",
        "pix_fmt",
        "width",
        "height",
        "r_frame_rate",
        "nb_frames",
        "sample_rate",
        "channels",
        "duration",
    ] {
        for kind in ["video", "audio"] {
            assert_eq!(stream_of(&pa, kind)[key], stream_of(&pb, kind)[key], "{kind} {key}");
        }
    }
    assert_eq!(pa["format"]["duration"], pb["format"]["duration"]);
    assert_eq!(a.duration, b.duration);
    assert!(std::fs::read(&a.video).unwrap() == std::fs::read(&b.video).unwrap(), "bit-identical");
}

#[tokio::test]
async fn every_preset_and_style_and_awkward_output_paths() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), "wide.mp4", "color=c=0x203040:s=1280x720:r=30", 3, 0).await;
    // Quotes, colons, commas, brackets and blanks must survive the filter graph escaping.
    let out = dir.path().join("it's a [weird]: dir, ok;");
    let words = vec![word("Just", 0.5, 0.9), word("one", 0.9, 1.3), word("{\\i1}test", 1.3, 2.0)];
    for (aspect, reframe, style) in [
        (Aspect::Square, Reframe::Crop { x: Some(0.2) }, CaptionStyle::Highlight),
        (Aspect::Portrait, Reframe::Fit, CaptionStyle::Boxed),
        (Aspect::Landscape, Reframe::Crop { x: None }, CaptionStyle::Bold),
        (Aspect::Vertical, Reframe::Crop { x: Some(0.9) }, CaptionStyle::Boxed),
    ] {
        let mut recipe = recipe(&src, 0.0, 2.0, aspect, reframe, style);
        recipe.words = words.clone();
        let stem = format!("{}x{}", aspect.size().0, aspect.size().1);
        let r = run(&recipe, &RenderOutputs::in_dir(&out, &stem)).await.unwrap();
        check_outputs(&r, &recipe, 2.0, 30.0).await;
        let (w, h) = aspect.size();
        let [_, y0, _, y1] = CaptionLayout::new(aspect, style).caption_box();
        let f = Frame::at(&r.video, 1.1, w).await;
        assert_eq!(f.height(), h as usize);
        let (n, x) = f.find(y0 as usize, y1 as usize, highlight);
        assert!(n > 300, "{aspect:?} {style:?}: {n}");
        assert!((x - f64::from(w) / 2.0).abs() < f64::from(w) * 0.1, "{aspect:?}: the middle word is lit, at {x}");
    }
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 12);
}

const RED: [u8; 3] = [255, 0, 0];
const MAGENTA: [u8; 3] = [255, 0, 255];
const GREEN: [u8; 3] = [0, 255, 0];

#[tokio::test]
async fn crop_x_shows_the_part_of_the_source_it_names() {
    let dir = tempfile::tempdir().unwrap();
    // A 1920×1080 source with three boxes, left to right: red, magenta and
    // green, each at its own height, on a flat background.
    let markers = [
        (RED, Rect::new(100.0, 500.0, 60.0, 480.0)),
        (MAGENTA, Rect::new(760.0, 1160.0, 300.0, 700.0)),
        (GREEN, Rect::new(1500.0, 1800.0, 600.0, 1000.0)),
    ];
    let mut graph = "color=c=0x203040:s=1920x1080:r=30".to_owned();
    for (c, r) in markers {
        graph.push_str(&format!(
            ",drawbox=x={}:y={}:w={}:h={}:color=0x{:02X}{:02X}{:02X}:t=fill",
            r.x0,
            r.y0,
            r.x1 - r.x0,
            r.y1 - r.y0,
            c[0],
            c[1],
            c[2]
        ));
    }
    let src = source(dir.path(), "boxes.mp4", &graph, 2, 0).await;
    // Into 9:16 the crop is even(1080 × 9/16 = 607.5) = 606 wide and the
    // full 1080 high, its left edge at x × 1920 − 303 kept inside the
    // source and rounded down to even:
    //   0.1 → −111 → 0;  0.3 → 273 → 272;  none (0.5) → 657 → 656;  0.9 → 1425 → 1920 − 606 = 1314.
    // The window is then scaled to 1080×1920: × 1080/606 across, × 1920/1080 down.
    let (crop_w, sx, sy) = (606.0, 1080.0 / 606.0, 1920.0 / 1080.0);
    // What each shows, spelled out: the left of the source at 0.1, its right at 0.9.
    let cases = [
        (Some(0.1), 0.0, &[RED][..]),
        (Some(0.3), 272.0, &[RED, MAGENTA]),
        (None, 656.0, &[MAGENTA]),
        (Some(0.9), 1314.0, &[GREEN]),
    ];
    for (x, left, expected) in cases {
        let recipe = recipe(&src, 0.0, 1.0, Aspect::Vertical, Reframe::Crop { x }, CaptionStyle::None);
        let r = run(&recipe, &RenderOutputs::in_dir(&dir.path().join("out"), "crop")).await.unwrap();
        let frame = Frame::at(&r.video, 0.5, 1080).await;
        assert_eq!(frame.height(), 1920);
        let mut shown = vec![];
        for (colour, m) in markers {
            let (x0, x1) = (m.x0.max(left), m.x1.min(left + crop_w));
            let want = (x0 < x1).then(|| Rect::new((x0 - left) * sx, (x1 - left) * sx, m.y0 * sy, m.y1 * sy));
            let (n, found) = frame.region(looks_like(colour));
            match (want, found) {
                (None, _) => {
                    assert_eq!(n, 0, "x={x:?}: {colour:?} is outside the window at {left} but shows at {found:?}")
                }
                (Some(want), Some(found)) => {
                    assert!(found.near(&want, 3.0), "x={x:?}: {colour:?} at {found:?}, want {want:?}");
                    shown.push(colour);
                }
                (Some(want), None) => panic!("x={x:?}: {colour:?} should show at {want:?} but is not in the frame"),
            }
        }
        assert_eq!(shown, expected, "x={x:?}");
    }
}

#[tokio::test]
async fn bad_sources_and_ranges_fail_cleanly_and_cancelling_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let outputs = RenderOutputs::in_dir(&out, "x");
    let mk = |source: &Path| recipe(source, 0.0, 1.0, Aspect::Vertical, Reframe::Fit, CaptionStyle::Bold);

    let missing = run(&mk(&dir.path().join("missing.mp4")), &outputs).await.unwrap_err();
    assert!(
        matches!(&missing, RenderError::Media(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound),
        "{missing}"
    );
    generate(dir.path(), "secret.ts", &["-f", "lavfi", "-i", "testsrc2=d=1", "-f", "mpegts"]).await;
    let playlist = dir.path().join("evil.mp4");
    std::fs::write(&playlist, "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nsecret.ts\n#EXT-X-ENDLIST\n").unwrap();
    let err = run(&mk(&playlist), &outputs).await.unwrap_err();
    assert!(matches!(err, RenderError::Media(Error::InvalidMedia(_))), "{err}");
    let mut ftp = mk(&playlist);
    ftp.source = "ftp://example.com/a.mp4".into();
    let err = run(&ftp, &outputs).await.unwrap_err();
    assert!(matches!(&err, RenderError::InvalidRecipe(m) if m.contains("unsupported source scheme \"ftp\"")), "{err}");

    let src = source(dir.path(), "talk.mp4", "testsrc2=s=1280x720:r=30", 12, 0).await;
    let late = recipe(&src, 20.0, 30.0, Aspect::Vertical, Reframe::Fit, CaptionStyle::Bold);
    let err = run(&late, &outputs).await.unwrap_err();
    assert!(matches!(&err, RenderError::InvalidRecipe(m) if m.contains("starts after the end")), "{err}");
    // A range running past the end is cut at the end of the source.
    let tail = recipe(&src, 11.0, 14.0, Aspect::Square, Reframe::Fit, CaptionStyle::None);
    let r = run(&tail, &outputs).await.unwrap();
    check_outputs(&r, &tail, 1.0, 30.0).await;
    std::fs::remove_dir_all(&out).unwrap();

    let cancel = CancellationToken::new();
    let long = recipe(&src, 0.0, 12.0, Aspect::Vertical, Reframe::Fit, CaptionStyle::Bold);
    let trigger = cancel.clone();
    let err = render(
        &ff(),
        &long,
        &outputs,
        &RenderOptions::default(),
        move |p| {
            if p > 0.05 {
                trigger.cancel();
            }
        },
        &cancel,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RenderError::Media(Error::Cancelled)), "{err}");
    assert_only(&out, &[]);
}

/// An audio-only podcast (MP3, with and without cover art) becomes an
/// audiogram: a 1080×1920 short with its sound, a waveform that moves with
/// it, the captions in their box, and the cover art blurred behind, or a
/// plain background without one.
#[tokio::test]
async fn an_audio_only_podcast_becomes_an_audiogram_with_a_moving_waveform_and_captions() {
    let dir = tempfile::tempdir().unwrap();
    let speech = format!("{SPEECH},apad");
    let plain = generate(
        dir.path(),
        "podcast.mp3",
        &["-f", "lavfi", "-i", &speech, "-t", "6", "-c:a", "libmp3lame", "-b:a", "128k"],
    )
    .await;
    let covered = generate(
        dir.path(),
        "podcast-cover.mp3",
        &[
            "-f",
            "lavfi",
            "-i",
            &speech,
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=600x600",
            "-map",
            "0:a",
            "-map",
            "1:v",
            "-t",
            "6",
            "-frames:v",
            "1",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "128k",
            "-c:v",
            "mjpeg",
            "-disposition:v:0",
            "attached_pic",
            "-id3v2_version",
            "3",
        ],
    )
    .await;
    let probed = videdit_media::probe::probe(&ff(), &covered).await.unwrap();
    assert!(probed.display_size().is_none() && probed.cover_art().is_some(), "{probed:?}");
    videdit_media::pipeline::check_renderable(&probed).unwrap();

    let [_, y0, _, y1] = CaptionLayout::new(Aspect::Vertical, CaptionStyle::Bold).caption_box();
    let (y0, y1) = (y0 as usize, y1 as usize);
    let image =
        generate(dir.path(), "brand.png", &["-f", "lavfi", "-i", "color=c=0xd02020:s=640x640", "-frames:v", "1"]).await;
    let mut backgrounds = vec![];
    for (name, src, background) in
        [("plain", &plain, None), ("cover", &covered, None), ("image", &covered, Some(image.clone()))]
    {
        let mut recipe = recipe(src, 0.5, 4.5, Aspect::Vertical, Reframe::Fit, CaptionStyle::Bold);
        recipe.title = "Why 90% of people retire broke, and what to do about it".into();
        recipe.words = vec![word(" Hello", 0.6, 1.0), word(" and", 1.0, 1.2), word(" welcome", 1.2, 1.9)];
        let outputs = RenderOutputs::in_dir(&dir.path().join(name), "short");
        let options = RenderOptions { audiogram_background: background, ..RenderOptions::default() };
        let r = render(&ff(), &recipe, &outputs, &options, |_| {}, &CancellationToken::new()).await.unwrap();
        check_outputs(&r, &recipe, 4.0, 30.0).await;
        assert_eq!(r.caption_events, 3, "{name}");

        // The waveform band changes from one moment to the next.
        let (a, b) = (Frame::at(&r.video, 0.8, 1080).await, Frame::at(&r.video, 1.6, 1080).await);
        let band = |f: &Frame| -> Vec<u8> {
            let (top, bottom) = (y0.saturating_sub(700), y0.saturating_sub(60));
            f.rgb[top * 1080 * 3..bottom * 1080 * 3].to_vec()
        };
        let changed = band(&a).iter().zip(band(&b)).filter(|(x, y)| x.abs_diff(*y) > 40).count();
        assert!(changed > 5_000, "{name}: the waveform moves ({changed} bytes changed)");
        // The spoken word lights up in the caption box, and the title is
        // drawn at the top (its `%` drawn as it is, not expanded).
        assert!(a.find(y0, y1, highlight).0 > 300, "{name}: captions in their box");
        assert!(a.find(150, 420, white).0 > 2_000, "{name}: the title at the top");
        // The background at the top corner: flat without cover art, the
        // blurred picture with it.
        let corner: Vec<[u8; 3]> = (0..40)
            .map(|i| {
                let o = (20 * 1080 + 20 + i * 20) * 3;
                [a.rgb[o], a.rgb[o + 1], a.rgb[o + 2]]
            })
            .collect();
        backgrounds.push(corner);
    }
    // The largest difference of any pixel from the first, over the channels.
    let spread =
        |c: &[[u8; 3]]| c.iter().flat_map(|p| p.iter().zip(c[0]).map(|(a, b)| a.abs_diff(b))).max().unwrap_or(0);
    assert!(spread(&backgrounds[0]) < 12, "a plain background: {:?}", &backgrounds[0][..4]);
    assert!(backgrounds[0] != backgrounds[1], "the cover art shows behind");
    // A picture given in the options wins over the cover art: red, darkened.
    let [r, g, b] = backgrounds[2][0];
    assert!(r > g + 40 && r > b + 40, "the given picture shows behind: {:?}", &backgrounds[2][..4]);
    let missing = RenderOptions { audiogram_background: Some(dir.path().join("none.png")), ..RenderOptions::default() };
    let recipe = recipe(&plain, 0.5, 4.5, Aspect::Vertical, Reframe::Fit, CaptionStyle::Bold);
    let outputs = RenderOutputs::in_dir(&dir.path().join("missing"), "short");
    let err = render(&ff(), &recipe, &outputs, &missing, |_| {}, &CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, RenderError::InvalidOptions(ref m) if m.contains("none.png is not a file")), "{err}");
}

/// A picture given as a background is checked by decoding it as a render
/// opens it: PNG and JPEG pass; a cut file, a GIF and a playlist do not.
#[tokio::test]
async fn a_background_picture_is_checked_by_decoding_it() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["ok.png", "ok.jpg"] {
        let p = generate(dir.path(), name, &["-f", "lavfi", "-i", "testsrc2=s=640x360", "-frames:v", "1"]).await;
        check_picture(&ff(), &p).await.unwrap();
        assert!(!p.with_extension("check.raw").exists(), "the check leaves nothing behind");
    }
    let noisy = generate(
        dir.path(),
        "noisy.png",
        &["-f", "lavfi", "-i", "nullsrc=s=640x360,geq=random(1)*255:128:128", "-frames:v", "1"],
    )
    .await;
    let bytes = std::fs::read(&noisy).unwrap();
    let cut = dir.path().join("cut.png");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let gif = generate(dir.path(), "p.gif", &["-f", "lavfi", "-i", "testsrc2=s=64x64", "-frames:v", "1"]).await;
    let playlist = dir.path().join("list.png");
    std::fs::write(&playlist, "#EXTM3U\n#EXT-X-TARGETDURATION:1\nhttp://169.254.169.254/x.ts\n").unwrap();
    for bad in [cut, gif, playlist] {
        let err = check_picture(&ff(), &bad).await.unwrap_err();
        assert!(matches!(err, RenderError::Media(_)), "{}: {err}", bad.display());
    }
}
