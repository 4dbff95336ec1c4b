//! A small HTTP/1.1 server on raw tokio: enough of the protocol for the
//! fake, and the control a framework would not give, such as closing the
//! connection in the middle of a request body.

use std::collections::HashMap;
use std::io;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The largest request head we read.
const MAX_HEAD: usize = 64 * 1024;
/// The largest body: chunks of the biggest size tests use, with room.
const MAX_BODY: u64 = 256 * 1024 * 1024;

/// A request's head.
pub(crate) struct Head {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    /// Lower-case names; the last value of a repeated header.
    pub headers: HashMap<String, String>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }
}

/// An answer.
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Self { status, headers: Vec::new(), body: Vec::new() }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::new(status).header("Content-Type", "application/json; charset=UTF-8").body(value.to_string().into_bytes())
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }
}

/// What the application does with a request whose head has been read.
pub(crate) enum Plan {
    /// Read the whole body, then answer.
    Whole,
    /// Read at most this many body bytes, then close the connection without an answer.
    DropAfter(u64),
}

/// The application behind the server.
pub(crate) trait App: Send + Sync + 'static {
    /// Decides, from the head, how to read the body.
    fn plan(&self, head: &Head) -> Plan;
    /// Answers a request with its whole body.
    fn handle(&self, head: &Head, body: Vec<u8>) -> Response;
    /// Learns what arrived of a body before the connection was closed.
    fn dropped(&self, head: &Head, partial: Vec<u8>);
}

/// Locks a fake's state (a panic in another request does not poison it for the test).
pub(crate) fn lock<S>(state: &std::sync::Mutex<S>) -> std::sync::MutexGuard<'_, S> {
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A fake serving on loopback until dropped, and the state it serves from.
pub(crate) struct Served<S> {
    pub addr: std::net::SocketAddr,
    pub state: std::sync::Arc<std::sync::Mutex<S>>,
    accept: tokio::task::JoinHandle<()>,
}

impl<S> Served<S> {
    /// Serves `app` (which holds `state`) on `127.0.0.1:0`, then tells the
    /// state its base URL with `set_base`.
    pub async fn start(
        state: std::sync::Arc<std::sync::Mutex<S>>,
        app: std::sync::Arc<dyn App>,
        set_base: impl FnOnce(&mut S, String),
    ) -> Self {
        let (addr, accept) = serve(app).await;
        set_base(&mut lock(&state), format!("http://{addr}"));
        Self { addr, state, accept }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, S> {
        lock(&self.state)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl<S> Drop for Served<S> {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Serves `app` on `127.0.0.1:0` until the returned task is aborted.
///
/// # Panics
/// When no loopback port can be bound.
pub(crate) async fn serve(app: std::sync::Arc<dyn App>) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    let accept = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let app = app.clone();
            tokio::spawn(async move {
                if let Err(e) = serve_connection(stream, app).await {
                    tracing::debug!(error = %e, "fake connection ended");
                }
            });
        }
    });
    (addr, accept)
}

/// Serves one connection, request after request (keep-alive).
pub(crate) async fn serve_connection(stream: TcpStream, app: std::sync::Arc<dyn App>) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let Some(head) = read_head(&mut read).await? else { return Ok(()) };
        if head.header("transfer-encoding").is_some() {
            write_response(&mut write, &Response::new(411), true).await?;
            return Ok(());
        }
        let len: u64 = match head.header("content-length").map(str::parse).transpose() {
            Ok(len) => len.unwrap_or(0),
            Err(_) => {
                write_response(&mut write, &Response::new(400), true).await?;
                return Ok(());
            }
        };
        if len > MAX_BODY {
            write_response(&mut write, &Response::new(413), true).await?;
            return Ok(());
        }
        match app.plan(&head) {
            Plan::DropAfter(n) => {
                let mut partial = Vec::new();
                (&mut read).take(n.min(len)).read_to_end(&mut partial).await?;
                app.dropped(&head, partial);
                // Dropping both halves closes the socket; unread bytes make the kernel reset it.
                return Ok(());
            }
            Plan::Whole => {
                let mut body = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
                (&mut read).take(len).read_to_end(&mut body).await?;
                if (body.len() as u64) < len {
                    return Ok(());
                }
                let response = app.handle(&head, body);
                let close = head.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close"));
                write_response(&mut write, &response, close).await?;
                if close {
                    return Ok(());
                }
            }
        }
    }
}

async fn read_head<R: tokio::io::AsyncBufRead + Unpin>(read: &mut R) -> io::Result<Option<Head>> {
    let mut line = String::new();
    let mut total = 0;
    // Skip stray empty lines between requests.
    loop {
        line.clear();
        let n = read.read_line(&mut line).await?;
        if n == 0 {
            return Ok(None);
        }
        total += n;
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bad request line"));
    };
    let method = method.to_owned();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = path.to_owned();
    let query = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let mut headers = HashMap::new();
    loop {
        line.clear();
        let n = read.read_line(&mut line).await?;
        total += n;
        if n == 0 || total > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "truncated or oversized head"));
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        if let Some((name, value)) = l.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    Ok(Some(Head { method, path, query, headers }))
}

async fn write_response<W: tokio::io::AsyncWrite + Unpin>(write: &mut W, r: &Response, close: bool) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", r.status, reason(r.status));
    for (name, value) in &r.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n", r.body.len()));
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    write.write_all(out.as_bytes()).await?;
    write.write_all(&r.body).await?;
    write.flush().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        206 => "Partial Content",
        302 => "Found",
        308 => "Resume Incomplete",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        410 => "Gone",
        411 => "Length Required",
        413 => "Payload Too Large",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
