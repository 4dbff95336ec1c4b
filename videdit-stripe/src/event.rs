//! Typed Stripe events: the envelope plus the three objects billing reads
//! (Checkout Session, Subscription, Invoice); anything else stays JSON.
//!
//! Parsing is lenient where Stripe's API versions differ: ids that may be
//! expanded into objects are read either way, and fields that moved
//! between versions are read from both places.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::{DeserializeOwned, Error as _};

use crate::StripeError;

/// A Stripe event (`evt_…`) as delivered to a webhook endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// `evt_…`; process each id once (Stripe delivers at least once).
    pub id: String,
    /// The event type, for example `checkout.session.completed`.
    pub kind: String,
    /// When the event happened, Unix seconds. Deliveries can arrive out of
    /// order; compare this before overwriting newer state.
    pub created: i64,
    /// `false` for test-mode events.
    pub livemode: bool,
    /// The API version `data.object` is rendered in (the endpoint's).
    pub api_version: Option<String>,
    /// The object the event is about, in its state after the event.
    pub object: EventObject,
    /// For `*.updated` events: the changed fields' previous values.
    pub previous_attributes: Option<serde_json::Value>,
}

/// The object of an event, chosen by its `object` field.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum EventObject {
    /// `"object": "checkout.session"`.
    CheckoutSession(CheckoutSessionObject),
    /// `"object": "subscription"` (the `customer.subscription.*` events).
    Subscription(Subscription),
    /// `"object": "invoice"`.
    Invoice(Invoice),
    /// Any other object, as sent.
    Other(serde_json::Value),
}

/// A Checkout Session as seen in `checkout.session.*` events.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct CheckoutSessionObject {
    /// `cs_…`
    pub id: String,
    /// The customer (`cus_…`).
    #[serde(default, deserialize_with = "expandable_opt")]
    pub customer: Option<String>,
    /// What we passed as `client_reference_id`.
    #[serde(default)]
    pub client_reference_id: Option<String>,
    /// The subscription created by a subscription-mode session (`sub_…`).
    #[serde(default, deserialize_with = "expandable_opt")]
    pub subscription: Option<String>,
    /// `subscription`, `payment` or `setup`.
    pub mode: String,
    /// `open`, `complete` or `expired`.
    #[serde(default)]
    pub status: Option<String>,
    /// `paid`, `unpaid` or `no_payment_required`.
    #[serde(default)]
    pub payment_status: Option<String>,
    /// The session's metadata (ours carries `org_id`).
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: BTreeMap<String, String>,
}

/// A subscription as seen in `customer.subscription.*` events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// `sub_…`
    pub id: String,
    /// The customer (`cus_…`).
    pub customer: String,
    /// `incomplete`, `incomplete_expired`, `trialing`, `active`,
    /// `past_due`, `canceled`, `unpaid` or `paused`.
    pub status: String,
    /// The price of each item (`price_…`), in item order.
    pub price_ids: Vec<String>,
    /// Start of the current period, Unix seconds. Read from the
    /// subscription (API versions before `2025-03-31.basil`) or else from
    /// its items (the earliest item start).
    pub current_period_start: Option<i64>,
    /// End of the current period (the latest item end on newer versions).
    pub current_period_end: Option<i64>,
    /// Whether the subscription ends at `current_period_end`.
    pub cancel_at_period_end: bool,
    /// When a scheduled cancellation takes effect.
    pub cancel_at: Option<i64>,
    /// When the subscription was canceled (or the cancellation requested).
    pub canceled_at: Option<i64>,
    /// When the subscription ended, for a canceled one.
    pub ended_at: Option<i64>,
    /// End of the trial, if any.
    pub trial_end: Option<i64>,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// The subscription's metadata (ours carries `org_id`).
    pub metadata: BTreeMap<String, String>,
}

/// An invoice as seen in `invoice.*` events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invoice {
    /// `in_…`
    pub id: String,
    /// The customer (`cus_…`).
    pub customer: Option<String>,
    /// The subscription billed: `subscription` on older API versions,
    /// `parent.subscription_details.subscription` on newer ones.
    pub subscription: Option<String>,
    /// `draft`, `open`, `paid`, `uncollectible` or `void`.
    pub status: Option<String>,
    /// Why it was made: `subscription_create`, `subscription_cycle`, ...
    pub billing_reason: Option<String>,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// Payment attempts so far.
    pub attempt_count: u32,
    /// When Stripe retries a failed payment, if it will.
    pub next_payment_attempt: Option<i64>,
    /// Start of the invoice's period (for renewals, the period that ended).
    pub period_start: i64,
    /// End of the invoice's period.
    pub period_end: i64,
    /// Amount due, in the currency's smallest unit.
    pub amount_due: i64,
    /// Amount paid, in the currency's smallest unit.
    pub amount_paid: i64,
    /// ISO currency code, lower case.
    pub currency: Option<String>,
}

/// Parses a webhook payload (verify it first with
/// [`verify`](crate::webhook::verify)).
///
/// # Errors
///
/// [`StripeError::Decode`] when the payload is not an event, or its object
/// is a Checkout Session, Subscription or Invoice missing a required field.
pub fn parse_event(payload: &[u8]) -> Result<Event, StripeError> {
    let raw: RawEvent = serde_json::from_slice(payload).map_err(StripeError::Decode)?;
    let kind_of_object = raw.data.object.get("object").and_then(serde_json::Value::as_str).unwrap_or_default();
    let object = match kind_of_object {
        "checkout.session" => EventObject::CheckoutSession(from_value(raw.data.object)?),
        "subscription" => EventObject::Subscription(from_value::<RawSubscription>(raw.data.object)?.into()),
        "invoice" => EventObject::Invoice(from_value::<RawInvoice>(raw.data.object)?.into()),
        _ => EventObject::Other(raw.data.object),
    };
    Ok(Event {
        id: raw.id,
        kind: raw.kind,
        created: raw.created,
        livemode: raw.livemode,
        api_version: raw.api_version,
        object,
        previous_attributes: raw.data.previous_attributes,
    })
}

fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, StripeError> {
    serde_json::from_value(value).map_err(StripeError::Decode)
}

#[derive(Deserialize)]
struct RawEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    #[serde(default)]
    livemode: bool,
    #[serde(default)]
    api_version: Option<String>,
    data: RawData,
}

#[derive(Deserialize)]
struct RawData {
    object: serde_json::Value,
    #[serde(default)]
    previous_attributes: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawSubscription {
    id: String,
    #[serde(deserialize_with = "expandable")]
    customer: String,
    status: String,
    #[serde(default)]
    items: RawList<RawItem>,
    #[serde(default)]
    current_period_start: Option<i64>,
    #[serde(default)]
    current_period_end: Option<i64>,
    #[serde(default)]
    cancel_at_period_end: bool,
    #[serde(default)]
    cancel_at: Option<i64>,
    #[serde(default)]
    canceled_at: Option<i64>,
    #[serde(default)]
    ended_at: Option<i64>,
    #[serde(default)]
    trial_end: Option<i64>,
    created: i64,
    #[serde(default, deserialize_with = "metadata")]
    metadata: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawList<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
}

impl<T> Default for RawList<T> {
    fn default() -> Self {
        Self { data: Vec::new() }
    }
}

#[derive(Deserialize)]
struct RawItem {
    #[serde(default, deserialize_with = "expandable_opt")]
    price: Option<String>,
    #[serde(default)]
    current_period_start: Option<i64>,
    #[serde(default)]
    current_period_end: Option<i64>,
}

impl From<RawSubscription> for Subscription {
    fn from(raw: RawSubscription) -> Self {
        let items = &raw.items.data;
        let current_period_start =
            raw.current_period_start.or_else(|| items.iter().filter_map(|i| i.current_period_start).min());
        let current_period_end =
            raw.current_period_end.or_else(|| items.iter().filter_map(|i| i.current_period_end).max());
        Self {
            price_ids: items.iter().filter_map(|i| i.price.clone()).collect(),
            id: raw.id,
            customer: raw.customer,
            status: raw.status,
            current_period_start,
            current_period_end,
            cancel_at_period_end: raw.cancel_at_period_end,
            cancel_at: raw.cancel_at,
            canceled_at: raw.canceled_at,
            ended_at: raw.ended_at,
            trial_end: raw.trial_end,
            created: raw.created,
            metadata: raw.metadata,
        }
    }
}

#[derive(Deserialize)]
struct RawInvoice {
    id: String,
    #[serde(default, deserialize_with = "expandable_opt")]
    customer: Option<String>,
    #[serde(default, deserialize_with = "expandable_opt")]
    subscription: Option<String>,
    #[serde(default)]
    parent: Option<RawInvoiceParent>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    billing_reason: Option<String>,
    created: i64,
    #[serde(default)]
    attempt_count: u32,
    #[serde(default)]
    next_payment_attempt: Option<i64>,
    period_start: i64,
    period_end: i64,
    #[serde(default)]
    amount_due: i64,
    #[serde(default)]
    amount_paid: i64,
    #[serde(default)]
    currency: Option<String>,
}

#[derive(Deserialize)]
struct RawInvoiceParent {
    #[serde(default)]
    subscription_details: Option<RawSubscriptionDetails>,
}

#[derive(Deserialize)]
struct RawSubscriptionDetails {
    #[serde(default, deserialize_with = "expandable_opt")]
    subscription: Option<String>,
}

impl From<RawInvoice> for Invoice {
    fn from(raw: RawInvoice) -> Self {
        let subscription =
            raw.subscription.or_else(|| raw.parent.and_then(|p| p.subscription_details).and_then(|d| d.subscription));
        Self {
            id: raw.id,
            customer: raw.customer,
            subscription,
            status: raw.status,
            billing_reason: raw.billing_reason,
            created: raw.created,
            attempt_count: raw.attempt_count,
            next_payment_attempt: raw.next_payment_attempt,
            period_start: raw.period_start,
            period_end: raw.period_end,
            amount_due: raw.amount_due,
            amount_paid: raw.amount_paid,
            currency: raw.currency,
        }
    }
}

/// An id that Stripe may expand into the object it names.
fn expandable<'de, D: serde::Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    expandable_opt(de)?.ok_or_else(|| D::Error::custom("expected an id or an object with an id"))
}

fn expandable_opt<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    match Option::<serde_json::Value>::deserialize(de)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(id)) => Ok(Some(id)),
        Some(serde_json::Value::Object(map)) => match map.get("id") {
            Some(serde_json::Value::String(id)) => Ok(Some(id.clone())),
            _ => Err(D::Error::custom("expanded object without an id")),
        },
        Some(_) => Err(D::Error::custom("expected an id or an object with an id")),
    }
}

/// Stripe's metadata is string to string; `null` means none.
fn metadata<'de, D: serde::Deserializer<'de>>(de: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(de)?.unwrap_or_default())
}

#[cfg(test)]
mod tests;
