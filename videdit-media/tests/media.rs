//! The ffmpeg gateway and probing against real ffmpeg and real (bad) files,
//! hostile ones included: files that hold more than they declare, and
//! children over their memory or CPU time limits.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use videdit_media::Error;
use videdit_media::audio::{self, AudioRange, SAMPLE_RATE};
use videdit_media::error::ChildResource;
use videdit_media::pipeline::{audio_features, probe_source};
use videdit_media::probe::{MediaLimits, probe, validate};
use videdit_media::process::{Ffmpeg, Progress, Run, read_limit};
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
    assert!(err.is_timeout() && err.is_retryable());
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

#[tokio::test]
async fn a_file_holding_more_than_it_declares_is_read_only_as_far_as_it_declares() {
    // 60 s of audio whose headers, container and stream alike, say 3 s.
    let dir = tempfile::tempdir().unwrap();
    let path = testing::understated_mka(dir.path(), "liar.mka", 60.0, 3.0, true).await;
    let input = path.to_str().unwrap();
    let info = probe_source(&ff(), input, &MediaLimits::default()).await.expect("nothing in the headers betrays it");
    assert!((info.duration - 3.0).abs() < 0.01, "{}", info.duration);
    let bound = read_limit(info.duration).unwrap();
    assert!((bound - 5.0).abs() < 0.01, "{bound}");

    // It really holds 60 s: read as if it declared them, they come out ...
    let cancel = CancellationToken::new();
    let all = audio::extract(&ff(), input, AudioRange::default(), 60.0, cancel.clone()).await.unwrap();
    assert!(all.len() as f64 / f64::from(SAMPLE_RATE) > 59.0, "{}", all.len());
    // ... but the stages, given the probed duration, stop at it and the margin.
    let seconds = |samples: &[f32]| samples.len() as f64 / f64::from(SAMPLE_RATE);
    let extracted = audio::extract(&ff(), input, AudioRange::default(), info.duration, cancel.clone()).await.unwrap();
    assert!((3.0..=bound + 0.05).contains(&seconds(&extracted)), "{} s extracted", seconds(&extracted));
    let features = audio_features(&ff(), input, info.duration, dir.path(), &cancel).await.unwrap();
    let measured = features.rms_db.len() as f64 * features.frame_seconds;
    assert!((3.0..=bound + 0.2).contains(&measured), "{measured} s measured");
}

#[tokio::test]
async fn a_container_its_streams_contradict_is_refused_at_ingest() {
    let dir = tempfile::tempdir().unwrap();
    // The container says 3 s; its stream's tag still says 60.
    let path = testing::understated_mka(dir.path(), "liar.mka", 60.0, 3.0, false).await;
    let err = probe_source(&ff(), path.to_str().unwrap(), &MediaLimits::default()).await.unwrap_err();
    assert!(matches!(err, Error::DurationMismatch { declared, streams } if declared == 3.0 && streams > 59.9), "{err}");
    assert_eq!(err.code().as_str(), "invalid_media");
    assert!(!err.is_retryable());
    // The same file, honest, is fine.
    let honest = testing::understated_mka(dir.path(), "honest.mka", 6.0, 6.0, false).await;
    probe_source(&ff(), honest.to_str().unwrap(), &MediaLimits::default()).await.unwrap();
}

fn own_address_space_limit() -> (libc::rlim_t, libc::rlim_t) {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given and nothing else.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_AS, &raw mut l) }, 0);
    (l.rlim_cur, l.rlim_max)
}

#[tokio::test]
async fn a_child_over_its_memory_limit_dies_alone_with_a_typed_error() {
    let before = own_address_space_limit();
    let with_memory = |bytes: u64| Ffmpeg { child_memory_bytes: Some(bytes), ..ff() };
    let is_memory = |e: &Error, limit: u64| matches!(e, Error::ResourceLimit { resource: ChildResource::Memory { bytes }, .. } if *bytes == limit);

    // A limit too small to start: every way of running a child reports it.
    let tiny = with_memory(16 << 20);
    let sine = ["-f", "lavfi", "-i", "sine=d=1", "-f", "null", "-"].map(String::from).to_vec();
    let err =
        tiny.run(Run { args: sine.clone(), media_seconds: 1.0, on_progress: None, cancel: None }).await.unwrap_err();
    assert!(is_memory(&err, 16 << 20), "{err}");
    assert_eq!(err.code().as_str(), "invalid_media");
    assert!(!err.is_retryable() && !err.is_timeout());
    assert!(err.to_string().contains("went over its memory limit of 16 MiB"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let mp3 = generate(dir.path(), "a.mp3", &["-f", "lavfi", "-i", "sine=d=1", "-c:a", "libmp3lame"]).await;
    let err = probe(&tiny, &mp3).await.unwrap_err();
    assert!(is_memory(&err, 16 << 20), "{err}");
    let input = mp3.to_str().unwrap();
    let err = audio::extract(&tiny, input, AudioRange::default(), 1.0, CancellationToken::new()).await.unwrap_err();
    assert!(is_memory(&err, 16 << 20), "{err}");

    // A limit ordinary work stays under, and a run that would need
    // gigabytes (ten hours of audio held to be reversed): stopped at the
    // first failed allocation, not when it is done.
    let limited = with_memory(640 << 20);
    limited.run(Run { args: sine, media_seconds: 1.0, on_progress: None, cancel: None }).await.unwrap();
    let marked = token("bomb");
    let bomb = ["-filter_threads", "1", "-f", "lavfi", "-i", "sine=d=36000", "-af", "areverse", "-threads", "1"];
    let mut args: Vec<String> = bomb.map(String::from).to_vec();
    args.extend(["-metadata", &marked, "-f", "null", "-"].map(String::from));
    let run = limited.run(Run { args, media_seconds: 36000.0, on_progress: None, cancel: None });
    let err = tokio::time::timeout(HANG, run).await.expect("the bomb was not stopped").unwrap_err();
    assert!(is_memory(&err, 640 << 20), "{err}");
    match &err {
        Error::ResourceLimit { stderr, .. } => {
            assert!(stderr.iter().any(|l| l.contains("Cannot allocate memory")), "{stderr:?}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(processes_with(&marked), Vec::<u32>::new(), "the child was killed");
    // The worker (this test) lives on, its own limit untouched.
    assert_eq!(own_address_space_limit(), before);
}

#[tokio::test]
async fn a_child_over_its_cpu_time_is_killed_with_a_timeout_error() {
    // A deadline far away, and 1 CPU second for the whole run.
    let ffmpeg = Ffmpeg {
        base_timeout: Duration::from_secs(100),
        timeout_per_media_second: 0.0,
        child_cpu_per_deadline_second: Some(0.01),
        ..ff()
    };
    let marked = token("cpu");
    let busy = ["-f", "lavfi", "-i", "testsrc2=s=1280x720:d=3600", "-c:v", "libx264", "-preset", "medium"];
    let mut args: Vec<String> = busy.map(String::from).to_vec();
    args.extend(["-threads", "1", "-metadata", &marked, "-f", "null", "-"].map(String::from));
    let started = std::time::Instant::now();
    let run = ffmpeg.run(Run { args, media_seconds: 3600.0, on_progress: None, cancel: None });
    let err = tokio::time::timeout(HANG, run).await.expect("the CPU limit did not stop the run").unwrap_err();
    assert!(matches!(&err, Error::ResourceLimit { resource: ChildResource::CpuTime { seconds: 1 }, .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert_eq!(err.code().as_str(), "timeout");
    assert!(err.is_timeout() && err.is_retryable());
    assert_eq!(processes_with(&marked), Vec::<u32>::new());
}
