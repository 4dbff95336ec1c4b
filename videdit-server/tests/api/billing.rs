//! Billing through the API: without Stripe (off, plans still apply), and a
//! whole life cycle against the fake Stripe on loopback (checkout, signed
//! events, upgrades and downgrades, duplicates, bad signatures, a failed
//! payment, the portal), with other organisations kept apart.

use serde_json::{Value, json};
use sqlx::PgPool;
use videdit_service::billing::{Billing, Plans};

use crate::support::{Options, TestApp, assert_error, spawn_app, token};

pub const PLANS: &str = r#"{"default": "free", "plans": [
    {"id": "free", "name": "Free", "minutesPerPeriod": 5, "maxUploadBytes": 50000000, "maxSourceSeconds": 600,
     "maxShortsPerVideo": 3, "maxRunningJobs": 2},
    {"id": "pro", "name": "Pro", "priceId": "price_pro", "minutesPerPeriod": 600, "maxShortsPerVideo": 10},
    {"id": "max", "name": "Max", "priceId": "price_max"}
]}"#;

pub fn billing(grace_hours: i64) -> Billing {
    Billing { plans: Plans::parse(PLANS).unwrap(), grace: time::Duration::hours(grace_hours) }
}

async fn get_billing(app: &TestApp, t: &str) -> Value {
    let (status, b) = app.call("GET", "/billing", Some(t), None).await;
    assert_eq!(status, 200, "{b}");
    b
}

#[sqlx::test(migrations = false)]
async fn without_stripe_billing_is_off_and_everything_else_works_as_before(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options::default()).await;
    let admin = token("user_nob", Some(("org_nob", "org:admin")));
    let b = get_billing(&app, &admin).await;
    assert_eq!((b["plan"]["id"].as_str(), b["billingEnabled"].as_bool()), (Some("unlimited"), Some(false)), "{b}");
    assert!(b["minutesRemaining"].is_null(), "unlimited: {b}");
    assert_error(
        &app.call("POST", "/billing/checkout", Some(&admin), Some(json!({"plan": "pro"}))).await,
        501,
        "billing_not_configured",
    );
    assert_error(&app.call("POST", "/billing/portal", Some(&admin), None).await, 501, "billing_not_configured");
    let r = app.client.post(app.url("/billing/stripe-webhook")).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 501);
    // A large upload of a long video is fine: no plan limits.
    let (status, plan) = app
        .call("POST", "/uploads", Some(&admin), Some(json!({"fileName": "a.mp4", "contentType": "video/mp4", "size": 9_000_000_000_u64, "durationSeconds": 7200.0})))
        .await;
    assert_eq!(status, 201, "{plan}");
}

#[sqlx::test(migrations = false)]
async fn plans_without_stripe_refuse_uploads_over_their_limits_at_once(pool: PgPool) {
    let app = spawn_app(pool.clone(), Options { billing: billing(24), ..Options::default() }).await;
    let member = token("user_pl", Some(("org_pl", "org:member")));
    let b = get_billing(&app, &member).await;
    assert_eq!(
        (b["plan"]["id"].as_str(), b["minutesRemaining"].as_f64(), b["standing"].as_str()),
        (Some("free"), Some(5.0), Some("default")),
        "{b}"
    );
    assert_eq!(b["plans"].as_array().unwrap().len(), 3);
    let create = |size: u64, duration: Option<f64>| {
        let mut body = json!({"fileName": "a.mp4", "contentType": "video/mp4", "size": size});
        if let Some(d) = duration {
            body["durationSeconds"] = json!(d);
        }
        body
    };
    let too_big = app.call("POST", "/uploads", Some(&member), Some(create(60_000_000, None))).await;
    assert_error(&too_big, 402, "plan_limit_exceeded");
    assert!(too_big.1["message"].as_str().unwrap().contains("the Pro plan gives"), "{}", too_big.1);
    assert_error(
        &app.call("POST", "/uploads", Some(&member), Some(create(10, Some(900.0)))).await,
        402,
        "plan_limit_exceeded",
    );
    assert_error(
        &app.call("POST", "/uploads", Some(&member), Some(create(10, Some(301.0)))).await,
        402,
        "quota_exceeded",
    );
    assert_error(
        &app.call("POST", "/uploads", Some(&member), Some(create(10, Some(-1.0)))).await,
        400,
        "invalid_request",
    );
    let (status, _) = app.call("POST", "/uploads", Some(&member), Some(create(10, Some(299.0)))).await;
    assert_eq!(status, 201);
}

/// The Stripe settings of a test app pointed at `fake`.
pub fn stripe_settings(fake: &videdit_stripe::fake::FakeStripe) -> videdit_server::settings::StripeSettings {
    videdit_server::settings::StripeSettings {
        secret_key: videdit_core::Secret::new(fake.secret_key().to_owned()),
        webhook_secret: videdit_core::Secret::new(fake.webhook_secret().to_owned()),
        publishable_key: Some("pk_test_videdit".into()),
        api_base: fake.base_url(),
        meter_event: Some("videdit_processed_seconds".into()),
        success_url: "http://localhost:3000/billing?checkout=success".into(),
        cancel_url: "http://localhost:3000/billing?checkout=cancel".into(),
        portal_return_url: "http://localhost:3000/billing".into(),
    }
}

/// A fake Stripe with the plans' prices.
pub async fn fake_stripe() -> videdit_stripe::fake::FakeStripe {
    let fake = videdit_stripe::fake::FakeStripe::start().await;
    fake.add_price("price_pro", 1900);
    fake.add_price("price_max", 9900);
    fake
}

async fn deliver_all(
    app: &TestApp,
    fake: &videdit_stripe::fake::FakeStripe,
    events: &[videdit_stripe::fake::SignedEvent],
) {
    for e in events {
        let r = fake.deliver(e, &app.url("/billing/stripe-webhook")).await.unwrap();
        let status = r.status().as_u16();
        assert_eq!(status, 200, "{} was refused: {}", e.kind, r.text().await.unwrap());
    }
}

async fn org_uuid(pool: &PgPool, external: &str) -> uuid::Uuid {
    sqlx::query_scalar("SELECT id FROM videdit.organizations WHERE external_id = $1")
        .bind(external)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn stripe_events_seen(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM videdit.stripe_events").fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_whole_billing_life_cycle_through_the_api_and_the_fake_stripe(pool: PgPool) {
    let fake = fake_stripe().await;
    let options = Options { billing: billing(0), stripe: Some(stripe_settings(&fake)), ..Options::default() };
    let app = spawn_app(pool.clone(), options).await;
    let admin = token("user_bill", Some(("org_bill", "org:admin")));
    let member = token("user_bill_m", Some(("org_bill", "org:member")));
    let outsider = token("user_else", Some(("org_else", "org:admin")));

    let b = get_billing(&app, &admin).await;
    assert_eq!(
        (b["plan"]["id"].as_str(), b["billingEnabled"].as_bool(), b["publishableKey"].as_str()),
        (Some("free"), Some(true), Some("pk_test_videdit")),
        "{b}"
    );
    assert_error(
        &app.call("POST", "/billing/checkout", Some(&member), Some(json!({"plan": "pro"}))).await,
        403,
        "forbidden",
    );
    assert_error(
        &app.call("POST", "/billing/checkout", Some(&admin), Some(json!({"plan": "free"}))).await,
        400,
        "invalid_request",
    );
    assert_error(
        &app.call("POST", "/billing/checkout", Some(&admin), Some(json!({"plan": "gold"}))).await,
        400,
        "invalid_request",
    );
    assert_error(&app.call("POST", "/billing/portal", Some(&admin), None).await, 409, "invalid_state");

    // Checkout: one customer per organisation, reused by a second checkout.
    let (status, first) = app.call("POST", "/billing/checkout", Some(&admin), Some(json!({"plan": "pro"}))).await;
    assert_eq!(status, 200, "{first}");
    assert!(first["url"].as_str().unwrap().starts_with("http"), "{first}");
    let (status, _) = app.call("POST", "/billing/checkout", Some(&admin), Some(json!({"plan": "pro"}))).await;
    assert_eq!(status, 200);
    assert_eq!(fake.customers().len(), 1, "one customer for the organisation");
    let sessions = fake.checkout_sessions();
    assert_eq!(sessions.len(), 2);
    let org = org_uuid(&pool, "org_bill").await.to_string();
    let p = &sessions[1].params;
    assert_eq!(p.get("mode").map(String::as_str), Some("subscription"));
    assert_eq!(p.get("client_reference_id"), Some(&org));
    assert_eq!(p.get("line_items[0][price]").map(String::as_str), Some("price_pro"));
    assert_eq!(p.get("success_url").map(String::as_str), Some("http://localhost:3000/billing?checkout=success"));
    let session = sessions[1].session["id"].as_str().unwrap().to_owned();

    // Stripe confirms: the plan is active.
    let events = fake.complete_checkout(&session);
    deliver_all(&app, &fake, &events).await;
    let b = get_billing(&app, &admin).await;
    assert_eq!(
        (b["plan"]["id"].as_str(), b["standing"].as_str(), b["minutesRemaining"].as_f64()),
        (Some("pro"), Some("subscribed"), Some(600.0)),
        "{b}"
    );
    // Delivered again (Stripe retries): nothing happens twice.
    let seen = stripe_events_seen(&pool).await;
    for e in &events {
        let r = fake.deliver(e, &app.url("/billing/stripe-webhook")).await.unwrap();
        assert_eq!(r.json::<Value>().await.unwrap()["outcome"], "duplicate");
    }
    assert_eq!(stripe_events_seen(&pool).await, seen);
    let sub = fake.subscriptions()[0]["id"].as_str().unwrap().to_owned();

    // Bad, stale and missing signatures: 400, nothing changed.
    fake.advance_clock(std::time::Duration::from_secs(5));
    let upgrade = fake.change_price(&sub, "price_max");
    let url = app.url("/billing/stripe-webhook");
    for bad in [fake.signed_with(&upgrade[0], "whsec_wrong"), fake.stale(&upgrade[0])] {
        let r = fake.deliver(&bad, &url).await.unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "webhook_signature_invalid");
    }
    let unsigned = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(upgrade[0].body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 400);
    let tampered = videdit_stripe::fake::SignedEvent {
        body: upgrade[0].body.iter().map(|b| if *b == b'x' { b'y' } else { *b }).collect(),
        ..upgrade[0].clone()
    };
    assert_eq!(fake.deliver(&tampered, &url).await.unwrap().status(), 400);
    assert_eq!(stripe_events_seen(&pool).await, seen, "nothing was recorded");
    assert_eq!(get_billing(&app, &admin).await["plan"]["id"], "pro");

    // Upgrade, then a downgrade whose events arrive out of order.
    deliver_all(&app, &fake, &upgrade).await;
    assert_eq!(get_billing(&app, &admin).await["plan"]["id"], "max");
    fake.advance_clock(std::time::Duration::from_secs(5));
    let downgrade = fake.change_price(&sub, "price_pro");
    fake.advance_clock(std::time::Duration::from_secs(5));
    let back_up = fake.change_price(&sub, "price_max");
    deliver_all(&app, &fake, &back_up).await;
    deliver_all(&app, &fake, &downgrade).await;
    assert_eq!(
        get_billing(&app, &admin).await["plan"]["id"],
        "max",
        "the newer change wins whatever the arrival order"
    );

    // Payment fails: the grace period (0 h here) ends at once: the free plan's limits.
    fake.advance_clock(std::time::Duration::from_secs(5));
    deliver_all(&app, &fake, &fake.fail_invoice(&sub)).await;
    let b = get_billing(&app, &admin).await;
    assert_eq!((b["plan"]["id"].as_str(), b["standing"].as_str()), (Some("free"), Some("payment_overdue")), "{b}");
    assert!(b["graceUntil"].is_string());
    assert_error(
        &app.call(
            "POST",
            "/uploads",
            Some(&admin),
            Some(json!({"fileName": "a.mp4", "contentType": "video/mp4", "size": 60_000_000})),
        )
        .await,
        402,
        "plan_limit_exceeded",
    );
    // Paid again: the plan is back.
    fake.advance_clock(std::time::Duration::from_secs(5));
    deliver_all(&app, &fake, &fake.pay_invoice(&sub)).await;
    let b = get_billing(&app, &admin).await;
    assert_eq!((b["plan"]["id"].as_str(), b["standing"].as_str()), (Some("max"), Some("subscribed")), "{b}");

    // The portal, for admins.
    let (status, portal) = app.call("POST", "/billing/portal", Some(&admin), None).await;
    assert_eq!(status, 200, "{portal}");
    assert_eq!(fake.portal_sessions().len(), 1);
    assert_error(&app.call("POST", "/billing/portal", Some(&member), None).await, 403, "forbidden");

    // Another organisation sees only its own billing and cannot open this one's portal.
    let other = get_billing(&app, &outsider).await;
    assert_eq!((other["plan"]["id"].as_str(), other["standing"].as_str()), (Some("free"), Some("default")), "{other}");
    assert_error(&app.call("POST", "/billing/portal", Some(&outsider), None).await, 409, "invalid_state");

    // Cancelled: back to the free plan; the events went out as domain events.
    fake.advance_clock(std::time::Duration::from_secs(5));
    deliver_all(&app, &fake, &fake.cancel_subscription(&sub)).await;
    assert_eq!(get_billing(&app, &admin).await["plan"]["id"], "free");
    let (_, events) =
        app.call("GET", "/events?types=billing.plan_changed,billing.payment_failed", Some(&admin), None).await;
    let kinds: Vec<&str> = events["items"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"billing.payment_failed"), "{kinds:?}");
    let changes = kinds.iter().filter(|k| **k == "billing.plan_changed").count();
    assert_eq!(changes, 5, "free→pro→max, max→free (overdue), free→max (paid), max→free (cancelled): {kinds:?}");
    let (_, theirs) = app.call("GET", "/events?types=billing.plan_changed", Some(&outsider), None).await;
    assert!(theirs["items"].as_array().unwrap().is_empty(), "{theirs}");
}
