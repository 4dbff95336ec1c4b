//! Shorts of a video.

use std::convert::identity;

use sqlx::{FromRow, PgConnection, PgExecutor};

use super::org_row;

use crate::error::{Error, Result};
use crate::error_code::ErrorCode;
use crate::id::{OrgId, ShortId, VideoId};
use crate::short::{Short, ShortOutputs, ShortStatus, SubScores};
use crate::storage::ObjectKey;
use crate::time_range::TimeRange;

/// A short chosen by analysis, to store.
#[derive(Debug, Clone)]
pub struct NewShort {
    /// Its id.
    pub id: ShortId,
    /// 1 for the best.
    pub rank: i32,
    /// 0..=100.
    pub score: f32,
    /// The parts of the score.
    pub sub_scores: SubScores,
    /// Why it was picked.
    pub reason: String,
    /// Suggested title.
    pub title: String,
    /// Source range.
    pub range: TimeRange,
}

#[derive(FromRow)]
struct ShortRow {
    id: uuid::Uuid,
    video_id: uuid::Uuid,
    rank: i32,
    score: f32,
    sub_scores: serde_json::Value,
    reason: String,
    title: String,
    start_seconds: f64,
    end_seconds: f64,
    status: String,
    video_key: Option<String>,
    thumbnail_key: Option<String>,
    recipe_key: Option<String>,
}

impl ShortRow {
    fn into_short(self) -> Result<Short> {
        let bad = |what: &str| Error::InvalidState(format!("short {} has a bad {what}", self.id));
        let outputs = match (&self.video_key, &self.thumbnail_key, &self.recipe_key) {
            (Some(v), Some(t), Some(r)) => Some(ShortOutputs {
                video: ObjectKey::parse(v.clone())?,
                thumbnail: ObjectKey::parse(t.clone())?,
                recipe: ObjectKey::parse(r.clone())?,
            }),
            _ => None,
        };
        Ok(Short {
            id: ShortId::from_uuid(self.id),
            video_id: VideoId::from_uuid(self.video_id),
            rank: self.rank,
            score: self.score,
            sub_scores: serde_json::from_value(self.sub_scores.clone()).map_err(|_| bad("sub_scores"))?,
            reason: self.reason.clone(),
            title: self.title.clone(),
            range: TimeRange::new(self.start_seconds, self.end_seconds).map_err(|_| bad("range"))?,
            status: ShortStatus::parse(&self.status).ok_or_else(|| bad("status"))?,
            outputs,
        })
    }
}

const COLUMNS: &str = "id, video_id, rank, score, sub_scores, reason, title, start_seconds, end_seconds, status, video_key, thumbnail_key, recipe_key";

fn short_not_found(id: ShortId) -> Error {
    Error::not_found(ErrorCode::ShortNotFound, format!("short {id}"))
}

/// Replaces all shorts of a video with a new set (re-analysis), in the
/// caller's transaction.
///
/// # Errors
/// `video_not_found` when the video is not in this organisation.
pub async fn replace_shorts(
    conn: &mut PgConnection,
    org: OrgId,
    video: VideoId,
    shorts: &[NewShort],
) -> Result<Vec<Short>> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM videdit.videos WHERE org_id = $1 AND id = $2)")
        .bind(org)
        .bind(video)
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Err(Error::not_found(ErrorCode::VideoNotFound, format!("video {video}")));
    }
    sqlx::query("DELETE FROM videdit.shorts WHERE org_id = $1 AND video_id = $2")
        .bind(org)
        .bind(video)
        .execute(&mut *conn)
        .await?;
    let mut out = Vec::with_capacity(shorts.len());
    for s in shorts {
        if !(0.0..=100.0).contains(&s.score) || s.rank < 1 {
            return Err(Error::InvalidRequest(format!("short rank {} / score {} out of range", s.rank, s.score)));
        }
        let row: ShortRow = sqlx::query_as(&format!(
            "INSERT INTO videdit.shorts (id, org_id, video_id, rank, score, sub_scores, reason, title, start_seconds, end_seconds, status)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending') RETURNING {COLUMNS}"
        ))
        .bind(s.id)
        .bind(org)
        .bind(video)
        .bind(s.rank)
        .bind(s.score)
        .bind(serde_json::to_value(s.sub_scores).expect("sub-scores serialise"))
        .bind(&s.reason)
        .bind(&s.title)
        .bind(s.range.start())
        .bind(s.range.end())
        .fetch_one(&mut *conn)
        .await?;
        out.push(row.into_short()?);
    }
    Ok(out)
}

/// The shorts of a video, best first.
///
/// # Errors
/// Database failures.
pub async fn list_shorts(db: impl PgExecutor<'_>, org: OrgId, video: VideoId) -> Result<Vec<Short>> {
    let rows: Vec<ShortRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM videdit.shorts WHERE org_id = $1 AND video_id = $2 ORDER BY rank, id"
    ))
    .bind(org)
    .bind(video)
    .fetch_all(db)
    .await?;
    rows.into_iter().map(ShortRow::into_short).collect()
}

/// One short.
///
/// # Errors
/// `short_not_found` when it is not in this organisation.
pub async fn get_short(db: impl PgExecutor<'_>, org: OrgId, id: ShortId) -> Result<Short> {
    let sql = format!("SELECT {COLUMNS} FROM videdit.shorts WHERE org_id = $1 AND id = $2");
    let row: ShortRow = org_row(db, &sql, org, id, short_not_found, identity).await?;
    row.into_short()
}

/// Sets a short's status.
///
/// # Errors
/// `short_not_found`.
pub async fn set_short_status(db: impl PgExecutor<'_>, org: OrgId, id: ShortId, status: ShortStatus) -> Result<Short> {
    let sql = format!(
        "UPDATE videdit.shorts SET status = $3, updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    let row: ShortRow = org_row(db, &sql, org, id, short_not_found, |q| q.bind(status.as_str())).await?;
    row.into_short()
}

/// Marks a short ready with its output keys.
///
/// # Errors
/// `short_not_found`.
pub async fn set_short_outputs(
    db: impl PgExecutor<'_>,
    org: OrgId,
    id: ShortId,
    outputs: &ShortOutputs,
) -> Result<Short> {
    let sql = format!(
        "UPDATE videdit.shorts SET status = 'ready', video_key = $3, thumbnail_key = $4, recipe_key = $5, updated_at = now()
         WHERE org_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    let row: ShortRow = org_row(db, &sql, org, id, short_not_found, |q| {
        q.bind(outputs.video.as_str()).bind(outputs.thumbnail.as_str()).bind(outputs.recipe.as_str())
    })
    .await?;
    row.into_short()
}

/// Records a user's edit of a short (its range and title, from an edited
/// recipe) and marks it pending for its re-render.
///
/// # Errors
/// `short_not_found`.
pub async fn edit_short(
    db: impl PgExecutor<'_>,
    org: OrgId,
    id: ShortId,
    range: TimeRange,
    title: &str,
) -> Result<Short> {
    let sql = format!(
        "UPDATE videdit.shorts SET start_seconds = $3, end_seconds = $4, title = $5, status = 'pending', updated_at = now()
         WHERE org_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    let row: ShortRow =
        org_row(db, &sql, org, id, short_not_found, |q| q.bind(range.start()).bind(range.end()).bind(title)).await?;
    row.into_short()
}

/// Bumps a short's recipe revision (an edit was saved) and returns it.
///
/// # Errors
/// `short_not_found`.
pub async fn bump_recipe_revision(db: impl PgExecutor<'_>, org: OrgId, id: ShortId) -> Result<i32> {
    let sql = "UPDATE videdit.shorts SET recipe_revision = recipe_revision + 1, updated_at = now()
         WHERE org_id = $1 AND id = $2 RETURNING recipe_revision";
    let (revision,) = org_row(db, sql, org, id, short_not_found, identity).await?;
    Ok(revision)
}

/// A short's recipe revision.
///
/// # Errors
/// `short_not_found`.
pub async fn recipe_revision(db: impl PgExecutor<'_>, org: OrgId, id: ShortId) -> Result<i32> {
    let sql = "SELECT recipe_revision FROM videdit.shorts WHERE org_id = $1 AND id = $2";
    let (revision,) = org_row(db, sql, org, id, short_not_found, identity).await?;
    Ok(revision)
}
