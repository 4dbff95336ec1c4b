//! The local-filesystem backend.
//!
//! Layout under the root: `objects/{key}` holds the bytes, `meta/{key}.json`
//! the content type, `multipart/{upload}/` the parts of unfinished uploads,
//! `tmp/` files being written. Every write goes to `tmp/` first and is
//! renamed into place, so a reader never sees half an object and a crash
//! leaves only garbage in `tmp/`. Keys are validated [`ObjectKey`]s, so a
//! path can never leave the root.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::fs;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::signing::{SignedOperation, UrlSigner, VerifiedUrl};
use super::{
    ByteRange, ByteStream, CompletedPart, GetObject, KeyPrefix, MultipartUpload, ObjectKey, ObjectMeta, PresignGet,
    PresignPut, PresignedRequest, Storage, check_content_type, check_expiry, check_part_number,
};
use crate::error::{Error, Result};
use crate::error_code::ErrorCode;

/// Objects in a local directory, with HMAC-signed URLs for clients.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
    signer: Option<UrlSigner>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    content_type: Option<String>,
    etag: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct UploadInfo {
    key: ObjectKey,
    content_type: String,
}

fn not_found(key: &ObjectKey) -> Error {
    Error::not_found(ErrorCode::ObjectNotFound, format!("object {key}"))
}

fn upload_not_found(id: &str) -> Error {
    Error::not_found(ErrorCode::UploadNotFound, format!("multipart upload {id}"))
}

/// Upload ids we mint are 32 lower-case hex digits; anything else is refused
/// before it touches a path.
fn valid_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

impl LocalStorage {
    /// Storage under `root` (created if missing). Without a signer the
    /// presign methods fail; the pipeline does not need them.
    ///
    /// # Errors
    /// When the directories cannot be created.
    pub async fn open(root: impl Into<PathBuf>, signer: Option<UrlSigner>) -> Result<Self> {
        let root = root.into();
        for dir in ["objects", "meta", "multipart", "tmp"] {
            fs::create_dir_all(root.join(dir)).await.map_err(Error::io("creating the storage directory"))?;
        }
        Ok(Self { root, signer })
    }

    /// Loads the signing key kept in `root/signing-key`, creating a random
    /// one the first time (used when no key is configured).
    ///
    /// # Errors
    /// When the key file cannot be read or written.
    pub async fn load_or_create_signing_key(root: &Path) -> Result<Vec<u8>> {
        let path = root.join("signing-key");
        match fs::read(&path).await {
            Ok(k) if k.len() >= 32 => return Ok(k),
            Ok(_) | Err(_) => {}
        }
        fs::create_dir_all(root).await.map_err(Error::io("creating the storage directory"))?;
        let key: [u8; 32] = rand::random();
        let hexed = hex::encode(key).into_bytes();
        let tmp = root.join(format!("signing-key.{}", uuid::Uuid::new_v4().simple()));
        write_private(&tmp, &hexed).await?;
        fs::rename(&tmp, &path).await.map_err(Error::io("storing the signing key"))?;
        Ok(hexed)
    }

    /// The root directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The signer, if URLs can be presigned.
    #[must_use]
    pub fn signer(&self) -> Option<&UrlSigner> {
        self.signer.as_ref()
    }

    fn object_path(&self, key: &ObjectKey) -> PathBuf {
        self.root.join("objects").join(key.as_str())
    }

    fn meta_path(&self, key: &ObjectKey) -> PathBuf {
        self.root.join("meta").join(format!("{}.json", key.as_str()))
    }

    fn upload_dir(&self, upload_id: &str) -> Result<PathBuf> {
        if !valid_upload_id(upload_id) {
            return Err(upload_not_found(upload_id));
        }
        Ok(self.root.join("multipart").join(upload_id))
    }

    fn tmp_path(&self) -> PathBuf {
        self.root.join("tmp").join(uuid::Uuid::new_v4().simple().to_string())
    }

    fn signer_or_err(&self) -> Result<&UrlSigner> {
        self.signer.as_ref().ok_or_else(|| {
            Error::InvalidState("local storage has no URL signer (set PUBLIC_URL for the server)".into())
        })
    }

    /// Streams `body` into a temp file, hashing it and refusing more than
    /// `limit` bytes; returns the temp path, size and ETag.
    async fn write_tmp(&self, mut body: ByteStream, limit: Option<u64>) -> Result<(PathBuf, u64, String)> {
        let tmp = self.tmp_path();
        let result = async {
            let mut file = fs::File::create(&tmp).await.map_err(Error::io("creating a temp file"))?;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(Error::io("reading the upload"))?;
                size += chunk.len() as u64;
                if let Some(limit) = limit
                    && size > limit
                {
                    return Err(Error::TooLarge { size, limit });
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(Error::io("writing a temp file"))?;
            }
            file.sync_all().await.map_err(Error::io("syncing a temp file"))?;
            let etag = format!("\"{}\"", hex::encode(&hasher.finalize()[..16]));
            Ok((size, etag))
        }
        .await;
        match result {
            Ok((size, etag)) => Ok((tmp, size, etag)),
            Err(e) => {
                let _ = fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }

    async fn commit(
        &self,
        tmp: &Path,
        key: &ObjectKey,
        content_type: &str,
        size: u64,
        etag: String,
    ) -> Result<ObjectMeta> {
        let path = self.object_path(key);
        let meta_path = self.meta_path(key);
        for p in [&path, &meta_path] {
            if let Some(parent) = p.parent() {
                fs::create_dir_all(parent).await.map_err(Error::io("creating object directories"))?;
            }
        }
        let meta = Meta { content_type: Some(content_type.to_owned()), etag: etag.clone() };
        let meta_tmp = self.tmp_path();
        fs::write(&meta_tmp, serde_json::to_vec(&meta).expect("meta serialises"))
            .await
            .map_err(Error::io("writing object metadata"))?;
        // Metadata first: an object file never exists without its metadata.
        fs::rename(&meta_tmp, &meta_path).await.map_err(Error::io("storing object metadata"))?;
        fs::rename(tmp, &path).await.map_err(Error::io("storing an object"))?;
        Ok(ObjectMeta { key: key.clone(), size, content_type: Some(content_type.to_owned()), etag: Some(etag) })
    }

    /// Handles an upload through a verified signed URL (the server calls
    /// this for `PUT /storage/...`): enforces the signed size limit while
    /// streaming. Returns the stored object's (or part's) metadata.
    ///
    /// # Errors
    /// [`Error::TooLarge`] past the signed limit, `upload_not_found` for a
    /// part of an unknown upload, or an I/O failure; nothing is stored then.
    pub async fn accept_signed_put(&self, url: &VerifiedUrl, body: ByteStream) -> Result<ObjectMeta> {
        match &url.operation {
            SignedOperation::Put { content_type, max_size } => {
                let (tmp, size, etag) = self.write_tmp(body, *max_size).await?;
                self.commit(&tmp, &url.key, content_type, size, etag).await
            }
            SignedOperation::PutPart { upload_id, part_number, size } => {
                let upload = MultipartUpload { key: url.key.clone(), upload_id: upload_id.clone() };
                self.store_part(&upload, *part_number, body, Some(*size)).await
            }
            SignedOperation::Get { .. } => Err(Error::InvalidSignature),
        }
    }

    /// Stores one part of a multipart upload.
    ///
    /// # Errors
    /// An unknown upload (or one for another key), a bad part number, or I/O.
    pub async fn put_part(&self, upload: &MultipartUpload, part_number: i32, body: ByteStream) -> Result<ObjectMeta> {
        self.store_part(upload, part_number, body, None).await
    }

    /// [`LocalStorage::put_part`]; with `exact`, a part of another size is
    /// refused (what a presigned part URL binds) and nothing is stored.
    async fn store_part(
        &self,
        upload: &MultipartUpload,
        part_number: i32,
        body: ByteStream,
        exact: Option<u64>,
    ) -> Result<ObjectMeta> {
        check_part_number(part_number)?;
        let dir = self.upload_dir(&upload.upload_id)?;
        let info = self.upload_info(&dir, upload).await?;
        let (tmp, size, etag) = self.write_tmp(body, Some(exact.unwrap_or(5 * 1024 * 1024 * 1024))).await?;
        if let Some(exact) = exact.filter(|e| *e != size) {
            let _ = fs::remove_file(&tmp).await;
            return Err(Error::InvalidRequest(format!(
                "part {part_number} has {size} bytes; its URL is for exactly {exact}"
            )));
        }
        let part_path = dir.join(format!("{part_number:05}"));
        fs::write(dir.join(format!("{part_number:05}.etag")), etag.as_bytes())
            .await
            .map_err(Error::io("writing a part's ETag"))?;
        fs::rename(&tmp, &part_path).await.map_err(Error::io("storing a part"))?;
        Ok(ObjectMeta { key: info.key, size, content_type: None, etag: Some(etag) })
    }

    async fn upload_info(&self, dir: &Path, upload: &MultipartUpload) -> Result<UploadInfo> {
        let raw = fs::read(dir.join("upload.json")).await.map_err(|_| upload_not_found(&upload.upload_id))?;
        let info: UploadInfo = serde_json::from_slice(&raw).map_err(|_| upload_not_found(&upload.upload_id))?;
        if info.key != upload.key {
            return Err(upload_not_found(&upload.upload_id));
        }
        Ok(info)
    }

    async fn read_meta(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>> {
        let size = match fs::metadata(self.object_path(key)).await {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::Io { op: "reading object metadata", source: e }),
        };
        let meta: Option<Meta> =
            fs::read(self.meta_path(key)).await.ok().and_then(|raw| serde_json::from_slice(&raw).ok());
        Ok(Some(ObjectMeta {
            key: key.clone(),
            size,
            content_type: meta.as_ref().and_then(|m| m.content_type.clone()),
            etag: meta.map(|m| m.etag),
        }))
    }
}

async fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path).await.map_err(Error::io("creating a private file"))?;
    f.write_all(data).await.map_err(Error::io("writing a private file"))?;
    f.sync_all().await.map_err(Error::io("syncing a private file"))
}

async fn count_files(dir: PathBuf) -> u64 {
    let mut count = 0;
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        let Ok(mut rd) = fs::read_dir(&d).await else { continue };
        while let Ok(Some(entry)) = rd.next_entry().await {
            match entry.file_type().await {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(_) => count += 1,
                Err(_) => {}
            }
        }
    }
    count
}

fn file_stream(file: fs::File, len: u64) -> ByteStream {
    Box::pin(tokio_util::io::ReaderStream::with_capacity(file.take(len), 64 * 1024))
}

#[async_trait::async_trait]
impl Storage for LocalStorage {
    fn local_path(&self, key: &ObjectKey) -> Option<PathBuf> {
        Some(self.object_path(key))
    }

    async fn put_file(&self, key: &ObjectKey, path: &Path, content_type: &str) -> Result<ObjectMeta> {
        check_content_type(content_type)?;
        let file = fs::File::open(path).await.map_err(Error::io("opening the file to store"))?;
        let len = file.metadata().await.map_err(Error::io("reading the file to store"))?.len();
        self.put_stream(key, file_stream(file, len), content_type).await
    }

    async fn put_stream(&self, key: &ObjectKey, body: ByteStream, content_type: &str) -> Result<ObjectMeta> {
        check_content_type(content_type)?;
        let (tmp, size, etag) = self.write_tmp(body, None).await?;
        self.commit(&tmp, key, content_type, size, etag).await
    }

    async fn get(&self, key: &ObjectKey, range: Option<ByteRange>) -> Result<GetObject> {
        let meta = self.read_meta(key).await?.ok_or_else(|| not_found(key))?;
        let mut file = match fs::File::open(self.object_path(key)).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found(key)),
            Err(e) => return Err(Error::Io { op: "opening an object", source: e }),
        };
        let (start, len) = match range {
            None => (0, meta.size),
            Some(r) => {
                r.validate()?;
                if r.start >= meta.size {
                    return Err(Error::InvalidRequest(format!(
                        "byte range starts at {} but the object has {} bytes",
                        r.start, meta.size
                    )));
                }
                let end = r.end.map_or(meta.size - 1, |e| e.min(meta.size - 1));
                (r.start, end - r.start + 1)
            }
        };
        file.seek(std::io::SeekFrom::Start(start)).await.map_err(Error::io("seeking in an object"))?;
        Ok(GetObject { meta, body: file_stream(file, len) })
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>> {
        self.read_meta(key).await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<()> {
        for p in [self.object_path(key), self.meta_path(key)] {
            match fs::remove_file(&p).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::Io { op: "deleting an object", source: e }),
            }
        }
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &KeyPrefix) -> Result<u64> {
        // A prefix always ends in '/', so it names a directory here.
        let dir = self.root.join("objects").join(prefix.as_str().trim_end_matches('/'));
        let count = count_files(dir.clone()).await;
        for d in [dir, self.root.join("meta").join(prefix.as_str().trim_end_matches('/'))] {
            match fs::remove_dir_all(&d).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::Io { op: "deleting a prefix", source: e }),
            }
        }
        Ok(count)
    }

    async fn presign_put(&self, key: &ObjectKey, options: &PresignPut) -> Result<PresignedRequest> {
        check_expiry(options.expires_in)?;
        check_content_type(&options.content_type)?;
        let expires_at = expiry(options.expires_in);
        let op = SignedOperation::Put { content_type: options.content_type.clone(), max_size: options.content_length };
        Ok(PresignedRequest {
            method: "PUT".into(),
            url: self.signer_or_err()?.sign(key, &op, expires_at),
            headers: vec![("content-type".into(), options.content_type.clone())],
            expires_at,
        })
    }

    async fn presign_get(&self, key: &ObjectKey, options: &PresignGet) -> Result<PresignedRequest> {
        check_expiry(options.expires_in)?;
        let expires_at = expiry(options.expires_in);
        let op = SignedOperation::Get { download_name: options.download_name.clone() };
        Ok(PresignedRequest {
            method: "GET".into(),
            url: self.signer_or_err()?.sign(key, &op, expires_at),
            headers: vec![],
            expires_at,
        })
    }

    async fn create_multipart(&self, key: &ObjectKey, content_type: &str) -> Result<MultipartUpload> {
        check_content_type(content_type)?;
        let upload_id = uuid::Uuid::new_v4().simple().to_string();
        let dir = self.upload_dir(&upload_id)?;
        fs::create_dir_all(&dir).await.map_err(Error::io("creating a multipart upload"))?;
        let info = UploadInfo { key: key.clone(), content_type: content_type.to_owned() };
        fs::write(dir.join("upload.json"), serde_json::to_vec(&info).expect("serialises"))
            .await
            .map_err(Error::io("creating a multipart upload"))?;
        Ok(MultipartUpload { key: key.clone(), upload_id })
    }

    async fn presign_part(
        &self,
        upload: &MultipartUpload,
        part_number: i32,
        size: u64,
        expires_in: Duration,
    ) -> Result<PresignedRequest> {
        check_expiry(expires_in)?;
        check_part_number(part_number)?;
        self.upload_info(&self.upload_dir(&upload.upload_id)?, upload).await?;
        let expires_at = expiry(expires_in);
        let op = SignedOperation::PutPart { upload_id: upload.upload_id.clone(), part_number, size };
        Ok(PresignedRequest {
            method: "PUT".into(),
            url: self.signer_or_err()?.sign(&upload.key, &op, expires_at),
            headers: vec![],
            expires_at,
        })
    }

    async fn complete_multipart(&self, upload: &MultipartUpload, parts: &[CompletedPart]) -> Result<ObjectMeta> {
        let dir = self.upload_dir(&upload.upload_id)?;
        let info = self.upload_info(&dir, upload).await?;
        super::parts::validate_part_list(parts)?;
        let mut stored = super::parts::StoredParts::default();
        let mut sizes = Vec::with_capacity(parts.len());
        for p in parts {
            let Ok(etag) = fs::read_to_string(dir.join(format!("{:05}.etag", p.part_number))).await else {
                continue; // not uploaded: the check names it
            };
            let len = fs::metadata(dir.join(format!("{:05}", p.part_number)))
                .await
                .map_err(Error::io("reading a part"))?
                .len();
            stored.add(Some(p.part_number), Some(&etag), i64::try_from(len).ok());
            sizes.push(len);
        }
        stored.check(parts)?;
        let tmp = self.tmp_path();
        let assembled = async {
            let mut out = fs::File::create(&tmp).await.map_err(Error::io("assembling parts"))?;
            let mut hasher = Sha256::new();
            for p in parts {
                hasher.update(p.etag.trim_matches('"').as_bytes());
                let mut part = fs::File::open(dir.join(format!("{:05}", p.part_number)))
                    .await
                    .map_err(Error::io("reading a part"))?;
                tokio::io::copy(&mut part, &mut out).await.map_err(Error::io("assembling parts"))?;
            }
            out.sync_all().await.map_err(Error::io("assembling parts"))?;
            Ok::<_, Error>(format!("\"{}-{}\"", hex::encode(&hasher.finalize()[..16]), parts.len()))
        }
        .await;
        let etag = match assembled {
            Ok(etag) => etag,
            Err(e) => {
                let _ = fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        let meta = self.commit(&tmp, &upload.key, &info.content_type, sizes.iter().sum(), etag).await?;
        let _ = fs::remove_dir_all(&dir).await;
        Ok(meta)
    }

    async fn abort_multipart(&self, upload: &MultipartUpload) -> Result<()> {
        let Ok(dir) = self.upload_dir(&upload.upload_id) else { return Ok(()) };
        if self.upload_info(&dir, upload).await.is_err() {
            return Ok(());
        }
        match fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Io { op: "aborting a multipart upload", source: e }),
        }
    }
}

fn expiry(expires_in: Duration) -> OffsetDateTime {
    OffsetDateTime::now_utc() + expires_in
}
