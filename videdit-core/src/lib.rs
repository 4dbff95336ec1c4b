//! # videdit-core
//!
//! The shared vocabulary of videdit: ids, domain types (videos, shorts,
//! transcripts, clip recipes, job kinds), the stable error-code table,
//! configuration from the environment, object storage (local filesystem,
//! and S3 with the `s3` feature) and, with the `postgres` feature, the
//! tenant-scoped PostgreSQL repository and its migrations.
//!
//! ```no_run
//! use videdit_core::config::{Command, Config};
//! use videdit_core::storage::{LocalStorage, ObjectKey, Storage};
//! use videdit_core::{OrgId, VideoId};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Settings are read at the edge (here the process environment) and passed in.
//! let config = Config::load(Command::Process, &|k| std::env::var(k).ok())?;
//! let storage = LocalStorage::open("/tmp/videdit", None).await?;
//! let key = ObjectKey::video_source(OrgId::new(), VideoId::new(), "talk.mp4");
//! storage.put_file(&key, "talk.mp4".as_ref(), "video/mp4").await?;
//! # Ok(()) }
//! ```

pub mod config;
pub mod error;
pub mod error_code;
pub mod event;
pub mod id;
pub mod job_kind;
pub mod recipe;
pub mod sealed;
pub mod secret;
pub mod short;
pub mod storage;
pub mod text;
pub mod time_range;
pub mod transcript;
pub mod video;

#[cfg(feature = "postgres")]
pub mod db;

pub use error::{Error, Result};
pub use error_code::ErrorCode;
pub use event::{Event, EventType};
pub use id::{DeliveryId, EventId, InvalidId, JobId, OrgId, ShortId, UploadId, UserId, VideoId, WebhookId};
pub use job_kind::JobKind;
pub use recipe::{Aspect, CaptionStyle, ClipRecipe, Keyframe, RECIPE_VERSION, Reframe};
pub use secret::Secret;
pub use short::{Short, ShortOutputs, ShortStatus, SubScores};
pub use time_range::{InvalidTimeRange, TimeRange};
pub use transcript::{Segment, Transcript, Word};
pub use video::{ProcessingStage, Video, VideoStatus};
