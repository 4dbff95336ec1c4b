//! A fake Stripe on 127.0.0.1 for tests (feature `fake`).
//!
//! It speaks Stripe's wire format rather than mimicking our client: bearer
//! authentication, form bodies with bracketed keys, JSON objects with
//! Stripe's `object`, id prefixes and `livemode: false`, Stripe's error
//! envelope and statuses, and `Idempotency-Key` semantics. Tests drive the
//! subscription life cycle through it and get back the events Stripe would
//! send, signed as Stripe signs them.
//!
//! ```no_run
//! use videdit_stripe::fake::FakeStripe;
//! use videdit_stripe::{CheckoutRequest, StripeClient};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let fake = FakeStripe::start().await;
//! fake.add_price("price_pro", 1900);
//! let client = StripeClient::new(fake.config())?;
//! let customer = client.create_customer("org_1", None, "customer-org_1").await?;
//! let session = client
//!     .create_checkout_session(&CheckoutRequest {
//!         customer,
//!         price: "price_pro".into(),
//!         client_reference_id: "org_1".into(),
//!         success_url: "https://app.test/ok".into(),
//!         cancel_url: "https://app.test/no".into(),
//!         org_id: "org_1".into(),
//!     })
//!     .await?;
//! for event in fake.complete_checkout(&session.id) {
//!     let answer = fake.deliver(&event, "http://127.0.0.1:3000/api/v1/billing/stripe-webhook").await?;
//!     assert!(answer.status().is_success());
//! }
//! # Ok(()) }
//! ```
//!
//! Simplifications, on purpose: one currency (`usd`), monthly prices, a
//! period of 30 days, one item per subscription, payments that succeed or
//! fail only when a test says so.

mod api;
mod http;
mod lifecycle;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use url::Url;
use videdit_core::Secret;

use crate::StripeConfig;
use crate::webhook::{SIGNATURE_HEADER, sign_header, signature_hex};

/// A running fake Stripe. Dropping it stops accepting connections.
pub struct FakeStripe {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: JoinHandle<()>,
    http: reqwest::Client,
}

impl std::fmt::Debug for FakeStripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeStripe").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// What to do to the next request whose path starts with a prefix
/// ([`FakeStripe::fail_next`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status with Stripe's error body for it (400, 401, 402
    /// `card_declined`, 404 `resource_missing`, 409 `lock_timeout`, 429
    /// `rate_limit`, 5xx `api_error`) without executing the request.
    Status(u16),
    /// Execute the request, then wait this long before answering: Stripe
    /// did the work but the client may time out.
    Delay(Duration),
    /// Close the connection after reading the request, without executing
    /// it or answering.
    Drop,
}

/// An event as Stripe would deliver it: the exact body bytes and the
/// `Stripe-Signature` header for them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedEvent {
    /// `evt_…`
    pub id: String,
    /// The event type, for example `invoice.paid`.
    pub kind: String,
    /// The JSON body, byte for byte as signed.
    pub body: Vec<u8>,
    /// `t=…,v1=…`
    pub signature_header: String,
}

impl SignedEvent {
    /// The body as JSON, for assertions.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the fake signs JSON")
    }
}

/// A Checkout Session the fake made, with the form parameters it received.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedCheckout {
    /// The session object as the fake returns it now.
    pub session: Value,
    /// The decoded form parameters of the create request, by bracketed key.
    pub params: BTreeMap<String, String>,
}

pub(crate) struct Shared {
    secret_key: String,
    webhook_secret: String,
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Everything the fake knows. Lists keep creation order.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) clock_offset: i64,
    pub(crate) prices: Vec<Value>,
    pub(crate) customers: Vec<Value>,
    pub(crate) checkouts: Vec<RecordedCheckout>,
    pub(crate) portal_sessions: Vec<Value>,
    pub(crate) subscriptions: Vec<Value>,
    pub(crate) invoices: Vec<Value>,
    pub(crate) meter_events: Vec<Value>,
    /// Meter event identifier → when it was accepted.
    pub(crate) meter_identifiers: HashMap<String, i64>,
    /// Idempotency key → the request it was first used with and the answer.
    pub(crate) idempotency: HashMap<String, Saved>,
    pub(crate) requests: BTreeMap<String, usize>,
    pub(crate) faults: Vec<(String, Fault)>,
}

pub(crate) struct Saved {
    /// When the key was first used; Stripe prunes keys after 24 h.
    pub(crate) at: i64,
    pub(crate) fingerprint: (String, String, Vec<(String, String)>),
    pub(crate) response: http::Response,
}

impl State {
    pub(crate) fn now(&self) -> i64 {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        i64::try_from(secs).unwrap_or(i64::MAX) + self.clock_offset
    }
}

fn find<'a>(list: &'a [Value], id: &str) -> Option<&'a Value> {
    list.iter().find(|v| v["id"] == id)
}

fn find_mut<'a>(list: &'a mut [Value], id: &str) -> Option<&'a mut Value> {
    list.iter_mut().find(|v| v["id"] == id)
}

/// `prefix` + `len` random alphanumerics, as Stripe's ids look.
pub(crate) fn new_id(prefix: &str, len: usize) -> String {
    let suffix: String = rand::rng().sample_iter(Alphanumeric).take(len).map(char::from).collect();
    format!("{prefix}{suffix}")
}

impl FakeStripe {
    /// Binds 127.0.0.1 on a free port and starts serving.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0 for the fake Stripe");
        let addr = listener.local_addr().expect("the listener has an address");
        let shared = Arc::new(Shared {
            secret_key: new_id("sk_test_", 24),
            webhook_secret: new_id("whsec_", 32),
            state: Mutex::new(State::default()),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        let http = reqwest::Client::builder()
            .user_agent("Stripe/1.0 (+https://stripe.com/docs/webhooks)")
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a plain reqwest client builds");
        Self { shared, addr, accept, http }
    }

    /// `http://127.0.0.1:<port>`, for [`StripeConfig::api_base`].
    pub fn base_url(&self) -> Url {
        Url::parse(&format!("http://{}", self.addr)).expect("a socket address makes a URL")
    }

    /// The only API key the fake accepts (`sk_test_…`).
    pub fn secret_key(&self) -> &str {
        &self.shared.secret_key
    }

    /// The secret it signs webhook events with (`whsec_…`).
    pub fn webhook_secret(&self) -> &str {
        &self.shared.webhook_secret
    }

    /// A client configuration pointing at the fake, with a 5 s timeout.
    pub fn config(&self) -> StripeConfig {
        StripeConfig {
            api_base: self.base_url(),
            secret_key: Secret::new(self.secret_key().to_owned()),
            timeout: Duration::from_secs(5),
        }
    }

    /// Registers a monthly `usd` price (`unit_amount` in cents) that
    /// Checkout Sessions and [`change_price`](Self::change_price) may use.
    pub fn add_price(&self, id: &str, unit_amount: i64) {
        let mut state = self.shared.lock();
        let created = state.now();
        state.prices.retain(|p| p["id"] != id);
        state.prices.push(serde_json::json!({
            "id": id,
            "object": "price",
            "active": true,
            "billing_scheme": "per_unit",
            "created": created,
            "currency": "usd",
            "livemode": false,
            "lookup_key": null,
            "metadata": {},
            "nickname": null,
            "product": new_id("prod_", 14),
            "recurring": { "interval": "month", "interval_count": 1, "meter": null, "usage_type": "licensed" },
            "type": "recurring",
            "unit_amount": unit_amount,
        }));
    }

    /// Makes the next request whose path starts with `path_prefix` fail
    /// with `fault`. Faults queue up and are used in order.
    pub fn fail_next(&self, path_prefix: &str, fault: Fault) {
        self.shared.lock().faults.push((path_prefix.to_owned(), fault));
    }

    /// Moves the fake's clock (for event `created` fields, meter event
    /// timestamps and the 24 h identifier window).
    pub fn advance_clock(&self, by: Duration) {
        let mut state = self.shared.lock();
        state.clock_offset += i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
    }

    /// The fake's current Unix time.
    pub fn now(&self) -> i64 {
        self.shared.lock().now()
    }

    /// Customers, in creation order.
    pub fn customers(&self) -> Vec<Value> {
        self.shared.lock().customers.clone()
    }

    /// One customer.
    pub fn customer(&self, id: &str) -> Option<Value> {
        find(&self.shared.lock().customers, id).cloned()
    }

    /// Checkout Sessions with the parameters they were created with.
    pub fn checkout_sessions(&self) -> Vec<RecordedCheckout> {
        self.shared.lock().checkouts.clone()
    }

    /// Customer Portal sessions.
    pub fn portal_sessions(&self) -> Vec<Value> {
        self.shared.lock().portal_sessions.clone()
    }

    /// Subscriptions, in creation order.
    pub fn subscriptions(&self) -> Vec<Value> {
        self.shared.lock().subscriptions.clone()
    }

    /// One subscription.
    pub fn subscription(&self, id: &str) -> Option<Value> {
        find(&self.shared.lock().subscriptions, id).cloned()
    }

    /// Invoices, in creation order.
    pub fn invoices(&self) -> Vec<Value> {
        self.shared.lock().invoices.clone()
    }

    /// Accepted meter events (duplicates are not in the list).
    pub fn meter_events(&self) -> Vec<Value> {
        self.shared.lock().meter_events.clone()
    }

    /// How many requests reached `path` (exactly, without the query),
    /// faults included.
    pub fn request_count(&self, path: &str) -> usize {
        self.shared.lock().requests.get(path).copied().unwrap_or_default()
    }

    /// Requests per path.
    pub fn request_counts(&self) -> BTreeMap<String, usize> {
        self.shared.lock().requests.clone()
    }

    /// Signs `body` at time `t` with the fake's webhook secret.
    pub fn sign(&self, body: &[u8], t: i64) -> String {
        sign_header(body, self.webhook_secret(), t)
    }

    /// The same event signed 10 minutes ago (beyond the 300 s tolerance).
    pub fn stale(&self, event: &SignedEvent) -> SignedEvent {
        let t = self.now() - 600;
        SignedEvent { signature_header: self.sign(&event.body, t), ..event.clone() }
    }

    /// The same event signed with another secret.
    pub fn signed_with(&self, event: &SignedEvent, secret: &str) -> SignedEvent {
        SignedEvent { signature_header: sign_header(&event.body, secret, self.now()), ..event.clone() }
    }

    /// The same event signed as during a secret rotation: one `v1` with
    /// `other_secret` first, then one with the fake's secret.
    pub fn rotated(&self, event: &SignedEvent, other_secret: &str) -> SignedEvent {
        let t = self.now();
        let old = signature_hex(&event.body, other_secret, t);
        let new = signature_hex(&event.body, self.webhook_secret(), t);
        SignedEvent { signature_header: format!("t={t},v1={old},v1={new}"), ..event.clone() }
    }

    /// POSTs an event to a webhook endpoint the way Stripe does.
    ///
    /// # Errors
    ///
    /// The transport error when the endpoint cannot be reached.
    pub async fn deliver(&self, event: &SignedEvent, url: &str) -> Result<reqwest::Response, reqwest::Error> {
        self.http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json; charset=utf-8")
            .header(reqwest::header::ACCEPT, "*/*; q=0.5, application/xml")
            .header("Cache-Control", "no-cache")
            .header(SIGNATURE_HEADER, &event.signature_header)
            .body(event.body.clone())
            .send()
            .await
    }

    fn signed(&self, events: Vec<Value>) -> Vec<SignedEvent> {
        events
            .into_iter()
            .map(|event| {
                let body = serde_json::to_vec(&event).expect("JSON serialises");
                let t = event["created"].as_i64().unwrap_or_default();
                SignedEvent {
                    id: event["id"].as_str().unwrap_or_default().to_owned(),
                    kind: event["type"].as_str().unwrap_or_default().to_owned(),
                    signature_header: self.sign(&body, t),
                    body,
                }
            })
            .collect()
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve(stream, Arc::clone(&shared)));
            }
            Err(err) => {
                tracing::warn!(%err, "fake Stripe accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve(mut stream: TcpStream, shared: Arc<Shared>) {
    let request = match http::read_request(&mut stream).await {
        Ok(Some(request)) => request,
        Ok(None) => return,
        Err(err) => {
            tracing::debug!(%err, "fake Stripe could not read a request");
            let response = api::error(400, "invalid_request_error", None, &format!("Malformed request: {err}"), None);
            let _ = http::write_response(&mut stream, &response).await;
            return;
        }
    };
    let fault = {
        let mut state = shared.lock();
        *state.requests.entry(request.path.clone()).or_default() += 1;
        let position = state.faults.iter().position(|(prefix, _)| request.path.starts_with(prefix.as_str()));
        position.map(|i| state.faults.remove(i).1)
    };
    let (response, delay) = match fault {
        Some(Fault::Drop) => return,
        Some(Fault::Status(status)) => (api::injected(status), None),
        Some(Fault::Delay(delay)) => (api::handle(&shared, &request), Some(delay)),
        None => (api::handle(&shared, &request), None),
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    // The client may have given up; that is its business.
    let _ = http::write_response(&mut stream, &response).await;
}
