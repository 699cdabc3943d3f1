"""The SQL users run on Neon uses only what Neon's pg_session_jwt provides."""

from __future__ import annotations

import re
from pathlib import Path

from stack.migrate import PG_SESSION_JWT, SQL_DIR

ROOT = Path(__file__).resolve().parent.parent.parent
#: pg_session_jwt 0.3.1's functions (neondatabase/pg_session_jwt at v0.3.1).
PG_SESSION_JWT_0_3_1 = {"init", "jwt_session_init", "session", "user_id"}
CALL = re.compile(r"\bauth\.([a-z_]+)\s*\(")


def auth_functions(text: str) -> set[str]:
    return set(CALL.findall(text))


def test_neon_runs_pg_session_jwt_0_3_1() -> None:
    assert PG_SESSION_JWT == "0.3.1"


def test_the_schema_and_the_apps_queries_use_only_its_functions() -> None:
    """A policy or query calling auth.uid() or auth.jwt() (0.4.0) fails on Neon with 42883."""
    used: dict[str, set[str]] = {}
    for path in [*(SQL_DIR / "schema").glob("*.sql"), *(ROOT / "app").glob("*.py")]:
        found = auth_functions(path.read_text())
        if found:
            used[str(path.relative_to(ROOT))] = found
    assert used, "the schema's policies call auth.user_id()"
    beyond = {path: names - PG_SESSION_JWT_0_3_1 for path, names in used.items()}
    assert not any(beyond.values()), beyond
