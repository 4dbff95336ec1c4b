//! Every endpoint, called with another organisation's ids, answers 404 and
//! never the data.

use serde_json::json;
use sqlx::PgPool;
use videdit_core::db;

use crate::support::{Options, assert_error, spawn_app, token};

#[sqlx::test(migrations = false)]
async fn another_organisations_ids_are_not_found_everywhere(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let alice = token("user_alice", Some(("org_alpha", "org:admin")));
    let mallory = token("user_mallory", Some(("org_mallory", "org:admin")));
    let ready = crate::seed::ready_video(&app, &pool, &alice).await;
    db::rename_video(&pool, ready.org, ready.video, "secret").await.unwrap();
    let (upload, _) = crate::seed::uploaded_but_not_completed(&app, &alice).await;
    let (video, short) = (ready.video, ready.short);
    let cases = [
        ("GET", format!("/videos/{video}"), None, "video_not_found"),
        ("PATCH", format!("/videos/{video}"), Some(json!({"title": "pwned"})), "video_not_found"),
        ("DELETE", format!("/videos/{video}"), None, "video_not_found"),
        ("GET", format!("/videos/{video}/transcript"), None, "video_not_found"),
        ("GET", format!("/videos/{video}/shorts"), None, "video_not_found"),
        ("GET", format!("/shorts/{short}"), None, "short_not_found"),
        ("POST", format!("/uploads/{upload}/complete"), Some(json!({})), "upload_not_found"),
        ("DELETE", format!("/uploads/{upload}"), None, "upload_not_found"),
        ("GET", format!("/videos/{video}/jobs"), None, "video_not_found"),
        ("POST", format!("/videos/{video}/jobs"), Some(json!({"type": "analyze"})), "video_not_found"),
    ];
    for (method, path, body, code) in &cases {
        let got = app.call(method, path, Some(&mallory), body.clone()).await;
        assert_error(&got, 404, code);
        assert!(!got.1.to_string().contains("secret"), "{method} {path} leaked data: {}", got.1);
    }
    let listed = app.call("GET", "/videos", Some(&mallory), None).await;
    assert_eq!(listed.1["items"], json!([]));

    // Alice still has everything, unchanged.
    let (status, v) = app.call("GET", &format!("/videos/{video}"), Some(&alice), None).await;
    assert_eq!((status, v["title"].as_str()), (200, Some("secret")));
    assert_eq!(app.call("GET", &format!("/shorts/{short}"), Some(&alice), None).await.0, 200);
    assert_eq!(
        app.call("GET", &format!("/videos/{video}/shorts"), Some(&alice), None).await.1.as_array().unwrap().len(),
        1
    );
}
