//! Audio extraction: 16 kHz mono f32 samples (what Whisper eats) from any
//! input ffmpeg reads, streamed from its stdout, with no temporary file.
//!
//! [`AudioReader`] hands the samples out in chunks so that an hour of audio
//! never has to sit in memory at once; [`extract`] collects them all for
//! short inputs.

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::process::{Ffmpeg, StdoutRun, file_arg, read_limit, safe_input_args};

/// Samples per second of the extracted audio.
pub const SAMPLE_RATE: u32 = 16_000;

/// Which part of the input to extract.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AudioRange {
    /// Start in seconds (from the beginning when `None`).
    pub start: Option<f64>,
    /// End in seconds (to the end when `None`).
    pub end: Option<f64>,
}

/// A running extraction; read it chunk by chunk.
pub struct AudioReader {
    run: StdoutRun,
    /// Bytes of a sample split across two reads.
    pending: Vec<u8>,
    done: bool,
    read_samples: u64,
}

/// The ffmpeg input for `input`: an `http(s)` URL as it is, anything else a
/// local path (prefixed with `file:` so that it is never taken for a URL or
/// an option).
#[must_use]
pub fn input_arg(input: &str) -> String {
    if input.starts_with("https://") || input.starts_with("http://") || input.starts_with("file:") {
        input.to_owned()
    } else {
        file_arg(std::path::Path::new(input))
    }
}

/// ffmpeg's arguments for extracting `range` of `input` as 16 kHz mono f32
/// on stdout, with the protocol and demuxer whitelists. The input is read
/// for the range, and never for longer than [`read_limit`]`(media_seconds)`
/// (`media_seconds` is the probed length of what is extracted), so a file
/// that holds more than it declares is not read past that.
#[must_use]
pub fn ffmpeg_args(input: &str, range: AudioRange, media_seconds: f64) -> Vec<String> {
    let mut args: Vec<String> = vec!["-v".into(), "error".into()];
    let start = range.start.filter(|s| s.is_finite() && *s > 0.0);
    if let Some(start) = start {
        // Before -i: fast input seeking, accurate for audio.
        args.extend(["-ss".into(), format!("{start:.3}")]);
    }
    let wanted = range.end.filter(|e| e.is_finite()).map(|end| (end - start.unwrap_or(0.0)).max(0.0));
    let read = match (wanted, read_limit(media_seconds)) {
        (Some(w), Some(l)) => Some(w.min(l)),
        (w, l) => w.or(l),
    };
    if let Some(seconds) = read {
        // Before -i as well: ffmpeg stops reading the input there.
        args.extend(["-t".into(), format!("{seconds:.3}")]);
    }
    args.extend(safe_input_args(&input_arg(input)));
    args.extend(
        ["-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", "1", "-ar", "16000", "-f", "f32le", "pipe:1"].map(String::from),
    );
    args
}

/// Starts extracting `range` of `input` (a local path or an `http(s)` URL).
/// `media_seconds` (the probed length of the range) sets ffmpeg's deadline
/// and bounds how much is read (see [`ffmpeg_args`]).
///
/// # Errors
/// [`Error::Spawn`] when ffmpeg cannot be started; later errors come from
/// [`AudioReader::next_chunk`].
pub fn open(
    ffmpeg: &Ffmpeg,
    input: &str,
    range: AudioRange,
    media_seconds: f64,
    cancel: CancellationToken,
) -> Result<AudioReader> {
    let run = ffmpeg.spawn_stdout(&ffmpeg_args(input, range, media_seconds), media_seconds, cancel)?;
    Ok(AudioReader { run, pending: Vec::new(), done: false, read_samples: 0 })
}

/// Extracts the whole `range` into memory (for short inputs; use
/// [`open`] and chunks for long ones).
///
/// # Errors
/// As [`AudioReader::next_chunk`].
pub async fn extract(
    ffmpeg: &Ffmpeg,
    input: &str,
    range: AudioRange,
    media_seconds: f64,
    cancel: CancellationToken,
) -> Result<Vec<f32>> {
    let mut reader = open(ffmpeg, input, range, media_seconds, cancel)?;
    let mut all = Vec::new();
    while let Some(chunk) = reader.next_chunk(SAMPLE_RATE as usize * 60).await? {
        all.extend_from_slice(&chunk);
    }
    Ok(all)
}

impl AudioReader {
    /// Samples handed out so far.
    #[must_use]
    pub fn samples_read(&self) -> u64 {
        self.read_samples
    }

    /// The next chunk of at most `max_samples` samples (full except the
    /// last); `None` at the end.
    ///
    /// # Errors
    /// [`Error::NoAudio`] when the input has no audio stream;
    /// [`Error::InvalidMedia`] when ffmpeg cannot read it; otherwise the
    /// process errors of [`StdoutRun::read`].
    pub async fn next_chunk(&mut self, max_samples: usize) -> Result<Option<Vec<f32>>> {
        if self.done {
            return Ok(None);
        }
        let want = max_samples.max(1) * 4;
        let mut bytes = std::mem::take(&mut self.pending);
        bytes.reserve(want.saturating_sub(bytes.len()));
        let mut buf = vec![0u8; 1 << 16];
        while bytes.len() < want {
            let room = (want - bytes.len()).min(buf.len());
            let n = match self.run.read(&mut buf[..room]).await {
                Ok(n) => n,
                Err(e) => return Err(classify(e)),
            };
            if n == 0 {
                self.done = true;
                break;
            }
            bytes.extend_from_slice(&buf[..n]);
        }
        let whole = bytes.len() / 4 * 4;
        self.pending = bytes.split_off(whole);
        if bytes.is_empty() {
            return Ok(None);
        }
        let samples: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        self.read_samples += samples.len() as u64;
        Ok(Some(samples))
    }
}

/// Turns ffmpeg's failures on bad input into typed media errors.
fn classify(e: Error) -> Error {
    match e {
        Error::Failed { stderr, .. } if stderr.iter().any(|l| l.contains("matches no streams")) => Error::NoAudio,
        Error::Failed { stderr, .. } if stderr.iter().any(|l| l.contains("No such file or directory")) => Error::Io {
            op: "opening the input",
            source: std::io::Error::new(std::io::ErrorKind::NotFound, stderr.join(" | ")),
        },
        Error::Failed { stderr, .. }
            if stderr.iter().any(|l| {
                l.contains("Invalid data found") || l.contains("not in whitelist") || l.contains("Protocol not found")
            }) =>
        {
            Error::InvalidMedia(stderr.join(" | "))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_whitelist_and_seek() {
        let a = ffmpeg_args("/tmp/a b.mp4", AudioRange { start: Some(5.0), end: Some(7.5) }, 2.5);
        let s = a.join(" ");
        assert!(s.starts_with("-v error -ss 5.000 -t 2.500 -protocol_whitelist file,pipe -format_whitelist "), "{s}");
        assert!(s.contains("-i file:/tmp/a b.mp4 -map 0:a:0"), "{s}");
        assert!(s.ends_with("-ac 1 -ar 16000 -f f32le pipe:1"), "{s}");
        let u = ffmpeg_args("https://s3/x?sig=1", AudioRange::default(), 0.0).join(" ");
        assert!(u.contains("-protocol_whitelist http,https,tcp,tls,crypto") && u.contains("-i https://s3/x?sig=1"));
        assert!(!u.contains("-ss") && !u.contains("-t "));
        // The probed duration bounds the read, and a range cannot widen it.
        let whole = ffmpeg_args("/a.mka", AudioRange::default(), 60.0).join(" ");
        assert!(whole.starts_with("-v error -t 63.000 -protocol_whitelist"), "{whole}");
        let wide = ffmpeg_args("/a.mka", AudioRange { start: None, end: Some(1e9) }, 60.0).join(" ");
        assert!(wide.starts_with("-v error -t 63.000 -protocol_whitelist"), "{wide}");
        assert_eq!(input_arg("-i"), "file:-i");
    }
}
