//! Connected accounts through the API and the fake Google (OAuth with
//! PKCE on loopback): connect, tokens sealed at rest, refresh, a refused
//! refresh marks the connection, disconnect revokes; states are single
//! use and bound to their user; other organisations get 404.

use serde_json::Value;
use sqlx::PgPool;
use videdit_publish::fake::FakeYouTube;

use crate::support::{Options, TestApp, assert_error, spawn_app, token};

pub async fn app_with_youtube(pool: &PgPool) -> (TestApp, FakeYouTube) {
    let fake = FakeYouTube::start().await;
    let app = spawn_app(pool.clone(), Options { youtube: Some(fake.config()), ..Options::default() }).await;
    (app, fake)
}

/// Runs the consent step at the fake: the redirect's `code` and `state`.
pub async fn consent(app: &TestApp, url: &str) -> (String, String) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = client.get(url).send().await.unwrap();
    assert_eq!(r.status(), 302, "{:?}", r.text().await);
    let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let q = |k: &str| location.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned()).unwrap();
    let _ = app;
    (q("code"), q("state"))
}

/// Connects the fake's channel for the caller's organisation.
pub async fn connect(app: &TestApp, t: &str) -> Value {
    let (status, auth) = app.call("GET", "/connections/youtube/authorize", Some(t), None).await;
    assert_eq!(status, 200, "{auth}");
    let (code, state) = consent(app, auth["url"].as_str().unwrap()).await;
    let (status, c) =
        app.call("GET", &format!("/connections/youtube/callback?code={code}&state={state}"), Some(t), None).await;
    assert_eq!(status, 200, "{c}");
    c
}

#[sqlx::test(migrations = false)]
async fn an_account_connects_through_oauth_with_pkce_and_its_tokens_are_sealed(pool: PgPool) {
    let (app, fake) = app_with_youtube(&pool).await;
    let admin = token("user_yt", Some(("org_yt", "org:admin")));
    let other_admin = token("user_yt2", Some(("org_yt", "org:admin")));
    let outsider = token("user_out", Some(("org_out", "org:admin")));

    let (_, auth) = app.call("GET", "/connections/youtube/authorize", Some(&admin), None).await;
    let url = url::Url::parse(auth["url"].as_str().unwrap()).unwrap();
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!((q["access_type"].as_str(), q["prompt"].as_str()), ("offline", "consent"));
    assert!(q["scope"].contains("youtube.upload") && q["scope"].contains("youtube.readonly"), "{q:?}");
    let (code, state) = consent(&app, url.as_str()).await;
    // Another admin of the same organisation cannot use this person's state...
    let stolen = app
        .call("GET", &format!("/connections/youtube/callback?code={code}&state={state}"), Some(&other_admin), None)
        .await;
    assert_error(&stolen, 400, "oauth_state_invalid");
    // ...and it was single use: trying it burnt it.
    let again =
        app.call("GET", &format!("/connections/youtube/callback?code={code}&state={state}"), Some(&admin), None).await;
    assert_error(&again, 400, "oauth_state_invalid");

    let c = connect(&app, &admin).await;
    let (channel_id, channel_name) = fake.channel();
    assert_eq!(
        (c["accountId"].as_str(), c["accountName"].as_str(), c["status"].as_str()),
        (Some(channel_id.as_str()), Some(channel_name.as_str()), Some("connected")),
        "{c}"
    );
    let id = c["id"].as_str().unwrap().to_owned();

    // Sealed at rest: no token the fake issued is in the database, and the
    // stored values do not open without the key.
    let (access, refresh): (String, Option<String>) =
        sqlx::query_as("SELECT access_token, refresh_token FROM videdit.connections WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
    let issued = fake.issued_tokens();
    for t in issued.access_tokens.iter().chain(&issued.refresh_tokens) {
        assert!(!access.contains(t.as_str()) && !refresh.as_deref().unwrap_or("").contains(t.as_str()));
    }
    let org: uuid::Uuid = sqlx::query_scalar("SELECT id FROM videdit.organizations WHERE external_id = 'org_yt'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let context = format!("connection:{org}:{id}:access");
    let wrong = videdit_core::sealed::Keyring::parse("other:b3RoZXItdGVzdC1rZXktdGhpcnR5LXR3by1ieXRlcyE=").unwrap();
    assert!(wrong.open_str(&access, &context).is_err(), "another key does not open it");
    let opened = crate::support::keyring().open_str(&access, &context).unwrap();
    assert!(issued.access_tokens.contains(opened.expose()), "the server's key does");

    // Listed for the organisation, invisible to others.
    let (_, list) = app.call("GET", "/connections", Some(&admin), None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, theirs) = app.call("GET", "/connections", Some(&outsider), None).await;
    assert!(theirs["items"].as_array().unwrap().is_empty());
    assert_error(
        &app.call("GET", &format!("/connections/{id}"), Some(&outsider), None).await,
        404,
        "connection_not_found",
    );
    assert_error(
        &app.call("DELETE", &format!("/connections/{id}"), Some(&outsider), None).await,
        404,
        "connection_not_found",
    );

    // Refreshed on demand (a 401 from the platform), and stored again.
    let org = videdit_core::OrgId::from_uuid(org);
    let yt = videdit_service::connections::Platforms {
        youtube: Some(std::sync::Arc::new(videdit_publish::youtube::YouTube::new(fake.config()).unwrap())),
        ..Default::default()
    };
    let keyring = crate::support::keyring();
    let cid: uuid::Uuid = id.parse().unwrap();
    let fresh = videdit_service::connections::access_token(&pool, &keyring, &yt, org, cid, true).await.unwrap();
    assert!(fake.issued_tokens().access_tokens.contains(fresh.expose()));
    let stored = videdit_service::connections::access_token(&pool, &keyring, &yt, org, cid, false).await.unwrap();
    assert_eq!(stored.expose(), fresh.expose(), "the refreshed token was stored");

    // The platform refuses the refresh token: the connection says so.
    let refresh_token = fake.issued_tokens().refresh_tokens.last().unwrap().clone();
    let r = reqwest::Client::new()
        .post(format!("{}/revoke", fake.base_url()))
        .form(&[("token", refresh_token)])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let e = videdit_service::connections::access_token(&pool, &keyring, &yt, org, cid, true).await.unwrap_err();
    assert_eq!(e.code(), videdit_core::ErrorCode::NeedsReauthorization);
    let (_, c) = app.call("GET", &format!("/connections/{id}"), Some(&admin), None).await;
    assert_eq!(c["status"], "needs_reauthorization", "{c}");
    assert!(c["statusReason"].is_string());
    // Connecting again repairs it, on the same connection.
    let again = connect(&app, &admin).await;
    assert_eq!((again["id"].as_str(), again["status"].as_str()), (Some(id.as_str()), Some("connected")));

    // Disconnect: revoked at the platform, forgotten here.
    let before = fake.issued_tokens().revoked.len();
    let (status, _) = app.call("DELETE", &format!("/connections/{id}"), Some(&admin), None).await;
    assert_eq!(status, 200);
    assert_eq!(fake.issued_tokens().revoked.len(), before + 1);
    assert_error(
        &app.call("GET", &format!("/connections/{id}"), Some(&admin), None).await,
        404,
        "connection_not_found",
    );
}

#[sqlx::test(migrations = false)]
async fn without_youtube_settings_connecting_answers_a_clear_code(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let admin = token("user_noyt", Some(("org_noyt", "org:admin")));
    assert_error(
        &app.call("GET", "/connections/youtube/authorize", Some(&admin), None).await,
        501,
        "platform_not_configured",
    );
    assert_error(&app.call("GET", "/connections/myspace/authorize", Some(&admin), None).await, 400, "invalid_request");
    let (status, list) = app.call("GET", "/connections", Some(&admin), None).await;
    assert_eq!((status, list["items"].as_array().map(Vec::len)), (200, Some(0)));
}
