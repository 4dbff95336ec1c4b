-- videdit core schema. Every tenant-owned table carries org_id, and child
-- tables reference their parent through (org_id, id) composite keys, so a
-- row can never point at another organisation's row.

CREATE TABLE videdit.users (
    id          uuid PRIMARY KEY,
    external_id text NOT NULL UNIQUE,            -- Clerk user id (user_...)
    email       text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE videdit.organizations (
    id               uuid PRIMARY KEY,
    external_id      text UNIQUE,                -- Clerk org id (org_...); NULL for personal workspaces
    personal_user_id uuid UNIQUE REFERENCES videdit.users (id) ON DELETE CASCADE,
    name             text NOT NULL,
    slug             text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((external_id IS NULL) <> (personal_user_id IS NULL))
);

CREATE TABLE videdit.memberships (
    org_id     uuid NOT NULL REFERENCES videdit.organizations (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES videdit.users (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('admin', 'member')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user ON videdit.memberships (user_id);

CREATE TABLE videdit.videos (
    id               uuid PRIMARY KEY,           -- UUIDv7: time-ordered, the list cursor
    org_id           uuid NOT NULL REFERENCES videdit.organizations (id) ON DELETE CASCADE,
    title            text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
    state            text NOT NULL CHECK (state IN ('uploading', 'uploaded', 'processing', 'ready', 'failed')),
    stage            text CHECK (stage IN ('ingesting', 'transcribing', 'analyzing', 'rendering')),
    failure_reason   text,
    source_key       text,
    content_type     text,
    duration_seconds double precision CHECK (duration_seconds >= 0),
    size_bytes       bigint CHECK (size_bytes >= 0),
    created_by       uuid REFERENCES videdit.users (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id),                         -- target of the composite keys; serves the list
    CHECK ((state = 'processing') = (stage IS NOT NULL)),
    CHECK ((state = 'failed') = (failure_reason IS NOT NULL))
);

CREATE TABLE videdit.media_assets (
    org_id       uuid NOT NULL,
    video_id     uuid NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('source', 'audio', 'transcript', 'thumbnail', 'other')),
    key          text NOT NULL,
    content_type text,
    size_bytes   bigint CHECK (size_bytes >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (video_id, kind),
    FOREIGN KEY (org_id, video_id) REFERENCES videdit.videos (org_id, id) ON DELETE CASCADE
);

CREATE TABLE videdit.transcripts (
    video_id   uuid PRIMARY KEY,
    org_id     uuid NOT NULL,
    language   text NOT NULL,
    model      text NOT NULL,
    duration   double precision NOT NULL,
    word_count integer NOT NULL,
    segments   jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (org_id, video_id) REFERENCES videdit.videos (org_id, id) ON DELETE CASCADE
);

CREATE TABLE videdit.shorts (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL,
    video_id      uuid NOT NULL,
    rank          integer NOT NULL CHECK (rank >= 1),
    score         real NOT NULL CHECK (score >= 0 AND score <= 100),
    sub_scores    jsonb NOT NULL,
    reason        text NOT NULL,
    title         text NOT NULL,
    start_seconds double precision NOT NULL CHECK (start_seconds >= 0),
    end_seconds   double precision NOT NULL,
    status        text NOT NULL CHECK (status IN ('pending', 'rendering', 'ready', 'failed')),
    video_key     text,
    thumbnail_key text,
    recipe_key    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (end_seconds > start_seconds),
    FOREIGN KEY (org_id, video_id) REFERENCES videdit.videos (org_id, id) ON DELETE CASCADE
);
CREATE INDEX shorts_video ON videdit.shorts (org_id, video_id, rank);

CREATE TABLE videdit.uploads (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL,
    video_id      uuid NOT NULL,
    key           text NOT NULL,
    file_name     text NOT NULL,
    content_type  text NOT NULL,
    expected_size bigint NOT NULL CHECK (expected_size > 0),
    multipart_id  text,                          -- backend upload id; NULL for a single PUT
    part_size     bigint,
    part_count    integer,
    state         text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'completed', 'aborted')),
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    CHECK ((multipart_id IS NULL) = (part_count IS NULL)),
    FOREIGN KEY (org_id, video_id) REFERENCES videdit.videos (org_id, id) ON DELETE CASCADE
);
CREATE INDEX uploads_video ON videdit.uploads (org_id, video_id);
-- The cleanup job scans only pending uploads, oldest first.
CREATE INDEX uploads_pending_expiry ON videdit.uploads (expires_at) WHERE state = 'pending';
