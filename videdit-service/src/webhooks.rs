//! Outbound webhooks: endpoints (created, updated, rotated, deleted),
//! deliveries (one queue job per event and endpoint, listed and replayed),
//! and one delivery attempt with the Standard Webhooks retry schedule.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use videdit_core::db::{self, Delivery, PendingDelivery, WebhookEndpoint, WebhookUpdate};
use videdit_core::event::{Event, EventType};
use videdit_core::sealed::{self, Keyring};
use videdit_core::{DeliveryId, ErrorCode, OrgId, WebhookId};
use videdit_webhooks::{Outcome, Sender, UrlPolicy, WebhookSecret};

use crate::error::{Error, Result};

/// How long a rotated-out secret keeps signing beside the new one.
pub const ROTATION_OVERLAP: time::Duration = time::Duration::hours(24);
/// An endpoint failing without a success for this long is disabled.
pub const DISABLE_AFTER: time::Duration = time::Duration::days(5);
/// Most endpoints per organisation.
pub const MAX_ENDPOINTS: usize = 20;

/// What a client sets on an endpoint.
#[derive(Debug, Clone, Default)]
pub struct EndpointInput {
    /// Where to POST.
    pub url: String,
    /// Free text.
    pub description: String,
    /// Types to receive; empty means all.
    pub event_types: Vec<String>,
}

fn refused(e: &videdit_webhooks::Error) -> Error {
    Error::new(ErrorCode::WebhookUrlRefused, e.to_string())
}

fn check_types(types: &[String]) -> Result<()> {
    if let Some(bad) = types.iter().find(|t| EventType::parse(t).is_none()) {
        return Err(Error::invalid(format!("unknown event type {bad:?}")));
    }
    Ok(())
}

fn check_description(d: &str) -> Result<()> {
    if d.chars().count() > 500 {
        return Err(Error::invalid("a description has at most 500 characters"));
    }
    Ok(())
}

/// The associated data a stored secret is sealed with: a sealed secret
/// copied into another organisation's endpoint does not open there.
fn secret_context(org: OrgId) -> String {
    format!("webhook_endpoint:{org}:secret")
}

/// A signing secret as stored: sealed with the keyring's sealing key.
fn seal(keys: &Keyring, org: OrgId, secret: &WebhookSecret) -> String {
    keys.seal(secret.expose().as_bytes(), &secret_context(org))
}

/// A stored signing secret, opened. A value stored in the clear before
/// secrets were sealed (it starts with `whsec_`) is still read, so such an
/// endpoint keeps working until its next rotation.
fn unseal(keys: &Keyring, org: OrgId, stored: &str) -> Result<WebhookSecret> {
    let bad = |why: String| Error::new(ErrorCode::Internal, format!("a stored webhook secret does not open: {why}"));
    let plain = if sealed::is_sealed(stored) {
        keys.open_str(stored, &secret_context(org)).map_err(|e| bad(e.to_string()))?.expose().clone()
    } else {
        stored.to_owned()
    };
    WebhookSecret::parse(&plain).map_err(|_| bad("not a whsec_ secret".into()))
}

/// Seals again every stored signing secret that is in the clear (written
/// before secrets were sealed) or sealed by a key other than the keyring's
/// first, so an old key can leave `ENCRYPTION_KEYS` once this has run.
/// Returns how many endpoints changed. A value that does not open is left
/// as it is and logged (its key is missing from the ring).
///
/// # Errors
/// Database failures.
pub async fn reseal_secrets(pool: &PgPool, keys: &Keyring) -> Result<usize> {
    let (mut changed, mut after, prefix) = (0, None, keys.sealing_prefix());
    loop {
        let page = db::stored_webhook_secrets(pool, &prefix, after, 200).await?;
        let Some(last) = page.last() else { return Ok(changed) };
        after = Some(last.id);
        for stored in &page {
            let again = |v: &str| unseal(keys, stored.org_id, v).map(|s| seal(keys, stored.org_id, &s));
            match (again(&stored.secret), stored.previous_secret.as_deref().map(again).transpose()) {
                (Ok(secret), Ok(previous)) => {
                    if db::reseal_webhook_secrets(pool, stored, &secret, previous.as_deref()).await? {
                        changed += 1;
                    }
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(endpoint = %stored.id, error = %e, "a webhook secret could not be sealed again");
                }
            }
        }
    }
}

/// Creates an endpoint after checking its URL against the SSRF policy.
/// Returns the endpoint and its secret, which is shown this once; the
/// secret is stored sealed with `keys`.
///
/// # Errors
/// `webhook_url_refused`; `invalid_request` for an unknown event type, a
/// long description or too many endpoints.
pub async fn create(
    pool: &PgPool,
    keys: &Keyring,
    policy: UrlPolicy,
    org: OrgId,
    input: &EndpointInput,
) -> Result<(WebhookEndpoint, WebhookSecret)> {
    check_types(&input.event_types)?;
    check_description(&input.description)?;
    policy.check(&input.url).await.map_err(|e| refused(&e))?;
    if db::list_webhooks(pool, org).await?.len() >= MAX_ENDPOINTS {
        return Err(Error::invalid(format!("an organization has at most {MAX_ENDPOINTS} webhook endpoints")));
    }
    let secret = WebhookSecret::generate();
    let stored = seal(keys, org, &secret);
    let endpoint = db::insert_webhook(pool, org, &input.url, &input.description, &input.event_types, &stored).await?;
    Ok((endpoint, secret))
}

/// Updates an endpoint (a new URL is checked again).
///
/// # Errors
/// As [`create`]; `webhook_not_found`.
pub async fn update(
    pool: &PgPool,
    policy: UrlPolicy,
    org: OrgId,
    id: WebhookId,
    u: &WebhookUpdate,
) -> Result<WebhookEndpoint> {
    if let Some(types) = &u.event_types {
        check_types(types)?;
    }
    if let Some(d) = &u.description {
        check_description(d)?;
    }
    if let Some(url) = &u.url {
        policy.check(url).await.map_err(|e| refused(&e))?;
    }
    Ok(db::update_webhook(pool, org, id, u).await?)
}

/// Replaces the signing secret; the old one keeps signing for 24 h, so a
/// receiver can switch without losing a delivery. Returns the new secret.
///
/// # Errors
/// `webhook_not_found`.
pub async fn rotate_secret(
    pool: &PgPool,
    keys: &Keyring,
    org: OrgId,
    id: WebhookId,
) -> Result<(WebhookEndpoint, WebhookSecret)> {
    let secret = WebhookSecret::generate();
    let until = OffsetDateTime::now_utc() + ROTATION_OVERLAP;
    let endpoint = db::rotate_webhook_secret(pool, org, id, &seal(keys, org, &secret), until).await?;
    Ok((endpoint, secret))
}

/// Sends a `webhook.test` event to this endpoint only. Returns the event.
///
/// # Errors
/// `webhook_not_found`; `invalid_state` when the endpoint is disabled.
pub async fn send_test(pool: &PgPool, org: OrgId, id: WebhookId) -> Result<(Event, DeliveryId)> {
    let mut tx = pool.begin().await?;
    let endpoint = db::get_webhook(&mut *tx, org, id).await?;
    if !endpoint.enabled {
        return Err(Error::invalid_state("the endpoint is disabled; enable it first"));
    }
    let payload = serde_json::json!({"webhookId": id, "message": "a test event from videdit"});
    let event = db::insert_event(&mut tx, org, EventType::WebhookTest, Some(id.as_uuid()), &payload).await?;
    let deliveries = db::deliveries_for(&mut tx, &event, Some(id)).await?;
    enqueue_deliveries(&mut tx, org, &deliveries).await?;
    tx.commit().await?;
    let delivery = deliveries.first().map(|d| d.id).ok_or_else(|| Error::invalid_state("the endpoint is disabled"))?;
    Ok((event, delivery))
}

/// Sends a delivery again from its first attempt (the same `webhook-id`).
///
/// # Errors
/// `webhook_not_found`, `not_found` for a delivery of another endpoint.
pub async fn replay(pool: &PgPool, org: OrgId, endpoint: WebhookId, delivery: DeliveryId) -> Result<Delivery> {
    let mut tx = pool.begin().await?;
    db::get_webhook(&mut *tx, org, endpoint).await?;
    let d = db::get_delivery(&mut *tx, org, delivery).await?;
    if d.endpoint_id != endpoint {
        return Err(Error::new(ErrorCode::NotFound, format!("delivery {delivery} not found")));
    }
    let d = db::reset_delivery(&mut *tx, org, delivery).await?;
    enqueue_deliveries(&mut tx, org, &[PendingDelivery { id: d.id, endpoint }]).await?;
    tx.commit().await?;
    Ok(d)
}

/// Queues one delivery job per pending delivery, in the caller's transaction.
///
/// # Errors
/// Database failures.
pub async fn enqueue_deliveries(conn: &mut PgConnection, org: OrgId, deliveries: &[PendingDelivery]) -> Result<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let specs = deliveries.iter().map(|d| crate::events::delivery_job(org, d.id)).collect::<Result<Vec<_>>>()?;
    videdit_queue::enqueue_many(conn, &specs).await?;
    Ok(())
}

/// What a delivery job does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Delivered, failed for good, or nothing to do.
    Done,
    /// Try again after this long.
    RetryAfter(Duration),
}

/// The secrets that sign now: the current one, and the previous one while
/// its overlap lasts.
fn signing_secrets(keys: &Keyring, endpoint: &WebhookEndpoint, now: OffsetDateTime) -> Result<Vec<WebhookSecret>> {
    let mut out = vec![unseal(keys, endpoint.org_id, &endpoint.secret)?];
    if let (Some(prev), Some(until)) = (&endpoint.previous_secret, endpoint.previous_expires_at)
        && until > now
    {
        out.push(unseal(keys, endpoint.org_id, prev)?);
    }
    Ok(out)
}

/// Makes one attempt of a delivery and records it: success ends it; a 410
/// disables the endpoint; a refused address ends it; other failures are
/// retried on the Standard Webhooks schedule (or after `Retry-After`),
/// and an endpoint failing for 5 days without a success is disabled.
///
/// # Errors
/// Database failures (the job retries).
pub async fn attempt(pool: &PgPool, sender: &Sender, keys: &Keyring, org: OrgId, id: DeliveryId) -> Result<Step> {
    let delivery = match db::get_delivery(pool, org, id).await {
        Ok(d) => d,
        Err(e) if e.code() == ErrorCode::NotFound => return Ok(Step::Done), // its endpoint was deleted
        Err(e) => return Err(e.into()),
    };
    if delivery.status != "pending" {
        return Ok(Step::Done);
    }
    let endpoint = match db::get_webhook(pool, org, delivery.endpoint_id).await {
        Ok(e) => e,
        Err(e) if e.code() == ErrorCode::WebhookNotFound => return Ok(Step::Done),
        Err(e) => return Err(e.into()),
    };
    if !endpoint.enabled {
        db::record_attempt(pool, org, id, "failed", None, 0, Some("the endpoint is disabled")).await?;
        return Ok(Step::Done);
    }
    let event = db::get_event(pool, org, delivery.event_id).await?;
    let body = serde_json::to_vec(&event.envelope()).expect("events serialise");
    let now = OffsetDateTime::now_utc();
    let secrets = signing_secrets(keys, &endpoint, now)?;
    let refs: Vec<&WebhookSecret> = secrets.iter().collect();
    let sent = sender.send(&endpoint.url, &event.id.to_string(), now.unix_timestamp(), &body, &refs).await;
    let latency = i32::try_from(sent.latency.as_millis()).unwrap_or(i32::MAX);
    let error = sent.error.as_deref();
    match sent.outcome {
        Outcome::Delivered => {
            db::record_attempt(pool, org, id, "delivered", sent.status, latency, None).await?;
            db::record_endpoint_health(pool, org, endpoint.id, true).await?;
            Ok(Step::Done)
        }
        Outcome::Gone => {
            db::record_attempt(pool, org, id, "failed", sent.status, latency, error).await?;
            disable(pool, &endpoint, "the receiver answered 410 Gone").await?;
            Ok(Step::Done)
        }
        Outcome::Refused => {
            db::record_attempt(pool, org, id, "failed", sent.status, latency, error).await?;
            Ok(Step::Done)
        }
        Outcome::Retry => {
            let next = u32::try_from(delivery.attempts).unwrap_or(u32::MAX).saturating_add(2);
            let delay = videdit_webhooks::retry_delay(next, rand::random::<f64>());
            let status = if delay.is_some() { "pending" } else { "failed" };
            db::record_attempt(pool, org, id, status, sent.status, latency, error).await?;
            let since = db::record_endpoint_health(pool, org, endpoint.id, false).await?;
            if since.is_some_and(|s| now - s >= DISABLE_AFTER) {
                disable(pool, &endpoint, "no successful delivery for 5 days").await?;
                return Ok(Step::Done);
            }
            Ok(match delay {
                Some(d) => Step::RetryAfter(d.max(sent.retry_after.unwrap_or_default())),
                None => Step::Done,
            })
        }
    }
}

/// Disables an endpoint and records `webhook.endpoint_disabled` (once).
async fn disable(pool: &PgPool, endpoint: &WebhookEndpoint, reason: &str) -> Result<()> {
    let mut tx = pool.begin().await?;
    if db::disable_webhook(&mut *tx, endpoint.org_id, endpoint.id, reason).await? {
        let payload = serde_json::json!({"webhookId": endpoint.id, "url": endpoint.url, "reason": reason});
        crate::events::record(
            &mut tx,
            endpoint.org_id,
            EventType::WebhookDisabled,
            Some(endpoint.id.as_uuid()),
            payload,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
