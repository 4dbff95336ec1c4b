-- Pictures an organisation gives once for all its renders: for now the
-- background of its audiograms (the shorts of audio-only sources). One
-- row per organisation and kind; every upload is a new object (its key
-- holds the picture's hash and a unique suffix), and the object a replaced
-- row named is deleted after the switch commits.

CREATE TABLE videdit.org_images (
    org_id       uuid NOT NULL REFERENCES videdit.organizations (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('audiogram_background')),
    object_key   text NOT NULL,
    content_type text NOT NULL CHECK (content_type IN ('image/png', 'image/jpeg')),
    size_bytes   bigint NOT NULL CHECK (size_bytes > 0),
    width        integer NOT NULL CHECK (width > 0),
    height       integer NOT NULL CHECK (height > 0),
    sha256       text NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, kind)
);
