//! The faster-whisper `tiny.en` test model, imported to ggml once and
//! cached: the model every test and bench that transcribes loads.
//!
//! The CTranslate2 directory comes from `VIDEDIT_TEST_CT2_TINY_EN` (set by
//! `eval "$(scripts/fetch-test-model.sh --print-env)"`). Imports are cached
//! under `VIDEDIT_TEST_MODEL_CACHE` (default `~/.cache/videdit/test-models`)
//! as `ggml/<key>/ggml-tiny.en<suffix>.bin`, the key being the start of the
//! SHA-256 of `model.bin`: the same weights always find the same import, and
//! other weights never do. The importer writes through a temporary file and
//! a rename, so test processes racing to create an import are safe.

use std::path::{Path, PathBuf};

use sha2::Digest;

use crate::models::{WeightType, import_ct2};

/// The faster-whisper `tiny.en` directory (`model.bin`, `config.json`,
/// `vocabulary.txt`) from `VIDEDIT_TEST_CT2_TINY_EN`.
///
/// # Panics
/// When the variable is unset or names no model, saying how to get it:
/// these tests cannot run without the model.
#[must_use]
pub fn tiny_en_ct2_dir() -> PathBuf {
    match std::env::var_os("VIDEDIT_TEST_CT2_TINY_EN") {
        Some(dir) if Path::new(&dir).join("model.bin").is_file() => PathBuf::from(dir),
        Some(dir) => panic!(
            "VIDEDIT_TEST_CT2_TINY_EN={} has no model.bin; run: eval \"$(scripts/fetch-test-model.sh --print-env)\"",
            Path::new(&dir).display()
        ),
        None => panic!(
            "tests that transcribe need the tiny.en test model: run eval \"$(scripts/fetch-test-model.sh --print-env)\" \
             (scripts/test does it for you)"
        ),
    }
}

/// The `tiny.en` test model imported as ggml with `weight_type`, converted
/// on first use and cached (see the module docs).
///
/// # Panics
/// When the model is missing ([`tiny_en_ct2_dir`]) or the import fails.
#[must_use]
pub fn tiny_en_model(weight_type: WeightType) -> PathBuf {
    let dir = tiny_en_ct2_dir();
    let out = cache_root().join("ggml").join(model_key(&dir)).join(format!("ggml-tiny.en{}.bin", weight_type.suffix()));
    if !out.is_file() {
        import_ct2(&dir, &out, weight_type).unwrap_or_else(|e| panic!("importing {}: {e}", dir.display()));
    }
    out
}

/// The `tiny.en` test model as q8_0: faster than f16 at the same WER, and
/// what the pipeline and server tests load.
///
/// # Panics
/// As [`tiny_en_model`].
#[must_use]
pub fn tiny_en_test_model() -> PathBuf {
    tiny_en_model(WeightType::Q8_0)
}

fn cache_root() -> PathBuf {
    std::env::var_os("VIDEDIT_TEST_MODEL_CACHE").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/videdit/test-models"),
        PathBuf::from,
    )
}

/// The first 8 bytes of the SHA-256 of `dir/model.bin`, in hex.
fn model_key(dir: &Path) -> String {
    let path = dir.join("model.bin");
    let bin = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    hex::encode(&sha2::Sha256::digest(&bin)[..8])
}
