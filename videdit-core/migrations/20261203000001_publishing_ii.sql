-- Publishing II: TikTok and Instagram.
-- A TikTok connection posts directly or sends drafts to the creator's
-- inbox (`mode`, chosen when connecting, kept from the state to the
-- connection). Instagram's long-lived token refreshes itself once it is a
-- day old: `token_issued_at` says when the stored one was issued.
-- Publications gain TikTok's privacy levels (`friends`: mutual followers,
-- `followers`) and the per-platform options (comments, duets, stitches,
-- AI-generated, share to feed).

ALTER TABLE videdit.oauth_states ADD COLUMN mode text;

ALTER TABLE videdit.connections
    ADD COLUMN mode text CHECK (mode IN ('direct', 'inbox')),
    ADD COLUMN token_issued_at timestamptz NOT NULL DEFAULT now();

ALTER TABLE videdit.publications DROP CONSTRAINT publications_privacy_check;
ALTER TABLE videdit.publications
    ADD CONSTRAINT publications_privacy_check
        CHECK (privacy IN ('public', 'unlisted', 'private', 'friends', 'followers')),
    ADD COLUMN options jsonb NOT NULL DEFAULT '{}';
