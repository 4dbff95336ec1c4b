//! Human-readable output: the salient terms, the one-line reason and the
//! suggested title of a chosen window.

use std::collections::BTreeMap;

use super::prepare::{HookCue, Prepared};
use super::score::{Candidate, term_salience};
use super::text::{self, CLOSERS};

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 60;
/// How many salient terms a highlight lists.
const TOP_TERMS: usize = 3;

/// The window's most salient terms, best first, as spoken (lower case).
/// A repeated two-word phrase that holds at least half the uses of both
/// its words ("compound interest") competes as one item worth both.
pub(super) fn salient_terms(p: &Prepared<'_>, c: &Candidate) -> Vec<String> {
    let a = p.sentences[c.first].words.start;
    let b = p.sentences[c.last].words.end;
    let mut counts: BTreeMap<u32, (u32, usize)> = BTreeMap::new(); // term → (count, first word)
    for i in a..b {
        if let Some(t) = p.term_of[i] {
            counts.entry(t).or_insert((0, i)).0 += 1;
        }
    }
    let salience: BTreeMap<u32, f32> = counts
        .iter()
        .map(|(&t, &(n, _))| (t, term_salience(n, p.term_total[t as usize])))
        .filter(|&(_, s)| s > 0.0)
        .collect();

    // The most frequent spoken form of each term ("sleep" over "sleeping").
    let mut forms: BTreeMap<(u32, &str), (u32, usize)> = BTreeMap::new();
    for i in a..b {
        if let Some(t) = p.term_of[i].filter(|t| salience.contains_key(t)) {
            forms.entry((t, p.norms[i].as_str())).or_insert((0, i)).0 += 1;
        }
    }
    let mut label: BTreeMap<u32, (u32, usize, &str)> = BTreeMap::new();
    for (&(t, form), &(n, at)) in &forms {
        let best = label.entry(t).or_insert((n, at, form));
        if n > best.0 || (n == best.0 && at < best.1) {
            *best = (n, at, form);
        }
    }

    // (score, first word, terms covered, label)
    let mut items: Vec<(f32, usize, [u32; 2], String)> =
        salience.iter().map(|(&t, &s)| (s, counts[&t].1, [t, t], label[&t].2.to_owned())).collect();
    for (&(x, y), &(k, at)) in &bigrams(p, a, b) {
        let (Some(&sx), Some(&sy)) = (salience.get(&x), salience.get(&y)) else { continue };
        if x != y && k >= 2 && 2 * k >= counts[&x].0 && 2 * k >= counts[&y].0 {
            items.push((sx + sy, at, [x, y], format!("{} {}", p.norms[at], p.norms[next_spoken(p, at)])));
        }
    }
    items.sort_by(|l, r| r.0.total_cmp(&l.0).then(l.1.cmp(&r.1)).then(l.3.cmp(&r.3)));

    let mut out: Vec<String> = Vec::new();
    let mut covered: Vec<u32> = Vec::new();
    for (_, _, terms, label) in items {
        if out.len() == TOP_TERMS {
            break;
        }
        if terms.iter().any(|t| covered.contains(t)) || out.contains(&label) {
            continue;
        }
        covered.extend(terms);
        out.push(label);
    }
    out
}

fn next_spoken(p: &Prepared<'_>, i: usize) -> usize {
    (i + 1..p.norms.len()).find(|&j| !p.norms[j].is_empty()).unwrap_or(i)
}

/// Adjacent content-word pairs within a clause: `(t1, t2) → (count, first word)`.
fn bigrams(p: &Prepared<'_>, a: usize, b: usize) -> BTreeMap<(u32, u32), (u32, usize)> {
    let mut out: BTreeMap<(u32, u32), (u32, usize)> = BTreeMap::new();
    for i in a..b {
        let Some(t1) = p.term_of[i] else { continue };
        let j = next_spoken(p, i);
        if j <= i || j >= b || text::core(&p.words[i].text).ends_with([',', '.', '?', '!', ';', ':']) {
            continue;
        }
        if let Some(t2) = p.term_of[j] {
            out.entry((t1, t2)).or_insert((0, i)).0 += 1;
        }
    }
    out
}

/// A short human sentence built from the strongest sub-scores.
pub(super) fn reason(p: &Prepared<'_>, c: &Candidate, terms: &[String], keywords: &[&str]) -> String {
    let s = &c.sub;
    let mut verbs: Vec<(f32, &str)> = Vec::new();
    if s.completeness >= 0.8 {
        verbs.push((s.completeness, "lands a complete point"));
    }
    if s.coherence >= 0.55 {
        verbs.push((s.coherence, "stays on one topic"));
    }
    if s.delivery >= 0.7 {
        verbs.push((s.delivery, "has a lively delivery"));
    }
    if s.filler >= 0.95 {
        verbs.push((0.8 * s.filler, "is free of filler"));
    }
    // Stable order: strongest first, then the order above.
    verbs.sort_by(|x, y| y.0.total_cmp(&x.0));
    let mut clauses: Vec<&str> = Vec::new();
    if s.hook >= 0.45 {
        clauses.push(match p.info[c.first].hook.cue {
            Some(HookCue::Question) => "opens with a question",
            Some(HookCue::Teaser) => "opens with a teaser",
            Some(HookCue::BoldClaim) => "opens with a bold claim",
            Some(HookCue::Number) => "opens with a concrete number",
            Some(HookCue::DirectAddress) => "speaks straight to the viewer",
            None => "has a strong opening",
        });
    }
    clauses.extend(verbs.iter().map(|&(_, v)| v));
    clauses.truncate(2);
    let mut out = clauses.join(" and ");
    let topic = match (keywords, terms.first()) {
        ([k], _) => Some(format!("mentions '{k}'")),
        ([k1, k2, ..], _) => Some(format!("mentions '{k1}' and '{k2}'")),
        ([], Some(t)) if s.salience >= 0.25 => Some(format!("dense with '{t}'")),
        _ => None,
    };
    if let Some(topic) = topic {
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(&topic);
    }
    if out.is_empty() {
        out = format!("a self-contained {:.0}-second passage", c.end - c.start);
    }
    capitalize_first(&out)
}

/// A suggested title: the opening sentence when it is a hook (its first
/// clause, or its start cut at a word boundary, when it is too long), else
/// the salient terms in Title Case.
pub(super) fn title(p: &Prepared<'_>, c: &Candidate, terms: &[String]) -> String {
    let opening = opening_words(p, c.first);
    let from_opening = || -> Option<String> {
        let whole = tidy(&opening.join(" "));
        if whole.split_whitespace().count() >= 3 && whole.chars().count() <= MAX_TITLE_CHARS {
            return Some(whole);
        }
        // Else its first clause: up to a comma, or before a subordinate
        // clause ("Why do most people retire broke [even when …]?").
        let question = whole.ends_with('?');
        let cut = opening.iter().enumerate().skip(3).find_map(|(i, w)| {
            if text::is_subordinator(&text::normalize(w)) {
                Some(i)
            } else {
                text::core(w).ends_with([',', ';', ':']).then_some(i + 1)
            }
        })?;
        let mut clause = tidy(&opening[..cut].join(" "));
        if question {
            clause.push('?');
        }
        (clause.split_whitespace().count() >= 3 && clause.chars().count() <= MAX_TITLE_CHARS).then_some(clause)
    };
    // Else the opening cut at a word boundary, if enough of it survives.
    let truncated = || -> Option<String> {
        let whole = tidy(&opening.join(" "));
        let cut = truncate_words(whole.trim_end_matches('?'));
        (cut.split_whitespace().count() >= 4).then_some(cut)
    };
    if p.info[c.first].hook.score >= 0.35
        && let Some(t) = from_opening().or_else(truncated)
    {
        return t;
    }
    let t = if let Some(first) = terms.first() {
        let one = title_case(first);
        let two = terms.get(1).map(|second| format!("{one} and {}", title_case(second)));
        truncate_words(&two.filter(|t| t.chars().count() <= MAX_TITLE_CHARS).unwrap_or(one))
    } else {
        from_opening().unwrap_or_else(|| truncate_words(&tidy(&opening.join(" "))))
    };
    if t.is_empty() { format!("Highlight at {}", clock(c.start)) } else { t }
}

/// The opening sentence's words without fillers or leading discourse
/// markers ("So, um, okay, here's…" → "here's…").
fn opening_words<'p>(p: &'p Prepared<'_>, sentence: usize) -> Vec<&'p str> {
    let range = p.sentences[sentence].words.clone();
    let mut words: Vec<&str> =
        range.clone().filter(|&i| !p.filler[i] && !p.norms[i].is_empty()).map(|i| p.words[i].text.trim()).collect();
    let lead = words.iter().take_while(|w| text::is_title_lead(&text::normalize(w))).count();
    if lead < words.len() {
        words.drain(..lead);
    }
    words
}

/// Trims stray punctuation at both ends (keeping a final `?`), collapses
/// runs of punctuation left by dropped fillers, and capitalises the start.
fn tidy(s: &str) -> String {
    let question = text::core(s).ends_with('?');
    let t = s.trim_start_matches(|c: char| !c.is_alphanumeric()).trim_end_matches(|c: char| !c.is_alphanumeric());
    let mut out = t.replace(" ,", ",").replace(",,", ",");
    while out.contains("  ") {
        out = out.replace("  ", " ");
    }
    let mut out = capitalize_first(&out);
    if question && !out.is_empty() {
        out.push('?');
    }
    out.trim_end_matches(CLOSERS).to_owned()
}

/// Cuts at a word boundary to [`MAX_TITLE_CHARS`], without a dangling
/// minor word or punctuation at the end.
fn truncate_words(s: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut len = 0;
    for w in s.split_whitespace() {
        let add = w.chars().count() + usize::from(!out.is_empty());
        if len + add > MAX_TITLE_CHARS {
            break;
        }
        len += add;
        out.push(w);
    }
    while out.len() > 1
        && out
            .last()
            .is_some_and(|w| text::is_minor_title_word(&text::normalize(w)) || text::is_stopword(&text::normalize(w)))
    {
        out.pop();
    }
    let joined = out.join(" ");
    joined.trim_end_matches(|c: char| !c.is_alphanumeric() && c != '?').to_owned()
}

fn title_case(s: &str) -> String {
    s.split_whitespace()
        .enumerate()
        .map(|(i, w)| if i > 0 && text::is_minor_title_word(w) { w.to_owned() } else { capitalize_first(w) })
        .collect::<Vec<_>>()
        .join(" ")
}

fn capitalize_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidies_titles() {
        for (raw, tidied) in [
            ("why do we procrastinate?", "Why do we procrastinate?"),
            ("\"Most people get this wrong.\"", "Most people get this wrong"),
            ("It was , huge...", "It was, huge"),
        ] {
            assert_eq!(tidy(raw), tidied, "{raw:?}");
        }
        for (raw, cased) in [("compound interest", "Compound Interest"), ("return of the king", "Return of the King")] {
            assert_eq!(title_case(raw), cased, "{raw:?}");
        }
        let long = "word ".repeat(30);
        assert!(truncate_words(&long).chars().count() <= MAX_TITLE_CHARS);
        assert_eq!(truncate_words("The price of the"), "The price");
        assert_eq!(clock(75.0), "1:15");
        assert_eq!(clock(3725.0), "1:02:05");
    }
}
