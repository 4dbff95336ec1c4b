//! # videdit-media
//!
//! Media processing for videdit: the one gateway to ffmpeg/ffprobe
//! ([`process`]), probing and validation of uploads ([`probe`]), and
//! highlight analysis ([`analyze`]). Transcription, rendering and the
//! pipeline build on these.
//!
//! ## Hostile media
//!
//! Uploads are untrusted, and one worker runs many tenants' jobs:
//!
//! - [`probe::validate`] refuses, from the headers, what [`probe::MediaLimits`]
//!   does not allow: size and duration, and also pictures over
//!   `max_pixels` (8K UHD), frame rates over `max_frame_rate` (240),
//!   more than `max_streams` streams (16), and a container whose duration
//!   its own streams contradict (`max_duration_mismatch`). These refusals
//!   carry the code `invalid_media` ([`Error::TooManyPixels`],
//!   [`Error::FrameRateTooHigh`], [`Error::TooManyStreams`],
//!   [`Error::DurationMismatch`]).
//! - Every pass over an upload (loudness, audio extraction, the render's
//!   read) stops at the probed duration and a small margin
//!   ([`process::read_limit`]): a file declaring a minute and holding days
//!   is read for a minute.
//! - ffmpeg and ffprobe children run under an address-space limit
//!   ([`process::Ffmpeg::child_memory_bytes`], 4 GiB) and a CPU-time limit
//!   derived from the run's deadline; a child over either is killed and
//!   reported as [`Error::ResourceLimit`] (`invalid_media` for memory,
//!   `timeout` for CPU time), and the worker carries on.
//! - A run past its deadline is [`Error::Timeout`] (code `timeout`, see
//!   [`Error::is_timeout`]): worth one retry, not more.

pub mod analyze;
pub mod audio;
pub mod captions;
pub mod error;
pub mod models;
pub mod pipeline;
pub mod probe;
pub mod process;
pub mod reframe;
pub mod render;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod transcribe;

pub use error::{Error, Result};
