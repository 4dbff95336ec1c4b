//! Text that people type and other people see (titles, caption words, file
//! names) must not carry control characters or bidirectional overrides: a
//! newline or escape breaks logs and subtitle files, and an override such
//! as U+202E makes `clip<U+202E>4pm.exe` display as `clipexe.mp4` (the "Trojan
//! Source" trick). Such text is refused, with the offending character named.

/// Whether `c` may not appear in user text: control characters (C0, DEL,
/// C1) and the bidirectional embeddings, overrides, isolates and marks.
#[must_use]
pub fn is_forbidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// `Err` naming `field` and the first forbidden character (as `U+XXXX`).
///
/// # Errors
/// A message for the caller's invalid-request error.
///
/// ```
/// assert!(videdit_core::text::check("title", "Talk: part 2").is_ok());
/// assert_eq!(
///     videdit_core::text::check("title", "evil\u{202E}gnp.exe").unwrap_err(),
///     "title must not contain control or bidirectional-override characters (U+202E)"
/// );
/// ```
pub fn check(field: &str, text: &str) -> Result<(), String> {
    match text.chars().find(|c| is_forbidden(*c)) {
        None => Ok(()),
        Some(c) => Err(format!(
            "{field} must not contain control or bidirectional-override characters (U+{:04X})",
            u32::from(c)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_overrides_are_refused_and_ordinary_text_is_not() {
        for bad in ["a\nb", "a\u{0}b", "a\u{1b}[31m", "a\u{7f}", "a\u{85}", "a\u{202E}b", "a\u{2066}b", "a\u{200F}b"] {
            assert!(check("t", bad).is_err(), "{bad:?}");
        }
        for good in ["Café crème", "日本語のタイトル", "עברית", "emoji 🎬", "tab-free — dash", "العربية"]
        {
            assert!(check("t", good).is_ok(), "{good:?}");
        }
        assert_eq!(
            check("fileName", "x\u{9}y").unwrap_err(),
            "fileName must not contain control or bidirectional-override characters (U+0009)"
        );
    }
}
