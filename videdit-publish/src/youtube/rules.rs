//! What YouTube accepts as a Short, checked before anything is uploaded.

use crate::error::{PublishError, Rule};

/// The longest Short: 3 minutes. YouTube raised the limit from 60 s to
/// 180 s on 15 October 2024 for square and vertical videos ("Upload YouTube
/// Shorts", support.google.com/youtube/answer/12779649).
pub const MAX_DURATION_SECS: f64 = 180.0;
/// `snippet.title`: at most 100 characters, no `<` or `>` (YouTube Data API, videos resource).
pub const MAX_TITLE_CHARS: usize = 100;
/// `snippet.description`: at most 5000 bytes, no `<` or `>`.
pub const MAX_DESCRIPTION_BYTES: usize = 5000;
/// `snippet.tags[]`: at most 500 characters together, counting the commas
/// between tags and the quotes YouTube puts around a tag with a space.
pub const MAX_TAGS_CHARS: usize = 500;
/// The largest file YouTube accepts: 256 GB.
pub const MAX_SIZE_BYTES: u64 = 256 * 1024 * 1024 * 1024;

/// What the rules look at.
#[derive(Debug, Clone, Copy)]
pub struct ShortFacts<'a> {
    /// Length of the video in seconds.
    pub duration_secs: f64,
    /// Frame width in pixels (after rotation).
    pub width: u32,
    /// Frame height in pixels (after rotation).
    pub height: u32,
    /// File size in bytes.
    pub size_bytes: u64,
    /// `snippet.title`.
    pub title: &'a str,
    /// `snippet.description`.
    pub description: &'a str,
    /// `snippet.tags`.
    pub tags: &'a [String],
}

/// Checks a short against YouTube's Shorts rules.
///
/// # Errors
/// [`PublishError::Rule`] for the first rule broken (its code is
/// `platform_rule_<rule>`); [`violations`] lists them all.
pub fn check_rules(facts: &ShortFacts<'_>) -> Result<(), PublishError> {
    match violations(facts).into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Every rule the short breaks, in a stable order (duration, aspect, size,
/// then the metadata rules of [`metadata_violations`]).
#[must_use]
pub fn violations(facts: &ShortFacts<'_>) -> Vec<PublishError> {
    let mut out = Vec::new();
    let d = facts.duration_secs;
    if !d.is_finite() || d <= 0.0 || d > MAX_DURATION_SECS {
        out.push(rule(Rule::Duration, format!("a Short lasts at most {MAX_DURATION_SECS} s; this one lasts {d} s")));
    }
    if facts.width == 0 || facts.height < facts.width {
        out.push(rule(
            Rule::Aspect,
            format!("a Short is vertical or square (height ≥ width); this one is {}×{}", facts.width, facts.height),
        ));
    }
    if facts.size_bytes == 0 || facts.size_bytes > MAX_SIZE_BYTES {
        out.push(rule(
            Rule::Size,
            format!("a video has 1 to {MAX_SIZE_BYTES} bytes; this one has {} bytes", facts.size_bytes),
        ));
    }
    out.extend(metadata_violations(facts.title, facts.description, facts.tags));
    out
}

/// The rules on title, description and tags alone (also checked by
/// [`crate::youtube::YouTube::start_upload`]).
#[must_use]
pub fn metadata_violations(title: &str, description: &str, tags: &[String]) -> Vec<PublishError> {
    let mut out = Vec::new();
    let title_chars = title.chars().count();
    if title.trim().is_empty() || title_chars > MAX_TITLE_CHARS {
        out.push(rule(
            Rule::Title,
            format!("a title has 1 to {MAX_TITLE_CHARS} characters; this one has {title_chars}"),
        ));
    } else if title.contains(['<', '>']) {
        out.push(rule(Rule::Title, "a title may not contain '<' or '>'".to_owned()));
    }
    if description.len() > MAX_DESCRIPTION_BYTES {
        out.push(rule(
            Rule::Description,
            format!("a description has at most {MAX_DESCRIPTION_BYTES} bytes; this one has {}", description.len()),
        ));
    } else if description.contains(['<', '>']) {
        out.push(rule(Rule::Description, "a description may not contain '<' or '>'".to_owned()));
    }
    let tags_chars = tags_length(tags);
    if tags_chars > MAX_TAGS_CHARS {
        out.push(rule(
            Rule::Tags,
            format!("tags have at most {MAX_TAGS_CHARS} characters together; these have {tags_chars}"),
        ));
    }
    out
}

/// Tags' length as YouTube counts it: commas between tags, and quotes
/// around a tag that contains a space.
#[must_use]
pub fn tags_length(tags: &[String]) -> usize {
    let chars: usize = tags.iter().map(|t| t.chars().count() + if t.contains(' ') { 2 } else { 0 }).sum();
    chars + tags.len().saturating_sub(1)
}

fn rule(rule: Rule, message: String) -> PublishError {
    PublishError::Rule { rule, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_facts() -> ShortFacts<'static> {
        ShortFacts {
            duration_secs: 42.0,
            width: 1080,
            height: 1920,
            size_bytes: 10_000_000,
            title: "A good short",
            description: "About it",
            tags: &[],
        }
    }

    fn codes(f: &ShortFacts<'_>) -> Vec<&'static str> {
        violations(f).iter().map(PublishError::code).collect()
    }

    #[test]
    fn a_good_short_passes() {
        assert!(check_rules(&ok_facts()).is_ok());
        assert!(check_rules(&ShortFacts { width: 1080, height: 1080, duration_secs: 180.0, ..ok_facts() }).is_ok());
    }

    #[test]
    fn each_rule_has_its_code_and_says_limit_and_value() {
        let e = check_rules(&ShortFacts { duration_secs: 180.5, ..ok_facts() }).unwrap_err();
        assert_eq!(e.code(), "platform_rule_duration");
        assert_eq!(e.message(), "a Short lasts at most 180 s; this one lasts 180.5 s");
        assert_eq!(codes(&ShortFacts { duration_secs: 0.0, ..ok_facts() }), ["platform_rule_duration"]);
        let e = check_rules(&ShortFacts { width: 1920, height: 1080, ..ok_facts() }).unwrap_err();
        assert_eq!(e.code(), "platform_rule_aspect");
        assert!(e.message().contains("1920×1080"), "{}", e.message());
        assert_eq!(codes(&ShortFacts { size_bytes: MAX_SIZE_BYTES + 1, ..ok_facts() }), ["platform_rule_size"]);
        assert_eq!(codes(&ShortFacts { size_bytes: 0, ..ok_facts() }), ["platform_rule_size"]);
        let long_title = "é".repeat(101);
        let e = check_rules(&ShortFacts { title: &long_title, ..ok_facts() }).unwrap_err();
        assert_eq!(e.message(), "a title has 1 to 100 characters; this one has 101");
        assert!(check_rules(&ShortFacts { title: &"é".repeat(100), ..ok_facts() }).is_ok());
        assert_eq!(codes(&ShortFacts { title: " ", ..ok_facts() }), ["platform_rule_title"]);
        assert_eq!(codes(&ShortFacts { title: "a <b>", ..ok_facts() }), ["platform_rule_title"]);
        let long_description = "é".repeat(2501);
        let e = check_rules(&ShortFacts { description: &long_description, ..ok_facts() }).unwrap_err();
        assert_eq!(e.message(), "a description has at most 5000 bytes; this one has 5002");
        assert_eq!(codes(&ShortFacts { description: "1 > 0", ..ok_facts() }), ["platform_rule_description"]);
        let tags: Vec<String> = (0..50).map(|i| format!("tag{i:05}")).collect(); // 50·8 + 49 commas = 449
        assert!(check_rules(&ShortFacts { tags: &tags, ..ok_facts() }).is_ok());
        let tags: Vec<String> = (0..50).map(|i| format!("tag {i:04}")).collect(); // + 2 quotes each = 549
        let e = check_rules(&ShortFacts { tags: &tags, ..ok_facts() }).unwrap_err();
        assert_eq!(e.code(), "platform_rule_tags");
        assert_eq!(e.message(), "tags have at most 500 characters together; these have 549");
    }

    #[test]
    fn all_violations_are_listed() {
        let f = ShortFacts { duration_secs: 600.0, width: 1920, height: 1080, title: "", ..ok_facts() };
        assert_eq!(codes(&f), ["platform_rule_duration", "platform_rule_aspect", "platform_rule_title"]);
    }
}
