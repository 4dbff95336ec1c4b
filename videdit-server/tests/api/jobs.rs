//! Jobs through the API and the worker's maintenance handlers.

use serde_json::json;
use sqlx::PgPool;
use videdit_queue::Processed;

use crate::support::{Options, assert_error, spawn_app, token};

#[sqlx::test(migrations = false)]
async fn core_and_queue_migrations_apply_in_either_order_twice(pool: PgPool) {
    videdit_queue::migrate(&pool).await.unwrap();
    videdit_core::db::migrate(&pool).await.unwrap();
    videdit_queue::migrate(&pool).await.unwrap();
    videdit_core::db::migrate(&pool).await.unwrap();
    videdit_server::migrate_all(&pool).await.unwrap();
    let core: i64 = sqlx::query_scalar("SELECT count(*) FROM videdit._sqlx_migrations").fetch_one(&pool).await.unwrap();
    let queue: i64 =
        sqlx::query_scalar("SELECT count(*) FROM videdit_queue._sqlx_migrations").fetch_one(&pool).await.unwrap();
    // Each applied once: as many rows as migration files.
    let files =
        |dir: &str| std::fs::read_dir(format!("{}/../{dir}/migrations", env!("CARGO_MANIFEST_DIR"))).unwrap().count();
    assert_eq!((core, queue), (files("videdit-core") as i64, files("videdit-queue") as i64));
    assert!(core >= 3 && queue >= 2);
}

async fn uploaded_video(app: &crate::support::TestApp, t: &str) -> String {
    let (_, plan) = app
        .call("POST", "/uploads", Some(t), Some(json!({"fileName": "a.mp4", "contentType": "video/mp4", "size": 5})))
        .await;
    let mut r = app.client.put(plan["url"].as_str().unwrap());
    for h in plan["headers"].as_array().unwrap() {
        r = r.header(h["name"].as_str().unwrap(), h["value"].as_str().unwrap());
    }
    assert_eq!(r.body(vec![1u8, 2, 3, 4, 5]).send().await.unwrap().status(), 200);
    let upload = plan["uploadId"].as_str().unwrap();
    let (status, _) = app.call("POST", &format!("/uploads/{upload}/complete"), Some(t), Some(json!({}))).await;
    assert_eq!(status, 200);
    plan["videoId"].as_str().unwrap().to_owned()
}

#[sqlx::test(migrations = false)]
async fn completing_an_upload_enqueues_ingest_and_jobs_can_be_managed(pool: PgPool) {
    let app = spawn_app(pool, Options::default()).await;
    let admin = token("user_admin", Some(("org_jobs", "org:admin")));
    let member = token("user_member", Some(("org_jobs", "org:member")));
    let video = uploaded_video(&app, &admin).await;

    let (status, jobs) = app.call("GET", &format!("/videos/{video}/jobs"), Some(&member), None).await;
    assert_eq!(status, 200, "{jobs}");
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    assert_eq!(jobs[0]["type"], "ingest");
    assert_eq!(jobs[0]["status"], "queued");
    assert_eq!(jobs[0]["videoId"], video.as_str());

    // A member may start processing; a second analyze returns the live one.
    let (status, job) = app
        .call(
            "POST",
            &format!("/videos/{video}/jobs"),
            Some(&member),
            Some(json!({"type": "analyze", "options": {"maxShorts": 3}})),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    let (_, again) =
        app.call("POST", &format!("/videos/{video}/jobs"), Some(&member), Some(json!({"type": "analyze"}))).await;
    assert_eq!(again["id"], job["id"]);
    let id = job["id"].as_str().unwrap();
    assert_eq!(app.call("GET", &format!("/jobs/{id}"), Some(&member), None).await.1["type"], "analyze");

    // Only admins cancel.
    assert_error(&app.call("POST", &format!("/jobs/{id}/cancel"), Some(&member), None).await, 403, "forbidden");
    let (status, cancelled) = app.call("POST", &format!("/jobs/{id}/cancel"), Some(&admin), None).await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")));
    assert_error(&app.call("POST", &format!("/jobs/{id}/cancel"), Some(&admin), None).await, 409, "invalid_state");

    // Bad job requests.
    assert_error(
        &app.call("POST", &format!("/videos/{video}/jobs"), Some(&member), Some(json!({"type": "publish"}))).await,
        400,
        "invalid_request",
    );
    assert_error(
        &app.call("POST", &format!("/videos/{video}/jobs"), Some(&member), Some(json!({"type": "render"}))).await,
        400,
        "invalid_request",
    );
    for options in [json!({"maxShorts": 0}), json!({"minDuration": 90, "maxDuration": 30}), json!({"maxShort": 3})] {
        let body = json!({"type": "analyze", "options": options});
        assert_error(
            &app.call("POST", &format!("/videos/{video}/jobs"), Some(&member), Some(body)).await,
            400,
            "invalid_request",
        );
    }
    assert_error(&app.call("GET", "/jobs/not-a-uuid", Some(&member), None).await, 404, "job_not_found");

    // Another organisation sees none of it.
    let other = token("user_x", Some(("org_other", "org:admin")));
    assert_error(&app.call("GET", &format!("/jobs/{id}"), Some(&other), None).await, 404, "job_not_found");
    assert_error(&app.call("POST", &format!("/jobs/{id}/cancel"), Some(&other), None).await, 404, "job_not_found");
    assert_error(&app.call("GET", &format!("/videos/{video}/jobs"), Some(&other), None).await, 404, "video_not_found");
    assert_error(
        &app.call("POST", &format!("/videos/{video}/jobs"), Some(&other), Some(json!({"type": "analyze"}))).await,
        404,
        "video_not_found",
    );
}

#[sqlx::test(migrations = false)]
async fn deleting_a_video_removes_its_files_through_a_job(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let t = token("user_del", None);
    let video = uploaded_video(&app, &t).await;
    let (status, body) = app.call("DELETE", &format!("/videos/{video}"), Some(&t), None).await;
    assert_eq!(status, 200, "{body}");
    let files_before = count_files(app.storage_dir());
    assert!(files_before > 0);
    let worker = housekeeping_worker(&pool, &app);
    assert!(matches!(worker.process_next().await.unwrap(), Processed::Completed(_)));
    assert_eq!(count_files(app.storage_dir()), 0, "the video's objects are gone");
}

#[sqlx::test(migrations = false)]
async fn abandoned_uploads_are_cleaned_up(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let t = token("user_slow", None);
    let (_, plan) = app
        .call("POST", "/uploads", Some(&t), Some(json!({"fileName": "a.mp4", "contentType": "video/mp4", "size": 5})))
        .await;
    let video = plan["videoId"].as_str().unwrap().to_owned();
    sqlx::query("UPDATE videdit.uploads SET expires_at = now() - interval '1 minute'").execute(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    videdit_server::handlers::schedule_cleanup(&mut conn, time::OffsetDateTime::now_utc()).await.unwrap();
    drop(conn);
    let worker = housekeeping_worker(&pool, &app);
    assert!(matches!(worker.process_next().await.unwrap(), Processed::Completed(_)));
    assert_error(&app.call("GET", &format!("/videos/{video}"), Some(&t), None).await, 404, "video_not_found");
    let state: String = sqlx::query_scalar("SELECT state FROM videdit.uploads")
        .fetch_optional(&pool)
        .await
        .unwrap()
        .unwrap_or_else(|| "gone".into());
    assert_eq!(state, "gone", "the upload row went with its video");
    // The next run is scheduled, once.
    let next: i64 =
        sqlx::query_scalar("SELECT count(*) FROM videdit_queue.jobs WHERE kind = 'cleanup_uploads' AND run_at > now()")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(next, 1);
}

/// A worker without media: housekeeping jobs only.
fn housekeeping_worker(pool: &PgPool, app: &crate::support::TestApp) -> videdit_queue::Worker {
    app.queue_worker(pool, "maintenance")
}

#[sqlx::test(migrations = false)]
async fn deleting_a_video_cancels_its_jobs_aborts_its_multipart_uploads_and_sweeps_again_later(pool: PgPool) {
    let mut options = Options::default();
    options.limits.multipart_threshold = 1024;
    let app = spawn_app(pool.clone(), options).await;
    let t = token("user_del", None);
    let ready = crate::seed::ready_video(&app, &pool, &t).await;
    let video = ready.video.to_string();
    // A queued job of the video, and a multipart upload in progress for it.
    let (status, job) =
        app.call("POST", &format!("/videos/{video}/jobs"), Some(&t), Some(json!({"type": "analyze"}))).await;
    assert_eq!(status, 201, "{job}");
    let key = videdit_core::storage::ObjectKey::video_source(ready.org, ready.video, "again.mp4");
    let mp = app.storage.create_multipart(&key, "video/mp4").await.unwrap();
    let url = app.storage.presign_part(&mp, 1, 2048, std::time::Duration::from_secs(600)).await.unwrap().url;
    assert_eq!(app.client.put(url).body(vec![1u8; 2048]).send().await.unwrap().status(), 200);
    let upload = videdit_core::db::NewUpload {
        id: videdit_core::UploadId::new(),
        video_id: ready.video,
        key: key.clone(),
        file_name: "again.mp4".into(),
        content_type: "video/mp4".into(),
        expected_size: 2048,
        multipart: Some((mp.upload_id.clone(), 2048, 1)),
        expires_at: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    videdit_core::db::insert_upload(&pool, ready.org, &upload).await.unwrap();
    let parts_dir_exists = || count_files(app.storage_dir());
    let before = parts_dir_exists();

    let (status, body) = app.call("DELETE", &format!("/videos/{video}"), Some(&t), None).await;
    assert_eq!(status, 200, "{body}");
    // In the same transaction: the job is cancelled, the event recorded.
    let (_, got) = app.call("GET", &format!("/jobs/{}", job["id"].as_str().unwrap()), Some(&t), None).await;
    assert_eq!(got["status"], "cancelled", "{got}");
    let (_, events) = app.call("GET", "/events?types=video.deleted", Some(&t), None).await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1, "{events}");
    assert_eq!(events["items"][0]["data"]["videoId"], video);
    // A second sweep is queued for after the longest job lease.
    let later: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM videdit_queue.jobs WHERE kind = 'delete' AND run_at > now() + interval '1 hour'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(later, 1);

    let worker = housekeeping_worker(&pool, &app);
    assert!(matches!(worker.process_next().await.unwrap(), Processed::Completed(_)));
    assert!(before > 0);
    assert_eq!(count_files(app.storage_dir()), 0, "the objects and the multipart upload's parts are gone");
    // The multipart upload is aborted at the backend, not merely orphaned.
    assert_eq!(
        app.storage.presign_part(&mp, 1, 2048, std::time::Duration::from_secs(60)).await.unwrap_err().code(),
        videdit_core::ErrorCode::UploadNotFound
    );

    // A late render that wrote after the first sweep is swept by the second.
    app.storage
        .put_stream(
            &videdit_core::storage::ObjectKey::short_video(ready.org, ready.video, ready.short),
            videdit_core::storage::bytes_stream(b"late".to_vec()),
            "video/mp4",
        )
        .await
        .unwrap();
    sqlx::query("UPDATE videdit_queue.jobs SET run_at = now() WHERE kind = 'delete'").execute(&pool).await.unwrap();
    assert!(matches!(worker.process_next().await.unwrap(), Processed::Completed(_)));
    assert_eq!(count_files(app.storage_dir()), 0, "the second pass removed the late file");
}

fn count_files(dir: &std::path::Path) -> usize {
    let objects = dir.join("objects");
    let mut n = 0;
    let mut stack = vec![objects];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

#[sqlx::test(migrations = false)]
async fn transcripts_come_as_json_srt_vtt_or_text(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let t = token("user_tr", None);
    let video = uploaded_video(&app, &t).await;
    assert_error(
        &app.call("GET", &format!("/videos/{video}/transcript"), Some(&t), None).await,
        404,
        "transcript_not_found",
    );
    let org: uuid::Uuid = sqlx::query_scalar("SELECT org_id FROM videdit.videos WHERE id = $1::uuid")
        .bind(&video)
        .fetch_one(&pool)
        .await
        .unwrap();
    let words = vec![
        videdit_core::Word { text: "Hello".into(), start: 0.5, end: 0.9, probability: 0.9 },
        videdit_core::Word { text: "there.".into(), start: 1.0, end: 1.4, probability: 0.9 },
    ];
    let transcript = videdit_core::Transcript {
        language: "en".into(),
        model: "tiny.en".into(),
        duration: 2.0,
        segments: vec![videdit_core::Segment { start: 0.5, end: 1.4, text: "Hello there.".into(), words }],
    };
    videdit_core::db::put_transcript(&pool, videdit_core::OrgId::from_uuid(org), video.parse().unwrap(), &transcript)
        .await
        .unwrap();
    let get = |fmt: &str| {
        let url = app.url(&format!("/videos/{video}/transcript{fmt}"));
        let req = app.client.get(url).bearer_auth(&t);
        async move {
            let r = req.send().await.unwrap();
            let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
            (r.status().as_u16(), ct, r.text().await.unwrap())
        }
    };
    let (status, ct, body) = get("").await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("application/json"), "{ct}");
    assert_eq!(serde_json::from_str::<videdit_core::Transcript>(&body).unwrap(), transcript);
    let (_, ct, srt) = get("?format=srt").await;
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert_eq!(srt, "1\n00:00:00,500 --> 00:00:01,400\nHello there.\n\n");
    assert_eq!(get("?format=vtt").await.2, "WEBVTT\n\n00:00:00.500 --> 00:00:01.400\nHello there.\n\n");
    assert_eq!(get("?format=txt").await.2, "Hello there.");
    let (status, _, body) = get("?format=docx").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_request"), "{body}");
}
