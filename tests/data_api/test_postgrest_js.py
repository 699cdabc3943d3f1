"""Supabase's JavaScript PostgREST client, unmodified, against the local Data API:
CRUD as two users, counts, ranges, ordering, filters, RPC and errors.

`tests/data_api/js/scenario.mjs` drives `@supabase/postgrest-js` (pinned in its
package.json, installed by `make test`) as a browser app would; this test gives
it two users' tokens and checks what it observed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.proxy.support import Proxy, SigningKey, claims_for

SCENARIO = Path(__file__).parent / "js" / "scenario.mjs"
CLIENT = Path(__file__).parent / "js" / "node_modules" / "@supabase" / "postgrest-js"


@pytest.fixture(scope="module")
def node() -> str:
    """Fails (never skips) without node and the client: `make test` installs both."""
    found = shutil.which("node")
    assert found, "node is not installed: run `make test`, which installs it"
    assert CLIENT.is_dir(), (
        "postgrest-js is not installed: run `make test` (npm ci in tests/data_api/js)"
    )
    return found


def test_postgrest_js_crud_counts_ranges_filters_and_errors(
    node: str, proxy: Proxy, ec_key: SigningKey
) -> None:
    alice_id, bob_id = (f"js-{uuid.uuid4().hex[:10]}" for _ in range(2))
    tokens = {
        name: ec_key.sign(claims_for(sub) | {"role": "authenticated"})
        for name, sub in (("alice", alice_id), ("bob", bob_id))
    }
    run = subprocess.run(
        [node, str(SCENARIO)],
        input=json.dumps({"url": f"{proxy.url}/neondb/rest/v1", **tokens}),
        capture_output=True, text=True, timeout=60, cwd=SCENARIO.parent,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)

    assert len(seen["inserted"]) == 12
    assert {row["user_id"] for row in seen["inserted"]} == {alice_id}
    assert [row["user_id"] for row in seen["bobInserted"]] == [bob_id]
    assert seen["page"] == {"tasks": ["task 09", "task 08", "task 07"], "count": 12}
    assert [row["task"] for row in seen["done"]] == ["task 00", "task 03", "task 06", "task 09"]
    assert [row["task"] for row in seen["either"]] == ["task 02", "task 11"]
    assert seen["notDone"] == 8
    assert [row["task"] for row in seen["matching"]] == ["task 10", "task 11"]
    assert seen["renamed"] == {"label": "task 04"}
    assert seen["headCount"] == 12
    assert [row["task"] for row in seen["bobSees"]] == ["bob's only"]

    # Bob names Alice's row: RLS hides it from his update and delete.
    assert seen["bobUpdate"] == [] and seen["bobDelete"] == []
    assert seen["aliceUpdate"] == [{"task": "task 00", "is_complete": True}]
    assert seen["aliceDelete"] == [{"task": "task 11"}]
    assert seen["aliceCount"] == 11
    # RPC: public.whoami() runs as the caller, under RLS, by POST and by GET.
    assert {k: seen["whoami"][k] for k in ("role", "user_id", "visible_todos")} == {
        "role": "authenticated", "user_id": alice_id, "visible_todos": 11,
    }  # fmt: skip
    assert (seen["whoamiByGet"]["user_id"], seen["whoamiByGet"]["visible_todos"]) == (bob_id, 1)

    assert seen["missingTable"] == {"status": 404, "code": "PGRST205"}
    assert seen["forged"] == {"status": 403, "code": "42501"}
    assert seen["anonymous"]["status"] == 401 and seen["anonymous"]["data"] is None
