//! Word error rate: how far a transcript is from what was said.

/// Lower-cased words without punctuation (apostrophes dropped, hyphens and
/// dashes split).
#[must_use]
pub fn normalise(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace(['-', '—'], " ")
        .split_whitespace()
        .map(|w| w.chars().filter(|c| c.is_alphanumeric()).collect::<String>())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word error rate of `hypothesis` against `reference`: the Levenshtein
/// distance over [`normalise`]d words, per reference word.
#[must_use]
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (r, h) = (normalise(reference), normalise(hypothesis));
    let distances = prefix_distances(&r, &h);
    distances[r.len()] as f64 / r.len().max(1) as f64
}

/// Word error rate of `hypothesis` against the prefix of `reference` it
/// covers best (at least as many words as the hypothesis, less five): for
/// audio cut off part-way through the text it reads.
#[must_use]
pub fn wer_of_prefix(reference: &str, hypothesis: &str) -> f64 {
    let (r, h) = (normalise(reference), normalise(hypothesis));
    let distances = prefix_distances(&r, &h);
    (1..=r.len())
        .filter(|&k| k >= h.len().saturating_sub(5))
        .map(|k| distances[k] as f64 / k as f64)
        .fold(f64::MAX, f64::min)
}

/// The edit distance from each prefix of `reference` (0 to all its words)
/// to the whole of `hypothesis`.
fn prefix_distances(reference: &[String], hypothesis: &[String]) -> Vec<usize> {
    let h = hypothesis;
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    let mut out = Vec::with_capacity(reference.len() + 1);
    out.push(prev[h.len()]);
    for (i, rw) in reference.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(rw != hw)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
        out.push(prev[h.len()]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_compared_without_case_or_punctuation() {
        assert_eq!(
            normalise("Hello, world! It's well-known—really."),
            ["hello", "world", "its", "well", "known", "really"]
        );
        assert_eq!(wer("The cat sat.", "the cat sat"), 0.0);
        assert!((wer("the cat sat on the mat", "the cat sat on a mat") - 1.0 / 6.0).abs() < 1e-12);
        assert_eq!(wer("", "anything at all"), 3.0);
    }

    #[test]
    fn a_cut_off_hypothesis_is_scored_against_what_it_covers() {
        let said = "one two three four five six seven eight nine ten eleven twelve";
        assert_eq!(wer_of_prefix(said, "one two three four five six seven"), 0.0);
        assert!(wer(said, "one two three four five six seven") > 0.4);
        assert!((wer_of_prefix(said, "one two three for five six seven") - 1.0 / 7.0).abs() < 1e-12);
        assert_eq!(wer_of_prefix("", "words"), f64::MAX);
    }
}
