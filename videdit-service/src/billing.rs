//! Billing: plans (configuration, not code), the usage ledger, and the
//! Stripe life cycle.
//!
//! - **Plans** come from a JSON document ([`Plans::parse`]); without one
//!   every organisation is on one unlimited plan and nothing here refuses
//!   anything.
//! - **The ledger** has one row per video. Its processed seconds are
//!   *reserved* when ingest knows the duration, in the transaction that
//!   moves the video on ([`crate::stages::ingested`]), under the
//!   organisation's account row lock, so two videos finishing ingest at once
//!   cannot both take the last minutes. A ready video *commits* its
//!   reservation; a video that fails through no fault of the client (a 5xx
//!   code) *releases* it; one that fails through the client's (a 4xx code:
//!   its file) keeps it, committed. A video is charged once: re-analysing,
//!   re-rendering or re-ingesting it costs nothing more.
//! - **Stripe** events are applied exactly once by id, and in the order of
//!   the objects' own `created` times, never in arrival order
//!   ([`apply_stripe_event`]). Calls to Stripe go through a
//!   [`PaymentProvider`], which the server implements.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use videdit_core::event::EventType;
use videdit_core::{ErrorCode, JobKind, OrgId, Video, VideoId};
use videdit_queue::JobSpec;

use crate::error::{Error, Result};
use crate::jobs::MAINTENANCE_QUEUE;

/// One plan: its Stripe price and its limits (`None`: no limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plan {
    /// Stable id (`free`, `pro`): what `POST /billing/checkout` names.
    pub id: String,
    /// Shown to people (`Pro`); the id when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// The Stripe price of its subscription; `None` for a free plan.
    #[serde(default)]
    pub price_id: Option<String>,
    /// Processed minutes per billing period.
    #[serde(default)]
    pub minutes_per_period: Option<u32>,
    /// Longest source, seconds.
    #[serde(default)]
    pub max_source_seconds: Option<u32>,
    /// Largest upload, bytes.
    #[serde(default)]
    pub max_upload_bytes: Option<u64>,
    /// Most shorts one analysis makes.
    #[serde(default)]
    pub max_shorts_per_video: Option<u32>,
    /// Most jobs of the organisation running at once.
    #[serde(default)]
    pub max_running_jobs: Option<u32>,
    /// Most bytes of uploaded sources the organisation keeps.
    #[serde(default)]
    pub max_stored_bytes: Option<u64>,
}

impl Plan {
    /// Its name for people.
    #[must_use]
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }

    fn unlimited() -> Self {
        Self {
            id: "unlimited".into(),
            name: Some("Unlimited".into()),
            price_id: None,
            minutes_per_period: None,
            max_source_seconds: None,
            max_upload_bytes: None,
            max_shorts_per_video: None,
            max_running_jobs: None,
            max_stored_bytes: None,
        }
    }
}

/// The plans, in the order of the file (cheapest first: "a plan that gives
/// more" is the next one in this order that does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plans {
    default: usize,
    plans: Vec<Plan>,
    configured: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PlansFile {
    default: String,
    plans: Vec<Plan>,
}

impl Plans {
    /// One unlimited plan: what a server without a plans file runs with.
    #[must_use]
    pub fn unlimited() -> Self {
        Self { default: 0, plans: vec![Plan::unlimited()], configured: false }
    }

    /// Parses a plans document: `{"default": "free", "plans": [{"id":
    /// "free", "minutesPerPeriod": 30, …}, {"id": "pro", "priceId":
    /// "price_…", …}]}`.
    ///
    /// # Errors
    /// A line saying what is wrong: bad JSON, an unknown field, a duplicate
    /// id or price, a default that is not a plan or that has a price.
    pub fn parse(json: &str) -> std::result::Result<Self, String> {
        let file: PlansFile = serde_json::from_str(json).map_err(|e| format!("plans: {e}"))?;
        if file.plans.is_empty() {
            return Err("plans: at least one plan is needed".into());
        }
        let (mut ids, mut prices) = (HashSet::new(), HashSet::new());
        for p in &file.plans {
            let ok = !p.id.is_empty()
                && p.id.len() <= 64
                && p.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
            if !ok {
                return Err(format!("plans: id {:?} is not 1 to 64 of a-z, 0-9, - and _", p.id));
            }
            if !ids.insert(p.id.as_str()) {
                return Err(format!("plans: id {:?} appears twice", p.id));
            }
            if let Some(price) = &p.price_id
                && !prices.insert(price.as_str())
            {
                return Err(format!("plans: price {price:?} belongs to two plans"));
            }
        }
        let default = file
            .plans
            .iter()
            .position(|p| p.id == file.default)
            .ok_or_else(|| format!("plans: the default {:?} is not one of the plans", file.default))?;
        if file.plans[default].price_id.is_some() {
            return Err(format!("plans: the default plan {:?} must be free (no priceId)", file.default));
        }
        Ok(Self { default, plans: file.plans, configured: true })
    }

    /// Whether a plans document was given (otherwise: one unlimited plan).
    #[must_use]
    pub const fn configured(&self) -> bool {
        self.configured
    }

    /// Every plan, in order.
    #[must_use]
    pub fn all(&self) -> &[Plan] {
        &self.plans
    }

    /// The plan of an organisation without a subscription (and of one whose
    /// grace period has ended).
    #[must_use]
    pub fn default_plan(&self) -> &Plan {
        &self.plans[self.default]
    }

    /// A plan by id.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id == id)
    }

    /// The plan of a Stripe price.
    #[must_use]
    pub fn by_price(&self, price: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.price_id.as_deref() == Some(price))
    }

    /// The first plan after `plan` (in file order) for which `more` holds.
    fn better(&self, plan: &Plan, more: impl Fn(&Plan) -> bool) -> Option<&Plan> {
        let at = self.plans.iter().position(|p| p.id == plan.id).unwrap_or(0);
        self.plans.iter().skip(at + 1).chain(self.plans.iter().take(at)).find(|p| more(p))
    }
}

/// Billing's configuration.
#[derive(Debug, Clone)]
pub struct Billing {
    /// The plans.
    pub plans: Plans,
    /// How long an organisation keeps its plan after a failed payment.
    pub grace: time::Duration,
}

impl Billing {
    /// No plans file: everything unlimited.
    #[must_use]
    pub fn unlimited() -> Self {
        Self { plans: Plans::unlimited(), grace: time::Duration::days(7) }
    }
}

/// Calls to the payment provider (Stripe), which the server implements.
/// Every call has its own timeout; failures are `payment_provider_unavailable`.
#[async_trait::async_trait]
pub trait PaymentProvider: Send + Sync {
    /// Creates the organisation's customer (idempotent per organisation).
    async fn create_customer(&self, org: OrgId, name: &str) -> Result<String>;
    /// A Checkout Session in subscription mode for `price`; its URL.
    async fn checkout_session(&self, customer: &str, price: &str, org: OrgId) -> Result<String>;
    /// A Customer Portal session; its URL.
    async fn portal_session(&self, customer: &str) -> Result<String>;
    /// One meter event; a retry with the same `identifier` is counted once.
    async fn report_usage(&self, customer: &str, identifier: &str, seconds: u64, at: OffsetDateTime) -> Result<()>;
}

#[derive(Debug, Clone, Default, sqlx::FromRow)]
struct Account {
    plan_id: Option<String>,
    stripe_customer_id: Option<String>,
    subscription_id: Option<String>,
    subscription_status: Option<String>,
    subscription_seen: Option<i64>,
    period_start: Option<OffsetDateTime>,
    period_end: Option<OffsetDateTime>,
    payment_failed_at: Option<OffsetDateTime>,
    grace_until: Option<OffsetDateTime>,
    overdue_recorded: bool,
    trial_end: Option<OffsetDateTime>,
}

const ACCOUNT_COLUMNS: &str = "plan_id, stripe_customer_id, subscription_id, subscription_status, subscription_seen, \
                               period_start, period_end, payment_failed_at, grace_until, overdue_recorded, trial_end";

async fn account(conn: &mut PgConnection, org: OrgId) -> Result<Account> {
    let row: Option<Account> =
        sqlx::query_as(&format!("SELECT {ACCOUNT_COLUMNS} FROM videdit.billing_accounts WHERE org_id = $1"))
            .bind(org.as_uuid())
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.unwrap_or_default())
}

/// The account row, created when missing, locked until the transaction
/// ends: what serialises an organisation's reservations.
async fn lock_account(conn: &mut PgConnection, org: OrgId) -> Result<Account> {
    sqlx::query("INSERT INTO videdit.billing_accounts (org_id) VALUES ($1) ON CONFLICT (org_id) DO NOTHING")
        .bind(org.as_uuid())
        .execute(&mut *conn)
        .await?;
    Ok(sqlx::query_as(&format!("SELECT {ACCOUNT_COLUMNS} FROM videdit.billing_accounts WHERE org_id = $1 FOR UPDATE"))
        .bind(org.as_uuid())
        .fetch_one(&mut *conn)
        .await?)
}

/// Where the organisation stands with its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// No subscription: the default plan.
    Default,
    /// A subscription in good standing (active or trialing).
    Subscribed,
    /// A payment failed; the plan holds until the grace period ends.
    Grace,
    /// The grace period ended without a payment: the default plan's limits.
    Overdue,
}

impl Standing {
    /// Its wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Subscribed => "subscribed",
            Self::Grace => "payment_grace",
            Self::Overdue => "payment_overdue",
        }
    }
}

fn effective<'a>(billing: &'a Billing, acct: &Account, now: OffsetDateTime) -> (&'a Plan, Standing) {
    let subscribed = acct.plan_id.as_deref().and_then(|id| billing.plans.get(id));
    match (subscribed, acct.grace_until) {
        (None, _) => (billing.plans.default_plan(), Standing::Default),
        (Some(_), Some(until)) if now >= until => (billing.plans.default_plan(), Standing::Overdue),
        (Some(p), Some(_)) => (p, Standing::Grace),
        (Some(p), None) => (p, Standing::Subscribed),
    }
}

/// The billing period that holds `now`: the subscription's (rolled
/// forward by its length when a renewal has not been heard of yet), or the
/// calendar month in UTC.
fn period(acct: &Account, now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
    if let (Some(mut start), Some(mut end)) = (acct.period_start, acct.period_end) {
        let len = end - start;
        if len > time::Duration::hours(1) {
            while now >= end {
                start = end;
                end += len;
            }
            return (start, end);
        }
    }
    let start = now.replace_day(1).expect("day 1 exists").replace_time(time::Time::MIDNIGHT);
    let (y, m) = if start.month() == time::Month::December {
        (start.year() + 1, time::Month::January)
    } else {
        (start.year(), start.month().next())
    };
    let end =
        start.replace_day(1).and_then(|d| d.replace_year(y)).and_then(|d| d.replace_month(m)).expect("valid date");
    (start, end)
}

async fn sums(
    conn: &mut PgConnection,
    org: OrgId,
    (start, end): (OffsetDateTime, OffsetDateTime),
) -> Result<(i64, i64)> {
    let row: (i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(seconds) FILTER (WHERE state = 'committed'), 0)::bigint,
                coalesce(sum(seconds) FILTER (WHERE state = 'reserved'), 0)::bigint
           FROM videdit.usage_ledger
          WHERE org_id = $1 AND state <> 'released' AND reserved_at >= $2 AND reserved_at < $3",
    )
    .bind(org.as_uuid())
    .bind(start)
    .bind(end)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row)
}

/// An organisation's plan, period and usage: what `GET /billing` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// The plan whose limits apply now.
    pub plan: Plan,
    /// How it came to apply.
    pub standing: Standing,
    /// The subscription's Stripe status, when there is one.
    pub subscription_status: Option<String>,
    /// The billing period.
    pub period_start: OffsetDateTime,
    /// Its end (exclusive).
    pub period_end: OffsetDateTime,
    /// Seconds of ready (and client-failed) videos this period.
    pub used_seconds: i64,
    /// Seconds of videos still processing.
    pub reserved_seconds: i64,
    /// Seconds left; `None`: unlimited.
    pub remaining_seconds: Option<i64>,
    /// When a failed payment's grace period ends.
    pub grace_until: Option<OffsetDateTime>,
    /// When a trial ends.
    pub trial_end: Option<OffsetDateTime>,
    /// Whether the organisation has a Stripe customer.
    pub has_customer: bool,
}

/// The organisation's usage now.
///
/// # Errors
/// Database failures.
pub async fn usage(conn: &mut PgConnection, billing: &Billing, org: OrgId) -> Result<Usage> {
    let now = OffsetDateTime::now_utc();
    let acct = account(conn, org).await?;
    let (plan, standing) = effective(billing, &acct, now);
    let period = period(&acct, now);
    let (used, reserved) = sums(conn, org, period).await?;
    Ok(Usage {
        plan: plan.clone(),
        standing,
        subscription_status: acct.subscription_status.clone(),
        period_start: period.0,
        period_end: period.1,
        used_seconds: used,
        reserved_seconds: reserved,
        remaining_seconds: plan.minutes_per_period.map(|m| (i64::from(m) * 60 - used - reserved).max(0)),
        grace_until: acct.grace_until,
        trial_end: acct.trial_end,
        has_customer: acct.stripe_customer_id.is_some(),
    })
}

fn minutes(seconds: i64) -> String {
    format!("{:.1}", seconds as f64 / 60.0)
}

fn offer(billing: &Billing, plan: &Plan, more: impl Fn(&Plan) -> bool, what: impl Fn(&Plan) -> String) -> String {
    match billing.plans.better(plan, more) {
        Some(p) => format!("; the {} plan gives {}", p.display_name(), what(p)),
        None => String::new(),
    }
}

/// The limits a plan puts on one upload, checked when it is created: its
/// declared size, its declared duration, the organisation's stored bytes,
/// and whether any minutes remain.
///
/// # Errors
/// `plan_limit_exceeded` or `quota_exceeded` (402), naming the limit and a
/// plan that gives more; database failures.
pub async fn check_upload(
    conn: &mut PgConnection,
    billing: &Billing,
    org: OrgId,
    size: u64,
    duration: Option<f64>,
) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    let acct = account(conn, org).await?;
    let (plan, _) = effective(billing, &acct, now);
    let name = plan.display_name();
    if let Some(max) = plan.max_upload_bytes
        && size > max
    {
        let more =
            offer(billing, plan, |p| p.max_upload_bytes.is_none_or(|m| m >= size), |p| bytes_limit(p.max_upload_bytes));
        return Err(Error::new(
            ErrorCode::PlanLimitExceeded,
            format!("{size} bytes is over the {name} plan's upload limit of {max} bytes{more}"),
        ));
    }
    if let Some(e) = duration.and_then(|d| too_long(billing, plan, d)) {
        return Err(e);
    }
    if let Some(max) = plan.max_stored_bytes {
        let stored: i64 =
            sqlx::query_scalar("SELECT coalesce(sum(size_bytes), 0)::bigint FROM videdit.videos WHERE org_id = $1")
                .bind(org.as_uuid())
                .fetch_one(&mut *conn)
                .await?;
        let total = u64::try_from(stored).unwrap_or(0).saturating_add(size);
        if total > max {
            let more = offer(
                billing,
                plan,
                |p| p.max_stored_bytes.is_none_or(|m| m >= total),
                |p| p.max_stored_bytes.map_or("unlimited storage".into(), |m| format!("{m} bytes of storage")),
            );
            return Err(Error::new(
                ErrorCode::PlanLimitExceeded,
                format!(
                    "the organization stores {stored} bytes; {size} more is over the {name} plan's {max} bytes \
                     (delete videos to make room){more}"
                ),
            ));
        }
    }
    if let Some(m) = plan.minutes_per_period {
        let period = period(&acct, now);
        let (used, reserved) = sums(conn, org, period).await?;
        let remaining = (i64::from(m) * 60 - used - reserved).max(0);
        let needed = duration.map_or(1, seconds_of);
        if needed > remaining {
            return Err(quota_error(billing, plan, needed, remaining, period.1));
        }
    }
    Ok(())
}

/// `plan_limit_exceeded` when a source of `duration` seconds is longer
/// than the plan allows (declared at upload, probed at ingest).
fn too_long(billing: &Billing, plan: &Plan, duration: f64) -> Option<Error> {
    let max = plan.max_source_seconds?;
    if duration <= f64::from(max) {
        return None;
    }
    let more = offer(
        billing,
        plan,
        |p| p.max_source_seconds.is_none_or(|m| f64::from(m) >= duration),
        |p| p.max_source_seconds.map_or("sources of any length".into(), |m| format!("sources up to {m} s")),
    );
    Some(Error::new(
        ErrorCode::PlanLimitExceeded,
        format!("a {duration:.0} s source is over the {} plan's limit of {max} s{more}", plan.display_name()),
    ))
}

fn bytes_limit(max: Option<u64>) -> String {
    max.map_or_else(|| "uploads of any size".into(), |m| format!("uploads up to {m} bytes"))
}

/// Seconds charged for a duration: whole seconds, rounded up.
fn seconds_of(duration: f64) -> i64 {
    if duration.is_finite() && duration > 0.0 { duration.ceil() as i64 } else { 0 }
}

fn quota_error(billing: &Billing, plan: &Plan, needed: i64, remaining: i64, until: OffsetDateTime) -> Error {
    let total = plan.minutes_per_period.unwrap_or(0);
    let more = offer(
        billing,
        plan,
        |p| p.minutes_per_period.is_none_or(|m| m > total),
        |p| p.minutes_per_period.map_or("unlimited minutes".into(), |m| format!("{m} minutes per period")),
    );
    let until = until.date();
    Error::new(
        ErrorCode::QuotaExceeded,
        format!(
            "this video needs {} minutes, but {} of the {} plan's {total} minutes remain until {until}{more}",
            minutes(needed),
            minutes(remaining),
            plan.display_name(),
        ),
    )
}

/// The most shorts one analysis of the organisation may make.
///
/// # Errors
/// Database failures.
pub async fn max_shorts(conn: &mut PgConnection, billing: &Billing, org: OrgId) -> Result<Option<u32>> {
    let acct = account(conn, org).await?;
    Ok(effective(billing, &acct, OffsetDateTime::now_utc()).0.max_shorts_per_video)
}

/// Refuses an explicit shorts count over the plan's (402).
///
/// # Errors
/// `plan_limit_exceeded`; database failures.
pub async fn check_shorts(conn: &mut PgConnection, billing: &Billing, org: OrgId, requested: usize) -> Result<()> {
    let acct = account(conn, org).await?;
    let (plan, _) = effective(billing, &acct, OffsetDateTime::now_utc());
    if let Some(max) = plan.max_shorts_per_video
        && requested > max as usize
    {
        let more = offer(
            billing,
            plan,
            |p| p.max_shorts_per_video.is_none_or(|m| m as usize >= requested),
            |p| p.max_shorts_per_video.map_or("any number of shorts".into(), |m| format!("{m} shorts per video")),
        );
        return Err(Error::new(
            ErrorCode::PlanLimitExceeded,
            format!("{requested} shorts is over the {} plan's {max} per video{more}", plan.display_name()),
        ));
    }
    Ok(())
}

/// What a reservation did.
#[derive(Debug)]
pub(crate) enum Reservation {
    /// Reserved now, or already reserved or committed (a video is charged once).
    Held,
    /// Refused: the video fails with this error.
    Refused(Error),
}

/// Reserves a video's seconds, under the organisation's account lock (the
/// caller's transaction holds it until it commits).
pub(crate) async fn reserve(
    conn: &mut PgConnection,
    billing: &Billing,
    video: &Video,
    duration: f64,
) -> Result<Reservation> {
    let now = OffsetDateTime::now_utc();
    let acct = lock_account(conn, video.org_id).await?;
    let held: Option<String> =
        sqlx::query_scalar("SELECT state FROM videdit.usage_ledger WHERE org_id = $1 AND video_id = $2 FOR UPDATE")
            .bind(video.org_id.as_uuid())
            .bind(video.id.as_uuid())
            .fetch_optional(&mut *conn)
            .await?;
    if matches!(held.as_deref(), Some("reserved" | "committed")) {
        return Ok(Reservation::Held);
    }
    let (plan, _) = effective(billing, &acct, now);
    if let Some(e) = too_long(billing, plan, duration) {
        return Ok(Reservation::Refused(e));
    }
    let seconds = seconds_of(duration);
    if let Some(m) = plan.minutes_per_period {
        let period = period(&acct, now);
        let (used, reserved) = sums(conn, video.org_id, period).await?;
        let remaining = (i64::from(m) * 60 - used - reserved).max(0);
        if seconds > remaining {
            return Ok(Reservation::Refused(quota_error(billing, plan, seconds, remaining, period.1)));
        }
    }
    sqlx::query(
        "INSERT INTO videdit.usage_ledger (org_id, video_id, seconds, state) VALUES ($1, $2, $3, 'reserved')
         ON CONFLICT (org_id, video_id) DO UPDATE
            SET seconds = excluded.seconds, state = 'reserved', reserved_at = now(), updated_at = now()",
    )
    .bind(video.org_id.as_uuid())
    .bind(video.id.as_uuid())
    .bind(i32::try_from(seconds).unwrap_or(i32::MAX))
    .execute(&mut *conn)
    .await?;
    Ok(Reservation::Held)
}

/// A ready video commits its reservation; the first commit queues its
/// meter report when the organisation has a Stripe customer.
pub(crate) async fn commit(conn: &mut PgConnection, video: &Video) -> Result<()> {
    let committed: Option<i32> = sqlx::query_scalar(
        "UPDATE videdit.usage_ledger SET state = 'committed', updated_at = now()
          WHERE org_id = $1 AND video_id = $2 AND state = 'reserved' RETURNING seconds",
    )
    .bind(video.org_id.as_uuid())
    .bind(video.id.as_uuid())
    .fetch_optional(&mut *conn)
    .await?;
    if committed.is_none() {
        return Ok(());
    }
    let customer: Option<String> =
        sqlx::query_scalar("SELECT stripe_customer_id FROM videdit.billing_accounts WHERE org_id = $1")
            .bind(video.org_id.as_uuid())
            .fetch_optional(&mut *conn)
            .await?
            .flatten();
    if customer.is_some() {
        let payload = UsageJob { org_id: video.org_id, video_id: video.id };
        let spec = JobSpec::new(JobKind::ReportUsage.as_str(), &payload)?
            .queue(MAINTENANCE_QUEUE)
            .group(video.org_id.to_string())
            .unique_key(format!("report_usage:{}", video.id))
            .max_attempts(25)
            .metadata(serde_json::json!({"orgId": video.org_id, "videoId": video.id, "kind": "report_usage"}));
        videdit_queue::enqueue(&mut *conn, &spec).await?;
    }
    Ok(())
}

/// A failed video: released when the failure is ours (a 5xx code),
/// committed when it is the client's (its file).
pub(crate) async fn settle_failed(conn: &mut PgConnection, video: &Video, code: ErrorCode) -> Result<()> {
    let state = if code.http_status() >= 500 { "released" } else { "committed" };
    sqlx::query(
        "UPDATE videdit.usage_ledger SET state = $3, updated_at = now()
          WHERE org_id = $1 AND video_id = $2 AND state = 'reserved'",
    )
    .bind(video.org_id.as_uuid())
    .bind(video.id.as_uuid())
    .bind(state)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The payload of a `report_usage` job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UsageJob {
    /// The organisation.
    pub org_id: OrgId,
    /// The ready video.
    pub video_id: VideoId,
}

/// The meter identifier of a video: Stripe counts a retried report once.
#[must_use]
pub fn meter_identifier(video: VideoId) -> String {
    format!("video_{video}")
}

/// Reports a committed video's seconds to the meter (the `report_usage`
/// job). Nothing to do when the row is not committed or there is no
/// customer.
///
/// # Errors
/// The provider's failures (retryable); database failures.
pub async fn report_usage(pool: &PgPool, provider: &dyn PaymentProvider, job: &UsageJob) -> Result<bool> {
    let row: Option<(i32, String, Option<String>, OffsetDateTime)> = sqlx::query_as(
        "SELECT l.seconds, l.state, a.stripe_customer_id, l.updated_at
           FROM videdit.usage_ledger l LEFT JOIN videdit.billing_accounts a ON a.org_id = l.org_id
          WHERE l.org_id = $1 AND l.video_id = $2",
    )
    .bind(job.org_id.as_uuid())
    .bind(job.video_id.as_uuid())
    .fetch_optional(pool)
    .await?;
    let Some((seconds, state, Some(customer), committed_at)) = row else { return Ok(false) };
    if state != "committed" {
        return Ok(false);
    }
    let seconds = u64::try_from(seconds).unwrap_or(0);
    // The event's time is when the usage was committed, not when this run
    // reports it: a retried report then sends the very same request, which
    // Stripe's idempotency key requires (a new timestamp under the same key
    // is refused with `idempotency_error`).
    provider.report_usage(&customer, &meter_identifier(job.video_id), seconds, committed_at).await?;
    Ok(true)
}

async fn org_name(conn: &mut PgConnection, org: OrgId) -> Result<String> {
    Ok(sqlx::query_scalar("SELECT name FROM videdit.organizations WHERE id = $1")
        .bind(org.as_uuid())
        .fetch_optional(&mut *conn)
        .await?
        .unwrap_or_default())
}

/// The organisation's Stripe customer: the stored one, or a new one
/// (created once: the provider's call is idempotent per organisation, and
/// the first stored id wins a race).
async fn ensure_customer(pool: &PgPool, provider: &dyn PaymentProvider, org: OrgId) -> Result<String> {
    let mut conn = pool.acquire().await?;
    if let Some(c) = account(&mut conn, org).await?.stripe_customer_id {
        return Ok(c);
    }
    let name = org_name(&mut conn, org).await?;
    drop(conn);
    let created = provider.create_customer(org, &name).await?;
    Ok(sqlx::query_scalar(
        "INSERT INTO videdit.billing_accounts (org_id, stripe_customer_id) VALUES ($1, $2)
         ON CONFLICT (org_id) DO UPDATE
            SET stripe_customer_id = coalesce(videdit.billing_accounts.stripe_customer_id, excluded.stripe_customer_id),
                updated_at = now()
         RETURNING stripe_customer_id",
    )
    .bind(org.as_uuid())
    .bind(&created)
    .fetch_one(pool)
    .await?)
}

/// A Checkout Session for `plan`; its URL.
///
/// # Errors
/// `invalid_request` for an unknown or free plan; `invalid_state` when the
/// organisation already subscribes to it; provider failures.
pub async fn checkout(
    pool: &PgPool,
    billing: &Billing,
    provider: &dyn PaymentProvider,
    org: OrgId,
    plan: &str,
) -> Result<String> {
    let Some(p) = billing.plans.get(plan) else {
        let known: Vec<&str> = billing.plans.all().iter().map(|p| p.id.as_str()).collect();
        return Err(Error::invalid(format!("unknown plan {plan:?}; the plans are {}", known.join(", "))));
    };
    let Some(price) = p.price_id.as_deref() else {
        return Err(Error::invalid(format!("the {} plan is free: there is nothing to check out", p.display_name())));
    };
    {
        let mut conn = pool.acquire().await?;
        let acct = account(&mut conn, org).await?;
        if acct.plan_id.as_deref() == Some(plan) && acct.subscription_status.as_deref() != Some("canceled") {
            return Err(Error::invalid_state(format!(
                "the organization already subscribes to the {} plan; change plans in the customer portal",
                p.display_name()
            )));
        }
    }
    let customer = ensure_customer(pool, provider, org).await?;
    provider.checkout_session(&customer, price, org).await
}

/// A Customer Portal session; its URL.
///
/// # Errors
/// `invalid_state` before the first checkout; provider failures.
pub async fn portal(pool: &PgPool, provider: &dyn PaymentProvider, org: OrgId) -> Result<String> {
    let mut conn = pool.acquire().await?;
    let Some(customer) = account(&mut conn, org).await?.stripe_customer_id else {
        return Err(Error::invalid_state("the organization has no billing account yet: check out a plan first"));
    };
    drop(conn);
    provider.portal_session(&customer).await
}

/// A Stripe event, as the server's adapter read it from the verified body.
#[derive(Debug, Clone, PartialEq)]
pub struct StripeEvent {
    /// `evt_…`: each is applied once.
    pub id: String,
    /// Its type (`customer.subscription.updated`).
    pub kind: String,
    /// Its `created` (Unix seconds).
    pub created: i64,
    /// What it says.
    pub change: StripeChange,
}

/// What a Stripe event says, in the terms billing needs.
#[derive(Debug, Clone, PartialEq)]
pub enum StripeChange {
    /// `checkout.session.completed`.
    CheckoutCompleted {
        /// `client_reference_id`: the organisation.
        org: Option<String>,
        /// The customer.
        customer: Option<String>,
        /// The subscription it started.
        subscription: Option<String>,
    },
    /// `customer.subscription.created|updated|deleted`: the object's state.
    Subscription(SubscriptionState),
    /// `invoice.paid`.
    InvoicePaid {
        /// The customer.
        customer: Option<String>,
    },
    /// `invoice.payment_failed`.
    InvoicePaymentFailed {
        /// The customer.
        customer: Option<String>,
    },
    /// `customer.subscription.trial_will_end`.
    TrialWillEnd(SubscriptionState),
    /// Anything else: recorded, changes nothing.
    Other,
}

/// A subscription as an event carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState {
    /// `sub_…`.
    pub id: String,
    /// Its customer.
    pub customer: String,
    /// `active`, `trialing`, `past_due`, `canceled`, `unpaid`, `incomplete`, …
    pub status: String,
    /// The price of its first item.
    pub price: Option<String>,
    /// Its current period (Unix seconds).
    pub period: Option<(i64, i64)>,
    /// When its trial ends.
    pub trial_end: Option<i64>,
    /// `metadata.org_id`, as checkout sets it.
    pub org: Option<String>,
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Seen before: nothing done.
    Duplicate,
    /// Recorded, with what it did.
    Done(&'static str),
}

fn unix(t: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

async fn org_of(conn: &mut PgConnection, customer: Option<&str>, hint: Option<&str>) -> Result<Option<OrgId>> {
    if let Some(c) = customer {
        let found: Option<uuid::Uuid> =
            sqlx::query_scalar("SELECT org_id FROM videdit.billing_accounts WHERE stripe_customer_id = $1")
                .bind(c)
                .fetch_optional(&mut *conn)
                .await?;
        if let Some(id) = found {
            return Ok(Some(OrgId::from_uuid(id)));
        }
    }
    let Some(org) = hint.and_then(|h| h.parse::<OrgId>().ok()) else { return Ok(None) };
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM videdit.organizations WHERE id = $1)")
        .bind(org.as_uuid())
        .fetch_one(&mut *conn)
        .await?;
    Ok(exists.then_some(org))
}

/// Applies a verified Stripe event once (by id), in one transaction with
/// its billing events. Subscription changes apply in the order of the
/// events' `created` (an older event arriving later changes nothing; a
/// canceled subscription stays canceled); a payment recovered before a
/// failure that arrives later does not start a grace period.
///
/// # Errors
/// Database failures (Stripe retries the delivery).
pub async fn apply_stripe_event(pool: &PgPool, billing: &Billing, ev: &StripeEvent) -> Result<Applied> {
    let mut tx = pool.begin().await?;
    let fresh: Option<String> = sqlx::query_scalar(
        "INSERT INTO videdit.stripe_events (id, type, created, outcome) VALUES ($1, $2, $3, 'received')
         ON CONFLICT (id) DO NOTHING RETURNING id",
    )
    .bind(&ev.id)
    .bind(&ev.kind)
    .bind(ev.created)
    .fetch_optional(&mut *tx)
    .await?;
    if fresh.is_none() {
        return Ok(Applied::Duplicate);
    }
    let (customer, hint) = match &ev.change {
        StripeChange::CheckoutCompleted { org, customer, .. } => (customer.as_deref(), org.as_deref()),
        StripeChange::Subscription(s) | StripeChange::TrialWillEnd(s) => (Some(s.customer.as_str()), s.org.as_deref()),
        StripeChange::InvoicePaid { customer } | StripeChange::InvoicePaymentFailed { customer } => {
            (customer.as_deref(), None)
        }
        StripeChange::Other => (None, None),
    };
    let outcome = match org_of(&mut tx, customer, hint).await? {
        None if matches!(ev.change, StripeChange::Other) => "ignored",
        None => {
            tracing::warn!(event = %ev.id, kind = %ev.kind, "a Stripe event for a customer we do not know");
            "unknown_customer"
        }
        Some(org) => {
            let outcome = apply(&mut tx, billing, org, ev).await?;
            sqlx::query("UPDATE videdit.stripe_events SET org_id = $2 WHERE id = $1")
                .bind(&ev.id)
                .bind(org.as_uuid())
                .execute(&mut *tx)
                .await?;
            outcome
        }
    };
    sqlx::query("UPDATE videdit.stripe_events SET outcome = $2 WHERE id = $1")
        .bind(&ev.id)
        .bind(outcome)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Applied::Done(outcome))
}

async fn apply(conn: &mut PgConnection, billing: &Billing, org: OrgId, ev: &StripeEvent) -> Result<&'static str> {
    let now = OffsetDateTime::now_utc();
    let acct = lock_account(conn, org).await?;
    let (before, _) = effective(billing, &acct, now);
    let before = before.id.clone();
    let outcome = match &ev.change {
        StripeChange::CheckoutCompleted { customer, subscription, .. } => {
            sqlx::query(
                "UPDATE videdit.billing_accounts
                    SET stripe_customer_id = coalesce(stripe_customer_id, $2),
                        subscription_id = coalesce(subscription_id, $3), updated_at = now()
                  WHERE org_id = $1",
            )
            .bind(org.as_uuid())
            .bind(customer)
            .bind(subscription)
            .execute(&mut *conn)
            .await?;
            "checkout_recorded"
        }
        StripeChange::Subscription(s) => apply_subscription(conn, billing, org, &acct, ev, s).await?,
        StripeChange::TrialWillEnd(s) => {
            sqlx::query("UPDATE videdit.billing_accounts SET trial_end = $2, updated_at = now() WHERE org_id = $1")
                .bind(org.as_uuid())
                .bind(s.trial_end.map(unix))
                .execute(&mut *conn)
                .await?;
            "trial_end_recorded"
        }
        StripeChange::InvoicePaid { .. } => {
            // A payment clears a failure that happened before it, not one after.
            let cleared = sqlx::query(
                "UPDATE videdit.billing_accounts SET payment_failed_at = NULL, grace_until = NULL, overdue_recorded = false, updated_at = now()
                  WHERE org_id = $1 AND payment_failed_at IS NOT NULL AND payment_failed_at <= $2",
            )
            .bind(org.as_uuid())
            .bind(unix(ev.created))
            .execute(&mut *conn)
            .await?;
            if cleared.rows_affected() > 0 { "payment_recovered" } else { "paid" }
        }
        StripeChange::InvoicePaymentFailed { .. } => {
            // The failure's own time, never later than now (clocks differ).
            let failed_at = unix(ev.created).min(now);
            if acct.payment_failed_at.is_some() {
                "payment_failed_again"
            } else {
                let until = failed_at + billing.grace;
                sqlx::query(
                    "UPDATE videdit.billing_accounts SET payment_failed_at = $2, grace_until = $3, updated_at = now()
                      WHERE org_id = $1",
                )
                .bind(org.as_uuid())
                .bind(failed_at)
                .bind(until)
                .execute(&mut *conn)
                .await?;
                crate::events::record(
                    conn,
                    org,
                    EventType::BillingPaymentFailed,
                    None,
                    serde_json::json!({"graceUntil": rfc3339(until), "plan": before}),
                )
                .await?;
                let spec = JobSpec::new(JobKind::BillingGraceEnded.as_str(), &serde_json::json!({"orgId": org}))?
                    .queue(MAINTENANCE_QUEUE)
                    .group(org.to_string())
                    .unique_key(format!("billing_grace_ended:{org}"))
                    .run_at(until)
                    .metadata(serde_json::json!({"orgId": org, "kind": "billing_grace_ended"}));
                videdit_queue::enqueue(&mut *conn, &spec).await?;
                "grace_started"
            }
        }
        StripeChange::Other => "ignored",
    };
    let after = account(conn, org).await?;
    plan_changed(conn, billing, org, &before, &after, now, &ev.kind).await?;
    Ok(outcome)
}

/// The organisation's cap on running jobs follows its plan: the queue's
/// group (the organisation) gets its own cap, or none when the default
/// plan applies (the worker's setting is the default plan's).
async fn running_cap(conn: &mut PgConnection, billing: &Billing, org: OrgId, plan: &Plan) -> Result<()> {
    let limit = (plan.id != billing.plans.default_plan().id).then_some(plan.max_running_jobs);
    videdit_queue::set_group_limit(&mut *conn, &org.to_string(), limit).await?;
    Ok(())
}

/// Records `billing.plan_changed` when the effective plan is not `before`.
async fn plan_changed(
    conn: &mut PgConnection,
    billing: &Billing,
    org: OrgId,
    before: &str,
    after: &Account,
    now: OffsetDateTime,
    cause: &str,
) -> Result<()> {
    let (plan, standing) = effective(billing, after, now);
    if standing == Standing::Overdue {
        sqlx::query("UPDATE videdit.billing_accounts SET overdue_recorded = true WHERE org_id = $1")
            .bind(org.as_uuid())
            .execute(&mut *conn)
            .await?;
    }
    if plan.id != before {
        running_cap(conn, billing, org, plan).await?;
        crate::events::record(
            conn,
            org,
            EventType::BillingPlanChanged,
            None,
            serde_json::json!({"from": before, "to": plan.id, "standing": standing.as_str(), "cause": cause}),
        )
        .await?;
    }
    Ok(())
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

const LIVE: [&str; 3] = ["active", "trialing", "past_due"];

async fn apply_subscription(
    conn: &mut PgConnection,
    billing: &Billing,
    org: OrgId,
    acct: &Account,
    ev: &StripeEvent,
    s: &SubscriptionState,
) -> Result<&'static str> {
    let same = acct.subscription_id.as_deref() == Some(s.id.as_str());
    let seen = acct.subscription_seen.unwrap_or(i64::MIN);
    if same && acct.subscription_status.as_deref() == Some("canceled") {
        return Ok("stale_after_cancel");
    }
    if same && ev.created < seen {
        return Ok("stale");
    }
    let current_live = acct.subscription_status.as_deref().is_some_and(|st| LIVE.contains(&st));
    if !same && current_live && acct.subscription_id.is_some() && ev.created < seen {
        // An older subscription's event, after a newer subscription was seen.
        return Ok("stale_other_subscription");
    }
    if !same && current_live && !LIVE.contains(&s.status.as_str()) && acct.subscription_id.is_some() {
        // The end of a subscription this account no longer follows.
        return Ok("other_subscription_ended");
    }
    let plan = if LIVE.contains(&s.status.as_str()) {
        match s.price.as_deref().and_then(|p| billing.plans.by_price(p)) {
            Some(p) => Some(p.id.clone()),
            None => {
                tracing::warn!(org = %org, price = ?s.price, "a subscription on a price no plan names; the default plan applies");
                None
            }
        }
    } else {
        None
    };
    let recovered = matches!(s.status.as_str(), "active" | "trialing");
    sqlx::query(
        "UPDATE videdit.billing_accounts
            SET plan_id = $2, subscription_id = $3, subscription_status = $4, subscription_price = $5,
                subscription_seen = $6, period_start = coalesce($7, period_start), period_end = coalesce($8, period_end),
                trial_end = $9,
                payment_failed_at = CASE WHEN $10 THEN NULL ELSE payment_failed_at END,
                grace_until = CASE WHEN $10 THEN NULL ELSE grace_until END,
                overdue_recorded = CASE WHEN $10 THEN false ELSE overdue_recorded END,
                updated_at = now()
          WHERE org_id = $1",
    )
    .bind(org.as_uuid())
    .bind(plan)
    .bind(&s.id)
    .bind(&s.status)
    .bind(&s.price)
    .bind(ev.created)
    .bind(s.period.map(|p| unix(p.0)))
    .bind(s.period.map(|p| unix(p.1)))
    .bind(s.trial_end.map(unix))
    .bind(recovered && acct.payment_failed_at.is_some_and(|f| f <= unix(ev.created)))
    .execute(&mut *conn)
    .await?;
    Ok(if LIVE.contains(&s.status.as_str()) { "subscription_applied" } else { "subscription_ended" })
}

/// The `billing_grace_ended` job: records `billing.plan_changed` when the
/// grace period of a failed payment ended without a payment.
///
/// # Errors
/// Database failures.
pub async fn grace_ended(pool: &PgPool, billing: &Billing, org: OrgId) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let acct = lock_account(&mut tx, org).await?;
    let now = OffsetDateTime::now_utc();
    let Some(until) = acct.grace_until else { return Ok(false) };
    if now < until || acct.overdue_recorded {
        return Ok(false);
    }
    let subscribed = acct.plan_id.as_deref().and_then(|id| billing.plans.get(id)).map(|p| p.id.clone());
    let Some(before) = subscribed else { return Ok(false) };
    let changed = !effective(billing, &acct, now).0.id.eq(&before);
    if changed {
        running_cap(&mut tx, billing, org, billing.plans.default_plan()).await?;
        crate::events::record(
            &mut tx,
            org,
            EventType::BillingPlanChanged,
            None,
            serde_json::json!({"from": before, "to": billing.plans.default_plan().id, "standing": Standing::Overdue.as_str(), "cause": "grace_period_ended"}),
        )
        .await?;
        sqlx::query("UPDATE videdit.billing_accounts SET overdue_recorded = true WHERE org_id = $1")
            .bind(org.as_uuid())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(changed)
}

/// Records `billing.quota_exceeded` for a refused video.
pub(crate) async fn record_refusal(conn: &mut PgConnection, video: &Video, e: &Error) -> Result<()> {
    crate::events::record(
        conn,
        video.org_id,
        EventType::BillingQuotaExceeded,
        Some(video.id.as_uuid()),
        serde_json::json!({"videoId": video.id, "code": e.code().as_str(), "message": e.message()}),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLANS: &str = r#"{"default": "free", "plans": [
        {"id": "free", "name": "Free", "minutesPerPeriod": 30, "maxUploadBytes": 1000},
        {"id": "pro", "name": "Pro", "priceId": "price_pro", "minutesPerPeriod": 600},
        {"id": "max", "priceId": "price_max"}
    ]}"#;

    #[test]
    fn plans_parse_and_refuse_what_is_inconsistent() {
        let plans = Plans::parse(PLANS).unwrap();
        assert_eq!(plans.default_plan().id, "free");
        assert_eq!(plans.by_price("price_pro").unwrap().id, "pro");
        assert!(plans.configured());
        let bad = [
            (r#"{"default": "x", "plans": [{"id": "free"}]}"#, "not one of the plans"),
            (r#"{"default": "pro", "plans": [{"id": "pro", "priceId": "p"}]}"#, "must be free"),
            (r#"{"default": "a", "plans": [{"id": "a"}, {"id": "a"}]}"#, "twice"),
            (
                r#"{"default": "a", "plans": [{"id": "a"}, {"id": "b", "priceId": "p"}, {"id": "c", "priceId": "p"}]}"#,
                "two plans",
            ),
            (r#"{"default": "a", "plans": [{"id": "a", "minutes": 3}]}"#, "unknown field"),
            (r#"{"default": "A b", "plans": [{"id": "A b"}]}"#, "is not 1 to 64"),
            (r#"{"default": "a", "plans": []}"#, "at least one"),
        ];
        for (json, why) in bad {
            let e = Plans::parse(json).unwrap_err();
            assert!(e.contains(why), "{json}: {e}");
        }
    }

    #[test]
    fn the_better_plan_is_the_next_that_gives_more() {
        let plans = Plans::parse(PLANS).unwrap();
        let free = plans.get("free").unwrap();
        assert_eq!(plans.better(free, |p| p.minutes_per_period.is_none_or(|m| m > 30)).unwrap().id, "pro");
        let pro = plans.get("pro").unwrap();
        assert_eq!(plans.better(pro, |p| p.minutes_per_period.is_none_or(|m| m > 600)).unwrap().id, "max");
        assert!(plans.better(pro, |p| p.minutes_per_period.is_some_and(|m| m > 600)).is_none());
    }

    #[test]
    fn the_grace_period_keeps_the_plan_then_falls_back_to_the_default() {
        let billing = Billing { plans: Plans::parse(PLANS).unwrap(), grace: time::Duration::days(3) };
        let now = OffsetDateTime::now_utc();
        let mut acct = Account { plan_id: Some("pro".into()), ..Account::default() };
        assert_eq!(effective(&billing, &acct, now).1, Standing::Subscribed);
        acct.grace_until = Some(now + time::Duration::hours(1));
        assert_eq!(
            (effective(&billing, &acct, now).0.id.as_str(), effective(&billing, &acct, now).1),
            ("pro", Standing::Grace)
        );
        acct.grace_until = Some(now - time::Duration::hours(1));
        assert_eq!(
            (effective(&billing, &acct, now).0.id.as_str(), effective(&billing, &acct, now).1),
            ("free", Standing::Overdue)
        );
        let gone = Account { plan_id: Some("retired".into()), ..Account::default() };
        assert_eq!(
            effective(&billing, &gone, now).0.id,
            "free",
            "a plan no longer in the file falls back to the default"
        );
    }

    #[test]
    fn periods_roll_forward_and_default_to_the_calendar_month() {
        let now = time::macros::datetime!(2026-12-15 10:00 UTC);
        let (s, e) = period(&Account::default(), now);
        assert_eq!(
            (s, e),
            (time::macros::datetime!(2026-12-01 0:00 UTC), time::macros::datetime!(2027-01-01 0:00 UTC))
        );
        let acct = Account {
            period_start: Some(time::macros::datetime!(2026-10-20 0:00 UTC)),
            period_end: Some(time::macros::datetime!(2026-11-20 0:00 UTC)),
            ..Account::default()
        };
        let (s, e) = period(&acct, now);
        assert!(s <= now && now < e, "{s} {e}");
        assert_eq!(e - s, time::Duration::days(31));
        assert_eq!(seconds_of(239.2), 240);
        assert_eq!(seconds_of(f64::NAN), 0);
    }
}
