//! # videdit-service
//!
//! The application layer of videdit: every rule of a video's life cycle,
//! once. Each operation takes a connection or transaction (and the storage
//! where it touches objects), changes state, records the domain events of
//! the change and enqueues the next jobs **in one transaction**, and
//! returns an [`Error`] that carries a stable [`ErrorCode`].
//!
//! HTTP handlers (`videdit-server`'s API) parse, authorise and call one
//! operation; job handlers run media work outside any transaction and then
//! call one operation to record the result. An embedder gets the server's
//! behaviour without poem.
//!
//! | module | operations |
//! | --- | --- |
//! | [`uploads`] | create, complete and abort an upload; clean up abandoned ones |
//! | [`stages`] | start a stage with options; enter, advance and fail a video |
//! | [`renders`] | begin a render, finish it (the fan-in), fail it |
//! | [`failures`] | a failed media job: retry it, or fail its video or short |
//! | [`recipes`] | edit a recipe (the one validation, shared with the renderer) |
//! | [`videos`] | delete a video |
//! | [`events`] | record and list domain events |
//! | [`webhooks`] | endpoints, deliveries, one delivery attempt |
//! | [`connections`] | connected platform accounts: OAuth with PKCE, sealed tokens, refresh, disconnect |
//! | [`publications`] | schedule a short to a connected account; cancel, reschedule; the `publish` job (rules, resumable upload, processing) |
//! | [`images`] | an organisation's pictures (its audiogram background): check, store, replace, remove |
//! | [`billing`] | plans, the usage ledger (reserve, commit, release), Stripe events, checkout and portal |
//!
//! ```no_run
//! # async fn run(pool: sqlx::PgPool, storage: std::sync::Arc<dyn videdit_core::storage::Storage>,
//! #              org: videdit_core::OrgId, upload: videdit_core::UploadId) -> Result<(), videdit_service::Error> {
//! // Complete an upload: the object is checked, the video moves to
//! // `uploaded`, `video.uploaded` is recorded and ingest is queued, atomically.
//! let video = videdit_service::uploads::complete(&pool, storage.as_ref(), org, upload, &[]).await?;
//! println!("{} is {}", video.id, video.status.state());
//! # Ok(()) }
//! ```

pub mod billing;
pub mod connections;
mod error;
pub mod events;
pub mod failures;
pub mod images;
pub mod jobs;
pub mod publications;
pub mod recipes;
pub mod renders;
pub mod stages;
pub mod uploads;
pub mod videos;
pub mod webhooks;

pub use error::{Error, Result};
pub use videdit_core::ErrorCode;
