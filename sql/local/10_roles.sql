-- Local only, as the superuser (database `postgres`): the roles Neon creates for you.
--
-- `neondb_owner` owns the database and every object in it but is not a superuser,
-- so nothing it owns escapes the privilege system. `authenticated` and
-- `anonymous` are the login roles of the user connection strings: NOINHERIT,
-- member of nothing and owner of nothing, so a user statement has no other role
-- to become and no object whose checks it could switch off. `authenticator` is the
-- role Neon's Data API connects as: LOGIN NOINHERIT (it has no privilege of its
-- own) and a member of `authenticated` and `anonymous` only, the two roles it may
-- switch to for a request, never the owner or a superuser.
-- ALTER ROLE re-asserts the attributes on every run, so a drifted role is repaired.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'neondb_owner') THEN
        CREATE ROLE neondb_owner;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'anonymous') THEN
        CREATE ROLE anonymous;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'authenticator') THEN
        CREATE ROLE authenticator;
    END IF;
END
$$;

ALTER ROLE neondb_owner
    LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE authenticated
    LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE anonymous
    LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE authenticator
    LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
GRANT authenticated, anonymous TO authenticator;
