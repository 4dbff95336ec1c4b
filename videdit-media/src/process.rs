//! The one gateway to ffmpeg and ffprobe: nothing else in videdit spawns them.
//!
//! Every run has a deadline (a base plus a multiple of the media's
//! duration) and a no-progress timeout; the child is killed when either
//! runs out, when the run is cancelled, or when the future is dropped. The
//! last lines of stderr are kept for the error. ffmpeg's progress (media
//! time and speed) goes to a callback. Inputs are opened with a protocol
//! whitelist and, once probed, a demuxer whitelist, so a hostile file
//! cannot make ffmpeg read other files or URLs.
//!
//! Every child also runs under resource limits set between fork and exec
//! (`setrlimit`), so a hostile file kills its own child and never the
//! worker that runs other tenants' jobs:
//!
//! - **Memory**: [`Ffmpeg::child_memory_bytes`] of address space
//!   (`RLIMIT_AS`, 4 GiB by default). A child that reaches it sees its
//!   allocations fail; the first "Cannot allocate memory" it logs stops the
//!   run with [`Error::ResourceLimit`] (ffmpeg would otherwise carry on
//!   and write incomplete output). Whisper runs inside the worker, not as a
//!   child, and is not limited.
//! - **CPU time**: [`Ffmpeg::child_cpu_per_deadline_second`] CPU seconds
//!   per second of the run's deadline (`RLIMIT_CPU`; by default the number
//!   of CPUs, so the wall-clock deadline always comes first). It is the
//!   backstop for a child the worker can no longer stop: a worker killed
//!   outright leaves its children behind, and the kernel ends them.
//!
//! No cgroup is used: it needs a delegated cgroup v2 subtree, which our
//! hosts do not give the worker; the rlimits hold without one.
//!
//! Every pass over an upload reads at most its probed duration and a
//! margin ([`read_limit`], [`bounded_input_args`]), so a file that declares
//! a minute but holds days of audio is read for a minute.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ffmpeg_sidecar::command::FfmpegCommand;
use ffmpeg_sidecar::event::{FfmpegEvent, LogLevel};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::{ChildResource, Error, Result};

/// Demuxers of real media containers; anything else (HLS and DASH
/// playlists, concat lists, image sequences, `tee`, …) is refused.
pub const ALLOWED_DEMUXERS: &str = "mov,matroska,webm,mp3,wav,flac,ogg,aac,mpegts,avi,flv,asf,m4v,mpeg,w64,aiff,caf";

/// How many stderr lines an error keeps.
const STDERR_TAIL: usize = 12;

/// Default [`Ffmpeg::child_memory_bytes`]: 4 GiB of address space, room
/// for decoding 8K video (the largest picture [`crate::probe::MediaLimits`]
/// lets in) with ffmpeg's threads.
pub const DEFAULT_CHILD_MEMORY_BYTES: u64 = 4 * 1024 * 1024 * 1024;

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
    /// Most address space of one ffmpeg or ffprobe child, in bytes
    /// (`RLIMIT_AS`); `None` for no limit. Address space counts what a
    /// child maps, not only what it touches, so keep it generous.
    pub child_memory_bytes: Option<u64>,
    /// CPU seconds a child may use per second of its deadline
    /// (`RLIMIT_CPU`, at least 1 s); `None` for no limit. The number of
    /// CPUs by default: a child using every core until its deadline stays
    /// under it.
    pub child_cpu_per_deadline_second: Option<f64>,
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
            child_memory_bytes: Some(DEFAULT_CHILD_MEMORY_BYTES),
            child_cpu_per_deadline_second: Some(
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get) as f64
            ),
        }
    }

    /// The deadline for work on `media_seconds` of media.
    #[must_use]
    pub fn deadline_for(&self, media_seconds: f64) -> Duration {
        self.base_timeout + Duration::from_secs_f64(media_seconds.max(0.0) * self.timeout_per_media_second)
    }

    /// The rlimits of a child whose run has `deadline`.
    fn rlimits(&self, deadline: Duration) -> Rlimits {
        Rlimits {
            address_space: self.child_memory_bytes,
            cpu_seconds: self
                .child_cpu_per_deadline_second
                .filter(|f| f.is_finite() && *f > 0.0)
                .map(|f| ((deadline.as_secs_f64() * f).ceil() as u64).max(1)),
        }
    }
}

/// Resource limits for one child, set between fork and exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rlimits {
    address_space: Option<u64>,
    cpu_seconds: Option<u64>,
}

impl Rlimits {
    /// Makes `cmd`'s child set these limits on itself before it runs the
    /// program. Soft and hard limits are the same (never above the hard
    /// limit the worker already has), so the kernel sends SIGKILL, which
    /// ffmpeg cannot catch, when the CPU time runs out.
    fn install(self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt as _;
        if self.address_space.is_none() && self.cpu_seconds.is_none() {
            return;
        }
        // SAFETY: the hook runs in the forked child before exec, where only
        // async-signal-safe functions may be called: it makes getrlimit and
        // setrlimit system calls on stack values and allocates nothing
        // (`last_os_error` only reads errno).
        unsafe {
            cmd.pre_exec(move || {
                // The resource's type differs between libcs: let the closure infer it.
                let set = |resource, value: u64| {
                    let mut old = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
                    let _ = libc::getrlimit(resource, &raw mut old);
                    let value = (value as libc::rlim_t).min(old.rlim_max);
                    let new = libc::rlimit { rlim_cur: value, rlim_max: value };
                    if libc::setrlimit(resource, &raw const new) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                };
                if let Some(bytes) = self.address_space {
                    set(libc::RLIMIT_AS, bytes)?;
                }
                if let Some(seconds) = self.cpu_seconds {
                    set(libc::RLIMIT_CPU, seconds)?;
                }
                Ok(())
            });
        }
    }

    /// The limit a child that ended with `status` went over, if it did:
    /// its memory when it logged an allocation failure (`out_of_memory`),
    /// its CPU time when the kernel killed it (SIGKILL, SIGXCPU: nothing
    /// else sends those to our children, which the gateway only kills on
    /// paths that report their own error).
    fn hit(self, out_of_memory: bool, status: Option<std::process::ExitStatus>) -> Option<ChildResource> {
        use std::os::unix::process::ExitStatusExt as _;
        if out_of_memory && let Some(bytes) = self.address_space {
            return Some(ChildResource::Memory { bytes });
        }
        let signal = status.and_then(|s| s.signal());
        match (signal, self.cpu_seconds) {
            (Some(libc::SIGKILL | libc::SIGXCPU), Some(seconds)) => Some(ChildResource::CpuTime { seconds }),
            _ => None,
        }
    }
}

/// Whether a line of a child's stderr reports a failed allocation (ffmpeg's
/// `ENOMEM`, or the loader unable to map a library under a tiny limit).
fn reports_out_of_memory(line: &str) -> bool {
    let line = line.to_ascii_lowercase();
    ["cannot allocate memory", "out of memory", "failed to map segment"].iter().any(|p| line.contains(p))
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
        let span = tracing::info_span!("ffmpeg", args = %loggable(&run.args));
        self.run_inner(run).instrument(span).await
    }

    async fn run_inner(&self, run: Run<'_>) -> Result<()> {
        let program = self.ffmpeg.display().to_string();
        let deadline_after = self.deadline_for(run.media_seconds);
        let limits = self.rlimits(deadline_after);
        let mut cmd = FfmpegCommand::new_with_path(&self.ffmpeg);
        cmd.args(["-hide_banner", "-nostdin"]).args(&run.args);
        limits.install(cmd.as_inner_mut());
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

        let deadline = Instant::now() + deadline_after;
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
                    return Err(Error::Timeout { program, what: "timed out", seconds: deadline_after.as_secs_f64(), stderr: tail.into() });
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
                    let oom = reports_out_of_memory(&line);
                    if tail.len() == STDERR_TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                    // Stop at once: ffmpeg would go on, writing incomplete output.
                    if let Some(resource) = limits.hit(oom, None) {
                        return Err(Error::ResourceLimit { program, resource, stderr: tail.into() });
                    }
                }
                Some(FfmpegEvent::Error(e)) => {
                    let oom = reports_out_of_memory(&e);
                    if tail.len() == STDERR_TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(e);
                    if let Some(resource) = limits.hit(oom, None) {
                        return Err(Error::ResourceLimit { program, resource, stderr: tail.into() });
                    }
                }
                Some(_) => {}
            }
        }
        let mut child = guard.0.take().expect("the child is still here");
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .map_err(|e| Error::Io { op: "waiting for ffmpeg", source: std::io::Error::other(e) })?
            .map_err(|source| Error::Io { op: "waiting for ffmpeg", source })?;
        if let Some(resource) = limits.hit(false, Some(status)) {
            Err(Error::ResourceLimit { program, resource, stderr: tail.into() })
        } else if status.success() {
            if errored {
                tracing::debug!(stderr = ?loggable_lines(tail.iter()), "ffmpeg reported errors but succeeded");
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
        let limits = self.rlimits(timeout);
        let child = spawn_piped(&self.ffprobe, &["-hide_banner", "-v", "error"], args, limits)?;
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
        let stderr = String::from_utf8_lossy(&out.stderr);
        let oom = stderr.lines().any(reports_out_of_memory);
        let tail = || {
            let lines: Vec<String> = stderr.lines().rev().take(STDERR_TAIL).map(str::to_owned).collect();
            lines.into_iter().rev().collect()
        };
        if let Some(resource) = limits.hit(oom, Some(out.status)) {
            Err(Error::ResourceLimit { program, resource, stderr: tail() })
        } else if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(Error::Failed { program, status: out.status.to_string(), stderr: tail() })
        }
    }
}

/// Starts `program` with `fixed` then `args` under `limits`, no stdin,
/// stdout and stderr piped; the child is killed when it is dropped.
fn spawn_piped(
    program: &Path,
    fixed: &[&str],
    args: &[impl AsRef<std::ffi::OsStr>],
    limits: Rlimits,
) -> Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::new(program);
    limits.install(cmd.as_std_mut());
    cmd.args(fixed)
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
    /// Set by the stderr reader when the child reports a failed allocation.
    out_of_memory: std::sync::Arc<std::sync::atomic::AtomicBool>,
    limits: Rlimits,
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
        let span = tracing::info_span!("ffmpeg", args = %loggable(args));
        let program = self.ffmpeg.display().to_string();
        let budget = self.deadline_for(media_seconds);
        let limits = self.rlimits(budget);
        let mut child = spawn_piped(&self.ffmpeg, &["-hide_banner", "-nostdin", "-nostats"], args, limits)?;
        let stdout = child.stdout.take().ok_or_else(|| Error::Io {
            op: "opening ffmpeg's stdout",
            source: std::io::Error::other("no stdout pipe"),
        })?;
        let tail = std::sync::Arc::new(std::sync::Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let out_of_memory = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stderr_task = child.stderr.take().map(|stderr| {
            let (tail, out_of_memory) = (tail.clone(), out_of_memory.clone());
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if reports_out_of_memory(&line) {
                        out_of_memory.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
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
            out_of_memory,
            limits,
            stderr_task,
            budget,
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

    /// The error for a child over one of its limits, killing it; `None`
    /// when it is not.
    fn over_limit(&mut self, status: Option<std::process::ExitStatus>) -> Option<Error> {
        let oom = self.out_of_memory.load(std::sync::atomic::Ordering::Relaxed);
        let resource = self.limits.hit(oom, status)?;
        let _ = self.child.start_kill();
        Some(Error::ResourceLimit { program: self.program.clone(), resource, stderr: self.stderr_tail() })
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
        if let Some(e) = self.over_limit(None) {
            return Err(e);
        }
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
        if let Some(e) = self.over_limit(Some(status)) {
            return Err(e);
        }
        if status.success() {
            Ok(())
        } else {
            let _enter = self.span.enter();
            tracing::debug!(%status, stderr = ?loggable_lines(self.stderr_tail().iter()), "ffmpeg failed");
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
    let mut args: Vec<String> =
        vec!["-protocol_whitelist".into(), protocols.into(), "-format_whitelist".into(), ALLOWED_DEMUXERS.into()];
    if protocols.starts_with("http") {
        // A dropped connection (a storage restart, a load balancer) is
        // resumed with a ranged request: without it ffmpeg takes the cut as
        // the end of the file and a pass reads only part of the source.
        for (k, v) in [
            ("-reconnect", "1"),
            ("-reconnect_on_network_error", "1"),
            ("-reconnect_on_http_error", "5xx"),
            ("-reconnect_delay_max", "10"),
        ] {
            args.extend([k.to_owned(), v.to_owned()]);
        }
    }
    args.extend(["-i".to_owned(), input.to_owned()]);
    args
}

/// How long a pass over an upload whose probe found `probed_seconds` may
/// read it: the probed duration and a margin (2 s or 5 %, whichever is
/// more) for containers that estimate their duration. `None` when the
/// duration is unknown (the run's deadline still bounds it).
#[must_use]
pub fn read_limit(probed_seconds: f64) -> Option<f64> {
    (probed_seconds.is_finite() && probed_seconds > 0.0).then(|| probed_seconds + (probed_seconds * 0.05).max(2.0))
}

/// [`safe_input_args`] that also stop reading `input` after
/// [`read_limit`]`(probed_seconds)` (an input-side `-t`): what every pass
/// over an upload opens it with, so a file holding far more than it
/// declares cannot keep a worker busy.
#[must_use]
pub fn bounded_input_args(input: &str, probed_seconds: f64) -> Vec<String> {
    let mut args = Vec::with_capacity(8);
    if let Some(limit) = read_limit(probed_seconds) {
        args.extend(["-t".to_owned(), format!("{limit:.3}")]);
    }
    args.extend(safe_input_args(input));
    args
}

/// The path as ffmpeg should see it: `file:` prefixed so that a name like
/// `http:evil` or `-i` is never taken for a URL or an option.
#[must_use]
pub fn file_arg(path: &Path) -> String {
    format!("file:{}", path.display())
}

/// Lines of ffmpeg's output for a log line: every URL in them loses its
/// query string (ffmpeg names its input, a presigned URL, in messages).
fn loggable_lines<'a>(lines: impl Iterator<Item = &'a String>) -> Vec<String> {
    lines.map(|l| without_url_queries(l)).collect()
}

fn without_url_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("http") {
        out.push_str(&rest[..at]);
        let url = &rest[at..];
        let end = url.find(|c: char| c.is_whitespace() || c == '\'' || c == '"').unwrap_or(url.len());
        let (whole, after) = url.split_at(end);
        out.push_str(whole.split_once('?').map_or(whole, |(base, _)| base));
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The arguments for a log line: a URL argument loses its query string,
/// where presigned URLs carry their signature (a credential).
fn loggable(args: &[String]) -> String {
    let shown: Vec<&str> = args
        .iter()
        .map(|a| match a.split_once('?') {
            Some((base, _)) if a.starts_with("http://") || a.starts_with("https://") => base,
            _ => a.as_str(),
        })
        .collect();
    shown.join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn logged_arguments_carry_no_url_query() {
        let args: Vec<String> =
            ["-i", "https://s3.example/b/k.mp4?X-Amz-Signature=abc&X-Amz-Date=1", "-t", "5", "out?.wav"]
                .map(String::from)
                .into();
        assert_eq!(loggable(&args), "-i https://s3.example/b/k.mp4 -t 5 out?.wav");
        assert_eq!(
            without_url_queries("Input #0, mov, from 'https://h/k.mp4?X-Amz-Signature=abc': x?y http://a/b?c=d"),
            "Input #0, mov, from 'https://h/k.mp4': x?y http://a/b"
        );
    }

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
    fn children_get_memory_and_a_cpu_time_past_their_deadline() {
        let mut f = Ffmpeg { child_cpu_per_deadline_second: Some(2.0), ..Ffmpeg::default() };
        let l = f.rlimits(Duration::from_secs(90));
        assert_eq!(l, Rlimits { address_space: Some(DEFAULT_CHILD_MEMORY_BYTES), cpu_seconds: Some(180) });
        f.child_cpu_per_deadline_second = Some(0.001);
        assert_eq!(f.rlimits(Duration::from_secs(10)).cpu_seconds, Some(1), "at least a second");
        f.child_cpu_per_deadline_second = None;
        f.child_memory_bytes = None;
        assert_eq!(f.rlimits(Duration::from_secs(10)), Rlimits { address_space: None, cpu_seconds: None });
        let cpus = std::thread::available_parallelism().unwrap().get() as f64;
        assert_eq!(Ffmpeg::default().child_cpu_per_deadline_second, Some(cpus));
    }

    #[test]
    fn limits_are_told_apart_from_other_failures() {
        use std::os::unix::process::ExitStatusExt as _;
        let l = Rlimits { address_space: Some(1 << 30), cpu_seconds: Some(60) };
        let killed = std::process::ExitStatus::from_raw(libc::SIGKILL);
        let failed = std::process::ExitStatus::from_raw(1 << 8);
        assert_eq!(l.hit(true, None), Some(ChildResource::Memory { bytes: 1 << 30 }));
        assert_eq!(l.hit(false, Some(killed)), Some(ChildResource::CpuTime { seconds: 60 }));
        assert_eq!(l.hit(false, Some(failed)), None);
        let none = Rlimits { address_space: None, cpu_seconds: None };
        assert_eq!(none.hit(true, Some(killed)), None, "without limits, a failure is a failure");
        assert!(reports_out_of_memory("Error while decoding stream #0:0: Cannot allocate memory"));
        assert!(reports_out_of_memory(
            "ffmpeg: error while loading shared libraries: libx.so: failed to map segment from shared object"
        ));
        assert!(!reports_out_of_memory("Invalid data found when processing input"));
    }

    #[test]
    fn passes_read_the_probed_duration_and_a_margin() {
        assert_eq!(read_limit(10.0), Some(12.0));
        assert_eq!(read_limit(3600.0), Some(3780.0));
        assert_eq!(read_limit(0.0), None);
        assert_eq!(read_limit(f64::NAN), None);
        let args = bounded_input_args("file:/u.mp4", 60.0);
        assert_eq!(args[..2], ["-t", "63.000"]);
        assert_eq!(args[2..], safe_input_args("file:/u.mp4"));
        assert_eq!(bounded_input_args("file:/u.mp4", 0.0), safe_input_args("file:/u.mp4"));
    }

    #[test]
    fn inputs_are_opened_with_whitelists() {
        let local = safe_input_args("file:/tmp/a.mp4");
        assert_eq!(local[1], "file,pipe");
        assert_eq!(local[3], ALLOWED_DEMUXERS);
        assert!(!ALLOWED_DEMUXERS.split(',').any(|d| matches!(d, "hls" | "concat" | "dash" | "image2" | "tee")));
        let remote = safe_input_args("https://s3.example.com/x?sig=1");
        assert_eq!(remote[1], "http,https,tcp,tls,crypto");
        // A dropped connection is resumed, not taken for the end of the file.
        assert!(remote.windows(2).any(|w| w == ["-reconnect", "1"]), "{remote:?}");
        assert!(!local.iter().any(|a| a.starts_with("-reconnect")), "{local:?}");
        assert_eq!(&remote[remote.len() - 2..], ["-i", "https://s3.example.com/x?sig=1"]);
        assert_eq!(file_arg(Path::new("-i")), "file:-i");
    }
}
