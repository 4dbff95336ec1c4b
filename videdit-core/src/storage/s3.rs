//! The S3-compatible backend (AWS S3, Tigris, R2, MinIO, s3s).

use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation, timeout::TimeoutConfig,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::upload_part::builders::UploadPartFluentBuilder;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart as SdkPart, Delete, ObjectIdentifier};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use time::OffsetDateTime;

use super::{
    ByteRange, ByteStream, CompletedPart, GetObject, KeyPrefix, MultipartUpload, ObjectKey, ObjectMeta, PresignGet,
    PresignPut, PresignedRequest, Storage, attachment_disposition, check_content_type, check_expiry, check_part_number,
};
use crate::config::S3Config;
use crate::error::{Error, Result};
use crate::error_code::ErrorCode;

/// Deadline for calls that move no object bytes (head, delete, list, …).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);
/// Part size used when storing a stream of unknown length.
const STREAM_PART_SIZE: usize = 8 * 1024 * 1024;

/// Objects in an S3-compatible bucket.
#[derive(Debug, Clone)]
pub struct S3Storage {
    client: Client,
    bucket: String,
}

fn map_err<E>(op: &'static str, key: &str, err: SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let SdkError::ServiceError(service) = &err {
        match service.err().code() {
            Some("NoSuchKey" | "NotFound") => {
                return Error::not_found(ErrorCode::ObjectNotFound, format!("object {key}"));
            }
            Some("NoSuchUpload") => {
                return Error::not_found(ErrorCode::UploadNotFound, format!("multipart upload for {key}"));
            }
            Some("InvalidPart" | "InvalidPartOrder" | "EntityTooSmall" | "InvalidRange" | "InvalidArgument") => {
                return Error::InvalidRequest(format!(
                    "storage refused {op}: {}",
                    service.err().message().unwrap_or("invalid request")
                ));
            }
            _ => {}
        }
    }
    let message = DisplayErrorContext(&err).to_string();
    Error::Storage { op, message, source: Some(Box::new(err)) }
}

async fn bounded<T>(op: &'static str, fut: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(CONTROL_TIMEOUT, fut)
        .await
        .unwrap_or(Err(Error::StorageTimeout { op, seconds: CONTROL_TIMEOUT.as_secs() }))
}

/// Sends a request that moves no object bytes: bounded by
/// [`CONTROL_TIMEOUT`], its failure mapped for `key`.
async fn control<T, E>(op: &'static str, key: &str, send: impl Future<Output = Result<T, SdkError<E>>>) -> Result<T>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    bounded(op, async { send.await.map_err(|e| map_err(op, key, e)) }).await
}

/// `$storage.client.$op()` on a multipart upload: its bucket, key and
/// upload id set (every multipart operation names all three).
macro_rules! on_upload {
    ($storage:expr, $op:ident, $upload:expr) => {
        $storage.client.$op().bucket(&$storage.bucket).key($upload.key.as_str()).upload_id(&$upload.upload_id)
    };
}

fn object_meta(key: &ObjectKey, size: u64, content_type: Option<&str>, etag: Option<&str>) -> ObjectMeta {
    ObjectMeta { key: key.clone(), size, content_type: content_type.map(str::to_owned), etag: etag.map(str::to_owned) }
}

/// Presigns a request for `expires_in`, refused past [`super::MAX_PRESIGN_EXPIRY`];
/// `sign` is the request's own `presigned` call.
async fn presign<E, F>(
    op: &'static str,
    key: &str,
    expires_in: Duration,
    sign: impl FnOnce(PresigningConfig) -> F,
) -> Result<PresignedRequest>
where
    F: Future<Output = Result<aws_sdk_s3::presigning::PresignedRequest, SdkError<E>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    check_expiry(expires_in)?;
    let config = PresigningConfig::expires_in(expires_in).map_err(|e| Error::InvalidRequest(e.to_string()))?;
    let req = sign(config).await.map_err(|e| map_err(op, key, e))?;
    Ok(PresignedRequest {
        method: req.method().to_owned(),
        url: req.uri().to_owned(),
        headers: req.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        expires_at: OffsetDateTime::now_utc() + expires_in,
    })
}

impl S3Storage {
    /// A client for the configured endpoint and bucket.
    ///
    /// Non-AWS providers reject or mis-handle the SDK's default flexible
    /// checksums, so checksums are only computed and validated where the
    /// operation requires them. Connections time out after 5 s and a read
    /// that makes no progress for 60 s fails.
    #[must_use]
    pub fn new(config: &S3Config) -> Self {
        let credentials = Credentials::new(
            config.access_key_id.clone(),
            config.secret_access_key.expose().clone(),
            None,
            None,
            "videdit-config",
        );
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(config.force_path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .read_timeout(Duration::from_secs(60))
                    .build(),
            );
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Self { client: Client::from_conf(builder.build()), bucket: config.bucket.clone() }
    }

    /// The bucket.
    #[must_use]
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The SDK client, for operations this trait does not cover.
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates the bucket if it does not exist (tests, first start).
    ///
    /// # Errors
    /// Backend failures other than "already exists".
    pub async fn ensure_bucket(&self) -> Result<()> {
        bounded("create bucket", async {
            match self.client.create_bucket().bucket(&self.bucket).send().await {
                Ok(_) => Ok(()),
                Err(e) if matches!(e.code(), Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")) => Ok(()),
                Err(e) => Err(map_err("create bucket", &self.bucket, e)),
            }
        })
        .await
    }

    /// One plain PUT of `size` bytes.
    async fn put_object(
        &self,
        key: &ObjectKey,
        body: SdkByteStream,
        size: u64,
        content_type: &str,
    ) -> Result<ObjectMeta> {
        let out = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(content_type)
            .content_length(size as i64)
            .body(body)
            .send()
            .await
            .map_err(|e| map_err("put", key.as_str(), e))?;
        Ok(object_meta(key, size, Some(content_type), out.e_tag()))
    }

    /// An `UploadPart` request for part `n`, to send or to presign.
    fn upload_part(&self, upload: &MultipartUpload, n: i32) -> UploadPartFluentBuilder {
        on_upload!(self, upload_part, upload).part_number(n)
    }

    async fn upload_part_bytes(&self, upload: &MultipartUpload, n: i32, data: Bytes) -> Result<CompletedPart> {
        let out = self
            .upload_part(upload, n)
            .body(SdkByteStream::from(data))
            .send()
            .await
            .map_err(|e| map_err("upload part", upload.key.as_str(), e))?;
        Ok(CompletedPart { part_number: n, etag: out.e_tag().unwrap_or_default().to_owned() })
    }
}

impl S3Storage {
    /// Checks the client's part list against what the store received, so a
    /// wrong ETag, a missing part or a too-small middle part is refused with
    /// a clear message on every provider (some S3-compatible stores do not
    /// check ETags themselves). Providers without ListParts skip the check.
    async fn check_parts(&self, upload: &MultipartUpload, parts: &[CompletedPart]) -> Result<()> {
        super::parts::validate_part_list(parts)?;
        let mut stored = super::parts::StoredParts::default();
        let mut marker: Option<String> = None;
        loop {
            let request = on_upload!(self, list_parts, upload).set_part_number_marker(marker.clone()).send();
            let page = match tokio::time::timeout(CONTROL_TIMEOUT, request).await {
                Err(_) => return Err(Error::StorageTimeout { op: "list parts", seconds: CONTROL_TIMEOUT.as_secs() }),
                Ok(Ok(page)) => page,
                Ok(Err(e)) if matches!(e.code(), Some("NotImplemented")) => return Ok(()),
                Ok(Err(e)) => return Err(map_err("list parts", upload.key.as_str(), e)),
            };
            for p in page.parts() {
                stored.add(p.part_number(), p.e_tag(), p.size());
            }
            match page.next_part_number_marker() {
                Some(next) if page.is_truncated().unwrap_or(false) => marker = Some(next.to_owned()),
                _ => break,
            }
        }
        stored.check(parts)
    }
}

#[async_trait::async_trait]
impl Storage for S3Storage {
    async fn put_file(&self, key: &ObjectKey, path: &Path, content_type: &str) -> Result<ObjectMeta> {
        check_content_type(content_type)?;
        let size = tokio::fs::metadata(path).await.map_err(Error::io("reading the file to store"))?.len();
        if size > 5 * 1024 * 1024 * 1024 {
            let file = tokio::fs::File::open(path).await.map_err(Error::io("opening the file to store"))?;
            return self.put_stream(key, Box::pin(tokio_util::io::ReaderStream::new(file)), content_type).await;
        }
        let body = SdkByteStream::from_path(path)
            .await
            .map_err(|e| Error::Io { op: "opening the file to store", source: std::io::Error::other(e) })?;
        self.put_object(key, body, size, content_type).await
    }

    async fn put_stream(&self, key: &ObjectKey, mut body: ByteStream, content_type: &str) -> Result<ObjectMeta> {
        check_content_type(content_type)?;
        // Fill the first part; a stream that ends before is one plain PUT.
        let mut buf = BytesMut::with_capacity(64 * 1024);
        loop {
            match body.next().await {
                Some(chunk) => {
                    buf.extend_from_slice(&chunk.map_err(Error::io("reading the stream to store"))?);
                    if buf.len() >= STREAM_PART_SIZE {
                        break;
                    }
                }
                None => {
                    let size = buf.len() as u64;
                    return self.put_object(key, SdkByteStream::from(buf.freeze()), size, content_type).await;
                }
            }
        }
        let upload = self.create_multipart(key, content_type).await?;
        let result = async {
            let mut parts = Vec::new();
            let mut size = 0u64;
            let mut ended = false;
            while !ended {
                while buf.len() < STREAM_PART_SIZE {
                    match body.next().await {
                        Some(chunk) => buf.extend_from_slice(&chunk.map_err(Error::io("reading the stream"))?),
                        None => {
                            ended = true;
                            break;
                        }
                    }
                }
                if buf.is_empty() {
                    break;
                }
                let n = parts.len() as i32 + 1;
                let data = buf.split().freeze();
                size += data.len() as u64;
                parts.push(self.upload_part_bytes(&upload, n, data).await?);
            }
            let mut meta = self.complete_multipart(&upload, &parts).await?;
            meta.size = size;
            Ok(meta)
        }
        .await;
        if result.is_err() {
            let _ = self.abort_multipart(&upload).await;
        }
        result
    }

    async fn get(&self, key: &ObjectKey, range: Option<ByteRange>) -> Result<GetObject> {
        if let Some(r) = range {
            r.validate()?;
        }
        let request =
            self.client.get_object().bucket(&self.bucket).key(key.as_str()).set_range(range.map(|r| r.header()));
        let out = control("get", key.as_str(), request.send()).await?;
        let size = match out.content_range().and_then(|r| r.rsplit_once('/')).and_then(|(_, t)| t.parse().ok()) {
            Some(total) => total,
            None => out.content_length().unwrap_or_default().max(0) as u64,
        };
        let meta = object_meta(key, size, out.content_type(), out.e_tag());
        let reader = out.body.into_async_read();
        Ok(GetObject { meta, body: Box::pin(tokio_util::io::ReaderStream::with_capacity(reader, 64 * 1024)) })
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>> {
        bounded("head", async {
            match self.client.head_object().bucket(&self.bucket).key(key.as_str()).send().await {
                Ok(out) => {
                    let size = out.content_length().unwrap_or_default().max(0) as u64;
                    Ok(Some(object_meta(key, size, out.content_type(), out.e_tag())))
                }
                Err(SdkError::ServiceError(e)) if e.err().is_not_found() => Ok(None),
                Err(e) => Err(map_err("head", key.as_str(), e)),
            }
        })
        .await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<()> {
        let request = self.client.delete_object().bucket(&self.bucket).key(key.as_str());
        control("delete", key.as_str(), request.send()).await.map(|_| ())
    }

    async fn delete_prefix(&self, prefix: &KeyPrefix) -> Result<u64> {
        let mut deleted = 0u64;
        loop {
            // Always list from the start: what we deleted is gone, so the
            // next page is the remaining objects.
            let request = self.client.list_objects_v2().bucket(&self.bucket).prefix(prefix.as_str()).max_keys(1000);
            let page = control("list", prefix.as_str(), request.send()).await?;
            let keys: Vec<ObjectIdentifier> = page
                .contents()
                .iter()
                .filter_map(|o| o.key())
                .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
                .collect();
            if keys.is_empty() {
                return Ok(deleted);
            }
            let n = keys.len() as u64;
            let delete = Delete::builder()
                .set_objects(Some(keys))
                .quiet(true)
                .build()
                .map_err(|e| Error::InvalidRequest(e.to_string()))?;
            let request = self.client.delete_objects().bucket(&self.bucket).delete(delete);
            let out = control("delete many", prefix.as_str(), request.send()).await?;
            if let Some(err) = out.errors().first() {
                return Err(Error::Storage {
                    op: "delete many",
                    message: format!(
                        "{} objects were not deleted; first: {} ({})",
                        out.errors().len(),
                        err.key().unwrap_or("?"),
                        err.message().unwrap_or("no message")
                    ),
                    source: None,
                });
            }
            deleted += n;
        }
    }

    async fn presign_put(&self, key: &ObjectKey, options: &PresignPut) -> Result<PresignedRequest> {
        check_content_type(&options.content_type)?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(&options.content_type)
            .set_content_length(options.content_length.map(|l| l as i64));
        presign("presign put", key.as_str(), options.expires_in, |config| request.presigned(config)).await
    }

    async fn presign_get(&self, key: &ObjectKey, options: &PresignGet) -> Result<PresignedRequest> {
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .set_response_content_disposition(options.download_name.as_deref().map(attachment_disposition));
        presign("presign get", key.as_str(), options.expires_in, |config| request.presigned(config)).await
    }

    async fn create_multipart(&self, key: &ObjectKey, content_type: &str) -> Result<MultipartUpload> {
        check_content_type(content_type)?;
        let request =
            self.client.create_multipart_upload().bucket(&self.bucket).key(key.as_str()).content_type(content_type);
        let out = control("create multipart", key.as_str(), request.send()).await?;
        let upload_id = out.upload_id().ok_or_else(|| Error::Storage {
            op: "create multipart",
            message: "no upload id".into(),
            source: None,
        })?;
        Ok(MultipartUpload { key: key.clone(), upload_id: upload_id.to_owned() })
    }

    async fn presign_part(
        &self,
        upload: &MultipartUpload,
        part_number: i32,
        size: u64,
        expires_in: Duration,
    ) -> Result<PresignedRequest> {
        check_part_number(part_number)?;
        // Content-Length is then a signed header: S3 refuses another size.
        let request = self.upload_part(upload, part_number).content_length(i64::try_from(size).unwrap_or(i64::MAX));
        presign("presign part", upload.key.as_str(), expires_in, |config| request.presigned(config)).await
    }

    async fn complete_multipart(&self, upload: &MultipartUpload, parts: &[CompletedPart]) -> Result<ObjectMeta> {
        self.check_parts(upload, parts).await?;
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts.iter().map(|p| SdkPart::builder().part_number(p.part_number).e_tag(&p.etag).build()).collect(),
            ))
            .build();
        let request = on_upload!(self, complete_multipart_upload, upload).multipart_upload(completed);
        control("complete multipart", upload.key.as_str(), request.send()).await?;
        self.head(&upload.key).await?.ok_or_else(|| Error::Storage {
            op: "complete multipart",
            message: "the completed object is missing".into(),
            source: None,
        })
    }

    async fn abort_multipart(&self, upload: &MultipartUpload) -> Result<()> {
        bounded("abort multipart", async {
            match on_upload!(self, abort_multipart_upload, upload).send().await {
                Ok(_) => Ok(()),
                Err(e) if matches!(e.code(), Some("NoSuchUpload")) => Ok(()),
                Err(e) => Err(map_err("abort multipart", upload.key.as_str(), e)),
            }
        })
        .await
    }
}
