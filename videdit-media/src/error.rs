//! The error type of `videdit-media`.

use videdit_core::ErrorCode;

/// Everything that can go wrong in the media crate (outside analysis, which
/// has its own [`crate::analyze::AnalyzeError`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The ffmpeg/ffprobe binary could not be started.
    #[error("could not start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// ffmpeg/ffprobe exited with an error; `stderr` holds its last lines.
    #[error("{program} failed ({status}): {}", stderr.join(" | "))]
    Failed {
        /// The program.
        program: String,
        /// Exit status.
        status: String,
        /// The last lines of its stderr.
        stderr: Vec<String>,
    },
    /// ffmpeg ran past its deadline or stopped making progress, and was killed.
    #[error("{program} {what} after {seconds:.0} s and was stopped: {}", stderr.join(" | "))]
    Timeout {
        /// The program.
        program: String,
        /// "timed out" or "made no progress".
        what: &'static str,
        /// The limit that was hit.
        seconds: f64,
        /// The last lines of its stderr.
        stderr: Vec<String>,
    },
    /// ffmpeg/ffprobe went over a resource limit the gateway set on it
    /// (see [`crate::process::Ffmpeg::child_memory_bytes`] and
    /// [`crate::process::Ffmpeg::child_cpu_per_deadline_second`]) and was
    /// stopped: a decompression bomb, or a run that outlived its deadline.
    #[error("{program} went over its {resource} and was stopped: {}", stderr.join(" | "))]
    ResourceLimit {
        /// The program.
        program: String,
        /// Which limit, and its value.
        resource: ChildResource,
        /// The last lines of its stderr.
        stderr: Vec<String>,
    },
    /// The run was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// Not a media file we accept (unknown format, a playlist, corrupt data).
    #[error("not a media file we can read: {0}")]
    InvalidMedia(String),
    /// No audio stream to transcribe.
    #[error("the media has no audio stream")]
    NoAudio,
    /// Zero or unknown duration.
    #[error("the media has no duration")]
    ZeroDuration,
    /// Longer than allowed.
    #[error("the media lasts {seconds:.0} s, over the limit of {limit:.0} s")]
    TooLong {
        /// Its duration.
        seconds: f64,
        /// The limit.
        limit: f64,
    },
    /// Larger than allowed.
    #[error("the file has {bytes} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Its size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// A picture larger than allowed (any stream with a size, cover art
    /// included: decoding allocates by the declared size).
    #[error("the picture is {width}×{height} pixels, over the limit of {limit} pixels")]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The limit on width × height.
        limit: u64,
    },
    /// A video frame rate higher than allowed.
    #[error("the video has {fps:.0} frames per second, over the limit of {limit:.0}")]
    FrameRateTooHigh {
        /// Declared frames per second.
        fps: f64,
        /// The limit.
        limit: f64,
    },
    /// More streams than allowed.
    #[error("the file has {count} streams, over the limit of {limit}")]
    TooManyStreams {
        /// Streams in the file.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The container declares a duration its own streams contradict.
    #[error("the file declares {declared:.1} s but its streams declare {streams:.1} s")]
    DurationMismatch {
        /// The container's duration.
        declared: f64,
        /// The longest audio or video stream's duration.
        streams: f64,
    },
    /// A codec we do not decode.
    #[error("unsupported codec {0}")]
    UnsupportedCodec(String),
    /// A Whisper model that is not where configuration says, or not a
    /// known name to download.
    #[error("model {model} not found: {hint}")]
    ModelNotFound {
        /// The name or path asked for.
        model: String,
        /// What to do about it.
        hint: String,
    },
    /// A model file that whisper.cpp or the importer cannot read.
    #[error("invalid model {}: {reason}", path.display())]
    InvalidModel {
        /// The file or directory.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// Downloading a model failed (offline, HTTP error, checksum mismatch).
    #[error("downloading {url} failed: {reason}")]
    Download {
        /// What was fetched.
        url: String,
        /// Why.
        reason: String,
        /// Whether trying again later may help (network errors do; a wrong
        /// checksum or a 404 does not).
        retryable: bool,
    },
    /// whisper.cpp failed while transcribing.
    #[error("transcription failed: {0}")]
    Transcription(String),
    /// Local file I/O.
    #[error("{op}: {source}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The stable API code.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidMedia(_)
            | Self::ZeroDuration
            | Self::TooManyPixels { .. }
            | Self::FrameRateTooHigh { .. }
            | Self::TooManyStreams { .. }
            | Self::DurationMismatch { .. }
            | Self::ResourceLimit { resource: ChildResource::Memory { .. }, .. } => ErrorCode::InvalidMedia,
            Self::NoAudio => ErrorCode::NoAudioStream,
            Self::TooLong { .. } => ErrorCode::MediaTooLong,
            Self::TooLarge { .. } => ErrorCode::UploadTooLarge,
            Self::UnsupportedCodec(_) => ErrorCode::UnsupportedCodec,
            Self::Timeout { .. } | Self::ResourceLimit { resource: ChildResource::CpuTime { .. }, .. } => {
                ErrorCode::Timeout
            }
            Self::Spawn { .. }
            | Self::Failed { .. }
            | Self::Cancelled
            | Self::Io { .. }
            | Self::ModelNotFound { .. }
            | Self::InvalidModel { .. }
            | Self::Download { .. }
            | Self::Transcription(_) => ErrorCode::Internal,
        }
    }

    /// Whether another attempt may succeed (timeouts and crashes may; bad
    /// input never does, nor does going over the memory limit: the same
    /// file asks for the same memory again).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. }
                | Self::ResourceLimit { resource: ChildResource::CpuTime { .. }, .. }
                | Self::Failed { .. }
                | Self::Spawn { .. }
                | Self::Io { .. }
                | Self::Download { retryable: true, .. }
        )
    }
}

impl Error {
    /// Whether a child ran out of time: its deadline, its no-progress
    /// timeout or its CPU time. These carry [`ErrorCode::Timeout`]; a job
    /// that fails so is worth one more attempt (a busy machine) but not
    /// more (a file that is simply too slow to process would hold a worker
    /// for every attempt).
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::ResourceLimit { resource: ChildResource::CpuTime { .. }, .. })
    }
}

/// A limit the gateway puts on every ffmpeg and ffprobe child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildResource {
    /// Address space (`RLIMIT_AS`), in bytes.
    Memory {
        /// The limit.
        bytes: u64,
    },
    /// CPU time (`RLIMIT_CPU`), in seconds.
    CpuTime {
        /// The limit.
        seconds: u64,
    },
}

impl std::fmt::Display for ChildResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory { bytes } => write!(f, "memory limit of {} MiB", bytes / (1024 * 1024)),
            Self::CpuTime { seconds } => write!(f, "CPU time limit of {seconds} s"),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
