//! A real HTTP receiver (poem) on a loopback port that records every request
//! and answers as the test tells it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::http::{HeaderMap, StatusCode};
use poem::listener::TcpAcceptor;
use poem::{Request, Response, Server, endpoint::make};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// What the receiver answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Reply { status, headers: Vec::new(), body: Vec::new(), delay: Duration::ZERO }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A running receiver; it stops with the test's runtime.
pub struct Receiver {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Starts a receiver on `127.0.0.1`, answering every request by path.
    pub async fn start(respond: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Receiver {
        Receiver::start_on("127.0.0.1:0", respond).await
    }

    /// Starts a receiver on the given loopback address (port 0 for any).
    pub async fn start_on(bind: &str, respond: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Receiver {
        let listener = tokio::net::TcpListener::bind(bind).await.expect("bind the test receiver");
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let respond = Arc::new(respond);
        let endpoint = {
            let log = log.clone();
            make(move |mut req: Request| {
                let log = log.clone();
                let respond = respond.clone();
                async move {
                    let body = req.take_body().into_vec().await.unwrap_or_default();
                    let path = req.uri().path().to_owned();
                    log.lock().unwrap().push(Received {
                        method: req.method().to_string(),
                        path: path.clone(),
                        headers: req.headers().clone(),
                        body,
                    });
                    let reply = respond(&path);
                    tokio::time::sleep(reply.delay).await;
                    let mut response = Response::builder().status(StatusCode::from_u16(reply.status).unwrap());
                    for (name, value) in &reply.headers {
                        response = response.header(name.as_str(), value.as_str());
                    }
                    response.body(reply.body)
                }
            })
        };
        let acceptor = TcpAcceptor::from_tokio(listener).unwrap();
        tokio::spawn(Server::new_with_acceptor(acceptor).run(endpoint));
        Receiver { addr, log }
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `https://ADDR{path}`: the same address in a URL the strict policy
    /// would take, were the address not forbidden.
    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// How many requests reached `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.log.lock().unwrap().iter().filter(|r| r.path == path).count()
    }
}

/// A port on 127.0.0.1 with nothing listening.
pub async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// A small JSON body of the kind the server sends.
pub fn event_body() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": "short.rendered",
        "timestamp": "2025-01-01T00:00:00Z",
        "data": {"id": "s_0192f3c4", "title": "Why do most people retire broke?"},
    }))
    .unwrap()
}
