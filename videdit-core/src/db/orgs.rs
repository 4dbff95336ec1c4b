//! Users, organisations and memberships, upserted from identity claims.

use sqlx::PgExecutor;

use crate::error::Result;
use crate::id::{OrgId, UserId};

/// A member's role. Admins manage the organisation and may delete; members
/// upload and re-render (the API's role matrix is built on this).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Full control of the organisation.
    Admin,
    /// Everyday use.
    Member,
}

impl Role {
    /// Stable name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    /// Parses the stored name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "member" => Some(Self::Member),
            _ => None,
        }
    }
}

/// A user's membership of an organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    /// The organisation.
    pub org_id: OrgId,
    /// The user.
    pub user_id: UserId,
    /// The role.
    pub role: Role,
}

/// Creates or finds the user with this external (identity provider) id.
///
/// # Errors
/// Database failures.
pub async fn upsert_user(db: impl PgExecutor<'_>, external_id: &str, email: Option<&str>) -> Result<UserId> {
    let id: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO videdit.users (id, external_id, email) VALUES ($1, $2, $3)
         ON CONFLICT (external_id) DO UPDATE SET email = COALESCE(EXCLUDED.email, videdit.users.email)
         RETURNING id",
    )
    .bind(UserId::new())
    .bind(external_id)
    .bind(email)
    .fetch_one(db)
    .await?;
    Ok(UserId::from_uuid(id))
}

/// Creates or finds the organisation with this external id, updating its
/// name and slug.
///
/// # Errors
/// Database failures.
pub async fn upsert_org(db: impl PgExecutor<'_>, external_id: &str, name: &str, slug: Option<&str>) -> Result<OrgId> {
    let id: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO videdit.organizations (id, external_id, name, slug) VALUES ($1, $2, $3, $4)
         ON CONFLICT (external_id) DO UPDATE SET name = EXCLUDED.name, slug = COALESCE(EXCLUDED.slug, videdit.organizations.slug)
         RETURNING id",
    )
    .bind(OrgId::new())
    .bind(external_id)
    .bind(name)
    .bind(slug)
    .fetch_one(db)
    .await?;
    Ok(OrgId::from_uuid(id))
}

/// The personal workspace of a user without an organisation, created on
/// first use. The caller should also [`upsert_membership`] as admin.
///
/// # Errors
/// Database failures.
pub async fn personal_org(db: impl PgExecutor<'_>, user: UserId) -> Result<OrgId> {
    let id: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO videdit.organizations (id, personal_user_id, name) VALUES ($1, $2, 'Personal')
         ON CONFLICT (personal_user_id) DO UPDATE SET personal_user_id = EXCLUDED.personal_user_id
         RETURNING id",
    )
    .bind(OrgId::new())
    .bind(user)
    .fetch_one(db)
    .await?;
    Ok(OrgId::from_uuid(id))
}

/// Records (or changes) a user's role in an organisation.
///
/// # Errors
/// Database failures (including unknown org or user).
pub async fn upsert_membership(db: impl PgExecutor<'_>, org: OrgId, user: UserId, role: Role) -> Result<()> {
    sqlx::query(
        "INSERT INTO videdit.memberships (org_id, user_id, role) VALUES ($1, $2, $3)
         ON CONFLICT (org_id, user_id) DO UPDATE SET role = EXCLUDED.role, updated_at = now()
         WHERE videdit.memberships.role <> EXCLUDED.role",
    )
    .bind(org)
    .bind(user)
    .bind(role.as_str())
    .execute(db)
    .await?;
    Ok(())
}

/// The user's membership of the organisation, if any.
///
/// # Errors
/// Database failures.
pub async fn find_membership(db: impl PgExecutor<'_>, org: OrgId, user: UserId) -> Result<Option<Membership>> {
    let role: Option<String> =
        sqlx::query_scalar("SELECT role FROM videdit.memberships WHERE org_id = $1 AND user_id = $2")
            .bind(org)
            .bind(user)
            .fetch_optional(db)
            .await?;
    Ok(role.and_then(|r| Role::parse(&r)).map(|role| Membership { org_id: org, user_id: user, role }))
}
