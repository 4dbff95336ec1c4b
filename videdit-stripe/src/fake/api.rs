//! The fake's endpoints: authentication, idempotency, validation and the
//! objects it answers, in Stripe's shapes.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::http::{Request, Response};
use super::{RecordedCheckout, Saved, Shared, State, find, new_id};
use crate::STRIPE_VERSION;
use crate::client::DUPLICATE_METER_EVENT_CODE;

type Params = BTreeMap<String, String>;
type Answer = Result<Response, Response>;

/// How long Stripe keeps meter event identifiers unique ("a rolling period
/// of at least 24 hours").
const METER_IDENTIFIER_WINDOW: i64 = 24 * 3600;
const DAY: i64 = 24 * 3600;
/// Stripe prunes idempotency keys once they are at least 24 hours old.
const IDEMPOTENCY_KEY_LIFETIME: i64 = 24 * 3600;

/// Stripe's error envelope. `doc_url` accompanies a code as Stripe does.
pub(crate) fn error(status: u16, kind: &str, code: Option<&str>, message: &str, param: Option<&str>) -> Response {
    let mut body = json!({ "type": kind, "message": message });
    if let Some(code) = code {
        body["code"] = json!(code);
        body["doc_url"] = json!(format!("https://stripe.com/docs/error-codes/{}", code.replace('_', "-")));
    }
    if let Some(param) = param {
        body["param"] = json!(param);
    }
    respond(status, &json!({ "error": body }))
}

fn respond(status: u16, body: &Value) -> Response {
    let mut headers =
        vec![("request-id".to_owned(), new_id("req_", 14)), ("stripe-version".to_owned(), STRIPE_VERSION.to_owned())];
    if status == 429 || status >= 500 {
        headers.push(("stripe-should-retry".to_owned(), "true".to_owned()));
    }
    Response { status, headers, body: serde_json::to_vec(body).expect("JSON serialises") }
}

fn ok(body: &Value) -> Answer {
    Ok(respond(200, body))
}

/// The answer of a [`Fault::Status`](super::Fault::Status).
pub(crate) fn injected(status: u16) -> Response {
    match status {
        401 => error(401, "invalid_request_error", None, "Invalid API Key provided: sk_test_****", None),
        402 => {
            let mut response = error(402, "card_error", Some("card_declined"), "Your card was declined.", None);
            let mut body: Value = serde_json::from_slice(&response.body).expect("our own JSON");
            body["error"]["decline_code"] = json!("generic_decline");
            response.body = serde_json::to_vec(&body).expect("JSON serialises");
            response
        }
        404 => error(404, "invalid_request_error", Some("resource_missing"), "No such object (injected).", Some("id")),
        409 => error(
            409,
            "invalid_request_error",
            Some("lock_timeout"),
            "This object cannot be accessed right now because another API request or Stripe process is currently accessing it.",
            None,
        ),
        429 => error(
            429,
            "invalid_request_error",
            Some("rate_limit"),
            "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
            None,
        ),
        s if s >= 500 => error(
            s,
            "api_error",
            None,
            "Sorry, something went wrong. We've already been notified of the problem, but if you need any help, you can reach us at support.stripe.com/contact.",
            None,
        ),
        s => error(s, "invalid_request_error", None, "Injected fault.", None),
    }
}

/// Handles one request under the state lock.
pub(crate) fn handle(shared: &Shared, request: &Request) -> Response {
    match request.header("authorization").and_then(|v| v.strip_prefix("Bearer ")) {
        None => {
            return error(
                401,
                "invalid_request_error",
                None,
                "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
                None,
            );
        }
        Some(key) if key != shared.secret_key => {
            let tail: String = key.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
            return error(
                401,
                "invalid_request_error",
                None,
                &format!("Invalid API Key provided: sk_test_****{tail}"),
                None,
            );
        }
        Some(_) => {}
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&request.body).into_owned().collect();
    let mut state = shared.lock();
    let now = state.now();
    state.idempotency.retain(|_, saved| now - saved.at < IDEMPOTENCY_KEY_LIFETIME);
    let key = request.header("idempotency-key").filter(|_| request.method == "POST").map(str::to_owned);
    let mut sorted = pairs.clone();
    sorted.sort();
    let fingerprint = (request.method.clone(), request.path.clone(), sorted);
    if let Some(key) = &key
        && let Some(saved) = state.idempotency.get(key)
    {
        if saved.fingerprint == fingerprint {
            let mut response = saved.response.clone();
            response.headers.push(("idempotent-replayed".to_owned(), "true".to_owned()));
            return response;
        }
        return error(
            400,
            "idempotency_error",
            None,
            &format!(
                "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."
            ),
            None,
        );
    }
    let params: Params = pairs.iter().cloned().collect();
    let response = route(&mut state, request, &params, &pairs).unwrap_or_else(|rejected| rejected);
    // Stripe saves the result once an endpoint started executing (including
    // card declines), not when parameters failed validation.
    if let Some(key) = key
        && (response.status < 400 || response.status == 402)
    {
        state.idempotency.insert(key, Saved { at: now, fingerprint, response: response.clone() });
    }
    response
}

fn route(state: &mut State, request: &Request, params: &Params, pairs: &[(String, String)]) -> Answer {
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "customers"]) => create_customer(state, params),
        ("GET", ["v1", "customers"]) => list(&state.customers, "/v1/customers"),
        ("GET", ["v1", "customers", id]) => retrieve(&state.customers, id, "customer"),
        ("POST", ["v1", "checkout", "sessions"]) => create_checkout(state, params, pairs),
        ("GET", ["v1", "checkout", "sessions", id]) => {
            let sessions: Vec<Value> = state.checkouts.iter().map(|c| c.session.clone()).collect();
            retrieve(&sessions, id, "checkout.session")
        }
        ("POST", ["v1", "billing_portal", "sessions"]) => create_portal_session(state, params),
        ("POST", ["v1", "billing", "meter_events"]) => create_meter_event(state, params),
        ("GET", ["v1", "subscriptions"]) => {
            let customer = url::form_urlencoded::parse(request.query.as_bytes())
                .find(|(k, _)| k == "customer")
                .map(|(_, v)| v.into_owned());
            let subs: Vec<Value> = state
                .subscriptions
                .iter()
                .filter(|s| customer.as_ref().is_none_or(|c| s["customer"] == c.as_str()))
                .cloned()
                .collect();
            list(&subs, "/v1/subscriptions")
        }
        ("GET", ["v1", "subscriptions", id]) => retrieve(&state.subscriptions, id, "subscription"),
        ("GET", ["v1", "invoices", id]) => retrieve(&state.invoices, id, "invoice"),
        (method, _) => Err(error(
            404,
            "invalid_request_error",
            None,
            &format!(
                "Unrecognized request URL ({method}: {}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
                request.path
            ),
            None,
        )),
    }
}

fn list(items: &[Value], url: &str) -> Answer {
    ok(&json!({ "object": "list", "data": items, "has_more": false, "url": url }))
}

fn retrieve(items: &[Value], id: &str, what: &str) -> Answer {
    match find(items, id) {
        Some(item) => ok(item),
        None => Err(missing(what, id, "id")),
    }
}

fn missing(what: &str, id: &str, param: &str) -> Response {
    error(404, "invalid_request_error", Some("resource_missing"), &format!("No such {what}: '{id}'"), Some(param))
}

fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, Response> {
    match params.get(name).map(String::as_str) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(error(
            400,
            "invalid_request_error",
            Some("parameter_missing"),
            &format!("Missing required param: {name}."),
            Some(name),
        )),
    }
}

fn url_param(params: &Params, name: &str) -> Result<(), Response> {
    match params.get(name) {
        Some(value) if url::Url::parse(value).is_err() => {
            Err(error(400, "invalid_request_error", Some("url_invalid"), "Not a valid URL", Some(name)))
        }
        _ => Ok(()),
    }
}

fn integer(params: &Params, name: &str) -> Result<Option<i64>, Response> {
    params
        .get(name)
        .map(|value| {
            value.parse::<i64>().map_err(|_| {
                error(400, "invalid_request_error", None, &format!("Invalid integer: {value}"), Some(name))
            })
        })
        .transpose()
}

/// `prefix[key]=value` pairs as a JSON object (one level, as metadata is).
fn nested(params: &Params, prefix: &str) -> Value {
    let map: serde_json::Map<String, Value> = params
        .iter()
        .filter_map(|(k, v)| {
            let inner = k.strip_prefix(prefix)?.strip_prefix('[')?.strip_suffix(']')?;
            (!inner.contains('[')).then(|| (inner.to_owned(), json!(v)))
        })
        .collect();
    Value::Object(map)
}

fn create_customer(state: &mut State, params: &Params) -> Answer {
    let customer = json!({
        "id": new_id("cus_", 14),
        "object": "customer",
        "address": null,
        "balance": 0,
        "created": state.now(),
        "currency": null,
        "default_source": null,
        "delinquent": false,
        "description": params.get("description"),
        "email": params.get("email"),
        "invoice_prefix": new_id("", 8).to_uppercase(),
        "invoice_settings": { "custom_fields": null, "default_payment_method": null, "footer": null, "rendering_options": null },
        "livemode": false,
        "metadata": nested(params, "metadata"),
        "name": params.get("name"),
        "phone": null,
        "preferred_locales": [],
        "shipping": null,
        "tax_exempt": "none",
        "test_clock": null,
    });
    state.customers.push(customer.clone());
    ok(&customer)
}

fn create_checkout(state: &mut State, params: &Params, pairs: &[(String, String)]) -> Answer {
    let mode = required(params, "mode")?;
    if !matches!(mode, "payment" | "setup" | "subscription") {
        return Err(error(
            400,
            "invalid_request_error",
            None,
            "Invalid mode: must be one of payment, setup, or subscription",
            Some("mode"),
        ));
    }
    if mode != "subscription" {
        return Err(error(
            400,
            "invalid_request_error",
            None,
            "This fake Stripe supports only mode=subscription.",
            Some("mode"),
        ));
    }
    let price_id = required(params, "line_items[0][price]")?;
    let quantity = integer(params, "line_items[0][quantity]")?.unwrap_or(1);
    if quantity < 1 {
        return Err(error(
            400,
            "invalid_request_error",
            None,
            "This value must be greater than or equal to 1.",
            Some("line_items[0][quantity]"),
        ));
    }
    let success_url = required(params, "success_url")?;
    let cancel_url = required(params, "cancel_url")?;
    url_param(params, "success_url")?;
    url_param(params, "cancel_url")?;
    let Some(price) = find(&state.prices, price_id).cloned() else {
        return Err(error(
            400,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such price: '{price_id}'"),
            Some("line_items[0][price]"),
        ));
    };
    if let Some(customer) = params.get("customer")
        && find(&state.customers, customer).is_none()
    {
        return Err(error(
            400,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such customer: '{customer}'"),
            Some("customer"),
        ));
    }
    let id = new_id("cs_test_", 58);
    let created = state.now();
    let amount = price["unit_amount"].as_i64().unwrap_or_default() * quantity;
    let session = json!({
        "id": id,
        "object": "checkout.session",
        "amount_subtotal": amount,
        "amount_total": amount,
        "cancel_url": cancel_url,
        "client_reference_id": params.get("client_reference_id"),
        "created": created,
        "currency": "usd",
        "customer": params.get("customer"),
        "expires_at": created + DAY,
        "invoice": null,
        "livemode": false,
        "metadata": nested(params, "metadata"),
        "mode": mode,
        "payment_status": "unpaid",
        "status": "open",
        "subscription": null,
        "success_url": success_url,
        "ui_mode": "hosted",
        "url": format!("https://checkout.stripe.com/c/pay/{id}"),
    });
    state.checkouts.push(RecordedCheckout { session: session.clone(), params: pairs.iter().cloned().collect() });
    ok(&session)
}

fn create_portal_session(state: &mut State, params: &Params) -> Answer {
    let customer = required(params, "customer")?;
    url_param(params, "return_url")?;
    if find(&state.customers, customer).is_none() {
        return Err(error(
            400,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such customer: '{customer}'"),
            Some("customer"),
        ));
    }
    let session = json!({
        "id": new_id("bps_", 24),
        "object": "billing_portal.session",
        "configuration": "bpc_1FakeDefaultConfiguration",
        "created": state.now(),
        "customer": customer,
        "flow": null,
        "livemode": false,
        "locale": null,
        "on_behalf_of": null,
        "return_url": params.get("return_url"),
        "url": format!("https://billing.stripe.com/p/session/test_{}", new_id("", 40)),
    });
    state.portal_sessions.push(session.clone());
    ok(&session)
}

/// `POST /v1/billing/meter_events`.
///
/// Stripe documents that it "enforces uniqueness [of `identifier`] within
/// a rolling period of at least 24 hours" but not what a repeat gets back.
/// The fake answers a repeat within 24 h with a 400 `invalid_request_error`
/// whose code is `duplicate_meter_event` and whose message says an event
/// with that identifier already exists, which is our best knowledge of the
/// real answer; the client treats either signal as "already recorded".
/// Whether the customer exists is checked by Stripe asynchronously (meter
/// error reports), so the fake does not check it either.
fn create_meter_event(state: &mut State, params: &Params) -> Answer {
    let event_name = required(params, "event_name")?;
    required(params, "payload[stripe_customer_id]")?;
    let value = required(params, "payload[value]")?;
    if value.parse::<i64>().is_err() {
        return Err(error(
            400,
            "invalid_request_error",
            None,
            "The value of payload[value] must be an integer.",
            Some("payload[value]"),
        ));
    }
    let now = state.now();
    let timestamp = integer(params, "timestamp")?.unwrap_or(now);
    if timestamp < now - 35 * DAY || timestamp > now + 300 {
        return Err(error(
            400,
            "invalid_request_error",
            None,
            "Timestamp must be within the past 35 calendar days and no more than 5 minutes in the future.",
            Some("timestamp"),
        ));
    }
    let identifier = match params.get("identifier") {
        Some(identifier) if identifier.is_empty() || identifier.len() > 100 => {
            return Err(error(
                400,
                "invalid_request_error",
                None,
                "identifier must be between 1 and 100 characters.",
                Some("identifier"),
            ));
        }
        Some(identifier) => identifier.clone(),
        None => new_id("", 32),
    };
    state.meter_identifiers.retain(|_, at| now - *at < METER_IDENTIFIER_WINDOW);
    if state.meter_identifiers.contains_key(&identifier) {
        return Err(error(
            400,
            "invalid_request_error",
            Some(DUPLICATE_METER_EVENT_CODE),
            &format!("An event with identifier '{identifier}' already exists."),
            Some("identifier"),
        ));
    }
    state.meter_identifiers.insert(identifier.clone(), now);
    let event = json!({
        "object": "billing.meter_event",
        "created": now,
        "event_name": event_name,
        "identifier": identifier,
        "livemode": false,
        "payload": nested(params, "payload"),
        "timestamp": timestamp,
    });
    state.meter_events.push(event.clone());
    ok(&event)
}
