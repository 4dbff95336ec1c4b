//! The fake's wire format, checked with a plain HTTP client.

use reqwest::Method;
use serde_json::{Value, json};
use videdit_stripe::fake::FakeStripe;

use crate::support::{raw, setup};

async fn body(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn missing_key_is_401_with_stripes_error() {
    let fake = FakeStripe::start().await;
    let response = reqwest::Client::new().post(fake.base_url().join("/v1/customers").unwrap()).send().await.unwrap();
    assert!(response.headers().get("request-id").is_some());
    assert_eq!(
        body(response).await,
        (
            401,
            json!({ "error": {
                "type": "invalid_request_error",
                "message": "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
            }})
        )
    );
}

#[tokio::test]
async fn customers_retrieve_list_and_missing() {
    let (fake, client) = setup().await;
    let id = client.create_customer("org_1", None, "k1").await.unwrap();
    let (status, customer) = body(raw(&fake, Method::GET, &format!("/v1/customers/{id}")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(customer, fake.customer(&id).unwrap());
    assert_eq!(customer["object"], "customer");
    assert!(customer["created"].as_i64().unwrap() > 1_700_000_000);

    let (status, list) = body(raw(&fake, Method::GET, "/v1/customers").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(list, json!({ "object": "list", "data": [customer], "has_more": false, "url": "/v1/customers" }));

    let (status, missing) = body(raw(&fake, Method::GET, "/v1/customers/cus_nope").send().await.unwrap()).await;
    assert_eq!(
        (status, missing),
        (
            404,
            json!({ "error": {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
                "message": "No such customer: 'cus_nope'",
                "param": "id"
            }})
        )
    );
}

#[tokio::test]
async fn replayed_answers_say_so() {
    let (fake, _) = setup().await;
    let send =
        || raw(&fake, Method::POST, "/v1/customers").header("Idempotency-Key", "same").form(&[("name", "A")]).send();
    let first = send().await.unwrap();
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let second = send().await.unwrap();
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.json::<Value>().await.unwrap(), first);
}

#[tokio::test]
async fn checkout_validation() {
    let (fake, _) = setup().await;
    let post =
        |form: Vec<(&'static str, &'static str)>| raw(&fake, Method::POST, "/v1/checkout/sessions").form(&form).send();
    let (status, err) = body(post(vec![]).await.unwrap()).await;
    assert_eq!(
        (status, err),
        (
            400,
            json!({ "error": {
                "type": "invalid_request_error",
                "code": "parameter_missing",
                "doc_url": "https://stripe.com/docs/error-codes/parameter-missing",
                "message": "Missing required param: mode.",
                "param": "mode"
            }})
        )
    );
    let (status, err) = body(post(vec![("mode", "payment")]).await.unwrap()).await;
    assert_eq!((status, err["error"]["param"].as_str()), (400, Some("mode")));
    let (status, err) = body(
        post(vec![("mode", "subscription"), ("line_items[0][price]", "price_pro"), ("success_url", "https://a.test")])
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, err["error"]["message"].as_str()), (400, Some("Missing required param: cancel_url.")));
    assert!(fake.checkout_sessions().is_empty());
}

#[tokio::test]
async fn meter_event_validation() {
    let (fake, _) = setup().await;
    let post = |form: Vec<(&'static str, &'static str)>| {
        raw(&fake, Method::POST, "/v1/billing/meter_events").form(&form).send()
    };
    let (status, err) =
        body(post(vec![("payload[stripe_customer_id]", "cus_1"), ("payload[value]", "1")]).await.unwrap()).await;
    assert_eq!((status, err["error"]["param"].as_str()), (400, Some("event_name")));
    let (status, err) = body(
        post(vec![("event_name", "m"), ("payload[stripe_customer_id]", "cus_1"), ("payload[value]", "1.5")])
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, err["error"]["param"].as_str()), (400, Some("payload[value]")));
    let (status, err) = body(
        post(vec![
            ("event_name", "m"),
            ("payload[stripe_customer_id]", "cus_1"),
            ("payload[value]", "1"),
            ("timestamp", "1000"),
        ])
        .await
        .unwrap(),
    )
    .await;
    assert_eq!((status, err["error"]["param"].as_str()), (400, Some("timestamp")));
    // Without an identifier Stripe makes one.
    let (status, ok) = body(
        post(vec![("event_name", "m"), ("payload[stripe_customer_id]", "cus_1"), ("payload[value]", "1")])
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ok["identifier"].as_str().map(str::len), Some(32));
    assert_eq!(fake.meter_events().len(), 1);
}

#[tokio::test]
async fn unknown_route_and_request_counts() {
    let (fake, _) = setup().await;
    let (status, err) = body(raw(&fake, Method::GET, "/v1/nothing").send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert!(err["error"]["message"].as_str().unwrap().starts_with("Unrecognized request URL (GET: /v1/nothing)."));
    assert_eq!(fake.request_count("/v1/nothing"), 1);
    assert_eq!(fake.request_counts().get("/v1/nothing"), Some(&1));
}
