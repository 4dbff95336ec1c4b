-- Find jobs by their metadata (for example every job of one video).
CREATE INDEX jobs_metadata ON videdit_queue.jobs USING gin (metadata jsonb_path_ops);
CREATE INDEX job_history_metadata ON videdit_queue.job_history USING gin (metadata jsonb_path_ops);
