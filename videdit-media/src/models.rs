//! Whisper models: choosing one by name or path, where they live, importing
//! faster-whisper (CTranslate2) models, and (with the `download` feature)
//! fetching ggml models from the whisper.cpp model host.
//!
//! A model is configured as a name (`tiny.en`, `base`, `small-q8_0`, …),
//! found as `ggml-{name}.bin` in the model directory, or as a path to a
//! ggml file. The caller chooses the model directory (the `videdit` binary:
//! `VIDEDIT_MODEL_DIR`, else [`default_model_dir`] of the user's cache
//! directory); nothing here reads the environment.
//!
//! # Example
//! ```no_run
//! use videdit_media::models::{self, ModelRef, ModelStore, WeightType};
//! # fn main() -> videdit_media::Result<()> {
//! let store = ModelStore::new(models::default_model_dir("/home/me/.cache".as_ref()));
//! // Migrate a faster-whisper model to ggml, quantized to 8 bits.
//! let out = store.path_of("tiny.en-q8_0");
//! models::import_ct2("/models/faster-whisper-tiny.en".as_ref(), &out, WeightType::Q8_0)?;
//! let path = store.resolve(&ModelRef::parse("tiny.en-q8_0"))?;
//! # Ok(()) }
//! ```

pub mod ct2;
pub mod ggml;

use std::path::{Path, PathBuf};

pub use ct2::{ImportReport, import_ct2};
pub use ggml::WeightType;

use crate::error::{Error, Result};

/// The models whisper.cpp publishes (`ggml-{name}.bin`); each may also
/// carry a quantization suffix (`-q5_0`, `-q8_0`, …) on the model host.
pub const KNOWN_MODELS: &[&str] = &[
    "tiny",
    "tiny.en",
    "base",
    "base.en",
    "small",
    "small.en",
    "medium",
    "medium.en",
    "large-v1",
    "large-v2",
    "large-v3",
    "large-v3-turbo",
];

/// A configured model: a name in the model directory or a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// A name such as `tiny.en` or `base-q8_0`.
    Named(String),
    /// A ggml file.
    File(PathBuf),
}

impl ModelRef {
    /// A value with a path separator or a `.bin` extension is a file;
    /// anything else is a name.
    #[must_use]
    pub fn parse(value: &str) -> Self {
        let value = value.trim();
        if value.contains('/') || value.contains(std::path::MAIN_SEPARATOR) || value.ends_with(".bin") {
            Self::File(PathBuf::from(value))
        } else {
            Self::Named(value.to_owned())
        }
    }

    /// The model's name: the name itself, or the file name without its
    /// `ggml-` prefix and `.bin` extension (`/m/ggml-base.en.bin` → `base.en`).
    #[must_use]
    pub fn name(&self) -> String {
        match self {
            Self::Named(n) => n.clone(),
            Self::File(p) => {
                let stem = p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                let stem = stem.strip_suffix(".bin").unwrap_or(&stem);
                stem.strip_prefix("ggml-").unwrap_or(stem).to_owned()
            }
        }
    }
}

/// The architecture a model name refers to, without quantization suffix
/// (`base.en-q8_0` → `base.en`); `None` for names outside [`KNOWN_MODELS`].
#[must_use]
pub fn base_model(name: &str) -> Option<&'static str> {
    let mut best: Option<&'static str> = None;
    for known in KNOWN_MODELS {
        let rest = name.strip_prefix(known);
        let matches = rest.is_some_and(|r| r.is_empty() || r.starts_with('-') || r.starts_with('_'));
        // "tiny" is a prefix of "tiny.en": keep the longest match.
        if matches && best.is_none_or(|b| known.len() > b.len()) {
            best = Some(known);
        }
    }
    best
}

/// Where models are kept unless configured otherwise: `videdit/models` in
/// `cache_dir`, the user's cache directory (`$XDG_CACHE_HOME`, or
/// `~/.cache`, as the caller found it).
#[must_use]
pub fn default_model_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("videdit").join("models")
}

/// A directory of ggml models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelStore {
    /// The directory.
    pub dir: PathBuf,
}

impl ModelStore {
    /// A store in `dir`.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The store of the configuration: `model_dir`, else (no directory
    /// configured, no cache directory known) [`default_model_dir`] of the
    /// system's temporary directory. The `videdit` binary always configures
    /// one.
    #[must_use]
    pub fn from_config(model_dir: Option<&Path>) -> Self {
        Self::new(model_dir.map_or_else(|| default_model_dir(&std::env::temp_dir()), Path::to_owned))
    }

    /// Where the model `name` is kept: `{dir}/ggml-{name}.bin`.
    #[must_use]
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("ggml-{name}.bin"))
    }

    /// The file of a configured model. A name that is not installed as
    /// given falls back to its quantized weights: `tiny.en` → `tiny.en-q8_0`
    /// (faster than f16 at the same accuracy), then `-q5_1`, `-q5_0`.
    /// `videdit models import --weights q8_0` stores `tiny.en` under the
    /// suffixed name, and whoever asks for `tiny.en` wants that model. The
    /// name of what was found is `ModelRef::File(path).name()`.
    ///
    /// # Errors
    /// [`Error::ModelNotFound`] with a hint on how to get it.
    pub fn resolve(&self, model: &ModelRef) -> Result<PathBuf> {
        const FALLBACKS: [WeightType; 3] = [WeightType::Q8_0, WeightType::Q5_1, WeightType::Q5_0];
        let (path, hint) = match model {
            ModelRef::File(p) => (p.clone(), "the configured model file does not exist".to_owned()),
            ModelRef::Named(n) => {
                if n.is_empty() || n.contains("..") {
                    return Err(Error::ModelNotFound { model: n.clone(), hint: "not a model name".into() });
                }
                let quantized = FALLBACKS.iter().any(|w| n.ends_with(w.suffix()));
                let fallbacks =
                    FALLBACKS.iter().filter(|_| !quantized).map(|w| self.path_of(&format!("{n}{}", w.suffix())));
                if let Some(found) = std::iter::once(self.path_of(n)).chain(fallbacks).find(|p| p.is_file()) {
                    return Ok(found);
                }
                let hint = if base_model(n).is_some() {
                    format!(
                        "download it (`videdit models download {n}`) or import a faster-whisper model into {}",
                        self.dir.display()
                    )
                } else {
                    format!("not a known model; known: {}", KNOWN_MODELS.join(", "))
                };
                (self.path_of(n), hint)
            }
        };
        if path.is_file() { Ok(path) } else { Err(Error::ModelNotFound { model: path.display().to_string(), hint }) }
    }

    /// The names of the models in the store.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory exists but cannot be read.
    pub fn list(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(source) => return Err(Error::Io { op: "listing the model directory", source }),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let f = e.file_name().to_string_lossy().into_owned();
                Some(f.strip_prefix("ggml-")?.strip_suffix(".bin")?.to_owned())
            })
            .collect();
        names.sort();
        Ok(names)
    }
}

#[cfg(feature = "download")]
mod download;
#[cfg(feature = "download")]
pub use download::{DEFAULT_BASE_URL, DownloadOptions, download};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths_are_told_apart() {
        assert_eq!(ModelRef::parse("tiny.en"), ModelRef::Named("tiny.en".into()));
        assert_eq!(ModelRef::parse(" base "), ModelRef::Named("base".into()));
        assert_eq!(ModelRef::parse("/m/ggml-base.en.bin"), ModelRef::File("/m/ggml-base.en.bin".into()));
        assert_eq!(ModelRef::parse("custom.bin"), ModelRef::File("custom.bin".into()));
        assert_eq!(ModelRef::parse("/m/ggml-base.en.bin").name(), "base.en");
        assert_eq!(ModelRef::parse("./x/my-model.bin").name(), "my-model");
    }

    #[test]
    fn base_models_ignore_quantization_suffixes() {
        assert_eq!(base_model("tiny.en"), Some("tiny.en"));
        assert_eq!(base_model("tiny.en-q8_0"), Some("tiny.en"));
        assert_eq!(base_model("tiny-q5_1"), Some("tiny"));
        assert_eq!(base_model("large-v3-turbo-q5_0"), Some("large-v3-turbo"));
        assert_eq!(base_model("large-v3"), Some("large-v3"));
        assert_eq!(base_model("tinyllama"), None);
        assert_eq!(base_model("my-model"), None);
    }

    #[test]
    fn the_default_directory_is_in_the_cache_directory_given() {
        assert_eq!(default_model_dir(Path::new("/c")), Path::new("/c/videdit/models"));
        assert_eq!(ModelStore::from_config(Some(Path::new("/m"))).dir, Path::new("/m"));
        assert_eq!(ModelStore::from_config(None).dir, std::env::temp_dir().join("videdit/models"));
    }

    #[test]
    fn the_store_resolves_names_with_helpful_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path());
        assert_eq!(store.list().unwrap(), Vec::<String>::new());
        let err = store.resolve(&ModelRef::parse("base.en")).unwrap_err();
        assert!(matches!(&err, Error::ModelNotFound { hint, .. } if hint.contains("download")), "{err}");
        let err = store.resolve(&ModelRef::parse("whatever")).unwrap_err();
        assert!(err.to_string().contains("known: tiny"), "{err}");
        assert!(store.resolve(&ModelRef::parse("../etc")).is_err());
        std::fs::write(store.path_of("base.en"), b"x").unwrap();
        assert_eq!(store.resolve(&ModelRef::parse("base.en")).unwrap(), dir.path().join("ggml-base.en.bin"));
        assert_eq!(store.list().unwrap(), ["base.en"]);
        let missing = ModelRef::File(dir.path().join("nope.bin"));
        assert!(matches!(store.resolve(&missing), Err(Error::ModelNotFound { .. })));
    }
}
