//! Recipe editing: every refusal with its exact code and message, the
//! video-not-ready conflict, and other organisations' recipes.

use serde_json::{Value, json};
use sqlx::PgPool;
use videdit_core::VideoStatus;
use videdit_core::db;

use crate::seed::{self, recipe_body};
use crate::support::{Options, spawn_app, token};

fn with(patch: impl FnOnce(&mut Value)) -> Value {
    let mut body = recipe_body();
    patch(&mut body);
    body
}

#[sqlx::test(migrations = false)]
async fn every_refusal_of_an_edited_recipe_has_its_code_and_message(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let t = token("user_editor", None);
    let ready = seed::ready_video(&app, &pool, &t).await;
    let path = format!("/shorts/{}/recipe", ready.short);

    let long_text = "x".repeat(101);
    let long_title = "t".repeat(201);
    let too_many: Vec<Value> =
        (0..2001).map(|i| json!({"text": "w", "start": f64::from(i) * 0.01, "end": f64::from(i) * 0.01})).collect();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("version 0", with(|b| b["version"] = json!(0)), "recipe version 0 is not supported (1..=1)"),
        ("version 2", with(|b| b["version"] = json!(2)), "recipe version 2 is not supported (1..=1)"),
        (
            "reversed range",
            with(|b| {
                b["startSeconds"] = json!(30.0);
                b["endSeconds"] = json!(20.0);
            }),
            "startSeconds/endSeconds: invalid time range 30..20: need 0 <= start < end, both finite",
        ),
        (
            "negative start",
            with(|b| b["startSeconds"] = json!(-1.0)),
            "startSeconds/endSeconds: invalid time range -1..40: need 0 <= start < end, both finite",
        ),
        ("under a second", with(|b| b["endSeconds"] = json!(10.5)), "a short lasts 1 to 180 s, got 0.50 s"),
        (
            "over 180 s",
            with(|b| {
                b["startSeconds"] = json!(0.0);
                b["endSeconds"] = json!(180.5);
            }),
            "a short lasts 1 to 180 s, got 180.50 s",
        ),
        (
            "past the end of the video",
            with(|b| b["endSeconds"] = json!(70.0)),
            "endSeconds 70.00 is past the end of the 60.00 s video",
        ),
        ("aspect", with(|b| b["aspect"] = json!("3:4")), "aspect \"3:4\" is not one of 9:16, 1:1, 4:5, 16:9"),
        (
            "crop x out of range",
            with(|b| b["reframe"] = json!({"mode": "crop", "x": 1.5})),
            "reframe.x is a fraction of the width, 0..1",
        ),
        (
            "unknown reframe mode",
            with(|b| b["reframe"] = json!({"mode": "zoom"})),
            "parse request payload error: Expected input type \"RecipeReframe\", found {\"mode\":\"zoom\"}. \
             (occurred while parsing \"RecipeBody\")",
        ),
        (
            "a camera path out of order",
            with(|b| {
                b["reframe"] = json!({"mode": "track", "keyframes": [{"t": 12.0, "x": 0.5}, {"t": 11.0, "x": 0.4}]})
            }),
            "reframe.keyframes must be in time order",
        ),
        (
            "a split zoomed too far",
            with(|b| b["reframe"] = json!({"mode": "split", "zoom": 0.1})),
            "reframe.zoom is 0.25..1",
        ),
        (
            "caption style",
            with(|b| b["captionStyle"] = json!("comic")),
            "captionStyle \"comic\" is not one of bold, highlight, boxed, none",
        ),
        ("too many words", with(|b| b["words"] = json!(too_many)), "at most 2000 words"),
        (
            "word ends before it starts",
            with(|b| b["words"][3] = json!({"text": "w", "start": 12.0, "end": 11.0})),
            "word 3 needs 0 <= start <= end and at most 100 printable characters",
        ),
        (
            "word before zero",
            with(|b| b["words"][0] = json!({"text": "w", "start": -0.5, "end": 10.0})),
            "word 0 needs 0 <= start <= end and at most 100 printable characters",
        ),
        (
            "word too long",
            with(|b| b["words"][5]["text"] = json!(long_text)),
            "word 5 needs 0 <= start <= end and at most 100 printable characters",
        ),
        (
            "control character in a word",
            with(|b| b["words"][7]["text"] = json!("bad\u{7}word")),
            "word 7 needs 0 <= start <= end and at most 100 printable characters",
        ),
        (
            "words out of order",
            with(|b| b["words"][2] = json!({"text": "early", "start": 10.1, "end": 10.2})),
            "words must be in time order",
        ),
        (
            "bidirectional override in a word",
            with(|b| b["words"][4]["text"] = json!("gnp\u{202E}exe")),
            "word 4 needs 0 <= start <= end and at most 100 printable characters",
        ),
        ("title too long", with(|b| b["title"] = json!(long_title)), "a title has at most 200 characters"),
        (
            "control character in the title",
            with(|b| b["title"] = json!("line\nbreak")),
            "the title must not contain control or bidirectional-override characters (U+000A)",
        ),
    ];
    for (name, body, message) in cases {
        let got = app.call("PUT", &path, Some(&t), Some(body)).await;
        assert_eq!(got.0, 400, "{name}: {}", got.1);
        assert_eq!(got.1, json!({"code": "invalid_request", "message": message}), "{name}");
    }
    // None of them changed the stored recipe or queued a render.
    let (status, stored) = app.call("GET", &path, Some(&t), None).await;
    assert_eq!(status, 200);
    assert_eq!(stored, recipe_body());
    let jobs = app.call("GET", &format!("/videos/{}/jobs", ready.video), Some(&t), None).await;
    assert_eq!(jobs.1, json!([]), "no render was queued by a refused edit");

    // A good edit: trimmed, restyled, a word fixed, retitled.
    let edited = with(|b| {
        b["startSeconds"] = json!(12.0);
        b["endSeconds"] = json!(35.5);
        b["aspect"] = json!("1:1");
        b["reframe"] = json!({"mode": "crop", "x": 0.25});
        b["captionStyle"] = json!("boxed");
        b["words"][4]["text"] = json!("fixed");
        b["title"] = json!("  Trimmed  ");
    });
    let (status, saved) = app.call("PUT", &path, Some(&t), Some(edited.clone())).await;
    assert_eq!(status, 200, "{saved}");
    let mut expected = edited;
    expected["title"] = json!("Trimmed");
    assert_eq!(saved, expected);
    assert_eq!(app.call("GET", &path, Some(&t), None).await.1, expected);
    let jobs = app.call("GET", &format!("/videos/{}/jobs", ready.video), Some(&t), None).await;
    let kinds: Vec<&str> = jobs.1.as_array().unwrap().iter().map(|j| j["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["render"]);
}

#[sqlx::test(migrations = false)]
async fn a_recipe_is_edited_only_once_the_video_is_ready(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let t = token("user_editor", None);
    let ready = seed::ready_video(&app, &pool, &t).await;
    let analyzing = VideoStatus::Processing { stage: videdit_core::ProcessingStage::Analyzing };
    db::set_video_status(&pool, ready.org, ready.video, &analyzing, None, None).await.unwrap();
    let got = app.call("PUT", &format!("/shorts/{}/recipe", ready.short), Some(&t), Some(recipe_body())).await;
    assert_eq!(got.0, 409, "{}", got.1);
    assert_eq!(
        got.1,
        json!({
            "code": "invalid_state",
            "message": format!("video {} is processing; edit recipes once it is ready", ready.video),
        })
    );
}

#[sqlx::test(migrations = false)]
async fn another_organisations_recipe_is_not_found(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let alice = token("user_alice", Some(("org_alpha", "org:admin")));
    let mallory = token("user_mallory", Some(("org_mallory", "org:admin")));
    let ready = seed::ready_video(&app, &pool, &alice).await;
    let path = format!("/shorts/{}/recipe", ready.short);
    let expected = json!({"code": "short_not_found", "message": format!("short {} not found", ready.short)});
    let got = app.call("GET", &path, Some(&mallory), None).await;
    assert_eq!((got.0, &got.1), (404, &expected));
    let mut evil = recipe_body();
    evil["title"] = json!("pwned");
    let got = app.call("PUT", &path, Some(&mallory), Some(evil)).await;
    assert_eq!((got.0, &got.1), (404, &expected));
    assert_eq!(app.call("GET", &path, Some(&alice), None).await.1, recipe_body(), "unchanged for its owner");
}
