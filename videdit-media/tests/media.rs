//! The ffmpeg gateway and probing against real ffmpeg and real (bad) files.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use videdit_media::Error;
use videdit_media::probe::{MediaLimits, probe, validate};
use videdit_media::process::{Ffmpeg, Progress, Run, file_arg};

fn ff() -> Ffmpeg {
    Ffmpeg::default()
}

async fn generate(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut all: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    all.push(file_arg(&out));
    ff().run(Run { args: all, media_seconds: 5.0, on_progress: None, cancel: None }).await.unwrap();
    out
}

async fn talk(dir: &Path) -> PathBuf {
    generate(
        dir,
        "talk.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x240:r=25:d=3",
            "-f",
            "lavfi",
            "-i",
            "sine=d=3",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-shortest",
        ],
    )
    .await
}

#[tokio::test]
async fn a_real_video_probes_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    let path = talk(dir.path()).await;
    let info = probe(&ff(), &path).await.unwrap();
    assert!(info.container.contains("mp4"), "{}", info.container);
    assert!((info.duration - 3.0).abs() < 0.2, "{}", info.duration);
    assert_eq!(info.display_size(), Some((320, 240)));
    assert_eq!(info.video().unwrap().frame_rate, Some(25.0));
    validate(&info, &MediaLimits::default()).unwrap();
    let mp3 = generate(dir.path(), "song.mp3", &["-f", "lavfi", "-i", "sine=d=2", "-c:a", "libmp3lame"]).await;
    let info = probe(&ff(), &mp3).await.unwrap();
    assert!(info.video().is_none());
    validate(&info, &MediaLimits::default()).unwrap();
}

#[tokio::test]
async fn bad_files_get_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(probe(&ff(), &empty).await, Err(Error::InvalidMedia(_))));
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "these are my meeting notes, not a video\n".repeat(50)).unwrap();
    assert!(matches!(probe(&ff(), &text).await, Err(Error::InvalidMedia(_))));
    let good = talk(dir.path()).await;
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    assert!(matches!(probe(&ff(), &truncated).await, Err(Error::InvalidMedia(_))));
    let silent = generate(
        dir.path(),
        "silent.mp4",
        &["-f", "lavfi", "-i", "testsrc2=d=2", "-c:v", "libx264", "-preset", "ultrafast"],
    )
    .await;
    let info = probe(&ff(), &silent).await.unwrap();
    assert!(matches!(validate(&info, &MediaLimits::default()), Err(Error::NoAudio)));
    assert!(matches!(probe(&ff(), &dir.path().join("missing.mp4")).await, Err(Error::Io { .. })));
}

#[tokio::test]
async fn playlists_and_concat_lists_disguised_as_mp4_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "secret.ts", &["-f", "lavfi", "-i", "sine=d=2", "-c:a", "aac", "-f", "mpegts"]).await;
    let hls = dir.path().join("evil.mp4");
    std::fs::write(&hls, "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nsecret.ts\n#EXT-X-ENDLIST\n").unwrap();
    // Without the whitelists ffprobe follows the playlist to the other file ...
    let unsafe_out =
        ff().ffprobe(&["-show_format", "-of", "json", hls.to_str().unwrap()], Duration::from_secs(10)).await.unwrap();
    assert!(String::from_utf8_lossy(&unsafe_out).contains("\"hls\""), "the test file really is a playlist");
    // ... with them (the only difference), it is refused.
    let err = probe(&ff(), &hls).await.unwrap_err();
    assert!(matches!(&err, Error::InvalidMedia(_)), "{err}");
    let concat = dir.path().join("list.mp4");
    std::fs::write(&concat, "ffconcat version 1.0\nfile secret.ts\n").unwrap();
    assert!(matches!(probe(&ff(), &concat).await, Err(Error::InvalidMedia(_))));
}

#[tokio::test]
async fn runs_time_out_keep_stderr_and_report_progress() {
    let mut slow = ff();
    slow.base_timeout = Duration::from_secs(1);
    slow.timeout_per_media_second = 0.0;
    let started = Instant::now();
    let err = slow
        .run(Run {
            args: vec![
                "-re".into(),
                "-f".into(),
                "lavfi".into(),
                "-i".into(),
                "sine".into(),
                "-f".into(),
                "null".into(),
                "-".into(),
            ],
            media_seconds: 0.0,
            on_progress: None,
            cancel: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { what: "timed out", .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let err = ff()
        .run(Run {
            args: vec!["-i".into(), "file:/no/such/input.mp4".into(), "-f".into(), "null".into(), "-".into()],
            media_seconds: 1.0,
            on_progress: None,
            cancel: None,
        })
        .await
        .unwrap_err();
    match &err {
        Error::Failed { stderr, .. } => assert!(stderr.iter().any(|l| l.contains("No such file")), "{stderr:?}"),
        other => panic!("{other}"),
    }

    let seen = Mutex::new(Vec::<Progress>::new());
    let record = |p: Progress| seen.lock().unwrap().push(p);
    ff().run(Run {
        args: [
            "-f",
            "lavfi",
            "-i",
            "testsrc2=d=20:s=640x360",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-f",
            "null",
            "-",
        ]
        .map(String::from)
        .to_vec(),
        media_seconds: 20.0,
        on_progress: Some(&record),
        cancel: None,
    })
    .await
    .unwrap();
    let seen = seen.into_inner().unwrap();
    assert!(!seen.is_empty(), "progress was reported");
    assert!(seen.windows(2).all(|w| w[1].time >= w[0].time));
    assert!(seen.last().unwrap().time > 10.0, "{:?}", seen.last());
}

#[tokio::test]
async fn a_cancelled_run_stops() {
    let cancel = tokio_util::sync::CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.cancel();
    });
    let started = Instant::now();
    let err = ff()
        .run(Run {
            args: ["-re", "-f", "lavfi", "-i", "sine", "-f", "null", "-"].map(String::from).to_vec(),
            media_seconds: 100.0,
            on_progress: None,
            cancel: Some(cancel),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled));
    assert!(started.elapsed() < Duration::from_secs(3));
}
