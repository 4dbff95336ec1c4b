//! Outputs are never seen half-written: each is written beside its final
//! name and renamed into place.

use std::path::Path;

use super::{PipelineError, output_error};

/// Writes `bytes` to a temporary file beside `path`, then renames it.
pub(super) async fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PipelineError> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(dir).await.map_err(output_error("creating", dir))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    tokio::fs::write(&tmp, bytes).await.map_err(output_error("writing", &tmp))?;
    tokio::fs::rename(&tmp, path).await.map_err(output_error("renaming into", path))
}
