-- Publications: one short sent to one connected account, on a schedule.
-- A publication outlives its short (a re-analysis replaces shorts; what was
-- published stays on record), so `short_id` is not a foreign key; it goes
-- with its video. `connection_id` is not one either: a disconnected account
-- fails the publications still waiting, with the reason.

CREATE TABLE videdit.publications (
    id               uuid PRIMARY KEY,
    org_id           uuid NOT NULL,
    video_id         uuid NOT NULL,
    short_id         uuid NOT NULL,
    connection_id    uuid NOT NULL,
    platform         text NOT NULL CHECK (platform IN ('youtube', 'tiktok', 'instagram')),
    title            text NOT NULL,
    description      text NOT NULL,
    tags             text[] NOT NULL,
    privacy          text NOT NULL CHECK (privacy IN ('public', 'unlisted', 'private')),
    scheduled_at     timestamptz,                   -- NULL: as soon as the short is ready
    status           text NOT NULL
                     CHECK (status IN ('scheduled', 'uploading', 'processing', 'published', 'failed', 'canceled')),
    bytes_sent       bigint NOT NULL DEFAULT 0,
    bytes_total      bigint,
    upload_session   text,                          -- sealed: a resumable session URI is a credential
    platform_id      text,
    platform_url     text,
    platform_privacy text,                          -- what the platform answered (unverified projects: private)
    platform_publish_at timestamptz,                -- the platform's own scheduled release
    notice           text,                          -- the platform's answer when it differs from the request
    failure_code     text,
    failure_message  text,
    retry_at         timestamptz,                   -- a retryable failure (quota): when the job runs again
    job_id           uuid,
    created_by       uuid REFERENCES videdit.users (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    published_at     timestamptz,
    FOREIGN KEY (org_id, video_id) REFERENCES videdit.videos (org_id, id) ON DELETE CASCADE
);
CREATE INDEX publications_org ON videdit.publications (org_id, id);
CREATE INDEX publications_short ON videdit.publications (org_id, short_id, id);
