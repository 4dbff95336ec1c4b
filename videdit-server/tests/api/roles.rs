//! The role matrix, operation by operation: an admin and a member of the
//! organisation, and an admin of another one, call every API operation on
//! fresh data; each gets exactly the status the matrix documents.

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::seed;
use crate::support::{Options, TestApp, assert_error, spawn_app, token};

/// Every operation of the API. The spec test checks this list against the
/// generated spec, so a new operation cannot skip the matrix.
pub const OPERATIONS: [&str; 42] = [
    "createUpload",
    "completeUpload",
    "abortUpload",
    "listVideos",
    "getVideo",
    "renameVideo",
    "deleteVideo",
    "getTranscript",
    "listShorts",
    "getShort",
    "createJob",
    "listJobs",
    "getJob",
    "cancelJob",
    "getRecipe",
    "putRecipe",
    "listEvents",
    "createWebhook",
    "listWebhooks",
    "getWebhook",
    "updateWebhook",
    "deleteWebhook",
    "rotateWebhookSecret",
    "testWebhook",
    "listWebhookDeliveries",
    "replayWebhookDelivery",
    "getBilling",
    "createCheckoutSession",
    "createPortalSession",
    "listConnections",
    "getConnection",
    "authorizeConnection",
    "connectionCallback",
    "deleteConnection",
    "createPublication",
    "listPublications",
    "getPublication",
    "cancelPublication",
    "reschedulePublication",
    "getAudiogramBackground",
    "setAudiogramBackground",
    "deleteAudiogramBackground",
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Caller {
    Admin,
    Member,
    /// An admin of another organisation.
    Outsider,
}

/// Ids of fresh data in the team's organisation.
struct Fixture {
    video: String,
    short: String,
    /// A pending upload whose bytes are stored.
    upload: String,
    /// A queued job of the video.
    job: String,
    /// A webhook endpoint and one of its deliveries.
    webhook: String,
    delivery: String,
    /// A connected account (its sealed tokens are not real ones).
    connection: String,
    /// A publication of the short to it, scheduled tomorrow.
    publication: String,
}

async fn fixture(app: &TestApp, pool: &PgPool, admin: &str) -> Fixture {
    let ready = seed::ready_video(app, pool, admin).await;
    let (upload, _) = seed::uploaded_but_not_completed(app, admin).await;
    let (status, job) =
        app.call("POST", &format!("/videos/{}/jobs", ready.video), Some(admin), Some(json!({"type": "analyze"}))).await;
    assert_eq!(status, 201, "{job}");
    // One endpoint at a time (an organisation has at most 20).
    sqlx::query("DELETE FROM videdit.webhook_endpoints").execute(pool).await.unwrap();
    let (status, hook) =
        app.call("POST", "/webhooks", Some(admin), Some(json!({"url": "http://127.0.0.1:9/hook"}))).await;
    assert_eq!(status, 201, "{hook}");
    let webhook = hook["id"].as_str().unwrap().to_owned();
    let (status, sent) = app.call("POST", &format!("/webhooks/{webhook}/test"), Some(admin), None).await;
    assert_eq!(status, 200, "{sent}");
    let connection = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO videdit.connections (id, org_id, platform, account_id, account_name, status, access_token, token_expires_at, scopes)
         SELECT $1, org_id, 'youtube', $2, 'Seeded channel', 'connected', 'v1.none.AAAA', now(), 'x' FROM videdit.videos WHERE id = $3",
    )
    .bind(connection)
    .bind(connection.to_string())
    .bind(ready.video.as_uuid())
    .execute(pool)
    .await
    .unwrap();
    let publication = videdit_service::publications::create(
        pool,
        ready.org,
        None,
        ready.short,
        videdit_service::publications::NewPublication {
            connection_id: connection,
            title: None,
            description: String::new(),
            tags: vec![],
            privacy: "public".into(),
            scheduled_at: Some(time::OffsetDateTime::now_utc() + time::Duration::days(1)),
            options: Default::default(),
        },
    )
    .await
    .unwrap();
    let (status, set) = crate::pictures::put(app, admin, "image/png", crate::pictures::small_png().await).await;
    assert_eq!(status, 200, "{set}");
    Fixture {
        publication: publication.id.to_string(),
        connection: connection.to_string(),
        video: ready.video.to_string(),
        short: ready.short.to_string(),
        upload,
        job: job["id"].as_str().unwrap().to_owned(),
        webhook,
        delivery: sent["deliveryId"].as_str().unwrap().to_owned(),
    }
}

const BACKGROUND: &str = "/organization/audiogram-background";

/// The request for an operation on the fixture.
fn request(op: &str, f: &Fixture) -> (&'static str, String, Option<Value>) {
    let (v, s, u, j, w, d) = (&f.video, &f.short, &f.upload, &f.job, &f.webhook, &f.delivery);
    match op {
        "createUpload" => {
            ("POST", "/uploads".into(), Some(json!({"fileName": "new.mp4", "contentType": "video/mp4", "size": 10})))
        }
        "completeUpload" => ("POST", format!("/uploads/{u}/complete"), Some(json!({}))),
        "abortUpload" => ("DELETE", format!("/uploads/{u}"), None),
        "listVideos" => ("GET", "/videos".into(), None),
        "getVideo" => ("GET", format!("/videos/{v}"), None),
        "renameVideo" => ("PATCH", format!("/videos/{v}"), Some(json!({"title": "Renamed"}))),
        "deleteVideo" => ("DELETE", format!("/videos/{v}"), None),
        "getTranscript" => ("GET", format!("/videos/{v}/transcript"), None),
        "listShorts" => ("GET", format!("/videos/{v}/shorts"), None),
        "getShort" => ("GET", format!("/shorts/{s}"), None),
        "createJob" => {
            ("POST", format!("/videos/{v}/jobs"), Some(json!({"type": "render", "options": {"shortId": s}})))
        }
        "listJobs" => ("GET", format!("/videos/{v}/jobs"), None),
        "getJob" => ("GET", format!("/jobs/{j}"), None),
        "cancelJob" => ("POST", format!("/jobs/{j}/cancel"), None),
        "getRecipe" => ("GET", format!("/shorts/{s}/recipe"), None),
        "putRecipe" => ("PUT", format!("/shorts/{s}/recipe"), Some(seed::recipe_body())),
        "listEvents" => ("GET", "/events".into(), None),
        "createWebhook" => ("POST", "/webhooks".into(), Some(json!({"url": "http://127.0.0.1:9/other"}))),
        "listWebhooks" => ("GET", "/webhooks".into(), None),
        "getWebhook" => ("GET", format!("/webhooks/{w}"), None),
        "updateWebhook" => ("PATCH", format!("/webhooks/{w}"), Some(json!({"description": "changed"}))),
        "deleteWebhook" => ("DELETE", format!("/webhooks/{w}"), None),
        "rotateWebhookSecret" => ("POST", format!("/webhooks/{w}/rotate-secret"), None),
        "testWebhook" => ("POST", format!("/webhooks/{w}/test"), None),
        "listWebhookDeliveries" => ("GET", format!("/webhooks/{w}/deliveries"), None),
        "replayWebhookDelivery" => ("POST", format!("/webhooks/{w}/deliveries/{d}/replay"), None),
        "getBilling" => ("GET", "/billing".into(), None),
        "listConnections" => ("GET", "/connections".into(), None),
        "getConnection" => ("GET", format!("/connections/{}", f.connection), None),
        "authorizeConnection" => ("GET", "/connections/youtube/authorize".into(), None),
        "connectionCallback" => ("GET", "/connections/youtube/callback?code=c&state=s".into(), None),
        "deleteConnection" => ("DELETE", format!("/connections/{}", f.connection), None),
        "createPublication" => {
            ("POST", format!("/shorts/{s}/publications"), Some(json!({"connectionId": f.connection})))
        }
        "listPublications" => ("GET", "/publications".into(), None),
        "getPublication" => ("GET", format!("/publications/{}", f.publication), None),
        "cancelPublication" => ("POST", format!("/publications/{}/cancel", f.publication), None),
        "reschedulePublication" => ("POST", format!("/publications/{}/reschedule", f.publication), Some(json!({}))),
        "createCheckoutSession" => ("POST", "/billing/checkout".into(), Some(json!({"plan": "pro"}))),
        "createPortalSession" => ("POST", "/billing/portal".into(), None),
        "getAudiogramBackground" => ("GET", BACKGROUND.into(), None),
        // The body is a picture (sent by the matrix loop, not as JSON).
        "setAudiogramBackground" => ("PUT", BACKGROUND.into(), None),
        "deleteAudiogramBackground" => ("DELETE", BACKGROUND.into(), None),
        other => panic!("no request for {other}"),
    }
}

/// What the matrix says: `Ok(status)` when allowed, `Err((status, code))` when not.
fn expected(op: &str, caller: Caller) -> Result<u16, (u16, &'static str)> {
    let admin_only = matches!(
        op,
        "deleteVideo"
            | "cancelJob"
            | "createCheckoutSession"
            | "createPortalSession"
            | "authorizeConnection"
            | "connectionCallback"
            | "deleteConnection"
            | "setAudiogramBackground"
            | "deleteAudiogramBackground"
    ) || op.contains("Webhook");
    // No authorisation was started: the state is unknown.
    if op == "connectionCallback" && caller != Caller::Member {
        return Err((400, "oauth_state_invalid"));
    }
    // Billing is the caller's own organisation's; this server has no Stripe
    // (the billing tests run checkout against the fake).
    if matches!(op, "createCheckoutSession" | "createPortalSession") && caller != Caller::Member {
        return Err((501, "billing_not_configured"));
    }
    let ok = match op {
        "createUpload" | "createJob" | "createWebhook" | "createPublication" => 201,
        "deleteAudiogramBackground" => 204,
        _ => 200,
    };
    match caller {
        Caller::Admin => Ok(ok),
        Caller::Member if admin_only => Err((403, "forbidden")),
        Caller::Member => Ok(ok),
        // Another organisation's ids do not exist for it; what it does in
        // its own organisation (create an upload, list its videos) works.
        Caller::Outsider => match op {
            "createUpload"
            | "listVideos"
            | "listEvents"
            | "createWebhook"
            | "listWebhooks"
            | "getBilling"
            | "listConnections"
            | "listPublications"
            | "authorizeConnection"
            | "setAudiogramBackground" => Ok(ok),
            "getAudiogramBackground" | "deleteAudiogramBackground" => Err((404, "image_not_found")),
            "getPublication" | "cancelPublication" | "reschedulePublication" => Err((404, "publication_not_found")),
            "getConnection" | "deleteConnection" => Err((404, "connection_not_found")),
            "completeUpload" | "abortUpload" => Err((404, "upload_not_found")),
            "getShort" | "getRecipe" | "putRecipe" | "createPublication" => Err((404, "short_not_found")),
            "getJob" | "cancelJob" => Err((404, "job_not_found")),
            op if op.contains("Webhook") => Err((404, "webhook_not_found")),
            _ => Err((404, "video_not_found")),
        },
    }
}

#[sqlx::test(migrations = false)]
async fn every_operation_follows_the_role_matrix(pool: PgPool) {
    let youtube = videdit_publish::fake::FakeYouTube::start().await;
    let app = spawn_app(pool.clone(), Options { youtube: Some(youtube.config()), ..Options::default() }).await;
    let admin = token("user_admin", Some(("org_team", "org:admin")));
    let member = token("user_member", Some(("org_team", "org:member")));
    let outsider = token("user_outsider", Some(("org_other", "org:admin")));
    for op in OPERATIONS {
        for (caller, t) in [(Caller::Admin, &admin), (Caller::Member, &member), (Caller::Outsider, &outsider)] {
            // Fresh data each time: some operations delete or finish what they act on.
            let f = fixture(&app, &pool, &admin).await;
            let (method, path, body) = request(op, &f);
            let got = if op == "setAudiogramBackground" {
                crate::pictures::put(&app, t, "image/png", crate::pictures::small_png().await).await
            } else {
                app.call(method, &path, Some(t), body).await
            };
            match expected(op, caller) {
                Ok(status) => assert_eq!(got.0, status, "{op} as {caller:?}: {}", got.1),
                Err((status, code)) => {
                    assert_error(&got, status, code);
                    if caller == Caller::Outsider {
                        // Nothing of the team's leaks into the answer.
                        assert!(!got.1.to_string().contains("seeded"), "{op}: {}", got.1);
                    }
                }
            }
            if caller == Caller::Outsider && matches!(op, "listEvents" | "listWebhooks" | "listPublications") {
                assert!(!got.1.to_string().contains(&f.video), "{op}: the outsider sees the team's data: {}", got.1);
                assert!(!got.1.to_string().contains(&f.webhook), "{op}: the outsider sees the team's data: {}", got.1);
            }
            if caller == Caller::Outsider && op.ends_with("AudiogramBackground") {
                // The outsider's picture is its own: the team's is still there.
                assert_eq!(app.call("GET", BACKGROUND, Some(&admin), None).await.0, 200, "{op}");
                if op == "setAudiogramBackground" {
                    assert_eq!(app.call("DELETE", BACKGROUND, Some(t), None).await.0, 204);
                }
            }
            if caller == Caller::Outsider && op == "listVideos" {
                let ids: Vec<&str> =
                    got.1["items"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap()).collect();
                assert!(!ids.contains(&f.video.as_str()), "the outsider sees the team's video: {ids:?}");
                assert!(got.1["items"].as_array().unwrap().iter().all(|v| v["title"] == "new"), "{}", got.1);
            }
        }
    }
}

#[sqlx::test(migrations = false)]
async fn a_downgraded_admin_loses_admin_rights_on_the_next_request(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let as_admin = token("user_pat", Some(("org_team", "org:admin")));
    let f = fixture(&app, &pool, &as_admin).await;
    let second = fixture(&app, &pool, &as_admin).await;
    // An admin cancels one job...
    assert_eq!(app.call("POST", &format!("/jobs/{}/cancel", f.job), Some(&as_admin), None).await.0, 200);
    // ...then Clerk makes the same user a member: the next token says so.
    let as_member = token("user_pat", Some(("org_team", "org:member")));
    assert_error(
        &app.call("POST", &format!("/jobs/{}/cancel", second.job), Some(&as_member), None).await,
        403,
        "forbidden",
    );
    assert_error(
        &app.call("DELETE", &format!("/videos/{}", second.video), Some(&as_member), None).await,
        403,
        "forbidden",
    );
    let role: String = sqlx::query_scalar(
        "SELECT m.role FROM videdit.memberships m JOIN videdit.users u ON u.id = m.user_id WHERE u.external_id = 'user_pat'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(role, "member", "the stored membership follows the token");
    // Still a member: reading works.
    assert_eq!(app.call("GET", &format!("/videos/{}", second.video), Some(&as_member), None).await.0, 200);
}
