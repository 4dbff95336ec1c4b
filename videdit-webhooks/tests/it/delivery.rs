//! Deliveries to a real receiver on loopback, verified with the
//! `standardwebhooks` crate (an independent implementation of the spec).

use std::time::Duration;

use standardwebhooks::Webhook;
use videdit_webhooks::{
    Attempt, MAX_RESPONSE_SNIPPET, Outcome, Sender, USER_AGENT, UrlPolicy, WebhookSecret, unix_timestamp,
};

use crate::support::{Receiver, Reply, closed_port, event_body};

fn dev_sender() -> Sender {
    Sender::new(UrlPolicy::DEV)
}

#[tokio::test]
async fn delivered_message_verifies_with_the_reference_library() {
    let receiver = Receiver::start(|_| Reply::status(204)).await;
    let secret = WebhookSecret::generate();
    let body = event_body();
    let now = unix_timestamp();

    let attempt = dev_sender().send(&receiver.url("/hooks"), "msg_01", now, &body, &[&secret]).await;

    assert_eq!(attempt.outcome, Outcome::Delivered, "{attempt:?}");
    assert_eq!(
        (attempt.status, attempt.error, attempt.retry_after, attempt.response_snippet),
        (Some(204), None, None, None)
    );
    assert!(attempt.latency > Duration::ZERO);

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/hooks"));
    assert_eq!(request.body, body);
    let header = |name: &str| request.headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    assert_eq!(header("user-agent").as_deref(), Some(USER_AGENT));
    assert_eq!(USER_AGENT, concat!("videdit-webhooks/", env!("CARGO_PKG_VERSION")));
    assert_eq!(header("webhook-id").as_deref(), Some("msg_01"));
    assert_eq!(header("webhook-timestamp"), Some(now.to_string()));
    assert_eq!(header("webhook-signature").unwrap().split(' ').count(), 1);

    Webhook::new(secret.expose()).unwrap().verify(&request.body, &request.headers).expect("the signature verifies");
    // Any other secret does not.
    let other = WebhookSecret::generate();
    assert!(Webhook::new(other.expose()).unwrap().verify(&request.body, &request.headers).is_err());
}

#[tokio::test]
async fn during_rotation_each_secret_alone_verifies_the_same_message() {
    let receiver = Receiver::start(|_| Reply::status(200).body("ok")).await;
    let old = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    let new = WebhookSecret::generate();
    let body = event_body();

    let attempt = dev_sender().send(&receiver.url("/"), "msg_rotation", unix_timestamp(), &body, &[&new, &old]).await;
    assert_eq!((attempt.outcome, attempt.status), (Outcome::Delivered, Some(200)));
    assert_eq!(attempt.response_snippet.as_deref(), Some("ok"));

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    let signatures = request.headers["webhook-signature"].to_str().unwrap();
    assert_eq!(signatures.split(' ').count(), 2);
    assert!(signatures.split(' ').all(|s| s.starts_with("v1,")));
    for secret in [&old, &new] {
        Webhook::new(secret.expose()).unwrap().verify(&request.body, &request.headers).expect("verifies alone");
    }
    let stranger = WebhookSecret::generate();
    assert!(Webhook::new(stranger.expose()).unwrap().verify(&request.body, &request.headers).is_err());
}

#[tokio::test]
async fn server_error_is_retried_with_its_status_and_body() {
    let receiver = Receiver::start(|_| Reply::status(500).header("Retry-After", "7").body("database down")).await;
    let secret = WebhookSecret::generate();

    let attempt = dev_sender().send(&receiver.url("/"), "msg_500", unix_timestamp(), b"{}", &[&secret]).await;

    assert_eq!(
        Attempt { latency: Duration::ZERO, ..attempt },
        Attempt {
            outcome: Outcome::Retry,
            status: Some(500),
            latency: Duration::ZERO,
            // Retry-After counts on 429 and 503 only.
            retry_after: None,
            error: Some("receiver answered 500 Internal Server Error".into()),
            response_snippet: Some("database down".into()),
        }
    );
    assert_eq!(receiver.hits("/"), 1);
}

#[tokio::test]
async fn gone_disables_the_endpoint() {
    let receiver = Receiver::start(|_| Reply::status(410)).await;
    let secret = WebhookSecret::generate();

    let attempt = dev_sender().send(&receiver.url("/"), "msg_410", unix_timestamp(), b"{}", &[&secret]).await;

    assert_eq!(attempt.outcome, Outcome::Gone);
    assert_eq!(attempt.status, Some(410));
    assert_eq!(attempt.error.as_deref(), Some("receiver answered 410 Gone"));
}

#[tokio::test]
async fn redirect_is_not_followed() {
    let receiver = Receiver::start(|path| match path {
        "/start" => Reply::status(302).header("Location", "/target"),
        _ => Reply::status(200),
    })
    .await;
    let secret = WebhookSecret::generate();

    let attempt = dev_sender().send(&receiver.url("/start"), "msg_302", unix_timestamp(), b"{}", &[&secret]).await;

    assert_eq!((attempt.outcome, attempt.status), (Outcome::Retry, Some(302)));
    assert_eq!(
        attempt.error.as_deref(),
        Some("receiver answered 302 Found (redirects are not followed: update the endpoint's URL)")
    );
    // Give a follower every chance to show up before counting.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.hits("/start"), 1);
    assert_eq!(receiver.hits("/target"), 0);
}

#[tokio::test]
async fn too_many_requests_honours_retry_after_seconds() {
    let receiver = Receiver::start(|_| Reply::status(429).header("Retry-After", "7")).await;
    let secret = WebhookSecret::generate();

    let attempt = dev_sender().send(&receiver.url("/"), "msg_429", unix_timestamp(), b"{}", &[&secret]).await;

    assert_eq!((attempt.outcome, attempt.status), (Outcome::Retry, Some(429)));
    assert_eq!(attempt.retry_after, Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn unavailable_honours_retry_after_date_capped_at_a_day() {
    let in_two_minutes = httpdate_in(Duration::from_secs(120));
    let in_three_days = httpdate_in(Duration::from_secs(3 * 86400));
    let receiver = Receiver::start(move |path| match path {
        "/soon" => Reply::status(503).header("Retry-After", &in_two_minutes),
        "/later" => Reply::status(503).header("Retry-After", &in_three_days),
        _ => Reply::status(503).header("Retry-After", "whenever"),
    })
    .await;
    let secret = WebhookSecret::generate();
    let sender = dev_sender();

    let soon = sender.send(&receiver.url("/soon"), "msg_503", unix_timestamp(), b"{}", &[&secret]).await;
    let delay = soon.retry_after.expect("a date is honoured");
    assert!(delay > Duration::from_secs(110) && delay <= Duration::from_secs(120), "{delay:?}");

    let later = sender.send(&receiver.url("/later"), "msg_503", unix_timestamp(), b"{}", &[&secret]).await;
    assert_eq!(later.retry_after, Some(Duration::from_secs(86400)));

    let garbage = sender.send(&receiver.url("/other"), "msg_503", unix_timestamp(), b"{}", &[&secret]).await;
    assert_eq!((garbage.outcome, garbage.status, garbage.retry_after), (Outcome::Retry, Some(503), None));
}

fn httpdate_in(delay: Duration) -> String {
    httpdate::fmt_http_date(std::time::SystemTime::now() + delay)
}

#[tokio::test]
async fn slow_receiver_times_out_and_is_retried() {
    let receiver = Receiver::start(|_| Reply::status(200).delay(Duration::from_secs(3))).await;
    let secret = WebhookSecret::generate();
    let sender = dev_sender().with_timeout(Duration::from_millis(300));

    let started = std::time::Instant::now();
    let attempt = sender.send(&receiver.url("/"), "msg_slow", unix_timestamp(), b"{}", &[&secret]).await;

    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!((attempt.outcome, attempt.status), (Outcome::Retry, None));
    assert_eq!(attempt.error.as_deref(), Some("timed out after 300 ms"));
    assert!(attempt.latency >= Duration::from_millis(300));
    assert_eq!(receiver.hits("/"), 1);
}

#[tokio::test]
async fn refused_connection_is_retried_with_the_cause() {
    let port = closed_port().await;
    let secret = WebhookSecret::generate();

    let attempt = dev_sender()
        .send(&format!("http://127.0.0.1:{port}/"), "msg_closed", unix_timestamp(), b"{}", &[&secret])
        .await;

    assert_eq!((attempt.outcome, attempt.status), (Outcome::Retry, None));
    let error = attempt.error.unwrap();
    assert!(error.starts_with("connection failed: "), "{error}");
    assert!(error.to_lowercase().contains("refused"), "{error}");
}

#[tokio::test]
async fn response_body_is_read_up_to_4_kib() {
    let receiver = Receiver::start(|_| Reply::status(400).body(vec![b'x'; 1024 * 1024])).await;
    let secret = WebhookSecret::generate();

    let attempt = dev_sender().send(&receiver.url("/"), "msg_big", unix_timestamp(), b"{}", &[&secret]).await;

    assert_eq!((attempt.outcome, attempt.status), (Outcome::Retry, Some(400)));
    assert_eq!(attempt.response_snippet.unwrap(), "x".repeat(MAX_RESPONSE_SNIPPET));
}

#[tokio::test]
async fn localhost_is_delivered_to_when_loopback_is_allowed() {
    let receiver = Receiver::start(|_| Reply::status(200)).await;
    let url = format!("http://localhost:{}/hook", receiver.addr.port());
    let secret = WebhookSecret::generate();

    let addrs = UrlPolicy::DEV.check(&url).await.unwrap();
    assert!(addrs.contains(&receiver.addr), "{addrs:?}");
    let attempt = dev_sender().send(&url, "msg_localhost", unix_timestamp(), b"{}", &[&secret]).await;

    assert_eq!(attempt.outcome, Outcome::Delivered, "{attempt:?}");
    let received = receiver.received();
    assert_eq!(received[0].headers["host"], format!("localhost:{}", receiver.addr.port()).as_str());
}

#[tokio::test]
async fn invalid_messages_are_refused_before_any_request() {
    let receiver = Receiver::start(|_| Reply::status(200)).await;
    let secret = WebhookSecret::generate();
    let sender = dev_sender();
    let url = receiver.url("/");
    let big = vec![b' '; videdit_webhooks::MAX_BODY + 1];

    let cases: [(&str, &[u8], &[&WebhookSecret], &str); 3] = [
        ("msg_big", &big, &[&secret], "webhook_body_too_large"),
        ("msg.dotted", b"{}", &[&secret], "webhook_message_id_invalid"),
        ("msg_unsigned", b"{}", &[], "webhook_secret_invalid"),
    ];
    for (id, body, secrets, code) in cases {
        let err = sender.try_send(&url, id, unix_timestamp(), body, secrets).await.unwrap_err();
        assert_eq!(err.code(), code);
        let attempt = sender.send(&url, id, unix_timestamp(), body, secrets).await;
        assert_eq!(
            attempt,
            Attempt {
                outcome: Outcome::Refused,
                status: None,
                latency: Duration::ZERO,
                retry_after: None,
                error: Some(err.to_string()),
                response_snippet: None,
            }
        );
    }
    assert_eq!(receiver.received().len(), 0);
}
