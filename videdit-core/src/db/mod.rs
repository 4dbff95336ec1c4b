//! PostgreSQL: migrations and the tenant-scoped repository.
//!
//! The core tables live in the `videdit` schema and the migration
//! bookkeeping in `videdit._sqlx_migrations`, apart from the queue crate's
//! (`videdit_queue`) and from an embedding application's own
//! (`public._sqlx_migrations`), so the three sets never see each other's
//! versions and can run in any order.
//!
//! Every repository function takes the organisation as its first argument
//! and filters by it; child rows reference their parent through
//! `(org_id, id)`, so the database itself refuses a row that points into
//! another organisation.

mod events;
mod idempotency;
mod orgs;
mod shorts;
mod transcripts;
mod uploads;
mod videos;

use sqlx::postgres::{PgArguments, PgPoolOptions, PgRow};
use sqlx::{Connection, Encode, FromRow, PgExecutor, PgPool, Postgres, Type};
use std::time::Duration;

pub use events::{
    Delivery, PendingDelivery, StoredSecret, WebhookEndpoint, WebhookUpdate, delete_webhook, deliveries_for,
    disable_webhook, get_delivery, get_event, get_webhook, insert_event, insert_webhook, list_deliveries, list_events,
    list_webhooks, record_attempt, record_endpoint_health, reseal_webhook_secrets, reset_delivery,
    rotate_webhook_secret, stored_webhook_secrets, update_webhook,
};
pub use idempotency::{
    IDEMPOTENCY_LEASE_SECONDS, IDEMPOTENCY_TTL_HOURS, IdempotencyClaim, claim_idempotency, finish_idempotency,
    prune_idempotency, release_idempotency,
};
pub use orgs::{Membership, Role, find_membership, personal_org, upsert_membership, upsert_org, upsert_user};
pub use shorts::{
    NewShort, bump_recipe_revision, edit_short, get_short, list_shorts, recipe_revision, replace_shorts,
    set_short_outputs, set_short_status,
};
pub use transcripts::{get_transcript, has_transcript, put_transcript};
pub use uploads::{
    NewUpload, Upload, UploadState, expired_uploads, finish_upload, get_upload, insert_upload,
    pending_multipart_uploads,
};
pub use videos::{
    AssetKind, NewVideo, Page, VideoSummary, analysis_request, delete_video, fail_video, get_video, insert_video,
    list_videos, lock_video, put_asset, rename_video, request_analysis, set_video_status, transition_video,
};

use crate::error::{Error, Result};
use crate::id::OrgId;

/// The schema of the core tables.
pub const SCHEMA: &str = "videdit";

/// Lock key for migrations ("videdit" in ASCII), distinct from the queue's.
const MIGRATION_LOCK: i64 = 0x7669_6465_6469_7400;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects a pool with sane timeouts.
///
/// # Errors
/// When the database cannot be reached within 10 s.
pub async fn connect(url: &crate::config::DatabaseUrl, max_connections: u32) -> Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url.expose())
        .await?)
}

/// Applies the core migrations; a no-op when they are applied already.
///
/// Runs on one dedicated connection whose `search_path` points at the
/// `videdit` schema, so sqlx's bookkeeping table is `videdit._sqlx_migrations`.
/// The connection is closed afterwards rather than returned to the pool with
/// a changed `search_path`.
///
/// # Errors
/// Database failures, or a migration that was changed after it was applied.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    let mut conn = pool.acquire().await?.detach();
    let result = async {
        sqlx::query("SELECT pg_advisory_lock($1)").bind(MIGRATION_LOCK).execute(&mut conn).await?;
        let run = async {
            sqlx::query("CREATE SCHEMA IF NOT EXISTS videdit").execute(&mut conn).await?;
            sqlx::query("SET search_path TO videdit").execute(&mut conn).await?;
            MIGRATOR.run_direct(&mut conn).await?;
            Ok::<_, crate::Error>(())
        }
        .await;
        sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK).execute(&mut conn).await?;
        run
    }
    .await;
    let _ = conn.close().await;
    result
}

/// A statement whose rows decode as `R`.
type Query<'q, R> = sqlx::query::QueryAs<'q, Postgres, R, PgArguments>;

/// The row with `id` in the organisation that `sql` reads or changes: `$1`
/// is the organisation, `$2` the id, and `bind` binds the parameters after
/// them. No row (none with that id in this organisation) is `not_found(id)`.
async fn org_row<'q, R, I>(
    db: impl PgExecutor<'_>,
    sql: &'q str,
    org: OrgId,
    id: I,
    not_found: fn(I) -> Error,
    bind: impl FnOnce(Query<'q, R>) -> Query<'q, R>,
) -> Result<R>
where
    R: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    I: Copy + Encode<'q, Postgres> + Type<Postgres> + Send + 'q,
{
    bind(sqlx::query_as(sql).bind(org).bind(id)).fetch_optional(db).await?.ok_or_else(|| not_found(id))
}

/// Deletes the row with `id` from the organisation's rows in `table`; no
/// such row is `not_found(id)`.
async fn delete_org_row<I>(
    db: impl PgExecutor<'_>,
    table: &'static str,
    org: OrgId,
    id: I,
    not_found: fn(I) -> Error,
) -> Result<()>
where
    I: Copy + for<'q> Encode<'q, Postgres> + Type<Postgres> + Send,
{
    let sql = format!("DELETE FROM {table} WHERE org_id = $1 AND id = $2");
    let done = sqlx::query(&sql).bind(org).bind(id).execute(db).await?;
    if done.rows_affected() == 0 {
        return Err(not_found(id));
    }
    Ok(())
}
