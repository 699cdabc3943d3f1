-- Local only, as `neondb_owner` in `neondb`: a stand-in for Neon's pg_session_jwt.
--
-- The API of the version Neon's compute images install, pg_session_jwt 0.3.1
-- (neondatabase/neon, compute/compute-node.Dockerfile): auth.init,
-- auth.jwt_session_init, auth.session, auth.user_id, with its claim checks and
-- messages (exp/nbf integers, 60 s leeway). auth.jwt() and auth.uid() arrive in
-- 0.4.0: 30_auth_0_4.sql, applied only when asked for (LOCAL_PG_SESSION_JWT).
-- Same trust: identity comes only from a token the
-- local proxy signed. The proxy validates the user's JWT, then hands the pooled
-- backend an HS256 "session token" (the user's claims plus that backend's `pid`)
-- signed with a secret it installed in `auth_private`, which user roles cannot
-- even see. The token is kept in a user-writable setting, so what the setting
-- says is never trusted alone: writing it by hand gains nothing.
--
-- HMAC-SHA256 is built from Postgres' own sha256(): HMAC(K, m) =
-- sha256((K xor opad) || sha256((K xor ipad) || m)); the two padded keys are
-- computed once at install time, so a verification is two short hashes.
--
-- The setting is user-writable, but what auth.jwt_session_init() verified is
-- kept where users cannot write: an owner-only table with one row per backend
-- (the token, word for word, and its claims). auth.session() accepts the
-- setting's token from that row only while it is the same text, signed by the
-- same installed key, and within exp/nbf; anything else is verified again. So
-- the row accepts nothing a verification would refuse. Only read-write READ
-- COMMITTED transactions write a row; others, and a standby, verify on every
-- call, as before.

CREATE SCHEMA IF NOT EXISTS auth;
CREATE SCHEMA IF NOT EXISTS auth_private;

REVOKE ALL ON SCHEMA auth FROM PUBLIC;
REVOKE ALL ON SCHEMA auth_private FROM PUBLIC;
GRANT USAGE ON SCHEMA auth TO authenticated, anonymous, authenticator;

CREATE TABLE IF NOT EXISTS auth_private.session_keys (
    kid text PRIMARY KEY CHECK (kid <> '' AND length(kid) <= 128),
    inner_pad bytea NOT NULL CHECK (length(inner_pad) = 64),
    outer_pad bytea NOT NULL CHECK (length(outer_pad) = 64),
    installed_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON auth_private.session_keys FROM PUBLIC;

-- What auth.jwt_session_init() verified, per backend (see auth.session()).
-- `key_digest` is sha256 of the key's outer pad, which determines its secret:
-- re-installing a kid with a new secret changes it, so rows verified under the
-- old secret stop matching, as do rows of a dropped key. Unlogged: a hand-off
-- writes no WAL (its commit needs no flush), and after a crash the table
-- starts empty, which only means verifying again.
CREATE UNLOGGED TABLE IF NOT EXISTS auth_private.verified_sessions (
    pid integer PRIMARY KEY,
    token text NOT NULL,
    kid text NOT NULL,
    key_digest bytea NOT NULL,
    claims jsonb NOT NULL,
    exp numeric,
    nbf numeric
);
REVOKE ALL ON auth_private.verified_sessions FROM PUBLIC;

-- Unpadded base64url (RFC 7515) to bytes; the caller has checked the alphabet
-- and that the length is not 1 modulo 4 (or the proxy's signature vouches for
-- the text), so decode() cannot fail. Two replace() cost half what one
-- translate() does on a token-sized text.
CREATE OR REPLACE FUNCTION auth_private.base64url_decode(data text)
RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN pg_catalog.decode(
    pg_catalog.rpad(
        pg_catalog.replace(pg_catalog.replace(data, '-', '+'), '_', '/'),
        (pg_catalog.length(data) + 3) / 4 * 4,
        '='
    ),
    'base64'
);

-- Bytes to unpadded base64url (encode() breaks lines every 76 characters).
CREATE OR REPLACE FUNCTION auth_private.base64url_encode(data bytea)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN pg_catalog.rtrim(
    pg_catalog.replace(
        pg_catalog.replace(pg_catalog.replace(pg_catalog.encode(data, 'base64'), E'\n', ''), '+', '-'),
        '/', '_'
    ),
    '='
);

-- The first segment of the session tokens the proxy signs with `key_id`:
-- base64url of its compact header, byte for byte as the contract spells it
-- (for an ASCII key id, as the proxy's are). Immutable although to_json() and
-- convert_to() are only stable: for a text argument in a UTF-8 database their
-- results never change.
CREATE OR REPLACE FUNCTION auth_private.session_token_header(key_id text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN auth_private.base64url_encode(pg_catalog.convert_to(
    '{"alg":"HS256","typ":"JWT","kid":' || pg_catalog.to_json(key_id)::text || '}', 'UTF8'
));

-- The encoded HS256 signature of `signing_input` under a key's two padded
-- keys (RFC 2104). A plain SQL expression, inlined where it is used.
CREATE OR REPLACE FUNCTION auth_private.hs256(inner_pad bytea, outer_pad bytea, signing_input text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN auth_private.base64url_encode(
    pg_catalog.sha256(outer_pad || pg_catalog.sha256(inner_pad || pg_catalog.convert_to(signing_input, 'UTF8')))
);

-- The header segment lets auth.session() find a key by comparing text, without
-- decoding and parsing the header of every token it verifies. Added, not
-- declared in CREATE TABLE above, so databases migrated before it gain it too.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT FROM pg_catalog.pg_attribute
        WHERE attrelid = 'auth_private.session_keys'::pg_catalog.regclass
            AND attname = 'header_segment' AND NOT attisdropped
    ) THEN
        ALTER TABLE auth_private.session_keys
            ADD COLUMN header_segment text NOT NULL
            GENERATED ALWAYS AS (auth_private.session_token_header(kid)) STORED;
    END IF;
END
$$;

-- Store a proxy's HMAC secret as its two padded keys. Owner only.
CREATE OR REPLACE FUNCTION auth_private.install_session_key(key_id text, secret bytea)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = ''
AS $$
DECLARE
    block bytea;
    inner_pad bytea;
    outer_pad bytea;
BEGIN
    IF key_id IS NULL OR key_id = '' OR length(key_id) > 128 THEN
        RAISE EXCEPTION 'session key id must be 1 to 128 characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF secret IS NULL OR length(secret) < 32 THEN
        RAISE EXCEPTION 'session key must be at least 32 bytes'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- RFC 2104: a key longer than the 64-byte block is hashed first, then zero-padded.
    block := CASE WHEN length(secret) > 64 THEN sha256(secret) ELSE secret END;
    block := block || decode(repeat('00', 64 - length(block)), 'hex');
    inner_pad := block;
    outer_pad := block;
    FOR i IN 0..63 LOOP
        inner_pad := set_byte(inner_pad, i, get_byte(block, i) # 54);  -- 0x36
        outer_pad := set_byte(outer_pad, i, get_byte(block, i) # 92);  -- 0x5c
    END LOOP;
    INSERT INTO auth_private.session_keys AS k (kid, inner_pad, outer_pad)
    VALUES (key_id, inner_pad, outer_pad)
    ON CONFLICT (kid) DO UPDATE
        SET inner_pad = excluded.inner_pad,
            outer_pad = excluded.outer_pad,
            installed_at = now();
END
$$;

-- Forget a proxy's secret (clean shutdown): its tokens stop verifying at once.
CREATE OR REPLACE FUNCTION auth_private.drop_session_key(key_id text)
RETURNS boolean
LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    WITH forgotten AS (  -- tidiness (they no longer match); never waits on a hand-off
        DELETE FROM auth_private.verified_sessions
        WHERE pid IN (
            SELECT v.pid FROM auth_private.verified_sessions AS v
            WHERE v.kid = key_id
            FOR UPDATE SKIP LOCKED
        )
    ), dropped AS (
        DELETE FROM auth_private.session_keys WHERE kid = key_id RETURNING 1
    )
    SELECT EXISTS (SELECT FROM dropped);
END;

-- pg_session_jwt checks its key here; ours checks that a proxy installed one.
CREATE OR REPLACE FUNCTION auth.init()
RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM auth_private.session_keys) THEN
        RAISE EXCEPTION 'no session key installed (is the local proxy running?)'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END
$$;

-- The general path of auth.session(): verifies `token` step by step and says
-- precisely why it is refused (see sql/README.md), or returns its claims
-- without the internal `pid`. auth.session() only comes here when its fast
-- path did not accept the token: to raise the error, or for a valid token
-- whose header is not written the way the proxy writes it.
CREATE OR REPLACE FUNCTION auth_private.verified_claims(token text)
RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
SET search_path = ''
AS $$
DECLARE
    parts text[];
    header_text text;
    header jsonb;
    pads record;
    claims jsonb;
    now_epoch numeric;
BEGIN
    -- header.payload.signature in unpadded base64url: checked with one
    -- character class and a split (a regex spelling out the three parts costs
    -- 5 us, one with capture groups 70 us). An HS256 signature is 43
    -- characters; no base64 text is 1 modulo 4 long.
    IF token !~ '^[A-Za-z0-9_.-]+$' THEN
        RAISE EXCEPTION 'invalid session token encoding' USING ERRCODE = 'datatype_mismatch';
    END IF;
    parts := string_to_array(token, '.');
    IF cardinality(parts) <> 3 OR length(parts[3]) <> 43
        OR length(parts[1]) % 4 = 1 OR length(parts[2]) % 4 = 1 THEN
        RAISE EXCEPTION 'invalid session token encoding' USING ERRCODE = 'datatype_mismatch';
    END IF;

    -- The header is read before its signature is checked, so it must be parsed
    -- without raising: the 'escape' encoding turns any byte sequence into
    -- ASCII text (identical for the ASCII JSON the proxy writes), and IS JSON
    -- tests it without an exception (pg_input_is_valid would re-parse its
    -- type name on the first call of every transaction).
    header_text := encode(auth_private.base64url_decode(parts[1]), 'escape');
    IF header_text IS NOT JSON OBJECT THEN
        RAISE EXCEPTION 'invalid session token encoding' USING ERRCODE = 'datatype_mismatch';
    END IF;
    header := header_text::jsonb;
    IF header->>'alg' IS DISTINCT FROM 'HS256' THEN
        RAISE EXCEPTION 'session token must be an HS256 JWS' USING ERRCODE = 'datatype_mismatch';
    END IF;

    SELECT k.inner_pad, k.outer_pad INTO pads
    FROM auth_private.session_keys AS k
    WHERE k.kid = header->>'kid';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'session token signed by an unknown session key'
            USING ERRCODE = 'check_violation';
    END IF;

    -- A plain comparison: its early exit differs by nanoseconds, far below the
    -- jitter of the round trip an attacker would have to time it through.
    IF sha256(pads.outer_pad || sha256(pads.inner_pad || convert_to(parts[1] || '.' || parts[2], 'UTF8')))
        <> auth_private.base64url_decode(parts[3]) THEN
        RAISE EXCEPTION 'invalid session token signature' USING ERRCODE = 'check_violation';
    END IF;

    -- Signed by the proxy from here on: the payload is its JSON.
    claims := convert_from(auth_private.base64url_decode(parts[2]), 'UTF8')::jsonb;

    IF NOT claims ? 'pid' THEN
        RAISE EXCEPTION 'session token has no pid claim' USING ERRCODE = 'datatype_mismatch';
    END IF;
    IF claims->'pid' IS DISTINCT FROM to_jsonb(pg_backend_pid()) THEN
        RAISE EXCEPTION 'session token belongs to another backend' USING ERRCODE = 'check_violation';
    END IF;

    -- pg_session_jwt 0.3.1's time checks, words and codes: integers, 60 s leeway.
    now_epoch := extract(epoch FROM now());
    IF claims ? 'exp' THEN
        IF jsonb_typeof(claims->'exp') <> 'number'
            OR (claims->>'exp')::numeric <> trunc((claims->>'exp')::numeric) THEN
            RAISE EXCEPTION '''exp'' (Expiration) must be an integer representing seconds since unix epoch'
                USING ERRCODE = 'datatype_mismatch';
        END IF;
        IF (claims->>'exp')::numeric + 60 < now_epoch THEN
            RAISE EXCEPTION 'Token used after it has expired'
                USING ERRCODE = 'check_violation', DETAIL = 'exp=' || (claims->>'exp');
        END IF;
    END IF;
    IF claims ? 'nbf' THEN
        IF jsonb_typeof(claims->'nbf') <> 'number'
            OR (claims->>'nbf')::numeric <> trunc((claims->>'nbf')::numeric) THEN
            RAISE EXCEPTION '''nbf'' (Not Before) must be an integer representing seconds since unix epoch'
                USING ERRCODE = 'datatype_mismatch';
        END IF;
        IF (claims->>'nbf')::numeric - 60 > now_epoch THEN
            RAISE EXCEPTION 'Token used before it is ready'
                USING ERRCODE = 'check_violation', DETAIL = 'nbf=' || (claims->>'nbf');
        END IF;
    END IF;
    -- A null `sub` reads as none (auth.user_id() is NULL), as Neon's proxy reads it.
    IF claims ? 'sub' AND jsonb_typeof(claims->'sub') NOT IN ('string', 'null') THEN
        RAISE EXCEPTION 'invalid subject claim in the session token'
            USING ERRCODE = 'datatype_mismatch';
    END IF;

    RETURN claims - 'pid';
END
$$;

-- Whether the claims of a token signed by an installed key are accepted on
-- this backend: its pid, and pg_session_jwt 0.3.1's exp/nbf (integers, 60 s
-- leeway) and sub checks, in one expression whose casts are all guarded, so
-- that it never raises (auth_private.verified_claims() says why it refuses),
-- and true or false, never NULL (no `pid` is false). A SQL expression, inlined
-- where it is used.
CREATE OR REPLACE FUNCTION auth_private.claims_hold(claims jsonb)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL RESTRICTED
RETURN coalesce(claims->'pid' = pg_catalog.to_jsonb(pg_catalog.pg_backend_pid()), false)
    AND (CASE pg_catalog.jsonb_typeof(claims->'exp')
        WHEN 'number' THEN (claims->'exp')::numeric + 60 >= EXTRACT(epoch FROM pg_catalog.now())
            AND (claims->'exp')::numeric = pg_catalog.trunc((claims->'exp')::numeric)
        ELSE NOT claims ? 'exp' END)
    AND (CASE pg_catalog.jsonb_typeof(claims->'nbf')
        WHEN 'number' THEN (claims->'nbf')::numeric - 60 <= EXTRACT(epoch FROM pg_catalog.now())
            AND (claims->'nbf')::numeric = pg_catalog.trunc((claims->'nbf')::numeric)
        ELSE NOT claims ? 'nbf' END)
    AND (CASE pg_catalog.jsonb_typeof(claims->'sub')
        WHEN 'string' THEN true
        WHEN 'null' THEN true
        ELSE NOT claims ? 'sub' END);

-- Verifies `token` as a session token of this backend: its claims without the
-- internal `pid`, JSON null for no token, or an error that says precisely why
-- it is refused. What auth.session() does for a token it has no verified row for.
--
-- The path a valid proxy token takes costs as little as plpgsql allows: the
-- key is found by its header segment (no header decoding or parsing), the
-- signature is compared in its encoded form (no decoding of attacker-chosen
-- text), and the claims are checked by claims_hold(). Whatever it does not
-- accept goes to auth_private.verified_claims(), which raises the precise
-- error (or accepts a valid token whose header is spelled differently). It
-- accepts nothing the general path refuses: the header it matched names an
-- installed key and HS256, the token is exactly `header.payload.HMAC`, so the
-- payload is the proxy's own JSON, and the claims checks are the same.
--
-- Parallel restricted: pg_backend_pid() in a parallel worker would be the
-- worker's pid.
CREATE OR REPLACE FUNCTION auth_private.session_claims(token text)
RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
SET search_path = ''
AS $$
DECLARE
    header text := split_part(token, '.', 1);
    payload text := split_part(token, '.', 2);
    pads record;
    claims jsonb;
BEGIN
    IF token IS NULL OR token = '' THEN
        RETURN 'null'::jsonb;
    END IF;

    SELECT k.inner_pad, k.outer_pad INTO pads
    FROM auth_private.session_keys AS k
    WHERE k.header_segment = header;
    -- Without a key `pads` is a row of NULLs, so the comparison is NULL, not
    -- an error. A plain comparison: its early exit differs by nanoseconds, far
    -- below the jitter of the round trip an attacker would have to time it through.
    IF FOUND AND token = header || '.' || payload || '.'
        || auth_private.hs256(pads.inner_pad, pads.outer_pad, header || '.' || payload) THEN
        claims := convert_from(auth_private.base64url_decode(payload), 'UTF8')::jsonb;
        IF auth_private.claims_hold(claims) THEN
            RETURN claims - 'pid';
        END IF;
    END IF;
    RETURN auth_private.verified_claims(token);
END
$$;

-- The claims auth.jwt_session_init() verified and kept for `token` on this
-- backend, if they still count: its key is still installed with the secret
-- that verified it (`key_digest`), and exp/nbf still hold, as verifying checks
-- them, with the same leeway. Its claims were checked when the row was written.
-- NULL otherwise. Not to be called on a standby: Postgres refuses to read an
-- unlogged table during recovery.
CREATE OR REPLACE FUNCTION auth_private.kept_claims(token text)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL RESTRICTED
SET search_path = ''
RETURN (
    SELECT v.claims
    FROM auth_private.verified_sessions AS v
    WHERE v.pid = pg_catalog.pg_backend_pid()
        AND v.token = kept_claims.token
        AND v.key_digest = (
            SELECT pg_catalog.sha256(k.outer_pad)
            FROM auth_private.session_keys AS k
            WHERE k.kid = v.kid
        )
        AND (v.exp IS NULL OR v.exp + 60 >= EXTRACT(epoch FROM pg_catalog.now()))
        AND (v.nbf IS NULL OR v.nbf - 60 <= EXTRACT(epoch FROM pg_catalog.now()))
);

-- The session's verified claims (without the internal `pid`), JSON null when
-- no session was initialised, or an error that says precisely why the token
-- is refused. Called often: a policy's InitPlan calls it once per statement,
-- but `WHERE user_id = auth.user_id()` under that policy adds two more calls
-- (the index condition and the planner's check that both agree), and planning
-- an unprepared statement one more.
--
-- So it reads the claims auth.jwt_session_init() kept, when the setting still
-- holds that very token, and verifies only otherwise (a read-only transaction's
-- hand-off, a token set by hand, a standby). plpgsql, so that nothing touches
-- the unlogged table on a standby (Postgres refuses even to plan a query on it
-- there); search_path pinned, as everywhere here, which kept_claims() also needs
-- although a SQL body looks no name up at run time: Postgres re-plans a cached
-- query whenever its caller's search_path differs from the one it was planned
-- under, and callers alternate (auth.jwt_session_init's, the user's); unpinned,
-- the guides' query took 1.9 times the time without RLS, not 1.45.
CREATE OR REPLACE FUNCTION auth.session()
RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    setting text := current_setting('auth.session_token', true);
    kept jsonb;
BEGIN
    IF NOT pg_is_in_recovery() THEN
        -- auth_private.kept_claims(token), written out: calling it costs a twentieth
        -- of the guides' query.
        SELECT v.claims INTO kept
        FROM auth_private.verified_sessions AS v
        WHERE v.pid = pg_backend_pid()
            AND v.token = setting
            AND v.key_digest = (
                SELECT sha256(k.outer_pad) FROM auth_private.session_keys AS k WHERE k.kid = v.kid
            )
            AND (v.exp IS NULL OR v.exp + 60 >= EXTRACT(epoch FROM now()))
            AND (v.nbf IS NULL OR v.nbf - 60 <= EXTRACT(epoch FROM now()));
        IF FOUND THEN
            RETURN kept;
        END IF;
    END IF;
    RETURN auth_private.session_claims(setting);
END
$$;

-- Verify a session token and keep it for this session (until DISCARD ALL /
-- RESET ALL), and keep its verified claims in auth_private.verified_sessions so
-- that auth.session() need not verify it again. A refused token raises, and the
-- aborted transaction undoes the setting and the row.
--
-- The row is written only in a read-write READ COMMITTED transaction: a
-- read-only one (a standby's included) cannot write, and in REPEATABLE READ or
-- SERIALIZABLE the write could fail on another session's concurrent cleanup,
-- or make unrelated serializable transactions fail each other's checks. Those
-- transactions' auth.session() calls verify each time instead.
CREATE OR REPLACE FUNCTION auth.jwt_session_init(jwt text)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    header text := split_part(jwt, '.', 1);
    payload text := split_part(jwt, '.', 2);
    key record;
    verified jsonb;
BEGIN
    IF jwt IS NULL THEN
        RAISE EXCEPTION 'session token must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF jwt = '' THEN  -- would read as "no session"
        RAISE EXCEPTION 'invalid session token encoding' USING ERRCODE = 'datatype_mismatch';
    END IF;
    PERFORM set_config('auth.session_token', jwt, false);
    IF NOT pg_is_in_recovery() THEN
        IF auth_private.kept_claims(jwt) IS NOT NULL THEN
            RETURN;  -- the same user again on this backend: verified and kept already
        END IF;
    END IF;

    -- Verified as auth_private.session_claims() does, with the key row found in
    -- the same statement: the digest kept is that of the secret that checked it.
    SELECT k.kid, sha256(k.outer_pad) AS digest INTO key
    FROM auth_private.session_keys AS k
    WHERE k.header_segment = header
        AND jwt = header || '.' || payload || '.'
            || auth_private.hs256(k.inner_pad, k.outer_pad, header || '.' || payload);
    IF FOUND THEN
        verified := convert_from(auth_private.base64url_decode(payload), 'UTF8')::jsonb;
    END IF;
    IF NOT FOUND OR auth_private.claims_hold(verified) IS NOT TRUE THEN
        -- Raises why it is refused; or it is valid with a header spelled otherwise
        -- than the proxy spells it, and auth.session() verifies it on each call.
        PERFORM auth_private.verified_claims(jwt);
        RETURN;
    END IF;
    IF current_setting('transaction_read_only') = 'on'
        OR current_setting('transaction_isolation') <> 'read committed' THEN
        RETURN;
    END IF;
    verified := verified - 'pid';
    -- This backend's row, unless another session's cleanup holds it (a row left by
    -- an ended backend with this pid): a hand-off never waits on another request.
    UPDATE auth_private.verified_sessions
    SET token = jwt, kid = key.kid, key_digest = key.digest, claims = verified,
        exp = (verified->>'exp')::numeric, nbf = (verified->>'nbf')::numeric
    WHERE pid = (
        SELECT v.pid FROM auth_private.verified_sessions AS v
        WHERE v.pid = pg_backend_pid()
        FOR UPDATE SKIP LOCKED
    );
    IF NOT FOUND THEN
        IF EXISTS (SELECT FROM auth_private.verified_sessions WHERE pid = pg_backend_pid()) THEN
            RETURN;  -- held by another session: keep nothing this time (calls verify)
        END IF;
        -- This backend's first row (only this backend writes it). First forget the
        -- rows of backends that have ended, by a fresh look at which are running
        -- (Postgres keeps one per transaction), skipping rows another session is
        -- already deleting, so that no hand-off waits on another.
        PERFORM pg_stat_clear_snapshot();
        DELETE FROM auth_private.verified_sessions
        WHERE pid IN (
            SELECT v.pid FROM auth_private.verified_sessions AS v
            WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_stat_activity AS a WHERE a.pid = v.pid)
            FOR UPDATE SKIP LOCKED
        );
        INSERT INTO auth_private.verified_sessions (pid, token, kid, key_digest, claims, exp, nbf)
        VALUES (
            pg_backend_pid(), jwt, key.kid, key.digest, verified,
            (verified->>'exp')::numeric, (verified->>'nbf')::numeric
        );
    END IF;
END
$$;

-- A thin SQL wrapper with its body bound at creation time (no search_path
-- lookup at run time) that the planner can inline into a policy's InitPlan.
CREATE OR REPLACE FUNCTION auth.user_id()
RETURNS text
LANGUAGE sql STABLE PARALLEL RESTRICTED
RETURN auth.session() ->> 'sub';

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA auth FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA auth_private FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA auth TO authenticated, anonymous;
-- The Data API's connection (NOINHERIT) starts each request's session before it
-- switches to the token's role.
GRANT EXECUTE ON FUNCTION auth.init(), auth.jwt_session_init(text) TO authenticator;
