//! The one gateway to ffmpeg and ffprobe: nothing else in videdit spawns them.
//!
//! Every run has a deadline (a base plus a multiple of the media's
//! duration) and a no-progress timeout; the child is killed when either
//! runs out, when the run is cancelled, or when the future is dropped. The
//! last lines of stderr are kept for the error. ffmpeg's progress (media
//! time and speed) goes to a callback. Inputs are opened with a protocol
//! whitelist and, once probed, a demuxer whitelist, so a hostile file
//! cannot make ffmpeg read other files or URLs.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ffmpeg_sidecar::command::FfmpegCommand;
use ffmpeg_sidecar::event::{FfmpegEvent, LogLevel};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::{Error, Result};

/// Demuxers of real media containers; anything else (HLS and DASH
/// playlists, concat lists, image sequences, `tee`, …) is refused.
pub const ALLOWED_DEMUXERS: &str = "mov,matroska,webm,mp3,wav,flac,ogg,aac,mpegts,avi,flv,asf,m4v,mpeg,w64,aiff,caf";

/// How many stderr lines an error keeps.
const STDERR_TAIL: usize = 12;

/// Where the binaries are and how long runs may take.
#[derive(Debug, Clone)]
pub struct Ffmpeg {
    /// The ffmpeg binary (`FFMPEG_BINARY`).
    pub ffmpeg: PathBuf,
    /// The ffprobe binary (beside ffmpeg).
    pub ffprobe: PathBuf,
    /// Fixed part of every deadline.
    pub base_timeout: Duration,
    /// Seconds of deadline per second of media.
    pub timeout_per_media_second: f64,
    /// Longest time without any output from ffmpeg.
    pub no_progress_timeout: Duration,
}

impl Ffmpeg {
    /// Binaries from `FFMPEG_BINARY` (ffprobe is looked up beside it).
    #[must_use]
    pub fn new(ffmpeg: impl Into<PathBuf>) -> Self {
        let ffmpeg = ffmpeg.into();
        let ffprobe = match ffmpeg.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join("ffprobe"),
            _ => PathBuf::from("ffprobe"),
        };
        Self {
            ffmpeg,
            ffprobe,
            base_timeout: Duration::from_secs(60),
            timeout_per_media_second: 3.0,
            no_progress_timeout: Duration::from_secs(60),
        }
    }

    /// The deadline for work on `media_seconds` of media.
    #[must_use]
    pub fn deadline_for(&self, media_seconds: f64) -> Duration {
        self.base_timeout + Duration::from_secs_f64(media_seconds.max(0.0) * self.timeout_per_media_second)
    }
}

impl Default for Ffmpeg {
    fn default() -> Self {
        Self::new("ffmpeg")
    }
}

/// A progress report from ffmpeg.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Media time written so far, in seconds.
    pub time: f64,
    /// Processing speed as a multiple of real time.
    pub speed: f32,
}

/// One ffmpeg run.
pub struct Run<'a> {
    /// Arguments after the binary (`-hide_banner` and `-nostdin` are added).
    pub args: Vec<String>,
    /// Duration of the media the run processes (sets the deadline).
    pub media_seconds: f64,
    /// Progress callback.
    pub on_progress: Option<&'a (dyn Fn(Progress) + Send + Sync)>,
    /// Stops the run.
    pub cancel: Option<CancellationToken>,
}

/// Kills the child if the run is abandoned.
struct KillOnDrop(Option<ffmpeg_sidecar::child::FfmpegChild>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn parse_clock(t: &str) -> Option<f64> {
    let mut total = 0.0;
    for part in t.trim().split(':') {
        total = total * 60.0 + part.parse::<f64>().ok()?;
    }
    Some(total)
}

impl Ffmpeg {
    /// Runs ffmpeg to its end.
    ///
    /// # Errors
    /// [`Error::Spawn`], [`Error::Failed`] with the stderr tail,
    /// [`Error::Timeout`], or [`Error::Cancelled`].
    pub async fn run(&self, run: Run<'_>) -> Result<()> {
        let span = tracing::info_span!("ffmpeg", args = %run.args.join(" "));
        self.run_inner(run).instrument(span).await
    }

    async fn run_inner(&self, run: Run<'_>) -> Result<()> {
        let program = self.ffmpeg.display().to_string();
        let mut cmd = FfmpegCommand::new_with_path(&self.ffmpeg);
        cmd.args(["-hide_banner", "-nostdin"]).args(&run.args);
        let mut child = cmd.spawn().map_err(|source| Error::Spawn { program: program.clone(), source })?;
        let iter = child.iter().map_err(|e| Error::Failed {
            program: program.clone(),
            status: "no output".into(),
            stderr: vec![e.to_string()],
        })?;
        let mut guard = KillOnDrop(Some(child));

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // The sidecar iterator blocks: read it on a blocking thread.
        tokio::task::spawn_blocking(move || {
            for event in iter {
                if tx.send(event).is_err() {
                    break;
                }
            }
        });

        let deadline = Instant::now() + self.deadline_for(run.media_seconds);
        let cancel = run.cancel.unwrap_or_default();
        let mut tail: VecDeque<String> = VecDeque::with_capacity(STDERR_TAIL);
        let mut errored = false;
        loop {
            let no_progress = tokio::time::sleep(self.no_progress_timeout);
            let overall = tokio::time::sleep_until(deadline.into());
            let event = tokio::select! {
                e = rx.recv() => e,
                () = no_progress => {
                    return Err(Error::Timeout { program, what: "made no progress", seconds: self.no_progress_timeout.as_secs_f64(), stderr: tail.into() });
                }
                () = overall => {
                    return Err(Error::Timeout { program, what: "timed out", seconds: self.deadline_for(run.media_seconds).as_secs_f64(), stderr: tail.into() });
                }
                () = cancel.cancelled() => return Err(Error::Cancelled),
            };
            match event {
                None | Some(FfmpegEvent::Done) => break,
                Some(FfmpegEvent::Progress(p)) => {
                    if let (Some(cb), Some(time)) = (run.on_progress, parse_clock(&p.time)) {
                        cb(Progress { time, speed: p.speed });
                    }
                }
                Some(FfmpegEvent::Log(level, line)) => {
                    if matches!(level, LogLevel::Error | LogLevel::Fatal) {
                        errored = true;
                    }
                    if tail.len() == STDERR_TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
                Some(FfmpegEvent::Error(e)) => {
                    if tail.len() == STDERR_TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(e);
                }
                Some(_) => {}
            }
        }
        let mut child = guard.0.take().expect("the child is still here");
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .map_err(|e| Error::Io { op: "waiting for ffmpeg", source: std::io::Error::other(e) })?
            .map_err(|source| Error::Io { op: "waiting for ffmpeg", source })?;
        if status.success() {
            if errored {
                tracing::debug!(stderr = ?tail, "ffmpeg reported errors but succeeded");
            }
            Ok(())
        } else {
            Err(Error::Failed { program, status: status.to_string(), stderr: tail.into() })
        }
    }

    /// Runs ffprobe and returns its stdout (JSON).
    ///
    /// # Errors
    /// [`Error::Spawn`], [`Error::Failed`] with the stderr tail, or
    /// [`Error::Timeout`] after `timeout`.
    pub async fn ffprobe(&self, args: &[&str], timeout: Duration) -> Result<Vec<u8>> {
        let program = self.ffprobe.display().to_string();
        let child = spawn_piped(&self.ffprobe, &["-hide_banner", "-v", "error"], args)?;
        let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(out) => out.map_err(|source| Error::Io { op: "running ffprobe", source })?,
            Err(_) => {
                return Err(Error::Timeout {
                    program,
                    what: "timed out",
                    seconds: timeout.as_secs_f64(),
                    stderr: vec![],
                });
            }
        };
        if out.status.success() {
            Ok(out.stdout)
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<String> = stderr.lines().rev().take(STDERR_TAIL).map(str::to_owned).collect();
            Err(Error::Failed { program, status: out.status.to_string(), stderr: lines.into_iter().rev().collect() })
        }
    }
}

/// Starts `program` with `fixed` then `args`, no stdin, stdout and stderr
/// piped; the child is killed when it is dropped.
fn spawn_piped(program: &Path, fixed: &[&str], args: &[impl AsRef<std::ffi::OsStr>]) -> Result<tokio::process::Child> {
    tokio::process::Command::new(program)
        .args(fixed)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| Error::Spawn { program: program.display().to_string(), source })
}

/// An ffmpeg run whose stdout is read as a stream (raw audio samples, for
/// example), started by [`Ffmpeg::spawn_stdout`].
///
/// The deadline and the no-progress timeout count only the time spent
/// waiting in [`StdoutRun::read`]: a consumer that stops reading for a
/// while (to transcribe what it has) stalls ffmpeg on a full pipe without
/// that counting against it. The child is killed when the run is dropped.
pub struct StdoutRun {
    program: String,
    child: tokio::process::Child,
    stdout: tokio::process::ChildStdout,
    tail: std::sync::Arc<std::sync::Mutex<VecDeque<String>>>,
    stderr_task: Option<tokio::task::JoinHandle<()>>,
    budget: Duration,
    waited: Duration,
    no_progress_timeout: Duration,
    cancel: CancellationToken,
    span: tracing::Span,
}

impl Ffmpeg {
    /// Starts ffmpeg with its stdout piped to the caller (the arguments
    /// must write to `pipe:1`). `media_seconds` sets the deadline as for
    /// [`Ffmpeg::run`].
    ///
    /// # Errors
    /// [`Error::Spawn`] when ffmpeg cannot be started.
    pub fn spawn_stdout(&self, args: &[String], media_seconds: f64, cancel: CancellationToken) -> Result<StdoutRun> {
        use tokio::io::AsyncBufReadExt;
        let span = tracing::info_span!("ffmpeg", args = %args.join(" "));
        let program = self.ffmpeg.display().to_string();
        let mut child = spawn_piped(&self.ffmpeg, &["-hide_banner", "-nostdin", "-nostats"], args)?;
        let stdout = child.stdout.take().ok_or_else(|| Error::Io {
            op: "opening ffmpeg's stdout",
            source: std::io::Error::other("no stdout pipe"),
        })?;
        let tail = std::sync::Arc::new(std::sync::Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let stderr_task = child.stderr.take().map(|stderr| {
            let tail = tail.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut t = tail.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    if t.len() == STDERR_TAIL {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            })
        });
        Ok(StdoutRun {
            program,
            child,
            stdout,
            tail,
            stderr_task,
            budget: self.deadline_for(media_seconds),
            waited: Duration::ZERO,
            no_progress_timeout: self.no_progress_timeout,
            cancel,
            span,
        })
    }
}

impl StdoutRun {
    fn stderr_tail(&self) -> Vec<String> {
        self.tail.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().cloned().collect()
    }

    /// Reads up to `buf.len()` bytes; `Ok(0)` at the end of the stream,
    /// once ffmpeg has exited successfully.
    ///
    /// # Errors
    /// [`Error::Timeout`] (deadline or no data for the no-progress
    /// timeout), [`Error::Cancelled`], [`Error::Failed`] with the stderr
    /// tail when ffmpeg exits with an error, [`Error::Io`].
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        use tokio::io::AsyncReadExt;
        let started = Instant::now();
        let limit = self.no_progress_timeout.min(self.budget.saturating_sub(self.waited));
        let result = tokio::select! {
            r = tokio::time::timeout(limit, self.stdout.read(buf)) => r,
            () = self.cancel.cancelled() => {
                let _ = self.child.start_kill();
                return Err(Error::Cancelled);
            }
        };
        self.waited += started.elapsed();
        match result {
            Ok(Ok(0)) => self.finish().await.map(|()| 0),
            Ok(Ok(n)) => Ok(n),
            Ok(Err(source)) => Err(Error::Io { op: "reading ffmpeg's output", source }),
            Err(_) => {
                let _ = self.child.start_kill();
                let (what, seconds) = if self.waited >= self.budget {
                    ("timed out", self.budget.as_secs_f64())
                } else {
                    ("made no progress", self.no_progress_timeout.as_secs_f64())
                };
                Err(Error::Timeout { program: self.program.clone(), what, seconds, stderr: self.stderr_tail() })
            }
        }
    }

    async fn finish(&mut self) -> Result<()> {
        let status = tokio::select! {
            s = tokio::time::timeout(self.no_progress_timeout, self.child.wait()) => s,
            () = self.cancel.cancelled() => return Err(Error::Cancelled),
        };
        let status = match status {
            Ok(s) => s.map_err(|source| Error::Io { op: "waiting for ffmpeg", source })?,
            Err(_) => {
                let _ = self.child.start_kill();
                return Err(Error::Timeout {
                    program: self.program.clone(),
                    what: "made no progress",
                    seconds: self.no_progress_timeout.as_secs_f64(),
                    stderr: self.stderr_tail(),
                });
            }
        };
        // The stderr reader ends with the process; wait for its last lines.
        if let Some(task) = self.stderr_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        if status.success() {
            Ok(())
        } else {
            let _enter = self.span.enter();
            tracing::debug!(%status, stderr = ?self.stderr_tail(), "ffmpeg failed");
            Err(Error::Failed { program: self.program.clone(), status: status.to_string(), stderr: self.stderr_tail() })
        }
    }
}

/// Input arguments that open `input` safely: only the protocols that a local
/// file or a presigned HTTP(S) URL needs, and only real media demuxers.
#[must_use]
pub fn safe_input_args(input: &str) -> Vec<String> {
    let protocols = if input.starts_with("https://") || input.starts_with("http://") {
        "http,https,tcp,tls,crypto"
    } else {
        "file,pipe"
    };
    vec![
        "-protocol_whitelist".into(),
        protocols.into(),
        "-format_whitelist".into(),
        ALLOWED_DEMUXERS.into(),
        "-i".into(),
        input.into(),
    ]
}

/// The path as ffmpeg should see it: `file:` prefixed so that a name like
/// `http:evil` or `-i` is never taken for a URL or an option.
#[must_use]
pub fn file_arg(path: &Path) -> String {
    format!("file:{}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_times_parse() {
        assert_eq!(parse_clock("00:03:29.04"), Some(209.04));
        assert_eq!(parse_clock("12.5"), Some(12.5));
        assert_eq!(parse_clock("N/A"), None);
    }

    #[test]
    fn deadlines_grow_with_the_media() {
        let f = Ffmpeg::default();
        assert_eq!(f.deadline_for(0.0), Duration::from_secs(60));
        assert_eq!(f.deadline_for(100.0), Duration::from_secs(360));
        assert_eq!(Ffmpeg::new("/opt/ff/bin/ffmpeg").ffprobe, PathBuf::from("/opt/ff/bin/ffprobe"));
        assert_eq!(Ffmpeg::new("ffmpeg").ffprobe, PathBuf::from("ffprobe"));
    }

    #[test]
    fn inputs_are_opened_with_whitelists() {
        let local = safe_input_args("file:/tmp/a.mp4");
        assert_eq!(local[1], "file,pipe");
        assert_eq!(local[3], ALLOWED_DEMUXERS);
        assert!(!ALLOWED_DEMUXERS.split(',').any(|d| matches!(d, "hls" | "concat" | "dash" | "image2" | "tee")));
        let remote = safe_input_args("https://s3.example.com/x?sig=1");
        assert_eq!(remote[1], "http,https,tcp,tls,crypto");
        assert_eq!(file_arg(Path::new("-i")), "file:-i");
    }
}
