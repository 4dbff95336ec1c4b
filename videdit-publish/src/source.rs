//! Where a short's bytes come from: streamed from an offset, never loaded whole.

use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// A stream of a video's bytes.
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

/// The bytes of one video, readable from any offset as a stream.
///
/// The server implements it over object-storage range GETs; [`FileSource`]
/// reads a local file. An upload opens the source again at the offset the
/// platform asks for after an interruption, so `open` must be cheap to call
/// more than once.
#[async_trait::async_trait]
pub trait ByteSource: Send + Sync {
    /// The total length in bytes; the stream from offset 0 yields exactly this many.
    fn len(&self) -> u64;

    /// Whether the source is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The MIME type, for example `video/mp4`.
    fn content_type(&self) -> &str;

    /// The bytes from `offset` to the end, in chunks of any size.
    ///
    /// # Errors
    /// When the bytes cannot be reached; the stream's items carry later read errors.
    async fn open(&self, offset: u64) -> io::Result<ByteStream>;
}

/// A local file as a [`ByteSource`], read in 64 KiB pieces.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
    len: u64,
    content_type: String,
}

impl FileSource {
    /// The file at `path`, its length read now.
    ///
    /// # Errors
    /// When the file's metadata cannot be read.
    pub async fn new(path: impl AsRef<Path>, content_type: impl Into<String>) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let len = tokio::fs::metadata(&path).await?.len();
        Ok(Self { path, len, content_type: content_type.into() })
    }
}

const READ_SIZE: usize = 64 * 1024;

#[async_trait::async_trait]
impl ByteSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn content_type(&self) -> &str {
        &self.content_type
    }

    async fn open(&self, offset: u64) -> io::Result<ByteStream> {
        let mut file = tokio::fs::File::open(&self.path).await?;
        file.seek(io::SeekFrom::Start(offset)).await?;
        let stream = futures_util::stream::try_unfold(file, |mut file| async move {
            let mut buf = vec![0; READ_SIZE];
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Ok(None);
            }
            buf.truncate(n);
            Ok(Some((Bytes::from(buf), file)))
        });
        Ok(stream.boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;

    #[tokio::test]
    async fn file_source_reads_from_an_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        tokio::fs::write(&path, &data).await.unwrap();
        let source = FileSource::new(&path, "video/mp4").await.unwrap();
        assert_eq!(source.len(), 200_000);
        let chunks: Vec<Bytes> = source.open(70_000).await.unwrap().try_collect().await.unwrap();
        assert!(chunks.iter().all(|c| c.len() <= READ_SIZE));
        assert_eq!(chunks.concat(), data[70_000..]);
    }
}
