//! Object keys: built by one set of functions, validated on construction.
//!
//! Clients never choose keys. Every key of a video lives under
//! `orgs/{org}/videos/{video}/`, so deleting a video is deleting a prefix and
//! one tenant's keys can never name another's.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::id::{OrgId, ShortId, VideoId};

/// Longest key we accept (S3 allows 1024 bytes).
pub const MAX_KEY_LEN: usize = 1024;

/// A key that is empty, too long, absolute, or contains `..`, `//`, a
/// backslash or a character outside `[A-Za-z0-9._/-]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid object key {key:?}: {reason}")]
pub struct InvalidKey {
    /// The rejected key, cut to 128 characters.
    pub key: String,
    /// What is wrong.
    pub reason: &'static str,
}

fn validate(s: &str, allow_trailing_slash: bool) -> Result<(), InvalidKey> {
    let fail = |reason| Err(InvalidKey { key: s.chars().take(128).collect(), reason });
    if s.is_empty() {
        return fail("empty");
    }
    if s.len() > MAX_KEY_LEN {
        return fail("longer than 1024 bytes");
    }
    if s.starts_with('/') {
        return fail("absolute");
    }
    if !s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'/')) {
        return fail("characters outside [A-Za-z0-9._/-]");
    }
    let body = if allow_trailing_slash { s.strip_suffix('/').unwrap_or(s) } else { s };
    for seg in body.split('/') {
        match seg {
            "" => return fail("empty path segment"),
            "." | ".." => return fail("relative path segment"),
            _ => {}
        }
    }
    Ok(())
}

/// A validated object key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Validates a key read back from our own records.
    ///
    /// # Errors
    /// [`InvalidKey`] as described on the type.
    pub fn parse(s: impl Into<String>) -> Result<Self, InvalidKey> {
        let s = s.into();
        validate(&s, false)?;
        Ok(Self(s))
    }

    /// The key as a string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The uploaded source of a video; `file_name` only contributes a safe
    /// extension (`mp4`, `mov`, …; `bin` when it has none we accept).
    #[must_use]
    pub fn video_source(org: OrgId, video: VideoId, file_name: &str) -> Self {
        Self(format!("{}source.{}", KeyPrefix::video(org, video).0, safe_extension(file_name)))
    }

    /// A derived file of a video (`transcript.json`, `audio.wav`, …).
    ///
    /// # Errors
    /// [`InvalidKey`] when `name` is not one plain file name.
    pub fn video_file(org: OrgId, video: VideoId, name: &str) -> Result<Self, InvalidKey> {
        if name.contains('/') {
            return Err(InvalidKey { key: name.into(), reason: "not a plain file name" });
        }
        Self::parse(format!("{}{name}", KeyPrefix::video(org, video).0))
    }

    /// A short's MP4.
    #[must_use]
    pub fn short_video(org: OrgId, video: VideoId, short: ShortId) -> Self {
        Self(format!("{}shorts/{short}.mp4", KeyPrefix::video(org, video).0))
    }

    /// A short's JPEG thumbnail.
    #[must_use]
    pub fn short_thumbnail(org: OrgId, video: VideoId, short: ShortId) -> Self {
        Self(format!("{}shorts/{short}.jpg", KeyPrefix::video(org, video).0))
    }

    /// A short's clip recipe.
    #[must_use]
    pub fn short_recipe(org: OrgId, video: VideoId, short: ShortId) -> Self {
        Self(format!("{}shorts/{short}.recipe.json", KeyPrefix::video(org, video).0))
    }

    /// A picture of an organisation (`name` is a kind such as
    /// `audiogram-background`, `sha256` the picture's hex digest with
    /// whatever makes the key unique, `ext` `png` or `jpg`).
    ///
    /// # Errors
    /// [`InvalidKey`] when a part is not a plain name.
    pub fn org_image(org: OrgId, name: &str, sha256: &str, ext: &str) -> Result<Self, InvalidKey> {
        if [name, sha256, ext]
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err(InvalidKey { key: format!("{name}-{sha256}.{ext}"), reason: "not a plain file name" });
        }
        Self::parse(format!("{}images/{name}-{sha256}.{ext}", KeyPrefix::org(org).0))
    }

    /// Whether the key is under `prefix`.
    #[must_use]
    pub fn starts_with(&self, prefix: &KeyPrefix) -> bool {
        self.0.starts_with(&prefix.0)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectKey({:?})", self.0)
    }
}

impl TryFrom<String> for ObjectKey {
    type Error = InvalidKey;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl From<ObjectKey> for String {
    fn from(k: ObjectKey) -> String {
        k.0
    }
}

/// A validated key prefix that always ends in `/`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct KeyPrefix(String);

impl KeyPrefix {
    /// Everything of one organisation.
    #[must_use]
    pub fn org(org: OrgId) -> Self {
        Self(format!("orgs/{org}/"))
    }

    /// Everything of one video.
    #[must_use]
    pub fn video(org: OrgId, video: VideoId) -> Self {
        Self(format!("orgs/{org}/videos/{video}/"))
    }

    /// Validates an arbitrary prefix (tests, tools); a missing trailing `/`
    /// is added.
    ///
    /// # Errors
    /// [`InvalidKey`] as for keys.
    pub fn parse(s: &str) -> Result<Self, InvalidKey> {
        validate(s, true)?;
        Ok(Self(if s.ends_with('/') { s.to_owned() } else { format!("{s}/") }))
    }

    /// The prefix as a string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A lower-case extension of 1–8 ASCII letters or digits taken from a file
/// name, or `bin`.
#[must_use]
pub fn safe_extension(file_name: &str) -> String {
    file_name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .filter(|e| (1..=8).contains(&e.len()) && e.bytes().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "bin".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_keys_under_the_video_prefix() {
        let (org, video, short) = (OrgId::new(), VideoId::new(), ShortId::new());
        let prefix = KeyPrefix::video(org, video);
        let keys = [
            ObjectKey::video_source(org, video, "My Talk.MP4"),
            ObjectKey::video_file(org, video, "transcript.json").unwrap(),
            ObjectKey::short_video(org, video, short),
            ObjectKey::short_thumbnail(org, video, short),
            ObjectKey::short_recipe(org, video, short),
        ];
        for k in &keys {
            assert!(k.starts_with(&prefix), "{k}");
            assert!(k.starts_with(&KeyPrefix::org(org)));
            assert_eq!(ObjectKey::parse(k.as_str()).as_ref(), Ok(k));
        }
        assert!(keys[0].as_str().ends_with("/source.mp4"));
        assert!(!keys[0].starts_with(&KeyPrefix::org(OrgId::new())));
    }

    #[test]
    fn refuses_dangerous_keys() {
        for bad in ["", "/etc/passwd", "a/../b", "../b", "a//b", "a/./b", "a\\b", "a b", "a/b/", "ünï", "a\0b"] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ObjectKey::parse("x".repeat(1025)).is_err());
        assert!(ObjectKey::video_file(OrgId::new(), VideoId::new(), "../x").is_err());
        assert!(KeyPrefix::parse("a/../").is_err());
        assert_eq!(KeyPrefix::parse("a/b").unwrap().as_str(), "a/b/");
    }

    #[test]
    fn extension_is_sanitised() {
        assert_eq!(safe_extension("talk.MOV"), "mov");
        assert_eq!(safe_extension("noext"), "bin");
        assert_eq!(safe_extension("x.../../etc"), "bin");
        assert_eq!(safe_extension("a.verylongext"), "bin");
        assert_eq!(safe_extension("a.mp4 "), "bin");
    }
}
