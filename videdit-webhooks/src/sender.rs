//! One delivery attempt: check, pin, sign, POST, classify.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use url::{Host, Url};

use crate::retry::parse_retry_after;
use crate::{Error, UrlPolicy, WebhookSecret, check_message, headers};

/// The `User-Agent` of every webhook request.
pub const USER_AGENT: &str = concat!("videdit-webhooks/", env!("CARGO_PKG_VERSION"));

/// The whole attempt's time limit by default (connect, send, answer and
/// the response snippet): the spec recommends 15 to 30 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// The time limit for opening the connection (TCP and TLS).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The most bytes of a response body read, for a diagnostic snippet.
pub const MAX_RESPONSE_SNIPPET: usize = 4 * 1024;

/// What became of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The receiver answered 2xx: done.
    Delivered,
    /// Try again later (see [`retry_delay`](crate::retry_delay) and
    /// [`Attempt::retry_after`]): any other status, including a 3xx
    /// redirect (never followed: the endpoint's URL should be updated
    /// instead), a timeout, a connection or TLS failure, or a failed host
    /// name lookup.
    Retry,
    /// The receiver answered 410 Gone: it wants no more webhooks, so
    /// disable the endpoint.
    Gone,
    /// No request was made because the attempt can never succeed as it is:
    /// the URL is now invalid or forbidden by the [`UrlPolicy`] (its host
    /// may resolve elsewhere than when the endpoint was created), or the
    /// message itself is invalid. [`Sender::try_send`] tells these apart.
    Refused,
}

impl Outcome {
    /// A short, stable name to store: `delivered`, `retry`, `gone`,
    /// `refused`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retry => "retry",
            Outcome::Gone => "gone",
            Outcome::Refused => "refused",
        }
    }
}

/// The record of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// What to do next.
    pub outcome: Outcome,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// From sending the request to the response's status and headers (or to
    /// the failure); zero when no request was made.
    pub latency: Duration,
    /// How long the receiver asked us to wait (`Retry-After` on a 429 or
    /// 503, in seconds or as an HTTP-date), capped at 24 h. Schedule the
    /// next attempt no earlier than this.
    pub retry_after: Option<Duration>,
    /// Why the attempt did not deliver, for the endpoint's owner: the
    /// status line, the timeout or connection error, or the refusal.
    pub error: Option<String>,
    /// The start of the response body (at most [`MAX_RESPONSE_SNIPPET`]
    /// bytes, decoded as UTF-8 with replacement characters), when it had
    /// one.
    pub response_snippet: Option<String>,
}

impl Attempt {
    fn refused(err: &Error) -> Self {
        Attempt {
            outcome: Outcome::Refused,
            status: None,
            latency: Duration::ZERO,
            retry_after: None,
            error: Some(err.to_string()),
            response_snippet: None,
        }
    }

    fn failed(error: String, latency: Duration) -> Self {
        Attempt {
            outcome: Outcome::Retry,
            status: None,
            latency,
            retry_after: None,
            error: Some(error),
            response_snippet: None,
        }
    }
}

/// Makes delivery attempts: one [`send`](Self::send) is one attempt, and
/// scheduling retries is the caller's job.
///
/// Every attempt checks the URL against the [`UrlPolicy`] again (DNS answers
/// change), then connects only to the addresses that passed the check: the
/// HTTP client is built for the attempt with its DNS answer pinned to them,
/// so a host that resolves to a public address for the check and to an
/// internal one a moment later (DNS rebinding) still reaches the checked
/// address. Redirects are not followed, proxies from the environment are not
/// used, and plain `http` is refused unless the policy allows loopback.
///
/// Clients are kept per host and checked address set (at most
/// [`MAX_CACHED_CLIENTS`]), so deliveries to the same receiver reuse their
/// connections; a changed DNS answer is a different key, so a kept
/// connection never outlives the check that allowed it.
#[derive(Debug, Clone)]
pub struct Sender {
    policy: UrlPolicy,
    timeout: Duration,
    clients: Arc<Mutex<ClientCache>>,
}

/// Clients by `scheme://host` and the checked addresses they are pinned to.
type ClientCache = HashMap<(String, Vec<SocketAddr>), reqwest::Client>;

/// Most HTTP clients a [`Sender`] keeps (one per receiver and DNS answer).
pub const MAX_CACHED_CLIENTS: usize = 256;

impl Sender {
    /// A sender with the default limits: 15 s for the whole attempt, 5 s to
    /// connect.
    pub fn new(policy: UrlPolicy) -> Self {
        Sender { policy, timeout: DEFAULT_TIMEOUT, clients: Arc::default() }
    }

    /// The same sender with another limit for the whole attempt (the connect
    /// limit becomes the smaller of 5 s and this).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.clients = Arc::default(); // clients carry their timeout
        self
    }

    /// The policy every attempt is checked against.
    pub fn policy(&self) -> UrlPolicy {
        self.policy
    }

    /// Makes one attempt: checks the message and the URL, POSTs `body` as
    /// `application/json` with the three signed headers (one signature per
    /// secret) to an address that passed the policy, and classifies the
    /// answer. It never fails: everything that goes wrong is in the
    /// [`Attempt`]; a refusal (see [`try_send`](Self::try_send)) becomes
    /// [`Outcome::Refused`] with the error's message.
    pub async fn send(
        &self,
        url: &str,
        msg_id: &str,
        timestamp: i64,
        body: &[u8],
        secrets: &[&WebhookSecret],
    ) -> Attempt {
        match self.try_send(url, msg_id, timestamp, body, secrets).await {
            Ok(attempt) => attempt,
            Err(err) => {
                tracing::debug!(code = err.code(), error = %err, "webhook attempt refused");
                Attempt::refused(&err)
            }
        }
    }

    /// [`send`](Self::send), with the refusals as a typed error. The
    /// returned attempt's outcome is never [`Outcome::Refused`].
    ///
    /// # Errors
    ///
    /// Made before any request, and never worth retrying as they are:
    /// [`Error::InvalidMessageId`] or [`Error::BodyTooLarge`] (see
    /// [`check_message`]), [`Error::InvalidSecret`] when `secrets` is empty,
    /// [`Error::InvalidUrl`] or [`Error::Forbidden`]. A failed host name
    /// lookup is not an error but an [`Outcome::Retry`].
    pub async fn try_send(
        &self,
        url: &str,
        msg_id: &str,
        timestamp: i64,
        body: &[u8],
        secrets: &[&WebhookSecret],
    ) -> Result<Attempt, Error> {
        check_message(msg_id, body)?;
        if secrets.is_empty() {
            return Err(Error::invalid_secret("no signing secret given"));
        }
        let url = self.policy.check_syntax(url)?;
        let addrs = match self.policy.resolve(&url).await {
            Ok(addrs) => addrs,
            Err(err) if err.is_retryable() => return Ok(Attempt::failed(err.to_string(), Duration::ZERO)),
            Err(err) => return Err(err),
        };
        let client = match self.client_for(&url, &addrs) {
            Ok(client) => client,
            Err(err) => return Ok(Attempt::failed(describe(&err, self.timeout), Duration::ZERO)),
        };

        let mut request = client.post(url.clone()).header(CONTENT_TYPE, "application/json").body(body.to_vec());
        for (name, value) in headers(msg_id, timestamp, body, secrets) {
            request = request.header(name, value);
        }
        let host = url.host_str().unwrap_or_default();
        let started = Instant::now();
        let response = request.send().await;
        let latency = started.elapsed();
        let attempt = match response {
            Ok(response) => classify(response, latency).await,
            Err(err) => Attempt::failed(describe(&err, self.timeout), latency),
        };
        tracing::debug!(
            host,
            msg_id,
            outcome = attempt.outcome.as_str(),
            status = attempt.status,
            latency_ms = latency.as_millis() as u64,
            error = attempt.error.as_deref(),
            "webhook attempt"
        );
        Ok(attempt)
    }

    /// A client for one attempt, whose DNS answer for the URL's host is the
    /// checked addresses (an IP host needs none).
    fn client_for(&self, url: &Url, addrs: &[SocketAddr]) -> Result<reqwest::Client, reqwest::Error> {
        let mut sorted = addrs.to_vec();
        sorted.sort_unstable();
        let key = (format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()), sorted);
        if let Some(client) = self.clients.lock().expect("client cache lock").get(&key) {
            return Ok(client.clone());
        }
        let client = self.build_client(url, addrs)?;
        let mut cache = self.clients.lock().expect("client cache lock");
        if cache.len() >= MAX_CACHED_CLIENTS {
            cache.clear();
        }
        cache.insert(key, client.clone());
        Ok(client)
    }

    fn build_client(&self, url: &Url, addrs: &[SocketAddr]) -> Result<reqwest::Client, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(self.timeout))
            .user_agent(USER_AGENT)
            .no_proxy()
            .https_only(!self.policy.allow_loopback)
            .pool_idle_timeout(Duration::from_secs(30));
        if let Some(Host::Domain(domain)) = url.host() {
            builder = builder.resolve_to_addrs(domain, addrs);
        }
        builder.build()
    }
}

/// Turns the receiver's answer into an attempt, reading at most
/// [`MAX_RESPONSE_SNIPPET`] bytes of its body.
async fn classify(mut response: reqwest::Response, latency: Duration) -> Attempt {
    let status = response.status();
    let outcome = if status.is_success() {
        Outcome::Delivered
    } else if status == StatusCode::GONE {
        Outcome::Gone
    } else {
        Outcome::Retry
    };
    let retry_after = match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, SystemTime::now())),
        _ => None,
    };
    let error = (!status.is_success()).then(|| {
        let mut text = format!("receiver answered {status}");
        if status.is_redirection() {
            text.push_str(" (redirects are not followed: update the endpoint's URL)");
        }
        text
    });

    let mut snippet = Vec::new();
    // A body that fails or stalls halfway leaves the snippet short; the
    // status has already decided the outcome.
    while snippet.len() < MAX_RESPONSE_SNIPPET {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_RESPONSE_SNIPPET - snippet.len();
                snippet.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    let response_snippet = (!snippet.is_empty()).then(|| String::from_utf8_lossy(&snippet).into_owned());

    Attempt { outcome, status: Some(status.as_u16()), latency, retry_after, error, response_snippet }
}

/// A one-line account of a failed request, with the causes that reqwest's
/// own message leaves out (its message would also repeat the URL).
fn describe(err: &reqwest::Error, timeout: Duration) -> String {
    if err.is_timeout() && err.is_connect() {
        return format!("connecting timed out after {} ms", CONNECT_TIMEOUT.min(timeout).as_millis());
    }
    if err.is_timeout() {
        return format!("timed out after {} ms", timeout.as_millis());
    }
    let mut text = if err.is_connect() { "connection failed".to_owned() } else { "request failed".to_owned() };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// The attempt's client connects to the checked addresses, not to
    /// whatever the name resolves to now: `localhost` resolves to
    /// 127.0.0.1, where nothing listens on this port, yet the request
    /// reaches the pinned 127.0.0.2.
    #[tokio::test]
    async fn requests_go_to_the_pinned_addresses() {
        let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
        let pinned = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = vec![0; 4096];
            let n = stream.read(&mut buf).await.unwrap();
            stream.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n").await.unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });

        let url = Url::parse(&format!("http://localhost:{}/pinned", pinned.port())).unwrap();
        let client = Sender::new(UrlPolicy::DEV).client_for(&url, &[pinned]).unwrap();
        let response = client.get(url).send().await.unwrap();

        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let request = server.await.unwrap().to_ascii_lowercase();
        assert!(request.starts_with("get /pinned http/1.1\r\n"), "{request}");
        assert!(request.contains(&format!("\r\nhost: localhost:{}\r\n", pinned.port())), "{request}");
    }

    #[tokio::test]
    async fn strict_clients_refuse_plain_http() {
        let url = Url::parse("http://127.0.0.1:9/").unwrap();
        let client = Sender::new(UrlPolicy::STRICT).client_for(&url, &[]).unwrap();
        let err = client.get(url).send().await.unwrap_err();
        assert!(err.is_builder(), "{err:?}");
    }

    #[test]
    fn outcomes_have_stable_names() {
        let names: Vec<_> =
            [Outcome::Delivered, Outcome::Retry, Outcome::Gone, Outcome::Refused].map(Outcome::as_str).into();
        assert_eq!(names, ["delivered", "retry", "gone", "refused"]);
    }
}
