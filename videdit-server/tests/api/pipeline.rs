//! The whole product through the API: upload a generated talk, a real
//! worker (real ffmpeg, the imported tiny.en model) ingests, transcribes,
//! analyses and renders it, and the shorts come back as downloadable MP4s.
//! Bad uploads end as failed videos with the reason, and dead jobs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use videdit_media::process::{Ffmpeg, file_arg};
use videdit_media::testing::{PRACTICE, SLEEP, TalkSpec, make_talk, small_talk};
use videdit_server::handlers::{self as worker, MediaDeps};

use crate::support::{Options, StorageKind, TestApp, assert_error, spawn_app, token};

fn media_deps() -> MediaDeps {
    let model = videdit_media::testing::tiny_en_test_model();
    MediaDeps {
        ffmpeg: Ffmpeg::default(),
        transcriber: videdit_media::transcribe::Transcriber::load(&model, "tiny.en").unwrap(),
        model_name: "tiny.en".into(),
        limits: Default::default(),
        transcribe: Default::default(),
        render: Default::default(),
        work_dir: std::env::temp_dir().join("videdit-test-work"),
        billing: Arc::new(videdit_service::billing::Billing::unlimited()),
    }
}

/// Starts a worker with every handler; stops it when dropped.
fn start_worker(pool: &PgPool, app: &TestApp) -> tokio::task::JoinHandle<()> {
    let media = MediaDeps { billing: app.billing.clone(), ..media_deps() };
    let deps = app.worker_deps(Some(Arc::new(media)));
    let config = videdit_queue::WorkerConfig {
        queues: vec!["media".into(), "maintenance".into(), "webhooks".into(), "publish".into()],
        concurrency: 2,
        poll_interval: Duration::from_millis(200),
        ..Default::default()
    };
    let w = worker::build(pool.clone(), config, deps).unwrap();
    tokio::spawn(async move {
        w.run(CancellationToken::new(), Duration::from_secs(1)).await.unwrap();
    })
}

/// Uploads `data` through the API (one presigned PUT, or presigned parts
/// when the plan is multipart) and completes the upload.
async fn upload(app: &TestApp, t: &str, name: &str, data: Vec<u8>) -> String {
    let content_type = if name.ends_with(".mp3") { "audio/mpeg" } else { "video/mp4" };
    let (status, plan) = app
        .call(
            "POST",
            "/uploads",
            Some(t),
            Some(json!({"fileName": name, "contentType": content_type, "size": data.len()})),
        )
        .await;
    assert_eq!(status, 201, "{plan}");
    let upload = plan["uploadId"].as_str().unwrap();
    let body = if plan["method"] == "multipart" {
        let part_size = plan["partSize"].as_u64().unwrap() as usize;
        let mut done = vec![];
        for (i, p) in plan["parts"].as_array().unwrap().iter().enumerate() {
            let chunk = data[i * part_size..((i + 1) * part_size).min(data.len())].to_vec();
            let r = app.client.put(p["url"].as_str().unwrap()).body(chunk).send().await.unwrap();
            assert!(r.status().is_success(), "{r:?}");
            let etag = r.headers()["etag"].to_str().unwrap().to_owned();
            done.push(json!({"partNumber": p["partNumber"], "etag": etag}));
        }
        json!({"parts": done})
    } else {
        let mut r = app.client.put(plan["url"].as_str().unwrap());
        for h in plan["headers"].as_array().into_iter().flatten() {
            r = r.header(h["name"].as_str().unwrap(), h["value"].as_str().unwrap());
        }
        assert!(r.body(data).send().await.unwrap().status().is_success());
        json!({})
    };
    let (status, v) = app.call("POST", &format!("/uploads/{upload}/complete"), Some(t), Some(body)).await;
    assert_eq!(status, 200, "{v}");
    plan["videoId"].as_str().unwrap().to_owned()
}

/// Polls the video until it is ready or failed.
async fn settle(app: &TestApp, t: &str, video: &str, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let (_, v) = app.call("GET", &format!("/videos/{video}"), Some(t), None).await;
        if v["status"] == "ready" || v["status"] == "failed" {
            return v;
        }
        assert!(started.elapsed() < limit, "video still {v} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Makes a 3-second clip with ffmpeg (`args` before the output path).
async fn make_clip(args: &[&str], out: &std::path::Path) {
    let args = args.iter().copied().chain(["-y"]).map(String::from).chain([file_arg(out)]).collect();
    let run = videdit_media::process::Run { args, media_seconds: 3.0, on_progress: None, cancel: None };
    Ffmpeg::default().run(run).await.unwrap();
}

async fn ffprobe(path: &std::path::Path) -> Value {
    let out = Ffmpeg::default()
        .ffprobe(&["-show_format", "-show_streams", "-of", "json", &file_arg(path)], Duration::from_secs(30))
        .await
        .unwrap();
    serde_json::from_slice(&out).unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_talk_uploaded_in_parts_to_s3_becomes_captioned_shorts(pool: PgPool) {
    let mut options = Options { storage: StorageKind::S3, ..Options::default() };
    options.limits.multipart_threshold = 1024 * 1024;
    full_flow(pool, options).await;
}

#[sqlx::test(migrations = false)]
async fn a_talk_uploaded_with_one_put_to_local_storage_becomes_captioned_shorts(pool: PgPool) {
    full_flow(pool, Options::default()).await;
}

/// Upload → worker → ready → transcript → shorts → download → edit → re-render.
async fn full_flow(pool: PgPool, options: Options) {
    let logs = crate::support::capture_logs();
    let app = spawn_app(pool.clone(), options).await;
    let dir = tempfile::tempdir().unwrap();
    // Small talk, a strong passage of about 40 s, small talk.
    let mut spec = TalkSpec::new(vec![small_talk(0, 4), SLEEP.into(), small_talk(9, 4)]);
    spec.size = Some((640, 360));
    let talk = make_talk(&Ffmpeg::default(), &spec, &dir.path().join("talk.mp4")).await.unwrap();
    let t = token("user_pipe", Some(("org_pipe", "org:admin")));
    // A webhook endpoint receives the video's events as they happen.
    let receiver = crate::webhooks::Receiver::default();
    let hook_url = format!("{}/events", receiver.start().await);
    let (status, hook) = app.call("POST", "/webhooks", Some(&t), Some(json!({"url": hook_url}))).await;
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let video = upload(&app, &t, "talk.mp4", std::fs::read(&talk.path).unwrap()).await;
    let _worker = start_worker(&pool, &app);

    let v = settle(&app, &t, &video, Duration::from_secs(900)).await;
    assert_eq!(v["status"], "ready", "{v}");
    assert!((v["durationSeconds"].as_f64().unwrap() - talk.duration).abs() < 0.2, "{v}");
    assert_eq!(v["hasTranscription"], true);

    // The transcript, in every format.
    let (status, tr) = app.call("GET", &format!("/videos/{video}/transcript"), Some(&t), None).await;
    assert_eq!(status, 200, "{tr}");
    assert_eq!(tr["model"], "tiny.en");
    let words: Vec<&Value> =
        tr["segments"].as_array().unwrap().iter().flat_map(|s| s["words"].as_array().unwrap()).collect();
    // Against the script the talk was spoken from: about as many words,
    // in time order inside the audio, and nearly every script word heard.
    let norm = |w: &str| w.chars().filter(|c| c.is_alphanumeric()).collect::<String>().to_lowercase();
    let script: Vec<String> = talk.text().split_whitespace().map(norm).filter(|w| !w.is_empty()).collect();
    let heard: Vec<String> = words.iter().map(|w| norm(w["text"].as_str().unwrap())).collect();
    let ratio = heard.len() as f64 / script.len() as f64;
    assert!((0.85..=1.15).contains(&ratio), "{} words heard for {} spoken", heard.len(), script.len());
    let heard_set: std::collections::HashSet<&str> = heard.iter().map(String::as_str).collect();
    let recall = script.iter().filter(|w| heard_set.contains(w.as_str())).count() as f64 / script.len() as f64;
    assert!(recall >= 0.85, "only {:.0} % of the script's words were heard", recall * 100.0);
    let times: Vec<(f64, f64)> =
        words.iter().map(|w| (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap())).collect();
    assert!(times.iter().all(|(s, e)| 0.0 <= *s && s <= e && *e <= talk.duration + 0.05), "{times:?}");
    assert!(times.windows(2).all(|p| p[0].0 <= p[1].0), "word starts go back in time");
    assert!(heard.iter().any(|w| w == "sleep"), "{heard:?}");

    // The shorts: the strong passage, cut on its sentence boundaries.
    let (status, shorts) = app.call("GET", &format!("/videos/{video}/shorts"), Some(&t), None).await;
    assert_eq!(status, 200, "{shorts}");
    let items = shorts["items"].as_array().unwrap_or_else(|| shorts.as_array().unwrap());
    assert!(!items.is_empty(), "{shorts}");
    let best = &items[0];
    assert_eq!(best["status"], "ready", "{best}");
    let (start, end) = (best["startSeconds"].as_f64().unwrap(), best["endSeconds"].as_f64().unwrap());
    let near_boundary = |t: f64| talk.sentences.iter().any(|s| (s.start - t).abs() < 0.3 || (s.end - t).abs() < 0.3);
    let bounds: Vec<(f64, f64)> = talk.sentences.iter().map(|s| (s.start, s.end)).collect();
    assert!(near_boundary(start) && near_boundary(end), "{start}..{end} is not on sentence boundaries {bounds:?}");
    let (sleep_start, sleep_end) = talk.part_range(1).unwrap();
    assert!(start >= sleep_start - 0.5 && end <= sleep_end + 0.5, "{start}..{end} vs {sleep_start}..{sleep_end}");

    // Download it with the presigned URL: a 1080×1920 H.264/AAC MP4 of the short's length.
    let url = best["videoUrl"].as_str().expect("a ready short has a video URL");
    let bytes = app.client.get(url).send().await.unwrap().bytes().await.unwrap();
    let mp4 = dir.path().join("short.mp4");
    std::fs::write(&mp4, &bytes).unwrap();
    let probe = ffprobe(&mp4).await;
    let streams = probe["streams"].as_array().unwrap();
    let video_stream = streams.iter().find(|s| s["codec_type"] == "video").unwrap();
    assert_eq!((video_stream["width"].as_u64(), video_stream["height"].as_u64()), (Some(1080), Some(1920)));
    assert_eq!(video_stream["codec_name"], "h264");
    assert!(streams.iter().any(|s| s["codec_type"] == "audio" && s["codec_name"] == "aac"));
    let seconds: f64 = probe["format"]["duration"].as_str().unwrap().parse().unwrap();
    assert!((seconds - (end - start)).abs() < 0.1, "{seconds} vs {}", end - start);
    let thumb = app.client.get(best["thumbnailUrl"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(thumb.headers()["content-type"], "image/jpeg");

    // Every job of the video completed.
    let (_, jobs) = app.call("GET", &format!("/videos/{video}/jobs"), Some(&t), None).await;
    let jobs = jobs["items"].as_array().unwrap_or_else(|| jobs.as_array().unwrap()).clone();
    for kind in ["ingest", "transcribe", "analyze", "render"] {
        assert!(jobs.iter().any(|j| j["type"] == kind && j["status"] == "completed"), "no completed {kind}: {jobs:?}");
    }

    // Edit the recipe: trim half a second off the end, restyle, retitle; it re-renders.
    let short_id = best["id"].as_str().unwrap();
    let (status, mut recipe) = app.call("GET", &format!("/shorts/{short_id}/recipe"), Some(&t), None).await;
    assert_eq!(status, 200, "{recipe}");
    assert_eq!(recipe["startSeconds"], best["startSeconds"]);
    assert!(!recipe["words"].as_array().unwrap().is_empty());
    assert!(recipe.get("source").is_none(), "the storage location stays private: {recipe}");
    // The shorts were made with `auto`; the render found no face in the
    // test pattern and the stored recipe holds its choice.
    assert_eq!(recipe["reframe"], json!({"mode": "fit"}), "{recipe}");
    let new_end = end - 0.5;
    recipe["endSeconds"] = json!(new_end);
    recipe["captionStyle"] = json!("boxed");
    recipe["title"] = json!("Sleep, edited");
    let mut bad = recipe.clone();
    bad["aspect"] = json!("2:3");
    let err = app.call("PUT", &format!("/shorts/{short_id}/recipe"), Some(&t), Some(bad)).await;
    assert_eq!(
        (err.0, err.1),
        (400, json!({"code": "invalid_request", "message": "aspect \"2:3\" is not one of 9:16, 1:1, 4:5, 16:9"}))
    );
    let other = token("user_other", Some(("org_other", "org:admin")));
    let got = app.call("PUT", &format!("/shorts/{short_id}/recipe"), Some(&other), Some(recipe.clone())).await;
    assert_error(&got, 404, "short_not_found");
    let (status, saved) = app.call("PUT", &format!("/shorts/{short_id}/recipe"), Some(&t), Some(recipe)).await;
    assert_eq!(status, 200, "{saved}");
    let started = Instant::now();
    let edited = loop {
        let (_, s) = app.call("GET", &format!("/shorts/{short_id}"), Some(&t), None).await;
        if s["status"] == "ready" && s["endSeconds"].as_f64() == Some(new_end) {
            break s;
        }
        assert!(s["status"] != "failed", "{s}");
        assert!(started.elapsed() < Duration::from_secs(300), "{s}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(edited["title"], "Sleep, edited");
    let bytes = app.client.get(edited["videoUrl"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    std::fs::write(&mp4, &bytes).unwrap();
    let seconds: f64 = ffprobe(&mp4).await["format"]["duration"].as_str().unwrap().parse().unwrap();
    assert!((seconds - (new_end - start)).abs() < 0.1, "{seconds} vs {}", new_end - start);

    // The video's events, in order, through the events API...
    let (status, page) = app.call("GET", "/events?limit=500", Some(&t), None).await;
    assert_eq!(status, 200, "{page}");
    let events: Vec<Value> =
        page["items"].as_array().unwrap().iter().filter(|e| e["data"]["videoId"] == video.as_str()).cloned().collect();
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match e["data"]["stage"].as_str() {
            Some(stage) if e["type"] == "video.stage_changed" => format!("stage:{stage}"),
            _ => e["type"].as_str().unwrap().to_owned(),
        })
        .collect();
    let shorts_ready = items.iter().filter(|s| s["status"] == "ready").count();
    let mut expected: Vec<String> = [
        "video.uploaded",
        "stage:ingesting",
        "stage:transcribing",
        "transcript.ready",
        "stage:analyzing",
        "stage:rendering",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    expected.extend(std::iter::repeat_n("short.ready".to_owned(), shorts_ready));
    expected.push("video.ready".into());
    expected.push("short.ready".into()); // the edited short, rendered again
    assert_eq!(kinds, expected);
    let ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "oldest first, by time-ordered id");
    // A cursor continues after the last event seen.
    let last = page["nextCursor"].as_str().unwrap();
    let (_, after) = app.call("GET", &format!("/events?after={last}"), Some(&t), None).await;
    assert_eq!(after["items"], json!([]));
    // ...and through the webhook: every event once, each verified, in the same order by id.
    let deadline = Instant::now() + Duration::from_secs(120);
    let received = loop {
        let got = receiver.requests();
        if got.len() >= page["items"].as_array().unwrap().len() {
            break got;
        }
        assert!(Instant::now() < deadline, "{} of {} events delivered", got.len(), ids.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut delivered: Vec<String> = received
        .iter()
        .map(|r| {
            crate::webhooks::verify(&secret, r);
            r.headers.get("webhook-id").unwrap().to_str().unwrap().to_owned()
        })
        .filter(|id| ids.contains(&id.as_str()))
        .collect();
    delivered.sort_unstable();
    assert_eq!(delivered, sorted, "each of the video's events delivered once");

    // Another organisation sees none of it.
    assert_error(
        &app.call("GET", &format!("/videos/{video}/shorts"), Some(&other), None).await,
        404,
        "video_not_found",
    );
    assert_error(
        &app.call("GET", &format!("/videos/{video}/transcript"), Some(&other), None).await,
        404,
        "video_not_found",
    );

    // The whole run's logs (server and worker, debug level) hold no signed
    // URL: neither a local-storage signature nor an S3 one.
    let logs = logs.text();
    assert!(logs.contains("answered"), "the request log was captured");
    for credential in ["sig=", "X-Amz-Signature", "x-amz-signature"] {
        let line = logs.lines().find(|l| l.contains(credential));
        assert!(line.is_none(), "a log line carries {credential}: {line:?}");
    }
}

/// Upload a generated talk → shorts ready → connect YouTube, TikTok and
/// Instagram through the fakes' OAuth → schedule two shorts to YouTube
/// and the first to TikTok and Instagram too → all published with their
/// URLs (one YouTube upload after a disconnect mid-upload), the platforms
/// holding the rendered short's exact bytes.
#[sqlx::test(migrations = false)]
async fn a_talk_becomes_two_shorts_published_to_youtube_on_schedule(pool: PgPool) {
    let fake = videdit_publish::fake::FakeYouTube::start().await;
    let tiktok = videdit_publish::fake::FakeTikTok::start().await;
    let instagram = videdit_publish::fake::FakeInstagram::start().await;
    let options = Options {
        youtube: Some(fake.config()),
        tiktok: Some(tiktok.config()),
        instagram: Some(instagram.config()),
        ..Options::default()
    };
    let app = spawn_app(pool.clone(), options).await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = TalkSpec::new(vec![SLEEP.into(), small_talk(0, 3), PRACTICE.into()]);
    spec.size = Some((640, 360));
    let talk = make_talk(&Ffmpeg::default(), &spec, &dir.path().join("talk.mp4")).await.unwrap();
    let t = token("user_yt_pipe", Some(("org_yt_pipe", "org:admin")));
    let video = upload(&app, &t, "talk.mp4", std::fs::read(&talk.path).unwrap()).await;
    let _worker = start_worker(&pool, &app);
    let v = settle(&app, &t, &video, Duration::from_secs(900)).await;
    assert_eq!(v["status"], "ready", "{v}");
    let (_, shorts) = app.call("GET", &format!("/videos/{video}/shorts"), Some(&t), None).await;
    let items = shorts["items"].as_array().unwrap_or_else(|| shorts.as_array().unwrap());
    let ready: Vec<Value> = items.iter().filter(|s| s["status"] == "ready").take(2).cloned().collect();
    assert_eq!(ready.len(), 2, "two shorts ready: {shorts}");

    let connection = crate::connections::connect(&app, &t).await["id"].as_str().unwrap().to_owned();
    // Due in five minutes: too near for YouTube's own schedule, so each
    // goes out public when its job runs.
    let at = (time::OffsetDateTime::now_utc() + time::Duration::minutes(5))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut ids = vec![];
    for s in &ready {
        let (status, p) = app
            .call(
                "POST",
                &format!("/shorts/{}/publications", s["id"].as_str().unwrap()),
                Some(&t),
                Some(json!({"connectionId": connection, "privacy": "public", "scheduledAt": at, "tags": ["talk"]})),
            )
            .await;
        assert_eq!((status, p["status"].as_str()), (201, Some("scheduled")), "{p}");
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    // The first short goes to TikTok and Instagram as well.
    for platform in ["tiktok", "instagram"] {
        let c = crate::publishing::connect(&app, &t, platform, "").await;
        let (status, p) = app
            .call(
                "POST",
                &format!("/shorts/{}/publications", ready[0]["id"].as_str().unwrap()),
                Some(&t),
                Some(json!({"connectionId": c["id"], "scheduledAt": at, "tags": ["talk"]})),
            )
            .await;
        assert_eq!((status, p["platform"].as_str()), (201, Some(platform)), "{p}");
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    // The first chunk sent drops the connection halfway.
    fake.drop_after_bytes(100 * 1024);
    // Their time comes (driven through run_at, not by waiting).
    sqlx::query("UPDATE videdit_queue.jobs SET run_at = now() WHERE kind = 'publish'").execute(&pool).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let published = loop {
        let mut done = vec![];
        for id in &ids {
            let (_, p) = app.call("GET", &format!("/publications/{id}"), Some(&t), None).await;
            match p["status"].as_str().unwrap() {
                "processing" => {
                    let platform_id = p["platformId"].as_str().unwrap();
                    match p["platform"].as_str().unwrap() {
                        "tiktok" => tiktok.finish_processing(platform_id),
                        "instagram" => instagram.finish_processing(platform_id),
                        _ => fake.finish_processing(platform_id),
                    }
                    sqlx::query(
                        "UPDATE videdit_queue.jobs SET run_at = now() WHERE kind = 'publish' AND state = 'available'",
                    )
                    .execute(&pool)
                    .await
                    .unwrap();
                }
                "published" => done.push(p),
                "failed" | "canceled" => panic!("{p}"),
                _ => {}
            }
        }
        if done.len() == ids.len() {
            break done;
        }
        assert!(Instant::now() < deadline, "not published in time: {done:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let short_bytes =
        app.client.get(ready[0]["videoUrl"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    let short_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&short_bytes));
    let tiktok_post = &tiktok.posts()[0];
    assert_eq!(tiktok_post.sha256.as_deref(), Some(short_sha.as_str()), "TikTok holds the short");
    let reel = &instagram.containers()[0];
    assert_eq!((reel.sha256.as_deref(), reel.status_code.as_str()), (Some(short_sha.as_str()), "PUBLISHED"));
    for p in &published[2..] {
        assert!(p["url"].as_str().unwrap().starts_with("https://www."), "{p}");
    }
    let published = &published[..2];
    let videos = fake.videos();
    assert_eq!(videos.len(), 2);
    for (p, s) in published.iter().zip(&ready) {
        let url = p["url"].as_str().unwrap();
        assert!(url.starts_with("https://") && url.contains(p["platformId"].as_str().unwrap()), "{p}");
        // The bytes YouTube holds are the short's, exactly.
        let mp4 = app.client.get(s["videoUrl"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
        let held = videos.iter().find(|v| v.id == p["platformId"].as_str().unwrap()).unwrap();
        assert_eq!(held.sha256, hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&mp4)));
        assert_eq!(held.privacy_status, "public");
    }
    let sessions = fake.sessions();
    assert!(sessions.iter().all(|s| s.accepted_bytes == s.total), "every byte stored once");
    assert_eq!(sessions.len(), 2, "the dropped upload resumed its session");
    assert!(sessions.iter().any(|s| s.received_bytes > s.accepted_bytes), "one upload was cut mid-chunk");
}

/// A podcast with no pictures becomes audiograms drawn over the picture
/// its organisation set, through the API, on S3.
#[sqlx::test(migrations = false)]
async fn a_podcast_becomes_audiograms_over_the_organisations_picture(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options { storage: StorageKind::S3, ..Options::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let t = token("user_pod", Some(("org_pod", "org:admin")));
    let red = crate::pictures::picture(dir.path(), "red.png", "color=c=0xd02020:s=540x960").await;
    assert_eq!(crate::pictures::put(&app, &t, "image/png", red).await.0, 200);
    let talk =
        make_talk(&Ffmpeg::default(), &TalkSpec::new(vec![SLEEP.into()]), &dir.path().join("talk.mp4")).await.unwrap();
    let mp3 = dir.path().join("podcast.mp3");
    make_clip(&["-i", &file_arg(&talk.path), "-vn", "-c:a", "libmp3lame", "-b:a", "96k"], &mp3).await;
    let video = upload(&app, &t, "podcast.mp3", std::fs::read(&mp3).unwrap()).await;
    let _worker = start_worker(&pool, &app);

    let v = settle(&app, &t, &video, Duration::from_secs(600)).await;
    assert_eq!(v["status"], "ready", "{v}");
    let (_, shorts) = app.call("GET", &format!("/videos/{video}/shorts"), Some(&t), None).await;
    let items = shorts["items"].as_array().unwrap_or_else(|| shorts.as_array().unwrap());
    let best = &items[0];
    let bytes = app.client.get(best["videoUrl"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    let mp4 = dir.path().join("short.mp4");
    std::fs::write(&mp4, &bytes).unwrap();
    let probe = ffprobe(&mp4).await;
    let picture = probe["streams"].as_array().unwrap().iter().find(|s| s["codec_type"] == "video").unwrap().clone();
    assert_eq!((picture["width"].as_u64(), picture["height"].as_u64()), (Some(1080), Some(1920)), "{picture}");
    // The top corner of a frame shows the organisation's red, blurred and darkened.
    let raw = dir.path().join("frame.rgb");
    make_clip(&["-ss", "1", "-i", &file_arg(&mp4), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24"], &raw)
        .await;
    let rgb = std::fs::read(&raw).unwrap();
    let o = (20 * 1080 + 20) * 3;
    let [r, g, b] = [rgb[o], rgb[o + 1], rgb[o + 2]];
    assert!(r > g + 40 && r > b + 40, "the organisation's picture is behind the waveform: {r},{g},{b}");
}

#[sqlx::test(migrations = false)]
async fn bad_uploads_fail_the_video_with_the_reason(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let t = token("user_bad", None);
    let dir = tempfile::tempdir().unwrap();
    // A text file named .mp4, and a video without sound.
    let text = upload(&app, &t, "notes.mp4", b"these are my notes, not a video\n".repeat(100)).await;
    let silent = dir.path().join("silent.mp4");
    make_clip(&["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "3", "-c:v", "libx264"], &silent).await;
    let mute = upload(&app, &t, "mute.mp4", std::fs::read(&silent).unwrap()).await;
    let _worker = start_worker(&pool, &app);

    for (video, code) in [(text, "invalid_media"), (mute, "no_audio_stream")] {
        let v = settle(&app, &t, &video, Duration::from_secs(120)).await;
        assert_eq!(v["status"], "failed", "{v}");
        let reason = v["failureReason"].as_str().unwrap();
        assert_eq!(v["failureCode"], code, "{v}");
        assert!(
            !reason.is_empty() && !reason.starts_with(code),
            "the code is a field, not inside the reason: {reason}"
        );
        let (_, jobs) = app.call("GET", &format!("/videos/{video}/jobs"), Some(&t), None).await;
        let jobs = jobs["items"].as_array().unwrap_or_else(|| jobs.as_array().unwrap()).clone();
        let ingest = jobs.iter().find(|j| j["type"] == "ingest").unwrap();
        assert_eq!(ingest["status"], "failed", "{ingest}");
        assert_eq!(ingest["attempt"], 1, "bad media is not retried: {ingest}");
        assert_eq!(ingest["errors"][0]["code"], code, "the job's error carries the code: {ingest}");
        // Neither the reason nor the job's errors show where the upload is stored.
        assert!(!reason.contains("/objects/") && !reason.contains("/tmp"), "{reason}");
        assert!(!ingest["errors"].to_string().contains("/objects/"), "{ingest}");
    }
}

#[sqlx::test(migrations = false)]
async fn a_video_whose_every_short_fails_to_render_fails(pool: PgPool) {
    use videdit_core::db::{self, NewShort};
    use videdit_core::storage::{ObjectKey, bytes_stream};
    use videdit_core::{ProcessingStage, ShortId, SubScores, TimeRange, VideoStatus};

    let app = spawn_app(pool.clone(), Options::default()).await;
    let t = token("user_unlucky", None);
    let ready = crate::seed::ready_video(&app, &pool, &t).await;
    let rendering = VideoStatus::Processing { stage: ProcessingStage::Rendering };
    db::set_video_status(&pool, ready.org, ready.video, &rendering, None, None).await.unwrap();
    // Two shorts whose recipes no renderer can take (a future format version).
    let shorts = [ShortId::new(), ShortId::new()];
    let mut tx = pool.begin().await.unwrap();
    let new: Vec<NewShort> = shorts
        .iter()
        .enumerate()
        .map(|(i, id)| NewShort {
            id: *id,
            rank: i as i32 + 1,
            score: 50.0,
            sub_scores: SubScores::default(),
            reason: "doomed".into(),
            title: format!("Doomed {i}"),
            range: TimeRange::new(10.0, 40.0).unwrap(),
        })
        .collect();
    db::replace_shorts(&mut tx, ready.org, ready.video, &new).await.unwrap();
    tx.commit().await.unwrap();
    for id in &shorts {
        let mut recipe = crate::seed::recipe(ready.org, ready.video);
        recipe.version = 99;
        let key = ObjectKey::short_recipe(ready.org, ready.video, *id);
        app.storage
            .put_stream(&key, bytes_stream(serde_json::to_vec(&recipe).unwrap()), "application/json")
            .await
            .unwrap();
        let body = json!({"type": "render", "options": {"shortId": id.to_string()}});
        let (status, job) = app.call("POST", &format!("/videos/{}/jobs", ready.video), Some(&t), Some(body)).await;
        assert_eq!(status, 201, "{job}");
    }
    let _worker = start_worker(&pool, &app);
    let v = settle(&app, &t, &ready.video.to_string(), Duration::from_secs(120)).await;
    assert_eq!(v["status"], "failed", "{v}");
    assert_eq!(v["failureReason"], "every short failed to render");
    assert_eq!(v["failureCode"], "internal");
    let (_, listed) = app.call("GET", &format!("/videos/{}/shorts", ready.video), Some(&t), None).await;
    let items = listed["items"].as_array().unwrap_or_else(|| listed.as_array().unwrap()).clone();
    let statuses: Vec<&str> = items.iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["failed", "failed"]);
    let (_, jobs) = app.call("GET", &format!("/videos/{}/jobs", ready.video), Some(&t), None).await;
    let renders: Vec<&Value> = jobs.as_array().unwrap().iter().filter(|j| j["type"] == "render").collect();
    assert_eq!(renders.len(), 2);
    for j in renders {
        assert_eq!((j["status"].as_str(), j["attempt"].as_i64()), (Some("failed"), Some(1)), "not retried: {j}");
    }
}

#[sqlx::test(migrations = false)]
async fn a_stage_that_dies_before_its_commit_leaves_no_change_and_its_retry_records_it_once(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let t = token("user_crash", None);
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("tone.mp4");
    let tone = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440"];
    make_clip(&[&tone[..], &["-t", "3", "-c:v", "libx264", "-c:a", "aac", "-shortest"]].concat(), &clip).await;
    let video = upload(&app, &t, "tone.mp4", std::fs::read(&clip).unwrap()).await;
    // The ingest job's work (the probe) succeeds; the transaction that
    // records its result dies at its last step, as a worker killed there would.
    sqlx::query("CREATE TABLE videdit.test_fault (on_ boolean NOT NULL)").execute(&pool).await.unwrap();
    sqlx::query("INSERT INTO videdit.test_fault VALUES (true)").execute(&pool).await.unwrap();
    sqlx::query(
        "CREATE FUNCTION videdit.test_fault() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.payload->>'stage' = 'transcribing' AND (SELECT on_ FROM videdit.test_fault) THEN
             RAISE EXCEPTION 'injected: the worker died before its commit';
           END IF;
           RETURN NEW;
         END $$",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER test_fault BEFORE INSERT ON videdit.events FOR EACH ROW EXECUTE FUNCTION videdit.test_fault()",
    )
    .execute(&pool)
    .await
    .unwrap();
    let _worker = start_worker(&pool, &app);
    let ingest_errors = || async {
        let (_, jobs) = app.call("GET", &format!("/videos/{video}/jobs"), Some(&t), None).await;
        jobs.as_array().unwrap().iter().find(|j| j["type"] == "ingest").map(|j| j["errors"].as_array().unwrap().len())
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while ingest_errors().await.unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "the ingest attempt never failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Neither the change nor its event is there.
    let (_, v) = app.call("GET", &format!("/videos/{video}"), Some(&t), None).await;
    assert_eq!((v["status"].as_str(), v["stage"].as_str()), (Some("processing"), Some("ingesting")), "{v}");
    assert!(v.get("durationSeconds").is_none(), "{v}");
    let stage_events = |events: &Value| {
        let items = events["items"].as_array().unwrap().iter();
        items.filter(|e| e["type"] == "video.stage_changed" && e["data"]["stage"] == "transcribing").count()
    };
    let (_, events) = app.call("GET", "/events", Some(&t), None).await;
    assert_eq!(stage_events(&events), 0, "{events}");
    let (_, jobs) = app.call("GET", &format!("/videos/{video}/jobs"), Some(&t), None).await;
    assert!(jobs.as_array().unwrap().iter().all(|j| j["type"] != "transcribe"), "{jobs}");

    // The retry produces both, once.
    sqlx::query("UPDATE videdit.test_fault SET on_ = false").execute(&pool).await.unwrap();
    sqlx::query("UPDATE videdit_queue.jobs SET run_at = now() WHERE kind = 'ingest'").execute(&pool).await.unwrap();
    let v = settle(&app, &t, &video, Duration::from_secs(300)).await;
    assert_eq!(v["status"], "ready", "{v}");
    assert!((v["durationSeconds"].as_f64().unwrap() - 3.0).abs() < 0.1, "{v}");
    let (_, events) = app.call("GET", "/events", Some(&t), None).await;
    assert_eq!(stage_events(&events), 1, "{events}");
    let (_, jobs) = app.call("GET", &format!("/videos/{video}/jobs"), Some(&t), None).await;
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs.iter().filter(|j| j["type"] == "transcribe").count(), 1, "{jobs:?}");
    let ingest = jobs.iter().find(|j| j["type"] == "ingest").unwrap();
    assert_eq!((ingest["status"].as_str(), ingest["attempt"].as_i64()), (Some("completed"), Some(2)), "{ingest}");
}

/// Billing on the real pipeline: a ready video is charged once and metered
/// once (a retried report counts once at Stripe), its plan caps its
/// shorts, and the next video, beyond the period's minutes, fails at ingest
/// with `quota_exceeded` and costs nothing.
#[sqlx::test(migrations = false)]
async fn a_ready_video_is_charged_and_metered_once_and_the_next_beyond_the_quota_fails(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = TalkSpec::new(vec![small_talk(0, 4), SLEEP.into(), small_talk(9, 4)]);
    spec.size = Some((640, 360));
    let talk = make_talk(&Ffmpeg::default(), &spec, &dir.path().join("talk.mp4")).await.unwrap();
    let probed: f64 = ffprobe(&talk.path).await["format"]["duration"].as_str().unwrap().parse().unwrap();
    let seconds = probed.ceil() as i64;
    // Minutes for one of these videos, not two.
    let minutes = (seconds + 59) / 60;
    assert!(minutes * 60 < 2 * seconds, "the talk ({probed} s) is too short for this test");
    let plans = format!(
        r#"{{"default": "free", "plans": [{{"id": "free", "minutesPerPeriod": {minutes}, "maxShortsPerVideo": 1}},
            {{"id": "pro", "priceId": "price_pro", "minutesPerPeriod": 600}}]}}"#
    );
    let billing = videdit_service::billing::Billing {
        plans: videdit_service::billing::Plans::parse(&plans).unwrap(),
        grace: time::Duration::days(1),
    };
    let fake = crate::billing::fake_stripe().await;
    let options = Options { billing, stripe: Some(crate::billing::stripe_settings(&fake)), ..Options::default() };
    let app = spawn_app(pool.clone(), options).await;
    let t = token("user_metered", Some(("org_metered", "org:admin")));
    // A checkout started (not finished) gives the organisation its customer.
    let (status, _) = app.call("POST", "/billing/checkout", Some(&t), Some(json!({"plan": "pro"}))).await;
    assert_eq!(status, 200);
    let _worker = start_worker(&pool, &app);

    let video = upload(&app, &t, "talk.mp4", std::fs::read(&talk.path).unwrap()).await;
    let v = settle(&app, &t, &video, Duration::from_secs(900)).await;
    assert_eq!(v["status"], "ready", "{v}");
    let (_, shorts) = app.call("GET", &format!("/videos/{video}/shorts"), Some(&t), None).await;
    assert_eq!(shorts.as_array().map(Vec::len), Some(1), "the plan makes one short per video: {shorts}");
    let (_, b) = app.call("GET", "/billing", Some(&t), None).await;
    assert_eq!((b["secondsUsed"].as_i64(), b["secondsReserved"].as_i64()), (Some(seconds), Some(0)), "{b}");

    // One meter event, identified by the video.
    let started = Instant::now();
    while fake.meter_events().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(60), "no meter event was reported");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let org: uuid::Uuid = sqlx::query_scalar("SELECT id FROM videdit.organizations WHERE external_id = 'org_metered'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let job = videdit_service::billing::UsageJob {
        org_id: videdit_core::OrgId::from_uuid(org),
        video_id: video.parse().unwrap(),
    };
    let provider = app.payments.clone().unwrap();
    // Reported again a second later (a retried job): the same request under
    // the same idempotency key, so Stripe takes it and counts it once.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(videdit_service::billing::report_usage(&pool, provider.as_ref(), &job).await.unwrap(), "reported again");
    let events = fake.meter_events();
    assert_eq!(events.len(), 1, "a retried report counts once: {events:?}");
    assert_eq!(events[0]["identifier"], format!("video_{video}"));
    assert_eq!(events[0]["event_name"], "videdit_processed_seconds");
    assert_eq!(events[0]["payload"]["value"].as_str().map(str::to_owned), Some(seconds.to_string()));

    // The next one does not fit: refused at ingest, nothing reserved.
    let second = upload(&app, &t, "again.mp4", std::fs::read(&talk.path).unwrap()).await;
    let v2 = settle(&app, &t, &second, Duration::from_secs(300)).await;
    assert_eq!((v2["status"].as_str(), v2["failureCode"].as_str()), (Some("failed"), Some("quota_exceeded")), "{v2}");
    assert!(v2["failureReason"].as_str().unwrap().contains("the pro plan gives 600 minutes"), "{v2}");
    let (_, b) = app.call("GET", "/billing", Some(&t), None).await;
    assert_eq!((b["secondsUsed"].as_i64(), b["secondsReserved"].as_i64()), (Some(seconds), Some(0)), "{b}");
    assert_eq!(fake.meter_events().len(), 1);
}
