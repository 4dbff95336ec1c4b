//! Shared helpers for the integration tests.

use std::time::Duration;

use videdit_stripe::fake::FakeStripe;
use videdit_stripe::{CheckoutRequest, StripeClient};

/// A fake with `price_pro` (19 USD) and `price_team` (49 USD), and a client for it.
pub async fn setup() -> (FakeStripe, StripeClient) {
    let fake = FakeStripe::start().await;
    fake.add_price("price_pro", 1900);
    fake.add_price("price_team", 4900);
    let client = StripeClient::new(fake.config()).expect("client for the fake");
    (fake, client)
}

/// A client with a short timeout, for `Fault::Delay`.
pub fn impatient_client(fake: &FakeStripe) -> StripeClient {
    let mut cfg = fake.config();
    cfg.timeout = Duration::from_millis(300);
    StripeClient::new(cfg).expect("client for the fake")
}

pub fn checkout_request(customer: &str) -> CheckoutRequest {
    CheckoutRequest {
        customer: customer.to_owned(),
        price: "price_pro".into(),
        client_reference_id: "org_1".into(),
        success_url: "https://app.test/billing?session_id={CHECKOUT_SESSION_ID}".into(),
        cancel_url: "https://app.test/billing".into(),
        org_id: "org_1".into(),
    }
}

/// A raw, authorised request to the fake, for wire-level assertions.
pub fn raw(fake: &FakeStripe, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new().request(method, fake.base_url().join(path).unwrap()).bearer_auth(fake.secret_key())
}
