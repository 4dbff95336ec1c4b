//! Finds the `rustface` crate's source, whose SeetaFace model
//! (`model/seeta_fd_frontal_v1.0.bin`) `src/reframe.rs` compiles in:
//! `VIDEDIT_RUSTFACE_DIR` when set, else the registry's copy under
//! `CARGO_HOME` of the version in Cargo.lock, else where `cargo metadata`
//! says it is (vendored or patched sources).

use std::path::{Path, PathBuf};

const MODEL: &str = "model/seeta_fd_frontal_v1.0.bin";

fn locked_version(manifest_dir: &Path) -> Option<String> {
    let lock = manifest_dir.ancestors().map(|d| d.join("Cargo.lock")).find(|p| p.is_file())?;
    let text = std::fs::read_to_string(lock).ok()?;
    let at = text.find("name = \"rustface\"\nversion = \"")? + "name = \"rustface\"\nversion = \"".len();
    Some(text[at..].split('"').next()?.to_owned())
}

fn in_registry(version: &str) -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    std::fs::read_dir(home.join("registry/src"))
        .ok()?
        .flatten()
        .map(|index| index.path().join(format!("rustface-{version}")))
        .find(|d| d.join(MODEL).is_file())
}

fn from_metadata(manifest_dir: &Path) -> Option<PathBuf> {
    let cargo = std::env::var_os("CARGO")?;
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .current_dir(manifest_dir)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.split("\"manifest_path\":\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|p| PathBuf::from(p.replace("\\\\", "\\")))
        .filter(|p| p.parent().and_then(Path::file_name).is_some_and(|n| n.to_string_lossy().starts_with("rustface-")))
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .find(|d| d.join(MODEL).is_file())
}

fn main() {
    println!("cargo:rerun-if-env-changed=VIDEDIT_RUSTFACE_DIR");
    println!("cargo:rerun-if-changed=build.rs");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("VIDEDIT_RUSTFACE_DIR")
        .map(PathBuf::from)
        .filter(|d| d.join(MODEL).is_file())
        .or_else(|| locked_version(&manifest_dir).and_then(|v| in_registry(&v)))
        .or_else(|| from_metadata(&manifest_dir))
        .unwrap_or_else(|| {
            panic!("the rustface crate's {MODEL} was not found: set VIDEDIT_RUSTFACE_DIR to the crate's source folder")
        });
    println!("cargo:rustc-env=VIDEDIT_RUSTFACE_DIR={}", dir.display());
}
