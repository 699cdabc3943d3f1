"""The curated mutants: (file, exact text, replacement, the tests that must fail).

Each replaces one security check with the mistake a later change could make.
The text must occur exactly once in its file, so that a refactoring which moves
the check is noticed here too (the run says the mutant no longer applies).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


PROXY_AUTH = "tests/proxy/test_auth.py"
DATA_API_ATTACKS = "tests/data_api/test_attacks.py"
RESOURCES = "tests/issuer/test_oauth_resources.py"

MUTANTS: tuple[Mutant, ...] = (
    # --- the Data API: which role a request becomes ------------------------------
    Mutant(
        "Data API: a token without a role runs as authenticated",
        "proxy/data_api/endpoint.py",
        'isinstance(claims.get("role"), str) else ANONYMOUS_ROLE',
        'isinstance(claims.get("role"), str) else "authenticated"',
        (
            f"{DATA_API_ATTACKS}::test_a_token_without_a_role_is_the_anonymous_role_and_sees_nothing",
        ),
    ),
    Mutant(
        "Data API: any schema may be named as the profile",
        "proxy/data_api/endpoint.py",
        "    if wanted not in schemas:\n",
        "    if False:\n",
        (f"{DATA_API_ATTACKS}::test_bad_requests_are_precise_4xx",),
    ),
    Mutant(
        "local auth reads request.jwt.claims without a session (as pg_session_jwt without a JWK)",
        "sql/local/20_auth.sql",
        "    IF token IS NULL OR token = '' THEN\n        RETURN 'null'::jsonb;",
        "    IF token IS NULL OR token = '' THEN\n"
        "        RETURN coalesce(nullif(current_setting('request.jwt.claims', true), '')::jsonb,"
        " 'null'::jsonb);",
        ("tests/proxy/test_rls.py::test_hand_set_claims_do_not_change_the_identity",),
    ),
    # --- the proxy: who may run SQL as whom -------------------------------------
    Mutant(
        "validation cache ignores the role",
        "proxy/jwt.py",
        "cached = self._cache.get((token, role))",
        "cached = next((v for (t, _), v in list(self._cache.items()) if t == token), None)",
        (f"{PROXY_AUTH}::test_a_validated_token_is_remembered_for_its_role_only",),
    ),
    Mutant(
        "a key of any rule vouches for any role",
        "proxy/jwt.py",
        "            for rule in rules:\n                key_set",
        "            for rule in self._rules:\n                key_set",
        (f"{PROXY_AUTH}::test_a_key_vouches_only_for_the_roles_of_its_own_rule",),
    ),
    Mutant(
        "signature not verified",
        "proxy/jwt.py",
        '        _verify(jwk, f"{parts[0]}.{parts[1]}".encode(), signature)',
        "        pass",
        (PROXY_AUTH,),
    ),
    Mutant(
        "audience not checked",
        "proxy/jwt.py",
        "if rule.audience is not None and rule.audience not in audiences:",
        "if False:",
        (f"{PROXY_AUTH}::test_audience_is_checked_only_when_configured",),
    ),
    Mutant(
        "expiry not checked",
        "proxy/jwt.py",
        "if expires is not None and now >= expires + LEEWAY:",
        "if False:",
        (f"{PROXY_AUTH}::test_expiry_and_not_before_beyond_leeway",),
    ),
    Mutant(
        "kid not required",
        "proxy/jwt.py",
        "        if not isinstance(kid, str):\n",
        "        if False:\n",
        (f"{PROXY_AUTH}::test_a_kid_that_is_not_a_string_is_refused_cleanly",),
    ),
    Mutant(
        "encryption keys may sign",
        "proxy/jwks.py",
        'if item.get("use") is not None and item.get("use") != "sig":',
        "if False:",
        (f"{PROXY_AUTH}::test_keys_published_for_encryption_are_ignored",),
    ),
    Mutant(
        "short RSA keys accepted",
        "proxy/jwks.py",
        "if key.key_size < MIN_RSA_BITS:",
        "if False:",
        (f"{PROXY_AUTH}::test_rsa_keys_under_2048_bits_are_ignored",),
    ),
    Mutant(
        "a failed JWKS renewal keeps the old keys",
        "proxy/jwks.py",
        "            self._keys = {}\n",
        "            pass\n",
        ("tests/proxy/test_jwks.py",),
    ),
    Mutant(
        "databases without the session functions are pooled",
        "proxy/pool.py",
        "                _check_session_functions(first, target)",
        "                pass",
        (
            "tests/app/test_http_audience.py::test_a_database_without_the_session_functions_is_refused_and_left_closed",
        ),
    ),
    # --- the local auth schema and RLS --------------------------------------------
    Mutant(
        "UPDATE policy without WITH CHECK",
        "sql/schema/20_todos.sql",
        "            USING ((SELECT auth.user_id()) = user_id)\n"
        "            WITH CHECK ((SELECT auth.user_id()) = user_id);",
        "            USING ((SELECT auth.user_id()) = user_id)\n            WITH CHECK (true);",
        ("tests/sql/test_sql_rls.py",),
    ),
    # --- the issuer: which tokens exist, for whom ---------------------------------
    Mutant(
        "minting hands every claim to orjson (NaN written as null)",
        "issuer/tokens/__init__.py",
        "if _PLAIN_TYPES.issuperset(map(type, claims.values())):",
        "if True:",
        ("tests/issuer/test_tokens.py::test_non_json_numbers_are_refused_not_emitted",),
    ),
    Mutant(
        "a forked worker trusts its parent's view of the key ring",
        "issuer/keys/ring.py",
        "os.register_at_fork(after_in_child=_renew_pid)",
        "None",
        (
            "tests/issuer/test_keyring.py::"
            "test_a_forked_worker_looks_for_itself_rather_than_trusting_its_parents_freshness",
        ),
    ),
    Mutant(
        "resources granted without checking the client",
        "issuer/oauth/resources.py",
        "refused = [r for r in wanted if r not in allowed]",
        "refused = []",
        (RESOURCES,),
    ),
    Mutant(
        "a token for a resource the grant does not cover",
        "issuer/oauth/resources.py",
        "if choice not in granted or choice not in allowed:",
        "if False:",
        (RESOURCES,),
    ),
    Mutant(
        "service tokens carry the bare client id",
        "issuer/oauth/server.py",
        'return f"{client_id}@clients"',
        "return client_id",
        (RESOURCES,),
    ),
    Mutant(
        "two client-authentication methods accepted",
        "issuer/oauth/server.py",
        'if "client_secret" in request.form or "client_assertion" in request.form:',
        "if False:",
        ("tests/issuer/test_oauth_client_auth.py",),
    ),
    Mutant(
        "a disabled user refreshes",
        "issuer/oauth/grants.py",
        "user = _active_user(refresh_token.user_id)",
        "user = accounts.get_user(refresh_token.user_id)",
        ("tests/issuer/test_oauth_tokens.py::test_a_disabled_user_cannot_refresh",),
    ),
    Mutant(
        "a nonce may be replayed",
        "issuer/oauth/grants.py",
        "return codes.nonce_seen(get_engine(), request.payload.client_id, nonce)",
        "return False",
        ("tests/issuer/test_oauth_flow.py::test_a_nonce_is_used_once_per_client",),
    ),
    Mutant(
        "PKCE optional (authlib's default)",
        "issuer/oauth/grants.py",
        '        if not data.get("code_challenge"):\n'
        "            raise InvalidRequestError(\"PKCE is required: missing 'code_challenge'.\")\n"
        '        if data.get("code_challenge_method") != "S256":\n'
        "            raise InvalidRequestError(\"'code_challenge_method' must be S256.\")\n",
        "",
        ("tests/issuer/test_oauth_flow.py",),
    ),
    Mutant(
        "codes reusable",
        "issuer/oauth/codes.py",
        "                codes_table.c.used_at.is_(None),\n",
        "",
        ("tests/issuer/test_oauth_flow.py",),
    ),
    Mutant(
        "rotated refresh tokens reusable",
        "issuer/oauth/refresh_tokens.py",
        ".where(*mine, t.c.rotated_at.is_(None), t.c.revoked_at.is_(None), t.c.expires_at > now)",
        ".where(*mine, t.c.revoked_at.is_(None), t.c.expires_at > now)",
        ("tests/issuer/test_oauth_tokens.py",),
    ),
    Mutant(
        "redirect URIs not matched",
        "issuer/oauth/clients.py",
        "return redirect_uri in self.redirect_uris",
        "return True",
        ("tests/issuer/test_oauth_flow.py",),
    ),
    Mutant(
        "/userinfo serves disabled users",
        "issuer/oauth/userinfo.py",
        "if user is None or user.disabled:",
        "if user is None:",
        ("tests/issuer/test_oauth_tokens.py::test_userinfo_refuses_a_disabled_users_token",),
    ),
    Mutant(
        "prompt=login satisfied by any login",
        "issuer/oauth/prompts.py",
        "return since is None or auth_time < since",
        "return False",
        ("tests/issuer/test_oauth_prompts.py",),
    ),
    Mutant(
        "any valid hint logs the session's user out",
        "issuer/oauth/views.py",
        'if user is not None and (hinted is None or hinted.get("sub") != user.id):',
        "if user is not None and hinted is None:",
        ("tests/issuer/test_oauth_logout.py",),
    ),
    Mutant(
        "a cross-site logout post answers with a session cookie",
        "issuer/oauth/views.py",
        "if user is None and _cookies_withheld():",
        "if False:",
        ("tests/issuer/test_oauth_logout.py",),
    ),
    Mutant(
        "an access token serves as id_token_hint",
        "issuer/oauth/endpoints.py",
        '"scope" in claims or "client_id" in claims or not self._names_a_client(claims)',
        "False",
        ("tests/issuer/test_oauth_logout.py",),
    ),
    Mutant(
        "re-login marks never expire",
        "issuer/oauth/prompts.py",
        "if not isinstance(since, int) or now - since > MARK_LIFETIME:",
        "if not isinstance(since, int):",
        ("tests/issuer/test_oauth_prompts.py",),
    ),
    Mutant(
        "a refresh token is spent before its audience is decided",
        "issuer/oauth/grants.py",
        "            resources.audience(\n"
        "                client.audiences, resources.split(live.resources), "
        "_wanted_resources(self.request)\n"
        "            )\n",
        "",
        (f"{RESOURCES}::test_a_refresh_that_cannot_get_a_token_keeps_the_refresh_token",),
    ),
    Mutant(
        "manifest kids not checked against their keys",
        "issuer/keys/manifest.py",
        "if thumbprint(jwk) != kid:",
        "if False:",
        ("tests/issuer/test_keyring.py::test_hand_edited_manifest_is_a_precise_error",),
    ),
    # --- the issuer: login sessions and throttling --------------------------------
    Mutant(
        "expired login sessions accepted",
        "issuer/accounts/sessions.py",
        "                login_sessions.c.expires_at > time.time(),\n",
        "",
        (
            "tests/issuer/test_accounts_web.py::test_a_login_session_past_its_expiry_is_not_accepted",
        ),
    ),
    Mutant(
        "sessions of disabled users live on",
        "issuer/accounts/sessions.py",
        "                users.c.disabled.is_(False),\n",
        "",
        (
            "tests/issuer/test_accounts_web.py::test_a_session_ends_when_its_user_is_disabled_behind_its_back",
        ),
    ),
    Mutant(
        "logout by GET",
        "issuer/accounts/views.py",
        '@bp.post("/logout", provide_automatic_options=False)',
        '@bp.route("/logout", methods=["GET", "HEAD", "POST"])',
        ("tests/issuer/test_accounts_web.py::test_logout_is_post_only",),
    ),
    Mutant(
        "a device cookie opens any account",
        "issuer/accounts/devices.py",
        "for digest, device in _entries(request) if digest == account",
        "for digest, device in _entries(request)",
        ("tests/issuer/test_accounts_http.py::test_a_known_browser_has_its_own_failure_budget",),
    ),
    Mutant(
        "a known device's login unlocks the account for strangers",
        "issuer/accounts/throttle.py",
        "if attempt.account is not None and attempt.device is None:",
        "if attempt.account is not None:",
        (
            "tests/issuer/test_accounts_http.py::test_strangers_cannot_lock_the_owner_out_of_a_known_browser",
        ),
    ),
    Mutant(
        "a request's environ carries the process environment (granian's copy, unstripped)",
        "serving/__init__.py",
        "        if self.witness is None or self.witness in environ:\n",
        "        if self.witness is None:\n",
        ("tests/test_serving.py::test_a_copied_process_environment_is_still_stripped",),
    ),
)
