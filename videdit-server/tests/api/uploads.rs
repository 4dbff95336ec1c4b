//! The upload flow: presigned PUT (local storage served by us) and
//! multipart (s3s-fs), completion checks, abort, idempotency, bad bodies.

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{Options, StorageKind, TestApp, assert_error, spawn_app, token};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

async fn put(app: &TestApp, plan_url: &str, headers: &Value, data: Vec<u8>) -> reqwest::Response {
    let mut r = app.client.put(plan_url);
    for h in headers.as_array().into_iter().flatten() {
        r = r.header(h["name"].as_str().unwrap(), h["value"].as_str().unwrap());
    }
    r.body(data).send().await.unwrap()
}

#[sqlx::test(migrations = false)]
async fn single_put_upload_through_the_servers_signed_urls(pool: PgPool) {
    let logs = crate::support::capture_logs();
    let app = spawn_app(pool, Options::default()).await;
    let t = token("user_a", None);
    let data = pattern(300_000);
    let (status, plan) = app
        .call(
            "POST",
            "/uploads",
            Some(&t),
            Some(json!({"fileName": "My Talk.mp4", "contentType": "video/mp4", "size": data.len()})),
        )
        .await;
    assert_eq!(status, 201, "{plan}");
    assert_eq!(plan["method"], "single");
    let url = plan["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/storage/orgs/", app.base)), "{url}");

    // Not complete yet: the video is uploading; completing now is refused.
    let upload = plan["uploadId"].as_str().unwrap();
    let video = plan["videoId"].as_str().unwrap();
    assert_eq!(app.call("GET", &format!("/videos/{video}"), Some(&t), None).await.1["status"], "uploading");
    assert_error(
        &app.call("POST", &format!("/uploads/{upload}/complete"), Some(&t), Some(json!({}))).await,
        409,
        "invalid_state",
    );

    // A tampered URL and a wrong content type are refused.
    let tampered = url.replace("/source.mp4", "/other.mp4");
    assert_eq!(put(&app, &tampered, &plan["headers"], data.clone()).await.status(), 403);
    let wrong_type = json!([{"name": "content-type", "value": "text/html"}]);
    let r = put(&app, url, &wrong_type, data.clone()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "content_type_mismatch");
    // More than declared is refused while streaming.
    let r = put(&app, url, &plan["headers"], pattern(300_001)).await;
    assert_eq!(r.status(), 413);

    let r = put(&app, url, &plan["headers"], data.clone()).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("etag").is_some());

    let (status, v) = app.call("POST", &format!("/uploads/{upload}/complete"), Some(&t), Some(json!({}))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "uploaded");
    assert_eq!(v["title"], "My Talk");
    assert_eq!(v["sizeBytes"], data.len());
    assert_error(
        &app.call("POST", &format!("/uploads/{upload}/complete"), Some(&t), Some(json!({}))).await,
        409,
        "invalid_state",
    );
    let listed = app.call("GET", "/videos", Some(&t), None).await;
    assert_eq!(listed.1["items"][0]["id"], video);
    assert_eq!(listed.1["items"][0]["shortsCount"], 0);
    assert_eq!(listed.1["items"][0]["hasTranscription"], false);
    // The signed PUT was logged by its path, without its signature.
    let logs = logs.text();
    assert!(logs.lines().any(|l| l.contains("path=/storage/orgs/") && l.contains("answered")), "{logs}");
    assert!(!logs.contains("sig="), "a signed URL was logged:\n{logs}");
}

#[sqlx::test(migrations = false)]
async fn multipart_upload_to_s3_with_presigned_parts(pool: PgPool) {
    let mut options = Options { storage: StorageKind::S3, ..Options::default() };
    options.limits.multipart_threshold = 1024 * 1024;
    let app = spawn_app(pool, options).await;
    let t = token("user_a", None);
    let data = pattern(16 * 1024 * 1024 + 4321);
    let (status, plan) = app
        .call(
            "POST",
            "/uploads",
            Some(&t),
            Some(json!({"fileName": "long.mov", "contentType": "video/quicktime", "size": data.len()})),
        )
        .await;
    assert_eq!(status, 201, "{plan}");
    assert_eq!(plan["method"], "multipart");
    let part_size = plan["partSize"].as_u64().unwrap() as usize;
    let parts = plan["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    let mut done = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let chunk = data[i * part_size..((i + 1) * part_size).min(data.len())].to_vec();
        let r = put(&app, p["url"].as_str().unwrap(), &Value::Null, chunk).await;
        assert_eq!(r.status(), 200, "part {i}");
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        done.push(json!({"partNumber": p["partNumber"], "etag": etag}));
    }
    let upload = plan["uploadId"].as_str().unwrap();
    // Without parts, a multipart upload cannot complete.
    assert_error(
        &app.call("POST", &format!("/uploads/{upload}/complete"), Some(&t), Some(json!({}))).await,
        400,
        "invalid_request",
    );
    let (status, v) =
        app.call("POST", &format!("/uploads/{upload}/complete"), Some(&t), Some(json!({"parts": done}))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "uploaded");
    assert_eq!(v["sizeBytes"], data.len());
}

#[sqlx::test(migrations = false)]
async fn a_short_upload_is_refused_and_removed(pool: PgPool) {
    let app = spawn_app(pool, Options::default()).await;
    let t = token("user_a", None);
    let (_, plan) = app
        .call(
            "POST",
            "/uploads",
            Some(&t),
            Some(json!({"fileName": "a.mp4", "contentType": "video/mp4", "size": 1000})),
        )
        .await;
    let r = put(&app, plan["url"].as_str().unwrap(), &plan["headers"], pattern(400)).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let upload = plan["uploadId"].as_str().unwrap();
    let got = app.call("POST", &format!("/uploads/{upload}/complete"), Some(&t), Some(json!({}))).await;
    assert_error(&got, 400, "invalid_request");
    assert!(got.1["message"].as_str().unwrap().contains("400 bytes but 1000"), "{}", got.1);
}

#[sqlx::test(migrations = false)]
async fn abort_removes_the_upload_and_its_video(pool: PgPool) {
    let app = spawn_app(pool, Options::default()).await;
    let t = token("user_a", None);
    let (_, plan) = app
        .call("POST", "/uploads", Some(&t), Some(json!({"fileName": "a.mp4", "contentType": "video/mp4", "size": 10})))
        .await;
    let (upload, video) = (plan["uploadId"].as_str().unwrap(), plan["videoId"].as_str().unwrap());
    let (status, body) = app.call("DELETE", &format!("/uploads/{upload}"), Some(&t), None).await;
    assert_eq!(status, 200, "{body}");
    assert_error(&app.call("GET", &format!("/videos/{video}"), Some(&t), None).await, 404, "video_not_found");
    assert_error(&app.call("DELETE", &format!("/uploads/{upload}"), Some(&t), None).await, 404, "upload_not_found");
}

#[sqlx::test(migrations = false)]
async fn idempotency_keys_replay_or_refuse(pool: PgPool) {
    let app = spawn_app(pool, Options::default()).await;
    let t = token("user_a", None);
    let body = json!({"fileName": "a.mp4", "contentType": "video/mp4", "size": 10});
    let send = |body: Value, key: Option<&'static str>| {
        let mut r = app.client.post(app.url("/uploads")).bearer_auth(&t).json(&body);
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        async move {
            let resp = r.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let first = send(body.clone(), Some("key-1")).await;
    let again = send(body.clone(), Some("key-1")).await;
    assert_eq!(first.0, 201);
    assert_eq!(again.0, 201);
    assert_eq!(first.1["uploadId"], again.1["uploadId"], "a replay returns the stored response");
    let other = send(json!({"fileName": "b.mp4", "contentType": "video/mp4", "size": 10}), Some("key-1")).await;
    assert_error(&other, 422, "idempotency_key_reused");
    let fresh = send(body.clone(), None).await;
    assert_ne!(fresh.1["uploadId"], first.1["uploadId"]);
    assert_eq!(app.call("GET", "/videos", Some(&t), None).await.1["items"].as_array().unwrap().len(), 2);
    // Keys are per organisation: another tenant's same key is a new request.
    let other_t = token("user_b", None);
    let theirs = app
        .client
        .post(app.url("/uploads"))
        .bearer_auth(&other_t)
        .header("Idempotency-Key", "key-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    let theirs: Value = theirs.json().await.unwrap();
    assert_ne!(theirs["uploadId"], first.1["uploadId"]);
}

#[sqlx::test(migrations = false)]
async fn bad_bodies_get_400_with_a_code_never_500(pool: PgPool) {
    let mut options = Options::default();
    options.limits.max_upload_bytes = 1_000_000;
    let app = spawn_app(pool, options).await;
    let t = token("user_a", None);
    for body in [
        json!({}),
        json!({"fileName": "a.mp4", "contentType": "video/mp4"}),
        json!({"fileName": "a.mp4", "contentType": "video/mp4", "size": 0}),
        json!({"fileName": "a.mp4", "contentType": "video/mp4", "size": -5}),
        json!({"fileName": "", "contentType": "video/mp4", "size": 5}),
        json!({"fileName": "a.mp4", "contentType": "text/html", "size": 5}),
        json!([1, 2, 3]),
    ] {
        assert_error(&app.call("POST", "/uploads", Some(&t), Some(body.clone())).await, 400, "invalid_request");
    }
    let raw = app
        .client
        .post(app.url("/uploads"))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert_eq!(raw.json::<Value>().await.unwrap()["code"], "invalid_request");
    let big = json!({"fileName": "a.mp4", "contentType": "video/mp4", "size": 1_000_001});
    assert_error(&app.call("POST", "/uploads", Some(&t), Some(big)).await, 413, "upload_too_large");
    assert_error(
        &app.call("PATCH", "/videos/not-an-id", Some(&t), Some(json!({"title": "x"}))).await,
        404,
        "video_not_found",
    );
    assert_error(&app.call("GET", "/videos?limit=0", Some(&t), None).await, 400, "invalid_request");
    assert_error(&app.call("GET", "/videos?cursor=zzz", Some(&t), None).await, 400, "invalid_request");
}

/// A two-part multipart plan (16 MiB parts) for `size` bytes.
async fn multipart_plan(app: &TestApp, t: &str, size: usize) -> Value {
    let (status, plan) = app
        .call(
            "POST",
            "/uploads",
            Some(t),
            Some(json!({"fileName": "long.mov", "contentType": "video/quicktime", "size": size})),
        )
        .await;
    assert_eq!(status, 201, "{plan}");
    assert_eq!(plan["method"], "multipart");
    assert_eq!(plan["parts"].as_array().unwrap().len(), 2);
    plan
}

/// PUTs `data` as part `n` (1-based) of the plan; returns its ETag.
async fn put_part(app: &TestApp, plan: &Value, n: usize, data: Vec<u8>) -> String {
    let r = put(app, plan["parts"][n - 1]["url"].as_str().unwrap(), &Value::Null, data).await;
    assert_eq!(r.status(), 200, "part {n}");
    r.headers()["etag"].to_str().unwrap().to_owned()
}

async fn complete(app: &TestApp, t: &str, plan: &Value, parts: &[(u64, &str)]) -> (u16, Value) {
    let parts: Vec<Value> = parts.iter().map(|(n, etag)| json!({"partNumber": n, "etag": etag})).collect();
    let upload = plan["uploadId"].as_str().unwrap();
    app.call("POST", &format!("/uploads/{upload}/complete"), Some(t), Some(json!({"parts": parts}))).await
}

#[track_caller]
fn assert_refused(got: &(u16, Value), message: &str) {
    assert_eq!(got.0, 400, "{}", got.1);
    assert_eq!(got.1, json!({"code": "invalid_request", "message": message}));
}

/// After a refused completion the upload is still pending: the right
/// parts complete it.
async fn still_completes(app: &TestApp, t: &str, plan: &Value, data: &[u8], part_size: usize) {
    let e1 = put_part(app, plan, 1, data[..part_size].to_vec()).await;
    let e2 = put_part(app, plan, 2, data[part_size..].to_vec()).await;
    let (status, v) = complete(app, t, plan, &[(1, &e1), (2, &e2)]).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["sizeBytes"], data.len());
}

#[sqlx::test(migrations = false)]
async fn multipart_completion_refuses_missing_and_too_small_parts(pool: PgPool) {
    for storage in [StorageKind::S3, StorageKind::Local] {
        let mut options = Options { storage, ..Options::default() };
        options.limits.multipart_threshold = 1024 * 1024;
        let app = spawn_app(pool.clone(), options).await;
        let t = token("user_a", None);
        let data = pattern(16 * 1024 * 1024 + 4321);
        let part_size = 16 * 1024 * 1024;

        // Part 2 never uploaded.
        let plan = multipart_plan(&app, &t, data.len()).await;
        let e1 = put_part(&app, &plan, 1, data[..part_size].to_vec()).await;
        let got = complete(&app, &t, &plan, &[(1, &e1), (2, "\"0123456789abcdef0123456789abcdef\"")]).await;
        assert_refused(&got, "part 2 was not uploaded");
        still_completes(&app, &t, &plan, &data, part_size).await;

        // A 1 MiB first part: each part URL binds its part's exact size, so
        // storage refuses the PUT itself (S3 may cut the connection).
        let plan = multipart_plan(&app, &t, data.len()).await;
        let url = plan["parts"][0]["url"].as_str().unwrap();
        // (Its own client: a connection S3 cut is not reused for the next request.)
        let short = reqwest::Client::new().put(url).body(data[..1024 * 1024].to_vec()).send().await;
        assert!(short.map_or(true, |r| r.status().is_client_error()), "a short part was accepted");
        still_completes(&app, &t, &plan, &data, part_size).await;

        // Parts out of order.
        let plan = multipart_plan(&app, &t, data.len()).await;
        let got = complete(&app, &t, &plan, &[(2, "\"a\""), (1, "\"b\"")]).await;
        assert_refused(&got, "parts must be listed once each, in ascending order");
    }
}

#[sqlx::test(migrations = false)]
async fn multipart_completion_refuses_a_wrong_etag(pool: PgPool) {
    // s3s-fs reports no ETags in ListParts, so the ETag comparison is
    // exercised on the local backend (whose parts carry real ETags) and by
    // the unit tests over recorded AWS ListParts pages in videdit-core.
    let mut options = Options::default();
    options.limits.multipart_threshold = 1024 * 1024;
    let app = spawn_app(pool, options).await;
    let t = token("user_a", None);
    let data = pattern(16 * 1024 * 1024 + 4321);
    let part_size = 16 * 1024 * 1024;
    let plan = multipart_plan(&app, &t, data.len()).await;
    let e1 = put_part(&app, &plan, 1, data[..part_size].to_vec()).await;
    let _ = put_part(&app, &plan, 2, data[part_size..].to_vec()).await;
    let got = complete(&app, &t, &plan, &[(1, &e1), (2, "\"0123456789abcdef0123456789abcdef\"")]).await;
    assert_refused(&got, "part 2 has another ETag");
    let video = plan["videoId"].as_str().unwrap();
    assert_eq!(app.call("GET", &format!("/videos/{video}"), Some(&t), None).await.1["status"], "uploading");
    still_completes(&app, &t, &plan, &data, part_size).await;
}

/// File names and titles people see are refused when they carry control
/// or bidirectional-override characters (a U+202E can disguise a name);
/// ordinary text in any script passes.
#[sqlx::test(migrations = false)]
async fn control_and_bidi_characters_are_refused_in_file_names_and_titles(pool: PgPool) {
    let app = spawn_app(pool, Options::default()).await;
    let t = token("user_text", None);
    let upload = |name: &str| json!({"fileName": name, "contentType": "video/mp4", "size": 5});
    let (status, body) = app.call("POST", "/uploads", Some(&t), Some(upload("clip\u{202E}4pm.exe"))).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"code": "invalid_request", "message": "fileName must not contain control or bidirectional-override characters (U+202E)"})
        )
    );
    assert_error(&app.call("POST", "/uploads", Some(&t), Some(upload("a\nb.mp4"))).await, 400, "invalid_request");
    let (status, plan) = app.call("POST", "/uploads", Some(&t), Some(upload("Café — 日本語.mp4"))).await;
    assert_eq!(status, 201, "{plan}");
    let video = plan["videoId"].as_str().unwrap();
    let rename = |title: &str| json!({"title": title});
    let (status, body) = app.call("PATCH", &format!("/videos/{video}"), Some(&t), Some(rename("evil\u{1b}[2J"))).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"code": "invalid_request", "message": "title must not contain control or bidirectional-override characters (U+001B)"})
        )
    );
    assert_error(
        &app.call("PATCH", &format!("/videos/{video}"), Some(&t), Some(rename("   "))).await,
        400,
        "invalid_request",
    );
    let (status, v) = app.call("PATCH", &format!("/videos/{video}"), Some(&t), Some(rename("עברית ✓"))).await;
    assert_eq!((status, v["title"].as_str()), (200, Some("עברית ✓")), "{v}");
}
