//! Outbound webhook endpoints (admins only): create, list, get, update,
//! delete, rotate the secret, send a test event; deliveries listed and
//! replayed. Deliveries follow Standard Webhooks v1.

use std::sync::Arc;

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use time::OffsetDateTime;
use videdit_core::db::{self, Delivery, WebhookEndpoint, WebhookUpdate};
use videdit_core::{DeliveryId, ErrorCode, WebhookId};
use videdit_service::webhooks::{self, EndpointInput};

use super::error::{ApiError, ApiResult};
use super::{ApiTags, BearerAuth};
use crate::app::AppState;
use crate::auth::{Action, Principal};

/// Create a webhook endpoint.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct CreateWebhook {
    /// Where events are POSTed (`https://`; must not resolve to a private,
    /// loopback, link-local or metadata address).
    #[oai(validator(min_length = 10, max_length = 2048, pattern = r"^https?://[^\s/?#@]+[^\s]*$"))]
    pub url: String,
    /// Event types to receive; empty or absent: all.
    #[oai(default)]
    pub event_types: Vec<String>,
    /// Free text.
    #[oai(default)]
    pub description: String,
}

/// Change a webhook endpoint (absent fields stay).
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct UpdateWebhook {
    /// New URL (checked again).
    #[oai(validator(min_length = 10, max_length = 2048, pattern = r"^https?://[^\s/?#@]+[^\s]*$"))]
    pub url: Option<String>,
    /// New event types.
    pub event_types: Option<Vec<String>>,
    /// New description.
    pub description: Option<String>,
    /// Enable or disable deliveries (enabling clears a disabled reason).
    pub enabled: Option<bool>,
}

/// A webhook endpoint.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct WebhookBody {
    /// Id.
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// Types it receives (empty: all).
    pub event_types: Vec<String>,
    /// Free text.
    pub description: String,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Why it was disabled (a 410, or failing for 5 days).
    #[oai(skip_serializing_if_is_none)]
    pub disabled_reason: Option<String>,
    /// The signing secret (`whsec_…`): shown only when created or rotated.
    #[oai(skip_serializing_if_is_none)]
    pub secret: Option<String>,
    /// Until when the previous secret still signs (after a rotation).
    #[oai(skip_serializing_if_is_none)]
    pub previous_secret_expires_at: Option<OffsetDateTime>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
}

impl WebhookBody {
    fn new(e: &WebhookEndpoint, secret: Option<String>) -> Self {
        Self {
            id: e.id.to_string(),
            url: e.url.clone(),
            event_types: e.event_types.clone(),
            description: e.description.clone(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.clone(),
            secret,
            previous_secret_expires_at: e.previous_expires_at.filter(|t| *t > OffsetDateTime::now_utc()),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// One event's delivery to an endpoint.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct DeliveryBody {
    /// Id.
    pub id: String,
    /// The event (its id is the `webhook-id` header).
    pub event_id: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// The receiver's HTTP status on the last attempt.
    #[oai(skip_serializing_if_is_none)]
    pub response_status: Option<i32>,
    /// Latency of the last attempt, milliseconds.
    #[oai(skip_serializing_if_is_none)]
    pub latency_ms: Option<i32>,
    /// What went wrong last.
    #[oai(skip_serializing_if_is_none)]
    pub last_error: Option<String>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last attempt.
    pub updated_at: OffsetDateTime,
    /// When it was delivered.
    #[oai(skip_serializing_if_is_none)]
    pub delivered_at: Option<OffsetDateTime>,
}

impl From<&Delivery> for DeliveryBody {
    fn from(d: &Delivery) -> Self {
        Self {
            id: d.id.to_string(),
            event_id: d.event_id.to_string(),
            status: d.status.clone(),
            attempts: d.attempts,
            response_status: d.response_status,
            latency_ms: d.latency_ms,
            last_error: d.last_error.clone(),
            created_at: d.created_at,
            updated_at: d.updated_at,
            delivered_at: d.delivered_at,
        }
    }
}

/// A test event was queued.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct TestSent {
    /// The `webhook.test` event.
    pub event_id: String,
    /// Its delivery (follow it in the deliveries list).
    pub delivery_id: String,
}

#[derive(ApiResponse)]
enum Created {
    /// The endpoint, with its secret (shown this once).
    #[oai(status = 201)]
    Created(Json<WebhookBody>),
}

/// Webhooks API.
pub struct WebhooksApi;

fn webhook_id(raw: &str) -> ApiResult<WebhookId> {
    raw.parse().map_err(|_| ApiError::new(ErrorCode::WebhookNotFound, format!("webhook {raw:?} not found")))
}

/// Existence first (another organisation's id is a 404, not a 403), then the role.
async fn admin_endpoint(auth: BearerAuth, raw: &str) -> ApiResult<(Principal, Arc<AppState>, WebhookEndpoint)> {
    let (p, state) = auth.parts();
    let endpoint = db::get_webhook(&state.pool, p.org_id, webhook_id(raw)?).await?;
    p.require(Action::Manage)?;
    Ok((p, state, endpoint))
}

#[OpenApi(tag = "ApiTags::Webhooks")]
impl WebhooksApi {
    /// Create a webhook endpoint
    ///
    /// Admins only. Events are POSTed signed per Standard Webhooks v1
    /// (`webhook-id`, `webhook-timestamp`, `webhook-signature`). The secret
    /// is in this response only.
    #[oai(path = "/webhooks", method = "post", operation_id = "createWebhook")]
    async fn create(&self, auth: BearerAuth, body: Json<CreateWebhook>) -> ApiResult<Created> {
        let (p, state) = auth.may(Action::Manage)?;
        let input = EndpointInput { url: body.0.url, description: body.0.description, event_types: body.0.event_types };
        let (endpoint, secret) =
            webhooks::create(&state.pool, &state.keyring, state.webhook_policy, p.org_id, &input).await?;
        Ok(Created::Created(Json(WebhookBody::new(&endpoint, Some(secret.expose().to_owned())))))
    }

    /// List webhook endpoints
    ///
    /// Admins only.
    #[oai(path = "/webhooks", method = "get", operation_id = "listWebhooks")]
    async fn list(&self, auth: BearerAuth) -> ApiResult<Json<Vec<WebhookBody>>> {
        let (p, state) = auth.may(Action::Manage)?;
        let all = db::list_webhooks(&state.pool, p.org_id).await?;
        Ok(Json(all.iter().map(|e| WebhookBody::new(e, None)).collect()))
    }

    /// Get a webhook endpoint
    ///
    /// Admins only; the secret is not shown again.
    #[oai(path = "/webhooks/:id", method = "get", operation_id = "getWebhook")]
    async fn get(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<WebhookBody>> {
        Ok(Json(WebhookBody::new(&admin_endpoint(auth, &id.0).await?.2, None)))
    }

    /// Update a webhook endpoint
    ///
    /// Admins only. A new URL is checked again; enabling clears the reason
    /// it was disabled.
    #[oai(path = "/webhooks/:id", method = "patch", operation_id = "updateWebhook")]
    async fn update(
        &self,
        auth: BearerAuth,
        id: Path<String>,
        body: Json<UpdateWebhook>,
    ) -> ApiResult<Json<WebhookBody>> {
        let (p, state, endpoint) = admin_endpoint(auth, &id.0).await?;
        let b = body.0;
        let update =
            WebhookUpdate { url: b.url, description: b.description, event_types: b.event_types, enabled: b.enabled };
        let updated = webhooks::update(&state.pool, state.webhook_policy, p.org_id, endpoint.id, &update).await?;
        Ok(Json(WebhookBody::new(&updated, None)))
    }

    /// Delete a webhook endpoint
    ///
    /// Admins only. Its deliveries go with it.
    #[oai(path = "/webhooks/:id", method = "delete", operation_id = "deleteWebhook")]
    async fn delete(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<serde_json::Value>> {
        let (p, state, endpoint) = admin_endpoint(auth, &id.0).await?;
        db::delete_webhook(&state.pool, p.org_id, endpoint.id).await?;
        Ok(Json(serde_json::json!({"deleted": true})))
    }

    /// Rotate a webhook endpoint's secret
    ///
    /// Admins only. Returns the new secret (shown this once); the old one
    /// keeps signing beside it for 24 hours, so both signatures are sent.
    #[oai(path = "/webhooks/:id/rotate-secret", method = "post", operation_id = "rotateWebhookSecret")]
    async fn rotate(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<WebhookBody>> {
        let (p, state, endpoint) = admin_endpoint(auth, &id.0).await?;
        let (rotated, secret) = webhooks::rotate_secret(&state.pool, &state.keyring, p.org_id, endpoint.id).await?;
        Ok(Json(WebhookBody::new(&rotated, Some(secret.expose().to_owned()))))
    }

    /// Send a test event
    ///
    /// Admins only. Queues a `webhook.test` event to this endpoint.
    #[oai(path = "/webhooks/:id/test", method = "post", operation_id = "testWebhook")]
    async fn test(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<TestSent>> {
        let (p, state, endpoint) = admin_endpoint(auth, &id.0).await?;
        let (event, delivery) = webhooks::send_test(&state.pool, p.org_id, endpoint.id).await?;
        Ok(Json(TestSent { event_id: event.id.to_string(), delivery_id: delivery.to_string() }))
    }

    /// List an endpoint's deliveries
    ///
    /// Admins only. Newest first, with status, attempts, the last response
    /// code and latency.
    #[oai(path = "/webhooks/:id/deliveries", method = "get", operation_id = "listWebhookDeliveries")]
    async fn deliveries(&self, auth: BearerAuth, id: Path<String>) -> ApiResult<Json<Vec<DeliveryBody>>> {
        let (p, state, endpoint) = admin_endpoint(auth, &id.0).await?;
        let all = db::list_deliveries(&state.pool, p.org_id, endpoint.id, 200).await?;
        Ok(Json(all.iter().map(DeliveryBody::from).collect()))
    }

    /// Replay a delivery
    ///
    /// Admins only. Sends the event again from the first attempt, with the
    /// same `webhook-id`.
    #[oai(path = "/webhooks/:id/deliveries/:delivery/replay", method = "post", operation_id = "replayWebhookDelivery")]
    async fn replay(
        &self,
        auth: BearerAuth,
        id: Path<String>,
        delivery: Path<String>,
    ) -> ApiResult<Json<DeliveryBody>> {
        let (p, state, endpoint) = admin_endpoint(auth, &id.0).await?;
        let not_found = || ApiError::new(ErrorCode::NotFound, format!("delivery {:?} not found", delivery.0));
        let did: DeliveryId = delivery.0.parse().map_err(|_| not_found())?;
        let d = webhooks::replay(&state.pool, p.org_id, endpoint.id, did).await?;
        Ok(Json(DeliveryBody::from(&d)))
    }
}
