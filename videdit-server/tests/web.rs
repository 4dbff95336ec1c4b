//! The web app end to end: the real `videdit serve --with-worker` (the
//! command the README gives, `AUTH_MODE=insecure-dev`, local storage, a
//! database of its own, the imported tiny.en model) and a real headless
//! Chromium driven by `web/e2e/run.mjs` (playwright-core over CDP): sign
//! in as the dev user, upload a generated talk through the page, watch it
//! reach ready without reloading, play a short, seek the source from the
//! transcript, trim a short and fix a word and see the re-render, delete a
//! video, resume an interrupted multipart upload after a reload, and
//! connect a (fake) YouTube channel through the OAuth pages and publish a
//! short to it from the publish dialog.
//! Screenshots of every page land in `$CARGO_TARGET_DIR/web-e2e/`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use videdit_media::process::Ffmpeg;
use videdit_media::testing::{SLEEP, TalkSpec, make_talk, small_talk};

struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The URL of the database `pool` is connected to.
async fn url_of(pool: &PgPool) -> String {
    let name: String = sqlx::query_scalar("SELECT current_database()").fetch_one(pool).await.unwrap();
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

#[sqlx::test(migrations = false)]
async fn a_person_uploads_follows_edits_and_deletes_in_the_web_app(pool: PgPool) {
    assert!(
        videdit_server::web::built(),
        "the web app is not built: npm --prefix web ci && npm --prefix web run build"
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/e2e/run.mjs");
    let dir = tempfile::tempdir().unwrap();
    let mut spec = TalkSpec::new(vec![small_talk(0, 3), SLEEP.into(), small_talk(5, 3)]);
    spec.size = Some((640, 360));
    let talk = make_talk(&Ffmpeg::default(), &spec, &dir.path().join("a-talk-about-money.mp4")).await.unwrap();
    let model = videdit_media::testing::tiny_en_test_model();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // A fake YouTube (Google's OAuth and upload protocol on loopback) that
    // sends people back to the web app's callback page, and finishes
    // processing what it holds, as YouTube does after a while.
    let youtube = std::sync::Arc::new(videdit_publish::fake::FakeYouTube::start().await);
    let callback = format!("{base}/connections/youtube/callback");
    youtube.add_redirect_uri(&callback);
    let yt = youtube.config();
    let finisher = {
        let youtube = youtube.clone();
        tokio::spawn(async move {
            loop {
                for v in youtube.videos() {
                    youtube.finish_processing(&v.id);
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let env: Vec<(&str, String)> = vec![
        ("YOUTUBE_CLIENT_ID", yt.client_id.clone()),
        ("YOUTUBE_CLIENT_SECRET", yt.client_secret.expose().clone()),
        ("YOUTUBE_REDIRECT_URI", callback.clone()),
        ("YOUTUBE_AUTH_URL", yt.auth_url.to_string()),
        ("YOUTUBE_TOKEN_URL", yt.token_url.to_string()),
        ("YOUTUBE_REVOKE_URL", yt.revoke_url.to_string()),
        ("YOUTUBE_API_BASE", yt.api_base.to_string()),
        ("DATABASE_URL", url_of(&pool).await),
        ("AUTH_MODE", "insecure-dev".into()),
        ("STORAGE", "local".into()),
        ("STORAGE_DIR", dir.path().join("storage").display().to_string()),
        ("BIND_ADDR", format!("127.0.0.1:{port}")),
        ("PUBLIC_URL", base.clone()),
        ("HEALTH_ADDR", format!("127.0.0.1:{}", free_port())),
        ("VIDEDIT_MODEL_DIR", model.parent().unwrap().display().to_string()),
        ("WHISPER_MODEL", "tiny.en".into()),
        ("LIMIT_REQUESTS_PER_SECOND", "0".into()),
        ("LIMIT_REQUESTS_PER_SECOND_PER_IP", "0".into()),
        ("RUST_LOG", "warn".into()),
    ];
    let bin = env!("CARGO_BIN_EXE_videdit");
    let migrate = Command::new(bin).arg("migrate").envs(env.iter().cloned()).status().unwrap();
    assert!(migrate.success(), "videdit migrate");
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let _server = Kill(
        Command::new(bin)
            .args(["serve", "--with-worker"])
            .envs(env.iter().cloned())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "the server did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(|_| dir.path().to_path_buf(), std::path::PathBuf::from);
    let artefacts = target.join("web-e2e");
    let _ = std::fs::remove_dir_all(&artefacts);
    let out = tokio::time::timeout(
        Duration::from_secs(1500),
        tokio::process::Command::new("node").arg(&script).arg(&base).arg(&talk.path).arg(&artefacts).output(),
    )
    .await
    .expect("the browser test ends within 25 minutes")
    .expect("node runs");
    finisher.abort();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let server_log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "the browser test failed (screenshots in {}):\n{stdout}\n{}\nserver log:\n{}",
        artefacts.display(),
        String::from_utf8_lossy(&out.stderr),
        &server_log[server_log.len().saturating_sub(4000)..]
    );
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
    let shots = std::fs::read_dir(&artefacts)
        .unwrap()
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "png")))
        .count();
    assert!(shots >= 12, "a screenshot of every page: {shots}");
    // The short published from the page is the one YouTube holds.
    assert_eq!(youtube.videos().len(), 1, "one short published through the web app");
}
