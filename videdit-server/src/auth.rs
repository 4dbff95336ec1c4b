//! Authentication: Clerk session JWTs (RS256) verified against the JWKS, and
//! the mapping of their claims to our users, organisations and roles.
//!
//! Both shapes of Clerk's organisation claims are understood: the older
//! top-level `org_id`/`org_role`/`org_slug`, and the compact v2 form
//! (`"v": 2`, `"o": {"id", "rol", "slg"}`). A token without an organisation
//! works in the user's personal workspace, where the user is admin.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use sqlx::PgPool;
use tokio::sync::{Mutex, RwLock};
use videdit_core::db::{self, Role};
use videdit_core::{ErrorCode, OrgId, UserId};

/// Who is calling, resolved to our ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub user_id: UserId,
    /// The organisation the request acts in.
    pub org_id: OrgId,
    /// The user's role there.
    pub role: Role,
}

/// What a role may do. This is the written role matrix:
///
/// | action | admin | member |
/// | --- | --- | --- |
/// | read videos, shorts, transcripts, jobs | yes | yes |
/// | upload (create, complete, abort) | yes | yes |
/// | rename a video | yes | yes |
/// | re-analyse / re-render, edit a recipe | yes | yes |
/// | cancel a job | yes | no |
/// | delete a video | yes | no |
/// | manage the organisation (limits, members) | yes | no |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read anything of the organisation.
    Read,
    /// Create, complete or abort uploads.
    Upload,
    /// Rename a video.
    Rename,
    /// Start processing jobs, edit recipes.
    Process,
    /// Cancel a job.
    CancelJob,
    /// Delete a video.
    Delete,
    /// Manage the organisation.
    Manage,
}

impl Principal {
    /// Checks the role matrix.
    ///
    /// # Errors
    /// 403 `forbidden` naming the action.
    pub fn require(&self, action: Action) -> Result<(), crate::api::error::ApiError> {
        let allowed = match self.role {
            Role::Admin => true,
            Role::Member => matches!(action, Action::Read | Action::Upload | Action::Rename | Action::Process),
        };
        if allowed {
            Ok(())
        } else {
            Err(crate::api::error::ApiError::forbidden(format!(
                "the {} role may not {action:?} in this organization",
                self.role.as_str()
            )))
        }
    }
}

/// Why a token was refused (401 with a code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials.
    #[error("no bearer token was sent")]
    Missing,
    /// Malformed, wrong signature, wrong issuer/audience, unknown key.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Expired.
    #[error("the token has expired")]
    Expired,
    /// The JWKS could not be fetched.
    #[error("the identity provider's keys are unavailable: {0}")]
    KeysUnavailable(String),
}

impl AuthError {
    /// The stable code.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Missing => ErrorCode::Unauthenticated,
            Self::Invalid(_) => ErrorCode::InvalidToken,
            Self::Expired => ErrorCode::TokenExpired,
            Self::KeysUnavailable(_) => ErrorCode::AuthUnavailable,
        }
    }
}

/// Clerk verification settings.
#[derive(Debug, Clone)]
pub struct ClerkConfig {
    /// The JWKS URL (`https://<frontend-api>/.well-known/jwks.json`).
    pub jwks_url: String,
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`, when the tokens carry one.
    pub audience: Option<String>,
    /// Allowed `azp` values (origins); empty means any.
    pub authorized_parties: Vec<String>,
    /// Clock-skew leeway.
    pub leeway: Duration,
    /// Least time between two JWKS fetches.
    pub min_refresh_interval: Duration,
    /// Keys older than this are fetched again before their next use, so a
    /// key the identity provider removed stops being trusted even for
    /// tokens naming it (a failed refresh keeps the cached keys).
    pub max_key_age: Duration,
}

/// A JWKS, cached; refreshed when a token names an unknown `kid`, at most
/// once per `min_refresh_interval` (so forged `kid`s cannot make us hammer
/// the identity provider), and when the keys are older than `max_key_age`.
pub struct Jwks {
    config: ClerkConfig,
    client: reqwest::Client,
    keys: RwLock<HashMap<String, Arc<DecodingKey>>>,
    /// When the JWKS was last fetched, and why that fetch failed if it did
    /// (so requests inside the refresh interval of a failed fetch report
    /// the outage, not an unknown key).
    last_fetch: Mutex<Option<(Instant, Option<String>)>>,
    /// When the cached keys were fetched.
    fetched_at: std::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks").field("url", &self.config.jwks_url).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: Option<String>,
    kty: String,
    n: Option<String>,
    e: Option<String>,
    #[serde(default)]
    alg: Option<String>,
}

/// The claims we read from a Clerk session token (absent optional claims
/// are `None`).
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    /// Clerk user id.
    pub sub: String,
    /// Optional e-mail (a custom claim).
    pub email: Option<String>,
    /// Authorised party (the origin that asked for the token).
    pub azp: Option<String>,
    /// Claim-format version (2 for the compact organisation claim).
    pub v: Option<u32>,
    /// v1 organisation id.
    pub org_id: Option<String>,
    /// v1 organisation role (`org:admin`, `admin`, `org:member`, …).
    pub org_role: Option<String>,
    /// v1 organisation slug.
    pub org_slug: Option<String>,
    /// v2 compact organisation claim.
    pub o: Option<OrgClaim>,
    /// v2 session status: `active`, or `pending` while the user has not
    /// finished signing in (for example, choosing an organisation).
    pub sts: Option<String>,
}

/// Clerk's v2 compact organisation claim.
#[derive(Debug, Clone, Deserialize)]
pub struct OrgClaim {
    /// Organisation id.
    pub id: String,
    /// Role without the `org:` prefix.
    pub rol: Option<String>,
    /// Slug.
    pub slg: Option<String>,
}

/// The organisation a token acts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgContext {
    /// Clerk organisation id.
    pub id: String,
    /// Role.
    pub role: Role,
    /// Slug.
    pub slug: Option<String>,
}

fn parse_role(raw: Option<&str>) -> Role {
    match raw.map(|r| r.strip_prefix("org:").unwrap_or(r)) {
        Some("admin") => Role::Admin,
        _ => Role::Member,
    }
}

impl Claims {
    /// The organisation, from whichever claim shape the token uses.
    #[must_use]
    pub fn organization(&self) -> Option<OrgContext> {
        if let Some(o) = &self.o {
            return Some(OrgContext { id: o.id.clone(), role: parse_role(o.rol.as_deref()), slug: o.slg.clone() });
        }
        self.org_id.as_ref().map(|id| OrgContext {
            id: id.clone(),
            role: parse_role(self.org_role.as_deref()),
            slug: self.org_slug.clone(),
        })
    }
}

impl Jwks {
    /// A cache for the configured JWKS (nothing is fetched yet).
    #[must_use]
    pub fn new(config: ClerkConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .expect("HTTP client builds");
        Self {
            config,
            client,
            keys: RwLock::new(HashMap::new()),
            last_fetch: Mutex::new(None),
            fetched_at: std::sync::Mutex::new(None),
        }
    }

    fn keys_are_stale(&self) -> bool {
        self.fetched_at.lock().expect("jwks clock").is_some_and(|t| t.elapsed() >= self.config.max_key_age)
    }

    async fn store(&self, fresh: HashMap<String, Arc<DecodingKey>>) {
        *self.keys.write().await = fresh;
        *self.fetched_at.lock().expect("jwks clock") = Some(Instant::now());
    }

    /// Fetches keys past their age again; a failure keeps them (an outage
    /// of the identity provider must not lock every user out).
    async fn refresh_stale(&self) {
        let mut last = self.last_fetch.lock().await;
        let recently = last.as_ref().is_some_and(|(at, _)| at.elapsed() < self.config.min_refresh_interval);
        if !self.keys_are_stale() || recently {
            return;
        }
        match self.fetch().await {
            Ok(fresh) => {
                *last = Some((Instant::now(), None));
                self.store(fresh).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "refreshing the JWKS failed; keeping the cached keys");
                *last = Some((Instant::now(), None));
            }
        }
    }

    async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, AuthError> {
        if self.keys_are_stale() {
            self.refresh_stale().await;
        }
        if let Some(k) = self.keys.read().await.get(kid) {
            return Ok(k.clone());
        }
        {
            let mut last = self.last_fetch.lock().await;
            // Another request may have refreshed while we waited for the lock.
            if let Some(k) = self.keys.read().await.get(kid) {
                return Ok(k.clone());
            }
            if let Some((at, failure)) = last.as_ref()
                && at.elapsed() < self.config.min_refresh_interval
            {
                return Err(match failure {
                    Some(reason) => AuthError::KeysUnavailable(reason.clone()),
                    None => AuthError::Invalid(format!("unknown signing key {kid:?}")),
                });
            }
            match self.fetch().await {
                Ok(fresh) => {
                    *last = Some((Instant::now(), None));
                    self.store(fresh).await;
                }
                Err(e) => {
                    let reason = match &e {
                        AuthError::KeysUnavailable(r) => r.clone(),
                        other => other.to_string(),
                    };
                    *last = Some((Instant::now(), Some(reason)));
                    return Err(e);
                }
            }
        }
        self.keys
            .read()
            .await
            .get(kid)
            .cloned()
            .ok_or_else(|| AuthError::Invalid(format!("unknown signing key {kid:?}")))
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<DecodingKey>>, AuthError> {
        let set: JwkSet = self
            .client
            .get(&self.config.jwks_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| AuthError::KeysUnavailable(e.to_string()))?
            .json()
            .await
            .map_err(|e| AuthError::KeysUnavailable(e.to_string()))?;
        let mut keys = HashMap::new();
        for k in set.keys {
            if k.kty != "RSA" || k.alg.as_deref().is_some_and(|a| a != "RS256") {
                continue;
            }
            if let (Some(kid), Some(n), Some(e)) = (k.kid, k.n, k.e)
                && let Ok(key) = DecodingKey::from_rsa_components(&n, &e)
            {
                keys.insert(kid, Arc::new(key));
            }
        }
        tracing::info!(keys = keys.len(), "fetched the JWKS");
        Ok(keys)
    }

    /// Verifies a token and returns its claims.
    ///
    /// # Errors
    /// [`AuthError`] for every way a token can be wrong.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header = decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::RS256 {
            return Err(AuthError::Invalid(format!("algorithm {:?} is not RS256", header.alg)));
        }
        let kid = header.kid.ok_or_else(|| AuthError::Invalid("the token names no key (kid)".into()))?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        match &self.config.audience {
            Some(aud) => {
                // A token without `aud` must not pass an audience check.
                validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
                validation.set_audience(&[aud]);
            }
            None => {
                validation.set_required_spec_claims(&["exp", "sub", "iss"]);
                validation.validate_aud = false;
            }
        }
        let data = decode::<Claims>(token, &key, &validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
            _ => AuthError::Invalid(e.to_string()),
        })?;
        let claims = data.claims;
        if !self.config.authorized_parties.is_empty()
            && !claims.azp.as_ref().is_some_and(|azp| self.config.authorized_parties.contains(azp))
        {
            return Err(AuthError::Invalid("the token's authorized party (azp) is not allowed".into()));
        }
        if claims.sts.as_deref() == Some("pending") {
            return Err(AuthError::Invalid("the session is pending: finish signing in first".into()));
        }
        Ok(claims)
    }
}

/// How requests are authenticated.
#[derive(Debug)]
pub enum AuthMode {
    /// Clerk session JWTs.
    Clerk(Box<Jwks>),
    /// Local development only: every request is this fixed user, admin of
    /// its personal workspace. Refused unless the server binds to loopback.
    InsecureDev,
}

/// Authenticates requests and remembers recently resolved callers, so a
/// request does not write the user, organisation and membership rows every
/// time. The cache key holds every claim that is written, so a changed role
/// or organisation misses the cache and is written.
#[derive(Debug)]
pub struct Authenticator {
    mode: AuthMode,
    resolved: std::sync::Mutex<HashMap<String, (Principal, Instant)>>,
}

const RESOLVED_TTL: Duration = Duration::from_secs(300);
const RESOLVED_MAX: usize = 50_000;

fn cache_key(claims: &Claims) -> String {
    let org = claims.organization();
    format!(
        "{}|{}|{:?}|{}|{}",
        claims.sub,
        org.as_ref().map_or("", |o| o.id.as_str()),
        org.as_ref().map(|o| o.role),
        org.as_ref().and_then(|o| o.slug.as_deref()).unwrap_or(""),
        claims.email.as_deref().unwrap_or("")
    )
}

impl Authenticator {
    /// An authenticator in the given mode.
    #[must_use]
    pub fn new(mode: AuthMode) -> Self {
        Self { mode, resolved: std::sync::Mutex::new(HashMap::new()) }
    }

    /// Whether every request is the development user (no sign-in).
    #[must_use]
    pub fn is_insecure_dev(&self) -> bool {
        matches!(self.mode, AuthMode::InsecureDev)
    }

    /// Authenticates a bearer token and upserts the user, organisation and
    /// membership it names.
    ///
    /// # Errors
    /// [`AuthError`] for a bad token; database failures as `KeysUnavailable`-
    /// style 503s are mapped by the caller.
    pub async fn authenticate(&self, pool: &PgPool, token: Option<&str>) -> Result<Principal, AuthFailure> {
        let claims = match &self.mode {
            AuthMode::InsecureDev => Claims {
                sub: "user_dev".into(),
                email: Some("dev@localhost".into()),
                azp: None,
                v: None,
                org_id: None,
                org_role: None,
                org_slug: None,
                o: None,
                sts: None,
            },
            AuthMode::Clerk(jwks) => {
                let token = token.ok_or(AuthFailure::Auth(AuthError::Missing))?;
                jwks.verify(token).await.map_err(AuthFailure::Auth)?
            }
        };
        let key = cache_key(&claims);
        if let Some((p, at)) = self.resolved.lock().expect("cache lock").get(&key)
            && at.elapsed() < RESOLVED_TTL
        {
            return Ok(*p);
        }
        let principal = resolve(pool, &claims).await.map_err(AuthFailure::Db)?;
        let mut cache = self.resolved.lock().expect("cache lock");
        if cache.len() >= RESOLVED_MAX {
            cache.retain(|_, (_, at)| at.elapsed() < RESOLVED_TTL);
            if cache.len() >= RESOLVED_MAX {
                cache.clear();
            }
        }
        cache.insert(key, (principal, Instant::now()));
        Ok(principal)
    }
}

/// Authentication failed, or the database did while recording the caller.
#[derive(Debug)]
pub enum AuthFailure {
    /// A bad or missing token.
    Auth(AuthError),
    /// The database failed.
    Db(videdit_core::Error),
}

/// Upserts what the claims name and returns the principal.
///
/// # Errors
/// Database failures.
pub async fn resolve(pool: &PgPool, claims: &Claims) -> videdit_core::Result<Principal> {
    let mut tx = pool.begin().await?;
    let user_id = db::upsert_user(&mut *tx, &claims.sub, claims.email.as_deref()).await?;
    let (org_id, role) = match claims.organization() {
        Some(org) => {
            let name = org.slug.clone().unwrap_or_else(|| org.id.clone());
            let org_id = db::upsert_org(&mut *tx, &org.id, &name, org.slug.as_deref()).await?;
            (org_id, org.role)
        }
        None => (db::personal_org(&mut *tx, user_id).await?, Role::Admin),
    };
    db::upsert_membership(&mut *tx, org_id, user_id, role).await?;
    tx.commit().await?;
    Ok(Principal { user_id, org_id, role })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: serde_json::Value) -> Claims {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn reads_both_organisation_claim_shapes() {
        let v1 = claims(
            serde_json::json!({"sub": "user_1", "org_id": "org_a", "org_role": "org:admin", "org_slug": "acme"}),
        );
        assert_eq!(
            v1.organization(),
            Some(OrgContext { id: "org_a".into(), role: Role::Admin, slug: Some("acme".into()) })
        );
        let v2 =
            claims(serde_json::json!({"sub": "user_1", "v": 2, "o": {"id": "org_b", "rol": "member", "slg": "beta"}}));
        assert_eq!(
            v2.organization(),
            Some(OrgContext { id: "org_b".into(), role: Role::Member, slug: Some("beta".into()) })
        );
        let v2_admin = claims(serde_json::json!({"sub": "u", "v": 2, "o": {"id": "org_c", "rol": "admin"}}));
        assert_eq!(v2_admin.organization().unwrap().role, Role::Admin);
        assert_eq!(claims(serde_json::json!({"sub": "u"})).organization(), None);
        // Unknown roles get the least privilege.
        let odd = claims(serde_json::json!({"sub": "u", "org_id": "o", "org_role": "org:billing_manager"}));
        assert_eq!(odd.organization().unwrap().role, Role::Member);
    }

    #[test]
    fn the_role_matrix() {
        let p = |role| Principal { user_id: UserId::new(), org_id: OrgId::new(), role };
        for action in [Action::Read, Action::Upload, Action::Rename, Action::Process] {
            assert!(p(Role::Member).require(action).is_ok(), "{action:?}");
        }
        for action in [Action::CancelJob, Action::Delete, Action::Manage] {
            let err = p(Role::Member).require(action).unwrap_err();
            assert_eq!(err.body().code, "forbidden");
            assert!(p(Role::Admin).require(action).is_ok());
        }
    }
}
