//! Billing: the organisation's plan, period and usage (everyone), a
//! Checkout Session or a Customer Portal session (admins). The Stripe
//! webhook is [`stripe_webhook`]: a plain route, signed instead of
//! authenticated, outside the OpenAPI document.

use std::sync::Arc;

use poem::web::Data;
use poem::{Body, IntoResponse, Request, Response};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use time::OffsetDateTime;
use videdit_core::ErrorCode;
use videdit_service::billing::{self, Plan, Usage};

use super::error::{ApiError, ApiResult, error_response};
use super::{ApiTags, BearerAuth};
use crate::app::AppState;
use crate::auth::Action;

/// A plan and its limits (absent: no limit).
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct PlanBody {
    /// Stable id: what checkout takes.
    pub id: String,
    /// Shown to people.
    pub name: String,
    /// Whether it is free (no subscription).
    pub free: bool,
    /// Processed minutes per billing period.
    pub minutes_per_period: Option<u32>,
    /// Longest source, seconds.
    pub max_source_seconds: Option<u32>,
    /// Largest upload, bytes.
    pub max_upload_bytes: Option<u64>,
    /// Most shorts one analysis makes.
    pub max_shorts_per_video: Option<u32>,
    /// Most jobs of the organisation running at once.
    pub max_running_jobs: Option<u32>,
    /// Most bytes of stored sources.
    pub max_stored_bytes: Option<u64>,
}

impl From<&Plan> for PlanBody {
    fn from(p: &Plan) -> Self {
        Self {
            id: p.id.clone(),
            name: p.display_name().to_owned(),
            free: p.price_id.is_none(),
            minutes_per_period: p.minutes_per_period,
            max_source_seconds: p.max_source_seconds,
            max_upload_bytes: p.max_upload_bytes,
            max_shorts_per_video: p.max_shorts_per_video,
            max_running_jobs: p.max_running_jobs,
            max_stored_bytes: p.max_stored_bytes,
        }
    }
}

/// The organisation's billing: plan, period, usage and limits.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct BillingBody {
    /// The plan whose limits apply now.
    pub plan: PlanBody,
    /// `default` (no subscription), `subscribed`, `payment_grace` (a payment
    /// failed; the plan holds until `graceUntil`), `payment_overdue` (the
    /// default plan's limits apply).
    pub standing: String,
    /// The Stripe subscription's status, when there is one.
    pub subscription_status: Option<String>,
    /// The billing period's start.
    pub period_start: OffsetDateTime,
    /// Its end (exclusive): usage starts again from zero.
    pub period_end: OffsetDateTime,
    /// Minutes of ready videos this period (one decimal).
    pub minutes_used: f64,
    /// Minutes of videos still processing.
    pub minutes_reserved: f64,
    /// Minutes left; absent: unlimited.
    pub minutes_remaining: Option<f64>,
    /// The same in seconds (exact).
    pub seconds_used: i64,
    /// Seconds reserved.
    pub seconds_reserved: i64,
    /// Seconds left; absent: unlimited.
    pub seconds_remaining: Option<i64>,
    /// When a failed payment's grace period ends.
    pub grace_until: Option<OffsetDateTime>,
    /// When the trial ends.
    pub trial_end: Option<OffsetDateTime>,
    /// Whether checkout and the portal are available on this server.
    pub billing_enabled: bool,
    /// Stripe's publishable key, for the web app.
    pub publishable_key: Option<String>,
    /// Every plan, cheapest first.
    pub plans: Vec<PlanBody>,
}

fn minutes(seconds: i64) -> f64 {
    (seconds as f64 / 6.0).round() / 10.0
}

impl BillingBody {
    fn new(u: &Usage, state: &AppState) -> Self {
        Self {
            plan: PlanBody::from(&u.plan),
            standing: u.standing.as_str().to_owned(),
            subscription_status: u.subscription_status.clone(),
            period_start: u.period_start,
            period_end: u.period_end,
            minutes_used: minutes(u.used_seconds),
            minutes_reserved: minutes(u.reserved_seconds),
            minutes_remaining: u.remaining_seconds.map(minutes),
            seconds_used: u.used_seconds,
            seconds_reserved: u.reserved_seconds,
            seconds_remaining: u.remaining_seconds,
            grace_until: u.grace_until,
            trial_end: u.trial_end,
            billing_enabled: state.payments.is_some(),
            publishable_key: state.stripe_publishable_key.clone(),
            plans: state.billing.plans.all().iter().map(PlanBody::from).collect(),
        }
    }
}

/// Start a checkout.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct CheckoutRequest {
    /// The plan's id (one with a price).
    #[oai(validator(min_length = 1, max_length = 64))]
    pub plan: String,
}

/// Where to send the person.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename_all = "camelCase")]
pub struct SessionUrl {
    /// Stripe's hosted page.
    pub url: String,
}

pub struct BillingApi;

fn payments(state: &AppState) -> ApiResult<&Arc<dyn billing::PaymentProvider>> {
    state.payments.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::BillingNotConfigured,
            "billing is not configured on this server (STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET)",
        )
    })
}

#[OpenApi(prefix_path = "/billing", tag = "ApiTags::Billing")]
impl BillingApi {
    /// The organisation's plan and usage
    ///
    /// The plan whose limits apply, the billing period, and the processed
    /// minutes used (ready videos), reserved (videos still processing) and
    /// remaining. A video's minutes are reserved once its duration is known
    /// and charged once: re-analysing or re-rendering it costs nothing more,
    /// and a video that fails through no fault of its file costs nothing.
    #[oai(path = "/", method = "get", operation_id = "getBilling")]
    async fn get(&self, auth: BearerAuth) -> ApiResult<Json<BillingBody>> {
        let (p, state) = auth.may(Action::Read)?;
        let mut conn = state.pool.acquire().await?;
        let usage = billing::usage(&mut conn, &state.billing, p.org_id).await?;
        Ok(Json(BillingBody::new(&usage, &state)))
    }

    /// Start a checkout (admins)
    ///
    /// A Stripe Checkout Session in subscription mode for a plan; send the
    /// person to its `url`. The organisation gets one Stripe customer,
    /// created on its first checkout. The plan applies once Stripe confirms
    /// the subscription (its webhook), not when this returns.
    #[oai(path = "/checkout", method = "post", operation_id = "createCheckoutSession")]
    async fn checkout(&self, auth: BearerAuth, body: Json<CheckoutRequest>) -> ApiResult<Json<SessionUrl>> {
        let (p, state) = auth.may(Action::Manage)?;
        let provider = payments(&state)?;
        let url = billing::checkout(&state.pool, &state.billing, provider.as_ref(), p.org_id, &body.0.plan).await?;
        Ok(Json(SessionUrl { url }))
    }

    /// Open the customer portal (admins)
    ///
    /// A Stripe Customer Portal session: change or cancel the plan, update
    /// the payment method, see invoices.
    #[oai(path = "/portal", method = "post", operation_id = "createPortalSession")]
    async fn portal(&self, auth: BearerAuth) -> ApiResult<Json<SessionUrl>> {
        let (p, state) = auth.may(Action::Manage)?;
        let provider = payments(&state)?;
        let url = billing::portal(&state.pool, provider.as_ref(), p.org_id).await?;
        Ok(Json(SessionUrl { url }))
    }
}

/// Largest Stripe event body read.
const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// `POST /api/v1/billing/stripe-webhook`: Stripe's events. The signature is
/// checked before anything is parsed; anything unsigned, badly signed or
/// stale is a 400 and changes nothing. Each event is applied once.
#[poem::handler]
pub async fn stripe_webhook(req: &Request, body: Body, Data(state): Data<&Arc<AppState>>) -> Response {
    let Some(hook) = state.stripe_webhook.as_ref() else {
        return error_response(ErrorCode::BillingNotConfigured, "billing is not configured on this server");
    };
    let body = match body.into_bytes_limit(MAX_EVENT_BYTES).await {
        Ok(b) => b,
        Err(_) => return error_response(ErrorCode::RequestTooLarge, "an event has at most 1 MiB"),
    };
    let header = req.header("stripe-signature");
    match hook.apply(&state.pool, &state.billing, &body, header).await {
        Ok(outcome) => poem::web::Json(serde_json::json!({"received": true, "outcome": outcome})).into_response(),
        Err(e) => {
            if e.code().http_status() >= 500 {
                tracing::warn!(error = %e, "a Stripe event could not be applied; Stripe will retry");
            } else {
                tracing::info!(error = %e, "a Stripe event was refused");
            }
            let message = if e.code().http_status() >= 500 { "try again later" } else { e.message() };
            error_response(e.code(), message)
        }
    }
}
