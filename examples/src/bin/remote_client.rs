//! A Rust program that talks to a remote videdit server through the
//! generated client (`videdit-client`): lists the organisation's videos and
//! each ready video's shorts, best first, with their download links.
//!
//!   cargo run -p videdit-examples --bin remote_client -- http://127.0.0.1:8080/api/v1 dev
//!
//! (`dev` is any token with `AUTH_MODE=insecure-dev`; otherwise a Clerk session token.)

use std::num::NonZeroU32;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(base), Some(token)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: remote_client <server>/api/v1 <token>");
    };
    let client = videdit_client::with_token(&base, &token).map_err(|e| anyhow::anyhow!("{e}"))?;
    let page = client
        .list_videos()
        .limit(NonZeroU32::new(50).expect("non-zero"))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("listing videos: {e}"))?
        .into_inner();
    for v in &page.items {
        println!("{}  {:?}  {}  ({} shorts)", v.id, v.status, v.title, v.shorts_count);
        if v.status != videdit_client::types::VideoState::Ready {
            continue;
        }
        let shorts = client
            .list_shorts()
            .id(v.id.clone())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("listing shorts: {e}"))?
            .into_inner();
        for s in shorts {
            println!("    #{} {:>3.0}  {}  {}", s.rank, s.score, s.title, s.video_url.unwrap_or_default());
        }
    }
    Ok(())
}
