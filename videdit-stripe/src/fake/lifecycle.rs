//! Driving subscriptions from tests: each step changes the fake's state as
//! Stripe would and returns the events Stripe would send, in order, signed.
//!
//! Objects are rendered in the [`STRIPE_VERSION`] shape: periods on the
//! subscription items, the invoice's subscription under
//! `parent.subscription_details`.
//!
//! # Panics
//!
//! Every step panics, with the reason, when the id is unknown or the step
//! makes no sense (completing a session twice): a test that does so is
//! wrong.

use serde_json::{Value, json};

use super::{FakeStripe, SignedEvent, State, find, find_mut, new_id};
use crate::STRIPE_VERSION;

/// The fake's billing period.
const PERIOD: i64 = 30 * 24 * 3600;
/// When Stripe retries a failed payment (Smart Retries vary; 3 days here).
const RETRY_AFTER: i64 = 3 * 24 * 3600;

fn event(state: &State, kind: &str, object: &Value, previous: Option<Value>) -> Value {
    let mut data = json!({ "object": object });
    if let Some(previous) = previous {
        data["previous_attributes"] = previous;
    }
    json!({
        "id": new_id("evt_", 24),
        "object": "event",
        "api_version": STRIPE_VERSION,
        "created": state.now(),
        "data": data,
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind,
    })
}

fn item(price: &Value, subscription: &str, start: i64) -> Value {
    json!({
        "id": new_id("si_", 14),
        "object": "subscription_item",
        "created": start,
        "current_period_end": start + PERIOD,
        "current_period_start": start,
        "metadata": {},
        "price": price,
        "quantity": 1,
        "subscription": subscription,
    })
}

fn invoice(state: &State, sub: &Value, paid: bool, reason: &str) -> Value {
    let now = state.now();
    let item = &sub["items"]["data"][0];
    let amount = item["price"]["unit_amount"].as_i64().unwrap_or_default();
    let (line_start, line_end) = (item["current_period_start"].clone(), item["current_period_end"].clone());
    let id = new_id("in_", 24);
    // A renewal invoice's own period is the one that just ended; the first
    // invoice's period is its creation instant.
    let (period_start, period_end) = if reason == "subscription_create" {
        (json!(now), json!(now))
    } else {
        (json!(line_start.as_i64().unwrap_or(now) - PERIOD), line_start.clone())
    };
    json!({
        "id": id,
        "object": "invoice",
        "amount_due": amount,
        "amount_paid": if paid { amount } else { 0 },
        "amount_remaining": if paid { 0 } else { amount },
        "attempt_count": 1,
        "attempted": true,
        "billing_reason": reason,
        "collection_method": "charge_automatically",
        "created": now,
        "currency": "usd",
        "customer": sub["customer"],
        "lines": {
            "object": "list",
            "data": [{
                "id": new_id("il_", 24),
                "object": "line_item",
                "amount": amount,
                "currency": "usd",
                "period": { "start": line_start, "end": line_end },
                "pricing": { "price_details": { "price": item["price"]["id"], "product": item["price"]["product"] }, "type": "price_details" },
                "quantity": 1,
            }],
            "has_more": false,
            "url": format!("/v1/invoices/{id}/lines"),
        },
        "livemode": false,
        "next_payment_attempt": if paid { Value::Null } else { json!(now + RETRY_AFTER) },
        "parent": {
            "quote_details": null,
            "subscription_details": { "metadata": sub["metadata"], "subscription": sub["id"] },
            "type": "subscription_details",
        },
        "period_end": period_end,
        "period_start": period_start,
        "status": if paid { "paid" } else { "open" },
        "status_transitions": { "paid_at": if paid { json!(now) } else { Value::Null } },
    })
}

fn subscription_mut<'a>(state: &'a mut State, id: &str) -> &'a mut Value {
    find_mut(&mut state.subscriptions, id).unwrap_or_else(|| panic!("fake Stripe has no subscription {id}"))
}

/// Starts the next period on every item; returns the previous items.
fn renew(sub: &mut Value) -> Value {
    let previous = sub["items"].clone();
    if let Some(items) = sub["items"]["data"].as_array_mut() {
        for item in items {
            let end = item["current_period_end"].as_i64().unwrap_or_default();
            item["current_period_start"] = json!(end);
            item["current_period_end"] = json!(end + PERIOD);
        }
    }
    previous
}

impl FakeStripe {
    /// The customer paid on the hosted page: creates the subscription on
    /// the session's price for its customer (metadata from
    /// `subscription_data[metadata]`), a paid first invoice, and completes
    /// the session. Returns `customer.subscription.created` and
    /// `checkout.session.completed`.
    pub fn complete_checkout(&self, session_id: &str) -> Vec<SignedEvent> {
        let mut state = self.shared.lock();
        let now = state.now();
        let checkout = state
            .checkouts
            .iter()
            .find(|c| c.session["id"] == session_id)
            .unwrap_or_else(|| panic!("fake Stripe has no checkout session {session_id}"))
            .clone();
        assert_eq!(checkout.session["status"], "open", "checkout session {session_id} is not open");
        let price_id = checkout.params.get("line_items[0][price]").cloned().unwrap_or_default();
        let price = find(&state.prices, &price_id).cloned().expect("the session's price was checked at creation");
        let customer = match checkout.session["customer"].as_str() {
            Some(customer) => customer.to_owned(),
            None => {
                // Stripe creates a customer when the session named none.
                let id = new_id("cus_", 14);
                state
                    .customers
                    .push(json!({ "id": id, "object": "customer", "created": now, "livemode": false, "metadata": {} }));
                id
            }
        };
        let metadata: serde_json::Map<String, Value> = checkout
            .params
            .iter()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix("subscription_data[metadata][")?.strip_suffix(']')?;
                Some((key.to_owned(), json!(v)))
            })
            .collect();
        let sub_id = new_id("sub_", 24);
        let mut sub = json!({
            "id": sub_id,
            "object": "subscription",
            "application": null,
            "billing_cycle_anchor": now,
            "cancel_at": null,
            "cancel_at_period_end": false,
            "canceled_at": null,
            "collection_method": "charge_automatically",
            "created": now,
            "currency": "usd",
            "customer": customer,
            "ended_at": null,
            "items": {
                "object": "list",
                "data": [item(&price, &sub_id, now)],
                "has_more": false,
                "total_count": 1,
                "url": format!("/v1/subscription_items?subscription={sub_id}"),
            },
            "latest_invoice": null,
            "livemode": false,
            "metadata": metadata,
            "start_date": now,
            "status": "active",
            "trial_end": null,
            "trial_start": null,
        });
        let first = invoice(&state, &sub, true, "subscription_create");
        sub["latest_invoice"] = first["id"].clone();
        state.invoices.push(first.clone());
        state.subscriptions.push(sub.clone());
        let created = event(&state, "customer.subscription.created", &sub, None);
        let session = {
            let recorded = state.checkouts.iter_mut().find(|c| c.session["id"] == session_id).expect("found above");
            let session = &mut recorded.session;
            session["status"] = json!("complete");
            session["payment_status"] = json!("paid");
            session["customer"] = json!(customer);
            session["subscription"] = json!(sub_id);
            session["invoice"] = first["id"].clone();
            session["url"] = Value::Null;
            session.clone()
        };
        let completed = event(&state, "checkout.session.completed", &session, None);
        drop(state);
        self.signed(vec![created, completed])
    }

    /// Moves the subscription to another registered price (an upgrade in
    /// the portal). Returns `customer.subscription.updated` with
    /// `previous_attributes.items`.
    pub fn change_price(&self, sub_id: &str, price: &str) -> Vec<SignedEvent> {
        let mut state = self.shared.lock();
        let price = find(&state.prices, price).cloned().unwrap_or_else(|| panic!("fake Stripe has no price {price}"));
        let sub = subscription_mut(&mut state, sub_id);
        let previous = sub["items"].clone();
        sub["items"]["data"][0]["price"] = price;
        let sub = sub.clone();
        let updated = event(&state, "customer.subscription.updated", &sub, Some(json!({ "items": previous })));
        drop(state);
        self.signed(vec![updated])
    }

    /// Cancels the subscription now. Returns `customer.subscription.deleted`.
    pub fn cancel_subscription(&self, sub_id: &str) -> Vec<SignedEvent> {
        let mut state = self.shared.lock();
        let now = state.now();
        let sub = subscription_mut(&mut state, sub_id);
        sub["status"] = json!("canceled");
        sub["canceled_at"] = json!(now);
        sub["ended_at"] = json!(now);
        sub["cancel_at_period_end"] = json!(false);
        let sub = sub.clone();
        let deleted = event(&state, "customer.subscription.deleted", &sub, None);
        drop(state);
        self.signed(vec![deleted])
    }

    /// A payment succeeds. With an open (failed) invoice: that invoice is
    /// paid and the subscription becomes active again; returns
    /// `invoice.paid` and `customer.subscription.updated`. Otherwise the
    /// subscription renews into its next period with a paid invoice;
    /// returns `customer.subscription.updated` and `invoice.paid`.
    pub fn pay_invoice(&self, sub_id: &str) -> Vec<SignedEvent> {
        let mut state = self.shared.lock();
        let now = state.now();
        let open = open_invoice(&state, sub_id);
        let events = if let Some(invoice_id) = open {
            let inv = find_mut(&mut state.invoices, &invoice_id).expect("found above");
            inv["status"] = json!("paid");
            inv["amount_paid"] = inv["amount_due"].clone();
            inv["amount_remaining"] = json!(0);
            inv["attempt_count"] = json!(inv["attempt_count"].as_u64().unwrap_or_default() + 1);
            inv["next_payment_attempt"] = Value::Null;
            inv["status_transitions"]["paid_at"] = json!(now);
            let inv = inv.clone();
            let sub = subscription_mut(&mut state, sub_id);
            let previous_status = sub["status"].clone();
            sub["status"] = json!("active");
            let sub = sub.clone();
            vec![
                event(&state, "invoice.paid", &inv, None),
                event(&state, "customer.subscription.updated", &sub, Some(json!({ "status": previous_status }))),
            ]
        } else {
            let sub = subscription_mut(&mut state, sub_id);
            let previous_items = renew(sub);
            let previous_invoice = sub["latest_invoice"].clone();
            let sub_now = sub.clone();
            let inv = invoice(&state, &sub_now, true, "subscription_cycle");
            let sub = subscription_mut(&mut state, sub_id);
            sub["latest_invoice"] = inv["id"].clone();
            let sub = sub.clone();
            state.invoices.push(inv.clone());
            vec![
                event(
                    &state,
                    "customer.subscription.updated",
                    &sub,
                    Some(json!({ "items": previous_items, "latest_invoice": previous_invoice })),
                ),
                event(&state, "invoice.paid", &inv, None),
            ]
        };
        drop(state);
        self.signed(events)
    }

    /// A payment fails. Renews into the next period with an open invoice
    /// (or, when one is already open, counts another failed attempt) and
    /// makes the subscription `past_due`. Returns `invoice.payment_failed`
    /// and `customer.subscription.updated`.
    pub fn fail_invoice(&self, sub_id: &str) -> Vec<SignedEvent> {
        let mut state = self.shared.lock();
        let now = state.now();
        let mut previous = serde_json::Map::new();
        let inv = match open_invoice(&state, sub_id) {
            Some(invoice_id) => {
                let inv = find_mut(&mut state.invoices, &invoice_id).expect("found above");
                inv["attempt_count"] = json!(inv["attempt_count"].as_u64().unwrap_or_default() + 1);
                inv["next_payment_attempt"] = json!(now + RETRY_AFTER);
                inv.clone()
            }
            None => {
                let sub = subscription_mut(&mut state, sub_id);
                previous.insert("items".into(), renew(sub));
                previous.insert("latest_invoice".into(), sub["latest_invoice"].clone());
                let sub_now = sub.clone();
                let inv = invoice(&state, &sub_now, false, "subscription_cycle");
                subscription_mut(&mut state, sub_id)["latest_invoice"] = inv["id"].clone();
                state.invoices.push(inv.clone());
                inv
            }
        };
        let sub = subscription_mut(&mut state, sub_id);
        previous.insert("status".into(), sub["status"].clone());
        sub["status"] = json!("past_due");
        let sub = sub.clone();
        let events = vec![
            event(&state, "invoice.payment_failed", &inv, None),
            event(&state, "customer.subscription.updated", &sub, Some(Value::Object(previous))),
        ];
        drop(state);
        self.signed(events)
    }

    /// Stripe's three-day warning before a trial ends. Returns
    /// `customer.subscription.trial_will_end` with the subscription as it
    /// is; the fake starts no trials, so its `trial_end` is `null`.
    pub fn trial_will_end(&self, sub_id: &str) -> Vec<SignedEvent> {
        let mut state = self.shared.lock();
        let sub = subscription_mut(&mut state, sub_id).clone();
        let warning = event(&state, "customer.subscription.trial_will_end", &sub, None);
        drop(state);
        self.signed(vec![warning])
    }
}

fn open_invoice(state: &State, sub_id: &str) -> Option<String> {
    state
        .invoices
        .iter()
        .rev()
        .find(|i| i["parent"]["subscription_details"]["subscription"] == sub_id && i["status"] == "open")
        .and_then(|i| i["id"].as_str())
        .map(str::to_owned)
}
