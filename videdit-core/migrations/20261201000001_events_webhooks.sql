-- The application layer: failure codes, revisions that keep edits from
-- being lost behind a running job, the event outbox and outbound webhooks.

-- A failed video's stable code, beside its human-readable reason.
ALTER TABLE videdit.videos ADD COLUMN failure_code text;
-- Re-analysis: the options of the newest request and a counter bumped by
-- each request, so an analysis that ran with older options runs again.
ALTER TABLE videdit.videos ADD COLUMN analyze_options jsonb NOT NULL DEFAULT '{}';
ALTER TABLE videdit.videos ADD COLUMN analyze_revision integer NOT NULL DEFAULT 0;
-- Bumped by every recipe edit; a render that read an older revision renders again.
ALTER TABLE videdit.shorts ADD COLUMN recipe_revision integer NOT NULL DEFAULT 0;

-- Idempotency keys are scoped to the user within the organisation, and an
-- in-progress claim has a lease (a crashed request does not hold its key).
ALTER TABLE videdit.idempotency_keys ADD COLUMN user_id uuid;
ALTER TABLE videdit.idempotency_keys ADD COLUMN lease_until timestamptz;
ALTER TABLE videdit.idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
CREATE UNIQUE INDEX idempotency_keys_scope
    ON videdit.idempotency_keys (org_id, COALESCE(user_id, '00000000-0000-0000-0000-000000000000'::uuid), key);

-- The outbox: one row per domain event, written in the transaction of the
-- change it describes. The UUIDv7 id is the cursor and the idempotency key.
CREATE TABLE videdit.events (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES videdit.organizations (id) ON DELETE CASCADE,
    type       text NOT NULL,
    version    integer NOT NULL DEFAULT 1,
    subject_id uuid,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_org_cursor ON videdit.events (org_id, id);

CREATE TABLE videdit.webhook_endpoints (
    id                     uuid PRIMARY KEY,
    org_id                 uuid NOT NULL REFERENCES videdit.organizations (id) ON DELETE CASCADE,
    url                    text NOT NULL,
    description            text NOT NULL DEFAULT '',
    event_types            text[] NOT NULL DEFAULT '{}',   -- empty: every type
    enabled                boolean NOT NULL DEFAULT true,
    disabled_reason        text,
    secret                 text NOT NULL,
    previous_secret        text,
    previous_expires_at    timestamptz,
    failing_since          timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id)
);
CREATE INDEX webhook_endpoints_org ON videdit.webhook_endpoints (org_id, id);

CREATE TABLE videdit.webhook_deliveries (
    id              uuid PRIMARY KEY,
    org_id          uuid NOT NULL,
    endpoint_id     uuid NOT NULL,
    event_id        uuid NOT NULL REFERENCES videdit.events (id) ON DELETE CASCADE,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    response_status integer,
    latency_ms      integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    FOREIGN KEY (org_id, endpoint_id) REFERENCES videdit.webhook_endpoints (org_id, id) ON DELETE CASCADE,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_endpoint ON videdit.webhook_deliveries (endpoint_id, id DESC);
