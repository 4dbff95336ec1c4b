//! Outbound webhooks end to end: a real HTTP receiver on loopback, the
//! worker's delivery jobs, and every delivery verified with the
//! `standardwebhooks` crate (an implementation of the spec that is not ours).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{EndpointExt, Request, Response, Route, handler};
use serde_json::{Value, json};
use sqlx::PgPool;
use videdit_queue::Processed;

use crate::support::{Options, TestApp, assert_error, spawn_app, token};

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: poem::http::HeaderMap,
    pub body: Vec<u8>,
}

/// A webhook receiver: records requests, answers with queued statuses
/// (200 once the queue is empty); `/redirect` answers 302 to `/target`.
#[derive(Clone, Default)]
pub struct Receiver {
    pub got: Arc<Mutex<Vec<Received>>>,
    pub statuses: Arc<Mutex<VecDeque<u16>>>,
}

#[handler]
async fn receive(req: &Request, body: Vec<u8>, Data(r): Data<&Receiver>) -> Response {
    let path = req.uri().path().to_owned();
    r.got.lock().unwrap().push(Received { path: path.clone(), headers: req.headers().clone(), body });
    if path == "/redirect" {
        return Response::builder().status(poem::http::StatusCode::FOUND).header("location", "/target").finish();
    }
    let status = r.statuses.lock().unwrap().pop_front().unwrap_or(200);
    Response::builder().status(poem::http::StatusCode::from_u16(status).unwrap()).body("ok")
}

impl Receiver {
    /// Serves on a free loopback port; returns its base URL.
    pub async fn start(&self) -> String {
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
        let app = Route::new().at("/*path", poem::post(receive)).data(self.clone());
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
        format!("http://{addr}")
    }

    pub fn requests(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// Verifies a delivery with the reference implementation.
#[track_caller]
pub fn verify(secret: &str, r: &Received) {
    let wh = standardwebhooks::Webhook::new(secret).unwrap();
    wh.verify(&r.body, &r.headers).unwrap_or_else(|e| panic!("{e:?}: {:?}", r.headers));
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers.get(name).unwrap().to_str().unwrap()
}

/// A worker for the webhook queue, driven one job at a time.
fn delivery_worker(pool: &PgPool, app: &TestApp) -> videdit_queue::Worker {
    app.queue_worker(pool, "webhooks")
}

/// Makes every snoozed delivery due now (the schedule's waits are minutes).
async fn make_due(pool: &PgPool) {
    sqlx::query("UPDATE videdit_queue.jobs SET run_at = now() WHERE kind = 'deliver_webhook'")
        .execute(pool)
        .await
        .unwrap();
}

async fn create_endpoint(app: &TestApp, t: &str, url: &str) -> Value {
    let (status, body) = app.call("POST", "/webhooks", Some(t), Some(json!({"url": url}))).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// An admin of `org` and a new endpoint at `url`: (admin token, id, secret).
async fn admin_endpoint(app: &TestApp, org: &str, url: &str) -> (String, String, String) {
    let admin = token("user_admin", Some((org, "org:admin")));
    let hook = create_endpoint(app, &admin, url).await;
    let (id, secret) = (hook["id"].as_str().unwrap().to_owned(), hook["secret"].as_str().unwrap().to_owned());
    assert!(secret.starts_with("whsec_"), "{hook}");
    (admin, id, secret)
}

#[sqlx::test(migrations = false)]
async fn deliveries_verify_with_the_reference_library_also_across_a_rotation(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let receiver = Receiver::default();
    let base = receiver.start().await;
    let admin = token("user_admin", Some(("org_hooks", "org:admin")));
    let hook = create_endpoint(&app, &admin, &format!("{base}/hook")).await;
    let old_secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(old_secret.starts_with("whsec_"), "{hook}");
    let id = hook["id"].as_str().unwrap().to_owned();
    // The secret is shown once.
    let (_, got) = app.call("GET", &format!("/webhooks/{id}"), Some(&admin), None).await;
    assert!(got.get("secret").is_none(), "{got}");

    let worker = delivery_worker(&pool, &app);
    let (status, sent) = app.call("POST", &format!("/webhooks/{id}/test"), Some(&admin), None).await;
    assert_eq!(status, 200, "{sent}");
    assert!(matches!(worker.process_next().await.unwrap(), Processed::Completed(_)));
    let first = &receiver.requests()[0];
    verify(&old_secret, first);
    assert_eq!(header(first, "webhook-id"), sent["eventId"]);
    let body: Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(body["type"], "webhook.test");
    assert_eq!(body["id"], sent["eventId"]);
    assert_eq!(body["data"]["webhookId"], id.as_str());

    // Rotation: the old secret signs beside the new one for a day.
    let (status, rotated) = app.call("POST", &format!("/webhooks/{id}/rotate-secret"), Some(&admin), None).await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, old_secret);
    assert!(rotated["previousSecretExpiresAt"].is_string(), "{rotated}");
    app.call("POST", &format!("/webhooks/{id}/test"), Some(&admin), None).await;
    assert!(matches!(worker.process_next().await.unwrap(), Processed::Completed(_)));
    let second = &receiver.requests()[1];
    assert_eq!(header(second, "webhook-signature").split(' ').count(), 2, "both signatures are sent");
    verify(&old_secret, second);
    verify(&new_secret, second);
    // A secret that never belonged to the endpoint does not verify.
    let stranger = standardwebhooks::Webhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    assert!(stranger.verify(&second.body, &second.headers).is_err());

    let (_, deliveries) = app.call("GET", &format!("/webhooks/{id}/deliveries"), Some(&admin), None).await;
    let deliveries = deliveries.as_array().unwrap();
    assert_eq!(deliveries.len(), 2);
    for d in deliveries {
        assert_eq!(
            (d["status"].as_str(), d["attempts"].as_i64(), d["responseStatus"].as_i64()),
            (Some("delivered"), Some(1), Some(200))
        );
        assert!(d["latencyMs"].as_i64().is_some(), "{d}");
    }
}

/// Signing secrets are stored sealed (never in the clear), bound to their
/// organisation: a sealed secret copied into another organisation's
/// endpoint does not sign there. A secret stored in the clear by an older
/// version still signs, so upgrading loses no endpoint.
#[sqlx::test(migrations = false)]
async fn signing_secrets_are_sealed_at_rest_and_bound_to_their_organisation(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let receiver = Receiver::default();
    let base = receiver.start().await;
    let (admin, id, secret) = admin_endpoint(&app, "org_seal", &format!("{base}/hook")).await;
    let (_, rotated) = app.call("POST", &format!("/webhooks/{id}/rotate-secret"), Some(&admin), None).await;
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    let stored: (String, String) =
        sqlx::query_as("SELECT secret, previous_secret FROM videdit.webhook_endpoints WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
    for (value, plain) in [(&stored.0, &new_secret), (&stored.1, &secret)] {
        assert!(value.starts_with("v1.test-1."), "sealed with the ring's first key: {value}");
        let key_part = plain.trim_start_matches("whsec_");
        assert!(!value.contains(key_part), "no secret in the clear");
    }

    // Another organisation's endpoint given this endpoint's sealed secret.
    let other = token("user_other", Some(("org_other", "org:admin")));
    let theirs = create_endpoint(&app, &other, &format!("{base}/theirs")).await;
    let their_id = theirs["id"].as_str().unwrap().to_owned();
    sqlx::query("UPDATE videdit.webhook_endpoints SET secret = $1 WHERE id = $2::uuid")
        .bind(&stored.0)
        .bind(&their_id)
        .execute(&pool)
        .await
        .unwrap();
    let worker = delivery_worker(&pool, &app);
    app.call("POST", &format!("/webhooks/{their_id}/test"), Some(&other), None).await;
    assert!(matches!(worker.process_next().await.unwrap(), Processed::Retried(_) | Processed::Dead(_)));
    assert!(receiver.requests().is_empty(), "nothing is signed with a secret that does not open");

    // A secret stored in the clear (before sealing) still signs.
    let legacy = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    sqlx::query("UPDATE videdit.webhook_endpoints SET secret = $1, previous_secret = NULL WHERE id = $2::uuid")
        .bind(legacy)
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    app.call("POST", &format!("/webhooks/{id}/test"), Some(&admin), None).await;
    assert!(matches!(worker.process_next().await.unwrap(), Processed::Completed(_)));
    verify(legacy, &receiver.requests()[0]);
}

/// After a key rotation (a new key first in `ENCRYPTION_KEYS`), the
/// maintenance pass seals every stored secret (and one still in the clear)
/// with the new key, and deliveries keep verifying with the same secret;
/// then the old key can leave the ring.
#[sqlx::test(migrations = false)]
async fn the_maintenance_pass_seals_every_secret_again_after_a_key_rotation(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let receiver = Receiver::default();
    let base = receiver.start().await;
    let (_, _, secret) = admin_endpoint(&app, "org_rot", &format!("{base}/a")).await;
    let (admin, legacy_id, _) = admin_endpoint(&app, "org_rot", &format!("{base}/b")).await;
    let legacy = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    sqlx::query("UPDATE videdit.webhook_endpoints SET secret = $1 WHERE id = $2::uuid")
        .bind(legacy)
        .bind(&legacy_id)
        .execute(&pool)
        .await
        .unwrap();

    let new_key = "test-2:bmV3LWtleS10aGlydHktdHdvLWJ5dGVzLWxvbmchISE=";
    let rotated = format!("{new_key},{}", crate::support::TEST_KEYS);
    let maintenance = app.queue_worker_with_keys(&pool, "maintenance", &rotated);
    let mut conn = pool.acquire().await.unwrap();
    videdit_server::handlers::schedule_cleanup(&mut conn, time::OffsetDateTime::now_utc()).await.unwrap();
    drop(conn);
    assert!(matches!(maintenance.process_next().await.unwrap(), Processed::Completed(_)));
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT secret FROM videdit.webhook_endpoints ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|s| s.starts_with("v1.test-2.")), "{stored:?}");

    // Only the new key now: both endpoints still sign with their secrets.
    let delivery = app.queue_worker_with_keys(&pool, "webhooks", new_key);
    let (_, hooks) = app.call("GET", "/webhooks", Some(&admin), None).await;
    for hook in hooks.as_array().unwrap() {
        app.call("POST", &format!("/webhooks/{}/test", hook["id"].as_str().unwrap()), Some(&admin), None).await;
        assert!(matches!(delivery.process_next().await.unwrap(), Processed::Completed(_)));
    }
    let got = receiver.requests();
    assert_eq!(got.len(), 2);
    let by_path = |p: &str| got.iter().find(|r| r.path == p).unwrap();
    verify(&secret, by_path("/a"));
    verify(legacy, by_path("/b"));
}

#[sqlx::test(migrations = false)]
async fn a_failing_receiver_gets_the_same_event_again_until_it_answers_2xx(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let receiver = Receiver::default();
    receiver.statuses.lock().unwrap().extend([500, 500, 500]);
    let base = receiver.start().await;
    let (admin, id, secret) = admin_endpoint(&app, "org_hooks", &format!("{base}/flaky")).await;
    let worker = delivery_worker(&pool, &app);
    let (_, sent) = app.call("POST", &format!("/webhooks/{id}/test"), Some(&admin), None).await;
    for attempt in 1..=3 {
        assert!(matches!(worker.process_next().await.unwrap(), Processed::Snoozed(_)), "attempt {attempt}");
        let (_, d) = app.call("GET", &format!("/webhooks/{id}/deliveries"), Some(&admin), None).await;
        assert_eq!((d[0]["status"].as_str(), d[0]["attempts"].as_i64()), (Some("pending"), Some(attempt)));
        assert_eq!(d[0]["responseStatus"], 500);
        // Not due before the schedule says (5 s after the first failure, then 5 min, …).
        assert!(matches!(worker.process_next().await.unwrap(), Processed::Empty), "retried too early");
        make_due(&pool).await;
    }
    assert!(matches!(worker.process_next().await.unwrap(), Processed::Completed(_)));
    let got = receiver.requests();
    assert_eq!(got.len(), 4);
    for r in &got {
        assert_eq!(header(r, "webhook-id"), sent["eventId"], "the same id on every retry");
        verify(&secret, r);
    }
    let (_, d) = app.call("GET", &format!("/webhooks/{id}/deliveries"), Some(&admin), None).await;
    assert_eq!((d[0]["status"].as_str(), d[0]["attempts"].as_i64()), (Some("delivered"), Some(4)));

    // A replay sends it again, with the same id.
    let delivery = d[0]["id"].as_str().unwrap();
    let (status, replayed) =
        app.call("POST", &format!("/webhooks/{id}/deliveries/{delivery}/replay"), Some(&admin), None).await;
    assert_eq!((status, replayed["status"].as_str()), (200, Some("pending")), "{replayed}");
    assert!(matches!(worker.process_next().await.unwrap(), Processed::Completed(_)));
    assert_eq!(header(&receiver.requests()[4], "webhook-id"), sent["eventId"]);
}

#[sqlx::test(migrations = false)]
async fn gone_disables_the_endpoint_and_a_redirect_is_not_followed(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let receiver = Receiver::default();
    let base = receiver.start().await;
    let admin = token("user_admin", Some(("org_hooks", "org:admin")));
    let worker = delivery_worker(&pool, &app);

    let moved = create_endpoint(&app, &admin, &format!("{base}/redirect")).await;
    let moved_id = moved["id"].as_str().unwrap();
    app.call("POST", &format!("/webhooks/{moved_id}/test"), Some(&admin), None).await;
    assert!(matches!(worker.process_next().await.unwrap(), Processed::Snoozed(_)), "a redirect is a failure");
    let (_, d) = app.call("GET", &format!("/webhooks/{moved_id}/deliveries"), Some(&admin), None).await;
    assert_eq!((d[0]["status"].as_str(), d[0]["responseStatus"].as_i64()), (Some("pending"), Some(302)));
    assert!(receiver.requests().iter().all(|r| r.path != "/target"), "the Location was not followed");
    sqlx::query("DELETE FROM videdit_queue.jobs").execute(&pool).await.unwrap();

    receiver.statuses.lock().unwrap().push_back(410);
    let gone = create_endpoint(&app, &admin, &format!("{base}/gone")).await;
    let gone_id = gone["id"].as_str().unwrap();
    app.call("POST", &format!("/webhooks/{gone_id}/test"), Some(&admin), None).await;
    assert!(matches!(worker.process_next().await.unwrap(), Processed::Completed(_)));
    let (_, endpoint) = app.call("GET", &format!("/webhooks/{gone_id}"), Some(&admin), None).await;
    assert_eq!(endpoint["enabled"], false, "{endpoint}");
    assert_eq!(endpoint["disabledReason"], "the receiver answered 410 Gone");
    let (_, events) = app.call("GET", "/events?types=webhook.endpoint_disabled", Some(&admin), None).await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1, "{events}");
    assert_eq!(events["items"][0]["data"]["webhookId"], gone_id);
    // A disabled endpoint gets no test, until it is enabled again.
    assert_error(
        &app.call("POST", &format!("/webhooks/{gone_id}/test"), Some(&admin), None).await,
        409,
        "invalid_state",
    );
    let (status, enabled) =
        app.call("PATCH", &format!("/webhooks/{gone_id}"), Some(&admin), Some(json!({"enabled": true}))).await;
    assert_eq!((status, enabled["enabled"].as_bool()), (200, Some(true)), "{enabled}");
    assert!(enabled.get("disabledReason").is_none(), "{enabled}");
}

#[sqlx::test(migrations = false)]
async fn an_endpoint_failing_for_five_days_is_disabled(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let receiver = Receiver::default();
    receiver.statuses.lock().unwrap().push_back(503);
    let base = receiver.start().await;
    let admin = token("user_admin", Some(("org_hooks", "org:admin")));
    let hook = create_endpoint(&app, &admin, &format!("{base}/down")).await;
    let id = hook["id"].as_str().unwrap();
    sqlx::query("UPDATE videdit.webhook_endpoints SET failing_since = now() - interval '5 days 1 minute'")
        .execute(&pool)
        .await
        .unwrap();
    app.call("POST", &format!("/webhooks/{id}/test"), Some(&admin), None).await;
    assert!(matches!(delivery_worker(&pool, &app).process_next().await.unwrap(), Processed::Completed(_)));
    let (_, endpoint) = app.call("GET", &format!("/webhooks/{id}"), Some(&admin), None).await;
    assert_eq!(
        (endpoint["enabled"].as_bool(), endpoint["disabledReason"].as_str()),
        (Some(false), Some("no successful delivery for 5 days"))
    );
}

#[sqlx::test(migrations = false)]
async fn endpoints_at_internal_addresses_are_refused(pool: PgPool) {
    let strict = Options { webhook_policy: videdit_webhooks::UrlPolicy::STRICT, ..Options::default() };
    let app = spawn_app(pool.clone(), strict).await;
    let admin = token("user_admin", Some(("org_hooks", "org:admin")));
    for url in [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/hook",
        "https://[::1]:8443/hook",
        "https://localhost:8443/hook",
        "http://example.com/hook",
    ] {
        let got = app.call("POST", "/webhooks", Some(&admin), Some(json!({"url": url}))).await;
        assert_error(&got, 400, "webhook_url_refused");
    }
    // Loopback allowed (development) does not open the metadata or private ranges.
    let dev = spawn_app(pool, Options::default()).await;
    for url in ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/hook", "http://192.168.1.1/hook"] {
        assert_error(
            &dev.call("POST", "/webhooks", Some(&admin), Some(json!({"url": url}))).await,
            400,
            "webhook_url_refused",
        );
    }
    let (_, list) = dev.call("GET", "/webhooks", Some(&admin), None).await;
    assert_eq!(list, json!([]));
}
