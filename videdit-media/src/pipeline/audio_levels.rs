//! Stage 2: how loud the input's audio is, frame by frame (what the
//! analysis's delivery score and the edge snapping read).

use std::path::Path;

use tokio_util::sync::CancellationToken;

use super::source::ffmpeg_input;
use crate::analyze::AudioFeatures;
use crate::error::Error;
use crate::process::{Ffmpeg, Run, bounded_input_args};

/// Stage 2: the loudness of the input's audio in 100 ms frames, from one
/// audio-only ffmpeg pass (`astats`); the values are streamed to a small
/// text file in `work_dir`, so memory does not grow with the duration.
/// `duration` is the probed duration: the input is not read past it (and
/// a margin, see [`crate::process::read_limit`]).
///
/// # Errors
/// Process errors, cancellation and I/O.
pub async fn audio_features(
    ffmpeg: &Ffmpeg,
    input: &str,
    duration: f64,
    work_dir: &Path,
    cancel: &CancellationToken,
) -> Result<AudioFeatures, Error> {
    let io = |op| move |source| Error::Io { op, source };
    tokio::fs::create_dir_all(work_dir).await.map_err(io("creating the work directory"))?;
    let out = tempfile::Builder::new()
        .prefix(".videdit-rms-")
        .suffix(".txt")
        .tempfile_in(work_dir)
        .map_err(io("creating the loudness file"))?;
    let frame = (16_000.0 * crate::analyze::FRAME_SECONDS).round() as u32;
    let graph = format!(
        "aresample=16000,aformat=channel_layouts=mono,asetnsamples=n={frame}:p=0,\
         astats=metadata=1:reset=1:measure_perchannel=none:measure_overall=RMS_level,\
         ametadata=mode=print:key=lavfi.astats.Overall.RMS_level:file={}",
        crate::render::graph::filter_value(&out.path().display().to_string())
    );
    let mut args = bounded_input_args(&ffmpeg_input(input), duration);
    args.extend(["-vn", "-sn", "-dn", "-af", &graph, "-f", "null", "-"].map(String::from));
    ffmpeg.run(Run { args, media_seconds: duration, on_progress: None, cancel: Some(cancel.clone()) }).await?;
    let text = tokio::fs::read_to_string(out.path()).await.map_err(io("reading the loudness file"))?;
    Ok(parse_rms(&text))
}

/// Parses `ametadata` print output: one `…RMS_level=<dB>` line per frame.
fn parse_rms(text: &str) -> AudioFeatures {
    let floor = crate::analyze::SILENCE_DB;
    let rms_db = text
        .lines()
        .filter_map(|l| l.strip_prefix("lavfi.astats.Overall.RMS_level="))
        .map(|v| v.trim().parse::<f32>().ok().filter(|x| x.is_finite()).map_or(floor, |x| x.max(floor)))
        .collect();
    AudioFeatures { frame_seconds: crate::analyze::FRAME_SECONDS, rms_db }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_lines_parse_with_silence_floored() {
        let text = "frame:0    pts:0       pts_time:0\nlavfi.astats.Overall.RMS_level=-20.5\n\
                    frame:1    pts:1600    pts_time:0.1\nlavfi.astats.Overall.RMS_level=-inf\n\
                    frame:2    pts:3200    pts_time:0.2\nlavfi.astats.Overall.RMS_level=-300\n";
        let f = parse_rms(text);
        assert_eq!(f.rms_db, vec![-20.5, crate::analyze::SILENCE_DB, crate::analyze::SILENCE_DB]);
        assert!((f.frame_seconds - 0.1).abs() < 1e-12);
    }
}
