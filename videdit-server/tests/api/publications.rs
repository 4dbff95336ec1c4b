//! Publications through the API and the publish job, against the fake
//! YouTube (Google's real upload protocol on loopback, faults on demand):
//! scheduled jobs wait for their time, a dropped upload resumes from where
//! the platform stopped, a 401 refreshes once, a spent quota waits for its
//! reset, cancel and reschedule, rules checked before any byte is sent,
//! sessions sealed at rest, other organisations get 404.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use videdit_core::db;
use videdit_core::short::ShortOutputs;
use videdit_core::storage::{ObjectKey, bytes_stream};
use videdit_publish::fake::FakeYouTube;
use videdit_queue::Processed;

use crate::connections::{app_with_youtube, connect};
use crate::seed::{self, Ready};
use crate::support::{TestApp, assert_error, token};

/// A ready short whose MP4 (random bytes, `len` of them) is in storage.
pub async fn rendered_short(app: &TestApp, pool: &PgPool, t: &str, len: usize) -> (Ready, Vec<u8>) {
    let bytes: Vec<u8> = (0..len).map(|i| u8::try_from((i * 7919 + i / 3) % 251).unwrap()).collect();
    (short_with(app, pool, t, &bytes).await, bytes)
}

/// A ready short whose MP4 in storage is `bytes`.
pub async fn short_with(app: &TestApp, pool: &PgPool, t: &str, bytes: &[u8]) -> Ready {
    let ready = seed::ready_video(app, pool, t).await;
    let outputs = ShortOutputs {
        video: ObjectKey::short_video(ready.org, ready.video, ready.short),
        thumbnail: ObjectKey::short_thumbnail(ready.org, ready.video, ready.short),
        recipe: ObjectKey::short_recipe(ready.org, ready.video, ready.short),
    };
    app.storage.put_stream(&outputs.video, bytes_stream(bytes.to_vec()), "video/mp4").await.unwrap();
    db::set_short_outputs(pool, ready.org, ready.short, &outputs).await.unwrap();
    ready
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub async fn publish(app: &TestApp, t: &str, short: &str, body: Value) -> (u16, Value) {
    app.call("POST", &format!("/shorts/{short}/publications"), Some(t), Some(body)).await
}

pub async fn get(app: &TestApp, t: &str, id: &str) -> Value {
    let (status, p) = app.call("GET", &format!("/publications/{id}"), Some(t), None).await;
    assert_eq!(status, 200, "{p}");
    p
}

/// Makes every publish job due now.
pub async fn make_due(pool: &PgPool) {
    sqlx::query("UPDATE videdit_queue.jobs SET run_at = now() WHERE kind = 'publish' AND state = 'available'")
        .execute(pool)
        .await
        .unwrap();
}

/// Runs publish jobs until the publication is published (finishing
/// processing at the fake once uploaded) or settles otherwise.
async fn drive(app: &TestApp, pool: &PgPool, fake: &FakeYouTube, t: &str, id: &str) -> Value {
    let worker = app.queue_worker(pool, "publish");
    for _ in 0..20 {
        make_due(pool).await;
        let processed = worker.process_next().await.unwrap();
        let p = get(app, t, id).await;
        match p["status"].as_str().unwrap() {
            "processing" => fake.finish_processing(p["platformId"].as_str().unwrap()),
            "published" | "failed" | "canceled" => return p,
            _ if processed == Processed::Empty => return p,
            _ => {}
        }
    }
    panic!("publication {id} did not settle")
}

async fn setup(pool: &PgPool) -> (TestApp, FakeYouTube, String, Ready, Vec<u8>, String) {
    let (app, fake) = app_with_youtube(pool).await;
    let admin = token("user_pub", Some(("org_pub", "org:admin")));
    let connection = connect(&app, &admin).await["id"].as_str().unwrap().to_owned();
    let (ready, bytes) = rendered_short(&app, pool, &admin, 1_300_000).await;
    (app, fake, admin, ready, bytes, connection)
}

#[sqlx::test(migrations = false)]
async fn a_scheduled_short_waits_for_its_time_then_goes_out_with_youtubes_own_schedule(pool: PgPool) {
    let (app, fake, admin, ready, bytes, connection) = setup(&pool).await;
    let at = time::OffsetDateTime::now_utc() + time::Duration::hours(2);
    let at_text = at.format(&time::format_description::well_known::Rfc3339).unwrap();
    let (status, p) = publish(
        &app,
        &admin,
        &ready.short.to_string(),
        json!({"connectionId": connection, "description": "From the talk", "tags": ["talk", "money"],
               "privacy": "public", "scheduledAt": at_text}),
    )
    .await;
    assert_eq!(status, 201, "{p}");
    assert_eq!((p["status"].as_str(), p["title"].as_str()), (Some("scheduled"), Some("A seeded short")), "{p}");
    let id = p["id"].as_str().unwrap().to_owned();
    // One job, due at the scheduled time: nothing runs before it.
    let run_at: time::OffsetDateTime =
        sqlx::query_scalar("SELECT run_at FROM videdit_queue.jobs WHERE kind = 'publish'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!((run_at - at).abs() < time::Duration::seconds(1), "{run_at} vs {at}");
    let worker = app.queue_worker(&pool, "publish");
    assert_eq!(worker.process_next().await.unwrap(), Processed::Empty);
    assert!(fake.sessions().is_empty());

    // Its time comes.
    let p = drive(&app, &pool, &fake, &admin, &id).await;
    assert_eq!(p["status"], "published", "{p}");
    let videos = fake.videos();
    assert_eq!(videos.len(), 1);
    let v = &videos[0];
    assert_eq!((v.sha256.as_str(), v.len), (sha(&bytes).as_str(), bytes.len() as u64));
    assert_eq!(v.metadata["snippet"]["title"], "A seeded short");
    assert_eq!(v.metadata["snippet"]["tags"], json!(["talk", "money"]));
    // The job ran two hours early (run_at moved by hand, as an upload
    // ahead would): YouTube is given its own schedule, private until then.
    assert_eq!(v.metadata["status"]["privacyStatus"], "private");
    let publish_at = time::OffsetDateTime::parse(
        v.metadata["status"]["publishAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!((publish_at - at).abs() < time::Duration::seconds(1), "{publish_at} vs {at}");
    assert_eq!(p["platformPrivacy"], "private");
    assert!(p["platformPublishAt"].is_string() && p["notice"].is_null(), "{p}");
    assert_eq!(p["platformId"].as_str(), Some(v.id.as_str()));
    assert!(p["url"].as_str().unwrap().contains(&v.id), "{p}");
    assert_eq!((p["bytesSent"].as_i64(), p["bytesTotal"].as_i64()), (Some(1_300_000), Some(1_300_000)));
    assert!(p["publishedAt"].is_string(), "{p}");
    // The life cycle was recorded.
    let (_, events) = app.call("GET", "/events", Some(&admin), None).await;
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("publication."))
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"publication.scheduled") && kinds.contains(&"publication.published"), "{kinds:?}");
    // Listed, also by short.
    let (_, list) = app.call("GET", &format!("/publications?shortId={}", ready.short), Some(&admin), None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
}

#[sqlx::test(migrations = false)]
async fn a_dropped_upload_resumes_where_the_platform_stopped(pool: PgPool) {
    let (app, fake, admin, ready, bytes, connection) = setup(&pool).await;
    let (_, p) = publish(&app, &admin, &ready.short.to_string(), json!({"connectionId": connection})).await;
    let id = p["id"].as_str().unwrap().to_owned();
    // The connection drops mid-chunk, then the next chunk answers 503:
    // the client's own retries ride over both.
    fake.drop_after_bytes(100_000);
    fake.fail_next_chunk(503);
    let p = drive(&app, &pool, &fake, &admin, &id).await;
    assert_eq!(p["status"], "published", "{p}");
    let sessions = fake.sessions();
    assert_eq!(sessions.len(), 1, "one session, resumed, never a new one");
    let s = &sessions[0];
    assert_eq!(s.accepted_bytes, s.total, "every byte stored exactly once");
    assert!(s.status_queries >= 1, "it asked where the upload stood");
    assert_eq!(fake.videos()[0].sha256, sha(&bytes));
}

#[sqlx::test(migrations = false)]
async fn a_job_that_dies_mid_upload_is_resumed_by_the_next_run_from_its_sealed_session(pool: PgPool) {
    let (app, fake, admin, ready, bytes, connection) = setup(&pool).await;
    let (_, p) = publish(&app, &admin, &ready.short.to_string(), json!({"connectionId": connection})).await;
    let id = p["id"].as_str().unwrap().to_owned();
    // A chunk is stored, then every retry of the client fails: the run
    // ends with a retryable error, its session kept.
    fake.drop_after_bytes(300_000);
    for _ in 0..8 {
        fake.fail_next_chunk(503);
    }
    let worker = app.queue_worker(&pool, "publish");
    assert!(matches!(worker.process_next().await.unwrap(), Processed::Retried(_)));
    let p = get(&app, &admin, &id).await;
    {
        assert_eq!(p["status"], "uploading", "{p}");
        assert_eq!(p["bytesSent"].as_i64(), Some(256 * 1024), "{p}");
        // The session is stored sealed: the fake's URI is not in the row.
        let sealed: Option<String> =
            sqlx::query_scalar("SELECT upload_session FROM videdit.publications WHERE id = $1::uuid")
                .bind(&id)
                .fetch_one(&pool)
                .await
                .unwrap();
        let sealed = sealed.expect("the session is kept for the retry");
        let uri = fake.sessions()[0].uri.clone();
        assert!(!sealed.contains("upload_id") && !sealed.contains(&uri), "{sealed}");
    }
    let p = drive(&app, &pool, &fake, &admin, &id).await;
    assert_eq!(p["status"], "published", "{p}");
    assert_eq!(fake.sessions().len(), 1, "the next run resumed the stored session");
    let s = &fake.sessions()[0];
    assert_eq!(s.accepted_bytes, s.total);
    assert_eq!(fake.videos()[0].sha256, sha(&bytes));
}

#[sqlx::test(migrations = false)]
async fn an_expired_access_token_is_refreshed_once(pool: PgPool) {
    let (app, fake, admin, ready, _bytes, connection) = setup(&pool).await;
    let (_, p) = publish(&app, &admin, &ready.short.to_string(), json!({"connectionId": connection})).await;
    let id = p["id"].as_str().unwrap().to_owned();
    let issued = fake.issued_tokens().access_tokens.len();
    fake.expire_access_tokens();
    let p = drive(&app, &pool, &fake, &admin, &id).await;
    assert_eq!(p["status"], "published", "{p}");
    assert_eq!(fake.issued_tokens().access_tokens.len(), issued + 1, "one refresh");
}

#[sqlx::test(migrations = false)]
async fn a_spent_quota_waits_for_its_reset_and_then_publishes(pool: PgPool) {
    let (app, fake, admin, ready, _bytes, connection) = setup(&pool).await;
    let (_, p) = publish(&app, &admin, &ready.short.to_string(), json!({"connectionId": connection})).await;
    let id = p["id"].as_str().unwrap().to_owned();
    fake.quota_exceeded(true);
    let worker = app.queue_worker(&pool, "publish");
    assert!(matches!(worker.process_next().await.unwrap(), Processed::Snoozed(_)));
    let p = get(&app, &admin, &id).await;
    assert_eq!((p["status"].as_str(), p["failureCode"].as_str()), (Some("scheduled"), Some("platform_quota_exceeded")));
    // Retried after the daily reset (midnight Pacific), not before.
    let retry_at =
        time::OffsetDateTime::parse(p["retryAt"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap();
    let now = time::OffsetDateTime::now_utc();
    assert!(retry_at > now && retry_at <= now + time::Duration::hours(25), "{retry_at}");
    let run_at: time::OffsetDateTime =
        sqlx::query_scalar("SELECT run_at FROM videdit_queue.jobs WHERE kind = 'publish'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!((run_at - retry_at).abs() < time::Duration::seconds(5), "{run_at} vs {retry_at}");
    let attempts: i32 = sqlx::query_scalar("SELECT attempt FROM videdit_queue.jobs WHERE kind = 'publish'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(attempts <= 1, "waiting for a quota spends no attempt");
    // The quota resets.
    fake.quota_exceeded(false);
    let p = drive(&app, &pool, &fake, &admin, &id).await;
    assert_eq!(p["status"], "published", "{p}");
    assert!(p["failureCode"].is_null() && p["retryAt"].is_null(), "{p}");
}

#[sqlx::test(migrations = false)]
async fn cancel_and_reschedule_act_before_the_upload(pool: PgPool) {
    let (app, fake, admin, ready, _bytes, connection) = setup(&pool).await;
    let later = |h: i64| {
        (time::OffsetDateTime::now_utc() + time::Duration::hours(h))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let short = ready.short.to_string();
    let (_, a) = publish(&app, &admin, &short, json!({"connectionId": connection, "scheduledAt": later(3)})).await;
    let (_, b) = publish(&app, &admin, &short, json!({"connectionId": connection, "scheduledAt": later(3)})).await;
    let (a, b) = (a["id"].as_str().unwrap().to_owned(), b["id"].as_str().unwrap().to_owned());

    let (status, canceled) = app.call("POST", &format!("/publications/{a}/cancel"), Some(&admin), None).await;
    assert_eq!((status, canceled["status"].as_str()), (200, Some("canceled")), "{canceled}");
    let again = app.call("POST", &format!("/publications/{a}/cancel"), Some(&admin), None).await;
    assert_error(&again, 409, "invalid_state");

    // Rescheduled to a later time: the job moves with it.
    let (status, moved) = app
        .call("POST", &format!("/publications/{b}/reschedule"), Some(&admin), Some(json!({"scheduledAt": later(5)})))
        .await;
    assert_eq!(status, 200, "{moved}");
    let run_at: time::OffsetDateTime = sqlx::query_scalar(
        "SELECT j.run_at FROM videdit_queue.jobs j JOIN videdit.publications p ON p.job_id = j.id WHERE p.id = $1::uuid",
    )
    .bind(&b)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(run_at > time::OffsetDateTime::now_utc() + time::Duration::hours(4), "{run_at}");

    // Nothing of the canceled one reaches the platform; the other, once due, does.
    let p = drive(&app, &pool, &fake, &admin, &b).await;
    assert_eq!(p["status"], "published", "{p}");
    assert_eq!(fake.sessions().len(), 1);
    assert_eq!(get(&app, &admin, &a).await["status"], "canceled");
    let late = app.call("POST", &format!("/publications/{b}/cancel"), Some(&admin), None).await;
    assert_error(&late, 409, "invalid_state");
}

#[sqlx::test(migrations = false)]
async fn the_platform_rules_are_checked_before_any_byte_is_sent(pool: PgPool) {
    let (app, fake, admin, ready, _bytes, connection) = setup(&pool).await;
    let short = ready.short.to_string();
    let long = "x".repeat(101);
    let got = publish(&app, &admin, &short, json!({"connectionId": connection, "title": long})).await;
    assert_error(&got, 422, "platform_rule_title");
    let got = publish(&app, &admin, &short, json!({"connectionId": connection, "description": "a <b> tag"})).await;
    assert_error(&got, 422, "platform_rule_description");
    let got = publish(&app, &admin, &short, json!({"connectionId": connection, "privacy": "friends"})).await;
    assert_error(&got, 400, "invalid_request");
    // A short longer than YouTube's Shorts limit fails at once too.
    sqlx::query("UPDATE videdit.shorts SET end_seconds = start_seconds + 200 WHERE id = $1")
        .bind(ready.short.as_uuid())
        .execute(&pool)
        .await
        .unwrap();
    let got = publish(&app, &admin, &short, json!({"connectionId": connection})).await;
    assert_error(&got, 422, "platform_rule_duration");
    assert!(fake.sessions().is_empty());
    let (_, list) = app.call("GET", "/publications", Some(&admin), None).await;
    assert!(list["items"].as_array().unwrap().is_empty(), "{list}");
}

#[sqlx::test(migrations = false)]
async fn a_short_still_rendering_is_waited_for(pool: PgPool) {
    let (app, fake, admin, ready, bytes, connection) = setup(&pool).await;
    sqlx::query("UPDATE videdit.shorts SET status = 'rendering' WHERE id = $1")
        .bind(ready.short.as_uuid())
        .execute(&pool)
        .await
        .unwrap();
    let (status, p) = publish(&app, &admin, &ready.short.to_string(), json!({"connectionId": connection})).await;
    assert_eq!(status, 201, "{p}");
    let id = p["id"].as_str().unwrap().to_owned();
    let worker = app.queue_worker(&pool, "publish");
    assert!(matches!(worker.process_next().await.unwrap(), Processed::Snoozed(_)));
    assert_eq!(get(&app, &admin, &id).await["status"], "scheduled");
    assert!(fake.sessions().is_empty());
    sqlx::query("UPDATE videdit.shorts SET status = 'ready' WHERE id = $1")
        .bind(ready.short.as_uuid())
        .execute(&pool)
        .await
        .unwrap();
    let p = drive(&app, &pool, &fake, &admin, &id).await;
    assert_eq!(p["status"], "published", "{p}");
    assert_eq!(fake.videos()[0].sha256, sha(&bytes));
}

#[sqlx::test(migrations = false)]
async fn a_refused_refresh_fails_the_publication_with_a_clear_code(pool: PgPool) {
    let (app, fake, admin, ready, _bytes, connection) = setup(&pool).await;
    let (_, p) = publish(&app, &admin, &ready.short.to_string(), json!({"connectionId": connection})).await;
    let id = p["id"].as_str().unwrap().to_owned();
    // The user revoked the app at Google: every token stops working.
    for t in fake.issued_tokens().refresh_tokens {
        let r = reqwest::Client::new().post(format!("{}/revoke?token={t}", fake.base_url())).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    fake.expire_access_tokens();
    let p = drive(&app, &pool, &fake, &admin, &id).await;
    assert_eq!(
        (p["status"].as_str(), p["failureCode"].as_str()),
        (Some("failed"), Some("needs_reauthorization")),
        "{p}"
    );
    let (_, c) = app.call("GET", &format!("/connections/{connection}"), Some(&admin), None).await;
    assert_eq!(c["status"], "needs_reauthorization", "{c}");
    // A new publication to it is refused at once; failed ones can be retried.
    let got = publish(&app, &admin, &ready.short.to_string(), json!({"connectionId": connection})).await;
    assert_error(&got, 409, "needs_reauthorization");
}

#[sqlx::test(migrations = false)]
async fn other_organisations_see_nothing_and_cannot_use_the_connection(pool: PgPool) {
    let (app, _fake, admin, ready, _bytes, connection) = setup(&pool).await;
    let outsider = token("user_other", Some(("org_other", "org:admin")));
    let (_, p) = publish(&app, &admin, &ready.short.to_string(), json!({"connectionId": connection})).await;
    let id = p["id"].as_str().unwrap().to_owned();
    for (method, path) in [
        ("GET", format!("/publications/{id}")),
        ("POST", format!("/publications/{id}/cancel")),
        ("POST", format!("/publications/{id}/reschedule")),
    ] {
        let body = (method == "POST").then(|| json!({}));
        assert_error(&app.call(method, &path, Some(&outsider), body).await, 404, "publication_not_found");
    }
    let (_, list) = app.call("GET", "/publications", Some(&outsider), None).await;
    assert!(list["items"].as_array().unwrap().is_empty(), "{list}");
    // The team's short is not the outsider's...
    let got = publish(&app, &outsider, &ready.short.to_string(), json!({"connectionId": connection})).await;
    assert_error(&got, 404, "short_not_found");
    // ...nor is the team's connection, even for the outsider's own short.
    let (own, _) = rendered_short(&app, &pool, &outsider, 1000).await;
    let got = publish(&app, &outsider, &own.short.to_string(), json!({"connectionId": connection})).await;
    assert_error(&got, 404, "connection_not_found");
}

#[sqlx::test(migrations = false)]
async fn a_post_due_now_goes_out_as_asked_and_a_forced_private_one_says_so(pool: PgPool) {
    let (app, fake, admin, ready, _bytes, connection) = setup(&pool).await;
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::minutes(5))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let short = ready.short.to_string();
    let (_, p) = publish(&app, &admin, &short, json!({"connectionId": connection, "scheduledAt": soon})).await;
    let id = p["id"].as_str().unwrap().to_owned();
    let p = drive(&app, &pool, &fake, &admin, &id).await;
    assert_eq!((p["status"].as_str(), p["platformPrivacy"].as_str()), (Some("published"), Some("public")), "{p}");
    assert!(p["platformPublishAt"].is_null() && p["notice"].is_null(), "{p}");
    assert!(fake.videos()[0].metadata["status"].get("publishAt").is_none());

    // An API project Google has not verified: the upload is made private.
    fake.force_private(true);
    let (_, p) = publish(&app, &admin, &short, json!({"connectionId": connection, "privacy": "unlisted"})).await;
    let id = p["id"].as_str().unwrap().to_owned();
    let p = drive(&app, &pool, &fake, &admin, &id).await;
    assert_eq!((p["status"].as_str(), p["platformPrivacy"].as_str()), (Some("published"), Some("private")), "{p}");
    assert!(p["notice"].as_str().unwrap().contains("private"), "{p}");
}

#[sqlx::test(migrations = false)]
async fn a_retried_request_with_its_idempotency_key_schedules_one_publication(pool: PgPool) {
    let (app, _fake, admin, ready, _bytes, connection) = setup(&pool).await;
    let path = format!("/shorts/{}/publications", ready.short);
    let body = json!({"connectionId": connection});
    let first = app.call_with("POST", &path, Some(&admin), Some(body.clone()), &[("Idempotency-Key", "pub-1")]).await;
    let again = app.call_with("POST", &path, Some(&admin), Some(body), &[("Idempotency-Key", "pub-1")]).await;
    assert_eq!((first.0, again.0), (201, 201), "{} {}", first.1, again.1);
    assert_eq!(first.1["id"], again.1["id"]);
    let (_, list) = app.call("GET", "/publications", Some(&admin), None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM videdit_queue.jobs WHERE kind = 'publish'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(jobs, 1);
    // The same key for another request is refused.
    let other = json!({"connectionId": connection, "title": "Another"});
    let reused = app.call_with("POST", &path, Some(&admin), Some(other), &[("Idempotency-Key", "pub-1")]).await;
    assert_error(&reused, 422, "idempotency_key_reused");
}
