//! The API client: the four calls billing needs, over reqwest.
//!
//! Requests are `application/x-www-form-urlencoded` with Stripe's bracketed
//! keys (`line_items[0][price]`), authorised with `Authorization: Bearer`,
//! pinned to [`STRIPE_VERSION`], and bounded by the configured timeout.
//! Answers are decoded into the few fields we use; Stripe adds fields to
//! its objects without a version change, so nothing here rejects unknown
//! fields.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;
use url::Url;
use videdit_core::Secret;

use crate::StripeError;

/// The Stripe API version every request is pinned to (`Stripe-Version`).
///
/// `2025-03-31.basil` is the version that moved `current_period_start`/
/// `_end` from subscriptions to their items and `invoice.subscription` to
/// `invoice.parent.subscription_details`; webhook payloads follow the
/// endpoint's own version, so [`parse_event`](crate::webhook::parse_event)
/// reads both shapes.
pub const STRIPE_VERSION: &str = "2025-03-31.basil";

/// The production API base.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";

/// The timeout used by [`StripeConfig::new`]. Stripe's own libraries use
/// 80 s; billing calls sit on user-facing requests, so we fail sooner and
/// let the caller retry with the same idempotency key.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// How to reach Stripe. `Debug` never shows the key.
#[derive(Clone, Debug)]
pub struct StripeConfig {
    /// Where the API lives: [`DEFAULT_API_BASE`], or a fake's
    /// `base_url()` in tests. Paths such as `/v1/customers` are appended.
    pub api_base: Url,
    /// The secret (`sk_live_…`/`sk_test_…`) or restricted (`rk_…`) key.
    pub secret_key: Secret<String>,
    /// The limit on each request, from connecting to the last body byte.
    pub timeout: Duration,
}

impl StripeConfig {
    /// A configuration for production Stripe with [`DEFAULT_TIMEOUT`].
    pub fn new(secret_key: Secret<String>) -> Self {
        Self {
            api_base: Url::parse(DEFAULT_API_BASE).expect("DEFAULT_API_BASE is a valid URL"),
            secret_key,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A Stripe API client. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    api_base: Url,
    secret_key: Secret<String>,
    timeout: Duration,
}

impl fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeClient")
            .field("api_base", &self.api_base.as_str())
            .field("secret_key", &self.secret_key)
            .field("timeout", &self.timeout)
            .field("stripe_version", &STRIPE_VERSION)
            .finish()
    }
}

/// What [`StripeClient::create_checkout_session`] sends: a subscription
/// Checkout for one price, quantity 1, for an existing customer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutRequest {
    /// The organisation's Stripe customer (`cus_…`).
    pub customer: String,
    /// The plan's recurring price (`price_…`).
    pub price: String,
    /// Our reference, echoed in `checkout.session.completed`
    /// (`client_reference_id`); the organisation id is the natural choice.
    pub client_reference_id: String,
    /// Where Stripe sends the browser after payment. May contain
    /// `{CHECKOUT_SESSION_ID}`, which Stripe fills in.
    pub success_url: String,
    /// Where Stripe sends the browser when the user gives up.
    pub cancel_url: String,
    /// Stored as `metadata[org_id]` on the session and
    /// `subscription_data[metadata][org_id]` on the subscription, so every
    /// later subscription event names the organisation.
    pub org_id: String,
}

/// A created Checkout Session: redirect the browser to `url`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct CheckoutSession {
    /// `cs_…`
    pub id: String,
    /// The hosted payment page.
    pub url: String,
}

/// A created Customer Portal session: redirect the browser to `url`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PortalSession {
    /// `bps_…`
    pub id: String,
    /// The short-lived portal page.
    pub url: String,
}

/// One usage report for a Billing Meter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeterEvent {
    /// The meter's `event_name`.
    pub event_name: String,
    /// The customer billed (`cus_…`), sent as `payload[stripe_customer_id]`.
    pub customer: String,
    /// The usage (for example minutes), sent as `payload[value]`.
    pub value: u64,
    /// Unique per usage fact (Stripe de-duplicates on it for at least
    /// 24 h); derive it from our ledger row so a retry reuses it.
    pub identifier: String,
    /// When the usage happened, Unix seconds (35 days back to 5 min ahead).
    pub timestamp: i64,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    message: Option<String>,
    param: Option<String>,
}

impl StripeClient {
    /// Makes a client; no request is sent.
    ///
    /// # Errors
    ///
    /// [`StripeError::Config`] when `api_base` is not an `http`/`https`
    /// URL or the timeout is zero; [`StripeError::Transport`] when the TLS
    /// backend cannot be initialised.
    pub fn new(cfg: StripeConfig) -> Result<Self, StripeError> {
        if !matches!(cfg.api_base.scheme(), "http" | "https") || cfg.api_base.cannot_be_a_base() {
            return Err(StripeError::Config { reason: "api_base must be an http or https URL" });
        }
        if cfg.timeout.is_zero() {
            return Err(StripeError::Config { reason: "timeout must be positive" });
        }
        let mut headers = HeaderMap::new();
        headers.insert("Stripe-Version", HeaderValue::from_static(STRIPE_VERSION));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("videdit-stripe/", env!("CARGO_PKG_VERSION")))
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(StripeError::Transport)?;
        Ok(Self { http, api_base: cfg.api_base, secret_key: cfg.secret_key, timeout: cfg.timeout })
    }

    /// Creates the Stripe customer of an organisation, with
    /// `metadata[org_id]` so the Dashboard links back to us.
    ///
    /// Pass the same `idempotency_key` when retrying (for example
    /// `customer-{org_id}`): Stripe then returns the customer it already
    /// made instead of a second one.
    ///
    /// # Errors
    ///
    /// Any [`StripeError`]; check [`StripeError::is_retryable`].
    pub async fn create_customer(
        &self,
        org_id: &str,
        name: Option<&str>,
        idempotency_key: &str,
    ) -> Result<String, StripeError> {
        let mut form = vec![("metadata[org_id]", org_id.to_owned())];
        if let Some(name) = name {
            form.push(("name", name.to_owned()));
        }
        let created: Created = self.post("/v1/customers", &form, Some(idempotency_key)).await?;
        Ok(created.id)
    }

    /// Creates a subscription-mode Checkout Session for one price.
    ///
    /// # Errors
    ///
    /// Any [`StripeError`]; an unknown price or customer is a 400
    /// `resource_missing`.
    pub async fn create_checkout_session(&self, req: &CheckoutRequest) -> Result<CheckoutSession, StripeError> {
        let form = vec![
            ("mode", "subscription".to_owned()),
            ("customer", req.customer.clone()),
            ("line_items[0][price]", req.price.clone()),
            ("line_items[0][quantity]", "1".to_owned()),
            ("client_reference_id", req.client_reference_id.clone()),
            ("success_url", req.success_url.clone()),
            ("cancel_url", req.cancel_url.clone()),
            ("metadata[org_id]", req.org_id.clone()),
            ("subscription_data[metadata][org_id]", req.org_id.clone()),
        ];
        self.post("/v1/checkout/sessions", &form, None).await
    }

    /// Creates a Customer Portal session for a customer.
    ///
    /// # Errors
    ///
    /// Any [`StripeError`].
    pub async fn create_portal_session(&self, customer: &str, return_url: &str) -> Result<PortalSession, StripeError> {
        let form = vec![("customer", customer.to_owned()), ("return_url", return_url.to_owned())];
        self.post("/v1/billing_portal/sessions", &form, None).await
    }

    /// Reports usage to a Billing Meter (`POST /v1/billing/meter_events`).
    ///
    /// Safe to repeat: the request carries `Idempotency-Key:
    /// meter-{identifier}` (a retry within Stripe's 24 h key window gets
    /// the first answer back), and an answer saying the identifier was
    /// already used counts as success, since that event was recorded.
    ///
    /// # Errors
    ///
    /// Any [`StripeError`] except the duplicate-identifier answer.
    pub async fn report_meter_event(&self, ev: &MeterEvent) -> Result<(), StripeError> {
        let form = vec![
            ("event_name", ev.event_name.clone()),
            ("payload[stripe_customer_id]", ev.customer.clone()),
            ("payload[value]", ev.value.to_string()),
            ("identifier", ev.identifier.clone()),
            ("timestamp", ev.timestamp.to_string()),
        ];
        let key = format!("meter-{}", ev.identifier);
        match self.post::<serde_json::Value>("/v1/billing/meter_events", &form, Some(&key)).await {
            Ok(_) => Ok(()),
            Err(err) if is_duplicate_meter_event(&err) => {
                tracing::debug!(identifier = %ev.identifier, "meter event already recorded");
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: Option<&str>,
    ) -> Result<T, StripeError> {
        let url = self.url(path)?;
        let body = encode_form(form);
        let mut request = self
            .http
            .post(url)
            .bearer_auth(self.secret_key.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let span = tracing::debug_span!("stripe", method = "POST", path, status = tracing::field::Empty);
        self.send(request, &span).instrument(span.clone()).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        span: &tracing::Span,
    ) -> Result<T, StripeError> {
        let response = request.send().await.map_err(StripeError::from_reqwest)?;
        let status = response.status();
        span.record("status", status.as_u16());
        let request_id = response.headers().get("request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = response.bytes().await.map_err(StripeError::from_reqwest)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(StripeError::Decode);
        }
        let err = match serde_json::from_slice::<ErrorEnvelope>(&bytes) {
            Ok(ErrorEnvelope { error }) => StripeError::Api {
                status: status.as_u16(),
                kind: error.kind.unwrap_or_else(|| "unknown".to_owned()),
                code: error.code,
                message: error.message.unwrap_or_default(),
                param: error.param,
                request_id,
            },
            Err(_) => StripeError::Api {
                status: status.as_u16(),
                kind: "unknown".to_owned(),
                code: None,
                message: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
                param: None,
                request_id,
            },
        };
        tracing::debug!(parent: span, error = %err, "Stripe rejected the request");
        Err(err)
    }

    fn url(&self, path: &str) -> Result<Url, StripeError> {
        // `join` with an absolute path replaces any path of the base, which
        // is what Stripe's bases (no path) and our fake (no path) want.
        self.api_base.join(path).map_err(|_| StripeError::Config { reason: "api_base cannot take a path" })
    }

    /// The timeout every request of this client has.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// Stripe enforces meter event identifiers to be unique for at least 24 h
/// but does not document the wire answer to a repeat. We accept the answer
/// our fake gives (see `fake::server`, a 400 `invalid_request_error` with
/// code `duplicate_meter_event`) and, defensively, any 400 whose message
/// says the identifier already exists.
fn is_duplicate_meter_event(err: &StripeError) -> bool {
    match err {
        StripeError::Api { status: 400, code, message, .. } => {
            code.as_deref() == Some(DUPLICATE_METER_EVENT_CODE)
                || (message.contains("identifier") && message.contains("already exists"))
        }
        _ => false,
    }
}

/// The `error.code` of a repeated meter event identifier.
pub(crate) const DUPLICATE_METER_EVENT_CODE: &str = "duplicate_meter_event";

/// `application/x-www-form-urlencoded`, keys already in Stripe's bracketed
/// form. The brackets are percent-encoded, as Stripe's own libraries do.
pub(crate) fn encode_form(pairs: &[(&str, String)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        out.append_pair(key, value);
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_keys_keep_brackets() {
        let body = encode_form(&[("line_items[0][price]", "price_1".into()), ("name", "A & B".into())]);
        assert_eq!(body, "line_items%5B0%5D%5Bprice%5D=price_1&name=A+%26+B");
        let decoded: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
        assert_eq!(decoded[0], ("line_items[0][price]".into(), "price_1".into()));
    }

    #[test]
    fn rejects_bad_base() {
        let mut cfg = StripeConfig::new(Secret::new("sk_test_x".into()));
        cfg.api_base = Url::parse("mailto:a@b.c").unwrap();
        assert!(matches!(StripeClient::new(cfg), Err(StripeError::Config { .. })));
    }

    #[test]
    fn debug_hides_the_key() {
        let cfg = StripeConfig::new(Secret::new("sk_test_supersecret".into()));
        let client = StripeClient::new(cfg.clone()).unwrap();
        let printed = format!("{cfg:?} {client:?} {cfg:#?} {client:#?}");
        assert!(!printed.contains("supersecret"), "{printed}");
        assert!(printed.contains("[redacted]"));
    }
}
