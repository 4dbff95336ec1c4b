//! The application layer without HTTP: real PostgreSQL and local storage.
//! The races the issue names: a recipe edited while its render runs, a
//! re-analysis requested while one runs, idempotency claims that crash,
//! and uploads aborted while storage fails.

use std::sync::Arc;

use sqlx::PgPool;
use videdit_core::config::S3Config;
use videdit_core::db::{self, IdempotencyClaim, NewShort};
use videdit_core::recipe::ClipRecipe;
use videdit_core::short::ShortOutputs;
use videdit_core::storage::{LocalStorage, ObjectKey, S3Storage, Storage, UrlSigner, bytes_stream};
use videdit_core::{
    ErrorCode, OrgId, ProcessingStage, ShortId, SubScores, TimeRange, UserId, Video, VideoStatus, Word,
};
use videdit_service::recipes::{EditWord, RecipeEdit};
use videdit_service::renders::{self, Finished};
use videdit_service::stages::{self, Analyzed, Stage};
use videdit_service::uploads::{self, NewUploadRequest, UploadLimits};

async fn setup(pool: &PgPool) -> (OrgId, UserId, Arc<dyn Storage>, tempfile::TempDir) {
    db::migrate(pool).await.unwrap();
    videdit_queue::migrate(pool).await.unwrap();
    let user = db::upsert_user(pool, "user_svc", None).await.unwrap();
    let org = db::personal_org(pool, user).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let signer = UrlSigner::new(vec![3u8; 32], "http://127.0.0.1:1".parse().unwrap()).unwrap();
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::open(dir.path(), Some(signer)).await.unwrap());
    (org, user, storage, dir)
}

static UNLIMITED: std::sync::LazyLock<videdit_service::billing::Billing> =
    std::sync::LazyLock::new(videdit_service::billing::Billing::unlimited);

const LIMITS: UploadLimits = UploadLimits { max_upload_bytes: 1 << 40, multipart_threshold: 1024 };

/// A ready video with one short and its stored recipe.
async fn ready_video(pool: &PgPool, storage: &dyn Storage, org: OrgId, user: UserId) -> (Video, ShortId) {
    let req =
        NewUploadRequest { file_name: "talk.mp4".into(), content_type: "video/mp4".into(), size: 10, duration: None };
    let plan = uploads::create(pool, storage, &UNLIMITED, LIMITS, org, user, &req).await.unwrap();
    let video = db::set_video_status(pool, org, plan.video_id, &VideoStatus::Ready, Some(60.0), None).await.unwrap();
    let short = ShortId::new();
    let range = TimeRange::new(10.0, 40.0).unwrap();
    let mut tx = pool.begin().await.unwrap();
    let new = NewShort {
        id: short,
        rank: 1,
        score: 50.0,
        sub_scores: SubScores::default(),
        reason: "r".into(),
        title: "t".into(),
        range,
    };
    db::replace_shorts(&mut tx, org, video.id, &[new]).await.unwrap();
    tx.commit().await.unwrap();
    let recipe = ClipRecipe {
        version: 1,
        source: "src".into(),
        range,
        aspect: Default::default(),
        reframe: Default::default(),
        caption_style: Default::default(),
        words: vec![Word { text: "hi".into(), start: 10.0, end: 10.5, probability: 0.9 }],
        title: "t".into(),
    };
    let key = ObjectKey::short_recipe(org, video.id, short);
    storage.put_stream(&key, bytes_stream(serde_json::to_vec(&recipe).unwrap()), "application/json").await.unwrap();
    (video, short)
}

fn edit(title: &str) -> RecipeEdit {
    RecipeEdit {
        version: 1,
        start_seconds: 10.0,
        end_seconds: 40.0,
        aspect: "9:16".into(),
        reframe_mode: "fit".into(),
        crop_x: None,
        keyframes: None,
        zoom: None,
        top: None,
        bottom: None,
        caption_style: "bold".into(),
        words: vec![EditWord { text: "hello".into(), start: 10.0, end: 10.5 }],
        title: title.into(),
    }
}

fn outputs(video: &Video, short: ShortId) -> ShortOutputs {
    ShortOutputs {
        video: ObjectKey::short_video(video.org_id, video.id, short),
        thumbnail: ObjectKey::short_thumbnail(video.org_id, video.id, short),
        recipe: ObjectKey::short_recipe(video.org_id, video.id, short),
    }
}

#[sqlx::test(migrations = false)]
async fn a_recipe_edited_while_its_render_runs_is_rendered_again(pool: PgPool) {
    let (org, user, storage, _dir) = setup(&pool).await;
    let (video, short) = ready_video(&pool, storage.as_ref(), org, user).await;
    // The render starts from revision 0...
    let mut conn = pool.acquire().await.unwrap();
    let begun = renders::begin(&mut conn, &video, short).await.unwrap().unwrap();
    drop(conn);
    // ...the user edits while it runs...
    let saved = videdit_service::recipes::edit(&pool, storage.as_ref(), org, short, &edit("Edited")).await.unwrap();
    assert_eq!(saved.title, "Edited");
    // ...and the render that read the old recipe may not finish as if it were current.
    let mut tx = pool.begin().await.unwrap();
    assert_eq!(renders::finish(&mut tx, &video, &begun, &outputs(&video, short)).await.unwrap(), Finished::Stale);
    drop(tx);
    // Rendering again from the new revision finishes.
    let mut conn = pool.acquire().await.unwrap();
    let again = renders::begin(&mut conn, &video, short).await.unwrap().unwrap();
    drop(conn);
    assert_eq!(again.revision, begun.revision + 1);
    let mut tx = pool.begin().await.unwrap();
    assert!(matches!(
        renders::finish(&mut tx, &video, &again, &outputs(&video, short)).await.unwrap(),
        Finished::Done(_)
    ));
    tx.commit().await.unwrap();
    let events = videdit_service::events::list(&pool, org, None, &["short.ready".into()], 100).await.unwrap();
    assert_eq!(events.len(), 1, "one short.ready, for the render that counted");
    // The edit queued a render of its own (unique per short).
    let jobs = videdit_queue::admin::find_jobs(&pool, &serde_json::json!({"kind": "render"}), 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
}

#[sqlx::test(migrations = false)]
async fn the_framing_a_render_chose_is_kept_unless_the_recipe_was_edited_meanwhile(pool: PgPool) {
    use videdit_core::recipe::{Keyframe, Reframe};
    let (org, user, storage, _dir) = setup(&pool).await;
    let (video, short) = ready_video(&pool, storage.as_ref(), org, user).await;
    let key = ObjectKey::short_recipe(org, video.id, short);
    let framed = |stored: &ClipRecipe| ClipRecipe {
        reframe: Reframe::Track { keyframes: vec![Keyframe { t: 10.0, x: 0.3, y: 0.5, cut: false }] },
        ..stored.clone()
    };
    // A render that started before an edit: its framing is dropped with it.
    let mut conn = pool.acquire().await.unwrap();
    let begun = renders::begin(&mut conn, &video, short).await.unwrap().unwrap();
    drop(conn);
    let before = videdit_service::recipes::read(storage.as_ref(), &key).await.unwrap();
    let saved = videdit_service::recipes::edit(&pool, storage.as_ref(), org, short, &edit("Edited")).await.unwrap();
    let finish = async |begun: &renders::Begun, framed: &ClipRecipe| {
        let mut tx = pool.begin().await.unwrap();
        let out = outputs(&video, short);
        let f = renders::finish_framed(&mut tx, storage.as_ref(), &video, begun, &out, Some(framed)).await.unwrap();
        tx.commit().await.unwrap();
        f
    };
    let stale = finish(&begun, &framed(&before)).await;
    assert_eq!(stale, Finished::Stale);
    assert_eq!(videdit_service::recipes::read(storage.as_ref(), &key).await.unwrap(), saved, "the edit stands");
    // The render of the edited recipe keeps what it chose.
    let mut conn = pool.acquire().await.unwrap();
    let again = renders::begin(&mut conn, &video, short).await.unwrap().unwrap();
    drop(conn);
    let done = finish(&again, &framed(&saved)).await;
    assert!(matches!(done, Finished::Done(_)));
    let stored = videdit_service::recipes::read(storage.as_ref(), &key).await.unwrap();
    assert_eq!(stored, framed(&saved));
    assert_eq!(stored.title, "Edited");
}

#[sqlx::test(migrations = false)]
async fn a_reanalysis_requested_while_one_runs_is_not_lost(pool: PgPool) {
    let (org, user, storage, _dir) = setup(&pool).await;
    let (video, _) = ready_video(&pool, storage.as_ref(), org, user).await;
    let analyzing = VideoStatus::Processing { stage: ProcessingStage::Analyzing };
    let video = db::set_video_status(&pool, org, video.id, &analyzing, None, None).await.unwrap();
    // The running analysis read revision r; a new request with other options comes in.
    let (_, r) = stages::analysis_request(&pool, &UNLIMITED, org, video.id).await.unwrap();
    let options = serde_json::json!({"maxShorts": 2, "keywords": ["money"]});
    stages::start(&pool, &UNLIMITED, org, video.id, Stage::Analyze, &options).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    assert!(matches!(stages::analyzed(&mut tx, &video, r, &[]).await.unwrap(), Analyzed::Superseded));
    drop(tx);
    // The re-run sees the new options and finishes.
    let (newest, r2) = stages::analysis_request(&pool, &UNLIMITED, org, video.id).await.unwrap();
    assert_eq!((newest.max_shorts, newest.keywords.clone(), r2), (Some(2), vec!["money".to_owned()], r + 1));
    let mut tx = pool.begin().await.unwrap();
    assert!(matches!(stages::analyzed(&mut tx, &video, r2, &[]).await.unwrap(), Analyzed::Done { .. }));
    tx.commit().await.unwrap();
    assert_eq!(db::get_video(&pool, org, video.id).await.unwrap().status, VideoStatus::Ready);
    // Bad options are the caller's: refused at once, nothing recorded.
    let bad =
        stages::start(&pool, &UNLIMITED, org, video.id, Stage::Analyze, &serde_json::json!({"maxShorts": 0})).await;
    assert_eq!(bad.unwrap_err().code(), ErrorCode::InvalidRequest);
    assert_eq!(stages::analysis_request(&pool, &UNLIMITED, org, video.id).await.unwrap().1, r2);
}

#[sqlx::test(migrations = false)]
async fn idempotency_claims_expire_are_pruned_and_belong_to_one_user(pool: PgPool) {
    let (org, user, _storage, _dir) = setup(&pool).await;
    let other = db::upsert_user(&pool, "user_other", None).await.unwrap();
    assert_eq!(db::claim_idempotency(&pool, org, Some(user), "k", "h").await.unwrap(), IdempotencyClaim::Fresh);
    assert_eq!(db::claim_idempotency(&pool, org, Some(user), "k", "h").await.unwrap(), IdempotencyClaim::InProgress);
    // Another user of the organisation has keys of their own.
    assert_eq!(db::claim_idempotency(&pool, org, Some(other), "k", "h").await.unwrap(), IdempotencyClaim::Fresh);
    // The first request died without finishing: once its lease is over, the key is free again.
    sqlx::query("UPDATE videdit.idempotency_keys SET lease_until = now() - interval '1 second' WHERE user_id = $1")
        .bind(user)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(db::claim_idempotency(&pool, org, Some(user), "k", "h").await.unwrap(), IdempotencyClaim::Fresh);
    db::finish_idempotency(&pool, org, Some(user), "k", 201, &serde_json::json!({"a": 1})).await.unwrap();
    assert_eq!(
        db::claim_idempotency(&pool, org, Some(user), "k", "h").await.unwrap(),
        IdempotencyClaim::Replay { status: 201, body: serde_json::json!({"a": 1}) }
    );
    // Pruning forgets keys past the TTL and abandoned claims, and nothing else.
    sqlx::query("UPDATE videdit.idempotency_keys SET created_at = now() - interval '25 hours' WHERE user_id = $1")
        .bind(user)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(db::prune_idempotency(&pool).await.unwrap(), 1);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM videdit.idempotency_keys").fetch_one(&pool).await.unwrap();
    assert_eq!(left, 1, "the other user's claim, still leased, stays");
}

#[sqlx::test(migrations = false)]
async fn an_abort_whose_storage_fails_changes_nothing_and_can_be_retried(pool: PgPool) {
    let (org, user, storage, _dir) = setup(&pool).await;
    let req = NewUploadRequest {
        file_name: "big.mp4".into(),
        content_type: "video/mp4".into(),
        size: 10_000,
        duration: None,
    };
    let plan = uploads::create(&pool, storage.as_ref(), &UNLIMITED, LIMITS, org, user, &req).await.unwrap();
    assert!(plan.multipart.is_some());
    // Storage unreachable: the abort fails, and the upload and video are as they were.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let down = S3Storage::new(&S3Config {
        endpoint: Some(format!("http://{dead}")),
        bucket: "b".into(),
        access_key_id: "x".into(),
        secret_access_key: videdit_core::Secret::new("y".into()),
        region: "auto".into(),
        force_path_style: true,
    });
    let err = uploads::abort(&pool, &down, org, plan.upload_id).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageUnavailable, "{err}");
    assert_eq!(db::get_upload(&pool, org, plan.upload_id).await.unwrap().state, db::UploadState::Pending);
    assert_eq!(db::get_video(&pool, org, plan.video_id).await.unwrap().status, VideoStatus::Uploading);
    // With storage back, the same abort succeeds: parts freed, rows gone.
    uploads::abort(&pool, storage.as_ref(), org, plan.upload_id).await.unwrap();
    assert_eq!(db::get_video(&pool, org, plan.video_id).await.unwrap_err().code(), ErrorCode::VideoNotFound);
    let again = uploads::abort(&pool, storage.as_ref(), org, plan.upload_id).await.unwrap_err();
    assert_eq!(again.code(), ErrorCode::UploadNotFound);
}
