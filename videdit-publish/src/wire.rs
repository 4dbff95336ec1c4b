//! Wire helpers shared by the platform clients: request bodies, the
//! bearer header, JSON answers, and a source read chunk by chunk into
//! request bodies.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::Mutex;
use url::Url;
use videdit_core::secret::Secret;

use crate::PublishError;
use crate::source::{ByteSource, ByteStream};

/// The form content type.
pub(crate) const FORM: &str = "application/x-www-form-urlencoded";

/// A platform client's connection pool: `timeout` to connect, redirects
/// not followed (a resumable upload's 308 is "resume incomplete").
///
/// # Errors
/// `invalid_request` for a zero `min_upload_rate` or a client that cannot be built.
pub(crate) fn http_client(timeout: std::time::Duration, min_upload_rate: u64) -> Result<reqwest::Client, PublishError> {
    if min_upload_rate == 0 {
        return Err(PublishError::InvalidRequest { message: "min_upload_rate must be positive".to_owned() });
    }
    reqwest::Client::builder()
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| PublishError::InvalidRequest { message: format!("HTTP client: {e}") })
}

/// Sends a request with a deadline; the answer's status, headers and body.
/// A transport failure drops the URL (upload URLs are credentials).
pub(crate) async fn send(
    req: reqwest::RequestBuilder,
    timeout: std::time::Duration,
    what: &'static str,
) -> Result<(reqwest::StatusCode, reqwest::header::HeaderMap, Bytes), PublishError> {
    let resp = req.timeout(timeout).send().await.map_err(|e| {
        let e = PublishError::transport(e);
        tracing::debug!(request = what, error = %e, "request failed");
        e
    })?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.map_err(PublishError::transport)?;
    tracing::debug!(request = what, status = status.as_u16(), "answered");
    Ok((status, headers, body))
}

/// `base` + `path` (keeping a path prefix of `base`) + query.
pub(crate) fn join(base: &Url, path: &str, query: &[(&str, &str)]) -> Url {
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    url.set_path(&format!("{prefix}{path}"));
    url.set_query(None);
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    url
}

/// An `application/x-www-form-urlencoded` body.
pub(crate) fn form<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// `Bearer <token>`.
pub(crate) fn bearer(token: &Secret<String>) -> String {
    format!("Bearer {}", token.expose())
}

/// A JSON answer, or `platform_invalid_response` naming `what`.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, PublishError> {
    serde_json::from_slice(body).map_err(|e| PublishError::InvalidResponse { message: format!("{what}: {e}") })
}

/// The source's stream, kept open from one chunk to the next and reopened
/// only when the server asks for bytes from elsewhere.
#[derive(Default)]
pub(crate) struct Reader {
    stream: Option<ByteStream>,
    position: u64,
    pending: Bytes,
    /// A read error, kept so that the upload reports it as such rather
    /// than as the transport error it causes.
    pub(crate) failure: Option<io::Error>,
}

impl Reader {
    pub(crate) async fn seek(&mut self, source: &dyn ByteSource, offset: u64) -> io::Result<()> {
        if self.stream.is_none() || self.position != offset {
            self.stream = Some(source.open(offset).await?);
            self.position = offset;
            self.pending = Bytes::new();
        }
        Ok(())
    }

    async fn next(&mut self, max: u64) -> io::Result<Bytes> {
        let stream = self.stream.as_mut().ok_or_else(|| io::Error::other("source not open"))?;
        while self.pending.is_empty() {
            match stream.next().await {
                Some(Ok(bytes)) => self.pending = bytes,
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the source ended at byte {}, before its length", self.position),
                    ));
                }
            }
        }
        let n = usize::try_from(max).unwrap_or(usize::MAX).min(self.pending.len());
        self.position += n as u64;
        Ok(self.pending.split_to(n))
    }
}

/// Exactly `len` bytes from the reader, as a request body.
pub(crate) fn chunk_body(
    reader: Arc<Mutex<Reader>>,
    len: u64,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    futures_util::stream::unfold((reader, len), |(reader, remaining)| async move {
        if remaining == 0 {
            return None;
        }
        let read = reader.lock().await.next(remaining).await;
        match read {
            Ok(bytes) => {
                let left = remaining - bytes.len() as u64;
                Some((Ok(bytes), (reader, left)))
            }
            Err(e) => {
                let for_body = io::Error::new(e.kind(), e.to_string());
                reader.lock().await.failure = Some(e);
                Some((Err(for_body), (reader, 0)))
            }
        }
    })
}
