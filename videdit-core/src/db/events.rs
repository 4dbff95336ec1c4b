//! The event outbox and outbound webhook endpoints and deliveries.

use std::convert::identity;

use sqlx::{FromRow, PgConnection, PgExecutor};
use time::OffsetDateTime;

use super::{delete_org_row, org_row};

use crate::error::{Error, Result};
use crate::error_code::ErrorCode;
use crate::event::{EVENT_VERSION, Event, EventType};
use crate::id::{DeliveryId, EventId, OrgId, WebhookId};

#[derive(FromRow)]
struct EventRow {
    id: uuid::Uuid,
    org_id: uuid::Uuid,
    r#type: String,
    version: i32,
    payload: serde_json::Value,
    created_at: OffsetDateTime,
}

impl From<EventRow> for Event {
    fn from(r: EventRow) -> Self {
        Self {
            id: EventId::from_uuid(r.id),
            org_id: OrgId::from_uuid(r.org_id),
            event_type: r.r#type,
            version: r.version,
            created_at: r.created_at,
            payload: r.payload,
        }
    }
}

const EVENT_COLUMNS: &str = "id, org_id, type, version, payload, created_at";

/// A delivery an event needs: the new delivery's id and its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingDelivery {
    /// The delivery.
    pub id: DeliveryId,
    /// The endpoint it goes to.
    pub endpoint: WebhookId,
}

/// Writes an event in the caller's transaction (see [`deliveries_for`] for
/// its deliveries).
///
/// # Errors
/// Database failures.
pub async fn insert_event(
    conn: &mut PgConnection,
    org: OrgId,
    event_type: EventType,
    subject: Option<uuid::Uuid>,
    payload: &serde_json::Value,
) -> Result<Event> {
    let row: EventRow = sqlx::query_as(&format!(
        "INSERT INTO videdit.events (id, org_id, type, version, subject_id, payload)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {EVENT_COLUMNS}"
    ))
    .bind(EventId::new())
    .bind(org)
    .bind(event_type.as_str())
    .bind(EVENT_VERSION)
    .bind(subject)
    .bind(payload)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Event::from(row))
}

/// Creates pending deliveries of `event` to the organisation's enabled
/// endpoints that want it (only `only` when given, whatever its types).
///
/// # Errors
/// Database failures.
pub async fn deliveries_for(
    conn: &mut PgConnection,
    event: &Event,
    only: Option<WebhookId>,
) -> Result<Vec<PendingDelivery>> {
    // Delivery ids are random (v4): deliveries are listed by creation time.
    let rows: Vec<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
        "INSERT INTO videdit.webhook_deliveries (id, org_id, endpoint_id, event_id)
         SELECT gen_random_uuid(), e.org_id, e.id, $2
         FROM videdit.webhook_endpoints e
         WHERE e.org_id = $1 AND e.enabled
           AND (($4::uuid IS NULL AND (cardinality(e.event_types) = 0 OR $3 = ANY (e.event_types))) OR e.id = $4)
         ON CONFLICT (endpoint_id, event_id) DO NOTHING
         RETURNING id, endpoint_id",
    )
    .bind(event.org_id)
    .bind(event.id)
    .bind(&event.event_type)
    .bind(only)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, endpoint)| PendingDelivery {
            id: DeliveryId::from_uuid(id),
            endpoint: WebhookId::from_uuid(endpoint),
        })
        .collect())
}

/// An organisation's events after a cursor, oldest first, optionally only
/// some types.
///
/// # Errors
/// Database failures.
pub async fn list_events(
    db: impl PgExecutor<'_>,
    org: OrgId,
    after: Option<EventId>,
    types: &[String],
    limit: i64,
) -> Result<Vec<Event>> {
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM videdit.events
         WHERE org_id = $1 AND ($2::uuid IS NULL OR id > $2) AND (cardinality($3::text[]) = 0 OR type = ANY ($3))
         ORDER BY id LIMIT $4"
    ))
    .bind(org)
    .bind(after)
    .bind(types)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Event::from).collect())
}

/// One event of the organisation.
///
/// # Errors
/// `not_found`.
pub async fn get_event(db: impl PgExecutor<'_>, org: OrgId, id: EventId) -> Result<Event> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM videdit.events WHERE org_id = $1 AND id = $2");
    let not_found = |id: EventId| Error::not_found(ErrorCode::NotFound, format!("event {id}"));
    let row: EventRow = org_row(db, &sql, org, id, not_found, identity).await?;
    Ok(Event::from(row))
}

/// A webhook endpoint.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct WebhookEndpoint {
    /// Id.
    pub id: WebhookId,
    /// Organisation.
    pub org_id: OrgId,
    /// Where events are POSTed.
    pub url: String,
    /// Free text.
    pub description: String,
    /// Types it wants; empty means all.
    pub event_types: Vec<String>,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Why it was disabled by us (410, failing for days).
    pub disabled_reason: Option<String>,
    /// The signing secret (`whsec_…`).
    pub secret: String,
    /// The secret before the last rotation, still signing until `previous_expires_at`.
    pub previous_secret: Option<String>,
    /// When the previous secret stops signing.
    pub previous_expires_at: Option<OffsetDateTime>,
    /// When deliveries started failing without a success since.
    pub failing_since: Option<OffsetDateTime>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
}

const ENDPOINT_COLUMNS: &str = "id, org_id, url, description, event_types, enabled, disabled_reason, secret, \
     previous_secret, previous_expires_at, failing_since, created_at, updated_at";

fn endpoint_not_found(id: WebhookId) -> Error {
    Error::not_found(ErrorCode::WebhookNotFound, format!("webhook {id}"))
}

/// Creates an endpoint.
///
/// # Errors
/// Database failures.
pub async fn insert_webhook(
    db: impl PgExecutor<'_>,
    org: OrgId,
    url: &str,
    description: &str,
    event_types: &[String],
    secret: &str,
) -> Result<WebhookEndpoint> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO videdit.webhook_endpoints (id, org_id, url, description, event_types, secret)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {ENDPOINT_COLUMNS}"
    ))
    .bind(WebhookId::new())
    .bind(org)
    .bind(url)
    .bind(description)
    .bind(event_types)
    .bind(secret)
    .fetch_one(db)
    .await?)
}

/// The organisation's endpoints, oldest first.
///
/// # Errors
/// Database failures.
pub async fn list_webhooks(db: impl PgExecutor<'_>, org: OrgId) -> Result<Vec<WebhookEndpoint>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM videdit.webhook_endpoints WHERE org_id = $1 ORDER BY id LIMIT 100"
    ))
    .bind(org)
    .fetch_all(db)
    .await?)
}

/// One endpoint.
///
/// # Errors
/// `webhook_not_found`.
pub async fn get_webhook(db: impl PgExecutor<'_>, org: OrgId, id: WebhookId) -> Result<WebhookEndpoint> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM videdit.webhook_endpoints WHERE org_id = $1 AND id = $2");
    org_row(db, &sql, org, id, endpoint_not_found, identity).await
}

/// What an update changes (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct WebhookUpdate {
    /// New URL.
    pub url: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New types.
    pub event_types: Option<Vec<String>>,
    /// Enable or disable (enabling clears the reason and the failure clock).
    pub enabled: Option<bool>,
}

/// Updates an endpoint.
///
/// # Errors
/// `webhook_not_found`.
pub async fn update_webhook(
    db: impl PgExecutor<'_>,
    org: OrgId,
    id: WebhookId,
    u: &WebhookUpdate,
) -> Result<WebhookEndpoint> {
    let sql = format!(
        "UPDATE videdit.webhook_endpoints SET
             url = COALESCE($3, url), description = COALESCE($4, description),
             event_types = COALESCE($5, event_types), enabled = COALESCE($6, enabled),
             disabled_reason = CASE WHEN $6 IS NULL THEN disabled_reason ELSE NULL END,
             failing_since = CASE WHEN $6 THEN NULL ELSE failing_since END,
             updated_at = now()
         WHERE org_id = $1 AND id = $2 RETURNING {ENDPOINT_COLUMNS}"
    );
    org_row(db, &sql, org, id, endpoint_not_found, |q| {
        q.bind(&u.url).bind(&u.description).bind(&u.event_types).bind(u.enabled)
    })
    .await
}

/// Deletes an endpoint and its deliveries.
///
/// # Errors
/// `webhook_not_found`.
pub async fn delete_webhook(db: impl PgExecutor<'_>, org: OrgId, id: WebhookId) -> Result<()> {
    delete_org_row(db, "videdit.webhook_endpoints", org, id, endpoint_not_found).await
}

/// Replaces the secret; the old one keeps signing until `previous_until`.
///
/// # Errors
/// `webhook_not_found`.
pub async fn rotate_webhook_secret(
    db: impl PgExecutor<'_>,
    org: OrgId,
    id: WebhookId,
    secret: &str,
    previous_until: OffsetDateTime,
) -> Result<WebhookEndpoint> {
    let sql = format!(
        "UPDATE videdit.webhook_endpoints SET previous_secret = secret, previous_expires_at = $4, secret = $3,
             updated_at = now()
         WHERE org_id = $1 AND id = $2 RETURNING {ENDPOINT_COLUMNS}"
    );
    org_row(db, &sql, org, id, endpoint_not_found, |q| q.bind(secret).bind(previous_until)).await
}

/// A stored signing secret that is to be sealed again.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredSecret {
    /// The endpoint.
    pub id: WebhookId,
    /// Its organisation.
    pub org_id: OrgId,
    /// `secret` as stored.
    pub secret: String,
    /// `previous_secret` as stored.
    pub previous_secret: Option<String>,
}

/// The stored secrets, of all organisations, where the current one or the
/// previous one does not start with `sealed_prefix` (the sealing key's
/// [`crate::sealed::Keyring::sealing_prefix`]), `limit` at a time after
/// `after` (by id): for the maintenance pass that seals values again after
/// a key rotation, which so reads nothing once all are sealed. Nothing of
/// it leaves the server.
///
/// # Errors
/// Database failures.
pub async fn stored_webhook_secrets(
    db: impl PgExecutor<'_>,
    sealed_prefix: &str,
    after: Option<WebhookId>,
    limit: i64,
) -> Result<Vec<StoredSecret>> {
    Ok(sqlx::query_as(
        "SELECT id, org_id, secret, previous_secret FROM videdit.webhook_endpoints
         WHERE ($1::uuid IS NULL OR id > $1)
           AND (left(secret, length($3)) <> $3 OR left(previous_secret, length($3)) <> $3)
         ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .bind(sealed_prefix)
    .fetch_all(db)
    .await?)
}

/// Replaces stored secrets with the same secrets sealed again, only if
/// they are still what was read (`expected`), so a rotation in between is
/// never undone. Returns whether the row changed.
///
/// # Errors
/// Database failures.
pub async fn reseal_webhook_secrets(
    db: impl PgExecutor<'_>,
    expected: &StoredSecret,
    secret: &str,
    previous_secret: Option<&str>,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE videdit.webhook_endpoints SET secret = $4, previous_secret = $5
         WHERE org_id = $1 AND id = $2 AND secret = $3 AND previous_secret IS NOT DISTINCT FROM $6",
    )
    .bind(expected.org_id)
    .bind(expected.id)
    .bind(&expected.secret)
    .bind(secret)
    .bind(previous_secret)
    .bind(&expected.previous_secret)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Disables an endpoint with a reason. Returns whether it was enabled.
///
/// # Errors
/// Database failures.
pub async fn disable_webhook(db: impl PgExecutor<'_>, org: OrgId, id: WebhookId, reason: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE videdit.webhook_endpoints SET enabled = false, disabled_reason = $3, updated_at = now()
         WHERE org_id = $1 AND id = $2 AND enabled",
    )
    .bind(org)
    .bind(id)
    .bind(reason)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records the outcome of an endpoint's delivery for its failure clock:
/// a success clears it; a failure starts it if it is not running. Returns
/// the clock's start after the update.
///
/// # Errors
/// Database failures.
pub async fn record_endpoint_health(
    db: impl PgExecutor<'_>,
    org: OrgId,
    id: WebhookId,
    success: bool,
) -> Result<Option<OffsetDateTime>> {
    let since: Option<Option<OffsetDateTime>> = sqlx::query_scalar(
        "UPDATE videdit.webhook_endpoints
         SET failing_since = CASE WHEN $3 THEN NULL ELSE COALESCE(failing_since, now()) END
         WHERE org_id = $1 AND id = $2 RETURNING failing_since",
    )
    .bind(org)
    .bind(id)
    .bind(success)
    .fetch_optional(db)
    .await?;
    Ok(since.flatten())
}

/// How a delivery stands.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Delivery {
    /// Id.
    pub id: DeliveryId,
    /// Organisation.
    pub org_id: OrgId,
    /// Endpoint.
    pub endpoint_id: WebhookId,
    /// The event delivered.
    pub event_id: EventId,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// HTTP status of the last attempt.
    pub response_status: Option<i32>,
    /// Latency of the last attempt.
    pub latency_ms: Option<i32>,
    /// What went wrong last.
    pub last_error: Option<String>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last attempt or change.
    pub updated_at: OffsetDateTime,
    /// When it was delivered.
    pub delivered_at: Option<OffsetDateTime>,
}

const DELIVERY_COLUMNS: &str = "id, org_id, endpoint_id, event_id, status, attempts, response_status, latency_ms, \
     last_error, created_at, updated_at, delivered_at";

fn delivery_not_found(id: DeliveryId) -> Error {
    Error::not_found(ErrorCode::NotFound, format!("delivery {id}"))
}

/// One delivery.
///
/// # Errors
/// `not_found`.
pub async fn get_delivery(db: impl PgExecutor<'_>, org: OrgId, id: DeliveryId) -> Result<Delivery> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM videdit.webhook_deliveries WHERE org_id = $1 AND id = $2");
    org_row(db, &sql, org, id, delivery_not_found, identity).await
}

/// An endpoint's deliveries, newest first.
///
/// # Errors
/// Database failures.
pub async fn list_deliveries(
    db: impl PgExecutor<'_>,
    org: OrgId,
    endpoint: WebhookId,
    limit: i64,
) -> Result<Vec<Delivery>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM videdit.webhook_deliveries WHERE org_id = $1 AND endpoint_id = $2
         ORDER BY created_at DESC, id DESC LIMIT $3"
    ))
    .bind(org)
    .bind(endpoint)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Records one attempt: its status (`pending` while retries remain).
///
/// # Errors
/// `not_found`.
pub async fn record_attempt(
    db: impl PgExecutor<'_>,
    org: OrgId,
    id: DeliveryId,
    status: &str,
    response_status: Option<u16>,
    latency_ms: i32,
    error: Option<&str>,
) -> Result<Delivery> {
    let sql = format!(
        "UPDATE videdit.webhook_deliveries SET status = $3, attempts = attempts + 1, response_status = $4,
             latency_ms = $5, last_error = $6, updated_at = now(),
             delivered_at = CASE WHEN $3 = 'delivered' THEN now() ELSE delivered_at END
         WHERE org_id = $1 AND id = $2 RETURNING {DELIVERY_COLUMNS}"
    );
    org_row(db, &sql, org, id, delivery_not_found, |q| {
        q.bind(status).bind(response_status.map(i32::from)).bind(latency_ms).bind(error)
    })
    .await
}

/// Puts a finished delivery back to pending (a replay), keeping its history.
///
/// # Errors
/// `not_found`.
pub async fn reset_delivery(db: impl PgExecutor<'_>, org: OrgId, id: DeliveryId) -> Result<Delivery> {
    let sql = format!(
        "UPDATE videdit.webhook_deliveries SET status = 'pending', attempts = 0, updated_at = now()
         WHERE org_id = $1 AND id = $2 RETURNING {DELIVERY_COLUMNS}"
    );
    org_row(db, &sql, org, id, delivery_not_found, identity).await
}
