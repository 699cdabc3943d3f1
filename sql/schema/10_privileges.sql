-- Locally and on Neon, as the database owner: what the user roles may touch.
--
-- Table grants are Neon's guide verbatim (existing and future tables in
-- `public`); RLS policies decide which rows. Sequences get USAGE only: identity
-- columns need no privilege at all, and nobody but the owner may setval().
-- PUBLIC loses CREATE on `public` and TEMP on the database, so a user statement
-- can neither plant an object (a function or operator that shadows ours) nor
-- keep private state in a temp table.

GRANT USAGE ON SCHEMA public TO authenticated, anonymous;

GRANT SELECT, UPDATE, INSERT, DELETE ON ALL TABLES IN SCHEMA public
    TO authenticated, anonymous;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, UPDATE, INSERT, DELETE ON TABLES TO authenticated, anonymous;

GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO authenticated, anonymous;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE ON SEQUENCES TO authenticated, anonymous;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;

DO $$
BEGIN
    EXECUTE pg_catalog.format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END
$$;
