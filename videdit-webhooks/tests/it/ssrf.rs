//! The SSRF guard against real receivers: the strict policy refuses every
//! internal target both when the endpoint is created (`check`) and at every
//! attempt (`send`), and the receiver never sees a request.
//!
//! Every refused URL here is refused before any connection is opened, so
//! the non-loopback addresses (10.0.0.1, 169.254.169.254) are never
//! contacted.

use videdit_webhooks::{Outcome, Sender, UrlPolicy, WebhookSecret, unix_timestamp};

use crate::support::{Receiver, Reply};

/// Refused by `check` with this code and message, and by `send` with
/// `Outcome::Refused` and the same message.
async fn assert_refused(url: &str, code: &str, message: &str) {
    let err = UrlPolicy::STRICT.check(url).await.unwrap_err();
    assert_eq!((err.code(), err.to_string().as_str()), (code, message), "check({url})");

    let secret = WebhookSecret::generate();
    let sender = Sender::new(UrlPolicy::STRICT);
    let attempt = sender.send(url, "msg_ssrf", unix_timestamp(), b"{}", &[&secret]).await;
    assert_eq!(attempt.outcome, Outcome::Refused, "send({url})");
    assert_eq!((attempt.status, attempt.error.as_deref()), (None, Some(message)), "send({url})");
    let err = sender.try_send(url, "msg_ssrf", unix_timestamp(), b"{}", &[&secret]).await.unwrap_err();
    assert_eq!(err.code(), code, "try_send({url})");
}

const LOOPBACK: &str = "webhook URL points to a forbidden address (loopback)";
const NOT_HTTPS: &str = "invalid webhook URL: the scheme must be https";

#[tokio::test]
async fn loopback_ipv4_is_refused() {
    let receiver = Receiver::start(|_| Reply::status(200)).await;

    assert_refused(&receiver.url("/"), "webhook_url_invalid", NOT_HTTPS).await;
    assert_refused(&receiver.https_url("/"), "webhook_url_forbidden", LOOPBACK).await;
    // Other spellings of the same address.
    let port = receiver.addr.port();
    for url in [
        format!("https://127.1:{port}/"),
        format!("https://2130706433:{port}/"),
        format!("https://[::ffff:127.0.0.1]:{port}/"),
    ] {
        assert_refused(&url, "webhook_url_forbidden", LOOPBACK).await;
    }

    assert_eq!(receiver.received().len(), 0);
}

#[tokio::test]
async fn loopback_ipv6_is_refused() {
    let receiver = Receiver::start_on("[::1]:0", |_| Reply::status(200)).await;
    assert!(receiver.addr.is_ipv6());

    assert_refused(&receiver.url("/"), "webhook_url_invalid", NOT_HTTPS).await;
    assert_refused(&receiver.https_url("/"), "webhook_url_forbidden", LOOPBACK).await;

    assert_eq!(receiver.received().len(), 0);
    // The receiver is real: the development policy reaches it.
    let secret = WebhookSecret::generate();
    let attempt =
        Sender::new(UrlPolicy::DEV).send(&receiver.url("/"), "msg_v6", unix_timestamp(), b"{}", &[&secret]).await;
    assert_eq!(attempt.outcome, Outcome::Delivered, "{attempt:?}");
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn host_name_resolving_to_loopback_is_refused() {
    let receiver = Receiver::start(|_| Reply::status(200)).await;
    let port = receiver.addr.port();

    assert_refused(&format!("https://localhost:{port}/hook"), "webhook_url_forbidden", LOOPBACK).await;
    assert_refused(&format!("https://LOCALHOST:{port}/hook"), "webhook_url_forbidden", LOOPBACK).await;
    assert_refused(&format!("http://localhost:{port}/hook"), "webhook_url_invalid", NOT_HTTPS).await;

    assert_eq!(receiver.received().len(), 0);
}

#[tokio::test]
async fn metadata_and_private_addresses_are_refused() {
    let cases = [
        ("http://169.254.169.254/", "webhook_url_invalid", NOT_HTTPS),
        (
            "https://169.254.169.254/latest/meta-data/",
            "webhook_url_forbidden",
            "webhook URL points to a forbidden address (cloud metadata service)",
        ),
        (
            "https://[fd00:ec2::254]/latest/meta-data/",
            "webhook_url_forbidden",
            "webhook URL points to a forbidden address (cloud metadata service)",
        ),
        ("http://10.0.0.1/", "webhook_url_invalid", NOT_HTTPS),
        ("https://10.0.0.1/", "webhook_url_forbidden", "webhook URL points to a forbidden address (private network)"),
        (
            "https://[::ffff:10.0.0.1]/",
            "webhook_url_forbidden",
            "webhook URL points to a forbidden address (private network)",
        ),
        (
            "https://0.0.0.0/",
            "webhook_url_forbidden",
            "webhook URL points to a forbidden address (unspecified address)",
        ),
    ];
    for (url, code, message) in cases {
        assert_refused(url, code, message).await;
    }
}

#[tokio::test]
async fn development_policy_still_refuses_everything_but_loopback() {
    let secret = WebhookSecret::generate();
    let sender = Sender::new(UrlPolicy::DEV);
    for url in ["http://169.254.169.254/", "http://10.0.0.1/", "http://[fe80::1]/", "http://0.0.0.0/"] {
        let attempt = sender.send(url, "msg_dev", unix_timestamp(), b"{}", &[&secret]).await;
        assert_eq!(attempt.outcome, Outcome::Refused, "{url}");
        assert!(UrlPolicy::DEV.check(url).await.is_err(), "{url}");
    }
}
