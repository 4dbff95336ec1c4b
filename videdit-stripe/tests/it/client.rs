//! `StripeClient` against the fake.

use std::collections::BTreeMap;
use std::time::Duration;

use videdit_core::Secret;
use videdit_stripe::fake::{FakeStripe, Fault};
use videdit_stripe::{MeterEvent, StripeClient, StripeError};

use crate::support::{checkout_request, impatient_client, raw, setup};

#[tokio::test]
async fn customer_with_reused_idempotency_key_is_created_once() {
    let (fake, client) = setup().await;
    let first = client.create_customer("org_1", Some("Acme"), "customer-org_1").await.unwrap();
    let again = client.create_customer("org_1", Some("Acme"), "customer-org_1").await.unwrap();
    assert!(first.starts_with("cus_"), "{first}");
    assert_eq!(first, again);
    assert_eq!(fake.customers().len(), 1);
    assert_eq!(fake.request_count("/v1/customers"), 2);
    let customer = fake.customer(&first).unwrap();
    assert_eq!(customer["object"], "customer");
    assert_eq!(customer["name"], "Acme");
    assert_eq!(customer["metadata"], serde_json::json!({ "org_id": "org_1" }));
    assert_eq!(customer["livemode"], false);

    // Same key, different parameters: Stripe refuses, and retrying will not help.
    let err = client.create_customer("org_2", None, "customer-org_1").await.unwrap_err();
    let StripeError::Api { status, kind, .. } = &err else { panic!("{err:?}") };
    assert_eq!((*status, kind.as_str()), (400, "idempotency_error"));
    assert!(!err.is_retryable());

    let other = client.create_customer("org_2", None, "customer-org_2").await.unwrap();
    assert_ne!(other, first);
}

#[tokio::test]
async fn checkout_sends_stripes_bracketed_form_keys() {
    let (fake, client) = setup().await;
    let customer = client.create_customer("org_1", None, "k1").await.unwrap();
    let session = client.create_checkout_session(&checkout_request(&customer)).await.unwrap();
    assert!(session.id.starts_with("cs_test_"), "{}", session.id);
    assert_eq!(session.url, format!("https://checkout.stripe.com/c/pay/{}", session.id));

    let recorded = fake.checkout_sessions();
    assert_eq!(recorded.len(), 1);
    let expected: BTreeMap<String, String> = [
        ("mode", "subscription"),
        ("customer", customer.as_str()),
        ("line_items[0][price]", "price_pro"),
        ("line_items[0][quantity]", "1"),
        ("client_reference_id", "org_1"),
        ("success_url", "https://app.test/billing?session_id={CHECKOUT_SESSION_ID}"),
        ("cancel_url", "https://app.test/billing"),
        ("metadata[org_id]", "org_1"),
        ("subscription_data[metadata][org_id]", "org_1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(recorded[0].params, expected);
    let object = &recorded[0].session;
    assert_eq!(object["object"], "checkout.session");
    assert_eq!(object["status"], "open");
    assert_eq!(object["client_reference_id"], "org_1");
    assert_eq!(object["metadata"]["org_id"], "org_1");
}

#[tokio::test]
async fn checkout_with_unknown_price_is_a_client_error() {
    let (_fake, client) = setup().await;
    let customer = client.create_customer("org_1", None, "k1").await.unwrap();
    let mut req = checkout_request(&customer);
    req.price = "price_nope".into();
    let err = client.create_checkout_session(&req).await.unwrap_err();
    match &err {
        StripeError::Api { status: 400, kind, code, message, param, request_id } => {
            assert_eq!(kind, "invalid_request_error");
            assert_eq!(code.as_deref(), Some("resource_missing"));
            assert_eq!(message, "No such price: 'price_nope'");
            assert_eq!(param.as_deref(), Some("line_items[0][price]"));
            assert!(request_id.as_deref().is_some_and(|id| id.starts_with("req_")));
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn portal_session() {
    let (fake, client) = setup().await;
    let customer = client.create_customer("org_1", None, "k1").await.unwrap();
    let portal = client.create_portal_session(&customer, "https://app.test/billing").await.unwrap();
    assert!(portal.id.starts_with("bps_"), "{}", portal.id);
    assert!(portal.url.starts_with("https://billing.stripe.com/p/session/test_"), "{}", portal.url);
    let sessions = fake.portal_sessions();
    assert_eq!(sessions[0]["customer"], customer.as_str());
    assert_eq!(sessions[0]["return_url"], "https://app.test/billing");

    let err = client.create_portal_session("cus_missing", "https://app.test/billing").await.unwrap_err();
    assert!(matches!(&err, StripeError::Api { status: 400, code: Some(c), .. } if c == "resource_missing"), "{err:?}");
}

fn meter_event(identifier: &str, value: u64, now: i64) -> MeterEvent {
    MeterEvent {
        event_name: "video_minutes".into(),
        customer: "cus_1".into(),
        value,
        identifier: identifier.into(),
        timestamp: now,
    }
}

#[tokio::test]
async fn meter_event_repeated_is_counted_once() {
    let (fake, client) = setup().await;
    let ev = meter_event("usage-1", 12, fake.now());
    client.report_meter_event(&ev).await.unwrap();
    client.report_meter_event(&ev).await.unwrap();
    assert_eq!(fake.request_count("/v1/billing/meter_events"), 2);
    let events = fake.meter_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["object"], "billing.meter_event");
    assert_eq!(events[0]["event_name"], "video_minutes");
    assert_eq!(events[0]["identifier"], "usage-1");
    assert_eq!(events[0]["payload"], serde_json::json!({ "stripe_customer_id": "cus_1", "value": "12" }));
    assert_eq!(events[0]["timestamp"], ev.timestamp);

    client.report_meter_event(&meter_event("usage-2", 3, fake.now())).await.unwrap();
    assert_eq!(fake.meter_events().len(), 2);
}

#[tokio::test]
async fn meter_event_duplicate_identifier_answer_counts_as_success() {
    let (fake, client) = setup().await;
    let now = fake.now();
    // Someone reported `usage-1` without our idempotency key: the repeat
    // reaches the identifier check instead of being replayed.
    let first = raw(&fake, reqwest::Method::POST, "/v1/billing/meter_events")
        .form(&[
            ("event_name", "video_minutes"),
            ("payload[stripe_customer_id]", "cus_1"),
            ("payload[value]", "12"),
            ("identifier", "usage-1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    client.report_meter_event(&meter_event("usage-1", 12, now)).await.unwrap();
    assert_eq!(fake.meter_events().len(), 1);

    // After Stripe's 24 h window the identifier is free again.
    fake.advance_clock(Duration::from_secs(24 * 3600 + 1));
    client.report_meter_event(&meter_event("usage-1", 12, fake.now())).await.unwrap();
    assert_eq!(fake.meter_events().len(), 2);
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retryable() {
    let (fake, client) = setup().await;
    for status in [500, 503, 429] {
        fake.fail_next("/v1/customers", Fault::Status(status));
        let err = client.create_customer("org_1", None, "k1").await.unwrap_err();
        assert!(matches!(err, StripeError::Api { status: s, .. } if s == status), "{err:?}");
        assert!(err.is_retryable(), "{status}");
    }
    // The faults executed nothing: the retry creates the customer.
    client.create_customer("org_1", None, "k1").await.unwrap();
    assert_eq!(fake.customers().len(), 1);
}

#[tokio::test]
async fn client_errors_are_not_retryable() {
    let (fake, client) = setup().await;
    for (status, kind, code) in [
        (400, "invalid_request_error", None),
        (402, "card_error", Some("card_declined")),
        (404, "invalid_request_error", Some("resource_missing")),
    ] {
        fake.fail_next("/v1/billing_portal", Fault::Status(status));
        let err = client.create_portal_session("cus_1", "https://app.test").await.unwrap_err();
        match &err {
            StripeError::Api { status: s, kind: k, code: c, .. } => {
                assert_eq!((*s, k.as_str(), c.as_deref()), (status, kind, code));
            }
            other => panic!("{other:?}"),
        }
        assert!(!err.is_retryable(), "{status}");
    }
}

#[tokio::test]
async fn timeout_is_retryable_and_the_retry_is_replayed() {
    let (fake, _) = setup().await;
    let client = impatient_client(&fake);
    fake.fail_next("/v1/customers", Fault::Delay(Duration::from_secs(3)));
    let err = client.create_customer("org_1", None, "k1").await.unwrap_err();
    assert!(matches!(err, StripeError::Timeout), "{err:?}");
    assert!(err.is_retryable());
    // Stripe did the work; the retry with the same key gets the same customer.
    let id = client.create_customer("org_1", None, "k1").await.unwrap();
    assert_eq!(fake.customers().len(), 1);
    assert_eq!(fake.customers()[0]["id"], id.as_str());
}

#[tokio::test]
async fn dropped_connection_is_retryable() {
    let (fake, client) = setup().await;
    fake.fail_next("/v1/checkout", Fault::Drop);
    let err = client.create_checkout_session(&checkout_request("cus_1")).await.unwrap_err();
    assert!(matches!(err, StripeError::Transport(_)), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn wrong_key_is_401() {
    let fake = FakeStripe::start().await;
    let mut cfg = fake.config();
    cfg.secret_key = Secret::new("sk_test_wrongkey1234".into());
    let client = StripeClient::new(cfg).unwrap();
    let err = client.create_customer("org_1", None, "k1").await.unwrap_err();
    match &err {
        StripeError::Api { status: 401, kind, message, .. } => {
            assert_eq!(kind, "invalid_request_error");
            assert_eq!(message, "Invalid API Key provided: sk_test_****1234");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable());
    assert!(!format!("{err:?} {err}").contains("wrongkey"));
}

#[tokio::test]
async fn debug_output_never_shows_the_key() {
    let (fake, client) = setup().await;
    let cfg = fake.config();
    let printed = format!("{cfg:?} {cfg:#?} {client:?} {client:#?} {fake:?}");
    assert!(!printed.contains(fake.secret_key()), "{printed}");
    assert!(!printed.contains("sk_test_"), "{printed}");
    assert!(printed.contains("[redacted]"));
}
