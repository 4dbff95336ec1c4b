-- Fair sharing: a job may carry a group key (an application's tenant, for
-- example an organisation); a claim can take from groups in turn and cap the
-- jobs running per group.
ALTER TABLE videdit_queue.jobs ADD COLUMN group_key text;
ALTER TABLE videdit_queue.job_history ADD COLUMN group_key text;
-- The fair claim's walk: distinct groups with waiting jobs (a loose index
-- scan; ungrouped jobs form the group ''), then each group's jobs in claim
-- order.
CREATE INDEX jobs_group_claim ON videdit_queue.jobs ((coalesce(group_key, '')), priority, run_at, id)
    WHERE state = 'available';
-- Jobs running per group and kind (the limits); ungrouped jobs are not in it.
CREATE INDEX jobs_group_running ON videdit_queue.jobs (group_key, kind)
    WHERE state = 'running' AND group_key IS NOT NULL;
