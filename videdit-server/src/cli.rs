//! The local commands of the `videdit` binary: `process` (the whole
//! pipeline on one file, no database, no S3) and `models`.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use videdit_core::config::Config;
use videdit_core::recipe::{Aspect, CaptionStyle, Reframe};
use videdit_core::time_range::TimeRange;
use videdit_media::models::{self, ModelRef, ModelStore, WeightType};
use videdit_media::pipeline::{Pipeline, PipelineOptions, ProgressEvent, Stage, Summary};
use videdit_media::transcribe::Transcriber;

/// Output frame shape.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AspectArg {
    /// 1080×1920 (Shorts, TikTok, Reels).
    #[value(name = "9:16")]
    Vertical,
    /// 1080×1080.
    #[value(name = "1:1")]
    Square,
    /// 1080×1350.
    #[value(name = "4:5")]
    Portrait,
    /// 1920×1080.
    #[value(name = "16:9")]
    Landscape,
}

/// Caption look.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CaptionArg {
    /// Bold white with a black outline, the spoken word yellow.
    Bold,
    /// White, the spoken word yellow and larger.
    Highlight,
    /// White on a dark box.
    Boxed,
    /// No captions.
    None,
}

/// How the source fills the frame.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReframeArg {
    /// Faces decide: a split screen for two people taking turns, a crop
    /// following the face, or fit when there is none.
    Auto,
    /// A crop following the face that speaks (or the most present one).
    Track,
    /// Two people stacked, each followed.
    Split,
    /// The whole frame over a blurred copy of itself.
    Fit,
    /// Cropped to the output shape (see --crop-x).
    Crop,
}

/// `videdit process` options.
#[derive(Debug, Args)]
pub struct ProcessArgs {
    /// The long video (or audio) to cut.
    pub input: PathBuf,
    /// Output directory (default: `<input name>-shorts` beside the input).
    #[arg(short, long)]
    pub out: Option<PathBuf>,
    /// How many shorts at most.
    #[arg(short = 'n', long, default_value_t = 5)]
    pub shorts: usize,
    /// Shortest short, seconds.
    #[arg(long, default_value_t = 20.0)]
    pub min_duration: f64,
    /// Longest short, seconds.
    #[arg(long, default_value_t = 60.0)]
    pub max_duration: f64,
    /// Only search from this time (seconds).
    #[arg(long)]
    pub from: Option<f64>,
    /// Only search up to this time (seconds).
    #[arg(long)]
    pub to: Option<f64>,
    /// Words or phrases to favour (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub keywords: Vec<String>,
    /// Output frame shape.
    #[arg(long, value_enum, default_value = "9:16")]
    pub aspect: AspectArg,
    /// How the source fills the frame.
    #[arg(long, value_enum, default_value = "auto")]
    pub reframe: ReframeArg,
    /// Horizontal centre of the crop, 0..1 (with --reframe crop).
    #[arg(long)]
    pub crop_x: Option<f32>,
    /// Caption style.
    #[arg(long, value_enum, default_value = "bold")]
    pub captions: CaptionArg,
    /// A picture (PNG, JPEG) blurred behind the audiograms of an audio-only
    /// source, in place of its cover art or the plain colour.
    #[arg(long, value_name = "FILE")]
    pub audiogram_background: Option<PathBuf>,
    /// Whisper model for this run: a name in the model directory or a ggml file (default: the WHISPER_MODEL setting).
    #[arg(long)]
    pub model: Option<String>,
    /// Spoken language (ISO 639-1); detected when not given.
    #[arg(long)]
    pub language: Option<String>,
    /// Transcription threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Shorts rendered at once.
    #[arg(long, default_value_t = 2)]
    pub render_concurrency: usize,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `videdit models` commands.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List the models in the model directory.
    List,
    /// Import a faster-whisper (CTranslate2) model directory as a ggml model.
    Import {
        /// The CTranslate2 model directory (model.bin, vocabulary.txt, config.json).
        dir: PathBuf,
        /// Name to store it under (for example tiny.en); the weight type's suffix is added.
        #[arg(long)]
        name: String,
        /// Weight type: f16, q8_0, q5_0, q5_1.
        #[arg(long, default_value = "f16")]
        weights: String,
    },
    /// Download a ggml model from the whisper.cpp model host.
    Download {
        /// Model name (tiny.en, base, small, …; quantized names such as base-q8_0 too).
        name: String,
        /// Model host (default: the whisper.cpp repository on Hugging Face).
        #[arg(long)]
        base_url: Option<String>,
        /// Expected SHA-256 of the file.
        #[arg(long)]
        sha256: Option<String>,
    },
    /// Print where a configured model is.
    Path {
        /// Name or file (default: the WHISPER_MODEL setting).
        model: Option<String>,
    },
}

/// Runs `videdit models …`.
///
/// # Errors
/// Bad arguments, missing models, import and download failures.
pub fn models(config: &Config, command: ModelsCommand) -> anyhow::Result<()> {
    let store = ModelStore::from_config(config.model_dir.as_deref());
    match command {
        ModelsCommand::List => {
            let names = store.list()?;
            if names.is_empty() {
                eprintln!("no models in {}", store.dir.display());
            }
            for name in names {
                let size = std::fs::metadata(store.path_of(&name)).map(|m| m.len()).unwrap_or(0);
                println!("{name}\t{:.1} MB\t{}", size as f64 / 1e6, store.path_of(&name).display());
            }
        }
        ModelsCommand::Import { dir, name, weights } => {
            let weight_type = WeightType::parse(&weights)
                .with_context(|| format!("unknown weight type {weights:?}: use f16, q8_0, q5_0 or q5_1"))?;
            if name.is_empty() || name.contains(['/', '\\']) || name.contains("..") {
                bail!("invalid model name {name:?}");
            }
            let full = format!("{name}{}", weight_type.suffix());
            let out = store.path_of(&full);
            std::fs::create_dir_all(&store.dir).with_context(|| format!("creating {}", store.dir.display()))?;
            let started = Instant::now();
            let report = models::import_ct2(&dir, &out, weight_type)?;
            eprintln!(
                "imported {} as {full} ({} tensors, {} tokens) in {:.1} s",
                dir.display(),
                report.tensors,
                report.vocab,
                started.elapsed().as_secs_f64()
            );
            println!("{}", report.path.display());
        }
        ModelsCommand::Download { name, base_url, sha256 } => download(&store, &name, base_url, sha256)?,
        ModelsCommand::Path { model } => {
            let model = ModelRef::parse(model.as_deref().unwrap_or(&config.whisper_model));
            println!("{}", store.resolve(&model)?.display());
        }
    }
    Ok(())
}

fn download(store: &ModelStore, name: &str, base_url: Option<String>, sha256: Option<String>) -> anyhow::Result<()> {
    let mut opts = models::DownloadOptions::default();
    if let Some(url) = base_url {
        opts.base_url = url;
    }
    opts.sha256 = sha256;
    let terminal = std::io::stderr().is_terminal();
    let mut last = Instant::now();
    let path = models::download(store, name, &opts, &mut |done, total| {
        if terminal && last.elapsed() > Duration::from_millis(200) {
            last = Instant::now();
            let pct = total.map_or(String::new(), |t| format!(" {:.0}%", done as f64 * 100.0 / t.max(1) as f64));
            eprint!("\rdownloading {name}: {:.1} MB{pct}   ", done as f64 / 1e6);
        }
    })?;
    if terminal {
        eprintln!();
    }
    println!("{}", path.display());
    Ok(())
}

fn options(args: &ProcessArgs) -> anyhow::Result<PipelineOptions> {
    let mut o = PipelineOptions::default();
    o.analyze.max_shorts = args.shorts;
    o.analyze.min_duration = args.min_duration;
    o.analyze.max_duration = args.max_duration;
    o.analyze.keywords = args.keywords.iter().map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()).collect();
    if args.from.is_some() || args.to.is_some() {
        let range = TimeRange::new(args.from.unwrap_or(0.0), args.to.unwrap_or(f64::MAX / 4.0))
            .map_err(|e| anyhow::anyhow!("--from/--to: {e}"))?;
        o.analyze.search_range = Some(range);
    }
    o.analyze.validate()?;
    o.aspect = match args.aspect {
        AspectArg::Vertical => Aspect::Vertical,
        AspectArg::Square => Aspect::Square,
        AspectArg::Portrait => Aspect::Portrait,
        AspectArg::Landscape => Aspect::Landscape,
    };
    if args.crop_x.is_some() && !matches!(args.reframe, ReframeArg::Crop) {
        bail!("--crop-x needs --reframe crop");
    }
    o.reframe = match args.reframe {
        ReframeArg::Auto => Reframe::Auto,
        ReframeArg::Track => Reframe::Track { keyframes: vec![] },
        ReframeArg::Split => Reframe::Split { zoom: 1.0, top: vec![], bottom: vec![] },
        ReframeArg::Fit => Reframe::Fit,
        ReframeArg::Crop => {
            if let Some(x) = args.crop_x
                && !(0.0..=1.0).contains(&x)
            {
                bail!("--crop-x must be between 0 and 1, got {x}");
            }
            Reframe::Crop { x: args.crop_x }
        }
    };
    o.caption_style = match args.captions {
        CaptionArg::Bold => CaptionStyle::Bold,
        CaptionArg::Highlight => CaptionStyle::Highlight,
        CaptionArg::Boxed => CaptionStyle::Boxed,
        CaptionArg::None => CaptionStyle::None,
    };
    if args.threads == Some(0) || args.render_concurrency == 0 {
        bail!("--threads and --render-concurrency must be at least 1");
    }
    o.transcribe.threads = args.threads;
    o.transcribe.language = args.language.clone();
    o.render_concurrency = args.render_concurrency;
    if let Some(image) = &args.audiogram_background
        && !image.is_file()
    {
        bail!("--audiogram-background {} is not a file", image.display());
    }
    o.render.audiogram_background.clone_from(&args.audiogram_background);
    Ok(o)
}

/// Runs `videdit process`; `whisper_stderr` lets whisper.cpp log to stderr
/// (`VIDEDIT_WHISPER_STDERR`).
///
/// # Errors
/// Bad input or options, a missing model, and pipeline failures, each with
/// a one-line reason.
pub async fn process(config: &Config, args: ProcessArgs, whisper_stderr: bool) -> anyhow::Result<()> {
    let options = options(&args)?;
    if !args.input.is_file() {
        bail!("{}: no such file", args.input.display());
    }
    let out = args.out.clone().unwrap_or_else(|| default_out(&args.input));
    let store = ModelStore::from_config(config.model_dir.as_deref());
    let model = ModelRef::parse(args.model.as_deref().unwrap_or(&config.whisper_model));
    let model_path = store.resolve(&model)?;
    // The name of what is loaded (`tiny.en` may resolve to `tiny.en-q8_0`).
    let name = ModelRef::File(model_path.clone()).name();
    let transcriber = {
        let (path, name) = (model_path.clone(), name.clone());
        let load = videdit_media::transcribe::LoadOptions { whisper_stderr, ..Default::default() };
        tokio::task::spawn_blocking(move || Transcriber::load_with(&path, &name, &load)).await??
    };
    let pipeline = Pipeline::new(crate::settings::Limits::default().ffmpeg(&config.ffmpeg_binary), transcriber, name);

    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        crate::shutdown_signal().await;
        on_signal.cancel();
    });
    let bar = ProgressLine::new(std::io::stderr().is_terminal());
    let report = |e: &ProgressEvent| bar.update(e);
    let result = pipeline.run(&args.input, &out, &options, &report, &cancel).await;
    bar.finish();
    let summary = result.map_err(|e| anyhow::anyhow!("{e} [{}]", e.code().as_str()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_table(&summary, &out);
    }
    Ok(())
}

fn default_out(input: &Path) -> PathBuf {
    let stem = input.file_stem().map_or_else(|| "video".into(), |s| s.to_string_lossy().into_owned());
    input.with_file_name(format!("{stem}-shorts"))
}

fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

fn print_table(summary: &Summary, out: &Path) {
    let t = summary.timings;
    println!(
        "{} shorts from {} ({} of media) in {:.1} s  [probe {:.1} s, audio {:.1} s, transcribe {:.1} s{}, analyze {:.2} s, render {:.1} s]",
        summary.shorts.len(),
        summary.input,
        clock(summary.duration),
        t.total,
        t.probe,
        t.audio,
        t.transcribe,
        if summary.transcript_reused { " (reused)" } else { "" },
        t.analyze,
        t.render,
    );
    println!("{:>4}  {:>5}  {:<13}  {:<40}  reason", "rank", "score", "range", "title");
    for s in &summary.shorts {
        let range = format!("{}–{}", clock(s.range.start()), clock(s.range.end()));
        let title: String = s.title.chars().take(40).collect();
        println!("{:>4}  {:>5.1}  {:<13}  {:<40}  {}", s.rank, s.score, range, title, s.reason);
    }
    println!("written to {}", out.display());
}

/// One progress line on a terminal; log lines otherwise.
struct ProgressLine {
    terminal: bool,
    state: Mutex<(Option<Stage>, Instant, i64)>,
}

impl ProgressLine {
    fn new(terminal: bool) -> Self {
        Self { terminal, state: Mutex::new((None, Instant::now(), -1)) }
    }

    fn update(&self, e: &ProgressEvent) {
        let mut state = self.state.lock().expect("progress lock");
        let eta = e.eta.map_or(String::new(), |d| format!(" ETA {}", clock(d.as_secs_f64())));
        let cached = if e.cached { " (cached)" } else { "" };
        if self.terminal {
            if state.1.elapsed() < Duration::from_millis(100) && state.0 == Some(e.stage) && e.stage_fraction < 1.0 {
                return;
            }
            state.1 = Instant::now();
            state.0 = Some(e.stage);
            const WIDTH: usize = 30;
            let filled = ((e.overall * WIDTH as f64).round() as usize).min(WIDTH);
            let bar: String = "█".repeat(filled) + &"░".repeat(WIDTH - filled);
            eprint!(
                "\r\x1b[2K{bar} {:>3.0}%  {:<10} {:>3.0}%{cached}{eta}",
                e.overall * 100.0,
                e.stage.as_str(),
                e.stage_fraction * 100.0
            );
            let _ = std::io::stderr().flush();
        } else {
            let decile = (e.stage_fraction * 10.0).floor() as i64;
            if state.0 != Some(e.stage) || decile > state.2 {
                state.0 = Some(e.stage);
                state.2 = decile;
                eprintln!(
                    "{:<10} {:>3.0}% (overall {:>3.0}%){cached}{eta}",
                    e.stage.as_str(),
                    e.stage_fraction * 100.0,
                    e.overall * 100.0
                );
            }
        }
    }

    fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}
