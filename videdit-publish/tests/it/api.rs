//! The Data API calls, error mapping, and keeping secrets out of logs and Debug output.

use std::sync::{Arc, Mutex};

use time::OffsetDateTime;
use videdit_publish::next_pacific_midnight;
use videdit_publish::youtube::{Privacy, ShortFacts, check_rules};

use crate::support::{KIB, VideoFile, meta, setup};

#[tokio::test]
async fn channel_of_the_account() {
    let f = setup().await;
    let channel = f.yt.channel(&f.tokens.access_token).await.unwrap();
    assert_eq!((channel.id, channel.title), f.fake.channel());
}

#[tokio::test]
async fn an_expired_access_token_is_platform_unauthorized() {
    let f = setup().await;
    f.fake.expire_access_tokens();
    let err = f.yt.channel(&f.tokens.access_token).await.unwrap_err();
    assert_eq!(err.code(), "platform_unauthorized");
    assert!(err.message().starts_with("Request had invalid authentication credentials."), "{}", err.message());
    assert!(!err.is_retryable());
    assert_eq!(err.retry_at(), None);
}

#[tokio::test]
async fn quota_exceeded_retries_at_the_next_pacific_midnight() {
    let f = setup().await;
    f.fake.quota_exceeded(true);
    let before = next_pacific_midnight(OffsetDateTime::now_utc());
    let err = f.yt.channel(&f.tokens.access_token).await.unwrap_err();
    let after = next_pacific_midnight(OffsetDateTime::now_utc());
    assert_eq!(err.code(), "platform_quota_exceeded");
    assert!(err.is_retryable());
    let at = err.retry_at().unwrap();
    assert!(at == before || at == after, "{at}");
    assert!(err.message().contains("exceeded your"), "{}", err.message());

    let err = f.yt.start_upload(&f.tokens.access_token, &meta(Privacy::Public), 10, "video/mp4").await.unwrap_err();
    assert_eq!(err.code(), "platform_quota_exceeded");

    f.fake.quota_exceeded(false);
    f.yt.channel(&f.tokens.access_token).await.unwrap();
}

#[tokio::test]
async fn video_status_follows_processing() {
    let f = setup().await;
    let file = VideoFile::random(50 * KIB).await;
    let source = file.source().await;
    let session =
        f.yt.start_upload(&f.tokens.access_token, &meta(Privacy::Unlisted), file.len, "video/mp4").await.unwrap();
    let video = f.yt.upload(&f.tokens.access_token, &session, &source, &|_, _| {}).await.unwrap();

    let status = f.yt.video_status(&f.tokens.access_token, &video.id).await.unwrap();
    assert_eq!(status.upload_status, "uploaded");
    assert_eq!(status.privacy_status, "unlisted");
    assert_eq!(status.processing.as_deref(), Some("processing"));
    assert_eq!(status.failure_reason, None);
    assert_eq!(status.rejection_reason, None);

    f.fake.finish_processing(&video.id);
    let status = f.yt.video_status(&f.tokens.access_token, &video.id).await.unwrap();
    assert_eq!(status.upload_status, "processed");
    assert_eq!(status.processing.as_deref(), Some("succeeded"));

    let err = f.yt.video_status(&f.tokens.access_token, "nope").await.unwrap_err();
    assert_eq!(err.code(), "platform_video_not_found");
}

#[test]
fn rules_have_stable_codes() {
    let tags: Vec<String> = vec!["x".repeat(501)];
    let ok = ShortFacts {
        duration_secs: 59.0,
        width: 1080,
        height: 1920,
        size_bytes: 1_000,
        title: "t",
        description: "",
        tags: &[],
    };
    assert!(check_rules(&ok).is_ok());
    let cases: [(ShortFacts<'_>, &str); 6] = [
        (ShortFacts { duration_secs: 181.0, ..ok }, "platform_rule_duration"),
        (ShortFacts { width: 1920, height: 1080, ..ok }, "platform_rule_aspect"),
        (ShortFacts { title: "", ..ok }, "platform_rule_title"),
        (ShortFacts { description: "<b>", ..ok }, "platform_rule_description"),
        (ShortFacts { tags: &tags, ..ok }, "platform_rule_tags"),
        (ShortFacts { size_bytes: 300 * 1024 * 1024 * 1024, ..ok }, "platform_rule_size"),
    ];
    for (facts, code) in cases {
        let err = check_rules(&facts).unwrap_err();
        assert_eq!(err.code(), code);
        assert!(!err.is_retryable());
    }
}

/// A `MakeWriter` collecting everything logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

// A current-thread runtime: the subscriber set below sees the fake's tasks too.
#[tokio::test(flavor = "current_thread")]
async fn tokens_and_secrets_stay_out_of_logs_and_debug() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let f = setup().await;
    let refresh = f.tokens.refresh_token.clone().unwrap();
    let fresh = f.yt.refresh(&refresh).await.unwrap();
    f.yt.channel(&fresh.access_token).await.unwrap();
    let file = VideoFile::random(600 * KIB).await;
    let source = file.source().await;
    let session = f.yt.start_upload(&fresh.access_token, &meta(Privacy::Public), file.len, "video/mp4").await.unwrap();
    f.fake.fail_next_chunk(503);
    f.yt.upload(&fresh.access_token, &session, &source, &|_, _| {}).await.unwrap();
    f.fake.expire_access_tokens();
    let unauthorized = f.yt.channel(&fresh.access_token).await.unwrap_err();
    f.fake.quota_exceeded(true);
    let quota = f.yt.channel(&f.fake.issue_tokens().access_token).await.unwrap_err();

    let secrets = [
        f.fake.client_secret().expose().clone(),
        f.tokens.access_token.expose().clone(),
        refresh.expose().clone(),
        fresh.access_token.expose().clone(),
        session.uri.split_once("upload_id=").unwrap().1.to_owned(),
    ];
    let debug = format!(
        "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {unauthorized} {quota}",
        f.yt,
        f.yt.config(),
        f.tokens,
        fresh,
        session,
        unauthorized,
        quota
    );
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("upload interrupted"), "the capture works: {logs}");
    for secret in &secrets {
        assert!(!debug.contains(secret.as_str()), "Debug shows {secret}: {debug}");
        assert!(!logs.contains(secret.as_str()), "logs show {secret}");
    }
}
