-- On Neon, as `neondb_owner`: the real `auth` schema comes from Neon's extension
-- (the roles `authenticated` and `anonymous` are created by Neon's integration).
CREATE EXTENSION IF NOT EXISTS pg_session_jwt;
