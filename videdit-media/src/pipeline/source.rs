//! Stage 1: the input, local or `http(s)`, probed and checked.

use std::path::Path;

use crate::error::Error;
use crate::probe::{MediaInfo, MediaLimits, probe, probe_url, validate};
use crate::process::Ffmpeg;

/// Stage 1: probes the input (a local path or an `http(s)` URL) and checks
/// it against `limits`.
///
/// # Errors
/// [`Error::InvalidMedia`], [`Error::NoAudio`], [`Error::ZeroDuration`],
/// [`Error::TooLong`], [`Error::TooLarge`], [`Error::UnsupportedCodec`],
/// process and I/O errors.
pub async fn probe_source(ffmpeg: &Ffmpeg, input: &str, limits: &MediaLimits) -> Result<MediaInfo, Error> {
    let info = if is_url(input) { probe_url(ffmpeg, input).await? } else { probe(ffmpeg, Path::new(input)).await? };
    validate(&info, limits)?;
    Ok(info)
}

/// Checks that probed media can become shorts: a picture big enough to
/// frame, or sound alone (a podcast: its shorts are audiograms, see
/// [`crate::render`]).
///
/// # Errors
/// [`Error::InvalidMedia`] naming what is missing.
pub fn check_renderable(info: &MediaInfo) -> Result<(), Error> {
    match info.display_size() {
        Some((w, h)) if w >= 16 && h >= 16 => Ok(()),
        Some((w, h)) => Err(Error::InvalidMedia(format!("the picture is only {w}×{h} pixels"))),
        None if info.audio().is_some() => Ok(()),
        None => Err(Error::InvalidMedia("the file has neither pictures nor sound".into())),
    }
}

fn is_url(input: &str) -> bool {
    input.starts_with("https://") || input.starts_with("http://")
}

pub(super) fn ffmpeg_input(input: &str) -> String {
    if is_url(input) { input.to_owned() } else { crate::process::file_arg(Path::new(input)) }
}
