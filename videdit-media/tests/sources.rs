//! Awkward sources real users upload, rendered into a 9:16 short: a
//! vertical phone video, a 4K video, a variable frame rate phone video, a
//! phone video stored sideways with a rotation flag, and a 1-second clip.

use std::path::Path;

use tokio_util::sync::CancellationToken;
use videdit_core::recipe::{Aspect, CaptionStyle, ClipRecipe, RECIPE_VERSION, Reframe};
use videdit_core::time_range::TimeRange;
use videdit_core::transcript::Word;
use videdit_media::process::{Ffmpeg, file_arg};
use videdit_media::render::{RenderOptions, RenderOutputs, Rendered, render};
use videdit_media::testing::{Frame, Rect, ffprobe_json, generate, looks_like, seconds_of, stream_of};

/// Renders 0.5..end of `src` to 9:16 with captions and checks the output.
async fn renders_vertical(src: &Path, end: f64, reframe: Reframe) -> Rendered {
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
    let p = ffprobe_json(&r.video).await;
    let v = stream_of(&p, "video");
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(1080), Some(1920)));
    assert_eq!(v["pix_fmt"], "yuv420p");
    let seconds = seconds_of(&p["format"]["duration"]);
    assert!((seconds - (end - 0.5)).abs() <= 1.0 / r.fps + 0.03, "{}: {seconds}", src.display());
    assert!(p["streams"].as_array().unwrap().iter().any(|s| s["codec_type"] == "audio"));
    r
}

const TONE: &str = "sine=frequency=440:sample_rate=48000";

#[tokio::test]
async fn vertical_4k_and_variable_rate_sources_render() {
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
    let vertical = generate(d, "vertical.mp4", &vertical, 3.0).await;
    let uhd = generate(d, "uhd.mp4", &uhd, 3.0).await;
    let vfr = generate(d, "vfr.mp4", &vfr, 3.0).await;
    for (src, reframe) in [
        (&vertical, Reframe::Fit),
        (&vertical, Reframe::Crop { x: None }),
        (&uhd, Reframe::Crop { x: Some(0.3) }),
        (&uhd, Reframe::Fit),
        (&vfr, Reframe::Fit),
    ] {
        renders_vertical(src, 2.5, reframe).await;
    }
}

/// The display matrix's rotation as ffprobe reports it: degrees
/// counterclockwise.
async fn display_rotation(path: &Path) -> i64 {
    let p = ffprobe_json(path).await;
    let v = stream_of(&p, "video");
    let side = v["side_data_list"].as_array().unwrap_or_else(|| panic!("no display matrix: {v}"));
    side.iter().find_map(|d| d["rotation"].as_i64()).unwrap_or_else(|| panic!("no rotation: {v}"))
}

/// Where a rectangle of a stored `w`×`h` picture is shown once it is
/// turned `ccw` degrees counterclockwise, as a display matrix does.
fn displayed(r: Rect, (w, h): (f64, f64), ccw: i64) -> Rect {
    match ccw.rem_euclid(360) {
        0 => r,
        // The left column becomes the bottom row.
        90 => Rect::new(r.y0, r.y1, w - r.x1, w - r.x0),
        180 => Rect::new(w - r.x1, w - r.x0, h - r.y1, h - r.y0),
        // The left column becomes the top row.
        270 => Rect::new(h - r.y1, h - r.y0, r.x0, r.x1),
        other => panic!("not a right angle: {other}"),
    }
}

#[tokio::test]
async fn a_phone_video_stored_sideways_is_shown_the_way_up_its_rotation_says() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Landscape pixels (1920×1080) with a red box, wider than high, in the
    // top-left quadrant, on a flat background.
    let (stored, marker) = ((1920.0, 1080.0), Rect::new(100.0, 500.0, 60.0, 300.0));
    let picture = format!(
        "color=c=0x203040:s=1920x1080:r=30,drawbox=x={}:y={}:w={}:h={}:color=0xFF0000:t=fill",
        marker.x0,
        marker.y0,
        marker.x1 - marker.x0,
        marker.y1 - marker.y0
    );
    let args = ["-f", "lavfi", "-i", &picture, "-f", "lavfi", "-i", TONE, "-c:v", "libx264", "-preset", "ultrafast"];
    let args: Vec<&str> = args.into_iter().chain(["-pix_fmt", "yuv420p", "-c:a", "aac", "-t", "3"]).collect();
    let landscape = generate(d, "landscape.mp4", &args, 3.0).await;
    let mut rotations = vec![];
    for tag in ["90", "270"] {
        // The same pixels with a display matrix turning them a quarter turn:
        // shown as 1080×1920 portrait, one way or the other.
        let meta = format!("rotate={tag}");
        let name = format!("rotated{tag}.mp4");
        let src = generate(d, &name, &["-i", &file_arg(&landscape), "-c", "copy", "-metadata:s:v:0", &meta], 3.0).await;
        let ccw = display_rotation(&src).await;
        rotations.push(ccw);
        let info = videdit_media::probe::probe(&Ffmpeg::default(), &src).await.unwrap();
        assert_eq!(info.display_size(), Some((1080, 1920)), "{tag}");

        // 1080×1920 is already 9:16, so the whole displayed picture is the
        // short, pixel for pixel: the box is where the rotation puts it.
        let r = renders_vertical(&src, 2.5, Reframe::Crop { x: None }).await;
        let want = displayed(marker, stored, ccw);
        let frame = Frame::at(&r.video, 1.0, 1080).await;
        let (n, found) = frame.region(looks_like([255, 0, 0]));
        let found = found.unwrap_or_else(|| panic!("rotate={tag}: no red pixels in the short"));
        assert_eq!(
            found.corner(1080.0, 1920.0),
            want.corner(1080.0, 1920.0),
            "rotate={tag} ({ccw}° counterclockwise): the box is at {found:?}, want {want:?}"
        );
        assert!(found.near(&want, 2.0), "rotate={tag}: the box is at {found:?}, want {want:?}");
        let area = (want.x1 - want.x0) * (want.y1 - want.y0);
        assert!((n as f64 - area).abs() < area * 0.03, "rotate={tag}: {n} red pixels, want about {area}");
    }
    // One file turns each way (which way a tag turns is the muxer's reading
    // of it; the expected places above come from the matrix written).
    rotations.sort_unstable();
    assert_eq!(rotations, [-90, 90]);
}

#[tokio::test]
async fn a_one_second_clip_renders_what_there_is() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i", TONE, "-t", "1"];
    let clip = generate(dir.path(), "one.mp4", &args, 1.0).await;
    renders_vertical(&clip, 1.0, Reframe::Fit).await;
}

/// Serves `bytes` over HTTP/1.1 with `Range` support; the first GET sends
/// the headers for the whole body, half of it, and then drops the
/// connection (a storage server restarting mid-read). Returns the URL and
/// the number of GETs served.
async fn flaky_http(bytes: Vec<u8>) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gets = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (bytes, count) = (std::sync::Arc::new(bytes), gets.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { continue };
            let (bytes, count) = (bytes.clone(), count.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if conn.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_lowercase();
                let n = count.fetch_add(1, Ordering::SeqCst);
                let from: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("range: bytes="))
                    .and_then(|r| r.split('-').next())
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                let total = bytes.len();
                let status = if from > 0 { "206 Partial Content" } else { "200 OK" };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: video/mp4\r\nAccept-Ranges: bytes\r\nContent-Length: {}\r\n\
                     Content-Range: bytes {from}-{}/{total}\r\nConnection: close\r\n\r\n",
                    total - from,
                    total - 1
                );
                let _ = conn.write_all(resp.as_bytes()).await;
                let end = if n == 0 { total / 2 } else { total };
                let _ = conn.write_all(&bytes[from..end]).await;
                // The first answer ends here, mid-body: the connection is dropped.
            });
        }
    });
    (format!("http://{addr}/source.mp4?sig=x"), gets)
}

#[tokio::test]
async fn a_read_whose_connection_drops_midway_is_resumed_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let src = generate(
        dir.path(),
        "tone.mp4",
        &["-f", "lavfi", "-i", "sine=frequency=440:duration=20", "-c:a", "aac", "-movflags", "+faststart"],
        20.0,
    )
    .await;
    let (url, gets) = flaky_http(std::fs::read(&src).unwrap()).await;
    let ffmpeg = Ffmpeg::default();
    let mut reader =
        videdit_media::audio::open(&ffmpeg, &url, Default::default(), 20.0, CancellationToken::new()).unwrap();
    let mut samples = 0usize;
    while let Some(chunk) = reader.next_chunk(16_000).await.unwrap() {
        samples += chunk.len();
    }
    let seconds = samples as f64 / 16_000.0;
    // Without reconnecting, ffmpeg takes the cut for the end and stops near 10 s.
    assert!((seconds - 20.0).abs() < 0.2, "read {seconds:.2} s of 20");
    assert!(gets.load(std::sync::atomic::Ordering::SeqCst) >= 2, "the read was resumed with a second request");
}
