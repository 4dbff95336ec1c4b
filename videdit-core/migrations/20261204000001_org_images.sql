-- Pictures an organisation gives once for all its renders: for now the
-- background of its audiograms (the shorts of audio-only sources). One
-- row per organisation and kind; the object's key holds the picture's
-- hash, so a replaced picture is a new object and a render that read the
-- old row still finds what it read until the old object is deleted.

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
