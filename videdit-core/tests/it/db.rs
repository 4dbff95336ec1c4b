//! The repository against real PostgreSQL: migrations and tenant isolation.

use sqlx::PgPool;
use time::OffsetDateTime;
use videdit_core::db::{self, AssetKind, NewShort, NewUpload, NewVideo, Role, UploadState};
use videdit_core::storage::ObjectKey;
use videdit_core::{
    Error, ErrorCode, OrgId, Segment, ShortId, ShortOutputs, ShortStatus, SubScores, TimeRange, Transcript, UploadId,
    VideoId, VideoStatus, Word,
};

static APP_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./tests/it/app_migrations");

/// The migrations the crate ships (each applied exactly once).
fn shipped() -> i64 {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "sql"))
        .count() as i64
}

async fn applied(pool: &PgPool, schema: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {schema}._sqlx_migrations")).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrations = false)]
async fn migrations_apply_once_and_coexist_with_the_apps_own(pool: PgPool) {
    // The app first, then ours twice, then the app again: all no-ops after the first.
    APP_MIGRATOR.run(&pool).await.unwrap();
    db::migrate(&pool).await.unwrap();
    db::migrate(&pool).await.unwrap();
    APP_MIGRATOR.run(&pool).await.unwrap();
    assert_eq!(applied(&pool, "videdit").await, shipped());
    assert_eq!(applied(&pool, "public").await, 1);
    // Our pool's connections keep the default search_path.
    let path: String = sqlx::query_scalar("SHOW search_path").fetch_one(&pool).await.unwrap();
    assert!(path.contains("public"), "{path}");
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'videdit' AND table_name IN
         ('organizations','users','memberships','videos','media_assets','transcripts','shorts','uploads')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 8);
}

#[sqlx::test(migrations = false)]
async fn concurrent_migrations_are_serialised(pool: PgPool) {
    let (a, b) = tokio::join!(db::migrate(&pool), db::migrate(&pool));
    a.unwrap();
    b.unwrap();
    assert_eq!(applied(&pool, "videdit").await, shipped());
}

struct Tenant {
    org: OrgId,
    video: VideoId,
    short: ShortId,
    upload: UploadId,
}

fn transcript() -> Transcript {
    let words = vec![
        Word { text: "Hello".into(), start: 0.0, end: 0.4, probability: 0.9 },
        Word { text: "world.".into(), start: 0.5, end: 0.9, probability: 0.8 },
    ];
    Transcript {
        language: "en".into(),
        model: "tiny.en".into(),
        duration: 1.0,
        segments: vec![Segment { start: 0.0, end: 0.9, text: "Hello world.".into(), words }],
    }
}

async fn tenant(pool: &PgPool, name: &str) -> Tenant {
    let user = db::upsert_user(pool, &format!("user_{name}"), Some("a@example.com")).await.unwrap();
    let org = db::upsert_org(pool, &format!("org_{name}"), name, Some(name)).await.unwrap();
    db::upsert_membership(pool, org, user, Role::Admin).await.unwrap();
    let video = VideoId::new();
    let key = ObjectKey::video_source(org, video, "talk.mp4");
    db::insert_video(
        pool,
        org,
        &NewVideo {
            id: video,
            title: format!("{name}'s talk"),
            status: VideoStatus::Uploading,
            source_key: Some(key.clone()),
            content_type: Some("video/mp4".into()),
            size_bytes: Some(1000),
            created_by: Some(user),
        },
    )
    .await
    .unwrap();
    let upload = UploadId::new();
    db::insert_upload(
        pool,
        org,
        &NewUpload {
            id: upload,
            video_id: video,
            key,
            file_name: "talk.mp4".into(),
            content_type: "video/mp4".into(),
            expected_size: 1000,
            multipart: None,
            expires_at: OffsetDateTime::now_utc() + time::Duration::hours(1),
        },
    )
    .await
    .unwrap();
    db::put_transcript(pool, org, video, &transcript()).await.unwrap();
    let short = ShortId::new();
    let mut tx = pool.begin().await.unwrap();
    db::replace_shorts(&mut tx, org, video, &[new_short(short, 1)]).await.unwrap();
    tx.commit().await.unwrap();
    Tenant { org, video, short, upload }
}

fn new_short(id: ShortId, rank: i32) -> NewShort {
    NewShort {
        id,
        rank,
        score: 87.5,
        sub_scores: SubScores { hook: 0.9, completeness: 1.0, ..SubScores::default() },
        reason: "Opens with a question".into(),
        title: "Why?".into(),
        range: TimeRange::new(1.0, 31.0).unwrap(),
    }
}

fn assert_not_found(r: Result<impl std::fmt::Debug, Error>, code: ErrorCode) {
    match r {
        Err(e) => assert_eq!(e.code(), code, "{e}"),
        Ok(v) => panic!("expected {code}, got {v:?}"),
    }
}

#[sqlx::test(migrations = false)]
async fn the_repository_round_trips(pool: PgPool) {
    db::migrate(&pool).await.unwrap();
    let a = tenant(&pool, "acme").await;
    let v = db::get_video(&pool, a.org, a.video).await.unwrap();
    assert_eq!(v.title, "acme's talk");
    assert_eq!(v.status, VideoStatus::Uploading);

    let v = db::set_video_status(
        &pool,
        a.org,
        a.video,
        &VideoStatus::Failed { reason: "no audio".into() },
        Some(12.5),
        None,
    )
    .await
    .unwrap();
    assert_eq!(v.status, VideoStatus::Failed { reason: "no audio".into() });
    assert_eq!(v.duration_seconds, Some(12.5));
    assert_eq!(v.size_bytes, Some(1000));
    assert!(matches!(db::rename_video(&pool, a.org, a.video, "  ").await, Err(Error::InvalidRequest(_))));
    assert_eq!(db::rename_video(&pool, a.org, a.video, " New name ").await.unwrap().title, "New name");

    let page = db::list_videos(&pool, a.org, None, 10).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].shorts_count, 1);
    assert!(page.items[0].has_transcription);
    assert_eq!(page.next_cursor, None);

    assert_eq!(db::get_transcript(&pool, a.org, a.video).await.unwrap(), transcript());
    let shorts = db::list_shorts(&pool, a.org, a.video).await.unwrap();
    assert_eq!(shorts.len(), 1);
    assert_eq!(shorts[0].status, ShortStatus::Pending);
    assert_eq!(shorts[0].sub_scores.hook, 0.9);
    let outputs = ShortOutputs {
        video: ObjectKey::short_video(a.org, a.video, a.short),
        thumbnail: ObjectKey::short_thumbnail(a.org, a.video, a.short),
        recipe: ObjectKey::short_recipe(a.org, a.video, a.short),
    };
    let s = db::set_short_outputs(&pool, a.org, a.short, &outputs).await.unwrap();
    assert_eq!((s.status, s.outputs), (ShortStatus::Ready, Some(outputs)));

    let up = db::finish_upload(&pool, a.org, a.upload, UploadState::Completed).await.unwrap();
    assert_eq!(up.state, UploadState::Completed);
    assert!(matches!(
        db::finish_upload(&pool, a.org, a.upload, UploadState::Aborted).await,
        Err(Error::InvalidState(_))
    ));

    // Personal workspace: one per user, stable.
    let u = db::upsert_user(&pool, "user_solo", None).await.unwrap();
    let p1 = db::personal_org(&pool, u).await.unwrap();
    assert_eq!(db::personal_org(&pool, u).await.unwrap(), p1);
    assert_eq!(db::upsert_user(&pool, "user_solo", Some("s@example.com")).await.unwrap(), u);

    db::delete_video(&pool, a.org, a.video).await.unwrap();
    assert_not_found(db::get_video(&pool, a.org, a.video).await, ErrorCode::VideoNotFound);
    assert!(db::list_shorts(&pool, a.org, a.video).await.unwrap().is_empty(), "shorts cascade");
}

#[sqlx::test(migrations = false)]
async fn pagination_walks_every_video_once(pool: PgPool) {
    db::migrate(&pool).await.unwrap();
    let org = db::upsert_org(&pool, "org_pages", "Pages", None).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..7 {
        let id = VideoId::new();
        ids.push(id);
        let new = NewVideo {
            id,
            title: format!("v{i}"),
            status: VideoStatus::Uploaded,
            source_key: None,
            content_type: None,
            size_bytes: None,
            created_by: None,
        };
        db::insert_video(&pool, org, &new).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = db::list_videos(&pool, org, cursor, 3).await.unwrap();
        seen.extend(page.items.iter().map(|s| s.video.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once");
}

/// Every repository function, called with organisation B on A's ids, finds
/// nothing and changes nothing.
#[sqlx::test(migrations = false)]
async fn tenants_cannot_reach_each_other(pool: PgPool) {
    db::migrate(&pool).await.unwrap();
    let a = tenant(&pool, "alpha").await;
    let b = tenant(&pool, "beta").await;
    let key = ObjectKey::video_source(b.org, a.video, "x.mp4");

    assert_not_found(db::get_video(&pool, b.org, a.video).await, ErrorCode::VideoNotFound);
    assert_not_found(db::lock_video(&pool, b.org, a.video).await, ErrorCode::VideoNotFound);
    assert_not_found(db::rename_video(&pool, b.org, a.video, "pwned").await, ErrorCode::VideoNotFound);
    assert_not_found(
        db::set_video_status(&pool, b.org, a.video, &VideoStatus::Ready, None, None).await,
        ErrorCode::VideoNotFound,
    );
    assert_not_found(
        db::put_asset(&pool, b.org, a.video, AssetKind::Source, &key, None, None).await,
        ErrorCode::VideoNotFound,
    );
    assert_not_found(db::put_transcript(&pool, b.org, a.video, &transcript()).await, ErrorCode::VideoNotFound);
    assert_not_found(db::get_transcript(&pool, b.org, a.video).await, ErrorCode::TranscriptNotFound);
    assert!(!db::has_transcript(&pool, b.org, a.video).await.unwrap());
    let mut tx = pool.begin().await.unwrap();
    assert_not_found(
        db::replace_shorts(&mut tx, b.org, a.video, &[new_short(ShortId::new(), 1)]).await,
        ErrorCode::VideoNotFound,
    );
    tx.rollback().await.unwrap();
    assert!(db::list_shorts(&pool, b.org, a.video).await.unwrap().is_empty());
    assert_not_found(db::get_short(&pool, b.org, a.short).await, ErrorCode::ShortNotFound);
    assert_not_found(db::set_short_status(&pool, b.org, a.short, ShortStatus::Failed).await, ErrorCode::ShortNotFound);
    let outputs = ShortOutputs { video: key.clone(), thumbnail: key.clone(), recipe: key.clone() };
    assert_not_found(db::set_short_outputs(&pool, b.org, a.short, &outputs).await, ErrorCode::ShortNotFound);
    assert_not_found(db::get_upload(&pool, b.org, a.upload).await, ErrorCode::UploadNotFound);
    assert!(matches!(
        db::finish_upload(&pool, b.org, a.upload, UploadState::Aborted).await,
        Err(Error::InvalidState(_))
    ));
    let new_upload = NewUpload {
        id: UploadId::new(),
        video_id: a.video,
        key: key.clone(),
        file_name: "x.mp4".into(),
        content_type: "video/mp4".into(),
        expected_size: 1,
        multipart: None,
        expires_at: OffsetDateTime::now_utc(),
    };
    assert_not_found(db::insert_upload(&pool, b.org, &new_upload).await, ErrorCode::VideoNotFound);
    assert_not_found(db::delete_video(&pool, b.org, a.video).await, ErrorCode::VideoNotFound);
    let listed = db::list_videos(&pool, b.org, None, 100).await.unwrap();
    assert!(listed.items.iter().all(|s| s.video.org_id == b.org && s.video.id != a.video));
    assert_eq!(listed.items.len(), 1);
    // Membership of one organisation says nothing about another.
    let user_a = db::upsert_user(&pool, "user_alpha", None).await.unwrap();
    assert!(db::find_membership(&pool, b.org, user_a).await.unwrap().is_none());
    assert_eq!(db::find_membership(&pool, a.org, user_a).await.unwrap().unwrap().role, Role::Admin);

    // The database itself refuses a row that links into another organisation.
    let err = sqlx::query(
        "INSERT INTO videdit.shorts (id, org_id, video_id, rank, score, sub_scores, reason, title, start_seconds, end_seconds, status)
         VALUES ($1, $2, $3, 1, 50, '{}', 'r', 't', 0, 1, 'pending')",
    )
    .bind(ShortId::new())
    .bind(b.org)
    .bind(a.video)
    .execute(&pool)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("foreign key"), "{err}");

    // A's data is untouched.
    let v = db::get_video(&pool, a.org, a.video).await.unwrap();
    assert_eq!((v.title.as_str(), &v.status), ("alpha's talk", &VideoStatus::Uploading));
    assert_eq!(db::get_short(&pool, a.org, a.short).await.unwrap().status, ShortStatus::Pending);
    assert_eq!(db::get_upload(&pool, a.org, a.upload).await.unwrap().state, UploadState::Pending);
    assert_eq!(db::get_transcript(&pool, a.org, a.video).await.unwrap(), transcript());
}

#[sqlx::test(migrations = false)]
async fn expired_uploads_are_found_for_cleanup(pool: PgPool) {
    db::migrate(&pool).await.unwrap();
    let a = tenant(&pool, "gamma").await;
    let later = OffsetDateTime::now_utc() + time::Duration::hours(2);
    let found = db::expired_uploads(&pool, later, 10).await.unwrap();
    assert_eq!(found.iter().map(|u| u.id).collect::<Vec<_>>(), vec![a.upload]);
    db::finish_upload(&pool, found[0].org_id, found[0].id, UploadState::Aborted).await.unwrap();
    assert!(db::expired_uploads(&pool, later, 10).await.unwrap().is_empty());
    assert!(db::expired_uploads(&pool, OffsetDateTime::now_utc(), 10).await.unwrap().is_empty());
}

#[sqlx::test(migrations = false)]
async fn transitions_follow_the_state_machine_under_a_lock(pool: PgPool) {
    db::migrate(&pool).await.unwrap();
    let a = tenant(&pool, "delta").await;
    let mut tx = pool.begin().await.unwrap();
    let err = db::transition_video(&mut tx, a.org, a.video, &VideoStatus::Ready, None).await.unwrap_err();
    assert!(matches!(&err, Error::InvalidState(m) if m.contains("from uploading to ready")), "{err}");
    tx.rollback().await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    db::transition_video(&mut tx, a.org, a.video, &VideoStatus::Uploaded, None).await.unwrap();
    let stage = videdit_core::ProcessingStage::Ingesting;
    let v =
        db::transition_video(&mut tx, a.org, a.video, &VideoStatus::Processing { stage }, Some(61.5)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(v.status, VideoStatus::Processing { stage });
    assert_eq!(v.duration_seconds, Some(61.5));
    // Another organisation cannot move it.
    let b = tenant(&pool, "epsilon").await;
    let mut tx = pool.begin().await.unwrap();
    assert_not_found(
        db::transition_video(&mut tx, b.org, a.video, &VideoStatus::Ready, None).await,
        ErrorCode::VideoNotFound,
    );
}
