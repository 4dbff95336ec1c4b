//! Secrets at rest: values the server must read back (webhook signing
//! secrets, platform OAuth tokens) are stored sealed with an AEAD, never in
//! the clear.
//!
//! A [`Keyring`] holds named 256-bit keys: the first seals, every one opens,
//! so keys rotate by putting a new one first and keeping the old one until
//! every value has been sealed again ([`Keyring::needs_reseal`]). A sealed
//! value is text, `v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`, with
//! XChaCha20-Poly1305 and a random 192-bit nonce (no nonce bookkeeping).
//! The caller's `context` (for example `webhook_endpoint:<id>:secret`) is
//! bound as associated data, so a sealed value copied to another row or
//! column does not open there.
//!
//! ```
//! use videdit_core::sealed::Keyring;
//!
//! let ring = Keyring::parse("k2:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
//! let sealed = ring.seal(b"whsec_abc", "webhook:1:secret");
//! assert!(sealed.starts_with("v1.k2."));
//! assert_eq!(ring.open(&sealed, "webhook:1:secret").unwrap().expose(), b"whsec_abc");
//! assert!(ring.open(&sealed, "webhook:2:secret").is_err());
//! ```

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::Secret;

/// The key id of [`Keyring::development`]; refused in production.
pub const DEVELOPMENT_KEY_ID: &str = "dev";

const VERSION: &str = "v1";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Why a keyring setting or a sealed value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The keyring setting is malformed.
    #[error("{0}")]
    InvalidKeyring(String),
    /// The value is not `v1.<key id>.<data>`.
    #[error("the stored value is not a sealed value")]
    Malformed,
    /// No key of the ring has the value's key id (a key was removed too soon).
    #[error("no key with id `{0}` in the keyring")]
    UnknownKey(String),
    /// The value was changed, or sealed for another context.
    #[error("the sealed value does not open with its key and context")]
    Tampered,
}

struct NamedKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// Named sealing keys: the first seals, all open. Debug prints ids only.
pub struct Keyring {
    keys: Vec<NamedKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("key_ids", &self.key_ids().collect::<Vec<_>>()).finish()
    }
}

impl Keyring {
    /// Parses `id:base64key[,id:base64key…]`: each key 32 bytes in standard
    /// base64 (`openssl rand -base64 32`), ids of letters, digits, `-` and
    /// `_`, unique. The first key seals.
    ///
    /// # Errors
    /// [`SealError::InvalidKeyring`] naming the entry at fault (never the key).
    pub fn parse(setting: &str) -> Result<Self, SealError> {
        let invalid = |m: String| SealError::InvalidKeyring(m);
        let mut keys: Vec<NamedKey> = Vec::new();
        for (n, entry) in setting.split(',').map(str::trim).enumerate() {
            let Some((id, b64)) = entry.split_once(':') else {
                return Err(invalid(format!("key {} is not `id:base64key`", n + 1)));
            };
            if id.is_empty()
                || id.len() > 32
                || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid(format!("key {}: the id must be 1-32 letters, digits, `-` or `_`", n + 1)));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(invalid(format!("key id `{id}` appears twice")));
            }
            let bytes = STANDARD.decode(b64.trim()).map_err(|_| invalid(format!("key `{id}` is not base64")))?;
            if bytes.len() != 32 {
                return Err(invalid(format!("key `{id}` must be 32 bytes, not {}", bytes.len())));
            }
            keys.push(NamedKey { id: id.to_owned(), cipher: XChaCha20Poly1305::new(Key::from_slice(&bytes)) });
        }
        Ok(Self { keys })
    }

    /// A fixed, public key for development and tests, id [`DEVELOPMENT_KEY_ID`].
    /// It protects nothing; the binary refuses it in production.
    #[must_use]
    pub fn development() -> Self {
        let cipher = XChaCha20Poly1305::new(Key::from_slice(b"videdit-development-key-not-safe"));
        Self { keys: vec![NamedKey { id: DEVELOPMENT_KEY_ID.to_owned(), cipher }] }
    }

    /// The key ids, the sealing one first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// Seals `plain` for `context` with the first key.
    #[must_use]
    pub fn seal(&self, plain: &[u8], context: &str) -> String {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = key
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad: context.as_bytes() })
            .expect("XChaCha20-Poly1305 encryption does not fail for in-memory inputs");
        let mut data = Vec::with_capacity(NONCE_LEN + sealed.len());
        data.extend_from_slice(&nonce);
        data.extend_from_slice(&sealed);
        format!("{VERSION}.{}.{}", key.id, URL_SAFE_NO_PAD.encode(data))
    }

    /// Opens a value sealed for `context` by any key of the ring.
    ///
    /// # Errors
    /// [`SealError::Malformed`], [`SealError::UnknownKey`] or [`SealError::Tampered`].
    pub fn open(&self, sealed: &str, context: &str) -> Result<Secret<Vec<u8>>, SealError> {
        let (id, data) = split(sealed)?;
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let data = URL_SAFE_NO_PAD.decode(data).map_err(|_| SealError::Malformed)?;
        if data.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Malformed);
        }
        let (nonce, msg) = data.split_at(NONCE_LEN);
        key.cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg, aad: context.as_bytes() })
            .map(Secret::new)
            .map_err(|_| SealError::Tampered)
    }

    /// [`Keyring::open`] for text.
    ///
    /// # Errors
    /// As [`Keyring::open`]; [`SealError::Tampered`] when the plain text is not UTF-8.
    pub fn open_str(&self, sealed: &str, context: &str) -> Result<Secret<String>, SealError> {
        let bytes = self.open(sealed, context)?;
        String::from_utf8(bytes.expose().clone()).map(Secret::new).map_err(|_| SealError::Tampered)
    }

    /// How every value sealed by the sealing key starts (`v1.<id>.`): what
    /// a query selects values to seal again by.
    #[must_use]
    pub fn sealing_prefix(&self) -> String {
        format!("{VERSION}.{}.", self.keys[0].id)
    }

    /// Whether `stored` should be sealed again: it is not sealed at all
    /// (written before sealing existed), or sealed by a key other than the
    /// sealing one.
    #[must_use]
    pub fn needs_reseal(&self, stored: &str) -> bool {
        split(stored).map_or(true, |(id, _)| id != self.keys[0].id)
    }
}

/// Whether `stored` has the form of a sealed value.
#[must_use]
pub fn is_sealed(stored: &str) -> bool {
    split(stored).is_ok()
}

fn split(sealed: &str) -> Result<(&str, &str), SealError> {
    let mut it = sealed.splitn(3, '.');
    match (it.next(), it.next(), it.next()) {
        (Some(VERSION), Some(id), Some(data)) if !id.is_empty() && !data.is_empty() => Ok((id, data)),
        _ => Err(SealError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const K2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

    #[test]
    fn a_value_opens_only_with_its_context_and_unchanged() {
        let ring = Keyring::parse(&format!("a:{K1}")).unwrap();
        let s = ring.seal(b"token", "row:1");
        assert_eq!(ring.open(&s, "row:1").unwrap().expose(), b"token");
        assert_eq!(ring.open(&s, "row:2").unwrap_err(), SealError::Tampered);
        let mut flipped = s.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(ring.open(std::str::from_utf8(&flipped).unwrap(), "row:1").unwrap_err(), SealError::Tampered);
        assert_ne!(ring.seal(b"token", "row:1"), s, "a fresh nonce each time");
        assert!(!s.contains("token"));
    }

    #[test]
    fn keys_rotate_the_first_seals_and_all_open() {
        let old = Keyring::parse(&format!("a:{K1}")).unwrap();
        let sealed_by_old = old.seal(b"x", "c");
        let ring = Keyring::parse(&format!("b:{K2}, a:{K1}")).unwrap();
        assert_eq!(ring.open(&sealed_by_old, "c").unwrap().expose(), b"x");
        assert!(ring.needs_reseal(&sealed_by_old));
        let resealed = ring.seal(b"x", "c");
        assert!(resealed.starts_with("v1.b."));
        assert!(!ring.needs_reseal(&resealed));
        assert!(resealed.starts_with(&ring.sealing_prefix()));
        assert!(ring.needs_reseal("whsec_plain"));
        let only_new = Keyring::parse(&format!("b:{K2}")).unwrap();
        assert_eq!(only_new.open(&sealed_by_old, "c").unwrap_err(), SealError::UnknownKey("a".into()));
    }

    #[test]
    fn bad_settings_and_values_are_named_without_the_key() {
        let bad = |s: &str| Keyring::parse(s).unwrap_err().to_string();
        assert_eq!(bad("nokey"), "key 1 is not `id:base64key`");
        assert_eq!(bad(&format!("a:{K1},a:{K2}")), "key id `a` appears twice");
        assert_eq!(bad("a:!!!"), "key `a` is not base64");
        assert_eq!(bad("a:AAAA"), "key `a` must be 32 bytes, not 3");
        assert_eq!(bad(&format!("a b:{K1}")), "key 1: the id must be 1-32 letters, digits, `-` or `_`");
        assert!(!bad(&format!("a:{K1},b:xx")).contains(K1));
        let ring = Keyring::parse(&format!("a:{K1}")).unwrap();
        assert_eq!(ring.open("whsec_abc", "c").unwrap_err(), SealError::Malformed);
        assert_eq!(ring.open("v1.a.AAAA", "c").unwrap_err(), SealError::Malformed);
        assert!(!is_sealed("whsec_abc"));
        assert!(is_sealed(&ring.seal(b"", "c")));
        assert_eq!(format!("{ring:?}"), "Keyring { key_ids: [\"a\"] }");
    }
}
