-- Local only, and only when asked for (LOCAL_PG_SESSION_JWT=0.4.0): the functions
-- pg_session_jwt 0.4.0 adds. Neon's compute images install 0.3.1, so a policy
-- written with these fails there with 42883 (undefined function): keep them off
-- unless your Neon project runs 0.4.0 or later.

CREATE OR REPLACE FUNCTION auth.jwt()
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL RESTRICTED
RETURN auth.session();

CREATE OR REPLACE FUNCTION auth.uid()
RETURNS uuid
LANGUAGE sql STABLE PARALLEL RESTRICTED
RETURN (
    SELECT CASE WHEN pg_catalog.pg_input_is_valid(sub, 'uuid') THEN sub::uuid END
    FROM (SELECT auth.session() ->> 'sub') AS session (sub)
);

REVOKE ALL ON FUNCTION auth.jwt(), auth.uid() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth.jwt(), auth.uid() TO authenticated, anonymous;
