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
