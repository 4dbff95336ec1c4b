//! Publishing shorts to platforms: the protocol side only.
//!
//! This crate speaks to the platforms (YouTube first): OAuth with PKCE,
//! the platform's rules for a short, resumable uploads that survive dropped
//! connections and process restarts, and the status of a published video.
//! It knows nothing about publications, schedules or the database; the
//! server's job handlers call it and store what it returns.
//!
//! - [`ByteSource`]: where the bytes come from (a local [`FileSource`], or
//!   object storage in the server), streamed from any offset.
//! - [`oauth`]: [`oauth::Pkce`] and [`oauth::Tokens`].
//! - [`youtube`]: the [`youtube::YouTube`] client and [`youtube::check_rules`].
//! - `fake` (feature `fake`): an in-process fake of Google's OAuth and
//!   YouTube endpoints with faults on demand, for tests.
//!
//! Every error is a [`PublishError`] with a stable [`PublishError::code`],
//! [`PublishError::is_retryable`] and, where known, [`PublishError::retry_at`].
//!
//! # Example
//! ```no_run
//! use videdit_core::secret::Secret;
//! use videdit_publish::youtube::{Privacy, VideoMeta, YouTube, YouTubeConfig};
//! use videdit_publish::{FileSource, ByteSource, oauth::Pkce};
//!
//! # async fn run(code_from_callback: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let yt = YouTube::new(YouTubeConfig::new("id", Secret::new("secret".into()), "https://app.example/cb"))?;
//! let pkce = Pkce::generate();
//! let consent_page = yt.authorize_url("opaque-state", &pkce.challenge);
//! // … the user consents; the callback receives `code` and `state` …
//! let tokens = yt.exchange_code(code_from_callback, &pkce.verifier).await?;
//! let source = FileSource::new("short.mp4", "video/mp4").await?;
//! let meta = VideoMeta {
//!     title: "My short".into(),
//!     description: String::new(),
//!     tags: vec![],
//!     privacy: Privacy::Public,
//!     publish_at: None,
//!     category_id: "22".into(),
//!     made_for_kids: false,
//! };
//! let session = yt.start_upload(&tokens.access_token, &meta, source.len(), source.content_type()).await?;
//! let video = yt.upload(&tokens.access_token, &session, &source, &|sent, total| println!("{sent}/{total}")).await?;
//! println!("{} ({})", video.url, video.privacy_status);
//! # let _ = consent_page;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod error;
pub mod instagram;
pub mod mp4;
pub mod oauth;
mod pacific;
mod retry;
mod source;
pub mod tiktok;
mod wire;
pub mod youtube;

#[cfg(feature = "fake")]
pub mod fake;

pub use error::{PublishError, Rule};
pub use pacific::next_pacific_midnight;
pub use retry::RetryPolicy;
pub use source::{ByteSource, ByteStream, FileSource};
