//! The ffmpeg gateway and probing against real ffmpeg and real (bad) files.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use videdit_media::Error;
use videdit_media::probe::{MediaLimits, probe, validate};
use videdit_media::process::{Ffmpeg, Progress, Run};
use videdit_media::testing;

fn ff() -> Ffmpeg {
    Ffmpeg::default()
}

/// A generous bound on runs that should end on their own; hitting it means
/// the run hung.
const HANG: Duration = Duration::from_secs(120);

/// An argument no other process has: put it on a run's command line to find
/// that ffmpeg among the running processes.
fn token(name: &str) -> String {
    format!("comment=videdit-test-{}-{name}", std::process::id())
}

/// Live processes with `arg` on their command line (a zombie's is empty).
fn processes_with(arg: &str) -> Vec<u32> {
    let mut found = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        if cmdline.split(|&b| b == 0).any(|a| a == arg.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

async fn generate(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    testing::generate(dir, name, args, 5.0).await
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
    assert_eq!(info.container, "mov,mp4,m4a,3gp,3g2,mj2");
    assert!((info.duration - 3.0).abs() <= 0.04, "within a frame: {}", info.duration);
    assert_eq!(info.streams.len(), 2);
    assert_eq!(info.video().unwrap().codec, "h264");
    let audio = info.audio().unwrap();
    assert_eq!((audio.codec.as_str(), audio.sample_rate, audio.channels), ("aac", Some(44100), Some(1)));
    assert_eq!(info.display_size(), Some((320, 240)));
    assert_eq!(info.video().unwrap().frame_rate, Some(25.0));
    validate(&info, &MediaLimits::default()).unwrap();
    let mp3 = generate(dir.path(), "song.mp3", &["-f", "lavfi", "-i", "sine=d=2", "-c:a", "libmp3lame"]).await;
    let info = probe(&ff(), &mp3).await.unwrap();
    assert_eq!(info.container, "mp3");
    assert!(info.video().is_none());
    assert_eq!(info.streams.len(), 1);
    assert_eq!(info.audio().unwrap().codec, "mp3");
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
    // An endless real-time input with a 1 s deadline: only the deadline ends it.
    let mut slow = ff();
    slow.base_timeout = Duration::from_secs(1);
    slow.timeout_per_media_second = 0.0;
    let marked = token("timeout");
    let endless = ["-re", "-f", "lavfi", "-i", "sine", "-metadata", &marked, "-f", "null", "-"];
    let run =
        slow.run(Run { args: endless.map(String::from).to_vec(), media_seconds: 0.0, on_progress: None, cancel: None });
    let err = tokio::time::timeout(HANG, run).await.expect("the 1 s deadline did not stop the run").unwrap_err();
    assert!(matches!(&err, Error::Timeout { what: "timed out", seconds, .. } if *seconds == 1.0), "{err}");
    assert_eq!(err.code().as_str(), "timeout");
    assert_eq!(processes_with(&marked), Vec::<u32>::new(), "ffmpeg was killed at the deadline");

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
    assert!(seen.windows(2).all(|w| w[1].time >= w[0].time), "{seen:?}");
    // The last report is the end of the 20 s input (to a frame at 25 fps).
    let last = seen.last().expect("progress was reported").time;
    assert!((last - 20.0).abs() <= 0.04, "{seen:?}");
}

#[tokio::test]
async fn a_cancelled_run_stops() {
    // An endless real-time input, cancelled as soon as ffmpeg reports
    // progress (it is running then); its process is found by a marker.
    let cancel = tokio_util::sync::CancellationToken::new();
    let marked = token("cancel");
    let running = Mutex::new(None::<Vec<u32>>);
    let trigger = cancel.clone();
    let on_progress = |_: Progress| {
        running.lock().unwrap().get_or_insert_with(|| processes_with(&marked));
        trigger.cancel();
    };
    let ffmpeg = ff();
    let run = ffmpeg.run(Run {
        args: ["-re", "-f", "lavfi", "-i", "sine", "-metadata", &marked, "-f", "null", "-"].map(String::from).to_vec(),
        media_seconds: 100.0,
        on_progress: Some(&on_progress),
        cancel: Some(cancel.clone()),
    });
    let err = tokio::time::timeout(HANG, run).await.expect("the cancelled run did not stop").unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert!(cancel.is_cancelled());
    let pids = running.into_inner().unwrap().expect("ffmpeg reported progress before it was cancelled");
    assert_eq!(pids.len(), 1, "one ffmpeg with the marker while running: {pids:?}");
    // Killed and reaped: not even a zombie is left.
    assert!(!Path::new(&format!("/proc/{}", pids[0])).exists(), "ffmpeg {} is still there", pids[0]);
    assert_eq!(processes_with(&marked), Vec::<u32>::new());
}
