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
            Self::InvalidMedia(_) | Self::ZeroDuration => ErrorCode::InvalidMedia,
            Self::NoAudio => ErrorCode::NoAudioStream,
            Self::TooLong { .. } => ErrorCode::MediaTooLong,
            Self::TooLarge { .. } => ErrorCode::UploadTooLarge,
            Self::UnsupportedCodec(_) => ErrorCode::UnsupportedCodec,
            Self::Timeout { .. } => ErrorCode::Timeout,
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
    /// input never does).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. }
                | Self::Failed { .. }
                | Self::Spawn { .. }
                | Self::Io { .. }
                | Self::Download { retryable: true, .. }
        )
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
