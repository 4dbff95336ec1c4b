//! Authentication failures give 401 with a code; claims map to orgs and roles.

use std::sync::atomic::Ordering;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use sqlx::PgPool;

use crate::support::{Options, assert_error, claims, other_key, spawn_app, test_key, token, token_with};

#[sqlx::test(migrations = false)]
async fn health_needs_no_auth_and_the_api_does(pool: PgPool) {
    let app = spawn_app(pool, Options::default()).await;
    let r = app.client.get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.client.get(format!("{}/readyz", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body, json!({"database": true, "storage": true}));

    assert_error(&app.call("GET", "/videos", None, None).await, 401, "unauthenticated");
    assert_error(&app.call("GET", "/videos", Some("not-a-jwt"), None).await, 401, "invalid_token");
    let r = app.client.get(app.url("/videos")).header("authorization", "Basic dXNlcjpwYXNz").send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Metrics answer loopback peers (the test client) in Prometheus text.
    let m = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap();
    assert_eq!(m.status(), 200);
    let text = m.text().await.unwrap();
    assert!(text.contains("videdit_http_requests_total{method=\"GET\",status=\"2xx\"}"), "{text}");
    assert!(text.contains("videdit_http_requests_total{method=\"GET\",status=\"4xx\"}"), "{text}");
    // Unknown routes are JSON too.
    assert_error(&app.call("GET", "/nope", Some(&token("user_a", None)), None).await, 404, "not_found");
}

#[sqlx::test(migrations = false)]
async fn bad_tokens_are_refused_with_their_code(pool: PgPool) {
    let app = spawn_app(pool, Options::default()).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();

    // Signed by another key under our kid: bad signature.
    let forged = token_with(claims("user_a", None), "test-key-1", other_key());
    assert_error(&app.call("GET", "/videos", Some(&forged), None).await, 401, "invalid_token");

    // Expired beyond the leeway.
    let mut c = claims("user_a", None);
    c["exp"] = json!(now - 60);
    let expired = token_with(c, "test-key-1", test_key());
    assert_error(&app.call("GET", "/videos", Some(&expired), None).await, 401, "token_expired");

    // Wrong issuer.
    let mut c = claims("user_a", None);
    c["iss"] = json!("https://evil.example.com");
    assert_error(
        &app.call("GET", "/videos", Some(&token_with(c, "test-key-1", test_key())), None).await,
        401,
        "invalid_token",
    );

    // Not yet valid.
    let mut c = claims("user_a", None);
    c["nbf"] = json!(now + 600);
    assert_error(
        &app.call("GET", "/videos", Some(&token_with(c, "test-key-1", test_key())), None).await,
        401,
        "invalid_token",
    );

    // Unknown kid: refused; the JWKS is re-fetched, but not on every request.
    let unknown = token_with(claims("user_a", None), "no-such-key", test_key());
    for _ in 0..5 {
        assert_error(&app.call("GET", "/videos", Some(&unknown), None).await, 401, "invalid_token");
    }
    assert!(app.jwks_hits.load(Ordering::SeqCst) <= 2, "JWKS fetched {} times", app.jwks_hits.load(Ordering::SeqCst));

    // A valid token works.
    assert_eq!(app.call("GET", "/videos", Some(&token("user_a", None)), None).await.0, 200);
}

#[sqlx::test(migrations = false)]
async fn a_rotated_key_is_picked_up_and_the_removed_key_stops_working(pool: PgPool) {
    let app = spawn_app(pool, Options::default()).await;
    let old = token("user_a", None);
    assert_eq!(app.call("GET", "/videos", Some(&old), None).await.0, 200);
    app.rotated.store(true, Ordering::SeqCst);
    // The new key is fetched once the refresh interval (200 ms) has passed.
    let new = token_with(claims("user_a", None), "test-key-2", other_key());
    until_accepted(&app, &new, (401, "invalid_token")).await;
    // The removed key's tokens fail from now on, even freshly signed ones.
    let got = app.call("GET", "/videos", Some(&old), None).await;
    assert_error(&got, 401, "invalid_token");
    assert_eq!(got.1["message"], "invalid token: unknown signing key \"test-key-1\"");
    let fresh_old = token_with(claims("user_b", None), "test-key-1", test_key());
    assert_error(&app.call("GET", "/videos", Some(&fresh_old), None).await, 401, "invalid_token");
}

/// Keys are fetched again once older than their age (2 s in tests), so a
/// key the identity provider removed stops being trusted even when no
/// token names an unknown key.
#[sqlx::test(migrations = false)]
async fn a_removed_key_stops_being_trusted_after_the_periodic_refresh(pool: PgPool) {
    let app = spawn_app(pool, Options::default()).await;
    let old = token("user_a", None);
    assert_eq!(app.call("GET", "/videos", Some(&old), None).await.0, 200);
    let fetches = app.jwks_hits.load(Ordering::SeqCst);
    app.rotated.store(true, Ordering::SeqCst);
    assert_eq!(app.call("GET", "/videos", Some(&old), None).await.0, 200, "cached keys still trusted");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let fresh_old = token_with(claims("user_c", None), "test-key-1", test_key());
    let got = app.call("GET", "/videos", Some(&fresh_old), None).await;
    assert_error(&got, 401, "invalid_token");
    assert_eq!(got.1["message"], "invalid token: unknown signing key \"test-key-1\"");
    assert_eq!(app.jwks_hits.load(Ordering::SeqCst), fetches + 1, "one refresh");
}

/// A Clerk session that has not finished signing in (`sts: pending`) is
/// not an active session.
#[sqlx::test(migrations = false)]
async fn pending_sessions_are_refused(pool: PgPool) {
    let app = spawn_app(pool, Options::default()).await;
    let mut pending = claims("user_p", None);
    pending["sts"] = json!("pending");
    let got = app.call("GET", "/videos", Some(&token_with(pending, "test-key-1", test_key())), None).await;
    assert_error(&got, 401, "invalid_token");
    assert_eq!(got.1["message"], "invalid token: the session is pending: finish signing in first");
    let mut active = claims("user_p", None);
    active["sts"] = json!("active");
    assert_eq!(app.call("GET", "/videos", Some(&token_with(active, "test-key-1", test_key())), None).await.0, 200);
}

#[sqlx::test(migrations = false)]
async fn wrong_algorithms_and_missing_key_ids_are_refused(pool: PgPool) {
    let app = spawn_app(pool, Options::default()).await;
    // HS256 "signed" with the public key's bytes: the classic confusion attack.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("test-key-1".into());
    let hs =
        jsonwebtoken::encode(&header, &claims("user_a", None), &EncodingKey::from_secret(b"public key bytes")).unwrap();
    let got = app.call("GET", "/videos", Some(&hs), None).await;
    assert_error(&got, 401, "invalid_token");
    assert_eq!(got.1["message"], "invalid token: algorithm HS256 is not RS256");
    // RS512 with the right key is still not what Clerk signs with.
    let mut header = Header::new(Algorithm::RS512);
    header.kid = Some("test-key-1".into());
    let rs512 = jsonwebtoken::encode(&header, &claims("user_a", None), &EncodingKey::from_rsa_pem(test_key()).unwrap())
        .unwrap();
    let got = app.call("GET", "/videos", Some(&rs512), None).await;
    assert_error(&got, 401, "invalid_token");
    assert_eq!(got.1["message"], "invalid token: algorithm RS512 is not RS256");
    // No kid at all.
    let no_kid = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims("user_a", None),
        &EncodingKey::from_rsa_pem(test_key()).unwrap(),
    )
    .unwrap();
    let got = app.call("GET", "/videos", Some(&no_kid), None).await;
    assert_error(&got, 401, "invalid_token");
    assert_eq!(got.1["message"], "invalid token: the token names no key (kid)");
    // alg "none" with no signature.
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": "test-key-1", "typ": "JWT"})),
        b64(&claims("user_a", None))
    );
    assert_error(&app.call("GET", "/videos", Some(&unsigned), None).await, 401, "invalid_token");
}

fn b64(v: &serde_json::Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[sqlx::test(migrations = false)]
async fn audience_and_authorized_party_are_checked(pool: PgPool) {
    let app = spawn_app(pool, Options::default()).await;
    let sign = |c| token_with(c, "test-key-1", test_key());
    let mut c = claims("user_a", None);
    c["aud"] = json!("someone-else");
    let got = app.call("GET", "/videos", Some(&sign(c)), None).await;
    assert_error(&got, 401, "invalid_token");
    assert_eq!(got.1["message"], "invalid token: InvalidAudience");
    let mut c = claims("user_a", None);
    c.as_object_mut().unwrap().remove("aud");
    assert_error(&app.call("GET", "/videos", Some(&sign(c)), None).await, 401, "invalid_token");
    let mut c = claims("user_a", None);
    c["azp"] = json!("https://evil.example.com");
    let got = app.call("GET", "/videos", Some(&sign(c)), None).await;
    assert_error(&got, 401, "invalid_token");
    assert_eq!(got.1["message"], "invalid token: the token's authorized party (azp) is not allowed");
    let mut c = claims("user_a", None);
    c.as_object_mut().unwrap().remove("azp");
    assert_error(&app.call("GET", "/videos", Some(&sign(c)), None).await, 401, "invalid_token");
    assert_eq!(app.call("GET", "/videos", Some(&token("user_a", None)), None).await.0, 200);
}

#[sqlx::test(migrations = false)]
async fn an_identity_provider_outage_is_auth_unavailable(pool: PgPool) {
    let app = spawn_app(pool, Options { jwks_down: true, ..Options::default() }).await;
    let t = token("user_a", None);
    // Every request during the outage says so (503, retryable), also those
    // inside the refresh interval that do not fetch again.
    for _ in 0..3 {
        let got = app.call("GET", "/videos", Some(&t), None).await;
        assert_error(&got, 503, "auth_unavailable");
        assert!(got.1["message"].as_str().unwrap().starts_with("the identity provider's keys are unavailable"));
    }
    assert!(app.jwks_hits.load(Ordering::SeqCst) <= 2, "fetched {} times", app.jwks_hits.load(Ordering::SeqCst));
    // Back up: the next fetch after the interval succeeds.
    app.jwks.down.store(false, Ordering::SeqCst);
    until_accepted(&app, &t, (503, "auth_unavailable")).await;
}

#[sqlx::test(migrations = false)]
async fn both_org_claim_shapes_land_in_the_same_organisation(pool: PgPool) {
    let app = spawn_app(pool, Options::default()).await;
    let v1 = token("user_a", Some(("org_shared", "org:admin")));
    let created = app
        .call("POST", "/uploads", Some(&v1), Some(json!({"fileName": "a.mp4", "contentType": "video/mp4", "size": 10})))
        .await;
    assert_eq!(created.0, 201, "{}", created.1);
    let mut c = claims("user_b", None);
    c["v"] = json!(2);
    c["o"] = json!({"id": "org_shared", "rol": "member", "slg": "shared"});
    let v2 = token_with(c, "test-key-1", test_key());
    let listed = app.call("GET", "/videos", Some(&v2), None).await;
    assert_eq!(listed.0, 200);
    assert_eq!(listed.1["items"].as_array().unwrap().len(), 1, "a member sees the organisation's videos");
    // A user without an organisation works in a personal workspace.
    let solo = app.call("GET", "/videos", Some(&token("user_c", None)), None).await;
    assert_eq!(solo.1["items"].as_array().unwrap().len(), 0);
}

#[sqlx::test(migrations = false)]
async fn members_may_not_do_what_the_role_matrix_reserves_for_admins(pool: PgPool) {
    let app = spawn_app(pool, Options::default()).await;
    let admin = token("user_admin", Some(("org_team", "org:admin")));
    let member = token("user_member", Some(("org_team", "org:member")));
    let created = app
        .call(
            "POST",
            "/uploads",
            Some(&member),
            Some(json!({"fileName": "a.mp4", "contentType": "video/mp4", "size": 10})),
        )
        .await;
    assert_eq!(created.0, 201, "members may upload");
    let video = created.1["videoId"].as_str().unwrap().to_owned();
    let renamed = app.call("PATCH", &format!("/videos/{video}"), Some(&member), Some(json!({"title": "Mine"}))).await;
    assert_eq!(renamed.0, 200, "members may rename");
    assert_error(&app.call("DELETE", &format!("/videos/{video}"), Some(&member), None).await, 403, "forbidden");
    let deleted = app.call("DELETE", &format!("/videos/{video}"), Some(&admin), None).await;
    assert_eq!(deleted.0, 200, "{}", deleted.1);
}

#[sqlx::test(migrations = false)]
async fn requests_are_rate_limited_per_user(pool: PgPool) {
    let mut options = Options::default();
    options.limits.requests_per_second = 0.01;
    options.limits.request_burst = 3.0;
    let app = spawn_app(pool, options).await;
    let t = token("user_busy", None);
    for _ in 0..3 {
        assert_eq!(app.call("GET", "/videos", Some(&t), None).await.0, 200);
    }
    assert_error(&app.call("GET", "/videos", Some(&t), None).await, 429, "rate_limited");
    assert_eq!(app.call("GET", "/videos", Some(&token("user_calm", None)), None).await.0, 200);
}

/// Polls `GET /videos` with `token` until it is accepted; until then every
/// answer must be the `meanwhile` error. Panics after 30 s.
async fn until_accepted(app: &crate::support::TestApp, token: &str, meanwhile: (u16, &str)) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let got = app.call("GET", "/videos", Some(token), None).await;
        if got.0 == 200 {
            return;
        }
        assert_error(&got, meanwhile.0, meanwhile.1);
        assert!(std::time::Instant::now() < deadline, "never accepted; last answer {}", got.1);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
