//! `Idempotency-Key`: concurrent requests with one key, a failed request
//! releasing its key, key lengths, and keys on job creation.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::seed;
use crate::support::{Options, TestApp, assert_error, spawn_app, token};

fn upload_body() -> Value {
    json!({"fileName": "same.mp4", "contentType": "video/mp4", "size": 10})
}

async fn create(app: &TestApp, t: &str, key: &str) -> (u16, Value) {
    app.call_with("POST", "/uploads", Some(t), Some(upload_body()), &[("Idempotency-Key", key)]).await
}

async fn videos(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM videdit.videos").fetch_one(pool).await.unwrap()
}

/// Waits until a request has claimed `key` and is still running.
async fn until_in_progress(pool: &PgPool, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let running: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM videdit.idempotency_keys WHERE key = $1 AND status IS NULL)",
        )
        .bind(key)
        .fetch_one(pool)
        .await
        .unwrap();
        if running {
            return;
        }
        assert!(Instant::now() < deadline, "the first request never claimed its key");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[sqlx::test(migrations = false)]
async fn a_second_request_while_the_first_runs_gets_the_in_progress_answer(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let t = token("user_a", None);
    // Hold the first request inside its work: it has claimed the key and
    // waits on the videos table.
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE videdit.videos IN EXCLUSIVE MODE").execute(&mut *blocker).await.unwrap();
    let first = {
        let (app_base, client, t) = (app.base.clone(), app.client.clone(), t.clone());
        tokio::spawn(async move {
            let r = client
                .post(format!("{app_base}/api/v1/uploads"))
                .bearer_auth(t)
                .header("Idempotency-Key", "key-busy")
                .json(&upload_body())
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    until_in_progress(&pool, "key-busy").await;
    let second = create(&app, &t, "key-busy").await;
    assert_eq!(second.0, 409, "{}", second.1);
    assert_eq!(
        second.1,
        json!({"code": "invalid_state", "message": "a request with this Idempotency-Key is in progress"})
    );
    blocker.rollback().await.unwrap();
    let (status, plan) = first.await.unwrap();
    assert_eq!(status, 201, "{plan}");
    // Afterwards the key replays the first answer.
    let replay = create(&app, &t, "key-busy").await;
    assert_eq!((replay.0, &replay.1), (201, &plan));
    assert_eq!(videos(&pool).await, 1);
}

#[sqlx::test(migrations = false)]
async fn concurrent_requests_with_one_key_create_one_video(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let t = token("user_a", None);
    let calls = (0..8).map(|_| create(&app, &t, "key-race"));
    let results = futures_util::future::join_all(calls).await;
    let created: Vec<&Value> = results.iter().filter(|(s, _)| *s == 201).map(|(_, b)| b).collect();
    assert!(!created.is_empty(), "{results:?}");
    for (status, body) in &results {
        match status {
            201 => assert_eq!(body, created[0], "every success is the same upload"),
            409 => assert_eq!(body["code"], "invalid_state", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(videos(&pool).await, 1);
}

#[sqlx::test(migrations = false)]
async fn a_failed_request_releases_its_key_and_a_retry_succeeds(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let t = token("user_a", None);
    // Make the request fail inside its work, after the key is claimed.
    sqlx::query(
        "CREATE FUNCTION videdit.fail_insert() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'injected failure'; END $$",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER fail_insert BEFORE INSERT ON videdit.videos FOR EACH ROW EXECUTE FUNCTION videdit.fail_insert()",
    )
    .execute(&pool)
    .await
    .unwrap();
    let failed = create(&app, &t, "key-retry").await;
    assert_error(&failed, 500, "internal");
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM videdit.idempotency_keys WHERE key = 'key-retry'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, 0, "the failed request released its key");
    sqlx::query("DROP TRIGGER fail_insert ON videdit.videos").execute(&pool).await.unwrap();
    let retried = create(&app, &t, "key-retry").await;
    assert_eq!(retried.0, 201, "{}", retried.1);
    assert_eq!(create(&app, &t, "key-retry").await.1, retried.1, "and is replayed from then on");
    assert_eq!(videos(&pool).await, 1);
}

#[sqlx::test(migrations = false)]
async fn keys_have_1_to_255_characters(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let t = token("user_a", None);
    let longest = "k".repeat(255);
    assert_eq!(create(&app, &t, &longest).await.0, 201);
    let expected = json!({"code": "invalid_request", "message": "Idempotency-Key must have 1 to 255 characters"});
    let too_long = create(&app, &t, &"k".repeat(256)).await;
    assert_eq!((too_long.0, &too_long.1), (400, &expected));
    let empty = create(&app, &t, "").await;
    assert_eq!((empty.0, &empty.1), (400, &expected));
    assert_eq!(videos(&pool).await, 1, "refused keys ran nothing");
}

#[sqlx::test(migrations = false)]
async fn job_creation_takes_keys_too(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let t = token("user_a", None);
    let ready = seed::ready_video(&app, &pool, &t).await;
    let path = format!("/videos/{}/jobs", ready.video);
    let analyze = json!({"type": "analyze", "options": {"maxShorts": 2}});
    let first = app.call_with("POST", &path, Some(&t), Some(analyze.clone()), &[("Idempotency-Key", "job-1")]).await;
    assert_eq!(first.0, 201, "{}", first.1);
    // Cancelled in between: a replay still answers what the first call did
    // and does not queue another job.
    let admin_cancel =
        app.call("POST", &format!("/jobs/{}/cancel", first.1["id"].as_str().unwrap()), Some(&t), None).await;
    assert_eq!(admin_cancel.0, 200, "{}", admin_cancel.1);
    let replay = app.call_with("POST", &path, Some(&t), Some(analyze), &[("Idempotency-Key", "job-1")]).await;
    assert_eq!((replay.0, &replay.1), (201, &first.1));
    let other = app
        .call_with("POST", &path, Some(&t), Some(json!({"type": "transcribe"})), &[("Idempotency-Key", "job-1")])
        .await;
    assert_error(&other, 422, "idempotency_key_reused");
    let jobs = app.call("GET", &path, Some(&t), None).await;
    assert_eq!(jobs.1.as_array().unwrap().len(), 1, "{}", jobs.1);
}
