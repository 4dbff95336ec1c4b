//! Object storage: one [`Storage`] trait, a local-filesystem backend (the
//! embedded default) and an S3-compatible backend (feature `s3`).
//!
//! Both backends pass the same conformance suite (`tests/storage.rs`).
//! Presigned URLs let clients upload and download without the bytes passing
//! through our server; the local backend signs its own URLs with HMAC so
//! that uploads work without S3 (the reference server serves them).

mod key;
mod local;
mod parts;
#[cfg(feature = "s3")]
mod s3;
mod signing;

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use time::OffsetDateTime;

pub use key::{InvalidKey, KeyPrefix, MAX_KEY_LEN, ObjectKey, safe_extension};
pub use local::LocalStorage;
#[cfg(feature = "s3")]
pub use s3::S3Storage;
pub use signing::{SignedOperation, UrlSigner, VerifiedUrl};

use crate::error::Result;

/// A stream of bytes from or to storage.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Longest validity of a presigned URL (S3's own limit).
pub const MAX_PRESIGN_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// S3's smallest part size for every part but the last.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// Highest part number of a multipart upload.
pub const MAX_PARTS: i32 = 10_000;

/// What storage knows about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Its key.
    pub key: ObjectKey,
    /// Size in bytes.
    pub size: u64,
    /// Content type, when recorded.
    pub content_type: Option<String>,
    /// Entity tag, when the backend has one.
    pub etag: Option<String>,
}

/// A byte range, both ends inclusive like HTTP's `Range: bytes=a-b`; an open
/// end means to the end of the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte, inclusive.
    pub end: Option<u64>,
}

impl ByteRange {
    /// `start..=end`.
    #[must_use]
    pub const fn new(start: u64, end: u64) -> Self {
        Self { start, end: Some(end) }
    }

    /// From `start` to the end.
    #[must_use]
    pub const fn from(start: u64) -> Self {
        Self { start, end: None }
    }

    /// The HTTP header value.
    #[must_use]
    pub fn header(&self) -> String {
        match self.end {
            Some(end) => format!("bytes={}-{end}", self.start),
            None => format!("bytes={}-", self.start),
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        match self.end {
            Some(end) if end < self.start => {
                Err(crate::Error::InvalidRequest(format!("byte range {}-{end} ends before it starts", self.start)))
            }
            _ => Ok(()),
        }
    }
}

/// An object being read.
pub struct GetObject {
    /// Its metadata (size is of the whole object).
    pub meta: ObjectMeta,
    /// The bytes (of the range, when one was asked for).
    pub body: ByteStream,
}

impl std::fmt::Debug for GetObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetObject").field("meta", &self.meta).finish_non_exhaustive()
    }
}

/// Options of a presigned upload.
#[derive(Debug, Clone)]
pub struct PresignPut {
    /// How long the URL is valid.
    pub expires_in: Duration,
    /// The exact content type the client must send.
    pub content_type: String,
    /// The exact size the client must send (S3 signs `Content-Length`) or,
    /// for the local backend, the most it may send.
    pub content_length: Option<u64>,
}

/// Options of a presigned download.
#[derive(Debug, Clone, Default)]
pub struct PresignGet {
    /// How long the URL is valid.
    pub expires_in: Duration,
    /// Suggested file name (`Content-Disposition: attachment`).
    pub download_name: Option<String>,
}

/// A presigned HTTP request for a client to make.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PresignedRequest {
    /// `PUT` or `GET`.
    pub method: String,
    /// The full URL.
    pub url: String,
    /// Headers the client must send exactly as given.
    pub headers: Vec<(String, String)>,
    /// When the URL stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartUpload {
    /// The object it will become.
    pub key: ObjectKey,
    /// The backend's upload id.
    pub upload_id: String,
}

/// One uploaded part, as the client reports it on completion.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CompletedPart {
    /// 1-based part number.
    pub part_number: i32,
    /// The `ETag` header the part upload returned.
    pub etag: String,
}

/// Object storage.
///
/// Every method takes validated [`ObjectKey`]s built by the key functions;
/// no method accepts a raw client-chosen key.
#[async_trait::async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// The object as a file on this machine, when the backend keeps it as
    /// one (local storage): workers read it directly instead of through a
    /// presigned URL. `None` for remote backends.
    fn local_path(&self, _key: &ObjectKey) -> Option<std::path::PathBuf> {
        None
    }

    /// Stores a local file.
    ///
    /// # Errors
    /// I/O or backend failures.
    async fn put_file(&self, key: &ObjectKey, path: &std::path::Path, content_type: &str) -> Result<ObjectMeta>;

    /// Stores a stream of unknown length (buffered in bounded parts).
    ///
    /// # Errors
    /// Stream errors or backend failures; nothing is left under `key` then.
    async fn put_stream(&self, key: &ObjectKey, body: ByteStream, content_type: &str) -> Result<ObjectMeta>;

    /// Reads an object, or a byte range of it.
    ///
    /// # Errors
    /// `object_not_found`, a bad range, or backend failures.
    async fn get(&self, key: &ObjectKey, range: Option<ByteRange>) -> Result<GetObject>;

    /// Metadata, or `None` when there is no such object.
    ///
    /// # Errors
    /// Backend failures.
    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>>;

    /// Deletes an object; deleting a missing object succeeds.
    ///
    /// # Errors
    /// Backend failures.
    async fn delete(&self, key: &ObjectKey) -> Result<()>;

    /// Deletes every object under a prefix; returns how many were deleted.
    ///
    /// # Errors
    /// Backend failures (some objects may be gone already; call again).
    async fn delete_prefix(&self, prefix: &KeyPrefix) -> Result<u64>;

    /// A URL the client can `PUT` the object to.
    ///
    /// # Errors
    /// An expiry over [`MAX_PRESIGN_EXPIRY`] or an empty content type.
    async fn presign_put(&self, key: &ObjectKey, options: &PresignPut) -> Result<PresignedRequest>;

    /// A URL the client can `GET` the object from.
    ///
    /// # Errors
    /// An expiry over [`MAX_PRESIGN_EXPIRY`].
    async fn presign_get(&self, key: &ObjectKey, options: &PresignGet) -> Result<PresignedRequest>;

    /// Starts a multipart upload.
    ///
    /// # Errors
    /// Backend failures.
    async fn create_multipart(&self, key: &ObjectKey, content_type: &str) -> Result<MultipartUpload>;

    /// A URL the client can `PUT` one part of exactly `size` bytes to (the
    /// size is bound by the signature: another `Content-Length` is refused).
    ///
    /// # Errors
    /// A part number outside `1..=10000` or a bad expiry.
    async fn presign_part(
        &self,
        upload: &MultipartUpload,
        part_number: i32,
        size: u64,
        expires_in: Duration,
    ) -> Result<PresignedRequest>;

    /// Assembles the parts into the object.
    ///
    /// # Errors
    /// Missing or mismatched parts, parts out of order, a part smaller than
    /// [`MIN_PART_SIZE`] that is not the last, or an unknown upload.
    async fn complete_multipart(&self, upload: &MultipartUpload, parts: &[CompletedPart]) -> Result<ObjectMeta>;

    /// Abandons a multipart upload and frees its parts; aborting an unknown
    /// or finished upload succeeds.
    ///
    /// # Errors
    /// Backend failures.
    async fn abort_multipart(&self, upload: &MultipartUpload) -> Result<()>;
}

pub(crate) fn check_expiry(expires_in: Duration) -> Result<()> {
    if expires_in.is_zero() || expires_in > MAX_PRESIGN_EXPIRY {
        return Err(crate::Error::InvalidRequest(format!(
            "presigned URL expiry must be between 1 s and 7 days, got {} s",
            expires_in.as_secs()
        )));
    }
    Ok(())
}

pub(crate) fn check_part_number(part_number: i32) -> Result<()> {
    if !(1..=MAX_PARTS).contains(&part_number) {
        return Err(crate::Error::InvalidRequest(format!("part number {part_number} is outside 1..=10000")));
    }
    Ok(())
}

pub(crate) fn check_content_type(content_type: &str) -> Result<()> {
    let ok = !content_type.is_empty()
        && content_type.len() <= 255
        && content_type.contains('/')
        && content_type.bytes().all(|c| c.is_ascii_graphic() || c == b' ');
    if ok { Ok(()) } else { Err(crate::Error::InvalidRequest(format!("invalid content type {content_type:?}"))) }
}

/// A `Content-Disposition` value that offers `name` as the download name,
/// with non-ASCII characters replaced and quotes removed.
#[must_use]
pub fn attachment_disposition(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
        .take(200)
        .collect();
    format!("attachment; filename=\"{clean}\"")
}

/// A whole (small) object in memory: recipes, loudness features.
///
/// # Errors
/// `object_not_found`, backend and I/O failures.
pub async fn read_all(storage: &dyn Storage, key: &ObjectKey) -> Result<Vec<u8>> {
    use futures_util::TryStreamExt as _;
    let got = storage.get(key, None).await?;
    let chunks: Vec<Bytes> = got.body.try_collect().await.map_err(crate::Error::io("reading an object"))?;
    Ok(chunks.concat())
}

/// A stream over an in-memory buffer (tests, small objects).
#[must_use]
pub fn bytes_stream(data: impl Into<Bytes>) -> ByteStream {
    let data = data.into();
    Box::pin(futures_util::stream::once(async move { Ok(data) }))
}
