//! Publishing II through the API and the publish job: TikTok and Instagram
//! against their fakes (their real wire formats on loopback, faults on
//! demand). Each platform's failure modes end as stable codes; limits make
//! a publication wait, not fail; other organisations get 404.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use videdit_publish::fake::{FakeInstagram, FakeTikTok};
use videdit_queue::Processed;
use videdit_service::publications::InstagramSource;

use crate::connections::consent;
use crate::publications::{get, publish, rendered_short, short_with};
use crate::seed::Ready;
use crate::support::{Options, TestApp, assert_error, spawn_app, token};

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Connects the fake's account through the API's OAuth endpoints.
pub async fn connect(app: &TestApp, t: &str, platform: &str, query: &str) -> Value {
    let (status, auth) = app.call("GET", &format!("/connections/{platform}/authorize{query}"), Some(t), None).await;
    assert_eq!(status, 200, "{auth}");
    let (code, state) = consent(app, auth["url"].as_str().unwrap()).await;
    let code = code.trim_end_matches("#_").to_owned();
    let (status, c) =
        app.call("GET", &format!("/connections/{platform}/callback?code={code}&state={state}"), Some(t), None).await;
    assert_eq!(status, 200, "{c}");
    c
}

/// A real 9:16 MP4 (H.264 + AAC); `faststart` puts `moov` first.
pub async fn mp4(secs: u32, faststart: bool) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("short.mp4");
    videdit_publish::fake::make_mp4(&out, secs, faststart).await;
    std::fs::read(out).unwrap()
}

/// Runs publish jobs until the publication settles, calling `finish` each
/// time it is processing (the platform finishing its work).
async fn drive(app: &TestApp, pool: &PgPool, t: &str, id: &str, finish: &dyn Fn(&Value)) -> Value {
    let worker = app.queue_worker(pool, "publish");
    for _ in 0..40 {
        // This publication's job only: others waiting out a limit stay put.
        sqlx::query(
            "UPDATE videdit_queue.jobs SET run_at = now()
              WHERE state = 'available' AND id = (SELECT job_id FROM videdit.publications WHERE id = $1::uuid)",
        )
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
        let processed = worker.process_next().await.unwrap();
        let p = get(app, t, id).await;
        match p["status"].as_str().unwrap() {
            "processing" => {
                finish(&p);
                // Room for the fakes' own work (Meta fetching a URL).
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            "published" | "failed" | "canceled" => return p,
            "scheduled" if p["retryAt"].is_string() => return p,
            _ if processed == Processed::Empty => tokio::time::sleep(std::time::Duration::from_millis(30)).await,
            _ => {}
        }
    }
    let jobs: Vec<(String, String, i32, Value, time::OffsetDateTime)> =
        sqlx::query_as("SELECT kind, state, attempt, errors, run_at FROM videdit_queue.jobs ORDER BY created_at")
            .fetch_all(pool)
            .await
            .unwrap_or_default();
    panic!("publication {id} did not settle: {}\njobs: {jobs:?}", get(app, t, id).await)
}

async fn create(app: &TestApp, t: &str, short: &Ready, body: Value) -> String {
    let (status, p) = publish(app, t, &short.short.to_string(), body).await;
    assert_eq!(status, 201, "{p}");
    p["id"].as_str().unwrap().to_owned()
}

// ------------------------------------------------------------------ TikTok

async fn tiktok_app(pool: &PgPool) -> (TestApp, FakeTikTok) {
    let fake = FakeTikTok::start().await;
    let app = spawn_app(pool.clone(), Options { tiktok: Some(fake.config()), ..Options::default() }).await;
    (app, fake)
}

fn finish_tiktok(fake: &FakeTikTok) -> impl Fn(&Value) + '_ {
    move |p: &Value| fake.finish_processing(p["platformId"].as_str().unwrap())
}

#[sqlx::test(migrations = false)]
async fn a_short_goes_to_tiktok_directly_or_to_the_creators_inbox(pool: PgPool) {
    let (app, fake) = tiktok_app(&pool).await;
    let admin = token("user_tt", Some(("org_tt", "org:admin")));
    let outsider = token("user_tt_out", Some(("org_tt_out", "org:admin")));

    // The mode is chosen when connecting and shown on the connection.
    let (_, auth) = app.call("GET", "/connections/tiktok/authorize?mode=sideways", Some(&admin), None).await;
    assert_eq!(auth["code"], "invalid_request", "{auth}");
    let c = connect(&app, &admin, "tiktok", "").await;
    assert_eq!((c["platform"].as_str(), c["mode"].as_str()), (Some("tiktok"), Some("direct")), "{c}");
    assert_eq!(c["accountId"].as_str().unwrap(), fake.account().0);
    let connection = c["id"].as_str().unwrap().to_owned();

    let (ready, bytes) = rendered_short(&app, &pool, &admin, 12 * 1024 * 1024 + 77).await;
    // Options of other platforms are refused at once.
    let (status, e) = publish(
        &app,
        &admin,
        &ready.short.to_string(),
        json!({"connectionId": connection, "privacy": "public", "options": {"shareToFeed": true}}),
    )
    .await;
    assert_eq!((status, e["code"].as_str()), (400, Some("invalid_request")), "{e}");
    let (status, e) =
        publish(&app, &admin, &ready.short.to_string(), json!({"connectionId": connection, "privacy": "unlisted"}))
            .await;
    assert_eq!((status, e["code"].as_str()), (400, Some("invalid_request")), "{e}");

    let id = create(
        &app,
        &admin,
        &ready,
        json!({"connectionId": connection, "privacy": "public", "tags": ["money talk", "retire"],
               "description": "From the talk", "options": {"aiGenerated": true}}),
    )
    .await;
    // Another organisation sees none of it.
    assert_error(
        &app.call("GET", &format!("/publications/{id}"), Some(&outsider), None).await,
        404,
        "publication_not_found",
    );
    assert_error(
        &app.call("GET", &format!("/connections/{connection}"), Some(&outsider), None).await,
        404,
        "connection_not_found",
    );
    let (_, theirs) = app.call("GET", "/publications", Some(&outsider), None).await;
    assert_eq!(theirs["items"], json!([]));

    let p = drive(&app, &pool, &admin, &id, &finish_tiktok(&fake)).await;
    assert_eq!(p["status"], "published", "{p}");
    let post = &fake.posts()[0];
    assert_eq!(post.sha256.as_deref(), Some(sha(&bytes).as_str()));
    assert_eq!(post.accepted_bytes, bytes.len() as u64, "every byte once");
    // 12 MiB in 5 MiB chunks: 2 chunks, the last one taking the rest.
    assert_eq!((post.chunk_size, post.total_chunk_count), (5 * 1024 * 1024, 2));
    let info = &post.post_info;
    assert_eq!(info["privacy_level"], "PUBLIC_TO_EVERYONE");
    assert_eq!(info["title"], "A seeded short\n\nFrom the talk\n\n#moneytalk #retire");
    // Duets are off on the account: the default follows it; comments are on.
    assert_eq!((info["disable_duet"].as_bool(), info["disable_comment"].as_bool()), (Some(true), Some(false)));
    assert_eq!(info["is_aigc"], true);
    let url = p["url"].as_str().unwrap();
    assert!(url.starts_with("https://www.tiktok.com/@fakecreator/video/7300000000000000"), "{p}");
    // The post id is above 2^53 and arrives intact.
    assert!(url.ends_with(p["platformId"].as_str().unwrap()), "{p}");

    // Inbox mode: a draft the creator finishes in the app.
    let inbox = connect(&app, &admin, "tiktok", "?mode=inbox").await;
    assert_eq!(inbox["mode"], "inbox", "{inbox}");
    let (ready2, _) = rendered_short(&app, &pool, &admin, 300_000).await;
    let id = create(&app, &admin, &ready2, json!({"connectionId": inbox["id"], "privacy": "public"})).await;
    let p = drive(&app, &pool, &admin, &id, &finish_tiktok(&fake)).await;
    assert_eq!((p["status"].as_str(), p["platformPrivacy"].as_str()), (Some("published"), Some("inbox")), "{p}");
    assert!(p["notice"].as_str().unwrap().contains("inbox"), "{p}");
    assert_eq!(fake.posts()[1].mode, videdit_publish::tiktok::PostMode::Inbox);
}

#[sqlx::test(migrations = false)]
async fn tiktoks_failures_end_as_stable_codes_and_its_limits_make_posts_wait(pool: PgPool) {
    let (app, fake) = tiktok_app(&pool).await;
    let admin = token("user_tt2", Some(("org_tt2", "org:admin")));
    let connection = connect(&app, &admin, "tiktok", "").await["id"].as_str().unwrap().to_owned();
    let fresh =
        |privacy: &str, options: Value| json!({"connectionId": connection, "privacy": privacy, "options": options});
    let finish = finish_tiktok(&fake);

    // A privacy level the account does not offer: failed at once, nothing sent.
    fake.set_privacy_levels(&["FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]);
    let (ready, _) = rendered_short(&app, &pool, &admin, 100_000).await;
    let id = create(&app, &admin, &ready, fresh("public", json!({}))).await;
    let p = drive(&app, &pool, &admin, &id, &finish).await;
    assert_eq!(
        (p["status"].as_str(), p["failureCode"].as_str()),
        (Some("failed"), Some("platform_option_not_allowed"))
    );
    assert!(p["failureMessage"].as_str().unwrap().contains("FOLLOWER_OF_CREATOR"), "{p}");
    // Duets asked where the account turned them off.
    let id = create(&app, &admin, &ready, fresh("followers", json!({"allowDuet": true}))).await;
    let p = drive(&app, &pool, &admin, &id, &finish).await;
    assert_eq!(p["failureCode"], "platform_option_not_allowed", "{p}");
    assert!(fake.posts().is_empty(), "nothing reached TikTok");

    // An app TikTok has not audited may post only SELF_ONLY.
    fake.unaudited(true);
    let id = create(&app, &admin, &ready, fresh("friends", json!({}))).await;
    let p = drive(&app, &pool, &admin, &id, &finish).await;
    assert_eq!(p["failureCode"], "platform_unaudited_client", "{p}");
    assert!(p["failureMessage"].as_str().unwrap().contains("SELF_ONLY"), "{p}");
    let id = create(&app, &admin, &ready, fresh("private", json!({}))).await;
    assert_eq!(drive(&app, &pool, &admin, &id, &finish).await["status"], "published");
    fake.unaudited(false);

    // A chunk TikTok rejects as malformed.
    fake.fail_next_chunk(400);
    let id = create(&app, &admin, &ready, fresh("private", json!({}))).await;
    let p = drive(&app, &pool, &admin, &id, &finish).await;
    assert_eq!(p["failureCode"], "platform_upload_rejected", "{p}");

    // TikTok fails the post after the upload, with its reason.
    let id = create(&app, &admin, &ready, fresh("private", json!({}))).await;
    let p = drive(&app, &pool, &admin, &id, &|p: &Value| {
        fake.fail_processing(p["platformId"].as_str().unwrap(), "duration_check_failed");
    })
    .await;
    assert_eq!(p["failureCode"], "platform_processing_failed", "{p}");
    assert!(p["failureMessage"].as_str().unwrap().contains("duration_check_failed"), "{p}");

    // The daily posting cap: the publication waits a day, it does not fail.
    fake.posting_cap(true);
    let id = create(&app, &admin, &ready, fresh("private", json!({}))).await;
    let p = drive(&app, &pool, &admin, &id, &finish).await;
    assert_eq!((p["status"].as_str(), p["failureCode"].as_str()), (Some("scheduled"), Some("platform_posting_limit")));
    let wait =
        time::OffsetDateTime::parse(p["retryAt"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap()
            - time::OffsetDateTime::now_utc();
    assert!(wait > time::Duration::hours(23), "{p}");
    fake.posting_cap(false);
    assert_eq!(drive(&app, &pool, &admin, &id, &finish).await["status"], "published");

    // 6 inits a minute (here 1): a burst is spread, not failed.
    fake.set_init_limit(0);
    let burst: Vec<String> = {
        let mut v = vec![];
        for _ in 0..2 {
            v.push(create(&app, &admin, &ready, fresh("private", json!({}))).await);
        }
        v
    };
    for id in &burst {
        let p = drive(&app, &pool, &admin, id, &finish).await;
        assert_eq!(
            (p["status"].as_str(), p["failureCode"].as_str()),
            (Some("scheduled"), Some("platform_rate_limited"))
        );
        let wait =
            time::OffsetDateTime::parse(p["retryAt"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
                .unwrap()
                - time::OffsetDateTime::now_utc();
        assert!(wait > time::Duration::seconds(30) && wait <= time::Duration::seconds(61), "{p}");
    }
    // The minute passes (this test made six inits within it already).
    fake.set_init_limit(100);
    for id in &burst {
        assert_eq!(drive(&app, &pool, &admin, id, &finish).await["status"], "published");
    }

    // An expired access token is refreshed (the refresh token rotates); a
    // grant the creator removed needs the account connected again.
    fake.expire_access_tokens();
    let id = create(&app, &admin, &ready, fresh("private", json!({}))).await;
    assert_eq!(drive(&app, &pool, &admin, &id, &finish).await["status"], "published");
    fake.revoke_grants();
    let id = create(&app, &admin, &ready, fresh("private", json!({}))).await;
    let p = drive(&app, &pool, &admin, &id, &finish).await;
    assert_eq!(p["failureCode"], "needs_reauthorization", "{p}");
    let (_, c) = app.call("GET", &format!("/connections/{connection}"), Some(&admin), None).await;
    assert_eq!(c["status"], "needs_reauthorization", "{c}");
}

// --------------------------------------------------------------- Instagram

async fn instagram_app(pool: &PgPool, source: InstagramSource) -> (TestApp, FakeInstagram) {
    let fake = FakeInstagram::start().await;
    let options = Options { instagram: Some(fake.config()), instagram_source: source, ..Options::default() };
    (spawn_app(pool.clone(), options).await, fake)
}

/// Meta finishes the container once its bytes are in (until then, nothing).
fn finish_instagram(fake: &FakeInstagram) -> impl Fn(&Value) + '_ {
    move |p: &Value| fake.finish_processing(p["platformId"].as_str().unwrap())
}

#[sqlx::test(migrations = false)]
async fn a_reel_goes_to_instagram_from_a_presigned_url_that_meta_fetches(pool: PgPool) {
    let (app, fake) = instagram_app(&pool, InstagramSource::Url).await;
    let admin = token("user_ig", Some(("org_ig", "org:admin")));
    let outsider = token("user_ig_out", Some(("org_ig_out", "org:admin")));

    // Personal accounts cannot publish: said when connecting.
    fake.set_account_type("PERSONAL");
    let (_, auth) = app.call("GET", "/connections/instagram/authorize", Some(&admin), None).await;
    let (code, state) = consent(&app, auth["url"].as_str().unwrap()).await;
    let refused = app
        .call(
            "GET",
            &format!("/connections/instagram/callback?code={}&state={state}", code.trim_end_matches("#_")),
            Some(&admin),
            None,
        )
        .await;
    assert_error(&refused, 422, "platform_account_not_professional");
    assert!(refused.1["message"].as_str().unwrap().contains("professional"), "{}", refused.1);
    fake.set_account_type("MEDIA_CREATOR");
    let c = connect(&app, &admin, "instagram", "").await;
    assert_eq!(
        (c["accountId"].as_str(), c["accountName"].as_str()),
        (Some(fake.account().0.as_str()), Some("fake.creator"))
    );
    let connection = c["id"].as_str().unwrap().to_owned();
    assert_error(
        &app.call("GET", &format!("/connections/{connection}"), Some(&outsider), None).await,
        404,
        "connection_not_found",
    );

    let bytes = mp4(4, true).await;
    let ready = short_with(&app, &pool, &admin, &bytes).await;
    let (status, e) =
        publish(&app, &admin, &ready.short.to_string(), json!({"connectionId": connection, "privacy": "private"}))
            .await;
    assert_eq!((status, e["code"].as_str()), (400, Some("invalid_request")), "{e}");
    let id = create(
        &app,
        &admin,
        &ready,
        json!({"connectionId": connection, "tags": ["talk"], "options": {"shareToFeed": false}}),
    )
    .await;
    assert_error(
        &app.call("GET", &format!("/publications/{id}"), Some(&outsider), None).await,
        404,
        "publication_not_found",
    );
    let p = drive(&app, &pool, &admin, &id, &finish_instagram(&fake)).await;
    assert_eq!(p["status"], "published", "{p}");
    assert!(p["url"].as_str().unwrap().starts_with("https://www.instagram.com/reel/"), "{p}");
    let c = &fake.containers()[0];
    // Meta fetched the short from our storage's presigned URL: the same bytes.
    assert_eq!(c.sha256.as_deref(), Some(sha(&bytes).as_str()));
    assert!(c.video_url.as_deref().is_some_and(|u| u.starts_with("http")), "{c:?}");
    assert_eq!((c.caption.as_str(), c.share_to_feed), ("A seeded short\n\n#talk", false));
    assert_eq!(fake.published(), vec![(p["platformId"].as_str().unwrap().to_owned(), c.id.clone())]);

    // Storage Meta cannot reach.
    fake.unfetchable(true);
    let id = create(&app, &admin, &ready, json!({"connectionId": connection})).await;
    let p = drive(&app, &pool, &admin, &id, &finish_instagram(&fake)).await;
    assert_eq!(p["failureCode"], "platform_media_unreachable", "{p}");
    fake.unfetchable(false);

    // A container Meta fails.
    fake.fail_next_container(2_207_026);
    let id = create(&app, &admin, &ready, json!({"connectionId": connection})).await;
    let p = drive(&app, &pool, &admin, &id, &finish_instagram(&fake)).await;
    assert_eq!(p["failureCode"], "platform_processing_failed", "{p}");
    assert!(p["failureMessage"].as_str().unwrap().contains("2207026"), "{p}");

    // The publishing limit reached: the publication waits for the window.
    fake.set_quota_total(1);
    let id = create(&app, &admin, &ready, json!({"connectionId": connection})).await;
    let p = drive(&app, &pool, &admin, &id, &finish_instagram(&fake)).await;
    assert_eq!((p["status"].as_str(), p["failureCode"].as_str()), (Some("scheduled"), Some("platform_posting_limit")));
    assert!(p["retryAt"].is_string(), "{p}");
    let containers = fake.containers().len();
    fake.set_quota_total(100);
    let p = drive(&app, &pool, &admin, &id, &finish_instagram(&fake)).await;
    assert_eq!(p["status"], "published", "{p}");
    assert_eq!(fake.containers().len(), containers, "the waiting container was published, not a new one");

    // A file whose moov is at the end is refused before anything is sent.
    let late = short_with(&app, &pool, &admin, &mp4(4, false).await).await;
    let id = create(&app, &admin, &late, json!({"connectionId": connection})).await;
    let p = drive(&app, &pool, &admin, &id, &finish_instagram(&fake)).await;
    assert_eq!(p["failureCode"], "platform_rule_format", "{p}");
    assert_eq!(fake.containers().len(), containers);

    // An expired token: the account must be connected again.
    fake.expire_tokens();
    let id = create(&app, &admin, &ready, json!({"connectionId": connection})).await;
    let p = drive(&app, &pool, &admin, &id, &finish_instagram(&fake)).await;
    assert_eq!(p["failureCode"], "needs_reauthorization", "{p}");
    let (_, c) = app.call("GET", &format!("/connections/{connection}"), Some(&admin), None).await;
    assert_eq!(c["status"], "needs_reauthorization", "{c}");
}

#[sqlx::test(migrations = false)]
async fn a_reel_uploaded_to_meta_resumes_where_it_was_cut_and_the_token_refreshes_after_a_day(pool: PgPool) {
    let (app, fake) = instagram_app(&pool, InstagramSource::Resumable).await;
    let admin = token("user_ig2", Some(("org_ig2", "org:admin")));
    let connection = connect(&app, &admin, "instagram", "").await["id"].as_str().unwrap().to_owned();
    let bytes = mp4(6, true).await;
    let ready = short_with(&app, &pool, &admin, &bytes).await;

    // A day later the token is refreshed when it is used.
    fake.advance_clock(time::Duration::hours(25));
    sqlx::query("UPDATE videdit.connections SET token_issued_at = now() - interval '25 hours' WHERE id = $1::uuid")
        .bind(&connection)
        .execute(&pool)
        .await
        .unwrap();
    fake.drop_after_bytes(bytes.len() as u64 / 2);
    let id = create(&app, &admin, &ready, json!({"connectionId": connection})).await;
    let p = drive(&app, &pool, &admin, &id, &finish_instagram(&fake)).await;
    assert_eq!(p["status"], "published", "{p}");
    let c = &fake.containers()[0];
    assert_eq!(c.video_url, None);
    assert_eq!((c.held, c.upload_requests), (bytes.len() as u64, 2), "cut once, resumed from the middle");
    assert_eq!(c.sha256.as_deref(), Some(sha(&bytes).as_str()));
    assert_eq!(p["bytesSent"], p["bytesTotal"], "{p}");
    let issued: time::OffsetDateTime =
        sqlx::query_scalar("SELECT token_issued_at FROM videdit.connections WHERE id = $1::uuid")
            .bind(&connection)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(time::OffsetDateTime::now_utc() - issued < time::Duration::minutes(5), "refreshed: {issued}");
}
