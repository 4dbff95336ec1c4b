-- Connected platform accounts (publishing): one row per organisation and
-- account, tokens sealed under ENCRYPTION_KEYS (bound to the organisation
-- and the connection), and the single-use OAuth states of authorisations
-- in progress (bound to the organisation and the user who started them).

CREATE TABLE videdit.oauth_states (
    state_hash    text PRIMARY KEY,                 -- sha256 of the state sent to the provider
    org_id        uuid NOT NULL REFERENCES videdit.organizations (id) ON DELETE CASCADE,
    user_id       uuid NOT NULL REFERENCES videdit.users (id) ON DELETE CASCADE,
    platform      text NOT NULL,
    pkce_verifier text NOT NULL,                    -- sealed
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX oauth_states_expiry ON videdit.oauth_states (expires_at);

CREATE TABLE videdit.connections (
    id               uuid PRIMARY KEY,
    org_id           uuid NOT NULL REFERENCES videdit.organizations (id) ON DELETE CASCADE,
    platform         text NOT NULL CHECK (platform IN ('youtube', 'tiktok', 'instagram')),
    account_id       text NOT NULL,
    account_name     text NOT NULL,
    status           text NOT NULL CHECK (status IN ('connected', 'needs_reauthorization')),
    status_reason    text,
    access_token     text NOT NULL,                 -- sealed
    refresh_token    text,                          -- sealed
    token_expires_at timestamptz NOT NULL,
    scopes           text NOT NULL,
    created_by       uuid REFERENCES videdit.users (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id),
    UNIQUE (org_id, platform, account_id)
);
