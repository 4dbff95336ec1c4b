//! Transcription speed: whisper.cpp (whisper-rs) with the tiny.en model
//! imported from faster-whisper, next to faster-whisper 1.2.1 running the
//! very same CTranslate2 model (int8, greedy), on the same espeak-ng
//! speech, interleaved in one run, 2 threads each.
//!
//! ```text
//! eval "$(scripts/fetch-test-model.sh --print-env)"
//! python3 -m venv ~/.cache/videdit/fw-venv && ~/.cache/videdit/fw-venv/bin/pip install faster-whisper==1.2.1
//! cargo bench -p videdit-benches --bench transcribe            # 60 s and 5 min clips, 3 rounds
//! VIDEDIT_BENCH_ROUNDS=5 VIDEDIT_BENCH_CLIPS=60 cargo bench -p videdit-benches --bench transcribe
//! VIDEDIT_BENCH_VARIANTS='=whisper.cpp q8_0,2 states,word timestamps' cargo bench -p videdit-benches --bench transcribe
//! ```
//! The report goes to stdout and to `/tmp/transcribe-bench.md`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use videdit_media::models::WeightType;
use videdit_media::process::Ffmpeg;
use videdit_media::testing::{
    PLAIN_PARAGRAPHS, WORDS_PER_MINUTE, alternating_voice, generate, media_seconds, speak, tiny_en_ct2_dir,
    tiny_en_model, wer_of_prefix,
};
use videdit_media::transcribe::{LoadOptions, TranscribeOptions, Transcriber};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `seconds` of speech (paragraphs cycled, en-us and en-gb alternating,
/// with low background noise), as a 16 kHz mono WAV; returns the words said.
async fn clip(dir: &Path, seconds: u32) -> (PathBuf, String) {
    let mut args: Vec<String> = Vec::new();
    let mut said = Vec::new();
    let mut total = 0.0;
    let mut i = 0;
    while total < f64::from(seconds) + 1.0 {
        let p = PLAIN_PARAGRAPHS[i % PLAIN_PARAGRAPHS.len()];
        let wav = dir.join(format!("p{seconds}-{i}.wav"));
        speak(p, alternating_voice(i), WORDS_PER_MINUTE, &wav).await.expect("espeak-ng is installed");
        total += media_seconds(&wav).await + 0.8;
        said.push(p);
        args.extend(["-i".to_owned(), wav.display().to_string()]);
        i += 1;
    }
    let n = said.len();
    let mut filter: String = (0..n).map(|i| format!("[{i}:a]aresample=16000,apad=pad_dur=0.8[a{i}];")).collect();
    filter += &(0..n).map(|i| format!("[a{i}]")).collect::<String>();
    filter += &format!(
        "concat=n={n}:v=0:a=1[speech];anoisesrc=c=pink:a=0.02:r=16000[noise];[speech][noise]amix=inputs=2:duration=first:normalize=0[out]"
    );
    let length = seconds.to_string();
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .chain(["-filter_complex", &filter, "-map", "[out]", "-t", &length, "-ar", "16000", "-ac", "1"])
        .collect();
    let out = generate(dir, &format!("clip-{seconds}.wav"), &args, f64::from(seconds)).await;
    // The reference is what fits in the clip: words are cut at the end, so
    // WER is computed against the prefix of the paragraphs the transcript
    // covers; a few words at the very end may be missing.
    (out, said.join(" "))
}

struct Variant {
    name: String,
    kind: Kind,
}

enum Kind {
    Whisper { t: Transcriber, opts: TranscribeOptions },
    Faster { words: bool },
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let ct2 = tiny_en_ct2_dir();
    let python = std::env::var_os("VIDEDIT_FW_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/videdit/fw-venv/bin/python"));
    let fw_script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fw_bench.py");
    let have_fw = python.is_file();
    if !have_fw {
        eprintln!(
            "no faster-whisper venv at {} (see the header of this file); timing whisper.cpp only",
            python.display()
        );
    }
    let rounds: usize = std::env::var("VIDEDIT_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    let clips: Vec<u32> = std::env::var("VIDEDIT_BENCH_CLIPS")
        .ok()
        .map(|c| c.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![60, 300]);
    let only: Option<Vec<String>> =
        std::env::var("VIDEDIT_BENCH_VARIANTS").ok().map(|v| v.split(',').map(str::to_owned).collect());
    let threads = 2;

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clips: Vec<(u32, PathBuf, String)> = clips
        .into_iter()
        .map(|s| {
            let (p, t) = rt.block_on(clip(dir.path(), s));
            (s, p, t)
        })
        .collect();

    let base = TranscribeOptions { threads: Some(threads), ..TranscribeOptions::default() };
    // The model's name picks whisper.cpp's alignment-heads preset for DTW
    // word times (`base` with VIDEDIT_TEST_CT2_TINY_EN pointing at a base model).
    let model_name = std::env::var("VIDEDIT_BENCH_MODEL_NAME").unwrap_or_else(|_| "tiny.en".into());
    let load = |w: WeightType, flash: bool| {
        let opts = LoadOptions { flash_attn: flash, ..LoadOptions::default() };
        Transcriber::load_with(&tiny_en_model(w), &format!("{model_name}{}", w.suffix()), &opts).unwrap()
    };
    let mut variants = vec![
        Variant {
            name: "whisper.cpp f16".into(),
            kind: Kind::Whisper { t: load(WeightType::F16, false), opts: base.clone() },
        },
        Variant {
            name: "whisper.cpp q8_0".into(),
            kind: Kind::Whisper { t: load(WeightType::Q8_0, false), opts: base.clone() },
        },
        Variant {
            name: "whisper.cpp q5_1".into(),
            kind: Kind::Whisper { t: load(WeightType::Q5_1, false), opts: base.clone() },
        },
        Variant {
            name: "whisper.cpp q8_0, full last window".into(),
            kind: Kind::Whisper {
                t: load(WeightType::Q8_0, false),
                opts: TranscribeOptions { trim_last_window: Some(false), ..base.clone() },
            },
        },
        Variant {
            name: "whisper.cpp q8_0, no temperature fallback".into(),
            kind: Kind::Whisper {
                t: load(WeightType::Q8_0, false),
                opts: TranscribeOptions { temperature_fallback: Some(false), ..base.clone() },
            },
        },
        Variant {
            name: "whisper.cpp q8_0, 2 states × 1 thread".into(),
            kind: Kind::Whisper {
                t: load(WeightType::Q8_0, false),
                opts: TranscribeOptions { parallel: Some(2), ..base.clone() },
            },
        },
        Variant {
            name: "whisper.cpp q8_0, flash attention (no DTW)".into(),
            kind: Kind::Whisper { t: load(WeightType::Q8_0, true), opts: base.clone() },
        },
    ];
    if have_fw {
        variants.push(Variant { name: "faster-whisper int8".into(), kind: Kind::Faster { words: false } });
        variants
            .push(Variant { name: "faster-whisper int8, word timestamps".into(), kind: Kind::Faster { words: true } });
    }
    if let Some(only) = &only {
        // `=name` keeps exactly that variant, anything else every variant whose name contains it.
        variants
            .retain(|v| only.iter().any(|o| o.strip_prefix('=').map_or(v.name.contains(o.as_str()), |x| v.name == x)));
    }

    let ffmpeg = Ffmpeg::default();
    // times[variant][clip] and the last transcript's WER.
    let mut times = vec![vec![Vec::new(); clips.len()]; variants.len()];
    let mut wers = vec![vec![0.0; clips.len()]; variants.len()];
    for round in 0..rounds {
        for (c, (secs, path, said)) in clips.iter().enumerate() {
            for (v, variant) in variants.iter().enumerate() {
                let (elapsed, text) = match &variant.kind {
                    Kind::Whisper { t, opts } => {
                        let started = Instant::now();
                        let tr = rt
                            .block_on(t.transcribe(
                                &ffmpeg,
                                path.to_str().unwrap(),
                                f64::from(*secs),
                                opts,
                                &|_| {},
                                &CancellationToken::new(),
                            ))
                            .unwrap();
                        (started.elapsed().as_secs_f64(), tr.text())
                    }
                    Kind::Faster { words } => {
                        let out = run(Command::new(&python)
                            .arg(&fw_script)
                            .arg(&ct2)
                            .arg(threads.to_string())
                            .arg(if *words { "1" } else { "0" })
                            .arg(path));
                        let line: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
                        (line["seconds"].as_f64().unwrap(), line["text"].as_str().unwrap().to_owned())
                    }
                };
                wers[v][c] = wer_of_prefix(said, &text);
                eprintln!(
                    "round {round} {secs:>4} s {:<45} {elapsed:>7.2} s  WER {:.1}%",
                    variant.name,
                    wers[v][c] * 100.0
                );
                times[v][c].push(elapsed);
            }
        }
    }

    let cpu = run(Command::new("sh").args(["-c", "lscpu | sed -n 's/^Model name: *//p'"]));
    let cores = run(&mut Command::new("nproc"));
    let mut md = String::new();
    md.push_str("# Transcription bench: tiny.en, whisper.cpp (whisper-rs 0.16) vs faster-whisper 1.2.1\n\n");
    md.push_str(&format!(
        "Machine: {} ({} cores), 2 threads everywhere. Median of {rounds} interleaved rounds; espeak-ng speech \
         (en-us/en-gb alternating) with pink noise at 0.02. whisper.cpp built with the `openmp` feature and \
         `GGML_LLAMAFILE=ON` (.cargo/config.toml), GGML_NATIVE. Times include audio decoding (ffmpeg / PyAV), not model loading.\n\n",
        cpu.trim(),
        cores.trim()
    ));
    md.push_str("Command: `eval \"$(scripts/fetch-test-model.sh --print-env)\" && cargo bench -p videdit-benches --bench transcribe`\n\n");
    md.push_str("| variant |");
    for (s, _, _) in &clips {
        md.push_str(&format!(" {s} s: time | RTF | WER |"));
    }
    md.push_str("\n|---|");
    for _ in &clips {
        md.push_str("---|---|---|");
    }
    md.push('\n');
    for (v, variant) in variants.iter().enumerate() {
        md.push_str(&format!("| {} |", variant.name));
        for (c, (s, _, _)) in clips.iter().enumerate() {
            let m = median(&mut times[v][c]);
            md.push_str(&format!(" {m:.2} s | {:.3} | {:.1}% |", m / f64::from(*s), wers[v][c] * 100.0));
        }
        md.push('\n');
    }
    println!("{md}");
    let out = std::env::var("VIDEDIT_BENCH_OUT").unwrap_or_else(|_| "/tmp/transcribe-bench.md".into());
    std::fs::write(out, &md).unwrap();
}
