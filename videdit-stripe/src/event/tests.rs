//! Parses the committed event fixtures (`fixtures/events/`): realistic
//! payloads of both the pre-`2025-03-31.basil` and the newer API shapes.

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/events/", $name, ".json"))
    };
}

fn org_metadata() -> BTreeMap<String, String> {
    BTreeMap::from([("org_id".to_owned(), "org_01JQ7".to_owned())])
}

#[test]
fn checkout_session_completed() {
    let event = parse_event(fixture!("checkout_session_completed")).unwrap();
    assert_eq!(event.id, "evt_1QfKx2LkdIwHu7ix0a9cWJzP");
    assert_eq!(event.kind, "checkout.session.completed");
    assert_eq!(event.created, 1_743_500_000);
    assert!(!event.livemode);
    assert_eq!(event.api_version.as_deref(), Some("2025-03-31.basil"));
    assert_eq!(event.previous_attributes, None);
    assert_eq!(
        event.object,
        EventObject::CheckoutSession(CheckoutSessionObject {
            id: "cs_test_a1b2c3d4e5f6g7h8i9j0".into(),
            customer: Some("cus_RkLq8mZx2Jd3Fa".into()),
            client_reference_id: Some("org_01JQ7".into()),
            subscription: Some("sub_1QfKx0LkdIwHu7ixTn4DUB2m".into()),
            mode: "subscription".into(),
            status: Some("complete".into()),
            payment_status: Some("paid".into()),
            metadata: org_metadata(),
        })
    );
}

#[test]
fn subscription_created_reads_periods_from_items() {
    let event = parse_event(fixture!("subscription_created_basil")).unwrap();
    assert_eq!(event.kind, "customer.subscription.created");
    assert_eq!(
        event.object,
        EventObject::Subscription(Subscription {
            id: "sub_1QfKx0LkdIwHu7ixTn4DUB2m".into(),
            customer: "cus_RkLq8mZx2Jd3Fa".into(),
            status: "active".into(),
            price_ids: vec!["price_pro".into()],
            current_period_start: Some(1_743_499_990),
            current_period_end: Some(1_746_091_990),
            cancel_at_period_end: false,
            cancel_at: None,
            canceled_at: None,
            ended_at: None,
            trial_end: None,
            created: 1_743_499_990,
            metadata: org_metadata(),
        })
    );
}

#[test]
fn subscription_updated_legacy_top_level_periods_and_expanded_customer() {
    let event = parse_event(fixture!("subscription_updated_legacy")).unwrap();
    assert_eq!(event.kind, "customer.subscription.updated");
    assert_eq!(event.api_version.as_deref(), Some("2024-06-20"));
    assert_eq!(
        event.previous_attributes,
        Some(serde_json::json!({ "cancel_at": null, "cancel_at_period_end": false, "canceled_at": null }))
    );
    assert_eq!(
        event.object,
        EventObject::Subscription(Subscription {
            id: "sub_1PZ9xxLkdIwHu7ixLegacy1".into(),
            customer: "cus_QLegacyCustomer".into(),
            status: "trialing".into(),
            price_ids: vec!["price_team".into()],
            current_period_start: Some(1_720_000_000),
            current_period_end: Some(1_722_592_000),
            cancel_at_period_end: true,
            cancel_at: Some(1_722_592_000),
            canceled_at: Some(1_720_000_500),
            ended_at: None,
            trial_end: Some(1_720_604_800),
            created: 1_720_000_000,
            metadata: BTreeMap::new(),
        })
    );
}

#[test]
fn subscription_deleted() {
    let event = parse_event(fixture!("subscription_deleted")).unwrap();
    assert_eq!(event.kind, "customer.subscription.deleted");
    let EventObject::Subscription(sub) = event.object else { panic!("not a subscription: {:?}", event.object) };
    assert_eq!(sub.status, "canceled");
    assert_eq!(sub.ended_at, Some(1_746_092_000));
    assert_eq!(sub.current_period_end, Some(1_746_091_990));
}

#[test]
fn subscription_trial_will_end_with_null_metadata_and_unexpanded_price() {
    let event = parse_event(fixture!("subscription_trial_will_end")).unwrap();
    assert_eq!(event.kind, "customer.subscription.trial_will_end");
    let EventObject::Subscription(sub) = event.object else { panic!("not a subscription: {:?}", event.object) };
    assert_eq!(sub.status, "trialing");
    assert_eq!(sub.trial_end, Some(1_744_209_600));
    assert_eq!(sub.price_ids, vec!["price_pro".to_owned()]);
    assert!(sub.metadata.is_empty());
}

#[test]
fn invoice_paid_reads_subscription_from_parent() {
    let event = parse_event(fixture!("invoice_paid_basil")).unwrap();
    assert_eq!(event.kind, "invoice.paid");
    assert_eq!(
        event.object,
        EventObject::Invoice(Invoice {
            id: "in_1QjPaidLkdIwHu7ixInv0001".into(),
            customer: Some("cus_RkLq8mZx2Jd3Fa".into()),
            subscription: Some("sub_1QfKx0LkdIwHu7ixTn4DUB2m".into()),
            status: Some("paid".into()),
            billing_reason: Some("subscription_cycle".into()),
            created: 1_746_091_990,
            attempt_count: 1,
            next_payment_attempt: None,
            period_start: 1_743_499_990,
            period_end: 1_746_091_990,
            amount_due: 1900,
            amount_paid: 1900,
            currency: Some("usd".into()),
        })
    );
}

#[test]
fn invoice_payment_failed_legacy_top_level_subscription() {
    let event = parse_event(fixture!("invoice_payment_failed_legacy")).unwrap();
    assert_eq!(event.kind, "invoice.payment_failed");
    let EventObject::Invoice(invoice) = event.object else { panic!("not an invoice: {:?}", event.object) };
    assert_eq!(invoice.subscription.as_deref(), Some("sub_1PZ9xxLkdIwHu7ixLegacy1"));
    assert_eq!(invoice.status.as_deref(), Some("open"));
    assert_eq!(invoice.attempt_count, 2);
    assert_eq!(invoice.next_payment_attempt, Some(1_722_851_300));
    assert_eq!(invoice.amount_paid, 0);
}

#[test]
fn other_objects_stay_json() {
    let event = parse_event(fixture!("customer_created")).unwrap();
    assert_eq!(event.kind, "customer.created");
    let EventObject::Other(value) = event.object else { panic!("expected Other") };
    assert_eq!(value["id"], "cus_RkLq8mZx2Jd3Fa");
}

#[test]
fn decode_errors() {
    assert!(matches!(parse_event(b"not json"), Err(StripeError::Decode(_))));
    assert!(matches!(parse_event(br#"{"id":"evt_1","object":"event"}"#), Err(StripeError::Decode(_))));
    // A subscription without its customer is not one we can act on.
    let body = br#"{"id":"evt_1","type":"customer.subscription.updated","created":1,"livemode":false,
        "data":{"object":{"object":"subscription","id":"sub_1","status":"active","created":1}}}"#;
    assert!(matches!(parse_event(body), Err(StripeError::Decode(_))));
}
