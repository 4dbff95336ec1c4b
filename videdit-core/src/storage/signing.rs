//! HMAC-signed, expiring URLs for the local storage backend.
//!
//! The signature covers the method, the key, the expiry and every constraint
//! (content type, size limit, multipart upload id and part number, download
//! name), so changing any of them invalidates the URL. The reference server
//! serves these URLs; this module only signs and verifies.

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;
use time::OffsetDateTime;

use super::ObjectKey;
use crate::error::{Error, Result};
use crate::secret::Secret;

/// Path prefix under the server's public URL where signed URLs are served.
pub const SIGNED_PATH_PREFIX: &str = "/storage/";

const QUERY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// What a signed URL allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedOperation {
    /// Upload the whole object.
    Put {
        /// The exact content type the client must send.
        content_type: String,
        /// The most bytes the client may send.
        max_size: Option<u64>,
    },
    /// Upload one part of a multipart upload.
    PutPart {
        /// The upload.
        upload_id: String,
        /// 1-based part number.
        part_number: i32,
        /// The exact number of bytes the part must have.
        size: u64,
    },
    /// Download the object.
    Get {
        /// Suggested download file name.
        download_name: Option<String>,
    },
}

impl SignedOperation {
    fn method(&self) -> &'static str {
        match self {
            Self::Put { .. } | Self::PutPart { .. } => "PUT",
            Self::Get { .. } => "GET",
        }
    }

    fn tag(&self) -> &'static str {
        match self {
            Self::Put { .. } => "put",
            Self::PutPart { .. } => "part",
            Self::Get { .. } => "get",
        }
    }
}

/// A signed URL that passed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUrl {
    /// The object it is for.
    pub key: ObjectKey,
    /// What it allows.
    pub operation: SignedOperation,
    /// When it expires.
    pub expires_at: OffsetDateTime,
}

/// Signs and verifies local-storage URLs.
#[derive(Clone)]
pub struct UrlSigner {
    key: Secret<Vec<u8>>,
    base_url: url::Url,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner").field("base_url", &self.base_url.as_str()).finish_non_exhaustive()
    }
}

impl UrlSigner {
    /// A signer with a secret key (at least 32 bytes) that builds URLs under
    /// `base_url` (the server's public URL).
    ///
    /// # Errors
    /// A key shorter than 32 bytes or a base URL that is not http(s).
    pub fn new(key: impl Into<Vec<u8>>, base_url: url::Url) -> Result<Self> {
        let key = key.into();
        if key.len() < 32 {
            return Err(Error::InvalidRequest("the URL signing key must be at least 32 bytes".into()));
        }
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            return Err(Error::InvalidRequest(format!("{base_url} is not an http(s) base URL")));
        }
        Ok(Self { key: Secret::new(key), base_url })
    }

    fn mac(&self, method: &str, key: &str, expires: i64, op: &str, fields: [&str; 4]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.expose()).expect("HMAC takes any key length");
        mac.update(format!("videdit-url-v1\n{method}\n{op}\n{key}\n{expires}").as_bytes());
        for f in fields {
            mac.update(b"\n");
            mac.update(f.as_bytes());
        }
        mac
    }

    fn fields(op: &SignedOperation) -> [String; 4] {
        match op {
            SignedOperation::Put { content_type, max_size } => [
                content_type.clone(),
                max_size.map(|m| m.to_string()).unwrap_or_default(),
                String::new(),
                String::new(),
            ],
            SignedOperation::PutPart { upload_id, part_number, size } => {
                [String::new(), size.to_string(), upload_id.clone(), part_number.to_string()]
            }
            SignedOperation::Get { download_name } => {
                [String::new(), String::new(), String::new(), download_name.clone().unwrap_or_default()]
            }
        }
    }

    /// A URL allowing `operation` on `key` until `expires_at`.
    #[must_use]
    pub fn sign(&self, key: &ObjectKey, operation: &SignedOperation, expires_at: OffsetDateTime) -> String {
        let expires = expires_at.unix_timestamp();
        let f = Self::fields(operation);
        let sig = self
            .mac(operation.method(), key.as_str(), expires, operation.tag(), [&f[0], &f[1], &f[2], &f[3]])
            .finalize()
            .into_bytes();
        let mut query = format!("op={}&exp={expires}", operation.tag());
        for (name, value) in [("ct", &f[0]), ("max", &f[1]), ("upload", &f[2]), ("part", &f[3])] {
            if !value.is_empty() {
                query.push_str(&format!("&{name}={}", utf8_percent_encode(value, QUERY)));
            }
        }
        if let SignedOperation::Get { download_name: Some(n) } = operation {
            query.push_str(&format!("&name={}", utf8_percent_encode(n, QUERY)));
        }
        query.push_str(&format!("&sig={}", hex::encode(sig)));
        let base = self.base_url.as_str().trim_end_matches('/');
        format!("{base}{SIGNED_PATH_PREFIX}{}?{query}", key.as_str())
    }

    /// Checks a request against its signed URL.
    ///
    /// `path` is the request path (`/storage/orgs/…`), `query` the raw query
    /// string, `content_type` the request's `Content-Type` header.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] when anything signed was changed or the
    /// method differs, [`Error::UrlExpired`] past the expiry,
    /// [`Error::ContentTypeMismatch`] for an upload with another content type.
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        query: &str,
        content_type: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<VerifiedUrl> {
        let base_path = self.base_url.path().trim_end_matches('/');
        let key = path
            .strip_prefix(base_path)
            .and_then(|p| p.strip_prefix(SIGNED_PATH_PREFIX))
            .ok_or(Error::InvalidSignature)?;
        let key = ObjectKey::parse(key).map_err(|_| Error::InvalidSignature)?;

        let mut q: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if q.insert(k.into_owned(), v.into_owned()).is_some() {
                return Err(Error::InvalidSignature); // repeated parameters are never ours
            }
        }
        let get = |name: &str| q.get(name).cloned().unwrap_or_default();
        let expires: i64 = get("exp").parse().map_err(|_| Error::InvalidSignature)?;
        let sig = hex::decode(get("sig")).map_err(|_| Error::InvalidSignature)?;
        let operation = match get("op").as_str() {
            "put" => SignedOperation::Put {
                content_type: get("ct"),
                max_size: match get("max").as_str() {
                    "" => None,
                    m => Some(m.parse().map_err(|_| Error::InvalidSignature)?),
                },
            },
            "part" => SignedOperation::PutPart {
                upload_id: get("upload"),
                part_number: get("part").parse().map_err(|_| Error::InvalidSignature)?,
                size: get("max").parse().map_err(|_| Error::InvalidSignature)?,
            },
            "get" => SignedOperation::Get { download_name: q.get("name").cloned() },
            _ => return Err(Error::InvalidSignature),
        };
        let f = Self::fields(&operation);
        // The method is part of what is signed: a PUT URL used for GET fails here.
        let signed_method = if method.eq_ignore_ascii_case("HEAD") { "GET" } else { method };
        self.mac(
            &signed_method.to_ascii_uppercase(),
            key.as_str(),
            expires,
            operation.tag(),
            [&f[0], &f[1], &f[2], &f[3]],
        )
        .verify_slice(&sig)
        .map_err(|_| Error::InvalidSignature)?;

        if now.unix_timestamp() > expires {
            return Err(Error::UrlExpired);
        }
        if let SignedOperation::Put { content_type: expected, .. } = &operation {
            let got = content_type.unwrap_or("");
            if !got.eq_ignore_ascii_case(expected) {
                return Err(Error::ContentTypeMismatch { expected: expected.clone(), got: got.to_owned() });
            }
        }
        let expires_at = OffsetDateTime::from_unix_timestamp(expires).map_err(|_| Error::InvalidSignature)?;
        Ok(VerifiedUrl { key, operation, expires_at })
    }
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;
    use crate::id::{OrgId, VideoId};

    fn signer() -> UrlSigner {
        UrlSigner::new(vec![7u8; 32], "http://127.0.0.1:8080/base/".parse().unwrap()).unwrap()
    }

    fn split(url: &str) -> (String, String) {
        let u = url::Url::parse(url).unwrap();
        (u.path().to_owned(), u.query().unwrap_or("").to_owned())
    }

    fn put_url(s: &UrlSigner, key: &ObjectKey, exp: OffsetDateTime) -> String {
        s.sign(key, &SignedOperation::Put { content_type: "video/mp4".into(), max_size: Some(1000) }, exp)
    }

    #[test]
    fn valid_put_verifies() {
        let s = signer();
        let key = ObjectKey::video_source(OrgId::new(), VideoId::new(), "a.mp4");
        let now = OffsetDateTime::now_utc();
        let url = put_url(&s, &key, now + Duration::minutes(5));
        assert!(url.starts_with("http://127.0.0.1:8080/base/storage/orgs/"));
        let (path, query) = split(&url);
        let v = s.verify("PUT", &path, &query, Some("video/mp4"), now).unwrap();
        assert_eq!(v.key, key);
        assert_eq!(v.operation, SignedOperation::Put { content_type: "video/mp4".into(), max_size: Some(1000) });
    }

    #[test]
    fn tampering_is_refused() {
        let s = signer();
        let key = ObjectKey::video_source(OrgId::new(), VideoId::new(), "a.mp4");
        let now = OffsetDateTime::now_utc();
        let (path, query) = split(&put_url(&s, &key, now + Duration::minutes(5)));
        let other_key = ObjectKey::video_source(OrgId::new(), VideoId::new(), "a.mp4");
        let tampered = [
            (format!("/base/storage/{other_key}"), query.clone()),
            (path.clone(), query.replace("max=1000", "max=100000")),
            (path.clone(), query.replace("exp=", "exp=9")),
            (path.clone(), query.replace("op=put", "op=get")),
            (path.clone(), format!("{query}&max=5")),
            (path.clone(), query.split("&sig=").next().unwrap().to_owned()),
            (path.clone(), query.replace("sig=", "sig=00")),
        ];
        for (p, q) in tampered {
            let err = s.verify("PUT", &p, &q, Some("video/mp4"), now).unwrap_err();
            assert!(matches!(err, Error::InvalidSignature), "{p}?{q}: {err}");
        }
        // Another key signs differently.
        let s2 = UrlSigner::new(vec![8u8; 32], "http://127.0.0.1:8080/base/".parse().unwrap()).unwrap();
        assert!(matches!(s2.verify("PUT", &path, &query, Some("video/mp4"), now), Err(Error::InvalidSignature)));
    }

    #[test]
    fn expired_wrong_method_and_wrong_content_type() {
        let s = signer();
        let key = ObjectKey::video_source(OrgId::new(), VideoId::new(), "a.mp4");
        let now = OffsetDateTime::now_utc();
        let (path, query) = split(&put_url(&s, &key, now - Duration::seconds(1)));
        assert!(matches!(s.verify("PUT", &path, &query, Some("video/mp4"), now), Err(Error::UrlExpired)));

        let (path, query) = split(&put_url(&s, &key, now + Duration::minutes(1)));
        assert!(matches!(s.verify("GET", &path, &query, None, now), Err(Error::InvalidSignature)));
        assert!(matches!(s.verify("POST", &path, &query, Some("video/mp4"), now), Err(Error::InvalidSignature)));
        let err = s.verify("PUT", &path, &query, Some("text/html"), now).unwrap_err();
        assert!(
            matches!(&err, Error::ContentTypeMismatch { expected, got } if expected == "video/mp4" && got == "text/html")
        );
        assert!(matches!(s.verify("PUT", &path, &query, None, now), Err(Error::ContentTypeMismatch { .. })));
    }

    #[test]
    fn get_and_part_urls() {
        let s = signer();
        let key = ObjectKey::video_source(OrgId::new(), VideoId::new(), "a.mp4");
        let now = OffsetDateTime::now_utc();
        let op = SignedOperation::Get { download_name: Some("My \"talk\".mp4".into()) };
        let (path, query) = split(&s.sign(&key, &op, now + Duration::minutes(1)));
        assert_eq!(s.verify("GET", &path, &query, None, now).unwrap().operation, op);
        assert_eq!(s.verify("HEAD", &path, &query, None, now).unwrap().operation, op);
        assert!(s.verify("PUT", &path, &query, Some("video/mp4"), now).is_err());

        let op = SignedOperation::PutPart { upload_id: "abc".into(), part_number: 3, size: 5_000_000 };
        let (path, query) = split(&s.sign(&key, &op, now + Duration::minutes(1)));
        assert_eq!(s.verify("PUT", &path, &query, Some("application/octet-stream"), now).unwrap().operation, op);
        let q = query.replace("part=3", "part=4");
        assert!(matches!(s.verify("PUT", &path, &q, None, now), Err(Error::InvalidSignature)));
        let q = query.replace("max=5000000", "max=6000000");
        assert!(matches!(s.verify("PUT", &path, &q, None, now), Err(Error::InvalidSignature)), "the size is signed");
    }

    #[test]
    fn refuses_short_keys_and_traversal_paths() {
        assert!(UrlSigner::new(vec![1u8; 31], "http://x/".parse().unwrap()).is_err());
        let s = signer();
        let now = OffsetDateTime::now_utc();
        assert!(s.verify("GET", "/base/storage/../../etc/passwd", "op=get&exp=9999999999&sig=00", None, now).is_err());
    }
}
