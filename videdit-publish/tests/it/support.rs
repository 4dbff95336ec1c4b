//! Shared fixtures: a fake with a client and tokens, random video files, progress recording.

use std::sync::Mutex;

use rand::RngCore;
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;
use videdit_publish::FileSource;
use videdit_publish::fake::FakeYouTube;
use videdit_publish::oauth::Tokens;
use videdit_publish::youtube::{Privacy, VideoMeta, YouTube, YouTubeConfig};

pub const KIB: usize = 1024;

/// A running fake, a client configured for it, and tokens of its channel.
pub struct Fixture {
    pub fake: FakeYouTube,
    pub yt: YouTube,
    pub tokens: Tokens,
}

pub async fn setup() -> Fixture {
    setup_with(|_| {}).await
}

pub async fn setup_with(adjust: impl FnOnce(&mut YouTubeConfig)) -> Fixture {
    let fake = FakeYouTube::start().await;
    let mut cfg = fake.config();
    adjust(&mut cfg);
    let yt = YouTube::new(cfg).unwrap();
    let tokens = fake.issue_tokens();
    Fixture { fake, yt, tokens }
}

/// A file of `len` random bytes, written in pieces; its hex sha256.
pub struct VideoFile {
    pub _dir: TempDir,
    pub path: std::path::PathBuf,
    pub len: u64,
    pub sha256: String,
}

impl VideoFile {
    pub async fn random(len: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.mp4");
        let mut file = tokio::fs::File::create(&path).await.unwrap();
        let mut hasher = Sha256::new();
        let mut left = len;
        let mut buf = vec![0u8; 64 * KIB];
        while left > 0 {
            let n = left.min(buf.len());
            rand::rng().fill_bytes(&mut buf[..n]);
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).await.unwrap();
            left -= n;
        }
        file.flush().await.unwrap();
        Self { _dir: dir, path, len: len as u64, sha256: hex::encode(hasher.finalize()) }
    }

    pub async fn source(&self) -> FileSource {
        FileSource::new(&self.path, "video/mp4").await.unwrap()
    }
}

pub fn meta(privacy: Privacy) -> VideoMeta {
    VideoMeta {
        title: "Why the sky is blue, in 40 seconds".into(),
        description: "A short from the long talk.".into(),
        tags: vec!["science".into(), "sky colour".into()],
        privacy,
        publish_at: None,
        category_id: "27".into(),
        made_for_kids: false,
    }
}

/// Every `(sent, total)` the upload reported.
#[derive(Default)]
pub struct Progress(pub Mutex<Vec<(u64, u64)>>);

impl Progress {
    pub fn record(&self, sent: u64, total: u64) {
        self.0.lock().unwrap().push((sent, total));
    }

    pub fn calls(&self) -> Vec<(u64, u64)> {
        self.0.lock().unwrap().clone()
    }

    /// Non-decreasing, and ending at `(total, total)`.
    pub fn assert_finished(&self, total: u64) {
        let calls = self.calls();
        assert_eq!(calls.last(), Some(&(total, total)), "{calls:?}");
        assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0), "{calls:?}");
        assert!(calls.iter().all(|c| c.1 == total));
    }
}

/// The fake stored every byte exactly once and assembled the file.
pub fn assert_stored_exactly_once(fake: &FakeYouTube, session_uri: &str, video_id: &str, file: &VideoFile) {
    let session = fake.session(session_uri).unwrap();
    assert_eq!(session.accepted_bytes, file.len, "{session:?}");
    assert_eq!(session.stored, file.len);
    assert_eq!(session.video_id.as_deref(), Some(video_id));
    let video = fake.video(video_id).unwrap();
    assert_eq!(video.len, file.len);
    assert_eq!(video.sha256, file.sha256);
}
