//! The Rust client generated from the spec (`clients/rust`, progenitor)
//! against a live server: an upload planned, sent and completed, the video
//! listed and read, a rename, and a typed error for another organisation's
//! video.

use sqlx::PgPool;
use videdit_client::types;

use crate::support::{Options, spawn_app, token};

#[sqlx::test(migrations = false)]
async fn the_generated_rust_client_uploads_lists_renames_and_reads_errors(pool: PgPool) {
    let app = spawn_app(pool, Options::default()).await;
    let t = token("user_rs", Some(("org_rs", "org:admin")));
    let other = token("user_rs_other", Some(("org_rs_other", "org:admin")));
    let client = videdit_client::with_token(&format!("{}/api/v1", app.base), &t).unwrap();

    let bytes = b"not really a video, but bytes all the same".to_vec();
    let plan = client
        .create_upload()
        .body(types::CreateUpload {
            file_name: "from-rust.mp4".parse().unwrap(),
            content_type: "video/mp4".parse().unwrap(),
            size: std::num::NonZeroU64::new(bytes.len() as u64).unwrap(),
            duration_seconds: None,
        })
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plan.method, types::UploadMethod::Single);
    let mut put = app.client.put(plan.url.clone().unwrap()).body(bytes.clone());
    for h in &plan.headers {
        put = put.header(h.name.as_str(), h.value.as_str());
    }
    assert!(put.send().await.unwrap().status().is_success());
    let done = client
        .complete_upload()
        .id(plan.upload_id.clone())
        .body(types::CompleteUpload { parts: vec![] })
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.status, types::VideoState::Uploaded);

    let page = client.list_videos().limit(std::num::NonZeroU32::new(10).unwrap()).send().await.unwrap().into_inner();
    assert!(page.items.iter().any(|v| v.id == plan.video_id), "{page:?}");
    let renamed = client
        .rename_video()
        .id(plan.video_id.clone())
        .body(types::RenameVideo { title: "Renamed from Rust".parse().unwrap() })
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.title, "Renamed from Rust");
    let video = client.get_video().id(plan.video_id.clone()).send().await.unwrap().into_inner();
    assert_eq!((video.title.as_str(), video.size_bytes), ("Renamed from Rust", Some(bytes.len() as i64)));

    // Another organisation's video: the API's 404 as a typed error body.
    let outsider = videdit_client::with_token(&format!("{}/api/v1", app.base), &other).unwrap();
    match outsider.get_video().id(plan.video_id.clone()).send().await {
        Err(videdit_client::Error::ErrorResponse(e)) => {
            assert_eq!(e.status().as_u16(), 404);
            assert_eq!(e.code, "video_not_found");
        }
        other => panic!("expected a 404 error body, got {other:?}"),
    }
}
