-- An embedding application's own migration, version 1 in its own
-- bookkeeping table (public._sqlx_migrations).
CREATE TABLE public.app_notes (id bigserial PRIMARY KEY, body text NOT NULL);
