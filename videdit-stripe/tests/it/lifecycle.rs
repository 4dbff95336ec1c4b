//! The subscription life cycle driven through the fake, its events
//! verified and parsed as the server will.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use videdit_core::Secret;
use videdit_stripe::fake::{FakeStripe, SignedEvent};
use videdit_stripe::webhook::{self, DEFAULT_TOLERANCE_SECS, SignatureError};
use videdit_stripe::{Event, EventObject, StripeClient, Subscription};

use crate::support::{checkout_request, setup};

fn open(fake: &FakeStripe, event: &SignedEvent) -> Event {
    let secret = Secret::new(fake.webhook_secret().to_owned());
    webhook::verify(&event.body, Some(&event.signature_header), &secret, fake.now(), DEFAULT_TOLERANCE_SECS)
        .unwrap_or_else(|err| panic!("{}: {err}", event.kind));
    let parsed = webhook::parse_event(&event.body).unwrap();
    assert_eq!((parsed.id.as_str(), parsed.kind.as_str()), (event.id.as_str(), event.kind.as_str()));
    assert!(parsed.id.starts_with("evt_"));
    assert!(!parsed.livemode);
    assert_eq!(parsed.api_version.as_deref(), Some(videdit_stripe::STRIPE_VERSION));
    parsed
}

fn subscription(event: &Event) -> &Subscription {
    match &event.object {
        EventObject::Subscription(sub) => sub,
        other => panic!("{}: not a subscription: {other:?}", event.kind),
    }
}

fn kinds(events: &[SignedEvent]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

async fn subscribed(fake: &FakeStripe, client: &StripeClient) -> (String, String) {
    let customer = client.create_customer("org_1", None, "k1").await.unwrap();
    let session = client.create_checkout_session(&checkout_request(&customer)).await.unwrap();
    let events = fake.complete_checkout(&session.id);
    let sub = subscription(&open(fake, &events[0])).id.clone();
    (customer, sub)
}

#[tokio::test]
async fn checkout_to_cancellation() {
    let (fake, client) = setup().await;
    let customer = client.create_customer("org_1", None, "k1").await.unwrap();
    let session = client.create_checkout_session(&checkout_request(&customer)).await.unwrap();

    let events = fake.complete_checkout(&session.id);
    assert_eq!(kinds(&events), ["customer.subscription.created", "checkout.session.completed"]);
    let json = events[1].json();
    assert_eq!(json["object"], "event");
    assert_eq!(json["pending_webhooks"], 1);
    assert!(json["request"].is_object());
    let created = open(&fake, &events[0]);
    let sub = subscription(&created).clone();
    assert!(sub.id.starts_with("sub_"));
    assert_eq!(sub.customer, customer);
    assert_eq!(sub.status, "active");
    assert_eq!(sub.price_ids, ["price_pro"]);
    assert_eq!(sub.metadata.get("org_id").map(String::as_str), Some("org_1"));
    let (start, end) = (sub.current_period_start.unwrap(), sub.current_period_end.unwrap());
    assert_eq!(end - start, 30 * 24 * 3600);
    match open(&fake, &events[1]).object {
        EventObject::CheckoutSession(cs) => {
            assert_eq!(cs.id, session.id);
            assert_eq!(cs.customer.as_deref(), Some(customer.as_str()));
            assert_eq!(cs.subscription.as_deref(), Some(sub.id.as_str()));
            assert_eq!(cs.client_reference_id.as_deref(), Some("org_1"));
            assert_eq!(
                (cs.mode.as_str(), cs.status.as_deref(), cs.payment_status.as_deref()),
                ("subscription", Some("complete"), Some("paid"))
            );
            assert_eq!(cs.metadata.get("org_id").map(String::as_str), Some("org_1"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.subscription(&sub.id).unwrap()["status"], "active");

    let events = fake.change_price(&sub.id, "price_team");
    assert_eq!(kinds(&events), ["customer.subscription.updated"]);
    let updated = open(&fake, &events[0]);
    assert_eq!(subscription(&updated).price_ids, ["price_team"]);
    let previous = updated.previous_attributes.as_ref().unwrap();
    assert_eq!(previous["items"]["data"][0]["price"]["id"], "price_pro");

    let events = fake.trial_will_end(&sub.id);
    assert_eq!(kinds(&events), ["customer.subscription.trial_will_end"]);
    assert_eq!(subscription(&open(&fake, &events[0])).id, sub.id);

    let events = fake.cancel_subscription(&sub.id);
    assert_eq!(kinds(&events), ["customer.subscription.deleted"]);
    let deleted = open(&fake, &events[0]);
    assert_eq!(subscription(&deleted).status, "canceled");
    assert!(subscription(&deleted).ended_at.is_some());
}

#[tokio::test]
async fn renewals_failures_and_recovery() {
    let (fake, client) = setup().await;
    let (customer, sub_id) = subscribed(&fake, &client).await;
    let first_end = fake.subscription(&sub_id).unwrap()["items"]["data"][0]["current_period_end"].as_i64().unwrap();

    // A renewal that is paid: a new period and a paid invoice.
    let events = fake.pay_invoice(&sub_id);
    assert_eq!(kinds(&events), ["customer.subscription.updated", "invoice.paid"]);
    let renewed = open(&fake, &events[0]);
    assert_eq!(subscription(&renewed).current_period_start, Some(first_end));
    let EventObject::Invoice(paid) = open(&fake, &events[1]).object else { panic!("not an invoice") };
    assert!(paid.id.starts_with("in_"));
    assert_eq!(paid.customer.as_deref(), Some(customer.as_str()));
    assert_eq!(paid.subscription.as_deref(), Some(sub_id.as_str()));
    assert_eq!((paid.status.as_deref(), paid.billing_reason.as_deref()), (Some("paid"), Some("subscription_cycle")));
    assert_eq!((paid.amount_paid, paid.next_payment_attempt), (1900, None));
    assert_eq!(paid.period_end, first_end);

    // The next renewal fails: past_due, an open invoice with a retry date.
    let events = fake.fail_invoice(&sub_id);
    assert_eq!(kinds(&events), ["invoice.payment_failed", "customer.subscription.updated"]);
    let EventObject::Invoice(failed) = open(&fake, &events[0]).object else { panic!("not an invoice") };
    assert_eq!((failed.status.as_deref(), failed.attempt_count, failed.amount_paid), (Some("open"), 1, 0));
    assert!(failed.next_payment_attempt.is_some());
    let past_due = open(&fake, &events[1]);
    assert_eq!(subscription(&past_due).status, "past_due");
    assert_eq!(past_due.previous_attributes.as_ref().unwrap()["status"], "active");

    // It fails again, then the retry succeeds.
    let events = fake.fail_invoice(&sub_id);
    let EventObject::Invoice(again) = open(&fake, &events[0]).object else { panic!("not an invoice") };
    assert_eq!((again.id.as_str(), again.attempt_count), (failed.id.as_str(), 2));
    let events = fake.pay_invoice(&sub_id);
    assert_eq!(kinds(&events), ["invoice.paid", "customer.subscription.updated"]);
    let EventObject::Invoice(recovered) = open(&fake, &events[0]).object else { panic!("not an invoice") };
    assert_eq!(
        (recovered.id.as_str(), recovered.status.as_deref(), recovered.attempt_count),
        (failed.id.as_str(), Some("paid"), 3)
    );
    assert_eq!(subscription(&open(&fake, &events[1])).status, "active");
    assert_eq!(fake.invoices().len(), 3);
}

#[tokio::test]
async fn signatures_of_fake_events() {
    let (fake, client) = setup().await;
    let customer = client.create_customer("org_1", None, "k1").await.unwrap();
    let session = client.create_checkout_session(&checkout_request(&customer)).await.unwrap();
    let event = fake.complete_checkout(&session.id).remove(1);
    let secret = Secret::new(fake.webhook_secret().to_owned());
    let check = |e: &SignedEvent| webhook::verify(&e.body, Some(&e.signature_header), &secret, fake.now(), 300);

    check(&event).unwrap();
    check(&fake.rotated(&event, "whsec_previous")).unwrap();
    assert_eq!(check(&fake.signed_with(&event, "whsec_someone_else")), Err(SignatureError::NoMatch));
    assert!(matches!(check(&fake.stale(&event)), Err(SignatureError::Stale { .. })));
    let mut tampered = event.clone();
    tampered.body.extend_from_slice(b" ");
    assert_eq!(check(&tampered), Err(SignatureError::NoMatch));
}

/// Accepts one request, answers 204, and returns its head and body.
async fn capture_one(listener: tokio::net::TcpListener) -> (String, Vec<u8>) {
    let (mut stream, _) = listener.accept().await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let len: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
            .unwrap_or(0);
        while buf.len() < end + 4 + len {
            let n = stream.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
        }
        stream.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n").await.unwrap();
        return (head, buf[end + 4..end + 4 + len].to_vec());
    }
}

#[tokio::test]
async fn deliver_posts_like_stripe() {
    let (fake, client) = setup().await;
    let customer = client.create_customer("org_1", None, "k1").await.unwrap();
    let session = client.create_checkout_session(&checkout_request(&customer)).await.unwrap();
    let event = fake.complete_checkout(&session.id).remove(0);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/stripe", listener.local_addr().unwrap());
    let receiver = tokio::spawn(capture_one(listener));
    let answer = fake.deliver(&event, &url).await.unwrap();
    assert_eq!(answer.status(), 204);
    let (head, body) = receiver.await.unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("post /webhooks/stripe http/1.1"), "{head}");
    assert!(head.contains("content-type: application/json; charset=utf-8"), "{head}");
    assert!(head.contains(&format!("stripe-signature: {}", event.signature_header.to_ascii_lowercase())), "{head}");
    assert_eq!(body, event.body);
}
