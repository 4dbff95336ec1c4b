//! Data in the state a finished pipeline leaves it, written straight to the
//! database and storage, for tests that need a ready video without waiting
//! for ffmpeg and Whisper.

use serde_json::{Value, json};
use sqlx::PgPool;
use videdit_core::db::{self, NewShort};
use videdit_core::recipe::{ClipRecipe, RECIPE_VERSION};
use videdit_core::short::ShortStatus;
use videdit_core::storage::{ObjectKey, bytes_stream};
use videdit_core::transcript::{Segment, Transcript, Word};
use videdit_core::{OrgId, ShortId, SubScores, TimeRange, VideoId, VideoStatus};

use crate::support::TestApp;

/// Seconds of the seeded video.
pub const DURATION: f64 = 60.0;

/// What [`ready_video`] made.
pub struct Ready {
    pub org: OrgId,
    pub video: VideoId,
    pub short: ShortId,
}

/// Words every 0.5 s across the short's range 10..40 s.
pub fn words() -> Vec<Word> {
    (0..60)
        .map(|i| {
            let start = 10.0 + f64::from(i) * 0.5;
            Word { text: format!("word{i}"), start, end: start + 0.4, probability: 0.9 }
        })
        .collect()
}

/// The recipe stored for the seeded short.
pub fn recipe(org: OrgId, video: VideoId) -> ClipRecipe {
    ClipRecipe {
        version: RECIPE_VERSION,
        source: ObjectKey::video_source(org, video, "talk.mp4").as_str().to_owned(),
        range: TimeRange::new(10.0, 40.0).unwrap(),
        aspect: Default::default(),
        reframe: Default::default(),
        caption_style: Default::default(),
        words: words(),
        title: "A seeded short".into(),
    }
}

/// The recipe as the API shows it.
pub fn recipe_body() -> Value {
    json!({
        "version": 1,
        "startSeconds": 10.0,
        "endSeconds": 40.0,
        "aspect": "9:16",
        "reframe": {"mode": "auto"},
        "captionStyle": "bold",
        "words": words().iter().map(|w| json!({"text": w.text, "start": w.start, "end": w.end})).collect::<Vec<_>>(),
        "title": "A seeded short",
    })
}

/// The organisation a video belongs to.
pub async fn org_of(pool: &PgPool, video: &str) -> OrgId {
    let org: uuid::Uuid = sqlx::query_scalar("SELECT org_id FROM videdit.videos WHERE id = $1::uuid")
        .bind(video)
        .fetch_one(pool)
        .await
        .unwrap();
    OrgId::from_uuid(org)
}

/// A video of the token's organisation, created through the API, then
/// brought to `ready` with a transcript and one ready short whose recipe
/// is in storage.
pub async fn ready_video(app: &TestApp, pool: &PgPool, token: &str) -> Ready {
    let (status, plan) = app
        .call(
            "POST",
            "/uploads",
            Some(token),
            Some(json!({"fileName": "talk.mp4", "contentType": "video/mp4", "size": 10})),
        )
        .await;
    assert_eq!(status, 201, "{plan}");
    let video_raw = plan["videoId"].as_str().unwrap();
    let org = org_of(pool, video_raw).await;
    let video: VideoId = video_raw.parse().unwrap();
    db::set_video_status(pool, org, video, &VideoStatus::Ready, Some(DURATION), None).await.unwrap();
    let transcript = Transcript {
        language: "en".into(),
        model: "tiny.en".into(),
        duration: DURATION,
        segments: vec![Segment { start: 10.0, end: 39.9, text: "seeded words".into(), words: words() }],
    };
    db::put_transcript(pool, org, video, &transcript).await.unwrap();
    let short = ShortId::new();
    let mut tx = pool.begin().await.unwrap();
    db::replace_shorts(
        &mut tx,
        org,
        video,
        &[NewShort {
            id: short,
            rank: 1,
            score: 80.0,
            sub_scores: SubScores::default(),
            reason: "seeded".into(),
            title: "A seeded short".into(),
            range: TimeRange::new(10.0, 40.0).unwrap(),
        }],
    )
    .await
    .unwrap();
    db::set_short_status(&mut *tx, org, short, ShortStatus::Ready).await.unwrap();
    tx.commit().await.unwrap();
    let json = serde_json::to_vec_pretty(&recipe(org, video)).unwrap();
    app.storage
        .put_stream(&ObjectKey::short_recipe(org, video, short), bytes_stream(json), "application/json")
        .await
        .unwrap();
    Ready { org, video, short }
}

/// A pending single-PUT upload whose bytes are already stored (so it can
/// be completed), on local storage.
pub async fn uploaded_but_not_completed(app: &TestApp, token: &str) -> (String, String) {
    let data = vec![7u8; 1000];
    let (status, plan) = app
        .call(
            "POST",
            "/uploads",
            Some(token),
            Some(json!({"fileName": "clip.mp4", "contentType": "video/mp4", "size": data.len()})),
        )
        .await;
    assert_eq!(status, 201, "{plan}");
    let mut put = app.client.put(plan["url"].as_str().unwrap());
    for h in plan["headers"].as_array().into_iter().flatten() {
        put = put.header(h["name"].as_str().unwrap(), h["value"].as_str().unwrap());
    }
    assert_eq!(put.body(data).send().await.unwrap().status(), 200);
    (plan["uploadId"].as_str().unwrap().to_owned(), plan["videoId"].as_str().unwrap().to_owned())
}
