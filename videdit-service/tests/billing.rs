//! Billing in the application layer, on a real PostgreSQL: the quota race,
//! reservations released or committed by how a video ends, a video charged
//! once, upload checks, and Stripe events applied once and in the objects'
//! own order.

use std::sync::Arc;

use sqlx::PgPool;
use videdit_core::db;
use videdit_core::storage::{LocalStorage, Storage, UrlSigner};
use videdit_core::{ErrorCode, OrgId, ProcessingStage, UserId, Video, VideoStatus};
use videdit_service::billing::{self, Applied, Billing, Plans, Standing, StripeChange, StripeEvent, SubscriptionState};
use videdit_service::stages;
use videdit_service::uploads::{self, NewUploadRequest, UploadLimits};

const PLANS: &str = r#"{"default": "free", "plans": [
    {"id": "free", "name": "Free", "minutesPerPeriod": 5, "maxUploadBytes": 1000000, "maxSourceSeconds": 600,
     "maxShortsPerVideo": 2, "maxStoredBytes": 1500000},
    {"id": "pro", "name": "Pro", "priceId": "price_pro", "minutesPerPeriod": 600},
    {"id": "max", "name": "Max", "priceId": "price_max"}
]}"#;

fn plans(grace_hours: i64) -> Billing {
    Billing { plans: Plans::parse(PLANS).unwrap(), grace: time::Duration::hours(grace_hours) }
}

const LIMITS: UploadLimits = UploadLimits { max_upload_bytes: 1 << 40, multipart_threshold: 1 << 30 };

async fn setup(pool: &PgPool, user: &str) -> (OrgId, UserId, Arc<dyn Storage>, tempfile::TempDir) {
    db::migrate(pool).await.unwrap();
    videdit_queue::migrate(pool).await.unwrap();
    let user = db::upsert_user(pool, user, None).await.unwrap();
    let org = db::personal_org(pool, user).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let signer = UrlSigner::new(vec![3u8; 32], "http://127.0.0.1:1".parse().unwrap()).unwrap();
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::open(dir.path(), Some(signer)).await.unwrap());
    (org, user, storage, dir)
}

/// A video being ingested (its upload done).
async fn ingesting(pool: &PgPool, b: &Billing, storage: &dyn Storage, org: OrgId, user: UserId) -> Video {
    let req =
        NewUploadRequest { file_name: "talk.mp4".into(), content_type: "video/mp4".into(), size: 10, duration: None };
    let plan = uploads::create(pool, storage, b, LIMITS, org, user, &req).await.unwrap();
    let stage = VideoStatus::Processing { stage: ProcessingStage::Ingesting };
    db::set_video_status(pool, org, plan.video_id, &stage, None, None).await.unwrap()
}

async fn ingest(pool: &PgPool, b: &Billing, video: &Video, seconds: f64) -> Video {
    let mut tx = pool.begin().await.unwrap();
    let v = stages::ingested(&mut tx, b, video, seconds).await.unwrap();
    tx.commit().await.unwrap();
    v
}

async fn usage(pool: &PgPool, b: &Billing, org: OrgId) -> billing::Usage {
    let mut conn = pool.acquire().await.unwrap();
    billing::usage(&mut conn, b, org).await.unwrap()
}

#[sqlx::test(migrations = false)]
async fn two_videos_finishing_ingest_at_once_cannot_both_take_the_last_minutes(pool: PgPool) {
    let b = plans(24);
    let (org, user, storage, _dir) = setup(&pool, "user_race").await;
    let (a, c) = (
        ingesting(&pool, &b, storage.as_ref(), org, user).await,
        ingesting(&pool, &b, storage.as_ref(), org, user).await,
    );
    // The account exists already, so only its row lock can serialise the two.
    sqlx::query("INSERT INTO videdit.billing_accounts (org_id) VALUES ($1)")
        .bind(org.as_uuid())
        .execute(&pool)
        .await
        .unwrap();
    // Five minutes left; two four-minute videos, each in its own
    // transaction, started together.
    let run = |v: Video| {
        let (pool, b) = (pool.clone(), b.clone());
        tokio::spawn(async move {
            let mut tx = pool.begin().await.unwrap();
            let out = stages::ingested(&mut tx, &b, &v, 240.0).await.unwrap();
            tx.commit().await.unwrap();
            out
        })
    };
    let (ra, rc) = tokio::join!(run(a), run(c));
    let outcomes = [ra.unwrap(), rc.unwrap()];
    let on = outcomes
        .iter()
        .filter(|v| v.status == VideoStatus::Processing { stage: ProcessingStage::Transcribing })
        .count();
    let refused: Vec<&Video> = outcomes.iter().filter(|v| v.failure_code == Some(ErrorCode::QuotaExceeded)).collect();
    assert_eq!((on, refused.len()), (1, 1), "exactly one proceeds: {outcomes:?}");
    let reason = refused[0].status.failure_reason().unwrap();
    assert!(
        reason.contains("1.0 of the Free plan's 5 minutes remain") && reason.contains("the Pro plan gives 600"),
        "{reason}"
    );
    let u = usage(&pool, &b, org).await;
    assert_eq!((u.used_seconds, u.reserved_seconds, u.remaining_seconds), (0, 240, Some(60)));
    let events = videdit_service::events::list(&pool, org, None, &["billing.quota_exceeded".into()], 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].payload["code"], "quota_exceeded");
}

#[sqlx::test(migrations = false)]
async fn our_failures_release_client_failures_keep_and_a_video_is_charged_once(pool: PgPool) {
    let b = plans(24);
    let (org, user, storage, _dir) = setup(&pool, "user_ledger").await;
    // Ours (a 5xx code): released.
    let v1 = ingest(&pool, &b, &ingesting(&pool, &b, storage.as_ref(), org, user).await, 100.0).await;
    let mut tx = pool.begin().await.unwrap();
    stages::fail(&mut tx, &v1, ErrorCode::StorageUnavailable, "storage failed").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(usage(&pool, &b, org).await.reserved_seconds, 0);
    // The client's (its file): kept, as used.
    let v2 = ingest(&pool, &b, &ingesting(&pool, &b, storage.as_ref(), org, user).await, 50.4).await;
    let mut tx = pool.begin().await.unwrap();
    stages::fail(&mut tx, &v2, ErrorCode::NoAudioStream, "no sound").await.unwrap();
    tx.commit().await.unwrap();
    let u = usage(&pool, &b, org).await;
    assert_eq!((u.used_seconds, u.reserved_seconds), (51, 0));
    // Ready commits; processing it again charges nothing more.
    let v3 = ingest(&pool, &b, &ingesting(&pool, &b, storage.as_ref(), org, user).await, 60.0).await;
    let mut tx = pool.begin().await.unwrap();
    let locked = db::get_video(&mut *tx, org, v3.id).await.unwrap();
    let analysing = stages::enter(&mut tx, &locked, ProcessingStage::Analyzing).await.unwrap();
    let (_, revision) = db::analysis_request(&mut *tx, org, v3.id).await.unwrap();
    stages::analyzed(&mut tx, &analysing, revision, &[]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(db::get_video(&pool, org, v3.id).await.unwrap().status, VideoStatus::Ready);
    let u = usage(&pool, &b, org).await;
    assert_eq!((u.used_seconds, u.reserved_seconds), (111, 0));
    let ready = db::get_video(&pool, org, v3.id).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    let again = stages::enter(&mut tx, &ready, ProcessingStage::Ingesting).await.unwrap();
    stages::ingested(&mut tx, &b, &again, 60.0).await.unwrap();
    tx.commit().await.unwrap();
    let u = usage(&pool, &b, org).await;
    assert_eq!((u.used_seconds, u.reserved_seconds, u.remaining_seconds), (111, 0, Some(300 - 111)));
    // No Stripe customer: no meter report queued.
    let jobs = videdit_queue::admin::find_jobs(&pool, &serde_json::json!({"kind": "report_usage"}), 10).await.unwrap();
    assert!(jobs.is_empty());
}

#[sqlx::test(migrations = false)]
async fn uploads_and_analyses_over_the_plan_are_refused_at_once(pool: PgPool) {
    let b = plans(24);
    let (org, user, storage, _dir) = setup(&pool, "user_limits").await;
    let create = |size: u64, duration: Option<f64>| {
        let (pool, b, storage) = (pool.clone(), b.clone(), storage.clone());
        async move {
            let req = NewUploadRequest { file_name: "t.mp4".into(), content_type: "video/mp4".into(), size, duration };
            uploads::create(&pool, storage.as_ref(), &b, LIMITS, org, user, &req).await
        }
    };
    let e = create(2_000_000, None).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PlanLimitExceeded);
    assert!(
        e.message().contains("upload limit of 1000000 bytes") && e.message().contains("the Pro plan gives"),
        "{}",
        e.message()
    );
    let e = create(10, Some(900.0)).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PlanLimitExceeded, "{}", e.message());
    let e = create(10, Some(400.0)).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::QuotaExceeded, "{}", e.message());
    create(900_000, Some(200.0)).await.unwrap();
    let e = create(900_000, None).await.unwrap_err();
    assert!(e.message().contains("stores 900000 bytes"), "{}", e.message());
    // A source over the plan's longest, found by the probe: refused at ingest.
    let v = ingesting(&pool, &b, storage.as_ref(), org, user).await;
    let failed = ingest(&pool, &b, &v, 601.0).await;
    assert_eq!(failed.failure_code, Some(ErrorCode::PlanLimitExceeded));
    // Shorts: an explicit count over the plan's is refused; the default is capped.
    let e = stages::start(&pool, &b, org, v.id, stages::Stage::Analyze, &serde_json::json!({"maxShorts": 3}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PlanLimitExceeded);
    let (options, _) = stages::analysis_request(&pool, &b, org, v.id).await.unwrap();
    assert_eq!(options.max_shorts, Some(2));
}

fn sub(id: &str, status: &str, price: &str, customer: &str) -> StripeChange {
    StripeChange::Subscription(SubscriptionState {
        id: id.into(),
        customer: customer.into(),
        status: status.into(),
        price: Some(price.into()),
        period: Some((1_790_000_000, 1_792_592_000)),
        trial_end: None,
        org: None,
    })
}

fn ev(id: &str, kind: &str, created: i64, change: StripeChange) -> StripeEvent {
    StripeEvent { id: id.into(), kind: kind.into(), created, change }
}

/// The organisation's own cap on running jobs in the queue: `None` when it
/// has none (the worker's applies), `Some(None)` when it is lifted.
async fn running_cap(pool: &PgPool, org: OrgId) -> Option<Option<i32>> {
    sqlx::query_scalar("SELECT max_running FROM videdit_queue.group_limits WHERE group_key = $1")
        .bind(org.to_string())
        .fetch_optional(pool)
        .await
        .unwrap()
}

async fn plan_of(pool: &PgPool, b: &Billing, org: OrgId) -> (String, Standing) {
    let u = usage(pool, b, org).await;
    (u.plan.id, u.standing)
}

#[sqlx::test(migrations = false)]
async fn stripe_events_apply_once_in_their_own_order(pool: PgPool) {
    let b = plans(24);
    let (org, _, _, _dir) = setup(&pool, "user_stripe").await;
    let (other, _, _, _d2) = setup(&pool, "user_other").await;
    let t = time::OffsetDateTime::now_utc().unix_timestamp() - 1000;
    let checkout = StripeChange::CheckoutCompleted {
        org: Some(org.to_string()),
        customer: Some("cus_1".into()),
        subscription: Some("sub_1".into()),
    };
    assert_eq!(
        billing::apply_stripe_event(&pool, &b, &ev("evt_1", "checkout.session.completed", t, checkout)).await.unwrap(),
        Applied::Done("checkout_recorded")
    );
    // The subscription's update (newer) arrives before its creation.
    let upd = ev("evt_3", "customer.subscription.updated", t + 10, sub("sub_1", "active", "price_max", "cus_1"));
    let created = ev("evt_2", "customer.subscription.created", t + 1, sub("sub_1", "active", "price_pro", "cus_1"));
    assert_eq!(billing::apply_stripe_event(&pool, &b, &upd).await.unwrap(), Applied::Done("subscription_applied"));
    assert_eq!(billing::apply_stripe_event(&pool, &b, &created).await.unwrap(), Applied::Done("stale"));
    assert_eq!(plan_of(&pool, &b, org).await, ("max".into(), Standing::Subscribed));
    let cap = running_cap(&pool, org).await;
    assert_eq!(cap, Some(None), "the max plan lifts the organisation's cap on running jobs");
    // Delivered again: nothing happens twice.
    assert_eq!(billing::apply_stripe_event(&pool, &b, &upd).await.unwrap(), Applied::Duplicate);
    let changes = videdit_service::events::list(&pool, org, None, &["billing.plan_changed".into()], 10).await.unwrap();
    assert_eq!(changes.len(), 1, "free → max once");
    assert_eq!((changes[0].payload["from"].as_str(), changes[0].payload["to"].as_str()), (Some("free"), Some("max")));
    // The other organisation is untouched.
    assert_eq!(plan_of(&pool, &b, other).await, ("free".into(), Standing::Default));

    // A failed payment: the plan holds through the grace period...
    let failed = ev(
        "evt_4",
        "invoice.payment_failed",
        t + 20,
        StripeChange::InvoicePaymentFailed { customer: Some("cus_1".into()) },
    );
    assert_eq!(billing::apply_stripe_event(&pool, &b, &failed).await.unwrap(), Applied::Done("grace_started"));
    let grace = usage(&pool, &b, org).await;
    assert_eq!((grace.plan.id.as_str(), grace.standing), ("max", Standing::Grace));
    assert_eq!(
        videdit_service::events::list(&pool, org, None, &["billing.payment_failed".into()], 10).await.unwrap().len(),
        1
    );
    // ...a payment older than the failure, arriving late, does not end it...
    let old_paid = ev("evt_5", "invoice.paid", t + 5, StripeChange::InvoicePaid { customer: Some("cus_1".into()) });
    assert_eq!(billing::apply_stripe_event(&pool, &b, &old_paid).await.unwrap(), Applied::Done("paid"));
    assert_eq!(plan_of(&pool, &b, org).await.1, Standing::Grace);
    // ...a newer one does.
    let paid = ev("evt_6", "invoice.paid", t + 30, StripeChange::InvoicePaid { customer: Some("cus_1".into()) });
    assert_eq!(billing::apply_stripe_event(&pool, &b, &paid).await.unwrap(), Applied::Done("payment_recovered"));
    assert_eq!(plan_of(&pool, &b, org).await, ("max".into(), Standing::Subscribed));

    // Cancelled: the default plan; a late update of the cancelled subscription changes nothing.
    let deleted = ev("evt_7", "customer.subscription.deleted", t + 40, sub("sub_1", "canceled", "price_max", "cus_1"));
    assert_eq!(billing::apply_stripe_event(&pool, &b, &deleted).await.unwrap(), Applied::Done("subscription_ended"));
    assert_eq!(plan_of(&pool, &b, org).await, ("free".into(), Standing::Default));
    let cap = running_cap(&pool, org).await;
    assert_eq!(cap, None, "back on the default plan: the worker's cap");
    let late = ev("evt_8", "customer.subscription.updated", t + 50, sub("sub_1", "active", "price_max", "cus_1"));
    assert_eq!(billing::apply_stripe_event(&pool, &b, &late).await.unwrap(), Applied::Done("stale_after_cancel"));
    assert_eq!(plan_of(&pool, &b, org).await.0, "free");
    // A customer nobody knows: recorded, nothing changed.
    let stranger = ev("evt_9", "customer.subscription.created", t, sub("sub_x", "active", "price_max", "cus_unknown"));
    assert_eq!(billing::apply_stripe_event(&pool, &b, &stranger).await.unwrap(), Applied::Done("unknown_customer"));
}

#[sqlx::test(migrations = false)]
async fn a_grace_period_that_ends_unpaid_falls_back_to_the_default_plan(pool: PgPool) {
    let (org, user, storage, _dir) = setup(&pool, "user_grace").await;
    let t = time::OffsetDateTime::now_utc().unix_timestamp();
    let subscribe = |b: Billing, n: &'static str, customer: &'static str| {
        let pool = pool.clone();
        async move {
            let checkout = StripeChange::CheckoutCompleted {
                org: Some(org.to_string()),
                customer: Some(customer.into()),
                subscription: None,
            };
            billing::apply_stripe_event(
                &pool,
                &b,
                &ev(&format!("evt_{n}1"), "checkout.session.completed", t, checkout),
            )
            .await
            .unwrap();
            let created = sub(&format!("sub_{n}"), "active", "price_pro", customer);
            billing::apply_stripe_event(
                &pool,
                &b,
                &ev(&format!("evt_{n}2"), "customer.subscription.created", t, created),
            )
            .await
            .unwrap();
            let failed = StripeChange::InvoicePaymentFailed { customer: Some(customer.into()) };
            billing::apply_stripe_event(&pool, &b, &ev(&format!("evt_{n}3"), "invoice.payment_failed", t, failed))
                .await
                .unwrap();
        }
    };
    // A grace of a day: the plan holds, the grace job is queued for its end.
    let b = plans(24);
    subscribe(b.clone(), "a", "cus_g").await;
    assert_eq!(plan_of(&pool, &b, org).await, ("pro".into(), Standing::Grace));
    let jobs =
        videdit_queue::admin::find_jobs(&pool, &serde_json::json!({"kind": "billing_grace_ended"}), 10).await.unwrap();
    assert_eq!(jobs.len(), 1, "the grace job was queued with the failure");
    assert!(!billing::grace_ended(&pool, &b, org).await.unwrap(), "not yet");
    // The day passes unpaid: the free plan's limits apply, and the change is recorded once.
    sqlx::query("UPDATE videdit.billing_accounts SET grace_until = now() - interval '1 minute' WHERE org_id = $1")
        .bind(org.as_uuid())
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(plan_of(&pool, &b, org).await, ("free".into(), Standing::Overdue));
    let req = NewUploadRequest {
        file_name: "t.mp4".into(),
        content_type: "video/mp4".into(),
        size: 2_000_000,
        duration: None,
    };
    let e = uploads::create(&pool, storage.as_ref(), &b, LIMITS, org, user, &req).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PlanLimitExceeded);
    assert!(billing::grace_ended(&pool, &b, org).await.unwrap());
    assert!(!billing::grace_ended(&pool, &b, org).await.unwrap(), "recorded once");
    let changes = videdit_service::events::list(&pool, org, None, &["billing.plan_changed".into()], 10).await.unwrap();
    let last = changes.last().unwrap();
    assert_eq!(
        (last.payload["to"].as_str(), last.payload["cause"].as_str()),
        (Some("free"), Some("grace_period_ended"))
    );
    assert_eq!(changes.len(), 2, "free → pro, then pro → free");
}
