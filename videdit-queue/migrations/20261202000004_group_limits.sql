-- Per-group caps on running jobs that override the worker's
-- `max_running_per_group` (a tenant's plan): a row with a NULL cap is
-- "no cap"; a group without a row gets the worker's setting.
CREATE TABLE videdit_queue.group_limits (
    group_key   text PRIMARY KEY,
    max_running integer CHECK (max_running >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
