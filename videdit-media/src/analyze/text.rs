//! Word normalisation and the small English lexicons the scorer reads.
//!
//! Everything here is a pure function of one word or a few words; the
//! lexicons are `match` tables, so there is no global state and no hashing.

/// Closing characters that may follow a word's final punctuation.
pub(super) const CLOSERS: &[char] = &['"', '\'', '”', '’', ')', ']', '}', '»'];
/// Opening characters that may precede a word.
pub(super) const OPENERS: &[char] = &['"', '\'', '“', '‘', '(', '[', '{', '«'];

/// Lower-case letters and digits of a word, keeping inner apostrophes,
/// hyphens and decimal points: `"Don’t,"` → `don't`, `"3.5%"` → `3.5`.
pub(super) fn normalize(raw: &str) -> String {
    let chars: Vec<char> = raw.chars().collect();
    let mut out = String::with_capacity(raw.len());
    for (i, &c) in chars.iter().enumerate() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if matches!(c, '\'' | '’' | '‘') {
            out.push('\'');
        } else if c == '-' {
            out.push('-');
        } else if c == '.' || c == ',' {
            let digit_before = i > 0 && chars[i - 1].is_ascii_digit();
            let digit_after = chars.get(i + 1).is_some_and(char::is_ascii_digit);
            if digit_before && digit_after {
                out.push(if c == '.' { '.' } else { ',' });
            }
        }
    }
    let trimmed = out.trim_matches(|c: char| !c.is_alphanumeric());
    if trimmed.len() == out.len() { out } else { trimmed.to_owned() }
}

/// A light stem that strips plurals and `-ing`, enough to join
/// `interest`/`interests` and `sleep`/`sleeping`.
pub(super) fn stem(norm: &str) -> String {
    let w = norm.strip_suffix("'s").unwrap_or(norm);
    let n = w.chars().count();
    if !w.chars().all(|c| c.is_alphabetic() || c == '\'' || c == '-') {
        return w.to_owned();
    }
    if n >= 7 && w.ends_with("ing") {
        let base = &w[..w.len() - 3];
        let mut rev = base.chars().rev();
        let (last, before) = (rev.next(), rev.next());
        // "running" → "run", but "falling" → "fall".
        let doubled = last == before && last.is_some_and(|c| !matches!(c, 'l' | 's' | 'z' | 'f'));
        return if doubled { base[..base.len() - 1].to_owned() } else { base.to_owned() };
    }
    if n > 4 && w.ends_with("ies") {
        format!("{}y", &w[..w.len() - 3])
    } else if n > 4 && (w.ends_with("sses") || w.ends_with("shes") || w.ends_with("ches") || w.ends_with("xes")) {
        w[..w.len() - 2].to_owned()
    } else if n > 3 && w.ends_with('s') && !(w.ends_with("ss") || w.ends_with("us") || w.ends_with("is")) {
        w[..w.len() - 1].to_owned()
    } else {
        w.to_owned()
    }
}

/// Whether the word's first letter or digit is an upper-case letter.
pub(super) fn starts_upper(raw: &str) -> bool {
    raw.chars().find(|c| c.is_alphanumeric()).is_some_and(char::is_uppercase)
}

/// Whether the word's first letter is lower case (a sentence that starts
/// this way was probably cut out of a longer one).
pub(super) fn starts_lower(raw: &str) -> bool {
    raw.chars().find(|c| c.is_alphanumeric()).is_some_and(char::is_lowercase)
}

/// The word without surrounding quotes or brackets.
pub(super) fn core(raw: &str) -> &str {
    raw.trim().trim_start_matches(OPENERS).trim_end_matches(CLOSERS)
}

/// How a sentence's last word ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// `.` or `!`.
    Full,
    /// `?`.
    Question,
    /// `...` or `…`: trailing off.
    Trailing,
    /// No terminal punctuation (a pause split, or a comma).
    Open,
}

impl Ending {
    pub(super) fn of(raw: &str) -> Self {
        let c = core(raw);
        if c.ends_with("...") || c.ends_with('…') {
            Self::Trailing
        } else if c.ends_with('?') || c.ends_with("?!") {
            Self::Question
        } else if c.ends_with('.') || c.ends_with('!') {
            Self::Full
        } else {
            Self::Open
        }
    }
}

/// Whether `w` is in `list`, which must be sorted (a test checks).
pub(super) fn listed(list: &[&str], w: &str) -> bool {
    list.binary_search(&w).is_ok()
}

/// Stop words: function words and conversational glue that say nothing
/// about the topic.
pub(super) fn is_stopword(w: &str) -> bool {
    listed(STOPWORDS, w)
}

/// Single-word hesitations.
pub(super) fn is_hesitation(w: &str) -> bool {
    listed(HESITATIONS, w)
}

/// Words that are fillers whenever they appear.
fn is_filler_word(w: &str) -> bool {
    is_hesitation(w) || matches!(w, "basically" | "literally")
}

/// Marks filler words: hesitations, "basically"/"literally", "like" set
/// off by commas, and the phrases "you know", "I mean", "kind of" and
/// "sort of" when used as hedges. `norms[i]` is the normalised word,
/// `raws[i]` the word as written.
pub(super) fn filler_flags(norms: &[&str], raws: &[&str]) -> Vec<bool> {
    let n = norms.len();
    let mut out = vec![false; n];
    let ends_comma = |i: usize| core(raws[i]).ends_with(',');
    for i in 0..n {
        let w = norms[i];
        let prev = if i > 0 { norms[i - 1] } else { "" };
        let next = norms.get(i + 1).copied().unwrap_or("");
        if is_filler_word(w) || (w == "like" && (ends_comma(i) || (i > 0 && ends_comma(i - 1)))) {
            out[i] = true;
        }
        let pair = match (w, next) {
            ("you", "know") => !matches!(prev, "do" | "did" | "don't" | "didn't" | "if" | "would" | "to" | "let"),
            ("i", "mean") => i == 0 || ends_comma(i - 1) || ends_comma(i + 1) || is_clause_end(raws[i - 1]),
            ("kind" | "sort", "of") => !listed(NOT_HEDGE_BEFORE, prev),
            _ => false,
        };
        if pair {
            out[i] = true;
            out[i + 1] = true;
        }
    }
    out
}

fn is_clause_end(raw: &str) -> bool {
    let c = core(raw);
    c.ends_with(['.', '?', '!', ',', ';', ':'])
}

/// Numbers spelled out (not "one", which is mostly a pronoun in speech).
pub(super) fn is_number_word(w: &str) -> bool {
    listed(NUMBER_WORDS, w)
}

/// Words that make a sentence sound like a bold, absolute claim.
pub(super) fn is_claim_word(w: &str) -> bool {
    listed(CLAIM_WORDS, w) || is_superlative(w)
}

/// `-est` superlatives ("fastest", "cheapest"), minus common look-alikes.
fn is_superlative(w: &str) -> bool {
    w.len() >= 6 && w.ends_with("est") && w.chars().all(|c| c.is_ascii_lowercase()) && !listed(NOT_SUPERLATIVES, w)
}

/// Second-person words.
pub(super) fn is_you(w: &str) -> bool {
    matches!(w, "you" | "your" | "you're" | "you've" | "you'll" | "you'd" | "yourself" | "yours")
}

/// Imperatives that open a sentence aimed at the viewer.
pub(super) fn is_imperative_opener(w: &str) -> bool {
    matches!(w, "imagine" | "picture" | "listen" | "look" | "stop" | "remember" | "consider" | "forget" | "watch")
}

/// Question words that open a question (when an auxiliary follows) even
/// without a `?`.
pub(super) fn is_wh_word(w: &str) -> bool {
    matches!(w, "what" | "why" | "how" | "who" | "when" | "where" | "which")
}

/// Auxiliaries that open a yes/no question when followed by a subject.
pub(super) fn is_aux(w: &str) -> bool {
    listed(AUXILIARIES, w)
}

/// Subjects after an auxiliary in a question.
pub(super) fn is_subject(w: &str) -> bool {
    matches!(w, "you" | "we" | "i" | "it" | "they" | "there" | "your" | "anyone" | "anybody" | "people" | "he" | "she")
}

/// How much a sentence opening with `w` leans on what came before:
/// conjunctions most, back-references less, pronouns a little.
pub(super) fn dangling_weight(w: &str) -> f32 {
    match w {
        "and" | "but" | "or" | "nor" | "because" | "cause" | "'cause" | "which" | "whereas" | "plus" => 0.5,
        "so" | "then" | "that" | "that's" | "also" | "anyway" | "therefore" | "thus" | "hence" | "besides"
        | "otherwise" | "instead" | "too" => 0.35,
        "it" | "it's" | "this" | "these" | "those" | "they" | "they're" | "he" | "she" | "he's" | "she's" | "them"
        | "his" | "its" | "him" => 0.15,
        _ => 0.0,
    }
}

/// How strongly a sentence opening with `w` continues the previous one
/// (used to tell whether a clip that ends just before it is finished).
pub(super) fn continuation_weight(w: &str) -> f32 {
    match w {
        "and" | "but" | "or" | "nor" | "because" | "cause" | "'cause" | "which" | "whereas" | "plus" => 0.25,
        "so" | "then" | "that" | "also" => 0.1,
        _ => 0.0,
    }
}

/// Openings that signal greetings, channel chores or housekeeping.
pub(super) fn is_small_talk_word(w: &str) -> bool {
    listed(SMALL_TALK, w)
}

/// Discourse markers dropped from the front of a title.
pub(super) fn is_title_lead(w: &str) -> bool {
    listed(TITLE_LEADS, w)
}

/// Words that open a subordinate clause: a title may stop before them.
pub(super) fn is_subordinator(w: &str) -> bool {
    listed(SUBORDINATORS, w)
}

/// Short words kept lower case inside a Title Case title.
pub(super) fn is_minor_title_word(w: &str) -> bool {
    listed(MINOR_TITLE_WORDS, w)
}

/// Function words and conversational glue.
#[rustfmt::skip]
const STOPWORDS: &[&str] = &[
    "a", "about", "above", "actually", "after", "again", "against", "ago", "all", "almost", "also", "although",
    "always", "am", "an", "and", "another", "any", "anyone", "anything", "anyway", "are", "aren't", "around", "as",
    "at", "away", "back", "be", "because", "been", "before", "being", "below", "between", "bit", "both", "but", "by",
    "came", "can", "can't", "cannot", "come", "comes", "could", "couldn't", "did", "didn't", "do", "does", "doesn't",
    "doing", "don't", "done", "down", "during", "each", "else", "even", "ever", "every", "everything", "few", "for",
    "from", "further", "get", "gets", "getting", "go", "goes", "going", "gone", "gonna", "got", "gotta", "guess",
    "had", "hadn't", "has", "hasn't", "have", "haven't", "having", "he", "he'd", "he'll", "he's", "her", "here",
    "here's", "hers", "herself", "him", "himself", "his", "how", "how's", "i", "i'd", "i'll", "i'm", "i've", "if",
    "in", "into", "is", "isn't", "it", "it'd", "it'll", "it's", "its", "itself", "just", "kind", "know", "let",
    "let's", "like", "little", "lot", "lots", "made", "make", "makes", "many", "may", "maybe", "me", "mean", "might",
    "mine", "more", "most", "much", "must", "my", "myself", "need", "never", "no", "nor", "not", "nothing", "now",
    "of", "off", "oh", "ok", "okay", "on", "once", "one", "only", "or", "other", "others", "our", "ours", "ourselves",
    "out", "over", "own", "pretty", "put", "quite", "rather", "really", "right", "said", "same", "say", "saying",
    "says", "see", "seen", "she", "she'd", "she'll", "she's", "should", "shouldn't", "since", "so", "some", "somebody",
    "someone", "something", "sort", "still", "stuff", "such", "sure", "take", "than", "that", "that's", "the", "their",
    "theirs", "them", "themselves", "then", "there", "there's", "these", "they", "they'd", "they'll", "they're",
    "they've", "thing", "things", "think", "this", "those", "though", "through", "to", "too", "took", "under", "until",
    "up", "upon", "us", "very", "wanna", "want", "was", "wasn't", "way", "we", "we'd", "we'll", "we're", "we've",
    "well", "went", "were", "weren't", "what", "what's", "whatever", "when", "where", "where's", "whether", "which",
    "while", "who", "who's", "whom", "whose", "why", "will", "with", "within", "without", "won't", "would", "wouldn't",
    "yeah", "yes", "yet", "you", "you'd", "you'll", "you're", "you've", "your", "yours", "yourself", "yourselves",
];

const HESITATIONS: &[&str] =
    &["ah", "ahh", "eh", "er", "erm", "hmm", "mhm", "mm", "uh", "uhh", "uhm", "um", "umm", "ummm"];

/// Spelled-out numbers and multipliers.
#[rustfmt::skip]
const NUMBER_WORDS: &[&str] = &[
    "billion", "billions", "double", "doubled", "dozen", "dozens", "eight", "eighty", "eleven", "fifteen", "fifty",
    "five", "forty", "four", "half", "hundred", "hundreds", "million", "millions", "nine", "ninety", "percent",
    "seven", "seventy", "six", "sixty", "ten", "thirty", "thousand", "thousands", "three", "trillion", "triple",
    "tripled", "twelve", "twenty", "twice", "two",
];

/// Absolutes, superlatives and loaded words of bold claims.
#[rustfmt::skip]
const CLAIM_WORDS: &[&str] = &[
    "absolutely", "always", "best", "biggest", "brutal", "completely", "counterintuitive", "crazy", "dangerous",
    "ever", "every", "everybody", "everyone", "everything", "forget", "guaranteed", "huge", "impossible", "incredible",
    "insane", "least", "lie", "lies", "massive", "mistake", "mistakes", "most", "must", "myth", "myths", "never",
    "nobody", "nothing", "only", "secret", "secrets", "shocking", "stop", "surprising", "truth", "unbelievable",
    "worst", "wrong",
];

/// Words ending in "est" that are not superlatives.
#[rustfmt::skip]
const NOT_SUPERLATIVES: &[&str] = &[
    "arrest", "attest", "behest", "conquest", "contest", "detest", "digest", "earnest", "forest", "harvest", "honest",
    "inquest", "interest", "invest", "latest", "manifest", "midwest", "modest", "northwest", "pretest", "protest",
    "request", "southwest", "suggest",
];

const AUXILIARIES: &[&str] =
    &["are", "can", "could", "did", "do", "does", "has", "have", "is", "should", "was", "were", "will", "would"];

/// Greetings, channel chores and housekeeping.
#[rustfmt::skip]
const SMALL_TALK: &[&str] = &[
    "channel", "coffee", "description", "hello", "hey", "hi", "housekeeping", "lunch", "mic", "microphone", "patreon",
    "sponsor", "sponsored", "subscribe", "subscribed", "subscribing", "thanks", "weather", "weekend", "welcome",
];

/// Discourse markers dropped from the front of a title.
#[rustfmt::skip]
const TITLE_LEADS: &[&str] = &[
    "alright", "also", "and", "anyway", "basically", "but", "listen", "look", "now", "oh", "ok", "okay", "right", "so",
    "then", "well", "yeah", "yes",
];

/// Words that open a subordinate clause.
#[rustfmt::skip]
const SUBORDINATORS: &[&str] = &[
    "although", "because", "even", "if", "since", "though", "unless", "until", "when", "whenever", "whereas",
    "wherever", "which", "while",
];

const MINOR_TITLE_WORDS: &[&str] =
    &["a", "an", "and", "as", "at", "but", "by", "for", "in", "of", "on", "or", "the", "to", "vs", "with"];

/// Words before "kind of"/"sort of" that make it literal ("what kind of").
#[rustfmt::skip]
const NOT_HEDGE_BEFORE: &[&str] = &[
    "a", "any", "different", "every", "new", "one", "other", "right", "same", "some", "that", "the", "these", "this",
    "those", "what", "which", "wrong",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_words() {
        for (raw, norm) in [
            ("Hello,", "hello"),
            ("“Don’t”", "don't"),
            ("3.5%", "3.5"),
            ("$1,000.", "1,000"),
            ("well-known.", "well-known"),
            ("—", ""),
            ("Dr.", "dr"),
        ] {
            assert_eq!(normalize(raw), norm, "{raw:?}");
        }
    }

    #[test]
    fn stems_plurals_only() {
        for (norm, stemmed) in [
            ("interests", "interest"),
            ("companies", "company"),
            ("boxes", "box"),
            ("business", "business"),
            ("bus", "bus"),
            ("analysis", "analysis"),
            ("john's", "john"),
            ("1990s", "1990s"),
            ("sleeping", "sleep"),
            ("running", "run"),
            ("falling", "fall"),
            ("thing", "thing"),
        ] {
            assert_eq!(stem(norm), stemmed, "{norm:?}");
        }
    }

    #[test]
    fn endings() {
        assert_eq!(Ending::of("done."), Ending::Full);
        assert_eq!(Ending::of("done!\""), Ending::Full);
        assert_eq!(Ending::of("right?"), Ending::Question);
        assert_eq!(Ending::of("so..."), Ending::Trailing);
        assert_eq!(Ending::of("and,"), Ending::Open);
    }

    #[test]
    fn flags_fillers() {
        let raws = ["Um,", "I", "mean,", "it", "was,", "like,", "you", "know,", "kind", "of", "big."];
        let norms: Vec<String> = raws.iter().map(|r| normalize(r)).collect();
        let norms: Vec<&str> = norms.iter().map(String::as_str).collect();
        let f = filler_flags(&norms, &raws);
        assert_eq!(f, [true, true, true, false, false, true, true, true, true, true, false]);

        let raws = ["Do", "you", "know", "what", "kind", "of", "dog", "I", "like?"];
        let norms: Vec<String> = raws.iter().map(|r| normalize(r)).collect();
        let norms: Vec<&str> = norms.iter().map(String::as_str).collect();
        assert!(filler_flags(&norms, &raws).iter().all(|f| !f));
    }

    #[test]
    fn lexicons_are_sorted_for_binary_search() {
        for list in [
            STOPWORDS,
            HESITATIONS,
            NUMBER_WORDS,
            CLAIM_WORDS,
            NOT_SUPERLATIVES,
            AUXILIARIES,
            SMALL_TALK,
            TITLE_LEADS,
            SUBORDINATORS,
            MINOR_TITLE_WORDS,
            NOT_HEDGE_BEFORE,
        ] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{list:?}");
        }
    }

    #[test]
    fn superlatives_skip_look_alikes() {
        assert!(is_claim_word("fastest"));
        assert!(!is_claim_word("interest"));
        assert!(!is_claim_word("honest"));
    }
}
