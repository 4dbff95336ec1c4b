//! Candidate windows and their sub-scores.
//!
//! For each start sentence the window grows one sentence at a time while
//! it fits the duration range; its term counts are updated incrementally,
//! so the whole search is O(sentences × sentences per window × terms per
//! sentence), with every per-window quantity read from prefix sums.

use videdit_core::short::SubScores;

use super::AnalyzeOptions;
use super::prepare::{Context, Prepared};
use super::text::Ending;

/// Weights of the sub-scores in the total; they sum to 1.
pub(super) const WEIGHTS: SubScores =
    SubScores { hook: 0.25, completeness: 0.20, coherence: 0.15, salience: 0.15, delivery: 0.10, filler: 0.15 };
/// Points added (before the cap at 100) to a window with two or more
/// mentions of the caller's keywords.
pub(super) const KEYWORD_BONUS: f32 = 15.0;
/// Salience: the density at which the sub-score reaches 1 − 1/e.
const SALIENCE_SCALE: f32 = 0.15;
/// Coherence: the share of repeated content words that counts as fully cohesive.
const COHESION_FULL: f32 = 0.4;
/// Coherence: the share of content words in speech below which a window
/// has too little substance to show a topic either way.
const CONTENT_DENSITY_FULL: f32 = 0.35;
/// Coherence: the cosine to a neighbour that counts as the same topic.
const SAME_TOPIC_COSINE: f32 = 0.35;
/// Filler: the share of filler words that scores 0.
const FILLER_ZERO: f32 = 0.10;
/// Delivery: the share of dead air that scores 0.
const DEAD_AIR_ZERO: f64 = 0.25;

/// A scored window of whole sentences `first..=last`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Candidate {
    pub first: usize,
    pub last: usize,
    pub start: f64,
    pub end: f64,
    /// 0..=100.
    pub score: f32,
    pub sub: SubScores,
    /// 0..=1: how strongly it matches the caller's keywords.
    pub keyword: f32,
}

/// The term counts of the window being grown.
pub(super) struct Window {
    count: Vec<u32>,
    sentences_with: Vec<u32>,
    touched: Vec<u32>,
    content: u32,
    /// Content words whose term occurs in two or more of its sentences.
    repeated: u32,
    /// Squared norm of the window's `count × idf` vector.
    norm2: f64,
}

impl Window {
    pub(super) fn new(vocabulary: usize) -> Self {
        Self {
            count: vec![0; vocabulary],
            sentences_with: vec![0; vocabulary],
            touched: Vec::new(),
            content: 0,
            repeated: 0,
            norm2: 0.0,
        }
    }

    pub(super) fn clear(&mut self) {
        for &t in &self.touched {
            self.count[t as usize] = 0;
            self.sentences_with[t as usize] = 0;
        }
        self.touched.clear();
        self.content = 0;
        self.repeated = 0;
        self.norm2 = 0.0;
    }

    pub(super) fn push(&mut self, p: &Prepared<'_>, sentence: usize) {
        for &(t, c) in &p.info[sentence].terms {
            let i = t as usize;
            let old = self.count[i];
            if old == 0 {
                self.touched.push(t);
            }
            self.count[i] = old + c;
            self.sentences_with[i] += 1;
            match self.sentences_with[i] {
                2 => self.repeated += old + c,
                n if n > 2 => self.repeated += c,
                _ => {}
            }
            let idf = f64::from(p.idf[i]);
            self.norm2 += idf * idf * (f64::from(old + c).powi(2) - f64::from(old).powi(2));
            self.content += c;
        }
    }

    /// Cosine similarity with a context vector (0 when either is empty).
    fn cosine(&self, p: &Prepared<'_>, ctx: &Context) -> Option<f32> {
        if ctx.terms.is_empty() {
            return None;
        }
        if self.norm2 <= 0.0 || ctx.norm <= 0.0 {
            return Some(0.0);
        }
        let dot: f64 = ctx
            .terms
            .iter()
            .map(|&(t, w)| f64::from(w) * f64::from(self.count[t as usize]) * f64::from(p.idf[t as usize]))
            .sum();
        Some((dot / (self.norm2.sqrt() * f64::from(ctx.norm))) as f32)
    }

    /// Salience density: the share of the window's content words that
    /// belong to terms repeated here, each weighted by the share of the
    /// term's uses in the whole transcript that fall inside the window.
    fn salience_density(&self, p: &Prepared<'_>) -> f32 {
        if self.content == 0 {
            return 0.0;
        }
        let sum: f32 =
            self.touched.iter().map(|&t| term_salience(self.count[t as usize], p.term_total[t as usize])).sum();
        sum / self.content as f32
    }
}

/// One term's weight in a window: its count there times the share of all
/// its uses that are there (frequent here, rare elsewhere); terms said
/// only once in the window do not count. Unlike a ratio to the expected
/// count, this does not favour short windows.
pub(super) fn term_salience(count: u32, total: u32) -> f32 {
    if count < 2 || total == 0 {
        return 0.0;
    }
    count as f32 * (count as f32 / total as f32).min(1.0)
}

/// Duration buckets: up to three equal slices of the duration range; each
/// start sentence keeps its best window per bucket.
fn bucket_count(o: &AnalyzeOptions) -> usize {
    ((o.max_duration - o.min_duration) / 15.0).round().clamp(1.0, 3.0) as usize
}

fn bucket(o: &AnalyzeOptions, buckets: usize, duration: f64) -> usize {
    let span = o.max_duration - o.min_duration;
    if buckets == 1 || span <= 0.0 {
        return 0;
    }
    (((duration - o.min_duration) / span * buckets as f64).floor().max(0.0) as usize).min(buckets - 1)
}

/// Every start sentence's best window per duration bucket.
pub(super) fn candidates(p: &Prepared<'_>, o: &AnalyzeOptions) -> Vec<Candidate> {
    let n = p.sentences.len();
    let eligible = |i: usize| {
        let s = &p.sentences[i];
        o.search_range.is_none_or(|r| s.start >= r.start() && s.end <= r.end())
    };
    let buckets = bucket_count(o);
    let mut window = Window::new(p.vocabulary_len());
    let mut out = Vec::new();
    let mut best: Vec<Option<Candidate>> = vec![None; buckets];
    for first in 0..n {
        if !eligible(first) {
            continue;
        }
        window.clear();
        best.iter_mut().for_each(|b| *b = None);
        let start = p.sentences[first].start;
        let mut end = start;
        for last in first..n {
            if !eligible(last) {
                break;
            }
            end = end.max(p.sentences[last].end);
            let duration = end - start;
            if duration > o.max_duration {
                break;
            }
            window.push(p, last);
            if duration < o.min_duration {
                continue;
            }
            let c = score(p, &window, first, last, start, end);
            let slot = &mut best[bucket(o, buckets, duration)];
            if slot.as_ref().is_none_or(|b| c.score > b.score) {
                *slot = Some(c);
            }
        }
        out.extend(best.iter_mut().filter_map(Option::take));
    }
    out
}

/// Scores sentences `first..=last` from scratch (the search grows windows
/// incrementally instead; the tests check that both agree).
#[cfg(test)]
pub(super) fn evaluate(p: &Prepared<'_>, first: usize, last: usize) -> Candidate {
    let mut window = Window::new(p.vocabulary_len());
    for s in first..=last {
        window.push(p, s);
    }
    let start = p.sentences[first].start;
    let end = p.sentences[first..=last].iter().map(|s| s.end).fold(start, f64::max);
    score(p, &window, first, last, start, end)
}

fn score(p: &Prepared<'_>, w: &Window, first: usize, last: usize, start: f64, end: f64) -> Candidate {
    let a = p.sentences[first].words.start;
    let b = p.sentences[last].words.end;
    let duration = (end - start).max(1e-6);
    let spoken = (p.sums.spoken[b] - p.sums.spoken[a]).max(1);

    let hook = hook(p, w, first);
    let completeness = completeness(p, first, last);
    let coherence = coherence(p, w, first, last, spoken);

    let keyword_hits = p.sums.keyword[b] - p.sums.keyword[a];
    let keyword = (keyword_hits as f32 / 2.0).min(1.0);
    let salience = 1.0 - (-w.salience_density(p) / SALIENCE_SCALE).exp();
    let salience = 1.0 - (1.0 - salience) * (1.0 - 0.8 * keyword);

    let delivery = delivery(p, a, b, spoken, start, end, duration);
    let fillers = p.sums.filler[b] - p.sums.filler[a];
    let filler = 1.0 - (fillers as f32 / spoken as f32 / FILLER_ZERO).min(1.0);

    let sub = SubScores {
        hook: unit(hook),
        completeness: unit(completeness),
        coherence: unit(coherence),
        salience: unit(salience),
        delivery: unit(delivery),
        filler: unit(filler),
    };
    let weighted = WEIGHTS.hook * sub.hook
        + WEIGHTS.completeness * sub.completeness
        + WEIGHTS.coherence * sub.coherence
        + WEIGHTS.salience * sub.salience
        + WEIGHTS.delivery * sub.delivery
        + WEIGHTS.filler * sub.filler;
    let score = (100.0 * weighted + KEYWORD_BONUS * keyword).clamp(0.0, 100.0);
    Candidate { first, last, start, end, score, sub, keyword }
}

fn unit(x: f32) -> f32 {
    if x.is_finite() { x.clamp(0.0, 1.0) } else { 0.0 }
}

/// The opening sentence's hook, raised a little when the words it
/// introduces come back later in the window (it sets up the topic).
fn hook(p: &Prepared<'_>, w: &Window, first: usize) -> f32 {
    let info = &p.info[first];
    let reprised = info.terms.iter().filter(|&&(t, c)| w.count[t as usize] > c).count();
    let setup = (reprised as f32 / 2.0).min(1.0);
    1.0 - (1.0 - info.hook.score) * (1.0 - 0.25 * setup)
}

/// Starts on a self-contained sentence, ends on a full stop, and the
/// sentence after it does not carry on the same thought.
fn completeness(p: &Prepared<'_>, first: usize, last: usize) -> f32 {
    let opening = 1.0 - p.info[first].dangling;
    let ending = match p.info[last].ending {
        Ending::Full => 1.0,
        Ending::Question => 0.85,
        Ending::Trailing => 0.6,
        Ending::Open => 0.5,
    };
    let carried_on = p.info.get(last + 1).map_or(0.0, |next| next.continuation);
    opening * ending * (1.0 - carried_on)
}

/// Lexical cohesion inside (share of content words whose term recurs in
/// another sentence of the window) against cohesion across the boundary
/// (cosine with the sentences just before and after: high means the clip
/// cuts a topic in half).
fn coherence(p: &Prepared<'_>, w: &Window, first: usize, last: usize, spoken: u32) -> f32 {
    if w.content == 0 {
        return 0.0;
    }
    let inside = (w.repeated as f32 / w.content as f32 / COHESION_FULL).min(1.0);
    let separate = |ctx: &Context| w.cosine(p, ctx).map_or(1.0, |c| 1.0 - (c / SAME_TOPIC_COSINE).min(1.0));
    let boundary = (separate(&p.info[first].before) + separate(&p.info[last].after)) / 2.0;
    // Small talk has too few content words to hold a topic at all.
    let substance = (w.content as f32 / spoken as f32 / CONTENT_DENSITY_FULL).min(1.0);
    (0.6 * inside + 0.4 * boundary) * substance
}

/// Speech rate (against the speaker's own median and an absolute comfort
/// band), dead air, loudness against the talk's median level when audio is
/// given, and the recogniser's confidence as a clarity proxy.
fn delivery(p: &Prepared<'_>, a: usize, b: usize, spoken: u32, start: f64, end: f64, duration: f64) -> f32 {
    let rate = f64::from(spoken) / duration;
    let relative = (0.5 + (rate / p.median_rate - 1.0) * 2.0).clamp(0.0, 1.0);
    let absolute = if rate < 1.2 {
        0.0
    } else if rate < 2.2 {
        rate - 1.2
    } else if rate <= 3.6 {
        1.0
    } else {
        (1.0 - (rate - 3.6) / 2.8).max(0.5)
    };
    let rate_score = (0.5 * relative + 0.5 * absolute) as f32;

    let dead = if b > a + 1 { p.sums.dead_air[b] - p.sums.dead_air[a + 1] } else { 0.0 };
    let pauses = (1.0 - (dead / duration / DEAD_AIR_ZERO).min(1.0)) as f32;

    let n = (b - a).max(1) as f64;
    let confidence = (p.sums.probability[b] - p.sums.probability[a]) / n;
    let clarity = ((confidence - 0.4) / 0.5).clamp(0.0, 1.0) as f32;

    match p.loudness.as_ref().and_then(|l| l.relative_db(start, end)) {
        Some(db) => {
            let loud = (1.0 / (1.0 + (-db / 3.0).exp())) as f32;
            0.35 * rate_score + 0.30 * pauses + 0.20 * loud + 0.15 * clarity
        }
        None => 0.45 * rate_score + 0.40 * pauses + 0.15 * clarity,
    }
}
