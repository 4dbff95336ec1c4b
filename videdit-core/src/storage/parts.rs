//! Checking a client's part list before a multipart upload is assembled,
//! the same way on every backend: each part listed once in ascending
//! order, uploaded, with the ETag the store gave it, and every part but
//! the last at least [`MIN_PART_SIZE`].

use std::collections::HashMap;

use super::{CompletedPart, MIN_PART_SIZE, check_part_number};
use crate::error::{Error, Result};

/// A part as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredPart {
    /// Its ETag as the store reports it; empty when the store reports none
    /// (s3s-fs lists parts without ETags), and then it is not compared.
    pub etag: String,
    /// Bytes.
    pub size: u64,
}

/// The parts a store reported, gathered page by page (ListParts pages).
#[derive(Debug, Default)]
pub(crate) struct StoredParts(HashMap<i32, StoredPart>);

impl StoredParts {
    /// Adds one reported part; entries without a part number are ignored.
    pub fn add(&mut self, part_number: Option<i32>, etag: Option<&str>, size: Option<i64>) {
        if let Some(n) = part_number {
            let size = u64::try_from(size.unwrap_or_default()).unwrap_or_default();
            self.0.insert(n, StoredPart { etag: etag.unwrap_or_default().to_owned(), size });
        }
    }

    /// Checks the client's list against what was stored.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] naming the first bad part.
    pub fn check(&self, parts: &[CompletedPart]) -> Result<()> {
        validate_part_list(parts)?;
        for (i, p) in parts.iter().enumerate() {
            let Some(stored) = self.0.get(&p.part_number) else {
                return Err(Error::InvalidRequest(format!("part {} was not uploaded", p.part_number)));
            };
            if !stored.etag.is_empty() && normalise(&stored.etag) != normalise(&p.etag) {
                return Err(Error::InvalidRequest(format!("part {} has another ETag", p.part_number)));
            }
            if i + 1 < parts.len() && stored.size < MIN_PART_SIZE {
                return Err(Error::InvalidRequest(format!(
                    "part {} is smaller than 5 MiB and is not the last part",
                    p.part_number
                )));
            }
        }
        Ok(())
    }
}

/// ETags compare without their quotes and case.
fn normalise(etag: &str) -> String {
    etag.trim().trim_matches('"').to_ascii_lowercase()
}

/// The list's own shape: not empty, valid numbers, ascending, no repeats.
pub(crate) fn validate_part_list(parts: &[CompletedPart]) -> Result<()> {
    if parts.is_empty() {
        return Err(Error::InvalidRequest("a multipart upload needs at least one part".into()));
    }
    for p in parts {
        check_part_number(p.part_number)?;
    }
    if parts.windows(2).any(|w| w[0].part_number >= w[1].part_number) {
        return Err(Error::InvalidRequest("parts must be listed once each, in ascending order".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: i64 = 1024 * 1024;

    /// The ETags of the recorded upload's three parts, as S3 lists them.
    const ETAGS: [&str; 3] = [
        "\"7778aef83f66abc1fa1e8477f296d394\"",
        "\"aaaa18db4cc2f85cedef654fccc4a4x8\"",
        "\"b54357faf0632cce46e942fa68356b38\"",
    ];

    /// Two ListParts pages as AWS S3 returns them for a three-part upload
    /// (`IsTruncated` true after part 2, `MaxParts` 2): ETags quoted, sizes
    /// in bytes.
    fn recorded_pages() -> StoredParts {
        let pages: [&[(i32, &str, i64)]; 2] =
            [&[(1, ETAGS[0], 10 * MIB), (2, ETAGS[1], 10 * MIB)], &[(3, ETAGS[2], 1234)]];
        let mut stored = StoredParts::default();
        for page in pages {
            for (n, etag, size) in page {
                stored.add(Some(*n), Some(etag), Some(*size));
            }
        }
        stored
    }

    fn part(n: i32, etag: &str) -> CompletedPart {
        CompletedPart { part_number: n, etag: etag.into() }
    }

    fn refusal(stored: &StoredParts, parts: &[CompletedPart]) -> String {
        match stored.check(parts) {
            Err(Error::InvalidRequest(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_right_parts_pass_with_or_without_quotes_and_in_any_case() {
        let unquoted_upper = ETAGS[0].trim_matches('"').to_uppercase();
        let padded = format!(" {} ", ETAGS[2]);
        let good = [part(1, &unquoted_upper), part(2, ETAGS[1]), part(3, &padded)];
        assert_eq!(recorded_pages().check(&good).ok(), Some(()));
    }

    #[test]
    fn each_bad_part_is_named() {
        let stored = recorded_pages();
        let wrong_etag = [part(1, ETAGS[0]), part(2, "\"0123456789abcdef0123456789abcdef\""), part(3, ETAGS[2])];
        assert_eq!(refusal(&stored, &wrong_etag), "part 2 has another ETag");
        let missing = [part(1, ETAGS[0]), part(4, "\"whatever\"")];
        assert_eq!(refusal(&stored, &missing), "part 4 was not uploaded");
        // Part 3 (1234 bytes) may only come last.
        let mut small = StoredParts::default();
        small.add(Some(1), Some("\"a\""), Some(1234));
        small.add(Some(2), Some("\"b\""), Some(10 * MIB));
        assert_eq!(
            refusal(&small, &[part(1, "a"), part(2, "b")]),
            "part 1 is smaller than 5 MiB and is not the last part"
        );
        assert_eq!(refusal(&stored, &[]), "a multipart upload needs at least one part");
        let unordered = [part(2, ETAGS[1]), part(1, ETAGS[0])];
        assert_eq!(refusal(&stored, &unordered), "parts must be listed once each, in ascending order");
        let repeated = [part(1, ETAGS[0]), part(1, ETAGS[0])];
        assert_eq!(refusal(&stored, &repeated), "parts must be listed once each, in ascending order");
    }

    #[test]
    fn a_store_that_reports_no_etags_is_checked_for_presence_and_size_only() {
        // s3s-fs: ListParts without ETags.
        let mut stored = StoredParts::default();
        stored.add(Some(1), None, Some(6 * MIB));
        stored.add(Some(2), Some(""), Some(100));
        stored.add(None, Some("\"ignored\""), Some(1));
        assert_eq!(stored.check(&[part(1, "\"any\""), part(2, "\"any\"")]).ok(), Some(()));
        assert_eq!(refusal(&stored, &[part(1, "x"), part(3, "z")]), "part 3 was not uploaded");
        assert_eq!(
            refusal(&stored, &[part(1, "x"), part(2, "y"), part(3, "z")]),
            "part 2 is smaller than 5 MiB and is not the last part"
        );
    }
}
