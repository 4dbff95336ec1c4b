//! Transcription with whisper.cpp (through whisper-rs): segments and
//! word-level timestamps.
//!
//! Word times come from whisper.cpp's DTW token alignment (`t_dtw`, using
//! the model's alignment heads): each text token gets the time at which the
//! alignment path leaves it, which is where the token ends. Tokens are
//! merged into words (a token that starts with a space starts a word;
//! punctuation sticks to the word before), a word starts where the previous
//! one ended, capped at twice the median word length so that a word after
//! a pause does not swallow the pause, and every time is kept monotonic and
//! inside the audio. whisper.cpp's segments run back to back, so segment
//! edges are trimmed to their words.
//!
//! Long audio is transcribed in chunks of a few minutes, each cut at the
//! quietest moment near its end, so memory stays bounded whatever the
//! length of the input.

use std::path::Path;
use std::sync::{Arc, Once};
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use videdit_core::transcript::{Segment, Transcript, Word};
use whisper_rs::{
    DtwMode, DtwModelPreset, DtwParameters, FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters,
};

use crate::audio::{self, AudioRange};
use crate::error::{Error, Result};
use crate::process::Ffmpeg;

/// Samples per second Whisper expects.
const RATE: usize = audio::SAMPLE_RATE as usize;
/// Whisper's window: 30 s.
const WINDOW: usize = 30 * RATE;

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Use flash attention (whisper.cpp then cannot compute DTW word times,
    /// so words fall back to the less precise token timestamps).
    pub flash_attn: bool,
    /// Alignment heads as `(text layer, head)` pairs, for models whose name
    /// has no preset (an imported faster-whisper model has them in its
    /// `config.json`).
    pub alignment_heads: Option<Vec<(i32, i32)>>,
    /// Let whisper.cpp and ggml write their own log to stderr. Off by
    /// default: the first load then routes that log into `tracing`
    /// (whisper-rs's logging hooks) for the rest of the process, since
    /// whisper.cpp has one log for all its models.
    pub whisper_stderr: bool,
}

/// A loaded Whisper model. Cheap to clone and share between tasks: each
/// transcription creates its own decoding state.
#[derive(Clone)]
pub struct Transcriber {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: WhisperContext,
    name: String,
    multilingual: bool,
    dtw: bool,
    token_eot: i32,
}

impl std::fmt::Debug for Transcriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcriber").field("model", &self.inner.name).field("dtw", &self.inner.dtw).finish()
    }
}

/// How to transcribe.
#[derive(Debug, Clone, Default)]
pub struct TranscribeOptions {
    /// CPU threads for whisper.cpp (default: all cores).
    pub threads: Option<usize>,
    /// Spoken language (ISO 639-1, `en`); `None` detects it
    /// (English-only models always use `en`).
    pub language: Option<String>,
    /// Seconds of audio handed to whisper.cpp at once (default 300). Memory
    /// use grows with it; the result hardly changes.
    pub chunk_seconds: Option<f64>,
    /// Part of the input to transcribe (for [`Transcriber::transcribe`]).
    pub range: AudioRange,
    /// Run the encoder only over the audio of a final window shorter than
    /// 30 s instead of over the padding (on by default: `Some(false)`
    /// turns it off).
    pub trim_last_window: Option<bool>,
    /// Text that the model is told came before (names, spelling).
    pub initial_prompt: Option<String>,
    /// Decode again at higher temperatures when the greedy result looks
    /// wrong (repetitive or improbable), as Whisper does by default
    /// (`Some(false)` turns it off: faster, but loops on hard audio).
    pub temperature_fallback: Option<bool>,
    /// Whisper states run side by side over one loaded model, each on its
    /// share of `threads`, each over its own chunk of the audio (cut at a
    /// quiet moment): default 1, at most one per thread.
    pub parallel: Option<usize>,
}

fn dtw_preset(name: &str) -> Option<DtwModelPreset> {
    Some(match crate::models::base_model(name)? {
        "tiny.en" => DtwModelPreset::TinyEn,
        "tiny" => DtwModelPreset::Tiny,
        "base.en" => DtwModelPreset::BaseEn,
        "base" => DtwModelPreset::Base,
        "small.en" => DtwModelPreset::SmallEn,
        "small" => DtwModelPreset::Small,
        "medium.en" => DtwModelPreset::MediumEn,
        "medium" => DtwModelPreset::Medium,
        "large-v1" => DtwModelPreset::LargeV1,
        "large-v2" => DtwModelPreset::LargeV2,
        "large-v3" => DtwModelPreset::LargeV3,
        "large-v3-turbo" => DtwModelPreset::LargeV3Turbo,
        _ => return None,
    })
}

impl Transcriber {
    /// Loads the ggml model at `model_path`; `model_name` (`tiny.en`,
    /// `base-q8_0`, …) names it in transcripts and picks its DTW alignment
    /// heads. Blocking: call it from `spawn_blocking` in async code.
    ///
    /// # Errors
    /// [`Error::ModelNotFound`] when the file is missing;
    /// [`Error::InvalidModel`] when it is not a ggml model whisper.cpp loads.
    pub fn load(model_path: &Path, model_name: &str) -> Result<Self> {
        Self::load_with(model_path, model_name, &LoadOptions::default())
    }

    /// [`Transcriber::load`] with options.
    ///
    /// # Errors
    /// As [`Transcriber::load`].
    pub fn load_with(model_path: &Path, model_name: &str, opts: &LoadOptions) -> Result<Self> {
        static LOGGING: Once = Once::new();
        if !opts.whisper_stderr {
            LOGGING.call_once(whisper_rs::install_logging_hooks);
        }

        let invalid = |reason: String| Error::InvalidModel { path: model_path.to_owned(), reason };
        let mut magic = [0u8; 4];
        match std::fs::File::open(model_path) {
            Ok(mut f) => {
                use std::io::Read;
                if f.read_exact(&mut magic).is_err() || u32::from_le_bytes(magic) != crate::models::ggml::MAGIC {
                    return Err(invalid("not a ggml Whisper model (bad magic)".into()));
                }
            }
            Err(_) => {
                return Err(Error::ModelNotFound {
                    model: model_path.display().to_string(),
                    hint: "the model file does not exist or cannot be read".into(),
                });
            }
        }
        let path = model_path.to_str().ok_or_else(|| invalid("the path is not UTF-8".into()))?;

        let aheads: Vec<whisper_rs::DtwAhead> = opts
            .alignment_heads
            .iter()
            .flatten()
            .map(|&(n_text_layer, n_head)| whisper_rs::DtwAhead { n_text_layer, n_head })
            .collect();
        let mode = if opts.flash_attn {
            DtwMode::None
        } else if let Some(preset) = dtw_preset(model_name) {
            DtwMode::ModelPreset { model_preset: preset }
        } else if !aheads.is_empty() {
            DtwMode::Custom { aheads: &aheads }
        } else {
            DtwMode::None
        };
        let dtw = !matches!(mode, DtwMode::None);
        let mut params = WhisperContextParameters::default();
        params.flash_attn(opts.flash_attn).use_gpu(false);
        params.dtw_parameters(DtwParameters { mode, ..DtwParameters::default() });
        let started = Instant::now();
        let ctx = WhisperContext::new_with_params(path, params)
            .map_err(|e| invalid(format!("whisper.cpp could not load it: {e}")))?;
        tracing::info!(model = model_name, dtw, elapsed = ?started.elapsed(), "loaded the Whisper model");
        Ok(Self {
            inner: Arc::new(Inner {
                multilingual: ctx.is_multilingual(),
                token_eot: ctx.token_eot(),
                ctx,
                name: model_name.to_owned(),
                dtw,
            }),
        })
    }

    /// The model's name.
    #[must_use]
    pub fn model_name(&self) -> &str {
        &self.inner.name
    }

    /// Whether the model knows more than English.
    #[must_use]
    pub fn is_multilingual(&self) -> bool {
        self.inner.multilingual
    }

    /// Whether word times come from DTW alignment (else from token
    /// timestamps).
    #[must_use]
    pub fn has_dtw(&self) -> bool {
        self.inner.dtw
    }

    /// Transcribes `input` (a local path or an `http(s)` URL), streaming
    /// its audio from ffmpeg chunk by chunk. `media_seconds` is the
    /// duration of the input (or of `opts.range`): it sets ffmpeg's deadline
    /// and scales progress. `on_progress` receives 0..=1.
    ///
    /// # Errors
    /// [`Error::Cancelled`]; audio extraction errors ([`Error::NoAudio`],
    /// [`Error::InvalidMedia`], process errors); [`Error::Transcription`]
    /// when whisper.cpp fails.
    pub async fn transcribe(
        &self,
        ffmpeg: &Ffmpeg,
        input: &str,
        media_seconds: f64,
        opts: &TranscribeOptions,
        on_progress: &(dyn Fn(f32) + Send + Sync),
        cancel: &CancellationToken,
    ) -> Result<Transcript> {
        let started = Instant::now();
        let reader = audio::open(ffmpeg, input, opts.range, media_seconds, cancel.child_token())?;
        let offset = opts.range.start.unwrap_or(0.0).max(0.0);
        let total = (media_seconds.max(0.0) * RATE as f64).max(1.0);
        let mut pieces = Pieces::new(Some(reader), Vec::new(), chunk_samples(opts, total, self.states(opts)));
        let done = self.transcribe_pieces(&mut pieces, offset, total, opts, on_progress, cancel).await?;
        let duration = done.consumed as f64 / RATE as f64;
        let transcript = self.finish(done.segments, done.language, offset, duration);
        on_progress(1.0);
        tracing::info!(
            model = %self.inner.name,
            audio_seconds = duration,
            elapsed = ?started.elapsed(),
            rtf = started.elapsed().as_secs_f64() / duration.max(1e-9),
            "transcribed"
        );
        Ok(transcript)
    }

    /// Transcribes 16 kHz mono samples already in memory (chunked like
    /// [`Transcriber::transcribe`]).
    ///
    /// # Errors
    /// [`Error::Cancelled`] or [`Error::Transcription`].
    pub async fn transcribe_samples(
        &self,
        samples: Vec<f32>,
        opts: &TranscribeOptions,
        on_progress: &(dyn Fn(f32) + Send + Sync),
        cancel: &CancellationToken,
    ) -> Result<Transcript> {
        let total = samples.len().max(1) as f64;
        let mut pieces = Pieces::new(None, samples, chunk_samples(opts, total, self.states(opts)));
        let done = self.transcribe_pieces(&mut pieces, 0.0, total, opts, on_progress, cancel).await?;
        let duration = done.consumed as f64 / RATE as f64;
        on_progress(1.0);
        Ok(self.finish(done.segments, done.language, 0.0, duration))
    }

    /// Whisper states to run at once: [`TranscribeOptions::parallel`],
    /// at most one per thread.
    fn states(&self, opts: &TranscribeOptions) -> usize {
        opts.parallel.unwrap_or(DEFAULT_STATES).clamp(1, threads_of(opts))
    }

    /// Transcribes the pieces in order, `offset` seconds into the source at
    /// the first, up to [`Transcriber::states`] at once (each with its
    /// share of the threads); progress is the share of `total` samples
    /// done, over every piece in flight.
    async fn transcribe_pieces(
        &self,
        pieces: &mut Pieces,
        offset: f64,
        total: f64,
        opts: &TranscribeOptions,
        on_progress: &(dyn Fn(f32) + Send + Sync),
        cancel: &CancellationToken,
    ) -> Result<ChunksDone> {
        let states = self.states(opts);
        let per_state = TranscribeOptions { threads: Some((threads_of(opts) / states).max(1)), ..opts.clone() };
        // Pieces still running when this returns early (a failed piece, a
        // read error) are stopped, not left to run on.
        let cancel = &cancel.child_token();
        let _stop_the_rest = cancel.clone().drop_guard();
        // A multilingual model told no language finds it in the first piece,
        // which then runs alone.
        let must_detect = self.inner.multilingual && opts.language.is_none();
        let shares = std::sync::Mutex::new(Shares::default());
        let shares = &shares;
        let mut done = ChunksDone::default();
        let mut handed_out = 0usize;
        let mut index = 0usize;
        let mut inflight = futures_util::stream::FuturesOrdered::new();
        loop {
            let detecting = must_detect && done.language.is_none();
            // The piece that finds the language runs alone, on every thread.
            let (at_once, piece_opts) = if detecting { (1, opts) } else { (states, &per_state) };
            while inflight.len() < at_once {
                if cancel.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                let Some(piece) = pieces.next().await? else { break };
                let (i, len) = (index, piece.len());
                let start = offset + handed_out as f64 / RATE as f64;
                handed_out += len;
                index += 1;
                // Started now, so that it runs while the next piece is read.
                let running = self.start_chunk(piece, start, piece_opts, done.language.clone(), cancel)?;
                inflight.push_back(async move {
                    let report = |p: f32| {
                        let mut s = shares.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        s.partial.insert(i, len as f64 * f64::from(p));
                        on_progress(s.fraction(total));
                    };
                    let out = running.finish(&report, cancel).await;
                    let mut s = shares.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    s.partial.remove(&i);
                    s.finished += len as f64;
                    (len, out)
                });
            }
            let Some((len, out)) = futures_util::StreamExt::next(&mut inflight).await else { break };
            let out = out?;
            done.language = done.language.take().or(Some(out.language));
            done.segments.extend(out.segments);
            done.consumed += len;
        }
        Ok(done)
    }

    fn finish(&self, segments: Vec<Segment>, language: Option<String>, offset: f64, duration: f64) -> Transcript {
        let language = language
            .or_else(|| if self.inner.multilingual { None } else { Some("en".to_owned()) })
            .unwrap_or_else(|| "en".to_owned());
        let mut t = Transcript { language, model: self.inner.name.clone(), duration, segments };
        clamp_transcript(&mut t, offset, offset + duration);
        t
    }

    /// Starts whisper.cpp over one chunk on a blocking thread.
    fn start_chunk(
        &self,
        samples: Vec<f32>,
        start: f64,
        opts: &TranscribeOptions,
        language: Option<String>,
        cancel: &CancellationToken,
    ) -> Result<Running> {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<i32>();
        let inner = self.inner.clone();
        let opts = opts.clone();
        let abort = cancel.clone();
        let task = tokio::task::spawn_blocking(move || {
            run_whisper(&inner, &samples, start, &opts, language.as_deref(), tx, abort)
        });
        Ok(Running { task, rx })
    }
}

/// Whisper states run at once by default.
const DEFAULT_STATES: usize = 1;

fn threads_of(opts: &TranscribeOptions) -> usize {
    opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get)).clamp(1, 64)
}

/// Progress over the pieces: samples of finished pieces, and how far each
/// piece in flight is.
#[derive(Default)]
struct Shares {
    finished: f64,
    partial: std::collections::HashMap<usize, f64>,
}

impl Shares {
    fn fraction(&self, total: f64) -> f32 {
        ((self.finished + self.partial.values().sum::<f64>()) / total).clamp(0.0, 1.0) as f32
    }
}

/// One chunk running in whisper.cpp.
struct Running {
    task: tokio::task::JoinHandle<Result<ChunkOut>>,
    rx: tokio::sync::mpsc::UnboundedReceiver<i32>,
}

impl Running {
    /// Waits for the chunk, forwarding its progress (0..=1 of the chunk).
    async fn finish(mut self, report: &(dyn Fn(f32) + Send + Sync), cancel: &CancellationToken) -> Result<ChunkOut> {
        let result = loop {
            tokio::select! {
                r = &mut self.task => break r,
                Some(p) = self.rx.recv() => report(p as f32 / 100.0),
            }
        };
        let out = result.map_err(|e| Error::Transcription(format!("the transcription thread failed: {e}")))?;
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        out
    }
}

/// The audio cut into chunks of at most `chunk` samples, each ending at
/// the quietest moment near its end: read from ffmpeg as needed, or from
/// memory.
struct Pieces {
    reader: Option<audio::AudioReader>,
    buffer: Vec<f32>,
    eof: bool,
    chunk: usize,
    /// How far before a chunk's end to look for a quiet place to cut.
    search: usize,
}

impl Pieces {
    fn new(reader: Option<audio::AudioReader>, buffer: Vec<f32>, chunk: usize) -> Self {
        let eof = reader.is_none();
        Self { reader, buffer, eof, chunk, search: (chunk / 10).clamp(RATE, 20 * RATE) }
    }

    async fn next(&mut self) -> Result<Option<Vec<f32>>> {
        while !self.eof && self.buffer.len() < self.chunk {
            let next = match self.reader.as_mut() {
                Some(r) => r.next_chunk(self.chunk - self.buffer.len()).await?,
                None => None,
            };
            match next {
                Some(samples) => self.buffer.extend_from_slice(&samples),
                None => self.eof = true,
            }
        }
        if self.buffer.is_empty() {
            return Ok(None);
        }
        let cut = if self.eof && self.buffer.len() <= self.chunk {
            self.buffer.len()
        } else {
            quietest_cut(&self.buffer, self.chunk, self.search)
        };
        let rest = self.buffer.split_off(cut);
        Ok(Some(std::mem::replace(&mut self.buffer, rest)))
    }
}

/// Samples per chunk: `chunk_seconds` (default 300), or with several
/// states at once and less audio than that per state, the audio's share of
/// one state (a little over, so the quiet cut lands near the middle), at
/// least 20 s.
fn chunk_samples(opts: &TranscribeOptions, total_samples: f64, states: usize) -> usize {
    let seconds = opts.chunk_seconds.filter(|s| s.is_finite() && *s >= 30.0).unwrap_or(300.0);
    let chunk = seconds * RATE as f64;
    if states <= 1 {
        return chunk as usize;
    }
    let share = total_samples / states as f64 + 2.0 * RATE as f64;
    share.clamp(20.0 * RATE as f64, chunk) as usize
}

/// Where to end a chunk of at most `chunk` samples: the quietest 100 ms in
/// its last `search` samples (so a cut rarely splits a word).
#[must_use]
pub fn quietest_cut(samples: &[f32], chunk: usize, search: usize) -> usize {
    let end = chunk.min(samples.len());
    let begin = end.saturating_sub(search);
    let frame = RATE / 10;
    let mut best = (f32::MAX, end);
    let mut at = begin;
    while at + frame <= end {
        let energy: f32 = samples[at..at + frame].iter().map(|s| s * s).sum();
        // Later frames win ties, keeping chunks long.
        if energy <= best.0 {
            best = (energy, at + frame / 2);
        }
        at += frame / 2;
    }
    best.1.max(1)
}

/// What the chunks transcribed so far add up to.
#[derive(Default)]
struct ChunksDone {
    /// The language the first chunk was found to be in.
    language: Option<String>,
    segments: Vec<Segment>,
    /// Samples transcribed.
    consumed: usize,
}

struct ChunkOut {
    segments: Vec<Segment>,
    language: String,
}

/// A text token with its bytes and times (seconds, chunk-relative).
struct Tok {
    bytes: Vec<u8>,
    p: f32,
    /// DTW time: where the token ends.
    t_dtw: Option<f64>,
    t0: f64,
    t1: f64,
}

#[allow(clippy::too_many_arguments)]
fn run_whisper(
    inner: &Inner,
    samples: &[f32],
    start: f64,
    opts: &TranscribeOptions,
    language: Option<&str>,
    progress: tokio::sync::mpsc::UnboundedSender<i32>,
    cancel: CancellationToken,
) -> Result<ChunkOut> {
    let fail = |what: &str, e: whisper_rs::WhisperError| Error::Transcription(format!("{what}: {e}"));
    // A fresh state per chunk: whisper.cpp fails to decode when a state is
    // reused for a second `whisper_full` with DTW timestamps (and a
    // shortened audio context needs buffers of its own anyway); states over
    // one model run side by side.
    let mut state = inner.ctx.create_state().map_err(|e| fail("creating the decoder state", e))?;
    let threads = threads_of(opts);
    let language = if inner.multilingual {
        opts.language.as_deref().or(language).map(str::to_owned)
    } else {
        Some("en".to_owned())
    };
    // Whisper needs at least a second or so; pad very short clips with silence.
    let duration = samples.len() as f64 / RATE as f64;
    let mut padded;
    let mut samples = samples;
    if samples.len() < RATE + RATE / 2 {
        padded = samples.to_vec();
        padded.resize(RATE + RATE / 2, 0.0);
        samples = &padded;
    }
    // Whisper is trained on 30 s windows but runs fine on shorter ones;
    // encoding a short final window over its real length instead of the
    // padding saves most of its cost.
    let last = samples.len() % WINDOW;
    let n_windows = samples.len().div_ceil(WINDOW);
    let audio_ctx = if opts.trim_last_window != Some(false) && n_windows == 1 && last != 0 {
        // 50 encoder positions per second (1500 per 30 s), with a margin;
        // too short a context hurts accuracy, so never below 10 s.
        let secs = (last as f64 / RATE as f64).max(10.0) + 1.0;
        ((secs * 50.0).ceil() as i32).min(1500)
    } else {
        0
    };
    if audio_ctx > 0 && samples.len() < 10 * RATE + RATE / 2 {
        padded = samples.to_vec();
        padded.resize(10 * RATE + RATE / 2, 0.0);
        samples = &padded;
    }

    let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    params.set_n_threads(threads as i32);
    params.set_language(Some(language.as_deref().unwrap_or("auto")));
    params.set_detect_language(false);
    params.set_translate(false);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_special(false);
    params.set_print_timestamps(false);
    params.set_token_timestamps(!inner.dtw);
    params.set_suppress_blank(true);
    params.set_suppress_nst(true);
    params.set_no_context(true);
    params.set_audio_ctx(audio_ctx);
    if opts.temperature_fallback == Some(false) {
        params.set_temperature_inc(0.0);
    }
    if let Some(prompt) = opts.initial_prompt.as_deref() {
        params.set_initial_prompt(prompt);
    }
    let abort = cancel.clone();
    // whisper-rs 0.16's trampoline casts its data pointer to the closure's
    // own type while storing a boxed `dyn FnMut`; handing it a boxed
    // closure makes the two types the same (a plain closure would be
    // called through the wrong type and abort at random).
    let check: Box<dyn FnMut() -> bool> = Box::new(move || abort.is_cancelled());
    params.set_abort_callback_safe::<_, Box<dyn FnMut() -> bool>>(check);
    params.set_progress_callback_safe(move |p: i32| {
        let _ = progress.send(p);
    });

    let started = Instant::now();
    let result = state.full(params, samples);
    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    result.map_err(|e| fail("whisper.cpp", e))?;
    tracing::debug!(seconds = duration, elapsed = ?started.elapsed(), audio_ctx, threads, "transcribed a chunk");

    let lang_id = state.full_lang_id_from_state();
    let language = whisper_rs::get_lang_str(lang_id).unwrap_or("en").to_owned();
    let mut segments = Vec::new();
    for seg in state.as_iter() {
        let (s0, s1) = (seg.start_timestamp() as f64 / 100.0, seg.end_timestamp() as f64 / 100.0);
        let mut toks = Vec::new();
        for i in 0..seg.n_tokens() {
            let Some(tok) = seg.get_token(i) else { continue };
            let data = tok.token_data();
            if data.id >= inner.token_eot {
                continue;
            }
            let bytes = tok.to_bytes().map(<[u8]>::to_vec).unwrap_or_default();
            toks.push(Tok {
                bytes,
                p: data.p,
                t_dtw: (inner.dtw && data.t_dtw >= 0).then(|| data.t_dtw as f64 / 100.0),
                t0: data.t0 as f64 / 100.0,
                t1: data.t1 as f64 / 100.0,
            });
        }
        let words = words_from_tokens(&toks, s0, s1);
        if words.is_empty() {
            continue;
        }
        segments.push((words, s0, s1));
    }
    // Chunk-relative, in seconds: shift, then clamp to the real audio.
    let mut out = Vec::new();
    for (words, _, _) in segments {
        let words: Vec<Word> = words
            .into_iter()
            .map(|w| Word { start: start + w.start.clamp(0.0, duration), end: start + w.end.clamp(0.0, duration), ..w })
            .collect();
        let text = words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ");
        out.push(Segment { start: words[0].start, end: words[words.len() - 1].end, text, words });
    }
    Ok(ChunkOut { segments: out, language })
}

fn is_punctuation_only(text: &str) -> bool {
    !text.trim().is_empty() && text.trim().chars().all(|c| !c.is_alphanumeric())
}

/// Merges tokens into words with times (chunk-relative seconds).
/// `seg_start`/`seg_end` are the segment's own bounds, used when tokens
/// carry no DTW times.
fn words_from_tokens(toks: &[Tok], seg_start: f64, seg_end: f64) -> Vec<Word> {
    struct Acc {
        bytes: Vec<u8>,
        ps: Vec<f32>,
        end_dtw: Option<f64>,
        t0: f64,
        t1: f64,
    }
    let mut groups: Vec<Acc> = Vec::new();
    for t in toks {
        let starts_word = t.bytes.first() == Some(&b' ') || groups.is_empty();
        if starts_word {
            groups.push(Acc { bytes: Vec::new(), ps: Vec::new(), end_dtw: None, t0: t.t0, t1: t.t1 });
        }
        let g = groups.last_mut().expect("a group was just pushed");
        g.bytes.extend_from_slice(&t.bytes);
        g.ps.push(t.p);
        if t.t_dtw.is_some() {
            g.end_dtw = t.t_dtw;
        }
        g.t1 = t.t1;
    }
    let mut words: Vec<Word> = Vec::new();
    let mut prev_end: Option<f64> = None;
    for g in groups {
        let text = String::from_utf8_lossy(&g.bytes).trim().to_owned();
        if text.is_empty() {
            continue;
        }
        let probability = g.ps.iter().sum::<f32>() / g.ps.len().max(1) as f32;
        let (start, end) = match g.end_dtw {
            Some(end) => (prev_end.unwrap_or(seg_start.min(end)), end),
            None => (g.t0.max(seg_start), g.t1.min(seg_end)),
        };
        prev_end = Some(end);
        // A word of punctuation only ("-", "...") joins the word before.
        if is_punctuation_only(&text)
            && let Some(last) = words.last_mut()
        {
            last.text.push_str(&text);
            last.end = last.end.max(end);
            continue;
        }
        words.push(Word { text, start, end: end.max(start), probability: probability.clamp(0.0, 1.0) });
    }
    words
}

/// Makes every time monotonic and inside `[lo, hi]`, caps word lengths
/// (a word after a pause starts where speech resumes, not where the pause
/// began), and trims each segment to its words.
fn clamp_transcript(t: &mut Transcript, lo: f64, hi: f64) {
    let mut durations: Vec<f64> =
        t.segments.iter().flat_map(|s| s.words.iter()).map(|w| w.end - w.start).filter(|d| *d > 0.0).collect();
    durations.sort_by(f64::total_cmp);
    let median = durations.get(durations.len() / 2).copied().unwrap_or(0.5).min(0.7);
    let max_len = (2.0 * median).max(0.2);
    let mut last = lo;
    for s in &mut t.segments {
        for w in &mut s.words {
            w.end = w.end.clamp(lo, hi).max(last);
            w.start = w.start.clamp(lo, hi).max(last).min(w.end);
            if w.end - w.start > max_len {
                w.start = w.end - max_len;
            }
            last = w.end;
        }
        if let (Some(first), Some(end)) = (s.words.first(), s.words.last()) {
            s.start = first.start;
            s.end = end.end;
        }
        s.text = s.text.trim().to_owned();
    }
    t.segments.retain(|s| !s.words.is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(text: &str, t_dtw: f64) -> Tok {
        Tok { bytes: text.as_bytes().to_vec(), p: 0.9, t_dtw: Some(t_dtw), t0: 0.0, t1: 0.0 }
    }

    #[test]
    fn tokens_merge_into_words_with_punctuation_attached() {
        let toks = [
            tok(" Hello", 0.5),
            tok(",", 0.6),
            tok(" wor", 0.9),
            tok("ld", 1.1),
            tok(" -", 1.2),
            tok(" ok", 1.5),
            tok(".", 1.6),
        ];
        let words = words_from_tokens(&toks, 0.0, 2.0);
        let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["Hello,", "world-", "ok."]);
        assert_eq!((words[0].start, words[0].end), (0.0, 0.6));
        assert_eq!((words[1].start, words[1].end), (0.6, 1.2));
        assert_eq!((words[2].start, words[2].end), (1.2, 1.6));
    }

    #[test]
    fn multibyte_characters_split_across_tokens_survive() {
        let e = "é".as_bytes();
        let toks = [
            Tok { bytes: vec![b' ', b'c', b'a', b'f', e[0]], p: 1.0, t_dtw: Some(0.3), t0: 0.0, t1: 0.0 },
            Tok { bytes: vec![e[1]], p: 0.5, t_dtw: Some(0.4), t0: 0.0, t1: 0.0 },
        ];
        let words = words_from_tokens(&toks, 0.0, 1.0);
        assert_eq!(words[0].text, "café");
        assert!((words[0].probability - 0.75).abs() < 1e-6);
    }

    #[test]
    fn transcripts_are_clamped_monotonic_and_words_capped() {
        let w = |text: &str, start: f64, end: f64| Word { text: text.into(), start, end, probability: 1.0 };
        let mut t = Transcript {
            language: "en".into(),
            model: "tiny.en".into(),
            duration: 10.0,
            segments: vec![
                Segment { start: 0.0, end: 5.0, text: " a b".into(), words: vec![w("a", 0.0, 0.4), w("b", 0.4, 0.8)] },
                // After a pause "c" would start at 0.8; it is capped.
                Segment { start: 5.0, end: 12.0, text: "c d".into(), words: vec![w("c", 0.8, 5.0), w("d", 4.9, 11.0)] },
            ],
        };
        clamp_transcript(&mut t, 0.0, 10.0);
        let words: Vec<&Word> = t.words().collect();
        assert!(words.windows(2).all(|p| p[0].end <= p[1].start + 1e-9));
        assert!(words.iter().all(|w| w.start <= w.end && w.end <= 10.0));
        // The median word lasts 0.7 s at most, so words are capped at 1.4 s.
        assert!((words[2].start - 3.6).abs() < 1e-9, "{}", words[2].start);
        assert_eq!((t.segments[1].start, t.segments[1].end), (words[2].start, 10.0));
        assert_eq!(t.segments[0].text, "a b");
    }

    #[test]
    fn cuts_fall_in_the_quietest_place() {
        let mut s = vec![0.5f32; 60 * RATE];
        for v in &mut s[50 * RATE..50 * RATE + RATE / 5] {
            *v = 0.0;
        }
        let cut = quietest_cut(&s, 55 * RATE, 10 * RATE);
        assert!((50 * RATE..50 * RATE + RATE / 5).contains(&cut), "{cut}");
        assert_eq!(quietest_cut(&s[..10], 5, 100), 5);
    }
}
