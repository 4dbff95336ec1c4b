//! Burned-in captions: caption groups from the words' timestamps, and the
//! ASS script that libass draws them from.
//!
//! - Words are cut to the clip and shifted to its origin, so every time in
//!   the script is clip time.
//! - Words gather into groups of one to three, breaking after clause
//!   punctuation, at pauses over [`MAX_PAUSE_IN_GROUP`], and where the group
//!   would no longer fit in [`MAX_LINES`] lines of the safe area.
//! - Each group is laid out in one or two lines, breaking only between
//!   words; a single word too wide for the safe area is shrunk, never split.
//!   libass wrapping is off (`WrapStyle: 2`) so the layout is ours alone.
//! - Each group has one event per word: the group's text with that word in
//!   the highlight colour, from the word's start to the next word's start
//!   (the last word: until its end plus [`HOLD`], or the next group). So the
//!   highlight moves exactly on the word timestamps, to the centisecond.

use std::fmt::Write as _;
use std::path::PathBuf;

use videdit_core::recipe::{Aspect, CaptionStyle};
use videdit_core::time_range::TimeRange;
use videdit_core::transcript::Word;

/// Most words in one caption group.
pub const MAX_GROUP_WORDS: usize = 3;
/// Most lines in one caption group.
pub const MAX_LINES: usize = 2;
/// A pause longer than this (seconds) between two words starts a new group.
pub const MAX_PAUSE_IN_GROUP: f64 = 0.6;
/// How long (seconds) a group stays up after its last word ends, unless the
/// next group starts sooner.
pub const HOLD: f64 = 0.5;
/// Line height as a multiple of the font size (libass with Inter or DejaVu).
const LINE_HEIGHT: f64 = 1.25;

/// The font captions are drawn with: a file from an OS font package, and
/// the family name libass matches it by.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionFont {
    /// Family name as the font file declares it.
    pub family: String,
    /// The font file; the renderer hands libass its directory.
    pub file: PathBuf,
    /// Whether the style asks for bold (a regular-weight family name with a
    /// bold file) or not (the family name is already the heavy face).
    pub bold: bool,
    /// Advance widths relative to Inter Extra Bold, for line fitting.
    pub width_scale: f64,
}

impl CaptionFont {
    /// Inter Extra Bold (Debian package `fonts-inter`), the caption font.
    #[must_use]
    pub fn inter() -> Self {
        Self {
            family: "Inter Extra Bold".into(),
            file: "/usr/share/fonts/opentype/inter/Inter-ExtraBold.otf".into(),
            bold: false,
            width_scale: 1.0,
        }
    }

    /// DejaVu Sans Bold (`fonts-dejavu-core`), the fallback.
    #[must_use]
    pub fn dejavu() -> Self {
        Self {
            family: "DejaVu Sans".into(),
            file: "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf".into(),
            bold: true,
            width_scale: 1.12,
        }
    }

    /// The first installed of [`CaptionFont::inter`] and [`CaptionFont::dejavu`].
    #[must_use]
    pub fn installed() -> Option<Self> {
        [Self::inter(), Self::dejavu()].into_iter().find(|f| f.file.is_file())
    }
}

/// An sRGB colour.
pub type Rgb = [u8; 3];

/// White, the colour of words not being spoken.
pub const WHITE: Rgb = [255, 255, 255];
/// Yellow, the colour of the word being spoken.
pub const YELLOW: Rgb = [255, 230, 0];

/// How one caption style looks (sizes relative to the font size).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Look {
    font_scale: f64,
    uppercase: bool,
    active: Rgb,
    /// Outline width, or the box padding when `boxed`.
    outline: f64,
    shadow: f64,
    boxed: bool,
    /// Size of the spoken word relative to the others.
    active_scale: f64,
}

fn look(style: CaptionStyle) -> Look {
    match style {
        CaptionStyle::Bold | CaptionStyle::None => Look {
            font_scale: 1.0,
            uppercase: true,
            active: YELLOW,
            outline: 0.075,
            shadow: 0.03,
            boxed: false,
            active_scale: 1.0,
        },
        CaptionStyle::Highlight => Look {
            font_scale: 0.95,
            uppercase: false,
            active: YELLOW,
            outline: 0.05,
            shadow: 0.04,
            boxed: false,
            active_scale: 1.15,
        },
        CaptionStyle::Boxed => Look {
            font_scale: 0.85,
            uppercase: false,
            active: YELLOW,
            outline: 0.2,
            shadow: 0.0,
            boxed: true,
            active_scale: 1.0,
        },
    }
}

/// The colour of the spoken word in `style` (`None` without captions).
#[must_use]
pub fn active_colour(style: CaptionStyle) -> Option<Rgb> {
    (style != CaptionStyle::None).then(|| look(style).active)
}

/// Where and how large captions are drawn in one output frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CaptionLayout {
    /// Frame width (the script's `PlayResX`).
    pub width: u32,
    /// Frame height (the script's `PlayResY`).
    pub height: u32,
    /// Horizontal centre of the caption block.
    pub center_x: f64,
    /// Vertical centre of the caption block.
    pub center_y: f64,
    /// Widest a line may be, outline included: the frame less the side
    /// margins of the platforms' UI (on 9:16, the buttons down the right).
    pub max_line_width: f64,
    /// Font size in pixels.
    pub font_size: f64,
    /// Outline width (box padding for boxed captions) in pixels.
    pub outline: f64,
    /// Shadow offset in pixels.
    pub shadow: f64,
}

impl CaptionLayout {
    /// The layout of `style` captions in an `aspect` frame. On 9:16 the
    /// block is centred at 70 % of the height, clear of the title and
    /// buttons at the bottom, two lines spanning about 64–76 %.
    #[must_use]
    pub fn new(aspect: Aspect, style: CaptionStyle) -> Self {
        let (width, height) = aspect.size();
        // (font size, centre as a fraction of the height, side margin as a fraction of the width)
        let (font, center, side) = match aspect {
            Aspect::Vertical => (80.0, 0.70, 0.14),
            Aspect::Portrait => (72.0, 0.74, 0.10),
            Aspect::Square => (68.0, 0.77, 0.08),
            Aspect::Landscape => (64.0, 0.83, 0.15),
        };
        let look = look(style);
        let font_size = (font * look.font_scale).round();
        let (w, h) = (f64::from(width), f64::from(height));
        Self {
            width,
            height,
            center_x: w / 2.0,
            center_y: (h * center).round(),
            max_line_width: (w * (1.0 - 2.0 * side)).round(),
            font_size,
            outline: (font_size * look.outline).round(),
            shadow: (font_size * look.shadow).round(),
        }
    }

    /// The rectangle `[x0, y0, x1, y1]` that captions of at most
    /// [`MAX_LINES`] lines stay inside.
    #[must_use]
    pub fn caption_box(&self) -> [f64; 4] {
        let half_h = MAX_LINES as f64 * self.font_size * LINE_HEIGHT / 2.0 + self.outline + self.shadow;
        let half_w = self.max_line_width / 2.0;
        [self.center_x - half_w, self.center_y - half_h, self.center_x + half_w, self.center_y + half_h]
    }
}

/// A word as captioned: display text and clip-time span.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionWord {
    /// The text shown (trimmed; upper-cased for [`CaptionStyle::Bold`]).
    pub text: String,
    /// Start in seconds of clip time.
    pub start: f64,
    /// End in seconds of clip time.
    pub end: f64,
}

/// One to three words shown together.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionGroup {
    /// The words.
    pub words: Vec<CaptionWord>,
    /// Index of the first word of each line (`[0]` or `[0, k]`).
    pub line_starts: Vec<usize>,
    /// Font scale, below 1 when a word alone is wider than the safe area.
    pub scale: f64,
    /// When the group appears (its first word's start).
    pub start: f64,
    /// When it goes away.
    pub end: f64,
}

impl CaptionGroup {
    /// The lines, as words joined by spaces.
    #[must_use]
    pub fn lines(&self) -> Vec<String> {
        let mut bounds = self.line_starts.clone();
        bounds.push(self.words.len());
        bounds
            .windows(2)
            .map(|w| self.words[w[0]..w[1]].iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" "))
            .collect()
    }
}

/// One script event: a group with one word highlighted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CaptionEvent {
    /// Start in seconds of clip time (the active word's start).
    pub start: f64,
    /// End in seconds of clip time.
    pub end: f64,
    /// Index into [`Captions::groups`].
    pub group: usize,
    /// Index of the highlighted word in the group.
    pub active: usize,
}

/// Captions for one clip.
#[derive(Debug, Clone, PartialEq)]
pub struct Captions {
    /// The style.
    pub style: CaptionStyle,
    /// The layout.
    pub layout: CaptionLayout,
    /// The font.
    pub font: CaptionFont,
    /// The groups, in time order, never overlapping.
    pub groups: Vec<CaptionGroup>,
    /// The events, in time order, never overlapping.
    pub events: Vec<CaptionEvent>,
}

/// Words of `range`, trimmed, shifted to clip time and clamped to the clip.
/// Words wholly outside the range, without text, or with times that are not
/// finite are left out; the rest are sorted by start.
#[must_use]
pub fn clip_words(words: &[Word], range: TimeRange, uppercase: bool) -> Vec<CaptionWord> {
    let duration = range.duration();
    let mut out: Vec<CaptionWord> = words
        .iter()
        .filter(|w| w.start.is_finite() && w.end.is_finite())
        .filter(|w| (w.end > range.start() && w.start < range.end()) || (w.start == w.end && range.contains(w.start)))
        .filter_map(|w| {
            let text: String = w.text.split_whitespace().collect::<Vec<_>>().join(" ");
            let text: String = text.chars().filter(|c| !c.is_control()).collect();
            if text.is_empty() {
                return None;
            }
            let start = (w.start - range.start()).clamp(0.0, duration);
            let end = (w.end - range.start()).clamp(start, duration);
            Some(CaptionWord { text: if uppercase { text.to_uppercase() } else { text }, start, end })
        })
        .collect();
    out.sort_by(|a, b| a.start.total_cmp(&b.start));
    out
}

/// Approximate advance width of `c` in ems of Inter Extra Bold, rounded up
/// a little so that estimated lines are never narrower than drawn ones.
fn char_em(c: char) -> f64 {
    match c {
        ' ' => 0.26,
        'i' | 'j' | 'l' | 'I' | '!' | '.' | ',' | '\'' | ':' | ';' | '|' => 0.28,
        'f' | 't' | 'r' | '(' | ')' | '"' | '-' | '[' | ']' | '/' => 0.42,
        'm' | 'w' => 0.78,
        'M' | 'W' => 0.90,
        'A'..='Z' => 0.64,
        'a'..='z' => 0.55,
        '0'..='9' => 0.58,
        c if is_wide(c) => 1.05,
        _ => 0.66,
    }
}

/// East Asian wide characters and emoji, about one em each.
fn is_wide(c: char) -> bool {
    matches!(u32::from(c),
        0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x1F300..=0x1FAFF | 0x20000..=0x3FFFD)
}

/// Whether a group should end after this word.
fn ends_clause(text: &str) -> bool {
    text.trim_end_matches(['"', '\'', ')', '”', '’']).ends_with(['.', '?', '!', ',', ';', ':', '…'])
}

struct Fitter<'a> {
    layout: &'a CaptionLayout,
    font: &'a CaptionFont,
    look: Look,
}

impl Fitter<'_> {
    fn text_width(&self, text: &str) -> f64 {
        text.chars().map(char_em).sum::<f64>() * self.layout.font_size * self.font.width_scale
    }

    /// Width of the glyphs of a line of `words`, the spoken word's growth included.
    fn glyphs_width(&self, words: &[&str]) -> f64 {
        let widths: Vec<f64> = words.iter().map(|w| self.text_width(w)).collect();
        let spaces = (words.len().saturating_sub(1)) as f64 * self.text_width(" ");
        let growth = widths.iter().copied().fold(0.0, f64::max) * (self.look.active_scale - 1.0);
        widths.iter().sum::<f64>() + spaces + growth
    }

    /// Width of a line of `words` drawn at `scale`, outline included.
    fn line_width(&self, words: &[&str], scale: f64) -> f64 {
        self.glyphs_width(words) * scale + 2.0 * self.layout.outline
    }

    /// Line starts and font scale for `words`, or `None` when they do not fit.
    fn fit(&self, words: &[&str]) -> Option<(Vec<usize>, f64)> {
        let max = self.layout.max_line_width;
        if self.line_width(words, 1.0) <= max {
            return Some((vec![0], 1.0));
        }
        if words.len() == 1 {
            let room = (max - 2.0 * self.layout.outline).max(1.0);
            return Some((vec![0], room / self.glyphs_width(words)));
        }
        if MAX_LINES < 2 {
            return None;
        }
        (1..words.len())
            .map(|k| (k, self.line_width(&words[..k], 1.0).max(self.line_width(&words[k..], 1.0))))
            .filter(|&(_, w)| w <= max)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(k, _)| (vec![0, k], 1.0))
    }
}

impl Captions {
    /// Groups and events for `words` cut to `range`. With
    /// [`CaptionStyle::None`] there are none.
    #[must_use]
    pub fn new(words: &[Word], range: TimeRange, aspect: Aspect, style: CaptionStyle, font: &CaptionFont) -> Self {
        let layout = CaptionLayout::new(aspect, style);
        let look = look(style);
        let mut captions = Self { style, layout, font: font.clone(), groups: Vec::new(), events: Vec::new() };
        if style == CaptionStyle::None {
            return captions;
        }
        let fitter = Fitter { layout: &layout, font, look };
        let words = clip_words(words, range, look.uppercase);
        let mut groups: Vec<CaptionGroup> = Vec::new();
        let mut current: Vec<CaptionWord> = Vec::new();
        let close = |current: &mut Vec<CaptionWord>, groups: &mut Vec<CaptionGroup>| {
            if current.is_empty() {
                return;
            }
            let texts: Vec<&str> = current.iter().map(|w| w.text.as_str()).collect();
            let (line_starts, scale) = fitter.fit(&texts).unwrap_or((vec![0], 1.0));
            let words = std::mem::take(current);
            groups.push(CaptionGroup { start: words[0].start, end: 0.0, words, line_starts, scale });
        };
        for word in words {
            if let Some(last) = current.last() {
                let mut texts: Vec<&str> = current.iter().map(|w| w.text.as_str()).collect();
                texts.push(&word.text);
                if current.len() >= MAX_GROUP_WORDS
                    || ends_clause(&last.text)
                    || word.start - last.end > MAX_PAUSE_IN_GROUP
                    || !matches!(fitter.fit(&texts), Some((_, s)) if s >= 1.0)
                {
                    close(&mut current, &mut groups);
                }
            }
            current.push(word);
        }
        close(&mut current, &mut groups);

        let duration = range.duration();
        let next_starts: Vec<f64> = groups.iter().skip(1).map(|g| g.start).chain([duration]).collect();
        for (group, next) in groups.iter_mut().zip(next_starts) {
            let last = group.words.last().expect("groups are never empty");
            group.end = (last.end + HOLD).min(next).min(duration).max(last.end.min(next));
        }
        let mut events = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            for (i, word) in group.words.iter().enumerate() {
                let end = group.words.get(i + 1).map_or(group.end, |next| next.start);
                if centiseconds(end) > centiseconds(word.start) {
                    events.push(CaptionEvent { start: word.start, end, group: g, active: i });
                }
            }
        }
        captions.groups = groups;
        captions.events = events;
        captions
    }

    /// The ASS script: `PlayResX`/`PlayResY` the output size, one style,
    /// one `Dialogue` per event.
    #[must_use]
    pub fn to_ass(&self) -> String {
        let look = look(self.style);
        let l = &self.layout;
        let mut s = String::new();
        let _ = write!(
            s,
            "[Script Info]\n; Generated by videdit\nScriptType: v4.00+\nPlayResX: {}\nPlayResY: {}\nWrapStyle: 2\n\
             ScaledBorderAndShadow: yes\n\n[V4+ Styles]\n\
             Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, \
             Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, \
             Alignment, MarginL, MarginR, MarginV, Encoding\n",
            l.width, l.height
        );
        // Boxed: an opaque box (OutlineColour with BorderStyle 3), so that
        // the boxes of differently coloured runs join without seams.
        let (outline_colour, back_colour, border_style) = if look.boxed {
            (ass_colour([16, 16, 16], 0), ass_colour([16, 16, 16], 0), 3)
        } else {
            (ass_colour([0, 0, 0], 0), ass_colour([0, 0, 0], 0x80), 1)
        };
        let _ = writeln!(
            s,
            "Style: Caption,{},{},{},{},{},{},{},0,0,0,100,100,0,0,{},{},{},5,0,0,0,1",
            self.font.family.replace(',', " "),
            l.font_size,
            ass_colour(WHITE, 0),
            ass_colour(WHITE, 0),
            outline_colour,
            back_colour,
            if self.font.bold { -1 } else { 0 },
            border_style,
            l.outline,
            l.shadow,
        );
        s.push_str("\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n");
        for e in &self.events {
            let group = &self.groups[e.group];
            let _ = write!(
                s,
                "Dialogue: 0,{},{},Caption,,0,0,0,,{{\\an5\\pos({},{})",
                ass_time(e.start),
                ass_time(e.end),
                l.center_x.round(),
                l.center_y.round()
            );
            if group.scale < 1.0 {
                let _ = write!(s, "\\fs{}", (l.font_size * group.scale).floor());
            }
            s.push('}');
            for (i, word) in group.words.iter().enumerate() {
                if i > 0 {
                    s.push_str(if group.line_starts.contains(&i) { "\\N" } else { " " });
                }
                if i == e.active {
                    let _ = write!(s, "{{\\1c{}", tag_colour(look.active));
                    if look.active_scale != 1.0 {
                        let pct = (look.active_scale * 100.0).round();
                        let _ = write!(s, "\\fscx{pct}\\fscy{pct}");
                    }
                    s.push('}');
                    s.push_str(&escape(&word.text));
                    let _ = write!(s, "{{\\1c{}", tag_colour(WHITE));
                    if look.active_scale != 1.0 {
                        s.push_str("\\fscx100\\fscy100");
                    }
                    s.push('}');
                } else {
                    s.push_str(&escape(&word.text));
                }
            }
            s.push('\n');
        }
        s
    }
}

fn centiseconds(t: f64) -> u64 {
    (t.max(0.0) * 100.0).round() as u64
}

/// `H:MM:SS.cc`, ASS's time format.
fn ass_time(t: f64) -> String {
    let cs = centiseconds(t);
    format!("{}:{:02}:{:02}.{:02}", cs / 360_000, cs / 6000 % 60, cs / 100 % 60, cs % 100)
}

/// `&HAABBGGRR`; alpha 0 is opaque.
fn ass_colour([r, g, b]: Rgb, alpha: u8) -> String {
    format!("&H{alpha:02X}{b:02X}{g:02X}{r:02X}")
}

/// `&HBBGGRR&`, a colour in an override tag.
fn tag_colour([r, g, b]: Rgb) -> String {
    format!("&H{b:02X}{g:02X}{r:02X}&")
}

/// Word text made inert for ASS: braces would open override blocks and a
/// backslash would start `\N`, `\h`, … (a word joiner after it keeps it a
/// plain backslash); spaces inside a word become hard spaces.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\u{2060}"),
            '{' => out.push_str("\\{"),
            '}' => out.push_str("\\}"),
            ' ' => out.push_str("\\h"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(text: &str, start: f64, end: f64) -> Word {
        Word { text: text.into(), start, end, probability: 0.9 }
    }

    fn range(a: f64, b: f64) -> TimeRange {
        TimeRange::new(a, b).unwrap()
    }

    fn talk() -> Vec<Word> {
        vec![
            w(" Before", 9.0, 9.8),
            w(" Hello,", 10.0, 10.4),
            w(" this", 10.5, 10.7),
            w(" is", 10.7, 10.8),
            w(" the", 10.8, 10.9),
            w(" secret", 10.9, 11.3),
            w(" of", 11.3, 11.4),
            w(" great", 11.4, 11.7),
            w(" shorts.", 11.7, 12.2),
            w(" After", 13.5, 14.0),
            w(" a", 14.0, 14.1),
            w(" pause", 15.0, 15.5),
            w(" outside", 30.0, 31.0),
        ]
    }

    fn bold(words: &[Word], r: TimeRange) -> Captions {
        Captions::new(words, r, Aspect::Vertical, CaptionStyle::Bold, &CaptionFont::inter())
    }

    #[test]
    fn words_are_cut_shifted_and_clamped_to_the_clip() {
        let words = clip_words(&talk(), range(9.5, 15.2), false);
        assert_eq!(words.first().unwrap(), &CaptionWord { text: "Before".into(), start: 0.0, end: 9.8 - 9.5 });
        let last = words.last().unwrap();
        assert_eq!(last.text, "pause");
        assert!((last.start - 5.5).abs() < 1e-9 && (last.end - 5.7).abs() < 1e-9, "{last:?}");
        assert!(words.iter().all(|w| w.text != "outside"));
        let upper =
            clip_words(&[w(" ça va", 1.0, 2.0), w("  ", 2.0, 3.0), w("x", f64::NAN, 1.0)], range(0.0, 5.0), true);
        assert_eq!(upper, vec![CaptionWord { text: "ÇA VA".into(), start: 1.0, end: 2.0 }]);
    }

    #[test]
    fn groups_hold_one_to_three_words_and_break_at_punctuation_and_pauses() {
        let c = bold(&talk(), range(10.0, 16.0));
        let texts: Vec<Vec<&str>> =
            c.groups.iter().map(|g| g.words.iter().map(|w| w.text.as_str()).collect()).collect();
        assert_eq!(
            texts,
            vec![
                vec!["HELLO,"],
                vec!["THIS", "IS", "THE"],
                vec!["SECRET", "OF", "GREAT"],
                vec!["SHORTS."],
                vec!["AFTER", "A"],
                vec!["PAUSE"]
            ]
        );
        for g in &c.groups {
            assert!((1..=MAX_GROUP_WORDS).contains(&g.words.len()));
        }
    }

    #[test]
    fn every_event_starts_on_its_word_and_events_never_overlap() {
        let r = range(10.0, 16.0);
        let c = bold(&talk(), r);
        let words = clip_words(&talk(), r, true);
        assert_eq!(c.events.len(), words.len(), "one event per word");
        for (e, word) in c.events.iter().zip(&words) {
            assert_eq!(c.groups[e.group].words[e.active].text, word.text);
            assert!((e.start - word.start).abs() < 1e-9);
        }
        for pair in c.events.windows(2) {
            assert!(pair[0].end <= pair[1].start + 1e-9, "{pair:?}");
        }
        // Within a group the highlight hands over at the next word's start;
        // the last word holds for HOLD unless the next group begins.
        let shorts = &c.events[7];
        assert_eq!(c.groups[shorts.group].words[0].text, "SHORTS.");
        assert!((shorts.end - (12.2 + HOLD - 10.0)).abs() < 1e-9, "{shorts:?}");
        let after = &c.events[8];
        assert!((after.end - 4.0).abs() < 1e-9, "{after:?}");
        let a = &c.events[9];
        assert!((a.end - (4.1 + HOLD)).abs() < 1e-9, "pause over the limit: {a:?}");
        // The last event is clamped to the clip.
        assert!(c.events.last().unwrap().end <= r.duration());
    }

    #[test]
    fn script_times_are_the_word_times_to_the_centisecond() {
        let r = range(10.0, 16.0);
        let c = bold(&talk(), r);
        let ass = c.to_ass();
        assert!(ass.contains("PlayResX: 1080\nPlayResY: 1920\n"), "{ass}");
        assert!(ass.contains("Style: Caption,Inter Extra Bold,80,&H00FFFFFF,"));
        let dialogues: Vec<&str> = ass.lines().filter(|l| l.starts_with("Dialogue:")).collect();
        assert_eq!(dialogues.len(), c.events.len());
        assert!(dialogues[1].starts_with("Dialogue: 0,0:00:00.50,0:00:00.70,Caption,,0,0,0,,{\\an5\\pos(540,1344)}"));
        assert!(dialogues[1].ends_with("{\\1c&H00E6FF&}THIS{\\1c&HFFFFFF&} IS THE"), "{}", dialogues[1]);
        assert_eq!(ass_time(3725.456), "1:02:05.46");
    }

    #[test]
    fn lines_break_between_words_and_stay_in_the_safe_area() {
        let long = [
            w("Extraordinarily", 0.0, 0.5),
            w("magnificent", 0.5, 1.0),
            w("performances", 1.0, 1.5),
            w("Supercalifragilisticexpialidocious", 2.0, 3.0),
            w("WWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWW", 3.0, 4.0),
        ];
        for style in [CaptionStyle::Bold, CaptionStyle::Highlight, CaptionStyle::Boxed] {
            for aspect in [Aspect::Vertical, Aspect::Square, Aspect::Portrait, Aspect::Landscape] {
                for font in [CaptionFont::inter(), CaptionFont::dejavu()] {
                    let c = Captions::new(&long, range(0.0, 5.0), aspect, style, &font);
                    let fitter = Fitter { layout: &c.layout, font: &font, look: look(style) };
                    for g in &c.groups {
                        assert!(g.line_starts.len() <= MAX_LINES);
                        let lines = g.lines();
                        let joined: Vec<String> = lines.iter().flat_map(|l| l.split(' ')).map(str::to_owned).collect();
                        let words: Vec<String> = g.words.iter().map(|w| w.text.clone()).collect();
                        assert_eq!(joined, words, "lines hold whole words in order");
                        for line in &lines {
                            let words: Vec<&str> = line.split(' ').collect();
                            let width = fitter.line_width(&words, g.scale);
                            assert!(width <= c.layout.max_line_width + 1e-6, "{aspect:?} {style:?} {line}: {width}");
                        }
                    }
                    let huge = c.groups.iter().find(|g| g.words[0].text.len() > 40).unwrap();
                    assert!(huge.scale < 1.0 && huge.words.len() == 1);
                    assert!(c.to_ass().contains(&format!("\\fs{}", (c.layout.font_size * huge.scale).floor())));
                }
            }
        }
        let vertical = CaptionLayout::new(Aspect::Vertical, CaptionStyle::Bold);
        let [x0, y0, x1, y1] = vertical.caption_box();
        assert!(x0 >= 0.12 * 1080.0 && x1 <= 0.88 * 1080.0, "clear of the buttons on the right");
        assert!(y0 >= 0.6 * 1920.0 && y1 <= 0.8 * 1920.0, "{y0} {y1}");
        for aspect in [Aspect::Square, Aspect::Portrait, Aspect::Landscape] {
            let l = CaptionLayout::new(aspect, CaptionStyle::Highlight);
            let [x0, y0, x1, y1] = l.caption_box();
            let (w, h) = aspect.size();
            assert!(x0 > 0.0 && y0 > 0.5 * f64::from(h) && x1 < f64::from(w) && y1 < 0.95 * f64::from(h), "{aspect:?}");
        }
    }

    #[test]
    fn special_characters_cannot_become_tags() {
        let words = [w("{\\b1}bold", 0.0, 1.0), w("back\\Nslash}", 1.0, 2.0), w("New York", 2.0, 3.0)];
        let ass =
            Captions::new(&words, range(0.0, 3.0), Aspect::Square, CaptionStyle::Highlight, &CaptionFont::inter())
                .to_ass();
        assert!(ass.contains("\\{\\\u{2060}b1\\}bold"), "{ass}");
        assert!(ass.contains("back\\\u{2060}Nslash\\}"));
        assert!(ass.contains("New\\hYork"));
        assert!(ass.contains("\\fscx115\\fscy115"));
        assert_eq!(escape("a\nb\tc"), "abc");
    }

    #[test]
    fn no_captions_style_and_no_words_give_an_empty_script() {
        let c = Captions::new(&talk(), range(10.0, 16.0), Aspect::Vertical, CaptionStyle::None, &CaptionFont::inter());
        assert!(c.events.is_empty());
        assert!(active_colour(CaptionStyle::None).is_none());
        let c = bold(&[], range(0.0, 1.0));
        assert!(c.events.is_empty() && c.to_ass().contains("[Events]"));
    }

    #[test]
    fn boxed_captions_use_an_opaque_box() {
        let c =
            Captions::new(&talk(), range(10.0, 16.0), Aspect::Vertical, CaptionStyle::Boxed, &CaptionFont::dejavu());
        let ass = c.to_ass();
        assert!(
            ass.contains(
                "Style: Caption,DejaVu Sans,68,&H00FFFFFF,&H00FFFFFF,&H00101010,&H00101010,-1,0,0,0,100,100,0,0,3,"
            ),
            "{ass}"
        );
        assert!(ass.contains("Hello,"), "mixed case");
    }
}
