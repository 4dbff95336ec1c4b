-- Billing: one account per organisation (its plan, its Stripe customer and
-- subscription, its billing period, a payment failure's grace period), the
-- usage ledger of processed seconds (one row per video: reserved at ingest,
-- committed when the video is ready, released when it fails through no
-- fault of the client), and the Stripe events already handled (each exactly
-- once, by its id).

CREATE TABLE videdit.billing_accounts (
    org_id               uuid PRIMARY KEY REFERENCES videdit.organizations (id) ON DELETE CASCADE,
    plan_id              text,                      -- NULL: the plans file's default plan
    stripe_customer_id   text UNIQUE,
    subscription_id      text,
    subscription_status  text,
    subscription_price   text,
    -- Stripe's `created` of the newest event applied to the subscription:
    -- an older event arriving later changes nothing.
    subscription_seen    bigint,
    period_start         timestamptz,
    period_end           timestamptz,
    payment_failed_at    timestamptz,
    grace_until          timestamptz,
    overdue_recorded     boolean NOT NULL DEFAULT false,   -- billing.plan_changed for the grace's end is recorded
    trial_end            timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK ((period_start IS NULL) = (period_end IS NULL))
);

-- No foreign key to videos: what a deleted video used stays counted.
CREATE TABLE videdit.usage_ledger (
    org_id      uuid NOT NULL REFERENCES videdit.organizations (id) ON DELETE CASCADE,
    video_id    uuid NOT NULL,
    seconds     integer NOT NULL CHECK (seconds >= 0),
    state       text NOT NULL CHECK (state IN ('reserved', 'committed', 'released')),
    reserved_at timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, video_id)
);
CREATE INDEX usage_ledger_period ON videdit.usage_ledger (org_id, reserved_at) WHERE state <> 'released';

CREATE TABLE videdit.stripe_events (
    id          text PRIMARY KEY,                   -- evt_…
    type        text NOT NULL,
    created     bigint NOT NULL,
    org_id      uuid,
    outcome     text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
