//! Test fixtures: storage backends behind a common HTTP-ish client.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use videdit_core::config::S3Config;
use videdit_core::storage::{LocalStorage, PresignedRequest, S3Storage, Storage, UrlSigner, bytes_stream};
use videdit_core::{Error, Secret};

/// Reads an environment variable the test runner sets, or fails loudly.
pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through scripts/test, which starts PostgreSQL and s3s-fs")
    })
}

/// A backend under test, plus a way to make the presigned requests a client
/// would make.
pub struct Backend {
    pub storage: Arc<dyn Storage>,
    pub kind: Kind,
    _dir: Option<tempfile::TempDir>,
}

pub enum Kind {
    /// Requests go through the signer and `accept_signed_put`, as the
    /// reference server does (the HTTP route comes with the server).
    Local(LocalStorage),
    /// Requests go over real HTTP to s3s-fs.
    S3,
}

/// What a client sees in answer to a presigned request.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn status_of(e: &Error) -> u16 {
    e.code().http_status()
}

impl Backend {
    pub async fn local() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let signer = UrlSigner::new(vec![42u8; 32], "http://127.0.0.1:9/".parse().unwrap()).unwrap();
        let local = LocalStorage::open(dir.path(), Some(signer)).await.unwrap();
        Self { storage: Arc::new(local.clone()), kind: Kind::Local(local), _dir: Some(dir) }
    }

    pub async fn s3() -> Self {
        let config = S3Config {
            endpoint: Some(required_env("VIDEDIT_TEST_S3_ENDPOINT")),
            bucket: format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..20]),
            access_key_id: required_env("VIDEDIT_TEST_S3_ACCESS_KEY"),
            secret_access_key: Secret::new(required_env("VIDEDIT_TEST_S3_SECRET_KEY")),
            region: "auto".into(),
            force_path_style: true,
        };
        let s3 = S3Storage::new(&config);
        s3.ensure_bucket().await.unwrap();
        Self { storage: Arc::new(s3), kind: Kind::S3, _dir: None }
    }

    /// Sends a presigned request like a browser or curl would, with the
    /// given body and headers (by default the headers the URL asks for).
    pub async fn send(&self, req: &PresignedRequest, body: Vec<u8>, headers: Option<Vec<(String, String)>>) -> Answer {
        let headers = headers.unwrap_or_else(|| req.headers.clone());
        match &self.kind {
            Kind::S3 => {
                let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
                let mut r = client.request(req.method.parse().unwrap(), &req.url);
                for (k, v) in &headers {
                    r = r.header(k, v);
                }
                if req.method == "PUT" {
                    r = r.body(body);
                }
                let resp = r.send().await.unwrap();
                let status = resp.status().as_u16();
                let headers = resp
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                    .collect();
                Answer { status, body: resp.bytes().await.unwrap().to_vec(), headers }
            }
            Kind::Local(local) => {
                let url = url::Url::parse(&req.url).unwrap();
                let content_type =
                    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.as_str());
                let verified = match local.signer().unwrap().verify(
                    &req.method,
                    url.path(),
                    url.query().unwrap_or(""),
                    content_type,
                    time::OffsetDateTime::now_utc(),
                ) {
                    Ok(v) => v,
                    Err(e) => {
                        return Answer { status: status_of(&e), body: e.to_string().into_bytes(), headers: vec![] };
                    }
                };
                if req.method == "PUT" {
                    match local.accept_signed_put(&verified, bytes_stream(body)).await {
                        Ok(meta) => Answer {
                            status: 200,
                            body: vec![],
                            headers: vec![("etag".into(), meta.etag.unwrap_or_default())],
                        },
                        Err(e) => Answer { status: status_of(&e), body: e.to_string().into_bytes(), headers: vec![] },
                    }
                } else {
                    match local.get(&verified.key, None).await {
                        Ok(mut obj) => {
                            let mut data = Vec::new();
                            while let Some(chunk) = obj.body.next().await {
                                data.extend_from_slice(&chunk.unwrap());
                            }
                            let mut headers = vec![];
                            if let videdit_core::storage::SignedOperation::Get { download_name: Some(n) } =
                                &verified.operation
                            {
                                headers.push((
                                    "content-disposition".into(),
                                    videdit_core::storage::attachment_disposition(n),
                                ));
                            }
                            Answer { status: 200, body: data, headers }
                        }
                        Err(e) => Answer { status: status_of(&e), body: e.to_string().into_bytes(), headers: vec![] },
                    }
                }
            }
        }
    }
}

/// Reads a whole stream into memory.
pub async fn collect(mut body: videdit_core::storage::ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// Deterministic pseudo-random bytes, so a mix-up of parts is visible.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
