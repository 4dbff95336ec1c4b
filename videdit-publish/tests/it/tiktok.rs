//! The TikTok client against the fake TikTok over real HTTP: OAuth with
//! PKCE and rotating refresh tokens, creator info, chunked uploads by
//! TikTok's rules (resumed after a failing chunk, a dropped connection, a
//! restart), the status until published, and each failure as its code.

use std::sync::Mutex;

use videdit_publish::fake::FakeTikTok;
use videdit_publish::oauth::{Pkce, Tokens};
use videdit_publish::tiktok::{MIB, PostMode, PostRequest, TikTok, check_post};

use crate::support::VideoFile;

const SCOPES: &str = "user.info.basic,video.publish,video.upload";

async fn setup() -> (FakeTikTok, TikTok, Tokens) {
    let fake = FakeTikTok::start().await;
    let tt = TikTok::new(fake.config()).unwrap();
    let tokens = fake.issue_tokens(SCOPES);
    (fake, tt, tokens)
}

fn post(privacy: &str) -> PostRequest {
    PostRequest {
        title: "Why do most people retire broke? #money".into(),
        privacy_level: privacy.into(),
        allow_comments: true,
        allow_duet: false,
        allow_stitch: true,
        is_aigc: false,
        duration_secs: 42.0,
    }
}

#[tokio::test]
async fn an_account_connects_with_pkce_and_its_refresh_token_rotates() {
    let fake = FakeTikTok::start().await;
    let tt = TikTok::new(fake.config()).unwrap();
    let pkce = Pkce::generate();
    let url = tt.authorize_url("st4te", &pkce.challenge, PostMode::Direct);
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["scope"], "user.info.basic,video.publish");
    assert_eq!(q["code_challenge_method"], "S256");
    let r = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap().get(url).send();
    let r = r.await.unwrap();
    assert_eq!(r.status(), 302);
    let to = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let code = to.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    assert_eq!(to.query_pairs().find(|(k, _)| k == "state").unwrap().1, "st4te");

    // The wrong verifier is refused; the right one gets tokens, once.
    let wrong = Pkce::generate();
    assert_eq!(tt.exchange_code(&code, &wrong.verifier).await.unwrap_err().code(), "needs_reauthorization");
    let url = tt.authorize_url("s2", &pkce.challenge, PostMode::Direct);
    let r = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap().get(url).send();
    let to = url::Url::parse(r.await.unwrap().headers()["location"].to_str().unwrap()).unwrap();
    let code = to.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let tokens = tt.exchange_code(&code, &pkce.verifier).await.unwrap();
    assert!(tokens.scope.contains("video.publish"), "{}", tokens.scope);
    assert_eq!(tt.exchange_code(&code, &pkce.verifier).await.unwrap_err().code(), "needs_reauthorization");
    let account = tt.account(&tokens.access_token).await.unwrap();
    assert_eq!((account.open_id, account.display_name), fake.account());

    // Refresh rotates: the new refresh token works, the old one no more
    // (TikTok says so with a 200, which the client reads as a refusal).
    let old = tokens.refresh_token.clone().unwrap();
    let fresh = tt.refresh(&old).await.unwrap();
    assert_ne!(fresh.refresh_token.as_ref().unwrap().expose(), old.expose());
    assert_eq!(tt.refresh(&old).await.unwrap_err().code(), "needs_reauthorization");
    assert!(tt.refresh(fresh.refresh_token.as_ref().unwrap()).await.is_ok());
    // Revoked: the token stops working.
    tt.revoke(&fresh.access_token).await.unwrap();
    assert_eq!(tt.account(&fresh.access_token).await.unwrap_err().code(), "platform_unauthorized");
}

#[tokio::test]
async fn a_direct_post_goes_up_in_chunks_by_tiktoks_rules_and_is_published() {
    let (fake, tt, tokens) = setup().await;
    let creator = tt.creator_info(&tokens.access_token).await.unwrap();
    assert!(creator.duet_disabled && creator.privacy_level_options.contains(&"PUBLIC_TO_EVERYONE".to_owned()));
    let request = post("PUBLIC_TO_EVERYONE");
    check_post(&creator, &request).unwrap();
    // 17 MiB + 3 bytes in 5 MiB chunks: 3 chunks, the last taking 7 MiB + 3.
    let file = VideoFile::random(17 * MIB as usize + 3).await;
    let init = tt.init(&tokens.access_token, PostMode::Direct, &request, file.len).await.unwrap();
    assert_eq!((init.plan.chunk_size, init.plan.total_chunk_count), (5 * MIB, 3));
    let seen = Mutex::new(vec![]);
    tt.upload(&init, &file.source().await, 0, &|sent, total| seen.lock().unwrap().push((sent, total))).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(5 * MIB, file.len), (10 * MIB, file.len), (file.len, file.len), (file.len, file.len)]
    );
    let held = &fake.posts()[0];
    assert_eq!((held.sha256.as_deref(), held.chunk_requests), (Some(file.sha256.as_str()), 3));
    assert_eq!(held.post_info["privacy_level"], "PUBLIC_TO_EVERYONE");
    assert_eq!(
        (held.post_info["disable_duet"].as_bool(), held.post_info["disable_comment"].as_bool()),
        (Some(true), Some(false))
    );

    let s = tt.status(&tokens.access_token, &init.publish_id).await.unwrap();
    assert_eq!((s.status.as_str(), s.is_final()), ("PROCESSING_UPLOAD", false));
    fake.finish_processing(&init.publish_id);
    let s = tt.status(&tokens.access_token, &init.publish_id).await.unwrap();
    assert_eq!(s.status, "PUBLISH_COMPLETE");
    // Post ids are int64s past 2^53: read exactly.
    assert!(s.post_ids.len() == 1 && s.post_ids[0] > 7_300_000_000_000_000_000, "{:?}", s.post_ids);
}

#[tokio::test]
async fn a_small_file_goes_whole_and_an_inbox_draft_ends_in_the_inbox() {
    let (fake, tt, tokens) = setup().await;
    let file = VideoFile::random(3 * MIB as usize).await;
    let init = tt.init(&tokens.access_token, PostMode::Inbox, &post("SELF_ONLY"), file.len).await.unwrap();
    assert_eq!((init.plan.chunk_size, init.plan.total_chunk_count), (file.len, 1));
    assert!(init.publish_id.starts_with("v_inbox_file~"), "{}", init.publish_id);
    tt.upload(&init, &file.source().await, 0, &|_, _| {}).await.unwrap();
    fake.finish_processing(&init.publish_id);
    let s = tt.status(&tokens.access_token, &init.publish_id).await.unwrap();
    assert_eq!(s.status, "SEND_TO_USER_INBOX");
    assert_eq!(fake.posts()[0].sha256.as_deref(), Some(file.sha256.as_str()));
}

#[tokio::test]
async fn failing_and_dropped_chunks_are_sent_again_and_every_byte_lands_once() {
    let (fake, tt, tokens) = setup().await;
    let file = VideoFile::random(12 * MIB as usize).await;
    let init = tt.init(&tokens.access_token, PostMode::Direct, &post("SELF_ONLY"), file.len).await.unwrap();
    fake.fail_next_chunk(503);
    fake.fail_next_chunk(500);
    tt.upload(&init, &file.source().await, 0, &|_, _| {}).await.unwrap();
    let held = &fake.posts()[0];
    assert_eq!((held.accepted_bytes, held.sha256.as_deref()), (file.len, Some(file.sha256.as_str())));
    assert_eq!(held.chunk_requests, 4, "2 chunks and 2 failures");

    // A connection dropped mid-chunk: nothing of that chunk is kept, it is sent again.
    let init = tt.init(&tokens.access_token, PostMode::Direct, &post("SELF_ONLY"), file.len).await.unwrap();
    fake.drop_after_bytes(1000);
    tt.upload(&init, &file.source().await, 0, &|_, _| {}).await.unwrap();
    let held = &fake.posts()[1];
    assert_eq!((held.accepted_bytes, held.sha256.as_deref()), (file.len, Some(file.sha256.as_str())));
    assert_eq!(held.chunk_requests, 3);
}

#[tokio::test]
async fn an_upload_resumed_by_another_process_starts_after_the_chunks_tiktok_holds() {
    let (fake, tt, tokens) = setup().await;
    let file = VideoFile::random(16 * MIB as usize).await;
    let init = tt.init(&tokens.access_token, PostMode::Direct, &post("SELF_ONLY"), file.len).await.unwrap();
    assert_eq!(init.plan.total_chunk_count, 3);
    // The first chunk goes in; then every try of the second fails: the run gives up.
    let source = file.source().await;
    let after_first = |sent: u64, _: u64| {
        if sent == 5 * MIB {
            for _ in 0..6 {
                fake.fail_next_chunk(502);
            }
        }
    };
    let e = tt.upload(&init, &source, 0, &after_first).await.unwrap_err();
    assert_eq!(e.code(), "platform_unavailable");
    assert_eq!(fake.posts()[0].stored, 5 * MIB, "the first chunk was taken");
    let from = tt.resume_point(&tokens.access_token, &init).await.unwrap();
    assert_eq!(from, 1);
    tt.upload(&init, &source, from, &|_, _| {}).await.unwrap();
    let held = &fake.posts()[0];
    assert_eq!((held.accepted_bytes, held.sha256.as_deref()), (file.len, Some(file.sha256.as_str())));
}

#[tokio::test]
async fn each_failure_has_its_code() {
    let (fake, tt, tokens) = setup().await;
    let file = VideoFile::random(MIB as usize).await;
    let t = &tokens.access_token;
    // A privacy level the account does not offer.
    fake.set_privacy_levels(&["FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]);
    let creator = tt.creator_info(t).await.unwrap();
    assert_eq!(check_post(&creator, &post("PUBLIC_TO_EVERYONE")).unwrap_err().code(), "platform_option_not_allowed");
    let e = tt.init(t, PostMode::Direct, &post("PUBLIC_TO_EVERYONE"), file.len).await.unwrap_err();
    assert_eq!(e.code(), "platform_option_not_allowed");
    // An unaudited app may post SELF_ONLY only.
    fake.unaudited(true);
    let e = tt.init(t, PostMode::Direct, &post("MUTUAL_FOLLOW_FRIENDS"), file.len).await.unwrap_err();
    assert_eq!(e.code(), "platform_unaudited_client");
    assert!(e.message().contains("SELF_ONLY"), "{}", e.message());
    assert!(tt.init(t, PostMode::Direct, &post("SELF_ONLY"), file.len).await.is_ok());
    fake.unaudited(false);
    // The posting cap: reported by creator info with a 200, retried in a day.
    fake.posting_cap(true);
    let e = tt.creator_info(t).await.unwrap_err();
    assert_eq!(e.code(), "platform_posting_limit");
    assert!(e.is_retryable() && e.retry_at().is_some());
    fake.posting_cap(false);
    // 6 inits a minute: the seventh waits a minute (the caller spreads the burst).
    fake.set_init_limit(3);
    let e = loop {
        if let Err(e) = tt.init(t, PostMode::Direct, &post("SELF_ONLY"), file.len).await {
            break e;
        }
    };
    assert_eq!(e.code(), "platform_rate_limited");
    assert!(e.retry_at().unwrap() > time::OffsetDateTime::now_utc() + time::Duration::seconds(50));
    fake.set_init_limit(100);
    // A chunk refused for good, an expired upload URL, an expired token.
    let init = tt.init(t, PostMode::Direct, &post("SELF_ONLY"), file.len).await.unwrap();
    fake.fail_next_chunk(400);
    assert_eq!(tt.upload(&init, &file.source().await, 0, &|_, _| {}).await.unwrap_err().code(), "platform_rejected");
    fake.expire_upload_urls();
    let e = tt.upload(&init, &file.source().await, 0, &|_, _| {}).await.unwrap_err();
    assert_eq!(e.code(), "upload_session_expired");
    fake.expire_access_tokens();
    assert_eq!(tt.creator_info(t).await.unwrap_err().code(), "platform_unauthorized");
    // A post TikTok fails keeps its reason.
    let tokens = fake.issue_tokens(SCOPES);
    let init = tt.init(&tokens.access_token, PostMode::Direct, &post("SELF_ONLY"), file.len).await.unwrap();
    tt.upload(&init, &file.source().await, 0, &|_, _| {}).await.unwrap();
    fake.fail_processing(&init.publish_id, "duration_check_failed");
    let s = tt.status(&tokens.access_token, &init.publish_id).await.unwrap();
    assert_eq!((s.status.as_str(), s.fail_reason.as_deref()), ("FAILED", Some("duration_check_failed")));
    // A token without video.publish cannot post directly: connect again with the scope.
    let inbox_only = fake.issue_tokens("user.info.basic,video.upload");
    let e = tt.init(&inbox_only.access_token, PostMode::Direct, &post("SELF_ONLY"), file.len).await.unwrap_err();
    assert_eq!(e.code(), "needs_reauthorization");
}
