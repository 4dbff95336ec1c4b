//! Pictures an organisation gives once for all its renders: the background
//! of its audiograms (the shorts of audio-only sources).
//!
//! A picture is hostile input like any upload: it is taken only as PNG or
//! JPEG, at most [`MAX_IMAGE_BYTES`], with sides of [`MIN_SIDE`] to
//! [`MAX_SIDE`] pixels read from its own header (the declared content type
//! must agree with the bytes). The renderer opens it again with only the
//! file protocol and the still-image demuxers, and a worker that cannot
//! decode it renders without it (see the `render` job).
//!
//! Every upload is a new object (its key holds the picture's hash and a
//! unique suffix): replacing a picture writes the new object, switches the
//! row in a transaction that holds the organisation's row lock (so two
//! changes of one organisation's picture never interleave), then deletes
//! the object the old row named. A render never reads half of one picture
//! and half of another, and no row ever names an object that was deleted.

use std::path::{Path, PathBuf};

use sha2::Digest as _;
use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
use videdit_core::storage::{ObjectKey, Storage, bytes_stream, read_all};
use videdit_core::{ErrorCode, OrgId};

use crate::{Error, Result};

/// Largest picture taken, in bytes.
pub const MAX_IMAGE_BYTES: usize = 8 * 1024 * 1024;
/// Shortest side taken, in pixels.
pub const MIN_SIDE: u32 = 16;
/// Longest side taken, in pixels.
pub const MAX_SIDE: u32 = 8192;

/// What a picture is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// Blurred behind the waveform of every audiogram of the organisation
    /// (in place of a file's own cover art).
    AudiogramBackground,
}

impl ImageKind {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AudiogramBackground => "audiogram_background",
        }
    }

    const fn key_name(self) -> &'static str {
        match self {
            Self::AudiogramBackground => "audiogram-background",
        }
    }
}

/// A picture's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// PNG.
    Png,
    /// JPEG (baseline or progressive).
    Jpeg,
}

impl ImageFormat {
    /// The media type.
    #[must_use]
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
        }
    }

    const fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
        }
    }

    fn from_content_type(essence: &str) -> Option<Self> {
        match essence {
            "image/png" => Some(Self::Png),
            "image/jpeg" => Some(Self::Jpeg),
            _ => None,
        }
    }
}

/// A stored picture.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OrgImage {
    /// Where it is stored (never sent to clients).
    pub object_key: String,
    /// `image/png` or `image/jpeg`.
    pub content_type: String,
    /// Its size in bytes.
    pub size_bytes: i64,
    /// Width in pixels.
    pub width: i32,
    /// Height in pixels.
    pub height: i32,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// When it was set.
    pub updated_at: OffsetDateTime,
}

/// The format and size a picture's header declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inspected {
    /// The format.
    pub format: ImageFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::InvalidImage, message)
}

/// Reads a picture's format and size from its header, and checks them
/// against the limits and the content type it was sent as (`image/png`,
/// `image/jpeg`, or `application/octet-stream` or none to go by the bytes).
///
/// # Errors
/// 422 `invalid_image`: not a PNG or JPEG, a header that does not parse,
/// another content type, sides outside the limits; 400
/// `content_type_mismatch` when the bytes are not the type they were sent
/// as; 413 `request_too_large` over [`MAX_IMAGE_BYTES`].
pub fn inspect(bytes: &[u8], content_type: Option<&str>) -> Result<Inspected> {
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(Error::new(ErrorCode::RequestTooLarge, format!("a picture has at most {MAX_IMAGE_BYTES} bytes")));
    }
    let essence = content_type.map(|t| t.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    let declared = match essence.as_deref() {
        None | Some("application/octet-stream") => None,
        Some(t) => Some(ImageFormat::from_content_type(t).ok_or_else(|| {
            invalid(format!("a picture is sent as image/png, image/jpeg or application/octet-stream, not {t:?}"))
        })?),
    };
    let (format, width, height) = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        let (w, h) = png_size(bytes).ok_or_else(|| invalid("the PNG's header does not parse"))?;
        (ImageFormat::Png, w, h)
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        let (w, h) = jpeg_size(bytes).ok_or_else(|| invalid("the JPEG has no frame header"))?;
        (ImageFormat::Jpeg, w, h)
    } else {
        return Err(invalid("the bytes are neither a PNG nor a JPEG"));
    };
    if let Some(declared) = declared.filter(|d| *d != format) {
        return Err(Error::new(
            ErrorCode::ContentTypeMismatch,
            format!("the body is {} but was sent as {}", format.content_type(), declared.content_type()),
        ));
    }
    for side in [width, height] {
        if !(MIN_SIDE..=MAX_SIDE).contains(&side) {
            return Err(invalid(format!(
                "the picture is {width}×{height}; each side must be {MIN_SIDE} to {MAX_SIDE} pixels"
            )));
        }
    }
    Ok(Inspected { format, width, height })
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Width and height from the `IHDR` chunk, which must come first.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let ihdr = bytes.get(8..8 + 8 + 13)?;
    (be32(&ihdr[0..4]) == 13 && &ihdr[4..8] == b"IHDR").then(|| (be32(&ihdr[8..12]), be32(&ihdr[12..16])))
}

/// Width and height from the first start-of-frame segment, walking the
/// segments from the start (never past the first scan).
fn jpeg_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut i = 2;
    loop {
        // Markers may be padded with fill bytes.
        while *bytes.get(i)? == 0xff && *bytes.get(i + 1)? == 0xff {
            i += 1;
        }
        if *bytes.get(i)? != 0xff {
            return None;
        }
        let marker = *bytes.get(i + 1)?;
        i += 2;
        match marker {
            // Standalone markers carry no length.
            0x01 | 0xd0..=0xd7 => continue,
            // The first scan or the end: no frame header came before.
            0xd9 | 0xda => return None,
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([*bytes.get(i)?, *bytes.get(i + 1)?]));
        if len < 2 {
            return None;
        }
        // SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC).
        if matches!(marker, 0xc0..=0xcf) && !matches!(marker, 0xc4 | 0xc8 | 0xcc) {
            let sof = bytes.get(i + 2..i + 7)?;
            let height = u32::from(u16::from_be_bytes([sof[1], sof[2]]));
            let width = u32::from(u16::from_be_bytes([sof[3], sof[4]]));
            return Some((width, height));
        }
        i += len;
    }
}

const COLUMNS: &str = "object_key, content_type, size_bytes, width, height, sha256, updated_at";

/// The organisation's picture of this kind, if it has one.
///
/// # Errors
/// Database failures.
pub async fn find(db: impl PgExecutor<'_>, org: OrgId, kind: ImageKind) -> Result<Option<OrgImage>> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM videdit.org_images WHERE org_id = $1 AND kind = $2"))
        .bind(org)
        .bind(kind.as_str())
        .fetch_optional(db)
        .await?)
}

/// The organisation's picture of this kind.
///
/// # Errors
/// 404 `image_not_found`; database failures.
pub async fn get(db: impl PgExecutor<'_>, org: OrgId, kind: ImageKind) -> Result<OrgImage> {
    find(db, org, kind)
        .await?
        .ok_or_else(|| Error::new(ErrorCode::ImageNotFound, format!("the organisation has no {}", kind.key_name())))
}

fn stored_key(image: &OrgImage) -> Result<ObjectKey> {
    ObjectKey::parse(image.object_key.clone()).map_err(|e| Error::new(ErrorCode::Internal, e.to_string()))
}

/// Sets (or replaces) the organisation's picture of this kind: checks it
/// ([`inspect`]), stores it as a new object, switches the row and deletes
/// the object it replaces.
///
/// # Errors
/// As [`inspect`]; storage and database failures (the new object is
/// removed again when the row could not be written).
pub async fn put(
    pool: &PgPool,
    storage: &dyn Storage,
    org: OrgId,
    kind: ImageKind,
    content_type: Option<&str>,
    bytes: Vec<u8>,
) -> Result<OrgImage> {
    let seen = inspect(&bytes, content_type)?;
    let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
    let unique = format!("{}-{}", &sha256[..16], uuid::Uuid::now_v7().simple());
    let key = ObjectKey::org_image(org, kind.key_name(), &unique, seen.format.extension())
        .map_err(|e| Error::new(ErrorCode::Internal, e.to_string()))?;
    let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
    storage.put_stream(&key, bytes_stream(bytes), seen.format.content_type()).await?;
    let switched = async {
        let mut tx = pool.begin().await?;
        lock_org(&mut tx, org).await?;
        let before: Option<String> =
            sqlx::query_scalar("SELECT object_key FROM videdit.org_images WHERE org_id = $1 AND kind = $2 FOR UPDATE")
                .bind(org)
                .bind(kind.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let image: OrgImage = sqlx::query_as(&format!(
            "INSERT INTO videdit.org_images (org_id, kind, object_key, content_type, size_bytes, width, height, sha256)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (org_id, kind) DO UPDATE SET object_key = EXCLUDED.object_key,
                 content_type = EXCLUDED.content_type, size_bytes = EXCLUDED.size_bytes, width = EXCLUDED.width,
                 height = EXCLUDED.height, sha256 = EXCLUDED.sha256, updated_at = now()
             RETURNING {COLUMNS}"
        ))
        .bind(org)
        .bind(kind.as_str())
        .bind(key.as_str())
        .bind(seen.format.content_type())
        .bind(size)
        .bind(i32::try_from(seen.width).unwrap_or(i32::MAX))
        .bind(i32::try_from(seen.height).unwrap_or(i32::MAX))
        .bind(&sha256)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok::<_, Error>((before, image))
    }
    .await;
    match switched {
        Ok((before, image)) => {
            if let Some(old) = before.filter(|old| *old != image.object_key) {
                remove_object(storage, &old).await;
            }
            Ok(image)
        }
        Err(e) => {
            // No row names the new object: it is this call's alone.
            remove_object(storage, key.as_str()).await;
            Err(e)
        }
    }
}

async fn remove_object(storage: &dyn Storage, key: &str) {
    let Ok(key) = ObjectKey::parse(key.to_owned()) else { return };
    if let Err(e) = storage.delete(&key).await {
        // No row names it any more: left behind, it costs its bytes and nothing else.
        tracing::warn!(error = %e, "a picture no longer in use could not be deleted");
    }
}

/// Serialises the changes of one organisation's pictures (a first picture
/// has no row of its own to lock).
async fn lock_org(tx: &mut sqlx::PgConnection, org: OrgId) -> Result<()> {
    sqlx::query("SELECT 1 FROM videdit.organizations WHERE id = $1 FOR UPDATE").bind(org).execute(tx).await?;
    Ok(())
}

/// Removes the organisation's picture of this kind.
///
/// # Errors
/// 404 `image_not_found`; database failures.
pub async fn delete(pool: &PgPool, storage: &dyn Storage, org: OrgId, kind: ImageKind) -> Result<()> {
    let mut tx = pool.begin().await?;
    lock_org(&mut tx, org).await?;
    let key: Option<String> =
        sqlx::query_scalar("DELETE FROM videdit.org_images WHERE org_id = $1 AND kind = $2 RETURNING object_key")
            .bind(org)
            .bind(kind.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    tx.commit().await?;
    let key = key
        .ok_or_else(|| Error::new(ErrorCode::ImageNotFound, format!("the organisation has no {}", kind.key_name())))?;
    remove_object(storage, &key).await;
    Ok(())
}

/// Copies `image`, the organisation's picture of this kind as [`find`]
/// read it, into `dir` for a render (`None`: it was removed meanwhile). A
/// picture replaced between reading its row and reading its object is
/// looked up again once.
///
/// # Errors
/// Storage and database failures.
pub async fn download(
    pool: &PgPool,
    storage: &dyn Storage,
    org: OrgId,
    kind: ImageKind,
    image: OrgImage,
    dir: &Path,
) -> Result<Option<PathBuf>> {
    let mut image = Some(image);
    for _ in 0..2 {
        let Some(image) = (match image.take() {
            Some(read) => Some(read),
            None => find(pool, org, kind).await?,
        }) else {
            return Ok(None);
        };
        let bytes = match read_all(storage, &stored_key(&image)?).await {
            Ok(b) => b,
            Err(e) if e.code() == ErrorCode::ObjectNotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let ext = ImageFormat::from_content_type(&image.content_type).unwrap_or(ImageFormat::Jpeg).extension();
        let path = dir.join(format!("{}.{ext}", kind.key_name()));
        tokio::fs::write(&path, bytes)
            .await
            .map_err(|e| Error::new(ErrorCode::Internal, format!("writing the {}: {e}", kind.key_name())))?;
        return Ok(Some(path));
    }
    tracing::warn!(%org, "the picture's object was missing twice; rendering without it");
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        b.extend(w.to_be_bytes());
        b.extend(h.to_be_bytes());
        b.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
        b
    }

    fn jpeg(w: u16, h: u16, sof: u8) -> Vec<u8> {
        let mut b = vec![0xff, 0xd8, 0xff, 0xe0, 0, 4, b'J', b'F', 0xff, 0xff, 0xc4, 0, 3, 0];
        b.extend([0xff, sof, 0, 11, 8]);
        b.extend(h.to_be_bytes());
        b.extend(w.to_be_bytes());
        b.extend([1, 1, 0x11, 0, 0xff, 0xda]);
        b
    }

    #[test]
    fn headers_give_the_format_and_size() {
        for t in [Some("image/png"), Some("application/octet-stream"), None] {
            let seen = inspect(&png(1080, 1920), t).unwrap();
            assert_eq!((seen.format, seen.width, seen.height), (ImageFormat::Png, 1080, 1920));
        }
        for sof in [0xc0, 0xc2] {
            let seen = inspect(&jpeg(640, 480, sof), Some("Image/JPEG; q=1")).unwrap();
            assert_eq!((seen.format, seen.width, seen.height), (ImageFormat::Jpeg, 640, 480));
        }
    }

    #[test]
    fn what_is_not_a_picture_we_take_is_refused_with_its_code() {
        let code = |b: &[u8], t: &str| inspect(b, Some(t)).unwrap_err().code();
        assert_eq!(code(b"GIF89a......", "image/png"), ErrorCode::InvalidImage);
        assert_eq!(code(&png(100, 100), "image/gif"), ErrorCode::InvalidImage);
        assert_eq!(code(&png(100, 100), "image/jpeg"), ErrorCode::ContentTypeMismatch);
        assert_eq!(code(&png(100, 100)[..20], "image/png"), ErrorCode::InvalidImage);
        assert_eq!(code(&png(9000, 100), "image/png"), ErrorCode::InvalidImage);
        assert_eq!(code(&png(100, 8), "image/png"), ErrorCode::InvalidImage);
        // A JPEG whose scan starts before any frame header, or that is cut.
        let mut no_frame = jpeg(100, 100, 0xc0);
        no_frame.drain(14..27);
        assert_eq!(code(&no_frame, "image/jpeg"), ErrorCode::InvalidImage);
        assert_eq!(code(&jpeg(100, 100, 0xc0)[..16], "image/jpeg"), ErrorCode::InvalidImage);
        assert_eq!(code(&vec![0; MAX_IMAGE_BYTES + 1], "image/png"), ErrorCode::RequestTooLarge);
    }
}
