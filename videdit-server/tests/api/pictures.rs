//! The organisation's audiogram background: set, replace, see and remove
//! it; what is not a picture we take is refused with its code; members,
//! other organisations and strangers cannot touch it.

use serde_json::Value;
use sha2::Digest as _;
use sqlx::PgPool;
use videdit_core::storage::ObjectKey;
use videdit_media::testing::generate;

use crate::support::{Options, StorageKind, TestApp, assert_error, spawn_app, token};

const PATH: &str = "/organization/audiogram-background";

/// A one-frame picture made by ffmpeg from a lavfi source.
pub async fn picture(dir: &std::path::Path, name: &str, source: &str) -> Vec<u8> {
    std::fs::read(generate(dir, name, &["-f", "lavfi", "-i", source, "-frames:v", "1"], 1.0).await).unwrap()
}

/// A small red PNG, made once.
pub async fn small_png() -> Vec<u8> {
    static PNG: tokio::sync::OnceCell<Vec<u8>> = tokio::sync::OnceCell::const_new();
    PNG.get_or_init(async || {
        let dir = tempfile::tempdir().unwrap();
        picture(dir.path(), "small.png", "color=c=red:s=64x64").await
    })
    .await
    .clone()
}

/// PUTs `bytes` as `content_type`; status and JSON body.
pub async fn put(app: &TestApp, t: &str, content_type: &str, bytes: Vec<u8>) -> (u16, Value) {
    let r = app
        .client
        .put(app.url(PATH))
        .bearer_auth(t)
        .header("content-type", content_type)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null))
}

async fn stored_key(pool: &PgPool) -> ObjectKey {
    let key: String = sqlx::query_scalar("SELECT object_key FROM videdit.org_images").fetch_one(pool).await.unwrap();
    ObjectKey::parse(key).unwrap()
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

#[sqlx::test(migrations = false)]
async fn an_admin_sets_replaces_and_removes_the_audiogram_background(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options { storage: StorageKind::S3, ..Options::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let admin = token("user_brand", Some(("org_brand", "org:admin")));
    assert_error(&app.call("GET", PATH, Some(&admin), None).await, 404, "image_not_found");

    let png = picture(dir.path(), "red.png", "color=c=0xd02020:s=360x640").await;
    // Sent as plain bytes, as generated clients do: the bytes say it is a PNG.
    let (status, set) = put(&app, &admin, "application/octet-stream", png.clone()).await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["contentType"], "image/png");
    assert_eq!((set["width"].as_i64(), set["height"].as_i64()), (Some(360), Some(640)));
    assert_eq!(set["sizeBytes"].as_u64(), Some(png.len() as u64));
    assert_eq!(set["sha256"], sha(&png));
    // The preview URL serves exactly the bytes sent.
    let (status, got) = app.call("GET", PATH, Some(&admin), None).await;
    assert_eq!(status, 200, "{got}");
    let served = app.client.get(got["url"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(sha(&served), sha(&png));
    let first = stored_key(&pool).await;

    // Replaced by a JPEG: a new object, and the old one is gone.
    let jpeg = picture(dir.path(), "blue.jpg", "color=c=0x2040d0:s=1080x1920").await;
    let (status, set) = put(&app, &admin, "image/jpeg", jpeg.clone()).await;
    assert_eq!(status, 200, "{set}");
    assert_eq!((set["contentType"].as_str(), set["width"].as_i64()), (Some("image/jpeg"), Some(1080)));
    let second = stored_key(&pool).await;
    assert_ne!(first, second);
    assert!(app.storage.head(&first).await.unwrap().is_none(), "the replaced picture is deleted");
    assert!(app.storage.head(&second).await.unwrap().is_some());
    // The same picture again is a new object too (no two rows ever share one).
    let (_, again) = put(&app, &admin, "image/jpeg", jpeg.clone()).await;
    assert_eq!(again["sha256"], sha(&jpeg));
    let third = stored_key(&pool).await;
    assert_ne!(third, second);
    assert!(app.storage.head(&second).await.unwrap().is_none());
    assert!(app.storage.head(&third).await.unwrap().is_some());
    let second = third;

    // Removed: a 204, then not found, and the object is gone.
    let r = app.client.delete(app.url(PATH)).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_error(&app.call("GET", PATH, Some(&admin), None).await, 404, "image_not_found");
    assert_error(&app.call("DELETE", PATH, Some(&admin), None).await, 404, "image_not_found");
    assert!(app.storage.head(&second).await.unwrap().is_none());
}

/// Changes racing each other leave one picture whose object exists, and no
/// object that no row names.
#[sqlx::test(migrations = false)]
async fn racing_changes_leave_one_picture_and_its_object(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let admin = token("user_brand", Some(("org_brand", "org:admin")));
    let a = picture(dir.path(), "a.png", "color=c=red:s=64x64").await;
    let b = picture(dir.path(), "b.png", "color=c=blue:s=64x64").await;
    for round in 0..4 {
        let (x, y, z) =
            tokio::join!(put(&app, &admin, "image/png", a.clone()), put(&app, &admin, "image/png", b.clone()), async {
                if round % 2 == 1 { app.call("DELETE", PATH, Some(&admin), None).await } else { (204, Value::Null) }
            },);
        assert_eq!((x.0, y.0), (200, 200));
        assert!([204, 404].contains(&z.0), "{z:?}");
        let keys: Vec<String> =
            sqlx::query_scalar("SELECT object_key FROM videdit.org_images").fetch_all(&pool).await.unwrap();
        let stored: Vec<std::path::PathBuf> = walk(&app.storage_dir().join("objects"));
        let pictures: Vec<&std::path::PathBuf> =
            stored.iter().filter(|p| p.to_string_lossy().contains("audiogram-background")).collect();
        match keys.as_slice() {
            [key] => {
                assert!(app.storage.head(&ObjectKey::parse(key.clone()).unwrap()).await.unwrap().is_some());
                assert_eq!(pictures.len(), 1, "round {round}: one object, the row's: {pictures:?}");
            }
            [] => assert!(pictures.is_empty(), "round {round}: no row, no object: {pictures:?}"),
            more => panic!("one row per organisation and kind: {more:?}"),
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[sqlx::test(migrations = false)]
async fn what_is_not_a_picture_we_take_is_refused_with_its_code(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let admin = token("user_brand", Some(("org_brand", "org:admin")));
    let png = picture(dir.path(), "p.png", "color=c=red:s=64x64").await;
    let gif = picture(dir.path(), "p.gif", "color=c=red:s=64x64").await;
    let tiny = picture(dir.path(), "t.png", "color=c=red:s=8x8").await;

    assert_error(&put(&app, &admin, "image/png", b"not a picture at all".to_vec()).await, 422, "invalid_image");
    assert_error(&put(&app, &admin, "image/png", gif).await, 422, "invalid_image");
    assert_error(&put(&app, &admin, "image/png", png[..20].to_vec()).await, 422, "invalid_image");
    assert_error(&put(&app, &admin, "image/png", tiny).await, 422, "invalid_image");
    assert_error(&put(&app, &admin, "image/jpeg", png.clone()).await, 400, "content_type_mismatch");
    // A PNG header that claims 9000 × 9000 pixels (a decompression bomb).
    let mut bomb = png.clone();
    bomb[16..20].copy_from_slice(&9000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&9000u32.to_be_bytes());
    assert_error(&put(&app, &admin, "image/png", bomb).await, 422, "invalid_image");
    // Over 8 MiB, declared or not.
    let big = [png.clone(), vec![0; 8 * 1024 * 1024]].concat();
    assert_error(&put(&app, &admin, "image/png", big.clone()).await, 413, "request_too_large");
    let chunked = reqwest::Body::wrap_stream(futures_util::stream::iter(
        big.chunks(1 << 20).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>(),
    ));
    let r = app
        .client
        .put(app.url(PATH))
        .bearer_auth(&admin)
        .header("content-type", "image/png")
        .body(chunked)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    // Another media type is refused, even over a real picture.
    assert_error(&put(&app, &admin, "text/plain", png.clone()).await, 422, "invalid_image");
    // Nothing was stored by any of these.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM videdit.org_images").fetch_one(&pool).await.unwrap();
    assert_eq!(rows, 0);
    assert_error(&app.call("GET", PATH, Some(&admin), None).await, 404, "image_not_found");
}

#[sqlx::test(migrations = false)]
async fn members_other_organisations_and_strangers_cannot_touch_it(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let admin = token("user_a", Some(("org_alpha", "org:admin")));
    let member = token("user_m", Some(("org_alpha", "org:member")));
    let mallory = token("user_x", Some(("org_mallory", "org:admin")));
    let png = picture(dir.path(), "p.png", "color=c=red:s=64x64").await;
    assert_eq!(put(&app, &admin, "image/png", png.clone()).await.0, 200);

    // A member sees it but may not change it.
    assert_eq!(app.call("GET", PATH, Some(&member), None).await.0, 200);
    assert_error(&put(&app, &member, "image/png", png.clone()).await, 403, "forbidden");
    assert_error(&app.call("DELETE", PATH, Some(&member), None).await, 403, "forbidden");
    // Another organisation has its own (none), and removing "it" removes nothing of alpha's.
    assert_error(&app.call("GET", PATH, Some(&mallory), None).await, 404, "image_not_found");
    assert_error(&app.call("DELETE", PATH, Some(&mallory), None).await, 404, "image_not_found");
    let other = picture(dir.path(), "o.png", "color=c=green:s=64x64").await;
    assert_eq!(put(&app, &mallory, "image/png", other.clone()).await.0, 200);
    let (_, alpha) = app.call("GET", PATH, Some(&admin), None).await;
    assert_eq!(alpha["sha256"], sha(&png), "{alpha}");
    // No token, no picture.
    assert_error(&app.call("GET", PATH, None, None).await, 401, "unauthenticated");
    let r = app.client.put(app.url(PATH)).header("content-type", "image/png").body(png).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
}
