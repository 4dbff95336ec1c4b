//! Fair sharing between job groups (tenants): claims take from groups in
//! turn, and jobs running per group can be capped.

use std::collections::HashMap;

use crate::job::Job;

/// How a worker shares its slots between job groups (see
/// [`crate::JobSpec::group`]). With it, a claim walks the groups with due
/// jobs in turn, starting after the group the previous claim ended with, so
/// one group with a thousand waiting jobs cannot hold back a group that
/// enqueues ten: those start within the next few claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fairness {
    /// At most this many jobs of one group running at once (over every kind;
    /// `None`: no cap). Counted over every worker, when the claim starts.
    pub max_running_per_group: Option<u32>,
    /// At most this many jobs of one group and kind running at once.
    pub max_running_per_kind: HashMap<String, u32>,
}

/// Sets one group's cap on running jobs, overriding the worker's
/// `max_running_per_group` for it (a tenant's plan): `Some(Some(n))` caps
/// it at `n`, `Some(None)` lifts every cap, `None` removes the override.
/// Claims see it at once.
///
/// # Errors
/// Database failures.
pub async fn set_group_limit(
    db: impl sqlx::PgExecutor<'_>,
    group: &str,
    limit: Option<Option<u32>>,
) -> crate::Result<()> {
    match limit {
        None => {
            sqlx::query("DELETE FROM videdit_queue.group_limits WHERE group_key = $1").bind(group).execute(db).await?;
        }
        Some(cap) => {
            sqlx::query(
                "INSERT INTO videdit_queue.group_limits (group_key, max_running) VALUES ($1, $2)
                 ON CONFLICT (group_key) DO UPDATE SET max_running = excluded.max_running, updated_at = now()",
            )
            .bind(group)
            .bind(cap.map(|n| i32::try_from(n).unwrap_or(i32::MAX)))
            .execute(db)
            .await?;
        }
    }
    Ok(())
}

/// The group a claim ended with, to start the next claim after it: of the
/// claimed jobs' groups, the last in the turn that started after `cursor`.
/// Ungrouped jobs count as the group `""`.
pub(crate) fn next_cursor(cursor: &str, claimed: &[Job]) -> Option<String> {
    claimed.iter().map(|j| j.group_key.as_deref().unwrap_or("")).max_by_key(|g| turn_key(cursor, g)).map(str::to_owned)
}

/// Sort key of a group in the turn that starts after `cursor`: the groups
/// after it first, then those from the start up to it.
fn turn_key<'a>(cursor: &str, group: &'a str) -> (bool, &'a str) {
    (group <= cursor, group)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(group: Option<&str>) -> Job {
        Job {
            id: uuid::Uuid::nil(),
            queue: "q".into(),
            kind: "k".into(),
            payload: serde_json::Value::Null,
            metadata: serde_json::Value::Null,
            attempt: 1,
            max_attempts: 1,
            timeout_ms: None,
            lease_token: uuid::Uuid::nil(),
            run_at: time::OffsetDateTime::UNIX_EPOCH,
            errors: serde_json::json!([]),
            group_key: group.map(str::to_owned),
        }
    }

    #[test]
    fn the_cursor_moves_to_the_last_group_of_the_turn() {
        let claimed = [job(Some("c")), job(Some("a")), job(Some("d"))];
        assert_eq!(next_cursor("b", &claimed).as_deref(), Some("a"), "c, d, then wrapped to a");
        assert_eq!(next_cursor("", &claimed).as_deref(), Some("d"));
        assert_eq!(next_cursor("d", &claimed).as_deref(), Some("d"), "wrapped: a, c, d");
        assert_eq!(next_cursor("b", &[job(None), job(Some("c"))]).as_deref(), Some(""), "ungrouped is the group \"\"");
        assert_eq!(next_cursor("b", &[]), None);
    }
}
