//! # videdit-stripe
//!
//! Stripe for videdit's billing, and nothing else: no SQL, no plans, no
//! quotas. The server decides what a plan is; this crate talks to Stripe.
//!
//! - **Client**: [`StripeClient`] makes the four calls billing needs:
//!   [`create_customer`](StripeClient::create_customer) (with an
//!   `Idempotency-Key`), [`create_checkout_session`](StripeClient::create_checkout_session)
//!   (subscription mode), [`create_portal_session`](StripeClient::create_portal_session)
//!   and [`report_meter_event`](StripeClient::report_meter_event). Form
//!   bodies with Stripe's bracketed keys, `Stripe-Version` pinned to
//!   [`STRIPE_VERSION`], a timeout on every request. Plain reqwest: see
//!   `DECISION.md` for why not async-stripe.
//! - **Webhooks**: [`webhook::verify`] checks `Stripe-Signature` on the raw
//!   body (any one `v1`, constant-time, 300 s tolerance), then
//!   [`webhook::parse_event`] reads the [`Event`] with a typed
//!   [`EventObject`] for Checkout Sessions, Subscriptions and Invoices of
//!   old and new API versions.
//! - **Errors**: one [`StripeError`] with [`StripeError::is_retryable`];
//!   signature failures are a [`webhook::SignatureError`].
//! - **Fake** (feature `fake`): `fake::FakeStripe`, a Stripe on 127.0.0.1
//!   speaking the real wire format, that also drives the subscription life
//!   cycle and signs its events as Stripe does.
//!
//! ```no_run
//! use videdit_core::Secret;
//! use videdit_stripe::{CheckoutRequest, StripeClient, StripeConfig};
//!
//! # async fn run() -> Result<(), videdit_stripe::StripeError> {
//! let client = StripeClient::new(StripeConfig::new(Secret::new("sk_test_…".to_owned())))?;
//! let customer = client.create_customer("org_1", Some("Acme"), "customer-org_1").await?;
//! let session = client
//!     .create_checkout_session(&CheckoutRequest {
//!         customer,
//!         price: "price_pro".into(),
//!         client_reference_id: "org_1".into(),
//!         success_url: "https://app.example.com/billing?ok=1".into(),
//!         cancel_url: "https://app.example.com/billing".into(),
//!         org_id: "org_1".into(),
//!     })
//!     .await?;
//! println!("redirect to {}", session.url);
//! # Ok(()) }
//! ```
//!
//! # Errors
//!
//! API calls return [`StripeError`]: `Timeout` and `Transport` (retry with
//! the same idempotency key), `Api` with Stripe's status, `error.type` and
//! `error.code`, `Decode`, `Config`.

#![warn(missing_docs)]

mod client;
mod error;
mod event;
pub mod webhook;

#[cfg(feature = "fake")]
pub mod fake;

pub use client::{
    CheckoutRequest, CheckoutSession, DEFAULT_API_BASE, DEFAULT_TIMEOUT, MeterEvent, PortalSession, STRIPE_VERSION,
    StripeClient, StripeConfig,
};
pub use error::StripeError;
pub use event::{CheckoutSessionObject, Event, EventObject, Invoice, Subscription};
