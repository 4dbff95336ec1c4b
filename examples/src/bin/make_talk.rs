//! Makes a sample talk video: espeak-ng speech (small talk with three
//! strong passages planted in it) over a moving test picture, 1280×720.
//!
//! ```sh
//! cargo run -p videdit-examples --bin make_talk -- samples/talk.mp4 4
//! ```
//! The second argument is the length in minutes (default 4). The exact
//! timing of every sentence is printed as JSON lines on stdout.

use videdit_media::process::Ffmpeg;
use videdit_media::testing::{TalkSpec, make_talk, planted_talk};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = args.next().ok_or_else(|| anyhow::anyhow!("usage: make_talk OUT.mp4 [MINUTES]"))?;
    let minutes: f64 = args.next().map_or(Ok(4.0), |m| m.parse()).map_err(|_| anyhow::anyhow!("MINUTES: a number"))?;
    let ffmpeg = Ffmpeg::new(std::env::var("FFMPEG_BINARY").unwrap_or_else(|_| "ffmpeg".into()));
    let talk = make_talk(&ffmpeg, &TalkSpec::new(planted_talk(minutes)), out.as_ref()).await?;
    for s in &talk.sentences {
        println!("{}", serde_json::json!({"part": s.part, "start": s.start, "end": s.end, "text": s.text}));
    }
    eprintln!("wrote {out}: {:.1} s, {} sentences", talk.duration, talk.sentences.len());
    Ok(())
}
