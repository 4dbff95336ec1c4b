//! Resumable uploads against the fake: chunking, interruptions, resumption, scheduling.

use std::sync::atomic::{AtomicBool, Ordering};

use videdit_publish::ByteSource;
use videdit_publish::youtube::{Privacy, UploadProgress, YouTube};

use crate::support::{KIB, Progress, VideoFile, assert_stored_exactly_once, meta, setup, setup_with};

const LEN: usize = 3 * 1024 * KIB + 12_345;

#[tokio::test]
async fn a_multi_chunk_upload_arrives_intact() {
    for chunk in [256 * KIB, 512 * KIB] {
        let f = setup_with(|c| c.chunk_size = chunk).await;
        let file = VideoFile::random(LEN).await;
        let source = file.source().await;
        let session =
            f.yt.start_upload(&f.tokens.access_token, &meta(Privacy::Public), source.len(), "video/mp4").await.unwrap();
        let progress = Progress::default();
        let video =
            f.yt.upload(&f.tokens.access_token, &session, &source, &|s, t| progress.record(s, t)).await.unwrap();

        assert_eq!(video.url, format!("https://youtube.com/shorts/{}", video.id));
        assert_eq!(video.privacy_status, "public");
        assert_eq!(video.upload_status, "uploaded");
        assert_stored_exactly_once(&f.fake, &session.uri, &video.id, &file);
        let s = f.fake.session(&session.uri).unwrap();
        assert_eq!(s.chunk_requests as usize, LEN.div_ceil(chunk));
        assert_eq!(s.received_bytes, file.len);
        assert_eq!(s.content_type, "video/mp4");
        progress.assert_finished(file.len);
        // What the fake received is what we sent.
        let m = f.fake.video(&video.id).unwrap().metadata;
        assert_eq!(m["snippet"]["title"], "Why the sky is blue, in 40 seconds");
        assert_eq!(m["snippet"]["tags"][1], "sky colour");
        assert_eq!(m["snippet"]["categoryId"], "27");
        assert_eq!(m["status"]["selfDeclaredMadeForKids"], false);
    }
}

#[tokio::test]
async fn a_connection_dropped_mid_chunk_resumes_from_what_the_server_kept() {
    let f = setup_with(|c| c.chunk_size = 512 * KIB).await;
    let file = VideoFile::random(LEN).await;
    let source = file.source().await;
    let session =
        f.yt.start_upload(&f.tokens.access_token, &meta(Privacy::Public), source.len(), "video/mp4").await.unwrap();
    let progress = Progress::default();
    let armed = AtomicBool::new(false);
    let video =
        f.yt.upload(&f.tokens.access_token, &session, &source, &|sent, total| {
            progress.record(sent, total);
            // Once 1 MiB is confirmed, cut the next chunk off 300 000 bytes in
            // (the server keeps 262 144 of them).
            if sent >= 1024 * 1024 && !armed.swap(true, Ordering::SeqCst) {
                f.fake.drop_after_bytes(300_000);
            }
        })
        .await
        .unwrap();
    assert!(armed.load(Ordering::SeqCst));
    assert_stored_exactly_once(&f.fake, &session.uri, &video.id, &file);
    let s = f.fake.session(&session.uri).unwrap();
    assert!(s.status_queries >= 1, "{s:?}");
    // The dropped request's unkept tail was sent again, and nothing else.
    assert_eq!(s.received_bytes, file.len + (300_000 - 262_144));
    // The client resumed from 1 MiB + 256 KiB, not from zero.
    assert!(progress.calls().contains(&(1024 * 1024 + 256 * 1024, file.len)), "{:?}", progress.calls());
    progress.assert_finished(file.len);
}

#[tokio::test]
async fn a_503_is_retried_from_the_server_range() {
    let f = setup().await;
    let file = VideoFile::random(LEN).await;
    let source = file.source().await;
    let session =
        f.yt.start_upload(&f.tokens.access_token, &meta(Privacy::Public), source.len(), "video/mp4").await.unwrap();
    let progress = Progress::default();
    let armed = AtomicBool::new(false);
    let video =
        f.yt.upload(&f.tokens.access_token, &session, &source, &|sent, total| {
            progress.record(sent, total);
            if sent >= 768 * 1024 && !armed.swap(true, Ordering::SeqCst) {
                f.fake.fail_next_chunk(503);
            }
        })
        .await
        .unwrap();
    assert_stored_exactly_once(&f.fake, &session.uri, &video.id, &file);
    let s = f.fake.session(&session.uri).unwrap();
    assert_eq!(s.chunk_requests as usize, LEN.div_ceil(256 * KIB) + 1);
    assert_eq!(s.status_queries, 1);
    progress.assert_finished(file.len);
}

#[tokio::test]
async fn several_interruptions_in_one_upload() {
    let f = setup().await;
    let file = VideoFile::random(LEN).await;
    let source = file.source().await;
    let session =
        f.yt.start_upload(&f.tokens.access_token, &meta(Privacy::Public), source.len(), "video/mp4").await.unwrap();
    let step = std::sync::atomic::AtomicU32::new(0);
    let video =
        f.yt.upload(&f.tokens.access_token, &session, &source, &|_, _| match step.fetch_add(1, Ordering::SeqCst) {
            1 => f.fake.drop_after_bytes(10),
            3 => f.fake.fail_next_chunk(500),
            5 => f.fake.drop_after_bytes(256 * 1024),
            _ => {}
        })
        .await
        .unwrap();
    assert_stored_exactly_once(&f.fake, &session.uri, &video.id, &file);
}

#[tokio::test]
async fn a_dropped_last_chunk_that_arrived_whole_completes_on_the_status_query() {
    let f = setup().await;
    let file = VideoFile::random(300 * KIB).await; // chunks of 256 KiB and 44 KiB
    let source = file.source().await;
    let session =
        f.yt.start_upload(&f.tokens.access_token, &meta(Privacy::Public), source.len(), "video/mp4").await.unwrap();
    let video =
        f.yt.upload(&f.tokens.access_token, &session, &source, &|sent, _| {
            if sent == 256 * 1024 {
                f.fake.drop_after_bytes(u64::MAX);
            }
        })
        .await
        .unwrap();
    assert_stored_exactly_once(&f.fake, &session.uri, &video.id, &file);
    assert_eq!(f.fake.session(&session.uri).unwrap().status_queries, 1);
}

#[tokio::test]
async fn resume_from_a_fresh_client_after_an_interrupted_upload() {
    let f = setup_with(|c| c.retry.max_retries = 0).await;
    let file = VideoFile::random(LEN).await;
    let source = file.source().await;
    let session =
        f.yt.start_upload(&f.tokens.access_token, &meta(Privacy::Unlisted), source.len(), "video/mp4").await.unwrap();
    let err =
        f.yt.upload(&f.tokens.access_token, &session, &source, &|sent, _| {
            if sent == 1024 * 1024 {
                f.fake.drop_after_bytes(100_000);
            }
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "platform_unavailable", "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(f.fake.session(&session.uri).unwrap().stored, 1024 * 1024);

    // A retried job: another client, another source object, only the stored session URI.
    let yt = YouTube::new(f.fake.config()).unwrap();
    let stored = videdit_publish::youtube::UploadSession { uri: session.uri.clone() };
    assert_eq!(
        yt.upload_progress(&f.tokens.access_token, &stored, file.len).await.unwrap(),
        UploadProgress::Incomplete { received: 1024 * 1024 }
    );
    let progress = Progress::default();
    let video =
        yt.resume(&f.tokens.access_token, &stored, &file.source().await, &|s, t| progress.record(s, t)).await.unwrap();
    assert_eq!(progress.calls().first(), Some(&(1024 * 1024, file.len)));
    progress.assert_finished(file.len);
    assert_eq!(video.privacy_status, "unlisted");
    assert_stored_exactly_once(&f.fake, &session.uri, &video.id, &file);

    // Resuming a finished upload just returns the video.
    let again = yt.resume(&f.tokens.access_token, &stored, &file.source().await, &|_, _| {}).await.unwrap();
    assert_eq!(again.id, video.id);
    assert_eq!(f.fake.videos().len(), 1);
}

#[tokio::test]
async fn retries_are_bounded() {
    let f = setup_with(|c| c.retry.max_retries = 0).await;
    let file = VideoFile::random(600 * KIB).await;
    let source = file.source().await;
    let session =
        f.yt.start_upload(&f.tokens.access_token, &meta(Privacy::Public), source.len(), "video/mp4").await.unwrap();
    f.fake.fail_next_chunk(503);
    let err = f.yt.upload(&f.tokens.access_token, &session, &source, &|_, _| {}).await.unwrap_err();
    assert_eq!(err.code(), "platform_unavailable");
    assert_eq!(err.message(), "Backend Error");
    assert_eq!(f.fake.session(&session.uri).unwrap().chunk_requests, 1);
}

#[tokio::test]
async fn an_expired_session_must_start_over() {
    let f = setup().await;
    let file = VideoFile::random(600 * KIB).await;
    let source = file.source().await;
    let session =
        f.yt.start_upload(&f.tokens.access_token, &meta(Privacy::Public), source.len(), "video/mp4").await.unwrap();
    f.fake.expire_upload_sessions();
    let err = f.yt.upload(&f.tokens.access_token, &session, &source, &|_, _| {}).await.unwrap_err();
    assert_eq!(err.code(), "upload_session_expired");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_401_mid_upload_is_resumed_after_a_refresh() {
    let f = setup().await;
    let file = VideoFile::random(LEN).await;
    let source = file.source().await;
    let session =
        f.yt.start_upload(&f.tokens.access_token, &meta(Privacy::Public), source.len(), "video/mp4").await.unwrap();
    let err =
        f.yt.upload(&f.tokens.access_token, &session, &source, &|sent, _| {
            if sent == 512 * 1024 {
                f.fake.expire_access_tokens();
            }
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "platform_unauthorized");
    let fresh = f.yt.refresh(f.tokens.refresh_token.as_ref().unwrap()).await.unwrap();
    let video = f.yt.resume(&fresh.access_token, &session, &source, &|_, _| {}).await.unwrap();
    assert_stored_exactly_once(&f.fake, &session.uri, &video.id, &file);
}

#[tokio::test]
async fn a_scheduled_public_post_is_sent_private_with_publish_at() {
    let f = setup().await;
    let file = VideoFile::random(100 * KIB).await;
    let source = file.source().await;
    let at = (time::OffsetDateTime::now_utc() + time::Duration::days(2)).replace_nanosecond(0).unwrap();
    let mut m = meta(Privacy::Public);
    m.publish_at = Some(at);
    let session = f.yt.start_upload(&f.tokens.access_token, &m, source.len(), "video/mp4").await.unwrap();
    let sent = f.fake.session(&session.uri).unwrap().metadata;
    assert_eq!(sent["status"]["privacyStatus"], "private");
    let sent_at = time::OffsetDateTime::parse(
        sent["status"]["publishAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(sent_at, at);
    let video = f.yt.upload(&f.tokens.access_token, &session, &source, &|_, _| {}).await.unwrap();
    assert_eq!(video.privacy_status, "private");
    assert_eq!(video.publish_at, Some(at));
    let status = f.yt.video_status(&f.tokens.access_token, &video.id).await.unwrap();
    assert_eq!(status.publish_at, Some(at));

    // Private and scheduled contradict each other.
    m.privacy = Privacy::Private;
    let err = f.yt.start_upload(&f.tokens.access_token, &m, source.len(), "video/mp4").await.unwrap_err();
    assert_eq!(err.code(), "invalid_request");
}

#[tokio::test]
async fn an_unverified_project_gets_private_videos() {
    let f = setup().await;
    f.fake.force_private(true);
    let file = VideoFile::random(100 * KIB).await;
    let source = file.source().await;
    let session =
        f.yt.start_upload(&f.tokens.access_token, &meta(Privacy::Public), source.len(), "video/mp4").await.unwrap();
    let video = f.yt.upload(&f.tokens.access_token, &session, &source, &|_, _| {}).await.unwrap();
    assert_eq!(video.privacy_status, "private");
    assert_eq!(video.privacy(), Some(Privacy::Private));
}

#[tokio::test]
async fn metadata_rules_are_checked_before_sending() {
    let f = setup().await;
    let mut m = meta(Privacy::Public);
    m.title = "<script>".into();
    let err = f.yt.start_upload(&f.tokens.access_token, &m, 10, "video/mp4").await.unwrap_err();
    assert_eq!(err.code(), "platform_rule_title");
    assert!(f.fake.sessions().is_empty());
}

/// The fake holds clients to the protocol: these are what a wrong client would send.
#[tokio::test]
async fn the_fake_enforces_the_upload_protocol() {
    let f = setup().await;
    let http = reqwest::Client::new();
    let auth = format!("Bearer {}", f.tokens.access_token.expose());
    let start = |body: serde_json::Value| {
        http.post(format!("{}/upload/youtube/v3/videos?uploadType=resumable&part=snippet,status", f.fake.base_url()))
            .header("Authorization", &auth)
            .header("X-Upload-Content-Length", "600000")
            .header("X-Upload-Content-Type", "video/mp4")
            .json(&body)
            .send()
    };
    let at = "2099-01-01T00:00:00Z";
    let resp = start(serde_json::json!({"snippet":{"title":"t"},"status":{"privacyStatus":"public","publishAt":at}}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["errors"][0]["reason"], "invalidPublishAt");

    let resp = start(serde_json::json!({"snippet":{"title":"t"},"status":{"privacyStatus":"private"}})).await.unwrap();
    assert_eq!(resp.status(), 200);
    let uri = resp.headers()["location"].to_str().unwrap().to_owned();
    let put = |range: &str, body: Vec<u8>| {
        http.put(&uri).header("Authorization", &auth).header("Content-Range", range).body(body).send()
    };
    // Not a multiple of 256 KiB, and not the last chunk.
    assert_eq!(put("bytes 0-99999/600000", vec![0; 100_000]).await.unwrap().status(), 400);
    // Content-Range disagrees with the body.
    assert_eq!(put("bytes 0-262143/600000", vec![0; 10]).await.unwrap().status(), 400);
    // Does not start at the next expected byte.
    assert_eq!(put("bytes 262144-524287/600000", vec![0; 262_144]).await.unwrap().status(), 400);
    // Nothing stored yet: 308 without Range.
    let resp = put("bytes */600000", vec![]).await.unwrap();
    assert_eq!(resp.status(), 308);
    assert!(resp.headers().get("range").is_none());
    let resp = put("bytes 0-262143/600000", vec![0; 262_144]).await.unwrap();
    assert_eq!(resp.status(), 308);
    assert_eq!(resp.headers()["range"], "bytes=0-262143");
    // No token, no upload.
    let resp = http.put(&uri).header("Content-Range", "bytes */600000").send().await.unwrap();
    assert_eq!(resp.status(), 401);
}
