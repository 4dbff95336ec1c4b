//! Billing's Stripe adapter: the application layer's [`PaymentProvider`]
//! and the webhook's verification. No billing rule lives here.
//!
//! This build has the plans, the ledger and the billing API; the Stripe
//! client itself (crate `videdit-stripe`) is not wired in yet, so Stripe
//! settings are refused at start-up and the endpoints answer
//! `billing_not_configured`.

use std::sync::Arc;

use sqlx::PgPool;
use videdit_core::{ErrorCode, Secret};
use videdit_service::Error;
use videdit_service::billing::{Billing, PaymentProvider};

use crate::settings::StripeSettings;

/// The payment provider, when billing is configured.
pub type Payments = Option<Arc<dyn PaymentProvider>>;

/// How old a signed event may be (Stripe's own default tolerance).
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

/// Verifies and applies Stripe's webhook events.
pub struct StripeWebhook {
    #[allow(dead_code)]
    secret: Secret<String>,
}

impl StripeWebhook {
    /// With the endpoint's signing secret (`whsec_…`).
    #[must_use]
    pub const fn new(secret: Secret<String>) -> Self {
        Self { secret }
    }

    /// Verifies `Stripe-Signature`, then applies the event once.
    ///
    /// # Errors
    /// `billing_not_configured` in this build.
    pub async fn apply(
        &self,
        pool: &PgPool,
        billing: &Billing,
        body: &[u8],
        header: Option<&str>,
    ) -> Result<&'static str, Error> {
        let _ = (pool, billing, body, header);
        Err(Error::new(ErrorCode::BillingNotConfigured, "this build has no Stripe client yet"))
    }
}

/// The provider and the webhook of the Stripe settings (`None`, `None`
/// without them).
///
/// # Errors
/// Stripe settings, which this build cannot use yet.
pub fn from_settings(stripe: Option<&StripeSettings>) -> anyhow::Result<(Payments, Option<StripeWebhook>)> {
    match stripe {
        None => Ok((None, None)),
        Some(_) => anyhow::bail!("this build has no Stripe client yet"),
    }
}
