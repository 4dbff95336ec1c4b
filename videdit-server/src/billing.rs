//! Billing's Stripe adapter: the application layer's [`PaymentProvider`]
//! over `videdit-stripe`, and the webhook's verification and translation
//! into [`billing::StripeEvent`]s. No billing rule lives here.

use std::sync::Arc;

use sqlx::PgPool;
use videdit_core::{ErrorCode, Secret};
use videdit_service::Error;
#[cfg(feature = "stripe")]
use videdit_service::billing;
use videdit_service::billing::{Billing, PaymentProvider};

use crate::settings::StripeSettings;

/// The payment provider, when billing is configured.
pub type Payments = Option<Arc<dyn PaymentProvider>>;

/// How old a signed event may be (Stripe's own default tolerance).
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

/// Verifies and applies Stripe's webhook events.
pub struct StripeWebhook {
    #[cfg_attr(not(feature = "stripe"), allow(dead_code))]
    secret: Secret<String>,
}

impl StripeWebhook {
    /// With the endpoint's signing secret (`whsec_…`).
    #[must_use]
    pub const fn new(secret: Secret<String>) -> Self {
        Self { secret }
    }

    /// Verifies `Stripe-Signature` before reading anything of the body,
    /// then applies the event once.
    ///
    /// # Errors
    /// `webhook_signature_invalid` (400) for a missing, wrong or stale
    /// signature; `invalid_request` for a signed body that is not an event;
    /// database failures (5xx: Stripe retries).
    pub async fn apply(
        &self,
        pool: &PgPool,
        billing: &Billing,
        body: &[u8],
        header: Option<&str>,
    ) -> Result<&'static str, Error> {
        #[cfg(feature = "stripe")]
        {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            videdit_stripe::webhook::verify(body, header, &self.secret, now, SIGNATURE_TOLERANCE_SECS)
                .map_err(|e| Error::new(ErrorCode::WebhookSignatureInvalid, format!("Stripe-Signature: {e}")))?;
            let event = videdit_stripe::webhook::parse_event(body)
                .map_err(|e| Error::invalid(format!("not a Stripe event: {e}")))?;
            let ev = translate(event);
            Ok(match billing::apply_stripe_event(pool, billing, &ev).await? {
                billing::Applied::Duplicate => "duplicate",
                billing::Applied::Done(outcome) => outcome,
            })
        }
        #[cfg(not(feature = "stripe"))]
        {
            let _ = (pool, billing, body, header);
            Err(Error::new(ErrorCode::BillingNotConfigured, "this build has no Stripe support"))
        }
    }
}

#[cfg(feature = "stripe")]
fn translate(e: videdit_stripe::Event) -> billing::StripeEvent {
    use billing::{StripeChange, SubscriptionState};
    use videdit_stripe::EventObject;
    let subscription = |s: videdit_stripe::Subscription| SubscriptionState {
        id: s.id,
        customer: s.customer,
        status: s.status,
        price: s.price_ids.into_iter().next(),
        period: s.current_period_start.zip(s.current_period_end),
        trial_end: s.trial_end,
        org: s.metadata.get("org_id").cloned(),
    };
    let change = match (e.kind.as_str(), e.object) {
        ("checkout.session.completed", EventObject::CheckoutSession(c)) => StripeChange::CheckoutCompleted {
            org: c.client_reference_id,
            customer: c.customer,
            subscription: c.subscription,
        },
        (
            "customer.subscription.created" | "customer.subscription.updated" | "customer.subscription.deleted",
            EventObject::Subscription(s),
        ) => StripeChange::Subscription(subscription(s)),
        ("customer.subscription.trial_will_end", EventObject::Subscription(s)) => {
            StripeChange::TrialWillEnd(subscription(s))
        }
        ("invoice.paid", EventObject::Invoice(i)) => StripeChange::InvoicePaid { customer: i.customer },
        ("invoice.payment_failed", EventObject::Invoice(i)) => {
            StripeChange::InvoicePaymentFailed { customer: i.customer }
        }
        _ => StripeChange::Other,
    };
    billing::StripeEvent { id: e.id, kind: e.kind, created: e.created, change }
}

/// The provider over Stripe's API.
#[cfg(feature = "stripe")]
pub struct StripeProvider {
    client: videdit_stripe::StripeClient,
    settings: StripeSettings,
}

#[cfg(feature = "stripe")]
fn unavailable(e: &videdit_stripe::StripeError) -> Error {
    // Stripe's own messages name no secret; ours say what failed.
    Error::new(ErrorCode::PaymentProviderUnavailable, format!("Stripe: {e}"))
}

#[cfg(feature = "stripe")]
#[async_trait::async_trait]
impl PaymentProvider for StripeProvider {
    async fn create_customer(&self, org: videdit_core::OrgId, name: &str) -> Result<String, Error> {
        let name = (!name.is_empty()).then_some(name);
        self.client
            .create_customer(&org.to_string(), name, &format!("videdit-customer-{org}"))
            .await
            .map_err(|e| unavailable(&e))
    }

    async fn checkout_session(&self, customer: &str, price: &str, org: videdit_core::OrgId) -> Result<String, Error> {
        let req = videdit_stripe::CheckoutRequest {
            customer: customer.to_owned(),
            price: price.to_owned(),
            client_reference_id: org.to_string(),
            success_url: self.settings.success_url.clone(),
            cancel_url: self.settings.cancel_url.clone(),
            org_id: org.to_string(),
        };
        Ok(self.client.create_checkout_session(&req).await.map_err(|e| unavailable(&e))?.url)
    }

    async fn portal_session(&self, customer: &str) -> Result<String, Error> {
        Ok(self
            .client
            .create_portal_session(customer, &self.settings.portal_return_url)
            .await
            .map_err(|e| unavailable(&e))?
            .url)
    }

    async fn report_usage(
        &self,
        customer: &str,
        identifier: &str,
        seconds: u64,
        at: time::OffsetDateTime,
    ) -> Result<(), Error> {
        let Some(event_name) = self.settings.meter_event.clone() else { return Ok(()) };
        let ev = videdit_stripe::MeterEvent {
            event_name,
            customer: customer.to_owned(),
            value: seconds,
            identifier: identifier.to_owned(),
            timestamp: at.unix_timestamp(),
        };
        self.client.report_meter_event(&ev).await.map_err(|e| unavailable(&e))
    }
}

/// The provider and the webhook of the Stripe settings (`None`, `None`
/// without them).
///
/// # Errors
/// A client that cannot be built.
pub fn from_settings(stripe: Option<&StripeSettings>) -> anyhow::Result<(Payments, Option<StripeWebhook>)> {
    let Some(s) = stripe else { return Ok((None, None)) };
    #[cfg(feature = "stripe")]
    {
        let client = videdit_stripe::StripeClient::new(videdit_stripe::StripeConfig {
            api_base: s.api_base.clone(),
            secret_key: s.secret_key.clone(),
            timeout: std::time::Duration::from_secs(20),
        })?;
        let provider: Arc<dyn PaymentProvider> = Arc::new(StripeProvider { client, settings: s.clone() });
        Ok((Some(provider), Some(StripeWebhook::new(s.webhook_secret.clone()))))
    }
    #[cfg(not(feature = "stripe"))]
    {
        let _ = s;
        anyhow::bail!("this build has no Stripe support (cargo feature `stripe`)")
    }
}
