//! Downloading ggml models (the `download` feature; the only HTTP client in
//! this crate). Blocking: call it from `spawn_blocking` or a CLI.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use sha2::Digest;

use super::ModelStore;
use crate::error::{Error, Result};

/// whisper.cpp's models on Hugging Face.
pub const DEFAULT_BASE_URL: &str = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main";

/// Where to download from and what to expect.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Base URL; the file is `{base_url}/ggml-{name}.bin`.
    pub base_url: String,
    /// Expected SHA-256 (hex). Without it, the host's `X-Linked-Etag`
    /// (Hugging Face's SHA-256 of the file) is used when present.
    pub sha256: Option<String>,
    /// Expected SHA-1 (hex), as listed in whisper.cpp's model README.
    pub sha1: Option<String>,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Longest wait for data on an established connection.
    pub read_timeout: Duration,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            sha256: None,
            sha1: None,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
        }
    }
}

fn fail(url: &str, reason: impl Into<String>, retryable: bool) -> Error {
    Error::Download { url: url.to_owned(), reason: reason.into(), retryable }
}

fn io(source: std::io::Error) -> Error {
    Error::Io { op: "writing the downloaded model", source }
}

/// Downloads `ggml-{name}.bin` into the store and returns its path. A
/// partial download left by an earlier attempt (`.part`) is resumed with an
/// HTTP Range request; the checksum is verified before the file is renamed
/// into place. `on_progress(done, total)` is called as bytes arrive.
///
/// # Errors
/// [`Error::Download`]: offline or unreachable host (retryable), HTTP
/// errors, a checksum mismatch; [`Error::Io`] writing the file.
pub fn download(
    store: &ModelStore,
    name: &str,
    opts: &DownloadOptions,
    on_progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<PathBuf> {
    if name.is_empty() || name.contains(['/', '\\']) || name.contains("..") {
        return Err(Error::ModelNotFound { model: name.to_owned(), hint: "not a model name".into() });
    }
    let url = format!("{}/ggml-{name}.bin", opts.base_url.trim_end_matches('/'));
    std::fs::create_dir_all(&store.dir).map_err(io)?;
    let dest = store.path_of(name);
    let part = dest.with_extension("bin.part");

    let config = ureq::Agent::config_builder()
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_recv_body(Some(opts.read_timeout))
        .timeout_recv_response(Some(opts.read_timeout))
        .http_status_as_error(false)
        // Redirects are followed by hand, to keep the first response's checksum header.
        .max_redirects(0)
        .build();
    let agent = ureq::Agent::new_with_config(config);

    let mut have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let mut target = url.clone();
    let mut linked_sha256: Option<String> = None;
    let mut response = None;
    for _ in 0..8 {
        let mut req = agent.get(&target);
        if have > 0 {
            req = req.header("Range", format!("bytes={have}-"));
        }
        let resp = req.call().map_err(|e| {
            let offline = matches!(
                e,
                ureq::Error::Io(_)
                    | ureq::Error::HostNotFound
                    | ureq::Error::ConnectionFailed
                    | ureq::Error::Timeout(_)
            );
            let reason =
                if offline { format!("{e} (offline, or the model host is unreachable?)") } else { e.to_string() };
            fail(&url, reason, offline)
        })?;
        if let Some(tag) = resp.headers().get("x-linked-etag").and_then(|v| v.to_str().ok()) {
            let tag = tag.trim_matches('"').to_ascii_lowercase();
            if tag.len() == 64 && tag.bytes().all(|b| b.is_ascii_hexdigit()) {
                linked_sha256 = Some(tag);
            }
        }
        let status = resp.status().as_u16();
        if (300..400).contains(&status) {
            let location = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| fail(&url, format!("HTTP {status} without a location"), false))?;
            target = join_url(&target, location);
            continue;
        }
        if status == 416 && have > 0 {
            // The partial file is complete or larger than the file: start over.
            std::fs::remove_file(&part).map_err(io)?;
            have = 0;
            continue;
        }
        if !(200..300).contains(&status) {
            let retryable = status >= 500 || status == 429;
            let reason =
                if status == 404 { "HTTP 404: no such model on the host".to_owned() } else { format!("HTTP {status}") };
            return Err(fail(&url, reason, retryable));
        }
        response = Some(resp);
        break;
    }
    let resp = response.ok_or_else(|| fail(&url, "too many redirects", false))?;
    let resumed = resp.status().as_u16() == 206;
    if !resumed {
        have = 0;
    }
    let length: Option<u64> =
        resp.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let total = length.map(|l| l + have);

    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(&part)
        .map_err(io)?;
    let mut reader = resp.into_body().into_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut done = have;
    on_progress(done, total);
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| fail(&url, format!("{e} (the partial file is kept for resuming)"), true))?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).map_err(io)?;
        done += n as u64;
        on_progress(done, total);
    }
    file.sync_all().map_err(io)?;
    drop(file);
    if let Some(total) = total
        && done != total
    {
        return Err(fail(&url, format!("the connection closed after {done} of {total} bytes"), true));
    }

    let want256 = opts.sha256.clone().or(linked_sha256).map(|s| s.to_ascii_lowercase());
    let want1 = opts.sha1.as_ref().map(|s| s.to_ascii_lowercase());
    if want256.is_some() || want1.is_some() {
        let (got256, got1) = hash_file(&part)?;
        let bad = want256.as_ref().is_some_and(|w| *w != got256) || want1.as_ref().is_some_and(|w| *w != got1);
        if bad {
            let _ = std::fs::remove_file(&part);
            return Err(fail(
                &url,
                format!(
                    "checksum mismatch: got sha256 {got256} (sha1 {got1}), expected {}",
                    want256.or(want1).unwrap_or_default()
                ),
                false,
            ));
        }
    } else {
        tracing::warn!(%url, "no checksum known for this model; not verified");
    }
    std::fs::rename(&part, &dest).map_err(io)?;
    tracing::info!(%url, path = %dest.display(), bytes = done, "downloaded a model");
    Ok(dest)
}

fn hash_file(path: &std::path::Path) -> Result<(String, String)> {
    let mut f = std::fs::File::open(path).map_err(io)?;
    let (mut s256, mut s1) = (sha2::Sha256::new(), sha1::Sha1::new());
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        s256.update(&buf[..n]);
        s1.update(&buf[..n]);
    }
    Ok((hex::encode(s256.finalize()), hex::encode(s1.finalize())))
}

/// Resolves a redirect `location` against the URL it came from.
fn join_url(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_owned();
    }
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    if location.starts_with('/') {
        format!("{}{location}", &base[..host_end])
    } else {
        let dir_end = base.rfind('/').filter(|&i| i >= host_end).unwrap_or(host_end);
        format!("{}/{location}", &base[..dir_end])
    }
}

#[cfg(test)]
mod tests {
    use super::join_url;

    #[test]
    fn redirects_resolve_against_the_request() {
        assert_eq!(join_url("https://h/a/b.bin", "https://cdn/x"), "https://cdn/x");
        assert_eq!(join_url("https://h/a/b.bin", "/c/d"), "https://h/c/d");
        assert_eq!(join_url("http://h:8/a/b.bin", "c.bin"), "http://h:8/a/c.bin");
    }
}
