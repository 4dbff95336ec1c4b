//! One pass over the transcript that pre-computes everything the window
//! scorer needs: sentences, per-sentence term vectors and cues, and prefix
//! sums over words so that any window's counts cost O(1).

use std::collections::HashMap;

use videdit_core::transcript::{Transcript, Word};

use super::audio::{AudioFeatures, Loudness};
use super::sentences::{self, Sentence};
use super::text::{self, Ending};

/// Pauses up to this long between words are natural; longer ones count as
/// dead air.
const NATURAL_GAP_SECONDS: f64 = 0.3;
/// How far (seconds) the context on either side of a window reaches.
const CONTEXT_SECONDS: f64 = 30.0;
/// How many sentences on either side of a window form its context.
const CONTEXT_SENTENCES: usize = 2;

/// What makes an opening sentence a hook, for the reason text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HookCue {
    Question,
    Teaser,
    BoldClaim,
    Number,
    DirectAddress,
}

/// A sentence's strength as an opening line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Hook {
    /// 0..=1.
    pub score: f32,
    /// The strongest cue, if any.
    pub cue: Option<HookCue>,
}

/// A weighted term vector of the sentences next to a window.
#[derive(Debug, Clone, Default)]
pub(super) struct Context {
    /// `(term, count × idf)`, sorted by term.
    pub terms: Vec<(u32, f32)>,
    /// Euclidean norm of the weights.
    pub norm: f32,
}

/// Per-sentence features.
#[derive(Debug, Clone)]
pub(super) struct SentenceInfo {
    /// `(term, count)` of its content words, sorted by term.
    pub terms: Vec<(u32, u32)>,
    /// How good an opening line it is.
    pub hook: Hook,
    /// 0..=0.8: how much it leans on what came before ("And so…").
    pub dangling: f32,
    /// 0..=0.35: how much it continues the sentence before it, so that a
    /// clip ending just before it would be unfinished.
    pub continuation: f32,
    /// How its last word ends.
    pub ending: Ending,
    /// Up to two sentences before it.
    pub before: Context,
    /// Up to two sentences after it.
    pub after: Context,
}

/// Prefix sums over words: `x[b] - x[a]` is the total over words `a..b`.
#[derive(Debug, Clone, Default)]
pub(super) struct Sums {
    /// Words with any letter or digit.
    pub spoken: Vec<u32>,
    /// Filler words.
    pub filler: Vec<u32>,
    /// Word confidences.
    pub probability: Vec<f64>,
    /// Pause time beyond [`NATURAL_GAP_SECONDS`] before each word.
    pub dead_air: Vec<f64>,
    /// Occurrences of the caller's keywords (counted at their first word).
    pub keyword: Vec<u32>,
}

/// The analysed transcript.
pub(super) struct Prepared<'t> {
    pub words: Vec<&'t Word>,
    /// Normalised text per word (empty for punctuation-only words).
    pub norms: Vec<String>,
    /// Content term per word.
    pub term_of: Vec<Option<u32>>,
    /// Filler flag per word.
    pub filler: Vec<bool>,
    pub sentences: Vec<Sentence>,
    pub info: Vec<SentenceInfo>,
    /// Occurrences of each term in the whole transcript.
    pub term_total: Vec<u32>,
    /// Inverse sentence frequency of each term.
    pub idf: Vec<f32>,
    pub sums: Sums,
    /// The speaker's median words per second over sentences.
    pub median_rate: f64,
    pub loudness: Option<Loudness>,
    /// Index into the caller's keywords of the one starting at each word.
    pub keyword_at: Vec<Option<usize>>,
}

impl<'t> Prepared<'t> {
    pub(super) fn new(transcript: &'t Transcript, audio: Option<&AudioFeatures>, keywords: &[String]) -> Self {
        let words: Vec<&Word> = transcript.words().collect();
        let sentences = sentences::sentences(transcript);
        let norms: Vec<String> = words.iter().map(|w| text::normalize(&w.text)).collect();
        let filler = {
            let n: Vec<&str> = norms.iter().map(String::as_str).collect();
            let r: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
            text::filler_flags(&n, &r)
        };

        // Terms: interned in order of first appearance, so ids are deterministic.
        let mut ids: HashMap<String, u32> = HashMap::new();
        let mut term_total: Vec<u32> = Vec::new();
        let mut term_of = Vec::with_capacity(words.len());
        for (norm, &is_filler) in norms.iter().zip(&filler) {
            let term = is_content(norm, is_filler).then(|| {
                let stem = text::stem(norm);
                let next = ids.len() as u32;
                let id = *ids.entry(stem).or_insert(next);
                if id as usize == term_total.len() {
                    term_total.push(0);
                }
                term_total[id as usize] += 1;
                id
            });
            term_of.push(term);
        }

        let sentence_terms: Vec<Vec<(u32, u32)>> =
            sentences.iter().map(|s| count_terms(&term_of[s.words.clone()])).collect();
        let mut sentence_freq = vec![0_u32; term_total.len()];
        for terms in &sentence_terms {
            for &(t, _) in terms {
                sentence_freq[t as usize] += 1;
            }
        }
        let n_sentences = sentences.len().max(1) as f32;
        let idf: Vec<f32> = sentence_freq.iter().map(|&df| (1.0 + n_sentences / df.max(1) as f32).ln()).collect();

        let mut info: Vec<SentenceInfo> = sentences
            .iter()
            .zip(sentence_terms)
            .map(|(s, terms)| {
                let range = s.words.clone();
                let raws: Vec<&str> = words[range.clone()].iter().map(|w| w.text.as_str()).collect();
                let ns: Vec<&str> = norms[range.clone()].iter().map(String::as_str).collect();
                let cues = Cues::new(&raws, &ns, &filler[range]);
                SentenceInfo {
                    terms,
                    hook: cues.hook(),
                    dangling: cues.dangling(),
                    continuation: cues.continuation(),
                    ending: raws.last().map_or(Ending::Open, |r| Ending::of(r)),
                    before: Context::default(),
                    after: Context::default(),
                }
            })
            .collect();
        for i in 0..sentences.len() {
            let lo = i.saturating_sub(CONTEXT_SENTENCES);
            let before: Vec<usize> =
                (lo..i).filter(|&j| sentences[j].end >= sentences[i].start - CONTEXT_SECONDS).collect();
            let hi = (i + 1 + CONTEXT_SENTENCES).min(sentences.len());
            let after: Vec<usize> =
                (i + 1..hi).filter(|&j| sentences[j].start <= sentences[i].end + CONTEXT_SECONDS).collect();
            info[i].before = context(&info, &idf, &before);
            info[i].after = context(&info, &idf, &after);
        }

        let keyword_at = match_keywords(&norms, keywords);
        let sums = Sums::new(&words, &norms, &filler, &keyword_at);
        let median_rate = median_rate(&sentences, &sums);
        let loudness = audio.and_then(Loudness::new);
        Self {
            words,
            norms,
            term_of,
            filler,
            sentences,
            info,
            term_total,
            idf,
            sums,
            median_rate,
            loudness,
            keyword_at,
        }
    }

    /// Number of distinct terms.
    pub(super) fn vocabulary_len(&self) -> usize {
        self.term_total.len()
    }
}

/// Whether a normalised word carries meaning: not a stop word, filler or
/// spelled-out number, and at least three characters unless it has digits.
fn is_content(norm: &str, is_filler: bool) -> bool {
    !is_filler
        && !norm.is_empty()
        && !text::is_stopword(norm)
        && !text::is_number_word(norm)
        && (norm.chars().any(|c| c.is_ascii_digit())
            || (norm.chars().count() >= 3 && norm.chars().any(char::is_alphabetic)))
}

/// `(term, count)` sorted by term.
fn count_terms(terms: &[Option<u32>]) -> Vec<(u32, u32)> {
    let mut ts: Vec<u32> = terms.iter().flatten().copied().collect();
    ts.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for t in ts {
        match out.last_mut() {
            Some((last, c)) if *last == t => *c += 1,
            _ => out.push((t, 1)),
        }
    }
    out
}

fn context(info: &[SentenceInfo], idf: &[f32], sentences: &[usize]) -> Context {
    let mut all: Vec<(u32, u32)> = sentences.iter().flat_map(|&j| info[j].terms.iter().copied()).collect();
    all.sort_unstable_by_key(|&(t, _)| t);
    let mut terms: Vec<(u32, f32)> = Vec::new();
    for (t, c) in all {
        let w = c as f32 * idf[t as usize];
        match terms.last_mut() {
            Some((last, acc)) if *last == t => *acc += w,
            _ => terms.push((t, w)),
        }
    }
    let norm = terms.iter().map(|&(_, w)| w * w).sum::<f32>().sqrt();
    Context { terms, norm }
}

/// For each word, the index of the first keyword whose stemmed words start
/// there. Punctuation-only words are skipped when matching.
fn match_keywords(norms: &[String], keywords: &[String]) -> Vec<Option<usize>> {
    let mut out = vec![None; norms.len()];
    let patterns: Vec<Vec<String>> = keywords
        .iter()
        .map(|k| k.split_whitespace().map(text::normalize).filter(|n| !n.is_empty()).map(|n| text::stem(&n)).collect())
        .collect();
    if patterns.iter().all(Vec::is_empty) {
        return out;
    }
    let spoken: Vec<(usize, String)> =
        norms.iter().enumerate().filter(|(_, n)| !n.is_empty()).map(|(i, n)| (i, text::stem(n))).collect();
    for (pos, (word, _)) in spoken.iter().enumerate() {
        out[*word] = patterns.iter().position(|p| {
            !p.is_empty()
                && spoken.len() - pos >= p.len()
                && p.iter().zip(&spoken[pos..]).all(|(want, (_, have))| want == have)
        });
    }
    out
}

impl Sums {
    fn new(words: &[&Word], norms: &[String], filler: &[bool], keyword_at: &[Option<usize>]) -> Self {
        let n = words.len();
        let mut s = Self {
            spoken: Vec::with_capacity(n + 1),
            filler: Vec::with_capacity(n + 1),
            probability: Vec::with_capacity(n + 1),
            dead_air: Vec::with_capacity(n + 1),
            keyword: Vec::with_capacity(n + 1),
        };
        let (mut spoken, mut fill, mut prob, mut dead, mut kw) = (0, 0, 0.0, 0.0, 0);
        for i in 0..=n {
            s.spoken.push(spoken);
            s.filler.push(fill);
            s.probability.push(prob);
            s.dead_air.push(dead);
            s.keyword.push(kw);
            if i == n {
                break;
            }
            spoken += u32::from(!norms[i].is_empty());
            fill += u32::from(filler[i]);
            let p = words[i].probability;
            prob += if p.is_finite() { f64::from(p.clamp(0.0, 1.0)) } else { 0.5 };
            if i > 0 {
                dead += (words[i].start - words[i - 1].end - NATURAL_GAP_SECONDS).max(0.0);
            }
            kw += u32::from(keyword_at[i].is_some());
        }
        s
    }
}

/// Median words per second over sentences of at least four words and a second.
fn median_rate(sentences: &[Sentence], sums: &Sums) -> f64 {
    let mut rates: Vec<f64> = sentences
        .iter()
        .filter_map(|s| {
            let n = sums.spoken[s.words.end] - sums.spoken[s.words.start];
            let d = s.end - s.start;
            (n >= 4 && d >= 1.0).then(|| f64::from(n) / d)
        })
        .collect();
    if rates.is_empty() {
        return 2.5;
    }
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// The cue words of one sentence.
struct Cues<'a> {
    /// Raw text of its words with letters or digits.
    raws: Vec<&'a str>,
    /// Their normalised forms.
    norms: Vec<&'a str>,
    /// Their filler flags.
    filler: Vec<bool>,
}

/// Openers that tease what comes next.
const TEASERS: &[&[&str]] = &[
    &["did", "you", "know"],
    &["have", "you", "ever"],
    &["what", "if"],
    &["here's", "the", "thing"],
    &["here's", "why"],
    &["here's", "what"],
    &["here's", "how"],
    &["the", "secret"],
    &["the", "truth"],
    &["nobody", "tells", "you"],
    &["no", "one", "tells", "you"],
    &["the", "real", "reason"],
    &["the", "reason", "why"],
    &["turns", "out"],
    &["the", "problem", "is"],
    &["let", "me", "tell", "you"],
    &["you", "won't", "believe"],
    &["i", "was", "wrong"],
    &["changed", "my", "life"],
    &["the", "one", "thing"],
];

impl<'a> Cues<'a> {
    fn new(raws: &[&'a str], norms: &[&'a str], filler: &[bool]) -> Self {
        let mut c = Self { raws: Vec::new(), norms: Vec::new(), filler: Vec::new() };
        for ((&r, &n), &f) in raws.iter().zip(norms).zip(filler) {
            if !n.is_empty() {
                c.raws.push(r);
                c.norms.push(n);
                c.filler.push(f);
            }
        }
        c
    }

    /// The words that are not fillers.
    fn plain(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.norms.iter().zip(&self.filler).filter(|(_, f)| !**f).map(|(n, _)| *n)
    }

    fn is_question(&self) -> bool {
        self.raws.last().is_some_and(|r| Ending::of(r) == Ending::Question)
    }

    fn hook(&self) -> Hook {
        let plain: Vec<&str> = self.plain().collect();
        let first = plain.first().copied().unwrap_or("");
        let second = plain.get(1).copied().unwrap_or("");
        let mut cues: Vec<(HookCue, f32)> = Vec::new();
        if self.is_question() {
            cues.push((HookCue::Question, 0.55));
        } else if plain.len() <= 20
            && ((text::is_wh_word(first) && text::is_aux(second))
                || first.ends_with("'s") && text::is_wh_word(first.trim_end_matches("'s"))
                || (text::is_aux(first) && text::is_subject(second)))
        {
            cues.push((HookCue::Question, 0.3));
        }
        if TEASERS.iter().any(|p| plain.windows(p.len()).any(|w| w == *p)) {
            cues.push((HookCue::Teaser, 0.45));
        }
        let claims = plain.iter().filter(|w| text::is_claim_word(w)).count();
        if claims > 0 {
            cues.push((HookCue::BoldClaim, if claims > 1 { 0.5 } else { 0.35 }));
        }
        let digits =
            self.raws.iter().any(|r| r.contains(|c: char| c.is_ascii_digit() || matches!(c, '%' | '$' | '€' | '£')));
        if digits || plain.iter().any(|w| text::is_number_word(w)) {
            // A statistic ("ninety percent", "3%") is a stronger hook than a count.
            let statistic = plain.iter().any(|w| matches!(*w, "percent" | "percentage"))
                || self.raws.iter().any(|r| r.contains('%'));
            cues.push((HookCue::Number, if statistic { 0.45 } else { 0.35 }));
        }
        if plain.iter().any(|w| text::is_you(w)) || text::is_imperative_opener(first) {
            cues.push((HookCue::DirectAddress, 0.25));
        }
        let miss: f32 = cues.iter().map(|&(_, w)| 1.0 - w).product();
        let mut score = 0.1 + 0.9 * (1.0 - miss);
        // Openings that lose viewers.
        if self.filler.first() == Some(&true) {
            score *= 0.6;
        }
        if plain.iter().any(|w| text::is_small_talk_word(w)) {
            score *= 0.4;
        }
        if plain.len() < 4 && !self.is_question() {
            score *= 0.5;
        }
        if plain.len() > 35 {
            score *= 0.8;
        }
        // The strongest cue; the earlier variant wins ties.
        let cue = cues.iter().fold(None::<(HookCue, f32)>, |best, &(c, w)| match best {
            Some((_, bw)) if bw >= w => best,
            _ => Some((c, w)),
        });
        Hook { score: score.clamp(0.0, 1.0), cue: cue.map(|(c, _)| c) }
    }

    fn starts_lower(&self) -> bool {
        self.raws.first().is_some_and(|r| text::starts_lower(r))
    }

    fn dangling(&self) -> f32 {
        let first = self.plain().next().unwrap_or("");
        let lower = if self.starts_lower() { 0.15 } else { 0.0 };
        (text::dangling_weight(first) + lower).min(0.8)
    }

    fn continuation(&self) -> f32 {
        let first = self.plain().next().unwrap_or("");
        let lower = if self.starts_lower() { 0.1 } else { 0.0 };
        (text::continuation_weight(first) + lower).min(0.35)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cues(sentence: &str) -> (Hook, f32) {
        let raws: Vec<&str> = sentence.split_whitespace().collect();
        let norms: Vec<String> = raws.iter().map(|r| text::normalize(r)).collect();
        let ns: Vec<&str> = norms.iter().map(String::as_str).collect();
        let filler = text::filler_flags(&ns, &raws);
        let c = Cues::new(&raws, &ns, &filler);
        (c.hook(), c.dangling())
    }

    #[test]
    fn detects_hooks() {
        let plain = cues("The meeting was on a Tuesday in the office.").0;
        assert!(plain.score < 0.2 && plain.cue.is_none(), "{plain:?}");
        for (s, cue) in [
            ("Why do smart people make terrible money decisions?", HookCue::Question),
            ("Did you know most startups fail in year three?", HookCue::Question),
            ("Ninety percent of what we call talent is practice.", HookCue::Number),
            ("In 2019 we lost 4 million dollars.", HookCue::Number),
            ("Everything you were taught about sleep is wrong.", HookCue::BoldClaim),
            ("Imagine waking up with your debt gone.", HookCue::DirectAddress),
            ("Here's the thing about habits that nobody mentions.", HookCue::Teaser),
        ] {
            let h = cues(s).0;
            assert_eq!(h.cue, Some(cue), "{s}: {h:?}");
            assert!(h.score > plain.score + 0.2, "{s}: {h:?}");
        }
        let meta = cues("Hi everyone, welcome back to the channel, don't forget to subscribe!").0;
        assert!(meta.score < 0.3, "{meta:?}");
        let filler = cues("Um, so, do you think the results are good?").0;
        assert!(filler.score < cues("Do you think the results are good?").0.score);
    }

    #[test]
    fn detects_dangling_openers() {
        assert_eq!(cues("The plan worked.").1, 0.0);
        assert!(cues("And that is why it failed.").1 >= 0.5);
        assert!(cues("But the bank said no.").1 >= 0.5);
        assert!(cues("So we left.").1 >= 0.3);
        assert!(cues("That changed everything.").1 >= 0.3);
        assert!(cues("Um, and then we left.").1 >= 0.5, "fillers are skipped");
        assert!(cues("it was late.").1 > cues("It was late.").1, "a lower-case start is a cut");
    }
}
