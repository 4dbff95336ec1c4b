//! The S3-compatible backend (AWS S3, Tigris, R2, MinIO, s3s).

use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation, timeout::TimeoutConfig,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
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

fn presigned(req: &aws_sdk_s3::presigning::PresignedRequest, expires_in: Duration) -> PresignedRequest {
    PresignedRequest {
        method: req.method().to_owned(),
        url: req.uri().to_owned(),
        headers: req.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        expires_at: OffsetDateTime::now_utc() + expires_in,
    }
}

fn presign_config(expires_in: Duration) -> Result<PresigningConfig> {
    check_expiry(expires_in)?;
    PresigningConfig::expires_in(expires_in).map_err(|e| Error::InvalidRequest(e.to_string()))
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

    async fn put_bytes(&self, key: &ObjectKey, data: Bytes, content_type: &str) -> Result<ObjectMeta> {
        let size = data.len() as u64;
        let out = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(content_type)
            .body(SdkByteStream::from(data))
            .send()
            .await
            .map_err(|e| map_err("put", key.as_str(), e))?;
        Ok(ObjectMeta {
            key: key.clone(),
            size,
            content_type: Some(content_type.to_owned()),
            etag: out.e_tag().map(str::to_owned),
        })
    }

    async fn upload_part_bytes(&self, upload: &MultipartUpload, n: i32, data: Bytes) -> Result<CompletedPart> {
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(upload.key.as_str())
            .upload_id(&upload.upload_id)
            .part_number(n)
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
            let request = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(upload.key.as_str())
                .upload_id(&upload.upload_id)
                .set_part_number_marker(marker.clone())
                .send();
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
        Ok(ObjectMeta {
            key: key.clone(),
            size,
            content_type: Some(content_type.to_owned()),
            etag: out.e_tag().map(str::to_owned),
        })
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
                None => return self.put_bytes(key, buf.freeze(), content_type).await,
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
        let out = bounded("get", async {
            self.client
                .get_object()
                .bucket(&self.bucket)
                .key(key.as_str())
                .set_range(range.map(|r| r.header()))
                .send()
                .await
                .map_err(|e| map_err("get", key.as_str(), e))
        })
        .await?;
        let size = match out.content_range().and_then(|r| r.rsplit_once('/')).and_then(|(_, t)| t.parse().ok()) {
            Some(total) => total,
            None => out.content_length().unwrap_or_default().max(0) as u64,
        };
        let meta = ObjectMeta {
            key: key.clone(),
            size,
            content_type: out.content_type().map(str::to_owned),
            etag: out.e_tag().map(str::to_owned),
        };
        let reader = out.body.into_async_read();
        Ok(GetObject { meta, body: Box::pin(tokio_util::io::ReaderStream::with_capacity(reader, 64 * 1024)) })
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>> {
        bounded("head", async {
            match self.client.head_object().bucket(&self.bucket).key(key.as_str()).send().await {
                Ok(out) => Ok(Some(ObjectMeta {
                    key: key.clone(),
                    size: out.content_length().unwrap_or_default().max(0) as u64,
                    content_type: out.content_type().map(str::to_owned),
                    etag: out.e_tag().map(str::to_owned),
                })),
                Err(SdkError::ServiceError(e)) if e.err().is_not_found() => Ok(None),
                Err(e) => Err(map_err("head", key.as_str(), e)),
            }
        })
        .await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<()> {
        bounded("delete", async {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(key.as_str())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_err("delete", key.as_str(), e))
        })
        .await
    }

    async fn delete_prefix(&self, prefix: &KeyPrefix) -> Result<u64> {
        let mut deleted = 0u64;
        loop {
            // Always list from the start: what we deleted is gone, so the
            // next page is the remaining objects.
            let page = bounded("list", async {
                self.client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(prefix.as_str())
                    .max_keys(1000)
                    .send()
                    .await
                    .map_err(|e| map_err("list", prefix.as_str(), e))
            })
            .await?;
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
            let out = bounded("delete many", async {
                self.client
                    .delete_objects()
                    .bucket(&self.bucket)
                    .delete(delete)
                    .send()
                    .await
                    .map_err(|e| map_err("delete many", prefix.as_str(), e))
            })
            .await?;
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
        let config = presign_config(options.expires_in)?;
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(&options.content_type)
            .set_content_length(options.content_length.map(|l| l as i64))
            .presigned(config)
            .await
            .map_err(|e| map_err("presign put", key.as_str(), e))?;
        Ok(presigned(&req, options.expires_in))
    }

    async fn presign_get(&self, key: &ObjectKey, options: &PresignGet) -> Result<PresignedRequest> {
        let config = presign_config(options.expires_in)?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .set_response_content_disposition(options.download_name.as_deref().map(attachment_disposition))
            .presigned(config)
            .await
            .map_err(|e| map_err("presign get", key.as_str(), e))?;
        Ok(presigned(&req, options.expires_in))
    }

    async fn create_multipart(&self, key: &ObjectKey, content_type: &str) -> Result<MultipartUpload> {
        check_content_type(content_type)?;
        let out = bounded("create multipart", async {
            self.client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(key.as_str())
                .content_type(content_type)
                .send()
                .await
                .map_err(|e| map_err("create multipart", key.as_str(), e))
        })
        .await?;
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
        expires_in: Duration,
    ) -> Result<PresignedRequest> {
        check_part_number(part_number)?;
        let config = presign_config(expires_in)?;
        let req = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(upload.key.as_str())
            .upload_id(&upload.upload_id)
            .part_number(part_number)
            .presigned(config)
            .await
            .map_err(|e| map_err("presign part", upload.key.as_str(), e))?;
        Ok(presigned(&req, expires_in))
    }

    async fn complete_multipart(&self, upload: &MultipartUpload, parts: &[CompletedPart]) -> Result<ObjectMeta> {
        self.check_parts(upload, parts).await?;
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts.iter().map(|p| SdkPart::builder().part_number(p.part_number).e_tag(&p.etag).build()).collect(),
            ))
            .build();
        bounded("complete multipart", async {
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(upload.key.as_str())
                .upload_id(&upload.upload_id)
                .multipart_upload(completed)
                .send()
                .await
                .map_err(|e| map_err("complete multipart", upload.key.as_str(), e))
        })
        .await?;
        self.head(&upload.key).await?.ok_or_else(|| Error::Storage {
            op: "complete multipart",
            message: "the completed object is missing".into(),
            source: None,
        })
    }

    async fn abort_multipart(&self, upload: &MultipartUpload) -> Result<()> {
        bounded("abort multipart", async {
            match self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(upload.key.as_str())
                .upload_id(&upload.upload_id)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if matches!(e.code(), Some("NoSuchUpload")) => Ok(()),
                Err(e) => Err(map_err("abort multipart", upload.key.as_str(), e)),
            }
        })
        .await
    }
}
