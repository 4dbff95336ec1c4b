-- Idempotency keys of creating API requests, per organisation, kept 24 h.
-- A row is inserted before the request runs (status NULL = in progress), so
-- two concurrent requests with one key cannot both run.
CREATE TABLE videdit.idempotency_keys (
    org_id       uuid NOT NULL REFERENCES videdit.organizations (id) ON DELETE CASCADE,
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash text NOT NULL,
    status       integer,
    body         jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, key)
);
CREATE INDEX idempotency_keys_created ON videdit.idempotency_keys (created_at);
