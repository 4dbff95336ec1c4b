-- videdit_queue: a small hot table of live jobs, a history table of
-- finished ones, and per-queue settings. Lease columns are in no index, so
-- heartbeats are HOT updates.

CREATE TABLE videdit_queue.jobs (
    id               uuid PRIMARY KEY,
    queue            text NOT NULL,
    kind             text NOT NULL,
    payload          jsonb NOT NULL,
    metadata         jsonb NOT NULL DEFAULT '{}',
    state            text NOT NULL CHECK (state IN ('available', 'running')),
    priority         smallint NOT NULL DEFAULT 0,        -- lower runs first
    run_at           timestamptz NOT NULL DEFAULT now(),
    attempt          integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL CHECK (max_attempts >= 1),
    unique_key       text,
    timeout_ms       bigint,
    lease_token      uuid,
    lease_until      timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false,
    progress         jsonb,
    errors           jsonb NOT NULL DEFAULT '[]',
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz
);
-- The claim's ORDER BY, over available jobs only.
CREATE INDEX jobs_claim ON videdit_queue.jobs (queue, priority, run_at, id) WHERE state = 'available';
-- Unique keys hold among live jobs; a finished job frees its key.
CREATE UNIQUE INDEX jobs_unique_key ON videdit_queue.jobs (unique_key) WHERE unique_key IS NOT NULL;

CREATE TABLE videdit_queue.job_history (
    id           uuid PRIMARY KEY,
    queue        text NOT NULL,
    kind         text NOT NULL,
    payload      jsonb NOT NULL,
    metadata     jsonb NOT NULL,
    final_state  text NOT NULL CHECK (final_state IN ('completed', 'dead', 'cancelled')),
    priority     smallint NOT NULL,
    attempt      integer NOT NULL,
    max_attempts integer NOT NULL,
    unique_key   text,
    progress     jsonb,
    errors       jsonb NOT NULL,
    created_at   timestamptz NOT NULL,
    started_at   timestamptz,
    finished_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_history_finished ON videdit_queue.job_history (finished_at);
CREATE INDEX job_history_state ON videdit_queue.job_history (final_state, queue);

CREATE TABLE videdit_queue.queues (
    name   text PRIMARY KEY,
    paused boolean NOT NULL DEFAULT false
);
