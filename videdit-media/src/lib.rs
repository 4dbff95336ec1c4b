//! # videdit-media
//!
//! Media processing for videdit: the one gateway to ffmpeg/ffprobe
//! ([`process`]), probing and validation of uploads ([`probe`]), and
//! highlight analysis ([`analyze`]). Transcription, rendering and the
//! pipeline build on these.

pub mod analyze;
pub mod audio;
pub mod captions;
pub mod error;
pub mod models;
pub mod pipeline;
pub mod probe;
pub mod process;
pub mod render;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod transcribe;

pub use error::{Error, Result};
