"""Services stand alone: each imports nothing of the others (checked in a fresh interpreter).

The todo app is a plain OpenID Connect client of the issuer, the proxy a stand-in
for Neon's: copying one into another project must not drag the others along.
Only the dev supervisor (`stack`) and the benchmarks may use every service.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SERVICES = ("app", "issuer", "proxy", "neon_http")
OTHERS = {"app", "issuer", "proxy", "stack", "bench", "mutants"}

# Import every module of the package, then report which top-level packages got loaded.
_PROBE = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    # Alembic's and gunicorn's entry points run only under them (and check settings).
    if module.name.endswith((".migrations.env", ".gunicorn_conf", ".__main__")):
        continue
    importlib.import_module(module.name)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_none_of_the_others(service: str) -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", _PROBE, service],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    forbidden = (OTHERS - {service}) & set(json.loads(loaded.stdout))
    assert not forbidden, f"{service} imports {sorted(forbidden)}"
