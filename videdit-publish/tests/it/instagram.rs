//! The Instagram client against the fake Instagram over real HTTP: OAuth
//! with long-lived tokens refreshed after a day, the professional account,
//! Reels containers fed from a URL the fake really fetches or from a
//! resumable upload cut midway, Meta's checks on the real MP4 bytes, the
//! publishing limit, and each failure as its code.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use videdit_publish::FileSource;
use videdit_publish::fake::FakeInstagram;
use videdit_publish::instagram::{Container, Instagram, ReelFacts, ReelPost, ReelSource, check_reel};
use videdit_publish::oauth::Tokens;

async fn setup() -> (FakeInstagram, Instagram, Tokens) {
    let fake = FakeInstagram::start().await;
    let ig = Instagram::new(fake.config()).unwrap();
    let tokens = fake.issue_token();
    (fake, ig, tokens)
}

/// A real 9:16 MP4 (H.264 + AAC); `faststart` puts `moov` first.
pub async fn reel(dir: &Path, secs: u32, faststart: bool) -> PathBuf {
    let out = dir.join(if faststart { "reel.mp4" } else { "reel-moov-last.mp4" });
    videdit_publish::fake::make_mp4(&out, secs, faststart).await;
    out
}

/// Serves one file over HTTP on loopback, to any number of GETs: the
/// stand-in for a presigned storage URL that Meta fetches.
async fn serve_file(bytes: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { continue };
            let bytes = bytes.clone();
            tokio::spawn(async move {
                let mut head = vec![0u8; 4096];
                let _ = s.read(&mut head).await;
                let h = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    bytes.len()
                );
                let _ = s.write_all(h.as_bytes()).await;
                let _ = s.write_all(&bytes).await;
            });
        }
    });
    format!("http://{addr}/short.mp4?X-Amz-Signature=abc")
}

async fn wait_held(fake: &FakeInstagram, id: &str) -> videdit_publish::fake::FakeContainer {
    for _ in 0..200 {
        let c = fake.containers().into_iter().find(|c| c.id == id).unwrap();
        if c.sha256.is_some() || c.status_code != "IN_PROGRESS" {
            return c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("container {id} never got its bytes")
}

fn post(source: ReelSource) -> ReelPost {
    ReelPost { caption: "Why most people retire broke #money #talk".into(), share_to_feed: true, source }
}

#[tokio::test]
async fn an_account_connects_and_its_long_lived_token_refreshes_after_a_day() {
    let fake = FakeInstagram::start().await;
    let ig = Instagram::new(fake.config()).unwrap();
    let url = ig.authorize_url("st4te");
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["scope"], "instagram_business_basic,instagram_business_content_publish");
    assert!(!q.contains_key("code_challenge"), "Instagram has no PKCE");
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = client.get(url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.ends_with("#_"), "{location}");
    let to = url::Url::parse(&location).unwrap();
    let code = to.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    // The code as the browser shows it, with Instagram's `#_`.
    let tokens = ig.exchange_code(&format!("{code}#_")).await.unwrap();
    assert!(tokens.refresh_token.is_none());
    let days = (tokens.expires_at - time::OffsetDateTime::now_utc()).whole_days();
    assert!((59..=60).contains(&days), "a long-lived token: {days} days");
    assert!(tokens.scope.contains("instagram_business_content_publish"), "{}", tokens.scope);
    assert_eq!(ig.exchange_code(&code).await.unwrap_err().code(), "needs_reauthorization", "single use");

    let account = ig.account(&tokens.access_token).await.unwrap();
    // A numeric id above 2^53 arrives intact.
    assert_eq!((account.user_id.clone(), account.username.clone()), fake.account());
    assert!(account.is_professional());
    fake.set_account_type("PERSONAL");
    assert!(!ig.account(&tokens.access_token).await.unwrap().is_professional());

    // Too young to refresh; after a day it refreshes; after 60 days it is gone.
    assert!(ig.refresh(&tokens.access_token).await.is_err());
    fake.advance_clock(time::Duration::hours(25));
    let fresh = ig.refresh(&tokens.access_token).await.unwrap();
    assert!(ig.account(&fresh.access_token).await.is_ok());
    fake.advance_clock(time::Duration::days(61));
    assert_eq!(ig.account(&fresh.access_token).await.unwrap_err().code(), "platform_unauthorized");
    assert_eq!(ig.refresh(&fresh.access_token).await.unwrap_err().code(), "platform_unauthorized");
}

#[tokio::test]
async fn a_reel_from_a_url_is_fetched_checked_and_published() {
    let (fake, ig, tokens) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(reel(dir.path(), 4, true).await).unwrap();
    let (user, _) = fake.account();
    let url = serve_file(bytes.clone()).await;
    let c = ig.create_container(&tokens.access_token, &user, &post(ReelSource::Url(url))).await.unwrap();
    assert_eq!(c.upload_uri, None);
    assert_eq!(ig.container_status(&tokens.access_token, &c.id).await.unwrap().status_code, "IN_PROGRESS");
    let held = wait_held(&fake, &c.id).await;
    assert_eq!(held.sha256.as_deref(), Some(hex::encode(Sha256::digest(&bytes)).as_str()), "{held:?}");
    // Publishing before Meta is done is "not ready", a wait, not a failure.
    let early = ig.publish(&tokens.access_token, &user, &c.id).await.unwrap_err();
    assert_eq!(early.code(), "platform_unavailable");
    fake.finish_processing(&c.id);
    assert_eq!(ig.container_status(&tokens.access_token, &c.id).await.unwrap().status_code, "FINISHED");
    let limit = ig.publishing_limit(&tokens.access_token, &user).await.unwrap();
    assert_eq!((limit.usage, limit.total), (0, 100));
    let media = ig.publish(&tokens.access_token, &user, &c.id).await.unwrap();
    let m = ig.media(&tokens.access_token, &media).await.unwrap();
    assert!(m.permalink.starts_with("https://www.instagram.com/reel/"), "{m:?}");
    assert_eq!(ig.container_status(&tokens.access_token, &c.id).await.unwrap().status_code, "PUBLISHED");
    assert_eq!(ig.recent_media(&tokens.access_token, &user).await.unwrap()[0].id, media);
    assert_eq!(ig.publishing_limit(&tokens.access_token, &user).await.unwrap().usage, 1);
    // A second publish of the same container is refused: no double post.
    assert!(ig.publish(&tokens.access_token, &user, &c.id).await.is_err());
    assert_eq!(fake.published().len(), 1);
}

#[tokio::test]
async fn a_resumable_upload_cut_midway_resumes_from_what_meta_holds() {
    let (fake, ig, tokens) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let path = reel(dir.path(), 5, true).await;
    let bytes = std::fs::read(&path).unwrap();
    let source = FileSource::new(&path, "video/mp4").await.unwrap();
    let (user, _) = fake.account();
    let c: Container = ig.create_container(&tokens.access_token, &user, &post(ReelSource::Resumable)).await.unwrap();
    assert!(c.upload_uri.as_deref().is_some_and(|u| u.contains("/ig-api-upload/")), "{c:?}");
    fake.drop_after_bytes(bytes.len() as u64 / 3);
    let seen = std::sync::Mutex::new(vec![]);
    ig.upload(&tokens.access_token, &c, &source, 0, &|sent, total| seen.lock().unwrap().push((sent, total)))
        .await
        .unwrap();
    let held = fake.containers().into_iter().find(|x| x.id == c.id).unwrap();
    assert_eq!(held.upload_requests, 2, "one cut request, one that sent the rest");
    assert_eq!(held.held, bytes.len() as u64);
    assert_eq!(held.sha256.as_deref(), Some(hex::encode(Sha256::digest(&bytes)).as_str()));
    let seen = seen.into_inner().unwrap();
    assert!(seen.iter().any(|(s, _)| *s > 0 && *s < bytes.len() as u64), "resumed from the middle: {seen:?}");
    assert_eq!(seen.last(), Some(&(bytes.len() as u64, bytes.len() as u64)));
    // A retry after the end sends nothing more.
    ig.upload(&tokens.access_token, &c, &source, bytes.len() as u64, &|_, _| {}).await.unwrap();
    assert_eq!(fake.containers()[0].upload_requests, 2);
}

#[tokio::test]
async fn each_failure_has_its_stable_code() {
    let (fake, ig, tokens) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(reel(dir.path(), 4, true).await).unwrap();
    let moov_last = std::fs::read(reel(dir.path(), 4, false).await).unwrap();
    let (user, _) = fake.account();
    let status = |id: String| {
        let (ig, t) = (&ig, &tokens.access_token);
        async move { ig.container_status(t, &id).await.unwrap() }
    };

    // Our own check refuses a file whose moov is at the end before sending;
    // the fake, like Meta, fails such a container with 2207026.
    let facts = videdit_publish::mp4::probe(&moov_last).unwrap();
    let e = check_reel(&ReelFacts { mp4: &facts, size_bytes: moov_last.len() as u64, caption: "" }).unwrap_err();
    assert_eq!(e.code(), "platform_rule_format");
    let facts = videdit_publish::mp4::probe(&good).unwrap();
    assert!(check_reel(&ReelFacts { mp4: &facts, size_bytes: good.len() as u64, caption: "" }).is_ok());
    let url = serve_file(moov_last).await;
    let c = ig.create_container(&tokens.access_token, &user, &post(ReelSource::Url(url))).await.unwrap();
    wait_held(&fake, &c.id).await;
    let s = status(c.id.clone()).await;
    assert_eq!((s.status_code.as_str(), s.subcode()), ("ERROR", Some(2_207_026)), "{s:?}");

    // Storage Meta cannot reach: ERROR with 2207052.
    fake.unfetchable(true);
    let c =
        ig.create_container(&tokens.access_token, &user, &post(ReelSource::Url(serve_file(good.clone()).await))).await;
    let c = c.unwrap();
    wait_held(&fake, &c.id).await;
    assert_eq!(status(c.id.clone()).await.subcode(), Some(2_207_052));
    fake.unfetchable(false);

    // A container Meta fails for its own reasons.
    fake.fail_next_container(2_207_053);
    let c =
        ig.create_container(&tokens.access_token, &user, &post(ReelSource::Url(serve_file(good.clone()).await))).await;
    let c = c.unwrap();
    wait_held(&fake, &c.id).await;
    assert_eq!(status(c.id.clone()).await.status_code, "ERROR");

    // The publishing limit: the second post in a day is refused as a limit, not a rejection.
    fake.set_quota_total(1);
    let mut ids = vec![];
    for _ in 0..2 {
        let p = post(ReelSource::Url(serve_file(good.clone()).await));
        let c = ig.create_container(&tokens.access_token, &user, &p).await.unwrap();
        wait_held(&fake, &c.id).await;
        fake.finish_processing(&c.id);
        ids.push(c.id);
    }
    ig.publish(&tokens.access_token, &user, &ids[0]).await.unwrap();
    let limit = ig.publishing_limit(&tokens.access_token, &user).await.unwrap();
    assert_eq!((limit.usage, limit.total), (1, 1));
    let e = ig.publish(&tokens.access_token, &user, &ids[1]).await.unwrap_err();
    assert_eq!(e.code(), "platform_posting_limit");
    assert!(e.retry_at().is_some());
    // The window rolls on: a day later the post goes out.
    fake.advance_clock(time::Duration::hours(25));
    let fresh = fake.issue_token();
    assert!(ig.publish(&fresh.access_token, &user, &ids[1]).await.is_ok());

    // Expired tokens: 190, our platform_unauthorized.
    fake.expire_tokens();
    let e = ig.create_container(&fresh.access_token, &user, &post(ReelSource::Resumable)).await.unwrap_err();
    assert_eq!(e.code(), "platform_unauthorized");
}
