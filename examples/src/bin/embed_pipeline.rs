//! The whole pipeline embedded in an application: a long video in, ranked
//! captioned shorts out, no database and no S3.
//!
//! ```sh
//! cargo run -p videdit-examples --bin embed_pipeline -- talk.mp4 out/ ~/.cache/videdit/models/ggml-tiny.en.bin
//! ```

use tokio_util::sync::CancellationToken;
use videdit_media::pipeline::{Pipeline, PipelineOptions};
use videdit_media::process::Ffmpeg;
use videdit_media::transcribe::Transcriber;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let [input, out, model] = std::env::args()
        .skip(1)
        .collect::<Vec<_>>()
        .try_into()
        .map_err(|_| anyhow::anyhow!("usage: embed_pipeline INPUT OUT_DIR MODEL.bin"))?;
    let transcriber = Transcriber::load(model.as_ref(), "tiny.en")?;
    let pipeline = Pipeline::new(Ffmpeg::new("ffmpeg"), transcriber, "tiny.en");
    let mut options = PipelineOptions::default();
    options.analyze.max_shorts = 3;
    let progress = |e: &videdit_media::pipeline::ProgressEvent| eprintln!("{:?} {:.0}%", e.stage, e.overall * 100.0);
    let summary = pipeline.run(input.as_ref(), out.as_ref(), &options, &progress, &CancellationToken::new()).await?;
    for short in &summary.shorts {
        println!("#{} {:.0} {} ({})", short.rank, short.score, short.title, short.video.display());
    }
    Ok(())
}
